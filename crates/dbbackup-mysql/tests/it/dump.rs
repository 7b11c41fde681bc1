use std::sync::Arc;

use dbbackup_core::{Backup, ErrorKind, MemorySink, Repository, Restore, Sink, Zstd};
use dbbackup_mysql::{MyDumpSource, Tools};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_dump_backup_restores_through_the_client() {
    let src = TestDb::new("dump_src").await;
    load_fixture(&src, 2000).await;
    let mem = MemorySink::new();
    let key = key();
    let report = Backup::builder()
        .source(MyDumpSource::new(&src.url()).unwrap())
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .transform(Zstd::new(3))
        .encryption(key.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
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
    // mariadb-dump writes FLOAT with 6 significant digits (1.17549435e-38 becomes 1.17549e-38),
    // so the `types` table, which holds such floats, cannot match; everything else must. The
    // native engine keeps them exactly (see the roundtrip test).
    let keep = |v: Vec<String>| {
        v.into_iter()
            .filter(|l| !l.starts_with("CHECKSUM types:"))
            .collect::<Vec<_>>()
    };
    let (a, b) = (keep(describe(&src).await), keep(describe(&dst).await));
    assert!(a.len() > 15);
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tools_and_failing_dumps_commit_nothing() {
    let src = TestDb::new("dump_fail").await;
    let mem = MemorySink::new();
    let e = Backup::builder()
        .source(
            MyDumpSource::new(&src.url())
                .unwrap()
                .with_tools(Tools::in_dir("/nonexistent")),
        )
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("mariadb-client"), "{e}");
    let missing = format!("{}/dbbt_no_such_database_xyz", server());
    let e = Backup::builder()
        .source(MyDumpSource::new(&missing).unwrap())
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    assert!(
        e.to_string().contains("failed") && e.to_string().contains("dbbt_no_such_database_xyz"),
        "{e}"
    );
    assert!(Repository::new(Arc::new(mem.clone()))
        .list()
        .await
        .unwrap()
        .is_empty());
    assert!(mem.keys().iter().all(|k| !k.starts_with("backups/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_restore_runs_no_shell_command_from_the_backup() {
    use dbbackup_core::testing::ScriptedSource;
    use dbbackup_core::{EntryKind, EntrySpec};
    let marker = std::env::temp_dir().join(format!("dbbackup-pwned-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let sql = format!(
        "CREATE TABLE t (x int);\n\\! touch {m}\nsystem touch {m}\nINSERT INTO t VALUES (1);\n",
        m = marker.display()
    );
    let source = ScriptedSource::new("mysql").entry_spec(
        EntrySpec::new("dump", EntryKind::Dump, 0)
            .with_meta(serde_json::json!({"format": "mysqldump-sql"})),
        sql.into_bytes(),
    );
    let mem = MemorySink::new();
    Backup::builder()
        .source(source)
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let dst = TestDb::reserve("dump_sandbox");
    let e = Restore::builder()
        .sink(Arc::new(mem))
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Target, "{e}");
    assert!(
        !marker.exists(),
        "the restore ran a command from the backup"
    );
}
