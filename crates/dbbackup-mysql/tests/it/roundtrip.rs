use std::sync::Arc;

use dbbackup_core::{MemorySink, Restore};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_roundtrip_matches_show_create_and_checksums() {
    let src = TestDb::new("src").await;
    load_fixture(&src, 5000).await;
    let sink = MemorySink::new();
    let key = key();
    let report = backup(&src, &sink, &key, 2).await;
    let m = &report.manifest;
    assert_eq!(m.source.engine, "mysql");
    assert!(
        m.warnings.iter().any(|w| w.contains("myisam_t")),
        "{:?}",
        m.warnings
    );
    let dst = TestDb::reserve("dst");
    Restore::builder()
        .sink(Arc::new(sink.clone()))
        .key(key.clone())
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}"));
    let (a, b) = (describe(&src).await, describe(&dst).await);
    assert!(a.len() >= 20, "{a:#?}");
    if std::env::var("SHOW_DESCRIBE").is_ok() {
        for l in &b {
            println!("{}", l.chars().take(160).collect::<String>());
        }
    }
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!(x, y);
    }
    assert_eq!(a.len(), b.len());
    // The same through multi-row INSERTs (the path for servers with local_infile = OFF).
    let dst = TestDb::reserve("dst_insert");
    Restore::builder()
        .sink(Arc::new(sink))
        .key(key)
        .target(target(&dst).create(true).local_infile(false))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore through INSERTs failed: {e}"));
    assert_eq!(a, describe(&dst).await);
}

/// The full-scale fixture of the issue: a 1 000 000-row table and a 52 MB BLOB. The server must
/// accept packets that large, so the test raises `max_allowed_packet` (global, for new sessions),
/// and its redo log must hold ten times the BLOB (MySQL's documented rule): with MariaDB's default
/// 96 MiB, the BLOB loading beside the big table filled the log and hung the server until InnoDB's
/// watchdog aborted it (twice here, 10.11.19). `innodb_log_file_size` is dynamic since 10.9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scale_roundtrip_with_a_million_rows_and_a_50mb_blob() {
    {
        let mut a = admin().await;
        let log: u64 = sqlx::query_scalar("SELECT @@innodb_log_file_size + 0")
            .fetch_one(&mut a)
            .await
            .unwrap();
        if log < 768 << 20 {
            sqlx::raw_sql("SET GLOBAL innodb_log_file_size = 805306368")
                .execute(&mut a)
                .await
                .unwrap();
        }
        sqlx::raw_sql("SET GLOBAL max_allowed_packet = 268435456")
            .execute(&mut a)
            .await
            .unwrap();
    }
    let src = TestDb::new("full").await;
    load_fixture(&src, 1_000_000).await;
    {
        let mut c = src.conn().await;
        sqlx::raw_sql("CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO blobs VALUES (1, REPEAT(UNHEX('00FF7E'), 18000000)), (2, X'01')",
        )
        .execute(&mut c)
        .await
        .unwrap();
        let len: i64 = sqlx::query_scalar("SELECT LENGTH(data) FROM blobs WHERE id = 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(len >= 50 << 20, "{len}");
    }
    let sink = MemorySink::new();
    let key = key();
    let report = backup(&src, &sink, &key, 2).await;
    assert_eq!(
        report.manifest.entry("data/big").unwrap().rows,
        Some(1_000_000)
    );
    let dst = TestDb::reserve("full_dst");
    Restore::builder()
        .sink(Arc::new(sink))
        .key(key)
        .target(target(&dst).create(true))
        .jobs(2)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}"));
    assert_eq!(describe(&src).await, describe(&dst).await);
}
