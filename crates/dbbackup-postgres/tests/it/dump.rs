use std::sync::Arc;

use dbbackup_core::{Backup, ErrorKind, MemorySink, Repository, Restore, Sink, Zstd};
use dbbackup_postgres::{PgDumpSource, Tools};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_backup_restores_through_pg_restore() {
    let src = TestDb::new("dump_src").await;
    load_fixture(&src, 5000).await;
    // pg_dump's output is meant for servers at least as new as pg_dump; a newer pg_dump (17's, for
    // the 13 build of scripts/pg-versions.sh, which ships no tools) writes subscription options
    // (`run_as_owner`) the older server cannot read, so there the subscription is left out.
    let tool = std::process::Command::new("pg_dump")
        .arg("--version")
        .output()
        .expect("pg_dump");
    let tool_major: i32 = String::from_utf8_lossy(&tool.stdout)
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .expect("a pg_dump version");
    let mut c = src.conn().await;
    let server_major: i32 =
        sqlx::query_scalar("SELECT current_setting('server_version_num')::int / 10000")
            .fetch_one(&mut c)
            .await
            .unwrap();
    if tool_major > server_major {
        sqlx::raw_sql("ALTER SUBSCRIPTION fx_sub SET (slot_name = NONE); DROP SUBSCRIPTION fx_sub")
            .execute(&mut c)
            .await
            .unwrap();
    }
    drop(c);
    let mem = MemorySink::new();
    let key = key();
    let report = Backup::builder()
        .source(PgDumpSource::new(&src.url()).unwrap())
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .transform(Zstd::new(3))
        .encryption(key.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(report.manifest.entries.len(), 1);
    assert_eq!(report.manifest.entries[0].name, "dump");
    let dst = TestDb::reserve("dump_dst");
    Restore::builder()
        .sink(Arc::new(mem))
        .key(key)
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}"));
    assert_eq!(schema_dump(&src), schema_dump(&dst));
    assert_eq!(data_checksums(&src).await, data_checksums(&dst).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tools_and_failing_dumps_are_clear_errors_and_commit_nothing() {
    let src = TestDb::new("dump_fail").await;
    let mem = MemorySink::new();
    let e = Backup::builder()
        .source(
            PgDumpSource::new(&src.url())
                .unwrap()
                .with_tools(Tools::in_dir("/nonexistent/bin")),
        )
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("postgresql-client"), "{e}");

    let e = Backup::builder()
        .source(PgDumpSource::new(&src.url()).unwrap().with_args(vec![
            "--table=no_such_table".into(),
            "--strict-names".into(),
        ]))
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    assert!(
        e.to_string().contains("pg_dump failed") && e.to_string().contains("no_such_table"),
        "{e}"
    );
    assert!(Repository::new(Arc::new(mem.clone()))
        .list()
        .await
        .unwrap()
        .is_empty());
    assert!(
        mem.keys().iter().all(|k| !k.starts_with("backups/")),
        "a failed dump left objects"
    );
}

/// A pg_restore that fails part-way applies nothing, whichever way it runs (directly, or through
/// psql when pg_restore is 17+ and the server older: `scripts/pg-versions.sh` runs that on 13).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pg_restore_applies_nothing() {
    let src = TestDb::new("dump_clash_src").await;
    load_fixture(&src, 100).await;
    let mem = MemorySink::new();
    Backup::builder()
        .source(PgDumpSource::new(&src.url()).unwrap())
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let dst = TestDb::new("dump_clash_dst").await;
    sqlx::raw_sql("CREATE TABLE public.v_emp2 (x int)")
        .execute(&mut dst.conn().await)
        .await
        .unwrap();
    let e = Restore::builder()
        .sink(Arc::new(mem))
        .target(target(&dst))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Target, "{e}");
    assert!(e.to_string().contains("already exists"), "{e}");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND relkind IN ('r', 'v', 'p', 'S')",
    )
    .fetch_all(&mut dst.conn().await)
    .await
    .unwrap();
    assert_eq!(
        tables,
        vec!["v_emp2".to_string()],
        "the failed restore left objects"
    );
}
