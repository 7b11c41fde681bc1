//! Against a real SQL Server, when `DBBACKUP_MSSQL_URL` names one (a login that may create
//! databases, e.g. `mssql://sa:Secret1!@127.0.0.1:1433/master?trust_server_certificate=true`).
//! The native test also needs `DBBACKUP_MSSQL_SHARED_DIR=SERVER_PATH=LOCAL_PATH`, a directory
//! the server writes to and this process reads (e.g. a Docker bind mount).
//!
//! Both are ignored unless asked for (`--run-ignored`, which `scripts/test.sh` adds when
//! `DBBACKUP_MSSQL_URL` is set): no SQL Server runs where CI runs, and a test that cannot run is
//! reported as skipped, never as passed. Asked for without the variables, they fail.

use std::sync::Arc;

use dbbackup_core::{Backup, ErrorKind, MemorySink, Restore, Sink};
use dbbackup_mssql::{connect_to, exec, rows};
use dbbackup_mssql::{
    MsUrl, MssqlSource, MssqlTarget, ServerBackupSource, ServerBackupTarget, SharedDir,
};

fn real_url() -> String {
    match std::env::var("DBBACKUP_MSSQL_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("DBBACKUP_MSSQL_URL is not set: this test needs a real SQL Server"),
    }
}

fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map(|(a, b)| (a, Some(b)))
        .unwrap_or((url, None));
    let base = base.rsplit_once('/').map(|(a, _)| a).unwrap_or(base);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

struct TestDb {
    admin: String,
    names: Vec<String>,
}

impl TestDb {
    async fn drop_all(&self) {
        let u: MsUrl = self.admin.parse().unwrap();
        if let Ok(mut c) = connect_to(&u, "master", ErrorKind::Target).await {
            for n in &self.names {
                let _ = exec(
                    &mut c,
                    &format!("IF DB_ID(N'{n}') IS NOT NULL BEGIN ALTER DATABASE [{n}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [{n}]; END"),
                    ErrorKind::Target,
                    "cleanup",
                )
                .await;
            }
        }
    }
}

const FIXTURE: &str = "
CREATE TABLE dbo.t_types (
  id int IDENTITY(5, 3) PRIMARY KEY,
  ti tinyint, si smallint, bi bigint, b bit, r real, f float,
  d decimal(38, 10), m money, sm smallmoney,
  c char(5), vc varchar(100) COLLATE Latin1_General_CI_AS, nc nchar(3), nv nvarchar(200), nmax nvarchar(max),
  bin binary(4), vb varbinary(max),
  g uniqueidentifier, dt datetime, sdt smalldatetime, da date, t time(7), d2 datetime2(7), dto datetimeoffset(3),
  x xml, v sql_variant,
  comp AS (bi * 2)
);
CREATE INDEX ix_types_nv ON dbo.t_types (nv) INCLUDE (d);
CREATE TABLE dbo.[odd ]] name] (k int NOT NULL PRIMARY KEY, parent int NULL REFERENCES dbo.[odd ]] name] (k));
INSERT INTO dbo.t_types (ti, si, bi, b, r, f, d, m, sm, c, vc, nc, nv, nmax, bin, vb, g, dt, sdt, da, t, d2, dto, x, v)
VALUES (255, -32768, -9223372036854775808, 1, 1.5, 2.2250738585072014e-308, 1234567890123456789012345678.0123456789,
  922337203685477.5807, -214748.3648, 'ab', 'latin é', N'😀', N'tab\there ''q''', REPLICATE(CAST(N'ü' AS nvarchar(max)), 100000),
  0x00FF10AB, CAST(REPLICATE(CAST(0xDEADBEEF AS varbinary(max)), 300000) AS varbinary(max)), NEWID(),
  '1753-01-01T00:00:00.003', '2079-06-06T23:59:00', '0001-01-01', '23:59:59.9999999', '9999-12-31T23:59:59.9999999',
  '2026-11-22T10:00:00.123+05:30', N'<a b=\"1\">x</a>', 42);
INSERT INTO dbo.t_types (nv) VALUES (NULL);
INSERT INTO dbo.[odd ]] name] VALUES (1, NULL), (2, 1);
";

const CHECK: &str = "SELECT COUNT(*) AS n, CHECKSUM_AGG(BINARY_CHECKSUM(id, ti, si, bi, b, r, f, d, m, sm, c, vc, nc, nv, bin, g, dt, sdt, da, t, d2, dto)) AS c, \
    MAX(DATALENGTH(nmax)) AS lm, MAX(DATALENGTH(vb)) AS lb, MAX(id) AS top_id, IDENT_CURRENT('dbo.t_types') AS ident FROM dbo.t_types";

async fn fingerprint(url: &MsUrl, db: &str) -> Vec<Option<String>> {
    let mut c = connect_to(url, db, ErrorKind::Source).await.unwrap();
    let r = rows(&mut c, CHECK, ErrorKind::Source, "check")
        .await
        .unwrap();
    (0..6)
        .map(|i| r[0].cells().nth(i).map(|(_, v)| format!("{v:?}")))
        .collect()
}

async fn setup(admin: &str, tag: &str) -> (TestDb, String, String) {
    let n = std::process::id();
    let (src, dst) = (format!("dbbt_{tag}_{n}"), format!("dbbt_{tag}_copy_{n}"));
    let t = TestDb {
        admin: admin.to_owned(),
        names: vec![src.clone(), dst.clone()],
    };
    t.drop_all().await;
    let u: MsUrl = admin.parse().unwrap();
    let mut c = connect_to(&u, "master", ErrorKind::Source).await.unwrap();
    exec(
        &mut c,
        &format!("CREATE DATABASE [{src}]"),
        ErrorKind::Source,
        "create",
    )
    .await
    .unwrap();
    exec(
        &mut c,
        &format!("ALTER DATABASE [{src}] SET ALLOW_SNAPSHOT_ISOLATION ON"),
        ErrorKind::Source,
        "snapshot",
    )
    .await
    .unwrap();
    exec(
        &mut c,
        &format!("ALTER DATABASE [{src}] SET RECOVERY FULL"),
        ErrorKind::Source,
        "recovery",
    )
    .await
    .unwrap();
    let mut s = connect_to(&u, &src, ErrorKind::Source).await.unwrap();
    exec(&mut s, FIXTURE, ErrorKind::Source, "fixture")
        .await
        .unwrap();
    (t, src, dst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs DBBACKUP_MSSQL_URL: a real SQL Server (none runs on these machines)"]
async fn real_logical_backup_restore_compare() {
    let admin = real_url();
    let (t, src, dst) = setup(&admin, "logical").await;
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let report = Backup::builder()
        .source(MssqlSource::new(&with_db(&admin, &src)).unwrap())
        .sink(sink.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(report
        .manifest
        .warnings
        .iter()
        .any(|w| w.contains("sql_variant")));
    Restore::builder()
        .sink(sink)
        .backup(report.backup_id().parse().unwrap())
        .target(
            MssqlTarget::new(&with_db(&admin, &dst))
                .unwrap()
                .create(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let u: MsUrl = admin.parse().unwrap();
    assert_eq!(fingerprint(&u, &src).await, fingerprint(&u, &dst).await);
    t.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs DBBACKUP_MSSQL_URL and DBBACKUP_MSSQL_SHARED_DIR: a real SQL Server and a directory it shares"]
async fn real_native_full_and_log_restore_compare() {
    let admin = real_url();
    let Some((server, local)) = std::env::var("DBBACKUP_MSSQL_SHARED_DIR")
        .ok()
        .and_then(|v| v.split_once('=').map(|(a, b)| (a.to_owned(), b.to_owned())))
    else {
        panic!(
            "DBBACKUP_MSSQL_SHARED_DIR=SERVER_PATH=LOCAL_PATH is not set: the native test needs it"
        );
    };
    let (t, src, dst) = setup(&admin, "native").await;
    let dir = SharedDir::new(server, local);
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let mut ids = Vec::new();
    for kind in [
        dbbackup_mssql::ServerBackupKind::Full,
        dbbackup_mssql::ServerBackupKind::Log,
    ] {
        let r = Backup::builder()
            .source(
                ServerBackupSource::new(&with_db(&admin, &src), dir.clone())
                    .unwrap()
                    .kind(kind)
                    .chain_in(sink.clone()),
            )
            .sink(sink.clone())
            .build()
            .unwrap()
            .run()
            .await
            .unwrap();
        ids.push(r);
    }
    assert_eq!(ids[1].manifest.parent.as_deref(), Some(ids[0].backup_id()));
    let u: MsUrl = admin.parse().unwrap();
    let mut c = connect_to(&u, "master", ErrorKind::Source).await.unwrap();
    let data_dir = rows(
        &mut c,
        "SELECT CAST(SERVERPROPERTY('InstanceDefaultDataPath') AS nvarchar(400))",
        ErrorKind::Source,
        "data dir",
    )
    .await
    .unwrap()[0]
        .get::<&str, _>(0)
        .unwrap()
        .to_owned();
    for (i, r) in ids.iter().enumerate() {
        let mut target = ServerBackupTarget::new(&with_db(&admin, &dst), dir.clone())
            .unwrap()
            .data_dir(data_dir.clone());
        if i == 0 {
            target = target.recovery(dbbackup_mssql::Recovery::NoRecovery);
        }
        Restore::builder()
            .sink(sink.clone())
            .backup(r.backup_id().parse().unwrap())
            .target(target)
            .build()
            .unwrap()
            .run()
            .await
            .unwrap();
    }
    assert_eq!(fingerprint(&u, &src).await, fingerprint(&u, &dst).await);
    t.drop_all().await;
}
