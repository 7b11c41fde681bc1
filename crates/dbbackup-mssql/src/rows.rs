//! The row format of logical SQL Server backups, `mssql-rows-v1`, and how each SQL Server type
//! is read into it.
//!
//! A data entry is a sequence of rows; a row is one value per backed-up column (the column list
//! is in the entry's metadata); a value is a tag byte and a payload, little-endian:
//!
//! | tag | value | payload | SQL Server types |
//! |----:|-------|---------|------------------|
//! | 0 | NULL | — | any |
//! | 1 | bit | 1 byte | `bit` |
//! | 2 | u8 | 1 byte | `tinyint` |
//! | 3 | i16 | 2 bytes | `smallint` |
//! | 4 | i32 | 4 bytes | `int` |
//! | 5 | i64 | 8 bytes | `bigint` |
//! | 6 | f32 | IEEE bits, 4 bytes | `real` |
//! | 7 | f64 | IEEE bits, 8 bytes | `float` |
//! | 8 | string | u32 length + UTF-8 | `char`, `varchar`, `nchar`, `nvarchar` (incl. `max`), `text`, `ntext`, `sysname` |
//! | 9 | binary | u32 length + bytes | `binary`, `varbinary` (incl. `max`), `image`; `hierarchyid`, `geometry`, `geography` in their native serialization |
//! | 10 | guid | 16 bytes, RFC 4122 order | `uniqueidentifier` |
//! | 11 | decimal | i128 unscaled value + u8 scale | `decimal`, `numeric`; `money` and `smallmoney` read as `decimal(19,4)` / `decimal(10,4)` |
//! | 12 | datetime | i32 days since 1900-01-01 + u32 1/300 s | `datetime` |
//! | 13 | smalldatetime | u16 days since 1900-01-01 + u16 minutes | `smalldatetime` |
//! | 14 | date | u32 days since 0001-01-01 | `date` |
//! | 15 | time | u64 units of 10^-scale s + u8 scale | `time(n)` |
//! | 16 | datetime2 | date + time | `datetime2(n)` |
//! | 17 | datetimeoffset | datetime2 in UTC + i16 offset minutes | `datetimeoffset(n)` |
//! | 18 | xml | u32 length + UTF-8 | `xml` |
//!
//! Every value keeps the server's own representation (no conversion through floating point or a
//! calendar library), so a round trip is exact: `datetime2(7)` keeps its 100 ns units,
//! `datetimeoffset` its offset, `decimal(38, s)` all 38 digits, `nvarchar` characters outside the
//! BMP (sent as UTF-16 surrogate pairs) come back as the same characters. `money` is read through
//! `decimal(19,4)` because the client library would otherwise return it as a float.
//!
//! Not backed up, each named in the backup's warnings: `sql_variant` columns (their per-value
//! base type would need a format of its own), `timestamp`/`rowversion` columns (the server
//! assigns new values on insert), computed columns (the server computes them).

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use dbbackup_core::{Error, ErrorKind, Result};
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::xml::XmlData;
use tiberius::{ColumnData, Uuid};

use crate::quote::ident_unchecked;

/// The format name recorded in data entries' metadata.
pub const ROW_FORMAT: &str = "mssql-rows-v1";

/// Appends `v` to `out`.
pub fn encode_value(v: &ColumnData<'_>, out: &mut BytesMut) {
    fn bytes(out: &mut BytesMut, tag: u8, b: &[u8]) {
        out.put_u8(tag);
        out.put_u32_le(b.len() as u32);
        out.put_slice(b);
    }
    match v {
        ColumnData::Bit(Some(b)) => {
            out.put_u8(1);
            out.put_u8(*b as u8);
        }
        ColumnData::U8(Some(x)) => {
            out.put_u8(2);
            out.put_u8(*x);
        }
        ColumnData::I16(Some(x)) => {
            out.put_u8(3);
            out.put_i16_le(*x);
        }
        ColumnData::I32(Some(x)) => {
            out.put_u8(4);
            out.put_i32_le(*x);
        }
        ColumnData::I64(Some(x)) => {
            out.put_u8(5);
            out.put_i64_le(*x);
        }
        ColumnData::F32(Some(x)) => {
            out.put_u8(6);
            out.put_u32_le(x.to_bits());
        }
        ColumnData::F64(Some(x)) => {
            out.put_u8(7);
            out.put_u64_le(x.to_bits());
        }
        ColumnData::String(Some(s)) => bytes(out, 8, s.as_bytes()),
        ColumnData::Binary(Some(b)) => bytes(out, 9, b),
        ColumnData::Guid(Some(g)) => {
            out.put_u8(10);
            out.put_slice(g.as_bytes());
        }
        ColumnData::Numeric(Some(n)) => {
            out.put_u8(11);
            out.put_i128_le(n.value());
            out.put_u8(n.scale());
        }
        ColumnData::DateTime(Some(d)) => {
            out.put_u8(12);
            out.put_i32_le(d.days());
            out.put_u32_le(d.seconds_fragments());
        }
        ColumnData::SmallDateTime(Some(d)) => {
            out.put_u8(13);
            out.put_u16_le(d.days());
            out.put_u16_le(d.seconds_fragments());
        }
        ColumnData::Date(Some(d)) => {
            out.put_u8(14);
            out.put_u32_le(d.days());
        }
        ColumnData::Time(Some(t)) => {
            out.put_u8(15);
            out.put_u64_le(t.increments());
            out.put_u8(t.scale());
        }
        ColumnData::DateTime2(Some(d)) => {
            out.put_u8(16);
            put_datetime2(out, d);
        }
        ColumnData::DateTimeOffset(Some(d)) => {
            out.put_u8(17);
            put_datetime2(out, &d.datetime2());
            out.put_i16_le(d.offset());
        }
        ColumnData::Xml(Some(x)) => bytes(out, 18, AsRef::<str>::as_ref(&**x).as_bytes()),
        _ => out.put_u8(0),
    }
}

fn put_datetime2(out: &mut BytesMut, d: &DateTime2) {
    out.put_u32_le(d.date().days());
    out.put_u64_le(d.time().increments());
    out.put_u8(d.time().scale());
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, msg)
}

/// Why a value could not be read.
#[derive(Debug)]
enum ReadError {
    /// The buffer ends inside the value: more bytes are needed.
    Incomplete,
    /// The bytes are not a value.
    Corrupt(Error),
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        ReadError::Corrupt(e)
    }
}

type Read<T> = std::result::Result<T, ReadError>;

/// Reads one row of `columns` values from the front of `buf`: the row and the bytes it took, or
/// `None` when `buf` ends inside the row (feed more bytes and try again).
///
/// # Errors
/// `Corrupt` when the bytes are not `mssql-rows-v1` values.
pub fn decode_row(buf: &[u8], columns: usize) -> Result<Option<(Vec<ColumnData<'static>>, usize)>> {
    let mut r = Reader { buf };
    let mut row = Vec::with_capacity(columns);
    for _ in 0..columns {
        match r.value() {
            Ok(v) => row.push(v),
            Err(ReadError::Incomplete) => return Ok(None),
            Err(ReadError::Corrupt(e)) => return Err(e),
        }
    }
    Ok(Some((row, buf.len() - r.buf.len())))
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if self.buf.len() < n {
            return Err(ReadError::Incomplete);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn arr<const N: usize>(&mut self) -> Read<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn datetime2(&mut self) -> Read<DateTime2> {
        let days = u32::from_le_bytes(self.arr()?);
        let inc = u64::from_le_bytes(self.arr()?);
        let scale = self.arr::<1>()?[0];
        check_scale(scale)?;
        Ok(DateTime2::new(Date::new(days), Time::new(inc, scale)))
    }

    fn value(&mut self) -> Read<ColumnData<'static>> {
        let tag = self.arr::<1>()?[0];
        Ok(match tag {
            0 => ColumnData::I32(None),
            1 => ColumnData::Bit(Some(self.arr::<1>()?[0] != 0)),
            2 => ColumnData::U8(Some(self.arr::<1>()?[0])),
            3 => ColumnData::I16(Some(i16::from_le_bytes(self.arr()?))),
            4 => ColumnData::I32(Some(i32::from_le_bytes(self.arr()?))),
            5 => ColumnData::I64(Some(i64::from_le_bytes(self.arr()?))),
            6 => ColumnData::F32(Some(f32::from_bits(u32::from_le_bytes(self.arr()?)))),
            7 => ColumnData::F64(Some(f64::from_bits(u64::from_le_bytes(self.arr()?)))),
            8 | 18 => {
                let n = u32::from_le_bytes(self.arr()?) as usize;
                let s = std::str::from_utf8(self.take(n)?)
                    .map_err(|_| corrupt("a string value is not valid UTF-8"))?
                    .to_owned();
                if tag == 8 {
                    ColumnData::String(Some(Cow::Owned(s)))
                } else {
                    ColumnData::Xml(Some(Cow::Owned(XmlData::new(s))))
                }
            }
            9 => {
                let n = u32::from_le_bytes(self.arr()?) as usize;
                ColumnData::Binary(Some(Cow::Owned(self.take(n)?.to_vec())))
            }
            10 => ColumnData::Guid(Some(Uuid::from_bytes(self.arr()?))),
            11 => {
                let v = i128::from_le_bytes(self.arr()?);
                let scale = self.arr::<1>()?[0];
                if scale > 38 {
                    return Err(corrupt(format!("decimal scale {scale} is above 38")).into());
                }
                ColumnData::Numeric(Some(Numeric::new_with_scale(v, scale)))
            }
            12 => {
                let days = i32::from_le_bytes(self.arr()?);
                let frac = u32::from_le_bytes(self.arr()?);
                ColumnData::DateTime(Some(DateTime::new(days, frac)))
            }
            13 => {
                let days = u16::from_le_bytes(self.arr()?);
                let mins = u16::from_le_bytes(self.arr()?);
                ColumnData::SmallDateTime(Some(SmallDateTime::new(days, mins)))
            }
            14 => ColumnData::Date(Some(Date::new(u32::from_le_bytes(self.arr()?)))),
            15 => {
                let inc = u64::from_le_bytes(self.arr()?);
                let scale = self.arr::<1>()?[0];
                check_scale(scale)?;
                ColumnData::Time(Some(Time::new(inc, scale)))
            }
            16 => ColumnData::DateTime2(Some(self.datetime2()?)),
            17 => {
                let d = self.datetime2()?;
                let off = i16::from_le_bytes(self.arr()?);
                ColumnData::DateTimeOffset(Some(DateTimeOffset::new(d, off)))
            }
            other => {
                return Err(corrupt(format!(
                    "unknown value tag {other} in an mssql-rows-v1 entry"
                ))
                .into())
            }
        })
    }
}

fn check_scale(scale: u8) -> Read<()> {
    if scale > 7 {
        return Err(corrupt(format!("time scale {scale} is above 7")).into());
    }
    Ok(())
}

/// How a column is read for a logical backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAs {
    /// `SELECT [col]` as it is.
    Plain,
    /// Through a cast (`money` → `decimal(19,4)`, spatial types → `varbinary(max)`).
    Cast(&'static str),
    /// Left out of the backup, with the reason.
    Skip(&'static str),
}

/// How a column of type `type_name` (from `sys.types`; alias types resolved to their system
/// type) is backed up. `computed` columns are always skipped.
pub fn read_as(type_name: &str, computed: bool) -> ReadAs {
    if computed {
        return ReadAs::Skip("computed columns are computed again by the server");
    }
    match type_name.to_ascii_lowercase().as_str() {
        "money" => ReadAs::Cast("decimal(19,4)"),
        "smallmoney" => ReadAs::Cast("decimal(10,4)"),
        "hierarchyid" | "geometry" | "geography" => ReadAs::Cast("varbinary(max)"),
        "sql_variant" => {
            ReadAs::Skip("sql_variant is not supported yet (each value has its own base type)")
        }
        "timestamp" | "rowversion" => {
            ReadAs::Skip("rowversion values are assigned by the server on insert")
        }
        _ => ReadAs::Plain,
    }
}

/// The select-list expression for a column read as `how` (never called for `Skip`).
pub fn select_expr(column: &str, how: &ReadAs) -> String {
    let c = ident_unchecked(column);
    match how {
        ReadAs::Cast(t) => format!("CAST({c} AS {t}) AS {c}"),
        _ => c,
    }
}

/// `v` in the form the client's bulk insert accepts for a column of type `ty` (as the target
/// server reports it): NULLs typed for the column, integers and floats widened or narrowed
/// (narrowing only when the value fits). Anything else is passed on as it is; the bulk insert
/// then reports a mismatch.
///
/// # Errors
/// A message for a value that does not fit the column (an integer out of range, a NULL for a
/// NOT NULL column).
pub fn fit(
    v: ColumnData<'static>,
    ty: &tiberius::TypeInfo,
) -> std::result::Result<ColumnData<'static>, String> {
    use tiberius::{FixedLenType as F, TypeInfo as TI, VarLenType as V};
    enum Want {
        Int(usize),
        Float(usize),
        Other,
    }
    let null_of = |ty: &TI| -> Option<ColumnData<'static>> {
        Some(match ty {
            TI::FixedLen(f) => match f {
                F::Int1 => ColumnData::U8(None),
                F::Int2 => ColumnData::I16(None),
                F::Int4 => ColumnData::I32(None),
                F::Int8 => ColumnData::I64(None),
                F::Bit => ColumnData::Bit(None),
                F::Float4 => ColumnData::F32(None),
                F::Float8 => ColumnData::F64(None),
                F::Money | F::Money4 => ColumnData::F64(None),
                F::Datetime => ColumnData::DateTime(None),
                F::Datetime4 => ColumnData::SmallDateTime(None),
                F::Null => return None,
            },
            TI::VarLenSized(c) => match c.r#type() {
                V::Intn => match c.len() {
                    1 => ColumnData::U8(None),
                    2 => ColumnData::I16(None),
                    4 => ColumnData::I32(None),
                    _ => ColumnData::I64(None),
                },
                V::Bitn => ColumnData::Bit(None),
                V::Floatn => match c.len() {
                    4 => ColumnData::F32(None),
                    _ => ColumnData::F64(None),
                },
                V::Money => ColumnData::F64(None),
                V::Guid => ColumnData::Guid(None),
                V::Datetimen => match c.len() {
                    4 => ColumnData::SmallDateTime(None),
                    _ => ColumnData::DateTime(None),
                },
                V::Daten => ColumnData::Date(None),
                V::Timen => ColumnData::Time(None),
                V::Datetime2 => ColumnData::DateTime2(None),
                V::DatetimeOffsetn => ColumnData::DateTimeOffset(None),
                V::BigVarChar | V::BigChar | V::NVarchar | V::NChar | V::Text | V::NText => {
                    ColumnData::String(None)
                }
                V::BigVarBin | V::BigBinary | V::Image | V::Udt => ColumnData::Binary(None),
                V::Decimaln | V::Numericn => ColumnData::Numeric(None),
                V::Xml => ColumnData::Xml(None),
                _ => return None,
            },
            TI::VarLenSizedPrecision { .. } => ColumnData::Numeric(None),
            TI::Xml { .. } => ColumnData::Xml(None),
            TI::Udt(_) => ColumnData::Binary(None),
        })
    };
    let want = match ty {
        TI::FixedLen(F::Int1) => Want::Int(1),
        TI::FixedLen(F::Int2) => Want::Int(2),
        TI::FixedLen(F::Int4) => Want::Int(4),
        TI::FixedLen(F::Int8) => Want::Int(8),
        TI::FixedLen(F::Float4) => Want::Float(4),
        TI::FixedLen(F::Float8) => Want::Float(8),
        TI::VarLenSized(c) if c.r#type() == V::Intn => Want::Int(c.len()),
        TI::VarLenSized(c) if c.r#type() == V::Floatn => Want::Float(c.len()),
        _ => Want::Other,
    };
    let int = match &v {
        ColumnData::U8(Some(x)) => Some(*x as i64),
        ColumnData::I16(Some(x)) => Some(*x as i64),
        ColumnData::I32(Some(x)) => Some(*x as i64),
        ColumnData::I64(Some(x)) => Some(*x),
        _ => None,
    };
    let is_null = is_null(&v);
    if is_null {
        return null_of(ty).ok_or_else(|| format!("no NULL form for a column of type {ty:?}"));
    }
    if let ColumnData::Xml(Some(x)) = &v {
        if AsRef::<str>::as_ref(&**x).is_empty() {
            // tiberius 0.13 frames an empty xml value with an extra PLP terminator, which breaks
            // the bulk load stream; refuse it here, loudly, rather than send a broken stream.
            return Err(
                "an empty xml value cannot be bulk loaded with this client (tiberius 0.13 \
                 mis-frames it); set it to NULL or non-empty xml in the source, or load this \
                 table another way"
                    .into(),
            );
        }
    }
    Ok(match (want, int, &v) {
        (Want::Int(n), Some(i), _) => {
            let out_of_range = || format!("{i} does not fit a {}-byte integer column", n);
            match n {
                1 => ColumnData::U8(Some(u8::try_from(i).map_err(|_| out_of_range())?)),
                2 => ColumnData::I16(Some(i16::try_from(i).map_err(|_| out_of_range())?)),
                4 => ColumnData::I32(Some(i32::try_from(i).map_err(|_| out_of_range())?)),
                _ => ColumnData::I64(Some(i)),
            }
        }
        (Want::Float(8), _, ColumnData::F32(Some(f))) => ColumnData::F64(Some(*f as f64)),
        (Want::Float(4), _, ColumnData::F64(Some(f))) if (*f as f32) as f64 == *f => {
            ColumnData::F32(Some(*f as f32))
        }
        _ => v,
    })
}

/// Whether `v` is a NULL of any type.
pub fn is_null(v: &ColumnData<'_>) -> bool {
    matches!(
        v,
        ColumnData::U8(None)
            | ColumnData::I16(None)
            | ColumnData::I32(None)
            | ColumnData::I64(None)
            | ColumnData::F32(None)
            | ColumnData::F64(None)
            | ColumnData::Bit(None)
            | ColumnData::String(None)
            | ColumnData::Binary(None)
            | ColumnData::Guid(None)
            | ColumnData::Numeric(None)
            | ColumnData::Xml(None)
            | ColumnData::DateTime(None)
            | ColumnData::SmallDateTime(None)
            | ColumnData::Date(None)
            | ColumnData::Time(None)
            | ColumnData::DateTime2(None)
            | ColumnData::DateTimeOffset(None)
    )
}
