//! Continuous binlog archiving (`dbbackup binlog-stream`): the server's binary log received as
//! a replica does (`COM_REGISTER_SLAVE` + `COM_BINLOG_DUMP`, MariaDB and MySQL), stored in the
//! repository's `binlog` log archive in pieces.
//!
//! A piece is a small binlog file of its own: the magic bytes, the server's format description
//! event of its file, then the events it holds, byte for byte as the server sent them (with
//! their checksums), so `mariadb-binlog`/`mysqlbinlog` read it as they read the server's files.
//! It is named `<file>.<from>-<to>` (the binlog file and the byte range it covers, 12 digits
//! each: from the end of the previous piece, or where streaming resumed, to its last event's
//! end), so the archive's end, where streaming resumes, is in the names alone, and pieces chain
//! exactly even where the server leaves events out of the stream (MariaDB's annotate-rows). A piece is
//! closed on the server's rotate, at `max_bytes`, or `max_age` after its first event (default
//! 10 s: the recovery point).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbbackup_core::{CancellationToken, Error, ErrorKind, LogArchive, Result};
use futures::StreamExt;
use mysql_async::{BinlogStreamRequest, Conn, OptsBuilder};

use crate::config::MyUrl;

/// The binlog archive's kind in a repository (`logs/binlog/`).
pub const BINLOG_ARCHIVE: &str = "binlog";

const ROTATE: u8 = 4;
const FORMAT_DESCRIPTION: u8 = 15;
const HEARTBEAT: u8 = 27;
const MAGIC: &[u8] = b"\xfebin";
/// Where a binlog file's first event (its format description) begins, after the magic.
const FILE_START: u64 = 4;

/// The name of the piece of `file` holding its bytes `from..to`.
pub fn piece_name(file: &str, from: u64, to: u64) -> String {
    format!("{file}.{from:012}-{to:012}")
}

/// The binlog file and byte range a piece name says.
pub fn parse_piece(name: &str) -> Option<(String, u64, u64)> {
    let (file, range) = name.rsplit_once('.')?;
    let (from, to) = range.split_once('-')?;
    if from.len() != 12 || to.len() != 12 {
        return None;
    }
    Some((file.to_owned(), from.parse().ok()?, to.parse().ok()?))
}

/// Binlog files sort by their numeric suffix (`binlog.000010` after `binlog.000009`, also past
/// 999999).
fn file_order(file: &str) -> (String, u64) {
    match file.rsplit_once('.') {
        Some((base, n)) => (base.to_owned(), n.parse().unwrap_or(0)),
        None => (file.to_owned(), 0),
    }
}

/// Where the archive ends: the file and position after its last piece.
pub fn archive_end<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<(String, u64)> {
    names
        .into_iter()
        .filter_map(parse_piece)
        .max_by(|a, b| (file_order(&a.0), a.2).cmp(&(file_order(&b.0), b.2)))
        .map(|(f, _, to)| (f, to))
}

/// What the streamer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BinlogEvent {
    /// Streaming (re)started at `file:position`.
    Connected {
        /// The binlog file.
        file: String,
        /// The position in it.
        position: u64,
    },
    /// A piece was archived.
    Archived {
        /// Its name.
        name: String,
        /// Events in it.
        events: u64,
    },
    /// The connection was lost; streaming resumes after `retry_in`.
    Lost {
        /// Why.
        error: String,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
}

/// A listener for [`BinlogEvent`]s.
pub type BinlogListener = Arc<dyn Fn(&BinlogEvent) + Send + Sync>;

/// Streams a server's binary log into a repository's binlog archive.
#[derive(Clone)]
pub struct BinlogStreamer {
    url: MyUrl,
    archive: LogArchive,
    server_id: u32,
    max_bytes: usize,
    max_age: Duration,
    until_now: bool,
    listener: Option<BinlogListener>,
}

impl std::fmt::Debug for BinlogStreamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogStreamer")
            .field("url", &self.url.redacted)
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

struct Piece {
    file: String,
    from: u64,
    to: u64,
    fde: Vec<u8>,
    events: Vec<u8>,
    count: u64,
    opened: Option<Instant>,
}

fn my_err(e: mysql_async::Error, what: &str) -> Error {
    let text = e.to_string();
    // 1236: the server no longer has what was asked for (purged), or the position is bad.
    let kind = match &e {
        mysql_async::Error::Server(s) if s.code == 1236 => ErrorKind::NotFound,
        mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1227 => ErrorKind::Unsupported,
        _ => ErrorKind::Source,
    };
    Error::new(kind, format!("{what}: {text}"))
}

/// A failed binlog read at `file:pos`; 1236 (the server no longer has it) says what that means
/// for the archive and what to do.
fn stream_err(e: mysql_async::Error, what: &str, file: &str, pos: u64) -> Error {
    match &e {
        mysql_async::Error::Server(s) if s.code == 1236 => Error::new(
            ErrorKind::NotFound,
            format!(
                "{what}: the server no longer has the binary log the archive needs next \
                 ({e}): it was purged before it was archived, so the archive has a gap from \
                 {file}:{pos} and nothing after it can be replayed onto older backups. Streaming \
                 cannot continue this archive: take a new backup and stream into a new \
                 repository beside it (or delete this repository's logs/binlog, losing the older \
                 backups' roll-forward), and keep the server's binlogs longer than the streamer can be down \
                 (binlog_expire_logs_seconds / expire_logs_days)"
            ),
        ),
        _ => my_err(e, what),
    }
}

impl BinlogStreamer {
    /// Streams the binary log of the server at `url` (a user with `REPLICATION SLAVE` and
    /// `REPLICATION CLIENT`; the URL's database is ignored) into `archive`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL.
    pub fn new(url: &str, archive: LogArchive) -> Result<Self> {
        // The binary log is the server's: a URL without a database is fine.
        let parsed = match url.parse::<MyUrl>() {
            Ok(u) => u,
            Err(e) => {
                let (base, query) = url
                    .split_once('?')
                    .map_or((url, None), |(b, q)| (b, Some(q)));
                let after_host = base.split_once("://").map_or("", |(_, r)| r);
                if after_host.trim_end_matches('/').contains('/') {
                    return Err(e);
                }
                let mut with_db = format!("{}/mysql", base.trim_end_matches('/'));
                if let Some(q) = query {
                    with_db.push('?');
                    with_db.push_str(q);
                }
                with_db.parse()?
            }
        };
        Ok(BinlogStreamer {
            url: parsed,
            archive,
            server_id: 4_473_419,
            max_bytes: 16 << 20,
            max_age: Duration::from_secs(10),
            until_now: false,
            listener: None,
        })
    }

    /// The server id this replica registers with (default 4473419): unique among the
    /// server's replicas.
    pub fn server_id(mut self, id: u32) -> Self {
        self.server_id = id.max(1);
        self
    }

    /// A piece is closed this long after its first event (default 10 s: the recovery point).
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d.max(Duration::from_millis(100));
        self
    }

    /// A piece is closed at this many bytes (default 16 MiB).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.max(4096);
        self
    }

    /// Copies what the server has up to now, then stops (for cron).
    pub fn until_now(mut self, yes: bool) -> Self {
        self.until_now = yes;
        self
    }

    /// Reports progress to `listener`.
    pub fn on_event(mut self, listener: BinlogListener) -> Self {
        self.listener = Some(listener);
        self
    }

    fn emit(&self, e: BinlogEvent) {
        tracing::info!(event = ?e, "binlog-stream");
        if let Some(l) = &self.listener {
            l(&e);
        }
    }

    /// Streams until `cancel` fires (or, with [`until_now`](Self::until_now), to the server's
    /// current end), reconnecting after a lost connection (1 s, doubling to 30 s).
    ///
    /// # Errors
    /// What a retry cannot fix: the server purged binlog the archive needs (a gap:
    /// [`ErrorKind::NotFound`] naming where the archive ends), a refused login or missing
    /// privilege, a piece archived with other content, a wrong key.
    pub async fn run(&self, cancel: CancellationToken) -> Result<()> {
        dbbackup_core::reconnect::keep_running(
            &cancel,
            !self.until_now,
            || self.session(&cancel),
            |e, wait| {
                self.emit(BinlogEvent::Lost {
                    error: e.to_string(),
                    retry_in: wait,
                })
            },
        )
        .await
    }

    /// Connects with the URL's TLS mode (`PREFERRED`: plaintext when the server has no TLS).
    async fn connect(&self) -> Result<Conn> {
        let o = &self.url.options;
        let mut b = OptsBuilder::default()
            .ip_or_hostname(o.get_host())
            .tcp_port(o.get_port())
            .user(Some(o.get_username()))
            .pass(self.url.password.clone())
            .prefer_socket(false);
        if let Some(socket) = o.get_socket() {
            b = b.socket(Some(socket.to_string_lossy()));
        }
        let mode = self.url.tls.mode;
        let tls = b.clone().ssl_opts(
            self.url
                .tls
                .ssl_opts(mode != crate::config::SslMode::Disabled),
        );
        let what = format!("cannot connect to {}", self.url.redacted);
        match Conn::new(tls).await {
            Ok(c) => Ok(c),
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) if mode == crate::config::SslMode::Preferred => {
                Conn::new(b).await.map_err(|e| my_err(e, &what))
            }
            Err(e) => Err(my_err(e, &what)),
        }
    }

    async fn flush(&self, p: &mut Piece) -> Result<()> {
        if p.count == 0 {
            // Nothing to store: the next piece still starts where this one would have (a
            // file's first piece at 4, its format description inside).
            p.opened = None;
            return Ok(());
        }
        let mut data = Vec::with_capacity(MAGIC.len() + p.fde.len() + p.events.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&p.fde);
        data.extend_from_slice(&p.events);
        let name = piece_name(&p.file, p.from, p.to);
        self.archive.push(&name, Bytes::from(data)).await?;
        self.emit(BinlogEvent::Archived {
            name,
            events: p.count,
        });
        p.events.clear();
        p.count = 0;
        p.from = p.to;
        p.opened = None;
        Ok(())
    }

    // Long on purpose: one replication session, from the resume point to the end of the stream; its steps share the piece being filled.
    async fn session(&self, cancel: &CancellationToken) -> Result<()> {
        let mut conn = self.connect().await?;
        let names = self.archive.names().await?;
        let (file, pos) = match archive_end(names.iter().map(String::as_str)) {
            Some(end) => end,
            None => {
                // An empty archive starts with the oldest binlog the server still has.
                let logs: Vec<mysql_async::Row> =
                    mysql_async::prelude::Queryable::query(&mut conn, "SHOW BINARY LOGS")
                        .await
                        .map_err(|e| {
                            my_err(e, "SHOW BINARY LOGS failed (is the binary log on?)")
                        })?;
                let first: Option<String> = logs.first().and_then(|r| r.get(0));
                (
                    first.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Unsupported,
                            format!("{} has no binary log (log_bin is off)", self.url.redacted),
                        )
                    })?,
                    4,
                )
            }
        };
        for q in [
            // MariaDB: send its own events (GTID, annotate); MySQL ignores the variable.
            "SET @mariadb_slave_capability = 4",
            // A heartbeat every second, so an idle piece still closes on time.
            "SET @master_heartbeat_period = 1000000000",
        ] {
            mysql_async::prelude::Queryable::query_drop(&mut conn, q)
                .await
                .map_err(|e| my_err(e, q))?;
        }
        let mut req = BinlogStreamRequest::new(self.server_id)
            .with_filename(file.as_bytes())
            .with_pos(pos);
        if self.until_now {
            req = req.with_non_blocking();
        }
        let mut stream = conn.get_binlog_stream(req).await.map_err(|e| {
            stream_err(
                e,
                &format!("cannot read the binary log from {file}:{pos}"),
                &file,
                pos,
            )
        })?;
        // The stream's reads are not cancel-safe (a dropped `next()` loses what it had read of
        // an event): a task of its own reads it, and the loop below waits on a channel.
        let (tx, mut events) = tokio::sync::mpsc::channel(256);
        let reader = tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                let end = ev.is_err();
                if tx.send(ev).await.is_err() || end {
                    break;
                }
            }
        });
        struct Abort(tokio::task::JoinHandle<()>);
        impl Drop for Abort {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _reader = Abort(reader);
        self.emit(BinlogEvent::Connected {
            file: file.clone(),
            position: pos,
        });
        let mut p = Piece {
            file,
            from: pos,
            to: pos,
            fde: Vec::new(),
            events: Vec::new(),
            count: 0,
            opened: None,
        };
        loop {
            let due = p
                .opened
                .map(|o| self.max_age.saturating_sub(o.elapsed()))
                .unwrap_or(Duration::from_secs(3600));
            let next = tokio::select! {
                _ = cancel.cancelled() => {
                    self.flush(&mut p).await?;
                    return Ok(());
                }
                _ = tokio::time::sleep(due) => {
                    self.flush(&mut p).await?;
                    continue;
                }
                n = events.recv() => n,
            };
            let ev = match next {
                None => {
                    self.flush(&mut p).await?;
                    return if self.until_now {
                        Ok(())
                    } else {
                        Err(Error::new(ErrorKind::Source, "the binlog stream ended"))
                    };
                }
                Some(Err(e)) => {
                    self.flush(&mut p).await?;
                    return Err(stream_err(
                        e,
                        &format!("the binary log stream stopped at {}:{}", p.file, p.to),
                        &p.file,
                        p.to,
                    ));
                }
                Some(Ok(ev)) => ev,
            };
            let h = ev.header();
            let kind = h.event_type_raw();
            let log_pos = u64::from(h.log_pos());

            let mut raw = Vec::with_capacity(h.event_size() as usize);
            ev.write(mysql_async::binlog::BinlogVersion::Version4, &mut raw)
                .map_err(|e| Error::new(ErrorKind::Source, format!("binlog event: {e}")))?;
            match kind {
                ROTATE => {
                    // Position (8 bytes), the next file's name, and the checksum when the
                    // server writes them (the event's data keeps it).
                    let d = ev.data();
                    // Whether the event ends in a CRC32 of itself (the fake rotate at the
                    // stream's start comes before the format description, so its parse does
                    // not know).
                    let crc = raw.len() > 4 && {
                        let (body, sum) = raw.split_at(raw.len() - 4);
                        crc32fast::hash(body).to_le_bytes() == sum
                    };
                    let trailing = if crc && d.ends_with(&raw[raw.len() - 4..]) {
                        4
                    } else {
                        0
                    };
                    let end = d.len().saturating_sub(trailing);
                    if end < 8 {
                        continue;
                    }
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&d[..8]);
                    let next_pos = u64::from_le_bytes(n);
                    let next_file = String::from_utf8_lossy(&d[8..end]).into_owned();
                    if log_pos != 0 {
                        // The file's own last event.
                        p.events.extend_from_slice(&raw);
                        p.count += 1;
                        p.to = log_pos;
                    }
                    self.flush(&mut p).await?;
                    if next_file != p.file || log_pos != 0 {
                        p.fde.clear();
                    }
                    p.file = next_file;
                    p.from = next_pos;
                    p.to = next_pos;
                }
                FORMAT_DESCRIPTION => {
                    p.fde = raw;
                    if log_pos != 0 && p.count == 0 && log_pos > p.to {
                        // At the file's start: the piece covers the file from 4 (the format
                        // description is in every piece), so that a file's first piece is
                        // known to be one and a missing one is a gap.
                        p.to = log_pos;
                    }
                }
                HEARTBEAT => {}
                _ if log_pos == 0 => {}
                _ => {
                    // A piece starts where the previous one ended (or where streaming
                    // resumed), not at its first event: the server leaves some events out of
                    // the stream (MariaDB's annotate-rows events, unless asked for), so event
                    // offsets are not contiguous, while pieces always are.
                    if p.count == 0 {
                        p.opened = Some(Instant::now());
                    }
                    p.events.extend_from_slice(&raw);
                    p.count += 1;
                    p.to = log_pos;
                    if p.events.len() >= self.max_bytes {
                        self.flush(&mut p).await?;
                    }
                }
            }
        }
    }
}

/// How far the binlog archive reaches from a backup's recorded position without a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogWindow {
    /// The archive holds the position itself (a piece starts at or before it, or one ends at it).
    pub covers_start: bool,
    /// Where replay can reach: the end of the last contiguous piece (the start position when
    /// nothing follows it).
    pub reaches: (String, u64),
    /// The last contiguous piece.
    pub last: Option<String>,
    /// The pieces after the position, in order, up to the first gap.
    pub pieces: Vec<String>,
    /// Where the first gap begins, when more pieces follow it.
    pub gap_after: Option<(String, u64)>,
}

/// The window of the archive `names` from `from` (a backup's `binlog_file`, `binlog_position`).
pub fn binlog_window<'a>(
    names: impl IntoIterator<Item = &'a str>,
    from: (&str, u64),
) -> BinlogWindow {
    let mut all: Vec<(String, u64, u64, String)> = names
        .into_iter()
        .filter_map(|n| parse_piece(n).map(|(f, a, b)| (f, a, b, n.to_owned())))
        .collect();
    all.sort_by_key(|p| (file_order(&p.0), p.1));
    let (ff, fp) = from;
    let ends_at_start = all.iter().any(|p| p.0 == ff && p.2 == fp);
    let mut w = BinlogWindow {
        covers_start: ends_at_start || all.iter().any(|p| p.0 == ff && p.1 <= fp && p.2 > fp),
        reaches: (ff.to_owned(), fp),
        last: None,
        pieces: Vec::new(),
        gap_after: None,
    };
    if !w.covers_start {
        return w;
    }
    let after: Vec<&(String, u64, u64, String)> = all
        .iter()
        .filter(|p| (file_order(&p.0), p.2) > (file_order(ff), fp))
        .collect();
    let mut cur = (ff.to_owned(), fp);
    for (i, p) in after.iter().enumerate() {
        let contiguous = if p.0 == cur.0 {
            p.1 <= cur.1
        } else {
            // The next file, from its start.
            let (cb, cn) = file_order(&cur.0);
            let (pb, pn) = file_order(&p.0);
            cb == pb && pn == cn + 1 && p.1 <= FILE_START
        };
        if !contiguous {
            w.gap_after = Some(cur.clone());
            let _ = i;
            break;
        }
        cur = (p.0.clone(), p.2);
        w.last = Some(p.3.clone());
        w.pieces.push(p.3.clone());
    }
    w.reaches = cur;
    w
}

/// The pieces no kept backup needs: those that end at or before the oldest kept position
/// (`(binlog_file, binlog_position)` of each kept backup). None kept: nothing.
pub fn unneeded_pieces<'a>(
    names: impl IntoIterator<Item = &'a str>,
    kept: &[(String, u64)],
) -> Vec<String> {
    let Some(oldest) = kept.iter().min_by_key(|(f, p)| (file_order(f), *p)) else {
        return Vec::new();
    };
    let floor = (file_order(&oldest.0), oldest.1);
    names
        .into_iter()
        .filter(|n| parse_piece(n).is_some_and(|(f, _, to)| (file_order(&f), to) < floor))
        .map(str::to_owned)
        .collect()
}

/// Where a binlog replay stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayStop {
    /// At the end of the archive.
    End,
    /// After the last event at or before this time (binlog times are whole seconds).
    Time(time::OffsetDateTime),
    /// After the transaction of this GTID (MariaDB's `domain-server-sequence`, e.g.
    /// `0-1-1234`; several domains comma-separated): `mariadb-binlog --stop-position=GTID`.
    Gtid(String),
    /// At this position of this binlog file (a transaction boundary, as `SHOW MASTER STATUS`
    /// gives).
    Position {
        /// The binlog file.
        file: String,
        /// The position in it.
        position: u64,
    },
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Pieces replayed.
    pub pieces: usize,
    /// Where the replayed binlog ends (file, position).
    pub reached: (String, u64),
}

/// The events of a piece (after its magic and format description) whose start is at or after
/// `from` and whose end is at or before `to`, with the magic and format description kept.
fn trim_piece(data: &[u8], from: u64, to: u64) -> Result<Vec<u8>> {
    let bad = || {
        Error::new(
            ErrorKind::Corrupt,
            "a binlog piece has a damaged event header",
        )
    };
    if data.len() < 4 + 19 || &data[..4] != MAGIC {
        return Err(bad());
    }
    let size_at = |off: usize| -> Result<usize> {
        let h = data.get(off..off + 19).ok_or_else(bad)?;
        Ok(u32::from_le_bytes([h[9], h[10], h[11], h[12]]) as usize)
    };
    let fde_end = 4 + size_at(4)?;
    let mut out = data[..fde_end.min(data.len())].to_vec();
    let mut off = fde_end;
    while off < data.len() {
        let size = size_at(off)?;
        let h = &data[off..off + 19];
        let end = u64::from(u32::from_le_bytes([h[13], h[14], h[15], h[16]]));
        let start = end.saturating_sub(size as u64);
        let ev = data.get(off..off + size).ok_or_else(bad)?;
        if start >= from && end <= to {
            out.extend_from_slice(ev);
        }
        off += size;
    }
    Ok(out)
}

/// Replays the archived binary log from `from` (a logical backup's recorded `binlog_file` and
/// `binlog_position`) to `stop`, for the database `source_db` only, into the database of
/// `target_url` (renamed as `--rewrite-db` does): pieces checked for continuity, trimmed to the
/// range, decoded by `mariadb-binlog`/`mysqlbinlog` and applied by the client (sandboxed, as dump
/// restores are), with `sql_log_bin = 0` unless `relog`.
///
/// # Errors
/// [`ErrorKind::NotFound`] when the archive does not cover the range without a gap (naming the
/// first gap); the tools' exit status and stderr otherwise.
// Long on purpose: selection, continuity, trimming and the two tools share the piece list.
pub async fn replay_binlog(
    archive: &LogArchive,
    from: (&str, u64),
    stop: &ReplayStop,
    source_db: &str,
    target_url: &str,
    relog: bool,
    tools: &crate::Tools,
) -> Result<ReplayReport> {
    let target: MyUrl = target_url.parse()?;
    let (from_file, from_pos) = from;
    let names = archive.names().await?;
    // Continuity is the window's: the same rule `list` and `verify` apply.
    let w = binlog_window(names.iter().map(String::as_str), from);
    let gap = |what: String| Error::new(ErrorKind::NotFound, what);
    if !w.covers_start {
        let begins = names
            .iter()
            .filter_map(|n| parse_piece(n))
            .min_by_key(|p| (file_order(&p.0), p.1))
            .map_or("nothing".to_owned(), |p| format!("{}:{}", p.0, p.1));
        return Err(gap(format!(
            "the binlog archive does not reach back to the backup's position {from_file}:{from_pos} \
             (it begins at {begins}): was binlog-stream running when the backup was taken?"
        )));
    }
    let stop_key = match stop {
        ReplayStop::Position { file, position } => Some((file_order(file), *position)),
        _ => None,
    };
    if let Some((f, p)) = &w.gap_after {
        if stop_key.as_ref().is_none_or(|s| (file_order(f), *p) < *s) {
            return Err(gap(format!(
                "the binlog archive has a gap after {f}:{p}: the replay would skip transactions"
            )));
        }
    }
    if let (ReplayStop::Position { file, position }, Some(s)) = (stop, &stop_key) {
        if (file_order(&w.reaches.0), w.reaches.1) < *s {
            return Err(gap(format!(
                "the binlog archive ends before {file}:{position}"
            )));
        }
    }
    let selected: Vec<(String, u64, u64, String)> = w
        .pieces
        .iter()
        .filter_map(|n| parse_piece(n).map(|(f, a, b)| (f, a, b, n.clone())))
        .filter(|p| {
            stop_key
                .as_ref()
                .is_none_or(|s| (file_order(&p.0), p.1) < *s)
        })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "dbbackup-binlog-replay-{}-{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", dir.display())))?;
    }
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let mut files = Vec::new();
    for (i, p) in selected.iter().enumerate() {
        let data = archive.fetch(&p.3).await?;
        let lo = if p.0 == from_file { from_pos } else { 0 };
        let hi = match stop {
            ReplayStop::Position { file, position } if *file == p.0 => *position,
            _ => u64::MAX,
        };
        let trimmed = if lo > p.1 || hi < p.2 {
            trim_piece(&data, lo, hi)?
        } else {
            data.to_vec()
        };
        let path = dir.join(format!("{i:06}-{}", p.3));
        std::fs::write(&path, trimmed)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
        files.push(path);
    }
    let reached = selected
        .last()
        .map_or((from_file.to_owned(), from_pos), |p| match stop {
            ReplayStop::Position { file, position } if *file == p.0 => (p.0.clone(), *position),
            _ => (p.0.clone(), p.2),
        });
    if files.is_empty() {
        return Ok(ReplayReport { pieces: 0, reached });
    }
    let (tool, _) = tools
        .find(
            &["mariadb-binlog", "mysqlbinlog"],
            "install the client tools (Debian: mariadb-client)",
        )
        .await?;
    let mut cmd = dbbackup_core::tool::command(&tool);
    cmd.env("TZ", "UTC").arg(format!("--database={source_db}"));
    // The replay starts inside the log, after the file's GTID list: MariaDB's strict GTID
    // state check would refuse the first transaction as "missing data"; continuity is checked
    // here, from the pieces' ranges.
    if dbbackup_core::tool::help_mentions(&tool, "--gtid-strict-mode").await? {
        cmd.arg("--skip-gtid-strict-mode");
    }
    if source_db != target.database() {
        cmd.arg(format!("--rewrite-db={source_db}->{}", target.database()));
    }
    if let ReplayStop::Time(t) = stop {
        // Events at or before `t`: binlog times are whole seconds, the stop is exclusive.
        let next = t
            .to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(*t)
            + time::Duration::seconds(1);
        let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        cmd.arg(format!(
            "--stop-datetime={}",
            next.format(&f)
                .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?
        ));
    }
    if let ReplayStop::Gtid(g) = stop {
        let valid = !g.is_empty()
            && g.split(',').all(|one| {
                let parts: Vec<&str> = one.trim().split('-').collect();
                parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            });
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{g:?} is not a MariaDB GTID (domain-server-sequence, e.g. 0-1-1234)"),
            ));
        }
        cmd.arg(format!("--stop-position={g}"));
    }
    cmd.args(&files);
    let decoded = dbbackup_core::tool::stream_stdout(cmd, "mariadb-binlog", ErrorKind::Target)?;
    crate::dump::client_apply(
        &target,
        tools,
        decoded,
        (!relog).then_some("SET sql_log_bin = 0"),
    )
    .await?;
    Ok(ReplayReport {
        pieces: files.len(),
        reached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_contiguous_pieces_across_files_and_stop_at_a_gap() {
        let names = [
            piece_name("binlog.000001", 4, 1000),
            piece_name("binlog.000001", 1000, 2000),
            piece_name("binlog.000002", 4, 500),
            piece_name("binlog.000002", 600, 900),
        ];
        let n = || names.iter().map(String::as_str);
        let w = binlog_window(n(), ("binlog.000001", 1500));
        assert!(w.covers_start);
        assert_eq!(w.reaches, ("binlog.000002".to_owned(), 500));
        assert_eq!(w.gap_after, Some(("binlog.000002".to_owned(), 500)));
        assert_eq!(w.pieces.len(), 2);
        // The next file's first piece missing: a gap, not a jump to its second.
        let w = binlog_window(
            [&names[0], &names[1], &names[3]]
                .into_iter()
                .map(String::as_str),
            ("binlog.000001", 1500),
        );
        assert_eq!(w.reaches, ("binlog.000001".to_owned(), 2000));
        assert_eq!(w.gap_after, Some(("binlog.000001".to_owned(), 2000)));
        let w = binlog_window(n(), ("binlog.000002", 550));
        assert!(!w.covers_start);
        let kept = vec![("binlog.000002".to_owned(), 300)];
        assert_eq!(
            unneeded_pieces(n(), &kept),
            vec![names[0].clone(), names[1].clone()]
        );
        assert!(unneeded_pieces(n(), &[]).is_empty());
    }

    #[test]
    fn piece_names_carry_the_range_and_the_end_is_the_newest_file() {
        let n = piece_name("binlog.000003", 4, 1234);
        assert_eq!(n, "binlog.000003.000000000004-000000001234");
        assert_eq!(parse_piece(&n), Some(("binlog.000003".into(), 4, 1234)));
        let names = [
            piece_name("binlog.000009", 4, 900),
            piece_name("binlog.000010", 4, 100),
            piece_name("binlog.000010", 100, 200),
            "binlog.000011.seal-not-a-piece".to_owned(),
        ];
        assert_eq!(
            archive_end(names.iter().map(String::as_str)),
            Some(("binlog.000010".into(), 200))
        );
        assert_eq!(archive_end(std::iter::empty()), None);
    }
}
