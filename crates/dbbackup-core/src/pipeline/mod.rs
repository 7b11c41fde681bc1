//! The streaming pipeline: backup, restore and verify, one file each, over the shared stages
//! (`write.rs`, `read.rs`) and one runner (`runner.rs`) for cancellation, the tracing span and the
//! Finished/Failed events.
//!
//! Per entry, backup runs four stages joined by channels of depth [`DEPTH`]:
//! an async reader that coalesces the source's chunks into blocks of [`BLOCK`] bytes, a blocking
//! thread that hashes the plaintext, a blocking thread that runs the codec chain and hashes the
//! stored bytes, and the async writer feeding the sink. Memory per entry is a few blocks whatever
//! the entry's size, and a slow sink slows the source (backpressure). Restore and verify run the
//! same stages backwards.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::codec::{CodecChain, CodecContext, Transform};
use crate::crypto::{Aes256GcmStream, DEFAULT_CHUNK_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Emitter, Event, Operation, Subscriber};
use crate::keys::{DataKey, KdfParams, Key};
use crate::lease::LeaseHolder;
use crate::manifest::{self, entry_key, manifest_key, ChecksumAlgorithm, EntryRecord, Manifest};
use crate::repo::{build_chain, BackupSelector, Repository, SkippedBackup, TransformFactory};
use crate::restore::RestoreTarget;
use crate::sink::{ByteStream, ObjectWriter, PutMode, Sink};
use crate::source::{EntryData, EntrySpec, Snapshot, Source};

/// Bytes per block handed between stages.
pub(crate) const BLOCK: usize = 1 << 20;
/// Blocks in flight between two stages.
const DEPTH: usize = 2;

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
}

enum Msg {
    Data(Bytes),
    End,
}

/// Aborts a spawned task when dropped, so dropping an operation's future stops everything.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn join<T>(h: &mut tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    match h.await {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => Err(Error::cancelled()),
        Err(e) => Err(Error::internal(format!("a pipeline task panicked: {e}"))),
    }
}

/// Picks the root cause among stage results: the first error that is not a knock-on
/// cancellation caused by another stage stopping.
fn first_real_error(errors: Vec<Error>) -> Option<Error> {
    let mut fallback = None;
    for e in errors {
        if e.kind() != ErrorKind::Cancelled {
            return Some(e);
        }
        fallback.get_or_insert(e);
    }
    fallback
}

fn hasher(key: Option<&[u8; 32]>) -> blake3::Hasher {
    match key {
        Some(k) => blake3::Hasher::new_keyed(k),
        None => blake3::Hasher::new(),
    }
}

mod backup;
mod read;
mod restore;
mod runner;
mod verify;
mod write;

pub use backup::{Backup, BackupBuilder, BackupReport};
pub use restore::{Restore, RestoreBuilder, RestoreReport};
pub use verify::{Verify, VerifyBuilder, VerifyReport};

use read::{decoded_entry, read_side_setters, OpenBackup, ReadOptions, ReadSide};
use runner::run_operation;
use write::{backup_entry, EntryJob};
