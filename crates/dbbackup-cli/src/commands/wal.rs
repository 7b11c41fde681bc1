//! `dbbackup wal-push` and `dbbackup wal-fetch`: PostgreSQL's `archive_command` and
//! `restore_command` over the repository's WAL archive ([`dbbackup::LogArchive`]).
//!
//! `wal-push` exits 0 when the file is archived (also when it already was, with the same
//! content: PostgreSQL retries), and non-zero otherwise, so PostgreSQL keeps the file and tries
//! again. `wal-fetch` exits 1 when the file is not archived, which PostgreSQL takes as the end of
//! the archive, and 126 on every other failure (damaged, refused, wrong key, storage down), which
//! makes PostgreSQL stop recovery rather than end it short and silently.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;
use dbbackup::{LogArchive, Pushed};

fn archive(repo: Option<String>, key: &KeyArgs) -> Result<LogArchive> {
    let repo = Repository::new(open_repo(repo)?)
        .with_key(load_key(key)?)
        .allow_unencrypted(allow_unencrypted(key));
    LogArchive::new(repo, dbbackup::postgres::WAL_ARCHIVE)
}

fn file_name(path: &std::path::Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("{} names no WAL file", path.display())))
}

/// Runs `wal-push`.
pub(crate) async fn push(a: crate::cli::WalPushArgs, json: bool) -> Result<ExitCode> {
    let name = file_name(&a.path)?;
    let data = tokio::fs::read(&a.path).await.map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot read {}: {e}", a.path.display()),
        )
    })?;
    let size = data.len();
    let pushed = archive(a.repo.repo, &a.key)?
        .push(&name, data.into())
        .await?;
    let what = match pushed {
        Pushed::Stored => "archived",
        Pushed::AlreadyArchived => "already archived (same content)",
    };
    if json {
        println!(
            "{}",
            json!({"ok": true, "command": "wal-push", "name": name, "bytes": size,
                   "already_archived": pushed == Pushed::AlreadyArchived})
        );
    } else {
        eprintln!("{name}: {what}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `wal-fetch`.
pub(crate) async fn fetch(a: crate::cli::WalFetchArgs, json: bool) -> Result<ExitCode> {
    let archive = archive(a.repo.repo, &a.key)?;
    let data = match archive.fetch(&a.name).await {
        Ok(d) => d,
        // A segment not archived yet may have been streamed in part (`wal-stream`): its newest
        // partial piece, zeros after the WAL received, ends recovery at its last record.
        Err(e) if e.kind() == ErrorKind::NotFound && a.name.len() == 24 => {
            let names = archive.names_starting(&a.name).await?;
            match dbbackup::postgres::newest_partial(names.iter().map(String::as_str), &a.name) {
                Some(p) => archive.fetch(&p).await?,
                None => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    // Written beside the destination and renamed, so PostgreSQL never reads half a file.
    let tmp = a.dest.with_file_name(format!(
        ".{}.dbbackup-{}",
        file_name(&a.dest).unwrap_or_else(|_| a.name.clone()),
        std::process::id()
    ));
    let io = |e: std::io::Error, what: &std::path::Path| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write {}: {e}", what.display()),
        )
    };
    tokio::fs::write(&tmp, &data)
        .await
        .map_err(|e| io(e, &tmp))?;
    if let Err(e) = tokio::fs::rename(&tmp, &a.dest).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io(e, &a.dest));
    }
    if json {
        println!(
            "{}",
            json!({"ok": true, "command": "wal-fetch", "name": a.name, "bytes": data.len()})
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A base backup and what the WAL archive can recover from it.
pub(crate) struct Recoverable {
    pub backup: dbbackup::postgres::PhysicalBackup,
    pub window: dbbackup::postgres::Window,
    /// The window on the backup's own timeline, when recovery would follow a later one.
    pub own: Option<dbbackup::postgres::Window>,
    /// When the window's last segment was archived.
    pub reaches_time: Option<time::OffsetDateTime>,
}

/// The physical base backups among `manifests`.
pub(crate) fn physical<'a>(
    manifests: impl Iterator<Item = &'a dbbackup::Manifest>,
) -> Result<Vec<dbbackup::postgres::PhysicalBackup>> {
    let mut out = Vec::new();
    for m in manifests {
        if let Some(b) = dbbackup::postgres::PhysicalBackup::of(m)? {
            out.push(b);
        }
    }
    Ok(out)
}

/// The recovery window of every base backup in `backups` (none: nothing is read).
pub(crate) async fn windows(
    repo: &Repository,
    backups: Vec<dbbackup::postgres::PhysicalBackup>,
) -> Result<Vec<Recoverable>> {
    if backups.is_empty() {
        return Ok(Vec::new());
    }
    let archive = LogArchive::new(repo.clone(), dbbackup::postgres::WAL_ARCHIVE)?;
    let wal = dbbackup::postgres::WalArchive::read(&archive).await?;
    let mut out = Vec::new();
    for b in backups {
        let window = wal.window(&b, None)?;
        let own = (window.timeline != b.timeline)
            .then(|| wal.window(&b, Some(b.timeline)))
            .transpose()?;
        let reaches_time = match &window.last {
            Some(l) => Some(archive.record(l).await?.archived_at),
            None => None,
        };
        out.push(Recoverable {
            backup: b,
            window,
            own,
            reaches_time,
        });
    }
    Ok(out)
}

impl Recoverable {
    /// One line for `list`.
    pub(crate) fn line(&self) -> String {
        let (b, w) = (&self.backup, &self.window);
        let mut line = format!(
            "recovery window of {} (timeline {}): from LSN {} (end of the backup, {})",
            b.backup_id,
            w.timeline,
            b.end_lsn,
            rfc3339(b.finished_at)
        );
        if w.restorable() {
            line.push_str(&format!(" to LSN {}", w.reaches));
            if let (Some(l), Some(t)) = (&w.last, self.reaches_time) {
                line.push_str(&format!(" (segment {l}, archived {})", rfc3339(t)));
            }
        } else {
            line.push_str(&format!(
                ": NOT RESTORABLE, {} is missing from the WAL archive",
                w.missing_needed
                    .as_deref()
                    .or(w.missing_history.as_deref())
                    .unwrap_or("-")
            ));
        }
        if let Some(g) = &w.gap {
            line.push_str(&format!("; GAP: {g} is missing, later WAL cannot be used"));
        }
        line
    }

    /// The same for `--json`.
    pub(crate) fn json(&self) -> serde_json::Value {
        let (b, w) = (&self.backup, &self.window);
        json!({"timeline": w.timeline, "from_lsn": b.end_lsn.to_string(),
               "from_time": rfc3339(b.finished_at), "restorable": w.restorable(),
               "to_lsn": w.restorable().then(|| w.reaches.to_string()),
               "to_time": self.reaches_time.filter(|_| w.restorable()).map(rfc3339),
               "first_segment": w.first, "last_segment": w.last, "gap": w.gap,
               "missing": w.missing_needed.clone().or(w.missing_history.clone())})
    }
}

/// Runs `wal-stream`: until SIGINT or SIGTERM.
pub(crate) async fn stream(a: crate::cli::WalStreamArgs, json: bool) -> Result<ExitCode> {
    let source = with_password(
        required(a.source.clone(), "source", "DBBACKUP_SOURCE")?,
        &a.password,
    )?;
    let archive = archive(a.repo.repo.clone(), &a.key)?;
    let every = match &a.partial_interval {
        Some(d) => dbbackup::parse_duration(d)?,
        None => Duration::from_secs(10),
    };
    let listener: dbbackup::postgres::StreamListener = Arc::new(move |e| {
        use dbbackup::postgres::StreamEvent as E;
        let line = match e {
            E::Connected { timeline, from } => {
                json!({"event": "connected", "timeline": timeline, "from_lsn": from.to_string()})
            }
            E::Archived { name } => json!({"event": "archived", "name": name}),
            E::Partial { name, upto } => {
                json!({"event": "partial", "name": name, "upto_lsn": upto.to_string()})
            }
            E::Gap { first, resumes } => {
                json!({"event": "gap", "first_missing": first, "resumes_at": resumes})
            }
            E::Lost { error, retry_in } => {
                json!({"event": "lost", "error": error, "retry_in_seconds": retry_in.as_secs_f64()})
            }
            _ => json!({"event": "other"}),
        };
        if json {
            println!("{line}");
        } else {
            let text = match e {
                E::Connected { timeline, from } => {
                    format!("streaming timeline {timeline} from {from}")
                }
                E::Archived { name } => format!("{name}: archived"),
                E::Partial { name, upto } => format!("{name}: archived up to {upto}"),
                E::Gap { first, resumes } => format!(
                    "WARNING: the WAL from {first} up to {resumes} is not in the archive and \
                     the server no longer has it: recovery cannot cross it; take a new base \
                     backup"
                ),
                E::Lost { error, retry_in } => format!(
                    "connection lost ({error}); retrying in {:.0}s",
                    retry_in.as_secs_f64()
                ),
                _ => String::new(),
            };
            eprintln!("wal-stream: {text}");
        }
    });
    let streamer = dbbackup::postgres::WalStreamer::new(&source, archive, &a.slot)?
        .create_slot(a.create_slot)
        .partial_interval(every)
        .on_event(listener);
    let cancel = cancel_on_signals();
    streamer.run(cancel).await?;
    Ok(ExitCode::SUCCESS)
}
