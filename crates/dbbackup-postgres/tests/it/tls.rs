//! TLS to the shared server on 127.0.0.1:5432 (`ssl = on`, Debian's snakeoil certificate for
//! `localhost`): these tests always talk to it, whatever server the other tests use.

use std::sync::Arc;

use dbbackup_core::{Backup, ErrorKind, MemorySink, Restore, Sink};
use dbbackup_postgres::{PgDumpSource, PgSource, PgTarget};
use sqlx::{Connection, PgConnection};

use crate::*;

const SHARED: &str = "postgres://postgres@127.0.0.1:5432";
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn tls_url(db: &TestDb, params: &str) -> String {
    format!("postgres://postgres@localhost:5432/{}?{params}", db.name)
}

/// A self-signed certificate that did not sign the server's.
fn wrong_root() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dbbackup-wrong-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("root.pem");
    if !cert.exists() {
        let ok = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.join("root.key"))
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "openssl could not make a certificate");
    }
    cert
}

async fn backup_with(
    source: impl dbbackup_core::Source + 'static,
) -> dbbackup_core::Result<(MemorySink, dbbackup_core::BackupReport)> {
    let mem = MemorySink::new();
    let r = Backup::builder()
        .source(source)
        .sink(Arc::new(mem.clone()) as Arc<dyn Sink>)
        .build()?
        .run()
        .await?;
    Ok((mem, r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_backup_and_restore_over_verified_tls() {
    let src = TestDb::new_on(SHARED, "tls_src").await;
    load_fixture(&src, 500).await;
    // The driver really speaks TLS now (it was built without it).
    let mut c = PgConnection::connect(&tls_url(&src, "sslmode=require"))
        .await
        .unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(ssl);
    let full = format!("sslmode=verify-full&sslrootcert={SNAKEOIL}");
    let (mem, report) = backup_with(PgSource::new(&tls_url(&src, &full)).unwrap())
        .await
        .unwrap();
    assert!(report
        .manifest
        .warnings
        .iter()
        .all(|w| !w.contains("not encrypted")));
    let dst = TestDb::reserve_on(SHARED, "tls_dst");
    Restore::builder()
        .sink(Arc::new(mem))
        .target(
            PgTarget::new(&tls_url(&dst, "sslmode=require"))
                .unwrap()
                .create(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(data_checksums(&src).await, data_checksums(&dst).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_root_certificate_or_host_is_refused_clearly() {
    let src = TestDb::new_on(SHARED, "tls_wrong").await;
    let wrong = format!("sslmode=verify-full&sslrootcert={}", wrong_root().display());
    let e = backup_with(PgSource::new(&tls_url(&src, &wrong)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    // The right root, but the certificate names localhost, not 127.0.0.1.
    let by_ip = format!(
        "{SHARED}/{}?sslmode=verify-full&sslrootcert={SNAKEOIL}",
        src.name
    );
    let e = backup_with(PgSource::new(&by_ip).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    // verify-ca does not check the name.
    let ca = format!(
        "{SHARED}/{}?sslmode=verify-ca&sslrootcert={SNAKEOIL}",
        src.name
    );
    backup_with(PgSource::new(&ca).unwrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_tools_get_the_same_tls_settings() {
    let src = TestDb::new_on(SHARED, "tls_dump").await;
    load_fixture(&src, 100).await;
    let wrong = format!("sslmode=verify-full&sslrootcert={}", wrong_root().display());
    let e = backup_with(PgDumpSource::new(&tls_url(&src, &wrong)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Source, "{e}");
    let full = format!("sslmode=verify-full&sslrootcert={SNAKEOIL}");
    let (mem, _) = backup_with(PgDumpSource::new(&tls_url(&src, &full)).unwrap())
        .await
        .unwrap();
    let dst = TestDb::reserve_on(SHARED, "tls_dump_dst");
    Restore::builder()
        .sink(Arc::new(mem))
        .target(PgTarget::new(&tls_url(&dst, &full)).unwrap().create(true))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(data_checksums(&src).await, data_checksums(&dst).await);
}
