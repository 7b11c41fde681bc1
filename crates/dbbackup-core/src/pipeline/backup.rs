//! The backup operation: its builder and run.

use super::runner;
use super::*;

// ---------------------------------------------------------------------------------------------
// backup

/// Builds a [`Backup`]. Cloneable: a scheduled job keeps one and builds each run's backup
/// from a clone.
#[derive(Clone, Default)]
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

    /// For a snapshot before schema migrations: `None` when every version in `available` is
    /// already `applied` (nothing to migrate, so nothing to back up); else the builder labelled
    /// `reason=pre-migration`, `migration.current` (the newest applied version, or `none`) and
    /// `migration.target` (the newest pending one). The engines' `snapshot_before_migrate` use it.
    pub fn pre_migration(
        self,
        applied: &std::collections::BTreeSet<i64>,
        available: impl IntoIterator<Item = i64>,
    ) -> Option<Self> {
        let target = available
            .into_iter()
            .filter(|v| !applied.contains(v))
            .max()?;
        let current = applied
            .iter()
            .max()
            .map_or_else(|| "none".to_owned(), i64::to_string);
        Some(
            self.label("reason", "pre-migration")
                .label("migration.current", current)
                .label("migration.target", target.to_string()),
        )
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

    /// The repository this backup writes to, with its key (`None` before [`sink`](Self::sink)):
    /// what a job reads its previous backups from and prunes.
    pub fn repository(&self) -> Option<Repository> {
        Some(
            Repository::new(self.sink.clone()?)
                .with_key(self.key.clone())
                .allow_unencrypted(self.allow_unencrypted),
        )
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
        let lease = LeaseHolder::new(self.sink.as_ref(), &id);
        let committing = AtomicBool::new(false);
        let touched = AtomicBool::new(false);
        // The lease is refreshed for as long as the backup runs, however long an entry streams.
        let work = async {
            let r = tokio::select! {
                r = self.run_inner(&id, started_at, t0, &lease, &committing, &touched) => r,
                never = lease.keep_alive() => match never {},
            };
            if r.is_ok() {
                lease.release().await;
            }
            r
        };
        let totals = |r: &BackupReport| runner::Totals {
            raw_bytes: r.manifest.raw_size(),
            stored_bytes: r.manifest.stored_size(),
            elapsed: r.elapsed,
        };
        let on_error = |e: &Error| {
            let e = e.to_string();
            let in_doubt = committing.load(Ordering::SeqCst);
            let (sink, id) = (self.sink.clone(), id.clone());
            async move {
                if in_doubt {
                    // The manifest write failed, but may have happened (a timeout): deleting the
                    // entries could break a committed backup. `gc` removes them if it did not.
                    tracing::warn!(backup_id = %id, error = %e, "the manifest write failed or is in doubt; its entries are kept for `verify` or `gc`");
                } else {
                    Repository::new(sink).discard_uncommitted(&id).await;
                    tracing::warn!(backup_id = %id, error = %e, "backup failed; nothing was committed");
                }
            }
        };
        let r = run_operation(
            Operation::Backup,
            &id,
            &self.emitter,
            self.cancel.as_ref(),
            work,
            totals,
            on_error,
        )
        .await;
        match r {
            // Nothing was written under the id: the error does not name a backup.
            Err(e) if !touched.load(Ordering::SeqCst) => Err(e.without_backup()),
            r => r,
        }
    }

    // Long on purpose: the commit protocol (key check, lease, entries, manifest written create-only) in order; every failure path must release the lease and leave no manifest.
    async fn run_inner(
        &self,
        id: &str,
        started_at: OffsetDateTime,
        t0: Instant,
        lease: &LeaseHolder<'_>,
        committing: &AtomicBool,
        touched: &AtomicBool,
    ) -> Result<BackupReport> {
        // The source first: a database that cannot be reached leaves nothing in the repository
        // (not even a new repository's config).
        let ctx = crate::source::OpenContext::new(id, self.emitter.clone());
        let snapshot = self.source.open_with(&ctx).await?;
        touched.store(true, Ordering::SeqCst);
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
            // What the engines could estimate (small schema entries count when done).
            estimated_bytes: entries
                .iter()
                .filter_map(|e| e.estimated_bytes)
                .reduce(|a, b| a + b),
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

        let mut info = info;
        info.position.extend(summary.position);
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
            omitted: summary.omitted,
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
