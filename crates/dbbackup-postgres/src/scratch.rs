//! Restore tests on PostgreSQL: each scratch database is created on the given server under a
//! new name and dropped afterwards (`WITH (FORCE)`), whatever happened.

use std::sync::Arc;

use async_trait::async_trait;
use dbbackup_core::{
    CheckResult, Error, ErrorKind, Manifest, RestoreTarget, Result, ScratchDatabase, ScratchServer,
    TableRef,
};
use sqlx::postgres::PgConnection;
use sqlx::{ConnectOptions, Connection, Row};

use crate::config::{PgUrl, ENGINE};
use crate::error::pg_error;
use crate::schema::ident;
use crate::target::PgTarget;

/// A PostgreSQL server for restore tests; the URL's database is where the scratch databases
/// are created from (as `createdb` connects to `postgres`).
#[derive(Debug, Clone)]
pub struct PgScratch {
    url: PgUrl,
    jobs: usize,
    skip_privileges: bool,
}

impl PgScratch {
    /// The server of `url`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        Ok(PgScratch {
            url: url.parse()?,
            jobs: 2,
            skip_privileges: false,
        })
    }

    /// Tables restored at once (default 2).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Leave out owners and privileges (for a scratch server without the backup's roles).
    pub fn skip_privileges(mut self, yes: bool) -> Self {
        self.skip_privileges = yes;
        self
    }
}

struct PgScratchDb {
    admin: PgUrl,
    url: PgUrl,
    jobs: usize,
    skip_privileges: bool,
}

fn err(e: sqlx::Error, what: &str) -> Error {
    pg_error(e, ErrorKind::Target, what)
}

#[async_trait]
impl ScratchServer for PgScratch {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    async fn create(&self, manifest: &Manifest) -> Result<Box<dyn ScratchDatabase>> {
        if manifest.source.engine != ENGINE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is a {} backup; a PostgreSQL scratch server cannot test it",
                    manifest.backup_id, manifest.source.engine
                ),
            ));
        }
        let name = dbbackup_core::scratch_database_name()?;
        Ok(Box::new(PgScratchDb {
            admin: self.url.clone(),
            url: self.url.for_database(&name),
            jobs: self.jobs,
            skip_privileges: self.skip_privileges,
        }))
    }
}

impl PgScratchDb {
    async fn connect(&self) -> Result<PgConnection> {
        self.url.options.connect().await.map_err(|e| {
            err(
                e,
                &format!("cannot connect to the scratch database {}", self.url),
            )
        })
    }
}

#[async_trait]
impl ScratchDatabase for PgScratchDb {
    fn name(&self) -> String {
        self.url.database().to_owned()
    }

    fn target(&self) -> Arc<dyn RestoreTarget> {
        Arc::new(
            PgTarget::from_url(self.url.clone())
                .create(true)
                .with_jobs(self.jobs)
                .skip_privileges(self.skip_privileges),
        )
    }

    async fn count_rows(&self, table: &TableRef) -> Result<u64> {
        let mut c = self.connect().await?;
        let q = format!(
            "SELECT count(*) FROM ONLY {}.{}",
            ident(table.schema.as_deref().unwrap_or("public")),
            ident(&table.name)
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
            .fetch_one(&mut c)
            .await
            .map_err(|e| err(e, &format!("cannot count the rows of {}", table.table)))?;
        let _ = c.close().await;
        Ok(n.max(0) as u64)
    }

    async fn integrity(&self, _manifest: &Manifest) -> Result<Vec<CheckResult>> {
        let mut c = self.connect().await?;
        let available: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck')",
        )
        .fetch_one(&mut c)
        .await
        .map_err(|e| err(e, "cannot look up extensions"))?;
        if !available {
            return Ok(vec![CheckResult::skipped(
                "integrity",
                "amcheck is not installed on the scratch server (it ships with PostgreSQL's \
                 contrib package)",
            )]);
        }
        if let Err(e) = sqlx::query("CREATE EXTENSION IF NOT EXISTS amcheck")
            .execute(&mut c)
            .await
        {
            return Ok(vec![CheckResult::skipped(
                "integrity",
                format!("cannot create the amcheck extension in the scratch database: {e}"),
            )]);
        }
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&mut c)
            .await
            .map_err(|e| err(e, "cannot read the server version"))?;
        let user = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND c.relpersistence <> 't'";
        let indexes: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.amname = 'btree' AND c.relkind = 'i' AND i.indisvalid AND i.indisready AND {user} ORDER BY 1"
        )))
        .fetch_all(&mut c)
        .await
        .map_err(|e| err(e, "cannot list indexes"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let tables: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_am a ON a.oid = c.relam \
             WHERE c.relkind IN ('r', 'm') AND a.amname = 'heap' AND {user} ORDER BY 1"
        )))
        .fetch_all(&mut c)
        .await
        .map_err(|e| err(e, "cannot list tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let mut problems = Vec::new();
        for ix in &indexes {
            // heapallindexed: every heap tuple is found in the index too.
            if let Err(e) = sqlx::query("SELECT bt_index_check($1::regclass, true)")
                .bind(ix)
                .execute(&mut c)
                .await
            {
                problems.push(format!("index {ix}: {e}"));
            }
        }
        let heap = version >= 140000;
        if heap {
            for t in &tables {
                let found: std::result::Result<Vec<String>, _> =
                    sqlx::query_scalar("SELECT msg FROM verify_heapam($1::regclass) LIMIT 3")
                        .bind(t)
                        .fetch_all(&mut c)
                        .await;
                match found {
                    Ok(m) if m.is_empty() => {}
                    Ok(m) => problems.push(format!("table {t}: {}", m.join("; "))),
                    Err(e) => problems.push(format!("table {t}: {e}")),
                }
            }
        }
        let _ = c.close().await;
        let what = if heap {
            format!(
                "amcheck: {} btree index(es) (bt_index_check with heapallindexed) and {} table(s) \
                 (verify_heapam)",
                indexes.len(),
                tables.len()
            )
        } else {
            format!(
                "amcheck: {} btree index(es) (bt_index_check with heapallindexed; verify_heapam \
                 needs PostgreSQL 14)",
                indexes.len()
            )
        };
        Ok(vec![if problems.is_empty() {
            CheckResult::passed("integrity", format!("{what}: no corruption"))
        } else {
            CheckResult::failed("integrity", format!("{what}: {}", problems.join("; ")))
        }])
    }

    async fn query_is_true(&self, sql: &str) -> Result<bool> {
        let mut c = self.connect().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_optional(&mut c)
            .await
            .map_err(|e| err(e, "the check failed"))?;
        let _ = c.close().await;
        let row = row.ok_or_else(dbbackup_core::check_returned_no_row)?;
        if let Ok(v) = row.try_get::<bool, _>(0) {
            return Ok(v);
        }
        if let Ok(v) = row.try_get::<i64, _>(0) {
            return Ok(v != 0);
        }
        if let Ok(v) = row.try_get::<i32, _>(0) {
            return Ok(v != 0);
        }
        Err(dbbackup_core::check_not_a_truth_value())
    }

    async fn drop_database(self: Box<Self>) -> Result<()> {
        // A restored subscription (disabled, without a slot) keeps DROP DATABASE from working:
        // drop it first, never touching a publisher.
        if let Ok(mut c) = self.url.options.connect().await {
            let subs: Vec<String> = sqlx::query_scalar(
                "SELECT subname::text FROM pg_subscription WHERE subdbid = \
                 (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_all(&mut c)
            .await
            .unwrap_or_default();
            for sub in subs {
                for q in [
                    format!("ALTER SUBSCRIPTION {} DISABLE", ident(&sub)),
                    format!("ALTER SUBSCRIPTION {} SET (slot_name = NONE)", ident(&sub)),
                    format!("DROP SUBSCRIPTION {}", ident(&sub)),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(q))
                        .execute(&mut c)
                        .await
                        .map_err(|e| {
                            err(
                                e,
                                &format!("cannot drop subscription {sub} of the scratch database"),
                            )
                        })?;
                }
            }
            let _ = c.close().await;
        }
        let mut c = self.admin.options.connect().await.map_err(|e| {
            err(
                e,
                &format!(
                    "cannot connect to {} to drop the scratch database",
                    self.admin
                ),
            )
        })?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(self.url.database())
        )))
        .execute(&mut c)
        .await
        .map_err(|e| {
            err(
                e,
                &format!("cannot drop the scratch database {}", self.url.database()),
            )
        })?;
        let _ = c.close().await;
        Ok(())
    }
}
