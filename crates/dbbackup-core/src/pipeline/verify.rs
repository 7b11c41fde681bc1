//! The verify operation.

use super::*;

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
        let id = backup.manifest.backup_id.clone();
        let work = self.check_all(&backup, skipped, t0);
        run_operation(
            Operation::Verify,
            &id,
            &self.emitter,
            None,
            work,
            |r: &VerifyReport| super::runner::Totals {
                raw_bytes: r.raw_bytes,
                stored_bytes: r.stored_bytes,
                elapsed: r.elapsed,
            },
            |_| async {},
        )
        .await
    }

    async fn check_all(
        &self,
        backup: &OpenBackup,
        skipped: Vec<SkippedBackup>,
        t0: Instant,
    ) -> Result<VerifyReport> {
        let m = &backup.manifest;
        self.emitter.emit(Event::Started {
            operation: Operation::Verify,
            backup_id: m.backup_id.clone(),
            entries: m.entries.len(),
        });
        futures::stream::iter(m.entries.clone())
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
                Ok::<(), Error>(())
            })
            .buffer_unordered(self.jobs)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(VerifyReport {
            backup_id: m.backup_id.clone(),
            entries: m.entries.len(),
            raw_bytes: m.raw_size(),
            stored_bytes: m.stored_size(),
            skipped,
            elapsed: t0.elapsed(),
        })
    }
}
