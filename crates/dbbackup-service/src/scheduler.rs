//! The scheduler: runs jobs on tokio when their schedules come due.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbbackup_core::{Event, Subscriber};
use time::OffsetDateTime;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::job::{Job, JobOperation, Trigger};

/// Wall-clock time that advances with tokio's clock (so that a paused test clock drives the
/// schedules too).
#[derive(Clone, Copy)]
struct Clock {
    wall: OffsetDateTime,
    at: Instant,
}

impl Clock {
    fn now(&self) -> OffsetDateTime {
        self.wall + self.at.elapsed()
    }
    fn instant_of(&self, t: OffsetDateTime) -> Instant {
        let ahead: Duration = (t - self.wall).try_into().unwrap_or(Duration::ZERO);
        self.at + ahead
    }
}

/// Runs [`Job`]s on their schedules. Build it, add jobs, [`start`](Scheduler::start) it.
pub struct Scheduler {
    jobs: Vec<Job>,
    max_concurrent: usize,
    subscribers: Vec<Arc<dyn Subscriber>>,
    start_time: Option<OffsetDateTime>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

struct Shared {
    clock: Clock,
    permits: Arc<Semaphore>,
    subscribers: Vec<Arc<dyn Subscriber>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Shared {
    fn emit(&self, e: Event) {
        for s in &self.subscribers {
            s.on_event(&e);
        }
    }
}

enum Command {
    RunNow(JobOperation),
    Replace(Box<Job>),
    Remove,
}

/// Controls one scheduled job: run it now, pause it, resume it.
#[derive(Clone)]
pub struct JobHandle {
    name: String,
    tx: mpsc::UnboundedSender<Command>,
    paused: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
}

impl JobHandle {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Runs `op` now (skipped, and reported, if a run of the job is going).
    pub fn run_now(&self, op: JobOperation) {
        let _ = self.tx.send(Command::RunNow(op));
    }
    /// Scheduled runs are skipped (and reported) until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }
    /// Scheduled runs start again.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
    /// Whether a run of the job is going.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// A started scheduler: its jobs' handles, reload, and the wait for shutdown.
pub struct SchedulerHandle {
    shared: Arc<Shared>,
    jobs: Mutex<HashMap<String, JobHandle>>,
}

impl Scheduler {
    /// A scheduler without jobs; at most 2 runs at once.
    pub fn new() -> Self {
        Scheduler {
            jobs: Vec::new(),
            max_concurrent: 2,
            subscribers: Vec::new(),
            start_time: None,
        }
    }

    /// Adds a job.
    pub fn job(mut self, job: Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// How many runs may go at once across all jobs (default 2); a run that would exceed it
    /// waits.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// Receives every event: the jobs' runs and their backups' own events.
    pub fn subscribe(mut self, s: impl Subscriber + 'static) -> Self {
        self.subscribers.push(Arc::new(s));
        self
    }

    /// The wall-clock time at start (default: now). For simulations and tests on a paused
    /// tokio clock: time then advances with tokio's clock.
    pub fn start_time(mut self, t: OffsetDateTime) -> Self {
        self.start_time = Some(t);
        self
    }

    /// Starts every job's schedule on the current tokio runtime. Cancelling `cancel` stops
    /// the schedules and cancels the runs in flight (a cancelled backup commits nothing);
    /// [`SchedulerHandle::wait`] returns once they have ended.
    pub fn start(self, cancel: CancellationToken) -> SchedulerHandle {
        let shared = Arc::new(Shared {
            clock: Clock {
                wall: self.start_time.unwrap_or_else(OffsetDateTime::now_utc),
                at: Instant::now(),
            },
            permits: Arc::new(Semaphore::new(self.max_concurrent)),
            subscribers: self.subscribers,
            cancel,
            tracker: TaskTracker::new(),
        });
        let h = SchedulerHandle {
            shared,
            jobs: Mutex::new(HashMap::new()),
        };
        h.reload(self.jobs);
        h
    }
}

impl SchedulerHandle {
    /// The handle of the job called `name`.
    pub fn job(&self, name: &str) -> Option<JobHandle> {
        self.jobs.lock().unwrap().get(name).cloned()
    }

    /// The names of the scheduled jobs.
    pub fn job_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.jobs.lock().unwrap().keys().cloned().collect();
        v.sort();
        v
    }

    /// Replaces the jobs: new names start, removed ones stop scheduling (a run in flight
    /// finishes), a job of the same name takes the new definition and keeps its overlap guard.
    pub fn reload(&self, jobs: Vec<Job>) {
        let mut map = self.jobs.lock().unwrap();
        let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
        map.retain(|name, h| {
            let keep = names.contains(name);
            if !keep {
                let _ = h.tx.send(Command::Remove);
            }
            keep
        });
        for job in jobs {
            if let Some(h) = map.get(&job.name) {
                let _ = h.tx.send(Command::Replace(Box::new(job)));
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let h = JobHandle {
                name: job.name.clone(),
                tx,
                paused: Arc::new(AtomicBool::new(false)),
                running: Arc::new(AtomicBool::new(false)),
            };
            map.insert(job.name.clone(), h.clone());
            let shared = self.shared.clone();
            self.shared
                .tracker
                .spawn(slot(job, shared, rx, h.paused.clone(), h.running.clone()));
        }
    }

    /// Waits until the scheduler has stopped (its token cancelled) and every run has ended.
    pub async fn wait(&self) {
        self.shared.cancel.cancelled().await;
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }
}

/// The next run of each scheduled operation: (operation, occurrence, start with jitter).
fn next_runs(
    job: &Job,
    after: &HashMap<JobOperation, OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<(JobOperation, OffsetDateTime, OffsetDateTime)> {
    job.schedules
        .iter()
        .filter_map(|(op, s)| {
            let from = after.get(op).copied().unwrap_or(now);
            let occ = s.next_after(from)?;
            let jitter = if job.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_nanos(fastrand::u64(0..job.jitter.as_nanos() as u64))
            };
            Some((*op, occ, occ + jitter))
        })
        .min_by_key(|r| r.2)
}

/// One job's loop: catch-up, then each due run, until removed or cancelled.
async fn slot(
    mut job: Job,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    paused: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
) {
    let job_name = job.name.clone();
    let fire = |job: &Job, op: JobOperation, trigger: Trigger| {
        if trigger == Trigger::Schedule && paused.load(Ordering::SeqCst) {
            shared.emit(Event::JobSkipped {
                job: job.name.clone(),
                operation: op.as_str().to_owned(),
                reason: "paused".into(),
            });
            return;
        }
        if running.swap(true, Ordering::SeqCst) {
            shared.emit(Event::JobSkipped {
                job: job.name.clone(),
                operation: op.as_str().to_owned(),
                reason: "overlap".into(),
            });
            return;
        }
        let (job, shared2, running) = (job.clone(), shared.clone(), running.clone());
        shared.tracker.spawn(async move {
            let permit = tokio::select! {
                p = shared2.permits.clone().acquire_owned() => p.ok(),
                _ = shared2.cancel.cancelled() => None,
            };
            if permit.is_some() {
                job.run(op, trigger, shared2.cancel.clone(), &shared2.subscribers)
                    .await;
            }
            running.store(false, Ordering::SeqCst);
        });
    };
    let backup_scheduled = job
        .schedules
        .iter()
        .find(|(op, _)| *op == JobOperation::Backup)
        .map(|(_, s)| s.clone());
    if let (true, Some(s)) = (job.catch_up, backup_scheduled) {
        let now = shared.clock.now();
        let behind = match (job.last_backup().await, s.interval_after(now)) {
            (Ok(Some(last)), Some(interval)) => now - last > interval,
            (Ok(None), _) => true,
            (Ok(Some(_)), None) => false,
            // The run reports what is wrong with the repository.
            (Err(_), _) => true,
        };
        if behind {
            fire(&job, JobOperation::Backup, Trigger::CatchUp);
        }
    }
    let mut after: HashMap<JobOperation, OffsetDateTime> = HashMap::new();
    loop {
        let now = shared.clock.now();
        let next = next_runs(&job, &after, now);
        let wake = match next {
            Some((_, _, at)) => shared.clock.instant_of(at),
            None => Instant::now() + Duration::from_secs(86400 * 365),
        };
        tokio::select! {
            _ = shared.cancel.cancelled() => break,
            _ = tokio::time::sleep_until(wake) => {
                if let Some((op, occ, _)) = next {
                    after.insert(op, occ);
                    fire(&job, op, Trigger::Schedule);
                }
            }
            cmd = rx.recv() => match cmd {
                None | Some(Command::Remove) => break,
                Some(Command::RunNow(op)) => fire(&job, op, Trigger::Manual),
                Some(Command::Replace(j)) => {
                    job = *j;
                    after.clear();
                }
            },
        }
    }
    tracing::debug!(job = %job_name, "schedule stopped");
}
