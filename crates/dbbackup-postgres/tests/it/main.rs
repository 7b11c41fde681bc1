//! Integration tests of dbbackup-postgres against the real PostgreSQL on 127.0.0.1:5432, or the
//! server `DBBACKUP_PG_URL` names (`postgres://postgres@127.0.0.1:5417`, a superuser with trust
//! auth; `scripts/pg-versions.sh` runs these tests on PostgreSQL 13, 14, 16 and 17 that way).

mod behaviour;
mod clean;
mod dump;
mod extensions;
mod migrate;
mod ordering;
mod privileges;
mod roundtrip;
mod tls;
mod versions;

use std::sync::Arc;

use dbbackup_core::{Backup, BackupReport, Key, MasterKey, MemorySink, Sink, Zstd};
use dbbackup_postgres::{PgSource, PgTarget};
pub(crate) use sqlx::Connection as _;
use sqlx::{Connection, PgConnection};

/// The server under test, without a database name.
pub(crate) fn server() -> String {
    std::env::var("DBBACKUP_PG_URL")
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

pub(crate) fn url(db: &str) -> String {
    format!("{}/{db}", server())
}

/// A server URL's port, for the PostgreSQL client tools the tests run.
fn port(server: &str) -> String {
    server
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| "5432".to_string())
}

/// A uniquely named database, dropped on drop.
pub(crate) struct TestDb {
    pub(crate) name: String,
    /// The server holding it, without a database name.
    pub(crate) server: String,
}

impl TestDb {
    pub(crate) async fn new(tag: &str) -> TestDb {
        TestDb::new_on(&server(), tag).await
    }

    /// As [`TestDb::new`], on another server.
    pub(crate) async fn new_on(server: &str, tag: &str) -> TestDb {
        let db = TestDb::reserve_on(server, tag);
        let mut c = PgConnection::connect(&format!("{}/postgres", db.server))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{}\"",
            db.name
        )))
        .execute(&mut c)
        .await
        .unwrap();
        db
    }

    /// A name for a database the test expects a restore to create.
    pub(crate) fn reserve(tag: &str) -> TestDb {
        TestDb::reserve_on(&server(), tag)
    }

    /// As [`TestDb::reserve`], on another server.
    pub(crate) fn reserve_on(server: &str, tag: &str) -> TestDb {
        TestDb {
            name: unique(tag),
            server: server.trim_end_matches('/').to_string(),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    pub(crate) async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.url()).await.unwrap()
    }

    pub(crate) async fn exists(&self) -> bool {
        let mut c = PgConnection::connect(&format!("{}/postgres", self.server))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&self.name)
            .fetch_one(&mut c)
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = format!("{}/postgres", self.server);
        // Drop synchronously on a private runtime: the test's runtime may be shutting down.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                // A database with subscriptions cannot be dropped: detach them from their
                // (never created) slots and drop them first.
                if let Ok(mut c) = PgConnection::connect(&format!("{}/{name}", admin.trim_end_matches("/postgres"))).await {
                    let subs: Vec<String> = sqlx::query_scalar(
                        "SELECT quote_ident(subname) FROM pg_subscription
                         WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    )
                    .fetch_all(&mut c)
                    .await
                    .unwrap_or_default();
                    for s in subs {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "ALTER SUBSCRIPTION {s} DISABLE; ALTER SUBSCRIPTION {s} SET (slot_name = NONE); DROP SUBSCRIPTION {s}"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                }
                if let Ok(mut c) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
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

fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("dbbt_{tag}_{}_{}", std::process::id(), n % 1_000_000_000)
}

pub(crate) async fn admin() -> PgConnection {
    PgConnection::connect(&url("postgres")).await.unwrap()
}

/// Loads the fixture with `big_rows` rows in the big table.
pub(crate) async fn load_fixture(db: &TestDb, big_rows: u64) {
    let sql = include_str!("fixture.sql").replace(":big_rows", &big_rows.to_string());
    let mut c = db.conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut c)
        .await
        .unwrap();
}

pub(crate) async fn backup(db: &TestDb, sink: &MemorySink, key: &Key, jobs: usize) -> BackupReport {
    Backup::builder()
        .source(PgSource::new(&db.url()).unwrap().with_jobs(jobs))
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

/// Backs `src` up (nothing omitted) and restores it into a new database reserved as `tag`.
pub(crate) async fn backup_and_restore_new(src: &TestDb, tag: &str) -> TestDb {
    let sink = MemorySink::new();
    let key = key();
    let report = backup(src, &sink, &key, 2).await;
    assert!(report.manifest.omitted.is_empty(), "{:?}", report.manifest);
    let dst = TestDb::reserve(tag);
    dbbackup_core::Restore::builder()
        .sink(Arc::new(sink))
        .key(key)
        .target(target(&dst).create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("restore failed: {e}"));
    dst
}

pub(crate) fn key() -> Key {
    Key::raw(MasterKey::generate().unwrap())
}

pub(crate) fn target(db: &TestDb) -> PgTarget {
    PgTarget::new(&db.url()).unwrap()
}

/// `pg_dump --schema-only`, without the lines pg_dump itself varies between databases.
pub(crate) fn schema_dump(db: &TestDb) -> String {
    schema_dump_with(db, false)
}

/// As [`schema_dump`], with owners and privileges when `privileges`.
pub(crate) fn schema_dump_with(db: &TestDb, privileges: bool) -> String {
    let mut args = vec!["--schema-only"];
    if !privileges {
        args.extend(["--no-owner", "--no-privileges"]);
    }
    // The tests' own pg_dump (`DBBACKUP_TEST_PG_DUMP`) may differ from the one the pg_dump-driven
    // source under test finds on PATH: comparing across servers needs one at least as new as both.
    let pg_dump = std::env::var("DBBACKUP_TEST_PG_DUMP").unwrap_or_else(|_| "pg_dump".into());
    let out = std::process::Command::new(pg_dump)
        .args(args)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port(&db.server),
            "-U",
            "postgres",
            &db.name,
        ])
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        // Comments carry the dump's own headers and object-id ordering notes; SET lines session noise.
        // `\restrict` lines carry a random per-dump key (pg_dump 15.14+).
        .filter(|l| {
            !l.starts_with("--")
                && !l.is_empty()
                && !l.starts_with("SET ")
                && !l.starts_with("SELECT pg_catalog.set_config")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Two schema dumps are equal, or the first line that differs is shown.
pub(crate) fn assert_same_schema(source: &str, restored: &str) {
    if source == restored {
        return;
    }
    for (i, (x, y)) in source.lines().zip(restored.lines()).enumerate() {
        if x != y {
            panic!("schema differs at line {i}:\n  source:   {x}\n  restored: {y}");
        }
    }
    panic!(
        "schema differs in length: {} vs {} lines",
        source.lines().count(),
        restored.lines().count()
    );
}

/// An order-independent checksum of every row of every user table.
pub(crate) async fn data_checksums(db: &TestDb) -> Vec<(String, i64, String)> {
    let mut c = db.conn().await;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (s, t) in tables {
        let q = format!(
            "\"{}\".\"{}\"",
            s.replace('"', "\"\""),
            t.replace('"', "\"\"")
        );
        let (n, sum): (i64, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), md5(string_agg(x::text, E'\\n' ORDER BY x::text)) FROM ONLY {q} x"
        )))
        .fetch_one(&mut c)
        .await
        .unwrap();
        out.push((format!("{s}.{t}"), n, sum.unwrap_or_default()));
    }
    // Large objects are data too: every object's OID and bytes.
    let (n, sum): (i64, Option<String>) = sqlx::query_as(
        "SELECT count(*), md5(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid))
         FROM pg_largeobject_metadata",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    out.push(("large objects".into(), n, sum.unwrap_or_default()));
    out
}
