//! Attacks by someone with write access to the storage but no key: each must be refused.

use std::sync::Arc;

use dbbackup_core::testing::{MemoryTarget, ScriptedSource};
use dbbackup_core::{
    manifest_key, Backup, BackupSelector, BackupStatus, ErrorKind, KdfParams, Key, MemorySink,
    Repository, Restore, Sink, Verify, Zstd, CONFIG_KEY,
};

use crate::{backup, id, raw_key, sample_source};

fn planted_source() -> ScriptedSource {
    ScriptedSource::new("scripted").entry("data/a", &b"DROP TABLE users; -- planted"[..])
}

/// Copies every object of `from`'s backups into `to`, as an attacker with write access would.
fn plant(from: &MemorySink, to: &MemorySink) {
    for k in from.keys() {
        if k.starts_with("backups/") {
            to.set_raw(&k, from.get_raw(&k).unwrap());
        }
    }
}

fn repo(sink: &MemorySink, key: Option<&Key>) -> Repository {
    Repository::new(Arc::new(sink.clone()) as Arc<dyn Sink>).with_key(key.cloned())
}

async fn restore_latest(
    sink: &MemorySink,
    key: Option<&Key>,
    allow_unencrypted: bool,
) -> dbbackup_core::Result<(dbbackup_core::RestoreReport, MemoryTarget)> {
    let target = MemoryTarget::new();
    let mut r = Restore::builder()
        .sink(Arc::new(sink.clone()))
        .target(target.clone())
        .allow_unencrypted(allow_unencrypted);
    if let Some(k) = key {
        r = r.key(k.clone());
    }
    let report = r.build()?.run().await?;
    Ok((report, target))
}

async fn verify_id(sink: &MemorySink, id: &str, key: &Key) -> dbbackup_core::Result<()> {
    Verify::builder()
        .sink(Arc::new(sink.clone()))
        .backup(BackupSelector::Id(id.to_owned()))
        .key(key.clone())
        .build()?
        .run()
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_unencrypted_backup_is_refused_by_every_reader() {
    for key in [Key::passphrase("right"), raw_key()] {
        let sink = MemorySink::new();
        let real = backup(&sink, sample_source(), Some(&key)).await.unwrap();
        let evil = MemorySink::new();
        let planted = backup(&evil, planted_source(), None).await.unwrap();
        assert!(planted.backup_id() > real.backup_id());
        plant(&evil, &sink);

        // `latest` restores the real backup and says what it passed over.
        let (report, target) = restore_latest(&sink, Some(&key), false).await.unwrap();
        assert_eq!(report.backup_id, real.backup_id());
        assert!(target.entry("data/a").unwrap().len() > 1000);
        assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
        assert_eq!(report.skipped[0].backup_id, planted.backup_id());
        assert_eq!(report.skipped[0].kind, "corrupt");

        // By id: refused as corrupt, by restore and verify.
        let target = MemoryTarget::new();
        let e = Restore::builder()
            .sink(Arc::new(sink.clone()))
            .target(target.clone())
            .backup(id(&planted))
            .key(key.clone())
            .build()
            .unwrap()
            .run()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("not sealed"), "{e}");
        assert!(target.names().is_empty(), "nothing of it was restored");
        let e = verify_id(&sink, planted.backup_id(), &key)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");

        // Without the key, the repository is still known to be encrypted.
        let e = restore_latest(&sink, None, false).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");

        // list marks it, retention does not count it, rekey refuses to run.
        let catalog = repo(&sink, Some(&key)).catalog().await.unwrap();
        let status: Vec<_> = catalog.entries.iter().map(|e| &e.status).collect();
        assert_eq!(status[0], &BackupStatus::Trusted);
        assert!(
            matches!(status[1], BackupStatus::Refused { kind, .. } if kind == "corrupt"),
            "{status:?}"
        );
        let summaries = repo(&sink, Some(&key)).summaries().await.unwrap();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].backup_id, real.backup_id());
        let e = repo(&sink, None).summaries().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let before = sink.get_raw(&manifest_key(real.backup_id())).unwrap();
        let e = repo(&sink, None).rekey(&key, &raw_key()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert_eq!(
            sink.get_raw(&manifest_key(real.backup_id())).unwrap(),
            before
        );

        // The documented opt-out for a mixed repository.
        let (report, _) = restore_latest(&sink, Some(&key), true).await.unwrap();
        assert_eq!(report.backup_id, planted.backup_id());

        // An unencrypted backup into the encrypted repository is refused too, unless allowed.
        let e = backup(&sink, sample_source(), None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("is encrypted"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_backup_under_another_key_is_refused_not_restored() {
    let key = raw_key();
    let sink = MemorySink::new();
    let real = backup(&sink, sample_source(), Some(&key)).await.unwrap();
    let evil = MemorySink::new();
    let planted = backup(&evil, planted_source(), Some(&raw_key()))
        .await
        .unwrap();
    plant(&evil, &sink);
    let (report, _) = restore_latest(&sink, Some(&key), false).await.unwrap();
    assert_eq!(report.backup_id, real.backup_id());
    assert_eq!(report.skipped[0].backup_id, planted.backup_id());
    let e = verify_id(&sink, planted.backup_id(), &key)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        e.to_string()
            .contains("not sealed by this repository's key"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_passphrase_starts_no_second_key() {
    let sink = MemorySink::new();
    backup(&sink, sample_source(), Some(&Key::passphrase("right")))
        .await
        .unwrap();
    let wrong = Key::passphrase("rigth");
    let e = backup(&sink, sample_source(), Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    assert_eq!(repo(&sink, None).backup_ids().await.unwrap().len(), 1);

    // The message carries nothing derived from the passphrase given.
    let cfg = repo(&sink, None).config().await.unwrap().unwrap();
    let wrong_id = cfg.kdf.unwrap().derive("rigth").unwrap().key_id();
    assert!(!e.to_string().contains(&wrong_id), "{e}");
    let e = restore_latest(&sink, Some(&wrong), false)
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    assert!(!e.to_string().contains(&wrong_id), "{e}");
}

/// Rewrites the config body as an attacker would: the unkeyed checksum recomputed, the MAC kept.
fn tamper_config(sink: &MemorySink, edit: impl Fn(&mut serde_json::Value)) {
    let raw = sink.get_raw(CONFIG_KEY).unwrap();
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let mut lines = text.lines();
    let mut body: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let mut seal: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    edit(&mut body);
    let body = serde_json::to_string(&body).unwrap();
    seal["blake3"] = blake3::hash(body.as_bytes()).to_hex().to_string().into();
    sink.set_raw(CONFIG_KEY, format!("{body}\n{seal}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weakened_or_altered_config_is_refused() {
    let pass = Key::passphrase("right");
    let sink = MemorySink::new();
    backup(&sink, sample_source(), Some(&pass)).await.unwrap();
    let original = sink.get_raw(CONFIG_KEY).unwrap();

    // Argon2id lowered to 8 KiB, one pass: refused before any key is derived from it.
    tamper_config(&sink, |b| {
        b["kdf"]["m_cost_kib"] = 8.into();
        b["kdf"]["t_cost"] = 1.into();
    });
    let e = backup(&sink, sample_source(), Some(&pass))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("altered"), "{e}");
    assert_eq!(repo(&sink, None).backup_ids().await.unwrap().len(), 1);

    // Within the bounds but changed: the key check under the master key catches it.
    sink.set_raw(CONFIG_KEY, original.clone());
    tamper_config(&sink, |b| b["kdf"]["t_cost"] = 2.into());
    let e = backup(&sink, sample_source(), Some(&pass))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    assert!(e.to_string().contains("altered"), "{e}");
    let e = repo(&sink, Some(&pass)).check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");

    // Stripping the key check does not make it unencrypted for a reader with the key, and the
    // next backup re-seals it only with a key that opens the backups already there.
    sink.set_raw(CONFIG_KEY, original.clone());
    tamper_config(&sink, |b| {
        b.as_object_mut().unwrap().remove("key_id");
    });
    let e = backup(&sink, sample_source(), Some(&Key::passphrase("other")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    backup(&sink, sample_source(), Some(&pass)).await.unwrap();
    assert!(repo(&sink, Some(&pass))
        .check()
        .await
        .unwrap()
        .is_encrypted());

    // Any flip or truncation of the config is found by `check` (what `verify` runs).
    let good = sink.get_raw(CONFIG_KEY).unwrap();
    for pos in (0..good.len()).step_by(7) {
        let mut bad = good.to_vec();
        bad[pos] ^= 0x10;
        sink.set_raw(CONFIG_KEY, bad);
        assert!(
            repo(&sink, Some(&pass)).check().await.is_err(),
            "flip at {pos} passed"
        );
    }
    for len in [0, 1, good.len() / 2, good.len() - 2] {
        sink.set_raw(CONFIG_KEY, good.slice(..len));
        assert!(
            repo(&sink, Some(&pass)).check().await.is_err(),
            "truncation to {len} passed"
        );
    }
    // An oversized config is not read into memory.
    sink.set_raw(CONFIG_KEY, vec![b' '; 1 << 20]);
    let e = repo(&sink, None).check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_and_absence_are_never_invisible() {
    let sink = MemorySink::new();
    let only = backup(&sink, sample_source(), None).await.unwrap();
    let mkey = manifest_key(only.backup_id());
    let mut bad = sink.get_raw(&mkey).unwrap().to_vec();
    bad[20] ^= 1;
    sink.set_raw(&mkey, bad);
    let catalog = repo(&sink, None).catalog().await.unwrap();
    assert_eq!(catalog.entries.len(), 1);
    assert!(matches!(
        catalog.entries[0].status,
        BackupStatus::Refused { .. }
    ));
    let e = repo(&sink, None).latest().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains(only.backup_id()), "{e}");

    let e = repo(&MemorySink::new(), None).check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    sink.set_raw(CONFIG_KEY, "");
    let e = repo(&sink, None).check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[test]
fn argon2_costs_have_a_floor_and_a_ceiling() {
    assert!(KdfParams::new(8, 1, 1).is_err());
    assert!(KdfParams::new(KdfParams::MIN_M_COST_KIB, 1, 1).is_err());
    assert!(KdfParams::new(KdfParams::MIN_M_COST_KIB - 1, 2, 1).is_err());
    assert!(KdfParams::minimum().is_ok());
    assert!(KdfParams::new(KdfParams::MAX_M_COST_KIB + 1, 2, 1).is_err());
    let mut huge = KdfParams::minimum().unwrap();
    huge.m_cost_kib = u32::MAX;
    let e = huge.derive("x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_repository_works_when_allowed() {
    let key = raw_key();
    let sink = MemorySink::new();
    backup(&sink, sample_source(), Some(&key)).await.unwrap();
    let plain = Backup::builder()
        .source(sample_source())
        .sink(Arc::new(sink.clone()))
        .transform(Zstd::new(1))
        .allow_unencrypted(true)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let (report, _) = restore_latest(&sink, Some(&key), true).await.unwrap();
    assert_eq!(report.backup_id, plain.backup_id());
    let r = repo(&sink, Some(&key)).allow_unencrypted(true);
    assert_eq!(r.catalog().await.unwrap().trusted().count(), 2);
}
