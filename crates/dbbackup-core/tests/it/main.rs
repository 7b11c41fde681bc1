//! Integration tests of dbbackup-core (one binary to keep link time down).

mod concurrent;
mod conformance;
mod logs;
mod pipeline;
mod repository;
mod retention;
mod tamper;
mod trust;

use std::sync::Arc;

use dbbackup_core::testing::ScriptedSource;
use dbbackup_core::{
    Backup, BackupReport, BackupSelector, KdfParams, Key, MasterKey, MemorySink, Result, Sink, Zstd,
};

/// Cheap Argon2id for tests (the default costs 64 MiB and three passes per derivation).
pub(crate) fn fast_kdf() -> KdfParams {
    KdfParams::minimum().unwrap()
}

pub(crate) fn raw_key() -> Key {
    Key::raw(MasterKey::generate().unwrap())
}

/// A source with schema, two data entries and post-data, in three phases.
pub(crate) fn sample_source() -> ScriptedSource {
    use dbbackup_core::{EntryKind, EntrySpec};
    let mut big = vec![0u8; 2_500_000];
    dbbackup_core::testing::generate_into(7, &mut big);
    ScriptedSource::new("scripted")
        .entry_spec(
            EntrySpec::new("pre-data", EntryKind::PreData, 0),
            &b"CREATE TABLE a (x int);\nCREATE TABLE b (y text);\n"[..],
        )
        .entry("data/a", big)
        .entry("data/b", &b"1\n2\n3\n"[..])
        .entry("data/empty", &b""[..])
        .entry_spec(
            EntrySpec::new("post-data", EntryKind::PostData, 2),
            &b"CREATE INDEX ON a (x);\n"[..],
        )
        .chunk_size(10_000)
}

pub(crate) async fn backup(
    sink: &MemorySink,
    source: ScriptedSource,
    key: Option<&Key>,
) -> Result<BackupReport> {
    let mut b = Backup::builder()
        .source(source)
        .sink(Arc::new(sink.clone()) as Arc<dyn Sink>)
        .transform(Zstd::new(3))
        .kdf_params(fast_kdf())
        .jobs(3);
    if let Some(k) = key {
        b = b.encryption(k.clone()).encryption_chunk_size(1024);
    }
    b.build()?.run().await
}

pub(crate) fn id(report: &BackupReport) -> BackupSelector {
    BackupSelector::Id(report.backup_id().to_owned())
}

/// Verifies one backup (unencrypted), panicking on failure.
pub(crate) async fn verify_ok(sink: &MemorySink, id: &str) {
    dbbackup_core::Verify::builder()
        .sink(Arc::new(sink.clone()) as Arc<dyn Sink>)
        .backup(BackupSelector::Id(id.to_owned()))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
}
