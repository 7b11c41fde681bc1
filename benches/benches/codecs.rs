//! Throughput of each codec alone, of the three run back to back on one thread ("raw codecs"),
//! and of the whole backup pipeline on the same data into a null sink.
//!
//! `cargo bench -p dbbackup-benches --bench codecs`

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_main, BatchSize, Criterion, Throughput};
use dbbackup_core::testing::{generate_into, NullSink, ScriptedSource};
use dbbackup_core::{
    Aes256GcmStream, Backup, Codec, CodecContext, Key, MasterKey, Transform, Zstd,
};

const SIZE: usize = 64 << 20;
const PIECE: usize = 1 << 20;

fn data() -> Bytes {
    let mut v = vec![0u8; SIZE];
    generate_into(0, &mut v);
    Bytes::from(v)
}

fn ctx() -> CodecContext<'static> {
    CodecContext {
        backup_id: "bench",
        entry: "data/t",
    }
}

/// Feeds `input` in 1 MiB pieces, discarding output; returns bytes produced.
fn drive(codec: &mut dyn Codec, input: &[u8]) -> usize {
    let mut out = Vec::with_capacity(2 * PIECE);
    let mut produced = 0;
    for mut piece in input.chunks(PIECE) {
        while !piece.is_empty() {
            let n = codec.update(piece, &mut out, PIECE).unwrap();
            piece = &piece[n..];
            produced += out.len();
            out.clear();
        }
    }
    while !codec.finish(&mut out, PIECE).unwrap() {
        produced += out.len();
        out.clear();
    }
    produced + out.len()
}

fn codecs(c: &mut Criterion) {
    let input = data();
    let zstd = Zstd::new(3);
    let aes = Aes256GcmStream::ephemeral(64 * 1024).unwrap();
    let compressed = {
        let mut enc = zstd.encoder(&ctx()).unwrap();
        let mut out = Vec::new();
        let mut all = Vec::new();
        for piece in input.chunks(PIECE) {
            let mut p = piece;
            while !p.is_empty() {
                let n = enc.update(p, &mut out, PIECE).unwrap();
                p = &p[n..];
                all.append(&mut out);
            }
        }
        while !enc.finish(&mut out, PIECE).unwrap() {
            all.append(&mut out);
        }
        all.append(&mut out);
        all
    };

    let mut g = c.benchmark_group("codec");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("blake3", |b| b.iter(|| blake3::hash(&input)));
    g.bench_function("zstd-3 compress", |b| {
        b.iter(|| drive(zstd.encoder(&ctx()).unwrap().as_mut(), &input))
    });
    g.bench_function("zstd decompress", |b| {
        b.iter(|| drive(zstd.decoder(&ctx()).unwrap().as_mut(), &compressed))
    });
    g.bench_function("aes-256-gcm-stream encrypt", |b| {
        b.iter(|| drive(aes.encoder(&ctx()).unwrap().as_mut(), &input))
    });
    g.bench_function("raw chain blake3+zstd-3+aes (one thread)", |b| {
        b.iter(|| {
            let h = blake3::hash(&input);
            let mut z = zstd.encoder(&ctx()).unwrap();
            let mut a = aes.encoder(&ctx()).unwrap();
            let mut zout = Vec::new();
            let mut aout = Vec::new();
            let mut stored = blake3::Hasher::new();
            for piece in input.chunks(PIECE) {
                let mut p = piece;
                while !p.is_empty() {
                    let n = z.update(p, &mut zout, PIECE).unwrap();
                    p = &p[n..];
                    let mut q = &zout[..];
                    while !q.is_empty() {
                        let m = a.update(q, &mut aout, PIECE).unwrap();
                        q = &q[m..];
                        stored.update(&aout);
                        aout.clear();
                    }
                    zout.clear();
                }
            }
            while !z.finish(&mut zout, PIECE).unwrap() {}
            let mut q = &zout[..];
            while !q.is_empty() {
                let m = a.update(q, &mut aout, PIECE).unwrap();
                q = &q[m..];
            }
            a.finish(&mut aout, PIECE).unwrap();
            stored.update(&aout);
            (h, stored.finalize())
        })
    });
    g.finish();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = Key::raw(MasterKey::generate().unwrap());
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("backup blake3+zstd-3+aes -> null sink (1 entry)", |b| {
        b.iter_batched(
            || ScriptedSource::new("bench").entry("data/t", input.clone()),
            |source| {
                rt.block_on(async {
                    Backup::builder()
                        .source(source)
                        .sink(Arc::new(NullSink))
                        .transform(Zstd::new(3))
                        .encryption(key.clone())
                        .jobs(1)
                        .build()
                        .unwrap()
                        .run()
                        .await
                        .unwrap()
                })
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::codecs);
}
use group::benches;
criterion_main!(benches);
