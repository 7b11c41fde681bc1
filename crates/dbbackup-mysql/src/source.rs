//! Consistent parallel backup.
//!
//! Row format `mysql-rows-v1` (see `docs/MYSQL.md`): for every row, for every column in the
//! entry's `columns` order, `0x00` for NULL or `0x01, LEB128 length, bytes`. The bytes are the
//! server's text-protocol value with `character_set_results = binary` (no conversion) and the
//! session time zone at UTC; FLOAT columns are read as `CAST(.. AS DOUBLE)`, which round-trips
//! every float exactly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dbbackup_core::{
    EntryData, EntryKind, EntrySpec, Error, ErrorKind, Result, RowCounter, Snapshot,
    SnapshotSummary, Source, SourceInfo, TableRef,
};
use futures::StreamExt;
use sqlx::mysql::MySqlRow;
use sqlx::{ConnectOptions, Connection, MySqlConnection, Row};
use tokio::sync::{mpsc, Mutex};

use crate::config::{Filter, MyUrl, ENGINE};
use crate::entry::{EntryMeta, Format, POST_DATA, PRE_DATA};
use crate::error::my_error;
use crate::rows::encode_row;
use crate::schema::{self, ident, Catalog, SplitKey, Statement};

const COALESCE: usize = 256 * 1024;

/// A MySQL or MariaDB database to back up, natively.
#[derive(Debug, Clone)]
pub struct MySqlSource {
    url: MyUrl,
    filter: Filter,
    jobs: usize,
    lock_timeout: Duration,
    no_lock: bool,
    keep_definers: bool,
    schema_only: bool,
    data_only: bool,
    split_bytes: i64,
}

/// Tables above this size (256 MiB of data) whose primary key starts with an integer column are
/// read by every worker at once, each a range of that column.
const SPLIT_BYTES: i64 = 256 << 20;

impl MySqlSource {
    /// The database at `url` (`mysql://user:pass@host:3306/db`, or `mariadb://`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        Ok(MySqlSource {
            url: url.parse()?,
            filter: Filter::default(),
            jobs: 2,
            lock_timeout: Duration::from_secs(10),
            no_lock: false,
            keep_definers: false,
            schema_only: false,
            data_only: false,
            split_bytes: SPLIT_BYTES,
        })
    }

    /// Tables with more data than this (bytes, `information_schema.TABLES.DATA_LENGTH`) and a
    /// primary key starting with an integer column are split into one range of that column per
    /// worker (default 256 MiB; `i64::MAX` turns splitting off). Each range is its own entry;
    /// together they hold every row.
    pub fn with_split_bytes(mut self, bytes: i64) -> Self {
        self.split_bytes = bytes.max(1);
        self
    }
    /// Worker connections (default 2).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
    /// Which tables.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }
    /// How long to wait for the brief backup lock before giving up (default 10 s).
    pub fn with_lock_timeout(mut self, t: Duration) -> Self {
        self.lock_timeout = t;
        self
    }
    /// Take no lock: one connection, one consistent snapshot (consistent for InnoDB tables only;
    /// no binlog position unless the server reports the snapshot's).
    pub fn no_lock(mut self, yes: bool) -> Self {
        self.no_lock = yes;
        self
    }
    /// Keep `DEFINER=` clauses (default: stripped, so a restore runs as the restoring user).
    pub fn keep_definers(mut self, yes: bool) -> Self {
        self.keep_definers = yes;
        self
    }
    /// Schema only.
    pub fn schema_only(mut self, yes: bool) -> Self {
        self.schema_only = yes;
        self
    }
    /// Rows only.
    pub fn data_only(mut self, yes: bool) -> Self {
        self.data_only = yes;
        self
    }
}

/// A session at UTC. `binary`: results carry each column's own bytes, unconverted (for reading
/// rows); otherwise utf8mb4 (for DDL, whose literals must keep their characters).
pub(crate) async fn connect(url: &MyUrl, kind: ErrorKind, binary: bool) -> Result<MySqlConnection> {
    let mut c = url
        .options
        .connect()
        .await
        .map_err(|e| my_error(e, kind, &format!("cannot connect to {url}")))?;
    let setup = if binary {
        "SET NAMES utf8mb4; SET SESSION character_set_results = binary; SET SESSION time_zone = '+00:00'"
    } else {
        "SET NAMES utf8mb4; SET SESSION time_zone = '+00:00'"
    };
    sqlx::raw_sql(setup)
        .execute(&mut c)
        .await
        .map_err(|e| my_error(e, kind, "cannot set up the session"))?;
    Ok(c)
}

async fn exec(c: &mut MySqlConnection, sql: &'static str, what: &str) -> Result<()> {
    sqlx::raw_sql(sql)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(|e| my_error(e, ErrorKind::Source, what))
}

/// A new connection inside its own consistent-snapshot, read-only transaction.
async fn snapshot_connection(url: &MyUrl) -> Result<MySqlConnection> {
    let mut w = connect(url, ErrorKind::Source, true).await?;
    exec(
        &mut w,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "isolation level",
    )
    .await?;
    exec(
        &mut w,
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        "cannot start a snapshot transaction",
    )
    .await?;
    Ok(w)
}

struct MySnapshot {
    info: SourceInfo,
    catalog: Catalog,
    db: String,
    workers_tx: mpsc::Sender<MySqlConnection>,
    workers_rx: Arc<Mutex<mpsc::Receiver<MySqlConnection>>>,
    schema_only: bool,
    data_only: bool,
    /// Key-range conditions of split tables, by table name.
    splits: std::collections::HashMap<String, Vec<String>>,
}

#[async_trait]
impl Source for MySqlSource {
    // Long on purpose: the snapshot protocol (lock, open every worker's consistent snapshot, read the binlog position, unlock) must stay in one place: the lock is held across all of it and released on every path.
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        let mut coord = connect(&self.url, ErrorKind::Source, false).await?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut coord)
            .await
            .map_err(|e| my_error(e, ErrorKind::Source, "cannot read the server version"))?;
        let version = String::from_utf8_lossy(version.as_bytes()).into_owned();
        let mariadb = version.to_ascii_lowercase().contains("mariadb");
        let jobs = if self.no_lock { 1 } else { self.jobs };
        let mut position = BTreeMap::new();
        let mut workers = Vec::new();
        let mut warnings = Vec::new();
        if !self.url.is_local() {
            let cipher: Option<(String, String)> =
                sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                    .fetch_optional(&mut coord)
                    .await
                    .ok()
                    .flatten();
            if cipher.is_none_or(|(_, c)| c.is_empty()) {
                warnings.push(format!(
                    "the connection to {} is not encrypted (TLS was not used): the data crossed \
                     the network in plaintext; require TLS with ?ssl-mode=VERIFY_IDENTITY (or \
                     REQUIRED)",
                    self.url.options.get_host()
                ));
            }
        }

        if self.no_lock {
            let mut w = snapshot_connection(&self.url).await?;
            if mariadb {
                // MariaDB reports the binlog position of a consistent snapshot without any lock.
                let rows = sqlx::query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                    .fetch_all(&mut w)
                    .await
                    .unwrap_or_default();
                for r in rows {
                    // Recorded under the same keys as the locked path's SHOW MASTER STATUS.
                    let key = match lossy(&r, 0).to_ascii_lowercase().as_str() {
                        "binlog_snapshot_file" => "binlog_file",
                        "binlog_snapshot_position" => "binlog_position",
                        _ => continue,
                    };
                    let v = lossy(&r, 1);
                    if !v.is_empty() {
                        position.insert(key.to_owned(), v);
                    }
                }
            }
            warnings.push(
                "taken without a lock (no-lock mode): consistent for InnoDB tables only".to_owned(),
            );
            workers.push(w);
        } else {
            let secs = self.lock_timeout.as_secs().max(1);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SET SESSION lock_wait_timeout = {secs}"
            )))
            .execute(&mut coord)
            .await
            .map_err(|e| my_error(e, ErrorKind::Source, "cannot set lock_wait_timeout"))?;
            let lock: &[&'static str] = if mariadb {
                &["BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"]
            } else {
                &["FLUSH TABLES WITH READ LOCK"]
            };
            for stmt in lock {
                let fut = sqlx::raw_sql(*stmt).execute(&mut coord);
                match tokio::time::timeout(self.lock_timeout + Duration::from_secs(2), fut).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        return Err(my_error(
                            e,
                            ErrorKind::Source,
                            &format!(
                                "could not take the brief backup lock ({stmt}) within {secs} s: a long-running \
                                 query or transaction holds it; retry later, raise the lock timeout, or use the no-lock mode"
                            ),
                        ))
                    }
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::Source,
                            format!("could not take the brief backup lock ({stmt}) within {secs} s; retry later or use the no-lock mode"),
                        ))
                    }
                }
            }
            let result: Result<()> = async {
                match sqlx::query("SHOW MASTER STATUS")
                    .fetch_optional(&mut coord)
                    .await
                {
                    Ok(Some(r)) => {
                        position.insert("binlog_file".into(), lossy(&r, 0));
                        // An unsigned BIGINT in the binary protocol, not text.
                        let offset = r
                            .try_get::<u64, _>(1)
                            .map(|p| p.to_string())
                            .unwrap_or_else(|_| lossy(&r, 1));
                        position.insert("binlog_position".into(), offset);
                    }
                    Ok(None) => {} // The binary log is off.
                    Err(e) => warnings.push(format!(
                        "the binlog position was not recorded (SHOW MASTER STATUS failed: {e}); \
                         grant the backup user BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL)"
                    )),
                }
                let gtid_sql = if mariadb {
                    "SELECT @@GLOBAL.gtid_binlog_pos"
                } else {
                    "SELECT @@GLOBAL.gtid_executed"
                };
                if let Ok(r) = sqlx::query(gtid_sql).fetch_one(&mut coord).await {
                    let g = lossy(&r, 0);
                    if !g.is_empty() {
                        position.insert("gtid".into(), g);
                    }
                }
                for _ in 0..jobs {
                    workers.push(snapshot_connection(&self.url).await?);
                }
                Ok(())
            }
            .await;
            // Released at once, whatever happened.
            let unlock = if mariadb {
                "BACKUP STAGE END"
            } else {
                "UNLOCK TABLES"
            };
            let _ = sqlx::raw_sql(unlock).execute(&mut coord).await;
            result?;
        }
        if position.is_empty() {
            position.insert("binlog".into(), "disabled".into());
        }
        let mut catalog = schema::read(
            &mut coord,
            self.url.database(),
            &self.filter,
            self.keep_definers,
        )
        .await?;
        catalog.warnings.extend(warnings);
        let _ = coord.close().await;

        // Key ranges of big tables, read inside the snapshot so they describe the same rows.
        let mut splits = std::collections::HashMap::new();
        if jobs > 1 && !self.schema_only {
            if let Some(w) = workers.first_mut() {
                for t in &catalog.tables {
                    let Some(key) = &t.split_key else { continue };
                    if t.data_bytes <= self.split_bytes {
                        continue;
                    }
                    let ranges = split_ranges(w, self.url.database(), t, key, jobs).await?;
                    if ranges.len() > 1 {
                        splits.insert(t.name.clone(), ranges);
                    }
                }
            }
        }
        let (tx, rx) = mpsc::channel(jobs);
        for w in workers {
            tx.send(w).await.expect("room for every worker");
        }
        Ok(Box::new(MySnapshot {
            info: SourceInfo {
                engine: ENGINE.into(),
                server_version: Some(version),
                database: Some(self.url.database().to_owned()),
                server: dbbackup_core::url_server(&self.url.redacted),
                position,
            },
            catalog,
            db: self.url.database().to_owned(),
            workers_tx: tx,
            workers_rx: Arc::new(Mutex::new(rx)),
            schema_only: self.schema_only,
            data_only: self.data_only,
            splits,
        }))
    }
}

/// The conditions splitting table `t` into about `parts` ranges of `key`, read on `w` (inside
/// the snapshot, so they describe the rows the workers see). One empty condition: no split.
async fn split_ranges(
    w: &mut MySqlConnection,
    db: &str,
    t: &schema::TableData,
    key: &SplitKey,
    parts: usize,
) -> Result<Vec<String>> {
    let k = ident(key.column());
    let table = format!("{}.{}", ident(db), ident(&t.name));
    let what = format!("the key range of {}", t.name);
    let bounds = match key {
        SplitKey::Integer(_) => {
            let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(
                format!("SELECT CAST(MIN({k}) AS SIGNED), CAST(MAX({k}) AS SIGNED) FROM {table}"),
            ))
            .fetch_one(&mut *w)
            .await
            .map_err(|e| my_error(e, ErrorKind::Source, &what))?;
            match (lo, hi) {
                (Some(lo), Some(hi)) => integer_bounds(lo, hi, parts)
                    .into_iter()
                    .map(|b| b.to_string())
                    .collect(),
                _ => Vec::new(),
            }
        }
        SplitKey::Text { .. } | SplitKey::Binary(_) | SplitKey::Plain(_) => {
            // The values at evenly spaced offsets of the key's order (the estimate of the row
            // count only places them: any boundaries split correctly).
            let rows = t.estimated_rows.max(0) as u64;
            let mut bounds: Vec<Vec<u8>> = Vec::new();
            for i in 1..parts as u64 {
                let offset = rows * i / parts as u64;
                if offset == 0 {
                    continue;
                }
                // The text protocol (raw_sql), so the value comes as the server prints it.
                let row = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SELECT {k} FROM {table} ORDER BY {k} LIMIT 1 OFFSET {offset}"
                )))
                .fetch_optional(&mut *w)
                .await
                .map_err(|e| my_error(e, ErrorKind::Source, &what))?;
                let v =
                    row.and_then(|r| r.try_get_unchecked::<Option<Vec<u8>>, _>(0).ok().flatten());
                match v {
                    Some(v) if bounds.last() != Some(&v) => bounds.push(v),
                    _ => {}
                }
            }
            bounds.iter().map(|v| key.literal(v)).collect()
        }
    };
    Ok(key_ranges(&k, &bounds))
}

/// `lo + span * i / parts` for `i` in `1..parts`: the inner bounds of `parts` equal ranges
/// of `[lo, hi]` (fewer when the span is smaller).
fn integer_bounds(lo: i64, hi: i64, parts: usize) -> Vec<i64> {
    let span = (hi as i128 - lo as i128 + 1).max(1);
    let parts = (parts as i128).min(span).max(1);
    (1..parts)
        .map(|i| (lo as i128 + span * i / parts) as i64)
        .collect()
}

/// The conditions on `key` cut at `bounds` (ascending): below the first, between each pair,
/// from the last on. Every value satisfies exactly one of them.
fn key_ranges(key: &str, bounds: &[String]) -> Vec<String> {
    if bounds.is_empty() {
        return vec![String::new()];
    }
    let mut out = vec![format!("{key} < {}", bounds[0])];
    for pair in bounds.windows(2) {
        out.push(format!("{key} >= {} AND {key} < {}", pair[0], pair[1]));
    }
    out.push(format!("{key} >= {}", bounds[bounds.len() - 1]));
    out
}

fn lossy(r: &MySqlRow, i: usize) -> String {
    r.try_get_unchecked::<Option<Vec<u8>>, _>(i)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

use dbbackup_core::statements::{
    channel_stream, encode_statements as statements_bytes, once, BlockSender,
};

#[async_trait]
impl Snapshot for MySnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        let mut out = Vec::new();
        let objects: Vec<String> = self
            .catalog
            .pre_data
            .iter()
            .chain(&self.catalog.post_data)
            .map(|s| format!("{}:{}", s.kind, s.name))
            .collect();
        if !self.data_only {
            let meta = EntryMeta {
                charset: Some(self.catalog.charset.0.clone()),
                collation: Some(self.catalog.charset.1.clone()),
                objects: Some(objects),
                ..EntryMeta::of(Format::Statements)
            };
            out.push(EntrySpec::new(PRE_DATA, EntryKind::PreData, 0).with_meta_of(&meta));
        }
        if !self.schema_only {
            let mut tables = self.catalog.tables.clone();
            tables.sort_by(|a, b| {
                b.estimated_rows
                    .cmp(&a.estimated_rows)
                    .then(a.name.cmp(&b.name))
            });
            for t in tables {
                let meta = EntryMeta {
                    table: Some(TableRef {
                        schema: None,
                        name: t.name.clone(),
                        table: t.name.clone(),
                        columns: t.columns.clone(),
                    }),
                    ..EntryMeta::of(Format::Rows)
                };
                // DATA_LENGTH: the clustered index (InnoDB) or data file, close to the rows' size.
                let estimate =
                    |parts: usize| Some((t.data_bytes.max(0) as u64).div_ceil(parts as u64));
                match self.splits.get(&t.name) {
                    Some(ranges) => {
                        for (i, cond) in ranges.iter().enumerate() {
                            let m = EntryMeta {
                                part: Some((i as u64 + 1, ranges.len() as u64)),
                                range: Some(cond.clone()),
                                ..meta.clone()
                            };
                            out.push(
                                EntrySpec::new(
                                    format!("data/{}#{}", t.name, i + 1),
                                    EntryKind::Data,
                                    1,
                                )
                                .with_meta_of(&m)
                                .with_estimate(estimate(ranges.len())),
                            );
                        }
                    }
                    None => out.push(
                        EntrySpec::new(format!("data/{}", t.name), EntryKind::Data, 1)
                            .with_meta_of(&meta)
                            .with_estimate(estimate(1)),
                    ),
                }
            }
        }
        let post: Vec<&Statement> = self
            .catalog
            .post_data
            .iter()
            .filter(|s| !self.data_only || s.kind == "sequence value")
            .collect();
        if !post.is_empty() || !self.data_only {
            out.push(
                EntrySpec::new(POST_DATA, EntryKind::PostData, 2)
                    .with_meta_of(&EntryMeta::of(Format::Statements)),
            );
        }
        out
    }

    async fn read(&self, entry: &EntrySpec) -> Result<EntryData> {
        if entry.name == PRE_DATA || entry.name == POST_DATA {
            let stmts: Vec<Statement> = if entry.name == PRE_DATA {
                self.catalog.pre_data.clone()
            } else {
                self.catalog
                    .post_data
                    .iter()
                    .filter(|s| !self.data_only || s.kind == "sequence value")
                    .cloned()
                    .collect()
            };
            let b = statements_bytes(&stmts);
            return Ok(EntryData::bytes(once(b)));
        }
        let meta: EntryMeta = entry.meta_of()?;
        let table = self
            .catalog
            .tables
            .iter()
            .find(|t| t.name == meta.table_name())
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("no table for entry {}", entry.name),
                )
            })?;
        let cols: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                if table.float_columns.contains(c) {
                    format!("CAST({} AS DOUBLE)", ident(c))
                } else {
                    ident(c)
                }
            })
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {}.{}",
            cols.join(", "),
            ident(&self.db),
            ident(&table.name)
        );
        // A key range of a split table: the condition comes from our own split, never from
        // the entry's metadata.
        if let Some((part, _)) = meta.part {
            let cond = self
                .splits
                .get(&table.name)
                .and_then(|r| r.get(part as usize - 1))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("no key range for entry {}", entry.name),
                    )
                })?;
            sql.push_str(&format!(" WHERE {cond}"));
        }
        let ncols = table.columns.len();
        let mut conn = self
            .workers_rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| Error::new(ErrorKind::Internal, "the worker pool is closed"))?;
        let back = self.workers_tx.clone();
        let rows = RowCounter::new();
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(4);
        let mut sender = BlockSender::new(tx, rows.clone(), COALESCE);
        let what = format!("reading table {} failed", table.name);
        tokio::spawn(async move {
            let result: Result<()> = async {
                let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch(&mut conn);
                while let Some(row) = stream.next().await {
                    let row = row.map_err(|e| my_error(e, ErrorKind::Source, &what))?;
                    encode_row(&row, ncols, sender.buffer())?;
                    sender.row_done().await?;
                }
                drop(stream);
                sender.flush().await
            }
            .await;
            match result {
                Ok(()) => {
                    let _ = back.send(conn).await;
                }
                Err(e) => sender.fail(e).await,
            }
        });
        Ok(EntryData {
            stream: channel_stream(rx),
            rows: Some(rows),
        })
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        drop(self.workers_tx);
        let mut rx = self.workers_rx.lock().await;
        rx.close();
        while let Ok(mut w) = rx.try_recv() {
            let _ = sqlx::raw_sql("COMMIT").execute(&mut w).await;
            let _ = w.close().await;
        }
        Ok(SnapshotSummary {
            warnings: self.catalog.warnings.clone(),
            omitted: Vec::new(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{integer_bounds, key_ranges};

    #[test]
    fn key_ranges_cover_everything_once() {
        let ints = |k: &str, lo, hi, parts| {
            let b: Vec<String> = integer_bounds(lo, hi, parts)
                .iter()
                .map(|b| b.to_string())
                .collect();
            key_ranges(k, &b)
        };
        assert_eq!(ints("`id`", 1, 100, 1), vec![String::new()]);
        assert_eq!(
            ints("`id`", 1, 100, 3),
            vec!["`id` < 34", "`id` >= 34 AND `id` < 67", "`id` >= 67"]
        );
        assert_eq!(ints("`id`", 5, 5, 4), vec![String::new()]);
        let r = ints("k", i64::MIN, i64::MAX, 4);
        assert_eq!(r.len(), 4);
        assert!(r[0].starts_with("k < ") && r[3].starts_with("k >= "));
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            let hits = r
                .iter()
                .filter(|c| {
                    c.split(" AND ").all(|p| {
                        let (op, n) = if let Some(n) = p.strip_prefix("k < ") {
                            ("<", n)
                        } else {
                            (">=", p.strip_prefix("k >= ").unwrap())
                        };
                        let n: i64 = n.parse().unwrap();
                        if op == "<" {
                            v < n
                        } else {
                            v >= n
                        }
                    })
                })
                .count();
            assert_eq!(hits, 1, "{v} in {r:?}");
        }
    }
}
