//! Physical base backups and their restore into a data directory.
//!
//! The backup drives `pg_basebackup --format=tar --pgdata=- --wal-method=none` over the
//! replication protocol (no access to the server's files is needed): the base tablespace as one
//! tar stream, the server's `backup_manifest` inside it, through the pipeline with no copy on
//! disk. Its WAL comes from the repository's WAL archive (`wal-push`), so a server that does not
//! archive is refused: such a base backup could never be restored.
//!
//! The restore unpacks the tar into an empty directory, checks it against its `backup_manifest`
//! with `pg_verifybackup` (where installed), and writes the recovery settings: `recovery.signal`,
//! a `restore_command` calling `dbbackup wal-fetch`, and the recovery target if one is given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dbbackup_core::{
    ByteStream, EntryData, EntryKind, EntryRecord, EntrySpec, Error, ErrorKind, LogArchive,
    Manifest, RestoreSession, RestoreSummary, RestoreTarget, Result, Snapshot, SnapshotSummary,
    Source, SourceInfo,
};
use futures::TryStreamExt;
use sqlx::ConnectOptions;

use crate::config::{PgUrl, ENGINE};
use crate::dump::{child_uri, server_major, CheckTool, Tools};
use crate::entry::{EntryMeta, Format};
use crate::error::pg_error;

/// The entry of a physical base backup that holds the data directory.
pub(crate) const BASE_TAR: &str = "base.tar";
/// The entry that holds the server's `backup_manifest` (also inside `base.tar`).
pub const BASE_MANIFEST: &str = "backup_manifest";

/// A PostgreSQL cluster backed up physically by `pg_basebackup`.
#[derive(Debug, Clone)]
pub struct PgBaseBackupSource {
    url: PgUrl,
    tools: Tools,
    incremental: Option<Parent>,
}

/// The base backup an incremental one builds on.
#[derive(Debug, Clone)]
struct Parent {
    backup_id: String,
    system_identifier: Option<String>,
    manifest: bytes::Bytes,
}

/// A file removed when dropped.
#[derive(Debug)]
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl PgBaseBackupSource {
    /// The cluster at `url` (a user with the REPLICATION attribute and a `replication` line in
    /// `pg_hba.conf`), with `pg_basebackup` from `PATH`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        Ok(PgBaseBackupSource {
            url: url.parse()?,
            tools: Tools::from_path(),
            incremental: None,
        })
    }

    /// An incremental base backup (PostgreSQL 17+, `summarize_wal = on`) on top of the base
    /// backup `parent` (a trusted manifest), whose `backup_manifest` entry is `parent_manifest`
    /// ([`read_base_manifest`]). It records `parent` as its parent, so retention keeps the
    /// chain, and restoring it combines the chain (`pg_combinebackup`).
    pub fn incremental(mut self, parent: &Manifest, parent_manifest: bytes::Bytes) -> Self {
        self.incremental = Some(Parent {
            backup_id: parent.backup_id.clone(),
            system_identifier: parent.source.position.get("system_identifier").cloned(),
            manifest: parent_manifest,
        });
        self
    }

    /// Where the tools are.
    pub fn with_tools(mut self, tools: Tools) -> Self {
        self.tools = tools;
        self
    }
}

struct BaseSnapshot {
    info: SourceInfo,
    url: PgUrl,
    tool: PathBuf,
    /// The parent's id and its manifest, written for `--incremental`.
    parent: Option<(String, TempFile)>,
    /// Set when `base.tar` has streamed to its end (the manifest entry waits for it).
    done: tokio::sync::watch::Sender<bool>,
    /// The members of the tar stream the manifest needs, caught as they pass.
    watch: Arc<Mutex<TarWatch>>,
}

/// The small files of a tar stream worth keeping (`backup_label`, `backup_manifest`), caught as
/// the stream passes through: the tar is never stored or parsed twice.
#[derive(Debug, Default)]
pub(crate) struct TarWatch {
    header: Vec<u8>,
    remaining: u64,
    padding: u64,
    current: Option<String>,
    /// The members caught, by name.
    pub(crate) files: BTreeMap<String, Vec<u8>>,
    /// A header that could not be read: nothing more is caught.
    pub(crate) lost: bool,
}

/// The members [`TarWatch`] keeps, and the most it keeps of each.
const WATCHED: [&str; 2] = ["backup_label", "backup_manifest"];
const WATCH_LIMIT: u64 = 256 << 20;

fn tar_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256.
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn tar_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

impl TarWatch {
    /// Follows `block` of the stream.
    pub(crate) fn feed(&mut self, mut block: &[u8]) {
        while !block.is_empty() && !self.lost {
            if self.remaining > 0 {
                let n = (self.remaining.min(block.len() as u64)) as usize;
                if let Some(name) = &self.current {
                    self.files
                        .entry(name.clone())
                        .or_default()
                        .extend_from_slice(&block[..n]);
                }
                self.remaining -= n as u64;
                block = &block[n..];
                if self.remaining == 0 {
                    self.current = None;
                }
                continue;
            }
            if self.padding > 0 {
                let n = (self.padding.min(block.len() as u64)) as usize;
                self.padding -= n as u64;
                block = &block[n..];
                continue;
            }
            let n = (512 - self.header.len()).min(block.len());
            self.header.extend_from_slice(&block[..n]);
            block = &block[n..];
            if self.header.len() < 512 {
                continue;
            }
            let h = std::mem::take(&mut self.header);
            if h.iter().all(|&b| b == 0) {
                continue;
            }
            let Some(size) = tar_number(&h[124..136]) else {
                self.lost = true;
                continue;
            };
            let mut name = tar_text(&h[0..100]);
            if &h[257..262] == b"ustar" {
                let prefix = tar_text(&h[345..500]);
                if !prefix.is_empty() {
                    name = format!("{prefix}/{name}");
                }
            }
            let regular = matches!(h[156], b'0' | 0);
            self.remaining = size;
            self.padding = (512 - size % 512) % 512;
            self.current = (regular
                && size <= WATCH_LIMIT
                && WATCHED.contains(&name.trim_start_matches("./")))
            .then(|| name.trim_start_matches("./").to_owned());
            if size == 0 {
                if let Some(n) = self.current.take() {
                    self.files.entry(n).or_default();
                }
            }
        }
    }
}

/// What a base backup's `backup_manifest` says of its WAL: the timeline and LSN it starts at,
/// and the timeline and LSN it ends at (`WAL-Ranges`).
pub(crate) fn manifest_wal_range(manifest: &[u8]) -> Result<(u32, String, u32, String)> {
    #[derive(serde::Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "Start-LSN")]
        start: String,
        #[serde(rename = "End-LSN")]
        end: String,
    }
    #[derive(serde::Deserialize)]
    struct M {
        #[serde(rename = "WAL-Ranges")]
        ranges: Vec<Range>,
    }
    let m: M = serde_json::from_slice(manifest).map_err(|e| {
        Error::new(
            ErrorKind::Source,
            format!("the server's backup_manifest is unreadable: {e}"),
        )
    })?;
    // The ranges run from the newest timeline back to the oldest (a backup of a standby can
    // cross a timeline switch).
    let (Some(newest), Some(oldest)) = (m.ranges.first(), m.ranges.last()) else {
        return Err(Error::new(
            ErrorKind::Source,
            "the server's backup_manifest names no WAL range",
        ));
    };
    Ok((
        oldest.timeline,
        oldest.start.clone(),
        newest.timeline,
        newest.end.clone(),
    ))
}

#[async_trait]
impl Source for PgBaseBackupSource {
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        let (major, version) = server_major(&self.url).await?;
        let tool = self.tools.check("pg_basebackup", major).await?;
        let mut c = self.url.options.connect().await.map_err(|e| {
            pg_error(
                e,
                ErrorKind::Source,
                &format!("cannot connect to {}", self.url),
            )
        })?;
        let (archive_mode, archive_command, timeline, system, segment_size): (
            String,
            String,
            String,
            String,
            String,
        ) = sqlx::query_as(
            "SELECT current_setting('archive_mode'), current_setting('archive_command'),
                    (SELECT timeline_id FROM pg_control_checkpoint())::text,
                    (SELECT system_identifier FROM pg_control_system())::text,
                    (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')",
        )
        .fetch_one(&mut c)
        .await
        .map_err(|e| {
            pg_error(
                e,
                ErrorKind::Source,
                "cannot read the server's WAL settings",
            )
        })?;
        // WAL reaches the archive through archive_command or a streaming slot (wal-stream).
        let streaming: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_type = 'physical' AND active)",
        )
        .fetch_one(&mut c)
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read pg_replication_slots"))?;
        let archiving = archive_mode != "off" && !archive_command.trim().is_empty();
        if !archiving && !streaming {
            return Err(Error::new(
                ErrorKind::Source,
                format!(
                    "the server does not archive its WAL (archive_mode = {archive_mode}, \
                     archive_command = {archive_command:?}, and no physical replication slot is \
                     being streamed): a base backup without the WAL archive cannot be restored. \
                     Set archive_mode = on and archive_command = 'dbbackup wal-push %p --repo \
                     ... --key-file ...', or run dbbackup wal-stream (docs/POSTGRES.md), then \
                     back up"
                ),
            ));
        }
        // pg_basebackup waits until the backup's last WAL segment is archived: with a failing
        // archiver it would wait for ever.
        let failing: Option<(String, String)> = sqlx::query_as(
            "SELECT last_failed_wal, last_failed_time::text FROM pg_stat_archiver
             WHERE last_failed_time IS NOT NULL
               AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)",
        )
        .fetch_optional(&mut c)
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read pg_stat_archiver"))?;
        if let Some((wal, at)) = failing {
            return Err(Error::new(
                ErrorKind::Source,
                format!(
                    "the server's archive_command is failing (last failure: {wal} at {at}, and \
                     nothing archived since): a base backup would wait for its WAL for ever. Fix \
                     the archiving (the server log says why), then back up"
                ),
            ));
        }
        let parent = match &self.incremental {
            None => None,
            Some(p) => {
                if major < 17 {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "incremental base backups need PostgreSQL 17 or later; {} runs \
                             {version}: take full base backups",
                            self.url
                        ),
                    ));
                }
                let summarize: String =
                    sqlx::query_scalar("SELECT current_setting('summarize_wal')")
                        .fetch_one(&mut c)
                        .await
                        .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read summarize_wal"))?;
                if summarize != "on" {
                    return Err(Error::new(
                        ErrorKind::Source,
                        "an incremental base backup needs summarize_wal = on on the server \
                         (set it, reload, and take a full base backup for the summaries to \
                         start from)",
                    ));
                }
                if p.system_identifier.as_ref().is_some_and(|s| *s != system) {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the parent base backup {} is of another cluster (system identifier \
                             {}, this server's is {system}): take a full base backup",
                            p.backup_id,
                            p.system_identifier.as_deref().unwrap_or("-")
                        ),
                    ));
                }
                let path = std::env::temp_dir().join(format!(
                    "dbbackup-parent-manifest-{}-{}",
                    std::process::id(),
                    p.backup_id
                ));
                let file = TempFile(path.clone());
                {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&path)
                        .and_then(|mut f| f.write_all(&p.manifest))
                        .map_err(|e| {
                            Error::new(
                                ErrorKind::Io,
                                format!("cannot write {}: {e}", path.display()),
                            )
                        })?;
                }
                Some((p.backup_id.clone(), file))
            }
        };
        let mut position = std::collections::BTreeMap::new();
        position.insert(
            "tool".to_owned(),
            if parent.is_some() {
                "pg_basebackup --format=tar --wal-method=none --incremental"
            } else {
                "pg_basebackup --format=tar --wal-method=none"
            }
            .to_owned(),
        );
        position.insert("timeline".to_owned(), timeline);
        position.insert("wal_segment_size".to_owned(), segment_size);
        position.insert("system_identifier".to_owned(), system);
        Ok(Box::new(BaseSnapshot {
            info: SourceInfo {
                engine: ENGINE.into(),
                server_version: Some(version),
                database: None,
                server: dbbackup_core::url_server(&self.url.redacted),
                position,
            },
            url: self.url.clone(),
            tool,
            parent,
            done: tokio::sync::watch::Sender::new(false),
            watch: Arc::default(),
        }))
    }
}

impl BaseSnapshot {
    fn manifest(&self) -> Result<Vec<u8>> {
        self.watch
            .lock()
            .ok()
            .and_then(|w| w.files.get("backup_manifest").cloned())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Source,
                    "pg_basebackup's tar stream held no backup_manifest: the backup cannot say \
                     which WAL it needs, and cannot be checked on restore",
                )
            })
    }
}

#[async_trait]
impl Snapshot for BaseSnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        vec![
            EntrySpec::new(BASE_TAR, EntryKind::Dump, 0)
                .with_meta_of(&EntryMeta::of(Format::BaseTar)),
            EntrySpec::new(BASE_MANIFEST, EntryKind::Other, 0)
                .with_meta_of(&EntryMeta::of(Format::BaseManifest)),
        ]
    }

    fn parent(&self) -> Option<String> {
        self.parent.as_ref().map(|p| p.0.clone())
    }

    async fn read(&self, entry: &EntrySpec) -> Result<EntryData> {
        if entry.name == BASE_MANIFEST {
            // Caught from base.tar as it streamed: wait for its end.
            let mut done = self.done.subscribe();
            done.wait_for(|d| *d).await.map_err(|_| {
                Error::new(
                    ErrorKind::Source,
                    "the base backup ended before its manifest",
                )
            })?;
            let manifest = self.manifest()?;
            return Ok(EntryData::bytes(Box::pin(futures::stream::once(
                futures::future::ready(Ok(bytes::Bytes::from(manifest))),
            ))));
        }
        let uri = child_uri(&self.url, self.url.database());
        let mut cmd = dbbackup_core::tool::command(&self.tool);
        cmd.args([
            "--format=tar",
            "--pgdata=-",
            "--wal-method=none",
            "--checkpoint=fast",
            "--label=dbbackup",
            "--no-password",
            "--dbname",
            &uri,
        ]);
        if let Some((_, file)) = &self.parent {
            cmd.arg(format!("--incremental={}", file.0.display()));
        }
        self.url.child_env(&mut cmd);
        let watch = self.watch.clone();
        let done = self.done.clone();
        let stream = dbbackup_core::tool::stream_stdout(cmd, "pg_basebackup", ErrorKind::Source)?
            .map_ok(move |b| {
                if let Ok(mut w) = watch.lock() {
                    w.feed(&b);
                }
                b
            });
        // After the last block (and pg_basebackup's exit status), the manifest is complete.
        let end = futures::StreamExt::filter_map(
            futures::stream::once(async move {
                done.send_replace(true);
                None
            }),
            futures::future::ready,
        );
        Ok(EntryData::bytes(Box::pin(futures::StreamExt::chain(
            stream, end,
        ))))
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        let manifest = self.manifest()?;
        let (start_tli, start, end_tli, end) = manifest_wal_range(&manifest)?;
        let mut summary = SnapshotSummary::default();
        summary.position.insert("start_lsn".into(), start);
        summary
            .position
            .insert("start_timeline".into(), start_tli.to_string());
        summary.position.insert("end_lsn".into(), end);
        summary
            .position
            .insert("timeline".into(), end_tli.to_string());
        Ok(summary)
    }
}

/// Where recovery stops (`recovery_target_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// `recovery_target_time`: a timestamp with a time zone (RFC 3339 or PostgreSQL's text).
    Time(String),
    /// `recovery_target_lsn`.
    Lsn(String),
    /// `recovery_target_name`: a restore point made with `pg_create_restore_point`.
    Name(String),
    /// `recovery_target_xid`.
    Xid(String),
}

/// A physical base backup restored into a new data directory, set up to recover from the WAL
/// archive.
#[derive(Debug, Clone)]
pub struct PgDataDirTarget {
    dir: PathBuf,
    restore_command: String,
    target: Option<RecoveryTarget>,
    timeline: Option<String>,
    tools: Tools,
    archive: Option<LogArchive>,
    unpack_only: bool,
}

impl PgDataDirTarget {
    /// Restores into `dir` (missing or empty), with `restore_command` (PostgreSQL's, with `%f`
    /// and `%p`) for the recovery.
    pub fn new(dir: impl Into<PathBuf>, restore_command: impl Into<String>) -> Self {
        PgDataDirTarget {
            dir: dir.into(),
            restore_command: restore_command.into(),
            target: None,
            timeline: None,
            tools: Tools::from_path(),
            archive: None,
            unpack_only: false,
        }
    }

    /// Only unpacks the backup (a member of an incremental chain, before
    /// [`combine`](Self::combine)): no check against the archive, no recovery settings, and an
    /// incremental backup is accepted.
    pub fn unpack_only(mut self) -> Self {
        self.unpack_only = true;
        self
    }

    /// Restores an incremental chain: `parts` are its members unpacked with
    /// [`unpack_only`](Self::unpack_only), the full backup first and `tip` (the manifest of the
    /// last) last. Checks the archive for `tip`'s WAL, combines them into this target's
    /// directory with `pg_combinebackup` (17+), then checks and prepares it as a restore of a
    /// full backup does.
    ///
    /// # Errors
    /// As a restore; [`ErrorKind::Target`] when `pg_combinebackup` fails (its message).
    pub async fn combine(&self, tip: &Manifest, parts: &[PathBuf]) -> Result<RestoreSummary> {
        let mut warnings = self.check_archive(tip).await?;
        self.prepare_dir()?;
        // pg_combinebackup creates the output directory itself.
        std::fs::remove_dir(&self.dir).map_err(|e| io(e, &self.dir))?;
        let version = std::fs::read_to_string(parts[0].join("PG_VERSION"))
            .map_err(|e| io(e, &parts[0].join("PG_VERSION")))?;
        let major: u32 = version.trim().parse().unwrap_or(0);
        let tool = self.server_tool("pg_combinebackup", major).await?;
        let mut cmd = dbbackup_core::tool::command(&tool);
        cmd.args(parts).arg("--output").arg(&self.dir);
        let out = cmd.output().await.map_err(|e| {
            Error::new(
                ErrorKind::Target,
                format!("cannot run pg_combinebackup: {e}"),
            )
        })?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&self.dir);
            return Err(Error::new(
                ErrorKind::Target,
                format!(
                    "pg_combinebackup failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        let mut summary = self.finalize().await?;
        warnings.append(&mut summary.warnings);
        summary.warnings = warnings;
        Ok(summary)
    }

    /// Checks the restored directory against its `backup_manifest` and writes the recovery
    /// settings.
    async fn finalize(&self) -> Result<RestoreSummary> {
        let dir = &self.dir;
        let mut warnings = Vec::new();
        let version = std::fs::read_to_string(dir.join("PG_VERSION"))
            .map_err(|e| io(e, &dir.join("PG_VERSION")))?;
        let major: u32 = version.trim().parse().unwrap_or(0);
        // The server's own manifest: every file's size and checksum (WAL is checked by recovery).
        // Debian keeps it out of PATH, in the server's own directory.
        match self.server_tool("pg_verifybackup", major).await {
            Ok(tool) => {
                let mut cmd = dbbackup_core::tool::command(&tool);
                cmd.args(["--no-parse-wal", "--quiet"]).arg(dir);
                let out = cmd.output().await.map_err(|e| {
                    Error::new(
                        ErrorKind::Target,
                        format!("cannot run pg_verifybackup: {e}"),
                    )
                })?;
                if !out.status.success() {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "the restored base backup does not match its backup_manifest: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    ));
                }
            }
            Err(e) => warnings.push(format!(
                "the base backup was not checked against its backup_manifest: {e}"
            )),
        }
        std::fs::write(dir.join("recovery.signal"), b"").map_err(|e| io(e, dir))?;
        let mut conf = String::from(
            "\n# Written by dbbackup restore: recovery from the repository's WAL archive.\n",
        );
        conf.push_str(&format!(
            "restore_command = {}\n",
            conf_literal(&self.restore_command)
        ));
        match &self.target {
            Some(RecoveryTarget::Time(t)) => {
                conf.push_str(&format!("recovery_target_time = {}\n", conf_literal(t)));
            }
            Some(RecoveryTarget::Lsn(l)) => {
                conf.push_str(&format!("recovery_target_lsn = {}\n", conf_literal(l)));
            }
            Some(RecoveryTarget::Name(n)) => {
                conf.push_str(&format!("recovery_target_name = {}\n", conf_literal(n)));
            }
            Some(RecoveryTarget::Xid(x)) => {
                conf.push_str(&format!("recovery_target_xid = {}\n", conf_literal(x)));
            }
            None => {}
        }
        if self.target.is_some() {
            conf.push_str("recovery_target_action = 'promote'\n");
        }
        if let Some(tl) = &self.timeline {
            conf.push_str(&format!(
                "recovery_target_timeline = {}\n",
                conf_literal(tl)
            ));
        }
        let auto = dir.join("postgresql.auto.conf");
        let mut existing = std::fs::read_to_string(&auto).unwrap_or_default();
        existing.push_str(&conf);
        std::fs::write(&auto, existing).map_err(|e| io(e, &auto))?;
        Ok(RestoreSummary { warnings })
    }

    /// A server tool of `major`: from the tools' directory or PATH, else Debian's
    /// `/usr/lib/postgresql/N/bin`.
    async fn server_tool(&self, name: &str, major: u32) -> Result<PathBuf> {
        match self.tools.check(name, major).await {
            Ok(t) => Ok(t),
            Err(e) => Tools::in_dir(format!("/usr/lib/postgresql/{major}/bin"))
                .check(name, major)
                .await
                .map_err(|_| e),
        }
    }

    async fn check_archive(&self, manifest: &Manifest) -> Result<Vec<String>> {
        let Some(archive) = &self.archive else {
            return Ok(Vec::new());
        };
        let b = crate::wal::PhysicalBackup::of(manifest)?
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "not a physical base backup"))?;
        crate::wal::check_restore(archive, &b, self.target.as_ref(), self.timeline.as_deref()).await
    }

    /// Creates the directory, or checks that it is empty; mode 0700.
    fn prepare_dir(&self) -> Result<()> {
        match std::fs::read_dir(&self.dir) {
            Ok(mut d) => {
                if d.next().is_some() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{} is not empty: a base backup is restored into a new or empty \
                             directory only",
                            self.dir.display()
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(|e| io(e, &self.dir))?;
            }
            Err(e) => return Err(io(e, &self.dir)),
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(e, &self.dir))
    }

    /// Checks, before anything is written, that `archive` (the repository's WAL archive, which
    /// the `restore_command` reads) holds the WAL this restore replays: the backup's own, and no
    /// gap before the target ([`crate::wal::check_restore`]).
    pub fn with_archive(mut self, archive: LogArchive) -> Self {
        self.archive = Some(archive);
        self
    }

    /// Recovers to `target` instead of the end of the archive.
    pub fn recovery_target(mut self, target: Option<RecoveryTarget>) -> Self {
        self.target = target;
        self
    }

    /// `recovery_target_timeline` (`latest`, the default, or a number).
    pub fn timeline(mut self, timeline: Option<String>) -> Self {
        self.timeline = timeline;
        self
    }

    /// Where `pg_verifybackup` is looked for.
    pub fn with_tools(mut self, tools: Tools) -> Self {
        self.tools = tools;
        self
    }
}

fn io(e: std::io::Error, what: &Path) -> Error {
    Error::new(ErrorKind::Target, format!("{}: {e}", what.display()))
}

/// A value for postgresql.conf.
fn conf_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

struct DataDirSession {
    target: PgDataDirTarget,
    warnings: Vec<String>,
}

#[async_trait]
impl RestoreTarget for PgDataDirTarget {
    async fn begin(&self, manifest: &Manifest) -> Result<Box<dyn RestoreSession>> {
        let physical = manifest
            .entries
            .iter()
            .any(|e| EntryMeta::read(e).is_ok_and(|m| m.format == Format::BaseTar));
        if manifest.source.engine != ENGINE || !physical {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is not a physical PostgreSQL base backup; a data directory takes \
                 only those (restore a logical backup with --target postgres://...)",
                    manifest.backup_id
                ),
            ));
        }
        if manifest.parent.is_some() && !self.unpack_only {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is an incremental base backup: it is restored with its chain \
                     (dbbackup restore does; in the library, unpack each member with \
                     unpack_only and combine them)",
                    manifest.backup_id
                ),
            ));
        }
        let warnings = if self.unpack_only {
            Vec::new()
        } else {
            self.check_archive(manifest).await?
        };
        self.prepare_dir()?;
        Ok(Box::new(DataDirSession {
            target: self.clone(),
            warnings,
        }))
    }
}

#[async_trait]
impl RestoreSession for DataDirSession {
    async fn restore_entry(&self, entry: &EntryRecord, data: ByteStream) -> Result<Option<u64>> {
        let format = EntryMeta::read(entry)?.format;
        if format == Format::BaseManifest {
            // base.tar holds it too; read to the end so its checksum is checked.
            let mut data = data;
            while data.try_next().await?.is_some() {}
            return Ok(None);
        }
        if format != Format::BaseTar {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("entry {} is not a base backup", entry.name),
            ));
        }
        let mut cmd = dbbackup_core::tool::command("tar");
        cmd.args(["--extract", "--file=-", "--no-same-owner", "--directory"])
            .arg(&self.target.dir);
        dbbackup_core::tool::feed_stdin(cmd, "tar", data, ErrorKind::Target).await?;
        Ok(None)
    }

    async fn finish(self: Box<Self>) -> Result<RestoreSummary> {
        if self.target.unpack_only {
            return Ok(RestoreSummary {
                warnings: self.warnings.clone(),
            });
        }
        let mut summary = self.target.finalize().await?;
        let mut warnings = self.warnings.clone();
        warnings.append(&mut summary.warnings);
        summary.warnings = warnings;
        Ok(summary)
    }

    async fn abort(self: Box<Self>, _error: &Error) -> Result<()> {
        // Half a data directory must never be started: it is emptied (the directory stays).
        if let Ok(entries) = std::fs::read_dir(&self.target.dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        Ok(())
    }
}

/// The `backup_manifest` entry of the base backup `backup_id` (the parent an incremental
/// backup is taken against), read, decrypted and checked like any entry.
///
/// # Errors
/// [`ErrorKind::NotFound`] for a base backup without that entry (taken by an older build: take
/// a full base backup); read errors as for a restore.
pub async fn read_base_manifest(
    sink: std::sync::Arc<dyn dbbackup_core::Sink>,
    key: Option<dbbackup_core::Key>,
    allow_unencrypted: bool,
    backup_id: &str,
) -> Result<bytes::Bytes> {
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Option<Vec<u8>>>>);
    struct CaptureSession(Capture);
    #[async_trait]
    impl RestoreTarget for Capture {
        async fn begin(&self, _m: &Manifest) -> Result<Box<dyn RestoreSession>> {
            Ok(Box::new(CaptureSession(self.clone())))
        }
    }
    #[async_trait]
    impl RestoreSession for CaptureSession {
        async fn restore_entry(&self, _e: &EntryRecord, data: ByteStream) -> Result<Option<u64>> {
            let mut data = data;
            let mut all = Vec::new();
            while let Some(b) = data.try_next().await? {
                all.extend_from_slice(&b);
            }
            if let Ok(mut c) = self.0 .0.lock() {
                *c = Some(all);
            }
            Ok(None)
        }
        async fn finish(self: Box<Self>) -> Result<RestoreSummary> {
            Ok(RestoreSummary::default())
        }
        async fn abort(self: Box<Self>, _error: &Error) -> Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let mut r = dbbackup_core::Restore::builder()
        .sink(sink)
        .backup(dbbackup_core::BackupSelector::Id(backup_id.to_owned()))
        .allow_unencrypted(allow_unencrypted)
        .filter(|e| e.name == BASE_MANIFEST)
        .target(capture.clone());
    if let Some(k) = key {
        r = r.key(k);
    }
    let missing = || {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "base backup {backup_id} does not keep its backup_manifest apart (taken by an \
                 older build): an incremental backup cannot be taken against it; take a full \
                 base backup"
            ),
        )
    };
    match r.build()?.run().await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::InvalidInput => {
            return Err(missing())
        }
        Err(e) => return Err(e),
    }
    let got = capture.0.lock().ok().and_then(|mut c| c.take());
    got.map(bytes::Bytes::from).ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_catches_the_label_and_manifest_of_a_tar_in_any_chunking() {
        let dir = std::env::temp_dir().join(format!("dbbackup-tarwatch-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("global")).unwrap();
        std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
        std::fs::write(dir.join("global/big"), vec![7u8; 70_000]).unwrap();
        std::fs::write(dir.join("backup_label"), "START WAL LOCATION: 0/2000028\n").unwrap();
        let manifest = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "WAL-Ranges": [
            { "Timeline": 2, "Start-LSN": "0/5000028", "End-LSN": "0/5000100" }]}"#;
        std::fs::write(dir.join("backup_manifest"), manifest).unwrap();
        let out = std::process::Command::new("tar")
            .args(["--create", "--file=-", "--format=ustar", "--directory"])
            .arg(&dir)
            .args(["PG_VERSION", "global", "backup_label", "./backup_manifest"])
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(out.status.success());
        for chunk in [1, 7, 512, 4096, 1 << 20] {
            let mut w = TarWatch::default();
            for c in out.stdout.chunks(chunk) {
                w.feed(c);
            }
            assert!(!w.lost);
            assert_eq!(w.files.len(), 2, "{chunk}: {:?}", w.files.keys());
            assert_eq!(w.files["backup_manifest"], manifest.to_vec());
            let (a, start, b, end) = manifest_wal_range(&w.files["backup_manifest"]).unwrap();
            assert_eq!(
                (a, start.as_str(), b, end.as_str()),
                (2, "0/5000028", 2, "0/5000100")
            );
        }
    }
}
