//! The `mysql-rows-v1` row format (docs/MYSQL.md), both ways: [`encode_row`] writes a row as the
//! source reads it, [`RowReader`] decodes rows for the restore (checked against the target's
//! [`ServerLimits`]), and [`Literal`] turns a value back into the cheapest exact SQL literal.

use bytes::BytesMut;
use dbbackup_core::{Error, ErrorKind, Result};
use sqlx::mysql::MySqlRow;
use sqlx::Row;

use crate::error::my_error;

/// Appends one row in `mysql-rows-v1`.
pub(crate) fn encode_row(row: &MySqlRow, columns: usize, out: &mut BytesMut) -> Result<()> {
    for i in 0..columns {
        // Borrowed: no allocation per value.
        let v: Option<&[u8]> = row
            .try_get_unchecked(i)
            .map_err(|e| Error::new(ErrorKind::Source, format!("cannot read column {i}: {e}")))?;
        push_value(out, v);
    }

    Ok(())
}

/// Appends one value in `mysql-rows-v1`: tag 0 (NULL), or tag 1, the length as a LEB128 varint
/// and the bytes.
pub(crate) fn push_value(out: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => out.extend_from_slice(&[0]),
        Some(bytes) => {
            out.extend_from_slice(&[1]);
            let mut n = bytes.len() as u64;
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.extend_from_slice(&[b]);
                    break;
                }
                out.extend_from_slice(&[b | 0x80]);
            }
            out.extend_from_slice(bytes);
        }
    }
}

/// What the target server takes per row, read once per restore.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ServerLimits {
    /// InnoDB's redo log in bytes: `innodb_redo_log_capacity` (MySQL 8.0.30+), else
    /// `innodb_log_file_size` times `innodb_log_files_in_group` (one file on MariaDB 10.5+).
    pub(crate) redo_log: Option<u64>,
    /// `max_allowed_packet` of new connections.
    pub(crate) max_packet: Option<u64>,
}

impl ServerLimits {
    pub(crate) async fn read<'c, E>(c: E) -> Result<ServerLimits>
    where
        E: sqlx::Executor<'c, Database = sqlx::MySql>,
    {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('max_allowed_packet', \
             'innodb_redo_log_capacity', 'innodb_log_file_size', 'innodb_log_files_in_group')",
        )
        .fetch_all(c)
        .await
        .map_err(|e| {
            my_error(
                e,
                ErrorKind::Target,
                "cannot read the server's max_allowed_packet and redo log size",
            )
        })?;
        let get = |name: &str| {
            rows.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        Ok(ServerLimits {
            redo_log: get("innodb_redo_log_capacity").or_else(|| {
                get("innodb_log_file_size")
                    .map(|s| s * get("innodb_log_files_in_group").unwrap_or(1))
            }),
            max_packet: get("max_allowed_packet"),
        })
    }

    /// The most value bytes a row may hold: [`refuse`](Self::refuse) has an error for more.
    pub(crate) fn max_row(&self) -> u64 {
        let packet = self
            .max_packet
            .map_or(u64::MAX, |p| p.saturating_sub(64 << 10));
        let redo = self.redo_log.map_or(u64::MAX, |r| r / 10);
        packet.min(redo)
    }

    /// The error for a row of `table` holding `row_bytes` of values that the server would not
    /// take (over `max_allowed_packet`) or could stall on (over a tenth of the redo log: InnoDB
    /// writes a row's off-page values while holding its page, and a redo log that fills up
    /// meanwhile cannot be checkpointed; MySQL documents the limit, MariaDB 10.11 hung here).
    pub(crate) fn refuse(&self, table: &str, row_bytes: u64) -> Option<Error> {
        // Room for the statement or LOAD DATA line around the values.
        let packet_room = self.max_packet.map(|p| p.saturating_sub(64 << 10));
        let msg = if packet_room.is_some_and(|room| row_bytes > room) {
            let want = whole_mib(row_bytes.saturating_add(1 << 20));
            format!(
                "table {table}: a row holds {} of values, more than the target server's \
                 max_allowed_packet ({}) lets through; raise it to at least {} (SET GLOBAL \
                 max_allowed_packet = {want}; up to 1 GiB) and run the restore again",
                mib(row_bytes),
                mib(self.max_packet.unwrap_or_default()),
                mib(want),
            )
        } else if self
            .redo_log
            .is_some_and(|r| row_bytes.saturating_mul(10) > r)
        {
            let want = whole_mib(row_bytes.saturating_mul(10));
            format!(
                "table {table}: a row holds {} of values, over a tenth of the target server's {} InnoDB \
                 redo log, which can stall the server while the row is written; give the server a redo \
                 log of at least {} (MariaDB 10.9+: SET GLOBAL innodb_log_file_size = {want}; MySQL \
                 8.0.30+: SET GLOBAL innodb_redo_log_capacity = {want}) and run the restore again",
                mib(row_bytes),
                mib(self.redo_log.unwrap_or_default()),
                mib(want),
            )
        } else {
            return None;
        };
        Some(Error::new(ErrorKind::Target, msg))
    }
}

/// How a column's values are written into INSERT statements, from the target column's type: the
/// cheapest literal the server parses back to exactly the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Literal {
    /// An integer, DECIMAL or floating-point column: a bare number (what the text protocol gave).
    Number,
    /// A utf8mb4 / utf8mb3 column (the connection's own character set), or a date or time: a
    /// plain string literal.
    Text,
    /// Anything else (binary, BLOB, BIT, latin1, ...): `_binary'...'` keeps the exact bytes.
    Binary,
}

impl Literal {
    pub(crate) fn for_column(data_type: &str, charset: Option<&str>) -> Literal {
        match (data_type.to_ascii_lowercase().as_str(), charset) {
            (
                "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "float"
                | "double",
                _,
            ) => Literal::Number,
            ("date" | "datetime" | "timestamp" | "time", _)
            | (_, Some("utf8mb4" | "utf8mb3" | "utf8")) => Literal::Text,
            _ => Literal::Binary,
        }
    }

    /// Appends `v`; a value that does not fit the column's kind (text restored into a column a
    /// migration made numeric, say) falls back to `_binary'...'`, which the server converts.
    pub(crate) fn push(self, out: &mut String, v: &[u8]) {
        match self {
            Literal::Number if is_number(v) => {
                out.push_str(std::str::from_utf8(v).expect("ASCII digits"))
            }
            Literal::Text => match std::str::from_utf8(v) {
                Ok(text) => push_quoted(out, text),
                Err(_) => push_binary_literal(out, v),
            },
            _ => push_binary_literal(out, v),
        }
    }
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`): a number literal as the server prints one.
fn is_number(v: &[u8]) -> bool {
    let digits = |v: &[u8], i: &mut usize| {
        let start = *i;
        while *i < v.len() && v[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut i = 0;
    if matches!(v.first(), Some(b'+' | b'-')) {
        i += 1;
    }

    let mut n = digits(v, &mut i);
    if v.get(i) == Some(&b'.') {
        i += 1;
        n += digits(v, &mut i);
    }

    if n == 0 {
        return false;
    }

    if matches!(v.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(v.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(v, &mut i) == 0 {
            return false;
        }
    }

    i == v.len()
}

/// Appends `'text'`, escaped as the server's client library does.
fn push_quoted(out: &mut String, text: &str) {
    out.push('\'');
    let mut from = 0;
    for (i, b) in text.bytes().enumerate() {
        let esc = match b {
            0 => "\\0",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\\' => "\\\\",
            b'\'' => "\\'",
            b'"' => "\\\"",
            0x1a => "\\Z",
            _ => continue,
        };
        // Escaped bytes are ASCII, so the slices between them are whole characters.
        out.push_str(&text[from..i]);
        out.push_str(esc);
        from = i + 1;
    }

    out.push_str(&text[from..]);
    out.push('\'');
}

/// Appends `v` as a literal of the binary character set: `_binary'...'` when `v` is valid UTF-8
/// (about half the size of hex), otherwise a hex literal (SQL text must be UTF-8 on this
/// connection).
fn push_binary_literal(out: &mut String, v: &[u8]) {
    match std::str::from_utf8(v) {
        Ok(text) => {
            out.push_str("_binary");
            push_quoted(out, text);
        }
        Err(_) => {
            out.push_str("X'");
            out.push_str(&hex::encode(v));
            out.push('\'');
        }
    }
}

/// One decoded row: for each column, NULL or the (offset, length) of its bytes in the buffer.
type RowSpans = Vec<Option<(usize, usize)>>;

/// Incremental decoder of `mysql-rows-v1`.
#[derive(Default)]
pub(crate) struct RowReader {
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    /// The limits rows are checked against, their table and the most value bytes a row may hold.
    limits: Option<(ServerLimits, String, u64)>,
}

/// `bytes` rounded up to whole MiB (a corrupt length must not overflow).
fn whole_mib(bytes: u64) -> u64 {
    bytes.checked_next_multiple_of(1 << 20).unwrap_or(u64::MAX)
}

/// A MiB figure for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

impl RowReader {
    /// A reader that refuses a row of `table` the server would not take or could stall on
    /// ([`ServerLimits::refuse`]), as soon as its value lengths are read.
    pub(crate) fn checked(limits: ServerLimits, table: &str) -> Self {
        RowReader {
            limits: Some((limits, table.to_owned(), limits.max_row())),
            ..Default::default()
        }
    }

    fn too_big(&self, row_bytes: u64) -> Option<Error> {
        match &self.limits {
            Some((limits, table, max)) if row_bytes > *max => limits.refuse(table, row_bytes),
            _ => None,
        }
    }

    /// Decodes one row of `n` values if the buffer holds all of it.
    pub(crate) fn next_row(&mut self, n: usize) -> Result<Option<RowSpans>> {
        let mut p = self.pos;
        let mut out = Vec::with_capacity(n);
        let mut row_bytes = 0u64;
        for _ in 0..n {
            let Some(&tag) = self.buf.get(p) else {
                return Ok(None);
            };
            p += 1;
            match tag {
                0 => out.push(None),
                1 => {
                    let mut len = 0usize;
                    let mut shift = 0;
                    loop {
                        let Some(&b) = self.buf.get(p) else {
                            return Ok(None);
                        };
                        p += 1;
                        len |= ((b & 0x7f) as usize) << shift;
                        shift += 7;
                        if b & 0x80 == 0 {
                            break;
                        }
                        if shift > 63 {
                            return Err(Error::new(
                                ErrorKind::Corrupt,
                                "bad value length in row data",
                            ));
                        }
                    }
                    row_bytes = row_bytes.saturating_add(len as u64);
                    if let Some(e) = self.too_big(row_bytes) {
                        return Err(e);
                    }
                    if self.buf.len() < p + len {
                        return Ok(None);
                    }
                    out.push(Some((p, len)));
                    p += len;
                }
                _ => return Err(Error::new(ErrorKind::Corrupt, "bad value tag in row data")),
            }
        }
        self.pos = p;
        Ok(Some(out))
    }

    pub(crate) fn compact(&mut self) {
        self.buf.drain(..self.pos);
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mysql-rows-v1` bytes of one row of non-NULL values.
    fn row(values: &[&[u8]]) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        for v in values {
            push_value(&mut out, Some(v));
        }
        out.to_vec()
    }

    #[test]
    fn rows_over_the_packet_or_a_tenth_of_the_redo_log_are_refused_before_their_bytes_arrive() {
        let ok = row(&[&[b'a'; 400], &[b'b'; 600]]);
        let big = row(&[&[b'a'; 400], &[b'b'; 601]]);
        let limits = ServerLimits {
            redo_log: Some(10_000),
            max_packet: None,
        };
        let mut r = RowReader::checked(limits, "t");
        r.buf.extend_from_slice(&ok);
        assert_eq!(r.next_row(2).unwrap().unwrap().len(), 2);
        // Only the big row's lengths are here, not its bytes: refused already.
        r.buf.extend_from_slice(&big[..(1 + 2 + 400) + (1 + 2)]);
        let e = r.next_row(2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Target);
        let msg = e.to_string();
        assert!(msg.contains("table t: a row holds 0.0 MiB"), "{msg}");
        assert!(msg.contains("innodb_log_file_size = 1048576"), "{msg}");
        // A row the server's max_allowed_packet would not let through.
        let limits = ServerLimits {
            redo_log: None,
            max_packet: Some(1 << 20),
        };
        let mut r = RowReader::checked(limits, "t");
        r.buf
            .extend_from_slice(&row(&[&vec![b'x'; (1 << 20) - (64 << 10)]]));
        assert!(r.next_row(1).unwrap().is_some());
        r.buf
            .extend_from_slice(&row(&[&vec![b'x'; (1 << 20) - (64 << 10) + 1]]));
        let msg = r.next_row(1).unwrap_err().to_string();
        assert!(
            msg.contains("SET GLOBAL max_allowed_packet = 2097152"),
            "{msg}"
        );
        // Unchecked, the same row passes.
        let mut r = RowReader::checked(ServerLimits::default(), "t");
        r.buf.extend_from_slice(&big);
        assert_eq!(r.next_row(2).unwrap().unwrap().len(), 2);
        // A corrupt length near u64::MAX is refused, not an overflow.
        let mut r = RowReader::checked(limits, "t");
        r.buf
            .extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(r.next_row(1).unwrap_err().kind(), ErrorKind::Target);
    }

    /// Needs the MariaDB / MySQL of the integration tests (`DBBACKUP_MYSQL_URL`, default
    /// 127.0.0.1:3306).
    #[tokio::test]
    async fn the_limits_are_the_servers() {
        use sqlx::{Connection, MySqlConnection};
        let mut c = MySqlConnection::connect(&format!("{}/mysql", crate::test_server()))
            .await
            .unwrap();
        // MariaDB 10.5+ has one redo log file; MySQL 8.0.30+ a capacity.
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        let sql = if version.contains("MariaDB") {
            "SELECT @@innodb_log_file_size + 0"
        } else {
            "SELECT @@innodb_redo_log_capacity + 0"
        };
        let want: u64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
        assert!(want >= 1 << 20);
        let packet: u64 = sqlx::query_scalar("SELECT @@GLOBAL.max_allowed_packet + 0")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(
            ServerLimits::read(&mut c).await.unwrap(),
            ServerLimits {
                redo_log: Some(want),
                max_packet: Some(packet)
            }
        );
    }

    #[test]
    fn values_are_written_as_the_cheapest_exact_literal() {
        let lit = |l: Literal, v: &[u8]| {
            let mut s = String::new();
            l.push(&mut s, v);
            s
        };
        for n in [
            "0",
            "-12",
            "+3",
            "1.50",
            ".5",
            "5.",
            "-1.7976931348623157e308",
            "1E-7",
        ] {
            assert_eq!(lit(Literal::Number, n.as_bytes()), n);
        }
        // Not a number (a column a migration made numeric): the server converts the string.
        for v in ["", "-", "1e", "e5", "1.2.3", "0x10", "1 ", "abc"] {
            assert_eq!(lit(Literal::Number, v.as_bytes()), format!("_binary'{v}'"));
        }
        assert_eq!(
            lit(Literal::Text, "it's \\ \"ü\" 😀\n\0\r\u{1a}".as_bytes()),
            "'it\\'s \\\\ \\\"ü\\\" 😀\\n\\0\\r\\Z'"
        );
        assert_eq!(lit(Literal::Text, b"\xff\x00"), "X'ff00'");
        assert_eq!(lit(Literal::Binary, b"a'b"), "_binary'a\\'b'");
        assert_eq!(Literal::for_column("BIGINT", None), Literal::Number);
        assert_eq!(Literal::for_column("year", None), Literal::Binary);
        assert_eq!(Literal::for_column("bit", None), Literal::Binary);
        assert_eq!(
            Literal::for_column("varchar", Some("utf8mb4")),
            Literal::Text
        );
        assert_eq!(
            Literal::for_column("varchar", Some("latin1")),
            Literal::Binary
        );
    }
}
