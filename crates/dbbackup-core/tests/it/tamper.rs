//! Every way a stored backup can be damaged is caught by verify and restore, naming the backup
//! and the entry.

use std::sync::Arc;

use dbbackup_core::testing::MemoryTarget;
use dbbackup_core::{
    manifest_key, BackupReport, BackupSelector, Error, ErrorKind, Key, MemorySink, Repository,
    Restore, Verify,
};
use proptest::prelude::*;

use crate::{backup, id, raw_key, sample_source};

async fn verify(sink: &MemorySink, report: &BackupReport, key: Option<&Key>) -> Result<(), Error> {
    let mut v = Verify::builder()
        .sink(Arc::new(sink.clone()))
        .backup(id(report));
    if let Some(k) = key {
        v = v.key(k.clone());
    }
    v.build()?.run().await.map(|_| ())
}

async fn restore(
    sink: &MemorySink,
    report: &BackupReport,
    key: Option<&Key>,
) -> (Result<(), Error>, MemoryTarget) {
    let target = MemoryTarget::new();
    let mut r = Restore::builder()
        .sink(Arc::new(sink.clone()))
        .backup(id(report))
        .target(target.clone());
    if let Some(k) = key {
        r = r.key(k.clone());
    }
    let res = match r.build() {
        Ok(r) => r.run().await.map(|_| ()),
        Err(e) => Err(e),
    };
    (res, target)
}

/// Both verify and restore fail with Corrupt naming `entry` (or just the backup when `None`), and
/// the restore leaves nothing behind.
async fn assert_detected(
    sink: &MemorySink,
    report: &BackupReport,
    key: Option<&Key>,
    entry: Option<&str>,
    what: &str,
) {
    let e = verify(sink, report, key).await.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: verify said {e}");
    assert_eq!(e.backup(), Some(report.backup_id()), "{what}: {e}");
    if entry.is_some() {
        assert_eq!(e.entry(), entry, "{what}: {e}");
    }
    let (r, target) = restore(sink, report, key).await;
    let e = r.expect_err(what);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: restore said {e}");
    assert_eq!(e.backup(), Some(report.backup_id()), "{what}: {e}");
    if entry.is_some() {
        assert_eq!(e.entry(), entry, "{what}: {e}");
        assert!(
            target.aborted(),
            "{what}: the restore session was not aborted"
        );
        assert!(
            target.names().is_empty(),
            "{what}: a corrupt restore left entries applied"
        );
    }
}

fn copy(sink: &MemorySink) -> MemorySink {
    let c = MemorySink::new();
    for k in sink.keys() {
        c.set_raw(&k, sink.get_raw(&k).unwrap());
    }
    c
}

fn flip(sink: &MemorySink, key: &str, pos: usize, bit: u8) {
    let mut b = sink.get_raw(key).unwrap().to_vec();
    b[pos] ^= 1 << bit;
    sink.set_raw(key, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_anywhere_in_any_entry_are_detected() {
    for encrypted in [true, false] {
        let sink = MemorySink::new();
        let key = raw_key();
        let key = encrypted.then_some(&key);
        let report = backup(&sink, sample_source(), key).await.unwrap();
        verify(&sink, &report, key).await.unwrap();
        for e in &report.manifest.entries {
            let len = e.stored_size as usize;
            let positions = [0, 1, len / 3, len / 2, len.saturating_sub(17), len - 1];
            for (i, &pos) in positions.iter().enumerate() {
                let damaged = copy(&sink);
                flip(&damaged, &e.object, pos, (i % 8) as u8);
                let what = format!("flip at {pos} of {} (encrypted: {encrypted})", e.name);
                assert_detected(&damaged, &report, key, Some(&e.name), &what).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_at_every_chunk_boundary_is_detected() {
    let sink = MemorySink::new();
    let key = raw_key();
    let report = backup(&sink, sample_source(), Some(&key)).await.unwrap();
    let a = report.manifest.entry("data/a").unwrap().clone();
    let full = sink.get_raw(&a.object).unwrap();
    let chunk = 1024 + 16;
    let header = 20;
    let boundaries: Vec<usize> = (0..)
        .map(|k| header + k * chunk)
        .take_while(|&b| b < full.len())
        .collect();
    assert!(boundaries.len() > 50, "the entry should span many chunks");
    // Every boundary for verify (cheap), a spread of them for restore too.
    for (i, &cut) in boundaries.iter().enumerate() {
        let damaged = copy(&sink);
        damaged.set_raw(&a.object, full.slice(..cut));
        let e = verify(&damaged, &report, Some(&key)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "cut at {cut}: {e}");
        assert_eq!(e.entry(), Some("data/a"));
        if i % 97 == 0 || i + 1 == boundaries.len() {
            assert_detected(
                &damaged,
                &report,
                Some(&key),
                Some("data/a"),
                &format!("cut at {cut}"),
            )
            .await;
        }
    }
    for cut in [0, 5, full.len() - 1] {
        let damaged = copy(&sink);
        damaged.set_raw(&a.object, full.slice(..cut));
        assert_detected(
            &damaged,
            &report,
            Some(&key),
            Some("data/a"),
            &format!("cut at {cut}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_entries_and_objects_from_another_backup_are_detected() {
    for encrypted in [true, false] {
        let sink = MemorySink::new();
        let key = raw_key();
        let k = encrypted.then_some(&key);
        let r1 = backup(&sink, sample_source(), k).await.unwrap();
        // Encrypted objects are bound to their backup even when the content is identical; an
        // unencrypted object replaced by a byte-identical one is the same data, so there it
        // takes different content to be a replacement worth detecting.
        let other_source = if encrypted {
            sample_source()
        } else {
            let mut v = vec![0u8; 2_500_000];
            dbbackup_core::testing::generate_into(8, &mut v);
            dbbackup_core::testing::ScriptedSource::new("scripted").entry("data/a", v)
        };
        let r2 = backup(&sink, other_source, k).await.unwrap();
        let m1 = &r1.manifest;
        let (a, b) = (m1.entry("data/b").unwrap(), m1.entry("pre-data").unwrap());

        let damaged = copy(&sink);
        damaged.set_raw(&a.object, sink.get_raw(&b.object).unwrap());
        damaged.set_raw(&b.object, sink.get_raw(&a.object).unwrap());
        assert_detected(
            &damaged,
            &r1,
            k,
            None,
            &format!("swap (encrypted: {encrypted})"),
        )
        .await;

        // The same entry from another backup of identical content.
        let other = r2.manifest.entry("data/a").unwrap();
        let mine = m1.entry("data/a").unwrap();
        let damaged = copy(&sink);
        damaged.set_raw(&mine.object, sink.get_raw(&other.object).unwrap());
        assert_detected(
            &damaged,
            &r1,
            k,
            Some("data/a"),
            &format!("replaced (encrypted: {encrypted})"),
        )
        .await;

        // A missing object.
        let damaged = copy(&sink);
        dbbackup_core::Sink::delete(&damaged, &mine.object)
            .await
            .unwrap();
        assert_detected(&damaged, &r1, k, Some("data/a"), "missing object").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_forged_manifests_are_detected() {
    let sink = MemorySink::new();
    let key = raw_key();
    let report = backup(&sink, sample_source(), Some(&key)).await.unwrap();
    let mkey = manifest_key(report.backup_id());
    let original = sink.get_raw(&mkey).unwrap();

    // A flipped bit: the unkeyed checksum catches it; list skips the backup.
    let damaged = copy(&sink);
    flip(&damaged, &mkey, original.len() / 2, 3);
    assert_detected(&damaged, &report, Some(&key), None, "manifest flip").await;
    let repo = Repository::new(Arc::new(damaged.clone()));
    assert!(repo.list().await.unwrap().is_empty());

    // A forged edit with a recomputed unkeyed checksum: the keyed MAC catches it.
    let text = String::from_utf8(original.to_vec()).unwrap();
    let body = text.lines().next().unwrap();
    let forged_body = body.replacen("\"raw_size\":", "\"raw_size\":1", 1);
    let seal: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let forged = format!(
        "{forged_body}\n{}\n",
        serde_json::json!({"blake3": blake3::hash(forged_body.as_bytes()).to_hex().to_string(), "mac": seal["mac"]})
    );
    let damaged = copy(&sink);
    damaged.set_raw(&mkey, forged.clone());
    assert_detected(&damaged, &report, Some(&key), None, "forged manifest").await;
    let e = verify(&damaged, &report, Some(&key)).await.unwrap_err();
    assert!(e.to_string().contains("MAC"), "{e}");

    // Stripping the MAC does not help either.
    let stripped = format!(
        "{forged_body}\n{}\n",
        serde_json::json!({"blake3": blake3::hash(forged_body.as_bytes()).to_hex().to_string()})
    );
    damaged.set_raw(&mkey, stripped);
    assert_detected(&damaged, &report, Some(&key), None, "stripped MAC").await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// Any single bit of any stored object, chosen at random.
    #[test]
    fn any_single_bit_flip_is_detected(entry_pick in any::<usize>(), pos in any::<usize>(), bit in 0u8..8) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let sink = MemorySink::new();
            let key = raw_key();
            let report = backup(&sink, crate::sample_source(), Some(&key)).await.unwrap();
            let entries = &report.manifest.entries;
            let e = &entries[entry_pick % entries.len()];
            let p = pos % e.stored_size as usize;
            flip(&sink, &e.object, p, bit);
            assert_detected(&sink, &report, Some(&key), Some(&e.name), &format!("flip {p}:{bit} of {}", e.name)).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_skips_a_damaged_newest_manifest() {
    let sink = MemorySink::new();
    let r1 = backup(&sink, sample_source(), None).await.unwrap();
    let r2 = backup(&sink, sample_source(), None).await.unwrap();
    flip(&sink, &manifest_key(r2.backup_id()), 10, 1);
    let repo = Repository::new(Arc::new(sink.clone()));
    assert_eq!(repo.latest().await.unwrap().backup_id, r1.backup_id());
    let e = repo.manifest(r2.backup_id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let _ = BackupSelector::Latest;
}
