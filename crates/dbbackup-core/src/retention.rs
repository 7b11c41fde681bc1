//! Retention: which backups to keep. A policy is a pure function of the committed backups and
//! `now`; the clock is a parameter, never read inside.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Result;
use crate::manifest::Manifest;

/// What a policy sees of one committed backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    /// Backup id.
    pub backup_id: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Engine name.
    pub engine: String,
    /// Database name.
    pub database: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Parent backup, if any.
    pub parent: Option<String>,
    /// Plaintext bytes.
    pub raw_size: u64,
    /// Stored bytes.
    pub stored_size: u64,
    /// Number of entries.
    pub entries: usize,
}

impl From<&Manifest> for BackupSummary {
    fn from(m: &Manifest) -> Self {
        BackupSummary {
            backup_id: m.backup_id.clone(),
            started_at: m.started_at,
            finished_at: m.finished_at,
            engine: m.source.engine.clone(),
            database: m.source.database.clone(),
            labels: m.labels.clone(),
            parent: m.parent.clone(),
            raw_size: m.raw_size(),
            stored_size: m.stored_size(),
            entries: m.entries.len(),
        }
    }
}

/// Keep or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The backup stays.
    Keep,
    /// The backup is removed when the plan is applied.
    Delete,
}

/// The decision about one backup, with every reason for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Backup id.
    pub backup_id: String,
    /// Keep or delete.
    pub action: Action,
    /// Why: every rule that keeps it (e.g. `keep-daily 7: 2026-11-20`), or why it goes.
    pub reasons: Vec<String>,
}

/// A policy's output: one decision per backup given, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    /// The decisions.
    pub decisions: Vec<Decision>,
}

impl RetentionPlan {
    /// Ids of backups the plan deletes.
    pub fn to_delete(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| d.action == Action::Delete)
            .map(|d| d.backup_id.as_str())
    }

    /// Ids of backups the plan keeps.
    pub fn to_keep(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| d.action == Action::Keep)
            .map(|d| d.backup_id.as_str())
    }
}

/// Decides which backups to keep.
pub trait RetentionPolicy: Send + Sync {
    /// Plans keep/delete for `backups` (committed backups, any order) as of `now`. Must be
    /// deterministic: the same input gives the same plan.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a policy that cannot be
    /// applied (e.g. one with no rule at all).
    fn plan(&self, backups: &[BackupSummary], now: OffsetDateTime) -> Result<RetentionPlan>;
}
