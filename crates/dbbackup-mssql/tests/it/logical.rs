//! The logical engine through the TDS test server: the handler plays a SQL Server whose catalog
//! holds two tables (identity, money, computed, rowversion and sql_variant columns, keys, an index,
//! a check and a cross-schema foreign key); backup, then restore into a new database, into an
//! existing one with clashing tables, and rows-only into a migrated table.

use std::sync::{Arc, Mutex};

use dbbackup_core::{Backup, ErrorKind, MemorySink, Restore, Sink};
use dbbackup_mssql::catalog;
use dbbackup_mssql::testing::{Col, ColType, Reply, Request, TestServer, Value};
use dbbackup_mssql::{MssqlSource, MssqlTarget};

fn st(s: &str) -> Value {
    Value::Str(s.into())
}

fn nv(name: &str) -> Col {
    Col::new(name, ColType::NVarChar(4000))
}

fn int(name: &str) -> Col {
    Col::new(name, ColType::Int)
}

fn customers() -> Vec<Vec<Value>> {
    (1..=50)
        .map(|i| {
            vec![
                Value::Int(i),
                if i % 7 == 0 {
                    Value::Null
                } else {
                    st(&format!("customer {i} 😀 'quoted'"))
                },
                Value::Decimal(i as i128 * 1_000_000 + 1234),
                Value::DateTime2(738_000 + i as u32, 123_456_789),
            ]
        })
        .collect()
}

fn orders() -> Vec<Vec<Value>> {
    (1..=30)
        .map(|i| {
            vec![
                Value::Int(10_000_000_000 + i),
                Value::Int(i % 50 + 1),
                st(&"long note ".repeat(i as usize * 100)),
                Value::Bytes(vec![i as u8; 9000]),
            ]
        })
        .collect()
}

#[derive(Default)]
struct World {
    clash: bool,
    migrated: bool,
}

// Long on purpose: the test server's whole catalog, one reply per query, kept together so it reads as the database it plays.
fn catalog_reply(sql: &str) -> Option<Vec<Reply>> {
    let rows = if sql == catalog::TABLES {
        Reply::Rows(
            vec![
                nv("schema_name"),
                nv("table_name"),
                int("object_id"),
                int("t"),
                int("m"),
            ],
            vec![
                vec![
                    st("dbo"),
                    st("customers"),
                    Value::Int(101),
                    Value::Int(0),
                    Value::Int(0),
                ],
                vec![
                    st("sales"),
                    st("orders"),
                    Value::Int(202),
                    Value::Int(0),
                    Value::Int(0),
                ],
            ],
        )
    } else if sql == catalog::COLUMNS {
        let cols = vec![
            int("object_id"),
            nv("name"),
            nv("type_name"),
            int("max_length"),
            int("precision"),
            int("scale"),
            int("nullable"),
            nv("collation"),
            nv("seed"),
            nv("increment"),
            nv("computed"),
            int("persisted"),
            nv("default_name"),
            nv("default_definition"),
            int("rowguidcol"),
        ];
        let c = |oid: i64,
                 name: &str,
                 ty: &str,
                 len: i64,
                 p: i64,
                 s: i64,
                 null: i64,
                 coll: Option<&str>,
                 ident: bool,
                 computed: Option<&str>,
                 default: Option<(&str, &str)>| {
            vec![
                Value::Int(oid),
                st(name),
                st(ty),
                Value::Int(len),
                Value::Int(p),
                Value::Int(s),
                Value::Int(null),
                coll.map(st).unwrap_or(Value::Null),
                if ident { st("1") } else { Value::Null },
                if ident { st("1") } else { Value::Null },
                computed.map(st).unwrap_or(Value::Null),
                if computed.is_some() {
                    Value::Int(0)
                } else {
                    Value::Null
                },
                default.map(|d| st(d.0)).unwrap_or(Value::Null),
                default.map(|d| st(d.1)).unwrap_or(Value::Null),
                Value::Int(0),
            ]
        };
        Reply::Rows(
            cols,
            vec![
                c(101, "id", "int", 4, 10, 0, 0, None, true, None, None),
                c(
                    101,
                    "name",
                    "nvarchar",
                    200,
                    0,
                    0,
                    1,
                    Some("Latin1_General_CI_AS"),
                    false,
                    None,
                    None,
                ),
                c(
                    101,
                    "balance",
                    "money",
                    8,
                    19,
                    4,
                    0,
                    None,
                    false,
                    None,
                    Some(("df_balance", "((0))")),
                ),
                c(
                    101,
                    "joined",
                    "datetime2",
                    8,
                    27,
                    7,
                    0,
                    None,
                    false,
                    None,
                    Some(("df_joined", "(sysutcdatetime())")),
                ),
                c(101, "ver", "timestamp", 8, 0, 0, 0, None, false, None, None),
                c(
                    101,
                    "total",
                    "money",
                    8,
                    19,
                    4,
                    1,
                    None,
                    false,
                    Some("([balance]*(2))"),
                    None,
                ),
                c(202, "id", "bigint", 8, 19, 0, 0, None, false, None, None),
                c(202, "customer", "int", 4, 10, 0, 0, None, false, None, None),
                c(
                    202,
                    "note",
                    "nvarchar",
                    -1,
                    0,
                    0,
                    1,
                    Some("Latin1_General_CI_AS"),
                    false,
                    None,
                    None,
                ),
                c(
                    202,
                    "blob",
                    "varbinary",
                    -1,
                    0,
                    0,
                    1,
                    None,
                    false,
                    None,
                    None,
                ),
                c(
                    202,
                    "v",
                    "sql_variant",
                    8016,
                    0,
                    0,
                    1,
                    None,
                    false,
                    None,
                    None,
                ),
            ],
        )
    } else if sql == catalog::INDEXES {
        let cols = vec![
            int("object_id"),
            nv("name"),
            int("index_id"),
            int("clustered"),
            int("is_unique"),
            int("primary_key"),
            int("unique_constraint"),
            nv("filter"),
            nv("column_name"),
            int("descending"),
            int("included"),
        ];
        let i = |oid: i64,
                 name: &str,
                 id: i64,
                 cl: i64,
                 un: i64,
                 pk: i64,
                 col: &str,
                 desc: i64,
                 inc: i64| {
            vec![
                Value::Int(oid),
                st(name),
                Value::Int(id),
                Value::Int(cl),
                Value::Int(un),
                Value::Int(pk),
                Value::Int(0),
                Value::Null,
                st(col),
                Value::Int(desc),
                Value::Int(inc),
            ]
        };
        Reply::Rows(
            cols,
            vec![
                i(101, "pk_customers", 1, 1, 1, 1, "id", 0, 0),
                i(101, "ix_customers_name", 2, 0, 0, 0, "name", 1, 0),
                i(101, "ix_customers_name", 2, 0, 0, 0, "joined", 0, 1),
                i(202, "pk_orders", 1, 1, 1, 1, "id", 0, 0),
            ],
        )
    } else if sql == catalog::CHECKS {
        Reply::Rows(
            vec![int("object_id"), nv("name"), nv("definition")],
            vec![vec![
                Value::Int(101),
                st("ck_balance"),
                st("([balance]>=(0))"),
            ]],
        )
    } else if sql == catalog::FOREIGN_KEYS {
        Reply::Rows(
            vec![
                int("object_id"),
                nv("name"),
                nv("rs"),
                nv("rt"),
                nv("d"),
                nv("u"),
                nv("c"),
                nv("rc"),
            ],
            vec![vec![
                Value::Int(202),
                st("fk_orders_customer"),
                st("dbo"),
                st("customers"),
                st("CASCADE"),
                st("NO_ACTION"),
                st("customer"),
                st("id"),
            ]],
        )
    } else if sql == catalog::OTHER_OBJECTS {
        Reply::Rows(
            vec![nv("kind"), nv("name")],
            vec![vec![st("VIEW"), st("dbo.v_orders")]],
        )
    } else {
        return None;
    };
    Some(vec![rows])
}

fn customer_cols(migrated: bool) -> Vec<Col> {
    let mut v = vec![Col::new("id", ColType::Int).identity(), nv("name")];
    if !migrated {
        v.push(Col::new("balance", ColType::Decimal(19, 4)));
    }
    v.push(Col::new("joined", ColType::DateTime2(7)));
    v
}

fn order_cols() -> Vec<Col> {
    vec![
        Col::new("id", ColType::BigInt),
        int("customer"),
        Col::new("note", ColType::NVarCharMax),
        Col::new("blob", ColType::VarBinaryMax),
    ]
}

async fn server(world: Arc<Mutex<World>>) -> TestServer {
    TestServer::start("pw", move |r: &Request| {
        let Request::Batch(sql) = r else {
            return vec![Reply::Done(0)];
        };
        let w = world.lock().unwrap();
        if let Some(reply) = catalog_reply(sql) {
            return reply;
        }
        if sql.starts_with("SELECT CAST(SERVERPROPERTY('ProductVersion')") {
            return vec![Reply::Rows(
                vec![nv("v"), nv("db"), int("snap")],
                vec![vec![st("16.0.4105.2"), st("shop"), Value::Int(1)]],
            )];
        }
        if sql.contains("dm_tran_current_transaction") {
            return vec![Reply::Rows(vec![Col::new("x", ColType::BigInt)], vec![vec![Value::Int(987_654)]])];
        }
        if sql == "SELECT [id], [name], CAST([balance] AS decimal(19,4)) AS [balance], [joined] FROM [dbo].[customers]" {
            return vec![Reply::Rows(customer_cols(false), customers())];
        }
        if sql == "SELECT [id], [customer], [note], [blob] FROM [sales].[orders]" {
            return vec![Reply::Rows(order_cols(), orders())];
        }
        if sql.starts_with("SELECT OBJECT_ID(") {
            let v = if w.clash { Value::Int(101) } else { Value::Null };
            return vec![Reply::Rows(vec![int("id")], vec![vec![v]])];
        }
        if sql.starts_with("SELECT name FROM sys.columns WHERE object_id = OBJECT_ID(N'[dbo].[customers]')") {
            let mut names = vec!["id", "name", "joined"];
            if !w.migrated {
                names.push("balance");
            } else {
                names.push("loyalty_points");
            }
            return vec![Reply::Rows(vec![nv("name")], names.into_iter().map(|n| vec![st(n)]).collect())];
        }
        if sql.starts_with("SELECT name FROM sys.columns WHERE object_id = OBJECT_ID(N'[sales].[orders]')") {
            return vec![Reply::Rows(
                vec![nv("name")],
                ["id", "customer", "note", "blob", "v"].iter().map(|n| vec![st(n)]).collect(),
            )];
        }
        if sql.starts_with("SELECT TOP 0") && sql.ends_with("FROM [dbo].[customers]") {
            return vec![Reply::Rows(customer_cols(w.migrated), vec![])];
        }
        if sql.starts_with("SELECT TOP 0") && sql.ends_with("FROM [sales].[orders]") {
            return vec![Reply::Rows(order_cols(), vec![])];
        }
        vec![Reply::Done(0)]
    })
    .await
    .unwrap()
}

fn bulk_loads(s: &TestServer) -> Vec<(Vec<String>, Vec<Vec<Value>>)> {
    s.requests()
        .into_iter()
        .filter_map(|r| match r {
            Request::Bulk { columns, rows } => {
                Some((columns.into_iter().map(|c| c.name).collect(), rows))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Long on purpose: one scenario: a backup, then restores into a new, a clashing and a migrated database from it.
async fn logical_backup_and_restores() {
    let world = Arc::new(Mutex::new(World::default()));
    let s = server(world.clone()).await;
    let sink: Arc<dyn Sink> = Arc::new(MemorySink::new());
    let report = Backup::builder()
        .source(MssqlSource::new(&s.url("sa", "pw", "shop")).unwrap())
        .sink(sink.clone())
        .jobs(2)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    let m = &report.manifest;
    assert_eq!(m.source.engine, "mssql");
    assert_eq!(m.source.position["isolation"], "snapshot");
    assert_eq!(m.source.position["transaction_sequence_num"], "987654");
    assert_eq!(m.entry("data/dbo.customers").unwrap().rows, Some(50));
    assert_eq!(m.entry("data/sales.orders").unwrap().rows, Some(30));
    let warnings = m.warnings.join("\n");
    assert!(
        warnings.contains("column sales.orders.v (sql_variant) is not backed up"),
        "{warnings}"
    );
    assert!(
        warnings.contains("column dbo.customers.ver (timestamp)"),
        "{warnings}"
    );
    assert!(
        warnings.contains("VIEW dbo.v_orders is not backed up"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("total"),
        "computed columns are silently recomputed: {warnings}"
    );
    let batches = s.batches();
    assert!(batches
        .iter()
        .any(|b| b == "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION"));
    assert_eq!(batches.last().map(String::as_str), Some("COMMIT"));

    // Restore into a new database.
    let before = s.batches().len();
    let r = Restore::builder()
        .sink(sink.clone())
        .backup(report.backup_id().parse().unwrap())
        .target(
            MssqlTarget::new(&s.url("sa", "pw", "shop_copy"))
                .unwrap()
                .create(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(r.rows, 80);
    let ddl: Vec<String> = s.batches()[before..].to_vec();
    assert_eq!(ddl[0], "CREATE DATABASE [shop_copy]");
    let create = ddl
        .iter()
        .find(|b| b.starts_with("CREATE TABLE [dbo].[customers]"))
        .unwrap();
    assert_eq!(
        create,
        "CREATE TABLE [dbo].[customers] (\n  [id] int IDENTITY(1, 1) NOT NULL,\n  \
         [name] nvarchar(100) COLLATE Latin1_General_CI_AS NULL,\n  \
         [balance] money NOT NULL CONSTRAINT [df_balance] DEFAULT ((0)),\n  \
         [joined] datetime2(7) NOT NULL CONSTRAINT [df_joined] DEFAULT (sysutcdatetime()),\n  \
         [ver] timestamp NOT NULL,\n  [total] AS ([balance]*(2)),\n  \
         CONSTRAINT [pk_customers] PRIMARY KEY CLUSTERED ([id] ASC)\n)"
    );
    assert!(ddl
        .iter()
        .any(|b| b == "IF SCHEMA_ID(N'sales') IS NULL EXEC(N'CREATE SCHEMA [sales]')"));
    assert!(ddl.iter().any(|b| b
        == "CREATE NONCLUSTERED INDEX [ix_customers_name] ON [dbo].[customers] ([name] DESC) INCLUDE ([joined])"));
    assert!(ddl.iter().any(|b| b
        == "ALTER TABLE [dbo].[customers] WITH CHECK ADD CONSTRAINT [ck_balance] CHECK ([balance]>=(0))"));
    let fk = ddl.iter().position(|b| b.contains("FOREIGN KEY")).unwrap();
    assert_eq!(
        ddl[fk],
        "ALTER TABLE [sales].[orders] WITH CHECK ADD CONSTRAINT [fk_orders_customer] FOREIGN KEY ([customer]) \
         REFERENCES [dbo].[customers] ([id]) ON DELETE CASCADE"
    );
    let last_bulk = ddl
        .iter()
        .rposition(|b| b.starts_with("INSERT BULK"))
        .unwrap();
    assert!(fk > last_bulk, "foreign keys come after the rows");
    let bulk = ddl
        .iter()
        .find(|b| b.starts_with("INSERT BULK [dbo].[customers]"))
        .unwrap();
    assert!(
        bulk.contains("KEEP_NULLS") && bulk.contains("TABLOCK"),
        "{bulk}"
    );
    let loads = bulk_loads(&s);
    let c = loads
        .iter()
        .find(|l| l.0[0] == "id" && l.0.len() == 4 && l.0[1] == "name")
        .unwrap();
    assert_eq!(
        c.1,
        customers(),
        "identity values and every value arrive unchanged"
    );
    let o = loads.iter().find(|l| l.0[1] == "customer").unwrap();
    assert_eq!(o.1, orders());

    // Into an existing database that already has the tables: refused, nothing changed.
    world.lock().unwrap().clash = true;
    let before = s.batches().len();
    let e = Restore::builder()
        .sink(sink.clone())
        .backup(report.backup_id().parse().unwrap())
        .target(MssqlTarget::new(&s.url("sa", "pw", "shop")).unwrap())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("dbo.customers, sales.orders"), "{e}");
    assert!(s.batches()[before..]
        .iter()
        .all(|b| b.starts_with("SELECT OBJECT_ID(")));
    world.lock().unwrap().clash = false;

    // Rows only into a migrated schema: balance was dropped, loyalty_points added.
    world.lock().unwrap().migrated = true;
    let loads_before = bulk_loads(&s).len();
    let before = s.batches().len();
    let r = Restore::builder()
        .sink(sink.clone())
        .backup(report.backup_id().parse().unwrap())
        .target(
            MssqlTarget::new(&s.url("sa", "pw", "shop"))
                .unwrap()
                .data_only(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("dbo.customers no longer has the column(s) balance")),
        "{:?}",
        r.warnings
    );
    assert!(s.batches()[before..]
        .iter()
        .all(|b| !b.starts_with("CREATE") && !b.starts_with("ALTER")));
    let loads = bulk_loads(&s);
    let c = &loads[loads_before..]
        .iter()
        .find(|l| l.0[1] == "name")
        .unwrap();
    assert_eq!(c.0, ["id", "name", "joined"]);
    let expected: Vec<Vec<Value>> = customers()
        .into_iter()
        .map(|r| vec![r[0].clone(), r[1].clone(), r[3].clone()])
        .collect();
    assert_eq!(c.1, expected);

    // fail_on_dropped_columns turns the dropped column into an error.
    let e = Restore::builder()
        .sink(sink.clone())
        .backup(report.backup_id().parse().unwrap())
        .target(
            MssqlTarget::new(&s.url("sa", "pw", "shop"))
                .unwrap()
                .data_only(true)
                .fail_on_dropped_columns(true),
        )
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("balance") && e.to_string().contains("fail_on_dropped_columns"),
        "{e}"
    );
}

#[tokio::test]
async fn without_snapshot_isolation_the_backup_is_refused_unless_accepted() {
    let s = TestServer::start("pw", |r: &Request| match r {
        Request::Batch(sql) if sql.starts_with("SELECT CAST(SERVERPROPERTY('ProductVersion')") => {
            vec![Reply::Rows(
                vec![nv("v"), nv("db"), int("snap")],
                vec![vec![st("15.0"), st("legacy"), Value::Int(0)]],
            )]
        }
        Request::Batch(sql) => catalog_reply(sql)
            .map(|_| vec![Reply::Rows(vec![int("x")], vec![])])
            .unwrap_or(vec![Reply::Done(0)]),
        _ => vec![Reply::Done(0)],
    })
    .await
    .unwrap();
    let sink = Arc::new(MemorySink::new());
    let e = Backup::builder()
        .source(MssqlSource::new(&s.url("sa", "pw", "legacy")).unwrap())
        .sink(sink.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ALLOW_SNAPSHOT_ISOLATION ON"), "{e}");
    let ok = Backup::builder()
        .source(
            MssqlSource::new(&s.url("sa", "pw", "legacy"))
                .unwrap()
                .allow_inconsistent(true),
        )
        .sink(sink)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(ok.manifest.source.position["isolation"], "read committed");
    assert!(ok
        .manifest
        .warnings
        .iter()
        .any(|w| w.contains("may show different moments")));
}

/// The core's source conformance suite (backup with zstd + AES, verify, restore, a damaged entry
/// refused as corrupt naming backup and entry) over the TDS test server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logical_engine_passes_the_source_conformance_suite() {
    use dbbackup_core::testing::conformance;
    use dbbackup_core::{RestoreTarget, Source};
    let world = Arc::new(Mutex::new(World::default()));
    let s = server(world).await;
    let source: Arc<dyn Source> = Arc::new(MssqlSource::new(&s.url("sa", "pw", "shop")).unwrap());
    let target = |db: &str| -> Arc<dyn RestoreTarget> {
        Arc::new(
            MssqlTarget::new(&s.url("sa", "pw", db))
                .unwrap()
                .create(true),
        )
    };
    let (report, restored, _) =
        conformance::source_roundtrip(source, target("shop_copy"), Some(target("shop_bad"))).await;
    assert_eq!(report.manifest.source.engine, "mssql");
    assert_eq!(restored.rows, 80);
    // The damaged restore created its database and dropped it again.
    let batches = s.batches();
    assert!(batches.iter().any(|b| b == "CREATE DATABASE [shop_bad]"));
    assert!(
        batches
            .iter()
            .any(|b| b.contains("DROP DATABASE [shop_bad]")),
        "{batches:?}"
    );
}
