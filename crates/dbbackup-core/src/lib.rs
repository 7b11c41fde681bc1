//! # dbbackup-core
//!
//! The database-agnostic heart of dbbackup: the [`Source`], [`RestoreTarget`], [`Transform`],
//! [`Sink`] and [`RetentionPolicy`] traits, a streaming pipeline that backs up, restores and
//! verifies in bounded memory, the repository format (see `docs/FORMAT.md`), and the built-in
//! transforms: zstd and AES-256-GCM in the STREAM construction, with BLAKE3 checksums on every
//! entry.
//!
//! Engines (`dbbackup-postgres`, `dbbackup-mysql`, ...) implement [`Source`] and
//! [`RestoreTarget`]; storage crates implement [`Sink`]. Applications compose them:
//!
//! ```
//! use std::sync::Arc;
//! use dbbackup_core::testing::{MemoryTarget, ScriptedSource};
//! use dbbackup_core::{Backup, BackupSelector, Key, KdfParams, MemorySink, Restore, Verify, Zstd};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dbbackup_core::Result<()> {
//! let sink = Arc::new(MemorySink::new());
//! let source = ScriptedSource::new("demo").entry("data/t", b"hello, world".repeat(1000));
//! let key = Key::passphrase("correct horse battery staple");
//!
//! let report = Backup::builder()
//!     .source(source)
//!     .sink(sink.clone())
//!     .transform(Zstd::new(3))
//!     .encryption(key.clone())
//!     .kdf_params(KdfParams::minimum()?) // the cheapest accepted; the default is 64 MiB / 3
//!     .label("reason", "doc-example")
//!     .build()?
//!     .run()
//!     .await?;
//!
//! Verify::builder().sink(sink.clone()).key(key.clone()).build()?.run().await?;
//!
//! let target = MemoryTarget::new();
//! Restore::builder()
//!     .sink(sink)
//!     .backup(BackupSelector::Id(report.backup_id().to_owned()))
//!     .key(key)
//!     .target(target.clone())
//!     .build()?
//!     .run()
//!     .await?;
//! assert_eq!(target.entry("data/t").unwrap(), b"hello, world".repeat(1000));
//! # Ok(())
//! # }
//! ```

pub use codec::{Codec, CodecContext, Transform, TransformSpec, Zstd};
pub use crypto::{Aes256GcmStream, DEFAULT_CHUNK_SIZE};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, Operation, Subscriber};
pub use keys::{EncryptionInfo, KdfParams, Key, MasterKey};
pub use log_archive::{LogArchive, LogRecord, Pushed, LOGS_PREFIX, MAX_PIECE};
pub use manifest::{
    entry_key, is_valid_backup_id, manifest_key, new_backup_id, ChecksumAlgorithm, EntryRecord,
    Manifest, TableRef, FORMAT_VERSION,
};
pub use memory::MemorySink;
pub use pattern::{
    glob_match, ini_entries, parse_duration, redact_url, selected, url_password, url_server,
    url_with_password,
};
pub use pipeline::{
    Backup, BackupBuilder, BackupReport, Restore, RestoreBuilder, RestoreReport, Verify,
    VerifyBuilder, VerifyReport,
};
pub use repo::{
    BackupSelector, BackupStatus, Catalog, CatalogEntry, GcReport, RekeyReport, RepoConfig,
    Repository, Resolved, SkippedBackup, TransformFactory, CONFIG_KEY,
};
pub use restore::{RestoreSession, RestoreSummary, RestoreTarget};
pub use restore_test::{
    check_not_a_truth_value, check_returned_no_row, recorded_rows, scratch_database_name,
    CheckResult, CheckStatus, RestoreTestRecord, RestoreTests, ScratchDatabase, ScratchServer,
};
pub use retention::{
    parse_keep_within, plan_grouped, Action, BackupSummary, Decision, GroupBy, KeepPolicy,
    RetentionPlan, RetentionPolicy,
};
pub use selection::{
    check_patterns_match, table_pattern_matches, Filter, ServerBackupKind, SharedDir,
};
pub use sink::{
    check_range, ByteStream, Capabilities, ObjectMeta, ObjectWriter, PutMode, Sink, SinkExt,
};
pub use source::{
    EntryData, EntryKind, EntrySpec, OpenContext, RowCounter, Snapshot, SnapshotSummary, Source,
    SourceInfo,
};
pub use tokio_util::sync::CancellationToken;

mod codec;
mod crypto;
mod error;
mod events;
mod keys;
mod lease;
mod log_archive;
mod manifest;
mod memory;
mod pattern;
mod pipeline;
pub mod reconnect;
mod repo;
mod restore;
mod restore_test;
mod retention;
mod selection;
mod sink;
mod source;
pub mod statements;
pub mod tool;

#[cfg(feature = "testing")]
pub mod testing;
