//! Integration tests of dbbackup-sqlite against real SQLite files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod data_only;

use dbbackup_core::testing::{conformance, ScriptedSource};
use dbbackup_core::{
    Backup, ErrorKind, Key, MasterKey, MemorySink, Restore, RestoreTarget, Sink, Source, Zstd,
};
use dbbackup_sqlite::{SqliteSource, SqliteTarget};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

struct Dir(PathBuf);
impl Dir {
    fn new(name: &str) -> Self {
        let mut r = [0u8; 6];
        getrandom::getrandom(&mut r).unwrap();
        let d = std::env::temp_dir().join(format!("dbbackup-sqlite-{name}-{}", hex::encode(r)));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn connect(path: &Path, create: bool) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap()
}

/// A database with many types, NULLs, unicode, a large blob, an index, a view and a trigger.
async fn fixture(path: &Path) -> SqliteConnection {
    let mut c = connect(path, true).await;
    for sql in [
        "CREATE TABLE \"odd name \"\"q\"\"\" (id INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB, n NUMERIC, i INTEGER)",
        "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, msg TEXT NOT NULL DEFAULT 'x')",
        "CREATE INDEX odd_t ON \"odd name \"\"q\"\"\" (t)",
        "CREATE VIEW v AS SELECT id, t FROM \"odd name \"\"q\"\"\" WHERE t IS NOT NULL",
        "CREATE TRIGGER tr AFTER INSERT ON \"odd name \"\"q\"\"\" BEGIN INSERT INTO log(msg) VALUES ('ins ' || NEW.id); END",
    ] {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let mut tx = c.begin().await.unwrap();
    for i in 0..5000i64 {
        sqlx::query("INSERT INTO \"odd name \"\"q\"\"\" (t, r, b, n, i) VALUES (?, ?, ?, ?, ?)")
            .bind(if i % 7 == 0 {
                None
            } else {
                Some(format!("row {i} — ünïcødé 🎉\ttab\nnl"))
            })
            .bind(if i % 11 == 0 {
                None
            } else {
                Some(i as f64 / 3.0)
            })
            .bind(if i % 13 == 0 {
                None
            } else {
                Some(vec![(i % 256) as u8; (i % 50) as usize])
            })
            .bind(format!("{}.{:03}", i, i % 1000))
            .bind(if i % 5 == 0 { None } else { Some(i64::MAX - i) })
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO \"odd name \"\"q\"\"\" (b) VALUES (?)")
        .bind(vec![0xA5u8; 3 << 20])
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c
}

/// Schema SQL plus every row of every table, as quoted SQL literals.
async fn dump(path: &Path) -> Vec<String> {
    let mut c = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let mut out: Vec<String> =
        sqlx::query("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}|{}|{:?}",
                    r.get::<String, _>(0),
                    r.get::<String, _>(1),
                    r.get::<Option<String>, _>(2)
                )
            })
            .collect();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name")
            .fetch_all(&mut c)
            .await
            .unwrap();
    for t in tables {
        let q = t.replace('"', "\"\"");
        let cols: Vec<String> =
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info(\"{q}\")")))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| format!("quote(\"{}\")", r.get::<String, _>(1).replace('"', "\"\"")))
                .collect();
        let sql = format!(
            "SELECT {} FROM \"{q}\" ORDER BY rowid",
            cols.join(" || ',' || ")
        );
        for r in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&mut c)
            .await
            .unwrap()
        {
            out.push(format!("{t}: {}", r.get::<String, _>(0)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_reproduce_schema_and_every_row() {
    let dir = Dir::new("roundtrip");
    let src = dir.0.join("app.db");
    let conn = fixture(&src).await;
    let sink = MemorySink::new();
    let key = Key::raw(MasterKey::generate().unwrap());
    let report = Backup::builder()
        .source(SqliteSource::new(&src))
        .sink(Arc::new(sink.clone()))
        .transform(Zstd::new(3))
        .encryption(key.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let m = &report.manifest;
    assert_eq!(m.source.engine, "sqlite");
    assert_eq!(
        m.source.position.get("journal_mode").map(String::as_str),
        Some("wal")
    );
    assert!(m.entries[0].meta["tables"].as_array().unwrap().len() >= 2);

    let out = dir.0.join("restored.db");
    Restore::builder()
        .sink(Arc::new(sink))
        .key(key)
        .target(SqliteTarget::new(&out))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    drop(conn);
    let (a, b) = (dump(&src).await, dump(&out).await);
    assert!(
        a.len() > 10_000,
        "the fixture dump looks too small: {}",
        a.len()
    );
    assert_eq!(a, b, "restored database differs");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the restored file should be private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_never_shows_half_a_transaction() {
    let dir = Dir::new("consistency");
    let src = dir.0.join("live.db");
    let mut c = connect(&src, true).await;
    sqlx::query("CREATE TABLE a (x INTEGER)")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE b (x INTEGER)")
        .execute(&mut c)
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = tokio::spawn(async move {
        let mut n = 0i64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let mut tx = c.begin().await.unwrap();
            sqlx::query("INSERT INTO a VALUES (?)")
                .bind(n)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("INSERT INTO b VALUES (?)")
                .bind(n)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            n += 1;
        }
        n
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let sink = MemorySink::new();
    let mut restored = Vec::new();
    for i in 0..3 {
        let r = Backup::builder()
            .source(SqliteSource::new(&src))
            .sink(Arc::new(sink.clone()))
            .build()
            .unwrap()
            .run()
            .await
            .unwrap();
        let out = dir.0.join(format!("r{i}.db"));
        Restore::builder()
            .sink(Arc::new(sink.clone()))
            .backup(dbbackup_core::BackupSelector::Id(r.backup_id().to_owned()))
            .target(SqliteTarget::new(&out))
            .build()
            .unwrap()
            .run()
            .await
            .unwrap();
        restored.push(out);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total = writer.await.unwrap();
    let mut counts = Vec::new();
    for out in restored {
        let mut c = SqliteConnectOptions::new()
            .filename(&out)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        let a: i64 = sqlx::query_scalar("SELECT count(*) FROM a")
            .fetch_one(&mut c)
            .await
            .unwrap();
        let b: i64 = sqlx::query_scalar("SELECT count(*) FROM b")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(a, b, "the snapshot holds half a transaction");
        counts.push(a);
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(*counts.last().unwrap() > 0 && *counts.last().unwrap() <= total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_source_conformance_suite() {
    let dir = Dir::new("conformance");
    let src = dir.0.join("c.db");
    drop(fixture(&src).await);
    let out = dir.0.join("out.db");
    let bad = dir.0.join("bad.db");
    let source: Arc<dyn Source> = Arc::new(SqliteSource::new(&src));
    conformance::source_roundtrip(
        source,
        Arc::new(SqliteTarget::new(&out)) as Arc<dyn RestoreTarget>,
        Some(Arc::new(SqliteTarget::new(&bad))),
    )
    .await;
    assert_eq!(dump(&src).await, dump(&out).await);
    assert!(!bad.exists(), "a corrupt restore left a file at the target");
    let leftovers = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "a failed restore left its temporary file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_errors_for_missing_sources_existing_targets_and_foreign_backups() {
    let dir = Dir::new("errors");
    let e = SqliteSource::new(dir.0.join("missing.db"))
        .open()
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("missing.db"), "{e}");

    let src = dir.0.join("s.db");
    drop(fixture(&src).await);
    let sink = MemorySink::new();
    Backup::builder()
        .source(SqliteSource::new(&src))
        .sink(Arc::new(sink.clone()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let existing = dir.0.join("existing.db");
    std::fs::write(&existing, b"precious").unwrap();
    let e = Restore::builder()
        .sink(Arc::new(sink.clone()))
        .target(SqliteTarget::new(&existing))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");

    let other = MemorySink::new();
    Backup::builder()
        .source(ScriptedSource::new("postgres").entry("x", &b"x"[..]))
        .sink(Arc::new(other.clone()) as Arc<dyn Sink>)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let e = Restore::builder()
        .sink(Arc::new(other))
        .target(SqliteTarget::new(dir.0.join("x.db")))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("postgres backup"), "{e}");
}
