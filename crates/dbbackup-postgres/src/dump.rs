//! The `pg_dump` / `pg_restore` driven alternative: the tools run as child processes and their
//! custom-format archive streams through the same pipeline (compression, encryption, storage,
//! manifest). A non-zero exit or an empty dump fails the backup; nothing is committed.

use std::path::PathBuf;

use async_trait::async_trait;
use dbbackup_core::{
    ByteStream, EntryData, EntryKind, EntrySpec, Error, ErrorKind, Result, Snapshot,
    SnapshotSummary, Source, SourceInfo,
};
use sqlx::ConnectOptions;
use tokio::process::Command;

use crate::config::{PgUrl, ENGINE};
use crate::error::pg_error;

/// The entry a dump backup holds.
pub(crate) const DUMP: &str = "dump";

pub use dbbackup_core::tool::Tools;

/// Checks that a PostgreSQL client tool runs and can talk to a server of `server_major`.
pub(crate) trait CheckTool {
    async fn check(&self, tool: &str, server_major: u32) -> Result<PathBuf>;
}

impl CheckTool for Tools {
    async fn check(&self, tool: &str, server_major: u32) -> Result<PathBuf> {
        let (path, major) = self
            .find(
                &[tool],
                "install the PostgreSQL client tools (Debian: postgresql-client) or use the native engine, which needs none",
            )
            .await?;
        if major < server_major {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is version {major}, the server is version {server_major}; {tool} must be at least the \
                     server's major version (install postgresql-client-{server_major})",
                    path.display()
                ),
            ));
        }
        Ok(path)
    }
}

/// Connection arguments for a child tool: the URL without its password, which goes in PGPASSWORD.
fn child_env(url: &PgUrl, database: &str) -> (String, Option<String>) {
    let o = &url.options;
    let uri = format!(
        "postgresql://{}@{}:{}/{}",
        urlencode(o.get_username()),
        o.get_host(),
        o.get_port(),
        urlencode(database)
    );
    (uri, url.password.clone())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn server_major(url: &PgUrl) -> Result<(u32, String)> {
    let mut c = url
        .options
        .connect()
        .await
        .map_err(|e| pg_error(e, ErrorKind::Source, &format!("cannot connect to {url}")))?;
    let (num, version): (String, String) = sqlx::query_as(
        "SELECT current_setting('server_version_num'), current_setting('server_version')",
    )
    .fetch_one(&mut c)
    .await
    .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read the server version"))?;
    Ok((num.parse::<u32>().unwrap_or(0) / 10000, version))
}

/// A PostgreSQL database backed up by `pg_dump --format=custom`.
#[derive(Debug, Clone)]
pub struct PgDumpSource {
    url: PgUrl,
    tools: Tools,
    extra_args: Vec<String>,
}

impl PgDumpSource {
    /// The database at `url`, with tools from `PATH`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        Ok(PgDumpSource {
            url: url.parse()?,
            tools: Tools::from_path(),
            extra_args: Vec::new(),
        })
    }

    /// Where the tools are.
    pub fn with_tools(mut self, tools: Tools) -> Self {
        self.tools = tools;
        self
    }

    /// Extra `pg_dump` arguments (e.g. `--exclude-table=...`).
    pub fn with_args(mut self, args: Vec<String>) -> Self {
        self.extra_args = args;
        self
    }
}

struct DumpSnapshot {
    info: SourceInfo,
    source: PgDumpSource,
    tool: PathBuf,
}

#[async_trait]
impl Source for PgDumpSource {
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        let (major, version) = server_major(&self.url).await?;
        let tool = self.tools.check("pg_dump", major).await?;
        let mut position = std::collections::BTreeMap::new();
        position.insert("tool".to_owned(), "pg_dump --format=custom".to_owned());
        Ok(Box::new(DumpSnapshot {
            info: SourceInfo {
                engine: ENGINE.into(),
                server_version: Some(version),
                database: Some(self.url.database().to_owned()),
                position,
            },
            source: self.clone(),
            tool,
        }))
    }
}

#[async_trait]
impl Snapshot for DumpSnapshot {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn entries(&self) -> Vec<EntrySpec> {
        vec![EntrySpec::new(DUMP, EntryKind::Dump, 0)
            .with_meta(serde_json::json!({"format": "pg_dump-custom"}))]
    }

    async fn read(&self, _entry: &EntrySpec) -> Result<EntryData> {
        let (uri, password) = child_env(&self.source.url, self.source.url.database());
        let mut cmd = Command::new(&self.tool);
        cmd.args(["--format=custom", "--no-password", "--dbname", &uri])
            .args(&self.source.extra_args);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        Ok(EntryData::bytes(dbbackup_core::tool::stream_stdout(
            cmd,
            "pg_dump",
            ErrorKind::Source,
        )?))
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        Ok(SnapshotSummary::default())
    }
}

/// Feeds a custom-format archive to `pg_restore --single-transaction --exit-on-error`.
pub(crate) async fn pg_restore(url: &PgUrl, tools: &Tools, data: ByteStream) -> Result<()> {
    let (major, _) = server_major(url)
        .await
        .map_err(|e| e.with_kind(ErrorKind::Target))?;
    let tool = tools.check("pg_restore", major).await?;
    let (uri, password) = child_env(url, url.database());
    let mut cmd = Command::new(&tool);
    cmd.args([
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        "--dbname",
        &uri,
    ]);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    dbbackup_core::tool::feed_stdin(cmd, "pg_restore", data, ErrorKind::Target).await
}
