use std::sync::Arc;

use dbbackup_core::{
    Action, BackupSelector, Decision, ErrorKind, Key, MemorySink, PutMode, Repository,
    RetentionPlan, SinkExt, CONFIG_KEY,
};

use crate::{backup, fast_kdf, id, raw_key, sample_source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_latest_lookup_and_delete() {
    let sink = MemorySink::new();
    let repo = Repository::new(Arc::new(sink.clone()));
    assert!(repo.config().await.unwrap().is_none());
    let e = repo.latest().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("no committed backup"), "{e}");

    let r1 = backup(&sink, sample_source(), None).await.unwrap();
    let r2 = backup(&sink, sample_source(), None).await.unwrap();
    let r3 = backup(&sink, sample_source(), None).await.unwrap();
    assert!(
        repo.config().await.unwrap().is_some(),
        "the first backup creates the config"
    );
    let ids: Vec<String> = repo
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.backup_id)
        .collect();
    assert_eq!(ids, vec![r1.backup_id(), r2.backup_id(), r3.backup_id()]);
    assert_eq!(repo.latest().await.unwrap().backup_id, r3.backup_id());
    assert_eq!(repo.manifest(r2.backup_id()).await.unwrap(), r2.manifest);
    let summaries = repo.summaries().await.unwrap();
    assert_eq!(summaries[1].entries, 5);
    assert_eq!(summaries[1].raw_size, r2.manifest.raw_size());

    repo.delete_backup(r2.backup_id()).await.unwrap();
    assert_eq!(repo.list().await.unwrap().len(), 2);
    assert!(sink.keys().iter().all(|k| !k.contains(r2.backup_id())));
    let e = repo.delete_backup(r2.backup_id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = repo
        .manifest("20990101T000000.000Z-abcdef")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("dbbackup list"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_plan_deletes_manifest_first_and_spares_the_newest() {
    let sink = MemorySink::new();
    let repo = Repository::new(Arc::new(sink.clone()));
    let r1 = backup(&sink, sample_source(), None).await.unwrap();
    let r2 = backup(&sink, sample_source(), None).await.unwrap();
    let plan = |ids: &[(&str, Action)]| RetentionPlan {
        decisions: ids
            .iter()
            .map(|(id, a)| Decision {
                backup_id: id.to_string(),
                action: *a,
                reasons: vec!["test".into()],
                group: String::new(),
            })
            .collect(),
    };
    let e = repo
        .apply(&plan(&[(r2.backup_id(), Action::Delete)]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("newest"), "{e}");
    let deleted = repo
        .apply(&plan(&[
            (r1.backup_id(), Action::Delete),
            (r2.backup_id(), Action::Keep),
        ]))
        .await
        .unwrap();
    assert_eq!(deleted, vec![r1.backup_id().to_owned()]);
    assert_eq!(repo.list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_rewraps_manifests_only_and_is_resumable() {
    let sink = MemorySink::new();
    let repo = Repository::new(Arc::new(sink.clone()));
    repo.init(Some(fast_kdf())).await.unwrap();
    let old = Key::passphrase("old secret");
    let r1 = backup(&sink, sample_source(), Some(&old)).await.unwrap();
    let r2 = backup(&sink, sample_source(), Some(&old)).await.unwrap();
    let data_before: Vec<_> = r1
        .manifest
        .entries
        .iter()
        .map(|e| sink.get_raw(&e.object).unwrap())
        .collect();

    let new = raw_key();
    let e = repo
        .rekey(&Key::passphrase("not it"), &new)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");

    let report = repo.rekey(&old, &new).await.unwrap();
    let both = vec![r1.backup_id().to_owned(), r2.backup_id().to_owned()];
    assert_eq!(report.rekeyed, both);
    assert!(report.unencrypted.is_empty());
    let data_after: Vec<_> = r1
        .manifest
        .entries
        .iter()
        .map(|e| sink.get_raw(&e.object).unwrap())
        .collect();
    assert_eq!(
        data_before, data_after,
        "rekey must not rewrite data objects"
    );

    let verify = |k: Key| {
        let sink = sink.clone();
        let sel = id(&r1);
        async move {
            dbbackup_core::Verify::builder()
                .sink(Arc::new(sink))
                .backup(sel)
                .key(k)
                .build()
                .unwrap()
                .run()
                .await
        }
    };
    verify(new.clone()).await.unwrap();
    assert_eq!(
        verify(old.clone()).await.unwrap_err().kind(),
        ErrorKind::WrongKey
    );
    // Re-running finds nothing left to do.
    let again = repo.rekey(&old, &new).await.unwrap();
    assert!(again.rekeyed.is_empty());
    assert_eq!(again.already, both);

    // And to a passphrase again.
    let newer = Key::passphrase("newer");
    repo.rekey(&new, &newer).await.unwrap();
    verify(newer).await.unwrap();
    let _ = BackupSelector::Latest;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_future_repositories_are_refused_clearly() {
    let sink = MemorySink::new();
    let repo = Repository::new(Arc::new(sink.clone()));
    let cfg = repo.init(Some(fast_kdf())).await.unwrap();
    let mut future = serde_json::to_value(&cfg).unwrap();
    future["format_version"] = 99.into();
    let body = serde_json::to_string(&future).unwrap();
    let seal = serde_json::json!({"blake3": blake3::hash(body.as_bytes()).to_hex().to_string()});
    sink.put_bytes(
        CONFIG_KEY,
        format!("{body}\n{seal}\n").into_bytes().into(),
        PutMode::Overwrite,
    )
    .await
    .unwrap();
    let e = repo.config().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("99"), "{e}");
    sink.set_raw(CONFIG_KEY, "not json");
    assert_eq!(repo.config().await.unwrap_err().kind(), ErrorKind::Corrupt);
}
