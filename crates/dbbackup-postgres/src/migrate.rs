//! The pre-migration snapshot hook for applications that run `sqlx::migrate::Migrator`.
//!
//! ```no_run
//! # async fn f(sink: std::sync::Arc<dyn dbbackup_core::Sink>, key: dbbackup_core::Key) -> dbbackup_core::Result<()> {
//! use dbbackup_core::{Restore, Zstd};
//! use dbbackup_postgres::{not_migration_table, snapshot_before_migrate, PgTarget};
//!
//! let url = "postgres://app@127.0.0.1/app";
//! let migrator = sqlx::migrate::Migrator::new(std::path::Path::new("./migrations")).await.unwrap();
//! // 1. Before migrating: back up if anything is pending.
//! let backup = snapshot_before_migrate(&migrator, url, sink.clone(), |b| {
//!     b.transform(Zstd::new(3)).encryption(key.clone())
//! })
//! .await?;
//! // 2. Migrate (here: the schema is re-created from scratch by the migrations).
//! let pool = sqlx::PgPool::connect(url).await.unwrap();
//! migrator.run(&pool).await.unwrap();
//! // 3. Restore the old rows into the new schema, matching columns by name.
//! if let Some(b) = backup {
//!     Restore::builder()
//!         .sink(sink)
//!         .key(key)
//!         .backup(dbbackup_core::BackupSelector::Id(b.backup_id().to_owned()))
//!         .target(PgTarget::new(url)?.data_only(true))
//!         .filter(not_migration_table)
//!         .build()?
//!         .run()
//!         .await?;
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use dbbackup_core::{Backup, BackupBuilder, BackupReport, EntryRecord, ErrorKind, Result, Sink};
use sqlx::migrate::Migrator;
use sqlx::{ConnectOptions, Connection};

use crate::config::PgUrl;
use crate::error::pg_error;
use crate::source::PgSource;

/// The table in which sqlx records applied migrations.
pub const MIGRATIONS_TABLE: &str = "public._sqlx_migrations";

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
    let parsed: PgUrl = url.parse()?;
    let mut conn = parsed
        .options
        .connect()
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, &format!("cannot connect to {parsed}")))?;
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, "cannot look for the migrations table"))?;
    let applied: BTreeSet<i64> = if has_table {
        sqlx::query_scalar("SELECT version FROM public._sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read the applied migrations"))?
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
        .source(PgSource::new(url)?)
        .sink(sink)
        .pre_migration(&applied, available)
    else {
        return Ok(None);
    };
    Ok(Some(configure(builder).build()?.run().await?))
}
