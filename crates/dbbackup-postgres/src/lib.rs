//! # dbbackup-postgres
//!
//! PostgreSQL as a dbbackup engine, in pure Rust on sqlx: no client tools needed.
//!
//! **Backup** ([`PgSource`]): one coordinating `REPEATABLE READ, READ ONLY` transaction exports its
//! snapshot (`pg_export_snapshot()`), and every worker connection imports it, so N workers read one
//! consistent state; the LSN and txid snapshot go into the manifest. The schema is read from the
//! catalog with the server's own deparsers into a pre-data entry (schemas, extensions, types,
//! sequences, functions, tables, partitions, views, materialized views) and a post-data entry
//! (keys, indexes, foreign keys, triggers, sequence values, materialized view refreshes, comments).
//! Each table's rows are one entry, copied with `COPY ... TO STDOUT` in **text** format: it is
//! portable across every server version, and it lets a restore into a changed schema load rows by
//! column name and have the server convert types. What is not backed up is named in the
//! backup's warnings.
//!
//! **Restore** ([`PgTarget`]): into an existing database everything runs in one transaction (a
//! failure changes nothing); into a database it creates (`create(true)`) tables load in parallel
//! and a failure drops the database. `data_only(true)` loads old rows into a migrated schema by
//! column name, reporting columns that no longer exist.
//!
//! **pg_dump alternative** ([`PgDumpSource`]): runs `pg_dump --format=custom` and streams its output
//! through the same pipeline; [`PgTarget`] feeds such a backup to `pg_restore --single-transaction`.
//! The tools must exist and be at least the server's major version; a non-zero exit, an error on
//! stderr or an empty dump fails the operation.
//!
//! **Pre-migration hook** ([`snapshot_before_migrate`]): for applications on `sqlx::migrate`, backs
//! up when migrations are pending and labels the backup with the versions (see the `migrate`
//! example in its docs: back up, migrate, restore the old rows into the new schema).
//!
//! ```no_run
//! # async fn f() -> dbbackup_core::Result<()> {
//! use dbbackup_core::{Backup, BackupSelector, Key, Restore, Zstd};
//! use dbbackup_postgres::{Filter, PgSource, PgTarget};
//!
//! let repo = dbbackup_storage::open_sink("/var/backups/shop")?;
//! let key = Key::passphrase("correct horse battery staple");
//! Backup::builder()
//!     .source(
//!         PgSource::new("postgres://backup@db.internal/shop?sslmode=verify-full")?
//!             .with_jobs(4)
//!             .with_filter(Filter { exclude_schemas: vec!["audit".into()], ..Filter::default() }),
//!     )
//!     .sink(repo.clone())
//!     .transform(Zstd::new(3))
//!     .encryption(key.clone())
//!     .build()?
//!     .run()
//!     .await?;
//! // Into a new database, tables loaded in parallel; dropped again if anything fails.
//! Restore::builder()
//!     .sink(repo)
//!     .backup(BackupSelector::Latest)
//!     .key(key)
//!     .target(PgTarget::new("postgres://admin@db.internal/shop_copy")?.create(true).with_jobs(4))
//!     .build()?
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```

pub use config::{glob, redact, Filter, PgUrl, ENGINE};
pub use dump::{PgDumpSource, Tools};
pub use error::pg_error;
pub use migrate::{not_migration_table, snapshot_before_migrate, MIGRATIONS_TABLE};
pub use physical::{
    read_base_manifest, PgBaseBackupSource, PgDataDirTarget, RecoveryTarget, BASE_MANIFEST,
};
pub use schema::{ident, literal, Statement};
pub use scratch::PgScratch;
pub use source::PgSource;
pub use stream::{newest_partial, StreamEvent, StreamListener, WalStreamer};
pub use target::PgTarget;
pub use wal::{Lsn, PathPart, PhysicalBackup, Segment, WalArchive, Window, WAL_ARCHIVE};

mod clean;
mod config;
mod dump;
mod entry;
mod error;
mod large_objects;
mod migrate;
mod physical;
mod schema;
mod scratch;
mod source;
mod stream;
mod target;
pub mod wal;
