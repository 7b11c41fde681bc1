//! Schema entries as JSON lines of statements, a format every SQL engine uses for its pre- and
//! post-data entries: one `{"kind", "name", "sql"}` object per line, applied in order.

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::sink::ByteStream;

/// One DDL statement, with what it creates (for error messages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Kind of object (`table`, `index`, `view`, ...).
    pub kind: String,
    /// Name of the object.
    pub name: String,
    /// The SQL.
    pub sql: String,
    /// Session settings the statement was created under and must be replayed under (MySQL: a
    /// trigger's, routine's or event's `sql_mode`, `character_set_client`,
    /// `collation_connection`, `time_zone`); the engine decides which it honours.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub session: std::collections::BTreeMap<String, String>,
}

impl Statement {
    /// A statement creating `kind` `name`.
    pub fn new(kind: &str, name: impl Into<String>, sql: impl Into<String>) -> Self {
        Statement {
            kind: kind.into(),
            name: name.into(),
            sql: sql.into(),
            session: Default::default(),
        }
    }
}

/// Encodes statements as JSON lines.
pub fn encode_statements<'a>(stmts: impl IntoIterator<Item = &'a Statement>) -> Bytes {
    let mut out = Vec::new();
    for s in stmts {
        serde_json::to_writer(&mut out, s).expect("a statement serializes");
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// Decodes JSON lines of statements.
///
/// # Errors
/// [`ErrorKind::Corrupt`] for a line that is not a statement.
pub fn decode_statements(bytes: &[u8]) -> Result<Vec<Statement>> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("unreadable schema statement: {e}"),
                )
            })
        })
        .collect()
}

/// Reads a (small) entry stream into memory.
///
/// # Errors
/// The stream's own error.
pub async fn collect(mut data: ByteStream) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(c) = data.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

/// A one-item stream of `bytes`.
pub fn once(bytes: Bytes) -> ByteStream {
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}

/// The receiving end of a channel as a stream (for sources that produce on a spawned task).
pub fn channel_stream(rx: tokio::sync::mpsc::Receiver<Result<Bytes>>) -> ByteStream {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Gathers small pieces (rows) into blocks of about `block` bytes before they cross a channel to
/// the pipeline, counting rows as blocks leave, so per-row costs stay out of the pipeline.
pub struct BlockSender {
    tx: tokio::sync::mpsc::Sender<Result<Bytes>>,
    counter: crate::source::RowCounter,
    buf: bytes::BytesMut,
    rows: u64,
    block: usize,
}

impl BlockSender {
    /// Sends to `tx`, counting into `counter`.
    pub fn new(
        tx: tokio::sync::mpsc::Sender<Result<Bytes>>,
        counter: crate::source::RowCounter,
        block: usize,
    ) -> Self {
        BlockSender {
            tx,
            counter,
            buf: bytes::BytesMut::with_capacity(block),
            rows: 0,
            block,
        }
    }

    /// The buffer to append the next row to; call [`row_done`](Self::row_done) after.
    pub fn buffer(&mut self) -> &mut bytes::BytesMut {
        &mut self.buf
    }

    /// Marks a row as appended; sends the block when it is full.
    ///
    /// # Errors
    /// [`ErrorKind::Cancelled`] when the pipeline stopped listening.
    pub async fn row_done(&mut self) -> Result<()> {
        self.rows += 1;
        if self.buf.len() >= self.block {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what is buffered.
    ///
    /// # Errors
    /// [`ErrorKind::Cancelled`] when the pipeline stopped listening.
    pub async fn flush(&mut self) -> Result<()> {
        self.counter.add(std::mem::take(&mut self.rows));
        if !self.buf.is_empty() {
            let block = self.buf.split().freeze();
            self.buf.reserve(self.block);
            self.tx
                .send(Ok(block))
                .await
                .map_err(|_| Error::cancelled())?;
        }
        Ok(())
    }

    /// Sends `e` as the stream's last item.
    pub async fn fail(self, e: Error) {
        let _ = self.tx.send(Err(e)).await;
    }
}
