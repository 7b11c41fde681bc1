//! Restore: pre-data, then rows (COPY FROM STDIN, loaded by column name), then post-data.
//!
//! Into an existing database, the whole restore runs in one transaction on one connection: a
//! failure (a conflicting object, a corrupt entry, a dropped column with `fail_on_dropped_columns`)
//! rolls everything back, so nothing is half-applied. Into a database it creates, tables load in
//! parallel, each table's keys and indexes are built as soon as all its rows are in (overlapping
//! the loading of other tables, on connections of their own), and a failure drops the database
//! again (unless `keep_on_failure`).

use async_trait::async_trait;
use dbbackup_core::{
    ByteStream, EntryKind, EntryRecord, Error, ErrorKind, Manifest, RestoreSession, RestoreSummary,
    RestoreTarget, Result, TableRef,
};
use futures::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use tokio::sync::Mutex;

use crate::config::{PgUrl, ENGINE};
use crate::entry::{EntryMeta, Format};
use crate::error::pg_error;
use crate::schema::{ident, Statement};

/// Where and how to restore a PostgreSQL backup.
#[derive(Debug, Clone)]
pub struct PgTarget {
    url: PgUrl,
    create: bool,
    keep_on_failure: bool,
    data_only: bool,
    fail_on_dropped_columns: bool,
    clean: bool,
    analyze: bool,
    jobs: usize,
    tools: crate::dump::Tools,
    skip_privileges: bool,
}

impl PgTarget {
    /// The database at `url`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        Ok(PgTarget::from_url(url.parse()?))
    }

    pub(crate) fn from_url(url: PgUrl) -> Self {
        PgTarget {
            url,
            create: false,
            keep_on_failure: false,
            data_only: false,
            fail_on_dropped_columns: false,
            clean: false,
            analyze: false,
            jobs: 2,
            tools: crate::dump::Tools::from_path(),
            skip_privileges: false,
        }
    }

    /// Where `pg_restore` is, for backups made by `pg_dump` (default: `PATH`).
    pub fn with_tools(mut self, tools: crate::dump::Tools) -> Self {
        self.tools = tools;
        self
    }

    /// Create the database first (it must not exist); a failed restore drops it again.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Keep a created database after a failure, for inspection.
    pub fn keep_on_failure(mut self, yes: bool) -> Self {
        self.keep_on_failure = yes;
        self
    }

    /// Load rows into the tables that exist (by column name) and set sequences; leave the schema
    /// alone. This is "restore the old rows into the migrated schema".
    pub fn data_only(mut self, yes: bool) -> Self {
        self.data_only = yes;
        self
    }

    /// Fail (and roll back) when a backed-up column no longer exists, instead of reporting it.
    pub fn fail_on_dropped_columns(mut self, yes: bool) -> Self {
        self.fail_on_dropped_columns = yes;
        self
    }

    /// Into an existing database: first drop the objects of the backup it has (tables, views,
    /// sequences, functions, types, ...; indexes, constraints and triggers go with their tables),
    /// inside the restore's one transaction, as `pg_restore --clean --if-exists` does. Never
    /// `CASCADE` (except base types, as pg_dump): an object the backup does not have that depends
    /// on one fails the restore, which then changes nothing.
    pub fn clean(mut self, yes: bool) -> Self {
        self.clean = yes;
        self
    }

    /// Run `ANALYZE` after loading.
    pub fn analyze(mut self, yes: bool) -> Self {
        self.analyze = yes;
        self
    }

    /// Leave out the owners and privileges a backup taken with `PgSource::with_privileges`
    /// holds: objects then belong to the restoring user (for a target without those roles).
    pub fn skip_privileges(mut self, yes: bool) -> Self {
        self.skip_privileges = yes;
        self
    }

    /// Connections loading tables at once into a created database (default 2).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
}

enum Mode {
    /// One connection, one transaction.
    Atomic(Mutex<Option<PgConnection>>),
    /// A database we created.
    Parallel {
        pool: PgPool,
        admin: Box<PgConnectOptions>,
    },
}

struct Session {
    target: PgTarget,
    mode: Mode,
    warnings: std::sync::Mutex<Vec<String>>,
    /// Into a created database: the data entries still to load per table whose keys and indexes
    /// the backup lists with its rows (`EntryMeta::indexes`).
    parts_left: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// The post-data statements (kind, name) already run that way.
    built: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    /// `--clean`: event triggers dropped with the pre-data that post-data must re-create.
    event_triggers: std::sync::Mutex<Vec<String>>,
    /// `--clean`: objects dropped.
    cleaned: std::sync::Mutex<usize>,
    /// `--clean`: the backup's data entries, and those restored so far: every table was
    /// dropped, so a restore of only some of them must not commit.
    data_entries: usize,
    data_restored: std::sync::atomic::AtomicUsize,
}

fn target_err(e: sqlx::Error, what: &str) -> Error {
    pg_error(e, ErrorKind::Target, what)
}

#[async_trait]
impl RestoreTarget for PgTarget {
    async fn begin(&self, manifest: &Manifest) -> Result<Box<dyn RestoreSession>> {
        if manifest.source.engine != ENGINE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is a {} backup; restore it into a {} target, not PostgreSQL",
                    manifest.backup_id, manifest.source.engine, manifest.source.engine
                ),
            ));
        }
        let db = self.url.database().to_owned();
        if self.clean && (self.create || self.data_only) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "--clean drops the backup's objects in an existing database before restoring; it \
                 does not go with --create (a new database has nothing to drop) or --data-only",
            ));
        }
        let mode = if self.create {
            let admin = self.url.with_database("postgres");
            let mut c = admin.connect().await.map_err(|e| {
                target_err(
                    e,
                    &format!("cannot connect to {} to create the database", self.url),
                )
            })?;
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&db)
                    .fetch_one(&mut c)
                    .await
                    .map_err(|e| target_err(e, "cannot look up databases"))?;
            if exists {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("database {db:?} already exists; drop --create to restore into it, or pick a new name (nothing was changed)"),
                ));
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {}",
                ident(&db)
            )))
            .execute(&mut c)
            .await
            .map_err(|e| target_err(e, &format!("cannot create database {db:?}")))?;
            let _ = c.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(self.jobs as u32)
                .connect_with(self.url.options.clone())
                .await
                .map_err(|e| target_err(e, &format!("cannot connect to {}", self.url)))?;
            Mode::Parallel {
                pool,
                admin: Box::new(admin),
            }
        } else {
            let mut c = self
                .url
                .options
                .connect()
                .await
                .map_err(|e| target_err(e, &format!("cannot connect to {}", self.url)))?;
            sqlx::query("BEGIN")
                .execute(&mut c)
                .await
                .map_err(|e| target_err(e, "cannot start the restore transaction"))?;
            Mode::Atomic(Mutex::new(Some(c)))
        };
        let mut parts_left = std::collections::HashMap::new();
        if matches!(mode, Mode::Parallel { .. }) && !self.data_only {
            for e in manifest
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::Data)
            {
                let meta = EntryMeta::read(e)?;
                if let (false, Some(t)) = (meta.indexes.is_empty(), meta.table) {
                    *parts_left.entry(t.table).or_insert(0) += 1;
                }
            }
        }
        Ok(Box::new(Session {
            target: self.clone(),
            mode,
            warnings: Default::default(),
            parts_left: std::sync::Mutex::new(parts_left),
            built: Default::default(),
            event_triggers: Default::default(),
            cleaned: Default::default(),
            data_entries: manifest
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::Data)
                .count(),
            data_restored: Default::default(),
        }))
    }
}

use dbbackup_core::statements::{collect as read_all, decode_statements as parse_statements};

async fn run_statements(conn: &mut PgConnection, stmts: &[Statement]) -> Result<()> {
    for s in stmts {
        sqlx::query(sqlx::AssertSqlSafe(s.sql.clone()))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                let mut err = pg_error(
                    e,
                    ErrorKind::Target,
                    &format!("restoring {} {} failed", s.kind, s.name),
                );
                err = Error::new(
                    err.kind(),
                    format!("{}\n  statement: {}", err.message(), s.sql),
                );
                err
            })?;
    }
    Ok(())
}

/// Keeps the fields at `keep` of every line of COPY text data.
struct Projector {
    keep: Vec<usize>,
    partial: Vec<u8>,
}

impl Projector {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'\n' {
                if self.partial.is_empty() {
                    self.project(&chunk[start..i], out);
                } else {
                    self.partial.extend_from_slice(&chunk[start..i]);
                    let line = std::mem::take(&mut self.partial);
                    self.project(&line, out);
                }
                start = i + 1;
            }
        }
        self.partial.extend_from_slice(&chunk[start..]);
    }

    /// `keep` is ascending, so one pass over the fields picks them (no per-row allocation).
    fn project(&self, line: &[u8], out: &mut Vec<u8>) {
        let mut want = self.keep.iter().peekable();
        let mut first = true;
        for (i, field) in line.split(|&b| b == b'\t').enumerate() {
            if want.peek() == Some(&&i) {
                if !first {
                    out.push(b'\t');
                }
                first = false;
                out.extend_from_slice(field);
                want.next();
            }
        }
        // A short line (never written by COPY) gets NULLs rather than shifted values.
        for _ in want {
            if !first {
                out.push(b'\t');
            }
            first = false;
            out.extend_from_slice(b"\\N");
        }
        out.push(b'\n');
    }
}

impl Session {
    /// Counts objects `--clean` dropped, for the restore's report.
    fn cleaned(&self, n: usize) {
        *self.cleaned.lock().expect("lock") += n;
    }

    /// Once every part of a table is loaded, builds its keys and indexes, each on a connection
    /// of its own (several indexes of one table build at once), while other tables still load.
    async fn index_when_loaded(&self, pool: &PgPool, entry: &EntryRecord) -> Result<()> {
        let meta = EntryMeta::read(entry)?;
        let Some(table) = meta.table.as_ref().map(|t| t.table.clone()) else {
            return Ok(());
        };
        let complete = {
            let mut left = self.parts_left.lock().expect("lock");
            match left.get_mut(&table) {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => false,
            }
        };
        if !complete {
            return Ok(());
        }
        futures::future::try_join_all(meta.indexes.iter().map(|s| async move {
            let mut c = pool
                .acquire()
                .await
                .map_err(|e| target_err(e, "cannot get a connection"))?;
            run_statements(&mut c, std::slice::from_ref(s)).await
        }))
        .await?;
        let mut built = self.built.lock().expect("lock");
        for s in meta.indexes {
            built.insert((s.kind, s.name));
        }
        Ok(())
    }

    async fn load_table(
        &self,
        conn: &mut PgConnection,
        entry: &EntryRecord,
        mut data: ByteStream,
    ) -> Result<Option<u64>> {
        let meta: EntryMeta = entry.meta_of()?;
        let TableRef {
            schema,
            name,
            columns,
            ..
        } = meta.table.ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                format!("data entry {} names no table", entry.name),
            )
        })?;
        let schema = schema.unwrap_or_default();
        let table = format!("{}.{}", ident(&schema), ident(&name));
        let present: Vec<String> = sqlx::query(
            "SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''",
        )
        .bind(&table)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| target_err(e, &format!("cannot read the columns of {schema}.{name}")))?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let exists = !present.is_empty()
            || sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                .bind(&table)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| target_err(e, &format!("cannot look up {schema}.{name}")))?;
        if !exists {
            let msg = format!(
                "table {schema}.{name} no longer exists in the target; its rows were not restored"
            );
            if self.target.data_only && !self.target.fail_on_dropped_columns {
                // Gone from the new schema: reported, its bytes still read (and checked).
                while let Some(chunk) = data.next().await {
                    chunk?;
                }
                self.warnings.lock().expect("lock").push(msg);
                return Ok(None);
            }
            return Err(Error::new(
                ErrorKind::Target,
                if self.target.data_only {
                    msg
                } else {
                    format!("table {schema}.{name} does not exist in the target; restore the schema too (without data-only)")
                },
            ));
        }
        let keep: Vec<usize> = (0..columns.len())
            .filter(|&i| present.contains(&columns[i]))
            .collect();
        let dropped: Vec<&str> = columns
            .iter()
            .filter(|c| !present.contains(c))
            .map(String::as_str)
            .collect();
        if !dropped.is_empty() {
            let msg = format!(
                "table {schema}.{name}: backed-up column(s) {} no longer exist in the target; their values were not restored",
                dropped.join(", ")
            );
            if self.target.fail_on_dropped_columns {
                return Err(Error::new(ErrorKind::Target, msg));
            }
            self.warnings.lock().expect("lock").push(msg);
        }
        let mut projector = (keep.len() != columns.len()).then(|| Projector {
            keep: keep.clone(),
            partial: Vec::new(),
        });
        let cols: Vec<String> = keep.iter().map(|&i| ident(&columns[i])).collect();
        let sql = match (cols.is_empty(), columns.is_empty()) {
            // A table without columns: its rows are empty lines.
            (true, true) => format!("COPY {table} FROM STDIN"),
            (true, false) => {
                return Err(Error::new(
                    ErrorKind::Target,
                    format!("table {schema}.{name}: none of the backed-up columns exist in the target, so its rows cannot be restored"),
                ))
            }
            _ => format!("COPY {table} ({}) FROM STDIN", cols.join(", ")),
        };
        let what = format!("loading rows into {schema}.{name} failed");
        let mut copy = conn
            .copy_in_raw(&sql)
            .await
            .map_err(|e| target_err(e, &what))?;
        let mut buf = Vec::with_capacity(1 << 20);
        while let Some(chunk) = data.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = copy.abort(format!("dbbackup: {}", e.message())).await;
                    return Err(e);
                }
            };
            let sent = match &mut projector {
                Some(p) => {
                    buf.clear();
                    p.push(&chunk, &mut buf);
                    copy.send(buf.as_slice()).await.map(|_| ())
                }
                None => copy.send(chunk.as_ref()).await.map(|_| ()),
            };
            if let Err(e) = sent {
                let _ = copy.abort("dbbackup: send failed").await;
                return Err(target_err(e, &what));
            }
        }
        let rows = copy.finish().await.map_err(|e| target_err(e, &what))?;
        Ok(Some(rows))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        entry: &EntryRecord,
        data: ByteStream,
    ) -> Result<Option<u64>> {
        match entry.kind {
            EntryKind::PreData => {
                let stmts = parse_statements(&read_all(data).await?)?;
                if self.target.data_only {
                    return Ok(None);
                }
                let atomic = matches!(self.mode, Mode::Atomic(_));
                if !atomic {
                    sqlx::query("BEGIN")
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| target_err(e, "BEGIN"))?;
                }
                sqlx::query("SET LOCAL check_function_bodies = false")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| target_err(e, "SET check_function_bodies"))?;
                if self.target.clean {
                    let (n, triggers) = crate::clean::drop_backup_objects(conn, &stmts).await?;
                    self.cleaned(n);
                    *self.event_triggers.lock().expect("lock") = triggers;
                }
                run_statements(conn, &stmts).await?;
                if !atomic {
                    sqlx::query("COMMIT")
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| target_err(e, "COMMIT"))?;
                }
                Ok(None)
            }
            EntryKind::PostData => {
                let mut stmts = parse_statements(&read_all(data).await?)?;
                if self.target.data_only {
                    stmts.retain(|s| s.kind == "sequence value");
                }
                if self.target.skip_privileges {
                    stmts.retain(|s| s.kind != "owner" && s.kind != "privileges");
                }
                {
                    let built = self.built.lock().expect("lock");
                    stmts.retain(|s| !built.contains(&(s.kind.clone(), s.name.clone())));
                }
                if self.target.clean {
                    let dropped = std::mem::take(&mut *self.event_triggers.lock().expect("lock"));
                    crate::clean::check_event_triggers(&dropped, &stmts)?;
                    let (n, _) = crate::clean::drop_backup_objects(conn, &stmts).await?;
                    self.cleaned(n);
                }
                run_statements(conn, &stmts).await?;
                Ok(None)
            }
            EntryKind::Data if EntryMeta::read(entry)?.format == Format::LargeObjects => {
                crate::large_objects::write_all(conn, data, self.target.clean)
                    .await
                    .map(Some)
            }
            EntryKind::Data => self.load_table(conn, entry, data).await,
            EntryKind::Dump if EntryMeta::read(entry)?.format == Format::BaseTar => {
                Err(Error::new(
                    ErrorKind::InvalidInput,
                    "this is a physical base backup: it restores into a data directory \
                     (--data-dir DIR), not into a database",
                ))
            }
            EntryKind::Dump => {
                if matches!(self.mode, Mode::Atomic(_)) {
                    // pg_restore brings its own transaction; ours must not hold locks meanwhile.
                    sqlx::query("COMMIT")
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| target_err(e, "COMMIT"))?;
                    sqlx::query("BEGIN")
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| target_err(e, "BEGIN"))?;
                }
                crate::dump::pg_restore(&self.target.url, &self.target.tools, data).await?;
                Ok(None)
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "entry {} of kind {:?} is not a native PostgreSQL entry",
                    entry.name, entry.kind
                ),
            )),
        }
    }
}

#[async_trait]
impl RestoreSession for Session {
    async fn restore_entry(&self, entry: &EntryRecord, data: ByteStream) -> Result<Option<u64>> {
        if entry.kind == EntryKind::Data {
            self.data_restored
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match &self.mode {
            Mode::Atomic(conn) => {
                let mut guard = conn.lock().await;
                let c = guard.as_mut().ok_or_else(|| {
                    Error::new(ErrorKind::Internal, "the restore connection is gone")
                })?;
                if entry.kind == EntryKind::Data && self.target.data_only {
                    // Triggers and foreign keys would fire row by row against a half-loaded database;
                    // pg_restore's --disable-triggers does the same (needs superuser).
                    if sqlx::query("SET LOCAL session_replication_role = replica")
                        .execute(&mut *c)
                        .await
                        .is_err()
                    {
                        return Err(Error::new(
                            ErrorKind::Target,
                            "cannot disable triggers for the data load (needs superuser)",
                        ));
                    }
                }
                self.apply(c, entry, data).await
            }
            Mode::Parallel { pool, .. } => {
                let loaded = {
                    let mut c = pool
                        .acquire()
                        .await
                        .map_err(|e| target_err(e, "cannot get a connection"))?;
                    self.apply(&mut c, entry, data).await?
                };
                if entry.kind == EntryKind::Data && !self.target.data_only {
                    self.index_when_loaded(pool, entry).await?;
                }
                Ok(loaded)
            }
        }
    }

    async fn finish(self: Box<Self>) -> Result<RestoreSummary> {
        match &self.mode {
            Mode::Atomic(conn) => {
                let mut c = conn
                    .lock()
                    .await
                    .take()
                    .ok_or_else(|| Error::new(ErrorKind::Internal, "no connection"))?;
                let restored = self
                    .data_restored
                    .load(std::sync::atomic::Ordering::Relaxed);
                if self.target.clean && restored < self.data_entries {
                    let _ = sqlx::query("ROLLBACK").execute(&mut c).await;
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "--clean dropped every table of the backup, but only {restored} of its {} \
                             data entries were selected: the other tables would come back empty, so \
                             nothing was changed; restore all of it, or the chosen tables into a new \
                             database (--create)",
                            self.data_entries
                        ),
                    ));
                }
                sqlx::query("COMMIT")
                    .execute(&mut c)
                    .await
                    .map_err(|e| target_err(e, "COMMIT of the restore failed"))?;
                if self.target.analyze {
                    sqlx::query("ANALYZE")
                        .execute(&mut c)
                        .await
                        .map_err(|e| target_err(e, "ANALYZE failed"))?;
                }
                let _ = c.close().await;
            }
            Mode::Parallel { pool, .. } => {
                if self.target.analyze {
                    sqlx::query("ANALYZE")
                        .execute(pool)
                        .await
                        .map_err(|e| target_err(e, "ANALYZE failed"))?;
                }
                pool.close().await;
            }
        }
        let mut warnings = self.warnings.lock().expect("lock").clone();
        let cleaned = *self.cleaned.lock().expect("lock");
        if cleaned > 0 {
            warnings.insert(
                0,
                format!("--clean dropped {cleaned} object(s) of the backup that the target had, before restoring them"),
            );
        }
        Ok(RestoreSummary { warnings })
    }

    async fn abort(self: Box<Self>, _error: &Error) -> Result<()> {
        match &self.mode {
            Mode::Atomic(conn) => {
                if let Some(mut c) = conn.lock().await.take() {
                    // Bounded: a connection cancelled mid-COPY may not answer; dropping it makes
                    // the server abort the transaction all the same.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                        let _ = sqlx::query("ROLLBACK").execute(&mut c).await;
                        let _ = c.close().await;
                    })
                    .await;
                }
                Ok(())
            }
            Mode::Parallel { pool, admin } => {
                // A COPY cancelled mid-stream can leave a pooled connection waiting for data, so
                // the pool is never awaited without a bound; dropping the database first
                // (WITH FORCE terminates its sessions) frees every connection at once.
                let close = async {
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(5), pool.close()).await;
                };
                if self.target.keep_on_failure {
                    close.await;
                    return Ok(());
                }
                let mut c = admin
                    .connect()
                    .await
                    .map_err(|e| target_err(e, "cannot connect to drop the failed restore"))?;
                let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(self.target.url.database())
                )))
                .execute(&mut c)
                .await
                .map_err(|e| target_err(e, "cannot drop the database of the failed restore"));
                close.await;
                dropped.map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Projector;

    #[test]
    fn projection_keeps_fields_across_chunk_boundaries() {
        let mut p = Projector {
            keep: vec![0, 2],
            partial: Vec::new(),
        };
        let mut out = Vec::new();
        p.push(b"1\ta\\tb\tx\n2\t", &mut out);
        p.push(b"\\N\ty\n", &mut out);
        assert_eq!(out, b"1\tx\n2\ty\n");
    }
}
