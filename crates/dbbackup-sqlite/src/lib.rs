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
//! failed restore leaves no file at the target path.
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
pub use scratch::SqliteScratch;
pub use source::SqliteSource;
pub use target::SqliteTarget;

mod config;
mod entry;
mod error;
mod scratch;
mod source;
mod target;
