//! Synchronous buffer-in/buffer-out codecs and the [`Transform`] trait that describes them.
//!
//! A codec never does I/O. The engine owns the async side and runs codecs on blocking threads.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zstd::stream::raw::{InBuffer, Operation, OutBuffer};

use crate::error::{Error, Result};

/// How much output a codec stage produces before handing it on, and how much the engine feeds at once.
pub(crate) const STAGE_LIMIT: usize = 1 << 20;

/// A streaming, synchronous byte codec (one direction of a [`Transform`]).
///
/// Output is bounded: a call stops once `out.len() >= limit` (it may overshoot by at most one
/// internal block), so a highly compressed input cannot blow up memory.
pub trait Codec: Send {
    /// Processes a prefix of `input`, appending output to `out`; returns how many input bytes were
    /// consumed. Returns early once `out.len() >= limit`; the caller drains `out` and calls again
    /// with the rest of `input`.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) when decoding input that is not valid.
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize>;

    /// Signals the end of input and appends what remains. Returns `true` when everything has been
    /// written, `false` when `out` reached `limit` first (drain it and call `finish` again).
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) when the input ended early (truncation).
    fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<bool>;
}

/// What a codec is being built for: the stored object it reads or writes.
#[derive(Debug, Clone, Copy)]
pub struct CodecContext<'a> {
    /// The backup the object belongs to.
    pub backup_id: &'a str,
    /// The entry the object holds.
    pub entry: &'a str,
}

/// The serializable description of one transform, recorded in the manifest so a restore can
/// rebuild the inverse chain from the manifest alone (plus a key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum TransformSpec {
    /// zstd compression.
    Zstd {
        /// Compression level (1..=22; negative levels are the fast modes).
        level: i32,
        /// Worker threads for compression; 0 compresses on the calling thread.
        #[serde(default)]
        workers: u32,
    },
    /// AES-256-GCM in the STREAM construction with a per-backup data key (see `docs/FORMAT.md`).
    Aes256GcmStream {
        /// Plaintext bytes per authenticated chunk.
        chunk_size: u32,
    },
    /// A transform defined outside dbbackup-core; restore needs a factory registered under `name`.
    Custom {
        /// The name the factory is registered under.
        name: String,
        /// Parameters the factory understands.
        #[serde(default)]
        params: serde_json::Value,
    },
}

/// A reversible byte transform: makes encoders for backup and decoders for restore.
pub trait Transform: Send + Sync + fmt::Debug {
    /// The parameters that go into the manifest.
    fn spec(&self) -> TransformSpec;

    /// A codec that applies the transform.
    ///
    /// # Errors
    /// When the transform cannot be set up (bad parameters).
    fn encoder(&self, ctx: &CodecContext<'_>) -> Result<Box<dyn Codec>>;

    /// A codec that undoes the transform.
    ///
    /// # Errors
    /// When the transform cannot be set up (bad parameters).
    fn decoder(&self, ctx: &CodecContext<'_>) -> Result<Box<dyn Codec>>;
}

// ---------------------------------------------------------------------------------------------
// zstd

/// zstd compression with a configurable level and optional multithreading.
#[derive(Debug, Clone)]
pub struct Zstd {
    level: i32,
    workers: u32,
}

impl Zstd {
    /// zstd at `level` (clamped to zstd's range), single-threaded.
    pub fn new(level: i32) -> Self {
        let range = zstd::compression_level_range();
        Zstd {
            level: level.clamp(*range.start(), *range.end()),
            workers: 0,
        }
    }

    /// Compresses with `workers` extra threads (0 = on the engine's blocking thread).
    pub fn with_workers(mut self, workers: u32) -> Self {
        self.workers = workers;
        self
    }
}

impl Default for Zstd {
    fn default() -> Self {
        Zstd::new(3)
    }
}

impl Transform for Zstd {
    fn spec(&self) -> TransformSpec {
        TransformSpec::Zstd {
            level: self.level,
            workers: self.workers,
        }
    }

    fn encoder(&self, _ctx: &CodecContext<'_>) -> Result<Box<dyn Codec>> {
        let mut enc = zstd::stream::raw::Encoder::new(self.level)
            .map_err(|e| Error::invalid(format!("zstd level {}: {e}", self.level)))?;
        if self.workers > 0 {
            enc.set_parameter(zstd::zstd_safe::CParameter::NbWorkers(self.workers))
                .map_err(|e| Error::invalid(format!("zstd with {} workers: {e}", self.workers)))?;
        }
        Ok(Box::new(ZstdEncoder {
            enc,
            finishing: false,
        }))
    }

    fn decoder(&self, _ctx: &CodecContext<'_>) -> Result<Box<dyn Codec>> {
        let mut dec = zstd::stream::raw::Decoder::new()
            .map_err(|e| Error::internal(format!("zstd decoder: {e}")))?;
        // Level 19+ uses windows up to 2^27, the most any level we write produces; a frame that
        // asks for more is not ours, and must not make every decoder allocate gigabytes.
        dec.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27))
            .map_err(|e| Error::internal(format!("zstd decoder: {e}")))?;
        Ok(Box::new(ZstdDecoder {
            dec,
            frame_done: true,
            seen_input: false,
        }))
    }
}

struct ZstdEncoder {
    enc: zstd::stream::raw::Encoder<'static>,
    finishing: bool,
}

fn reserve_for(out: &mut Vec<u8>, limit: usize) {
    let want = limit.saturating_sub(out.len()).max(64 * 1024);
    out.reserve_exact(want);
}

impl Codec for ZstdEncoder {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize> {
        let mut inb = InBuffer::around(input);
        while inb.pos < input.len() && out.len() < limit {
            reserve_for(out, limit);
            let start = out.len();
            let mut outb = OutBuffer::around_pos(out, start);
            self.enc
                .run(&mut inb, &mut outb)
                .map_err(|e| Error::internal(format!("zstd compression failed: {e}")))?;
        }
        Ok(inb.pos)
    }

    fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<bool> {
        self.finishing = true;
        while out.len() < limit {
            reserve_for(out, limit);
            let start = out.len();
            let mut outb = OutBuffer::around_pos(out, start);
            let remaining = self
                .enc
                .finish(&mut outb, true)
                .map_err(|e| Error::internal(format!("zstd compression failed: {e}")))?;
            if remaining == 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

struct ZstdDecoder {
    dec: zstd::stream::raw::Decoder<'static>,
    /// True between frames: the last `run` reported a complete, flushed frame.
    frame_done: bool,
    seen_input: bool,
}

impl ZstdDecoder {
    /// One decoder call; returns whether the output buffer filled up (more may be pending).
    fn step(&mut self, inb: &mut InBuffer<'_>, out: &mut Vec<u8>, limit: usize) -> Result<bool> {
        reserve_for(out, limit);
        let start = out.len();
        let in_before = inb.pos;
        let mut outb = OutBuffer::around_pos(out, start);
        let hint = self
            .dec
            .run(inb, &mut outb)
            .map_err(|e| Error::corrupt(format!("compressed data is damaged (zstd: {e})")))?;
        let full = outb.pos() == outb.capacity();
        let produced = outb.pos() > start;
        // A call that neither read nor wrote says nothing about frame state.
        if produced || inb.pos > in_before {
            self.frame_done = hint == 0;
        }
        Ok(full)
    }
}

impl Codec for ZstdDecoder {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize> {
        if !input.is_empty() {
            self.seen_input = true;
        }
        let mut inb = InBuffer::around(input);
        while out.len() < limit {
            let full = self.step(&mut inb, out, limit)?;
            if inb.pos == input.len() && !full {
                break;
            }
        }
        Ok(inb.pos)
    }

    fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<bool> {
        // Flush whatever the decoder still holds.
        while out.len() < limit {
            let mut inb = InBuffer::around(&[]);
            let before = out.len();
            let full = self.step(&mut inb, out, limit)?;
            if !full && out.len() == before {
                break;
            }
        }
        if out.len() >= limit {
            return Ok(false);
        }
        if !self.seen_input {
            return Err(Error::corrupt(
                "compressed object is empty (expected a zstd frame)",
            ));
        }
        if !self.frame_done {
            return Err(Error::corrupt(
                "compressed data ends in the middle of a zstd frame (truncated object)",
            ));
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// chains

/// An encoder or decoder chain: the codecs of several transforms run in sequence, each stage's
/// output bounded by [`STAGE_LIMIT`].
pub(crate) struct CodecChain {
    codecs: Vec<Box<dyn Codec>>,
    bufs: Vec<Vec<u8>>,
    finished: usize,
}

impl CodecChain {
    pub(crate) fn new(codecs: Vec<Box<dyn Codec>>) -> Self {
        let bufs = codecs.iter().map(|_| Vec::new()).collect();
        CodecChain {
            codecs,
            bufs,
            finished: 0,
        }
    }

    /// Builds the encoders of `transforms`, in order.
    pub(crate) fn encoders(
        transforms: &[Arc<dyn Transform>],
        ctx: &CodecContext<'_>,
    ) -> Result<Self> {
        let codecs = transforms
            .iter()
            .map(|t| t.encoder(ctx))
            .collect::<Result<Vec<_>>>()?;
        Ok(CodecChain::new(codecs))
    }

    /// Builds the decoders of `transforms`, in reverse order.
    pub(crate) fn decoders(
        transforms: &[Arc<dyn Transform>],
        ctx: &CodecContext<'_>,
    ) -> Result<Self> {
        let codecs = transforms
            .iter()
            .rev()
            .map(|t| t.decoder(ctx))
            .collect::<Result<Vec<_>>>()?;
        Ok(CodecChain::new(codecs))
    }

    /// Pushes `input` through every stage; `emit` receives the final output in pieces.
    pub(crate) fn update(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.feed(0, input, emit)
    }

    /// Ends the input of every stage in order, pushing what each flushes through the rest.
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(Vec<u8>) -> Result<()>) -> Result<()> {
        while self.finished < self.codecs.len() {
            let idx = self.finished;
            loop {
                let mut buf = std::mem::take(&mut self.bufs[idx]);
                let done = self.codecs[idx].finish(&mut buf, STAGE_LIMIT)?;
                if !buf.is_empty() {
                    self.forward(idx + 1, &mut buf, emit)?;
                }
                self.bufs[idx] = buf;
                if done {
                    break;
                }
            }
            self.finished += 1;
        }
        Ok(())
    }

    fn forward(
        &mut self,
        idx: usize,
        buf: &mut Vec<u8>,
        emit: &mut dyn FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        if idx == self.codecs.len() {
            // A right-sized copy goes on; the stage keeps its buffer for the next piece (no fresh
            // 1 MiB allocation per piece, no spare capacity held in the channels).
            let out = buf.as_slice().to_vec();
            buf.clear();
            emit(out)
        } else {
            let r = self.feed(idx, buf, emit);
            buf.clear();
            r
        }
    }

    fn feed(
        &mut self,
        idx: usize,
        mut input: &[u8],
        emit: &mut dyn FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        if idx == self.codecs.len() {
            return if input.is_empty() {
                Ok(())
            } else {
                emit(input.to_vec())
            };
        }
        while !input.is_empty() {
            let mut buf = std::mem::take(&mut self.bufs[idx]);
            let n = self.codecs[idx].update(input, &mut buf, STAGE_LIMIT)?;
            input = &input[n..];
            let produced = !buf.is_empty();
            if produced {
                self.forward(idx + 1, &mut buf, emit)?;
            }
            self.bufs[idx] = buf;
            if n == 0 && !produced {
                return Err(Error::internal("a codec made no progress"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs a codec over `input` split at `cuts`, with a small output limit to exercise the
    /// bounded-output paths.
    pub(crate) fn run_codec(
        codec: &mut dyn Codec,
        input: &[u8],
        cuts: &[usize],
        limit: usize,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut all = Vec::new();
        let mut pieces = Vec::new();
        let mut last = 0;
        let mut cuts = cuts
            .iter()
            .map(|c| c % (input.len() + 1))
            .collect::<Vec<_>>();
        cuts.sort_unstable();
        for c in cuts {
            pieces.push(&input[last..c]);
            last = c;
        }
        pieces.push(&input[last..]);
        for mut piece in pieces {
            while !piece.is_empty() {
                let n = codec.update(piece, &mut out, limit)?;
                piece = &piece[n..];
                all.append(&mut out);
            }
        }
        loop {
            let done = codec.finish(&mut out, limit)?;
            all.append(&mut out);
            if done {
                break;
            }
        }
        Ok(all)
    }

    #[test]
    fn a_frame_asking_for_a_bigger_window_than_we_write_is_refused() {
        let data = vec![7u8; 1 << 16];
        let frame = |wlog: u32| {
            let mut enc = zstd::stream::raw::Encoder::new(3).unwrap();
            enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(wlog))
                .unwrap();
            let mut out = Vec::new();
            let mut w = zstd::stream::zio::Writer::new(&mut out, enc);
            std::io::Write::write_all(&mut w, &data).unwrap();
            w.finish().unwrap();
            drop(w);
            out
        };
        // Level 22, the largest window we write, decodes.
        let mut enc = Zstd::new(22).encoder(&ctx()).unwrap();
        let ours = run_codec(enc.as_mut(), &data, &[], 1 << 20).unwrap();
        let mut dec = Zstd::new(22).decoder(&ctx()).unwrap();
        assert_eq!(run_codec(dec.as_mut(), &ours, &[], 1 << 20).unwrap(), data);
        let mut dec = Zstd::new(3).decoder(&ctx()).unwrap();
        assert_eq!(
            run_codec(dec.as_mut(), &frame(27), &[], 1 << 20).unwrap(),
            data
        );
        let mut dec = Zstd::new(3).decoder(&ctx()).unwrap();
        assert!(run_codec(dec.as_mut(), &frame(31), &[], 1 << 20).is_err());
    }

    fn ctx() -> CodecContext<'static> {
        CodecContext {
            backup_id: "b",
            entry: "e",
        }
    }

    #[test]
    fn zstd_highly_compressible_output_stays_bounded() {
        let zeros = vec![0u8; 64 << 20];
        let z = Zstd::new(3);
        let packed = run_codec(z.encoder(&ctx()).unwrap().as_mut(), &zeros, &[], 1 << 20).unwrap();
        assert!(packed.len() < 64 << 10);
        let mut dec = z.decoder(&ctx()).unwrap();
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut total = 0;
        while consumed < packed.len() {
            consumed += dec.update(&packed[consumed..], &mut out, 1 << 20).unwrap();
            assert!(
                out.len() <= (1 << 20) + (128 << 10),
                "one call produced {}",
                out.len()
            );
            total += out.len();
            out.clear();
        }
        loop {
            let done = dec.finish(&mut out, 1 << 20).unwrap();
            assert!(out.len() <= (1 << 20) + (128 << 10));
            total += out.len();
            out.clear();
            if done {
                break;
            }
        }
        assert_eq!(total, zeros.len());
    }

    #[test]
    fn zstd_truncation_and_empty_are_corrupt() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i * 7919).to_le_bytes())
            .collect();
        let z = Zstd::new(1);
        let packed = run_codec(z.encoder(&ctx()).unwrap().as_mut(), &data, &[], 1 << 20).unwrap();
        for cut in [0, 1, packed.len() / 2, packed.len() - 1] {
            let r = run_codec(
                z.decoder(&ctx()).unwrap().as_mut(),
                &packed[..cut],
                &[],
                1 << 20,
            );
            assert_eq!(
                r.unwrap_err().kind(),
                crate::ErrorKind::Corrupt,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn zstd_multithreaded_roundtrip() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let z = Zstd::new(3).with_workers(2);
        let packed = run_codec(
            z.encoder(&ctx()).unwrap().as_mut(),
            &data,
            &[5, 99_999],
            1 << 20,
        )
        .unwrap();
        let back = run_codec(
            z.decoder(&ctx()).unwrap().as_mut(),
            &packed,
            &[1, 2, 3],
            4096,
        )
        .unwrap();
        assert_eq!(back, data);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn zstd_roundtrips_any_chunking(
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            cuts2 in proptest::collection::vec(any::<usize>(), 0..8),
            level in 1i32..6,
            limit in 1usize..70_000,
        ) {
            let z = Zstd::new(level);
            let packed = run_codec(z.encoder(&ctx()).unwrap().as_mut(), &data, &cuts, limit).unwrap();
            let back = run_codec(z.decoder(&ctx()).unwrap().as_mut(), &packed, &cuts2, limit).unwrap();
            prop_assert_eq!(back, data);
        }
    }
}
