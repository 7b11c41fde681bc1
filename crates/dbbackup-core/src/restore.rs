//! The database side of a restore: a [`RestoreTarget`] applies a backup's entries.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::manifest::{EntryRecord, Manifest};
use crate::sink::ByteStream;

/// What a restore session reports when it finishes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreSummary {
    /// Things a user must know: columns dropped, objects skipped, ...
    pub warnings: Vec<String>,
}

/// Something a backup can be restored into (a database, a file).
#[async_trait]
pub trait RestoreTarget: Send + Sync {
    /// Starts restoring the backup described by `manifest` (e.g. creates the database).
    ///
    /// # Errors
    /// When the target cannot be prepared or does not accept this backup (wrong engine).
    async fn begin(&self, manifest: &Manifest) -> Result<Box<dyn RestoreSession>>;
}

/// One restore in progress.
///
/// The engine calls [`restore_entry`](RestoreSession::restore_entry) phase by phase (every entry of
/// a lower phase is finished before any of a higher one starts), entries of one phase concurrently.
#[async_trait]
pub trait RestoreSession: Send + Sync {
    /// Applies one entry from its decoded bytes; returns the rows loaded when known.
    ///
    /// The stream ends with an `Err` item if the engine finds the entry corrupt (a checksum is only
    /// known at the end): the session must then not commit that entry, and must return the error.
    ///
    /// # Errors
    /// [`ErrorKind::Target`](crate::ErrorKind::Target) naming the table/statement that failed, or
    /// the stream's own error.
    async fn restore_entry(&self, entry: &EntryRecord, data: ByteStream) -> Result<Option<u64>>;

    /// Completes the restore (refreshes, analyzes, commits).
    ///
    /// # Errors
    /// When finishing fails.
    async fn finish(self: Box<Self>) -> Result<RestoreSummary>;

    /// Undoes what the restore created, as far as the target can, after `error` stopped it.
    ///
    /// # Errors
    /// When cleanup itself failed; the caller reports both.
    async fn abort(self: Box<Self>, error: &Error) -> Result<()>;
}
