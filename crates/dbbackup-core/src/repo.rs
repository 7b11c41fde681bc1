//! A repository: the backups stored in one [`Sink`], and what can be done with them without a
//! database (list, look up, delete, re-key, garbage-collect).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use crate::codec::{Transform, TransformSpec, Zstd};
use crate::crypto::Aes256GcmStream;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{DataKey, KdfParams, Key, MasterKey};
use crate::manifest::{self, is_valid_backup_id, manifest_key, Manifest, BACKUPS_PREFIX};
use crate::retention::{Action, BackupSummary, RetentionPlan};
use crate::sink::{PutMode, Sink, SinkExt};

/// The object key of the repository configuration.
pub const CONFIG_KEY: &str = "config";

/// The largest repository config read.
const MAX_CONFIG_BYTES: u64 = 64 << 10;

/// Repository-wide settings, stored in the `config` object: a JSON body and a seal line (its
/// BLAKE3 and, once the repository is encrypted, a MAC under the repository's master key).
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
    /// The id of the master key that seals the repository: set by the first encrypted backup,
    /// changed by `rekey`. The config's MAC is keyed from that master key, which binds the
    /// Argon2id parameters above to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl RepoConfig {
    /// Whether the repository is encrypted (its config is sealed by a master key).
    pub fn is_encrypted(&self) -> bool {
        self.key_id.is_some()
    }
}

/// The config as stored: parsed, with what its MAC covers.
struct StoredConfig {
    config: RepoConfig,
    body: Bytes,
    mac: Option<String>,
}

/// Which backup an operation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupSelector {
    /// The newest backup that authenticates (by its sealed `finished_at`).
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
    /// Backups left alone because they are running (their lease is fresh).
    pub running: Vec<String>,
}

/// What [`Repository::rekey`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RekeyReport {
    /// Backups whose data key is now wrapped by the new key.
    pub rekeyed: Vec<String>,
    /// Backups already under the new key.
    pub already: Vec<String>,
    /// Unencrypted backups (nothing to do; only with [`Repository::allow_unencrypted`]).
    pub unencrypted: Vec<String>,
    /// Id of the new master key.
    pub new_key_id: String,
}

/// How much a backup in the repository can be believed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum BackupStatus {
    /// Authenticated by the key given (or, in an unencrypted repository without a key, intact).
    Trusted,
    /// Encrypted, and no key was given to authenticate it.
    Unchecked,
    /// Refused: damaged, not sealed by the repository's key, or unreadable by this build.
    Refused {
        /// Why, as an error kind (`corrupt`, `wrong key`, `unsupported`).
        kind: String,
        /// The full reason.
        reason: String,
    },
}

/// One backup as the repository sees it.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// Its id (the name of its folder).
    pub backup_id: String,
    /// Its manifest, when it could be parsed (a refused backup's manifest is only its claim).
    pub manifest: Option<Manifest>,
    /// Whether it can be believed.
    pub status: BackupStatus,
}

impl CatalogEntry {
    /// The manifest, if the backup is trusted.
    pub fn trusted(&self) -> Option<&Manifest> {
        match self.status {
            BackupStatus::Trusted => self.manifest.as_ref(),
            _ => None,
        }
    }
}

/// A backup that an operation passed over, and why (shown to the user: silently using an older
/// backup is a failure mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedBackup {
    /// Its id.
    pub backup_id: String,
    /// Why, as an error kind.
    pub kind: String,
    /// The full reason.
    pub reason: String,
}

/// Every backup of a repository with its status, oldest id first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The repository config (`None`: the location holds no config).
    pub config: Option<RepoConfig>,
    /// Every backup with a manifest object.
    pub entries: Vec<CatalogEntry>,
}

impl Catalog {
    /// The trusted manifests, oldest id first.
    pub fn trusted(&self) -> impl Iterator<Item = &Manifest> {
        self.entries.iter().filter_map(CatalogEntry::trusted)
    }

    /// The refused backups.
    pub fn refused(&self) -> impl Iterator<Item = SkippedBackup> + '_ {
        self.entries.iter().filter_map(|e| match &e.status {
            BackupStatus::Refused { kind, reason } => Some(SkippedBackup {
                backup_id: e.backup_id.clone(),
                kind: kind.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        })
    }

    /// Summaries of the trusted backups (what retention policies see).
    pub fn summaries(&self) -> Vec<BackupSummary> {
        self.trusted().map(BackupSummary::from).collect()
    }
}

/// A backup chosen by a [`BackupSelector`], with the newer backups passed over on the way.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The chosen backup's manifest (authenticated).
    pub manifest: Manifest,
    /// Newer backups that were refused (damaged, not sealed by the key, unreadable).
    pub skipped: Vec<SkippedBackup>,
}

/// The key a backup wraps its data key under.
pub(crate) struct BackupKey {
    pub(crate) master: MasterKey,
    pub(crate) wrap_kdf: Option<KdfParams>,
    seal_config: bool,
}

/// A manifest that passed the repository's trust rules, with its data key.
pub(crate) struct Trusted {
    pub(crate) opened: manifest::OpenedManifest,
    pub(crate) data_key: Option<DataKey>,
}

/// What the repository config says about trust, checked against the key given.
struct Gate {
    config: Option<RepoConfig>,
    /// The key given opened the config's key check.
    key_verified: bool,
}

/// The backups in one [`Sink`], read with a key (or none) and a trust rule.
///
/// With a key, or in an encrypted repository, only backups sealed by the key are believed:
/// unencrypted ones are refused as [`ErrorKind::Corrupt`] (anyone with write access to the storage
/// can write one) unless [`allow_unencrypted`](Self::allow_unencrypted) is set. `docs/SECURITY.md`
/// has the threat model.
#[derive(Clone)]
pub struct Repository {
    sink: Arc<dyn Sink>,
    key: Option<Key>,
    allow_unencrypted: bool,
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("sink", &self.sink)
            .field("key", &self.key)
            .field("allow_unencrypted", &self.allow_unencrypted)
            .finish()
    }
}

impl Repository {
    /// The repository stored in `sink` (which may be empty), read without a key.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Repository {
            sink,
            key: None,
            allow_unencrypted: false,
        }
    }

    /// Reads and authenticates with `key` (`None`: no key).
    pub fn with_key(mut self, key: impl Into<Option<Key>>) -> Self {
        self.key = key.into();
        self
    }

    /// Accepts unencrypted backups in an encrypted repository (a mixed repository). Off by
    /// default: such a backup is authenticated by nothing.
    pub fn allow_unencrypted(mut self, yes: bool) -> Self {
        self.allow_unencrypted = yes;
        self
    }

    /// The underlying storage.
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.sink
    }

    /// The configuration, or `None` for an empty location. Its seal's BLAKE3 is checked (its MAC
    /// needs the key: see [`check`](Self::check)).
    ///
    /// # Errors
    /// On storage failure, [`ErrorKind::Corrupt`] for a damaged config, [`ErrorKind::Unsupported`]
    /// for a newer format.
    pub async fn config(&self) -> Result<Option<RepoConfig>> {
        Ok(self.read_config().await?.map(|c| c.config))
    }

    async fn read_config(&self) -> Result<Option<StoredConfig>> {
        let bytes = match self
            .sink
            .get_bytes_limited(CONFIG_KEY, MAX_CONFIG_BYTES)
            .await
        {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.with_object(CONFIG_KEY)),
        };
        let ctx = |e: Error| e.with_object(CONFIG_KEY);
        let (body, seal) = manifest::open_sealed(&bytes, "repository config").map_err(ctx)?;
        #[derive(Deserialize)]
        struct Head {
            format: String,
            format_version: u32,
        }
        let head: Head = serde_json::from_slice(&body).map_err(|e| {
            ctx(Error::corrupt(format!(
                "repository config is unreadable: {e}"
            )))
        })?;
        if head.format != "dbbackup-repository" {
            return Err(ctx(Error::corrupt(format!(
                "this storage holds {:?}, not a dbbackup repository",
                head.format
            ))));
        }
        if head.format_version != manifest::FORMAT_VERSION {
            return Err(ctx(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "repository format version {} is not supported by this build (reads {})",
                    head.format_version,
                    manifest::FORMAT_VERSION
                ),
            )));
        }
        let config: RepoConfig = serde_json::from_slice(&body).map_err(|e| {
            ctx(Error::corrupt(format!(
                "repository config is unreadable: {e}"
            )))
        })?;
        if config.is_encrypted() && seal.mac.is_none() {
            return Err(ctx(Error::corrupt(
                "the config of an encrypted repository carries no MAC (it was altered)",
            )));
        }
        Ok(Some(StoredConfig {
            config,
            body,
            mac: seal.mac,
        }))
    }

    /// Creates the repository config if there is none. `kdf` sets how passphrases are stretched
    /// (default: [`KdfParams::recommended`]). Returns the config in force.
    ///
    /// # Errors
    /// On storage failure; [`ErrorKind::Corrupt`] when the config is missing but backups exist
    /// (it was deleted: a new one would let any key in).
    pub async fn init(&self, kdf: Option<KdfParams>) -> Result<RepoConfig> {
        Ok(self.init_stored(kdf).await?.config)
    }

    async fn init_stored(&self, kdf: Option<KdfParams>) -> Result<StoredConfig> {
        if let Some(cfg) = self.read_config().await? {
            return Ok(cfg);
        }
        let held = self.committed_ids().await?;
        if !held.is_empty() {
            return Err(Error::corrupt(format!(
                "the repository config is missing, but the repository holds {} backup(s): it \
                 was deleted or lost. Backups can still be restored and verified; new backups \
                 are refused until the config is restored from a copy",
                held.len()
            ))
            .with_object(CONFIG_KEY));
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
            key_id: None,
        };
        match self.write_config(&cfg, None, PutMode::Create).await {
            Ok(()) => {}
            // Someone else initialized it first: theirs is in force.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.read_config()
            .await?
            .ok_or_else(|| Error::internal("config vanished after it was created"))
    }

    async fn write_config(
        &self,
        cfg: &RepoConfig,
        master: Option<&MasterKey>,
        mode: PutMode,
    ) -> Result<()> {
        let body = serde_json::to_vec(cfg).expect("config serializes");
        let mac = master.map(|m| m.config_mac(&body));
        self.sink
            .put_bytes(CONFIG_KEY, manifest::sealed_object(body, mac), mode)
            .await
            .map(|_| ())
            .map_err(|e| e.with_object(CONFIG_KEY))
    }

    fn what_key(&self) -> &'static str {
        match &self.key {
            Some(k) if k.is_passphrase() => "passphrase",
            _ => "key",
        }
    }

    /// Derives the master key of the key given under the config's Argon2id setup.
    async fn master_for(&self, cfg: &RepoConfig) -> Result<Option<MasterKey>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let kdf = if key.is_passphrase() {
            cfg.kdf.clone()
        } else {
            None
        };
        let key = key.clone();
        let master = blocking(move || key.resolve(kdf.as_ref(), "this repository"))
            .await
            .map_err(|e| e.with_object(CONFIG_KEY))?;
        Ok(Some(master))
    }

    /// Checks the key given against the config's key check.
    fn check_master(&self, stored: &StoredConfig, master: &MasterKey) -> Result<()> {
        let cfg = &stored.config;
        let Some(key_id) = &cfg.key_id else {
            return Ok(());
        };
        let sealed = stored
            .mac
            .as_deref()
            .is_some_and(|mac| manifest::mac_matches(mac, &master.config_mac(&stored.body)));
        if sealed {
            return Ok(());
        }
        let what = self.what_key();
        Err(Error::new(
            ErrorKind::WrongKey,
            format!(
                "wrong {what} for repository {}: it does not open the repository's key check \
                 (key id {key_id}). If this is the right {what}, the repository config was \
                 altered (`dbbackup verify` checks it); if a `rekey` was interrupted, run it again",
                cfg.repository_id
            ),
        )
        .with_object(CONFIG_KEY))
    }

    /// Prepares a backup: creates the config if needed and checks the key given against it (on a
    /// repository not yet sealed, against the encrypted backups already there: a config stripped
    /// of its key check must not let a mistyped passphrase in). Returns the master key, the
    /// Argon2id setup new data keys are wrapped under, and whether the config still needs sealing
    /// ([`seal_config`](Self::seal_config), at commit, so a failed first backup leaves no seal).
    pub(crate) async fn unlock_for_backup(
        &self,
        kdf: Option<KdfParams>,
    ) -> Result<Option<BackupKey>> {
        let stored = self.init_stored(kdf).await?;
        let cfg = &stored.config;
        let Some(master) = self.master_for(cfg).await? else {
            if cfg.is_encrypted() && !self.allow_unencrypted {
                return Err(Error::invalid(format!(
                    "repository {} is encrypted (key id {}): give its key (--passphrase-env or \
                     --key-file), or allow an unencrypted backup in it explicitly \
                     (--allow-unencrypted) if it is meant to mix both",
                    cfg.repository_id,
                    cfg.key_id.as_deref().unwrap_or("")
                )));
            }
            return Ok(None);
        };
        let wrap_kdf = match &self.key {
            Some(k) if k.is_passphrase() => cfg.kdf.clone(),
            _ => None,
        };
        if cfg.is_encrypted() {
            self.check_master(&stored, &master)?;
        } else {
            for id in self.committed_ids().await?.iter().rev() {
                let Ok(opened) = self.open_manifest(id).await else {
                    continue;
                };
                if let Some(info) = &opened.manifest.encryption {
                    let key = self.key.as_ref().expect("a key is given");
                    unwrap_data_key(info, key, id).await?;
                    break;
                }
            }
        }
        Ok(Some(BackupKey {
            seal_config: !cfg.is_encrypted(),
            master,
            wrap_kdf,
        }))
    }

    /// Seals an unsealed config with the backup's master key (the first encrypted backup's
    /// commit). Two first backups with different keys at once: the config that stays decides, and
    /// the other backup fails before its manifest is written.
    pub(crate) async fn seal_config(&self, key: &BackupKey) -> Result<()> {
        if !key.seal_config {
            return Ok(());
        }
        let stored = self
            .read_config()
            .await?
            .ok_or_else(|| Error::corrupt("the repository config vanished during the backup"))?;
        if !stored.config.is_encrypted() {
            let mut sealed = stored.config.clone();
            sealed.key_id = Some(key.master.key_id());
            if key.wrap_kdf.is_none() {
                // A raw-key repository: a passphrase is then told so, not just "wrong".
                sealed.kdf = None;
            }
            self.write_config(&sealed, Some(&key.master), PutMode::Overwrite)
                .await?;
        }
        let now = self
            .read_config()
            .await?
            .ok_or_else(|| Error::internal("config vanished after it was sealed"))?;
        self.check_master(&now, &key.master)
    }

    /// The config and whether the key given opened its key check (for log archives).
    pub(crate) async fn read_gate(&self) -> Result<(Option<RepoConfig>, bool)> {
        self.check_exists().await?;
        let g = self.gate().await?;
        Ok((g.config, g.key_verified))
    }

    /// The key given, if any.
    pub fn key(&self) -> Option<&Key> {
        self.key.as_ref()
    }

    /// Whether unencrypted content is allowed in (see [`allow_unencrypted`](Self::allow_unencrypted)).
    pub fn allows_unencrypted(&self) -> bool {
        self.allow_unencrypted
    }

    async fn gate(&self) -> Result<Gate> {
        let stored = self.read_config().await?;
        let mut key_verified = false;
        if let Some(stored) = &stored {
            if stored.config.is_encrypted() {
                if let Some(master) = self.master_for(&stored.config).await? {
                    self.check_master(stored, &master)?;
                    key_verified = true;
                }
            }
        }
        Ok(Gate {
            config: stored.map(|s| s.config),
            key_verified,
        })
    }

    /// Checks the repository itself: that there is one, that its config is intact, and, with a
    /// key, that the key opens the config's key check. Returns the config.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when the location holds neither a config nor a backup (a mistyped
    /// or wiped repository); [`ErrorKind::Corrupt`] for a damaged or missing config;
    /// [`ErrorKind::WrongKey`].
    pub async fn check(&self) -> Result<RepoConfig> {
        self.check_exists().await?;
        let gate = self.gate().await?;
        match gate.config {
            Some(cfg) => Ok(cfg),
            None => Err(Error::corrupt(
                "the repository config is missing, but the repository holds backups: it was \
                 deleted or lost",
            )
            .with_object(CONFIG_KEY)),
        }
    }

    /// Checks that the location holds a repository at all (a config or a backup).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it holds neither (a mistyped or wiped repository URL).
    pub async fn check_exists(&self) -> Result<()> {
        match self.sink.exists(CONFIG_KEY).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(e.with_object(CONFIG_KEY)),
        }
        if self.committed_ids().await?.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                "there is no dbbackup repository here (no config and no backup): check the \
                 repository URL",
            ));
        }
        Ok(())
    }

    /// Applies the trust rules to one opened manifest.
    async fn trust(&self, gate: &Gate, opened: manifest::OpenedManifest) -> Result<Trusted> {
        let id = opened.manifest.backup_id.clone();
        let encrypted_repo = gate.config.as_ref().is_some_and(RepoConfig::is_encrypted);
        match (&opened.manifest.encryption, &self.key) {
            (Some(info), Some(key)) => {
                let dk = match unwrap_data_key(info, key, &id).await {
                    Ok(dk) => dk,
                    Err(e) if e.kind() == ErrorKind::WrongKey && gate.key_verified => {
                        return Err(Error::corrupt(format!(
                            "backup {id} is not sealed by this repository's key: its data key is \
                             wrapped under key id {}, which the repository's {} does not open; \
                             it was planted, or written here with another key",
                            info.key_id,
                            self.what_key()
                        ))
                        .with_backup(id));
                    }
                    Err(e) => return Err(e),
                };
                opened
                    .authenticate(&dk)
                    .map_err(|e| e.with_backup(id.clone()))?;
                Ok(Trusted {
                    opened,
                    data_key: Some(dk),
                })
            }
            (Some(info), None) => Err(Error::new(
                ErrorKind::WrongKey,
                format!(
                    "backup {id} is encrypted (key id {}); give its key or passphrase",
                    info.key_id
                ),
            )
            .with_backup(id)),
            (None, _) if (self.key.is_some() || encrypted_repo) && !self.allow_unencrypted => {
                Err(Error::corrupt(format!(
                    "backup {id} is not sealed by the repository's key: it is unencrypted, in {}. \
                     Nothing vouches for such a backup (anyone with write access to the storage \
                     can write one), so it is refused; if this repository is meant to mix \
                     encrypted and unencrypted backups, allow them explicitly \
                     (--allow-unencrypted)",
                    if encrypted_repo {
                        "an encrypted repository"
                    } else {
                        "a repository read with a key"
                    }
                ))
                .with_backup(id))
            }
            (None, _) => Ok(Trusted {
                opened,
                data_key: None,
            }),
        }
    }

    /// Every backup with a manifest, and whether it can be believed with the key given. Damaged,
    /// unsealed and unreadable manifests are listed as refused, never left out.
    ///
    /// # Errors
    /// On storage failure, a damaged config, or [`ErrorKind::WrongKey`] when the key given does
    /// not open the config's key check.
    pub async fn catalog(&self) -> Result<Catalog> {
        Ok(self.catalog_and_gate().await?.0)
    }

    /// The [`catalog`](Self::catalog) and the newest trusted restore test of each backup
    /// ([`latest_restore_tests`](Self::latest_restore_tests)), from one listing of `backups/`.
    ///
    /// # Errors
    /// As both.
    pub async fn catalog_and_restore_tests(
        &self,
    ) -> Result<(
        Catalog,
        BTreeMap<String, crate::restore_test::RestoreTestRecord>,
    )> {
        let listing = self.sink.list(BACKUPS_PREFIX).await?;
        let gate = self.gate().await?;
        let catalog = self.catalog_of(ids_in(&listing), &gate).await?;
        let tests = self.latest_restore_tests_in(&listing).await?;
        Ok((catalog, tests))
    }

    async fn catalog_and_gate(&self) -> Result<(Catalog, Gate)> {
        let gate = self.gate().await?;
        let ids = self.committed_ids().await?;
        let catalog = self.catalog_of(ids, &gate).await?;
        Ok((catalog, gate))
    }

    async fn catalog_of(&self, ids: Vec<String>, gate: &Gate) -> Result<Catalog> {
        let gate_ref = gate;
        let entries: Vec<CatalogEntry> = futures::stream::iter(ids)
            .map(|id| async move {
                let opened = match self.open_manifest(&id).await {
                    Ok(o) => o,
                    Err(e) if is_refusal(&e) => {
                        return Ok(CatalogEntry {
                            backup_id: id,
                            manifest: None,
                            status: refused(&e),
                        })
                    }
                    Err(e) => return Err(e),
                };
                let manifest = Some(opened.manifest.clone());
                let status = match self.trust(gate_ref, opened).await {
                    Ok(_) => BackupStatus::Trusted,
                    Err(e) if e.kind() == ErrorKind::WrongKey && self.key.is_none() => {
                        BackupStatus::Unchecked
                    }
                    Err(e) if is_refusal(&e) => refused(&e),
                    Err(e) => return Err(e),
                };
                Ok(CatalogEntry {
                    backup_id: id,
                    manifest,
                    status,
                })
            })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(Catalog {
            config: gate.config.clone(),
            entries,
        })
    }

    /// Every backup that can be believed with the key given, oldest id first: with a key, those it
    /// authenticates; without one, intact ones (encrypted ones unauthenticated). Refused backups
    /// are left out: [`catalog`](Self::catalog) shows them.
    ///
    /// # Errors
    /// As [`catalog`](Self::catalog).
    pub async fn list(&self) -> Result<Vec<Manifest>> {
        let catalog = self.catalog().await?;
        for s in catalog.refused() {
            warn!(backup_id = %s.backup_id, reason = %s.reason, "a backup is refused");
        }
        Ok(catalog
            .entries
            .into_iter()
            .filter(|e| matches!(e.status, BackupStatus::Trusted | BackupStatus::Unchecked))
            .filter_map(|e| e.manifest)
            .collect())
    }

    /// Summaries of the trusted backups, oldest first (what retention policies see).
    ///
    /// # Errors
    /// As [`catalog`](Self::catalog); [`ErrorKind::InvalidInput`] for an encrypted repository
    /// read without its key (retention must not count backups nobody authenticated).
    pub async fn summaries(&self) -> Result<Vec<BackupSummary>> {
        let catalog = self.catalog().await?;
        self.require_key_for_retention(&catalog)?;
        Ok(catalog.summaries())
    }

    /// Refuses retention over `catalog` when it is of an encrypted repository read without its key.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] then.
    pub fn require_key_for_retention(&self, catalog: &Catalog) -> Result<()> {
        if self.key.is_none()
            && catalog
                .config
                .as_ref()
                .is_some_and(RepoConfig::is_encrypted)
        {
            return Err(Error::invalid(
                "this repository is encrypted: retention needs its key (--passphrase-env or \
                 --key-file) to tell the backups it holds from planted ones",
            ));
        }
        Ok(())
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
        Ok(ids_in(&self.sink.list(BACKUPS_PREFIX).await?))
    }

    /// One backup's manifest, authenticated with the key given.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when there is no committed backup `id`; [`ErrorKind::Corrupt`] for
    /// a damaged or unsealed one; [`ErrorKind::WrongKey`].
    pub async fn manifest(&self, id: &str) -> Result<Manifest> {
        let gate = self.gate().await?;
        let opened = self.open_manifest(id).await?;
        Ok(self.trust(&gate, opened).await?.opened.manifest)
    }

    pub(crate) async fn open_manifest(&self, id: &str) -> Result<manifest::OpenedManifest> {
        if !is_valid_backup_id(id) {
            return Err(Error::invalid(format!("{id:?} is not a valid backup id")));
        }
        let key = manifest_key(id);
        let bytes = self
            .sink
            .get_bytes_limited(&key, manifest::MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| {
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

    /// The newest backup that authenticates.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    pub async fn latest(&self) -> Result<Manifest> {
        Ok(self.resolve(&BackupSelector::Latest).await?.manifest)
    }

    /// The backup `sel` names, authenticated, with the newer backups passed over on the way.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] for an empty repository; for `latest` with nothing trusted,
    /// [`ErrorKind::Corrupt`] naming the refused backups (or [`ErrorKind::WrongKey`]).
    pub async fn resolve(&self, sel: &BackupSelector) -> Result<Resolved> {
        let (t, skipped) = self.open_trusted(sel).await?;
        Ok(Resolved {
            manifest: t.opened.manifest,
            skipped,
        })
    }

    pub(crate) async fn open_trusted(
        &self,
        sel: &BackupSelector,
    ) -> Result<(Trusted, Vec<SkippedBackup>)> {
        let id = match sel {
            BackupSelector::Id(id) => id.clone(),
            BackupSelector::Latest => {
                let (catalog, gate) = self.catalog_and_gate().await?;
                let newest = catalog
                    .entries
                    .iter()
                    .filter(|e| matches!(e.status, BackupStatus::Trusted | BackupStatus::Unchecked))
                    .filter_map(|e| e.manifest.as_ref().map(|m| (e, m)))
                    .max_by_key(|(_, m)| (m.finished_at, m.backup_id.clone()));
                let refused: Vec<SkippedBackup> = catalog.refused().collect();
                let Some((entry, m)) = newest else {
                    if refused.is_empty() {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            "the repository holds no committed backup yet",
                        ));
                    }
                    let kind = if refused.iter().any(|s| s.kind == "corrupt") {
                        ErrorKind::Corrupt
                    } else {
                        ErrorKind::WrongKey
                    };
                    let list: Vec<String> = refused
                        .iter()
                        .map(|s| format!("{}: {}", s.backup_id, s.reason))
                        .collect();
                    return Err(Error::new(
                        kind,
                        format!(
                            "no backup in the repository can be used; {} refused: {}",
                            refused.len(),
                            list.join("; ")
                        ),
                    )
                    .with_backup(
                        refused
                            .last()
                            .map(|s| s.backup_id.clone())
                            .unwrap_or_default(),
                    ));
                };
                let chosen_at = m.finished_at;
                let skipped = refused
                    .into_iter()
                    .filter(|s| {
                        let claimed = catalog
                            .entries
                            .iter()
                            .find(|e| e.backup_id == s.backup_id)
                            .and_then(|e| e.manifest.as_ref().map(|m| m.finished_at));
                        match claimed {
                            Some(t) => t > chosen_at,
                            None => s.backup_id > entry.backup_id,
                        }
                    })
                    .collect::<Vec<_>>();
                for s in &skipped {
                    warn!(backup_id = %s.backup_id, reason = %s.reason, "skipping a newer backup");
                }
                let id = entry.backup_id.clone();
                let opened = self.open_manifest(&id).await?;
                return Ok((self.trust(&gate, opened).await?, skipped));
            }
        };
        let gate = self.gate().await.map_err(|e| e.with_backup(id.clone()))?;
        let opened = self.open_manifest(&id).await?;
        Ok((self.trust(&gate, opened).await?, Vec::new()))
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
    /// delete the newest trusted backup whatever the plan says, and any backup the repository does
    /// not trust (a plan is made from trusted backups only); keeps the parent of a backup running
    /// now (its lease names it). A backup already deleted (by a
    /// concurrent prune) counts as deleted. Returns the ids deleted.
    ///
    /// # Errors
    /// On storage failure (backups deleted before it stay deleted); as
    /// [`summaries`](Self::summaries).
    pub async fn apply(&self, plan: &RetentionPlan) -> Result<Vec<String>> {
        let catalog = self.catalog().await?;
        self.require_key_for_retention(&catalog)?;
        let newest = catalog
            .trusted()
            .max_by_key(|m| (m.finished_at, m.backup_id.clone()))
            .map(|m| m.backup_id.clone());
        let trusted: HashSet<&str> = catalog.trusted().map(|m| m.backup_id.as_str()).collect();
        let running_parents = self.parents_of_running(OffsetDateTime::now_utc()).await?;
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
            if running_parents.contains(&d.backup_id) {
                warn!(backup_id = %d.backup_id, "kept: a running backup is chained to it");
                continue;
            }
            if !trusted.contains(d.backup_id.as_str()) {
                if catalog.entries.iter().any(|e| e.backup_id == d.backup_id) {
                    return Err(Error::invalid(format!(
                        "the retention plan deletes {}, which this repository does not trust \
                         (see `dbbackup list`); refusing",
                        d.backup_id
                    )));
                }
                // Gone already: another prune deleted it.
                deleted.push(d.backup_id.clone());
                continue;
            }
            match self.delete_backup(&d.backup_id).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            deleted.push(d.backup_id.clone());
        }
        Ok(deleted)
    }

    /// Removes objects of backups that never committed (no manifest) and were last written more
    /// than `grace` before `now`, so a backup still running is never disturbed: one whose lease
    /// was refreshed within the lease expiry (15 minutes) is spared whatever `grace` says, however
    /// long ago its entries were written. Then lets the sink clean its own leftovers
    /// ([`Sink::collect_garbage`]: temporary files, stale uploads).
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
            let leased = objects.iter().any(|o| {
                o.key == crate::lease::lease_key(&id)
                    && crate::lease::is_fresh(o.last_modified, now)
            });
            let old = objects
                .iter()
                .all(|o| o.last_modified.is_some_and(|t| t < cutoff));
            if leased || !old {
                if leased {
                    report.running.push(id.clone());
                }
                continue;
            }
            for o in objects {
                match self.sink.delete(&o.key).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.with_backup(id.clone()).with_object(o.key.clone())),
                }
                report.deleted.push(o.key);
            }
        }
        report
            .deleted
            .extend(self.sink.collect_garbage(grace, now).await?);
        Ok(report)
    }

    /// The parents of backups running now (fresh leases): retention must not delete them.
    async fn parents_of_running(&self, now: OffsetDateTime) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for o in self.sink.list(BACKUPS_PREFIX).await? {
            if !o.key.ends_with("/LEASE") || !crate::lease::is_fresh(o.last_modified, now) {
                continue;
            }
            let Ok(bytes) = self.sink.get_bytes_limited(&o.key, 64 << 10).await else {
                continue;
            };
            if let Ok(lease) = serde_json::from_slice::<crate::lease::Lease>(&bytes) {
                out.extend(lease.parent);
            }
        }
        Ok(out)
    }

    /// Re-wraps every encrypted backup's data key from `old` to `new`, rewriting manifests only (no
    /// data object is touched), then seals the config with `new`. First every backup is
    /// authenticated; if any is refused (damaged, not sealed by `old`, unencrypted in an encrypted
    /// repository without [`allow_unencrypted`](Self::allow_unencrypted)) nothing is changed.
    /// Safe to re-run after an interruption: backups already under the new key are skipped, and
    /// each manifest carries its own key setup, so every backup opens with exactly one of the two
    /// keys at any moment. Old copies of manifests (object versions, backups of the bucket) still
    /// open with `old`: see `docs/SECURITY.md`.
    ///
    /// # Errors
    /// [`ErrorKind::WrongKey`] when `old` opens neither the config nor the backups;
    /// [`ErrorKind::Corrupt`] naming the refused backups.
    pub async fn rekey(&self, old: &Key, new: &Key) -> Result<RekeyReport> {
        let stored = self.check_stored().await?;
        let cfg = stored.config.clone();
        let as_old = self.clone().with_key(old.clone());
        let as_new = self.clone().with_key(new.clone());
        // A re-run after the config was already sealed with `new` resumes.
        let old_opens = match as_old.master_for(&cfg).await {
            Ok(Some(m)) => as_old.check_master(&stored, &m).is_ok(),
            Ok(None) => false,
            Err(e) if e.kind() == ErrorKind::WrongKey => false,
            Err(e) => return Err(e),
        };
        if !old_opens {
            let new_opens = match as_new.master_for(&cfg).await {
                Ok(Some(m)) => cfg.is_encrypted() && as_new.check_master(&stored, &m).is_ok(),
                _ => false,
            };
            if !new_opens {
                let m = as_old.master_for(&cfg).await?.expect("a key is given");
                as_old.check_master(&stored, &m)?;
            }
        }
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
            blocking(move || new.resolve(kdf.as_ref(), "the new key")).await?
        };
        let new_id = new_master.key_id();
        let mut report = RekeyReport {
            new_key_id: new_id.clone(),
            ..Default::default()
        };

        // Authenticate everything first: a refused backup stops the rekey before any change.
        let gate_old = Gate {
            config: Some(cfg.clone()),
            key_verified: false,
        };
        let mut work = Vec::new();
        let mut problems = Vec::new();
        for id in self.committed_ids().await? {
            let opened = match self.open_manifest(&id).await {
                Ok(o) => o,
                Err(e) if is_refusal(&e) => {
                    problems.push(format!("{id}: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if opened.manifest.encryption.is_none() {
                if self.allow_unencrypted || !cfg.is_encrypted() {
                    report.unencrypted.push(id);
                } else {
                    problems.push(format!(
                        "{id}: unencrypted, in an encrypted repository (allow it with \
                         --allow-unencrypted if this repository is meant to mix both)"
                    ));
                }
                continue;
            }
            match as_old.trust(&gate_old, opened.clone()).await {
                Ok(t) => work.push((id, t)),
                Err(e) if e.kind() == ErrorKind::WrongKey => {
                    match as_new.trust(&gate_old, opened).await {
                        Ok(_) => report.already.push(id),
                        Err(e) => problems.push(format!("{id}: {e}")),
                    }
                }
                Err(e) => problems.push(format!("{id}: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(Error::corrupt(format!(
                "rekey changed nothing: {} backup(s) are refused: {}",
                problems.len(),
                problems.join("; ")
            )));
        }
        for (id, t) in work {
            let dk = t.data_key.expect("an encrypted backup has a data key");
            if t.opened.manifest.encryption.as_ref().map(|i| &i.key_id) == Some(&new_id) {
                report.already.push(id);
                continue;
            }
            let mut m = t.opened.manifest.clone();
            m.encryption = Some(dk.wrap(&new_master, new_kdf.clone(), &id)?);
            let sealed = manifest::seal(&m, Some(&dk))?;
            self.sink
                .put_bytes(&manifest_key(&id), sealed, PutMode::Overwrite)
                .await
                .map_err(|e| e.with_backup(id.clone()))?;
            report.rekeyed.push(id);
        }
        let mut cfg = cfg;
        cfg.kdf = new_kdf;
        cfg.key_id = Some(new_id);
        self.write_config(&cfg, Some(&new_master), PutMode::Overwrite)
            .await?;
        Ok(report)
    }

    async fn check_stored(&self) -> Result<StoredConfig> {
        self.check().await?;
        self.read_config()
            .await?
            .ok_or_else(|| Error::internal("config vanished"))
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
    let master = blocking(move || k.resolve(kdf.as_ref(), &format!("backup {id}")))
        .await
        .map_err(|e| e.with_backup(backup_id))?;
    DataKey::unwrap_with(info, &master, key.is_passphrase(), backup_id)
        .map_err(|e| e.with_backup(backup_id))
}

fn is_refusal(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Corrupt | ErrorKind::Unsupported | ErrorKind::WrongKey
    )
}

fn refused(e: &Error) -> BackupStatus {
    BackupStatus::Refused {
        kind: e.kind().to_string(),
        reason: e.to_string(),
    }
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

/// The ids of the backups with a manifest object in a listing of `backups/`, oldest first.
fn ids_in(listing: &[crate::sink::ObjectMeta]) -> Vec<String> {
    let mut ids: Vec<String> = listing
        .iter()
        .filter_map(|o| {
            let rest = o.key.strip_prefix(BACKUPS_PREFIX)?;
            let id = rest.strip_suffix("/MANIFEST")?;
            (is_valid_backup_id(id)).then(|| id.to_owned())
        })
        .collect();
    ids.sort();
    ids
}
