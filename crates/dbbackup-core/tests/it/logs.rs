//! Log archives (`LogArchive`): push and fetch, retries, conflicts, the end of the archive, and
//! the trust rules of the repository for pieces someone planted or altered.

use std::sync::Arc;

use bytes::Bytes;
use dbbackup_core::{ErrorKind, Key, LogArchive, MemorySink, Pushed, Repository, Sink};

use crate::raw_key;

fn archive(sink: &MemorySink, key: Option<&Key>) -> LogArchive {
    let repo = Repository::new(Arc::new(sink.clone()) as Arc<dyn Sink>).with_key(key.cloned());
    LogArchive::new(repo, "wal").unwrap()
}

/// 16 MiB that compress about 3x, like a busy WAL segment.
fn segment(seed: u8) -> Bytes {
    let mut v = Vec::with_capacity(16 << 20);
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    while v.len() < 16 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.extend_from_slice(&x.to_le_bytes()[..2]);
        v.extend_from_slice(b"INSERT INTO t VALUES");
    }
    v.truncate(16 << 20);
    Bytes::from(v)
}

#[tokio::test]
async fn pieces_round_trip_encrypted_and_retries_are_idempotent() {
    let sink = MemorySink::new();
    let key = raw_key();
    let a = archive(&sink, Some(&key));
    let seg = segment(1);
    let name = "000000010000000000000003";
    assert_eq!(a.push(name, seg.clone()).await.unwrap(), Pushed::Stored);
    // PostgreSQL retries a push it got no answer for: the same bytes are fine.
    assert_eq!(
        a.push(name, seg.clone()).await.unwrap(),
        Pushed::AlreadyArchived
    );
    assert_eq!(a.fetch(name).await.unwrap(), seg);
    a.push(
        "00000002.history",
        Bytes::from_static(b"1\t0/3000000\tno recovery target specified\n"),
    )
    .await
    .unwrap();
    assert_eq!(
        a.names().await.unwrap(),
        vec!["000000010000000000000003", "00000002.history"]
    );
    let rec = a.record(name).await.unwrap();
    assert_eq!(rec.size, 16 << 20);
    assert!(rec.stored_size < rec.size / 2, "{rec:?}");
    assert!(rec.encryption.is_some());
    // Nothing of the plaintext is in the storage.
    let stored = sink.get_raw(&format!("logs/wal/{name}")).unwrap();
    assert!(!stored.windows(20).any(|w| w == b"INSERT INTO t VALUES"));
}

#[tokio::test]
async fn other_content_under_an_archived_name_is_refused_and_changes_nothing() {
    let sink = MemorySink::new();
    let key = raw_key();
    let a = archive(&sink, Some(&key));
    let name = "000000010000000000000007";
    a.push(name, segment(1)).await.unwrap();
    let before = sink.get_raw(&format!("logs/wal/{name}.seal")).unwrap();
    let e = a.push(name, segment(2)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("different content"), "{e}");
    assert_eq!(
        sink.get_raw(&format!("logs/wal/{name}.seal")).unwrap(),
        before
    );
    assert_eq!(a.fetch(name).await.unwrap(), segment(1));
}

#[tokio::test]
async fn a_missing_piece_is_not_found_and_bad_names_are_refused() {
    let sink = MemorySink::new();
    let key = raw_key();
    let a = archive(&sink, Some(&key));
    a.push("000000010000000000000001", segment(1))
        .await
        .unwrap();
    let e = a.fetch("000000010000000000000002").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    for bad in ["../config", "a/b", "", "x.seal", ".hidden"] {
        let e = a.push(bad, Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
    }
    // An interrupted push (data, no seal) does not exist, and the next push replaces it.
    sink.set_raw(
        "logs/wal/000000010000000000000009",
        Bytes::from_static(b"partial"),
    );
    assert_eq!(
        a.fetch("000000010000000000000009")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    a.push("000000010000000000000009", segment(3))
        .await
        .unwrap();
    assert_eq!(
        a.fetch("000000010000000000000009").await.unwrap(),
        segment(3)
    );
}

#[tokio::test]
async fn damaged_altered_planted_and_wrong_key_pieces_are_refused() {
    let sink = MemorySink::new();
    let key = raw_key();
    let a = archive(&sink, Some(&key));
    let name = "000000010000000000000004";
    a.push(name, segment(4)).await.unwrap();
    let data_key = format!("logs/wal/{name}");
    let seal_key = format!("logs/wal/{name}.seal");
    let good = sink.get_raw(&data_key).unwrap();

    // A flipped bit in the stored piece.
    let mut bad = good.to_vec();
    bad[good.len() / 2] ^= 1;
    sink.set_raw(&data_key, bad);
    assert_eq!(a.fetch(name).await.unwrap_err().kind(), ErrorKind::Corrupt);
    sink.set_raw(&data_key, good.clone());

    // A record edited to claim another size: the MAC no longer matches.
    let seal = sink.get_raw(&seal_key).unwrap();
    let text = String::from_utf8(seal.to_vec()).unwrap();
    let body = text
        .lines()
        .next()
        .unwrap()
        .replace("\"size\":16777216", "\"size\":16777215");
    let rehashed = format!(
        "{body}\n{{\"blake3\":\"{}\",\"mac\":\"{}\"}}\n",
        blake3::hash(body.as_bytes()).to_hex(),
        "00".repeat(32)
    );
    sink.set_raw(&seal_key, rehashed);
    let e = a.fetch(name).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    sink.set_raw(&seal_key, seal.clone());
    assert_eq!(a.fetch(name).await.unwrap(), segment(4));

    // A piece archived unencrypted elsewhere and copied in is not believed.
    let other = MemorySink::new();
    archive(&other, None).push(name, segment(5)).await.unwrap();
    sink.set_raw(&data_key, other.get_raw(&data_key).unwrap());
    sink.set_raw(&seal_key, other.get_raw(&seal_key).unwrap());
    let e = a.fetch(name).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("not sealed"), "{e}");

    // One sealed under another key is planted, and says so.
    let third = MemorySink::new();
    archive(&third, Some(&raw_key()))
        .push(name, segment(6))
        .await
        .unwrap();
    sink.set_raw(&data_key, third.get_raw(&data_key).unwrap());
    sink.set_raw(&seal_key, third.get_raw(&seal_key).unwrap());
    let e = a.fetch(name).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");

    // The wrong key is told so; no key for an encrypted repository is refused.
    let e = archive(&sink, Some(&raw_key()))
        .fetch(name)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    let e = archive(&sink, None)
        .push("000000010000000000000005", segment(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
