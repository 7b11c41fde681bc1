//! The scheduler on tokio's paused clock: overlap, the concurrency limit, jitter, catch-up,
//! shutdown mid-backup; hooks with real commands.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbbackup_core::testing::ScriptedSource;
use dbbackup_core::{Backup, Event, KeepPolicy, MemorySink, Repository, Sink};
use dbbackup_service::{command_hook, hook, Job, JobOperation, Schedule, Scheduler, Trigger};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Events with the (paused) time they came at, since the test's start.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Duration, Event)>>>);

impl Log {
    fn subscriber(&self, t0: Instant) -> impl Fn(&Event) + Send + Sync + 'static {
        let l = self.0.clone();
        move |e: &Event| {
            if matches!(
                e,
                Event::JobStarted { .. } | Event::JobSkipped { .. } | Event::JobFinished { .. }
            ) {
                l.lock().unwrap().push((t0.elapsed(), e.clone()));
            }
        }
    }
    fn started(&self, job: &str) -> Vec<(Duration, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, e)| match e {
                Event::JobStarted {
                    job: j, trigger, ..
                } if j == job => Some((*t, trigger.clone())),
                _ => None,
            })
            .collect()
    }
    fn skipped(&self, job: &str, why: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| {
                matches!(e, Event::JobSkipped { job: j, reason, .. } if j == job && reason == why)
            })
            .count()
    }
    fn finished(&self, job: &str) -> Vec<(String, Option<String>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                Event::JobFinished {
                    job: j,
                    status,
                    error,
                    ..
                } if j == job => Some((status.clone(), error.clone())),
                _ => None,
            })
            .collect()
    }
}

fn source(gate: Option<Arc<Semaphore>>) -> ScriptedSource {
    let s = ScriptedSource::new("test").entry("t", vec![7u8; 4096]);
    match gate {
        Some(g) => s.pause_after("t", 1024, g),
        None => s,
    }
}

fn job(
    name: &str,
    sink: Arc<dyn Sink>,
    src: ScriptedSource,
    cron: &str,
) -> dbbackup_service::JobBuilder {
    Job::builder(name)
        .backup(
            Backup::builder()
                .source(src)
                .sink(sink)
                .allow_unencrypted(true),
        )
        .schedule(Schedule::parse(cron).unwrap())
        .catch_up(false)
}

async fn backups(sink: Arc<dyn Sink>) -> usize {
    match Repository::new(sink)
        .allow_unencrypted(true)
        .catalog()
        .await
    {
        Ok(c) => c.summaries().len(),
        Err(_) => 0,
    }
}

/// Moves the paused clock by `d` in small steps, letting the tasks run at each. (A backup
/// blocked on its gate runs on a blocking thread, which stops tokio from advancing the paused
/// clock by itself.)
async fn step(d: Duration) {
    let tick = Duration::from_millis(250);
    let mut left = d;
    while !left.is_zero() {
        let t = tick.min(left);
        tokio::time::advance(t).await;
        settle().await;
        left -= t;
    }
}

/// Waits (real time, the paused clock barely moving) until `cond` holds: what a backup does
/// on blocking threads takes real time, however the clock stands.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("never happened: {what}");
}

/// Lets the spawned tasks run without moving the paused clock much.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_still_going_makes_the_next_one_a_reported_skip() {
    let t0 = Instant::now();
    let log = Log::default();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let gate = Arc::new(Semaphore::new(0));
    let cancel = CancellationToken::new();
    let s = Scheduler::new()
        .job(
            job(
                "a",
                sink.clone(),
                source(Some(gate.clone())),
                "*/10 * * * * *",
            )
            .build()
            .unwrap(),
        )
        .subscribe(log.subscriber(t0))
        .start_time(time::macros::datetime!(2026-12-03 10:00:05 UTC))
        .start(cancel.clone());
    // Due at :10 (blocks), :20 and :30 skipped.
    step(Duration::from_secs(31)).await;
    assert_eq!(log.started("a").len(), 1);
    assert_eq!(log.skipped("a", "overlap"), 2);
    gate.add_permits(1);
    eventually("the first run ends", || log.finished("a").len() == 1).await;
    // :40 runs (and finishes: the gate is open for it too).
    gate.add_permits(10);
    step(Duration::from_secs(9)).await;
    eventually("the :40 run ends", || log.finished("a").len() == 2).await;
    assert_eq!(log.started("a").len(), 2, "{:?}", log.started("a"));
    assert!(log.finished("a").iter().all(|(s, _)| s == "succeeded"));
    assert_eq!(backups(sink.clone()).await, 2);
    cancel.cancel();
    s.wait().await;
}

#[tokio::test(start_paused = true)]
async fn no_more_runs_at_once_than_the_limit() {
    let t0 = Instant::now();
    let log = Log::default();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let gate = Arc::new(Semaphore::new(0));
    let cancel = CancellationToken::new();
    let mut sched = Scheduler::new()
        .max_concurrent(2)
        .subscribe(log.subscriber(t0));
    for name in ["a", "b", "c"] {
        sched = sched.job(
            job(
                name,
                sink.clone(),
                source(Some(gate.clone())),
                "0 * * * * *",
            )
            .build()
            .unwrap(),
        );
    }
    let s = sched
        .start_time(time::macros::datetime!(2026-12-03 10:00:30 UTC))
        .start(cancel.clone());
    step(Duration::from_secs(31)).await;
    settle().await;
    let started = |l: &Log| {
        ["a", "b", "c"]
            .iter()
            .map(|n| l.started(n).len())
            .sum::<usize>()
    };
    assert_eq!(started(&log), 2, "two at once, the third waits");
    let finished = |l: &Log| {
        ["a", "b", "c"]
            .iter()
            .map(|n| l.finished(n).len())
            .sum::<usize>()
    };
    gate.add_permits(1);
    eventually("one run ends", || finished(&log) == 1).await;
    eventually("the third starts when one ends", || started(&log) == 3).await;
    assert!(finished(&log) < 3);
    gate.add_permits(10);
    eventually("all three end", || finished(&log) == 3).await;
    assert_eq!(backups(sink.clone()).await, 3);
    cancel.cancel();
    s.wait().await;
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_run_within_its_bound() {
    let t0 = Instant::now();
    let log = Log::default();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let cancel = CancellationToken::new();
    // Every minute at :00, up to 20 s late; the test starts at 10:00:00.
    let s = Scheduler::new()
        .job(
            job("j", sink.clone(), source(None), "* * * * *")
                .jitter(Duration::from_secs(20))
                .build()
                .unwrap(),
        )
        .subscribe(log.subscriber(t0))
        .start_time(time::macros::datetime!(2026-12-03 10:00:00 UTC))
        .start(cancel.clone());
    tokio::time::sleep(Duration::from_secs(60 * 30 + 30)).await;
    settle().await;
    let runs = log.started("j");
    assert_eq!(runs.len(), 30, "{runs:?}");
    let mut offsets = Vec::new();
    for (i, (t, _)) in runs.iter().enumerate() {
        let slot = Duration::from_secs(60 * (i as u64 + 1));
        assert!(
            *t >= slot && *t < slot + Duration::from_secs(20),
            "run {i} at {t:?}"
        );
        offsets.push((*t - slot).as_millis());
    }
    offsets.sort();
    offsets.dedup();
    assert!(offsets.len() > 20, "the delays differ: {offsets:?}");
    assert!(Job::builder("x")
        .backup(Backup::builder().source(source(None)).sink(sink.clone()))
        .schedule(Schedule::parse("* * * * *").unwrap())
        .jitter(Duration::from_secs(60))
        .build()
        .unwrap_err()
        .to_string()
        .contains("jitter"));
    cancel.cancel();
    s.wait().await;
}

#[tokio::test(start_paused = true)]
async fn catch_up_runs_once_after_downtime_and_not_when_on_time() {
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    // A backup of job d made now (real time).
    let first = job("d", sink.clone(), source(None), "0 3 * * *")
        .catch_up(true)
        .build()
        .unwrap();
    let out = first
        .run(
            JobOperation::Backup,
            Trigger::Manual,
            CancellationToken::new(),
            &[],
        )
        .await;
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(backups(sink.clone()).await, 1);
    for (ahead_hours, want) in [(72i64, 1usize), (1, 0)] {
        let t0 = Instant::now();
        let log = Log::default();
        let cancel = CancellationToken::new();
        // Started `ahead` hours after that backup, daily at 03:00: three days of downtime
        // make one catch-up run, not three; an hour makes none.
        let start = time::OffsetDateTime::now_utc() + time::Duration::hours(ahead_hours);
        let s = Scheduler::new()
            .job(
                job("d", sink.clone(), source(None), "0 3 * * *")
                    .catch_up(true)
                    .build()
                    .unwrap(),
            )
            .subscribe(log.subscriber(t0))
            .start_time(start)
            .start(cancel.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        settle().await;
        eventually("the catch-up run ends", || log.finished("d").len() == want).await;
        let runs = log.started("d");
        assert_eq!(runs.len(), want, "{ahead_hours} h: {runs:?}");
        assert!(runs.iter().all(|(_, t)| t == "catch-up"));
        cancel.cancel();
        s.wait().await;
    }
    assert_eq!(backups(sink.clone()).await, 2);
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_backup_commits_nothing_and_waits_for_it() {
    let t0 = Instant::now();
    let log = Log::default();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let gate = Arc::new(Semaphore::new(0));
    let cancel = CancellationToken::new();
    let s = Scheduler::new()
        .job(
            job("s", sink.clone(), source(Some(gate)), "*/5 * * * * *")
                .build()
                .unwrap(),
        )
        .subscribe(log.subscriber(t0))
        .start_time(time::macros::datetime!(2026-12-03 10:00:01 UTC))
        .start(cancel.clone());
    step(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(log.started("s").len(), 1);
    assert!(s.job("s").unwrap().is_running());
    cancel.cancel();
    s.wait().await;
    assert_eq!(log.finished("s")[0].0, "cancelled");
    assert_eq!(backups(sink.clone()).await, 0, "no manifest");
    let objects = sink.list("").await.unwrap();
    assert!(
        objects.iter().all(|o| !o.key.contains("manifest")),
        "{objects:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_now_pause_and_reload() {
    let t0 = Instant::now();
    let log = Log::default();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let cancel = CancellationToken::new();
    let s = Scheduler::new()
        .job(
            job("p", sink.clone(), source(None), "0 0 * * *")
                .build()
                .unwrap(),
        )
        .subscribe(log.subscriber(t0))
        .start_time(time::macros::datetime!(2026-12-03 10:00:00 UTC))
        .start(cancel.clone());
    let h = s.job("p").unwrap();
    h.run_now(JobOperation::Backup);
    tokio::time::sleep(Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(
        log.started("p"),
        vec![(log.started("p")[0].0, "manual".to_owned())]
    );
    // Paused: the midnight run is skipped and said so.
    h.pause();
    tokio::time::sleep(Duration::from_secs(14 * 3600 + 1)).await;
    settle().await;
    assert_eq!(log.skipped("p", "paused"), 1);
    h.resume();
    // Reload: p goes, q comes (every minute).
    s.reload(vec![job("q", sink.clone(), source(None), "* * * * *")
        .build()
        .unwrap()]);
    assert_eq!(s.job_names(), vec!["q".to_owned()]);
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle().await;
    assert_eq!(log.started("q").len(), 1);
    assert_eq!(log.started("p").len(), 1);
    cancel.cancel();
    s.wait().await;
}

#[tokio::test]
async fn hooks_see_the_run_and_a_failing_before_hook_aborts_it() {
    let dir = std::env::temp_dir().join(format!("dbbackup-hooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let env_file = |n: &str| dir.join(n);
    let j = job("h", sink.clone(), source(None), "@daily")
        .before(command_hook(format!(
            "env > {}",
            env_file("before").display()
        )))
        .after(command_hook(format!(
            "env > {}",
            env_file("after").display()
        )))
        .keep(KeepPolicy {
            keep_last: Some(1),
            ..KeepPolicy::default()
        })
        .build()
        .unwrap();
    for _ in 0..2 {
        let out = j
            .run(
                JobOperation::Backup,
                Trigger::Manual,
                CancellationToken::new(),
                &[],
            )
            .await;
        assert!(out.succeeded(), "{out:?}");
    }
    // keep-last 1 after each backup.
    assert_eq!(backups(sink.clone()).await, 1);
    let before = std::fs::read_to_string(env_file("before")).unwrap();
    assert!(before.contains("DBBACKUP_JOB=h"), "{before}");
    assert!(before.contains("DBBACKUP_HOOK=before"));
    assert!(before.contains("DBBACKUP_STATUS=running"));
    let after = std::fs::read_to_string(env_file("after")).unwrap();
    assert!(after.contains("DBBACKUP_STATUS=succeeded"), "{after}");
    assert!(after.contains("DBBACKUP_BACKUP_ID=2"), "{after}");
    assert!(after.contains("DBBACKUP_RAW_BYTES=4096"), "{after}");

    // A failing before hook: no backup, the message passed on, on-failure told.
    let failed = Arc::new(Mutex::new(None));
    let f2 = failed.clone();
    let j = job("h", sink.clone(), source(None), "@daily")
        .before(command_hook("echo 'replica lag too high' >&2; exit 4"))
        .on_failure(hook(move |c| {
            let f2 = f2.clone();
            async move {
                *f2.lock().unwrap() = Some(c);
                Ok(())
            }
        }))
        .build()
        .unwrap();
    let out = j
        .run(
            JobOperation::Backup,
            Trigger::Manual,
            CancellationToken::new(),
            &[],
        )
        .await;
    assert_eq!(out.status, "failed");
    let e = out.error.unwrap();
    assert!(
        e.contains("before hook") && e.contains("replica lag too high"),
        "{e}"
    );
    assert_eq!(backups(sink.clone()).await, 1);
    let c = failed.lock().unwrap().clone().unwrap();
    assert_eq!((c.status.as_str(), c.job.as_str()), ("failed", "h"));
    assert!(c.error.unwrap().contains("replica lag"));

    // A hook past its time limit fails the run.
    let j = job("h", sink.clone(), source(None), "@daily")
        .before(command_hook("sleep 5"))
        .hook_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let out = j
        .run(
            JobOperation::Backup,
            Trigger::Manual,
            CancellationToken::new(),
            &[],
        )
        .await;
    assert!(out.error.unwrap().contains("did not finish within"));
    std::fs::remove_dir_all(&dir).unwrap();
}
