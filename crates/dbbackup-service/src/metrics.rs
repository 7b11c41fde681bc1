//! Prometheus metrics filled from job events.
//!
//! Built on `prometheus-client`, the Prometheus project's own Rust client: typed label sets, no
//! global registry (an application registers [`Metrics`] in its own [`Registry`] next to its
//! other metrics, or serves [`Metrics::encode`]), OpenMetrics text.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use dbbackup_core::{Event, Subscriber};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    job: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    job: String,
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArchiveLabels {
    job: String,
    kind: String,
}

type FGauge = Gauge<f64, AtomicU64>;

/// What is computed at scrape time (ages).
#[derive(Debug, Default)]
struct Ages {
    /// Per job: when its newest backup finished.
    backups: BTreeMap<String, f64>,
    /// Per (job, archive kind): when its newest piece was archived.
    archives: BTreeMap<(String, String), f64>,
}

#[derive(Debug)]
struct AgeCollector(Arc<Mutex<Ages>>);

fn now_secs() -> f64 {
    (OffsetDateTime::now_utc() - OffsetDateTime::UNIX_EPOCH).as_seconds_f64()
}

fn secs(t: OffsetDateTime) -> f64 {
    (t - OffsetDateTime::UNIX_EPOCH).as_seconds_f64()
}

impl Collector for AgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ages = self.0.lock().expect("metrics lock");
        let now = now_secs();
        if !ages.backups.is_empty() {
            let mut e = encoder.encode_descriptor(
                "dbbackup_backup_age_seconds",
                "Seconds since the job's newest backup finished",
                None,
                ConstGauge::new(0.0f64).metric_type(),
            )?;
            for (job, at) in &ages.backups {
                let labels = JobLabels { job: job.clone() };
                ConstGauge::new((now - at).max(0.0)).encode(e.encode_family(&labels)?)?;
            }
        }
        if !ages.archives.is_empty() {
            let mut e = encoder.encode_descriptor(
                "dbbackup_archive_lag_seconds",
                "Seconds since the newest WAL / binlog piece of the job's repository was archived",
                None,
                ConstGauge::new(0.0f64).metric_type(),
            )?;
            for ((job, kind), at) in &ages.archives {
                let labels = ArchiveLabels {
                    job: job.clone(),
                    kind: kind.clone(),
                };
                ConstGauge::new((now - at).max(0.0)).encode(e.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The metrics of scheduled jobs, updated from their events: subscribe it to a
/// [`Scheduler`](crate::Scheduler) (it is a [`Subscriber`]) and register it in a registry.
///
/// | metric | labels |
/// |---|---|
/// | `dbbackup_last_success_timestamp_seconds` | job, operation |
/// | `dbbackup_last_attempt_timestamp_seconds` | job, operation |
/// | `dbbackup_last_attempt_success` (1 or 0) | job, operation |
/// | `dbbackup_last_duration_seconds` | job, operation |
/// | `dbbackup_runs_total` | job, operation, status |
/// | `dbbackup_failures_total` | job, operation |
/// | `dbbackup_last_backup_raw_bytes`, `dbbackup_last_backup_stored_bytes` | job |
/// | `dbbackup_backup_age_seconds` (at scrape time) | job |
/// | `dbbackup_last_restore_test_timestamp_seconds`, `dbbackup_last_restore_test_duration_seconds` (RTO), `dbbackup_last_restore_test_success` | job |
/// | `dbbackup_archive_last_piece_timestamp_seconds`, `dbbackup_archive_lag_seconds` (at scrape time) | job, kind |
#[derive(Clone, Debug)]
pub struct Metrics {
    last_success: Family<OpLabels, FGauge>,
    last_attempt: Family<OpLabels, FGauge>,
    last_ok: Family<OpLabels, Gauge>,
    duration: Family<OpLabels, FGauge>,
    runs: Family<StatusLabels, Counter>,
    failures: Family<OpLabels, Counter>,
    raw: Family<JobLabels, Gauge>,
    stored: Family<JobLabels, Gauge>,
    test_time: Family<JobLabels, FGauge>,
    test_duration: Family<JobLabels, FGauge>,
    test_ok: Family<JobLabels, Gauge>,
    piece_time: Family<ArchiveLabels, FGauge>,
    ages: Arc<Mutex<Ages>>,
    own: Arc<Mutex<Option<Registry>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Metrics {
            last_success: Family::default(),
            last_attempt: Family::default(),
            last_ok: Family::default(),
            duration: Family::default(),
            runs: Family::default(),
            failures: Family::default(),
            raw: Family::default(),
            stored: Family::default(),
            test_time: Family::default(),
            test_duration: Family::default(),
            test_ok: Family::default(),
            piece_time: Family::default(),
            ages: Arc::default(),
            own: Arc::default(),
        }
    }

    /// Registers every metric in `registry` (names start with `dbbackup_`).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "dbbackup_last_success_timestamp_seconds",
            "When the job's operation last succeeded (Unix time)",
            self.last_success.clone(),
        );
        r.register(
            "dbbackup_last_attempt_timestamp_seconds",
            "When the job's operation last ended, successful or not (Unix time)",
            self.last_attempt.clone(),
        );
        r.register(
            "dbbackup_last_attempt_success",
            "Whether the job's last run of the operation succeeded (1) or not (0)",
            self.last_ok.clone(),
        );
        r.register(
            "dbbackup_last_duration_seconds",
            "Wall time of the job's last run of the operation, hooks included",
            self.duration.clone(),
        );
        r.register(
            "dbbackup_runs",
            "Runs by job, operation and status (succeeded, failed, cancelled)",
            self.runs.clone(),
        );
        r.register(
            "dbbackup_failures",
            "Failed runs by job and operation",
            self.failures.clone(),
        );
        r.register(
            "dbbackup_last_backup_raw_bytes",
            "Plaintext bytes of the job's newest backup",
            self.raw.clone(),
        );
        r.register(
            "dbbackup_last_backup_stored_bytes",
            "Stored bytes of the job's newest backup",
            self.stored.clone(),
        );
        r.register(
            "dbbackup_last_restore_test_timestamp_seconds",
            "When the job's last restore test ended (Unix time)",
            self.test_time.clone(),
        );
        r.register(
            "dbbackup_last_restore_test_duration_seconds",
            "How long the last restore test's restore took: the measured recovery time (RTO)",
            self.test_duration.clone(),
        );
        r.register(
            "dbbackup_last_restore_test_success",
            "Whether the job's last restore test passed (1) or not (0)",
            self.test_ok.clone(),
        );
        r.register(
            "dbbackup_archive_last_piece_timestamp_seconds",
            "When the newest WAL / binlog piece of the job's repository was archived (Unix time)",
            self.piece_time.clone(),
        );
        r.register_collector(Box::new(AgeCollector(self.ages.clone())));
    }

    /// The metrics in OpenMetrics text, from a registry of their own (what `/metrics` serves;
    /// content type `application/openmetrics-text; version=1.0.0; charset=utf-8`).
    pub fn encode(&self) -> String {
        let mut own = self.own.lock().expect("metrics lock");
        let r = own.get_or_insert_with(|| {
            let mut r = Registry::default();
            self.register(&mut r);
            r
        });
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, r);
        out
    }

    /// Records a backup the job made before these metrics existed (its newest, read from the
    /// repository when a daemon starts), so that the age and last success survive a restart.
    pub fn seed_backup(&self, job: &str, finished_at: OffsetDateTime, raw: u64, stored: u64) {
        let op = OpLabels {
            job: job.to_owned(),
            operation: "backup".into(),
        };
        let t = secs(finished_at);
        if self.last_success.get_or_create(&op).get() < t {
            self.last_success.get_or_create(&op).set(t);
            let j = JobLabels {
                job: job.to_owned(),
            };
            self.raw.get_or_create(&j).set(raw as i64);
            self.stored.get_or_create(&j).set(stored as i64);
            self.ages
                .lock()
                .expect("metrics lock")
                .backups
                .insert(job.to_owned(), t);
        }
    }

    /// Records when the newest piece of a job's log archive (`kind`: `wal`, `binlog`) was
    /// archived.
    pub fn set_archive_piece(&self, job: &str, kind: &str, archived_at: OffsetDateTime) {
        let t = secs(archived_at);
        self.piece_time
            .get_or_create(&ArchiveLabels {
                job: job.to_owned(),
                kind: kind.to_owned(),
            })
            .set(t);
        self.ages
            .lock()
            .expect("metrics lock")
            .archives
            .insert((job.to_owned(), kind.to_owned()), t);
    }
}

impl Subscriber for Metrics {
    fn on_event(&self, event: &Event) {
        let Event::JobFinished {
            job,
            operation,
            status,
            backup_id,
            raw_bytes,
            stored_bytes,
            elapsed,
            restore_time,
            ..
        } = event
        else {
            return;
        };
        let now = now_secs();
        let op = OpLabels {
            job: job.clone(),
            operation: operation.clone(),
        };
        let ok = status == "succeeded";
        self.runs
            .get_or_create(&StatusLabels {
                job: job.clone(),
                operation: operation.clone(),
                status: status.clone(),
            })
            .inc();
        self.last_attempt.get_or_create(&op).set(now);
        self.last_ok.get_or_create(&op).set(i64::from(ok));
        self.duration.get_or_create(&op).set(elapsed.as_secs_f64());
        if status == "failed" {
            self.failures.get_or_create(&op).inc();
        }
        let j = JobLabels { job: job.clone() };
        if operation == "restore-test" && status != "cancelled" {
            // A failed test counts as a test (its record says what failed); a run that could
            // not test at all has no restore time.
            if let Some(rt) = restore_time {
                self.test_time.get_or_create(&j).set(now);
                self.test_duration.get_or_create(&j).set(rt.as_secs_f64());
                self.test_ok.get_or_create(&j).set(i64::from(ok));
            }
        }
        if ok {
            self.last_success.get_or_create(&op).set(now);
            if operation == "backup" && backup_id.is_some() {
                self.raw.get_or_create(&j).set(*raw_bytes as i64);
                self.stored.get_or_create(&j).set(*stored_bytes as i64);
                self.ages
                    .lock()
                    .expect("metrics lock")
                    .backups
                    .insert(job.clone(), now);
            }
        }
    }
}
