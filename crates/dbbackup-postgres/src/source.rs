//! Snapshot-consistent parallel backup.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use dbbackup_core::{
    EntryData, EntryKind, EntrySpec, Error, ErrorKind, Result, RowCounter, Snapshot,
    SnapshotSummary, Source, SourceInfo, TableRef,
};
use futures::StreamExt;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{mpsc, Mutex};

use crate::config::{Filter, PgUrl, ENGINE};
use crate::entry::{EntryMeta, Format, POST_DATA, PRE_DATA};
use crate::error::pg_error;
use crate::schema::{self, Catalog, Statement};

/// Entry names.
/// Bytes of COPY rows gathered before they are handed to the pipeline.
const COALESCE: usize = 256 * 1024;
/// Tables above this size (256 MiB) are split across workers by block range.
const SPLIT_BYTES: i64 = 256 << 20;
/// PostgreSQL's block size (`BLCKSZ`; `pg_class.relpages` counts these).
const BLOCK: i64 = 8192;

/// A PostgreSQL database to back up, natively (no client tools needed).
#[derive(Debug, Clone)]
pub struct PgSource {
    url: PgUrl,
    filter: Filter,
    jobs: usize,
    schema_only: bool,
    data_only: bool,
    split_pages: i64,
    privileges: bool,
    allow_incomplete: bool,
    /// Statement kinds treated as unsupported (feature `testing`).
    pretend_unsupported: Vec<String>,
}

impl PgSource {
    /// The database at `url` (`postgres://user:pass@host:port/db`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL (the password is never shown).
    pub fn new(url: &str) -> Result<Self> {
        Ok(PgSource {
            url: url.parse()?,
            filter: Filter::default(),
            jobs: 2,
            schema_only: false,
            data_only: false,
            split_pages: SPLIT_BYTES / BLOCK,
            privileges: false,
            allow_incomplete: false,
            pretend_unsupported: Vec::new(),
        })
    }

    /// Tables with more data than this (bytes, from `pg_class.relpages`) are read by `jobs`
    /// workers in block ranges (PostgreSQL 14+; default 256 MiB; `i64::MAX` turns splitting off).
    /// Each range is its own entry; together they hold every row.
    pub fn with_split_bytes(mut self, bytes: i64) -> Self {
        self.split_pages = (bytes / BLOCK).max(1);
        self
    }

    /// Worker connections reading tables at once (default 2).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Which schemas and tables to back up.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Schema only (no rows).
    pub fn schema_only(mut self, yes: bool) -> Self {
        self.schema_only = yes;
        self
    }

    /// Rows only (no schema).
    pub fn data_only(mut self, yes: bool) -> Self {
        self.data_only = yes;
        self
    }

    /// Also back up owners (`ALTER ... OWNER TO`) and privileges (`GRANT`/`REVOKE`, column
    /// privileges included) of schemas, tables, views, sequences, functions, procedures and
    /// types. Roles themselves are cluster-wide and not backed up: they must exist where the
    /// backup is restored (or the restore skips these with `PgTarget::skip_privileges`).
    pub fn with_privileges(mut self, yes: bool) -> Self {
        self.privileges = yes;
        self
    }

    /// Back up even when the database holds objects the native path cannot back up yet,
    /// leaving them out: the manifest lists every omission (`Manifest::omitted`) and every
    /// restore of it says so. Default: such a backup fails naming them.
    pub fn allow_incomplete(mut self, yes: bool) -> Self {
        self.allow_incomplete = yes;
        self
    }

    /// Tests only (feature `testing`): treat every object of the statement kind `kind` (e.g.
    /// `"aggregate"`) as one the native path cannot back up, so the refusal and
    /// [`PgSource::allow_incomplete`] can be tested now that every kind is supported. The
    /// environment variable `DBBACKUP_TEST_PG_UNSUPPORTED` (kinds, comma-separated) does the same
    /// for a `testing` build of the command line.
    #[cfg(feature = "testing")]
    pub fn pretend_unsupported(mut self, kind: &str) -> Self {
        self.pretend_unsupported.push(kind.to_owned());
        self
    }

    /// Moves the statements of the pretended kinds (and their comments) to `unsupported`.
    fn apply_pretend(&self, catalog: &mut schema::Catalog) {
        let mut kinds = self.pretend_unsupported.clone();
        if cfg!(feature = "testing") {
            if let Ok(v) = std::env::var("DBBACKUP_TEST_PG_UNSUPPORTED") {
                kinds.extend(v.split(',').map(|k| k.trim().to_owned()));
            }
        }
        for kind in kinds.iter().filter(|k| !k.is_empty()) {
            let comment = format!("{} ", kind.to_uppercase());
            for list in [&mut catalog.pre_data, &mut catalog.post_data] {
                list.retain(|s| {
                    if s.kind == *kind {
                        catalog.unsupported.push(format!("{kind} {}", s.name));
                        false
                    } else {
                        !(s.kind == "comment" && s.name.starts_with(&comment))
                    }
                });
            }
        }
    }
}

/// The refusal of a backup that would leave out `objects`.
fn incomplete(objects: &[String]) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "the database holds {} object(s) the native PostgreSQL backup cannot back up yet, so \
             a backup would be incomplete: {}; back up with --engine-tool dump (pg_dump keeps them), \
             or pass --allow-incomplete (PgSource::allow_incomplete) to back up without them (the \
             manifest then lists them and every restore says so); no backup was made",
            objects.len(),
            objects.join(", ")
        ),
    )
}

async fn connect(url: &PgUrl) -> Result<PgConnection> {
    url.options
        .connect()
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, &format!("cannot connect to {url}")))
}

async fn exec(conn: &mut PgConnection, sql: &'static str, what: &str) -> Result<()> {
    sqlx::query(sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| pg_error(e, ErrorKind::Source, what))
}

struct PgSnapshot {
    info: SourceInfo,
    catalog: Catalog,
    /// Keeps the exported snapshot alive until every worker has imported it and finished.
    coordinator: Mutex<Option<PgConnection>>,
    workers_tx: mpsc::Sender<PgConnection>,
    workers_rx: Arc<Mutex<mpsc::Receiver<PgConnection>>>,
    schema_only: bool,
    data_only: bool,
    /// Parts per big table (1 = no splitting: the server cannot scan block ranges before 14).
    split: i64,
    split_pages: i64,
    /// Whether the large objects' data is an entry (whole-database backups with data, as pg_dump).
    large_objects: bool,
}

use dbbackup_core::statements::{
    channel_stream, encode_statements as statements_bytes, once, BlockSender,
};

#[async_trait]
impl Source for PgSource {
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        if self.schema_only && self.data_only {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "schema-only and data-only exclude each other",
            ));
        }
        let mut coord = connect(&self.url).await?;
        exec(
            &mut coord,
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            "cannot start the snapshot transaction",
        )
        .await?;
        let row: (String, Option<String>, String, String, String, i32) = sqlx::query_as(
            "SELECT pg_export_snapshot(),
                    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END,
                    pg_current_snapshot()::text, current_setting('server_version'), current_database(),
                    current_setting('server_version_num')::int",
        )
        .fetch_one(&mut coord)
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, "cannot export a snapshot"))?;
        let (snapshot_id, lsn, txid_snapshot, version, database, server_num) = row;
        let mut catalog = schema::read(&mut coord, &self.filter, self.privileges).await?;
        self.apply_pretend(&mut catalog);
        if !catalog.unsupported.is_empty() && !self.allow_incomplete {
            return Err(incomplete(&catalog.unsupported));
        }
        let large_objects =
            catalog.large_objects > 0 && self.filter.is_everything() && !self.schema_only;
        if catalog.large_objects > 0 && !large_objects {
            catalog.warnings.push(format!(
                "the database holds {} large object(s), which a {} backup leaves out (as pg_dump \
                 does); back up the whole database with data to keep them",
                catalog.large_objects,
                if self.schema_only {
                    "schema-only"
                } else {
                    "table- or schema-selective"
                }
            ));
            // Their comments and owners cannot be restored without them.
            catalog.post_data.retain(|s| {
                !s.name.starts_with("LARGE OBJECT ") && !s.name.starts_with("large object ")
            });
        }
        if let Some(w) = crate::config::plaintext_warning(&self.url, &mut coord).await {
            catalog.warnings.push(w);
        }

        // Workers import the coordinator's snapshot, so every table is read at the same moment.
        let (tx, rx) = mpsc::channel(self.jobs);
        for _ in 0..self.jobs {
            let mut w = connect(&self.url).await?;
            exec(
                &mut w,
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                "cannot start a worker transaction",
            )
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SET TRANSACTION SNAPSHOT '{snapshot_id}'"
            )))
            .execute(&mut w)
            .await
            .map_err(|e| pg_error(e, ErrorKind::Source, "a worker cannot import the snapshot"))?;
            tx.send(w).await.expect("channel has room for every worker");
        }
        let mut position = BTreeMap::new();
        if let Some(lsn) = lsn {
            position.insert("lsn".to_owned(), lsn);
        }
        position.insert("txid_snapshot".to_owned(), txid_snapshot);
        position.insert("exported_snapshot".to_owned(), snapshot_id);
        Ok(Box::new(PgSnapshot {
            info: SourceInfo {
                engine: ENGINE.into(),
                server_version: Some(version),
                database: Some(database),
                server: dbbackup_core::url_server(&self.url.redacted),
                position,
            },
            catalog,
            coordinator: Mutex::new(Some(coord)),
            workers_tx: tx,
            workers_rx: Arc::new(Mutex::new(rx)),
            schema_only: self.schema_only,
            data_only: self.data_only,
            split: if server_num >= 140000 {
                self.jobs as i64
            } else {
                1
            },
            split_pages: self.split_pages,
            large_objects,
        }))
    }
}

impl PgSnapshot {
    /// A worker connection (inside the snapshot); given back by whoever finishes with it cleanly.
    async fn worker(&self) -> Result<PgConnection> {
        self.workers_rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| Error::new(ErrorKind::Internal, "the worker pool is closed"))
    }

    /// The large objects' entry, read on a worker connection (inside the snapshot).
    async fn read_large_objects(&self) -> Result<EntryData> {
        let mut conn = self.worker().await?;
        let back = self.workers_tx.clone();
        let rows = RowCounter::new();
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(4);
        let mut sender = BlockSender::new(tx, rows.clone(), COALESCE);
        tokio::spawn(async move {
            match crate::large_objects::read_all(&mut conn, &mut sender).await {
                Ok(()) => {
                    let _ = back.send(conn).await;
                }
                Err(e) => sender.fail(e).await,
            }
        });
        Ok(EntryData {
            stream: channel_stream(rx),
            rows: Some(rows),
        })
    }
}

#[async_trait]
impl Snapshot for PgSnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        let mut out = Vec::new();
        if !self.data_only {
            out.push(
                EntrySpec::new(PRE_DATA, EntryKind::PreData, 0)
                    .with_meta_of(&EntryMeta::of(Format::Statements)),
            );
        }
        if !self.schema_only {
            let mut tables = self.catalog.tables.clone();
            // Big tables first, so parallel workers finish together.
            tables.sort_by(|a, b| {
                b.estimated_rows
                    .cmp(&a.estimated_rows)
                    .then(a.plain().cmp(&b.plain()))
            });
            for t in tables {
                let parts = if t.pages > self.split_pages {
                    self.split
                } else {
                    1
                };
                let part_estimate = (t.estimated_bytes.max(0) as u64).div_ceil(parts as u64);
                for (i, range) in block_ranges(t.pages, parts).into_iter().enumerate() {
                    let name = if parts > 1 {
                        format!("data/{}#{}", t.plain(), i + 1)
                    } else {
                        format!("data/{}", t.plain())
                    };
                    let meta = EntryMeta {
                        table: Some(TableRef {
                            schema: Some(t.schema.clone()),
                            name: t.name.clone(),
                            table: t.plain(),
                            columns: t.columns.clone(),
                        }),
                        blocks: range,
                        // Only where post-data holds them too (not in data-only backups).
                        indexes: if self.data_only {
                            Vec::new()
                        } else {
                            self.catalog
                                .table_indexes
                                .get(&t.plain())
                                .cloned()
                                .unwrap_or_default()
                        },
                        ..EntryMeta::of(Format::CopyText)
                    };
                    out.push(
                        EntrySpec::new(name, EntryKind::Data, 1)
                            .with_meta_of(&meta)
                            .with_estimate(Some(part_estimate)),
                    );
                }
            }
        }
        if self.large_objects {
            out.push(
                EntrySpec::new(crate::large_objects::ENTRY, EntryKind::Data, 1)
                    .with_meta_of(&EntryMeta::of(Format::LargeObjects)),
            );
        }
        if !self.data_only {
            out.push(
                EntrySpec::new(POST_DATA, EntryKind::PostData, 2)
                    .with_meta_of(&EntryMeta::of(Format::Statements)),
            );
        } else {
            // Data-only backups still carry sequence values.
            let meta = EntryMeta {
                sequences_only: true,
                ..EntryMeta::of(Format::Statements)
            };
            out.push(EntrySpec::new(POST_DATA, EntryKind::PostData, 2).with_meta_of(&meta));
        }
        out
    }

    async fn read(&self, entry: &EntrySpec) -> Result<EntryData> {
        if entry.name == PRE_DATA {
            let b = statements_bytes(&self.catalog.pre_data);
            return Ok(EntryData::bytes(once(b)));
        }
        if entry.name == POST_DATA {
            let stmts: Vec<Statement> = if self.data_only {
                self.catalog
                    .post_data
                    .iter()
                    .filter(|s| s.kind == "sequence value")
                    .cloned()
                    .collect()
            } else {
                self.catalog.post_data.clone()
            };
            let b = statements_bytes(&stmts);
            return Ok(EntryData::bytes(once(b)));
        }
        let meta: EntryMeta = entry.meta_of()?;
        if meta.format == Format::LargeObjects {
            return self.read_large_objects().await;
        }
        let wanted = meta.table.as_ref().map(|t| t.table.as_str());
        let table = self
            .catalog
            .tables
            .iter()
            .find(|t| Some(t.plain().as_str()) == wanted)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("no table for entry {}", entry.name),
                )
            })?;
        let cols: Vec<String> = table.columns.iter().map(|c| schema::ident(c)).collect();
        let sql = match meta.blocks {
            // A block range of a big table (a TID range scan): the parts together hold every row.
            Some((from, to)) => {
                let upper = to
                    .map(|t| format!(" AND ctid < '({t},0)'::tid"))
                    .unwrap_or_default();
                format!(
                    "COPY (SELECT {} FROM ONLY {} WHERE ctid >= '({from},0)'::tid{upper}) TO STDOUT",
                    cols.join(", "),
                    table.qualified()
                )
            }
            // A table without columns (PostgreSQL allows them, and they hold rows): no list.
            None if cols.is_empty() => format!("COPY {} TO STDOUT", table.qualified()),
            None => format!("COPY {} ({}) TO STDOUT", table.qualified(), cols.join(", ")),
        };
        let mut conn = self.worker().await?;
        let back = self.workers_tx.clone();
        let rows = RowCounter::new();
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(4);
        let mut sender = BlockSender::new(tx, rows.clone(), COALESCE);
        let what = format!("COPY of table {} failed", table.plain());
        tokio::spawn(async move {
            let result: Result<()> = async {
                let mut stream = conn
                    .copy_out_raw(&sql)
                    .await
                    .map_err(|e| pg_error(e, ErrorKind::Source, &what))?;
                // The server sends one message per row: blocks keep per-row costs out of the pipeline.
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| pg_error(e, ErrorKind::Source, &what))?;
                    sender.buffer().extend_from_slice(&chunk);
                    sender.row_done().await?;
                }
                sender.flush().await?;
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    let _ = back.send(conn).await;
                }
                Err(e) => {
                    // A failed or abandoned COPY leaves the connection unusable; it is dropped.
                    sender.fail(e).await;
                }
            }
        });
        Ok(EntryData {
            stream: channel_stream(rx),
            rows: Some(rows),
        })
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        drop(self.workers_tx);
        let mut rx = self.workers_rx.lock().await;
        rx.close();
        while let Ok(w) = rx.try_recv() {
            let _ = w.close().await;
        }
        if let Some(mut c) = self.coordinator.lock().await.take() {
            let _ = sqlx::query("COMMIT").execute(&mut c).await;
            let _ = c.close().await;
        }
        Ok(SnapshotSummary {
            warnings: self.catalog.warnings.clone(),
            omitted: self.catalog.unsupported.clone(),
            ..Default::default()
        })
    }
}

/// Splits `pages` blocks into `parts` ranges `[from, to)`; the last is open-ended so rows in blocks
/// added after the size was read (invisible to the snapshot anyway) cannot be missed.
fn block_ranges(pages: i64, parts: i64) -> Vec<Option<(i64, Option<i64>)>> {
    if parts <= 1 {
        return vec![None];
    }
    let step = (pages + parts - 1) / parts;
    (0..parts)
        .map(|i| {
            let from = i * step;
            let to = if i + 1 == parts {
                None
            } else {
                Some((i + 1) * step)
            };
            Some((from, to))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::block_ranges;

    #[test]
    fn ranges_cover_every_block() {
        assert_eq!(block_ranges(100, 1), vec![None]);
        assert_eq!(
            block_ranges(100, 3),
            vec![Some((0, Some(34))), Some((34, Some(68))), Some((68, None))]
        );
    }
}
