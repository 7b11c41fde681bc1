//! Snapshot-consistent parallel backup.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use dbbackup_core::{
    EntryData, EntryKind, EntrySpec, Error, ErrorKind, Result, RowCounter, Snapshot,
    SnapshotSummary, Source, SourceInfo,
};
use futures::StreamExt;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{mpsc, Mutex};

use crate::config::{Filter, PgUrl, ENGINE};
use crate::error::pg_error;
use crate::schema::{self, Catalog, Statement};

/// Entry names.
pub(crate) const PRE_DATA: &str = "pre-data";
pub(crate) const POST_DATA: &str = "post-data";

/// A PostgreSQL database to back up, natively (no client tools needed).
#[derive(Debug, Clone)]
pub struct PgSource {
    url: PgUrl,
    filter: Filter,
    jobs: usize,
    schema_only: bool,
    data_only: bool,
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
        })
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
}

fn statements_bytes(stmts: &[Statement]) -> Bytes {
    let mut out = Vec::new();
    for s in stmts {
        serde_json::to_writer(&mut out, s).expect("statement serializes");
        out.push(b'\n');
    }
    Bytes::from(out)
}

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
        let row: (String, Option<String>, String, String, String) = sqlx::query_as(
            "SELECT pg_export_snapshot(),
                    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END,
                    pg_current_snapshot()::text, current_setting('server_version'), current_database()",
        )
        .fetch_one(&mut coord)
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, "cannot export a snapshot"))?;
        let (snapshot_id, lsn, txid_snapshot, version, database) = row;
        let catalog = schema::read(&mut coord, &self.filter).await?;

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
                position,
            },
            catalog,
            coordinator: Mutex::new(Some(coord)),
            workers_tx: tx,
            workers_rx: Arc::new(Mutex::new(rx)),
            schema_only: self.schema_only,
            data_only: self.data_only,
        }))
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
                    .with_meta(serde_json::json!({"format": "statements-jsonl"})),
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
                out.push(
                    EntrySpec::new(format!("data/{}", t.plain()), EntryKind::Data, 1).with_meta(
                        serde_json::json!({
                            "format": "copy-text",
                            "schema": t.schema,
                            "name": t.name,
                            "table": t.plain(),
                            "columns": t.columns,
                        }),
                    ),
                );
            }
        }
        if !self.data_only {
            out.push(
                EntrySpec::new(POST_DATA, EntryKind::PostData, 2)
                    .with_meta(serde_json::json!({"format": "statements-jsonl"})),
            );
        } else {
            // Data-only backups still carry sequence values.
            out.push(EntrySpec::new(POST_DATA, EntryKind::PostData, 2).with_meta(
                serde_json::json!({"format": "statements-jsonl", "sequences_only": true}),
            ));
        }
        out
    }

    async fn read(&self, entry: &EntrySpec) -> Result<EntryData> {
        if entry.name == PRE_DATA {
            let b = statements_bytes(&self.catalog.pre_data);
            return Ok(EntryData::bytes(Box::pin(futures::stream::once(
                async move { Ok(b) },
            ))));
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
            return Ok(EntryData::bytes(Box::pin(futures::stream::once(
                async move { Ok(b) },
            ))));
        }
        let table = self
            .catalog
            .tables
            .iter()
            .find(|t| format!("data/{}", t.plain()) == entry.name)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("no table for entry {}", entry.name),
                )
            })?;
        let cols: Vec<String> = table.columns.iter().map(|c| schema::ident(c)).collect();
        let sql = format!("COPY {} ({}) TO STDOUT", table.qualified(), cols.join(", "));
        let mut conn = self
            .workers_rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| Error::new(ErrorKind::Internal, "the worker pool is closed"))?;
        let back = self.workers_tx.clone();
        let rows = RowCounter::new();
        let counter = rows.clone();
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(4);
        let what = format!("COPY of table {} failed", table.plain());
        tokio::spawn(async move {
            let result: Result<()> = async {
                let mut stream = conn
                    .copy_out_raw(&sql)
                    .await
                    .map_err(|e| pg_error(e, ErrorKind::Source, &what))?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| pg_error(e, ErrorKind::Source, &what))?;
                    // In COPY text format every row ends in a raw newline; newlines inside values are escaped.
                    counter.add(chunk.iter().filter(|&&b| b == b'\n').count() as u64);
                    if tx.send(Ok(chunk)).await.is_err() {
                        return Err(Error::cancelled());
                    }
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    let _ = back.send(conn).await;
                }
                Err(e) => {
                    // A failed or abandoned COPY leaves the connection unusable; it is dropped.
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(EntryData {
            stream: Box::pin(stream),
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
        })
    }
}
