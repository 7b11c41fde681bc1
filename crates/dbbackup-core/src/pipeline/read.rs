//! The read side shared by restore and verify: open a trusted backup, decode an entry.

use super::*;

/// What restore and verify builders share: which backup, in which repository, read with which key.
#[derive(Default)]
pub(super) struct ReadSide {
    pub(super) sink: Option<Arc<dyn Sink>>,
    pub(super) selector: Option<BackupSelector>,
    pub(super) key: Option<Key>,
    pub(super) allow_unencrypted: bool,
    pub(super) jobs: Option<usize>,
    pub(super) subscribers: Vec<Arc<dyn Subscriber>>,
    pub(super) factories: HashMap<String, TransformFactory>,
}

/// The validated [`ReadSide`].
pub(super) struct ReadOptions {
    pub(super) sink: Arc<dyn Sink>,
    pub(super) selector: BackupSelector,
    pub(super) key: Option<Key>,
    pub(super) allow_unencrypted: bool,
    pub(super) jobs: usize,
    pub(super) emitter: Emitter,
    pub(super) factories: HashMap<String, TransformFactory>,
}

impl ReadSide {
    /// Validates it; `what` names the operation in messages ("a restore", "verify").
    pub(super) fn build(self, what: &str) -> Result<ReadOptions> {
        let sink = self
            .sink
            .ok_or_else(|| Error::invalid(format!("{what} needs a sink: call `.sink(...)`")))?;
        let jobs = self.jobs.unwrap_or_else(default_jobs);
        if jobs == 0 || jobs > 256 {
            return Err(Error::invalid(format!("jobs must be 1..=256, got {jobs}")));
        }
        Ok(ReadOptions {
            sink,
            selector: self.selector.unwrap_or(BackupSelector::Latest),
            key: self.key,
            allow_unencrypted: self.allow_unencrypted,
            jobs,
            emitter: Emitter::new(self.subscribers),
            factories: self.factories,
        })
    }
}

impl ReadOptions {
    /// Opens the selected, trusted backup.
    pub(super) async fn open(&self) -> Result<(OpenBackup, Vec<SkippedBackup>)> {
        open_backup(
            &self.sink,
            &self.selector,
            self.key.as_ref(),
            self.allow_unencrypted,
            &self.factories,
        )
        .await
    }
}

/// The setters of the shared read side, for a builder with a `read: ReadSide` field.
macro_rules! read_side_setters {
    ($jobs_doc:literal) => {
        /// Where the repository lives.
        pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
            self.read.sink = Some(sink);
            self
        }
        /// Which backup (default: latest).
        pub fn backup(mut self, selector: BackupSelector) -> Self {
            self.read.selector = Some(selector);
            self
        }
        /// The key or passphrase of an encrypted backup.
        pub fn key(mut self, key: Key) -> Self {
            self.read.key = Some(key);
            self
        }
        #[doc = $jobs_doc]
        pub fn jobs(mut self, jobs: usize) -> Self {
            self.read.jobs = Some(jobs);
            self
        }
        /// Accepts unencrypted backups in an encrypted repository (a mixed repository; off by
        /// default, since nothing vouches for an unencrypted backup).
        pub fn allow_unencrypted(mut self, yes: bool) -> Self {
            self.read.allow_unencrypted = yes;
            self
        }
        /// Receives progress events.
        pub fn subscribe(mut self, s: impl Subscriber + 'static) -> Self {
            self.read.subscribers.push(Arc::new(s));
            self
        }
        /// Registers the factory of a custom transform the backup used.
        pub fn transform_factory(
            mut self,
            name: impl Into<String>,
            f: impl Fn(&serde_json::Value) -> Result<Arc<dyn Transform>> + Send + Sync + 'static,
        ) -> Self {
            self.read.factories.insert(name.into(), Arc::new(f));
            self
        }
    };
}
pub(super) use read_side_setters;

// ---------------------------------------------------------------------------------------------
// reading a backup back

/// What restore and verify need to decode a backup's entries.
pub(super) struct OpenBackup {
    pub(super) manifest: Manifest,
    pub(super) transforms: Arc<Vec<Arc<dyn Transform>>>,
    pub(super) checksum_key: Option<[u8; 32]>,
}

pub(super) async fn open_backup(
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
// Long on purpose: the read stages (sink, inverse codecs, checksum checks) and their channels are built together so their shutdown and error order is visible in one place.
pub(super) async fn decoded_entry(
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
