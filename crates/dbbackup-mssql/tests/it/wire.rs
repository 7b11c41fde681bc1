//! The network path against the TDS test server on 127.0.0.1: login, batches, typed result sets,
//! server errors and lost connections, through the same functions the engine uses.

use dbbackup_core::ErrorKind;
use dbbackup_mssql::testing::{Col, ColType, Reply, Request, TestServer, Value};
use dbbackup_mssql::MsUrl;
use dbbackup_mssql::{connect_to, exec, rows};
use tiberius::ColumnData;

fn url(s: &TestServer, pw: &str) -> MsUrl {
    s.url("sa", pw, "shop").parse().unwrap()
}

async fn typed_server() -> TestServer {
    TestServer::start("pw", |r: &Request| match r {
        Request::Batch(sql) if sql.contains("typed") => vec![Reply::Rows(
            vec![
                Col::new("i", ColType::Int),
                Col::new("b", ColType::BigInt),
                Col::new("s", ColType::NVarChar(50)),
                Col::new("m", ColType::NVarCharMax),
                Col::new("v", ColType::VarBinaryMax),
                Col::new("d", ColType::Decimal(38, 4)),
                Col::new("g", ColType::Guid),
                Col::new("t", ColType::DateTime2(7)),
                Col::new("o", ColType::DateTimeOffset(3)),
                Col::new("x", ColType::Bit),
            ],
            vec![
                vec![
                    Value::Int(-7),
                    Value::Int(i64::MIN),
                    Value::Str("tab\there 😀".into()),
                    Value::Str("ü".repeat(10_000)),
                    Value::Bytes((0..=255u8).cycle().take(1 << 20).collect()),
                    Value::Decimal(-12_345_678_901_234_567_890_123_456_789_012_345),
                    Value::Guid([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
                    Value::DateTime2(738_000, 123_456_789),
                    Value::DateTimeOffset(738_000, 1_000, -330),
                    Value::Bit(true),
                ],
                vec![Value::Null; 10],
            ],
        )],
        Request::Batch(sql) if sql.contains("fail") => vec![Reply::Error {
            number: 3201,
            message: "Cannot open backup device '/nope/x.bak'. Operating system error 2".into(),
        }],
        Request::Batch(sql) if sql.contains("vanish") => vec![Reply::Hangup],
        _ => vec![Reply::Done(0)],
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn login_query_and_typed_rows() {
    let s = typed_server().await;
    let mut c = connect_to(&url(&s, "pw"), "shop", ErrorKind::Source)
        .await
        .unwrap();
    let got = rows(&mut c, "SELECT typed", ErrorKind::Source, "typed")
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let cells: Vec<_> = got[0].cells().map(|(_, v)| v.clone()).collect();
    assert!(matches!(cells[0], ColumnData::I32(Some(-7))));
    assert!(matches!(cells[1], ColumnData::I64(Some(i64::MIN))));
    match &cells[2] {
        ColumnData::String(Some(s)) => assert_eq!(s, "tab\there 😀"),
        other => panic!("{other:?}"),
    }
    match &cells[3] {
        ColumnData::String(Some(s)) => assert_eq!(s.chars().count(), 10_000),
        other => panic!("{other:?}"),
    }
    match &cells[4] {
        ColumnData::Binary(Some(b)) => {
            assert_eq!(b.len(), 1 << 20);
            assert_eq!(b[257], 1);
        }
        other => panic!("{other:?}"),
    }
    match &cells[5] {
        ColumnData::Numeric(Some(n)) => {
            assert_eq!(n.value(), -12_345_678_901_234_567_890_123_456_789_012_345);
            assert_eq!(n.scale(), 4);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(cells[6], ColumnData::Guid(Some(_))));
    match &cells[7] {
        ColumnData::DateTime2(Some(d)) => {
            assert_eq!(d.date().days(), 738_000);
            assert_eq!(d.time().increments(), 123_456_789);
            assert_eq!(d.time().scale(), 7);
        }
        other => panic!("{other:?}"),
    }
    match &cells[8] {
        ColumnData::DateTimeOffset(Some(d)) => assert_eq!(d.offset(), -330),
        other => panic!("{other:?}"),
    }
    assert!(matches!(cells[9], ColumnData::Bit(Some(true))));
    for (_, v) in got[1].cells() {
        let null = matches!(
            v,
            ColumnData::I32(None)
                | ColumnData::I64(None)
                | ColumnData::String(None)
                | ColumnData::Binary(None)
                | ColumnData::Numeric(None)
                | ColumnData::Guid(None)
                | ColumnData::DateTime2(None)
                | ColumnData::DateTimeOffset(None)
                | ColumnData::Bit(None)
        );
        assert!(null, "{v:?}");
    }
    exec(&mut c, "SET NOCOUNT ON", ErrorKind::Source, "setup")
        .await
        .unwrap();
    assert_eq!(
        s.requests()[0],
        Request::Login {
            user: "sa".into(),
            database: "shop".into()
        }
    );
    assert_eq!(s.batches(), ["SELECT typed", "SET NOCOUNT ON"]);
}

#[tokio::test]
async fn wrong_password_is_a_clear_error() {
    let s = typed_server().await;
    let e = connect_to(&url(&s, "nope"), "shop", ErrorKind::Source)
        .await
        .err()
        .unwrap();
    let m = e.to_string();
    assert!(m.contains("18456") && m.contains("Login failed"), "{m}");
    assert!(m.contains("check the user and password"), "{m}");
    assert!(!m.contains("nope"), "the password leaked: {m}");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_server_without_tls_is_refused_unless_plaintext_is_asked_for() {
    let s = typed_server().await;
    let strict: MsUrl = format!("mssql://sa:pw@127.0.0.1:{}/shop", s.addr().port())
        .parse()
        .unwrap();
    let e = connect_to(&strict, "shop", ErrorKind::Source)
        .await
        .err()
        .unwrap();
    assert!(s.requests().is_empty(), "no login without encryption");
    assert!(e.to_string().contains("encrypt=plaintext"), "{e}");
}

#[tokio::test]
async fn server_errors_name_the_number_and_message() {
    let s = typed_server().await;
    let mut c = connect_to(&url(&s, "pw"), "shop", ErrorKind::Source)
        .await
        .unwrap();
    let e = exec(
        &mut c,
        "BACKUP fail",
        ErrorKind::Source,
        "backing up [shop]",
    )
    .await
    .unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with("source error: backing up [shop]: Cannot open backup device"),
        "{m}"
    );
    assert!(m.contains("SQL Server error 3201"), "{m}");
    // The connection is still usable after a statement error.
    exec(&mut c, "SELECT 1", ErrorKind::Source, "after")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lost_connection_is_temporary_and_says_so() {
    let s = typed_server().await;
    let mut c = connect_to(&url(&s, "pw"), "shop", ErrorKind::Source)
        .await
        .unwrap();
    let e = rows(&mut c, "SELECT vanish", ErrorKind::Source, "reading")
        .await
        .unwrap_err();
    assert!(e.is_temporary(), "{e}");
    let closed: MsUrl = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("mssql://sa:pw@127.0.0.1:{port}/shop?encrypt=plaintext")
            .parse()
            .unwrap()
    };
    let e = connect_to(&closed, "shop", ErrorKind::Source)
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("cannot reach SQL Server at 127.0.0.1:"),
        "{e}"
    );
    assert!(e.is_temporary());
}
