//! Restoring logical backups: tables created, rows loaded with the client's bulk insert
//! (`KEEP_IDENTITY`, `KEEP_NULLS`, `TABLOCK`), then indexes, checks and foreign keys.
//!
//! Rows are matched to the target's columns by name, so a backup restores into a newer schema
//! (the pre-migration use case, with [`MssqlTarget::data_only`]): a column the target no longer
//! has is reported (or fails the restore with [`MssqlTarget::fail_on_dropped_columns`]); a new column takes
//! its default; integers are widened or narrowed when the value fits.
//!
//! Into an existing database, tables the backup would create must not exist yet (checked before
//! anything is changed). With [`MssqlTarget::create`] the database is created and, if the restore
//! fails, dropped again.

use std::collections::BTreeSet;
use std::sync::Mutex as StdMutex;

use async_trait::async_trait;
use bytes::BytesMut;
use dbbackup_core::statements::{collect, decode_statements};
use dbbackup_core::{
    ByteStream, EntryKind, EntryRecord, Error, ErrorKind, Manifest, RestoreSession, RestoreSummary,
    RestoreTarget, Result,
};
use futures::StreamExt;
use tiberius::{SqlBulkCopyOption, TokenRow};
use tokio::sync::Mutex;

use crate::config::{MsUrl, ENGINE};
use crate::conn::{connect_to, exec, rows, text, MsClient};
use crate::entry::{EntryMeta, Format};
use crate::error::ms_error;
use crate::quote::{ident, literal, qualified};
use crate::rows::{decode_row, fit, ROW_FORMAT};
use dbbackup_core::TableRef;

fn target_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Target, msg)
}

/// Restores logical SQL Server backups.
#[derive(Debug, Clone)]
pub struct MssqlTarget {
    url: MsUrl,
    create: bool,
    data_only: bool,
    fail_on_dropped_columns: bool,
    keep_on_failure: bool,
}

impl MssqlTarget {
    /// Restores into the URL's database.
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self {
            url: url.parse()?,
            create: false,
            data_only: false,
            fail_on_dropped_columns: false,
            keep_on_failure: false,
        })
    }

    /// Create the database first (it must not exist); drop it again if the restore fails.
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Load rows only, into tables that exist (e.g. after migrations), by column name.
    pub fn data_only(mut self, yes: bool) -> Self {
        self.data_only = yes;
        self
    }

    /// Fail when a backed-up column is missing from the target table (default: warn and skip).
    pub fn fail_on_dropped_columns(mut self, yes: bool) -> Self {
        self.fail_on_dropped_columns = yes;
        self
    }

    /// Keep a created database after a failed restore (to look at it).
    pub fn keep_on_failure(mut self, yes: bool) -> Self {
        self.keep_on_failure = yes;
        self
    }
}

#[async_trait]
impl RestoreTarget for MssqlTarget {
    async fn begin(&self, manifest: &Manifest) -> Result<Box<dyn RestoreSession>> {
        if manifest.source.engine != ENGINE {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "backup {} was taken by the {} engine; MssqlTarget restores logical SQL Server backups (mssql)",
                    manifest.backup_id, manifest.source.engine
                ),
            ));
        }
        let db = self.url.database().to_owned();
        if self.create {
            let mut m = connect_to(&self.url, "master", ErrorKind::Target).await?;
            exec(
                &mut m,
                &format!("CREATE DATABASE {}", ident(&db)?),
                ErrorKind::Target,
                &format!("creating [{db}]"),
            )
            .await?;
        }
        let result = async {
            let mut c = connect_to(&self.url, &db, ErrorKind::Target).await?;
            if !self.data_only && !self.create {
                // Nothing is changed when a table the backup creates is already there.
                let mut clashes = Vec::new();
                for e in manifest.entries.iter().filter(|e| e.kind == EntryKind::Data) {
                    let Some(TableRef { schema: Some(s), name: t, .. }) = EntryMeta::read(e)?.table else {
                        continue;
                    };
                    let (s, t) = (s.as_str(), t.as_str());
                    let found = rows(
                        &mut c,
                        &format!("SELECT OBJECT_ID({})", literal(&qualified(s, t)?)?),
                        ErrorKind::Target,
                        "checking the target's tables",
                    )
                    .await?;
                    if found.first().and_then(|r| text(r, 0)).is_some() {
                        clashes.push(format!("{s}.{t}"));
                    }
                }
                if !clashes.is_empty() {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "[{db}] already has {}; nothing was changed. Restore into a new database (create), drop them first, or load rows only (data_only)",
                            clashes.join(", ")
                        ),
                    ));
                }
            }
            Ok(c)
        }
        .await;
        match result {
            Ok(c) => Ok(Box::new(MssqlSession {
                target: self.clone(),
                ddl: Mutex::new(c),
                warnings: StdMutex::new(Vec::new()),
            })),
            Err(e) => {
                if self.create && !self.keep_on_failure {
                    let _ = drop_database(&self.url, &db).await;
                }
                Err(e)
            }
        }
    }
}

async fn drop_database(url: &MsUrl, db: &str) -> Result<()> {
    let mut m = connect_to(url, "master", ErrorKind::Target).await?;
    exec(
        &mut m,
        &format!(
            "IF DB_ID({lit}) IS NOT NULL BEGIN ALTER DATABASE {id} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE {id}; END",
            lit = literal(db)?,
            id = ident(db)?
        ),
        ErrorKind::Target,
        &format!("dropping [{db}] after the failed restore"),
    )
    .await
}

struct MssqlSession {
    target: MssqlTarget,
    ddl: Mutex<MsClient>,
    warnings: StdMutex<Vec<String>>,
}

impl MssqlSession {
    fn warn(&self, w: String) {
        if let Ok(mut v) = self.warnings.lock() {
            v.push(w);
        }
    }

    async fn load(&self, entry: &EntryRecord, mut data: ByteStream) -> Result<u64> {
        let meta = EntryMeta::read(entry)?;
        let table_ref = match (meta.format, meta.table) {
            (Some(Format::Rows), Some(t)) => t,
            _ => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("entry {} is not in {ROW_FORMAT}", entry.name),
                ))
            }
        };
        let (schema, name) = (
            table_ref.schema.as_deref().unwrap_or_default(),
            table_ref.name.as_str(),
        );
        let table = qualified(schema, name)?;
        let shown = format!("{schema}.{name}");
        let backed: Vec<String> = table_ref.columns.clone();
        let db = self.target.url.database().to_owned();
        let mut c = connect_to(&self.target.url, &db, ErrorKind::Target).await?;
        let present: BTreeSet<String> = rows(
            &mut c,
            &format!(
                "SELECT name FROM sys.columns WHERE object_id = OBJECT_ID({}) AND is_computed = 0 \
                 AND TYPE_NAME(system_type_id) NOT IN ('timestamp')",
                literal(&table)?
            ),
            ErrorKind::Target,
            &format!("reading the columns of {shown}"),
        )
        .await?
        .iter()
        .filter_map(|r| text(r, 0))
        .collect();
        if present.is_empty() {
            return Err(target_err(format!(
                "{shown} does not exist in [{db}] (or has no writable columns); restore the schema too, or create the table first"
            )));
        }
        let keep: Vec<bool> = backed.iter().map(|c| present.contains(c)).collect();
        let missing: Vec<&str> = backed
            .iter()
            .zip(&keep)
            .filter(|(_, k)| !**k)
            .map(|(c, _)| c.as_str())
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "{shown} no longer has the column(s) {}; their backed-up values were not restored",
                missing.join(", ")
            );
            if self.target.fail_on_dropped_columns {
                return Err(target_err(format!("{msg} (fail_on_dropped_columns)")));
            }
            self.warn(msg);
        }
        let quoted: Vec<String> = backed
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(c, _)| ident(c))
            .collect::<Result<_>>()?;
        let names: Vec<&str> = quoted.iter().map(String::as_str).collect();
        let what = format!("loading the rows of {shown}");
        let meta_cols = c
            .column_metadata(&table, &names)
            .await
            .map_err(|e| ms_error(e, ErrorKind::Target, &what))?;
        let options = SqlBulkCopyOption::KeepIdentity
            | SqlBulkCopyOption::KeepNulls
            | SqlBulkCopyOption::TableLock;
        let mut req = c
            .bulk_insert_with_options(&table, &names, options, &[])
            .await
            .map_err(|e| ms_error(e, ErrorKind::Target, &what))?;
        let mut buf = BytesMut::new();
        let mut loaded = 0u64;
        let mut ended = false;
        while !ended {
            match data.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => ended = true,
            }
            let mut at = 0;
            while let Some((row, used)) = decode_row(&buf[at..], backed.len())? {
                at += used;
                let mut tr = TokenRow::with_capacity(names.len());
                let mut i = 0;
                for (v, k) in row.into_iter().zip(&keep) {
                    if !*k {
                        continue;
                    }
                    let m = &meta_cols[i];
                    let v = fit(v, &m.base.ty)
                        .map_err(|e| target_err(format!("{what}: column {}: {e}", m.col_name)))?;
                    tr.push(v);
                    i += 1;
                }
                req.send(tr)
                    .await
                    .map_err(|e| ms_error(e, ErrorKind::Target, &what))?;
                loaded += 1;
            }
            let _ = buf.split_to(at);
        }
        if !buf.is_empty() {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("entry {} ends in the middle of a row", entry.name),
            ));
        }
        let done = req
            .finalize()
            .await
            .map_err(|e| ms_error(e, ErrorKind::Target, &what))?;
        let total = done.total();
        if total != loaded {
            return Err(target_err(format!(
                "{what}: sent {loaded} rows, the server reports {total}"
            )));
        }
        Ok(loaded)
    }
}

#[async_trait]
impl RestoreSession for MssqlSession {
    async fn restore_entry(&self, entry: &EntryRecord, data: ByteStream) -> Result<Option<u64>> {
        match entry.kind {
            EntryKind::Data => Ok(Some(self.load(entry, data).await?)),
            EntryKind::PreData | EntryKind::PostData => {
                let bytes = collect(data).await?;
                if self.target.data_only {
                    return Ok(None);
                }
                let mut c = self.ddl.lock().await;
                for s in decode_statements(&bytes)? {
                    exec(
                        &mut c,
                        &s.sql,
                        ErrorKind::Target,
                        &format!("creating {} {}", s.kind, s.name),
                    )
                    .await?;
                }
                Ok(None)
            }
            _ => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "entry {} has a kind this target does not restore",
                    entry.name
                ),
            )),
        }
    }

    async fn finish(self: Box<Self>) -> Result<RestoreSummary> {
        Ok(RestoreSummary {
            warnings: self.warnings.lock().map(|w| w.clone()).unwrap_or_default(),
        })
    }

    async fn abort(self: Box<Self>, _error: &Error) -> Result<()> {
        if self.target.create && !self.target.keep_on_failure {
            drop(self.ddl);
            return drop_database(&self.target.url, self.target.url.database()).await;
        }
        Ok(())
    }
}
