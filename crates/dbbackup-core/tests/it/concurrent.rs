//! Concurrent operations never lose a committed backup.

use std::sync::Arc;
use std::time::Duration;

use dbbackup_core::testing::ScriptedSource;
use dbbackup_core::{
    Action, Backup, Decision, ErrorKind, MemorySink, Repository, RetentionPlan, Sink,
};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::{backup, sample_source};

fn paused_source(gate: &Arc<Semaphore>) -> ScriptedSource {
    ScriptedSource::new("scripted")
        .entry("data/a", vec![b'a'; 100_000])
        .generated("data/b", 300_000)
        .pause_after("data/b", 100_000, gate.clone())
        .chunk_size(10_000)
}

fn spawn_backup(
    sink: &MemorySink,
    source: ScriptedSource,
) -> tokio::task::JoinHandle<dbbackup_core::Result<dbbackup_core::BackupReport>> {
    let b = Backup::builder()
        .source(source)
        .sink(Arc::new(sink.clone()))
        .jobs(1)
        .build()
        .unwrap();
    tokio::spawn(async move { b.run().await })
}

async fn wait_for(sink: &MemorySink, what: impl Fn(&str) -> bool) {
    for _ in 0..2000 {
        if sink.keys().iter().any(|k| what(k)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out; keys: {:?}", sink.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_spares_a_running_backup_however_old_its_entries_are() {
    let sink = MemorySink::new();
    let gate = Arc::new(Semaphore::new(0));
    let run = spawn_backup(&sink, paused_source(&gate));
    wait_for(&sink, |k| k.ends_with("/entries/000000")).await;
    wait_for(&sink, |k| k.ends_with("/LEASE")).await;
    // Every object of the running backup is "older" than a zero grace period: only the lease
    // keeps gc off it.
    let repo = Repository::new(Arc::new(sink.clone()));
    let report = repo
        .gc(
            Duration::ZERO,
            OffsetDateTime::now_utc() + Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.running.len(), 1);
    gate.add_permits(1);
    let done = run.await.unwrap().unwrap();
    // Committed, complete, and the lease is gone.
    assert!(!sink.keys().iter().any(|k| k.ends_with("/LEASE")));
    crate::verify_ok(&sink, done.backup_id()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_whose_entry_vanished_is_not_committed() {
    let sink = MemorySink::new();
    let gate = Arc::new(Semaphore::new(0));
    let run = spawn_backup(&sink, paused_source(&gate));
    wait_for(&sink, |k| k.ends_with("/entries/000000")).await;
    // Someone (an old gc without leases, an operator) removes the finished entry.
    let key = sink
        .keys()
        .into_iter()
        .find(|k| k.ends_with("/entries/000000"))
        .unwrap();
    sink.delete(&key).await.unwrap();
    gate.add_permits(1);
    let e = run.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Sink, "{e}");
    assert!(e.to_string().contains("vanished"), "{e}");
    let repo = Repository::new(Arc::new(sink.clone()));
    assert!(repo.backup_ids().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_the_parent_of_a_running_backup_and_two_prunes_both_finish() {
    let sink = MemorySink::new();
    let full = backup(&sink, sample_source(), None).await.unwrap();
    let newer = backup(&sink, sample_source(), None).await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let run = spawn_backup(&sink, paused_source(&gate).with_parent(full.backup_id()));
    wait_for(&sink, |k| k.ends_with("/LEASE")).await;
    let lease = sink
        .keys()
        .into_iter()
        .find(|k| k.ends_with("/LEASE"))
        .unwrap();
    let running = lease.trim_end_matches("LEASE").to_owned();
    wait_for(&sink, |k| k == format!("{running}entries/000000")).await;
    let repo = Repository::new(Arc::new(sink.clone()));
    let plan = RetentionPlan {
        decisions: vec![
            Decision {
                backup_id: full.backup_id().to_owned(),
                action: Action::Delete,
                reasons: vec!["test".into()],
                group: String::new(),
            },
            Decision {
                backup_id: newer.backup_id().to_owned(),
                action: Action::Keep,
                reasons: vec!["test".into()],
                group: String::new(),
            },
        ],
    };
    let deleted = repo.apply(&plan).await.unwrap();
    assert!(
        deleted.is_empty(),
        "the running backup's parent was deleted"
    );
    gate.add_permits(1);
    let child = run.await.unwrap().unwrap();
    assert_eq!(child.manifest.parent.as_deref(), Some(full.backup_id()));

    // Now nothing runs: two prunes of the same plan at once both succeed.
    let (a, b) = tokio::join!(repo.apply(&plan), repo.apply(&plan));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, vec![full.backup_id().to_owned()]);
    assert_eq!(b, a);
    assert_eq!(repo.backup_ids().await.unwrap().len(), 2);
}
