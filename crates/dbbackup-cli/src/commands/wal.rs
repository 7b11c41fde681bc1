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
    LogArchive::new(repo, "wal")
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
    let data = archive(a.repo.repo, &a.key)?.fetch(&a.name).await?;
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
