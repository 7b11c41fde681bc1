//! The restore operation.

use super::*;

// ---------------------------------------------------------------------------------------------
// restore

pub(super) type EntryFilter = Arc<dyn Fn(&EntryRecord) -> bool + Send + Sync>;

/// Builds a [`Restore`].
#[derive(Default)]
pub struct RestoreBuilder {
    read: ReadSide,
    target: Option<Arc<dyn RestoreTarget>>,
    filter: Option<EntryFilter>,
    cancel: Option<CancellationToken>,
}

impl RestoreBuilder {
    read_side_setters!("Entries restored at once within a phase (default: CPU count, at most 4).");

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
    /// Restores only the entries for which `f` is true.
    pub fn filter(mut self, f: impl Fn(&EntryRecord) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(f));
        self
    }
    /// Cancels the restore when the token is cancelled.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Validates the configuration.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the sink or target is missing or `jobs` is out of range.
    pub fn build(self) -> Result<Restore> {
        let read = self.read.build("a restore")?;
        let target = self
            .target
            .ok_or_else(|| Error::invalid("a restore needs a target: call `.target(...)`"))?;
        Ok(Restore {
            read,
            target,
            filter: self.filter,
            cancel: self.cancel,
        })
    }
}

/// A configured restore. [`run`](Restore::run) it.
pub struct Restore {
    read: ReadOptions,
    target: Arc<dyn RestoreTarget>,
    filter: Option<EntryFilter>,
    cancel: Option<CancellationToken>,
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
        let (backup, skipped) = self.read.open().await?;
        let id = backup.manifest.backup_id.clone();
        let stored = backup.manifest.stored_size();
        let work = async {
            let mut r = self.run_inner(&backup, t0).await?;
            r.skipped = skipped;
            Ok(r)
        };
        run_operation(
            Operation::Restore,
            &id,
            &self.read.emitter,
            self.cancel.as_ref(),
            work,
            |r: &RestoreReport| super::runner::Totals {
                raw_bytes: r.raw_bytes,
                stored_bytes: stored,
                elapsed: r.elapsed,
            },
            |_| async {},
        )
        .await
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
        self.read.emitter.emit(Event::Started {
            operation: Operation::Restore,
            backup_id: m.backup_id.clone(),
            entries: selected.len(),
            estimated_bytes: Some(selected.iter().map(|e| e.raw_size).sum()),
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
                    .buffer_unordered(self.read.jobs)
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
        let mut warnings = summary.warnings;
        if !m.omitted.is_empty() {
            warnings.insert(
                0,
                format!(
                    "backup {} is incomplete: it was taken leaving out {} object(s) the database \
                     held, which are not restored: {}",
                    m.backup_id,
                    m.omitted.len(),
                    m.omitted.join(", ")
                ),
            );
        }
        Ok(RestoreReport {
            backup_id: m.backup_id.clone(),
            entries: selected.len(),
            raw_bytes: raw,
            rows,
            warnings,
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
        self.read.emitter.emit(Event::EntryStarted {
            operation: Operation::Restore,
            backup_id: id.clone(),
            entry: entry.name.clone(),
        });
        let progress = {
            let (em, id, name) = (self.read.emitter.clone(), id.clone(), entry.name.clone());
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
        let stream = decoded_entry(&self.read.sink, backup, entry, Some(progress)).await?;
        let rows = session
            .restore_entry(entry, stream)
            .await
            .map_err(|e| e.with_backup(id.clone()).with_entry(entry.name.clone()))?;
        self.read.emitter.emit(Event::EntryFinished {
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
