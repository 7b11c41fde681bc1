//! GCS and Azure run the same suite when a test repository is given in the environment:
//! `DBBACKUP_TEST_GCS_URL=gs://bucket/prefix` (with GOOGLE_APPLICATION_CREDENTIALS or
//! GOOGLE_SERVICE_ACCOUNT) and `DBBACKUP_TEST_AZURE_URL=az://container/prefix?account=..` (with
//! AZURE_STORAGE_ACCESS_KEY or another credential of object_store's Azure builder). Without them the
//! tests print why they did nothing. Only loopback servers are used otherwise.

use dbbackup_core::testing::conformance;
use dbbackup_storage::open_sink;

async fn run_if_configured(var: &str) {
    match std::env::var(var) {
        Ok(url) => conformance::sink_suite(open_sink(&url).unwrap()).await,
        Err(_) => eprintln!("skipped: {var} is not set, so this cloud backend is not exercised"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_passes_the_sink_suite_when_configured() {
    run_if_configured("DBBACKUP_TEST_GCS_URL").await;
    // The URL form is understood either way.
    assert!(open_sink("gs://").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_passes_the_sink_suite_when_configured() {
    run_if_configured("DBBACKUP_TEST_AZURE_URL").await;
    let e = open_sink("az://container/p?bogus=1").err().unwrap();
    assert!(e.to_string().contains("bogus"), "{e}");
}
