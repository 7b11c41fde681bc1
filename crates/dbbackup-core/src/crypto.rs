//! AES-256-GCM in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) as a codec.
//!
//! Object layout: `header (20 bytes) || chunk*`. The header is `b"DBBKAES1"`, the chunk size as
//! u32 big endian, and a random 8-byte nonce prefix of which STREAM-BE32 uses the first 7. Every
//! chunk is `chunk_size` plaintext bytes plus a 16-byte tag, except the last, which holds
//! 0..=chunk_size bytes and is sealed with the last-chunk flag. The associated data of every chunk
//! binds the header, the backup id and the entry name, so truncation at any chunk boundary,
//! reordering, a flipped bit, or an object moved to another backup or entry fails to open.

use std::fmt;
use std::sync::Arc;

use aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use zeroize::Zeroizing;

use crate::codec::{Codec, CodecContext, Transform, TransformSpec};
use crate::error::{Error, Result};
use crate::keys::{random_bytes, DataKey};

const MAGIC: &[u8; 8] = b"DBBKAES1";
const HEADER_LEN: usize = 8 + 4 + 8;
const TAG_LEN: usize = 16;

/// The default plaintext bytes per authenticated chunk.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;

/// The AES-256-GCM STREAM transform of one backup, keyed by that backup's data key.
///
/// The engine builds it from the backup's data key; applications enable it with
/// `BackupBuilder::encryption` rather than constructing it.
pub struct Aes256GcmStream {
    key: Arc<DataKey>,
    chunk_size: u32,
}

impl fmt::Debug for Aes256GcmStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aes256GcmStream {{ chunk_size: {} }}", self.chunk_size)
    }
}

impl Aes256GcmStream {
    pub(crate) fn new(key: Arc<DataKey>, chunk_size: u32) -> Result<Self> {
        if !(1024..=16 << 20).contains(&chunk_size) {
            return Err(Error::invalid(format!(
                "AES-GCM chunk size {chunk_size} is outside 1 KiB..=16 MiB"
            )));
        }
        Ok(Aes256GcmStream { key, chunk_size })
    }

    /// The transform under a fresh random data key that is never stored: for benchmarks and
    /// codec tests. Backups get theirs from `BackupBuilder::encryption`.
    ///
    /// # Errors
    /// When the chunk size is outside 1 KiB..=16 MiB or the OS random generator fails.
    pub fn ephemeral(chunk_size: u32) -> Result<Self> {
        Self::new(Arc::new(DataKey::generate()?), chunk_size)
    }

    fn stream(&self, ctx: &CodecContext<'_>, prefix: &[u8; 8]) -> StreamBE32<Aes256Gcm> {
        let key: Zeroizing<[u8; 32]> = self.key.entry_key(ctx.entry);
        let aead = Aes256Gcm::new_from_slice(key.as_ref()).expect("32-byte key");
        StreamBE32::from_aead(aead, prefix[..7].into())
    }
}

fn header(chunk_size: u32, prefix: &[u8; 8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&chunk_size.to_be_bytes());
    h[12..].copy_from_slice(prefix);
    h
}

fn aad(header: &[u8], ctx: &CodecContext<'_>) -> Vec<u8> {
    let mut a = header.to_vec();
    a.extend_from_slice(ctx.backup_id.as_bytes());
    a.push(0);
    a.extend_from_slice(ctx.entry.as_bytes());
    a
}

impl Transform for Aes256GcmStream {
    fn spec(&self) -> TransformSpec {
        TransformSpec::Aes256GcmStream {
            chunk_size: self.chunk_size,
        }
    }

    fn encoder(&self, ctx: &CodecContext<'_>) -> Result<Box<dyn Codec>> {
        let mut prefix = [0u8; 8];
        random_bytes(&mut prefix)?;
        let header = header(self.chunk_size, &prefix);
        Ok(Box::new(Encryptor {
            stream: self.stream(ctx, &prefix),
            aad: aad(&header, ctx),
            header: Some(header),
            chunk_size: self.chunk_size as usize,
            pending: Vec::with_capacity(self.chunk_size as usize + TAG_LEN),
            counter: 0,
            done: false,
        }))
    }

    fn decoder(&self, ctx: &CodecContext<'_>) -> Result<Box<dyn Codec>> {
        Ok(Box::new(Decryptor {
            key: self.key.entry_key(ctx.entry),
            backup_id: ctx.backup_id.to_owned(),
            entry: ctx.entry.to_owned(),
            state: None,
            pending: Vec::new(),
            counter: 0,
            done: false,
        }))
    }
}

struct Encryptor {
    stream: StreamBE32<Aes256Gcm>,
    aad: Vec<u8>,
    header: Option<[u8; HEADER_LEN]>,
    chunk_size: usize,
    pending: Vec<u8>,
    counter: u32,
    done: bool,
}

impl Encryptor {
    fn seal(&mut self, last: bool, out: &mut Vec<u8>) -> Result<()> {
        if let Some(h) = self.header.take() {
            out.extend_from_slice(&h);
        }
        let counter = self.counter;
        self.counter = self.counter.checked_add(1).ok_or_else(|| {
            Error::invalid(
                "entry too large for one AES-GCM stream (2^32 chunks); raise the chunk size",
            )
        })?;
        self.stream
            .encrypt_in_place(counter, last, &self.aad, &mut self.pending)
            .map_err(|_| Error::internal("AES-GCM encryption failed"))?;
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        Ok(())
    }
}

impl Codec for Encryptor {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize> {
        let mut consumed = 0;
        while consumed < input.len() && out.len() < limit {
            // A full chunk is sealed only once more input proves it is not the last.
            if self.pending.len() == self.chunk_size {
                self.seal(false, out)?;
            }
            let take = (self.chunk_size - self.pending.len()).min(input.len() - consumed);
            self.pending
                .extend_from_slice(&input[consumed..consumed + take]);
            consumed += take;
        }
        Ok(consumed)
    }

    fn finish(&mut self, out: &mut Vec<u8>, _limit: usize) -> Result<bool> {
        if !self.done {
            self.seal(true, out)?;
            self.done = true;
        }
        Ok(true)
    }
}

struct DecryptState {
    stream: StreamBE32<Aes256Gcm>,
    aad: Vec<u8>,
    chunk_size: usize,
}

struct Decryptor {
    key: Zeroizing<[u8; 32]>,
    backup_id: String,
    entry: String,
    state: Option<DecryptState>,
    pending: Vec<u8>,
    counter: u32,
    done: bool,
}

fn tampered() -> Error {
    Error::corrupt(
        "authentication failed: the object was modified, truncated, reordered or belongs to \
         another backup or entry",
    )
}

impl Decryptor {
    fn open_chunk(&mut self, len: usize, last: bool, out: &mut Vec<u8>) -> Result<()> {
        let state = self.state.as_ref().expect("header parsed");
        let start = out.len();
        out.extend_from_slice(&self.pending[..len]);
        let mut chunk = out.split_off(start);
        state
            .stream
            .decrypt_in_place(self.counter, last, &state.aad, &mut chunk)
            .map_err(|_| tampered())?;
        out.extend_from_slice(&chunk);
        self.pending.drain(..len);
        self.counter = self.counter.checked_add(1).ok_or_else(tampered)?;
        Ok(())
    }

    fn parse_header(&mut self) -> Result<()> {
        let h = &self.pending[..HEADER_LEN];
        if &h[..8] != MAGIC {
            return Err(Error::corrupt(
                "object does not start with the dbbackup AES-GCM header (not encrypted by dbbackup, or damaged)",
            ));
        }
        let chunk_size = u32::from_be_bytes(h[8..12].try_into().expect("4 bytes")) as usize;
        if !(1024..=16 << 20).contains(&chunk_size) {
            return Err(Error::corrupt(format!(
                "AES-GCM header has an invalid chunk size {chunk_size}"
            )));
        }
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&h[12..20]);
        let ctx = CodecContext {
            backup_id: &self.backup_id,
            entry: &self.entry,
        };
        let aad = aad(h, &ctx);
        let aead = Aes256Gcm::new_from_slice(self.key.as_ref()).expect("32-byte key");
        self.state = Some(DecryptState {
            stream: StreamBE32::from_aead(aead, prefix[..7].into()),
            aad,
            chunk_size,
        });
        self.pending.drain(..HEADER_LEN);
        Ok(())
    }
}

impl Codec for Decryptor {
    fn update(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize> {
        if self.done {
            return Err(tampered());
        }
        let mut consumed = 0;
        loop {
            if self.state.is_none() && self.pending.len() >= HEADER_LEN {
                self.parse_header()?;
            }
            let sealed = self
                .state
                .as_ref()
                .map(|s| s.chunk_size + TAG_LEN)
                .unwrap_or(HEADER_LEN);
            // Open a chunk only when more bytes follow it: then it cannot be the last one.
            if self.state.is_some() && self.pending.len() > sealed {
                if out.len() >= limit {
                    break;
                }
                self.open_chunk(sealed, false, out)?;
                continue;
            }
            if consumed == input.len() {
                break;
            }
            let want = (sealed + 1).saturating_sub(self.pending.len()).max(1);
            let take = want.min(input.len() - consumed);
            self.pending
                .extend_from_slice(&input[consumed..consumed + take]);
            consumed += take;
        }
        Ok(consumed)
    }

    fn finish(&mut self, out: &mut Vec<u8>, _limit: usize) -> Result<bool> {
        if self.done {
            return Ok(true);
        }
        if self.state.is_none() {
            if self.pending.len() < HEADER_LEN {
                return Err(Error::corrupt(
                    "encrypted object is shorter than its header (truncated)",
                ));
            }
            self.parse_header()?;
        }
        if self.pending.len() < TAG_LEN {
            return Err(tampered());
        }
        let len = self.pending.len();
        self.open_chunk(len, true, out)?;
        self.done = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::run_codec;
    use crate::ErrorKind;
    use proptest::prelude::*;

    fn ctx(entry: &str) -> CodecContext<'_> {
        CodecContext {
            backup_id: "B1",
            entry,
        }
    }

    fn transform(chunk: u32) -> Aes256GcmStream {
        let mut k = [0u8; 32];
        k[0] = 7;
        Aes256GcmStream::new(Arc::new(DataKey::from_test_bytes(k)), chunk).unwrap()
    }

    #[test]
    fn every_truncation_at_a_chunk_boundary_is_detected() {
        let t = transform(1024);
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let sealed =
            run_codec(t.encoder(&ctx("e")).unwrap().as_mut(), &data, &[], 1 << 20).unwrap();
        let chunk = 1024 + TAG_LEN;
        let mut cut = HEADER_LEN;
        while cut < sealed.len() {
            let r = run_codec(
                t.decoder(&ctx("e")).unwrap().as_mut(),
                &sealed[..cut],
                &[],
                1 << 20,
            );
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Corrupt, "cut at {cut}");
            cut += chunk;
        }
        for cut in [0, 5, HEADER_LEN - 1] {
            let r = run_codec(
                t.decoder(&ctx("e")).unwrap().as_mut(),
                &sealed[..cut],
                &[],
                1 << 20,
            );
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Corrupt, "cut at {cut}");
        }
    }

    #[test]
    fn reordered_chunks_and_other_entries_fail() {
        let t = transform(1024);
        let data = vec![42u8; 5000];
        let sealed =
            run_codec(t.encoder(&ctx("a")).unwrap().as_mut(), &data, &[], 1 << 20).unwrap();
        let wrong_entry = run_codec(
            t.decoder(&ctx("b")).unwrap().as_mut(),
            &sealed,
            &[],
            1 << 20,
        );
        assert_eq!(wrong_entry.unwrap_err().kind(), ErrorKind::Corrupt);

        let chunk = 1024 + TAG_LEN;
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + chunk);
        let first = sealed[a..a + chunk].to_vec();
        swapped[a..a + chunk].copy_from_slice(&sealed[b..b + chunk]);
        swapped[b..b + chunk].copy_from_slice(&first);
        let r = run_codec(
            t.decoder(&ctx("a")).unwrap().as_mut(),
            &swapped,
            &[],
            1 << 20,
        );
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Corrupt);

        let other_backup = CodecContext {
            backup_id: "B2",
            entry: "a",
        };
        let r = run_codec(
            t.decoder(&other_backup).unwrap().as_mut(),
            &sealed,
            &[],
            1 << 20,
        );
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Corrupt);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn roundtrips_any_chunking(
            data in proptest::collection::vec(any::<u8>(), 0..9000),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            cuts2 in proptest::collection::vec(any::<usize>(), 0..6),
            limit in 1usize..5000,
        ) {
            let t = transform(1024);
            let sealed = run_codec(t.encoder(&ctx("e")).unwrap().as_mut(), &data, &cuts, limit).unwrap();
            prop_assert_eq!(sealed.len(), HEADER_LEN + data.len() + TAG_LEN * (data.len() / 1024 + 1) - if data.len() % 1024 == 0 && !data.is_empty() { TAG_LEN } else { 0 });
            let back = run_codec(t.decoder(&ctx("e")).unwrap().as_mut(), &sealed, &cuts2, limit).unwrap();
            prop_assert_eq!(back, data);
        }

        #[test]
        fn any_bit_flip_is_detected(
            data in proptest::collection::vec(any::<u8>(), 0..4000),
            pos in any::<usize>(),
            bit in 0u8..8,
        ) {
            let t = transform(1024);
            let mut sealed = run_codec(t.encoder(&ctx("e")).unwrap().as_mut(), &data, &[], 1 << 20).unwrap();
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            let r = run_codec(t.decoder(&ctx("e")).unwrap().as_mut(), &sealed, &[], 1 << 20);
            prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::Corrupt);
        }
    }
}
