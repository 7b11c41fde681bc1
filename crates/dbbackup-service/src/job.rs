//! Jobs: a named backup flow with its retention, hooks and schedules, and one run of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbbackup_core::{
    plan_grouped, BackupBuilder, BackupSelector, Error, ErrorKind, Event, GroupBy, KeepPolicy,
    Repository, Result, ScratchServer, Subscriber, Verify,
};
use tokio_util::sync::CancellationToken;

use crate::hooks::{Hook, HookContext, HookStage};
use crate::schedule::Schedule;

/// What a job's run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobOperation {
    /// A backup, then the job's retention when it has one.
    Backup,
    /// The job's retention alone.
    Prune,
    /// Verify the newest backup (every object read, every checksum and tag checked).
    Verify,
    /// Restore-test the newest backup ([`RestoreTest`](crate::RestoreTest)) on the job's
    /// scratch server; a failed check fails the run.
    RestoreTest,
}

impl JobOperation {
    /// `backup`, `prune`, `verify` or `restore-test`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOperation::Backup => "backup",
            JobOperation::Prune => "prune",
            JobOperation::Verify => "verify",
            JobOperation::RestoreTest => "restore-test",
        }
    }
}

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its schedule came due.
    Schedule,
    /// On start, the newest backup was older than the schedule's interval.
    CatchUp,
    /// [`JobHandle::run_now`](crate::JobHandle::run_now) or a one-off run.
    Manual,
}

impl Trigger {
    /// `schedule`, `catch-up` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
            Trigger::Manual => "manual",
        }
    }
}

/// A job's retention: what a prune deletes.
#[async_trait::async_trait]
pub trait Prune: Send + Sync {
    /// Applies the retention to `repo`; returns the ids of the deleted backups.
    async fn prune(&self, repo: &Repository) -> Result<Vec<String>>;
}

/// Retention by keep rules ([`KeepPolicy`]), per group of backups ([`GroupBy`]); what
/// `dbbackup prune` does for backups (log archives are the command line's).
#[derive(Debug, Clone)]
pub struct KeepRetention {
    /// The keep rules.
    pub policy: KeepPolicy,
    /// How backups are grouped before the rules apply.
    pub group_by: GroupBy,
}

#[async_trait::async_trait]
impl Prune for KeepRetention {
    async fn prune(&self, repo: &Repository) -> Result<Vec<String>> {
        let catalog = repo.catalog().await?;
        repo.require_key_for_retention(&catalog)?;
        let plan = plan_grouped(
            &self.policy,
            &catalog.summaries(),
            &self.group_by,
            time::OffsetDateTime::now_utc(),
        )?;
        repo.apply(&plan).await
    }
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// The job.
    pub job: String,
    /// What ran.
    pub operation: JobOperation,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The backup made or verified.
    pub backup_id: Option<String>,
    /// Plaintext bytes.
    pub raw_bytes: u64,
    /// Stored bytes.
    pub stored_bytes: u64,
    /// Backups the retention deleted.
    pub pruned: Vec<String>,
    /// Wall time, hooks included.
    pub elapsed: Duration,
    /// Why it failed.
    pub error: Option<String>,
    /// A restore test's restore time (the measured recovery time).
    pub restore_time: Option<Duration>,
}

impl JobOutcome {
    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }
}

/// A named, complete backup flow: the backup (source, repository, transforms, key, labels) as
/// a [`BackupBuilder`], its retention, hooks and schedules. Each run builds its backup from a
/// clone of the builder, labelled `job=<name>`.
#[derive(Clone)]
pub struct Job {
    pub(crate) name: String,
    backup: BackupBuilder,
    repository: Repository,
    pub(crate) schedules: Vec<(JobOperation, Schedule)>,
    retention: Option<Arc<dyn Prune>>,
    before: Option<Hook>,
    after: Option<Hook>,
    on_failure: Option<Hook>,
    hook_timeout: Duration,
    pub(crate) jitter: Duration,
    pub(crate) catch_up: bool,
    restore_test: Option<RestoreTestSpec>,
}

/// Where and how a job's restore tests run.
#[derive(Clone)]
struct RestoreTestSpec {
    scratch: Arc<dyn ScratchServer>,
    checks: Vec<String>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("schedules", &self.schedules)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Job`].
pub struct JobBuilder {
    name: String,
    backup: Option<BackupBuilder>,
    schedules: Vec<(JobOperation, Schedule)>,
    retention: Option<Arc<dyn Prune>>,
    before: Option<Hook>,
    after: Option<Hook>,
    on_failure: Option<Hook>,
    hook_timeout: Duration,
    jitter: Duration,
    catch_up: bool,
    restore_test: Option<RestoreTestSpec>,
}

impl Job {
    /// A builder for the job called `name` (letters, digits, `.`, `_`, `-`).
    pub fn builder(name: impl Into<String>) -> JobBuilder {
        JobBuilder {
            name: name.into(),
            backup: None,
            schedules: Vec::new(),
            retention: None,
            before: None,
            after: None,
            on_failure: None,
            hook_timeout: Duration::from_secs(300),
            jitter: Duration::ZERO,
            catch_up: true,
            restore_test: None,
        }
    }

    /// Whether `name` can name a job: letters, digits, `.`, `_`, `-`, not empty (it labels the
    /// job's backups and metrics).
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The repository its backups go to.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// When its newest backup finished, read from the repository (`None`: it has none yet).
    ///
    /// # Errors
    /// The repository cannot be read.
    pub async fn last_backup(&self) -> Result<Option<time::OffsetDateTime>> {
        let catalog = match self.repository.catalog().await {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(catalog
            .summaries()
            .into_iter()
            .filter(|s| s.labels.get("job").map(String::as_str) == Some(self.name.as_str()))
            .map(|s| s.finished_at)
            .max())
    }

    async fn hook(&self, h: &Option<Hook>, ctx: HookContext) -> Result<()> {
        let Some(h) = h else { return Ok(()) };
        let stage = ctx.stage;
        match tokio::time::timeout(self.hook_timeout, h(ctx)).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Source,
                format!(
                    "the {} hook of job {} did not finish within {:?}",
                    stage.as_str(),
                    self.name,
                    self.hook_timeout
                ),
            )),
        }
    }

    /// Runs `op` once now: the `before` hook, the operation (a backup is followed by the
    /// retention), then `after` or `on_failure`; reported to `subscribers` as
    /// [`Event::JobStarted`] and [`Event::JobFinished`] with the backup's own events between.
    /// Cancelling `cancel` cancels the backup cleanly (nothing committed).
    pub async fn run(
        &self,
        op: JobOperation,
        trigger: Trigger,
        cancel: CancellationToken,
        subscribers: &[Arc<dyn Subscriber>],
    ) -> JobOutcome {
        let emit = |e: Event| {
            for s in subscribers {
                s.on_event(&e);
            }
        };
        emit(Event::JobStarted {
            job: self.name.clone(),
            operation: op.as_str().to_owned(),
            trigger: trigger.as_str().to_owned(),
        });
        let t0 = Instant::now();
        let mut out = JobOutcome {
            job: self.name.clone(),
            operation: op,
            status: "succeeded".into(),
            backup_id: None,
            raw_bytes: 0,
            stored_bytes: 0,
            pruned: Vec::new(),
            elapsed: Duration::ZERO,
            error: None,
            restore_time: None,
        };
        let ctx = |out: &JobOutcome, stage: HookStage| HookContext {
            job: self.name.clone(),
            operation: op.as_str().to_owned(),
            stage,
            status: if stage == HookStage::Before {
                "running".into()
            } else {
                out.status.clone()
            },
            backup_id: out.backup_id.clone(),
            raw_bytes: out.raw_bytes,
            stored_bytes: out.stored_bytes,
            elapsed: t0.elapsed(),
            error: out.error.clone(),
        };
        let cancelled = || Err(Error::new(ErrorKind::Cancelled, "cancelled"));
        let before = tokio::select! {
            r = self.hook(&self.before, ctx(&out, HookStage::Before)) => r,
            _ = cancel.cancelled() => cancelled(),
        };
        let result = match before {
            Err(e) if e.kind() == ErrorKind::Cancelled => Err(e),
            Err(e) => Err(Error::new(
                e.kind(),
                format!("the before hook aborted the run: {e}"),
            )),
            Ok(()) => tokio::select! {
                r = self.operation(op, &cancel, subscribers, &mut out) => r,
                _ = cancel.cancelled() => cancelled(),
            },
        };
        match result {
            Ok(()) => {
                if let Err(e) = self.hook(&self.after, ctx(&out, HookStage::After)).await {
                    out.status = "failed".into();
                    out.error = Some(e.to_string());
                }
            }
            Err(e) => {
                out.status = if e.kind() == ErrorKind::Cancelled || cancel.is_cancelled() {
                    "cancelled".into()
                } else {
                    "failed".into()
                };
                out.error = Some(e.to_string());
            }
        }
        if !out.succeeded() {
            if let Err(e) = self
                .hook(&self.on_failure, ctx(&out, HookStage::OnFailure))
                .await
            {
                let first = out.error.take().unwrap_or_default();
                out.error = Some(format!("{first}; then {e}"));
            }
        }
        out.elapsed = t0.elapsed();
        emit(Event::JobFinished {
            job: self.name.clone(),
            operation: op.as_str().to_owned(),
            status: out.status.clone(),
            backup_id: out.backup_id.clone(),
            raw_bytes: out.raw_bytes,
            stored_bytes: out.stored_bytes,
            pruned: out.pruned.clone(),
            elapsed: out.elapsed,
            error: out.error.clone(),
            restore_time: out.restore_time,
        });
        out
    }

    async fn operation(
        &self,
        op: JobOperation,
        cancel: &CancellationToken,
        subscribers: &[Arc<dyn Subscriber>],
        out: &mut JobOutcome,
    ) -> Result<()> {
        match op {
            JobOperation::Backup => {
                let mut b = self
                    .backup
                    .clone()
                    .label("job", self.name.clone())
                    .cancel_token(cancel.child_token());
                for s in subscribers {
                    let s = s.clone();
                    b = b.subscribe(move |e: &Event| s.on_event(e));
                }
                let report = b.build()?.run().await?;
                out.backup_id = Some(report.backup_id().to_owned());
                out.raw_bytes = report.manifest.raw_size();
                out.stored_bytes = report.manifest.stored_size();
                if let Some(r) = &self.retention {
                    out.pruned = r.prune(&self.repository).await.map_err(|e| {
                        Error::new(
                            e.kind(),
                            format!(
                                "backup {} committed, but the prune after it failed: {e}",
                                report.backup_id()
                            ),
                        )
                    })?;
                }
                Ok(())
            }
            JobOperation::Prune => {
                let r = self.retention.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("job {} has no retention to prune with", self.name),
                    )
                })?;
                out.pruned = r.prune(&self.repository).await?;
                Ok(())
            }
            JobOperation::Verify => {
                let mut v = Verify::builder()
                    .sink(self.repository.sink().clone())
                    .backup(BackupSelector::Latest)
                    .allow_unencrypted(self.repository.allows_unencrypted());
                if let Some(k) = self.repository.key() {
                    v = v.key(k.clone());
                }
                for s in subscribers {
                    let s = s.clone();
                    v = v.subscribe(move |e: &Event| s.on_event(e));
                }
                let report = v.build()?.run().await?;
                out.backup_id = Some(report.backup_id);
                out.raw_bytes = report.raw_bytes;
                out.stored_bytes = report.stored_bytes;
                Ok(())
            }
            JobOperation::RestoreTest => {
                let spec = self.restore_test.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("job {} has no scratch server for restore tests", self.name),
                    )
                })?;
                let mut t = crate::RestoreTest::new(self.repository.clone(), spec.scratch.clone())
                    .cancel_token(cancel.child_token());
                for c in &spec.checks {
                    t = t.check(c.clone());
                }
                for s in subscribers {
                    t = t.subscribe(s.clone());
                }
                let record = t.run().await?;
                out.backup_id = Some(record.backup_id.clone());
                out.restore_time = Some(Duration::from_secs_f64(record.restore_seconds));
                if !record.passed {
                    let failed: Vec<String> = record
                        .failures()
                        .map(|c| format!("{}: {}", c.name, c.detail))
                        .collect();
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "the restore test of backup {} failed: {}",
                            record.backup_id,
                            failed.join("; ")
                        ),
                    ));
                }
                Ok(())
            }
        }
    }
}

impl JobBuilder {
    /// The backup each run makes (its sink is the job's repository).
    pub fn backup(mut self, b: BackupBuilder) -> Self {
        self.backup = Some(b);
        self
    }

    /// When the backup runs.
    pub fn schedule(self, s: Schedule) -> Self {
        self.schedule_for(JobOperation::Backup, s)
    }

    /// When `op` runs (a job may verify or prune on schedules of their own).
    pub fn schedule_for(mut self, op: JobOperation, s: Schedule) -> Self {
        self.schedules.retain(|(o, _)| *o != op);
        self.schedules.push((op, s));
        self
    }

    /// The retention applied after each successful backup and by prune runs.
    pub fn retention(mut self, r: impl Prune + 'static) -> Self {
        self.retention = Some(Arc::new(r));
        self
    }

    /// Keep rules as the retention (grouped by source, as `dbbackup prune` does).
    pub fn keep(self, policy: KeepPolicy) -> Self {
        self.retention(KeepRetention {
            policy,
            group_by: GroupBy::default(),
        })
    }

    /// Where restore-test runs restore the newest backup, and the queries that must hold on it
    /// (see [`RestoreTest`](crate::RestoreTest)); schedule them with
    /// `schedule_for(JobOperation::RestoreTest, ..)`.
    pub fn restore_test(mut self, scratch: Arc<dyn ScratchServer>, checks: Vec<String>) -> Self {
        self.restore_test = Some(RestoreTestSpec { scratch, checks });
        self
    }

    /// Runs before each run; an error aborts the run with its message.
    pub fn before(mut self, h: Hook) -> Self {
        self.before = Some(h);
        self
    }

    /// Runs after each successful run.
    pub fn after(mut self, h: Hook) -> Self {
        self.after = Some(h);
        self
    }

    /// Runs after each failed run.
    pub fn on_failure(mut self, h: Hook) -> Self {
        self.on_failure = Some(h);
        self
    }

    /// How long a hook may take (default 5 minutes); past it the hook fails.
    pub fn hook_timeout(mut self, d: Duration) -> Self {
        self.hook_timeout = d;
        self
    }

    /// Each scheduled run starts up to this much later, at random (default none), so that a
    /// fleet of services does not hit one server at the same second.
    pub fn jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }

    /// Whether a job whose newest backup is older than its schedule's interval runs once when
    /// the scheduler starts (default yes).
    pub fn catch_up(mut self, yes: bool) -> Self {
        self.catch_up = yes;
        self
    }

    /// Validates the job.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad name, a missing backup or sink, a prune schedule
    /// without retention, or a jitter not shorter than a schedule's interval.
    pub fn build(self) -> Result<Job> {
        let bad = |m: String| Err(Error::new(ErrorKind::InvalidInput, m));
        let name = self.name;
        if !Job::valid_name(&name) {
            return bad(format!(
                "job name {name:?}: use letters, digits, '.', '_' and '-' (it labels the job's \
                 backups and metrics)"
            ));
        }
        let Some(backup) = self.backup else {
            return bad(format!("job {name}: no backup given (JobBuilder::backup)"));
        };
        let Some(repository) = backup.repository() else {
            return bad(format!("job {name}: its backup has no sink (repository)"));
        };
        if self.retention.is_none()
            && self
                .schedules
                .iter()
                .any(|(o, _)| *o == JobOperation::Prune)
        {
            return bad(format!(
                "job {name}: a prune schedule needs retention (keep rules)"
            ));
        }
        if self.restore_test.is_none()
            && self
                .schedules
                .iter()
                .any(|(o, _)| *o == JobOperation::RestoreTest)
        {
            return bad(format!(
                "job {name}: a restore-test schedule needs a scratch server (JobBuilder::restore_test)"
            ));
        }
        let now = time::OffsetDateTime::now_utc();
        for (op, s) in &self.schedules {
            if let Some(i) = s.interval_after(now) {
                if self.jitter >= i {
                    return bad(format!(
                        "job {name}: jitter {:?} is not shorter than the {} schedule's interval \
                         {i:?}",
                        self.jitter,
                        op.as_str()
                    ));
                }
            }
        }
        Ok(Job {
            name,
            backup,
            repository,
            schedules: self.schedules,
            retention: self.retention,
            before: self.before,
            after: self.after,
            on_failure: self.on_failure,
            hook_timeout: self.hook_timeout,
            jitter: self.jitter,
            catch_up: self.catch_up,
            restore_test: self.restore_test,
        })
    }
}
