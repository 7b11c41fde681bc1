//! The pre-migration snapshot hook for applications that run `sqlx::migrate::Migrator` on MySQL /
//! MariaDB, as `dbbackup_postgres::snapshot_before_migrate` is for PostgreSQL: back up when
//! migrations are pending, then (after the migrations re-created the schema) restore the old
//! rows with `MySqlTarget::data_only(true)` and [`not_migration_table`].

use std::collections::BTreeSet;
use std::sync::Arc;

use dbbackup_core::{Backup, BackupBuilder, BackupReport, EntryRecord, ErrorKind, Result, Sink};
use sqlx::migrate::Migrator;
use sqlx::{ConnectOptions, Connection};

use crate::config::MyUrl;
use crate::error::my_error;
use crate::source::MySqlSource;

/// The table in which sqlx records applied migrations (in the database itself).
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// A restore filter that leaves sqlx's bookkeeping table alone (the new schema has its own rows).
pub fn not_migration_table(entry: &EntryRecord) -> bool {
    entry.table().as_deref() != Some(MIGRATIONS_TABLE)
}

/// When `migrator` has migrations not yet applied to the database at `url`, takes a backup
/// labelled `reason=pre-migration`, `migration.current` (newest applied version, or `none`) and
/// `migration.target` (newest pending version), and returns it. Returns `None` when nothing is
/// pending. `configure` adds transforms, encryption, labels, ...
///
/// # Errors
/// The backup's errors; [`ErrorKind::Source`] when the migrations table cannot be read.
pub async fn snapshot_before_migrate(
    migrator: &Migrator,
    url: &str,
    sink: Arc<dyn Sink>,
    configure: impl FnOnce(BackupBuilder) -> BackupBuilder,
) -> Result<Option<BackupReport>> {
    let parsed: MyUrl = url.parse()?;
    let mut conn = parsed
        .options
        .connect()
        .await
        .map_err(|e| my_error(e, ErrorKind::Source, &format!("cannot connect to {parsed}")))?;
    let has_table: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_one(&mut conn)
    .await
    .map_err(|e| my_error(e, ErrorKind::Source, "cannot look for the migrations table"))?;
    let applied: BTreeSet<i64> = if has_table > 0 {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| my_error(e, ErrorKind::Source, "cannot read the applied migrations"))?
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
        .source(MySqlSource::new(url)?)
        .sink(sink)
        .pre_migration(&applied, available)
    else {
        return Ok(None);
    };
    Ok(Some(configure(builder).build()?.run().await?))
}
