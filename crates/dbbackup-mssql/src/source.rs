//! The logical backup: table definitions from the `sys` catalog and every table's rows, read in
//! one `SNAPSHOT` transaction so all tables show the same moment.
//!
//! SQL Server gives one transaction's snapshot to one session only, so the tables are read one
//! after another on one connection (entries requested together wait their turn). The database
//! must allow snapshot isolation (`ALTER DATABASE ... SET ALLOW_SNAPSHOT_ISOLATION ON`); without
//! it the source refuses, unless [`MssqlSource::allow_inconsistent`] accepts tables read at
//! different moments (named in the warnings).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use dbbackup_core::statements::{channel_stream, encode_statements, once, BlockSender, Statement};
use dbbackup_core::{
    EntryData, EntryKind, EntrySpec, Error, ErrorKind, Result, RowCounter, Snapshot,
    SnapshotSummary, Source, SourceInfo,
};
use futures::TryStreamExt;
use tiberius::Row;
use tokio::sync::Mutex;

use crate::config::{MsUrl, ENGINE};
use crate::conn::{connect_to, exec, rows, text, MsClient};
use crate::entry::EntryMeta;
use crate::error::ms_error;
use crate::rows::{encode_value, read_as, select_expr, ReadAs};
use crate::schema::{catalog, create_schema, Column, ForeignKey, Index, Table};
use dbbackup_core::TableRef;

const BLOCK: usize = 256 * 1024;

pub use dbbackup_core::Filter;

/// A logical SQL Server backup as a [`Source`].
#[derive(Debug, Clone)]
pub struct MssqlSource {
    url: MsUrl,
    filter: Filter,
    schema_only: bool,
    data_only: bool,
    allow_inconsistent: bool,
}

impl MssqlSource {
    /// Backs up the URL's database.
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self {
            url: url.parse()?,
            filter: Filter::default(),
            schema_only: false,
            data_only: false,
            allow_inconsistent: false,
        })
    }

    /// Which tables.
    pub fn with_filter(mut self, f: Filter) -> Self {
        self.filter = f;
        self
    }

    /// Definitions only.
    pub fn schema_only(mut self, yes: bool) -> Self {
        self.schema_only = yes;
        self
    }

    /// Rows only.
    pub fn data_only(mut self, yes: bool) -> Self {
        self.data_only = yes;
        self
    }

    /// Back up a database without snapshot isolation: tables are read one after another at
    /// `READ COMMITTED` and may show different moments.
    pub fn allow_inconsistent(mut self, yes: bool) -> Self {
        self.allow_inconsistent = yes;
        self
    }
}

fn s(row: &Row, i: usize) -> String {
    text(row, i).unwrap_or_default()
}

fn n(row: &Row, i: usize) -> i64 {
    text(row, i).and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// Reads every user table's definition.
pub(crate) async fn read_tables(
    c: &mut MsClient,
    filter: &Filter,
    warnings: &mut Vec<String>,
) -> Result<Vec<Table>> {
    let k = ErrorKind::Source;
    let mut tables: BTreeMap<i32, Table> = BTreeMap::new();
    let mut all = Vec::new();
    for r in rows(c, catalog::TABLES, k, "reading sys.tables").await? {
        let (schema, name) = (s(&r, 0), s(&r, 1));
        all.push(format!("{schema}.{name}"));
        if !filter.table_included(&schema, &name) {
            continue;
        }
        if n(&r, 3) != 0 {
            warnings.push(format!(
                "{schema}.{name} is a system-versioned temporal or history table; its rows are backed up, its versioning is not"
            ));
        }
        if n(&r, 4) != 0 {
            warnings.push(format!(
                "{schema}.{name} is memory-optimized; it is restored as a disk-based table"
            ));
        }
        tables.insert(
            n(&r, 2) as i32,
            Table {
                schema,
                name,
                object_id: n(&r, 2) as i32,
                ..Table::default()
            },
        );
    }
    for r in rows(c, catalog::COLUMNS, k, "reading sys.columns").await? {
        let Some(t) = tables.get_mut(&(n(&r, 0) as i32)) else {
            continue;
        };
        let computed = text(&r, 10).map(|d| (d, n(&r, 11) != 0));
        t.columns.push(Column {
            name: s(&r, 1),
            type_name: s(&r, 2),
            max_length: n(&r, 3) as i32,
            precision: n(&r, 4) as u8,
            scale: n(&r, 5) as u8,
            nullable: n(&r, 6) != 0,
            collation: text(&r, 7),
            identity: text(&r, 8).zip(text(&r, 9)),
            computed,
            default: text(&r, 12).zip(text(&r, 13)),
            rowguidcol: n(&r, 14) != 0,
        });
    }
    let mut last: Option<(i32, i64)> = None;
    for r in rows(c, catalog::INDEXES, k, "reading sys.indexes").await? {
        let oid = n(&r, 0) as i32;
        let Some(t) = tables.get_mut(&oid) else {
            continue;
        };
        let key = (oid, n(&r, 2));
        if last != Some(key) {
            t.indexes.push(Index {
                name: s(&r, 1),
                clustered: n(&r, 3) != 0,
                unique: n(&r, 4) != 0,
                primary_key: n(&r, 5) != 0,
                unique_constraint: n(&r, 6) != 0,
                filter: text(&r, 7),
                ..Index::default()
            });
            last = Some(key);
        }
        if let Some(i) = t.indexes.last_mut() {
            if n(&r, 10) != 0 {
                i.included.push(s(&r, 8));
            } else {
                i.keys.push((s(&r, 8), n(&r, 9) != 0));
            }
        }
    }
    for r in rows(c, catalog::CHECKS, k, "reading sys.check_constraints").await? {
        if let Some(t) = tables.get_mut(&(n(&r, 0) as i32)) {
            t.checks.push((s(&r, 1), s(&r, 2)));
        }
    }
    let mut last: Option<(i32, String)> = None;
    for r in rows(c, catalog::FOREIGN_KEYS, k, "reading sys.foreign_keys").await? {
        let oid = n(&r, 0) as i32;
        let Some(t) = tables.get_mut(&oid) else {
            continue;
        };
        let key = (oid, s(&r, 1));
        if last.as_ref() != Some(&key) {
            t.foreign_keys.push(ForeignKey {
                name: s(&r, 1),
                ref_schema: s(&r, 2),
                ref_table: s(&r, 3),
                on_delete: s(&r, 4),
                on_update: s(&r, 5),
                ..ForeignKey::default()
            });
            last = Some(key);
        }
        if let Some(fk) = t.foreign_keys.last_mut() {
            fk.columns.push(s(&r, 6));
            fk.ref_columns.push(s(&r, 7));
        }
    }
    for r in rows(c, catalog::OTHER_OBJECTS, k, "listing other objects").await? {
        warnings.push(format!(
            "{} {} is not backed up (the logical SQL Server engine covers tables, their keys, indexes and constraints; use --engine-tool server-backup for everything)",
            s(&r, 0),
            s(&r, 1)
        ));
    }
    filter.check_includes_match(
        &all,
        "SQL Server table patterns match schema.table; one without a '.' matches the name in any schema",
    )?;
    Ok(tables.into_values().collect())
}

#[async_trait]
impl Source for MssqlSource {
    // Long on purpose: the SNAPSHOT transaction, the catalog read and the per-table SELECTs share one connection and must run in this order.
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        let mut c = connect_to(&self.url, self.url.database(), ErrorKind::Source).await?;
        let mut warnings = Vec::new();
        let facts = rows(
            &mut c,
            "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)), DB_NAME(), \
             CAST(snapshot_isolation_state AS int) FROM sys.databases WHERE database_id = DB_ID()",
            ErrorKind::Source,
            "reading database facts",
        )
        .await?;
        let row = facts.first().ok_or_else(|| {
            Error::new(
                ErrorKind::Source,
                "sys.databases has no row for this database",
            )
        })?;
        let version = text(row, 0);
        let db = s(row, 1);
        let snapshot = n(row, 2) == 1;
        if snapshot {
            exec(
                &mut c,
                "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION",
                ErrorKind::Source,
                "starting the snapshot transaction",
            )
            .await?;
        } else if self.allow_inconsistent {
            warnings.push(format!(
                "[{db}] does not allow snapshot isolation: tables were read one after another at READ COMMITTED and may show different moments"
            ));
        } else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "[{db}] does not allow snapshot isolation, so its tables cannot be read as of one moment; run ALTER DATABASE [{db}] SET ALLOW_SNAPSHOT_ISOLATION ON, or accept an inconsistent backup with allow_inconsistent(true)"
                ),
            ));
        }
        let tables = read_tables(&mut c, &self.filter, &mut warnings).await?;
        // The snapshot starts at the first read inside the transaction: the catalog reads above.
        let mut position = BTreeMap::new();
        if snapshot {
            if let Some(r) = rows(
                &mut c,
                "SELECT CAST(transaction_sequence_num AS bigint) FROM sys.dm_tran_current_transaction",
                ErrorKind::Source,
                "reading the snapshot's sequence number",
            )
            .await?
            .first()
            {
                if let Some(x) = text(r, 0) {
                    position.insert("transaction_sequence_num".into(), x);
                }
            }
            position.insert("isolation".into(), "snapshot".into());
        } else {
            position.insert("isolation".into(), "read committed".into());
        }
        let mut specs = Vec::new();
        let mut pre = Vec::new();
        let mut post = Vec::new();
        let mut fks = Vec::new();
        if !self.data_only {
            let mut schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
            schemas.sort();
            schemas.dedup();
            pre.extend(schemas.into_iter().map(create_schema));
            pre.extend(tables.iter().map(Table::create));
            post.extend(tables.iter().flat_map(Table::post_data));
            fks.extend(tables.iter().flat_map(Table::foreign_keys));
            specs.push(EntrySpec::new("schema/pre-data", EntryKind::PreData, 0));
        }
        let mut selects = BTreeMap::new();
        if !self.schema_only {
            for t in &tables {
                let mut cols = Vec::new();
                let mut exprs = Vec::new();
                for c in &t.columns {
                    match read_as(&c.type_name, c.computed.is_some()) {
                        ReadAs::Skip(why) => {
                            if c.computed.is_none() {
                                warnings.push(format!(
                                    "column {}.{} ({}) is not backed up: {why}",
                                    t.display(),
                                    c.name,
                                    c.type_name
                                ));
                            }
                        }
                        how => {
                            exprs.push(select_expr(&c.name, &how));
                            cols.push(c.name.clone());
                        }
                    }
                }
                if cols.is_empty() {
                    continue;
                }
                let name = format!("data/{}", t.display());
                selects.insert(
                    name.clone(),
                    format!("SELECT {} FROM {}", exprs.join(", "), t.qualified()),
                );
                let meta = EntryMeta::rows(TableRef {
                    schema: Some(t.schema.clone()),
                    name: t.name.clone(),
                    table: t.display(),
                    columns: cols,
                });
                specs.push(EntrySpec::new(name, EntryKind::Data, 1).with_meta_of(&meta));
            }
        }
        if !self.data_only {
            specs.push(EntrySpec::new("schema/post-data", EntryKind::PostData, 2));
            specs.push(EntrySpec::new(
                "schema/foreign-keys",
                EntryKind::PostData,
                3,
            ));
        }
        Ok(Box::new(MssqlSnapshot {
            info: SourceInfo {
                engine: ENGINE.into(),
                server_version: version,
                database: Some(db),
                server: Some(self.url.address()),
                position,
            },
            specs,
            schema: BTreeMap::from([
                ("schema/pre-data".to_owned(), pre),
                ("schema/post-data".to_owned(), post),
                ("schema/foreign-keys".to_owned(), fks),
            ]),
            selects,
            client: Arc::new(Mutex::new(c)),
            in_transaction: snapshot,
            warnings,
        }))
    }
}

struct MssqlSnapshot {
    info: SourceInfo,
    specs: Vec<EntrySpec>,
    schema: BTreeMap<String, Vec<Statement>>,
    selects: BTreeMap<String, String>,
    client: Arc<Mutex<MsClient>>,
    in_transaction: bool,
    warnings: Vec<String>,
}

#[async_trait]
impl Snapshot for MssqlSnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        self.specs.clone()
    }

    async fn read(&self, entry: &EntrySpec) -> Result<EntryData> {
        if let Some(stmts) = self.schema.get(&entry.name) {
            return Ok(EntryData::bytes(once(encode_statements(stmts))));
        }
        let sql =
            self.selects.get(&entry.name).cloned().ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("no entry {:?}", entry.name))
            })?;
        let meta: EntryMeta = entry.meta_of()?;
        let table = meta.table.map(|t| t.table).unwrap_or_default();
        let client = self.client.clone().lock_owned().await;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let counter = RowCounter::new();
        let mut out = BlockSender::new(tx, counter.clone(), BLOCK);
        tokio::spawn(async move {
            let mut client = client;
            let what = format!("reading the rows of {table}");
            let result: Result<()> = async {
                let stream = client
                    .simple_query(sql)
                    .await
                    .map_err(|e| ms_error(e, ErrorKind::Source, &what))?;
                let mut rows = stream.into_row_stream();
                while let Some(row) = rows
                    .try_next()
                    .await
                    .map_err(|e| ms_error(e, ErrorKind::Source, &what))?
                {
                    let buf = out.buffer();
                    for (_, v) in row.cells() {
                        encode_value(v, buf);
                    }
                    out.row_done().await?;
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    let _ = out.flush().await;
                }
                Err(e) => out.fail(e).await,
            }
        });
        Ok(EntryData {
            stream: channel_stream(rx),
            rows: Some(counter),
        })
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        if self.in_transaction {
            let mut c = self.client.lock().await;
            exec(
                &mut c,
                "COMMIT",
                ErrorKind::Source,
                "ending the snapshot transaction",
            )
            .await?;
        }
        Ok(SnapshotSummary {
            warnings: self.warnings.clone(),
            omitted: Vec::new(),
            ..Default::default()
        })
    }
}
