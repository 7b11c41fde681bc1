//! Progress events: what an application turns into progress bars or metrics.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// Which operation an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Writing a backup.
    Backup,
    /// Restoring one.
    Restore,
    /// Verifying one.
    Verify,
}

/// Something that happened during a backup, restore or verify.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// The operation started; `entries` will be processed.
    Started {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// How many entries.
        entries: usize,
    },
    /// An entry started.
    EntryStarted {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// The entry.
        entry: String,
    },
    /// Bytes moved within an entry (emitted about once per MiB).
    EntryProgress {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// The entry.
        entry: String,
        /// Plaintext bytes so far.
        raw_bytes: u64,
        /// Stored bytes so far.
        stored_bytes: u64,
        /// Rows so far, where counted.
        rows: Option<u64>,
    },
    /// An entry is done.
    EntryFinished {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// The entry.
        entry: String,
        /// Plaintext bytes.
        raw_bytes: u64,
        /// Stored bytes.
        stored_bytes: u64,
        /// Rows, where counted.
        rows: Option<u64>,
        /// Time spent on the entry.
        #[serde(with = "duration_secs")]
        elapsed: Duration,
    },
    /// Progress the database server reports for work it does on its own, before the entries
    /// stream (SQL Server's `BACKUP ... WITH STATS`, for example).
    ServerProgress {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// Percent done, 0 to 100.
        percent: f64,
        /// What the server is doing.
        message: String,
    },
    /// The operation succeeded (for a backup: the manifest is committed).
    Finished {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// Plaintext bytes.
        raw_bytes: u64,
        /// Stored bytes.
        stored_bytes: u64,
        /// Wall time.
        #[serde(with = "duration_secs")]
        elapsed: Duration,
    },
    /// The operation failed; for a backup, nothing was committed.
    Failed {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// What kind of error (serialized as its text, e.g. `"corrupt"`).
        kind: crate::error::ErrorKind,
        /// The error message.
        message: String,
    },
    /// A restore test ended and its record is stored beside the backup.
    RestoreTested {
        /// The backup tested.
        backup_id: String,
        /// Whether every check passed.
        passed: bool,
        /// How long the restore took: the measured recovery time.
        #[serde(with = "duration_secs")]
        restore_time: Duration,
        /// The names of the checks that failed.
        failed: Vec<String>,
    },
    /// A scheduled job's run started (its backup's own events follow).
    JobStarted {
        /// The job's name.
        job: String,
        /// What the run does: `backup`, `prune` or `verify`.
        operation: String,
        /// Why it runs: `schedule`, `catch-up` or `manual`.
        trigger: String,
    },
    /// A job's run was due but did not start.
    JobSkipped {
        /// The job's name.
        job: String,
        /// What the run would have done.
        operation: String,
        /// Why: `overlap` (its previous run is still going) or `paused`.
        reason: String,
    },
    /// A job's run ended.
    JobFinished {
        /// The job's name.
        job: String,
        /// What the run did.
        operation: String,
        /// `succeeded`, `failed` or `cancelled`.
        status: String,
        /// The backup made or checked, when there is one.
        backup_id: Option<String>,
        /// Plaintext bytes of the backup.
        raw_bytes: u64,
        /// Stored bytes of the backup.
        stored_bytes: u64,
        /// Backups deleted by the prune that followed it.
        pruned: Vec<String>,
        /// Wall time of the whole run, hooks included.
        #[serde(with = "duration_secs")]
        elapsed: Duration,
        /// Why it failed.
        error: Option<String>,
        /// A restore test's restore time (the measured recovery time).
        #[serde(with = "opt_duration_secs")]
        restore_time: Option<Duration>,
    },
}

mod opt_duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Receives events. Called on the engine's tasks: keep it quick and non-blocking.
pub trait Subscriber: Send + Sync {
    /// One event.
    fn on_event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Subscriber for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

/// The subscribers of one operation.
#[derive(Clone, Default)]
pub(crate) struct Emitter(Vec<Arc<dyn Subscriber>>);

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Emitter({} subscribers)", self.0.len())
    }
}

impl Emitter {
    pub(crate) fn new(subs: Vec<Arc<dyn Subscriber>>) -> Self {
        Emitter(subs)
    }
    pub(crate) fn emit(&self, event: Event) {
        for s in &self.0 {
            s.on_event(&event);
        }
    }
}
