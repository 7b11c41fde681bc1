//! # dbbackup-sqlite
//!
//! SQLite as a dbbackup engine, and the embedded default: no server needed.
//!
//! [`SqliteSource`] takes a consistent snapshot of a live database with `VACUUM INTO` (which reads
//! inside one read transaction, so WAL-mode databases and concurrent writers are handled) into a
//! private temporary file, and streams that file through the pipeline as one entry. The copy is
//! compact (free pages dropped) and byte-exact in content. It needs temporary disk space about the
//! size of the database, in [`SqliteSource::with_temp_dir`] (default: the system temp dir).
//!
//! [`SqliteTarget`] restores to a new file: the bytes go to a temporary file beside the target,
//! which is fsynced, checked with `PRAGMA integrity_check`, and only then linked into place. A
//! failed restore leaves no file at the target path. With [`SqliteTarget::data_only`] the rows of
//! the backup go into the tables of an existing database instead (a schema re-created by
//! migrations), by column name, in one transaction; [`snapshot_before_migrate`] takes the backup
//! before sqlx's `Migrator` runs.
//!
//! ```no_run
//! # async fn f() -> dbbackup_core::Result<()> {
//! use std::sync::Arc;
//! use dbbackup_core::{Backup, Restore, Zstd};
//! use dbbackup_sqlite::{SqliteSource, SqliteTarget};
//!
//! let sink = dbbackup_storage::open_sink("/var/backups/app")?;
//! Backup::builder()
//!     .source(SqliteSource::new("app.db"))
//!     .sink(sink.clone())
//!     .transform(Zstd::new(3))
//!     .build()?
//!     .run()
//!     .await?;
//! Restore::builder().sink(sink).target(SqliteTarget::new("restored.db")).build()?.run().await?;
//! # Ok(()) }
//! ```

pub use config::{parse_url, ENGINE};
pub use error::sqlite_error;
pub use migrate::{snapshot_before_migrate, MIGRATIONS_TABLE};
pub use scratch::SqliteScratch;
pub use source::SqliteSource;
pub use target::SqliteTarget;

mod config;
mod data_only;
mod entry;
mod error;
mod migrate;
mod scratch;
mod source;
mod target;
