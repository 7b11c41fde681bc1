//! A backup taken on one PostgreSQL version restores on another: the upgrade path (13 → 17, say).
//! Needs `DBBACKUP_PG_RESTORE_URL`, a second server: ignored unless asked for, which
//! `scripts/pg-versions.sh` does with the variable set; asked for without it, it fails.

use std::sync::Arc;

use dbbackup_core::{BackupSelector, MemorySink, Restore};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs DBBACKUP_PG_RESTORE_URL, a second PostgreSQL: scripts/pg-versions.sh runs it"]
async fn fixture_restores_into_another_server_version() {
    let other = std::env::var("DBBACKUP_PG_RESTORE_URL")
        .expect("DBBACKUP_PG_RESTORE_URL is not set: no second server to restore into");
    let src = TestDb::new("xsrc").await;
    load_fixture(&src, 10_000).await;
    let sink = MemorySink::new();
    let key = key();
    let report = backup(&src, &sink, &key, 2).await;
    let from = report.manifest.source.server_version.clone();
    let dst = TestDb::reserve_on(&other, "xdst");
    Restore::builder()
        .sink(Arc::new(sink))
        .backup(BackupSelector::Latest)
        .key(key)
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore from {from:?} into {other} failed: {e}"));
    // Servers deparse the same objects differently across versions (14 adds multirange types and
    // `IN` on procedure arguments, 16 drops table qualifiers in single-table views), so the restored
    // schema is compared with the fixture created natively on the target server.
    let reference = TestDb::new_on(&other, "xref").await;
    load_fixture(&reference, 10).await;
    let (want, got) = (schema_dump(&reference), schema_dump(&dst));
    assert!(want.lines().count() > 150, "{want}");
    assert_eq!(
        want.lines().collect::<Vec<_>>(),
        got.lines().collect::<Vec<_>>(),
        "restoring a {from:?} backup into {other} made another schema than the fixture makes there"
    );
    let sums = data_checksums(&src).await;
    assert!(sums.len() >= 12, "{sums:?}");
    assert_eq!(sums, data_checksums(&dst).await);
}
