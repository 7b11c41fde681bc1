//! The pre-migration snapshot hook for applications that run `sqlx::migrate::Migrator` on SQLite,
//! as `dbbackup_postgres::snapshot_before_migrate` is for PostgreSQL: back up when migrations are
//! pending, then (after the migrations re-created the schema) restore the old rows with
//! `SqliteTarget::data_only(true).exclude_tables([MIGRATIONS_TABLE])`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use dbbackup_core::{Backup, BackupBuilder, BackupReport, ErrorKind, Result, Sink};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::error::sqlite_error;
use crate::source::SqliteSource;

/// The table in which sqlx records applied migrations (in the database itself).
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// When `migrator` has migrations not yet applied to the database at `path`, takes a backup
/// labelled `reason=pre-migration`, `migration.current` (newest applied version, or `none`) and
/// `migration.target` (newest pending version), and returns it. Returns `None` when nothing is
/// pending. `configure` adds transforms, encryption, labels, ...
///
/// # Errors
/// The backup's errors; [`ErrorKind::Source`] when the database or its migrations table cannot
/// be read.
pub async fn snapshot_before_migrate(
    migrator: &Migrator,
    path: impl Into<PathBuf>,
    sink: Arc<dyn Sink>,
    configure: impl FnOnce(BackupBuilder) -> BackupBuilder,
) -> Result<Option<BackupReport>> {
    let path = path.into();
    let err = |doing: &'static str| {
        let path = path.clone();
        move |e| sqlite_error(e, ErrorKind::Source, doing, &path)
    };
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .read_only(true)
        .connect()
        .await
        .map_err(err("cannot open"))?;
    let has_table: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1")
            .bind(MIGRATIONS_TABLE)
            .fetch_one(&mut conn)
            .await
            .map_err(err("cannot look for the migrations table in"))?;
    let applied: BTreeSet<i64> = if has_table > 0 {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await
            .map_err(err("cannot read the applied migrations of"))?
            .into_iter()
            .collect()
    } else {
        BTreeSet::new()
    };
    let _ = conn.close().await;
    let available = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version);
    let Some(builder) = Backup::builder()
        .source(SqliteSource::new(path))
        .sink(sink)
        .pre_migration(&applied, available)
    else {
        return Ok(None);
    };
    Ok(Some(configure(builder).build()?.run().await?))
}
