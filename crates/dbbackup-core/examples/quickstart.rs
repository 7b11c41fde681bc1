//! Back up a (scripted) database with zstd + AES-256-GCM, list, verify, restore, and show that a
//! flipped bit is caught. No server needed.
//!
//! `cargo run -p dbbackup-core --features testing --example quickstart`

use std::sync::Arc;

use dbbackup_core::testing::{generate_into, MemoryTarget, ScriptedSource};
use dbbackup_core::{
    Backup, BackupSelector, EntryKind, EntrySpec, KdfParams, Key, MemorySink, Repository, Restore,
    Sink, Verify, Zstd,
};

#[tokio::main]
async fn main() -> dbbackup_core::Result<()> {
    let mut rows = vec![0u8; 8 << 20];
    generate_into(0, &mut rows);
    let source = ScriptedSource::new("scripted")
        .entry_spec(
            EntrySpec::new("pre-data", EntryKind::PreData, 0),
            &b"CREATE TABLE t (x text);\n"[..],
        )
        .entry("data/t", rows.clone());
    let memory = MemorySink::new();
    let sink: Arc<dyn Sink> = Arc::new(memory.clone());
    let key = Key::passphrase("correct horse battery staple");

    let report = Backup::builder()
        .source(source)
        .sink(sink.clone())
        .transform(Zstd::new(3))
        .encryption(key.clone())
        .kdf_params(KdfParams::recommended()?)
        .label("example", "quickstart")
        .build()?
        .run()
        .await?;
    let m = &report.manifest;
    println!(
        "backup {}: {} entries, {} bytes -> {} stored, in {:.2?}",
        m.backup_id,
        m.entries.len(),
        m.raw_size(),
        m.stored_size(),
        report.elapsed
    );

    for b in Repository::new(sink.clone()).summaries().await? {
        println!(
            "listed: {} engine={} labels={:?}",
            b.backup_id, b.engine, b.labels
        );
    }

    let v = Verify::builder()
        .sink(sink.clone())
        .key(key.clone())
        .build()?
        .run()
        .await?;
    println!("verified {} entries, {} bytes", v.entries, v.raw_bytes);

    let target = MemoryTarget::new();
    Restore::builder()
        .sink(sink.clone())
        .backup(BackupSelector::Latest)
        .key(key.clone())
        .target(target.clone())
        .build()?
        .run()
        .await?;
    assert_eq!(target.entry("data/t").as_deref(), Some(&rows[..]));
    println!("restored byte-for-byte");

    let object = &m.entry("data/t").expect("entry").object;
    let mut damaged = memory.get_raw(object).expect("object").to_vec();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 1;
    memory.set_raw(object, damaged);
    match Verify::builder().sink(sink).key(key).build()?.run().await {
        Err(e) => println!("after flipping one bit, verify says: {e}"),
        Ok(_) => panic!("a flipped bit went unnoticed"),
    }
    Ok(())
}
