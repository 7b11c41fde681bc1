//! A TDS test server on 127.0.0.1, for tests that must exercise the network path without a real
//! SQL Server (feature `testing`).
//!
//! It speaks enough of MS-TDS 7.3/7.4 for a client library to connect and run statements:
//! PRELOGIN (always answering "encryption not supported", so clients must use
//! `encrypt=plaintext`), LOGIN7 with SQL authentication (a wrong password gets error 18456, as
//! from SQL Server), SQL batches, bulk load, and attention. What a batch returns is decided by a
//! handler written by the test: result sets with typed columns, row counts, server errors, INFO
//! messages, pauses, or a dropped connection. Every request is recorded.
//!
//! Packet headers and PRELOGIN come from the `tds-protocol` codec crate (an implementation
//! independent of the client under test); tokens are encoded here following MS-TDS §2.2.7.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use dbbackup_mssql::testing::{Col, ColType, Reply, Request, TestServer, Value};
//! let server = TestServer::start("secret", |req: &Request| match req {
//!     Request::Batch(sql) if sql.starts_with("SELECT") => vec![Reply::Rows(
//!         vec![Col::new("n", ColType::Int)],
//!         vec![vec![Value::Int(1)]],
//!     )],
//!     _ => vec![Reply::Done(0)],
//! })
//! .await?;
//! let url = server.url("sa", "secret", "shop");
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tds_protocol::codec::{write_b_varchar, write_us_varchar, write_utf16_string};
use tds_protocol::packet::{PacketHeader, PacketStatus, PacketType, PACKET_HEADER_SIZE};
use tds_protocol::prelogin::{EncryptionLevel, PreLogin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const PACKET: usize = 4096;

/// A column type the test server can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `tinyint`.
    TinyInt,
    /// `smallint`.
    SmallInt,
    /// `int`.
    Int,
    /// `bigint`.
    BigInt,
    /// `bit`.
    Bit,
    /// `real`.
    Real,
    /// `float`.
    Float,
    /// `decimal(p, s)`.
    Decimal(u8, u8),
    /// `nvarchar(n)` (n characters, up to 4000).
    NVarChar(u16),
    /// `nvarchar(max)` (sent in PLP chunks).
    NVarCharMax,
    /// `varbinary(n)`.
    VarBinary(u16),
    /// `varbinary(max)` (sent in PLP chunks).
    VarBinaryMax,
    /// `uniqueidentifier`.
    Guid,
    /// `date`.
    Date,
    /// `time(scale)`.
    Time(u8),
    /// `datetime2(scale)`.
    DateTime2(u8),
    /// `datetimeoffset(scale)`.
    DateTimeOffset(u8),
    /// `xml`.
    Xml,
}

/// A column of a result set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Col {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: ColType,
    /// An identity column.
    pub identity: bool,
}

impl Col {
    /// A nullable, updatable column.
    pub fn new(name: impl Into<String>, ty: ColType) -> Self {
        Self {
            name: name.into(),
            ty,
            identity: false,
        }
    }
    /// The same column marked as an identity column.
    pub fn identity(mut self) -> Self {
        self.identity = true;
        self
    }
}

/// A value in a row, in the wire's own terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// Any integer type.
    Int(i64),
    /// `bit`.
    Bit(bool),
    /// `real` / `float`.
    Float(f64),
    /// `decimal`: the unscaled value (`12.34` in `decimal(5,2)` is 1234).
    Decimal(i128),
    /// Character data.
    Str(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// `uniqueidentifier` in wire byte order.
    Guid([u8; 16]),
    /// `date`: days since 0001-01-01.
    Date(u32),
    /// `time`: units of 10^-scale seconds since midnight.
    Time(u64),
    /// `datetime2`: days and time units.
    DateTime2(u32, u64),
    /// `datetimeoffset`: UTC days, UTC time units, offset in minutes.
    DateTimeOffset(u32, u64, i16),
}

/// What the server received.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A successful login: user and database.
    Login {
        /// The login name.
        user: String,
        /// The database asked for.
        database: String,
    },
    /// A SQL batch.
    Batch(String),
    /// A bulk load: its columns and rows.
    Bulk {
        /// Column metadata sent by the client.
        columns: Vec<Col>,
        /// The rows.
        rows: Vec<Vec<Value>>,
    },
    /// An attention (cancel) signal.
    Attention,
}

/// What the server answers to a batch (several replies make several results).
#[derive(Debug, Clone)]
pub enum Reply {
    /// A result set.
    Rows(Vec<Col>, Vec<Vec<Value>>),
    /// A statement done, with a row count.
    Done(u64),
    /// A server error (severity 16).
    Error {
        /// The error number.
        number: u32,
        /// The message.
        message: String,
    },
    /// An informational message (as `STATS` progress or `PRINT` send).
    Info {
        /// The message number.
        number: u32,
        /// The message.
        message: String,
    },
    /// Wait before the next reply (to test timeouts and cancellation).
    Pause(Duration),
    /// Close the connection without answering.
    Hangup,
}

type Handler = dyn Fn(&Request) -> Vec<Reply> + Send + Sync;

struct State {
    password: String,
    handler: Box<Handler>,
    log: Mutex<Vec<Request>>,
}

/// The running server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a server on a free loopback port. Logins must use `password` (any user name).
    pub async fn start(
        password: &str,
        handler: impl Fn(&Request) -> Vec<Reply> + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            password: password.to_owned(),
            handler: Box::new(handler),
            log: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, s).await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `mssql://` URL for this server (`encrypt=plaintext`).
    pub fn url(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "mssql://{user}:{password}@127.0.0.1:{}/{database}?encrypt=plaintext&connect_timeout=5",
            self.addr.port()
        )
    }

    /// Everything received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The SQL batches received so far.
    pub fn batches(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter_map(|r| match r {
                Request::Batch(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

fn record(state: &State, r: Request) {
    if let Ok(mut l) = state.log.lock() {
        l.push(r);
    }
}

async fn read_message(sock: &mut TcpStream) -> std::io::Result<Option<(PacketType, BytesMut)>> {
    let mut payload = BytesMut::new();
    loop {
        let mut h = [0u8; PACKET_HEADER_SIZE];
        match sock.read_exact(&mut h).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let header = PacketHeader::decode(&mut &h[..])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let mut body = vec![0u8; header.payload_length()];
        sock.read_exact(&mut body).await?;
        payload.extend_from_slice(&body);
        if header.is_end_of_message() {
            return Ok(Some((header.packet_type, payload)));
        }
    }
}

async fn send(sock: &mut TcpStream, ty: PacketType, payload: &[u8]) -> std::io::Result<()> {
    send_packets(sock, ty, payload, true).await
}

/// `payload` in packets; the last one ends the message when `eom`.
async fn send_packets(
    sock: &mut TcpStream,
    ty: PacketType,
    payload: &[u8],
    eom: bool,
) -> std::io::Result<()> {
    let max = PACKET - PACKET_HEADER_SIZE;
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[]]
    } else {
        payload.chunks(max).collect()
    };
    let mut out = BytesMut::with_capacity(payload.len() + chunks.len() * PACKET_HEADER_SIZE);
    for (i, c) in chunks.iter().enumerate() {
        let status = if eom && i + 1 == chunks.len() {
            PacketStatus::END_OF_MESSAGE
        } else {
            PacketStatus::NORMAL
        };
        PacketHeader::new(ty, status, (c.len() + PACKET_HEADER_SIZE) as u16)
            .with_packet_id((i + 1) as u8)
            .with_spid(55)
            .encode(&mut out);
        out.extend_from_slice(c);
    }
    sock.write_all(&out).await
}

fn done(b: &mut BytesMut, more: bool, error: bool, attn: bool, count: Option<u64>) {
    let mut status = 0u16;
    if more {
        status |= 0x1;
    }
    if error {
        status |= 0x2;
    }
    if count.is_some() {
        status |= 0x10;
    }
    if attn {
        status |= 0x20;
    }
    b.put_u8(0xFD);
    b.put_u16_le(status);
    b.put_u16_le(0xC1);
    b.put_u64_le(count.unwrap_or(0));
}

fn message(b: &mut BytesMut, token: u8, number: u32, class: u8, text: &str) {
    let mut body = BytesMut::new();
    body.put_u32_le(number);
    body.put_u8(1);
    body.put_u8(class);
    write_us_varchar(&mut body, text);
    write_b_varchar(&mut body, "dbbackup-test");
    write_b_varchar(&mut body, "");
    body.put_u32_le(1);
    b.put_u8(token);
    b.put_u16_le(body.len() as u16);
    b.extend_from_slice(&body);
}

fn env_change(b: &mut BytesMut, ty: u8, new: &str, old: &str) {
    let mut body = BytesMut::new();
    body.put_u8(ty);
    write_b_varchar(&mut body, new);
    write_b_varchar(&mut body, old);
    b.put_u8(0xE3);
    b.put_u16_le(body.len() as u16);
    b.extend_from_slice(&body);
}

// Long on purpose: the TDS server's message loop: one match over the packet types it plays, as the protocol documents them.
async fn serve(mut sock: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    // PRELOGIN
    let Some((PacketType::PreLogin, _)) = read_message(&mut sock).await? else {
        return Ok(());
    };
    let pre = PreLogin::new().with_encryption(EncryptionLevel::NotSupported);
    send(&mut sock, PacketType::TabularResult, &pre.encode()).await?;
    // LOGIN7
    let Some((PacketType::Tds7Login, login)) = read_message(&mut sock).await? else {
        return Ok(());
    };
    let (version, user, password, database) = parse_login(&login)?;
    let mut out = BytesMut::new();
    if password != state.password {
        message(
            &mut out,
            0xAA,
            18456,
            14,
            &format!("Login failed for user '{user}'."),
        );
        done(&mut out, false, true, false, None);
        send(&mut sock, PacketType::TabularResult, &out).await?;
        return Ok(());
    }
    record(
        &state,
        Request::Login {
            user,
            database: database.clone(),
        },
    );
    env_change(&mut out, 1, &database, "master");
    env_change(&mut out, 4, &PACKET.to_string(), &PACKET.to_string());
    let mut ack = BytesMut::new();
    ack.put_u8(1);
    ack.put_u32(version);
    write_b_varchar(&mut ack, "Microsoft SQL Server");
    ack.put_slice(&[16, 0, 0x10, 0x00]);
    out.put_u8(0xAD);
    out.put_u16_le(ack.len() as u16);
    out.extend_from_slice(&ack);
    done(&mut out, false, false, false, None);
    send(&mut sock, PacketType::TabularResult, &out).await?;

    while let Some((ty, mut payload)) = read_message(&mut sock).await? {
        let request = match ty {
            PacketType::SqlBatch => {
                // ALL_HEADERS, then the statement in UTF-16LE.
                if payload.len() >= 4 {
                    let total = (&payload[..4]).get_u32_le() as usize;
                    payload.advance(total.min(payload.len()));
                }
                let units: Vec<u16> = payload
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                Request::Batch(String::from_utf16_lossy(&units))
            }
            PacketType::BulkLoad => match parse_bulk(&payload) {
                Ok((columns, rows)) => Request::Bulk { columns, rows },
                Err(e) => {
                    // Answer as SQL Server does to a malformed bulk load: an error, not a hang-up.
                    let mut out = BytesMut::new();
                    message(
                        &mut out,
                        0xAA,
                        4815,
                        16,
                        &format!("test server: cannot read the bulk load: {e}"),
                    );
                    done(&mut out, false, true, false, None);
                    send(&mut sock, PacketType::TabularResult, &out).await?;
                    continue;
                }
            },
            PacketType::Attention => {
                record(&state, Request::Attention);
                let mut out = BytesMut::new();
                done(&mut out, false, false, true, None);
                send(&mut sock, PacketType::TabularResult, &out).await?;
                continue;
            }
            _ => return Ok(()),
        };
        record(&state, request.clone());
        let replies = match &request {
            Request::Bulk { rows, .. } => vec![Reply::Done(rows.len() as u64)],
            r => (state.handler)(r),
        };
        let mut out = BytesMut::new();
        let n = replies.len();
        for (i, r) in replies.into_iter().enumerate() {
            let more = i + 1 < n;
            match r {
                Reply::Rows(cols, rows) => {
                    col_metadata(&mut out, &cols);
                    for row in &rows {
                        out.put_u8(0xD1);
                        for (c, v) in cols.iter().zip(row) {
                            put_value(&mut out, c.ty, v);
                        }
                    }
                    done(&mut out, more, false, false, Some(rows.len() as u64));
                }
                Reply::Done(count) => done(&mut out, more, false, false, Some(count)),
                Reply::Error { number, message: m } => {
                    message(&mut out, 0xAA, number, 16, &m);
                    done(&mut out, more, true, false, None);
                }
                Reply::Info { number, message: m } => message(&mut out, 0xAB, number, 0, &m),
                Reply::Pause(d) => {
                    // What came before the pause goes out at once, without ending the message.
                    if !out.is_empty() {
                        let chunk = out.split();
                        send_packets(&mut sock, PacketType::TabularResult, &chunk, false).await?;
                    }
                    tokio::time::sleep(d).await;
                }
                Reply::Hangup => return Ok(()),
            }
        }
        if out.is_empty() {
            done(&mut out, false, false, false, None);
        }
        send(&mut sock, PacketType::TabularResult, &out).await?;
    }
    Ok(())
}

fn parse_login(b: &[u8]) -> std::io::Result<(u32, String, String, String)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "short LOGIN7");
    if b.len() < 94 {
        return Err(bad());
    }
    let version = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let field = |at: usize| -> std::io::Result<Vec<u8>> {
        let off = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        let len = u16::from_le_bytes([b[at + 2], b[at + 3]]) as usize * 2;
        b.get(off..off + len).map(<[u8]>::to_vec).ok_or_else(bad)
    };
    let utf16 = |v: &[u8]| {
        let u: Vec<u16> = v
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&u)
    };
    let user = utf16(&field(40)?);
    // MS-TDS 2.2.6.4: every password byte has its nibbles swapped and is XORed with 0xA5.
    let pw: Vec<u8> = field(44)?
        .iter()
        .map(|x| {
            let y = x ^ 0xA5;
            y.rotate_left(4)
        })
        .collect();
    let password = utf16(&pw);
    let database = utf16(&field(68)?);
    Ok((version, user, password, database))
}

const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

fn time_len(scale: u8) -> usize {
    match scale {
        0..=2 => 3,
        3..=4 => 4,
        _ => 5,
    }
}

fn decimal_len(precision: u8) -> usize {
    match precision {
        0..=9 => 5,
        10..=19 => 9,
        20..=28 => 13,
        _ => 17,
    }
}

fn col_metadata(b: &mut BytesMut, cols: &[Col]) {
    b.put_u8(0x81);
    b.put_u16_le(cols.len() as u16);
    for c in cols {
        b.put_u32_le(0);
        let mut flags = 0x0001u16; // nullable
        if c.identity {
            flags |= 0x0010;
        } else {
            flags |= 0x0004; // read/write
        }
        b.put_u16_le(flags);
        type_info(b, c.ty);
        write_b_varchar(b, &c.name);
    }
}

fn type_info(b: &mut BytesMut, ty: ColType) {
    match ty {
        ColType::TinyInt => b.put_slice(&[0x26, 1]),
        ColType::SmallInt => b.put_slice(&[0x26, 2]),
        ColType::Int => b.put_slice(&[0x26, 4]),
        ColType::BigInt => b.put_slice(&[0x26, 8]),
        ColType::Bit => b.put_slice(&[0x68, 1]),
        ColType::Real => b.put_slice(&[0x6D, 4]),
        ColType::Float => b.put_slice(&[0x6D, 8]),
        ColType::Decimal(p, s) => b.put_slice(&[0x6A, decimal_len(p) as u8, p, s]),
        ColType::NVarChar(n) => {
            b.put_u8(0xE7);
            b.put_u16_le(n * 2);
            b.put_slice(&COLLATION);
        }
        ColType::NVarCharMax => {
            b.put_u8(0xE7);
            b.put_u16_le(0xFFFF);
            b.put_slice(&COLLATION);
        }
        ColType::VarBinary(n) => {
            b.put_u8(0xA5);
            b.put_u16_le(n);
        }
        ColType::VarBinaryMax => {
            b.put_u8(0xA5);
            b.put_u16_le(0xFFFF);
        }
        ColType::Guid => b.put_slice(&[0x24, 16]),
        ColType::Date => b.put_u8(0x28),
        ColType::Time(s) => b.put_slice(&[0x29, s]),
        ColType::DateTime2(s) => b.put_slice(&[0x2A, s]),
        ColType::DateTimeOffset(s) => b.put_slice(&[0x2B, s]),
        ColType::Xml => b.put_slice(&[0xF1, 0]),
    }
}

fn put_plp(b: &mut BytesMut, data: Option<&[u8]>) {
    match data {
        None => b.put_u64_le(u64::MAX),
        Some(d) => {
            b.put_u64_le(d.len() as u64);
            // Chunks of at most 8000 bytes, as SQL Server sends them.
            for c in d.chunks(8000) {
                b.put_u32_le(c.len() as u32);
                b.put_slice(c);
            }
            b.put_u32_le(0);
        }
    }
}

fn utf16le(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 2);
    write_utf16_string(&mut out, s);
    out
}

fn put_time(b: &mut BytesMut, units: u64, scale: u8) {
    b.put_slice(&units.to_le_bytes()[..time_len(scale)]);
}

fn put_value(b: &mut BytesMut, ty: ColType, v: &Value) {
    use ColType as T;
    match ty {
        T::TinyInt | T::SmallInt | T::Int | T::BigInt => {
            let n = match ty {
                T::TinyInt => 1,
                T::SmallInt => 2,
                T::Int => 4,
                _ => 8,
            };
            match v {
                Value::Int(i) => {
                    b.put_u8(n as u8);
                    b.put_slice(&i.to_le_bytes()[..n]);
                }
                _ => b.put_u8(0),
            }
        }
        T::Bit => match v {
            Value::Bit(x) => b.put_slice(&[1, *x as u8]),
            _ => b.put_u8(0),
        },
        T::Real => match v {
            Value::Float(f) => {
                b.put_u8(4);
                b.put_f32_le(*f as f32);
            }
            _ => b.put_u8(0),
        },
        T::Float => match v {
            Value::Float(f) => {
                b.put_u8(8);
                b.put_f64_le(*f);
            }
            _ => b.put_u8(0),
        },
        T::Decimal(p, _) => match v {
            Value::Decimal(d) => {
                let len = decimal_len(p);
                b.put_u8(len as u8);
                b.put_u8(if *d < 0 { 0 } else { 1 });
                b.put_slice(&d.unsigned_abs().to_le_bytes()[..len - 1]);
            }
            _ => b.put_u8(0),
        },
        T::NVarChar(_) => match v {
            Value::Str(s) => {
                let u = utf16le(s);
                b.put_u16_le(u.len() as u16);
                b.put_slice(&u);
            }
            _ => b.put_u16_le(0xFFFF),
        },
        T::VarBinary(_) => match v {
            Value::Bytes(d) => {
                b.put_u16_le(d.len() as u16);
                b.put_slice(d);
            }
            _ => b.put_u16_le(0xFFFF),
        },
        T::NVarCharMax | T::Xml => match v {
            Value::Str(s) => put_plp(b, Some(&utf16le(s))),
            _ => put_plp(b, None),
        },
        T::VarBinaryMax => match v {
            Value::Bytes(d) => put_plp(b, Some(d)),
            _ => put_plp(b, None),
        },
        T::Guid => match v {
            Value::Guid(g) => {
                b.put_u8(16);
                b.put_slice(g);
            }
            _ => b.put_u8(0),
        },
        T::Date => match v {
            Value::Date(d) => {
                b.put_u8(3);
                b.put_slice(&d.to_le_bytes()[..3]);
            }
            _ => b.put_u8(0),
        },
        T::Time(s) => match v {
            Value::Time(t) => {
                b.put_u8(time_len(s) as u8);
                put_time(b, *t, s);
            }
            _ => b.put_u8(0),
        },
        T::DateTime2(s) => match v {
            Value::DateTime2(d, t) => {
                b.put_u8((time_len(s) + 3) as u8);
                put_time(b, *t, s);
                b.put_slice(&d.to_le_bytes()[..3]);
            }
            _ => b.put_u8(0),
        },
        T::DateTimeOffset(s) => match v {
            Value::DateTimeOffset(d, t, o) => {
                b.put_u8((time_len(s) + 5) as u8);
                put_time(b, *t, s);
                b.put_slice(&d.to_le_bytes()[..3]);
                b.put_i16_le(*o);
            }
            _ => b.put_u8(0),
        },
    }
}

/// A cursor over a bulk-load payload.
struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("needed {n} more bytes, {} left", self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn uint(&mut self, n: usize) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(self.take(n)?);
        Ok(u64::from_le_bytes(a))
    }
    fn b_varchar(&mut self) -> Result<String, String> {
        let n = self.u8()? as usize;
        let b = self.take(n * 2)?;
        Ok(from_utf16le(b))
    }
    fn plp(&mut self) -> Result<Option<Vec<u8>>, String> {
        let total = self.u64()?;
        if total == u64::MAX {
            return Ok(None);
        }
        let mut out = Vec::new();
        loop {
            let n = self.u32()? as usize;
            if n == 0 {
                return Ok(Some(out));
            }
            out.extend_from_slice(self.take(n)?);
        }
    }
}

fn from_utf16le(b: &[u8]) -> String {
    let u: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&u)
}

fn parse_type(r: &mut Rd<'_>) -> Result<ColType, String> {
    let t = r.u8()?;
    Ok(match t {
        0x26 => match r.u8()? {
            1 => ColType::TinyInt,
            2 => ColType::SmallInt,
            4 => ColType::Int,
            _ => ColType::BigInt,
        },
        0x68 => {
            r.u8()?;
            ColType::Bit
        }
        0x6D => match r.u8()? {
            4 => ColType::Real,
            _ => ColType::Float,
        },
        0x6A | 0x6C => {
            r.u8()?;
            let p = r.u8()?;
            let s = r.u8()?;
            ColType::Decimal(p, s)
        }
        0xE7 => {
            let n = r.u16()?;
            r.take(5)?;
            if n == 0xFFFF {
                ColType::NVarCharMax
            } else {
                ColType::NVarChar(n / 2)
            }
        }
        0xA5 => {
            let n = r.u16()?;
            if n == 0xFFFF {
                ColType::VarBinaryMax
            } else {
                ColType::VarBinary(n)
            }
        }
        0x24 => {
            r.u8()?;
            ColType::Guid
        }
        0x28 => ColType::Date,
        0x29 => ColType::Time(r.u8()?),
        0x2A => ColType::DateTime2(r.u8()?),
        0x2B => ColType::DateTimeOffset(r.u8()?),
        0xF1 => {
            if r.u8()? != 0 {
                return Err("XML with a schema collection is not supported here".into());
            }
            ColType::Xml
        }
        other => {
            return Err(format!(
                "type 0x{other:02X} is not supported by the test server"
            ))
        }
    })
}

fn parse_value(r: &mut Rd<'_>, ty: ColType) -> Result<Value, String> {
    use ColType as T;
    Ok(match ty {
        T::TinyInt | T::SmallInt | T::Int | T::BigInt => match r.u8()? as usize {
            0 => Value::Null,
            n => {
                let raw = r.uint(n)?;
                let shift = 64 - 8 * n as u32;
                let v = if n == 1 {
                    raw as i64
                } else {
                    ((raw << shift) as i64) >> shift
                };
                Value::Int(v)
            }
        },
        T::Bit => match r.u8()? {
            0 => Value::Null,
            _ => Value::Bit(r.u8()? != 0),
        },
        T::Real | T::Float => match r.u8()? {
            0 => Value::Null,
            4 => Value::Float(f32::from_bits(r.u32()?) as f64),
            _ => Value::Float(f64::from_bits(r.u64()?)),
        },
        T::Decimal(..) => match r.u8()? as usize {
            0 => Value::Null,
            n => {
                let sign = r.u8()?;
                let mut a = [0u8; 16];
                a[..n - 1].copy_from_slice(r.take(n - 1)?);
                let m = i128::from_le_bytes(a);
                Value::Decimal(if sign == 0 { -m } else { m })
            }
        },
        T::NVarChar(_) => match r.u16()? {
            0xFFFF => Value::Null,
            n => Value::Str(from_utf16le(r.take(n as usize)?)),
        },
        T::VarBinary(_) => match r.u16()? {
            0xFFFF => Value::Null,
            n => Value::Bytes(r.take(n as usize)?.to_vec()),
        },
        T::NVarCharMax | T::Xml => match r.plp()? {
            None => Value::Null,
            Some(b) => Value::Str(from_utf16le(&b)),
        },
        T::VarBinaryMax => match r.plp()? {
            None => Value::Null,
            Some(b) => Value::Bytes(b),
        },
        T::Guid => match r.u8()? {
            0 => Value::Null,
            _ => {
                let mut g = [0u8; 16];
                g.copy_from_slice(r.take(16)?);
                Value::Guid(g)
            }
        },
        T::Date => match r.u8()? {
            0 => Value::Null,
            _ => Value::Date(r.uint(3)? as u32),
        },
        T::Time(s) => match r.u8()? {
            0 => Value::Null,
            _ => Value::Time(r.uint(time_len(s))?),
        },
        T::DateTime2(s) => match r.u8()? {
            0 => Value::Null,
            _ => {
                let t = r.uint(time_len(s))?;
                Value::DateTime2(r.uint(3)? as u32, t)
            }
        },
        T::DateTimeOffset(s) => match r.u8()? {
            0 => Value::Null,
            _ => {
                let t = r.uint(time_len(s))?;
                let d = r.uint(3)? as u32;
                Value::DateTimeOffset(d, t, r.u16()? as i16)
            }
        },
    })
}

fn parse_bulk(b: &[u8]) -> Result<(Vec<Col>, Vec<Vec<Value>>), String> {
    let mut r = Rd(b);
    if r.u8()? != 0x81 {
        return Err("a bulk load must start with COLMETADATA".into());
    }
    let n = r.u16()? as usize;
    let mut cols = Vec::with_capacity(n);
    for _ in 0..n {
        r.u32()?;
        let flags = r.u16()?;
        let ty = parse_type(&mut r)?;
        let name = r.b_varchar()?;
        cols.push(Col {
            name,
            ty,
            identity: flags & 0x0010 != 0,
        });
    }
    let mut rows = Vec::new();
    loop {
        match r.u8()? {
            0xD1 => {
                let row = cols
                    .iter()
                    .map(|c| parse_value(&mut r, c.ty))
                    .collect::<Result<Vec<_>, _>>()?;
                rows.push(row);
            }
            0xFD => return Ok((cols, rows)),
            other => {
                return Err(format!(
                    "unexpected token 0x{other:02X} in a bulk load after {} rows of {:?}",
                    rows.len(),
                    cols.iter().map(|c| c.ty).collect::<Vec<_>>()
                ))
            }
        }
    }
}
