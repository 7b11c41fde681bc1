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
        .sink(Arc::new(sink))
        .key(key)
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
}
