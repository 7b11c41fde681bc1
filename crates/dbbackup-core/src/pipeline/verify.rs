//! The verify operation.

use super::*;

// ---------------------------------------------------------------------------------------------
// verify

/// Builds a [`Verify`].
#[derive(Default)]
pub struct VerifyBuilder {
    read: ReadSide,
}

impl VerifyBuilder {
    read_side_setters!("Entries checked at once (default: CPU count, at most 4).");

    /// Validates the configuration.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the sink is missing or `jobs` is out of range.
    pub fn build(self) -> Result<Verify> {
        Ok(Verify {
            read: self.read.build("verify")?,
        })
    }
}

/// A configured verification: reads every object of a backup and checks every size, checksum and
/// authentication tag. Needs no database.
pub struct Verify {
    read: ReadOptions,
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
        let (backup, skipped) = self.read.open().await?;
        let id = backup.manifest.backup_id.clone();
        let work = self.check_all(&backup, skipped, t0);
        run_operation(
            Operation::Verify,
            &id,
            &self.read.emitter,
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
        self.read.emitter.emit(Event::Started {
            operation: Operation::Verify,
            backup_id: m.backup_id.clone(),
            entries: m.entries.len(),
            estimated_bytes: Some(m.entries.iter().map(|e| e.raw_size).sum()),
        });
        futures::stream::iter(m.entries.clone())
            .map(|e| async move {
                let t = Instant::now();
                let mut s = decoded_entry(&self.read.sink, backup, &e, None).await?;
                while let Some(chunk) = s.next().await {
                    chunk?;
                }
                self.read.emitter.emit(Event::EntryFinished {
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
            .buffer_unordered(self.read.jobs)
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
