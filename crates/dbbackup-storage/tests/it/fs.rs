use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dbbackup_core::testing::conformance;
use dbbackup_core::{PutMode, Sink, SinkExt};
use dbbackup_storage::{open_sink, FsSink, MemorySink};

use crate::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_sink_passes_the_sink_suite() {
    let dir = TempDir::new("fs-suite");
    let sink: Arc<dyn Sink> = Arc::new(FsSink::new(dir.0.join("repo")).unwrap());
    conformance::sink_suite(sink).await;
    // Through the URL constructor too.
    let sink = open_sink(&format!("file://{}", dir.0.join("repo2").display())).unwrap();
    conformance::put_get_list_delete(sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sink_passes_the_sink_suite() {
    conformance::sink_suite(Arc::new(MemorySink::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_directories_are_owner_only_and_temporaries_invisible() {
    let dir = TempDir::new("fs-perms");
    let root = dir.0.join("repo");
    let sink = FsSink::new(&root).unwrap();
    sink.put_bytes(
        "backups/x/entries/000000",
        Bytes::from("data"),
        PutMode::Create,
    )
    .await
    .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.join("backups/x/entries/000000")), 0o600);
    assert_eq!(mode(&root.join("backups/x/entries")), 0o700);
    assert_eq!(mode(&root.join("backups")), 0o700);

    let mut w = sink
        .put("backups/x/entries/000001", PutMode::Create)
        .await
        .unwrap();
    w.write(Bytes::from(vec![1u8; 1000])).await.unwrap();
    let temps: Vec<_> = std::fs::read_dir(root.join("backups/x/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(temps.len(), 1, "the write goes to one temporary file");
    assert_eq!(
        sink.list("backups/").await.unwrap().len(),
        1,
        "temporaries are not listed"
    );
    // gc spares young temporaries and removes old ones.
    let now = time::OffsetDateTime::now_utc();
    assert!(sink
        .collect_garbage(Duration::from_secs(60), now)
        .await
        .unwrap()
        .is_empty());
    let removed = sink
        .collect_garbage(Duration::from_secs(60), now + Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    drop(w);

    // Bad keys are refused rather than escaping the root.
    for bad in ["../x", "/abs", "a//b", ".hidden", "a/./b"] {
        assert!(
            sink.put(bad, PutMode::Create).await.is_err(),
            "{bad} accepted"
        );
    }
    // A path that is a file is refused clearly.
    std::fs::write(dir.0.join("file"), "x").unwrap();
    let e = FsSink::new(dir.0.join("file")).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
}

/// The child side of the SIGKILL test: writes 1 MiB objects in a loop until killed.
#[test]
fn sigkill_child_writer() {
    let Ok(root) = std::env::var("DBBACKUP_SIGKILL_ROOT") else {
        return; // Only does something when started by the test below.
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sink = FsSink::new(root).unwrap();
        for i in 0.. {
            let mut w = sink
                .put(&format!("objects/o{i:06}"), PutMode::Create)
                .await
                .unwrap();
            for j in 0..16u8 {
                w.write(Bytes::from(vec![j; 65_536])).await.unwrap();
                // Slow writes keep a temporary open nearly all the time (on a fast disk a whole
                // object took microseconds, and 12 kills all fell between two objects).
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            w.complete().await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_with_sigkill_never_leaves_a_partial_object() {
    let dir = TempDir::new("fs-sigkill");
    let root = dir.0.join("repo");
    let temporaries = || {
        std::fs::read_dir(root.join("objects"))
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().starts_with('.'))
                })
                .count()
            })
            .unwrap_or(0)
    };
    // At least three kills, and more until one lands mid-write (leaves a temporary): a kill can
    // fall between two objects, so a fixed number of rounds would make the gc check below flaky.
    for round in 0..12u64 {
        if round >= 3 && temporaries() > 0 {
            break;
        }
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "fs::sigkill_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DBBACKUP_SIGKILL_ROOT", &root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Let it get going, then kill at a different moment each round.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::read_dir(root.join("objects"))
            .map(|d| d.count())
            .unwrap_or(0)
            < 3
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never started writing"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(37 * (round % 4))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let sink = FsSink::new(&root).unwrap();
    let listed = sink.list("objects/").await.unwrap();
    assert!(!listed.is_empty());
    for o in &listed {
        assert_eq!(o.size, 16 * 65_536, "{} is partial", o.key);
        let data = sink.get_bytes(&o.key).await.unwrap();
        for (j, chunk) in data.chunks(65_536).enumerate() {
            assert!(
                chunk.iter().all(|&b| b == j as u8),
                "{} has wrong content",
                o.key
            );
        }
    }
    // The killed writes left temporaries, which gc removes once past the grace period.
    let left = temporaries();
    assert!(left > 0, "no kill in 12 landed mid-write");
    let later = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    let removed = sink
        .collect_garbage(Duration::from_secs(60), later)
        .await
        .unwrap();
    assert_eq!(
        removed.len(),
        left,
        "every temporary a SIGKILL left is collected"
    );
    assert_eq!(temporaries(), 0);
}
