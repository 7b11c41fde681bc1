//! Restore of a SQLite backup to a new file, or (data-only) of its rows into an existing
//! database.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;
use dbbackup_core::{
    ByteStream, EntryRecord, Error, ErrorKind, Manifest, RestoreSession, RestoreSummary,
    RestoreTarget, Result,
};
use futures::StreamExt;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::io::AsyncWriteExt;

use crate::config::{parse_url, ENGINE};
use crate::data_only::{copy_rows, CopyOptions};
use crate::entry::ENTRY;
use crate::error::sqlite_error;

/// Restores a SQLite backup into a new database file, or with [`SqliteTarget::data_only`] its
/// rows into the tables of an existing one.
#[derive(Debug, Clone)]
pub struct SqliteTarget {
    path: PathBuf,
    data_only: bool,
    copy: CopyOptions,
}

impl SqliteTarget {
    /// A new database at `path` (which must not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteTarget {
            path: path.into(),
            data_only: false,
            copy: CopyOptions::default(),
        }
    }

    /// Rows only, by column name, into the existing tables of the database at the path (one
    /// re-created by the application's schema or migrations), in one transaction. The backed-up
    /// file is restored and checked beside it first, then attached and copied from. A column or
    /// table the target no longer has is reported in the restore's warnings; a new column takes
    /// its default; `AUTOINCREMENT` counters move past the rows; the target's triggers do not
    /// fire; foreign keys are checked at the end.
    pub fn data_only(mut self, yes: bool) -> Self {
        self.data_only = yes;
        self
    }

    /// With [`data_only`](Self::data_only): fail, changing nothing, instead of reporting a
    /// column or table the target no longer has.
    pub fn fail_on_dropped_columns(mut self, yes: bool) -> Self {
        self.copy.strict = yes;
        self
    }

    /// With [`data_only`](Self::data_only): copy only the tables matching one of these patterns
    /// (`*` and `?` wildcards); a pattern that matches no backed-up table fails the restore.
    pub fn tables(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.copy.tables = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// With [`data_only`](Self::data_only): never copy the tables matching these patterns (e.g.
    /// [`MIGRATIONS_TABLE`](crate::MIGRATIONS_TABLE), whose rows the new schema has already).
    pub fn exclude_tables(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.copy.exclude = patterns.into_iter().map(Into::into).collect();
        self
    }
}

impl FromStr for SqliteTarget {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self> {
        Ok(SqliteTarget::new(parse_url(url)?))
    }
}

struct Session {
    path: PathBuf,
    temp: PathBuf,
    data_only: Option<CopyOptions>,
    done: Mutex<bool>,
    warnings: Mutex<Vec<String>>,
}

#[async_trait]
impl RestoreTarget for SqliteTarget {
    async fn begin(&self, manifest: &Manifest) -> Result<Box<dyn RestoreSession>> {
        if manifest.source.engine != ENGINE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is a {} backup; restore it into a {}:// target, not a SQLite file",
                    manifest.backup_id, manifest.source.engine, manifest.source.engine
                ),
            ));
        }
        let exists = tokio::fs::try_exists(&self.path).await.unwrap_or(false);
        if self.data_only && !exists {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "{} does not exist; a data-only restore copies rows into the tables of an \
                     existing database, so create it with the new schema first (or restore \
                     without --data-only to a new file)",
                    self.path.display()
                ),
            ));
        }
        if !self.data_only && exists {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{} already exists; a SQLite restore writes a new file, so choose a path that \
                     does not exist (nothing was changed)",
                    self.path.display()
                ),
            ));
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "the directory {} of the restore target does not exist",
                    dir.display()
                ),
            ));
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "restore".into());
        let mut r = [0u8; 6];
        getrandom::getrandom(&mut r).expect("OS random generator");
        Ok(Box::new(Session {
            path: self.path.clone(),
            temp: dir.join(format!(".{name}.restore-{}", hex::encode(r))),
            data_only: self.data_only.then(|| self.copy.clone()),
            done: Mutex::new(false),
            warnings: Mutex::default(),
        }))
    }
}

#[async_trait]
impl RestoreSession for Session {
    async fn restore_entry(
        &self,
        entry: &EntryRecord,
        mut data: ByteStream,
    ) -> Result<Option<u64>> {
        if entry.name != ENTRY {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "SQLite backups hold one entry {ENTRY:?}; found {:?}",
                    entry.name
                ),
            ));
        }
        let write_err = |e: std::io::Error| {
            Error::new(
                ErrorKind::Target,
                format!("cannot write {}: {e}", self.temp.display()),
            )
        };
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            let std_file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&self.temp)
                .map_err(write_err)?;
            tokio::fs::File::from_std(std_file)
        };
        // The engine ends the stream with an error if the entry is corrupt: nothing is placed then.
        while let Some(chunk) = data.next().await {
            file.write_all(&chunk?).await.map_err(write_err)?;
        }
        file.flush().await.map_err(write_err)?;
        file.sync_all().await.map_err(write_err)?;
        drop(file);

        let mut conn = SqliteConnectOptions::new()
            .filename(&self.temp)
            .read_only(true)
            .connect()
            .await
            .map_err(|e| {
                sqlite_error(
                    e,
                    ErrorKind::Target,
                    "cannot open the restored file",
                    &self.temp,
                )
            })?;
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| {
                sqlite_error(
                    e,
                    ErrorKind::Target,
                    "integrity check failed on",
                    &self.temp,
                )
            })?;
        let _ = conn.close().await;
        if check != "ok" {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the restored database fails PRAGMA integrity_check: {check}"),
            ));
        }
        if let Some(copy) = &self.data_only {
            let copied = copy_rows(&self.path, &self.temp, copy).await;
            let _ = tokio::fs::remove_file(&self.temp).await;
            let copied = copied?;
            self.warnings.lock().expect("lock").extend(copied.warnings);
            *self.done.lock().expect("lock") = true;
            return Ok(Some(copied.rows));
        }
        // Create-only placement: a file that appeared meanwhile is never overwritten.
        let (temp, path) = (self.temp.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            std::fs::hard_link(&temp, &path).map_err(|e| {
                Error::new(
                    ErrorKind::Target,
                    format!("cannot create {}: {e}", path.display()),
                )
            })?;
            let _ = std::fs::remove_file(&temp);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("restore task failed: {e}")))??;
        *self.done.lock().expect("lock") = true;
        Ok(None)
    }

    async fn finish(self: Box<Self>) -> Result<RestoreSummary> {
        if !*self.done.lock().expect("lock") {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("the restore selected no {ENTRY:?} entry, so nothing was written"),
            ));
        }
        Ok(RestoreSummary {
            warnings: std::mem::take(&mut *self.warnings.lock().expect("lock")),
        })
    }

    async fn abort(self: Box<Self>, _error: &Error) -> Result<()> {
        match tokio::fs::remove_file(&self.temp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::new(
                ErrorKind::Target,
                format!(
                    "cannot remove the partial restore {}: {e}",
                    self.temp.display()
                ),
            )),
        }
    }
}
