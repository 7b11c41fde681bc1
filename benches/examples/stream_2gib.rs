//! Streams synthetic data through checksum -> zstd-3 -> AES-256-GCM into a null sink and reports
//! throughput and peak RSS (VmHWM). The claim it checks: memory stays bounded whatever the size.
//!
//! `cargo run --release -p dbbackup-benches --example stream_2gib -- [GiB] [entries] [jobs]`

use std::sync::Arc;
use std::time::Instant;

use dbbackup_core::testing::{NullSink, ScriptedSource};
use dbbackup_core::{Backup, Key, MasterKey, Zstd};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gib: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let entries: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4);
    let jobs: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2);
    let total = (gib * (1u64 << 30) as f64) as u64;
    let mut source = ScriptedSource::new("synthetic").chunk_size(64 * 1024);
    for i in 0..entries {
        source = source.generated(format!("data/t{i}"), total / entries);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let before = peak_rss_kib();
    let t0 = Instant::now();
    let report = rt
        .block_on(async {
            Backup::builder()
                .source(source)
                .sink(Arc::new(NullSink))
                .transform(Zstd::new(3))
                .encryption(Key::raw(MasterKey::generate().expect("key")))
                .jobs(jobs)
                .build()?
                .run()
                .await
        })
        .expect("backup");
    let secs = t0.elapsed().as_secs_f64();
    let raw = report.manifest.raw_size();
    println!(
        "{{\"raw_bytes\":{raw},\"stored_bytes\":{},\"entries\":{entries},\"jobs\":{jobs},\"seconds\":{secs:.2},\"mib_per_s\":{:.1},\"peak_rss_mib_before\":{:.1},\"peak_rss_mib\":{:.1}}}",
        report.manifest.stored_size(),
        raw as f64 / secs / (1 << 20) as f64,
        before as f64 / 1024.0,
        peak_rss_kib() as f64 / 1024.0
    );
}
