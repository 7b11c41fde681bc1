//! The mssql-rows-v1 format: every value survives encode → decode, and — over the wire — a value
//! the server sends comes back to the server unchanged after a trip through the format and the
//! client's bulk insert.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use dbbackup_core::ErrorKind;
use dbbackup_mssql::testing::{Col, ColType, Reply, Request, TestServer, Value};
use dbbackup_mssql::{connect_to, rows};
use dbbackup_mssql::{decode_row, encode_value, fit, is_null, read_as, select_expr, ReadAs};
use proptest::prelude::*;
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::xml::XmlData;
use tiberius::{ColumnData, TokenRow, Uuid};

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('\t'),
            Just('\n'),
            Just('\''),
            Just('\\'),
            Just('\0'),
            Just('😀'),
            Just('𝄞'),
            Just('ü'),
            any::<char>(),
            proptest::char::range('a', 'z'),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn any_column_data() -> impl Strategy<Value = ColumnData<'static>> {
    let scale = 0u8..=7;
    prop_oneof![
        Just(ColumnData::I32(None)),
        any::<bool>().prop_map(|b| ColumnData::Bit(Some(b))),
        any::<u8>().prop_map(|v| ColumnData::U8(Some(v))),
        any::<i16>().prop_map(|v| ColumnData::I16(Some(v))),
        any::<i32>().prop_map(|v| ColumnData::I32(Some(v))),
        any::<i64>().prop_map(|v| ColumnData::I64(Some(v))),
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|v| ColumnData::F32(Some(v))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|v| ColumnData::F64(Some(v))),
        text().prop_map(|s| ColumnData::String(Some(Cow::Owned(s)))),
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| ColumnData::Binary(Some(Cow::Owned(b)))),
        any::<[u8; 16]>().prop_map(|g| ColumnData::Guid(Some(Uuid::from_bytes(g)))),
        (-(10i128.pow(38) - 1)..10i128.pow(38), 0u8..=38)
            .prop_map(|(v, s)| ColumnData::Numeric(Some(Numeric::new_with_scale(v, s)))),
        (any::<i32>(), 0u32..25_920_000)
            .prop_map(|(d, f)| ColumnData::DateTime(Some(DateTime::new(d, f)))),
        (any::<u16>(), 0u16..1440)
            .prop_map(|(d, m)| ColumnData::SmallDateTime(Some(SmallDateTime::new(d, m)))),
        (0u32..3_652_059).prop_map(|d| ColumnData::Date(Some(Date::new(d)))),
        (any::<u64>(), scale.clone()).prop_map(|(i, s)| ColumnData::Time(Some(Time::new(i, s)))),
        (0u32..3_652_059, any::<u64>(), scale.clone()).prop_map(|(d, i, s)| {
            ColumnData::DateTime2(Some(DateTime2::new(Date::new(d), Time::new(i, s))))
        }),
        (0u32..3_652_059, any::<u64>(), scale, -840i16..=840).prop_map(|(d, i, s, o)| {
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                DateTime2::new(Date::new(d), Time::new(i, s)),
                o,
            )))
        }),
        text().prop_map(|s| ColumnData::Xml(Some(Cow::Owned(XmlData::new(format!(
            "<a>{}</a>",
            s.escape_default()
        )))))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rows of any values decode to the same values, whatever the chunk boundaries.
    #[test]
    fn rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(any_column_data(), 3), 1..20), cut in any::<prop::sample::Index>()) {
        let mut buf = BytesMut::new();
        for r in &rows {
            for v in r {
                encode_value(v, &mut buf);
            }
        }
        // A prefix cut anywhere is either whole rows or "need more bytes", never an error.
        let cut = cut.index(buf.len() + 1);
        let mut at = 0;
        while let Some((_, n)) = decode_row(&buf[at..cut], 3).unwrap() {
            at += n;
        }
        let mut at = 0;
        for r in &rows {
            let (got, n) = decode_row(&buf[at..], 3).unwrap().expect("a whole row");
            at += n;
            for (a, b) in r.iter().zip(&got) {
                if is_null(a) {
                    prop_assert!(is_null(b));
                } else {
                    prop_assert_eq!(a, b);
                }
            }
        }
        prop_assert_eq!(at, buf.len());
    }
}

#[test]
fn garbage_is_corrupt_not_a_panic() {
    let e = decode_row(&[99], 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains("unknown value tag 99"), "{e}");
    let mut bad_scale = vec![15];
    bad_scale.extend_from_slice(&1u64.to_le_bytes());
    bad_scale.push(9);
    assert!(decode_row(&bad_scale, 1).is_err());
    let mut bad_utf8 = vec![8];
    bad_utf8.extend_from_slice(&2u32.to_le_bytes());
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    assert!(decode_row(&bad_utf8, 1).is_err());
}

#[test]
fn how_columns_are_read() {
    assert_eq!(read_as("money", false), ReadAs::Cast("decimal(19,4)"));
    assert_eq!(read_as("SMALLMONEY", false), ReadAs::Cast("decimal(10,4)"));
    assert_eq!(read_as("geography", false), ReadAs::Cast("varbinary(max)"));
    assert!(matches!(read_as("sql_variant", false), ReadAs::Skip(_)));
    assert!(matches!(read_as("timestamp", false), ReadAs::Skip(_)));
    assert!(matches!(read_as("int", true), ReadAs::Skip(_)));
    assert_eq!(read_as("datetime2", false), ReadAs::Plain);
    assert_eq!(select_expr("a]b", &ReadAs::Plain), "[a]]b]");
    assert_eq!(
        select_expr("price", &ReadAs::Cast("decimal(19,4)")),
        "CAST([price] AS decimal(19,4)) AS [price]"
    );
}

/// Columns of every type the test server speaks, with values of each.
fn wire_columns() -> Vec<Col> {
    vec![
        Col::new("id", ColType::Int).identity(),
        Col::new("ti", ColType::TinyInt),
        Col::new("si", ColType::SmallInt),
        Col::new("bi", ColType::BigInt),
        Col::new("bt", ColType::Bit),
        Col::new("re", ColType::Real),
        Col::new("fl", ColType::Float),
        Col::new("de", ColType::Decimal(38, 10)),
        Col::new("nv", ColType::NVarChar(4000)),
        Col::new("nm", ColType::NVarCharMax),
        Col::new("vb", ColType::VarBinary(8000)),
        Col::new("vm", ColType::VarBinaryMax),
        Col::new("gu", ColType::Guid),
        Col::new("da", ColType::Date),
        Col::new("tm", ColType::Time(7)),
        Col::new("d2", ColType::DateTime2(7)),
        Col::new("d3", ColType::DateTime2(3)),
        Col::new("dto", ColType::DateTimeOffset(7)),
        Col::new("x", ColType::Xml),
    ]
}

fn wire_value(ty: ColType) -> BoxedStrategy<Value> {
    let v = match ty {
        ColType::TinyInt => (0i64..=255).prop_map(Value::Int).boxed(),
        ColType::SmallInt => any::<i16>().prop_map(|v| Value::Int(v as i64)).boxed(),
        ColType::Int => any::<i32>().prop_map(|v| Value::Int(v as i64)).boxed(),
        ColType::BigInt => any::<i64>().prop_map(Value::Int).boxed(),
        ColType::Bit => any::<bool>().prop_map(Value::Bit).boxed(),
        ColType::Real => any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Value::Float(f as f64))
            .boxed(),
        ColType::Float => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float)
            .boxed(),
        ColType::Decimal(..) => (-(10i128.pow(38) - 1)..10i128.pow(38))
            .prop_map(Value::Decimal)
            .boxed(),
        ColType::NVarChar(_) => text().prop_map(Value::Str).boxed(),
        ColType::NVarCharMax => text().prop_map(|s| Value::Str(s.repeat(300))).boxed(),
        // Empty xml is refused by fit() (see empty_xml_is_refused_loudly).
        ColType::Xml => text()
            .prop_map(|s| Value::Str(format!("<r>{}</r>", s.repeat(100))))
            .boxed(),
        ColType::VarBinary(_) => proptest::collection::vec(any::<u8>(), 0..100)
            .prop_map(Value::Bytes)
            .boxed(),
        ColType::VarBinaryMax => proptest::collection::vec(any::<u8>(), 0..20_000)
            .prop_map(Value::Bytes)
            .boxed(),
        ColType::Guid => any::<[u8; 16]>().prop_map(Value::Guid).boxed(),
        ColType::Date => (0u32..3_652_059).prop_map(Value::Date).boxed(),
        ColType::Time(s) => (0u64..86_400 * 10u64.pow(s as u32))
            .prop_map(Value::Time)
            .boxed(),
        ColType::DateTime2(s) => (0u32..3_652_059, 0u64..86_400 * 10u64.pow(s as u32))
            .prop_map(|(d, t)| Value::DateTime2(d, t))
            .boxed(),
        ColType::DateTimeOffset(s) => (
            0u32..3_652_059,
            0u64..86_400 * 10u64.pow(s as u32),
            -840i16..=840,
        )
            .prop_map(|(d, t, o)| Value::DateTimeOffset(d, t, o))
            .boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 6 => v].boxed()
}

fn wire_rows() -> impl Strategy<Value = Vec<Vec<Value>>> {
    let row: Vec<BoxedStrategy<Value>> = wire_columns().iter().map(|c| wire_value(c.ty)).collect();
    proptest::collection::vec(row, 1..6)
}

/// Server value → tiberius → mssql-rows-v1 → tiberius bulk insert → server value.
async fn wire_round_trip(rows_in: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let cols = wire_columns();
    let (c2, r2) = (cols.clone(), rows_in.clone());
    let s = TestServer::start("pw", move |r: &Request| match r {
        Request::Batch(sql) if sql.starts_with("SELECT TOP 0") => {
            vec![Reply::Rows(c2.clone(), vec![])]
        }
        Request::Batch(sql) if sql.starts_with("SELECT") => {
            vec![Reply::Rows(c2.clone(), r2.clone())]
        }
        _ => vec![Reply::Done(0)],
    })
    .await
    .unwrap();
    let url = s.url("sa", "pw", "db").parse().unwrap();
    let mut c = connect_to(&url, "db", ErrorKind::Source).await.unwrap();
    let got = rows(&mut c, "SELECT * FROM [t]", ErrorKind::Source, "read")
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    for r in &got {
        for (_, v) in r.cells() {
            encode_value(v, &mut buf);
        }
    }
    let names: Vec<String> = cols.iter().map(|c| format!("[{}]", c.name)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let meta = c.column_metadata("[dbo].[t]", &names).await.unwrap();
    let mut req = c
        .bulk_insert_with_options(
            "[dbo].[t]",
            &names,
            tiberius::SqlBulkCopyOptions::from(tiberius::SqlBulkCopyOption::KeepIdentity)
                | tiberius::SqlBulkCopyOption::KeepNulls,
            &[],
        )
        .await
        .unwrap();
    let mut at = 0;
    while let Some((row, n)) = decode_row(&buf[at..], cols.len()).unwrap() {
        at += n;
        let mut tr = TokenRow::new();
        for (v, m) in row.into_iter().zip(&meta) {
            tr.push(fit(v, &m.base.ty).unwrap());
        }
        req.send(tr).await.unwrap();
    }
    let res = req.finalize().await.unwrap();
    assert_eq!(res.total(), rows_in.len() as u64);
    let bulk = s
        .requests()
        .into_iter()
        .find_map(|r| match r {
            Request::Bulk { columns, rows } => Some((columns, rows)),
            _ => None,
        })
        .expect("a bulk load");
    assert_eq!(bulk.0.len(), cols.len());
    assert!(bulk.0[0].identity, "KEEPIDENTITY sends the identity column");
    let batch = s
        .batches()
        .into_iter()
        .find(|b| b.starts_with("INSERT BULK"))
        .unwrap();
    assert!(batch.contains("KEEP_NULLS"), "{batch}");
    bulk.1
}

#[test]
fn wire_values_survive_the_format_and_bulk_insert() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    runner
        .run(&wire_rows(), |rows_in| {
            let out = rt.block_on(wire_round_trip(rows_in.clone()));
            *seen.lock().unwrap() += rows_in.len();
            prop_assert_eq!(out, rows_in);
            Ok(())
        })
        .unwrap();
    assert!(*seen.lock().unwrap() >= 24);
}

/// tiberius 0.13 frames an empty xml value with an extra PLP terminator (found by the test
/// server, which then cannot parse the bulk load); the restore refuses such a value by name
/// instead of sending a broken stream.
#[test]
fn empty_xml_is_refused_loudly() {
    let ty = tiberius::TypeInfo::Xml {
        schema: None,
        size: 0xffff_ffff_ffff_fffe,
    };
    let empty = ColumnData::Xml(Some(Cow::Owned(XmlData::new(""))));
    let e = fit(empty, &ty).unwrap_err();
    assert!(e.contains("empty xml"), "{e}");
    let fine = ColumnData::Xml(Some(Cow::Owned(XmlData::new("<a/>"))));
    assert!(fit(fine, &ty).is_ok());
    assert!(matches!(
        fit(ColumnData::I32(None), &ty),
        Ok(ColumnData::Xml(None))
    ));
}
