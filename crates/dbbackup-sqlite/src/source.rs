//! Backup of a live SQLite database.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use dbbackup_core::{
    EntryData, EntryKind, EntrySpec, Error, ErrorKind, Result, Snapshot, SnapshotSummary, Source,
    SourceInfo,
};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use crate::config::{parse_url, ENGINE};
use crate::entry::{EntryMeta, Format, ENTRY};
use crate::error::sqlite_error;

/// A SQLite database file to back up.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    path: PathBuf,
    temp_dir: Option<PathBuf>,
}

impl SqliteSource {
    /// The database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteSource {
            path: path.into(),
            temp_dir: None,
        }
    }

    /// Where the snapshot copy is made (needs about the database's size in free space).
    pub fn with_temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }
}

impl FromStr for SqliteSource {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self> {
        Ok(SqliteSource::new(parse_url(url)?))
    }
}

/// A private (0600), empty file for `VACUUM INTO` (which writes only into a new or empty file),
/// removed on drop.
fn temp_copy(dir: &Path) -> Result<tempfile::TempPath> {
    tempfile::Builder::new()
        .prefix("dbbackup-sqlite-")
        .suffix(".db")
        .tempfile_in(dir)
        .map(|f| f.into_temp_path())
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot create the snapshot file in {}: {e}", dir.display()),
            )
            .with_source(e)
        })
}

/// Each table's rows in the snapshot copy (just written, so in the page cache).
async fn count_rows(
    copy: &Path,
    tables: &[String],
) -> Result<std::collections::BTreeMap<String, u64>> {
    let mut conn = SqliteConnectOptions::new()
        .filename(copy)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| sqlite_error(e, ErrorKind::Source, "cannot open the snapshot", copy))?;
    let mut rows = std::collections::BTreeMap::new();
    for t in tables {
        let sql = format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\""));
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| sqlite_error(e, ErrorKind::Source, "cannot count the rows of", copy))?;
        rows.insert(t.clone(), n.max(0) as u64);
    }
    let _ = conn.close().await;
    Ok(rows)
}

struct SqliteSnapshot {
    info: SourceInfo,
    copy: std::sync::Arc<tempfile::TempPath>,
    meta: EntryMeta,
}

#[async_trait]
impl Source for SqliteSource {
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        let path = self.path.clone();
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "no SQLite database at {}; check the path in the sqlite:// URL",
                    path.display()
                ),
            ));
        }
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .create_if_missing(false);
        let mut conn = opts.connect().await.map_err(|e| {
            sqlite_error(
                e,
                ErrorKind::Source,
                "cannot open the SQLite database",
                &path,
            )
        })?;
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| sqlite_error(e, ErrorKind::Source, "cannot query", &path))?;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| sqlite_error(e, ErrorKind::Source, "cannot query", &path))?;
        let temp_dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let copy = temp_copy(&temp_dir)?;
        // VACUUM INTO reads the whole database inside one read transaction: a consistent copy,
        // WAL included, while writers carry on.
        sqlx::query("VACUUM INTO ?")
            .bind(copy.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await
            .map_err(|e| sqlite_error(e, ErrorKind::Source, "cannot snapshot", &path))?;
        let tables: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| sqlite_error(e, ErrorKind::Source, "cannot read the schema of", &path))?
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        let _ = conn.close().await;
        let rows = count_rows(&copy, &tables).await?;

        let mut position = std::collections::BTreeMap::new();
        position.insert("journal_mode".to_owned(), journal);
        let info = SourceInfo {
            engine: ENGINE.into(),
            server_version: Some(version),
            database: path.file_name().map(|n| n.to_string_lossy().into_owned()),
            server: Some(path.display().to_string()),
            position,
        };
        Ok(Box::new(SqliteSnapshot {
            info,
            copy: std::sync::Arc::new(copy),
            meta: EntryMeta {
                format: Format::DatabaseFile,
                tables,
                rows,
            },
        }))
    }
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        // The snapshot file is written before it streams: its size is exact.
        let size = std::fs::metadata(&**self.copy).map(|m| m.len()).ok();
        vec![EntrySpec::new(ENTRY, EntryKind::Dump, 0)
            .with_meta_of(&self.meta)
            .with_estimate(size)]
    }

    async fn read(&self, entry: &EntrySpec) -> Result<EntryData> {
        if entry.name != ENTRY {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no entry {:?}", entry.name),
            ));
        }
        let file = tokio::fs::File::open(&*self.copy).await.map_err(|e| {
            Error::new(
                ErrorKind::Source,
                format!("cannot read the snapshot file: {e}"),
            )
        })?;
        // Open, the file stays readable even if the snapshot (and its temporary copy) goes first.
        Ok(EntryData::reader(file, "the snapshot file"))
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        Ok(SnapshotSummary::default())
    }
}
