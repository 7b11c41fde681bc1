//! TLS on a MariaDB that lets its user in only over TLS (`scripts/mariadb-tls.sh` starts it and
//! runs these; they are ignored elsewhere, never passed without a server).

use std::sync::Arc;

use dbbackup_core::{Backup, ErrorKind, MemorySink, Restore, Sink};
use dbbackup_mysql::{MyDumpSource, MySqlSource, MySqlTarget};
use sqlx::{Connection, MySqlConnection};

const NEEDS: &str = "needs the TLS-only MariaDB of scripts/mariadb-tls.sh \
                     (DBBACKUP_MYSQL_TLS_SERVER, DBBACKUP_MYSQL_TLS_CA)";

fn server() -> String {
    std::env::var("DBBACKUP_MYSQL_TLS_SERVER").expect(NEEDS)
}

fn ca() -> String {
    std::env::var("DBBACKUP_MYSQL_TLS_CA").expect(NEEDS)
}

fn url(db: &str, params: &str) -> String {
    format!("{}/{db}?{params}", server())
}

fn verified() -> String {
    format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca())
}

fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("dbbt_tls_{tag}_{}", n % 1_000_000_000)
}

async fn admin() -> MySqlConnection {
    MySqlConnection::connect(&url("mysql", "ssl-mode=REQUIRED"))
        .await
        .unwrap()
}

async fn create_source(tag: &str) -> String {
    let db = unique(tag);
    let mut c = admin().await;
    for sql in [
        format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"),
        format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(100), b BLOB, d DECIMAL(20,6), \
             ts DATETIME(6), KEY (v))"
        ),
        format!(
            "INSERT INTO `{db}`.t SELECT seq, CONCAT('row ', seq, ' \\t\\n ✓'), \
             UNHEX(SHA2(seq, 256)), seq / 7, '2026-01-01' + INTERVAL seq SECOND \
             FROM seq_1_to_3000"
        ),
        format!("CREATE VIEW `{db}`.v AS SELECT id, v FROM `{db}`.t WHERE id < 10"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }
    db
}

async fn drop_db(db: &str) {
    let mut c = admin().await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{db}`"
    )))
    .execute(&mut c)
    .await;
}

async fn checksum(db: &str) -> (i64, Option<i64>) {
    let mut c = admin().await;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM `{db}`.t"
    )))
    .fetch_one(&mut c)
    .await
    .unwrap();
    let row: (String, Option<i64>) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("CHECKSUM TABLE `{db}`.t")))
            .fetch_one(&mut c)
            .await
            .unwrap();
    (n, row.1)
}

async fn run_backup(
    source: impl dbbackup_core::Source + 'static,
) -> dbbackup_core::Result<MemorySink> {
    let mem = MemorySink::new();
    Backup::builder()
        .source(source)
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()?
        .run()
        .await?;
    Ok(mem)
}

async fn restore(mem: MemorySink, target: MySqlTarget) -> dbbackup_core::Result<()> {
    Restore::builder()
        .sink(Arc::new(mem))
        .target(target)
        .build()?
        .run()
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the TLS-only MariaDB of scripts/mariadb-tls.sh"]
async fn native_backup_and_restore_over_verified_tls_through_both_load_paths() {
    let src = create_source("native").await;
    // The server refuses this user without TLS.
    let e = run_backup(MySqlSource::new(&url(&src, "ssl-mode=DISABLED")).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");

    let mem = run_backup(
        MySqlSource::new(&url(&src, &verified()))
            .unwrap()
            .with_jobs(2),
    )
    .await
    .unwrap();
    for (tag, no_local_infile) in [("load", false), ("insert", true)] {
        let dst = unique(tag);
        restore(
            mem.clone(),
            MySqlTarget::new(&url(&dst, &verified()))
                .unwrap()
                .create(true)
                .local_infile(!no_local_infile),
        )
        .await
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(checksum(&src).await, checksum(&dst).await, "{tag}");
        drop_db(&dst).await;
    }
    drop_db(&src).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the TLS-only MariaDB of scripts/mariadb-tls.sh"]
async fn the_dump_tools_get_the_same_tls_settings() {
    let src = create_source("dump").await;
    let mem = run_backup(MyDumpSource::new(&url(&src, &verified())).unwrap())
        .await
        .unwrap();
    let dst = unique("dump_dst");
    restore(
        mem,
        MySqlTarget::new(&url(&dst, &verified()))
            .unwrap()
            .create(true),
    )
    .await
    .unwrap();
    assert_eq!(checksum(&src).await, checksum(&dst).await);
    // Without TLS the tools are refused as well.
    let e = run_backup(MyDumpSource::new(&url(&src, "ssl-mode=DISABLED")).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    drop_db(&dst).await;
    drop_db(&src).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the TLS-only MariaDB of scripts/mariadb-tls.sh"]
async fn a_wrong_ca_is_refused_clearly() {
    let src = create_source("wrong").await;
    let wrong = "ssl-mode=VERIFY_CA&ssl-ca=/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let e = run_backup(MySqlSource::new(&url(&src, wrong)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!("mysql://h/db?ssl-mode=SOMETIMES"
        .parse::<dbbackup_mysql::MyUrl>()
        .is_err());
    drop_db(&src).await;
}
