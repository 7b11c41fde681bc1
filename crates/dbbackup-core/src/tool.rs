//! Running an external tool (a dump program, a database client) as part of a pipeline: its stdout
//! becomes an entry's stream, or an entry's stream becomes its stdin. A non-zero exit, with the
//! tool's stderr in the message, fails the operation; so does a dump that produced nothing.

use std::process::Stdio;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::error::{Error, ErrorKind, Result};
use crate::sink::ByteStream;

/// Reads a child's stderr to the end in a task, for the error message should the child fail.
pub fn collect_stderr(
    stderr: Option<tokio::process::ChildStderr>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s).await;
        }
        s
    })
}

/// Spawns `cmd` and streams its stdout in chunks of up to 1 MiB. The stream ends with an error
/// of `kind` if the tool exits non-zero or writes nothing. `name` names the tool in messages.
///
/// # Errors
/// When the tool cannot be started.
pub fn stream_stdout(mut cmd: Command, name: &str, kind: ErrorKind) -> Result<ByteStream> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(kind, format!("cannot start {name}: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = collect_stderr(child.stderr.take());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
    let name = name.to_owned();
    tokio::spawn(async move {
        let mut total = 0u64;
        loop {
            let mut buf = vec![0u8; 1 << 20];
            match stdout.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    buf.truncate(n);
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                        let _ = child.kill().await;
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx
                        .send(Err(Error::new(
                            kind,
                            format!("reading {name}'s output failed: {e}"),
                        )))
                        .await;
                    let _ = child.kill().await;
                    return;
                }
            }
        }
        let status = child.wait().await;
        let stderr = stderr.await.unwrap_or_default();
        let failure = match status {
            Ok(s) if s.success() && total > 0 => None,
            Ok(s) if s.success() => Some(format!(
                "{name} exited successfully but wrote nothing; refusing to store an empty dump"
            )),
            Ok(s) => Some(format!("{name} failed ({s}): {}", stderr.trim())),
            Err(e) => Some(format!("waiting for {name} failed: {e}")),
        };
        if let Some(msg) = failure {
            let _ = tx.send(Err(Error::new(kind, msg))).await;
        }
    });
    Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|i| (i, rx))
    })))
}

/// Spawns `cmd` and writes `data` to its stdin. An error in `data` (a corrupt entry) kills the
/// tool before it can finish; a non-zero exit is an error of `kind` with the tool's stderr.
///
/// # Errors
/// As described.
pub async fn feed_stdin(
    mut cmd: Command,
    name: &str,
    mut data: ByteStream,
    kind: ErrorKind,
) -> Result<()> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(kind, format!("cannot start {name}: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stderr = collect_stderr(child.stderr.take());
    while let Some(chunk) = data.next().await {
        match chunk {
            Ok(c) => {
                if stdin.write_all(&c).await.is_err() {
                    break; // The tool stopped reading: its exit status says why.
                }
            }
            Err(e) => {
                let _ = child.kill().await;
                return Err(e);
            }
        }
    }
    drop(stdin);
    let status = child
        .wait()
        .await
        .map_err(|e| Error::new(kind, format!("waiting for {name} failed: {e}")))?;
    let stderr = stderr.await.unwrap_or_default();
    if !status.success() {
        return Err(Error::new(
            kind,
            format!("{name} failed ({status}): {}", stderr.trim()),
        ));
    }
    Ok(())
}

/// Environment variables a child tool keeps; everything else (the passphrase variable, storage
/// credentials such as `AWS_*`, `DBBACKUP_*`) is removed, so backup content or a compromised tool
/// never sees them. Connection settings of the tool's own ecosystem (`PG*`, `MYSQL_*`, `MARIADB_*`)
/// stay.
fn kept_in_child(name: &str) -> bool {
    matches!(
        name,
        "PATH" | "HOME" | "USER" | "LOGNAME" | "LANG" | "LANGUAGE" | "TZ" | "TMPDIR" | "TERM"
    ) || name.starts_with("LC_")
        || name.starts_with("PG")
        || name.starts_with("MYSQL_")
        || name.starts_with("MARIADB_")
}

/// A [`Command`] for a child tool with a scrubbed environment (see `docs/SECURITY.md`).
pub fn command(path: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(path);
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        if k.to_str().is_some_and(kept_in_child) {
            cmd.env(k, v);
        }
    }
    cmd
}

/// The `(major, minor)` version a tool prints for `--version` (e.g. `pg_restore (PostgreSQL)
/// 17.6` gives `(17, 6)`).
///
/// # Errors
/// [`ErrorKind::Unsupported`] when the tool does not run or prints no version.
pub async fn full_version(path: &std::path::Path) -> Result<(u32, u32)> {
    let text = stdout_of(path, "--version").await?;
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.'))
        .and_then(|w| {
            let mut it = w.split('.');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("cannot read the version of {}: {text:?}", path.display()),
            )
        })
}

/// Whether a tool's `--help` mentions `flag` (how to tell that a client has `--sandbox`).
///
/// # Errors
/// [`ErrorKind::Unsupported`] when the tool does not run.
pub async fn help_mentions(path: &std::path::Path, flag: &str) -> Result<bool> {
    Ok(stdout_of(path, "--help").await?.contains(flag))
}

/// What a tool prints on stdout for one argument.
async fn stdout_of(path: &std::path::Path, arg: &str) -> Result<String> {
    let out = command(path).arg(arg).output().await.map_err(|e| {
        Error::new(
            ErrorKind::Unsupported,
            format!("cannot run {} ({e})", path.display()),
        )
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The major version a tool prints for `--version` (the first number of the form `N.M`).
///
/// # Errors
/// [`ErrorKind::Unsupported`] when the tool cannot run; `hint` says how to install it.
pub async fn major_version(path: &std::path::Path, hint: &str) -> Result<u32> {
    let out = command(path).arg("--version").output().await.map_err(|e| {
        Error::new(
            ErrorKind::Unsupported,
            format!("cannot run {} ({e}); {hint}", path.display()),
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.'))
        .and_then(|w| w.split('.').next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("cannot read the version of {}: {text:?}", path.display()),
            )
        })
}

/// Where external tools are looked up: on `PATH`, or in one directory.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    dir: Option<std::path::PathBuf>,
}

impl Tools {
    /// Tools found on `PATH`.
    pub fn from_path() -> Self {
        Tools::default()
    }

    /// Tools in `dir` (e.g. `/usr/lib/postgresql/17/bin`).
    pub fn in_dir(dir: impl Into<std::path::PathBuf>) -> Self {
        Tools {
            dir: Some(dir.into()),
        }
    }

    /// The path `name` resolves to.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        match &self.dir {
            Some(d) => d.join(name),
            None => std::path::PathBuf::from(name),
        }
    }

    /// The first of `names` that runs, with its major version; `hint` says how to install it.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] when none runs.
    pub async fn find(&self, names: &[&str], hint: &str) -> Result<(std::path::PathBuf, u32)> {
        let mut last = None;
        for n in names {
            let path = self.path(n);
            match major_version(&path, hint).await {
                Ok(v) => return Ok((path, v)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Unsupported, "no tool name given")))
    }
}

#[cfg(test)]
mod env_tests {
    #[test]
    fn secrets_do_not_reach_child_tools() {
        for k in [
            "BK_PASS",
            "AWS_SECRET_ACCESS_KEY",
            "DBBACKUP_PASSPHRASE",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ] {
            assert!(!super::kept_in_child(k), "{k}");
        }
        for k in ["PATH", "PGSSLMODE", "PGPASSFILE", "MYSQL_PWD", "LC_ALL"] {
            assert!(super::kept_in_child(k), "{k}");
        }
    }
}
