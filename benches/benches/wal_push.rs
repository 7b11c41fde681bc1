//! One 16 MiB WAL segment through `LogArchive::push` (zstd-3 + AES-256-GCM + seal) into an
//! in-memory repository with a raw key, and back through `fetch`: the library's share of
//! `archive_command` / `restore_command`. `benches/scripts/wal_archive.sh` measures the whole
//! command under a pgbench write load.
//!
//! `cargo bench -p dbbackup-benches --bench wal_push`

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_main, Criterion, Throughput};
use dbbackup_core::testing::generate_into;
use dbbackup_core::{Key, LogArchive, MasterKey, MemorySink, Repository, Sink};

fn segment() -> Bytes {
    let mut v = vec![0u8; 16 << 20];
    generate_into(7, &mut v);
    Bytes::from(v)
}

fn wal_push(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seg = segment();
    let key = Key::raw(MasterKey::generate().unwrap());
    let sink = MemorySink::new();
    let archive = LogArchive::new(
        Repository::new(Arc::new(sink.clone()) as Arc<dyn Sink>).with_key(key),
        "wal",
    )
    .unwrap();
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Bytes(seg.len() as u64));
    g.sample_size(20);
    let mut n = 0u64;
    g.bench_function("push 16 MiB segment", |b| {
        b.iter(|| {
            n += 1;
            let name = format!("{n:024X}");
            rt.block_on(archive.push(&name, seg.clone())).unwrap()
        })
    });
    rt.block_on(archive.push("000000010000000000000001", seg.clone()))
        .ok();
    g.bench_function("fetch 16 MiB segment", |b| {
        b.iter(|| {
            rt.block_on(archive.fetch("000000010000000000000001"))
                .unwrap()
        })
    });
    g.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    wal_push(&mut c);
}

criterion_main!(benches);
