use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbbackup_core::testing::{MemoryTarget, ScriptedSource};
use dbbackup_core::{
    Backup, BackupSelector, CancellationToken, ChecksumAlgorithm, ErrorKind, Event, Key,
    MemorySink, Operation, Repository, Restore, Sink, TransformSpec, Verify, Zstd,
};
use proptest::prelude::*;

use crate::{backup, fast_kdf, id, raw_key, sample_source};

async fn restore_into(
    sink: &MemorySink,
    sel: BackupSelector,
    key: Option<Key>,
) -> dbbackup_core::Result<MemoryTarget> {
    let target = MemoryTarget::new();
    let mut r = Restore::builder()
        .sink(Arc::new(sink.clone()))
        .backup(sel)
        .target(target.clone())
        .jobs(2);
    if let Some(k) = key {
        r = r.key(k);
    }
    r.build()?.run().await?;
    Ok(target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_backup_restores_byte_for_byte_in_phase_order() {
    let sink = MemorySink::new();
    let key = Key::passphrase("correct horse battery staple");
    let source = sample_source();
    let report = backup(&sink, source.clone(), Some(&key)).await.unwrap();
    let m = &report.manifest;
    assert_eq!(m.format_version, 1);
    assert_eq!(m.source.engine, "scripted");
    assert_eq!(
        m.source.position.get("scripted").map(String::as_str),
        Some("0")
    );
    assert_eq!(m.checksum, ChecksumAlgorithm::Blake3Keyed);
    assert!(matches!(
        m.transforms[0],
        TransformSpec::Zstd { level: 3, .. }
    ));
    assert!(matches!(
        m.transforms[1],
        TransformSpec::Aes256GcmStream { chunk_size: 1024 }
    ));
    let enc = m.encryption.as_ref().expect("encryption info");
    assert!(
        enc.kdf.is_some(),
        "a passphrase backup records its Argon2id setup"
    );
    assert_eq!(m.entries.len(), 5);
    let a = m.entry("data/a").unwrap();
    assert_eq!(a.raw_size, 2_500_000);
    assert!(
        a.stored_size < a.raw_size,
        "zstd should shrink generated text"
    );
    assert!(
        a.rows.unwrap() > 0,
        "the scripted source counts newlines as rows"
    );
    assert!(m.started_at <= m.finished_at);

    let target = restore_into(&sink, id(&report), Some(key)).await.unwrap();
    let mut expected = vec![0u8; 2_500_000];
    dbbackup_core::testing::generate_into(7, &mut expected);
    assert_eq!(target.entry("data/a").unwrap(), expected);
    assert_eq!(target.entry("data/b").unwrap(), b"1\n2\n3\n");
    assert_eq!(target.entry("data/empty").unwrap(), b"");
    let order = target.order();
    assert_eq!(order.first().unwrap().1, "pre-data");
    assert_eq!(order.last().unwrap().1, "post-data");
    assert!(
        order.windows(2).all(|w| w[0].0 <= w[1].0),
        "phases out of order: {order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unencrypted_backup_roundtrips_and_needs_no_key() {
    let sink = MemorySink::new();
    let report = backup(&sink, sample_source(), None).await.unwrap();
    assert!(report.manifest.encryption.is_none());
    assert_eq!(report.manifest.checksum, ChecksumAlgorithm::Blake3);
    let target = restore_into(&sink, BackupSelector::Latest, None)
        .await
        .unwrap();
    assert_eq!(target.entry("data/b").unwrap(), b"1\n2\n3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_restore_takes_only_chosen_entries() {
    let sink = MemorySink::new();
    backup(&sink, sample_source(), None).await.unwrap();
    let target = MemoryTarget::new();
    Restore::builder()
        .sink(Arc::new(sink.clone()))
        .target(target.clone())
        .filter(|e| e.name == "data/b" || e.kind == dbbackup_core::EntryKind::PreData)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(
        target.names(),
        vec!["data/b".to_owned(), "pre-data".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_wrong_passphrase_say_wrong_key() {
    let sink = MemorySink::new();
    let pass = Key::passphrase("right");
    let r1 = backup(&sink, sample_source(), Some(&pass)).await.unwrap();
    for wrong in [Key::passphrase("wrong"), raw_key()] {
        let e = restore_into(&sink, id(&r1), Some(wrong.clone()))
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
        assert!(e.to_string().contains("wrong"), "{e}");
        assert!(e.to_string().contains(r1.backup_id()), "{e}");
        let e = Verify::builder()
            .sink(Arc::new(sink.clone()))
            .backup(id(&r1))
            .key(wrong)
            .build()
            .unwrap()
            .run()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WrongKey);
    }
    let e = restore_into(&sink, id(&r1), None).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::WrongKey);
    assert!(e.to_string().contains("is encrypted"), "{e}");

    // One repository, one key: a backup under another key is refused, before the database is read.
    let raw = raw_key();
    let e = backup(&sink, sample_source(), Some(&raw))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    assert!(e.to_string().contains("wrong key for repository"), "{e}");

    let other = MemorySink::new();
    let r2 = backup(&other, sample_source(), Some(&raw)).await.unwrap();
    let e = restore_into(&other, id(&r2), Some(Key::passphrase("right")))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::WrongKey);
    assert!(e.to_string().contains("raw key"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_failing_halfway_commits_nothing_and_leaves_no_objects() {
    let sink = MemorySink::new();
    let source = sample_source().fail_after("data/a", 1_000_000);
    let e = backup(&sink, source, Some(&raw_key())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    assert_eq!(e.entry(), Some("data/a"), "{e}");
    assert!(e.backup().is_some());
    let repo = Repository::new(Arc::new(sink.clone()));
    assert!(
        repo.list().await.unwrap().is_empty(),
        "a failed backup is listed"
    );
    assert_eq!(repo.latest().await.unwrap_err().kind(), ErrorKind::NotFound);
    let leftovers: Vec<_> = sink
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("backups/"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "objects of the failed backup remain: {leftovers:?}"
    );

    let e = backup(&sink, sample_source().fail_open(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_by_token_and_by_drop_commits_nothing() {
    let sink = MemorySink::new();
    let token = CancellationToken::new();
    let b = Backup::builder()
        .source(sample_source().stall_after("data/a", 1_500_000))
        .sink(Arc::new(sink.clone()))
        .transform(Zstd::new(1))
        .cancel_token(token.clone())
        .kdf_params(fast_kdf())
        .build()
        .unwrap();
    let t2 = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        t2.cancel();
    });
    let e = b.run().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    let repo = Repository::new(Arc::new(sink.clone()));
    assert!(repo.list().await.unwrap().is_empty());

    // Dropping the future: nothing committed; gc removes what remains once past the grace period.
    let b = Backup::builder()
        .source(sample_source().stall_after("data/a", 1_500_000))
        .sink(Arc::new(sink.clone()))
        .jobs(4)
        .build()
        .unwrap();
    let r = tokio::time::timeout(Duration::from_millis(300), b.run()).await;
    assert!(r.is_err(), "the stalled backup should not finish");
    assert!(repo.list().await.unwrap().is_empty());
    let leftovers = sink
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("backups/"))
        .count();
    let now = time::OffsetDateTime::now_utc();
    let report = repo.gc(Duration::from_secs(3600), now).await.unwrap();
    assert!(
        report.deleted.is_empty(),
        "gc must spare objects within the grace period"
    );
    let report = repo
        .gc(Duration::from_secs(3600), now + Duration::from_secs(7200))
        .await
        .unwrap();
    assert_eq!(report.deleted.len(), leftovers);
    assert_eq!(
        sink.keys()
            .into_iter()
            .filter(|k| k.starts_with("backups/"))
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_describe_the_run() {
    let sink = MemorySink::new();
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let ev = events.clone();
    let report = Backup::builder()
        .source(sample_source())
        .sink(Arc::new(sink.clone()))
        .subscribe(move |e: &Event| ev.lock().unwrap().push(e.clone()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let events = events.lock().unwrap().clone();
    assert!(matches!(
        &events[0],
        Event::Started {
            operation: Operation::Backup,
            entries: 5,
            ..
        }
    ));
    assert!(
        matches!(events.last().unwrap(), Event::Finished { operation: Operation::Backup, backup_id, .. } if backup_id == report.backup_id())
    );
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::EntryFinished { .. }))
        .count();
    assert_eq!(finished, 5);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::EntryProgress { entry, .. } if entry == "data/a")));
    // Events serialize for `--json` consumers.
    let line = serde_json::to_string(&events[0]).unwrap();
    assert!(line.contains("\"event\":\"started\""), "{line}");

    let failed = Arc::new(Mutex::new(Vec::<Event>::new()));
    let f2 = failed.clone();
    let _ = Backup::builder()
        .source(sample_source().fail_after("data/a", 10))
        .sink(Arc::new(sink))
        .subscribe(move |e: &Event| f2.lock().unwrap().push(e.clone()))
        .build()
        .unwrap()
        .run()
        .await;
    assert!(matches!(
        failed.lock().unwrap().last().unwrap(),
        Event::Failed { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_rejects_bad_configuration_with_clear_messages() {
    let e = Backup::builder()
        .sink(Arc::new(MemorySink::new()))
        .build()
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains(".source("), "{e}");
    let e = Backup::builder()
        .source(ScriptedSource::new("x"))
        .sink(Arc::new(MemorySink::new()))
        .jobs(0)
        .build()
        .err()
        .unwrap();
    assert!(e.to_string().contains("jobs"), "{e}");
    let e = "../etc".parse::<BackupSelector>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// The full chain (checksum -> zstd -> AES) through the engine round-trips any bytes under any
    /// source chunking.
    #[test]
    fn full_chain_roundtrips_any_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..300_000),
        chunk in 1usize..200_000,
        level in 1i32..5,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let sink = MemorySink::new();
            let key = raw_key();
            let report = Backup::builder()
                .source(ScriptedSource::new("p").entry("e", data.clone()).chunk_size(chunk))
                .sink(Arc::new(sink.clone()) as Arc<dyn Sink>)
                .transform(Zstd::new(level))
                .encryption(key.clone())
                .encryption_chunk_size(1024)
                .build().unwrap().run().await.unwrap();
            let target = restore_into(&sink, id(&report), Some(key)).await.unwrap();
            assert_eq!(target.entry("e").unwrap(), data);
        });
    }
}

/// Applications spawn backups on their own runtime: the operations' futures must be `Send + 'static`
/// once built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_can_be_spawned() {
    let sink = MemorySink::new();
    let b = Backup::builder()
        .source(sample_source())
        .sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    let report = tokio::spawn(async move { b.run().await })
        .await
        .unwrap()
        .unwrap();
    let v = Verify::builder()
        .sink(Arc::new(sink.clone()))
        .build()
        .unwrap();
    tokio::spawn(async move { v.run().await })
        .await
        .unwrap()
        .unwrap();
    let r = Restore::builder()
        .sink(Arc::new(sink))
        .backup(id(&report))
        .target(MemoryTarget::new())
        .build()
        .unwrap();
    tokio::spawn(async move { r.run().await })
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_source_reports_server_progress_and_its_parent() {
    let sink = MemorySink::new();
    let full = backup(&sink, sample_source(), None).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let source = sample_source()
        .with_parent(full.backup_id())
        .with_server_progress(vec![10.0, 100.0, 250.0]);
    let incr = Backup::builder()
        .source(source.clone())
        .sink(Arc::new(sink.clone()) as Arc<dyn Sink>)
        .subscribe(move |e: &Event| ev.lock().unwrap().push(e.clone()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(incr.manifest.parent.as_deref(), Some(full.backup_id()));
    let progress: Vec<(String, f64)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::ServerProgress {
                backup_id,
                percent,
                operation: Operation::Backup,
                ..
            } => Some((backup_id.clone(), *percent)),
            _ => None,
        })
        .collect();
    let id = incr.backup_id().to_owned();
    assert_eq!(
        progress,
        [(id.clone(), 10.0), (id.clone(), 100.0), (id, 100.0)],
        "percentages are clamped to 0..=100"
    );
    // A parent given to the builder wins over the source's.
    let other = backup(&sink, sample_source(), None).await.unwrap();
    let explicit = Backup::builder()
        .source(source)
        .sink(Arc::new(sink.clone()) as Arc<dyn Sink>)
        .parent(other.backup_id())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(explicit.manifest.parent.as_deref(), Some(other.backup_id()));
}
