//! Progress events: what an application turns into progress bars or metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

impl Operation {
    /// `backup`, `restore` or `verify`, as events serialize it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::Verify => "verify",
        }
    }
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
        /// Plaintext bytes expected in all: exact for restores and verifies (the manifest's
        /// sizes), the engines' catalog estimates for backups; `None` when unknown.
        estimated_bytes: Option<u64>,
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
    /// The whole operation's progress, about twice a second while bytes move: plaintext bytes
    /// of all entries so far against the expected total, the rate and the time left.
    Progress {
        /// Which operation.
        operation: Operation,
        /// The backup.
        backup_id: String,
        /// Plaintext bytes so far, all entries.
        raw_bytes: u64,
        /// Expected in all (as in [`Event::Started`]; never below `raw_bytes`), or `None`.
        estimated_bytes: Option<u64>,
        /// Rows of the finished entries.
        rows: u64,
        /// Entries finished.
        entries_done: usize,
        /// Entries in all.
        entries: usize,
        /// Plaintext bytes per second since the start.
        bytes_per_second: f64,
        /// Seconds left at that rate, when the total is known.
        eta_seconds: Option<f64>,
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

/// The subscribers of one operation, and the operation's totals from which it derives
/// [`Event::Progress`].
#[derive(Clone, Default)]
pub(crate) struct Emitter {
    subs: Arc<Vec<Arc<dyn Subscriber>>>,
    totals: Arc<Mutex<Totals>>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Emitter({} subscribers)", self.subs.len())
    }
}

/// How often [`Event::Progress`] is sent at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Totals {
    started: Option<Instant>,
    last: Option<Instant>,
    estimated: Option<u64>,
    entries: usize,
    entries_done: usize,
    done_bytes: u64,
    rows: u64,
    running: HashMap<String, u64>,
}

impl Totals {
    /// Folds `event` in; the progress event to send, when one is due.
    fn fold(&mut self, event: &Event) -> Option<Event> {
        let now = Instant::now();
        let (operation, backup_id) = match event {
            Event::Started {
                entries,
                estimated_bytes,
                ..
            } => {
                *self = Totals {
                    started: Some(now),
                    estimated: *estimated_bytes,
                    entries: *entries,
                    ..Totals::default()
                };
                return None;
            }
            Event::EntryProgress {
                operation,
                backup_id,
                entry,
                raw_bytes,
                ..
            } => {
                self.running.insert(entry.clone(), *raw_bytes);
                (operation, backup_id)
            }
            Event::EntryFinished {
                operation,
                backup_id,
                entry,
                raw_bytes,
                rows,
                ..
            } => {
                self.running.remove(entry);
                self.done_bytes += raw_bytes;
                self.rows += rows.unwrap_or(0);
                self.entries_done += 1;
                (operation, backup_id)
            }
            _ => return None,
        };
        // The first one at once, then at most one per PROGRESS_EVERY.
        let started = self.started?;
        // ... and always when the last entry is done.
        let all_done = self.entries_done == self.entries;
        if !all_done
            && self
                .last
                .is_some_and(|l| now.duration_since(l) < PROGRESS_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        let raw = self.done_bytes + self.running.values().sum::<u64>();
        let secs = now.duration_since(started).as_secs_f64();
        let rate = if secs > 0.0 { raw as f64 / secs } else { 0.0 };
        // Once every entry is done the total is known, whatever the estimate said.
        let estimated = if all_done {
            Some(raw)
        } else {
            self.estimated.map(|e| e.max(raw))
        };
        // A rate from the first second (schema entries, connection set-up) says little.
        let eta = estimated
            .filter(|_| rate > 0.0 && (secs >= 1.0 || all_done))
            .map(|e| (e - raw) as f64 / rate);
        Some(Event::Progress {
            operation: *operation,
            backup_id: backup_id.clone(),
            raw_bytes: raw,
            estimated_bytes: estimated,
            rows: self.rows,
            entries_done: self.entries_done,
            entries: self.entries,
            bytes_per_second: rate,
            eta_seconds: eta,
        })
    }
}

impl Emitter {
    pub(crate) fn new(subs: Vec<Arc<dyn Subscriber>>) -> Self {
        Emitter {
            subs: Arc::new(subs),
            totals: Arc::default(),
        }
    }
    pub(crate) fn emit(&self, event: Event) {
        if self.subs.is_empty() {
            return;
        }
        for s in self.subs.iter() {
            s.on_event(&event);
        }
        let progress = self.totals.lock().expect("progress lock").fold(&event);
        if let Some(p) = progress {
            for s in self.subs.iter() {
                s.on_event(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(entry: &str, raw: u64) -> Event {
        Event::EntryProgress {
            operation: Operation::Backup,
            backup_id: "b".into(),
            entry: entry.into(),
            raw_bytes: raw,
            stored_bytes: 0,
            rows: None,
        }
    }

    fn finished(entry: &str, raw: u64, rows: u64) -> Event {
        Event::EntryFinished {
            operation: Operation::Backup,
            backup_id: "b".into(),
            entry: entry.into(),
            raw_bytes: raw,
            stored_bytes: 0,
            rows: Some(rows),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn operation_names_are_the_serialized_ones() {
        for op in [Operation::Backup, Operation::Restore, Operation::Verify] {
            assert_eq!(serde_json::to_value(op).unwrap(), op.as_str());
        }
    }

    #[test]
    fn totals_sum_the_entries_throttle_and_always_tell_the_end() {
        let mut t = Totals::default();
        assert!(
            t.fold(&progress("a", 1)).is_none(),
            "nothing before Started"
        );
        assert!(t
            .fold(&Event::Started {
                operation: Operation::Backup,
                backup_id: "b".into(),
                entries: 2,
                estimated_bytes: Some(1000),
            })
            .is_none());
        let Some(Event::Progress {
            raw_bytes,
            estimated_bytes,
            eta_seconds,
            entries_done,
            ..
        }) = t.fold(&progress("a", 100))
        else {
            panic!("the first progress is told at once")
        };
        assert_eq!(
            (raw_bytes, estimated_bytes, entries_done),
            (100, Some(1000), 0)
        );
        assert_eq!(
            eta_seconds, None,
            "no time left from the first second's rate"
        );
        assert!(t.fold(&progress("b", 50)).is_none(), "throttled");
        assert!(t.fold(&finished("a", 400, 10)).is_none(), "throttled");
        let Some(Event::Progress {
            raw_bytes,
            estimated_bytes,
            rows,
            entries_done,
            eta_seconds,
            ..
        }) = t.fold(&finished("b", 900, 5))
        else {
            panic!("the end is always told")
        };
        // More than the estimate: the total is what was done.
        assert_eq!(
            (raw_bytes, estimated_bytes, rows, entries_done),
            (1300, Some(1300), 15, 2)
        );
        assert_eq!(eta_seconds, Some(0.0));
    }
}
