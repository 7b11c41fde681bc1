//! Restore tests: a backup restored into a scratch database and checked there, and the result
//! recorded beside the backup (`backups/<id>/tests/<time>`), sealed like its manifest, so that
//! `list`, `status` and monitoring can say when each backup was last proven restorable and how
//! long the restore took (the measured recovery time).
//!
//! The engines provide the scratch side ([`ScratchServer`], [`ScratchDatabase`]); the service
//! layer runs the test. A record is part of its backup: deleting the backup deletes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{self, Manifest, TableRef, BACKUPS_PREFIX, FORMAT_VERSION};
use crate::repo::{BackupSelector, Repository};
use crate::restore::RestoreTarget;
use crate::sink::{PutMode, SinkExt};

/// The largest restore-test record read.
const MAX_RECORD_BYTES: u64 = 16 << 20;

/// How one check of a restore test came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// It held.
    Passed,
    /// It did not: the test fails.
    Failed,
    /// It could not run here (e.g. `amcheck` is not installed); said, never counted as passed.
    Skipped,
}

/// One check of a restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked: `restore`, `rows public.orders`, `integrity`, `check 1`, `cleanup`.
    pub name: String,
    /// How it came out.
    pub status: CheckStatus,
    /// What was found, in words (the counts, the engine's message, the query).
    pub detail: String,
}

impl CheckResult {
    /// A check that held.
    pub fn passed(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.into(),
            status: CheckStatus::Passed,
            detail: detail.into(),
        }
    }

    /// A check that failed.
    pub fn failed(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.into(),
            status: CheckStatus::Failed,
            detail: detail.into(),
        }
    }

    /// A check that could not run.
    pub fn skipped(name: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            name: name.into(),
            status: CheckStatus::Skipped,
            detail: detail.into(),
        }
    }
}

/// The sealed result of one restore test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTestRecord {
    /// Always `dbbackup-restore-test`.
    pub format: String,
    /// The repository format version.
    pub format_version: u32,
    /// The backup tested.
    pub backup_id: String,
    /// When the test started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended (the scratch database dropped).
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// How long the restore itself took, in seconds: the measured recovery time.
    pub restore_seconds: f64,
    /// Whether every check passed (skipped ones do not fail a test).
    pub passed: bool,
    /// Every check, in the order run.
    pub checks: Vec<CheckResult>,
    /// Where it ran (the scratch server, password redacted).
    pub scratch: String,
    /// The dbbackup version that ran it.
    pub tool_version: String,
}

impl RestoreTestRecord {
    /// A record for `backup_id` started at `started_at`, not yet finished.
    pub fn new(backup_id: &str, scratch: &str, started_at: OffsetDateTime) -> Self {
        RestoreTestRecord {
            format: "dbbackup-restore-test".into(),
            format_version: FORMAT_VERSION,
            backup_id: backup_id.to_owned(),
            started_at,
            finished_at: started_at,
            restore_seconds: 0.0,
            passed: false,
            checks: Vec::new(),
            scratch: scratch.to_owned(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
    }
}

/// The restore tests recorded for one backup.
#[derive(Debug, Clone, Default)]
pub struct RestoreTests {
    /// Records that authenticate, oldest first.
    pub records: Vec<RestoreTestRecord>,
    /// Records that do not (damaged, or not sealed by the backup's key), with why: never
    /// believed, always shown.
    pub refused: Vec<(String, String)>,
}

impl RestoreTests {
    /// The newest trusted record.
    pub fn last(&self) -> Option<&RestoreTestRecord> {
        self.records.last()
    }

    /// The newest trusted record that passed.
    pub fn last_passed(&self) -> Option<&RestoreTestRecord> {
        self.records.iter().rev().find(|r| r.passed)
    }
}

/// A database server where restore tests create their scratch databases (a PostgreSQL or MySQL
/// server, a directory for SQLite files).
#[async_trait]
pub trait ScratchServer: Send + Sync {
    /// Where, for messages and records (no password).
    fn describe(&self) -> String;

    /// Creates a new, uniquely named, empty scratch database for restoring `manifest`'s backup.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the backup is of another engine; connection errors.
    async fn create(&self, manifest: &Manifest) -> Result<Box<dyn ScratchDatabase>>;
}

/// One scratch database: restored into, checked, then dropped.
#[async_trait]
pub trait ScratchDatabase: Send + Sync {
    /// Its name (a database name, a file).
    fn name(&self) -> String;

    /// The restore target that restores into it.
    fn target(&self) -> Arc<dyn RestoreTarget>;

    /// Counts the rows of `table` as restored.
    ///
    /// # Errors
    /// When the table is not there or cannot be read.
    async fn count_rows(&self, table: &TableRef) -> Result<u64>;

    /// The engine's own integrity checks on the restored database (SQLite `integrity_check`,
    /// PostgreSQL `amcheck`, MySQL `CHECK TABLE`); [`CheckStatus::Skipped`] where unavailable.
    ///
    /// # Errors
    /// When the checks cannot be run at all (the connection failed).
    async fn integrity(&self, manifest: &Manifest) -> Result<Vec<CheckResult>>;

    /// Runs a user's query, which must return one row whose first column is true.
    ///
    /// # Errors
    /// When the query fails or returns no row or no truth value.
    async fn query_is_true(&self, sql: &str) -> Result<bool>;

    /// Drops the database (also when the restore failed half-way).
    ///
    /// # Errors
    /// When it could not be dropped (the caller reports it as a failed `cleanup` check).
    async fn drop_database(self: Box<Self>) -> Result<()>;
}

/// The error of a user check that returned no row.
pub fn check_returned_no_row() -> Error {
    Error::new(
        ErrorKind::Target,
        "the check returned no row (it must return one row whose first column is true)",
    )
}

/// The error of a user check whose first column is not a truth value.
pub fn check_not_a_truth_value() -> Error {
    Error::new(
        ErrorKind::Target,
        "the check's first column is not a truth value (return e.g. `count(*) > 0`)",
    )
}

/// Rows recorded per table at backup time: `(table, rows)` summed over a table's entries, for
/// the tables whose entries recorded a count.
pub fn recorded_rows(manifest: &Manifest) -> BTreeMap<String, (TableRef, u64)> {
    let mut out: BTreeMap<String, (TableRef, u64)> = BTreeMap::new();
    for e in &manifest.entries {
        let (Some(rows), Some(_)) = (e.rows, e.table()) else {
            continue;
        };
        let Ok(t) = e.meta_of::<TableRef>() else {
            continue;
        };
        out.entry(t.table.clone())
            .and_modify(|(_, n)| *n += rows)
            .or_insert((t, rows));
    }
    out
}

/// A new, unique name for a scratch database: `dbbackup_test_<utc time>_<random>`, lowercase
/// letters, digits and `_` (safe unquoted in every engine, 42 characters).
///
/// # Errors
/// When the OS random generator fails.
pub fn scratch_database_name() -> Result<String> {
    let id = manifest::new_backup_id(OffsetDateTime::now_utc())?;
    let clean: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    Ok(format!("dbbackup_test_{clean}"))
}

fn tests_prefix(backup_id: &str) -> String {
    format!("{BACKUPS_PREFIX}{backup_id}/tests/")
}

/// A record's object name: its start time to the millisecond, sortable.
fn record_name(at: OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

impl Repository {
    /// Stores `record` beside its backup, sealed with the backup's key (its MAC made with the
    /// backup's data key when the backup is encrypted). The backup must be trusted.
    ///
    /// # Errors
    /// As [`manifest`](Self::manifest) for the backup; storage errors;
    /// [`ErrorKind::AlreadyExists`] for a second record with the same start time.
    pub async fn record_restore_test(&self, record: &RestoreTestRecord) -> Result<String> {
        let (trusted, _) = self
            .open_trusted(&BackupSelector::Id(record.backup_id.clone()))
            .await?;
        let body = serde_json::to_vec(record)
            .map_err(|e| Error::internal(format!("restore-test record serialization: {e}")))?;
        let mac = trusted
            .data_key
            .as_ref()
            .map(|k| blake3::keyed_hash(&k.mac_key(), &body));
        let key = format!(
            "{}{}",
            tests_prefix(&record.backup_id),
            record_name(record.started_at)
        );
        self.sink()
            .put_bytes(&key, manifest::sealed_object(body, mac), PutMode::Create)
            .await
            .map_err(|e| {
                e.with_backup(record.backup_id.clone())
                    .with_object(key.clone())
            })?;
        Ok(key)
    }

    /// The restore tests recorded for `backup_id`, each checked against the backup's seal: a
    /// record of an encrypted backup needs a MAC made with its data key, and every record must
    /// name its backup. Records that fail are returned as refused, never believed.
    ///
    /// # Errors
    /// As [`manifest`](Self::manifest) for the backup; storage errors.
    pub async fn restore_tests(&self, backup_id: &str) -> Result<RestoreTests> {
        let mut keys: Vec<String> = self
            .sink()
            .list(&tests_prefix(backup_id))
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        keys.sort();
        self.read_tests(backup_id, &keys, usize::MAX).await
    }

    /// The newest trusted restore-test record of every backup that has one, from one listing
    /// of the repository (for `list`, `status`, `check` and metrics). Backups the key does not
    /// open are left out.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn latest_restore_tests(&self) -> Result<BTreeMap<String, RestoreTestRecord>> {
        let listing = self.sink().list(BACKUPS_PREFIX).await?;
        self.latest_restore_tests_in(&listing).await
    }

    /// [`latest_restore_tests`](Self::latest_restore_tests) from a listing of `backups/` already
    /// made.
    pub(crate) async fn latest_restore_tests_in(
        &self,
        listing: &[crate::sink::ObjectMeta],
    ) -> Result<BTreeMap<String, RestoreTestRecord>> {
        let mut by_backup: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for o in listing {
            let Some(rest) = o.key.strip_prefix(BACKUPS_PREFIX) else {
                continue;
            };
            if let Some((id, _)) = rest.split_once("/tests/") {
                by_backup
                    .entry(id.to_owned())
                    .or_default()
                    .push(o.key.clone());
            }
        }
        let mut out = BTreeMap::new();
        for (id, mut keys) in by_backup {
            keys.sort();
            match self.read_tests(&id, &keys, 1).await {
                Ok(t) => {
                    if let Some(r) = t.records.into_iter().last() {
                        out.insert(id, r);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Io || e.kind() == ErrorKind::Sink => {
                    return Err(e)
                }
                Err(_) => {}
            }
        }
        Ok(out)
    }

    /// Reads the records under `keys` (sorted), newest first, until `want` trusted ones.
    async fn read_tests(
        &self,
        backup_id: &str,
        keys: &[String],
        want: usize,
    ) -> Result<RestoreTests> {
        let (trusted, _) = self
            .open_trusted(&BackupSelector::Id(backup_id.to_owned()))
            .await?;
        let mut out = RestoreTests::default();
        for key in keys.iter().rev() {
            if out.records.len() >= want {
                break;
            }
            let bytes = match self.sink().get_bytes_limited(key, MAX_RECORD_BYTES).await {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.with_object(key.clone())),
            };
            let checked = (|| {
                let (body, seal) = manifest::open_sealed(&bytes, "restore-test record")?;
                let record: RestoreTestRecord = serde_json::from_slice(&body).map_err(|e| {
                    Error::corrupt(format!("the restore-test record is unreadable: {e}"))
                })?;
                if record.format != "dbbackup-restore-test" || record.backup_id != backup_id {
                    return Err(Error::corrupt(format!(
                        "the record describes backup {} (moved or replaced)",
                        record.backup_id
                    )));
                }
                if let Some(k) = &trusted.data_key {
                    let want = blake3::keyed_hash(&k.mac_key(), &body);
                    if !seal
                        .mac
                        .as_deref()
                        .is_some_and(|m| manifest::mac_matches(m, &want))
                    {
                        return Err(Error::corrupt(
                            "the record is not sealed by the backup's key (no MAC or a MAC \
                             mismatch): it was altered or planted",
                        ));
                    }
                }
                Ok(record)
            })();
            match checked {
                Ok(r) => out.records.push(r),
                Err(e) => out.refused.push((key.clone(), e.to_string())),
            }
        }
        out.records.sort_by_key(|r| r.started_at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_sort_by_time() {
        let a = record_name(time::macros::datetime!(2026-01-02 03:04:05.678 UTC));
        let b = record_name(time::macros::datetime!(2026-01-02 03:04:06 UTC));
        assert_eq!(a, "20260102T030405.678Z");
        assert!(a < b);
    }
}
