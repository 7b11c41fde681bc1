use std::sync::Arc;

use dbbackup_core::{BackupSelector, MemorySink, Restore};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_roundtrip_matches_schema_dump_and_row_checksums() {
    let src = TestDb::new("src").await;
    load_fixture(&src, 10_000).await;
    let sink = MemorySink::new();
    let key = key();
    let report = backup(&src, &sink, &key, 2).await;
    let m = &report.manifest;
    assert_eq!(m.source.engine, "postgres");
    assert!(
        m.source.position.contains_key("lsn"),
        "{:?}",
        m.source.position
    );
    for w in &m.warnings {
        println!("warning: {w}");
    }
    // A plain table's keys and indexes travel with its rows too, for a restore into a new
    // database to build them as soon as the rows are in (post-data then skips them).
    let big = &m.entry("data/public.big").unwrap().meta["indexes"];
    assert_eq!(big[0]["name"], "public.big.big_pkey", "{big}");
    let opts = &m.entry("data/public.opts").unwrap().meta["indexes"];
    assert_eq!(opts.as_array().map(Vec::len), Some(2), "{opts}");
    assert!(m.entry("data/public.measurements_2025").unwrap().meta["indexes"].is_null());
    let dst = TestDb::reserve("dst");
    Restore::builder()
        .sink(Arc::new(sink))
        .backup(BackupSelector::Latest)
        .key(key)
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}"));
    let (a, b) = (schema_dump(&src), schema_dump(&dst));
    assert!(
        a.lines().count() > 150,
        "the schema dump looks too small:\n{a}"
    );
    assert_same_schema(&a, &b);
    let sums = data_checksums(&src).await;
    assert!(
        sums.len() >= 12
            && sums
                .iter()
                .any(|(t, n, _)| t == "public.big" && *n == 10_000),
        "{sums:?}"
    );
    assert_eq!(sums, data_checksums(&dst).await);
}

/// The full-scale fixture of the issue: a 1 000 000-row table and a 50 MB bytea value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_scale_roundtrip_with_a_million_rows_and_a_50mb_value() {
    let src = TestDb::new("full").await;
    load_fixture(&src, 1_000_000).await;
    {
        let mut c = src.conn().await;
        sqlx::raw_sql(
            "CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
             INSERT INTO blobs SELECT 1, decode(repeat(md5('x'), 3276800), 'hex');",
        )
        .execute(&mut c)
        .await
        .unwrap();
        let size: i32 = sqlx::query_scalar("SELECT octet_length(data) FROM blobs")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert!(size >= 50 << 20, "{size}");
    }
    let sink = MemorySink::new();
    let key = key();
    let report = backup(&src, &sink, &key, 2).await;
    let big = report.manifest.entry("data/public.big").unwrap();
    assert_eq!(big.rows, Some(1_000_000));
    let dst = TestDb::reserve("full_dst");
    Restore::builder()
        .sink(Arc::new(sink))
        .key(key)
        .target(target(&dst).create(true).with_jobs(2))
        .jobs(2)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}"));
    assert_eq!(schema_dump(&src), schema_dump(&dst));
    assert_eq!(data_checksums(&src).await, data_checksums(&dst).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_tables_split_across_workers_restore_whole() {
    let src = TestDb::new("split").await;
    load_fixture(&src, 30_000).await;
    let sink = MemorySink::new();
    let key = key();
    let report = dbbackup_core::Backup::builder()
        .source(
            dbbackup_postgres::PgSource::new(&src.url())
                .unwrap()
                .with_jobs(3)
                .with_split_bytes(20 * 8192),
        )
        .sink(Arc::new(sink.clone()) as Arc<dyn dbbackup_core::Sink>)
        .encryption(key.clone())
        .jobs(3)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    // Block ranges need TID range scans (PostgreSQL 14+); before that a big table is one entry.
    let server_num: i64 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int8")
        .fetch_one(&mut src.conn().await)
        .await
        .unwrap();
    let want_parts = if server_num >= 140000 { 3 } else { 0 };
    let parts: Vec<&dbbackup_core::EntryRecord> = report
        .manifest
        .entries
        .iter()
        .filter(|e| e.name.starts_with("data/public.big#"))
        .collect();
    assert_eq!(
        parts.len(),
        want_parts,
        "{:?}",
        report
            .manifest
            .entries
            .iter()
            .map(|e| &e.name)
            .collect::<Vec<_>>()
    );
    let whole: Vec<_> = report
        .manifest
        .entries
        .iter()
        .filter(|e| e.name == "data/public.big")
        .collect();
    let rows: u64 = parts.iter().chain(&whole).map(|e| e.rows.unwrap()).sum();
    assert_eq!(rows, 30_000);
    let dst = TestDb::reserve("split_dst");
    Restore::builder()
        .sink(Arc::new(sink))
        .key(key)
        .target(target(&dst).create(true).with_jobs(3))
        .jobs(3)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(data_checksums(&src).await, data_checksums(&dst).await);
}
