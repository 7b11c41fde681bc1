use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dbbackup_core::testing::{conformance, ScriptedSource};
use dbbackup_core::{Backup, ErrorKind, Key, MasterKey, PutMode, Repository, Sink, SinkExt, Zstd};
use dbbackup_storage::open_sink;

use crate::moto::{url_for, Moto, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sink_passes_the_sink_suite_against_a_real_server() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    moto.create_bucket("suite");
    // Through the URL constructor, path-style, plain HTTP, with a prefix.
    let sink = open_sink(&moto.url("suite", "team/db1", "")).unwrap();
    assert!(
        !format!("{sink:?}").contains("testing&"),
        "credentials leak into Debug"
    );
    conformance::sink_suite(sink.clone()).await;
    // Objects really live under the prefix.
    let at_root = open_sink(&moto.url("suite", "", "")).unwrap();
    sink.put_bytes("probe", Bytes::from("x"), PutMode::Overwrite)
        .await
        .unwrap();
    assert!(at_root.exists("team/db1/probe").await.unwrap());
    assert_eq!(
        moto.open_uploads("suite"),
        0,
        "the suite left multipart uploads behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_streams_through_many_parts() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    moto.create_bucket("big");
    let sink = open_sink(&moto.url("big", "", "&part_size=5MiB&concurrency=2")).unwrap();
    // 23 MiB: four full parts and a short last one.
    conformance::streams_large_objects(sink, 23 << 20).await;
    assert_eq!(moto.open_uploads("big"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_fail_at_once_with_a_clear_message() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    let sink = open_sink(&moto.url("no-such-bucket", "", "")).unwrap();
    let t0 = std::time::Instant::now();
    let e = sink
        .put_bytes("x", Bytes::from("x"), PutMode::Overwrite)
        .await
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "a missing bucket must not be retried for long"
    );
    assert!(e.to_string().contains("bucket"), "{e}");
    // Reads say the bucket is missing too (a repository's first read is its config), not "no
    // such object" (a HEAD has no body to tell, so `exists` is plainly false).
    let e = sink.get("config", None).await.err().unwrap();
    assert!(
        e.to_string()
            .contains("does not exist; create it or fix the URL"),
        "{e}"
    );
    // No credentials anywhere: said so, with where they are looked for (the metadata service
    // is pointed at a closed loopback port; nothing leaves the machine).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "s3://some-bucket/p?endpoint=http://127.0.0.1:{}&region=us-east-1&max_retries=0\
         &retry_timeout=1s&metadata_endpoint=http://127.0.0.1:{closed}",
        moto.port
    );
    let sink = open_sink(&url).unwrap();
    let e = sink.get("config", None).await.err().unwrap();
    assert!(
        e.to_string().contains("no S3 credentials were found"),
        "{e}"
    );
    assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    let e = open_sink("s3://b/p?part_size=lots").err().unwrap();
    assert!(
        e.to_string().contains("part_size") || e.to_string().contains("lots"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_gone_mid_upload_fails_cleanly_and_gc_leaves_no_orphans() {
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    moto.create_bucket("faults");
    let proxy = Proxy::start(moto.port).await;
    let extra = "&retry_timeout=2s&max_retries=2&part_size=5MiB&concurrency=1";
    let sink = open_sink(&url_for(proxy.port, "faults", "repo", extra)).unwrap();
    let direct = open_sink(&moto.url("faults", "repo", "")).unwrap();
    let key = Key::raw(MasterKey::generate().unwrap());

    // Uncompressed, so the big entry needs several parts; the proxy is cut once one is uploaded.
    let source = ScriptedSource::new("scripted")
        .entry("small", Bytes::from("first entry, small"))
        .generated("big", 40 << 20)
        .chunk_size(1 << 20);
    let backup = Backup::builder()
        .source(source)
        .sink(sink.clone())
        .encryption(key.clone())
        .jobs(1)
        .build()
        .unwrap();
    let moto_port = moto.port;
    let cutter = tokio::spawn(async move {
        loop {
            let n = tokio::task::spawn_blocking(move || {
                crate::moto::http(moto_port, "GET", "/faults?uploads", "")
                    .map(|r| r.matches("<UploadId>").count())
                    .unwrap_or(0)
            })
            .await
            .unwrap();
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let run = tokio::spawn(async move { backup.run().await });
    cutter.await.unwrap();
    proxy.cut();
    let e = run
        .await
        .unwrap()
        .expect_err("the backup must fail when the server goes away");
    eprintln!("backup error with the server gone: {e}");
    assert_eq!(e.kind(), ErrorKind::Sink, "{e}");
    assert!(e.backup().is_some(), "{e}");
    assert!(
        e.to_string().contains("127.0.0.1"),
        "the error should say where: {e}"
    );

    let repo_direct = Repository::new(direct.clone());
    assert!(
        repo_direct.list().await.unwrap().is_empty(),
        "a failed backup is listed"
    );
    assert!(
        direct
            .list("backups/")
            .await
            .unwrap()
            .iter()
            .all(|o| !o.key.ends_with("MANIFEST")),
        "a manifest of the failed backup is visible"
    );

    // The server is back: a new backup succeeds, and gc leaves only committed data.
    proxy.restore();
    let ok = Backup::builder()
        .source(ScriptedSource::new("scripted").entry("t", Bytes::from(vec![5u8; 1 << 20])))
        .sink(sink.clone())
        .transform(Zstd::new(3))
        .encryption(key)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let repo = Repository::new(sink.clone());
    let later = time::OffsetDateTime::now_utc() + Duration::from_secs(7200);
    let gc = repo.gc(Duration::from_secs(3600), later).await.unwrap();
    eprintln!("gc: {gc:?}");
    let committed = format!("backups/{}/", ok.backup_id());
    for o in direct.list("backups/").await.unwrap() {
        assert!(
            o.key.starts_with(&committed),
            "orphan left after gc: {} (gc: {gc:?})",
            o.key
        );
    }
    assert_eq!(
        moto.open_uploads("faults"),
        0,
        "multipart uploads linger after gc: {gc:?}"
    );
    assert_eq!(repo.list().await.unwrap().len(), 1);
    let _: Arc<dyn Sink> = direct;
}

/// The WAL archive (`LogArchive`) on S3 with the server going away mid-push: the push fails (so
/// PostgreSQL keeps the segment and retries), nothing half-pushed is visible, and once the
/// server is back the retry stores it and what was archived before is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_pushes_fail_cleanly_while_the_server_is_gone_and_succeed_on_retry() {
    use dbbackup_core::{LogArchive, Pushed};
    let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    moto.create_bucket("walfaults");
    let proxy = Proxy::start(moto.port).await;
    let extra = "&retry_timeout=2s&max_retries=2&part_size=5MiB&concurrency=1";
    let sink = open_sink(&url_for(proxy.port, "walfaults", "repo", extra)).unwrap();
    let key = Key::raw(MasterKey::generate().unwrap());
    let repo = Repository::new(sink.clone()).with_key(key.clone());
    let archive = LogArchive::new(repo, "wal").unwrap();
    // Incompressible, so a segment is a multipart upload of several parts.
    let segment = |seed: u8| {
        let mut v = vec![0u8; 16 << 20];
        let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
        for b in v.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        Bytes::from(v)
    };
    let (one, two) = (segment(1), segment(2));
    let first = "000000010000000000000001";
    let second = "000000010000000000000002";
    assert_eq!(
        archive.push(first, one.clone()).await.unwrap(),
        Pushed::Stored
    );

    // Cut while the second segment's multipart upload runs.
    let moto_port = moto.port;
    let cutter = tokio::spawn(async move {
        loop {
            let n = tokio::task::spawn_blocking(move || {
                crate::moto::http(moto_port, "GET", "/walfaults?uploads", "")
                    .map(|r| r.matches("<UploadId>").count())
                    .unwrap_or(0)
            })
            .await
            .unwrap();
            if n > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let push = {
        let (archive, two) = (archive.clone(), two.clone());
        tokio::spawn(async move { archive.push(second, two).await })
    };
    cutter.await.unwrap();
    proxy.cut();
    let e = push
        .await
        .unwrap()
        .expect_err("a push must fail while the server is gone");
    eprintln!("push with the server gone: {e}");
    // And one that starts while it is gone fails too, without hanging.
    let e2 = archive.push(second, two.clone()).await.unwrap_err();
    eprintln!("push to a gone server: {e2}");

    proxy.restore();
    let e = archive.fetch(second).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "half a push is visible: {e}");
    assert_eq!(archive.names().await.unwrap(), vec![first.to_owned()]);
    assert_eq!(
        archive.push(second, two.clone()).await.unwrap(),
        Pushed::Stored
    );
    assert_eq!(
        archive.push(first, one.clone()).await.unwrap(),
        Pushed::AlreadyArchived
    );
    assert_eq!(archive.fetch(first).await.unwrap(), one);
    assert_eq!(archive.fetch(second).await.unwrap(), two);
}
