//! A repository: the backups stored in one [`Sink`], and what can be done with them without a
//! database (list, look up, delete, re-key, garbage-collect).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use crate::codec::{Transform, TransformSpec, Zstd};
use crate::crypto::Aes256GcmStream;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{DataKey, KdfParams, Key};
use crate::manifest::{self, is_valid_backup_id, manifest_key, Manifest, BACKUPS_PREFIX};
use crate::retention::{Action, BackupSummary, RetentionPlan};
use crate::sink::{PutMode, Sink, SinkExt};

/// The object key of the repository configuration.
pub const CONFIG_KEY: &str = "config";

/// Repository-wide settings, stored in the `config` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Always `dbbackup-repository`.
    pub format: String,
    /// Repository format version.
    pub format_version: u32,
    /// Random id of the repository.
    pub repository_id: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How passphrases become master keys for new backups (each manifest also records its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
}

/// Which backup an operation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupSelector {
    /// The newest committed backup.
    Latest,
    /// A backup by id.
    Id(String),
}

impl FromStr for BackupSelector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "latest" {
            Ok(BackupSelector::Latest)
        } else if is_valid_backup_id(s) {
            Ok(BackupSelector::Id(s.to_owned()))
        } else {
            Err(Error::invalid(format!(
                "{s:?} is not a backup id; use `latest` or an id as printed by `dbbackup list`"
            )))
        }
    }
}

impl fmt::Display for BackupSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupSelector::Latest => f.write_str("latest"),
            BackupSelector::Id(id) => f.write_str(id),
        }
    }
}

/// A factory that rebuilds a custom transform from its manifest parameters.
pub type TransformFactory =
    Arc<dyn Fn(&serde_json::Value) -> Result<Arc<dyn Transform>> + Send + Sync>;

/// What [`Repository::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Keys of objects removed (leftovers of failed or interrupted backups), and the sink's own
    /// leftovers it cleaned.
    pub deleted: Vec<String>,
}

/// What [`Repository::rekey`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RekeyReport {
    /// Backups whose data key is now wrapped by the new key.
    pub rekeyed: Vec<String>,
    /// Backups already under the new key.
    pub already: Vec<String>,
    /// Unencrypted backups (nothing to do).
    pub unencrypted: Vec<String>,
    /// Id of the new master key.
    pub new_key_id: String,
}

/// The backups in one [`Sink`].
#[derive(Debug, Clone)]
pub struct Repository {
    sink: Arc<dyn Sink>,
}

impl Repository {
    /// The repository stored in `sink` (which may be empty).
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Repository { sink }
    }

    /// The underlying storage.
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.sink
    }

    /// The configuration, or `None` for an empty repository.
    ///
    /// # Errors
    /// On storage failure, or [`ErrorKind::Corrupt`] for an unreadable config.
    pub async fn config(&self) -> Result<Option<RepoConfig>> {
        let bytes = match self.sink.get_bytes(CONFIG_KEY).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.with_object(CONFIG_KEY)),
        };
        let cfg: RepoConfig = serde_json::from_slice(&bytes).map_err(|e| {
            Error::corrupt(format!("repository config is unreadable: {e}")).with_object(CONFIG_KEY)
        })?;
        if cfg.format != "dbbackup-repository" {
            return Err(Error::corrupt(format!(
                "this storage holds {:?}, not a dbbackup repository",
                cfg.format
            ))
            .with_object(CONFIG_KEY));
        }
        if cfg.format_version != manifest::FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "repository format version {} is not supported by this build (reads {})",
                    cfg.format_version,
                    manifest::FORMAT_VERSION
                ),
            ));
        }
        Ok(Some(cfg))
    }

    /// Creates the repository config if there is none. `kdf` sets how passphrases are stretched
    /// (default: [`KdfParams::recommended`]). Returns the config in force.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn init(&self, kdf: Option<KdfParams>) -> Result<RepoConfig> {
        if let Some(cfg) = self.config().await? {
            return Ok(cfg);
        }
        let mut id = [0u8; 8];
        crate::keys::random_bytes(&mut id)?;
        let kdf = match kdf {
            Some(k) => k,
            None => KdfParams::recommended()?,
        };
        let cfg = RepoConfig {
            format: "dbbackup-repository".into(),
            format_version: manifest::FORMAT_VERSION,
            repository_id: hex::encode(id),
            created_at: OffsetDateTime::now_utc(),
            kdf: Some(kdf),
        };
        match self.write_config(&cfg, PutMode::Create).await {
            Ok(()) => Ok(cfg),
            // Someone else initialized it first: theirs is in force.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => self
                .config()
                .await?
                .ok_or_else(|| Error::internal("config vanished after a conflicting create")),
            Err(e) => Err(e),
        }
    }

    async fn write_config(&self, cfg: &RepoConfig, mode: PutMode) -> Result<()> {
        let body = serde_json::to_vec_pretty(cfg).expect("config serializes");
        self.sink
            .put_bytes(CONFIG_KEY, Bytes::from(body), mode)
            .await
            .map(|_| ())
            .map_err(|e| e.with_object(CONFIG_KEY))
    }

    /// Every committed backup, oldest first. A damaged manifest is logged and left out (run
    /// `verify` to see it); an unfinished backup has no manifest and never shows.
    ///
    /// # Errors
    /// On storage failure.
    pub async fn list(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for id in self.committed_ids().await? {
            match self.manifest(&id).await {
                Ok(m) => out.push(m),
                Err(e) if e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::Unsupported => {
                    warn!(backup_id = %id, error = %e, "skipping a backup whose manifest cannot be read");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Summaries of every committed backup, oldest first (what retention policies see).
    ///
    /// # Errors
    /// As [`list`](Self::list).
    pub async fn summaries(&self) -> Result<Vec<BackupSummary>> {
        Ok(self.list().await?.iter().map(BackupSummary::from).collect())
    }

    /// Ids of every backup with a manifest object, readable or not, oldest first (`verify --backup
    /// all` uses it so damaged manifests are reported rather than skipped).
    ///
    /// # Errors
    /// On storage failure.
    pub async fn backup_ids(&self) -> Result<Vec<String>> {
        self.committed_ids().await
    }

    async fn committed_ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .sink
            .list(BACKUPS_PREFIX)
            .await?
            .into_iter()
            .filter_map(|o| {
                let rest = o.key.strip_prefix(BACKUPS_PREFIX)?;
                let id = rest.strip_suffix("/MANIFEST")?;
                (is_valid_backup_id(id)).then(|| id.to_owned())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// One backup's manifest (its MAC is checked later, when a key is at hand).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is no committed backup `id`.
    pub async fn manifest(&self, id: &str) -> Result<Manifest> {
        Ok(self.open_manifest(id).await?.manifest)
    }

    pub(crate) async fn open_manifest(&self, id: &str) -> Result<manifest::OpenedManifest> {
        if !is_valid_backup_id(id) {
            return Err(Error::invalid(format!("{id:?} is not a valid backup id")));
        }
        let key = manifest_key(id);
        let bytes = self.sink.get_bytes(&key).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    "no committed backup with this id; `dbbackup list` shows the ones there are",
                )
                .with_backup(id)
            } else {
                e.with_backup(id).with_object(key.clone())
            }
        })?;
        manifest::open(&bytes, id)
    }

    /// The newest committed backup.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for a repository without backups.
    pub async fn latest(&self) -> Result<Manifest> {
        Ok(self.open_selected(&BackupSelector::Latest).await?.manifest)
    }

    pub(crate) async fn open_selected(
        &self,
        sel: &BackupSelector,
    ) -> Result<manifest::OpenedManifest> {
        match sel {
            BackupSelector::Id(id) => self.open_manifest(id).await,
            BackupSelector::Latest => {
                let ids = self.committed_ids().await?;
                // Skip damaged manifests so one bad backup does not hide the others.
                for id in ids.iter().rev() {
                    match self.open_manifest(id).await {
                        Ok(m) => return Ok(m),
                        Err(e) if e.kind() == ErrorKind::Corrupt => {
                            warn!(backup_id = %id, error = %e, "skipping a damaged manifest");
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(Error::new(
                    ErrorKind::NotFound,
                    "the repository holds no committed backup yet",
                ))
            }
        }
    }

    /// Deletes a whole backup: the manifest first (so it stops existing at once), then its objects.
    ///
    /// # Errors
    /// On storage failure; a backup whose manifest is gone is no longer listed even if some objects
    /// remain ([`gc`](Self::gc) removes them).
    pub async fn delete_backup(&self, id: &str) -> Result<()> {
        if !is_valid_backup_id(id) {
            return Err(Error::invalid(format!("{id:?} is not a valid backup id")));
        }
        let mkey = manifest_key(id);
        if !self.sink.exists(&mkey).await? {
            return Err(
                Error::new(ErrorKind::NotFound, "no committed backup with this id").with_backup(id),
            );
        }
        self.sink
            .delete(&mkey)
            .await
            .map_err(|e| e.with_backup(id))?;
        self.delete_prefix(id).await
    }

    async fn delete_prefix(&self, id: &str) -> Result<()> {
        let prefix = format!("{BACKUPS_PREFIX}{id}/");
        for o in self.sink.list(&prefix).await? {
            self.sink
                .delete(&o.key)
                .await
                .map_err(|e| e.with_backup(id).with_object(o.key.clone()))?;
        }
        Ok(())
    }

    /// Best-effort removal of an uncommitted backup's objects after a failure.
    pub(crate) async fn discard_uncommitted(&self, id: &str) {
        if let Ok(true) = self.sink.exists(&manifest_key(id)).await {
            return;
        }
        if let Err(e) = self.delete_prefix(id).await {
            warn!(backup_id = %id, error = %e, "could not remove the objects of a failed backup; `gc` will");
        }
    }

    /// Applies a retention plan: deletes every backup it marks `Delete`, oldest first. Refuses to
    /// delete the newest committed backup whatever the plan says. Returns the ids deleted.
    ///
    /// # Errors
    /// On storage failure (backups deleted before it stay deleted).
    pub async fn apply(&self, plan: &RetentionPlan) -> Result<Vec<String>> {
        let newest = self.committed_ids().await?.pop();
        let mut deleted = Vec::new();
        for d in &plan.decisions {
            if d.action != Action::Delete {
                continue;
            }
            if Some(&d.backup_id) == newest.as_ref() {
                return Err(Error::invalid(format!(
                    "the retention plan deletes {}, the newest backup; refusing",
                    d.backup_id
                )));
            }
            self.delete_backup(&d.backup_id).await?;
            deleted.push(d.backup_id.clone());
        }
        Ok(deleted)
    }

    /// Removes objects of backups that never committed (no manifest) and were last written more
    /// than `grace` before `now`, so a backup still running is never disturbed; then lets the sink
    /// clean its own leftovers ([`Sink::collect_garbage`]: temporary files, stale uploads).
    ///
    /// # Errors
    /// On storage failure.
    pub async fn gc(&self, grace: Duration, now: OffsetDateTime) -> Result<GcReport> {
        let mut groups: BTreeMap<String, Vec<crate::sink::ObjectMeta>> = BTreeMap::new();
        for o in self.sink.list(BACKUPS_PREFIX).await? {
            let Some(rest) = o.key.strip_prefix(BACKUPS_PREFIX) else {
                continue;
            };
            let Some((id, _)) = rest.split_once('/') else {
                continue;
            };
            groups.entry(id.to_owned()).or_default().push(o);
        }
        let cutoff = now - grace;
        let mut report = GcReport::default();
        for (id, objects) in groups {
            if objects.iter().any(|o| o.key.ends_with("/MANIFEST")) {
                continue;
            }
            let old = objects
                .iter()
                .all(|o| o.last_modified.is_some_and(|t| t < cutoff));
            if !old {
                continue;
            }
            for o in objects {
                self.sink
                    .delete(&o.key)
                    .await
                    .map_err(|e| e.with_backup(id.clone()).with_object(o.key.clone()))?;
                report.deleted.push(o.key);
            }
        }
        report
            .deleted
            .extend(self.sink.collect_garbage(grace, now).await?);
        Ok(report)
    }

    /// Re-wraps every encrypted backup's data key from `old` to `new`, rewriting manifests only (no
    /// data object is touched). Safe to re-run after an interruption: backups already under the
    /// new key are skipped, and each manifest carries its own key setup, so every backup opens with
    /// exactly one of the two keys at any moment.
    ///
    /// # Errors
    /// [`ErrorKind::WrongKey`] when `old` does not open a backup (nothing after it is changed).
    pub async fn rekey(&self, old: &Key, new: &Key) -> Result<RekeyReport> {
        let cfg = self.init(None).await?;
        let new_kdf = if new.is_passphrase() {
            let base = cfg
                .kdf
                .clone()
                .map(Ok)
                .unwrap_or_else(KdfParams::recommended)?;
            Some(KdfParams::new(base.m_cost_kib, base.t_cost, base.p_cost)?)
        } else {
            None
        };
        let new_master = {
            let (new, kdf) = (new.clone(), new_kdf.clone());
            blocking(move || new.resolve(kdf.as_ref(), "(new key)")).await?
        };
        let new_id = new_master.key_id();
        let mut report = RekeyReport {
            new_key_id: new_id.clone(),
            ..Default::default()
        };
        for id in self.committed_ids().await? {
            let opened = self.open_manifest(&id).await?;
            let mut m = opened.manifest.clone();
            let Some(info) = m.encryption.clone() else {
                report.unencrypted.push(id);
                continue;
            };
            if info.key_id == new_id {
                report.already.push(id);
                continue;
            }
            let dk = unwrap_data_key(&info, old, &id).await?;
            opened
                .authenticate(&dk)
                .map_err(|e| e.with_backup(id.clone()))?;
            m.encryption = Some(dk.wrap(&new_master, new_kdf.clone(), &id)?);
            let sealed = manifest::seal(&m, Some(&dk))?;
            self.sink
                .put_bytes(&manifest_key(&id), sealed, PutMode::Overwrite)
                .await
                .map_err(|e| e.with_backup(id.clone()))?;
            report.rekeyed.push(id);
        }
        if let Some(kdf) = new_kdf {
            let mut cfg = cfg;
            cfg.kdf = Some(kdf);
            self.write_config(&cfg, PutMode::Overwrite).await?;
        }
        Ok(report)
    }
}

/// Unwraps a backup's data key with `key`, deriving the master key off the async threads (a
/// passphrase derives each Argon2id setup once; see [`Key`]).
pub(crate) async fn unwrap_data_key(
    info: &crate::keys::EncryptionInfo,
    key: &Key,
    backup_id: &str,
) -> Result<DataKey> {
    let (k, kdf, id) = (key.clone(), info.kdf.clone(), backup_id.to_owned());
    let master = blocking(move || k.resolve(kdf.as_ref(), &id))
        .await
        .map_err(|e| e.with_backup(backup_id))?;
    DataKey::unwrap_with(info, &master, key.is_passphrase(), backup_id)
        .map_err(|e| e.with_backup(backup_id))
}

/// Runs CPU-heavy key work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("a blocking task failed: {e}")))?
}

/// Rebuilds a backup's transform chain from its manifest.
pub(crate) fn build_chain(
    specs: &[TransformSpec],
    data_key: Option<&Arc<DataKey>>,
    factories: &HashMap<String, TransformFactory>,
    backup_id: &str,
) -> Result<Vec<Arc<dyn Transform>>> {
    specs
        .iter()
        .map(|spec| -> Result<Arc<dyn Transform>> {
            match spec {
                TransformSpec::Zstd { level, workers } => {
                    Ok(Arc::new(Zstd::new(*level).with_workers(*workers)))
                }
                TransformSpec::Aes256GcmStream { chunk_size } => {
                    let key = data_key.ok_or_else(|| {
                        Error::corrupt(
                            "the chain has AES-GCM but the manifest has no encryption section",
                        )
                    })?;
                    Ok(Arc::new(Aes256GcmStream::new(key.clone(), *chunk_size)?))
                }
                TransformSpec::Custom { name, params } => {
                    let f = factories.get(name).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "the backup uses the custom transform {name:?}; register a factory \
                                 for it before restoring"
                            ),
                        )
                    })?;
                    f(params)
                }
            }
        })
        .collect::<Result<Vec<_>>>()
        .map_err(|e| e.with_backup(backup_id))
}
