//! Streaming WAL archiving (`dbbackup wal-stream`): WAL received over the replication protocol
//! from a physical replication slot, written to the repository's WAL archive as it arrives.
//!
//! - Each completed segment is pushed as PostgreSQL names it (the same object `archive_command`
//!   would write; identical content from both is accepted, different content refused).
//! - The unfinished segment is pushed every `partial_interval` (default 10 s) as
//!   `<segment>.<bytes>.partial`, the whole segment with zeros after the `<bytes>` received, so
//!   the recovery point is seconds, not segments: `wal-fetch` serves the newest partial when the
//!   segment itself is not archived, and recovery ends at its last complete record.
//! - The slot's flush position is reported only up to the last completed segment pushed: after a
//!   restart or a lost connection, streaming resumes at the start of the first segment the
//!   archive lacks, which the slot makes the server keep. Nothing is lost while the streamer is
//!   down (the server's `pg_wal` grows instead: watch `pg_replication_slots`).
//! - A new timeline's history file is fetched with `TIMELINE_HISTORY` and archived.
//!
//! The replication protocol comes from the pure-Rust `pg_walstream` crate (its native
//! connection, rustls for TLS: no libpq); the XLogData and keepalive messages are decoded here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dbbackup_core::{CancellationToken, Error, ErrorKind, LogArchive, Pushed, Result};
use pg_walstream::connection::PgReplicationConnection;

use crate::config::PgUrl;
use crate::error::pg_error;
use crate::wal::{Lsn, Segment};

/// What the streamer reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// Streaming (re)started.
    Connected {
        /// The server's timeline.
        timeline: u32,
        /// Where streaming starts (a segment's start).
        from: Lsn,
    },
    /// A completed segment or a history file was archived.
    Archived {
        /// Its name.
        name: String,
    },
    /// The unfinished segment was archived up to `upto`.
    Partial {
        /// The piece's name.
        name: String,
        /// The WAL received so far.
        upto: Lsn,
    },
    /// The archive lacks WAL the server no longer has: recovery across it is impossible.
    Gap {
        /// The first segment lost.
        first: String,
        /// The segment streaming resumes at.
        resumes: String,
    },
    /// The connection was lost; streaming resumes after `retry_in`.
    Lost {
        /// Why.
        error: String,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
}

/// A listener for [`StreamEvent`]s.
pub type StreamListener = Arc<dyn Fn(&StreamEvent) + Send + Sync>;

/// Streams a server's WAL into a repository's WAL archive.
#[derive(Clone)]
pub struct WalStreamer {
    url: PgUrl,
    archive: LogArchive,
    slot: String,
    create_slot: bool,
    partial_interval: Duration,
    listener: Option<StreamListener>,
}

impl std::fmt::Debug for WalStreamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalStreamer")
            .field("url", &self.url)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// How the WAL of one server is written into a segment at a time.
struct Assembler {
    size: u64,
    timeline: u32,
    number: u64,
    buf: Vec<u8>,
    filled: u64,
}

impl Assembler {
    fn start(&self) -> u64 {
        self.number * self.size
    }

    fn name(&self) -> String {
        Segment {
            timeline: self.timeline,
            number: self.number,
        }
        .name(self.size)
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn quote_conninfo(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A replication client error; one the client calls permanent (authentication, a refused
/// slot, an unsupported server) ends the streamer instead of being retried.
fn repl_error(e: pg_walstream::ReplicationError, what: &str) -> Error {
    let kind = if e.is_permanent() {
        ErrorKind::Unsupported
    } else {
        ErrorKind::Source
    };
    Error::new(kind, format!("{what}: {e}"))
}

impl WalStreamer {
    /// Streams the server at `url` (a user with the REPLICATION attribute, and a `replication`
    /// line in `pg_hba.conf`) into `archive` through the physical replication slot `slot`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed URL or slot name.
    pub fn new(url: &str, archive: LogArchive, slot: &str) -> Result<Self> {
        if slot.is_empty()
            || slot.len() > 63
            || !slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{slot:?} is not a replication slot name (lowercase letters, digits and _, \
                     at most 63)"
                ),
            ));
        }
        Ok(WalStreamer {
            url: url.parse()?,
            archive,
            slot: slot.to_owned(),
            create_slot: false,
            partial_interval: Duration::from_secs(10),
            listener: None,
        })
    }

    /// Creates the slot when it does not exist (reserving WAL at once).
    pub fn create_slot(mut self, yes: bool) -> Self {
        self.create_slot = yes;
        self
    }

    /// How often the unfinished segment is archived (the recovery point): default 10 s.
    pub fn partial_interval(mut self, every: Duration) -> Self {
        self.partial_interval = every.max(Duration::from_millis(200));
        self
    }

    /// Reports progress to `listener`.
    pub fn on_event(mut self, listener: StreamListener) -> Self {
        self.listener = Some(listener);
        self
    }

    fn emit(&self, e: StreamEvent) {
        tracing::info!(event = ?e, "wal-stream");
        if let Some(l) = &self.listener {
            l(&e);
        }
    }

    /// Streams until `cancel` fires, reconnecting after a lost connection (1 s, doubling to
    /// 30 s). On cancel, the unfinished segment is archived as a partial first.
    ///
    /// # Errors
    /// What a retry cannot fix: a missing slot (without [`create_slot`](Self::create_slot)),
    /// a refused login, a segment archived with other content, a wrong key.
    pub async fn run(&self, cancel: CancellationToken) -> Result<()> {
        dbbackup_core::reconnect::keep_running(
            &cancel,
            true,
            || self.session(&cancel),
            |e, wait| {
                self.emit(StreamEvent::Lost {
                    error: e.to_string(),
                    retry_in: wait,
                })
            },
        )
        .await
    }

    /// The slot's restart LSN (created if asked) and the segment size, over a normal
    /// connection.
    async fn prepare(&self) -> Result<(Lsn, u64)> {
        use sqlx::ConnectOptions;
        let mut c = self.url.options.connect().await.map_err(|e| {
            pg_error(
                e,
                ErrorKind::Source,
                &format!("cannot connect to {}", self.url),
            )
        })?;
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&mut c)
            .await
            .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read the server version"))?;
        if version < 140000 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "wal-stream needs PostgreSQL 14 or later (its replication client, \
                     pg_walstream, supports 14+); {} runs {}.{}: archive with archive_command = \
                     'dbbackup wal-push %p ...' instead",
                    self.url,
                    version / 10000,
                    version % 100
                ),
            ));
        }
        let size: String =
            sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")
                .fetch_one(&mut c)
                .await
                .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read wal_segment_size"))?;
        let size: u64 = size
            .parse()
            .map_err(|_| Error::new(ErrorKind::Source, format!("wal_segment_size {size:?}")))?;
        let read = "SELECT slot_type, restart_lsn::text FROM pg_replication_slots \
                    WHERE slot_name = $1";
        let mut slot: Option<(String, Option<String>)> = sqlx::query_as(read)
            .bind(&self.slot)
            .fetch_optional(&mut c)
            .await
            .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read pg_replication_slots"))?;
        if slot.is_none() && self.create_slot {
            sqlx::query("SELECT pg_create_physical_replication_slot($1, true)")
                .bind(&self.slot)
                .execute(&mut c)
                .await
                .map_err(|e| {
                    pg_error(
                        e,
                        ErrorKind::Source,
                        &format!("cannot create the replication slot {}", self.slot),
                    )
                })?;
            slot = sqlx::query_as(read)
                .bind(&self.slot)
                .fetch_optional(&mut c)
                .await
                .map_err(|e| pg_error(e, ErrorKind::Source, "cannot read pg_replication_slots"))?;
        }
        let Some((kind, restart)) = slot else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "the replication slot {} does not exist on {}: create it (wal-stream \
                     --create-slot, or SELECT pg_create_physical_replication_slot('{}', true))",
                    self.slot, self.url, self.slot
                ),
            ));
        };
        if kind != "physical" {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the replication slot {} is a {kind} slot; WAL streaming needs a physical one",
                    self.slot
                ),
            ));
        }
        let restart = restart.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the replication slot {} reserves no WAL (created without reserving, or \
                     invalidated by max_slot_wal_keep_size): drop it and let wal-stream \
                     --create-slot make a new one; the WAL since it was invalidated is lost",
                    self.slot
                ),
            )
        })?;
        Ok((restart.parse()?, size))
    }

    fn conninfo(&self) -> String {
        let o = &self.url.options;
        let mut s = format!(
            "host={} port={} user={} dbname={} replication=true application_name=dbbackup",
            quote_conninfo(o.get_host()),
            o.get_port(),
            quote_conninfo(o.get_username()),
            quote_conninfo(self.url.database()),
        );
        if let Some(p) = &self.url.password {
            s.push_str(&format!(" password={}", quote_conninfo(p)));
        }
        for (k, v) in &self.url.tls {
            let key = k.trim_start_matches("PG").to_lowercase();
            s.push_str(&format!(" {key}={}", quote_conninfo(v)));
        }
        s
    }

    async fn push(&self, name: &str, data: Bytes) -> Result<()> {
        match self.archive.push(name, data).await? {
            Pushed::Stored | Pushed::AlreadyArchived => Ok(()),
        }
    }

    /// One connection: from the first segment the archive lacks to the end of the stream.
    async fn session(&self, cancel: &CancellationToken) -> Result<()> {
        let (restart, size) = self.prepare().await?;
        let mut rc = PgReplicationConnection::connect(&self.conninfo()).map_err(|e| {
            repl_error(
                e,
                &format!("cannot open a replication connection to {}", self.url),
            )
        })?;
        let id = rc
            .identify_system()
            .map_err(|e| repl_error(e, "IDENTIFY_SYSTEM failed"))?;
        let timeline: u32 = id
            .get_value(0, 1)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| Error::new(ErrorKind::Source, "IDENTIFY_SYSTEM named no timeline"))?;
        let current: Lsn = id
            .get_value(0, 2)
            .ok_or_else(|| Error::new(ErrorKind::Source, "IDENTIFY_SYSTEM named no position"))?
            .parse()?;
        let names = self.archive.names().await?;
        if timeline > 1 {
            let history = format!("{timeline:08X}.history");
            if !names.contains(&history) {
                let r = rc
                    .exec(&format!("TIMELINE_HISTORY {timeline}"))
                    .map_err(|e| repl_error(e, "TIMELINE_HISTORY failed"))?;
                let content = r.get_bytes(0, 1).map(<[u8]>::to_vec).ok_or_else(|| {
                    Error::new(ErrorKind::Source, "TIMELINE_HISTORY returned nothing")
                })?;
                self.push(&history, Bytes::from(content)).await?;
                self.emit(StreamEvent::Archived { name: history });
            }
        }
        // Resume after the newest complete segment of this timeline, never before the slot.
        let archived_next = names
            .iter()
            .filter_map(|n| Segment::parse(n, size))
            .filter(|s| s.timeline == timeline)
            .map(|s| s.number + 1)
            .max();
        let restart_seg = restart.0 / size;
        let current_seg = current.0 / size;
        let mut number = match archived_next {
            Some(n) if n < restart_seg => {
                self.emit(StreamEvent::Gap {
                    first: Segment {
                        timeline,
                        number: n,
                    }
                    .name(size),
                    resumes: Segment {
                        timeline,
                        number: restart_seg,
                    }
                    .name(size),
                });
                restart_seg
            }
            Some(n) => n,
            None => restart_seg,
        };
        number = number.min(current_seg);
        let mut seg = Assembler {
            size,
            timeline,
            number,
            buf: vec![0; size as usize],
            filled: 0,
        };
        rc.start_physical_replication(Some(&self.slot), seg.start(), Some(timeline))
            .map_err(|e| repl_error(e, "START_REPLICATION failed"))?;
        self.emit(StreamEvent::Connected {
            timeline,
            from: Lsn(seg.start()),
        });
        let mut flushed = seg.start();
        let mut received = seg.start();
        let mut partial: Option<(String, u64)> = None;
        let mut last_partial = Instant::now();
        loop {
            // A timer cancels the read when a partial is due; the outer token stops it all.
            let tick = cancel.child_token();
            let timer = {
                let t = tick.clone();
                let due = self.partial_interval.saturating_sub(last_partial.elapsed());
                tokio::spawn(async move {
                    tokio::time::sleep(due).await;
                    t.cancel();
                })
            };
            let msg = rc.get_copy_data_async(&tick).await;
            timer.abort();
            match msg {
                Ok(m) if m.first() == Some(&b'w') && m.len() >= 25 => {
                    let mut at = be_u64(&m[1..9]);
                    let mut data = &m[25..];
                    while !data.is_empty() {
                        if at < seg.start() + seg.filled {
                            // Sent again (a restart inside what we hold): skip it.
                            let skip = ((seg.start() + seg.filled - at) as usize).min(data.len());
                            at += skip as u64;
                            data = &data[skip..];
                            continue;
                        }
                        if at != seg.start() + seg.filled {
                            return Err(Error::new(
                                ErrorKind::Source,
                                format!(
                                    "the WAL stream jumped from {} to {}",
                                    Lsn(seg.start() + seg.filled),
                                    Lsn(at)
                                ),
                            ));
                        }
                        let off = seg.filled as usize;
                        let n = data.len().min(seg.size as usize - off);
                        seg.buf[off..off + n].copy_from_slice(&data[..n]);
                        seg.filled += n as u64;
                        at += n as u64;
                        data = &data[n..];
                        received = at;
                        if seg.filled == seg.size {
                            let name = seg.name();
                            let full = std::mem::replace(&mut seg.buf, vec![0; size as usize]);
                            self.push(&name, Bytes::from(full)).await?;
                            if let Some((p, _)) = partial.take() {
                                self.archive.delete(&p).await?;
                            }
                            self.emit(StreamEvent::Archived { name });
                            seg.number += 1;
                            seg.filled = 0;
                            flushed = seg.start();
                            rc.send_standby_status_update(received, flushed, flushed, false)
                                .await
                                .map_err(|e| repl_error(e, "status update failed"))?;
                        }
                    }
                }
                Ok(m) if m.first() == Some(&b'k') && m.len() >= 18 => {
                    if m[17] == 1 {
                        rc.send_standby_status_update(received, flushed, flushed, false)
                            .await
                            .map_err(|e| repl_error(e, "status update failed"))?;
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(repl_error(e, "the WAL stream ended")),
            }
            let stopping = cancel.is_cancelled();
            if stopping || last_partial.elapsed() >= self.partial_interval {
                last_partial = Instant::now();
                let have = partial.as_ref().map_or(0, |p| p.1);
                if seg.filled > have {
                    let name = format!("{}.{:08X}.partial", seg.name(), seg.filled);
                    self.push(&name, Bytes::copy_from_slice(&seg.buf)).await?;
                    if let Some((p, _)) = partial.replace((name.clone(), seg.filled)) {
                        self.archive.delete(&p).await?;
                    }
                    self.emit(StreamEvent::Partial {
                        name,
                        upto: Lsn(seg.start() + seg.filled),
                    });
                }
                if !stopping {
                    rc.send_standby_status_update(received, flushed, flushed, false)
                        .await
                        .map_err(|e| repl_error(e, "status update failed"))?;
                }
            }
            if stopping {
                return Ok(());
            }
        }
    }
}

/// The newest partial piece of segment `name` among `names` (`<name>.<bytes>.partial`).
pub fn newest_partial<'a>(names: impl IntoIterator<Item = &'a str>, name: &str) -> Option<String> {
    names
        .into_iter()
        .filter_map(|n| {
            let rest = n
                .strip_prefix(name)?
                .strip_prefix('.')?
                .strip_suffix(".partial")?;
            (rest.len() == 8)
                .then(|| u64::from_str_radix(rest, 16).ok())
                .flatten()
                .map(|off| (off, n))
        })
        .max()
        .map(|(_, n)| n.to_owned())
}
