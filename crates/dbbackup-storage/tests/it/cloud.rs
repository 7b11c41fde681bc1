//! GCS and Azure run the same suite when a test repository is given in the environment:
//! `DBBACKUP_TEST_GCS_URL=gs://bucket/prefix` (with GOOGLE_APPLICATION_CREDENTIALS or
//! GOOGLE_SERVICE_ACCOUNT) and `DBBACKUP_TEST_AZURE_URL=az://container/prefix?account=..` (with
//! AZURE_STORAGE_ACCESS_KEY or another credential of object_store's Azure builder). The suites are
//! ignored unless asked for (`scripts/test.sh` adds `--run-ignored` when a variable is set), so a
//! run without them reports them skipped; asked for without the variable, they fail. The URL
//! checks run everywhere. Only loopback servers are used otherwise.

use dbbackup_core::testing::conformance;
use dbbackup_storage::open_sink;

async fn run_suite(var: &str) {
    let url = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: this test needs a repository on that service")
    });
    conformance::sink_suite(open_sink(&url).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs DBBACKUP_TEST_GCS_URL: a GCS bucket and its credentials"]
async fn gcs_passes_the_sink_suite() {
    run_suite("DBBACKUP_TEST_GCS_URL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs DBBACKUP_TEST_AZURE_URL: an Azure container and its credentials"]
async fn azure_passes_the_sink_suite() {
    run_suite("DBBACKUP_TEST_AZURE_URL").await;
}

#[test]
fn cloud_urls_are_understood_without_credentials() {
    assert!(open_sink("gs://").is_err());
    let e = open_sink("az://container/p?bogus=1").err().unwrap();
    assert!(e.to_string().contains("bogus"), "{e}");
}
