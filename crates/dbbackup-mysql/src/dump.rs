//! The `mariadb-dump` / `mysqldump` driven alternative: the dump tool runs with
//! `--single-transaction` and its SQL streams through the same pipeline; a restore feeds it to the
//! `mariadb` / `mysql` client. A missing tool, a non-zero exit (with the tool's stderr) or an empty
//! dump fails the operation.

use std::path::PathBuf;

use async_trait::async_trait;
use dbbackup_core::{
    ByteStream, EntryData, EntryKind, EntrySpec, ErrorKind, Result, Snapshot, SnapshotSummary,
    Source, SourceInfo,
};
use tokio::process::Command;

use crate::config::{MyUrl, ENGINE};
use crate::entry::{EntryMeta, Format};

pub(crate) const DUMP: &str = "dump";

pub use dbbackup_core::tool::Tools;

const HINT: &str = "install the client tools (Debian: mariadb-client)";

/// Host, port, user and TLS arguments (`mysql_flavour`: MySQL's tools, which take `--ssl-mode`;
/// else MariaDB's); the password goes in `MYSQL_PWD`, never on the command line.
pub(crate) fn connection_args(cmd: &mut Command, url: &MyUrl, mysql_flavour: bool) {
    let o = &url.options;
    cmd.arg(format!("--host={}", o.get_host()))
        .arg(format!("--port={}", o.get_port()))
        .arg(format!("--user={}", o.get_username()))
        .arg("--default-character-set=utf8mb4")
        .args(url.tls.tool_args(mysql_flavour));
    if let Some(p) = &url.password {
        cmd.env("MYSQL_PWD", p);
    }
}

/// A MySQL / MariaDB database backed up by `mariadb-dump` (or `mysqldump`).
#[derive(Debug, Clone)]
pub struct MyDumpSource {
    url: MyUrl,
    tools: Tools,
    extra_args: Vec<String>,
}

impl MyDumpSource {
    /// The database at `url`, tools from `PATH`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str) -> Result<Self> {
        Ok(MyDumpSource {
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
    /// Extra dump-tool arguments.
    pub fn with_args(mut self, args: Vec<String>) -> Self {
        self.extra_args = args;
        self
    }
}

struct DumpSnapshot {
    source: MyDumpSource,
    tool: PathBuf,
}

#[async_trait]
impl Source for MyDumpSource {
    async fn open(&self) -> Result<Box<dyn Snapshot>> {
        let (tool, _) = self
            .tools
            .find(&["mariadb-dump", "mysqldump"], HINT)
            .await?;
        Ok(Box::new(DumpSnapshot {
            source: self.clone(),
            tool,
        }))
    }
}

#[async_trait]
impl Snapshot for DumpSnapshot {
    fn info(&self) -> SourceInfo {
        let mut position = std::collections::BTreeMap::new();
        position.insert(
            "tool".to_owned(),
            format!("{} --single-transaction", self.tool.display()),
        );
        SourceInfo {
            engine: ENGINE.into(),
            server_version: None,
            database: Some(self.source.url.database().to_owned()),
            server: dbbackup_core::url_server(&self.source.url.redacted),
            position,
        }
    }

    fn entries(&self) -> Vec<EntrySpec> {
        vec![EntrySpec::new(DUMP, EntryKind::Dump, 0).with_meta_of(&EntryMeta::of(Format::DumpSql))]
    }

    async fn read(&self, _entry: &EntrySpec) -> Result<EntryData> {
        let mut cmd = dbbackup_core::tool::command(&self.tool);
        let mysql_flavour = dbbackup_core::tool::help_mentions(&self.tool, "--ssl-mode").await?;
        connection_args(&mut cmd, &self.source.url, mysql_flavour);
        cmd.args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--no-tablespaces",
        ])
        .args(&self.source.extra_args)
        .arg("--")
        .arg(self.source.url.database());
        Ok(EntryData::bytes(dbbackup_core::tool::stream_stdout(
            cmd,
            "the dump tool",
            ErrorKind::Source,
        )?))
    }

    async fn finish(self: Box<Self>) -> Result<SnapshotSummary> {
        Ok(SnapshotSummary::default())
    }
}

/// Feeds a dump to the `mariadb` / `mysql` client, which must be unable to run commands on this
/// host whatever the dump holds (`\! cmd`, `system cmd`): MariaDB's client runs with `--sandbox`,
/// MySQL's with `--system-command=OFF`; a client with neither is refused.
pub(crate) async fn client_restore(url: &MyUrl, tools: &Tools, data: ByteStream) -> Result<()> {
    client_apply(url, tools, data, None).await
}

/// [`client_restore`] with an `--init-command` run first (e.g. `SET sql_log_bin = 0`).
pub(crate) async fn client_apply(
    url: &MyUrl,
    tools: &Tools,
    data: ByteStream,
    init: Option<&str>,
) -> Result<()> {
    let (tool, _) = tools.find(&["mariadb", "mysql"], HINT).await?;
    let guard = if dbbackup_core::tool::help_mentions(&tool, "--sandbox").await? {
        "--sandbox"
    } else if dbbackup_core::tool::help_mentions(&tool, "--system-command").await? {
        "--system-command=OFF"
    } else {
        return Err(dbbackup_core::Error::new(
            ErrorKind::Unsupported,
            format!(
                "{} can run shell commands found in a dump (\\! ...) and has no way to forbid \
                 them; a dump restore needs a client with --sandbox (MariaDB 10.5.25, 10.6.18, \
                 10.11.8, 11.0.6 or later) or --system-command (MySQL 8.0.40, 8.4.3 or later), \
                 or restore with the native engine",
                tool.display()
            ),
        ));
    };
    let mut cmd = dbbackup_core::tool::command(&tool);
    let mysql_flavour = dbbackup_core::tool::help_mentions(&tool, "--ssl-mode").await?;
    connection_args(&mut cmd, url, mysql_flavour);
    cmd.arg(guard);
    if let Some(i) = init {
        cmd.arg(format!("--init-command={i}"));
    }
    cmd.arg("--").arg(url.database());
    dbbackup_core::tool::feed_stdin(cmd, "the mariadb client", data, ErrorKind::Target).await
}
