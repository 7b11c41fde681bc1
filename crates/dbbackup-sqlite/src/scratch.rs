//! Restore tests on SQLite: each scratch database is a new file in a private temporary
//! directory, removed afterwards.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dbbackup_core::{
    CheckResult, Error, ErrorKind, Manifest, RestoreTarget, Result, ScratchDatabase, ScratchServer,
    TableRef,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row};

use crate::config::ENGINE;
use crate::entry::{EntryMeta, ENTRY};
use crate::error::sqlite_error;
use crate::target::SqliteTarget;

/// Scratch SQLite files for restore tests, in `dir` (default: the system temp dir).
#[derive(Debug, Clone, Default)]
pub struct SqliteScratch {
    dir: Option<PathBuf>,
}

impl SqliteScratch {
    /// Scratch files in the system temp dir.
    pub fn new() -> Self {
        SqliteScratch::default()
    }

    /// Scratch files under `dir` (needs about the database's size in free space).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        SqliteScratch {
            dir: Some(dir.into()),
        }
    }
}

struct ScratchFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

#[async_trait]
impl ScratchServer for SqliteScratch {
    fn describe(&self) -> String {
        format!(
            "a temporary file in {}",
            self.dir
                .clone()
                .unwrap_or_else(std::env::temp_dir)
                .display()
        )
    }

    async fn create(&self, manifest: &Manifest) -> Result<Box<dyn ScratchDatabase>> {
        if manifest.source.engine != ENGINE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                "backup {} is a {} backup; a SQLite scratch file cannot test it (give --scratch \
                 a {}:// server)",
                manifest.backup_id, manifest.source.engine, manifest.source.engine
            ),
            ));
        }
        let parent = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("dbbackup-restore-test-")
            .tempdir_in(&parent)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!(
                        "cannot create a scratch directory in {}: {e}",
                        parent.display()
                    ),
                )
            })?;
        let path = dir.path().join("restored.db");
        Ok(Box::new(ScratchFile { dir, path }))
    }
}

impl ScratchFile {
    async fn connect(&self) -> Result<SqliteConnection> {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .read_only(true)
            .create_if_missing(false)
            .connect()
            .await
            .map_err(|e| sqlite_error(e, ErrorKind::Target, "cannot open", &self.path))
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl ScratchDatabase for ScratchFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn target(&self) -> Arc<dyn RestoreTarget> {
        Arc::new(SqliteTarget::new(self.path.clone()))
    }

    async fn count_rows(&self, table: &TableRef) -> Result<u64> {
        let mut c = self.connect().await?;
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            quote(&table.name)
        )))
        .fetch_one(&mut c)
        .await
        .map_err(|e| sqlite_error(e, ErrorKind::Target, "cannot count the rows of", &self.path))?;
        Ok(n.max(0) as u64)
    }

    async fn integrity(&self, manifest: &Manifest) -> Result<Vec<CheckResult>> {
        let mut c = self.connect().await?;
        let mut out = Vec::new();
        // The file's own row counts, recorded from the snapshot at backup time.
        if let Some(meta) = manifest
            .entry(ENTRY)
            .and_then(|e| e.meta_of::<EntryMeta>().ok())
        {
            for (table, want) in &meta.rows {
                let name = format!("rows {table}");
                let got: std::result::Result<i64, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                    format!("SELECT count(*) FROM {}", quote(table)),
                ))
                .fetch_one(&mut c)
                .await;
                out.push(match got {
                    Ok(n) if n as u64 == *want => CheckResult::passed(
                        name,
                        format!("{n} row{}", if n == 1 { "" } else { "s" }),
                    ),
                    Ok(n) => CheckResult::failed(
                        name,
                        format!("{n} rows restored, {want} recorded at backup time"),
                    ),
                    Err(e) => CheckResult::failed(name, format!("cannot count: {e}")),
                });
            }
        }
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut c)
            .await
            .map_err(|e| {
                sqlite_error(
                    e,
                    ErrorKind::Target,
                    "integrity_check failed on",
                    &self.path,
                )
            })?;
        out.push(if rows == ["ok"] {
            CheckResult::passed("integrity", "PRAGMA integrity_check: ok")
        } else {
            CheckResult::failed(
                "integrity",
                format!("PRAGMA integrity_check: {}", rows.join("; ")),
            )
        });
        let fk: Vec<SqliteRow> = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut c)
            .await
            .map_err(|e| {
                sqlite_error(
                    e,
                    ErrorKind::Target,
                    "foreign_key_check failed on",
                    &self.path,
                )
            })?;
        out.push(if fk.is_empty() {
            CheckResult::passed("foreign keys", "PRAGMA foreign_key_check: no violations")
        } else {
            let tables: std::collections::BTreeSet<String> =
                fk.iter().map(|r| r.get::<String, _>(0)).collect();
            CheckResult::failed(
                "foreign keys",
                format!(
                    "PRAGMA foreign_key_check: {} violation(s) in {}",
                    fk.len(),
                    tables.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )
        });
        let _ = c.close().await;
        Ok(out)
    }

    async fn query_is_true(&self, sql: &str) -> Result<bool> {
        let mut c = self.connect().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_optional(&mut c)
            .await
            .map_err(|e| Error::new(ErrorKind::Target, format!("the check failed: {e}")))?;
        let _ = c.close().await;
        let row = row.ok_or_else(dbbackup_core::check_returned_no_row)?;
        if let Ok(v) = row.try_get::<i64, _>(0) {
            return Ok(v != 0);
        }
        if let Ok(v) = row.try_get::<bool, _>(0) {
            return Ok(v);
        }
        Err(dbbackup_core::check_not_a_truth_value())
    }

    async fn drop_database(self: Box<Self>) -> Result<()> {
        let ScratchFile { dir, .. } = *self;
        let shown = dir.path().display().to_string();
        dir.close().map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot remove the scratch directory {shown}: {e}"),
            )
        })
    }
}
