//! Integration tests of dbbackup-mysql against the real MariaDB on 127.0.0.1:3306, or the server
//! `DBBACKUP_MYSQL_URL` names (`scripts/mariadb-binlog.sh` runs them on a second MariaDB with the
//! binary log on, where `binlog.rs` replays the log from a backup's recorded position).

mod behaviour;
mod binlog;
mod dump;
mod migrate;
mod roundtrip;
mod tls;

use std::sync::Arc;

use dbbackup_core::{Backup, BackupReport, Key, MasterKey, MemorySink, Sink, Zstd};
use dbbackup_mysql::{MySqlSource, MySqlTarget};
use sqlx::{Connection, MySqlConnection, Row};

/// The server under test, without a database name.
pub(crate) fn server() -> String {
    std::env::var("DBBACKUP_MYSQL_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

/// A uniquely named database, dropped on drop.
pub(crate) struct TestDb {
    pub(crate) name: String,
}

fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("dbbt_{tag}_{}_{}", std::process::id(), n % 1_000_000_000)
}

impl TestDb {
    pub(crate) async fn new(tag: &str) -> TestDb {
        let name = unique(tag);
        let mut c = admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .execute(&mut c)
        .await
        .unwrap();
        TestDb { name }
    }
    pub(crate) fn reserve(tag: &str) -> TestDb {
        TestDb { name: unique(tag) }
    }
    pub(crate) fn url(&self) -> String {
        format!("{}/{}", server(), self.name)
    }
    pub(crate) async fn conn(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url()).await.unwrap()
    }
    pub(crate) async fn exists(&self) -> bool {
        let mut c = admin().await;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        )
        .bind(&self.name)
        .fetch_one(&mut c)
        .await
        .unwrap();
        n > 0
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = MySqlConnection::connect(&format!("{}/mysql", server())).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS `{name}`"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

pub(crate) async fn admin() -> MySqlConnection {
    MySqlConnection::connect(&format!("{}/mysql", server()))
        .await
        .unwrap()
}

pub(crate) async fn load_fixture(db: &TestDb, big_rows: u64) {
    let sql = include_str!("fixture.sql").replace(":big_rows", &big_rows.to_string());
    let mut c = db.conn().await;
    for stmt in split_statements(&sql) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.clone()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("fixture statement failed: {e}\n{stmt}"));
    }
}

/// Splits on `;` at line ends (the fixture keeps compound statements on one line).
fn split_statements(sql: &str) -> Vec<String> {
    sql.split(";\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches(';').to_owned())
        .collect()
}

pub(crate) fn key() -> Key {
    Key::raw(MasterKey::generate().unwrap())
}

pub(crate) async fn backup(db: &TestDb, sink: &MemorySink, key: &Key, jobs: usize) -> BackupReport {
    Backup::builder()
        .source(MySqlSource::new(&db.url()).unwrap().with_jobs(jobs))
        .sink(Arc::new(sink.clone()) as Arc<dyn Sink>)
        .transform(Zstd::new(3))
        .encryption(key.clone())
        .jobs(jobs)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("backup failed: {e}"))
}

pub(crate) fn target(db: &TestDb) -> MySqlTarget {
    MySqlTarget::new(&db.url()).unwrap()
}

fn text(r: &sqlx::mysql::MySqlRow, i: usize) -> String {
    r.try_get_unchecked::<Option<Vec<u8>>, _>(i)
        .unwrap()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

/// SHOW CREATE of every object and CHECKSUM TABLE of every table, as comparable text.
pub(crate) async fn describe(db: &TestDb) -> Vec<String> {
    let mut c = db.conn().await;
    let mut out = Vec::new();
    let objects: Vec<(String, String)> = sqlx::query(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .iter()
    .map(|r| (text(r, 0), text(r, 1)))
    .collect();
    for (name, ty) in objects {
        let q = format!("`{}`", name.replace('`', "``"));
        let what = match ty.as_str() {
            "VIEW" => "VIEW",
            "SEQUENCE" => "SEQUENCE",
            _ => "TABLE",
        };
        let r = sqlx::query(sqlx::AssertSqlSafe(format!("SHOW CREATE {what} {q}")))
            .fetch_one(&mut c)
            .await
            .unwrap();
        out.push(format!("{what} {name}: {}", text(&r, 1)));
        if what == "TABLE" {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("CHECKSUM TABLE {q} EXTENDED")))
                .fetch_one(&mut c)
                .await
                .unwrap();
            let n = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {q}")))
                .fetch_one(&mut c)
                .await
                .unwrap();
            let sum: Option<u64> = r.try_get_unchecked(1).unwrap();
            assert!(sum.is_some(), "no checksum for {name}");
            out.push(format!(
                "CHECKSUM {name}: {} rows {}",
                sum.unwrap(),
                n.get::<i64, _>(0)
            ));
        }
    }
    for (kind, list) in [
        ("FUNCTION", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_TYPE = 'FUNCTION'"),
        ("PROCEDURE", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_TYPE = 'PROCEDURE'"),
        ("TRIGGER", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"),
        ("EVENT", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()"),
    ] {
        let names: Vec<String> = sqlx::query(list).fetch_all(&mut c).await.unwrap().iter().map(|r| text(r, 0)).collect();
        for n in names {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!("SHOW CREATE {kind} `{n}`"))).fetch_one(&mut c).await.unwrap();
            let col = if kind == "EVENT" { 3 } else { 2 };
            out.push(format!("{kind} {n}: {}", text(&r, col)));
        }
    }
    out.sort();
    out
}

/// What [`backup_during_writes`] saw: the report, the backup's storage, and how many writer
/// transactions had committed when the backup started and when it ended.
pub(crate) struct WrittenBackup {
    pub(crate) report: BackupReport,
    pub(crate) sink: MemorySink,
    pub(crate) before: i64,
    pub(crate) after: i64,
}

/// Backs `source` up through storage throttled to 6 MiB/s (so the backup takes a while) while a
/// writer commits transaction after transaction into `db`: transaction `i` (from 1) runs the
/// statements `write(i)`. The writer stops when the backup ends.
pub(crate) async fn backup_during_writes(
    db: &TestDb,
    source: MySqlSource,
    write: impl Fn(i64) -> Vec<String> + Send + 'static,
) -> WrittenBackup {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let (stop2, written2, url) = (stop.clone(), written.clone(), db.url());
    let writer = tokio::spawn(async move {
        let mut c = MySqlConnection::connect(&url).await.unwrap();
        let mut i = 0;
        while !stop2.load(Ordering::Relaxed) {
            i += 1;
            let mut tx = c.begin().await.unwrap();
            for sql in write(i) {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            written2.fetch_add(1, Ordering::Relaxed);
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = written.load(Ordering::Relaxed);
    let sink = MemorySink::new();
    let slow: Arc<dyn Sink> =
        Arc::new(dbbackup_storage::Throttled::new(Arc::new(sink.clone()), 6 << 20).unwrap());
    let report = Backup::builder()
        .source(source)
        .sink(slow)
        .jobs(1)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let after = written.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        after > before + 10,
        "the writer should have committed during the backup ({before} -> {after})"
    );
    WrittenBackup {
        report,
        sink,
        before,
        after,
    }
}
