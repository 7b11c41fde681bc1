//! Hooks: what runs before a job's run, after it, and when it fails.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dbbackup_core::{Error, ErrorKind, Result};
use futures::future::BoxFuture;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookStage {
    /// Before the run; a failure aborts it with the hook's message.
    Before,
    /// After a successful run.
    After,
    /// After a failed run.
    OnFailure,
}

impl HookStage {
    /// `before`, `after` or `on-failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookStage::Before => "before",
            HookStage::After => "after",
            HookStage::OnFailure => "on-failure",
        }
    }
}

/// What a hook is told about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    /// The job's name.
    pub job: String,
    /// `backup`, `prune` or `verify`.
    pub operation: String,
    /// When the hook runs.
    pub stage: HookStage,
    /// `running` (before), `succeeded` or `failed`.
    pub status: String,
    /// The backup made or checked (after and on failure, when there is one).
    pub backup_id: Option<String>,
    /// Plaintext bytes of the backup.
    pub raw_bytes: u64,
    /// Stored bytes of the backup.
    pub stored_bytes: u64,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Why the run failed.
    pub error: Option<String>,
}

impl HookContext {
    /// The context as environment variables: `DBBACKUP_JOB`, `DBBACKUP_OPERATION`,
    /// `DBBACKUP_HOOK`, `DBBACKUP_STATUS`, `DBBACKUP_BACKUP_ID`, `DBBACKUP_RAW_BYTES`,
    /// `DBBACKUP_STORED_BYTES`, `DBBACKUP_DURATION_SECONDS`, `DBBACKUP_ERROR` (empty when none).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DBBACKUP_JOB", self.job.clone()),
            ("DBBACKUP_OPERATION", self.operation.clone()),
            ("DBBACKUP_HOOK", self.stage.as_str().to_owned()),
            ("DBBACKUP_STATUS", self.status.clone()),
            (
                "DBBACKUP_BACKUP_ID",
                self.backup_id.clone().unwrap_or_default(),
            ),
            ("DBBACKUP_RAW_BYTES", self.raw_bytes.to_string()),
            ("DBBACKUP_STORED_BYTES", self.stored_bytes.to_string()),
            (
                "DBBACKUP_DURATION_SECONDS",
                format!("{:.3}", self.elapsed.as_secs_f64()),
            ),
            ("DBBACKUP_ERROR", self.error.clone().unwrap_or_default()),
        ]
    }
}

/// A hook: an async function of the run's context. An error from a `before` hook aborts the
/// run with its message.
pub type Hook = Arc<dyn Fn(HookContext) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A hook from an async closure.
pub fn hook<F, Fut>(f: F) -> Hook
where
    F: Fn(HookContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    Arc::new(move |c| Box::pin(f(c)))
}

/// A hook that runs `command` with `sh -c`, the context in its environment
/// ([`HookContext::env`]), stdin closed. A non-zero exit is an error carrying the end of its
/// stderr; the process is killed when the hook's time limit passes.
pub fn command_hook(command: impl Into<String>) -> Hook {
    let command: String = command.into();
    Arc::new(move |c: HookContext| {
        let command = command.clone();
        Box::pin(async move {
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .envs(c.env())
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("cannot run the {} hook {command:?}: {e}", c.stage.as_str()),
                    )
                })?;
            if out.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.trim_end().lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(Error::new(
                ErrorKind::Source,
                format!(
                    "the {} hook {command:?} failed ({}){}",
                    c.stage.as_str(),
                    out.status,
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", tail.join(" / "))
                    }
                ),
            ))
        })
    })
}
