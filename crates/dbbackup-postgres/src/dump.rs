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

use crate::config::{PgUrl, ENGINE};
use crate::entry::{EntryMeta, Format};
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

/// Connection arguments for a child tool: the URL without its password, which goes in PGPASSWORD
/// (with the TLS settings in `PGSSL*`, see [`PgUrl::child_env`]).
pub(crate) fn child_uri(url: &PgUrl, database: &str) -> String {
    let o = &url.options;
    let uri = format!(
        "postgresql://{}@{}:{}/{}",
        urlencode(o.get_username()),
        o.get_host(),
        o.get_port(),
        urlencode(database)
    );
    uri
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub(crate) async fn server_major(url: &PgUrl) -> Result<(u32, String)> {
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
                server: dbbackup_core::url_server(&self.url.redacted),
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
            .with_meta_of(&EntryMeta::of(Format::PgDumpCustom))]
    }

    async fn read(&self, _entry: &EntrySpec) -> Result<EntryData> {
        let uri = child_uri(&self.source.url, self.source.url.database());
        let mut cmd = dbbackup_core::tool::command(&self.tool);
        cmd.args(["--format=custom", "--no-password", "--dbname", &uri])
            .args(&self.source.extra_args);
        self.source.url.child_env(&mut cmd);
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
    let uri = child_uri(url, url.database());
    let (tool_major, tool_minor) = dbbackup_core::tool::full_version(&tool).await?;
    if tool_major >= 17 && major < 17 {
        // The script goes through psql, which runs meta-commands (`\! cmd`): only a pg_restore
        // that fences its script with `\restrict` (17.6 and later) may write it.
        if (tool_major, tool_minor) < (17, 6) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} is version {tool_major}.{tool_minor}; restoring into PostgreSQL {major} \
                     runs its script through psql, which is safe only with a pg_restore that \
                     writes `\\restrict` (17.6 or later); upgrade the client tools or use the \
                     native engine",
                    tool.display()
                ),
            ));
        }
        let psql = tools.check("psql", major).await?;
        return restore_through_psql(&tool, &psql, &uri, url, data).await;
    }
    // pg_restore sends SQL over libpq: no psql meta-command can run from the archive.
    let mut cmd = dbbackup_core::tool::command(&tool);
    cmd.args([
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        "--dbname",
        &uri,
    ]);
    url.child_env(&mut cmd);
    dbbackup_core::tool::feed_stdin(cmd, "pg_restore", data, ErrorKind::Target).await
}

/// The line pg_restore 17+ starts every restore with; older servers reject the setting.
const TRANSACTION_TIMEOUT: &[u8] = b"SET transaction_timeout = 0;";

/// pg_restore 17 and later set `transaction_timeout`, which servers before 17 do not have, so a
/// direct restore into them always fails. Instead pg_restore writes the script, the line goes from
/// its header, and psql (of the same installation) runs it in one transaction. A failing
/// pg_restore or a corrupt entry kills psql before it can commit anything.
async fn restore_through_psql(
    pg_restore: &std::path::Path,
    psql: &std::path::Path,
    uri: &str,
    url: &PgUrl,
    mut data: ByteStream,
) -> Result<()> {
    use futures::StreamExt;
    use std::process::Stdio;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let started = |e: std::io::Error, name: &str| {
        Error::new(ErrorKind::Target, format!("cannot start {name}: {e}"))
    };
    let mut restore = dbbackup_core::tool::command(pg_restore)
        .args(["--exit-on-error", "--file=-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| started(e, "pg_restore"))?;
    let mut cmd = dbbackup_core::tool::command(psql);
    cmd.args([
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        "--dbname",
        uri,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    url.child_env(&mut cmd);
    let mut run = cmd.spawn().map_err(|e| started(e, "psql"))?;
    let restore_err = dbbackup_core::tool::collect_stderr(restore.stderr.take());
    let psql_err = dbbackup_core::tool::collect_stderr(run.stderr.take());

    let mut archive_in = restore.stdin.take().expect("piped");
    let feed = async move {
        while let Some(chunk) = data.next().await {
            if archive_in.write_all(&chunk?).await.is_err() {
                break; // pg_restore stopped reading: its exit status says why.
            }
        }
        Ok::<(), Error>(())
    };
    let mut script = restore.stdout.take().expect("piped");
    let mut script_in = run.stdin.take().expect("piped");
    let pump = async move {
        let mut header = HeaderFilter::default();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = script.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let out = header.push(&buf[..n])?;
            script_in.write_all(&out).await?;
        }
        script_in.write_all(&header.finish()?).await?;
        Ok::<_, std::io::Error>(script_in)
    };
    let (fed, pumped) = tokio::join!(feed, pump);
    let status = restore.wait().await;
    let failure = match (fed, status) {
        (Err(e), _) => Some(e),
        (_, Ok(s)) if !s.success() => Some(Error::new(
            ErrorKind::Target,
            format!(
                "pg_restore failed ({s}): {}",
                restore_err.await.unwrap_or_default().trim()
            ),
        )),
        (_, Err(e)) => Some(Error::new(
            ErrorKind::Target,
            format!("waiting for pg_restore failed: {e}"),
        )),
        _ => None,
    };
    let script_in = match (failure, pumped) {
        (None, Ok(w)) => w,
        // psql stopped reading first (pg_restore's SIGPIPE, if any, follows from it).
        (_, Err(e)) => {
            // psql stopped reading: it failed, and rolled back; its message says why.
            let _ = run.wait().await;
            let msg = psql_err.await.unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Target,
                format!(
                    "psql failed running pg_restore's script: {}",
                    if msg.trim().is_empty() {
                        e.to_string()
                    } else {
                        msg.trim().to_owned()
                    }
                ),
            ));
        }
        (Some(failure), Ok(_)) => {
            // Killed before its input ends, psql never reaches COMMIT: nothing is applied.
            let _ = run.kill().await;
            return Err(failure);
        }
    };
    drop(script_in);
    let status = run
        .wait()
        .await
        .map_err(|e| Error::new(ErrorKind::Target, format!("waiting for psql failed: {e}")))?;
    if !status.success() {
        return Err(Error::new(
            ErrorKind::Target,
            format!(
                "psql failed running pg_restore's script ({status}): {}",
                psql_err.await.unwrap_or_default().trim()
            ),
        ));
    }
    Ok(())
}

/// Drops [`TRANSACTION_TIMEOUT`] from a script's header (comments, `SET`s, `\restrict`) and passes
/// everything from the first other line on unchanged, so table data is never touched. The header
/// must hold `\restrict KEY` (psql then refuses every meta-command the archive could smuggle in)
/// and no other meta-command; otherwise the script is refused before psql sees a line of it.
#[derive(Default)]
struct HeaderFilter {
    done: bool,
    restricted: bool,
    partial: Vec<u8>,
}

fn unrestricted(what: &str) -> std::io::Error {
    std::io::Error::other(format!(
        "pg_restore's script {what}; refusing to run it through psql (a meta-command from the \
         archive could run commands on this host)"
    ))
}

impl HeaderFilter {
    fn push<'a>(&mut self, bytes: &'a [u8]) -> std::io::Result<std::borrow::Cow<'a, [u8]>> {
        if self.done {
            return Ok(std::borrow::Cow::Borrowed(bytes)); // The bulk of the script: no copy.
        }
        self.partial.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[start..start + nl];
            if line.starts_with(b"\\") {
                if line.starts_with(b"\\restrict ") {
                    self.restricted = true;
                } else {
                    return Err(unrestricted("has a meta-command in its header"));
                }
            }
            let header_line = line.is_empty()
                || line.starts_with(b"--")
                || line.starts_with(b"SET ")
                || line.starts_with(b"SELECT pg_catalog.set_config")
                || line.starts_with(b"\\restrict ");
            if !header_line {
                if !self.restricted {
                    return Err(unrestricted("does not start with \\restrict"));
                }
                self.done = true;
                out.extend_from_slice(&self.partial[start..]);
                self.partial.clear();
                return Ok(out.into());
            }
            if line != TRANSACTION_TIMEOUT {
                out.extend_from_slice(&self.partial[start..=start + nl]);
            }
            start += nl + 1;
        }
        self.partial.drain(..start);
        Ok(out.into())
    }

    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        if !self.done && !self.restricted {
            return Err(unrestricted("does not start with \\restrict"));
        }
        Ok(std::mem::take(&mut self.partial))
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderFilter;

    #[test]
    fn only_the_header_loses_the_transaction_timeout_line() {
        let script =
            "--\n-- dump\n\\restrict k\nSET statement_timeout = 0;\nSET transaction_timeout = 0;\n\
                      SET lock_timeout = 0;\nCREATE TABLE t (a text);\nCOPY t (a) FROM stdin;\n\
                      SET transaction_timeout = 0;\n\\.\n";
        let want = script.replacen("SET transaction_timeout = 0;\n", "", 1);
        for cut in 0..script.len() {
            let mut f = HeaderFilter::default();
            let mut out = f.push(&script.as_bytes()[..cut]).unwrap().into_owned();
            out.extend_from_slice(&f.push(&script.as_bytes()[cut..]).unwrap());
            out.extend(f.finish().unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), want, "cut at {cut}");
        }
    }

    #[test]
    fn a_script_without_restrict_or_with_a_meta_command_never_reaches_psql() {
        for script in [
            "--\n-- dump\nSET statement_timeout = 0;\nCREATE TABLE t (a text);\n",
            "--\n\\! touch /tmp/pwned\n\\restrict k\nCREATE TABLE t (a text);\n",
            "--\n\\restrict k\n\\! touch /tmp/pwned\nCREATE TABLE t (a text);\n",
            "--\n-- only a header\n",
        ] {
            let mut f = HeaderFilter::default();
            let r = f.push(script.as_bytes()).map(|c| c.into_owned());
            let r = r.and_then(|_| f.finish());
            assert!(r.is_err(), "{script:?} was let through");
        }
    }
}
