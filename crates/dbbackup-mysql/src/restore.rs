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
use crate::error::my_error;
use crate::infile::Loader;
use crate::schema::{ident, Statement};
use crate::source::{connect, PRE_DATA};

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

/// What the target server takes per row, read once per restore.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ServerLimits {
    /// InnoDB's redo log in bytes: `innodb_redo_log_capacity` (MySQL 8.0.30+), else
    /// `innodb_log_file_size` times `innodb_log_files_in_group` (one file on MariaDB 10.5+).
    pub(crate) redo_log: Option<u64>,
    /// `max_allowed_packet` of new connections.
    pub(crate) max_packet: Option<u64>,
}

impl ServerLimits {
    pub(crate) async fn read<'c, E>(c: E) -> Result<ServerLimits>
    where
        E: sqlx::Executor<'c, Database = sqlx::MySql>,
    {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('max_allowed_packet', \
             'innodb_redo_log_capacity', 'innodb_log_file_size', 'innodb_log_files_in_group')",
        )
        .fetch_all(c)
        .await
        .map_err(|e| {
            target_err(
                e,
                "cannot read the server's max_allowed_packet and redo log size",
            )
        })?;
        let get = |name: &str| {
            rows.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        Ok(ServerLimits {
            redo_log: get("innodb_redo_log_capacity").or_else(|| {
                get("innodb_log_file_size")
                    .map(|s| s * get("innodb_log_files_in_group").unwrap_or(1))
            }),
            max_packet: get("max_allowed_packet"),
        })
    }

    /// The most value bytes a row may hold: [`refuse`](Self::refuse) has an error for more.
    fn max_row(&self) -> u64 {
        let packet = self
            .max_packet
            .map_or(u64::MAX, |p| p.saturating_sub(64 << 10));
        let redo = self.redo_log.map_or(u64::MAX, |r| r / 10);
        packet.min(redo)
    }

    /// The error for a row of `table` holding `row_bytes` of values that the server would not
    /// take (over `max_allowed_packet`) or could stall on (over a tenth of the redo log: InnoDB
    /// writes a row's off-page values while holding its page, and a redo log that fills up
    /// meanwhile cannot be checkpointed; MySQL documents the limit, MariaDB 10.11 hung here).
    fn refuse(&self, table: &str, row_bytes: u64) -> Option<Error> {
        // Room for the statement or LOAD DATA line around the values.
        let packet_room = self.max_packet.map(|p| p.saturating_sub(64 << 10));
        let msg = if packet_room.is_some_and(|room| row_bytes > room) {
            let want = whole_mib(row_bytes.saturating_add(1 << 20));
            format!(
                "table {table}: a row holds {} of values, more than the target server's \
                 max_allowed_packet ({}) lets through; raise it to at least {} (SET GLOBAL \
                 max_allowed_packet = {want}; up to 1 GiB) and run the restore again",
                mib(row_bytes),
                mib(self.max_packet.unwrap_or_default()),
                mib(want),
            )
        } else if self
            .redo_log
            .is_some_and(|r| row_bytes.saturating_mul(10) > r)
        {
            let want = whole_mib(row_bytes.saturating_mul(10));
            format!(
                "table {table}: a row holds {} of values, over a tenth of the target server's {} InnoDB \
                 redo log, which can stall the server while the row is written; give the server a redo \
                 log of at least {} (MariaDB 10.9+: SET GLOBAL innodb_log_file_size = {want}; MySQL \
                 8.0.30+: SET GLOBAL innodb_redo_log_capacity = {want}) and run the restore again",
                mib(row_bytes),
                mib(self.redo_log.unwrap_or_default()),
                mib(want),
            )
        } else {
            return None;
        };
        Some(Error::new(ErrorKind::Target, msg))
    }
}

#[async_trait]
impl RestoreTarget for MySqlTarget {
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
        let pre = manifest.entry(PRE_DATA);
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
            if let Some(p) = pre {
                if let (Some(cs), Some(coll)) =
                    (p.meta["charset"].as_str(), p.meta["collation"].as_str())
                {
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
        if !self.data_only {
            let wanted: BTreeSet<String> = pre
                .and_then(|p| p.meta["objects"].as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|o| o.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let clash: Vec<String> = existing_objects(&mut c, &db)
                .await?
                .intersection(&wanted)
                .cloned()
                .collect();
            if !clash.is_empty() {
                return Err(Error::new(
                    ErrorKind::Target,
                    format!(
                        "database {db:?} already has {} of the backup's objects ({}); MySQL cannot roll back DDL, so \
                         nothing was changed: restore into a new database (--create) or drop them first",
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
            warnings: Default::default(),
            deferred: Default::default(),
            parts_left: Default::default(),
            infile: None,
            limits,
        }))
    }
}

use dbbackup_core::statements::{collect as read_all, decode_statements as parse_statements};

async fn run(c: &mut MySqlConnection, s: &Statement) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(s.sql.clone()))
        .execute(c)
        .await
        .map(|_| ())
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

/// How a column's values are written into INSERT statements, from the target column's type: the
/// cheapest literal the server parses back to exactly the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    /// An integer, DECIMAL or floating-point column: a bare number (what the text protocol gave).
    Number,
    /// A utf8mb4 / utf8mb3 column (the connection's own character set), or a date or time: a
    /// plain string literal.
    Text,
    /// Anything else (binary, BLOB, BIT, latin1, ...): `_binary'...'` keeps the exact bytes.
    Binary,
}

impl Literal {
    fn for_column(data_type: &str, charset: Option<&str>) -> Literal {
        match (data_type.to_ascii_lowercase().as_str(), charset) {
            (
                "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "float"
                | "double",
                _,
            ) => Literal::Number,
            ("date" | "datetime" | "timestamp" | "time", _)
            | (_, Some("utf8mb4" | "utf8mb3" | "utf8")) => Literal::Text,
            _ => Literal::Binary,
        }
    }

    /// Appends `v`; a value that does not fit the column's kind (text restored into a column a
    /// migration made numeric, say) falls back to `_binary'...'`, which the server converts.
    fn push(self, out: &mut String, v: &[u8]) {
        match self {
            Literal::Number if is_number(v) => {
                out.push_str(std::str::from_utf8(v).expect("ASCII digits"))
            }
            Literal::Text => match std::str::from_utf8(v) {
                Ok(text) => push_quoted(out, text),
                Err(_) => push_binary_literal(out, v),
            },
            _ => push_binary_literal(out, v),
        }
    }
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`): a number literal as the server prints one.
fn is_number(v: &[u8]) -> bool {
    let digits = |v: &[u8], i: &mut usize| {
        let start = *i;
        while *i < v.len() && v[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut i = 0;
    if matches!(v.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut n = digits(v, &mut i);
    if v.get(i) == Some(&b'.') {
        i += 1;
        n += digits(v, &mut i);
    }
    if n == 0 {
        return false;
    }
    if matches!(v.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(v.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(v, &mut i) == 0 {
            return false;
        }
    }
    i == v.len()
}

/// Appends `'text'`, escaped as the server's client library does.
fn push_quoted(out: &mut String, text: &str) {
    out.push('\'');
    let mut from = 0;
    for (i, b) in text.bytes().enumerate() {
        let esc = match b {
            0 => "\\0",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\\' => "\\\\",
            b'\'' => "\\'",
            b'"' => "\\\"",
            0x1a => "\\Z",
            _ => continue,
        };
        // Escaped bytes are ASCII, so the slices between them are whole characters.
        out.push_str(&text[from..i]);
        out.push_str(esc);
        from = i + 1;
    }
    out.push_str(&text[from..]);
    out.push('\'');
}

/// Appends `v` as a literal of the binary character set: `_binary'...'` when `v` is valid UTF-8
/// (about half the size of hex), otherwise a hex literal (SQL text must be UTF-8 on this
/// connection).
fn push_binary_literal(out: &mut String, v: &[u8]) {
    match std::str::from_utf8(v) {
        Ok(text) => {
            out.push_str("_binary");
            push_quoted(out, text);
        }
        Err(_) => {
            out.push_str("X'");
            out.push_str(&hex::encode(v));
            out.push('\'');
        }
    }
}

/// A target table's column as information_schema gives it: name, DATA_TYPE, CHARACTER_SET_NAME.
type TargetColumn = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// One decoded row: for each column, NULL or the (offset, length) of its bytes in the buffer.
type RowSpans = Vec<Option<(usize, usize)>>;

/// Incremental decoder of `mysql-rows-v1`.
#[derive(Default)]
pub(crate) struct RowReader {
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    /// The limits rows are checked against, their table and the most value bytes a row may hold.
    limits: Option<(ServerLimits, String, u64)>,
}

/// `bytes` rounded up to whole MiB (a corrupt length must not overflow).
fn whole_mib(bytes: u64) -> u64 {
    bytes.checked_next_multiple_of(1 << 20).unwrap_or(u64::MAX)
}

/// A MiB figure for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

impl RowReader {
    /// A reader that refuses a row of `table` the server would not take or could stall on
    /// ([`ServerLimits::refuse`]), as soon as its value lengths are read.
    pub(crate) fn checked(limits: ServerLimits, table: &str) -> Self {
        RowReader {
            limits: Some((limits, table.to_owned(), limits.max_row())),
            ..Default::default()
        }
    }

    fn too_big(&self, row_bytes: u64) -> Option<Error> {
        match &self.limits {
            Some((limits, table, max)) if row_bytes > *max => limits.refuse(table, row_bytes),
            _ => None,
        }
    }

    /// Decodes one row of `n` values if the buffer holds all of it.
    pub(crate) fn next_row(&mut self, n: usize) -> Result<Option<RowSpans>> {
        let mut p = self.pos;
        let mut out = Vec::with_capacity(n);
        let mut row_bytes = 0u64;
        for _ in 0..n {
            let Some(&tag) = self.buf.get(p) else {
                return Ok(None);
            };
            p += 1;
            match tag {
                0 => out.push(None),
                1 => {
                    let mut len = 0usize;
                    let mut shift = 0;
                    loop {
                        let Some(&b) = self.buf.get(p) else {
                            return Ok(None);
                        };
                        p += 1;
                        len |= ((b & 0x7f) as usize) << shift;
                        shift += 7;
                        if b & 0x80 == 0 {
                            break;
                        }
                        if shift > 63 {
                            return Err(Error::new(
                                ErrorKind::Corrupt,
                                "bad value length in row data",
                            ));
                        }
                    }
                    row_bytes = row_bytes.saturating_add(len as u64);
                    if let Some(e) = self.too_big(row_bytes) {
                        return Err(e);
                    }
                    if self.buf.len() < p + len {
                        return Ok(None);
                    }
                    out.push(Some((p, len)));
                    p += len;
                }
                _ => return Err(Error::new(ErrorKind::Corrupt, "bad value tag in row data")),
            }
        }
        self.pos = p;
        Ok(Some(out))
    }

    pub(crate) fn compact(&mut self) {
        self.buf.drain(..self.pos);
        self.pos = 0;
    }
}

impl Session {
    async fn load(
        &self,
        c: &mut MySqlConnection,
        entry: &EntryRecord,
        mut data: ByteStream,
        own_txn: bool,
    ) -> Result<Option<u64>> {
        let table = entry.meta["name"].as_str().unwrap_or_default().to_owned();
        let columns: Vec<String> = entry.meta["columns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let target_columns: Vec<TargetColumn> = sqlx::query_as(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME FROM information_schema.COLUMNS
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND EXTRA NOT LIKE '%GENERATED%'",
        )
        .bind(&table)
        .fetch_all(&mut *c)
        .await
        .map_err(|e| target_err(e, &format!("cannot read the columns of {table}")))?;
        if target_columns.is_empty() {
            return Err(Error::new(
                ErrorKind::Target,
                format!("table {table} does not exist in the target; restore the schema too"),
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
        let table = entry.meta["name"].as_str().unwrap_or_default();
        let parts = entry.meta["part"][1].as_u64().unwrap_or(1);
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

    /// `mysql-rows-v1` bytes of one row of non-NULL values.
    fn row(values: &[&[u8]]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        for v in values {
            crate::source::push_value(&mut out, Some(v));
        }
        out.to_vec()
    }

    #[test]
    fn rows_over_the_packet_or_a_tenth_of_the_redo_log_are_refused_before_their_bytes_arrive() {
        let ok = row(&[&[b'a'; 400], &[b'b'; 600]]);
        let big = row(&[&[b'a'; 400], &[b'b'; 601]]);
        let limits = ServerLimits {
            redo_log: Some(10_000),
            max_packet: None,
        };
        let mut r = RowReader::checked(limits, "t");
        r.buf.extend_from_slice(&ok);
        assert_eq!(r.next_row(2).unwrap().unwrap().len(), 2);
        // Only the big row's lengths are here, not its bytes: refused already.
        r.buf.extend_from_slice(&big[..(1 + 2 + 400) + (1 + 2)]);
        let e = r.next_row(2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Target);
        let msg = e.to_string();
        assert!(msg.contains("table t: a row holds 0.0 MiB"), "{msg}");
        assert!(msg.contains("innodb_log_file_size = 1048576"), "{msg}");
        // A row the server's max_allowed_packet would not let through.
        let limits = ServerLimits {
            redo_log: None,
            max_packet: Some(1 << 20),
        };
        let mut r = RowReader::checked(limits, "t");
        r.buf
            .extend_from_slice(&row(&[&vec![b'x'; (1 << 20) - (64 << 10)]]));
        assert!(r.next_row(1).unwrap().is_some());
        r.buf
            .extend_from_slice(&row(&[&vec![b'x'; (1 << 20) - (64 << 10) + 1]]));
        let msg = r.next_row(1).unwrap_err().to_string();
        assert!(
            msg.contains("SET GLOBAL max_allowed_packet = 2097152"),
            "{msg}"
        );
        // Unchecked, the same row passes.
        let mut r = RowReader::checked(ServerLimits::default(), "t");
        r.buf.extend_from_slice(&big);
        assert_eq!(r.next_row(2).unwrap().unwrap().len(), 2);
        // A corrupt length near u64::MAX is refused, not an overflow.
        let mut r = RowReader::checked(limits, "t");
        r.buf
            .extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(r.next_row(1).unwrap_err().kind(), ErrorKind::Target);
    }

    /// Needs the MariaDB / MySQL of the integration tests (`DBBACKUP_MYSQL_URL`, default
    /// 127.0.0.1:3306).
    #[tokio::test]
    async fn the_limits_are_the_servers() {
        use sqlx::Connection;
        let mut c = MySqlConnection::connect(&format!("{}/mysql", crate::test_server()))
            .await
            .unwrap();
        // MariaDB 10.5+ has one redo log file; MySQL 8.0.30+ a capacity.
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        let sql = if version.contains("MariaDB") {
            "SELECT @@innodb_log_file_size + 0"
        } else {
            "SELECT @@innodb_redo_log_capacity + 0"
        };
        let want: u64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
        assert!(want >= 1 << 20);
        let packet: u64 = sqlx::query_scalar("SELECT @@GLOBAL.max_allowed_packet + 0")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(
            ServerLimits::read(&mut c).await.unwrap(),
            ServerLimits {
                redo_log: Some(want),
                max_packet: Some(packet)
            }
        );
    }

    #[test]
    fn values_are_written_as_the_cheapest_exact_literal() {
        let lit = |l: Literal, v: &[u8]| {
            let mut s = String::new();
            l.push(&mut s, v);
            s
        };
        for n in [
            "0",
            "-12",
            "+3",
            "1.50",
            ".5",
            "5.",
            "-1.7976931348623157e308",
            "1E-7",
        ] {
            assert_eq!(lit(Literal::Number, n.as_bytes()), n);
        }
        // Not a number (a column a migration made numeric): the server converts the string.
        for v in ["", "-", "1e", "e5", "1.2.3", "0x10", "1 ", "abc"] {
            assert_eq!(lit(Literal::Number, v.as_bytes()), format!("_binary'{v}'"));
        }
        assert_eq!(
            lit(Literal::Text, "it's \\ \"ü\" 😀\n\0\r\u{1a}".as_bytes()),
            "'it\\'s \\\\ \\\"ü\\\" 😀\\n\\0\\r\\Z'"
        );
        assert_eq!(lit(Literal::Text, b"\xff\x00"), "X'ff00'");
        assert_eq!(lit(Literal::Binary, b"a'b"), "_binary'a\\'b'");
        assert_eq!(Literal::for_column("BIGINT", None), Literal::Number);
        assert_eq!(Literal::for_column("year", None), Literal::Binary);
        assert_eq!(Literal::for_column("bit", None), Literal::Binary);
        assert_eq!(
            Literal::for_column("varchar", Some("utf8mb4")),
            Literal::Text
        );
        assert_eq!(
            Literal::for_column("varchar", Some("latin1")),
            Literal::Binary
        );
    }

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
