//! Connections.
//!
//! Every statement goes out as a plain SQL batch (`simple_query`): the names in it were quoted by
//! [`crate::quote`], and `BACKUP`/`RESTORE` take no parameters anyway.

use dbbackup_core::{Error, ErrorKind, Result};
use tiberius::{Client, ColumnData, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::config::MsUrl;
use crate::error::ms_error;

/// A connected client.
pub type MsClient = Client<Compat<TcpStream>>;

/// Connects to `url`'s server and `database`.
pub async fn connect_to(url: &MsUrl, database: &str, kind: ErrorKind) -> Result<MsClient> {
    let config = url.tiberius(database);
    let addr = url.address();
    let attempt = async {
        let tcp = TcpStream::connect(&addr).await.map_err(|e| {
            Error::new(kind, format!("cannot reach SQL Server at {addr}: {e}")).temporary()
        })?;
        tcp.set_nodelay(true).ok();
        Client::connect(config, tcp.compat_write())
            .await
            .map_err(|e| ms_error(e, kind, &format!("logging in to {url}")))
    };
    tokio::time::timeout(url.connect_timeout, attempt)
        .await
        .map_err(|_| {
            Error::new(
                kind,
                format!(
                    "connecting to {url} took longer than {}s (connect_timeout)",
                    url.connect_timeout.as_secs()
                ),
            )
            .temporary()
        })?
}

/// Runs `sql` and discards any rows.
pub async fn exec(c: &mut MsClient, sql: &str, kind: ErrorKind, what: &str) -> Result<()> {
    let stream = c
        .simple_query(sql)
        .await
        .map_err(|e| ms_error(e, kind, what))?;
    stream
        .into_results()
        .await
        .map_err(|e| ms_error(e, kind, what))?;
    Ok(())
}

/// Runs `sql` and returns the rows of its first result set.
pub async fn rows(c: &mut MsClient, sql: &str, kind: ErrorKind, what: &str) -> Result<Vec<Row>> {
    let stream = c
        .simple_query(sql)
        .await
        .map_err(|e| ms_error(e, kind, what))?;
    stream
        .into_first_result()
        .await
        .map_err(|e| ms_error(e, kind, what))
}

/// A cell as text (numbers, strings, binary as hex), `None` for NULL. For catalog queries.
pub(crate) fn text(row: &Row, idx: usize) -> Option<String> {
    let (_, cell) = row.cells().nth(idx)?;
    match cell {
        ColumnData::String(Some(s)) => Some(s.to_string()),
        ColumnData::U8(Some(v)) => Some(v.to_string()),
        ColumnData::I16(Some(v)) => Some(v.to_string()),
        ColumnData::I32(Some(v)) => Some(v.to_string()),
        ColumnData::I64(Some(v)) => Some(v.to_string()),
        ColumnData::Bit(Some(v)) => Some(if *v { "1" } else { "0" }.to_string()),
        ColumnData::Numeric(Some(n)) => Some(n.to_string()),
        ColumnData::F64(Some(v)) => Some(v.to_string()),
        ColumnData::F32(Some(v)) => Some(v.to_string()),
        ColumnData::Guid(Some(g)) => Some(g.to_string()),
        ColumnData::Binary(Some(b)) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
        _ => None,
    }
}
