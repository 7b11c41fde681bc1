//! Golden strings for every statement shape, and a T-SQL lexer that proves hostile names stay one
//! identifier or one string.

use dbbackup_mssql::*;
use proptest::prelude::*;
use time::macros::datetime;

#[test]
fn backup_database_golden() {
    let full = BackupDatabase::new("shop")
        .to(Device::Disk("/b/shop.bak".into()))
        .to_sql()
        .unwrap();
    assert_eq!(full, "BACKUP DATABASE [shop] TO DISK = N'/b/shop.bak'");

    let diff = BackupDatabase::new("shop")
        .kind(BackupKind::Differential)
        .to(Device::Disk("/b/1.bak".into()))
        .to(Device::Disk("/b/2.bak".into()))
        .compression(true)
        .checksum(true)
        .stats(5)
        .init(true)
        .format(true)
        .name("nightly")
        .description("it's nightly")
        .to_sql()
        .unwrap();
    assert_eq!(
        diff,
        "BACKUP DATABASE [shop] TO DISK = N'/b/1.bak', DISK = N'/b/2.bak' WITH DIFFERENTIAL, FORMAT, INIT, \
         NAME = N'nightly', DESCRIPTION = N'it''s nightly', COMPRESSION, CHECKSUM, STATS = 5"
    );

    let url = BackupDatabase::new("shop")
        .to(Device::Url(
            "https://acct.blob.core.windows.net/c/shop.bak".into(),
        ))
        .copy_only(true)
        .credential("blob cred")
        .compression(false)
        .checksum(false)
        .encryption(BackupEncryption {
            algorithm: EncryptionAlgorithm::Aes256,
            encryptor: Encryptor::ServerCertificate("Backup]Cert".into()),
        })
        .to_sql()
        .unwrap();
    assert_eq!(
        url,
        "BACKUP DATABASE [shop] TO URL = N'https://acct.blob.core.windows.net/c/shop.bak' WITH \
         CREDENTIAL = N'blob cred', COPY_ONLY, NO_COMPRESSION, \
         ENCRYPTION (ALGORITHM = AES_256, SERVER CERTIFICATE = [Backup]]Cert]), NO_CHECKSUM"
    );
    let ekm = BackupDatabase::new("d")
        .to(Device::Disk("x".into()))
        .encryption(BackupEncryption {
            algorithm: EncryptionAlgorithm::TripleDes3Key,
            encryptor: Encryptor::ServerAsymmetricKey("k".into()),
        })
        .to_sql()
        .unwrap();
    assert!(
        ekm.ends_with("WITH ENCRYPTION (ALGORITHM = TRIPLE_DES_3KEY, SERVER ASYMMETRIC KEY = [k])")
    );
}

#[test]
fn backup_log_golden() {
    let log = BackupLog::new("shop")
        .to(Device::Disk("/b/log1.trn".into()))
        .checksum(true)
        .stats(10)
        .to_sql()
        .unwrap();
    assert_eq!(
        log,
        "BACKUP LOG [shop] TO DISK = N'/b/log1.trn' WITH CHECKSUM, STATS = 10"
    );
    let tail = BackupLog::new("shop")
        .to(Device::Disk("/b/tail.trn".into()))
        .norecovery(true)
        .no_truncate(true)
        .copy_only(true)
        .to_sql()
        .unwrap();
    assert_eq!(
        tail,
        "BACKUP LOG [shop] TO DISK = N'/b/tail.trn' WITH COPY_ONLY, NORECOVERY, NO_TRUNCATE"
    );
}

#[test]
fn restore_golden() {
    let r = RestoreDatabase::new("shop_copy")
        .from(Device::Disk("/b/shop.bak".into()))
        .file(2)
        .move_file("shop", "/data/shop_copy.mdf")
        .move_file("shop_log", "/data/shop_copy_log.ldf")
        .recovery(Recovery::NoRecovery)
        .replace(true)
        .checksum(true)
        .stats(25)
        .to_sql()
        .unwrap();
    assert_eq!(
        r,
        "RESTORE DATABASE [shop_copy] FROM DISK = N'/b/shop.bak' WITH FILE = 2, CHECKSUM, \
         MOVE N'shop' TO N'/data/shop_copy.mdf', MOVE N'shop_log' TO N'/data/shop_copy_log.ldf', \
         NORECOVERY, REPLACE, STATS = 25"
    );
    let log = RestoreLog::new("shop_copy")
        .from(Device::Disk("/b/log1.trn".into()))
        .stop_at(datetime!(2026-11-21 13:45:07.250))
        .to_sql()
        .unwrap();
    assert_eq!(
        log,
        "RESTORE LOG [shop_copy] FROM DISK = N'/b/log1.trn' WITH RECOVERY, STOPAT = N'2026-11-21T13:45:07.250'"
    );
    let standby = RestoreLog::new("s")
        .from(Device::Disk("/b/l.trn".into()))
        .recovery(Recovery::Standby("/b/undo.dat".into()))
        .to_sql()
        .unwrap();
    assert!(standby.ends_with("WITH STANDBY = N'/b/undo.dat'"));
    let pit = RestoreDatabase::new("s")
        .from(Device::Url("s3://bucket/s.bak".into()))
        .credential("s3cred")
        .stop_at(datetime!(2026-01-02 03:04:05))
        .to_sql()
        .unwrap();
    assert_eq!(
        pit,
        "RESTORE DATABASE [s] FROM URL = N's3://bucket/s.bak' WITH CREDENTIAL = N's3cred', RECOVERY, \
         STOPAT = N'2026-01-02T03:04:05.000'"
    );
    let v = RestoreVerifyOnly::new()
        .from(Device::Disk("/b/shop.bak".into()))
        .checksum(true)
        .file(1)
        .to_sql()
        .unwrap();
    assert_eq!(
        v,
        "RESTORE VERIFYONLY FROM DISK = N'/b/shop.bak' WITH FILE = 1, CHECKSUM"
    );
}

#[test]
fn nonsense_is_refused_with_a_reason() {
    let e = BackupDatabase::new("d").to_sql().unwrap_err();
    assert!(e.to_string().contains("at least one device"), "{e}");
    let e = BackupDatabase::new("d")
        .to(Device::Disk("a".into()))
        .to(Device::Url("https://x/y".into()))
        .to_sql()
        .unwrap_err();
    assert!(e.to_string().contains("cannot be mixed"), "{e}");
    let e = BackupDatabase::new("d")
        .kind(BackupKind::Differential)
        .copy_only(true)
        .to(Device::Disk("a".into()))
        .to_sql()
        .unwrap_err();
    assert!(e.to_string().contains("COPY_ONLY"), "{e}");
    for s in [0, 101] {
        let e = BackupLog::new("d")
            .to(Device::Disk("a".into()))
            .stats(s)
            .to_sql()
            .unwrap_err();
        assert!(e.to_string().contains("1 to 100"), "{e}");
    }
    let e = RestoreDatabase::new("d")
        .from(Device::Disk("a".into()))
        .file(0)
        .to_sql()
        .unwrap_err();
    assert!(e.to_string().contains("start at 1"), "{e}");
    assert!(BackupDatabase::new("a\0b")
        .to(Device::Disk("x".into()))
        .to_sql()
        .is_err());
    assert!(BackupDatabase::new("d")
        .to(Device::Disk("x\0".into()))
        .to_sql()
        .is_err());
    let many = (0..65).fold(BackupDatabase::new("d"), |b, i| {
        b.to(Device::Disk(format!("/b/{i}")))
    });
    assert!(many.to_sql().unwrap_err().to_string().contains("64"));
}

/// A T-SQL token: what the server's lexer would see.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// `[...]` with `]]` unescaped.
    Ident(String),
    /// `N'...'` with `''` unescaped.
    Str(String),
    /// A keyword, number or punctuation.
    Word(String),
}

/// Lexes `sql` the way SQL Server does for the characters our statements use. Fails on anything a
/// well-formed statement of ours never contains: an unterminated bracket or string, a comment, a
/// statement separator, a bare quote.
fn lex(sql: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        match c[i] {
            ' ' => i += 1,
            '[' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None => return Err("unterminated [".into()),
                        Some(']') if c.get(i + 1) == Some(&']') => {
                            s.push(']');
                            i += 2;
                        }
                        Some(']') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Ident(s));
            }
            'N' if c.get(i + 1) == Some(&'\'') => {
                let mut s = String::new();
                i += 2;
                loop {
                    match c.get(i) {
                        None => return Err("unterminated N'".into()),
                        Some('\'') if c.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            ch if ch.is_ascii_alphanumeric() || ch == '_' => {
                let mut s = String::new();
                while let Some(&ch) = c.get(i) {
                    if ch.is_ascii_alphanumeric() || ch == '_' {
                        s.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(s));
            }
            ',' | '=' | '(' | ')' => {
                out.push(Tok::Word(c[i].to_string()));
                i += 1;
            }
            other => return Err(format!("unexpected {other:?} outside a name or string")),
        }
    }
    Ok(out)
}

fn shape(toks: &[Tok]) -> Vec<Tok> {
    toks.iter()
        .map(|t| match t {
            Tok::Ident(_) => Tok::Ident(String::new()),
            Tok::Str(_) => Tok::Str(String::new()),
            w => w.clone(),
        })
        .collect()
}

/// Names an attacker might choose: brackets, quotes, separators, comments, non-ASCII.
fn hostile() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("]".to_string()),
            Just("[".to_string()),
            Just("'".to_string()),
            Just("N'".to_string()),
            Just(";".to_string()),
            Just("--".to_string()),
            Just("/*".to_string()),
            Just(" DROP DATABASE x".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            Just("ü😀".to_string()),
            "[a-z]{1,3}",
        ],
        1..8,
    )
    .prop_map(|v| v.concat())
}

fn statements(db: &str, path: &str, other: &str) -> Vec<String> {
    vec![
        BackupDatabase::new(db)
            .to(Device::Disk(path.into()))
            .name(other)
            .description(other)
            .credential(other)
            .encryption(BackupEncryption {
                algorithm: EncryptionAlgorithm::Aes128,
                encryptor: Encryptor::ServerCertificate(other.into()),
            })
            .stats(10)
            .to_sql()
            .unwrap(),
        BackupLog::new(db)
            .to(Device::Url(path.into()))
            .name(other)
            .to_sql()
            .unwrap(),
        RestoreDatabase::new(db)
            .from(Device::Disk(path.into()))
            .move_file(other, path)
            .recovery(Recovery::Standby(other.into()))
            .to_sql()
            .unwrap(),
        RestoreLog::new(db)
            .from(Device::Disk(path.into()))
            .credential(other)
            .to_sql()
            .unwrap(),
        RestoreVerifyOnly::new()
            .from(Device::Disk(path.into()))
            .to_sql()
            .unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the names, each statement lexes to the same token shape as with harmless names,
    /// and each name comes back out of its token unchanged.
    #[test]
    fn hostile_names_stay_one_token(db in hostile(), path in hostile(), other in hostile()) {
        let benign = statements("db", "/p", "o");
        let evil = statements(&db, &path, &other);
        for (b, e) in benign.iter().zip(&evil) {
            let bt = lex(b).unwrap();
            let et = lex(e).map_err(|m| TestCaseError::fail(format!("{m}: {e}")))?;
            prop_assert_eq!(shape(&bt), shape(&et), "{}", e);
            for t in &et {
                match t {
                    Tok::Ident(s) => prop_assert!(s == &db || s == &other, "{:?} in {}", s, e),
                    Tok::Str(s) => prop_assert!(s == &path || s == &other, "{:?} in {}", s, e),
                    Tok::Word(_) => {}
                }
            }
        }
    }
}

#[test]
fn the_issue_example_is_harmless() {
    let sql = BackupDatabase::new("a]b'; DROP")
        .to(Device::Disk("/b/a]b'; DROP.bak".into()))
        .to_sql()
        .unwrap();
    assert_eq!(
        sql,
        "BACKUP DATABASE [a]]b'; DROP] TO DISK = N'/b/a]b''; DROP.bak'"
    );
    let toks = lex(&sql).unwrap();
    assert_eq!(toks[2], Tok::Ident("a]b'; DROP".into()));
    assert_eq!(toks[6], Tok::Str("/b/a]b'; DROP.bak".into()));
    assert_eq!(toks.len(), 7);
}
