//! Native BACKUP/RESTORE through the TDS test server: the server side is simulated (the handler
//! writes and reads the backup files in the shared directory, and answers msdb and progress
//! queries as SQL Server documents them), the client side is the real code path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbbackup_core::{
    Backup, BackupSummary, Event, KeepPolicy, Key, MemorySink, Restore, RetentionPolicy, Sink,
};
use dbbackup_mssql::testing::{Col, ColType, Reply, Request, TestServer, Value};
use dbbackup_mssql::Recovery;
use dbbackup_mssql::{ServerBackupKind, ServerBackupSource, ServerBackupTarget, SharedDir};

fn content(kind: &str) -> Vec<u8> {
    let (n, seed) = match kind {
        "full" => (3 << 20, 1u8),
        "differential" => (200_000, 2),
        _ => (50_000, 3),
    };
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn quoted_after<'a>(sql: &'a str, marker: &str) -> &'a str {
    let start = sql.find(marker).unwrap() + marker.len();
    let rest = &sql[start..];
    &rest[..rest.find('\'').unwrap()]
}

struct Sim {
    last_kind: String,
    logs: usize,
    db_exists: bool,
    restored: Vec<(String, bool)>,
}

fn lsn_row(kind: &str, logs: usize) -> Vec<Value> {
    let s = |v: &str| Value::Str(v.into());
    let (first, last, ckpt, dbl, base, ty) = match kind {
        "full" => ("1000", "2000", "1500", "0", None, "D"),
        "differential" => ("3000", "4000", "3500", "1500", Some("1500"), "I"),
        _ if logs == 1 => ("2000", "5000", "1500", "1500", None, "L"),
        _ => ("5000", "6000", "1500", "1500", None, "L"),
    };
    vec![
        s(first),
        s(last),
        s(ckpt),
        s(dbl),
        base.map(s).unwrap_or(Value::Null),
        s(ty),
        Value::Int(0),
        s("2026-11-22T01:02:03.040"),
        Value::Int(77),
        s("FULL"),
    ]
}

// Long on purpose: the simulated server's whole behaviour, one reply per statement, kept together so it reads as the server it plays.
async fn server(sim: Arc<Mutex<Sim>>) -> TestServer {
    TestServer::start("pw", move |r: &Request| {
        let Request::Batch(sql) = r else {
            return vec![Reply::Done(0)];
        };
        let mut st = sim.lock().unwrap();
        let nv = |n: &str| Col::new(n, ColType::NVarChar(128));
        if sql.starts_with("SELECT CAST(SERVERPROPERTY") {
            return server_info("16.0.4105.2", 61, "FULL");
        }
        if sql.starts_with("BACKUP ") {
            let kind = if sql.starts_with("BACKUP LOG") {
                st.logs += 1;
                "log"
            } else if sql.contains("DIFFERENTIAL") {
                "differential"
            } else {
                "full"
            };
            st.last_kind = kind.into();
            std::fs::write(quoted_after(sql, "DISK = N'"), content(kind)).unwrap();
            return vec![
                Reply::Info {
                    number: 3211,
                    message: "50 percent processed.".into(),
                },
                Reply::Pause(Duration::from_millis(300)),
                Reply::Info {
                    number: 3014,
                    message: "BACKUP DATABASE successfully processed".into(),
                },
                Reply::Done(0),
            ];
        }
        if sql.contains("sys.dm_exec_requests") {
            assert!(sql.ends_with("session_id = 61"), "{sql}");
            return vec![Reply::Rows(
                vec![Col::new("p", ColType::Float)],
                vec![vec![Value::Float(42.5)]],
            )];
        }
        if sql.contains("msdb.dbo.backupset") {
            let names = [
                "first_lsn",
                "last_lsn",
                "checkpoint_lsn",
                "database_backup_lsn",
                "differential_base_lsn",
                "backup_type",
                "is_copy_only",
                "backup_finish_date",
                "backup_set_id",
                "recovery_model",
            ];
            let cols = names
                .iter()
                .map(|n| match *n {
                    "is_copy_only" => Col::new(*n, ColType::Int),
                    "backup_set_id" => Col::new(*n, ColType::BigInt),
                    _ => nv(n),
                })
                .collect();
            return vec![Reply::Rows(cols, vec![lsn_row(&st.last_kind, st.logs)])];
        }
        if sql.starts_with("RESTORE VERIFYONLY") {
            let path = quoted_after(sql, "DISK = N'");
            // The "server" reads its file back, as VERIFYONLY does.
            if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
                return vec![Reply::Error {
                    number: 3201,
                    message: "Cannot open backup device".into(),
                }];
            }
            return vec![
                Reply::Info {
                    number: 3262,
                    message: "The backup set on file 1 is valid.".into(),
                },
                Reply::Done(0),
            ];
        }
        if sql.starts_with("RESTORE FILELISTONLY") {
            return vec![Reply::Rows(
                vec![nv("LogicalName"), nv("PhysicalName"), nv("Type")],
                vec![
                    vec![
                        Value::Str("shop".into()),
                        Value::Str("/var/opt/mssql/data/shop.mdf".into()),
                        Value::Str("D".into()),
                    ],
                    vec![
                        Value::Str("shop_log".into()),
                        Value::Str("/var/opt/mssql/data/shop_log.ldf".into()),
                        Value::Str("L".into()),
                    ],
                ],
            )];
        }
        if sql.starts_with("SELECT DB_ID(") {
            let v = if st.db_exists {
                Value::Int(7)
            } else {
                Value::Null
            };
            return vec![Reply::Rows(
                vec![Col::new("id", ColType::Int)],
                vec![vec![v]],
            )];
        }
        if sql.starts_with("RESTORE DATABASE") || sql.starts_with("RESTORE LOG") {
            let path = quoted_after(sql, "DISK = N'");
            let data = std::fs::read(path).unwrap();
            let kind = if sql.starts_with("RESTORE LOG") {
                "log"
            } else {
                "full"
            };
            let same = data == content(kind);
            st.restored.push((sql.clone(), same));
            st.db_exists = true;
            return vec![Reply::Done(0)];
        }
        vec![Reply::Error {
            number: 102,
            message: format!("unexpected statement: {sql}"),
        }]
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Long on purpose: one chain (full, differential, two logs) backed up, pruned and restored in order; the steps depend on each other.
async fn native_chain_backs_up_restores_and_keeps_its_parents() {
    let sim = Arc::new(Mutex::new(Sim {
        last_kind: String::new(),
        logs: 0,
        db_exists: false,
        restored: Vec::new(),
    }));
    let s = server(sim.clone()).await;
    let shared = tempdir("native");
    // The simulated server and this process see the directory under the same path here.
    let dir = SharedDir::new(shared.to_str().unwrap(), &shared);
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let key = Key::passphrase("pw for the chain");
    let url = s.url("sa", "pw", "shop");

    let events = Arc::new(Mutex::new(Vec::new()));
    let mut ids = BTreeMap::new();
    for (label, kind) in [
        ("full", ServerBackupKind::Full),
        ("diff", ServerBackupKind::Differential),
        ("log1", ServerBackupKind::Log),
        ("log2", ServerBackupKind::Log),
    ] {
        let ev = events.clone();
        let source = ServerBackupSource::new(&url, dir.clone())
            .unwrap()
            .kind(kind)
            .chain_in(sink.clone())
            .poll_interval(Duration::from_millis(40));
        let report = Backup::builder()
            .source(source)
            .sink(sink.clone())
            .encryption(key.clone())
            .subscribe(move |e: &Event| ev.lock().unwrap().push(e.clone()))
            .build()
            .unwrap()
            .run()
            .await
            .unwrap();
        let m = &report.manifest;
        assert_eq!(m.source.engine, "mssql-native");
        assert_eq!(m.source.server_version.as_deref(), Some("16.0.4105.2"));
        assert_eq!(m.entries.len(), 1);
        assert_eq!(
            m.entries[0].raw_size,
            content(match kind {
                ServerBackupKind::Full => "full",
                ServerBackupKind::Differential => "differential",
                ServerBackupKind::Log => "log",
            })
            .len() as u64
        );
        ids.insert(label, (report.backup_id().to_owned(), m.clone()));
        // The server's file is gone from the shared directory once streamed.
        assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0, "{label}");
    }
    let parent = |l: &str| ids[l].1.parent.clone();
    let id = |l: &str| Some(ids[l].0.clone());
    assert_eq!(parent("full"), None);
    assert_eq!(
        parent("diff"),
        id("full"),
        "differential_base_lsn = full's checkpoint_lsn"
    );
    assert_eq!(
        parent("log1"),
        id("full"),
        "first log: database_backup_lsn = full's checkpoint_lsn"
    );
    assert_eq!(
        parent("log2"),
        id("log1"),
        "next log: first_lsn = previous last_lsn"
    );
    let full_pos = &ids["full"].1.source.position;
    assert_eq!(full_pos["checkpoint_lsn"], "1500");
    assert_eq!(full_pos["backup_type"], "D");
    assert_eq!(
        ids["full"].1.entries[0].meta["files"][1]["logical"],
        "shop_log"
    );

    // STATS progress reached the subscribers: polled percent, then done.
    let progress: Vec<f64> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::ServerProgress { percent, .. } => Some(*percent),
            _ => None,
        })
        .collect();
    assert!(progress.contains(&42.5), "{progress:?}");
    assert!(progress.contains(&100.0), "{progress:?}");

    // Statements as sent.
    let batches = s.batches();
    let full_sql = batches
        .iter()
        .find(|b| b.starts_with("BACKUP DATABASE"))
        .unwrap();
    assert!(
        full_sql.starts_with(&format!(
            "BACKUP DATABASE [shop] TO DISK = N'{}/dbbackup-shop-full-",
            shared.display()
        )),
        "{full_sql}"
    );
    assert!(
        full_sql.contains("WITH FORMAT, INIT, NAME = N'dbbackup "),
        "{full_sql}"
    );
    assert!(
        full_sql.ends_with("COMPRESSION, CHECKSUM, STATS = 10"),
        "{full_sql}"
    );

    // Retention: keep only the newest; its chain (log1, full) stays, the differential goes.
    let manifests: Vec<BackupSummary> = ids.values().map(|(_, m)| m.into()).collect();
    let plan = KeepPolicy {
        keep_last: Some(1),
        ..KeepPolicy::default()
    }
    .plan(&manifests, time::OffsetDateTime::now_utc())
    .unwrap();
    let mut deleted: Vec<&str> = plan.to_delete().collect();
    deleted.sort();
    assert_eq!(deleted, [ids["diff"].0.as_str()]);

    // Restore the full backup under a new name, NORECOVERY, files moved; then the first log.
    let restore = |label: &str, target: ServerBackupTarget| {
        let (sink, key, bid) = (sink.clone(), key.clone(), ids[label].0.clone());
        async move {
            Restore::builder()
                .sink(sink)
                .backup(bid.parse().unwrap())
                .target(target)
                .key(key)
                .build()
                .unwrap()
                .run()
                .await
        }
    };
    let copy = s.url("sa", "pw", "shop_copy");
    restore(
        "full",
        ServerBackupTarget::new(&copy, dir.clone())
            .unwrap()
            .data_dir("/srv/data")
            .recovery(Recovery::NoRecovery),
    )
    .await
    .unwrap();
    restore("log1", ServerBackupTarget::new(&copy, dir.clone()).unwrap())
        .await
        .unwrap();
    let restored = sim.lock().unwrap().restored.clone();
    assert_eq!(restored.len(), 2);
    assert!(
        restored.iter().all(|(_, same)| *same),
        "the server read back the exact bytes"
    );
    assert!(
        restored[0]
            .0
            .starts_with("RESTORE DATABASE [shop_copy] FROM DISK = N'"),
        "{}",
        restored[0].0
    );
    assert!(
        restored[0].0.contains("MOVE N'shop' TO N'/srv/data/shop_copy_0.mdf', MOVE N'shop_log' TO N'/srv/data/shop_copy_1.ldf', NORECOVERY"),
        "{}",
        restored[0].0
    );
    assert!(
        restored[1]
            .0
            .starts_with("RESTORE LOG [shop_copy] FROM DISK = N'"),
        "{}",
        restored[1].0
    );
    assert!(
        restored[1].0.ends_with("WITH RECOVERY, STATS = 10"),
        "{}",
        restored[1].0
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    std::fs::remove_dir_all(&shared).ok();
}

#[tokio::test]
async fn a_log_backup_of_a_simple_recovery_database_is_refused_and_nothing_is_committed() {
    let s = TestServer::start("pw", |r: &Request| match r {
        Request::Batch(sql) if sql.starts_with("SELECT CAST(SERVERPROPERTY") => {
            server_info("16.0", 52, "SIMPLE")
        }
        _ => vec![Reply::Error {
            number: 4208,
            message: "should not be reached".into(),
        }],
    })
    .await
    .unwrap();
    let shared = tempdir("simple");
    let e = failed_native_backup(&s, SharedDir::new("/x", &shared), ServerBackupKind::Log).await;
    assert!(e.to_string().contains("SIMPLE recovery model"), "{e}");
    assert!(s.batches().iter().all(|b| !b.starts_with("BACKUP")));
    std::fs::remove_dir_all(&shared).ok();
}

#[tokio::test]
async fn a_failed_server_backup_leaves_no_file_and_no_backup() {
    let shared = tempdir("fail");
    let s = TestServer::start("pw", |r: &Request| match r {
        Request::Batch(sql) if sql.starts_with("SELECT CAST(SERVERPROPERTY") => {
            server_info("16.0", 52, "FULL")
        }
        Request::Batch(sql) if sql.starts_with("BACKUP") => {
            // The server wrote part of the file before failing.
            std::fs::write(quoted_after(sql, "DISK = N'"), b"partial").unwrap();
            vec![Reply::Error {
                number: 3013,
                message: "BACKUP DATABASE is terminating abnormally.".into(),
            }]
        }
        _ => vec![Reply::Done(0)],
    })
    .await
    .unwrap();
    let e = failed_native_backup(
        &s,
        SharedDir::new(shared.to_str().unwrap(), &shared),
        ServerBackupKind::Full,
    )
    .await;
    assert!(e.to_string().contains("3013"), "{e}");
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "the partial file was removed"
    );
    std::fs::remove_dir_all(&shared).ok();
}

/// The reply to the source's first query: version, session id, recovery model.
fn server_info(version: &str, spid: i64, recovery: &str) -> Vec<Reply> {
    vec![Reply::Rows(
        vec![
            Col::new("v", ColType::NVarChar(128)),
            Col::new("spid", ColType::Int),
            Col::new("r", ColType::NVarChar(60)),
        ],
        vec![vec![
            Value::Str(version.into()),
            Value::Int(spid),
            Value::Str(recovery.into()),
        ]],
    )]
}

/// Runs a native backup of `shop` that must fail, and checks it committed nothing.
async fn failed_native_backup(
    s: &TestServer,
    dir: SharedDir,
    kind: ServerBackupKind,
) -> dbbackup_core::Error {
    let sink = MemorySink::new();
    let e = Backup::builder()
        .source(
            ServerBackupSource::new(&s.url("sa", "pw", "shop"), dir)
                .unwrap()
                .kind(kind),
        )
        .sink(Arc::new(sink.clone()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(
        dbbackup_core::Repository::new(Arc::new(sink))
            .list()
            .await
            .unwrap()
            .is_empty(),
        "a failed backup was committed: {e}"
    );
    e
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dbbackup-mssql-{tag}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn a_backup_the_server_cannot_verify_is_not_committed() {
    let shared = tempdir("verify");
    let s = TestServer::start("pw", |r: &Request| match r {
        Request::Batch(sql) if sql.starts_with("SELECT CAST(SERVERPROPERTY") => {
            server_info("16.0", 52, "FULL")
        }
        Request::Batch(sql) if sql.starts_with("BACKUP") => {
            std::fs::write(quoted_after(sql, "DISK = N'"), b"torn").unwrap();
            vec![Reply::Done(0)]
        }
        Request::Batch(sql) if sql.starts_with("RESTORE VERIFYONLY") => vec![Reply::Error {
            number: 3241,
            message: "The media family on device is incorrectly formed.".into(),
        }],
        _ => vec![Reply::Done(0)],
    })
    .await
    .unwrap();
    let e = failed_native_backup(
        &s,
        SharedDir::new(shared.to_str().unwrap(), &shared),
        ServerBackupKind::Full,
    )
    .await;
    assert!(
        e.to_string().contains("RESTORE VERIFYONLY") && e.to_string().contains("3241"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    std::fs::remove_dir_all(&shared).ok();
}

/// The core's source conformance suite (backup with zstd + AES, verify, restore, a damaged entry
/// refused as corrupt naming backup and entry) for the server's own backup, over the TDS test
/// server: the restore hands the server back the exact bytes it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_backups_pass_the_source_conformance_suite() {
    use dbbackup_core::testing::conformance;
    use dbbackup_core::{RestoreTarget, Source};
    let sim = Arc::new(Mutex::new(Sim {
        last_kind: String::new(),
        logs: 0,
        db_exists: false,
        restored: Vec::new(),
    }));
    let s = server(sim.clone()).await;
    let shared = tempdir("conformance");
    let dir = SharedDir::new(shared.to_str().unwrap(), &shared);
    let source: Arc<dyn Source> = Arc::new(
        ServerBackupSource::new(&s.url("sa", "pw", "shop"), dir.clone())
            .unwrap()
            .poll_interval(Duration::from_millis(40)),
    );
    let target = |db: &str| -> Arc<dyn RestoreTarget> {
        Arc::new(ServerBackupTarget::new(&s.url("sa", "pw", db), dir.clone()).unwrap())
    };
    let (report, _, _) =
        conformance::source_roundtrip(source, target("shop_copy"), Some(target("shop_bad"))).await;
    assert_eq!(report.manifest.source.engine, "mssql-native");
    let restored = sim.lock().unwrap().restored.clone();
    // The damaged backup never reached RESTORE: only the good one did, byte for byte.
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert!(restored[0].1, "the server read back the exact bytes");
    assert!(restored[0].0.starts_with("RESTORE DATABASE [shop_copy]"));
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    std::fs::remove_dir_all(&shared).ok();
}
