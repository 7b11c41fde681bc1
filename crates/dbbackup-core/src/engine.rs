//! The streaming pipeline: backup, restore and verify.
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

// ---------------------------------------------------------------------------------------------
// backup

/// Builds a [`Backup`].
#[derive(Default)]
pub struct BackupBuilder {
    source: Option<Arc<dyn Source>>,
    sink: Option<Arc<dyn Sink>>,
    transforms: Vec<Arc<dyn Transform>>,
    key: Option<Key>,
    allow_unencrypted: bool,
    kdf: Option<KdfParams>,
    chunk_size: Option<u32>,
    jobs: Option<usize>,
    labels: BTreeMap<String, String>,
    parent: Option<String>,
    subscribers: Vec<Arc<dyn Subscriber>>,
    cancel: Option<CancellationToken>,
}

impl BackupBuilder {
    /// The database to back up.
    pub fn source(mut self, source: impl Source + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The database to back up, shared.
    pub fn source_arc(mut self, source: Arc<dyn Source>) -> Self {
        self.source = Some(source);
        self
    }

    /// Where the repository lives.
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Appends a transform (applied in the order added, before encryption).
    pub fn transform(mut self, t: impl Transform + 'static) -> Self {
        self.transforms.push(Arc::new(t));
        self
    }

    /// Appends a shared transform.
    pub fn transform_arc(mut self, t: Arc<dyn Transform>) -> Self {
        self.transforms.push(t);
        self
    }

    /// Encrypts every entry (AES-256-GCM STREAM, last in the chain) under a fresh data key wrapped
    /// by `key`.
    pub fn encryption(mut self, key: Key) -> Self {
        self.key = Some(key);
        self
    }

    /// Argon2id parameters used if this backup creates the repository (default: recommended).
    pub fn kdf_params(mut self, kdf: KdfParams) -> Self {
        self.kdf = Some(kdf);
        self
    }

    /// Plaintext bytes per AES-GCM chunk (default 64 KiB).
    pub fn encryption_chunk_size(mut self, size: u32) -> Self {
        self.chunk_size = Some(size);
        self
    }

    /// Entries produced at once (default: CPU count, at most 4).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Records the backup this one builds on.
    pub fn parent(mut self, id: impl Into<String>) -> Self {
        self.parent = Some(id.into());
        self
    }

    /// Accepts unencrypted backups in an encrypted repository (a mixed repository; off by
    /// default, since nothing vouches for an unencrypted backup).
    pub fn allow_unencrypted(mut self, yes: bool) -> Self {
        self.allow_unencrypted = yes;
        self
    }
    /// Receives progress events.
    pub fn subscribe(mut self, s: impl Subscriber + 'static) -> Self {
        self.subscribers.push(Arc::new(s));
        self
    }

    /// Cancels the backup when the token is cancelled (as dropping its future does).
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the source or sink is missing or an option is out of range.
    pub fn build(self) -> Result<Backup> {
        let source = self
            .source
            .ok_or_else(|| Error::invalid("a backup needs a source: call `.source(...)`"))?;
        let sink = self
            .sink
            .ok_or_else(|| Error::invalid("a backup needs a sink: call `.sink(...)`"))?;
        let jobs = self.jobs.unwrap_or_else(default_jobs);
        if jobs == 0 || jobs > 256 {
            return Err(Error::invalid(format!("jobs must be 1..=256, got {jobs}")));
        }
        for k in self.labels.keys() {
            if k.is_empty() {
                return Err(Error::invalid("label keys must not be empty"));
            }
        }
        if let Some(p) = &self.parent {
            if !manifest::is_valid_backup_id(p) {
                return Err(Error::invalid(format!("parent {p:?} is not a backup id")));
            }
        }
        let chunk_size = self.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
        if !(1024..=16 << 20).contains(&chunk_size) {
            return Err(Error::invalid(format!(
                "encryption chunk size {chunk_size} is outside 1 KiB..=16 MiB"
            )));
        }
        Ok(Backup {
            source,
            sink,
            transforms: self.transforms,
            key: self.key,
            allow_unencrypted: self.allow_unencrypted,
            kdf: self.kdf,
            chunk_size,
            jobs,
            labels: self.labels,
            parent: self.parent,
            emitter: Emitter::new(self.subscribers),
            cancel: self.cancel,
        })
    }
}

/// A configured backup. [`run`](Backup::run) it.
pub struct Backup {
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    transforms: Vec<Arc<dyn Transform>>,
    key: Option<Key>,
    allow_unencrypted: bool,
    kdf: Option<KdfParams>,
    chunk_size: u32,
    jobs: usize,
    labels: BTreeMap<String, String>,
    parent: Option<String>,
    emitter: Emitter,
    cancel: Option<CancellationToken>,
}

/// What a committed backup looks like.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The committed manifest.
    pub manifest: Manifest,
    /// Wall time.
    pub elapsed: Duration,
}

impl BackupReport {
    /// The backup's id.
    pub fn backup_id(&self) -> &str {
        &self.manifest.backup_id
    }
}

struct EntryJob {
    backup_id: String,
    sink: Arc<dyn Sink>,
    transforms: Arc<Vec<Arc<dyn Transform>>>,
    checksum_key: Option<[u8; 32]>,
    emitter: Emitter,
}

impl Backup {
    /// A builder.
    pub fn builder() -> BackupBuilder {
        BackupBuilder::default()
    }

    /// Runs the backup: reads a consistent snapshot, writes every entry, then commits the manifest.
    /// On failure or cancellation nothing is committed and the entry objects written are removed
    /// (best-effort; [`Repository::gc`] removes what a killed process leaves).
    ///
    /// # Errors
    /// The first error of the source, a transform or the sink, with the backup and entry named;
    /// [`ErrorKind::Cancelled`] when cancelled.
    pub async fn run(&self) -> Result<BackupReport> {
        let started_at = OffsetDateTime::now_utc();
        let t0 = Instant::now();
        let id = manifest::new_backup_id(started_at)?;
        let span = tracing::info_span!("backup", backup_id = %id);
        let lease = LeaseHolder::new(self.sink.as_ref(), &id);
        let committing = AtomicBool::new(false);
        let inner = self
            .run_inner(&id, started_at, t0, &lease, &committing)
            .instrument(span);
        // The lease is refreshed for as long as the backup runs, however long an entry streams.
        let work = async {
            tokio::select! {
                r = inner => r,
                never = lease.keep_alive() => match never {},
            }
        };
        let result = match &self.cancel {
            Some(token) => tokio::select! {
                r = work => r,
                _ = token.cancelled() => Err(Error::cancelled()),
            },
            None => work.await,
        };
        match result {
            Ok(report) => {
                lease.release().await;
                self.emitter.emit(Event::Finished {
                    operation: Operation::Backup,
                    backup_id: id,
                    raw_bytes: report.manifest.raw_size(),
                    stored_bytes: report.manifest.stored_size(),
                    elapsed: report.elapsed,
                });
                Ok(report)
            }
            Err(e) => {
                let e = e.with_backup(id.clone());
                if committing.load(Ordering::SeqCst) {
                    // The manifest write failed, but may have happened (a timeout): deleting the
                    // entries could break a committed backup. `gc` removes them if it did not.
                    tracing::warn!(backup_id = %id, error = %e, "the manifest write failed or is in doubt; its entries are kept for `verify` or `gc`");
                } else {
                    Repository::new(self.sink.clone())
                        .discard_uncommitted(&id)
                        .await;
                    tracing::warn!(backup_id = %id, error = %e, "backup failed; nothing was committed");
                }
                self.emitter.emit(Event::Failed {
                    operation: Operation::Backup,
                    backup_id: id,
                    kind: e.kind().to_string(),
                    message: e.to_string(),
                });
                Err(e)
            }
        }
    }

    async fn run_inner(
        &self,
        id: &str,
        started_at: OffsetDateTime,
        t0: Instant,
        lease: &LeaseHolder<'_>,
        committing: &AtomicBool,
    ) -> Result<BackupReport> {
        let repo = Repository::new(self.sink.clone())
            .with_key(self.key.clone())
            .allow_unencrypted(self.allow_unencrypted);
        let unlocked = repo.unlock_for_backup(self.kdf.clone()).await?;
        lease.write().await?;

        let mut transforms = self.transforms.clone();
        let mut data_key = None;
        let mut encryption = None;
        if let Some(k) = &unlocked {
            let dk = Arc::new(DataKey::generate()?);
            encryption = Some(dk.wrap(&k.master, k.wrap_kdf.clone(), id)?);
            transforms.push(Arc::new(Aes256GcmStream::new(dk.clone(), self.chunk_size)?));
            data_key = Some(dk);
        }
        let specs = transforms.iter().map(|t| t.spec()).collect();

        let ctx = crate::source::OpenContext::new(id, self.emitter.clone());
        let snapshot = self.source.open_with(&ctx).await?;
        let info = snapshot.info();
        let parent = self.parent.clone().or_else(|| snapshot.parent());
        if parent.is_some() {
            lease.set_parent(parent.clone()).await?;
        }
        let entries = snapshot.entries();
        let mut seen = HashSet::new();
        for e in &entries {
            if !seen.insert(e.name.as_str()) {
                return Err(Error::internal(format!(
                    "the source produced the entry name {:?} twice",
                    e.name
                )));
            }
        }
        tracing::info!(engine = %info.engine, entries = entries.len(), "snapshot open");
        self.emitter.emit(Event::Started {
            operation: Operation::Backup,
            backup_id: id.to_owned(),
            entries: entries.len(),
        });

        let job = Arc::new(EntryJob {
            backup_id: id.to_owned(),
            sink: self.sink.clone(),
            transforms: Arc::new(transforms),
            checksum_key: data_key.as_ref().map(|k| k.checksum_key()),
            emitter: self.emitter.clone(),
        });
        let snap: &dyn Snapshot = snapshot.as_ref();
        let records: Vec<EntryRecord> = futures::stream::iter(entries.into_iter().enumerate())
            .map(|(i, spec)| {
                let job = job.clone();
                async move { backup_entry(&job, snap, i, &spec).await }
            })
            .buffered(self.jobs)
            .try_collect()
            .await?;
        let summary = snapshot.finish().await.map_err(|e| {
            if e.kind() == ErrorKind::Internal {
                e
            } else {
                e.with_kind(ErrorKind::Source)
            }
        })?;

        let manifest = Manifest {
            format_version: manifest::FORMAT_VERSION,
            backup_id: id.to_owned(),
            started_at,
            finished_at: OffsetDateTime::now_utc(),
            source: info,
            transforms: specs,
            encryption,
            checksum: if data_key.is_some() {
                ChecksumAlgorithm::Blake3Keyed
            } else {
                ChecksumAlgorithm::Blake3
            },
            entries: records,
            labels: self.labels.clone(),
            parent,
            warnings: summary.warnings,
        };
        let sealed = manifest::seal(&manifest, data_key.as_deref())?;
        // Never commit a manifest that points at objects someone removed meanwhile.
        use crate::sink::SinkExt;
        for r in &manifest.entries {
            if !self.sink.exists(&r.object).await? {
                return Err(Error::new(
                    ErrorKind::Sink,
                    "an entry object vanished before the commit (removed by `gc` or another \
                     process); nothing is committed",
                )
                .with_entry(r.name.clone())
                .with_object(r.object.clone()));
            }
        }
        if let Some(p) = &manifest.parent {
            if !self.sink.exists(&manifest_key(p)).await? {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "the parent backup {p} was deleted while this backup ran; nothing is \
                         committed (take a full backup)"
                    ),
                ));
            }
        }
        if let Some(k) = &unlocked {
            repo.seal_config(k).await?;
        }
        // The commit point: create-only, so two writers can never commit one id.
        committing.store(true, Ordering::SeqCst);
        let put = self
            .sink
            .put_bytes(&manifest_key(id), sealed, PutMode::Create)
            .await;
        // Any failure here is in doubt (even "already exists" can be our own retried write).
        put.map_err(|e| e.with_object(manifest_key(id)))?;
        tracing::info!(
            raw = manifest.raw_size(),
            stored = manifest.stored_size(),
            "backup committed"
        );
        Ok(BackupReport {
            manifest,
            elapsed: t0.elapsed(),
        })
    }
}

async fn backup_entry(
    job: &EntryJob,
    snapshot: &dyn Snapshot,
    index: usize,
    spec: &EntrySpec,
) -> Result<EntryRecord> {
    let t0 = Instant::now();
    let object = entry_key(&job.backup_id, index);
    let ctx = |e: Error| e.with_entry(spec.name.clone());
    job.emitter.emit(Event::EntryStarted {
        operation: Operation::Backup,
        backup_id: job.backup_id.clone(),
        entry: spec.name.clone(),
    });
    let span = tracing::debug_span!("entry", entry = %spec.name);
    async {
        let data = snapshot.read(spec).await.map_err(ctx)?;
        let rows = data.rows.clone();
        let mut writer = job
            .sink
            .put(&object, PutMode::Create)
            .await
            .map_err(|e| ctx(e).with_object(object.clone()))?;
        let stats = match pump_backup(job, spec, data, writer.as_mut()).await {
            Ok(s) => s,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(ctx(e).with_object(object.clone()));
            }
        };
        let meta = writer
            .complete()
            .await
            .map_err(|e| ctx(e).with_object(object.clone()))?;
        if meta.size != stats.stored_size {
            return Err(ctx(Error::new(
                ErrorKind::Sink,
                format!(
                    "the sink stored {} bytes, {} were written",
                    meta.size, stats.stored_size
                ),
            ))
            .with_object(object.clone()));
        }
        let rows = rows.map(|r| r.get());
        job.emitter.emit(Event::EntryFinished {
            operation: Operation::Backup,
            backup_id: job.backup_id.clone(),
            entry: spec.name.clone(),
            raw_bytes: stats.raw_size,
            stored_bytes: stats.stored_size,
            rows,
            elapsed: t0.elapsed(),
        });
        Ok(EntryRecord {
            name: spec.name.clone(),
            kind: spec.kind,
            phase: spec.phase,
            object: object.clone(),
            raw_size: stats.raw_size,
            stored_size: stats.stored_size,
            rows,
            checksum: stats.checksum,
            stored_checksum: stats.stored_checksum,
            meta: spec.meta.clone(),
        })
    }
    .instrument(span)
    .await
}

struct PumpStats {
    raw_size: u64,
    stored_size: u64,
    checksum: String,
    stored_checksum: String,
}

async fn pump_backup(
    job: &EntryJob,
    spec: &EntrySpec,
    data: EntryData,
    writer: &mut dyn ObjectWriter,
) -> Result<PumpStats> {
    let (tx1, mut rx1) = mpsc::channel::<Msg>(DEPTH);
    let (tx2, mut rx2) = mpsc::channel::<Msg>(DEPTH);
    let (tx3, mut rx3) = mpsc::channel::<Bytes>(DEPTH * 4);
    let raw_progress = Arc::new(AtomicU64::new(0));

    let mut stream = data.stream;
    let mut reader = AbortOnDrop(tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(item) = stream.next().await {
            let chunk = item?;
            if buf.is_empty() && chunk.len() >= BLOCK {
                tx1.send(Msg::Data(chunk))
                    .await
                    .map_err(|_| Error::cancelled())?;
                continue;
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= BLOCK {
                tx1.send(Msg::Data(buf.split().freeze()))
                    .await
                    .map_err(|_| Error::cancelled())?;
            }
        }
        if !buf.is_empty() {
            tx1.send(Msg::Data(buf.freeze()))
                .await
                .map_err(|_| Error::cancelled())?;
        }
        tx1.send(Msg::End).await.map_err(|_| Error::cancelled())?;
        Ok(())
    }));

    let checksum_key = job.checksum_key;
    let progress = raw_progress.clone();
    let mut hash_thread = tokio::task::spawn_blocking(move || -> Result<(String, u64)> {
        let mut h = hasher(checksum_key.as_ref());
        let mut n = 0u64;
        loop {
            match rx1.blocking_recv() {
                Some(Msg::Data(b)) => {
                    h.update(&b);
                    n += b.len() as u64;
                    progress.store(n, Ordering::Relaxed);
                    tx2.blocking_send(Msg::Data(b))
                        .map_err(|_| Error::cancelled())?;
                }
                Some(Msg::End) => {
                    tx2.blocking_send(Msg::End)
                        .map_err(|_| Error::cancelled())?;
                    return Ok((h.finalize().to_hex().to_string(), n));
                }
                None => return Err(Error::cancelled()),
            }
        }
    });

    let transforms = job.transforms.clone();
    let (backup_id, entry) = (job.backup_id.clone(), spec.name.clone());
    let mut codec_thread = tokio::task::spawn_blocking(move || -> Result<(String, u64)> {
        let ctx = CodecContext {
            backup_id: &backup_id,
            entry: &entry,
        };
        let mut chain = CodecChain::encoders(&transforms, &ctx)?;
        let mut sh = blake3::Hasher::new();
        let mut stored = 0u64;
        {
            let mut emit = |v: Vec<u8>| -> Result<()> {
                sh.update(&v);
                stored += v.len() as u64;
                tx3.blocking_send(Bytes::from(v))
                    .map_err(|_| Error::cancelled())
            };
            loop {
                match rx2.blocking_recv() {
                    Some(Msg::Data(b)) => chain.update(&b, &mut emit)?,
                    Some(Msg::End) => {
                        chain.finish(&mut emit)?;
                        break;
                    }
                    None => return Err(Error::cancelled()),
                }
            }
        }
        Ok((sh.finalize().to_hex().to_string(), stored))
    });

    let mut written = 0u64;
    let mut last_report = 0u64;
    let mut write_err = None;
    while let Some(b) = rx3.recv().await {
        written += b.len() as u64;
        if let Err(e) = writer.write(b).await {
            write_err = Some(e);
            break;
        }
        let raw = raw_progress.load(Ordering::Relaxed);
        if raw >= last_report + BLOCK as u64 {
            last_report = raw;
            job.emitter.emit(Event::EntryProgress {
                operation: Operation::Backup,
                backup_id: job.backup_id.clone(),
                entry: spec.name.clone(),
                raw_bytes: raw,
                stored_bytes: written,
                rows: None,
            });
        }
    }
    drop(rx3);
    if write_err.is_some() {
        reader.0.abort();
    }
    let r_reader = join(&mut reader.0).await;
    let r_hash = join(&mut hash_thread).await;
    let r_codec = join(&mut codec_thread).await;
    let ((checksum, raw_size), (stored_checksum, stored_size)) =
        match (r_reader, r_hash, r_codec, write_err) {
            (Ok(()), Ok(h), Ok(c), None) => (h, c),
            (r, h, c, w) => {
                let errors = [r.err(), h.err(), c.err(), w]
                    .into_iter()
                    .flatten()
                    .collect();
                return Err(first_real_error(errors).expect("at least one stage failed"));
            }
        };
    if stored_size != written {
        return Err(Error::internal(
            "stored byte count disagrees with bytes written",
        ));
    }
    Ok(PumpStats {
        raw_size,
        stored_size,
        checksum,
        stored_checksum,
    })
}

// ---------------------------------------------------------------------------------------------
// reading a backup back

/// What restore and verify need to decode a backup's entries.
struct OpenBackup {
    manifest: Manifest,
    transforms: Arc<Vec<Arc<dyn Transform>>>,
    checksum_key: Option<[u8; 32]>,
}

async fn open_backup(
    sink: &Arc<dyn Sink>,
    selector: &BackupSelector,
    key: Option<&Key>,
    allow_unencrypted: bool,
    factories: &HashMap<String, TransformFactory>,
) -> Result<(OpenBackup, Vec<SkippedBackup>)> {
    let repo = Repository::new(sink.clone())
        .with_key(key.cloned())
        .allow_unencrypted(allow_unencrypted);
    let (trusted, skipped) = repo.open_trusted(selector).await?;
    let id = trusted.opened.manifest.backup_id.clone();
    let data_key = trusted.data_key.map(Arc::new);
    let manifest = trusted.opened.manifest;
    let transforms = build_chain(&manifest.transforms, data_key.as_ref(), factories, &id)?;
    Ok((
        OpenBackup {
            checksum_key: data_key.as_ref().map(|k| k.checksum_key()),
            manifest,
            transforms: Arc::new(transforms),
        },
        skipped,
    ))
}

/// Streams one entry's plaintext, checking every size, checksum and tag on the way. The stream's
/// last item is an `Err` with [`ErrorKind::Corrupt`] if anything does not match.
async fn decoded_entry(
    sink: &Arc<dyn Sink>,
    backup: &OpenBackup,
    entry: &EntryRecord,
    progress: Option<Box<dyn Fn(u64) + Send + Sync>>,
) -> Result<ByteStream> {
    let backup_id = backup.manifest.backup_id.clone();
    let ctx = {
        let (b, e, o) = (backup_id.clone(), entry.name.clone(), entry.object.clone());
        move |err: Error| {
            err.with_backup(b.clone())
                .with_entry(e.clone())
                .with_object(o.clone())
        }
    };
    let mut src = sink.get(&entry.object, None).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            ctx(Error::corrupt(
                "the entry's object is missing from the repository",
            ))
        } else {
            ctx(e)
        }
    })?;

    let (tx1, mut rx1) = mpsc::channel::<Result<Msg>>(DEPTH * 4);
    let (tx2, rx2) = mpsc::channel::<Result<Msg>>(DEPTH);
    let reader = AbortOnDrop(tokio::spawn(async move {
        while let Some(item) = src.next().await {
            let stop = item.is_err();
            if tx1.send(item.map(Msg::Data)).await.is_err() || stop {
                return;
            }
        }
        let _ = tx1.send(Ok(Msg::End)).await;
    }));

    let transforms = backup.transforms.clone();
    let checksum_key = backup.checksum_key;
    let entry_rec = entry.clone();
    let ctx2 = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let result = (|| -> Result<()> {
            let cctx = CodecContext {
                backup_id: &backup_id,
                entry: &entry_rec.name,
            };
            let mut chain = CodecChain::decoders(&transforms, &cctx)?;
            let mut stored_hash = blake3::Hasher::new();
            let mut stored = 0u64;
            let mut plain_hash = hasher(checksum_key.as_ref());
            let mut raw = 0u64;
            let mut emit = |v: Vec<u8>| -> Result<()> {
                plain_hash.update(&v);
                raw += v.len() as u64;
                if raw > entry_rec.raw_size {
                    return Err(Error::corrupt(format!(
                        "the entry decodes to more than the {} bytes the manifest records",
                        entry_rec.raw_size
                    )));
                }
                tx2.blocking_send(Ok(Msg::Data(Bytes::from(v))))
                    .map_err(|_| Error::cancelled())
            };
            loop {
                match rx1.blocking_recv() {
                    Some(Ok(Msg::Data(b))) => {
                        stored_hash.update(&b);
                        stored += b.len() as u64;
                        chain.update(&b, &mut emit)?;
                    }
                    Some(Ok(Msg::End)) => break,
                    Some(Err(e)) => return Err(e),
                    None => return Err(Error::cancelled()),
                }
            }
            chain.finish(&mut emit)?;
            if stored != entry_rec.stored_size {
                return Err(Error::corrupt(format!(
                    "stored object is {stored} bytes, the manifest records {} (truncated or replaced)",
                    entry_rec.stored_size
                )));
            }
            if stored_hash.finalize().to_hex().as_str() != entry_rec.stored_checksum {
                return Err(Error::corrupt(
                    "stored object checksum mismatch (the object was modified)",
                ));
            }
            if raw != entry_rec.raw_size {
                return Err(Error::corrupt(format!(
                    "the entry decodes to {raw} bytes, the manifest records {}",
                    entry_rec.raw_size
                )));
            }
            if plain_hash.finalize().to_hex().as_str() != entry_rec.checksum {
                return Err(Error::corrupt("plaintext checksum mismatch"));
            }
            Ok(())
        })();
        let last = match result {
            Ok(()) => Ok(Msg::End),
            Err(e) => Err(ctx2(e)),
        };
        let _ = tx2.blocking_send(last);
    });

    struct State {
        rx: mpsc::Receiver<Result<Msg>>,
        _reader: AbortOnDrop<()>,
        done: bool,
        seen: u64,
        reported: u64,
        progress: Option<Box<dyn Fn(u64) + Send + Sync>>,
        ctx: Box<dyn Fn(Error) -> Error + Send + Sync>,
    }
    let state = State {
        rx: rx2,
        _reader: reader,
        done: false,
        seen: 0,
        reported: 0,
        progress,
        ctx: Box::new(ctx),
    };
    Ok(Box::pin(futures::stream::unfold(
        state,
        |mut st| async move {
            if st.done {
                return None;
            }
            match st.rx.recv().await {
                Some(Ok(Msg::Data(b))) => {
                    st.seen += b.len() as u64;
                    if let Some(p) = &st.progress {
                        if st.seen >= st.reported + BLOCK as u64 {
                            st.reported = st.seen;
                            p(st.seen);
                        }
                    }
                    Some((Ok(b), st))
                }
                Some(Ok(Msg::End)) => None,
                Some(Err(e)) => {
                    st.done = true;
                    Some((Err(e), st))
                }
                None => {
                    st.done = true;
                    let e = (st.ctx)(Error::internal(
                        "the decoder stopped before the end of the entry",
                    ));
                    Some((Err(e), st))
                }
            }
        },
    )))
}

// ---------------------------------------------------------------------------------------------
// restore

type EntryFilter = Arc<dyn Fn(&EntryRecord) -> bool + Send + Sync>;

/// Builds a [`Restore`].
#[derive(Default)]
pub struct RestoreBuilder {
    sink: Option<Arc<dyn Sink>>,
    target: Option<Arc<dyn RestoreTarget>>,
    selector: Option<BackupSelector>,
    key: Option<Key>,
    allow_unencrypted: bool,
    jobs: Option<usize>,
    filter: Option<EntryFilter>,
    subscribers: Vec<Arc<dyn Subscriber>>,
    cancel: Option<CancellationToken>,
    factories: HashMap<String, TransformFactory>,
}

impl RestoreBuilder {
    /// Where the repository lives.
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }
    /// What to restore into.
    pub fn target(mut self, target: impl RestoreTarget + 'static) -> Self {
        self.target = Some(Arc::new(target));
        self
    }
    /// What to restore into, shared.
    pub fn target_arc(mut self, target: Arc<dyn RestoreTarget>) -> Self {
        self.target = Some(target);
        self
    }
    /// Which backup (default: latest).
    pub fn backup(mut self, selector: BackupSelector) -> Self {
        self.selector = Some(selector);
        self
    }
    /// The key or passphrase of an encrypted backup.
    pub fn key(mut self, key: Key) -> Self {
        self.key = Some(key);
        self
    }
    /// Entries restored at once within a phase (default: CPU count, at most 4).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs);
        self
    }
    /// Restores only the entries for which `f` is true.
    pub fn filter(mut self, f: impl Fn(&EntryRecord) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(f));
        self
    }
    /// Accepts unencrypted backups in an encrypted repository (a mixed repository; off by
    /// default, since nothing vouches for an unencrypted backup).
    pub fn allow_unencrypted(mut self, yes: bool) -> Self {
        self.allow_unencrypted = yes;
        self
    }
    /// Receives progress events.
    pub fn subscribe(mut self, s: impl Subscriber + 'static) -> Self {
        self.subscribers.push(Arc::new(s));
        self
    }
    /// Cancels the restore when the token is cancelled.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }
    /// Registers the factory of a custom transform the backup used.
    pub fn transform_factory(
        mut self,
        name: impl Into<String>,
        f: impl Fn(&serde_json::Value) -> Result<Arc<dyn Transform>> + Send + Sync + 'static,
    ) -> Self {
        self.factories.insert(name.into(), Arc::new(f));
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the sink or target is missing or `jobs` is out of range.
    pub fn build(self) -> Result<Restore> {
        let sink = self
            .sink
            .ok_or_else(|| Error::invalid("a restore needs a sink: call `.sink(...)`"))?;
        let target = self
            .target
            .ok_or_else(|| Error::invalid("a restore needs a target: call `.target(...)`"))?;
        let jobs = self.jobs.unwrap_or_else(default_jobs);
        if jobs == 0 || jobs > 256 {
            return Err(Error::invalid(format!("jobs must be 1..=256, got {jobs}")));
        }
        Ok(Restore {
            sink,
            target,
            selector: self.selector.unwrap_or(BackupSelector::Latest),
            key: self.key,
            allow_unencrypted: self.allow_unencrypted,
            jobs,
            filter: self.filter,
            emitter: Emitter::new(self.subscribers),
            cancel: self.cancel,
            factories: self.factories,
        })
    }
}

/// A configured restore. [`run`](Restore::run) it.
pub struct Restore {
    sink: Arc<dyn Sink>,
    target: Arc<dyn RestoreTarget>,
    selector: BackupSelector,
    key: Option<Key>,
    allow_unencrypted: bool,
    jobs: usize,
    filter: Option<EntryFilter>,
    emitter: Emitter,
    cancel: Option<CancellationToken>,
    factories: HashMap<String, TransformFactory>,
}

/// What a finished restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup restored.
    pub backup_id: String,
    /// Entries restored.
    pub entries: usize,
    /// Plaintext bytes restored.
    pub raw_bytes: u64,
    /// Rows loaded, where the target counts them.
    pub rows: u64,
    /// Warnings from the target.
    pub warnings: Vec<String>,
    /// Newer backups `latest` passed over (damaged, not sealed by the key): show them.
    pub skipped: Vec<SkippedBackup>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Restore {
    /// A builder.
    pub fn builder() -> RestoreBuilder {
        RestoreBuilder::default()
    }

    /// Runs the restore phase by phase. Every entry's checksums are checked; on any error the
    /// target session is aborted (it undoes what it can) and the error returned.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for a missing backup, [`ErrorKind::WrongKey`], [`ErrorKind::Corrupt`]
    /// naming backup and entry, or the target's error.
    pub async fn run(&self) -> Result<RestoreReport> {
        let t0 = Instant::now();
        let (backup, skipped) = open_backup(
            &self.sink,
            &self.selector,
            self.key.as_ref(),
            self.allow_unencrypted,
            &self.factories,
        )
        .await?;
        let id = backup.manifest.backup_id.clone();
        let work = self
            .run_inner(&backup, t0)
            .instrument(tracing::info_span!("restore", backup_id = %id));
        let result = match &self.cancel {
            Some(token) => tokio::select! {
                r = work => r,
                _ = token.cancelled() => Err(Error::cancelled()),
            },
            None => work.await,
        };
        match result {
            Ok(mut r) => {
                r.skipped = skipped;
                self.emitter.emit(Event::Finished {
                    operation: Operation::Restore,
                    backup_id: id,
                    raw_bytes: r.raw_bytes,
                    stored_bytes: backup.manifest.stored_size(),
                    elapsed: r.elapsed,
                });
                Ok(r)
            }
            Err(e) => {
                let e = e.with_backup(id.clone());
                self.emitter.emit(Event::Failed {
                    operation: Operation::Restore,
                    backup_id: id,
                    kind: e.kind().to_string(),
                    message: e.to_string(),
                });
                Err(e)
            }
        }
    }

    async fn run_inner(&self, backup: &OpenBackup, t0: Instant) -> Result<RestoreReport> {
        let m = &backup.manifest;
        let selected: Vec<&EntryRecord> = m
            .entries
            .iter()
            .filter(|e| self.filter.as_ref().is_none_or(|f| f(e)))
            .collect();
        let mut phases: BTreeMap<u32, Vec<&EntryRecord>> = BTreeMap::new();
        for e in &selected {
            phases.entry(e.phase).or_default().push(e);
        }
        self.emitter.emit(Event::Started {
            operation: Operation::Restore,
            backup_id: m.backup_id.clone(),
            entries: selected.len(),
        });
        let session = self.target.begin(m).await?;
        let mut rows = 0u64;
        let mut raw = 0u64;
        let outcome: Result<()> = async {
            for entries in phases.into_values() {
                let owned: Vec<EntryRecord> = entries.into_iter().cloned().collect();
                let session = session.as_ref();
                let done: Vec<(u64, Option<u64>)> = futures::stream::iter(owned)
                    .map(|e| async move { self.restore_entry(backup, session, &e).await })
                    .buffer_unordered(self.jobs)
                    .try_collect()
                    .await?;
                for (r, n) in done {
                    raw += r;
                    rows += n.unwrap_or(0);
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            if let Err(cleanup) = session.abort(&e).await {
                tracing::error!(error = %cleanup, "cleaning up the failed restore failed too");
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "{}; cleaning up the partial restore also failed: {cleanup}",
                        e.message()
                    ),
                )
                .with_backup(m.backup_id.clone()));
            }
            return Err(e);
        }
        let summary = session.finish().await?;
        Ok(RestoreReport {
            backup_id: m.backup_id.clone(),
            entries: selected.len(),
            raw_bytes: raw,
            rows,
            warnings: summary.warnings,
            skipped: Vec::new(),
            elapsed: t0.elapsed(),
        })
    }

    async fn restore_entry(
        &self,
        backup: &OpenBackup,
        session: &dyn crate::restore::RestoreSession,
        entry: &EntryRecord,
    ) -> Result<(u64, Option<u64>)> {
        let t0 = Instant::now();
        let id = backup.manifest.backup_id.clone();
        self.emitter.emit(Event::EntryStarted {
            operation: Operation::Restore,
            backup_id: id.clone(),
            entry: entry.name.clone(),
        });
        let progress = {
            let (em, id, name) = (self.emitter.clone(), id.clone(), entry.name.clone());
            Box::new(move |raw: u64| {
                em.emit(Event::EntryProgress {
                    operation: Operation::Restore,
                    backup_id: id.clone(),
                    entry: name.clone(),
                    raw_bytes: raw,
                    stored_bytes: 0,
                    rows: None,
                })
            })
        };
        let stream = decoded_entry(&self.sink, backup, entry, Some(progress)).await?;
        let rows = session
            .restore_entry(entry, stream)
            .await
            .map_err(|e| e.with_backup(id.clone()).with_entry(entry.name.clone()))?;
        self.emitter.emit(Event::EntryFinished {
            operation: Operation::Restore,
            backup_id: id,
            entry: entry.name.clone(),
            raw_bytes: entry.raw_size,
            stored_bytes: entry.stored_size,
            rows: rows.or(entry.rows),
            elapsed: t0.elapsed(),
        });
        Ok((entry.raw_size, rows))
    }
}

// ---------------------------------------------------------------------------------------------
// verify

/// Builds a [`Verify`].
#[derive(Default)]
pub struct VerifyBuilder {
    sink: Option<Arc<dyn Sink>>,
    selector: Option<BackupSelector>,
    key: Option<Key>,
    allow_unencrypted: bool,
    jobs: Option<usize>,
    subscribers: Vec<Arc<dyn Subscriber>>,
    factories: HashMap<String, TransformFactory>,
}

impl VerifyBuilder {
    /// Where the repository lives.
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }
    /// Which backup (default: latest).
    pub fn backup(mut self, selector: BackupSelector) -> Self {
        self.selector = Some(selector);
        self
    }
    /// The key or passphrase of an encrypted backup.
    pub fn key(mut self, key: Key) -> Self {
        self.key = Some(key);
        self
    }
    /// Entries checked at once (default: CPU count, at most 4).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs);
        self
    }
    /// Accepts unencrypted backups in an encrypted repository (a mixed repository; off by
    /// default, since nothing vouches for an unencrypted backup).
    pub fn allow_unencrypted(mut self, yes: bool) -> Self {
        self.allow_unencrypted = yes;
        self
    }
    /// Receives progress events.
    pub fn subscribe(mut self, s: impl Subscriber + 'static) -> Self {
        self.subscribers.push(Arc::new(s));
        self
    }
    /// Registers the factory of a custom transform the backup used.
    pub fn transform_factory(
        mut self,
        name: impl Into<String>,
        f: impl Fn(&serde_json::Value) -> Result<Arc<dyn Transform>> + Send + Sync + 'static,
    ) -> Self {
        self.factories.insert(name.into(), Arc::new(f));
        self
    }
    /// Validates the configuration.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the sink is missing.
    pub fn build(self) -> Result<Verify> {
        let sink = self
            .sink
            .ok_or_else(|| Error::invalid("verify needs a sink: call `.sink(...)`"))?;
        Ok(Verify {
            sink,
            selector: self.selector.unwrap_or(BackupSelector::Latest),
            key: self.key,
            allow_unencrypted: self.allow_unencrypted,
            jobs: self.jobs.unwrap_or_else(default_jobs).max(1),
            emitter: Emitter::new(self.subscribers),
            factories: self.factories,
        })
    }
}

/// A configured verification: reads every object of a backup and checks every size, checksum and
/// authentication tag. Needs no database.
pub struct Verify {
    sink: Arc<dyn Sink>,
    selector: BackupSelector,
    key: Option<Key>,
    allow_unencrypted: bool,
    jobs: usize,
    emitter: Emitter,
    factories: HashMap<String, TransformFactory>,
}

/// What a successful verification checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The backup verified.
    pub backup_id: String,
    /// Entries checked.
    pub entries: usize,
    /// Plaintext bytes decoded.
    pub raw_bytes: u64,
    /// Stored bytes read.
    pub stored_bytes: u64,
    /// Newer backups `latest` passed over (damaged, not sealed by the key): show them.
    pub skipped: Vec<SkippedBackup>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Verify {
    /// A builder.
    pub fn builder() -> VerifyBuilder {
        VerifyBuilder::default()
    }

    /// Verifies the backup.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] naming the backup and the first damaged entry;
    /// [`ErrorKind::WrongKey`]; [`ErrorKind::NotFound`].
    pub async fn run(&self) -> Result<VerifyReport> {
        let t0 = Instant::now();
        let (backup, skipped) = open_backup(
            &self.sink,
            &self.selector,
            self.key.as_ref(),
            self.allow_unencrypted,
            &self.factories,
        )
        .await?;
        let m = &backup.manifest;
        self.emitter.emit(Event::Started {
            operation: Operation::Verify,
            backup_id: m.backup_id.clone(),
            entries: m.entries.len(),
        });
        let backup = &backup;
        let result: Result<Vec<()>> = futures::stream::iter(m.entries.clone())
            .map(|e| async move {
                let t = Instant::now();
                let mut s = decoded_entry(&self.sink, backup, &e, None).await?;
                while let Some(chunk) = s.next().await {
                    chunk?;
                }
                self.emitter.emit(Event::EntryFinished {
                    operation: Operation::Verify,
                    backup_id: m.backup_id.clone(),
                    entry: e.name.clone(),
                    raw_bytes: e.raw_size,
                    stored_bytes: e.stored_size,
                    rows: e.rows,
                    elapsed: t.elapsed(),
                });
                Ok(())
            })
            .buffer_unordered(self.jobs)
            .try_collect()
            .await;
        if let Err(e) = result {
            self.emitter.emit(Event::Failed {
                operation: Operation::Verify,
                backup_id: m.backup_id.clone(),
                kind: e.kind().to_string(),
                message: e.to_string(),
            });
            return Err(e);
        }
        let report = VerifyReport {
            backup_id: m.backup_id.clone(),
            entries: m.entries.len(),
            raw_bytes: m.raw_size(),
            stored_bytes: m.stored_size(),
            skipped,
            elapsed: t0.elapsed(),
        };
        self.emitter.emit(Event::Finished {
            operation: Operation::Verify,
            backup_id: report.backup_id.clone(),
            raw_bytes: report.raw_bytes,
            stored_bytes: report.stored_bytes,
            elapsed: report.elapsed,
        });
        Ok(report)
    }
}
