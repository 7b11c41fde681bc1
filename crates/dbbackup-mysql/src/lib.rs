//! # dbbackup-mysql
//!
//! MySQL 8 and MariaDB 10.6+ as a dbbackup engine, in pure Rust on sqlx (tested here on MariaDB
//! 10.11 only).
//!
//! **Backup** ([`MySqlSource`]): commits are blocked for a moment (MariaDB `BACKUP STAGE
//! BLOCK_COMMIT`, MySQL `FLUSH TABLES WITH READ LOCK`, waiting at most the lock timeout) while
//! every worker opens `START TRANSACTION WITH CONSISTENT SNAPSHOT` and the binlog position and
//! GTID set are read; the lock is released at once. `no_lock(true)` takes no lock (one connection;
//! consistent for InnoDB tables). The schema comes from `SHOW CREATE` (tables with their
//! AUTO_INCREMENT counters, sequences, routines, views, triggers, events; definers stripped unless
//! kept); rows are streamed per table in the `mysql-rows-v1` format, which keeps every value's
//! exact bytes (see `docs/MYSQL.md`).
//!
//! **Restore** ([`MySqlTarget`]): into a created database (`create(true)`) with parallel loading
//! (`LOAD DATA LOCAL INFILE` on `mysql_async` connections where the server allows it, which sqlx
//! cannot do; multi-row INSERTs otherwise) and DROP DATABASE on failure, or into an existing one after checking that none of the backup's
//! objects exist there; `data_only(true)` loads rows by column name in one transaction.
//!
//! ```no_run
//! # async fn f() -> dbbackup_core::Result<()> {
//! use dbbackup_core::{Backup, BackupSelector, Key, Restore, Zstd};
//! use dbbackup_mysql::{Filter, MySqlSource, MySqlTarget};
//!
//! let repo = dbbackup_storage::open_sink("/var/backups/shop")?;
//! let key = Key::passphrase("correct horse battery staple");
//! Backup::builder()
//!     .source(
//!         MySqlSource::new("mysql://backup@db.internal/shop?ssl-mode=VERIFY_IDENTITY")?
//!             .with_jobs(4)
//!             .with_filter(Filter { exclude_tables: vec!["sessions".into()], ..Filter::default() }),
//!     )
//!     .sink(repo.clone())
//!     .transform(Zstd::new(3))
//!     .encryption(key.clone())
//!     .build()?
//!     .run()
//!     .await?;
//! Restore::builder()
//!     .sink(repo)
//!     .backup(BackupSelector::Latest)
//!     .key(key)
//!     .target(MySqlTarget::new("mysql://admin@db.internal/shop_copy")?.create(true).with_jobs(4))
//!     .build()?
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```

pub use binlog_archive::{
    archive_end, binlog_window, parse_piece, piece_name, replay_binlog, unneeded_pieces,
    BinlogEvent, BinlogListener, BinlogStreamer, BinlogWindow, ReplayReport, ReplayStop,
    BINLOG_ARCHIVE,
};
pub use config::{redact, Filter, MyUrl, SslMode, ENGINE};
pub use dump::{MyDumpSource, Tools};
pub use error::my_error;
pub use migrate::{not_migration_table, snapshot_before_migrate, MIGRATIONS_TABLE};
pub use schema::{ident, strip_definer, Statement};
pub use scratch::MySqlScratch;
pub use source::MySqlSource;
pub use target::MySqlTarget;

mod binlog_archive;
mod config;
mod dump;
mod entry;
mod error;
mod infile;
mod migrate;
mod rows;
mod schema;
mod scratch;
mod source;
mod target;

/// The server of the unit tests that need one: `DBBACKUP_MYSQL_URL` (as the integration tests),
/// default `mysql://root@127.0.0.1:3306`, without a trailing slash.
#[cfg(test)]
fn test_server() -> String {
    std::env::var("DBBACKUP_MYSQL_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}
