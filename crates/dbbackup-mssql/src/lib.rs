//! # dbbackup-mssql
//!
//! SQL Server as a dbbackup engine, over TDS with [tiberius](https://docs.rs/tiberius) (sqlx has
//! no SQL Server driver).
//!
//! **What was verified, and where.** No SQL Server runs where this crate is developed and tested.
//! Everything below is tested without one: statement generation (golden strings and a T-SQL lexer
//! proptest over hostile names), the value format (proptests), and the whole network path —
//! login, batches, typed result sets including PLP values, bulk insert, server errors, lost
//! connections, and the server-backup and logical sources and targets — against a TDS test server on
//! 127.0.0.1 ([`testing`], feature `testing`) that plays the server's side as SQL Server documents
//! it. Integration tests against a real server (logical and server backup → restore → compare)
//! exist and run when `DBBACKUP_MSSQL_URL` is set; **they have not been run against a real SQL
//! Server yet.** The catalog queries, `msdb` queries and `RESTORE FILELISTONLY` column names are
//! written from Microsoft's documentation and have only met the test server.
//!
//! * **Server backups** (`server-backup`) ([`ServerBackupSource`], [`ServerBackupTarget`]): `BACKUP DATABASE` (full,
//!   differential) and `BACKUP LOG` written into a directory the server and this process share,
//!   streamed through the pipeline (compression, encryption, any sink); LSNs from
//!   `msdb.dbo.backupset` in the manifest; the parent of a differential or log backup found in
//!   the repository by LSN so retention keeps chains whole; progress polled from
//!   `sys.dm_exec_requests.percent_complete` while the server works and reported as
//!   [`Event::ServerProgress`](dbbackup_core::Event::ServerProgress). Restores write the file back
//!   and run `RESTORE DATABASE`/`RESTORE LOG` (`MOVE`, `NORECOVERY`, `STOPAT`, `REPLACE`).
//! * **Statements** ([`BackupDatabase`], [`BackupLog`], [`RestoreDatabase`], [`RestoreLog`],
//!   [`RestoreVerifyOnly`]): typed builders for `BACKUP DATABASE`, `BACKUP LOG`,
//!   `RESTORE DATABASE`, `RESTORE LOG`, `RESTORE VERIFYONLY` (`DISK`/`URL`, `COMPRESSION`,
//!   `CHECKSUM`, `STATS`, `ENCRYPTION`, `COPY_ONLY`, ...), every name and path quoted by
//!   [`ident`] / [`literal`].
//! * **Logical backups** ([`MssqlSource`], [`MssqlTarget`]): user tables from the `sys` catalog
//!   (columns, types, identity, defaults, computed columns, primary/unique keys, indexes, checks,
//!   foreign keys), rows read in one `SNAPSHOT` transaction in the exact `mssql-rows-v1` format
//!   ([`ROW_FORMAT`], [`encode_value`], [`decode_row`]), restored with bulk insert (`KEEP_IDENTITY`, `KEEP_NULLS`) by column name.
//!   `sql_variant` and `rowversion` columns are not backed up and are named in the warnings.
//!
//! A logical backup, and the server's own full backup through a shared directory:
//!
//! ```no_run
//! # async fn f() -> dbbackup_core::Result<()> {
//! use dbbackup_core::{Backup, BackupSelector, Key, Restore, Zstd};
//! use dbbackup_mssql::{
//!     MssqlSource, MssqlTarget, ServerBackupKind, ServerBackupSource, ServerBackupTarget, SharedDir,
//! };
//!
//! let repo = dbbackup_storage::open_sink("/var/backups/shop")?;
//! let key = Key::passphrase("correct horse battery staple");
//! let url = "mssql://backup:secret@db.internal:1433/shop";
//! Backup::builder()
//!     .source(MssqlSource::new(url)?)
//!     .sink(repo.clone())
//!     .transform(Zstd::new(3))
//!     .encryption(key.clone())
//!     .build()?
//!     .run()
//!     .await?;
//! Restore::builder()
//!     .sink(repo.clone())
//!     .backup(BackupSelector::Latest)
//!     .key(key.clone())
//!     .target(MssqlTarget::new("mssql://admin:secret@db.internal:1433/shop_copy")?.create(true))
//!     .build()?
//!     .run()
//!     .await?;
//!
//! // The server writes BACKUP DATABASE into a directory both sides see.
//! let dir = SharedDir::new("/var/opt/mssql/backup", "/mnt/mssql-backup");
//! Backup::builder()
//!     .source(
//!         ServerBackupSource::new(url, dir.clone())?
//!             .kind(ServerBackupKind::Full)
//!             .chain_in(repo.clone()),
//!     )
//!     .sink(repo.clone())
//!     .encryption(key.clone())
//!     .build()?
//!     .run()
//!     .await?;
//! Restore::builder()
//!     .sink(repo)
//!     .backup(BackupSelector::Latest)
//!     .key(key)
//!     .target(ServerBackupTarget::new("mssql://admin:secret@db.internal:1433/shop_copy", dir)?)
//!     .build()?
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Why tiberius: it is the established TDS client for Rust (Prisma's production driver, years of
//! releases), it exposes values in the server's own representation (`Numeric` as i128 + scale,
//! `DateTime2` as days + 100 ns units) so the backup format is exact without a decimal or
//! calendar library, it has bulk insert with `KEEP_IDENTITY`, and with default features off it
//! adds little beyond rustls, which the storage crate already uses. The newer `mssql-client` is
//! still changing its API quickly; its companion `mssql-testing` mock server pulls in
//! testcontainers and an older client, so the test server here is our own, built on the
//! `tds-protocol` codec crate (packet framing, PRELOGIN) — an implementation independent of the
//! client it tests.

pub use config::{redact, MsUrl, ENGINE, SERVER_BACKUP_ENGINE};
pub use conn::{connect_to, exec, rows, MsClient};
pub use dbbackup_core::{Filter, ServerBackupKind, SharedDir};
pub use error::ms_error;
pub use quote::{ident, literal, qualified, MAX_IDENTIFIER};
pub use rows::{decode_row, encode_value, fit, is_null, read_as, select_expr, ReadAs, ROW_FORMAT};
pub use schema::{catalog, create_schema, Column, ForeignKey, Index, KeyColumn, Table};
pub use server_backup::{ServerBackupSource, ServerBackupTarget, ENTRY};
pub use source::MssqlSource;
pub use statement::{
    BackupDatabase, BackupEncryption, BackupKind, BackupLog, Device, EncryptionAlgorithm,
    Encryptor, Recovery, RestoreDatabase, RestoreLog, RestoreVerifyOnly, StopAt,
};
pub use target::MssqlTarget;

mod config;
mod conn;
mod entry;
mod error;
mod quote;
mod rows;
mod schema;
mod server_backup;
mod source;
mod statement;
mod target;
#[cfg(feature = "testing")]
pub mod testing;
