//! A running backup's lease: an object in its folder, refreshed while it runs, that `gc` and
//! `prune` honour (see `docs/FORMAT.md`).

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::manifest::BACKUPS_PREFIX;
use crate::sink::{PutMode, Sink, SinkExt};

/// How often a running backup rewrites its lease.
pub(crate) const LEASE_REFRESH: Duration = Duration::from_secs(60);
/// A lease not rewritten for this long belongs to a backup that died.
pub(crate) const LEASE_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// The object key of a backup's lease.
pub(crate) fn lease_key(backup_id: &str) -> String {
    format!("{BACKUPS_PREFIX}{backup_id}/LEASE")
}

/// What a lease says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub(crate) backup_id: String,
    /// The backup the running one is chained to: prune must not delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<String>,
    pub(crate) pid: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) heartbeat_at: OffsetDateTime,
}

/// Whether a lease last written at `written` (storage time) is still held at `now`.
pub(crate) fn is_fresh(written: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    written.is_some_and(|t| t + LEASE_EXPIRY > now)
}

/// The lease of one running backup.
pub(crate) struct LeaseHolder<'a> {
    sink: &'a dyn Sink,
    backup_id: String,
    parent: Mutex<Option<String>>,
}

impl<'a> LeaseHolder<'a> {
    pub(crate) fn new(sink: &'a dyn Sink, backup_id: &str) -> Self {
        LeaseHolder {
            sink,
            backup_id: backup_id.to_owned(),
            parent: Mutex::new(None),
        }
    }

    /// Records the parent and rewrites the lease at once.
    pub(crate) async fn set_parent(&self, parent: Option<String>) -> Result<()> {
        *self.parent.lock().expect("lease lock") = parent;
        self.write().await
    }

    /// Writes (or refreshes) the lease.
    pub(crate) async fn write(&self) -> Result<()> {
        let lease = Lease {
            backup_id: self.backup_id.clone(),
            parent: self.parent.lock().expect("lease lock").clone(),
            pid: std::process::id(),
            heartbeat_at: OffsetDateTime::now_utc(),
        };
        let body = serde_json::to_vec(&lease).expect("lease serializes");
        let key = lease_key(&self.backup_id);
        self.sink
            .put_bytes(&key, Bytes::from(body), PutMode::Overwrite)
            .await
            .map(|_| ())
            .map_err(|e| e.with_object(key))
    }

    /// Refreshes the lease forever (race it against the backup's work).
    pub(crate) async fn keep_alive(&self) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(LEASE_REFRESH).await;
            if let Err(e) = self.write().await {
                tracing::warn!(backup_id = %self.backup_id, error = %e, "could not refresh the backup's lease");
            }
        }
    }

    /// Removes the lease after the commit (best effort: a committed backup's lease is ignored).
    pub(crate) async fn release(&self) {
        let _ = self.sink.delete(&lease_key(&self.backup_id)).await;
    }
}
