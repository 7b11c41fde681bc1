//! # dbbackup
//!
//! Back up and restore SQL databases from Rust: every backup verifiable, streamed in bounded
//! memory, compressed (zstd) and encrypted (AES-256-GCM), stored on a local disk or object storage.
//! This is the one crate an application depends on: it re-exports the core API
//! ([`Backup`], [`Restore`], [`Verify`], [`Repository`], the [`Source`] / [`Transform`] / [`Sink`] /
//! [`RestoreTarget`] / [`RetentionPolicy`] traits), opens sources, restore targets and repositories
//! from URLs ([`source`], [`target`], [`open_sink`]), and has a cargo feature per engine (`sqlite`,
//! `postgres`, `mysql`, `mssql`) and per storage backend (`s3`, `gcs`, `azure`), all on by default.
//!
//! Back up a database to a repository, restore it, and keep the newest backups:
//!
//! ```
//! use dbbackup::{
//!     open_sink, source, target, Backup, BackupSelector, KdfParams, KeepPolicy, Key, Repository,
//!     Restore, SourceOptions, TargetOptions, Zstd,
//! };
//! # use sqlx::{ConnectOptions, Connection};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> dbbackup::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("dbbackup-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let db = dir.join("app.db");
//! # let mut c = sqlx::sqlite::SqliteConnectOptions::new().filename(&db).create_if_missing(true)
//! #     .connect().await.unwrap();
//! # sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b');")
//! #     .execute(&mut c).await.unwrap();
//! # c.close().await.unwrap();
//! # let repo_url = dir.join("repo").display().to_string();
//! # let db_url = format!("sqlite://{}", db.display());
//! # let restored_url = format!("sqlite://{}", dir.join("restored.db").display());
//! let repo = open_sink(&repo_url)?; // a path, file://, s3://bucket/prefix, gs://, az://
//! let key = Key::passphrase("correct horse battery staple");
//!
//! let report = Backup::builder()
//!     .source_arc(source(&db_url, &SourceOptions::default())?)
//!     .sink(repo.clone())
//!     .transform(Zstd::new(3))
//!     .encryption(key.clone())
//!     .kdf_params(KdfParams::minimum()?) // the default is 64 MiB / 3 passes
//!     .label("reason", "doc-example")
//!     .build()?
//!     .run()
//!     .await?;
//!
//! Restore::builder()
//!     .sink(repo.clone())
//!     .backup(BackupSelector::Latest)
//!     .key(key.clone())
//!     .target_arc(target(&restored_url, &TargetOptions::default())?)
//!     .build()?
//!     .run()
//!     .await?;
//!
//! // Keep the newest seven backups of each database; the plan says why for each one.
//! let repo = Repository::new(repo).with_key(key);
//! let plan = dbbackup::plan_grouped(
//!     &KeepPolicy { keep_last: Some(7), ..KeepPolicy::default() },
//!     &repo.summaries().await?,
//!     &dbbackup::GroupBy::default(),
//!     time::OffsetDateTime::now_utc(),
//! )?;
//! let deleted = repo.apply(&plan).await?;
//! assert!(deleted.is_empty());
//! assert_eq!(plan.to_keep().next(), Some(report.backup_id()));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

pub use dbbackup_core::*;
pub use dbbackup_storage::{open_sink, redact, FsSink, ObjectStoreSink, Throttled};
pub use registry::{
    scratch, source, table_filter, target, EngineTool, ScratchOptions, Selection, SourceOptions,
    TargetOptions,
};

/// The SQLite engine.
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use dbbackup_sqlite::*;
}

/// The PostgreSQL engine.
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use dbbackup_postgres::*;
}

/// The MySQL / MariaDB engine.
#[cfg(feature = "mysql")]
pub mod mysql {
    pub use dbbackup_mysql::*;
}

/// The SQL Server engine.
#[cfg(feature = "mssql")]
pub mod mssql {
    pub use dbbackup_mssql::*;
}

/// Jobs, the cron scheduler and hooks: backups that run themselves.
#[cfg(feature = "service")]
pub mod service {
    pub use dbbackup_service::*;
}

/// Storage backends.
pub mod storage {
    pub use dbbackup_storage::*;
}

mod registry;

/// The README's examples, compiled with the doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
