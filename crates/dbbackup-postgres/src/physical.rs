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

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use dbbackup_core::{
    ByteStream, EntryData, EntryKind, EntryRecord, EntrySpec, Error, ErrorKind, Manifest,
    RestoreSession, RestoreSummary, RestoreTarget, Result, Snapshot, SnapshotSummary, Source,
    SourceInfo,
};
use sqlx::ConnectOptions;

use crate::config::{PgUrl, ENGINE};
use crate::dump::{child_uri, server_major, CheckTool, Tools};
use crate::entry::{EntryMeta, Format};
use crate::error::pg_error;

/// The one entry of a physical base backup.
pub(crate) const BASE_TAR: &str = "base.tar";

/// A PostgreSQL cluster backed up physically by `pg_basebackup`.
#[derive(Debug, Clone)]
pub struct PgBaseBackupSource {
    url: PgUrl,
    tools: Tools,
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
        })
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
        let (archive_mode, archive_command, lsn, timeline, system): (
            String,
            String,
            String,
            String,
            String,
        ) = sqlx::query_as(
            "SELECT current_setting('archive_mode'), current_setting('archive_command'),
                    pg_current_wal_lsn()::text, (SELECT timeline_id FROM pg_control_checkpoint())::text,
                    (SELECT system_identifier FROM pg_control_system())::text",
        )
        .fetch_one(&mut c)
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read the server's WAL settings"))?;
        if archive_mode == "off" || archive_command.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Source,
                format!(
                    "the server does not archive its WAL (archive_mode = {archive_mode}, \
                     archive_command = {archive_command:?}): a base backup without the WAL \
                     archive cannot be restored. Set archive_mode = on and archive_command = \
                     'dbbackup wal-push %p --repo ... --key-file ...' (docs/POSTGRES.md), then \
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
        let mut position = std::collections::BTreeMap::new();
        position.insert(
            "tool".to_owned(),
            "pg_basebackup --format=tar --wal-method=none".to_owned(),
        );
        position.insert("start_lsn_at_least".to_owned(), lsn);
        position.insert("timeline".to_owned(), timeline);
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
        }))
    }
}

#[async_trait]
impl Snapshot for BaseSnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        vec![EntrySpec::new(BASE_TAR, EntryKind::Dump, 0)
            .with_meta_of(&EntryMeta::of(Format::BaseTar))]
    }

    async fn read(&self, _entry: &EntrySpec) -> Result<EntryData> {
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
        self.url.child_env(&mut cmd);
        Ok(EntryData::bytes(dbbackup_core::tool::stream_stdout(
            cmd,
            "pg_basebackup",
            ErrorKind::Source,
        )?))
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        Ok(SnapshotSummary::default())
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
        }
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
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(e, &self.dir))?;
        }
        Ok(Box::new(DataDirSession {
            target: self.clone(),
        }))
    }
}

#[async_trait]
impl RestoreSession for DataDirSession {
    async fn restore_entry(&self, entry: &EntryRecord, data: ByteStream) -> Result<Option<u64>> {
        if EntryMeta::read(entry)?.format != Format::BaseTar {
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
        let dir = &self.target.dir;
        let mut warnings = Vec::new();
        let version = std::fs::read_to_string(dir.join("PG_VERSION"))
            .map_err(|e| io(e, &dir.join("PG_VERSION")))?;
        let major: u32 = version.trim().parse().unwrap_or(0);
        // The server's own manifest: every file's size and checksum (WAL is checked by recovery).
        // Debian keeps it out of PATH, in the server's own directory.
        let found = match self.target.tools.check("pg_verifybackup", major).await {
            Ok(t) => Ok(t),
            Err(e) => Tools::in_dir(format!("/usr/lib/postgresql/{major}/bin"))
                .check("pg_verifybackup", major)
                .await
                .map_err(|_| e),
        };
        match found {
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
            conf_literal(&self.target.restore_command)
        ));
        match &self.target.target {
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
        if self.target.target.is_some() {
            conf.push_str("recovery_target_action = 'promote'\n");
        }
        if let Some(tl) = &self.target.timeline {
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
