//! Restore tests on MySQL / MariaDB: each scratch database is created on the given server under
//! a new name and dropped afterwards, whatever happened.

use std::sync::Arc;

use async_trait::async_trait;
use dbbackup_core::{
    CheckResult, Error, ErrorKind, Manifest, RestoreTarget, Result, ScratchDatabase, ScratchServer,
    TableRef,
};
use sqlx::mysql::MySqlConnection;
use sqlx::{ConnectOptions, Connection, Row};

use crate::config::{redact, MyUrl, ENGINE};
use crate::error::my_error;
use crate::schema::ident;
use crate::target::MySqlTarget;

/// A MySQL / MariaDB server for restore tests (`mysql://user@host:3306`, a database in the URL
/// is ignored).
#[derive(Clone)]
pub struct MySqlScratch {
    base: url::Url,
    jobs: usize,
    local_infile: bool,
}

impl std::fmt::Debug for MySqlScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MySqlScratch({})", redact(self.base.as_str()))
    }
}

impl MySqlScratch {
    /// The server of `url`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        let base = url::Url::parse(url).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid MySQL URL {}: {e}", redact(url)),
            )
        })?;
        let s = MySqlScratch {
            base,
            jobs: 2,
            local_infile: true,
        };
        s.url_for("mysql")?;
        Ok(s)
    }

    /// Tables restored at once (default 2).
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Load rows with `LOAD DATA LOCAL INFILE` where the server allows it (default yes).
    pub fn local_infile(mut self, yes: bool) -> Self {
        self.local_infile = yes;
        self
    }

    fn url_for(&self, db: &str) -> Result<MyUrl> {
        let mut u = self.base.clone();
        u.set_path(&format!("/{db}"));
        u.as_str().parse()
    }
}

struct MyScratchDb {
    url: MyUrl,
    target: MySqlTarget,
}

fn err(e: sqlx::Error, what: &str) -> Error {
    my_error(e, ErrorKind::Target, what)
}

#[async_trait]
impl ScratchServer for MySqlScratch {
    fn describe(&self) -> String {
        let mut u = self.base.clone();
        u.set_path("");
        redact(u.as_str())
    }

    async fn create(&self, manifest: &Manifest) -> Result<Box<dyn ScratchDatabase>> {
        if manifest.source.engine != ENGINE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "backup {} is a {} backup; a MySQL scratch server cannot test it",
                    manifest.backup_id, manifest.source.engine
                ),
            ));
        }
        let name = dbbackup_core::scratch_database_name()?;
        let mut u = self.base.clone();
        u.set_path(&format!("/{name}"));
        Ok(Box::new(MyScratchDb {
            url: self.url_for(&name)?,
            target: MySqlTarget::new(u.as_str())?
                .create(true)
                .with_jobs(self.jobs)
                .local_infile(self.local_infile),
        }))
    }
}

impl MyScratchDb {
    async fn connect(&self) -> Result<MySqlConnection> {
        self.url.options.connect().await.map_err(|e| {
            err(
                e,
                &format!("cannot connect to the scratch database {}", self.url),
            )
        })
    }
}

#[async_trait]
impl ScratchDatabase for MyScratchDb {
    fn name(&self) -> String {
        self.url.database().to_owned()
    }

    fn target(&self) -> Arc<dyn RestoreTarget> {
        Arc::new(self.target.clone())
    }

    async fn count_rows(&self, table: &TableRef) -> Result<u64> {
        let mut c = self.connect().await?;
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            ident(&table.name)
        )))
        .fetch_one(&mut c)
        .await
        .map_err(|e| err(e, &format!("cannot count the rows of {}", table.table)))?;
        let _ = c.close().await;
        Ok(n.max(0) as u64)
    }

    async fn integrity(&self, _manifest: &Manifest) -> Result<Vec<CheckResult>> {
        let mut c = self.connect().await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .map_err(|e| err(e, "cannot list tables"))?;
        let mut problems = Vec::new();
        for t in &tables {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("CHECK TABLE {}", ident(t))))
                .fetch_all(&mut c)
                .await
                .map_err(|e| err(e, &format!("CHECK TABLE {t} failed")))?;
            for r in rows {
                let kind: String = r.try_get::<String, _>(2).unwrap_or_default();
                let text: String = r.try_get::<String, _>(3).unwrap_or_default();
                let bad = kind.eq_ignore_ascii_case("error")
                    || (kind.eq_ignore_ascii_case("status") && !text.eq_ignore_ascii_case("OK"));
                if bad {
                    problems.push(format!("{t}: {kind}: {text}"));
                }
            }
        }
        let _ = c.close().await;
        let what = format!("CHECK TABLE on {} table(s)", tables.len());
        Ok(vec![if problems.is_empty() {
            CheckResult::passed("integrity", format!("{what}: OK"))
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
        if let Ok(v) = row.try_get::<i64, _>(0) {
            return Ok(v != 0);
        }
        if let Ok(v) = row.try_get::<bool, _>(0) {
            return Ok(v);
        }
        if let Ok(v) = row.try_get::<i32, _>(0) {
            return Ok(v != 0);
        }
        Err(dbbackup_core::check_not_a_truth_value())
    }

    async fn drop_database(self: Box<Self>) -> Result<()> {
        let mut c = self
            .url
            .server()
            .connect()
            .await
            .map_err(|e| err(e, "cannot connect to drop the scratch database"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {}",
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
