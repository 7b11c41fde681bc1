//! The server's own backups (`server-backup`): SQL Server writes a `BACKUP DATABASE` / `BACKUP LOG` file into a directory this
//! process can read too, and the library streams that file through the pipeline (compression,
//! encryption, any sink) and records the backup set's LSNs in the manifest. Restores go the other
//! way: the file is written back into the shared directory and `RESTORE` reads it.
//!
//! The shared directory is named twice — as the server sees it and as this process sees it —
//! because they are often different mounts of one volume (a Docker bind mount, an SMB share, a
//! Kubernetes volume). The server needs write access to it for backups and read access for
//! restores; files are removed after use unless kept.
//!
//! Chains: a differential backup's parent is the full backup whose `checkpoint_lsn` is its
//! `differential_base_lsn`; a log backup's parent is the log backup whose `last_lsn` is its
//! `first_lsn`, or else the full backup whose `checkpoint_lsn` is its `database_backup_lsn`. Given
//! the repository ([`ServerBackupSource::chain_in`]), the source finds that parent and records it, so
//! retention never deletes a backup a kept one depends on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dbbackup_core::{
    EntryData, EntryKind, EntryRecord, EntrySpec, Error, ErrorKind, Manifest, OpenContext,
    Repository, RestoreSession, RestoreSummary, RestoreTarget, Result, ServerBackupKind, SharedDir,
    Sink, Snapshot, SnapshotSummary, Source, SourceInfo,
};
use futures::StreamExt;
use tiberius::Row;
use tokio::io::AsyncWriteExt;

use crate::config::{MsUrl, SERVER_BACKUP_ENGINE};
use crate::conn::{connect_to, exec, rows, text, MsClient};
use crate::entry::{BackupFile, EntryMeta};
use crate::quote::literal;
use crate::statement::{
    BackupDatabase, BackupEncryption, BackupKind, BackupLog, Device, Recovery, RestoreDatabase,
    RestoreLog, StopAt,
};

/// The one entry of a server backup.
pub const ENTRY: &str = "backup.bak";

/// `database` reduced to characters safe in a file name on any file system.
fn file_stem(database: &str) -> String {
    database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// A file name safe on any file system, unique per backup.
fn file_name(database: &str, what: &str, id: &str) -> String {
    format!("dbbackup-{}-{what}-{id}.bak", file_stem(database))
}

/// Removes a file when dropped, unless disarmed.
struct FileGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for FileGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a server backup file");
                }
            }
        }
    }
}

/// A SQL Server backup taken by the server itself (`BACKUP DATABASE` / `BACKUP LOG`) as a [`Source`].
#[derive(Clone)]
pub struct ServerBackupSource {
    url: MsUrl,
    kind: ServerBackupKind,
    dir: SharedDir,
    copy_only: bool,
    compression: Option<bool>,
    checksum: bool,
    stats: u8,
    encryption: Option<BackupEncryption>,
    keep_file: bool,
    verify_on_server: bool,
    chain: Option<Arc<dyn Sink>>,
    poll: Duration,
}

impl std::fmt::Debug for ServerBackupSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBackupSource")
            .field("url", &self.url)
            .field("kind", &self.kind)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ServerBackupSource {
    /// A full backup of the URL's database through `dir`.
    pub fn new(url: &str, dir: SharedDir) -> Result<Self> {
        Ok(Self {
            url: url.parse()?,
            kind: ServerBackupKind::Full,
            dir,
            copy_only: false,
            compression: Some(true),
            checksum: true,
            stats: 10,
            encryption: None,
            keep_file: false,
            verify_on_server: true,
            chain: None,
            poll: Duration::from_secs(1),
        })
    }

    /// Full, differential or log.
    pub fn kind(mut self, kind: ServerBackupKind) -> Self {
        self.kind = kind;
        self
    }

    /// `COPY_ONLY` (outside the regular chain; not for differentials).
    pub fn copy_only(mut self, yes: bool) -> Self {
        self.copy_only = yes;
        self
    }

    /// The server's `COMPRESSION` (default on; `None`: the server's default). With it the
    /// pipeline's zstd gains little: consider no pipeline compression.
    pub fn compression(mut self, c: Option<bool>) -> Self {
        self.compression = c;
        self
    }

    /// `CHECKSUM` (default on).
    pub fn checksum(mut self, yes: bool) -> Self {
        self.checksum = yes;
        self
    }

    /// `STATS` percent step for progress (default 10).
    pub fn stats(mut self, percent: u8) -> Self {
        self.stats = percent;
        self
    }

    /// The server's own backup encryption.
    pub fn encryption(mut self, e: BackupEncryption) -> Self {
        self.encryption = Some(e);
        self
    }

    /// Keep the server's file in the shared directory after streaming it (default: removed).
    pub fn keep_file(mut self, yes: bool) -> Self {
        self.keep_file = yes;
        self
    }

    /// Have the server read the backup back (`RESTORE VERIFYONLY ... WITH CHECKSUM`) before it
    /// is streamed (default on): a file the server cannot restore is never committed.
    pub fn verify_on_server(mut self, yes: bool) -> Self {
        self.verify_on_server = yes;
        self
    }

    /// The repository this backup goes to, where the parent of a differential or log backup
    /// is looked up.
    pub fn chain_in(mut self, sink: Arc<dyn Sink>) -> Self {
        self.chain = Some(sink);
        self
    }

    /// How often progress is polled while the server works (default 1 s).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d.max(Duration::from_millis(10));
        self
    }

    fn statement(&self, path: &str, id: &str) -> Result<String> {
        let name = format!("dbbackup {id}");
        let db = self.url.database();
        match self.kind {
            ServerBackupKind::Full | ServerBackupKind::Differential => {
                let mut b = BackupDatabase::new(db)
                    .kind(if self.kind == ServerBackupKind::Full {
                        BackupKind::Full
                    } else {
                        BackupKind::Differential
                    })
                    .to(Device::Disk(path.to_owned()))
                    .copy_only(self.copy_only)
                    .init(true)
                    .format(true)
                    .name(name)
                    .checksum(self.checksum)
                    .stats(self.stats);
                if let Some(c) = self.compression {
                    b = b.compression(c);
                }
                if let Some(e) = &self.encryption {
                    b = b.encryption(e.clone());
                }
                b.to_sql()
            }
            ServerBackupKind::Log => {
                let mut b = BackupLog::new(db)
                    .to(Device::Disk(path.to_owned()))
                    .copy_only(self.copy_only)
                    .init(true)
                    .format(true)
                    .name(name)
                    .checksum(self.checksum)
                    .stats(self.stats);
                if let Some(c) = self.compression {
                    b = b.compression(c);
                }
                if let Some(e) = &self.encryption {
                    b = b.encryption(e.clone());
                }
                b.to_sql()
            }
        }
    }
}

fn by_name(row: &Row, name: &str) -> Option<String> {
    let idx = row.columns().iter().position(|c| c.name() == name)?;
    text(row, idx)
}

fn source_err(msg: String) -> Error {
    Error::new(ErrorKind::Source, msg)
}

/// Runs `sql` on `c` while a separate task polls the request's `percent_complete` from a second
/// connection (so a slow or failing watcher never delays noticing that the work is done).
async fn run_with_progress(
    url: &MsUrl,
    c: &mut MsClient,
    spid: &str,
    sql: &str,
    what: &str,
    poll: Duration,
    report: impl Fn(f64) + Send + 'static,
) -> Result<()> {
    let (url2, q) = (
        url.clone(),
        format!(
            "SELECT CAST(percent_complete AS float) FROM sys.dm_exec_requests WHERE session_id = {spid}"
        ),
    );
    let watcher = tokio::spawn(async move {
        let mut conn: Option<MsClient> = None;
        let mut tick = tokio::time::interval(poll);
        tick.tick().await;
        let mut last = -1.0;
        loop {
            tick.tick().await;
            if conn.is_none() {
                conn = connect_to(&url2, "master", ErrorKind::Source).await.ok();
            }
            let Some(w) = conn.as_mut() else { continue };
            match rows(w, &q, ErrorKind::Source, "polling progress").await {
                Ok(r) => {
                    let p = r
                        .first()
                        .and_then(|r| text(r, 0))
                        .and_then(|t| t.parse::<f64>().ok());
                    if let Some(p) = p.filter(|p| *p > last) {
                        last = p;
                        report(p);
                    }
                }
                Err(_) => conn = None,
            }
        }
    });
    let result = exec(c, sql, ErrorKind::Source, what).await;
    watcher.abort();
    result
}

#[async_trait]
impl Source for ServerBackupSource {
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        let id = format!(
            "detached-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        self.open_with(&OpenContext::detached(&id)).await
    }

    // Long on purpose: BACKUP, msdb lookup, file list and parent search share the connection and the file guard that removes the server's file on every failure path.
    async fn open_with(&self, ctx: &OpenContext) -> Result<Box<dyn Snapshot>> {
        let db = self.url.database().to_owned();
        let mut c = connect_to(&self.url, "master", ErrorKind::Source).await?;
        let facts = rows(
            &mut c,
            &format!(
                "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)), CAST(@@SPID AS int), \
                 CAST(DATABASEPROPERTYEX({}, 'Recovery') AS nvarchar(60))",
                literal(&db)?
            ),
            ErrorKind::Source,
            "reading server facts",
        )
        .await?;
        let row = facts
            .first()
            .ok_or_else(|| source_err("the server answered no row for its version".into()))?;
        let version = text(row, 0);
        let spid = text(row, 1).unwrap_or_default();
        let recovery = text(row, 2).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "the database [{db}] does not exist on {} (or this login cannot see it)",
                    self.url
                ),
            )
        })?;
        if self.kind == ServerBackupKind::Log && recovery.eq_ignore_ascii_case("SIMPLE") {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("[{db}] uses the SIMPLE recovery model, which keeps no log to back up; switch to FULL (ALTER DATABASE ... SET RECOVERY FULL) and take a full backup first"),
            ));
        }
        let name = file_name(&db, self.kind.as_str(), ctx.backup_id());
        let server_path = self.dir.server_path(&name);
        let local_path = self.dir.local.join(&name);
        let guard = FileGuard {
            path: local_path.clone(),
            armed: !self.keep_file,
        };
        let sql = self.statement(&server_path, ctx.backup_id())?;
        let what = format!("{} backup of [{db}] to {server_path}", self.kind.as_str());
        ctx.server_progress(0.0, format!("{what}: started"));
        let ctx2 = ctx.clone();
        let what2 = what.clone();
        run_with_progress(&self.url, &mut c, &spid, &sql, &what, self.poll, move |p| {
            ctx2.server_progress(p, what2.clone())
        })
        .await?;
        ctx.server_progress(100.0, format!("{what}: done"));
        if self.verify_on_server {
            let verify = crate::statement::RestoreVerifyOnly::new()
                .from(Device::Disk(server_path.clone()))
                .checksum(self.checksum)
                .to_sql()?;
            exec(
                &mut c,
                &verify,
                ErrorKind::Source,
                &format!("verifying {server_path} on the server (RESTORE VERIFYONLY)"),
            )
            .await?;
        }

        let set = rows(
            &mut c,
            &format!(
                "SELECT TOP (1) CONVERT(nvarchar(40), bs.first_lsn) AS first_lsn, CONVERT(nvarchar(40), bs.last_lsn) AS last_lsn, \
                 CONVERT(nvarchar(40), bs.checkpoint_lsn) AS checkpoint_lsn, CONVERT(nvarchar(40), bs.database_backup_lsn) AS database_backup_lsn, \
                 CONVERT(nvarchar(40), bs.differential_base_lsn) AS differential_base_lsn, bs.type AS backup_type, \
                 CAST(bs.is_copy_only AS int) AS is_copy_only, CONVERT(nvarchar(40), bs.backup_finish_date, 126) AS backup_finish_date, \
                 CAST(bs.backup_set_id AS bigint) AS backup_set_id, bs.recovery_model AS recovery_model \
                 FROM msdb.dbo.backupset bs JOIN msdb.dbo.backupmediafamily mf ON mf.media_set_id = bs.media_set_id \
                 WHERE bs.database_name = {} AND mf.physical_device_name = {} ORDER BY bs.backup_set_id DESC",
                literal(&db)?,
                literal(&server_path)?
            ),
            ErrorKind::Source,
            "reading the backup set from msdb",
        )
        .await?;
        let set = set.first().ok_or_else(|| {
            source_err(format!(
                "the server reports no backup set in msdb.dbo.backupset for {server_path}; the backup cannot be chained"
            ))
        })?;
        let mut position = std::collections::BTreeMap::new();
        for k in [
            "first_lsn",
            "last_lsn",
            "checkpoint_lsn",
            "database_backup_lsn",
            "differential_base_lsn",
            "backup_type",
            "is_copy_only",
            "backup_finish_date",
            "backup_set_id",
            "recovery_model",
        ] {
            if let Some(v) = by_name(set, k) {
                position.insert(k.to_owned(), v);
            }
        }
        position.insert("kind".into(), self.kind.as_str().into());

        let files = if self.kind == ServerBackupKind::Log {
            Vec::new()
        } else {
            let list = rows(
                &mut c,
                &format!(
                    "RESTORE FILELISTONLY FROM DISK = {}",
                    literal(&server_path)?
                ),
                ErrorKind::Source,
                "listing the backup's files",
            )
            .await?;
            list.iter()
                .map(|r| BackupFile {
                    logical: by_name(r, "LogicalName"),
                    physical: by_name(r, "PhysicalName"),
                    kind: by_name(r, "Type"),
                })
                .collect()
        };

        let size = tokio::fs::metadata(&local_path).await.map(|m| m.len()).map_err(|e| {
            source_err(format!(
                "the server wrote {server_path}, but {} cannot be read here ({e}); the shared directory's local path must be the same directory as its server path",
                local_path.display()
            ))
        })?;
        if size == 0 {
            return Err(source_err(format!(
                "{} is empty although the server reported the backup done",
                local_path.display()
            )));
        }

        let mut warnings = Vec::new();
        let parent = match (&self.chain, self.kind) {
            (Some(sink), ServerBackupKind::Differential | ServerBackupKind::Log) => {
                let p = find_parent(sink.clone(), &db, self.kind, &position).await?;
                if p.is_none() {
                    warnings.push(format!(
                        "no backup in this repository is the {} this {} backup of [{db}] builds on; restoring it needs that backup from elsewhere",
                        if self.kind == ServerBackupKind::Log { "full or log backup" } else { "full backup" },
                        self.kind.as_str()
                    ));
                }
                p
            }
            _ => None,
        };
        if self.copy_only && self.kind == ServerBackupKind::Log {
            warnings.push("a COPY_ONLY log backup does not truncate the log and is not part of the regular log chain".into());
        }
        Ok(Box::new(ServerBackupSnapshot {
            info: SourceInfo {
                engine: SERVER_BACKUP_ENGINE.into(),
                server_version: version,
                database: Some(db),
                server: Some(self.url.address()),
                position,
            },
            meta: EntryMeta::server_backup(self.kind, name, size, files),
            path: local_path,
            _guard: guard,
            parent,
            warnings,
        }))
    }
}

async fn find_parent(
    sink: Arc<dyn Sink>,
    database: &str,
    kind: ServerBackupKind,
    pos: &std::collections::BTreeMap<String, String>,
) -> Result<Option<String>> {
    let repo = Repository::new(sink);
    let all = repo.list().await?;
    let ours = |m: &&Manifest| {
        m.source.engine == SERVER_BACKUP_ENGINE && m.source.database.as_deref() == Some(database)
    };
    let get = |m: &Manifest, k: &str| m.source.position.get(k).cloned();
    let newest = |pred: &dyn Fn(&Manifest) -> bool| {
        all.iter()
            .filter(ours)
            .filter(|m| pred(m))
            .max_by_key(|m| m.finished_at)
            .map(|m| m.backup_id.clone())
    };
    Ok(match kind {
        ServerBackupKind::Full => None,
        ServerBackupKind::Differential => {
            let base = pos.get("differential_base_lsn").cloned();
            newest(&|m| {
                get(m, "kind").as_deref() == Some("full")
                    && base.is_some()
                    && get(m, "checkpoint_lsn") == base
            })
        }
        ServerBackupKind::Log => {
            let first = pos.get("first_lsn").cloned();
            let base = pos.get("database_backup_lsn").cloned();
            newest(&|m| {
                get(m, "kind").as_deref() == Some("log")
                    && first.is_some()
                    && get(m, "last_lsn") == first
            })
            .or_else(|| {
                newest(&|m| {
                    get(m, "kind").as_deref() == Some("full")
                        && base.is_some()
                        && get(m, "checkpoint_lsn") == base
                })
            })
        }
    })
}

struct ServerBackupSnapshot {
    info: SourceInfo,
    meta: EntryMeta,
    path: PathBuf,
    _guard: FileGuard,
    parent: Option<String>,
    warnings: Vec<String>,
}

#[async_trait]
impl Snapshot for ServerBackupSnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        vec![EntrySpec::new(ENTRY, EntryKind::Dump, 0).with_meta_of(&self.meta)]
    }

    async fn read(&self, entry: &EntrySpec) -> Result<EntryData> {
        if entry.name != ENTRY {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no entry {:?}", entry.name),
            ));
        }
        let shown = self.path.display().to_string();
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| source_err(format!("cannot read {shown}: {e}")))?;
        Ok(EntryData::reader(file, shown))
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        Ok(SnapshotSummary {
            warnings: self.warnings.clone(),
            omitted: Vec::new(),
            ..Default::default()
        })
    }

    fn parent(&self) -> Option<String> {
        self.parent.clone()
    }
}

/// Restores server backups: writes the file into the shared directory and runs `RESTORE`.
#[derive(Clone)]
pub struct ServerBackupTarget {
    url: MsUrl,
    database: String,
    dir: SharedDir,
    data_dir: Option<String>,
    recovery: Recovery,
    replace: bool,
    stop_at: Option<StopAt>,
    keep_file: bool,
}

impl std::fmt::Debug for ServerBackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBackupTarget")
            .field("url", &self.url)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ServerBackupTarget {
    /// Restores into the URL's database, through `dir`.
    pub fn new(url: &str, dir: SharedDir) -> Result<Self> {
        let url: MsUrl = url.parse()?;
        Ok(Self {
            database: url.database().to_owned(),
            url,
            dir,
            data_dir: None,
            recovery: Recovery::Recovery,
            replace: false,
            stop_at: None,
            keep_file: false,
        })
    }

    /// Where the data and log files go on the server (`MOVE` of every file, named after the
    /// target database). Needed when restoring a copy next to the original.
    pub fn data_dir(mut self, dir: impl Into<String>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// `NORECOVERY` to apply differential or log backups next, `RECOVERY` (default) at the end.
    pub fn recovery(mut self, r: Recovery) -> Self {
        self.recovery = r;
        self
    }

    /// `REPLACE`: overwrite an existing database (off by default: the server refuses then).
    pub fn replace(mut self, yes: bool) -> Self {
        self.replace = yes;
        self
    }

    /// `STOPAT`: point-in-time recovery of a log backup.
    pub fn stop_at(mut self, t: StopAt) -> Self {
        self.stop_at = Some(t);
        self
    }

    /// Keep the file written into the shared directory (default: removed).
    pub fn keep_file(mut self, yes: bool) -> Self {
        self.keep_file = yes;
        self
    }
}

#[async_trait]
impl RestoreTarget for ServerBackupTarget {
    async fn begin(&self, manifest: &Manifest) -> Result<Box<dyn RestoreSession>> {
        if manifest.source.engine != SERVER_BACKUP_ENGINE {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "backup {} was taken by the {} engine; ServerBackupTarget restores server backups (mssql-native)",
                    manifest.backup_id, manifest.source.engine
                ),
            ));
        }
        let kind = manifest
            .source
            .position
            .get("kind")
            .cloned()
            .unwrap_or_else(|| "full".into());
        let mut c = connect_to(&self.url, "master", ErrorKind::Target).await?;
        let existed = rows(
            &mut c,
            &format!("SELECT DB_ID({})", literal(&self.database)?),
            ErrorKind::Target,
            "checking the target database",
        )
        .await?
        .first()
        .and_then(|r| text(r, 0))
        .is_some();
        if kind != "full" && !existed {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is a {kind} backup; restore its full backup into [{}] WITH NORECOVERY first (ServerBackupTarget::recovery(Recovery::NoRecovery))",
                    manifest.backup_id, self.database
                ),
            ));
        }
        Ok(Box::new(ServerBackupSession {
            target: self.clone(),
            client: tokio::sync::Mutex::new(c),
            kind,
            backup_id: manifest.backup_id.clone(),
            created: kind_creates(&manifest.source.position) && !existed,
        }))
    }
}

fn kind_creates(pos: &std::collections::BTreeMap<String, String>) -> bool {
    pos.get("kind").map(String::as_str).unwrap_or("full") == "full"
}

struct ServerBackupSession {
    target: ServerBackupTarget,
    client: tokio::sync::Mutex<MsClient>,
    kind: String,
    backup_id: String,
    created: bool,
}

#[async_trait]
impl RestoreSession for ServerBackupSession {
    async fn restore_entry(
        &self,
        entry: &EntryRecord,
        mut data: dbbackup_core::ByteStream,
    ) -> Result<Option<u64>> {
        if entry.name != ENTRY {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "server backups hold one entry {ENTRY:?}; found {:?}",
                    entry.name
                ),
            ));
        }
        let t = &self.target;
        let name = file_name(&t.database, "restore", &self.backup_id);
        let local = t.dir.local.join(&name);
        let server = t.dir.server_path(&name);
        let write_err = |e: std::io::Error| {
            Error::new(
                ErrorKind::Target,
                format!("cannot write {}: {e}", local.display()),
            )
        };
        let _guard = FileGuard {
            path: local.clone(),
            armed: !t.keep_file,
        };
        {
            use std::os::unix::fs::OpenOptionsExt;
            let std_file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                // The server's account must be able to read it (same group or a shared mount).
                .mode(0o640)
                .open(&local)
                .map_err(write_err)?;
            let mut file = tokio::fs::File::from_std(std_file);
            while let Some(chunk) = data.next().await {
                file.write_all(&chunk?).await.map_err(write_err)?;
            }
            file.flush().await.map_err(write_err)?;
            file.sync_all().await.map_err(write_err)?;
        }
        let files: Vec<(String, String, String)> = EntryMeta::read(entry)?
            .files
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| {
                Some((
                    f.logical?,
                    f.physical?,
                    f.kind.unwrap_or_else(|| "D".into()),
                ))
            })
            .collect();
        let sql = if self.kind == "log" {
            let mut r = RestoreLog::new(&t.database)
                .from(Device::Disk(server.clone()))
                .recovery(t.recovery.clone())
                .stats(10);
            if let Some(s) = t.stop_at {
                r = r.stop_at(s);
            }
            r.to_sql()?
        } else {
            let mut r = RestoreDatabase::new(&t.database)
                .from(Device::Disk(server.clone()))
                .recovery(t.recovery.clone())
                .replace(t.replace)
                .stats(10);
            if let Some(dir) = &t.data_dir {
                let probe = SharedDir::new(dir.clone(), PathBuf::new());
                for (i, (logical, physical, ty)) in files.iter().enumerate() {
                    let ext = Path::new(physical.rsplit(['/', '\\']).next().unwrap_or(""))
                        .extension()
                        .and_then(|e| e.to_str())
                        .map(str::to_owned)
                        .unwrap_or_else(|| {
                            if ty == "L" {
                                "ldf".into()
                            } else {
                                "ndf".into()
                            }
                        });
                    let file = format!("{}_{i}.{ext}", file_stem(&t.database));
                    r = r.move_file(logical.clone(), probe.server_path(&file));
                }
            }
            if let Some(s) = t.stop_at {
                r = r.stop_at(s);
            }
            r.to_sql()?
        };
        let mut c = self.client.lock().await;
        exec(
            &mut c,
            &sql,
            ErrorKind::Target,
            &format!("restoring backup {} into [{}]", self.backup_id, t.database),
        )
        .await?;
        Ok(None)
    }

    async fn finish(self: Box<Self>) -> Result<RestoreSummary> {
        Ok(RestoreSummary::default())
    }

    async fn abort(self: Box<Self>, _error: &Error) -> Result<()> {
        if !self.created {
            return Ok(());
        }
        // A failed restore of a full backup into a new name leaves a database in RESTORING
        // state (or nothing); drop it so a retry starts clean.
        let mut c = self.client.lock().await;
        let db = &self.target.database;
        exec(
            &mut c,
            &format!(
                "IF DB_ID({lit}) IS NOT NULL DROP DATABASE {id}",
                lit = literal(db)?,
                id = crate::quote::ident(db)?
            ),
            ErrorKind::Target,
            &format!("dropping [{db}] after the failed restore"),
        )
        .await
    }
}
