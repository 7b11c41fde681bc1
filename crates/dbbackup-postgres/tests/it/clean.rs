//! `PgTarget::clean`: the backup's objects dropped in the target first, in the restore's one
//! transaction, on the fixture of every object kind.

use std::sync::Arc;

use dbbackup_core::{BackupSelector, ErrorKind, MemorySink, Restore};

use crate::*;

async fn run(db: &TestDb, sql: &str) {
    let mut c = db.conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(db: &TestDb, q: &str) -> i64 {
    let mut c = db.conn().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(q.to_owned()))
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

async fn restore_clean(
    sink: &MemorySink,
    key: &dbbackup_core::Key,
    db: &TestDb,
) -> dbbackup_core::Result<dbbackup_core::RestoreReport> {
    Restore::builder()
        .sink(Arc::new(sink.clone()))
        .backup(BackupSelector::Latest)
        .key(key.clone())
        .target(target(db).clean(true))
        .build()
        .unwrap()
        .run()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restores_every_object_kind_over_a_drifted_copy_and_never_drops_the_targets_own() {
    let db = TestDb::new("clean").await;
    load_fixture(&db, 2_000).await;
    let sink = MemorySink::new();
    let key = key();
    backup(&db, &sink, &key, 2).await;
    let schema = schema_dump(&db);
    let sums = data_checksums(&db).await;

    // Without --clean the objects clash and nothing changes.
    run(&db, "DELETE FROM public.big WHERE id % 2 = 0").await;
    let e = Restore::builder()
        .sink(Arc::new(sink.clone()))
        .backup(BackupSelector::Latest)
        .key(key.clone())
        .target(target(&db))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");

    // The copy drifted: rows changed, a view of the backup dropped, a table of its own added.
    run(
        &db,
        "INSERT INTO public.big (id) SELECT g FROM generate_series(1000001, 1000100) g;
         DROP VIEW public.v_emp2;
         CREATE TABLE public.local_notes (note text); INSERT INTO public.local_notes VALUES ('mine');",
    )
    .await;
    let report = restore_clean(&sink, &key, &db)
        .await
        .unwrap_or_else(|e| panic!("restore --clean failed: {e}"));
    assert!(
        report.warnings[0].starts_with("--clean dropped "),
        "{:?}",
        report.warnings
    );
    // The target's own table and its rows are untouched.
    assert_eq!(
        count(&db, "SELECT count(*) FROM public.local_notes").await,
        1
    );
    run(&db, "DROP TABLE public.local_notes").await;
    assert_same_schema(&schema, &schema_dump(&db));
    assert_eq!(sums, data_checksums(&db).await);

    // Only some tables' rows: every table was dropped, so the rest would come back empty:
    // refused at the end, rolled back.
    run(&db, "DELETE FROM public.big WHERE id < 5").await;
    let changed = data_checksums(&db).await;
    let e = Restore::builder()
        .sink(Arc::new(sink.clone()))
        .backup(BackupSelector::Latest)
        .key(key.clone())
        .target(target(&db).clean(true))
        .filter(|e| e.table().as_deref() != Some("public.big"))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("would come back empty"), "{e}");
    assert_eq!(changed, data_checksums(&db).await);

    // An object of the target's own depending on one of the backup's: refused, nothing changed.
    run(
        &db,
        "CREATE VIEW public.local_v AS SELECT id FROM public.big; DELETE FROM public.big WHERE id < 10",
    )
    .await;
    let before = count(&db, "SELECT count(*) FROM public.big").await;
    let e = restore_clean(&sink, &key, &db).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Target, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("local_v"), "{msg}");
    assert!(
        msg.contains("never with CASCADE") && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM public.big").await, before);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_views WHERE viewname = 'local_v'"
        )
        .await,
        1
    );

    // --clean with --create: a usage error before anything runs.
    let e = Restore::builder()
        .sink(Arc::new(sink))
        .backup(BackupSelector::Latest)
        .key(key)
        .target(target(&db).clean(true).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
