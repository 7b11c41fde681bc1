//! The database side of a backup: a [`Source`] opens a consistent [`Snapshot`] and streams its
//! entries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sink::ByteStream;

/// What part of a database an entry holds; restore applies entries phase by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EntryKind {
    /// Schema that must exist before data is loaded (types, tables, functions).
    PreData,
    /// One table's (or table part's) rows.
    Data,
    /// Schema applied after data (indexes, constraints, triggers, sequence values).
    PostData,
    /// A whole dump or file produced by an external tool or the engine itself.
    Dump,
    /// Anything else an engine stores (e.g. a log segment).
    Other,
}

/// One entry a snapshot will produce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntrySpec {
    /// Unique within the backup, chosen by the source (e.g. `data/public.orders`).
    pub name: String,
    /// What the entry holds.
    pub kind: EntryKind,
    /// Restore order: every entry of a lower phase is restored before any of a higher phase;
    /// entries of one phase may be restored in parallel.
    pub phase: u32,
    /// Engine-specific facts about the entry (table name, columns, format) that its restore needs.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
    /// Roughly how many plaintext bytes the entry will hold (from the database's catalog), for
    /// progress and time left; `None` when the engine cannot tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_bytes: Option<u64>,
}

impl EntrySpec {
    /// An entry with no extra metadata.
    pub fn new(name: impl Into<String>, kind: EntryKind, phase: u32) -> Self {
        EntrySpec {
            name: name.into(),
            kind,
            phase,
            meta: serde_json::Value::Null,
            estimated_bytes: None,
        }
    }

    /// Sets the estimated plaintext size (see [`EntrySpec::estimated_bytes`]).
    pub fn with_estimate(mut self, bytes: Option<u64>) -> Self {
        self.estimated_bytes = bytes;
        self
    }

    /// Sets the engine-specific metadata.
    pub fn with_meta(mut self, meta: serde_json::Value) -> Self {
        self.meta = meta;
        self
    }

    /// Sets the engine-specific metadata from the engine's typed struct.
    pub fn with_meta_of<T: Serialize>(self, meta: &T) -> Self {
        let meta = serde_json::to_value(meta).expect("entry metadata is plain data");
        self.with_meta(meta)
    }

    /// The metadata as the engine's typed struct (see [`EntryRecord::meta_of`](crate::EntryRecord::meta_of)).
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) when it does not have that shape.
    pub fn meta_of<T: serde::de::DeserializeOwned>(&self) -> crate::Result<T> {
        crate::manifest::meta_from(&self.meta, &self.name)
    }
}

/// Facts about the database and the moment a snapshot was taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Engine name (`postgres`, `mysql`, `sqlite`, ...).
    pub engine: String,
    /// The server's version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The database backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The server it lives on (host:port, or the file), without credentials: retention groups
    /// backups by engine, server and database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Where in the database's history the snapshot sits (LSN, txid, binlog position, GTID set).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub position: BTreeMap<String, String>,
}

/// A shared row counter a source bumps while it streams an entry.
#[derive(Debug, Clone, Default)]
pub struct RowCounter(Arc<AtomicU64>);

impl RowCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds `n` rows.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Rows so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An entry's bytes, and the row count if the source counts rows.
pub struct EntryData {
    /// The bytes. An `Err` item fails the backup.
    pub stream: ByteStream,
    /// Rows streamed so far; `None` when the entry has no rows (schema, dumps).
    pub rows: Option<RowCounter>,
}

impl EntryData {
    /// Bytes without a row count.
    pub fn bytes(stream: ByteStream) -> Self {
        EntryData { stream, rows: None }
    }

    /// The bytes of `reader` (a file the database wrote, say), in 1 MiB blocks; a read error
    /// fails the entry as a [`Source`](crate::ErrorKind::Source) error naming `label`.
    pub fn reader<R>(reader: R, label: impl Into<String>) -> Self
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        use tokio::io::AsyncReadExt;
        const BLOCK: usize = 1 << 20;
        let label = label.into();
        let stream = futures::stream::try_unfold((reader, label), |(mut r, label)| async move {
            let mut buf = vec![0u8; BLOCK];
            let mut filled = 0;
            while filled < buf.len() {
                let n = r.read(&mut buf[filled..]).await.map_err(|e| {
                    crate::Error::new(
                        crate::ErrorKind::Source,
                        format!("cannot read {label}: {e}"),
                    )
                })?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(None);
            }
            buf.truncate(filled);
            Ok(Some((bytes::Bytes::from(buf), (r, label))))
        });
        EntryData::bytes(Box::pin(stream))
    }
}

/// What a finished snapshot reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotSummary {
    /// Things a user must know: non-transactional tables, a plaintext connection, ...
    pub warnings: Vec<String>,
    /// Objects the database holds that the backup leaves out (`kind name`), which the caller
    /// accepted (PostgreSQL: `allow_incomplete`). Recorded in the manifest's `omitted`.
    pub omitted: Vec<String>,
    /// Position values learned only by reading (a physical backup's end LSN, say): merged over
    /// [`SourceInfo::position`] in the manifest.
    pub position: BTreeMap<String, String>,
}

/// A database that can be backed up.
#[async_trait]
pub trait Source: Send + Sync {
    /// Opens a consistent snapshot: every entry read from it shows the same moment.
    ///
    /// # Errors
    /// [`ErrorKind::Source`](crate::ErrorKind::Source) when the database cannot be reached or the
    /// snapshot cannot be taken.
    async fn open(&self) -> Result<Box<dyn Snapshot>>;

    /// [`open`](Source::open) with the backup's context: its id, and a way to report progress
    /// of work the server does before entries stream. The engine calls this; sources that have
    /// nothing to report keep the default, which calls `open`.
    ///
    /// # Errors
    /// As for `open`.
    async fn open_with(&self, ctx: &OpenContext) -> Result<Box<dyn Snapshot>> {
        let _ = ctx;
        self.open().await
    }
}

/// What a source learns about the backup it is opened for.
#[derive(Debug, Clone)]
pub struct OpenContext {
    backup_id: String,
    emitter: crate::events::Emitter,
}

impl OpenContext {
    pub(crate) fn new(backup_id: &str, emitter: crate::events::Emitter) -> Self {
        Self {
            backup_id: backup_id.to_owned(),
            emitter,
        }
    }

    /// A context that reports to nobody (for calling a source outside the engine).
    pub fn detached(backup_id: &str) -> Self {
        Self::new(backup_id, crate::events::Emitter::default())
    }

    /// The id the backup will be committed under.
    pub fn backup_id(&self) -> &str {
        &self.backup_id
    }

    /// Emits [`Event::ServerProgress`](crate::Event::ServerProgress) to the backup's subscribers.
    pub fn server_progress(&self, percent: f64, message: impl Into<String>) {
        self.emitter.emit(crate::Event::ServerProgress {
            operation: crate::Operation::Backup,
            backup_id: self.backup_id.clone(),
            percent: percent.clamp(0.0, 100.0),
            message: message.into(),
        });
    }
}

/// An open, consistent view of a database.
#[async_trait]
pub trait Snapshot: Send + Sync {
    /// Engine, version, database and position of the snapshot.
    fn info(&self) -> SourceInfo;

    /// Every entry this snapshot will produce, in a sensible order.
    fn entries(&self) -> Vec<EntrySpec>;

    /// Streams one entry. Called concurrently for several entries, each at most once.
    ///
    /// # Errors
    /// [`ErrorKind::Source`](crate::ErrorKind::Source) when the entry cannot be read.
    async fn read(&self, entry: &EntrySpec) -> Result<EntryData>;

    /// Ends the snapshot after every entry was read, releasing its transaction and connections.
    ///
    /// # Errors
    /// When the snapshot turns out to be unusable (e.g. a tool exited with an error).
    async fn finish(self: Box<Self>) -> Result<SnapshotSummary>;

    /// The backup this one builds on, when the source finds it (an incremental backup's full
    /// backup). A parent set on the [`Backup`](crate::Backup) builder takes precedence.
    fn parent(&self) -> Option<String> {
        None
    }
}
