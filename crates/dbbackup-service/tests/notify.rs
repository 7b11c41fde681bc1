//! The notifier's rules: one notification per failure streak, recovery after it, success when
//! asked, staleness once per stale period, and retries of temporary delivery failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dbbackup_core::{CancellationToken, Error, ErrorKind, Event, Result, Subscriber};
use dbbackup_service::{Channel, Notification, Notifier, NotifyOn};

/// Collects what it is sent; refuses (temporarily) the first `refuse` attempts.
struct Inbox {
    got: Mutex<Vec<Notification>>,
    attempts: Mutex<usize>,
    refuse: usize,
}

#[async_trait]
impl Channel for Inbox {
    fn describe(&self) -> String {
        "inbox".into()
    }
    async fn send(&self, n: &Notification) -> Result<()> {
        let mut a = self.attempts.lock().unwrap();
        *a += 1;
        if *a <= self.refuse {
            return Err(Error::new(ErrorKind::Io, "busy").temporary());
        }
        self.got.lock().unwrap().push(n.clone());
        Ok(())
    }
}

fn finished(job: &str, status: &str) -> Event {
    Event::JobFinished {
        job: job.into(),
        operation: "backup".into(),
        status: status.into(),
        backup_id: None,
        raw_bytes: 0,
        stored_bytes: 0,
        pruned: Vec::new(),
        elapsed: Duration::from_secs(1),
        error: (status == "failed").then(|| "connection refused".into()),
        restore_time: None,
    }
}

async fn kinds(inbox: &Inbox, want: usize) -> Vec<(String, String)> {
    for _ in 0..100 {
        if inbox.got.lock().unwrap().len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    inbox
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|n| (n.kind.clone(), n.job.clone()))
        .collect()
}

#[tokio::test]
async fn failures_notify_once_per_streak_then_recovery_and_success_when_asked() {
    let inbox = Arc::new(Inbox {
        got: Mutex::default(),
        attempts: Mutex::default(),
        refuse: 1,
    });
    let n = Notifier::builder()
        .retries(3, Duration::from_millis(10))
        .channel(
            inbox.clone(),
            &[NotifyOn::Failure, NotifyOn::Recovery, NotifyOn::Success],
        )
        .start(CancellationToken::new());
    n.on_event(&finished("app", "failed"));
    n.on_event(&finished("app", "failed"));
    n.on_event(&finished("app", "succeeded"));
    n.on_event(&finished("app", "succeeded"));
    n.on_event(&finished("app", "cancelled"));
    let got = kinds(&inbox, 4).await;
    let k: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(k, ["failure", "recovery", "success", "success"], "{got:?}");
    // The first attempt was refused and retried.
    assert_eq!(*inbox.attempts.lock().unwrap(), 5);
    let first = inbox.got.lock().unwrap()[0].clone();
    assert_eq!(first.error.as_deref(), Some("connection refused"));
    assert!(first.text.contains("job app: backup FAILED"), "{first:?}");
}

#[tokio::test]
async fn a_stale_job_is_told_once_and_its_next_backup_is_a_recovery() {
    let inbox = Arc::new(Inbox {
        got: Mutex::default(),
        attempts: Mutex::default(),
        refuse: 0,
    });
    let cancel = CancellationToken::new();
    let n = Notifier::builder()
        .stale_after(Duration::from_millis(300))
        .channel(inbox.clone(), &[NotifyOn::Stale, NotifyOn::Recovery])
        .start(cancel.clone());
    n.seed_backup(
        "app",
        time::OffsetDateTime::now_utc() - time::Duration::seconds(5),
    );
    n.seed_backup(
        "fresh",
        time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    );
    let got = kinds(&inbox, 1).await;
    assert_eq!(got, [("stale".to_owned(), "app".to_owned())]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(inbox.got.lock().unwrap().len(), 1, "told once");
    n.on_event(&finished("app", "succeeded"));
    let got = kinds(&inbox, 2).await;
    assert_eq!(got[1], ("recovery".to_owned(), "app".to_owned()));
    cancel.cancel();
}

#[tokio::test]
async fn flush_waits_for_what_is_queued_retries_included() {
    let inbox = Arc::new(Inbox {
        got: Mutex::default(),
        attempts: Mutex::default(),
        refuse: 2,
    });
    let cancel = CancellationToken::new();
    let n = Notifier::builder()
        .retries(3, Duration::from_millis(200))
        .channel(inbox.clone(), &[NotifyOn::Failure])
        .start(cancel.clone());
    n.on_event(&finished("app", "failed"));
    // The daemon stops: cancelled, then flushed; the delivery (after two refusals, 200 + 400 ms
    // of backoff) is made before flush returns.
    cancel.cancel();
    assert!(n.flush(Duration::from_secs(10)).await);
    assert_eq!(inbox.got.lock().unwrap().len(), 1);
    // A channel that never takes it: flush gives up at its limit.
    let stuck = Arc::new(Inbox {
        got: Mutex::default(),
        attempts: Mutex::default(),
        refuse: usize::MAX,
    });
    let n = Notifier::builder()
        .retries(50, Duration::from_millis(100))
        .channel(stuck, &[NotifyOn::Failure])
        .start(CancellationToken::new());
    n.on_event(&finished("app", "failed"));
    let t0 = std::time::Instant::now();
    assert!(!n.flush(Duration::from_millis(300)).await);
    assert!(t0.elapsed() < Duration::from_secs(5));
}
