//! What the commands share: keys, the repository, labels, cancellation, skipped backups.

pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use dbbackup::{
    parse_keep_within, plan_grouped, Backup, BackupSelector, BackupStatus, CancellationToken,
    CatalogEntry, Error, ErrorKind, GroupBy, KeepPolicy, Key, MasterKey, Repository, Restore,
    Result, Sink, SkippedBackup, Verify, Zstd,
};
pub(crate) use serde_json::json;

pub(crate) use crate::cli::KeyArgs;
pub(crate) use crate::config::required;
pub(crate) use crate::output::{age, count, entries, human, Mode, Progress};

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

pub(crate) fn load_key(args: &KeyArgs) -> Result<Option<Key>> {
    key_from(args.passphrase_env.clone(), args.key_file.clone())
}

pub(crate) fn key_from(
    pass_env: Option<String>,
    key_file: Option<std::path::PathBuf>,
) -> Result<Option<Key>> {
    match (pass_env, key_file) {
        (Some(_), Some(_)) => Err(invalid(
            "give either a passphrase variable or a key file, not both",
        )),
        (Some(var), None) => {
            // A passphrase typed where the variable's name belongs must not be printed back.
            let is_name = !var.is_empty()
                && var.len() <= 128
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.as_bytes()[0].is_ascii_digit();
            if !is_name {
                return Err(invalid(
                    "--passphrase-env takes the NAME of an environment variable that holds the \
                     passphrase (letters, digits and _), and what was given is not a variable \
                     name (it is not shown, in case it is the passphrase itself): \
                     export BK_PASS='...' and pass --passphrase-env BK_PASS",
                ));
            }
            let p = std::env::var(&var)
                .map_err(|_| invalid(format!("the passphrase variable {var} is not set")))?;
            if p.is_empty() {
                return Err(invalid(format!("the passphrase variable {var} is empty")));
            }
            Ok(Some(Key::passphrase(p)))
        }
        (None, Some(path)) => Ok(Some(Key::raw(MasterKey::from_file(&path).map_err(
            |e| {
                if e.kind() == ErrorKind::NotFound {
                    invalid(format!("the key file {} does not exist", path.display()))
                } else {
                    e
                }
            },
        )?))),
        (None, None) => Ok(None),
    }
}

pub(crate) fn allow_unencrypted(args: &KeyArgs) -> bool {
    args.allow_unencrypted
}

/// Newer backups that `latest` passed over are shown, never only logged: silently using older
/// data is a failure mode.
pub(crate) fn report_skipped(skipped: &[SkippedBackup], json: bool) {
    for s in skipped {
        if json {
            eprintln!(
                "{}",
                json!({"event": "skipped", "backup_id": s.backup_id, "kind": s.kind, "reason": s.reason})
            );
        } else {
            eprintln!(
                "dbbackup: warning: passing over the newer backup {}: {}",
                s.backup_id, s.reason
            );
        }
    }
}

pub(crate) fn open_repo(url: Option<String>) -> Result<Arc<dyn Sink>> {
    let url = required(url, "repo", "DBBACKUP_REPO")?;
    dbbackup::open_sink(&url)
}

/// The existing repository of `repo` with the key of `key` (what `list`, `show` and `prune`
/// read).
pub(crate) async fn open_existing(
    repo: &crate::cli::RepoArgs,
    key: &KeyArgs,
) -> Result<Repository> {
    let r = Repository::new(open_repo(repo.repo.clone())?)
        .with_key(load_key(key)?)
        .allow_unencrypted(allow_unencrypted(key));
    r.check_exists().await?;
    Ok(r)
}

pub(crate) fn parse_labels(items: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(invalid(format!("{flag} {l:?} must look like KEY=VALUE"))),
        })
        .collect()
}

pub(crate) fn parse_selector(s: Option<String>) -> Result<BackupSelector> {
    s.as_deref().unwrap_or("latest").parse()
}

/// A token cancelled on SIGINT or SIGTERM, for the long-running commands (`wal-stream`,
/// `binlog-stream`): they stop cleanly, their last piece stored.
pub(crate) fn cancel_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
        t.cancel();
    });
    token
}

pub(crate) fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("dbbackup: interrupted; stopping (nothing half-done is kept)");
            t.cancel();
        }
    });
    token
}

/// A time as RFC 3339 (`2026-12-01T17:57:29.66Z`).
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// `url` with the password `--password-env` / `--password-file` give, when they do.
pub(crate) fn with_password(url: String, a: &crate::cli::PasswordArgs) -> Result<String> {
    let password = match (&a.password_env, &a.password_file) {
        (Some(var), _) => std::env::var(var).map_err(|_| {
            invalid(format!(
                "--password-env {var}: the environment variable {var} is not set"
            ))
        })?,
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| invalid(format!("--password-file {}: {e}", f.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        (None, None) => return Ok(url),
    };
    if url.starts_with("sqlite:") {
        return Err(invalid(
            "--password-env / --password-file are for database servers; a SQLite file has no password",
        ));
    }
    dbbackup::url_with_password(&url, &password)
}
