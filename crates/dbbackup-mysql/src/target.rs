//! Restore: tables and routines, then rows (batched multi-row INSERTs with foreign-key and unique
//! checks off), then views, triggers, events and sequence values.
//!
//! MySQL commits DDL implicitly, so a schema restore cannot be rolled back; instead a restore into
//! an existing database first checks that none of the backup's objects exist there, and refuses
//! (changing nothing) if any do. Into a database it creates (`create(true)`), tables load in
//! parallel and a failure drops the database. A data-only restore into an existing database loads
//! every row in one transaction on one connection, so a failure leaves it unchanged.

use std::collections::BTreeSet;

use async_trait::async_trait;
use dbbackup_core::{
    ByteStream, EntryKind, EntryRecord, Error, ErrorKind, Manifest, RestoreSession, RestoreSummary,
    RestoreTarget, Result,
};
use futures::StreamExt;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlConnection};
use tokio::sync::Mutex;

use crate::config::{MyUrl, ENGINE};
use crate::entry::{EntryMeta, PRE_DATA};
use crate::error::my_error;
use crate::infile::Loader;
use crate::rows::{Literal, RowReader, ServerLimits};
use crate::schema::{ident, Statement};
use crate::source::connect;

/// Rows with more value bytes than this are inserted alone, as bound parameters.
const BIG_ROW: usize = 4 << 20;

const SESSION: &str = "SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'; SET SESSION foreign_key_checks = 0; \
                       SET SESSION unique_checks = 0; SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'";

/// Where and how to restore a MySQL / MariaDB backup.
#[derive(Debug, Clone)]
pub struct MySqlTarget {
    url: MyUrl,
    create: bool,
    keep_on_failure: bool,
    data_only: bool,
    fail_on_dropped_columns: bool,
    clean: bool,
    jobs: usize,
    batch_bytes: usize,
    transaction_bytes: usize,
    tools: crate::dump::Tools,
    local_infile: bool,
    check_redo_log: bool,
}

impl MySqlTarget {
    /// The database at `url`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        Ok(MySqlTarget {
            url: url.parse()?,
            create: false,
            keep_on_failure: false,
            data_only: false,
            fail_on_dropped_columns: false,
            clean: false,
            jobs: 2,
            batch_bytes: 1 << 20,
            transaction_bytes: 32 << 20,
            tools: crate::dump::Tools::from_path(),
            local_infile: true,
            check_redo_log: true,
        })
    }

    /// Where the `mariadb` / `mysql` client is, for backups made by the dump tool.
    pub fn with_tools(mut self, tools: crate::dump::Tools) -> Self {
        self.tools = tools;
        self
    }
    /// Create the database (it must not exist); a failure drops it again.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }
    /// Keep a created database after a failure.
    pub fn keep_on_failure(mut self, yes: bool) -> Self {
        self.keep_on_failure = yes;
        self
    }
    /// Rows only, by column name, into the tables that exist (the pre-migration case).
    pub fn data_only(mut self, yes: bool) -> Self {
        self.data_only = yes;
        self
    }
    /// Fail instead of reporting backed-up columns the target no longer has.
    pub fn fail_on_dropped_columns(mut self, yes: bool) -> Self {
        self.fail_on_dropped_columns = yes;
        self
    }
    /// Into an existing database: first drop the objects of the backup it has (views, triggers,
    /// routines, events, sequences, then the tables in one `DROP TABLE` so foreign keys among
    /// them do not matter; foreign key checks stay on, so a table of the target's own that
    /// references one of them stops the drop). MySQL commits DDL at once: the drops cannot be
    /// rolled back if the restore then fails (the backup still holds the objects).
    pub fn clean(mut self, yes: bool) -> Self {
        self.clean = yes;
        self
    }
    /// Load rows into a created database with `LOAD DATA LOCAL INFILE` when the server allows it
    /// (`local_infile = ON`; default true); otherwise, and into existing databases, rows go in as
    /// multi-row INSERTs.
    pub fn local_infile(mut self, yes: bool) -> Self {
        self.local_infile = yes;
        self
    }
    /// Refuse a row whose values add up to more than a tenth of the target's InnoDB redo log
    /// (default true): InnoDB can stall writing it (MariaDB 10.11 hung here; MySQL documents the
    /// limit). The error says how large a redo log the row needs.
    pub fn check_redo_log(mut self, yes: bool) -> Self {
        self.check_redo_log = yes;
        self
    }

    fn limits(&self, mut read: ServerLimits) -> ServerLimits {
        if !self.check_redo_log {
            read.redo_log = None;
        }
        read
    }

    /// Connections loading tables at once into a created database (default 2).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
}

enum Mode {
    Atomic(Mutex<Option<MySqlConnection>>),
    Parallel(MySqlPool),
}

struct Session {
    target: MySqlTarget,
    mode: Mode,
    warnings: std::sync::Mutex<Vec<String>>,
    /// Secondary indexes left out of CREATE TABLE, built after the rows are in.
    deferred: std::sync::Mutex<Vec<Statement>>,
    /// Data entries (key-range parts) still to load, per table seen so far.
    parts_left: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Loads rows with `LOAD DATA LOCAL INFILE` (into a created database, where the server
    /// allows it).
    infile: Option<Loader>,
    /// What the server takes per row, which rows are checked against.
    limits: ServerLimits,
}

/// Splits the secondary keys out of a `SHOW CREATE TABLE` statement so they can be built in bulk
/// after loading (much faster than maintaining them row by row). Tables with foreign keys keep
/// theirs: a foreign key needs an index from the start.
fn defer_secondary_keys(s: &Statement) -> (Statement, Option<Statement>) {
    if s.kind != "table" || s.sql.contains("FOREIGN KEY") {
        return (s.clone(), None);
    }
    let lines: Vec<&str> = s.sql.lines().collect();
    if lines.len() < 3 {
        return (s.clone(), None);
    }
    let (first, last) = (lines[0], lines[lines.len() - 1]);
    let defs: Vec<&str> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.trim_end_matches(','))
        .collect();
    let is_secondary = |d: &str| {
        let t = d.trim_start();
        t.starts_with("KEY ")
            || t.starts_with("UNIQUE KEY ")
            || t.starts_with("FULLTEXT KEY ")
            || t.starts_with("SPATIAL KEY ")
    };
    let (keys, kept): (Vec<&str>, Vec<&str>) = defs.iter().partition(|d| is_secondary(d));
    if keys.is_empty() || kept.is_empty() {
        return (s.clone(), None);
    }
    let table = first
        .trim_start_matches("CREATE TABLE ")
        .trim_end_matches(" (");
    let create = Statement::new(
        "table",
        &s.name,
        format!("{first}\n{}\n{last}", kept.join(",\n")),
    );
    let adds: Vec<String> = keys.iter().map(|k| format!("ADD {}", k.trim())).collect();
    let alter = Statement::new(
        "secondary indexes",
        &s.name,
        format!("ALTER TABLE {table} {}", adds.join(", ")),
    );
    (create, Some(alter))
}

fn target_err(e: sqlx::Error, what: &str) -> Error {
    my_error(e, ErrorKind::Target, what)
}

async fn existing_objects(c: &mut MySqlConnection, db: &str) -> Result<BTreeSet<String>> {
    let q = "SELECT CONCAT(CASE TABLE_TYPE WHEN 'VIEW' THEN 'view' WHEN 'SEQUENCE' THEN 'sequence' ELSE 'table' END, ':', TABLE_NAME)
               FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?
             UNION ALL SELECT CONCAT(LOWER(ROUTINE_TYPE), ':', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?
             UNION ALL SELECT CONCAT('trigger:', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?
             UNION ALL SELECT CONCAT('event:', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?";
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(q)
        .bind(db)
        .bind(db)
        .bind(db)
        .bind(db)
        .fetch_all(&mut *c)
        .await
        .map_err(|e| target_err(e, "cannot list the target's objects"))?;
    Ok(rows
        .into_iter()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .collect())
}

/// `--clean`: drops the target's objects named `kind:name` (as [`existing_objects`] names them).
async fn drop_objects(c: &mut MySqlConnection, db: &str, objects: &[String]) -> Result<()> {
    let mut tables = Vec::new();
    let mut names = BTreeSet::new();
    let mut first = Vec::new();
    for o in objects {
        let Some((kind, name)) = o.split_once(':') else {
            continue;
        };
        match kind {
            "table" => {
                tables.push(ident(name));
                names.insert(name.to_owned());
            }
            "view" | "trigger" | "procedure" | "function" | "event" | "sequence" => first.push(
                format!("DROP {} IF EXISTS {}", kind.to_uppercase(), ident(name)),
            ),
            _ => {}
        }
    }
    // A table outside the backup referencing one of its tables would stop the DROP half-way
    // (MariaDB drops the tables it can): refused before anything is dropped.
    // (schema, table, constraint, referenced table), as bytes (information_schema's collation).
    type Reference = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
    let refs: Vec<Reference> = sqlx::query_as(
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA = ?",
    )
    .bind(db)
    .fetch_all(&mut *c)
    .await
    .map_err(|e| {
        target_err(
            e,
            "cannot list the foreign keys referencing the target's tables",
        )
    })?;
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let outside: Vec<String> = refs
        .iter()
        .filter(|(s, t, _, r)| {
            names.contains(&text(r)) && (text(s) != db || !names.contains(&text(t)))
        })
        .map(|(s, t, k, r)| {
            format!(
                "{}.{} ({} references {})",
                text(s),
                text(t),
                text(k),
                text(r)
            )
        })
        .collect();
    if !outside.is_empty() {
        return Err(Error::new(
            ErrorKind::Target,
            format!(
                "--clean cannot drop the backup's tables: table(s) the backup does not have reference them: {}; \
                 drop those foreign keys first (nothing was changed)",
                outside.join(", ")
            ),
        ));
    }
    // The tables first, in one statement (foreign keys among them): the drop most likely to be
    // refused (a table of the target's own references one) then changes nothing. Their triggers
    // go with them; views and routines may name a table that is gone for a moment.
    if !tables.is_empty() {
        first.insert(0, format!("DROP TABLE IF EXISTS {}", tables.join(", ")));
    }
    for sql in first {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *c)
            .await
            .map_err(|e| {
                let err = target_err(e, "--clean could not drop the backup's objects");
                Error::new(
                    err.kind(),
                    format!(
                        "{}\n  statement: {sql}\n(MySQL commits each DROP at once: the objects \
                         dropped before this one are gone; the backup still holds them)",
                        err.message()
                    ),
                )
            })?;
    }
    Ok(())
}

#[async_trait]
impl RestoreTarget for MySqlTarget {
    // Long on purpose: the two restore modes (created database with parallel loading, existing database with a clash check) share the connection, limits and loader set-up.
    async fn begin(&self, manifest: &Manifest) -> Result<Box<dyn RestoreSession>> {
        if manifest.source.engine != ENGINE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is a {} backup; restore it into a {} target",
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
        let pre = manifest.entry(PRE_DATA).map(EntryMeta::read).transpose()?;
        if self.create {
            let mut c = self
                .url
                .server()
                .connect()
                .await
                .map_err(|e| target_err(e, &format!("cannot connect to {}", self.url)))?;
            let exists: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            )
            .bind(&db)
            .fetch_optional(&mut c)
            .await
            .map_err(|e| target_err(e, "cannot look up databases"))?;
            if exists.is_some() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("database {db:?} already exists; drop --create to restore into it, or pick a new name (nothing was changed)"),
                ));
            }
            let mut sql = format!("CREATE DATABASE {}", ident(&db));
            if let Some(p) = &pre {
                if let (Some(cs), Some(coll)) = (&p.charset, &p.collation) {
                    sql.push_str(&format!(" CHARACTER SET {cs} COLLATE {coll}"));
                }
            }
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .map_err(|e| target_err(e, &format!("cannot create database {db:?}")))?;
            let _ = c.close().await;
            let pool = MySqlPoolOptions::new()
                .max_connections(self.jobs as u32)
                .after_connect(|c, _| {
                    Box::pin(async move { sqlx::raw_sql(SESSION).execute(c).await.map(|_| ()) })
                })
                .connect_with(self.url.options.clone())
                .await
                .map_err(|e| target_err(e, &format!("cannot connect to {}", self.url)))?;
            let limits = self.limits(ServerLimits::read(&pool).await?);
            let mut infile = None;
            if self.local_infile {
                let on: Option<i64> = sqlx::query_scalar("SELECT @@local_infile + 0")
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| target_err(e, "cannot read @@local_infile"))?;
                if on == Some(1) {
                    // The same session but `unique_checks = 1` (as measured in docs/MYSQL.md):
                    // with 0, MariaDB 10.6+ loads an empty table in its bulk-insert mode, which
                    // takes table locks (mydumper#987).
                    let mut session: Vec<&str> = SESSION.split("; ").collect();
                    session.push("SET SESSION unique_checks = 1");
                    infile = Some(Loader::new(&self.url, &session, self.transaction_bytes));
                    tracing::info!("rows are loaded with LOAD DATA LOCAL INFILE");
                } else {
                    tracing::info!(
                        "the server has local_infile = OFF: rows are loaded as INSERT statements (slower)"
                    );
                }
            } else {
                tracing::info!("local_infile(false): rows are loaded as INSERT statements");
            }
            return Ok(Box::new(Session {
                target: self.clone(),
                mode: Mode::Parallel(pool),
                warnings: Default::default(),
                deferred: Default::default(),
                parts_left: Default::default(),
                infile,
                limits,
            }));
        }
        let mut c = connect(&self.url, ErrorKind::Target, false).await?;
        let mut cleaned = None;
        if !self.data_only {
            let wanted: BTreeSet<String> = pre
                .and_then(|p| p.objects)
                .unwrap_or_default()
                .into_iter()
                .collect();
            let clash: Vec<String> = existing_objects(&mut c, &db)
                .await?
                .intersection(&wanted)
                .cloned()
                .collect();
            if self.clean && !clash.is_empty() {
                drop_objects(&mut c, &db, &clash).await?;
                cleaned = Some(format!(
                    "--clean dropped {} object(s) of the backup that the target had, before restoring them",
                    clash.len()
                ));
            } else if !clash.is_empty() {
                return Err(Error::new(
                    ErrorKind::Target,
                    format!(
                        "database {db:?} already has {} of the backup's objects ({}); MySQL cannot roll back DDL, so \
                         nothing was changed: restore into a new database (--create), or give --clean to drop them first",
                        clash.len(),
                        clash.join(", ")
                    ),
                ));
            }
        }
        sqlx::raw_sql(SESSION)
            .execute(&mut c)
            .await
            .map_err(|e| target_err(e, "cannot set up the session"))?;
        let limits = self.limits(ServerLimits::read(&mut c).await?);
        if self.data_only {
            sqlx::raw_sql("START TRANSACTION")
                .execute(&mut c)
                .await
                .map_err(|e| target_err(e, "START TRANSACTION"))?;
        }
        Ok(Box::new(Session {
            target: self.clone(),
            mode: Mode::Atomic(Mutex::new(Some(c))),
            warnings: std::sync::Mutex::new(cleaned.into_iter().collect()),
            deferred: Default::default(),
            parts_left: Default::default(),
            infile: None,
            limits,
        }))
    }
}

use dbbackup_core::statements::{collect as read_all, decode_statements as parse_statements};

/// The session settings a statement may carry (anything else in a backup is ignored).
const SESSION_SETTINGS: &[&str] = &[
    "sql_mode",
    "character_set_client",
    "collation_connection",
    "time_zone",
];

async fn run(c: &mut MySqlConnection, s: &Statement) -> std::result::Result<(), sqlx::Error> {
    let settings: Vec<(&str, &String)> = SESSION_SETTINGS
        .iter()
        .filter_map(|k| s.session.get(*k).map(|v| (*k, v)))
        .collect();
    // A trigger, routine or event runs under the sql_mode and character set it was created
    // with (as mysqldump replays them): set for the statement, then back to the restore's own.
    for (k, v) in &settings {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET SESSION {k} = ?")))
            .bind(v.as_str())
            .execute(&mut *c)
            .await?;
    }
    let r = sqlx::raw_sql(sqlx::AssertSqlSafe(s.sql.clone()))
        .execute(&mut *c)
        .await
        .map(|_| ());
    if !settings.is_empty() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(SESSION.to_owned()))
            .execute(&mut *c)
            .await?;
    }
    r
}

async fn send(c: &mut MySqlConnection, what: &str, sql: String) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(|e| target_err(e, what))
}

fn stmt_err(e: sqlx::Error, s: &Statement) -> Error {
    let err = target_err(e, &format!("restoring {} {} failed", s.kind, s.name));
    Error::new(
        err.kind(),
        format!("{}\n  statement: {}", err.message(), s.sql),
    )
}

/// A target table's column as information_schema gives it: name, DATA_TYPE, CHARACTER_SET_NAME.
type TargetColumn = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

impl Session {
    // Long on purpose: one table's load: column mapping, the LOAD DATA or INSERT path, and the checks of sent against affected rows share the row reader and the transaction.
    async fn load(
        &self,
        c: &mut MySqlConnection,
        entry: &EntryRecord,
        mut data: ByteStream,
        own_txn: bool,
    ) -> Result<Option<u64>> {
        let meta = EntryMeta::read(entry)?;
        let table = meta.table_name().to_owned();
        let columns: Vec<String> = meta.table.map(|t| t.columns).unwrap_or_default();
        let target_columns: Vec<TargetColumn> = sqlx::query_as(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND EXTRA NOT LIKE '%GENERATED%'",
        )
        .bind(&table)
        .fetch_all(&mut *c)
        .await
        .map_err(|e| target_err(e, &format!("cannot read the columns of {table}")))?;
        if target_columns.is_empty() {
            let msg =
                format!("table {table} no longer exists in the target; its rows were not restored");
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
                    format!("table {table} does not exist in the target; restore the schema too")
                },
            ));
        }
        // For each backed-up column, the target's DATA_TYPE and character set (None: dropped).
        let lossy = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let targets: Vec<Option<(String, Option<String>)>> = columns
            .iter()
            .map(|name| {
                target_columns
                    .iter()
                    .find(|(n, _, _)| lossy(n) == *name)
                    .map(|(_, t, cs)| (lossy(t), cs.as_deref().map(lossy)))
            })
            .collect();
        let keep: Vec<usize> = (0..columns.len())
            .filter(|&i| targets[i].is_some())
            .collect();
        let dropped: Vec<&str> = (0..columns.len())
            .filter(|&i| targets[i].is_none())
            .map(|i| columns[i].as_str())
            .collect();
        if !dropped.is_empty() {
            let msg = format!("table {table}: backed-up column(s) {} no longer exist in the target; their values were not restored", dropped.join(", "));
            if self.target.fail_on_dropped_columns {
                return Err(Error::new(ErrorKind::Target, msg));
            }
            self.warnings.lock().expect("lock").push(msg);
        }
        let mut reader = RowReader::checked(self.limits, &table);
        if let (Some(loader), Mode::Parallel(_)) = (&self.infile, &self.mode) {
            let types: Vec<String> = targets
                .iter()
                .map(|t| t.as_ref().map(|(ty, _)| ty.clone()).unwrap_or_default())
                .collect();
            let rows = loader
                .load(&table, &columns, &keep, &types, &mut reader, &mut data)
                .await?;
            return Ok(Some(rows));
        }
        let literals: Vec<Literal> = targets
            .iter()
            .map(|t| match t {
                Some((ty, cs)) => Literal::for_column(ty, cs.as_deref()),
                None => Literal::Binary,
            })
            .collect();
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            ident(&table),
            keep.iter()
                .map(|&i| ident(&columns[i]))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let what = format!("loading rows into {table} failed");
        let mut stmt = String::new();
        let mut in_txn = 0usize;
        let mut rows = 0u64;
        if own_txn {
            send(&mut *c, &what, "START TRANSACTION".into()).await?;
        }
        // A statement stays under the server's max_allowed_packet: literals can double a
        // value (hex), so a row over a quarter of it goes alone as bound parameters, and a batch
        // stops at half of it.
        let packet = self.limits.max_packet.unwrap_or(u64::MAX) as usize;
        let big_row = BIG_ROW.min(packet / 4);
        let batch_bytes = self.target.batch_bytes.min(packet / 2);
        let result: Result<()> = async {
            while let Some(chunk) = data.next().await {
                reader.buf.extend_from_slice(&chunk?);
                while let Some(vals) = reader.next_row(columns.len())? {
                    let row_bytes: usize =
                        keep.iter().filter_map(|&k| vals[k].map(|(_, l)| l)).sum();
                    if row_bytes > big_row {
                        // A huge value goes as a bound parameter: no hex doubling, and no batch
                        // around it (the server still needs max_allowed_packet above its size).
                        if !stmt.is_empty() {
                            send(&mut *c, &what, std::mem::take(&mut stmt)).await?;
                        }
                        let marks = vec!["?"; keep.len()].join(", ");
                        let sql = format!("{}({marks})", head);
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for &k in &keep {
                            q = q.bind(vals[k].map(|(p, l)| reader.buf[p..p + l].to_vec()));
                        }
                        q.execute(&mut *c).await.map_err(|e| target_err(e, &what))?;
                        rows += 1;
                        continue;
                    }
                    stmt.push_str(if stmt.is_empty() { &head } else { "," });
                    stmt.push('(');
                    for (n, &k) in keep.iter().enumerate() {
                        if n > 0 {
                            stmt.push(',');
                        }
                        match vals[k] {
                            None => stmt.push_str("NULL"),
                            Some((p, len)) => literals[k].push(&mut stmt, &reader.buf[p..p + len]),
                        }
                    }
                    stmt.push(')');
                    rows += 1;
                    if stmt.len() >= batch_bytes {
                        in_txn += stmt.len();
                        send(&mut *c, &what, std::mem::take(&mut stmt)).await?;
                        if own_txn && in_txn >= self.target.transaction_bytes {
                            send(&mut *c, &what, "COMMIT".into()).await?;
                            send(&mut *c, &what, "START TRANSACTION".into()).await?;
                            in_txn = 0;
                        }
                    }
                }
                reader.compact();
            }
            if reader.buf.len() > reader.pos {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("row data of {table} ends in the middle of a row"),
                ));
            }
            if !stmt.is_empty() {
                send(&mut *c, &what, std::mem::take(&mut stmt)).await?;
            }
            if own_txn {
                send(&mut *c, &what, "COMMIT".into()).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            if own_txn {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *c).await;
            }
            return Err(e);
        }
        Ok(Some(rows))
    }

    /// Builds a table's deferred secondary indexes as soon as its last part is loaded, so that
    /// the build (one server thread) overlaps the loading of other tables instead of waiting for
    /// all of them. Indexes of tables without data entries are built with the post-data.
    async fn index_when_loaded(&self, c: &mut MySqlConnection, entry: &EntryRecord) -> Result<()> {
        let meta = EntryMeta::read(entry)?;
        let table = meta.table_name();
        let parts = meta.part.map_or(1, |(_, n)| n);
        let complete = {
            let mut left = self.parts_left.lock().expect("lock");
            let n = left.entry(table.to_owned()).or_insert(parts);
            *n = n.saturating_sub(1);
            *n == 0
        };
        if !complete {
            return Ok(());
        }
        let mine: Vec<Statement> = {
            let mut deferred = self.deferred.lock().expect("lock");
            let (mine, rest) = std::mem::take(&mut *deferred)
                .into_iter()
                .partition(|s| s.name == table);
            *deferred = rest;
            mine
        };
        for s in &mine {
            run(c, s).await.map_err(|e| stmt_err(e, s))?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        c: &mut MySqlConnection,
        entry: &EntryRecord,
        data: ByteStream,
        own_txn: bool,
    ) -> Result<Option<u64>> {
        match entry.kind {
            EntryKind::PreData => {
                let stmts = parse_statements(&read_all(data).await?)?;
                if !self.target.data_only {
                    for s in &stmts {
                        let (create, later) = defer_secondary_keys(s);
                        run(c, &create).await.map_err(|e| stmt_err(e, &create))?;
                        if let Some(l) = later {
                            self.deferred.lock().expect("lock").push(l);
                        }
                    }
                }
                Ok(None)
            }
            EntryKind::PostData => {
                let mut stmts = parse_statements(&read_all(data).await?)?;
                if self.target.data_only {
                    stmts.retain(|s| s.kind == "sequence value");
                }
                let deferred: Vec<Statement> =
                    std::mem::take(&mut *self.deferred.lock().expect("lock"));
                for s in &deferred {
                    run(c, s).await.map_err(|e| stmt_err(e, s))?;
                }
                // A view over a view needs the other first: retry until no progress.
                let mut pending = stmts;
                loop {
                    let mut failed = Vec::new();
                    let mut last = None;
                    let before = pending.len();
                    for s in pending {
                        if let Err(e) = run(c, &s).await {
                            if s.kind == "view" {
                                last = Some(stmt_err(e, &s));
                                failed.push(s);
                            } else {
                                return Err(stmt_err(e, &s));
                            }
                        }
                    }
                    if failed.is_empty() {
                        break;
                    }
                    if failed.len() == before {
                        return Err(last.expect("a failure"));
                    }
                    pending = failed;
                }
                Ok(None)
            }
            EntryKind::Data => {
                let rows = self.load(c, entry, data, own_txn).await?;
                self.index_when_loaded(c, entry).await?;
                Ok(rows)
            }
            EntryKind::Dump => {
                crate::dump::client_restore(&self.target.url, &self.target.tools, data).await?;
                Ok(None)
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!("entry {} is not a native MySQL entry", entry.name),
            )),
        }
    }
}

#[async_trait]
impl RestoreSession for Session {
    async fn restore_entry(&self, entry: &EntryRecord, data: ByteStream) -> Result<Option<u64>> {
        match &self.mode {
            Mode::Atomic(conn) => {
                let mut g = conn.lock().await;
                let c = g.as_mut().ok_or_else(|| {
                    Error::new(ErrorKind::Internal, "the restore connection is gone")
                })?;
                // Data-only: one transaction for everything (opened in begin); otherwise bounded ones.
                let own = !self.target.data_only;
                self.apply(c, entry, data, own).await
            }
            Mode::Parallel(pool) => {
                let mut c = pool
                    .acquire()
                    .await
                    .map_err(|e| target_err(e, "cannot get a connection"))?;
                self.apply(&mut c, entry, data, true).await
            }
        }
    }

    async fn finish(self: Box<Self>) -> Result<RestoreSummary> {
        match &self.mode {
            Mode::Atomic(conn) => {
                if let Some(mut c) = conn.lock().await.take() {
                    if self.target.data_only {
                        sqlx::raw_sql("COMMIT")
                            .execute(&mut c)
                            .await
                            .map_err(|e| target_err(e, "COMMIT of the restore failed"))?;
                    }
                    let _ = c.close().await;
                }
            }
            Mode::Parallel(pool) => pool.close().await,
        }
        if let Some(l) = &self.infile {
            l.close().await;
        }
        Ok(RestoreSummary {
            warnings: self.warnings.lock().expect("lock").clone(),
        })
    }

    async fn abort(self: Box<Self>, _error: &Error) -> Result<()> {
        match &self.mode {
            Mode::Atomic(conn) => {
                if let Some(mut c) = conn.lock().await.take() {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut c).await;
                        let _ = c.close().await;
                    })
                    .await;
                }
                Ok(())
            }
            Mode::Parallel(pool) => {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    pool.close().await;
                    if let Some(l) = &self.infile {
                        l.close().await;
                    }
                })
                .await;
                if self.target.keep_on_failure {
                    return Ok(());
                }
                let mut c = self
                    .target
                    .url
                    .server()
                    .connect()
                    .await
                    .map_err(|e| target_err(e, "cannot connect to drop the failed restore"))?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {}",
                    ident(self.target.url.database())
                )))
                .execute(&mut c)
                .await
                .map_err(|e| target_err(e, "cannot drop the database of the failed restore"))?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secondary_keys_are_split_out() {
        let s = Statement::new(
            "table",
            "t",
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `k` (`k`),\n  UNIQUE KEY `u` (`k`,`id`)\n) ENGINE=InnoDB",
        );
        let (create, alter) = defer_secondary_keys(&s);
        assert_eq!(
            create.sql,
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
        );
        assert_eq!(
            alter.unwrap().sql,
            "ALTER TABLE `t` ADD KEY `k` (`k`), ADD UNIQUE KEY `u` (`k`,`id`)"
        );
        let fk = Statement::new("table", "c", "CREATE TABLE `c` (\n  `p` int,\n  KEY `p` (`p`),\n  CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `x` (`id`)\n) ENGINE=InnoDB");
        assert!(defer_secondary_keys(&fk).1.is_none());
    }
}
