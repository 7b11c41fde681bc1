//! Loading rows with `LOAD DATA LOCAL INFILE`: the server parses tab-separated fields instead of
//! SQL literals, about a third less of its CPU per row than multi-row INSERTs (docs/MYSQL.md).
//!
//! sqlx cannot answer the server's request for the local file (launchbadge/sqlx#1766), so this
//! path runs on `mysql_async` connections of its own; everything else stays on sqlx.
//!
//! `LOCAL` makes the server treat duplicate keys and unconvertible values as warnings (it cannot
//! stop the client mid-file), so every file is loaded in its own transaction and committed only
//! when the server reports no warning and exactly the rows sent; otherwise it is rolled back and
//! the restore fails naming the server's first warnings.

use bytes::Bytes;
use dbbackup_core::{ByteStream, Error, ErrorKind, Result};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use tokio::sync::mpsc;

use crate::config::MyUrl;
use crate::error::load_error;
use crate::rows::RowReader;
use crate::schema::ident;

/// File bytes per chunk handed to the connection.
const CHUNK: usize = 256 << 10;

/// A pool of `mysql_async` connections that load rows with `LOAD DATA LOCAL INFILE`.
pub(crate) struct Loader {
    opts: Opts,
    /// `ssl-mode=PREFERRED`: the plaintext options, used when the server offers no TLS.
    plaintext: Option<Opts>,
    idle: std::sync::Mutex<Vec<Conn>>,
    /// File bytes per transaction.
    transaction_bytes: usize,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loader")
    }
}

/// Appends `v` as one field: tab, newline and backslash escaped with a backslash (the file is
/// read as `CHARACTER SET binary`, so every other byte passes through untouched).
pub(crate) fn push_field(out: &mut Vec<u8>, v: &[u8]) {
    let mut from = 0;
    for (i, &b) in v.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => continue,
        };
        out.extend_from_slice(&v[from..i]);
        out.extend_from_slice(esc);
        from = i + 1;
    }
    out.extend_from_slice(&v[from..]);
}

/// The `LOAD DATA` statement for `columns` of `table`, with the target's DATA_TYPE of each. BIT
/// and spatial values go through a user variable (the server does not take them from a file
/// field as it does from a binary string); JSON is read as utf8mb4 (MySQL refuses binary JSON).
pub(crate) fn statement(table: &str, columns: &[(&str, &str)]) -> String {
    let mut list = Vec::new();
    let mut set = Vec::new();
    for (i, (name, data_type)) in columns.iter().enumerate() {
        let var = format!("@v{i}");
        let conv = match data_type.to_ascii_lowercase().as_str() {
            "bit" | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "geomcollection" => {
                var.clone()
            }
            "json" => format!("CONVERT({var} USING utf8mb4)"),
            _ => {
                list.push(ident(name));
                continue;
            }
        };
        list.push(var);
        set.push(format!("{} = {conv}", ident(name)));
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'dbbackup' INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        ident(table),
        list.join(", ")
    );
    if !set.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&set.join(", "));
    }
    sql
}

impl Loader {
    /// Connection options for `url`, with the restore session's settings.
    pub(crate) fn new(url: &MyUrl, session: &[&str], transaction_bytes: usize) -> Loader {
        let o = &url.options;
        let mut b = OptsBuilder::default()
            .ip_or_hostname(o.get_host())
            .tcp_port(o.get_port())
            .user(Some(o.get_username()))
            .pass(url.password.clone())
            .db_name(Some(url.database()))
            .prefer_socket(false)
            .setup(session.iter().map(|s| s.to_string()).collect());
        if let Some(socket) = o.get_socket() {
            b = b.socket(Some(socket.to_string_lossy()));
        }
        let plaintext =
            (url.tls.mode == crate::config::SslMode::Preferred).then(|| b.clone().into());
        Loader {
            opts: b.ssl_opts(url.tls.ssl_opts(true)).into(),
            plaintext,
            idle: Default::default(),
            transaction_bytes,
        }
    }

    async fn conn(&self) -> Result<Conn> {
        let idle = self.idle.lock().expect("lock").pop();
        match idle {
            Some(c) => Ok(c),
            None => match (Conn::new(self.opts.clone()).await, &self.plaintext) {
                (Ok(c), _) => Ok(c),
                (
                    Err(mysql_async::Error::Driver(
                        mysql_async::DriverError::NoClientSslFlagFromServer,
                    )),
                    Some(plain),
                ) => Conn::new(plain.clone())
                    .await
                    .map_err(|e| load_error(e, "cannot connect to load rows")),
                (Err(e), _) => Err(load_error(e, "cannot connect to load rows")),
            },
        }
    }

    /// Disconnects the idle connections.
    pub(crate) async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().expect("lock"));
        for c in idle {
            let _ = c.disconnect().await;
        }
    }

    /// Loads the rest of `data` into `table`: `columns` are the backed-up columns (names),
    /// `keep` the indexes of those loaded, `types` their target DATA_TYPE. Returns the rows loaded.
    pub(crate) async fn load(
        &self,
        table: &str,
        columns: &[String],
        keep: &[usize],
        types: &[String],
        reader: &mut RowReader,
        data: &mut ByteStream,
    ) -> Result<u64> {
        let what = format!("loading rows into {table} failed");
        let cols: Vec<(&str, &str)> = keep
            .iter()
            .map(|&k| (columns[k].as_str(), types[k].as_str()))
            .collect();
        let sql = statement(table, &cols);
        let mut conn = self.conn().await?;
        let mut total = 0u64;
        loop {
            conn.query_drop("START TRANSACTION")
                .await
                .map_err(|e| load_error(e, &what))?;
            let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
            conn.set_infile_handler(async move {
                Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
            });
            let produce = fill(
                reader,
                data,
                columns.len(),
                keep,
                tx,
                self.transaction_bytes,
            );
            // If this future is dropped mid-file, the connection goes with it uncommitted (the
            // test an_abandoned_load_commits_nothing_and_blocks_nothing holds the server to that).
            let (loaded, produced) = tokio::join!(conn.query_drop(&sql), produce);
            let outcome = match (loaded, produced) {
                (Err(e), _) => Err(load_error(e, &what)),
                (Ok(()), Err(e)) => Err(e),
                (Ok(()), Ok((rows, done))) => {
                    let affected = conn.affected_rows();
                    let warnings = conn.get_warnings();
                    if warnings > 0 || affected != rows {
                        Err(warned(&mut conn, &what, rows, affected, warnings).await)
                    } else {
                        Ok((rows, done))
                    }
                }
            };
            match outcome {
                Ok((rows, done)) => {
                    conn.query_drop("COMMIT")
                        .await
                        .map_err(|e| load_error(e, &what))?;
                    total += rows;
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    // A connection that fails here is dropped (closed), which rolls back too.
                    if conn.query_drop("ROLLBACK").await.is_ok() {
                        self.idle.lock().expect("lock").push(conn);
                    }
                    return Err(e);
                }
            }
        }
        self.idle.lock().expect("lock").push(conn);
        Ok(total)
    }
}

/// The error for a load the server did not take exactly, with its first warnings.
async fn warned(conn: &mut Conn, what: &str, sent: u64, affected: u64, warnings: u16) -> Error {
    let shown: Vec<(String, u32, String)> = conn
        .query("SHOW WARNINGS LIMIT 3")
        .await
        .unwrap_or_default();
    let detail: Vec<String> = shown
        .into_iter()
        .map(|(level, code, msg)| format!("{level} {code}: {msg}"))
        .collect();
    Error::new(
        ErrorKind::Target,
        format!(
            "{what}: the server stored {affected} of {sent} rows with {warnings} warning(s) ({}); \
             the values would not restore exactly, so these rows were rolled back",
            detail.join("; ")
        ),
    )
}

/// Sends `chunk` in pieces of at most [`CHUNK`]: each piece is one packet, which must stay under
/// the server's `max_allowed_packet` even when one row is bigger (the server reads the file as a
/// stream, so a line may span pieces).
async fn send_pieces(tx: &mpsc::Sender<std::io::Result<Bytes>>, mut chunk: Bytes) -> Result<()> {
    while !chunk.is_empty() {
        let piece = chunk.split_to(chunk.len().min(CHUNK));
        tx.send(Ok(piece))
            .await
            .map_err(|_| Error::new(ErrorKind::Target, "the server stopped reading the rows"))?;
    }
    Ok(())
}

/// Writes rows from `reader` / `data` to `tx` as one file of about `limit` bytes. Returns the
/// rows written and whether `data` is exhausted.
async fn fill(
    reader: &mut RowReader,
    data: &mut ByteStream,
    n: usize,
    keep: &[usize],
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    limit: usize,
) -> Result<(u64, bool)> {
    let mut out = Vec::with_capacity(CHUNK + (CHUNK >> 3));
    let mut sent = 0usize;
    let mut rows = 0u64;
    loop {
        while let Some(vals) = reader.next_row(n)? {
            for (i, &k) in keep.iter().enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                match vals[k] {
                    None => out.extend_from_slice(b"\\N"),
                    Some((p, len)) => push_field(&mut out, &reader.buf[p..p + len]),
                }
            }
            out.push(b'\n');
            rows += 1;
            if out.len() >= CHUNK {
                sent += out.len();
                let chunk = Bytes::from(std::mem::replace(
                    &mut out,
                    Vec::with_capacity(CHUNK + (CHUNK >> 3)),
                ));
                send_pieces(&tx, chunk).await?;
                if sent >= limit {
                    reader.compact();
                    return Ok((rows, false));
                }
            }
        }
        reader.compact();
        match data.next().await {
            Some(chunk) => reader.buf.extend_from_slice(&chunk?),
            None => {
                if reader.buf.len() > reader.pos {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        "row data ends in the middle of a row",
                    ));
                }
                send_pieces(&tx, Bytes::from(out)).await?;
                return Ok((rows, true));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escape_only_separators_and_backslash() {
        let mut out = Vec::new();
        push_field(&mut out, b"a\tb\nc\\N\r\0\xff");
        assert_eq!(out, b"a\\tb\\nc\\\\N\r\0\xff");
    }

    #[test]
    fn bit_spatial_and_json_columns_go_through_variables() {
        assert_eq!(
            statement("t`1", &[("id", "int"), ("b", "bit"), ("g", "point"), ("j", "json"), ("s", "varchar")]),
            "LOAD DATA LOCAL INFILE 'dbbackup' INTO TABLE `t``1` CHARACTER SET binary FIELDS TERMINATED BY '\\t' \
             ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`id`, @v1, @v2, @v3, `s`) \
             SET `b` = @v1, `g` = @v2, `j` = CONVERT(@v3 USING utf8mb4)"
        );
    }

    use sqlx::{Connection, MySqlConnection};

    fn run(sql: String) -> sqlx::RawSql {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
    }

    /// A new database with table `t (id INT PRIMARY KEY, s VARCHAR(8), b BIT(8))` on the server
    /// of the integration tests (`DBBACKUP_MYSQL_URL`, default 127.0.0.1:3306), an admin
    /// connection, and a loader into it.
    async fn scratch(tag: &str) -> (MySqlConnection, String, Loader) {
        let server = crate::test_server();
        let db = format!("dbbt_infile_{tag}_{}", std::process::id());
        let mut admin = MySqlConnection::connect(&format!("{server}/mysql"))
            .await
            .unwrap();
        run(format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .unwrap();
        run(format!(
            "CREATE TABLE {db}.t (id INT PRIMARY KEY, s VARCHAR(8), b BIT(8))"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        let url: MyUrl = format!("{server}/{db}").parse().unwrap();
        let loader = Loader::new(&url, &["SET SESSION sql_mode = ''"], 1 << 20);
        (admin, db, loader)
    }

    /// A load abandoned mid-file (its future dropped, as when another table's restore fails)
    /// commits nothing and holds no lock: the database can be dropped at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_load_commits_nothing_and_blocks_nothing() {
        let (mut admin, db, loader) = scratch("abandon").await;
        let mut rows = bytes::BytesMut::new();
        for id in 0..1000u32 {
            for v in [Some(id.to_string().as_bytes()), None, None] {
                crate::rows::push_value(&mut rows, v);
            }
        }
        let columns: Vec<String> = ["id", "s", "b"].map(String::from).to_vec();
        let types: Vec<String> = ["int", "varchar", "bit"].map(String::from).to_vec();
        let mut reader = RowReader::default();
        // The rows, then a stream that never ends: the file stays open until the future goes.
        let mut data: ByteStream = futures::stream::iter([Ok(Bytes::from(rows))])
            .chain(futures::stream::pending())
            .boxed();
        let load = loader.load("t", &columns, &[0, 1, 2], &types, &mut reader, &mut data);
        let r = tokio::time::timeout(std::time::Duration::from_millis(800), load).await;
        assert!(r.is_err(), "the load cannot finish: its file never ends");
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {db}.t")))
                .fetch_one(&mut admin)
                .await
                .unwrap();
        assert_eq!(count, 0);
        let dropped = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            run(format!("DROP DATABASE {db}")).execute(&mut admin),
        )
        .await;
        assert!(
            matches!(dropped, Ok(Ok(_))),
            "DROP DATABASE waited on the abandoned load: {dropped:?}"
        );
    }

    /// A file the server would not take exactly (LOCAL turns a duplicate key into a warning and
    /// skips the row) is rolled back and fails the load, naming the server's warning. Needs the
    /// MariaDB / MySQL of the integration tests (`DBBACKUP_MYSQL_URL`, default 127.0.0.1:3306).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_load_with_warnings_is_rolled_back_and_fails() {
        let (mut admin, db, loader) = scratch("warn").await;
        // Three rows, the third repeating the first's key; values with tabs, newlines, a
        // backslash, NULL and a BIT byte.
        let mut rows = bytes::BytesMut::new();
        for (id, s, b) in [
            (&b"1"[..], Some(&b"\tb\\N\n"[..]), &[0x81u8][..]),
            (b"2", None, &[0u8]),
            (b"1", Some(b"x"), &[1u8]),
        ] {
            for v in [Some(id), s, Some(b)] {
                crate::rows::push_value(&mut rows, v);
            }
        }
        let rows = rows.to_vec();
        let columns: Vec<String> = ["id", "s", "b"].map(String::from).to_vec();
        let types: Vec<String> = ["int", "varchar", "bit"].map(String::from).to_vec();
        let load = |rows: Vec<u8>| {
            let (columns, types, loader) = (&columns, &types, &loader);
            async move {
                let mut reader = RowReader::default();
                let mut data: ByteStream = futures::stream::iter([Ok(Bytes::from(rows))]).boxed();
                loader
                    .load("t", columns, &[0, 1, 2], types, &mut reader, &mut data)
                    .await
            }
        };
        let e = load(rows.clone()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Target, "{e}");
        assert!(e.message().contains("stored 2 of 3 rows"), "{e}");
        assert!(e.message().contains("1062"), "{e}");
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {db}.t")))
                .fetch_one(&mut admin)
                .await
                .unwrap();
        assert_eq!(count, 0, "the failed file must be rolled back");
        // Without the duplicate, the same connection loads every value exactly.
        let first_two = rows[..rows.len() - 9].to_vec();
        assert_eq!(load(first_two).await.unwrap(), 2);
        let got: Vec<(i32, Option<String>, u8)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, s, b + 0 FROM {db}.t ORDER BY id"
        )))
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(got, vec![(1, Some("\tb\\N\n".into()), 0x81), (2, None, 0)]);
        loader.close().await;
        run(format!("DROP DATABASE {db}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
