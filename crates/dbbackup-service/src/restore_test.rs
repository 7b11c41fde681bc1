//! Restore tests: restore a backup into a scratch database, check it there, drop the database
//! and record the result beside the backup.

use std::sync::Arc;
use std::time::Instant;

use dbbackup_core::{
    recorded_rows, BackupSelector, CancellationToken, CheckResult, CheckStatus, Error, ErrorKind,
    Event, Repository, Restore, RestoreTestRecord, Result, ScratchServer, Subscriber,
};
use time::OffsetDateTime;

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One restore test, built with [`RestoreTest::new`] and run with [`RestoreTest::run`].
///
/// The test restores the backup into a new database on the scratch server (a temporary file
/// for SQLite), then checks, in order: that the restore succeeded; that every table holds the
/// rows recorded at backup time; the engine's integrity checks; each user check (an SQL query
/// that must return true). The scratch database is dropped whatever happened (a failed drop is
/// a failed `cleanup` check), and the result is stored sealed beside the backup
/// ([`Repository::restore_tests`] reads it back).
#[derive(Clone)]
pub struct RestoreTest {
    repo: Repository,
    scratch: Arc<dyn ScratchServer>,
    backup: BackupSelector,
    checks: Vec<String>,
    jobs: Option<usize>,
    subscribers: Vec<Arc<dyn Subscriber>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for RestoreTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreTest")
            .field("scratch", &self.scratch.describe())
            .field("backup", &self.backup)
            .field("checks", &self.checks)
            .finish()
    }
}

impl RestoreTest {
    /// A test of the newest backup of `repo` (read with its key and trust rule), restored on
    /// `scratch`.
    pub fn new(repo: Repository, scratch: Arc<dyn ScratchServer>) -> Self {
        RestoreTest {
            repo,
            scratch,
            backup: BackupSelector::Latest,
            checks: Vec::new(),
            jobs: None,
            subscribers: Vec::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Which backup (default the newest).
    pub fn backup(mut self, sel: BackupSelector) -> Self {
        self.backup = sel;
        self
    }

    /// A query that must return one row whose first column is true, run on the restored
    /// database (repeatable).
    pub fn check(mut self, sql: impl Into<String>) -> Self {
        self.checks.push(sql.into());
        self
    }

    /// Entries restored at once.
    pub fn jobs(mut self, n: usize) -> Self {
        self.jobs = Some(n);
        self
    }

    /// Receives the restore's events and [`Event::RestoreTested`].
    pub fn subscribe(mut self, s: Arc<dyn Subscriber>) -> Self {
        self.subscribers.push(s);
        self
    }

    /// Cancels the test (the scratch database is still dropped; nothing is recorded).
    pub fn cancel_token(mut self, t: CancellationToken) -> Self {
        self.cancel = t;
        self
    }

    /// Runs the test and records it. A test whose checks fail is `Ok` with `passed: false`.
    ///
    /// # Errors
    /// When nothing could be tested (the backup is not trusted or not found, the scratch
    /// database cannot be created, the backup is a physical base backup), when the test was
    /// cancelled, or when its record cannot be stored.
    pub async fn run(&self) -> Result<RestoreTestRecord> {
        let resolved = self.repo.resolve(&self.backup).await?;
        let manifest = resolved.manifest;
        if manifest
            .entries
            .iter()
            .any(|e| e.meta.get("format").and_then(|f| f.as_str()) == Some("base-tar"))
        {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "backup {} is a physical PostgreSQL base backup: restore tests of base \
                     backups are not built yet (`dbbackup verify` reads every object and the WAL \
                     it needs; `dbbackup restore --data-dir` restores it)",
                    manifest.backup_id
                ),
            ));
        }
        let started = OffsetDateTime::now_utc();
        let mut record =
            RestoreTestRecord::new(&manifest.backup_id, &self.scratch.describe(), started);
        let db = self.scratch.create(&manifest).await?;
        let t0 = Instant::now();
        let mut r = Restore::builder()
            .sink(self.repo.sink().clone())
            .allow_unencrypted(self.repo.allows_unencrypted())
            .target_arc(db.target())
            .backup(BackupSelector::Id(manifest.backup_id.clone()))
            .cancel_token(self.cancel.child_token());
        if let Some(k) = self.repo.key() {
            r = r.key(k.clone());
        }
        if let Some(j) = self.jobs {
            r = r.jobs(j);
        }
        for s in &self.subscribers {
            let s = s.clone();
            r = r.subscribe(move |e: &Event| s.on_event(e));
        }
        let restored = match r.build() {
            Ok(r) => r.run().await,
            Err(e) => Err(e),
        };
        record.restore_seconds = t0.elapsed().as_secs_f64();
        let mut cancelled = None;
        match &restored {
            Ok(rep) => record.checks.push(CheckResult::passed(
                "restore",
                format!(
                    "{}, {} bytes{} into {} in {:.1} s",
                    count(rep.entries as u64, "entry", "entries"),
                    rep.raw_bytes,
                    if rep.rows > 0 {
                        format!(", {}", count(rep.rows, "row", "rows"))
                    } else {
                        String::new()
                    },
                    db.name(),
                    record.restore_seconds
                ),
            )),
            Err(e) if e.kind() == ErrorKind::Cancelled || self.cancel.is_cancelled() => {
                cancelled = Some(Error::new(ErrorKind::Cancelled, e.to_string()));
            }
            Err(e) => record
                .checks
                .push(CheckResult::failed("restore", e.to_string())),
        }
        if restored.is_ok() && cancelled.is_none() {
            for (table, (tref, want)) in recorded_rows(&manifest) {
                let name = format!("rows {table}");
                record.checks.push(match db.count_rows(&tref).await {
                    Ok(n) if n == want => CheckResult::passed(name, count(n, "row", "rows")),
                    Ok(n) => CheckResult::failed(
                        name,
                        format!("{n} rows restored, {want} recorded at backup time"),
                    ),
                    Err(e) => CheckResult::failed(name, format!("cannot count: {e}")),
                });
            }
            match db.integrity(&manifest).await {
                Ok(c) => record.checks.extend(c),
                Err(e) => record
                    .checks
                    .push(CheckResult::failed("integrity", e.to_string())),
            }
            for (i, sql) in self.checks.iter().enumerate() {
                let name = format!("check {}", i + 1);
                record.checks.push(match db.query_is_true(sql).await {
                    Ok(true) => CheckResult::passed(name, format!("true: {sql}")),
                    Ok(false) => CheckResult::failed(name, format!("false: {sql}")),
                    Err(e) => CheckResult::failed(name, format!("{e}: {sql}")),
                });
            }
        }
        let shown = db.name();
        match db.drop_database().await {
            Ok(()) => record
                .checks
                .push(CheckResult::passed("cleanup", format!("{shown} dropped"))),
            Err(e) => record.checks.push(CheckResult::failed(
                "cleanup",
                format!("{e}; drop {shown} by hand"),
            )),
        }
        if let Some(e) = cancelled {
            return Err(e);
        }
        record.passed = record
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Failed);
        record.finished_at = OffsetDateTime::now_utc();
        self.repo.record_restore_test(&record).await.map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "the restore test {} but its record could not be stored: {e}",
                    if record.passed { "passed" } else { "failed" }
                ),
            )
        })?;
        let event = Event::RestoreTested {
            backup_id: record.backup_id.clone(),
            passed: record.passed,
            restore_time: std::time::Duration::from_secs_f64(record.restore_seconds),
            failed: record.failures().map(|c| c.name.clone()).collect(),
        };
        for s in &self.subscribers {
            s.on_event(&event);
        }
        Ok(record)
    }
}
