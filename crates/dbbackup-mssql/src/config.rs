//! `mssql://` URLs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use dbbackup_core::{Error, ErrorKind, Result};
use tiberius::{AuthMethod, Config, EncryptionLevel};

/// The engine name recorded in manifests of logical backups.
pub const ENGINE: &str = "mssql";
/// The engine name recorded in manifests of the server's own backups (`BACKUP DATABASE`,
/// `BACKUP LOG`). The stored word stays `mssql-native`, as in every manifest written so far.
pub const SERVER_BACKUP_ENGINE: &str = "mssql-native";

/// `url` with its password replaced by `***`.
pub use dbbackup_core::redact_url as redact;

/// A SQL Server connection target:
/// `mssql://user:password@host:1433/database?encrypt=required&trust_server_certificate=false`.
///
/// `sqlserver://` is accepted as well. Query parameters:
///
/// * `encrypt`: `required` (default: TLS for the whole connection, certificate checked),
///   `strict` (TDS 8.0: TLS before the first byte), `off` (TLS for the login only) or
///   `plaintext` (no TLS at all, the password crosses the network in the clear — for test
///   servers on loopback only).
/// * `trust_server_certificate=true`: accept a certificate that does not verify (self-signed
///   development servers). Without it, the server's certificate must chain to a trusted root.
/// * Named instances are reached by their port (`host:PORT`); SQL Browser lookup is not built in.
/// * `connect_timeout=SECONDS` (default 30).
#[derive(Clone)]
pub struct MsUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) database: String,
    pub(crate) encryption: EncryptionLevel,
    pub(crate) trust_cert: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) redacted: String,
}

impl fmt::Debug for MsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MsUrl({})", self.redacted)
    }
}

impl fmt::Display for MsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

impl FromStr for MsUrl {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self> {
        let redacted = redact(url);
        let rest = url
            .strip_prefix("mssql://")
            .or_else(|| url.strip_prefix("sqlserver://"))
            .ok_or_else(|| invalid(format!("{redacted} is not an mssql:// URL")))?;
        let parsed = url::Url::parse(&format!("mssql://{rest}"))
            .map_err(|e| invalid(format!("invalid SQL Server URL {redacted}: {e}")))?;
        let decode = |s: &str| -> Result<String> {
            percent_decode(s).ok_or_else(|| {
                invalid(format!(
                    "invalid percent-encoding in {redacted}; encode reserved characters as %XX"
                ))
            })
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "{redacted} names no host (mssql://user@HOST:1433/db)"
                ))
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let user = decode(parsed.username())?;
        if user.is_empty() {
            return Err(invalid(format!(
                "{redacted} names no user (mssql://USER:password@host/db); SQL Server logins need one"
            )));
        }
        let password = decode(parsed.password().unwrap_or(""))?;
        let database = decode(parsed.path().trim_start_matches('/'))?;
        if database.is_empty() || database.contains('/') {
            return Err(invalid(format!(
                "{redacted} names no database (mssql://user@host:1433/DATABASE)"
            )));
        }
        let mut out = MsUrl {
            host,
            port: parsed.port().unwrap_or(1433),
            user,
            password,
            database,
            encryption: EncryptionLevel::Required,
            trust_cert: false,
            connect_timeout: Duration::from_secs(30),
            redacted: redacted.clone(),
        };
        for (k, v) in parsed.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("encrypt", "required" | "true" | "yes") => {
                    out.encryption = EncryptionLevel::Required
                }
                ("encrypt", "strict") => out.encryption = EncryptionLevel::Strict,
                ("encrypt", "off" | "false" | "no") => out.encryption = EncryptionLevel::Off,
                ("encrypt", "plaintext") => out.encryption = EncryptionLevel::NotSupported,
                ("encrypt", other) => {
                    return Err(invalid(format!(
                        "encrypt={other} in {redacted}: use required, strict, off or plaintext"
                    )))
                }
                ("trust_server_certificate", "true" | "yes" | "1") => out.trust_cert = true,
                ("trust_server_certificate", "false" | "no" | "0") => out.trust_cert = false,
                ("instance", _) => {
                    return Err(invalid(format!(
                        "instance= in {redacted}: named instances are reached by their port (mssql://user@host:PORT/db); SQL Browser lookup is not built in"
                    )))
                }
                ("connect_timeout", secs) => {
                    let s: u64 = secs.parse().map_err(|_| {
                        invalid(format!("connect_timeout={secs} in {redacted}: give whole seconds"))
                    })?;
                    out.connect_timeout = Duration::from_secs(s.max(1));
                }
                (k, _) => {
                    return Err(invalid(format!(
                        "unknown parameter {k:?} in {redacted}; known: encrypt, trust_server_certificate, connect_timeout"
                    )))
                }
            }
        }
        Ok(out)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl MsUrl {
    /// The database named by the URL.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The same server and login with another database.
    pub fn with_database(&self, database: &str) -> Self {
        let mut u = self.clone();
        u.database = database.to_owned();
        u
    }

    /// The tiberius configuration for `database`.
    pub(crate) fn tiberius(&self, database: &str) -> Config {
        let mut c = Config::new();
        c.host(&self.host);
        c.port(self.port);
        c.database(database);
        c.application_name("dbbackup");
        c.authentication(AuthMethod::sql_server(&self.user, &self.password));
        c.encryption(self.encryption);
        if self.trust_cert {
            c.trust_cert();
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let u: MsUrl =
            "mssql://sa:p%40ss@db.example:1444/shop?encrypt=strict&trust_server_certificate=true"
                .parse()
                .unwrap();
        assert_eq!(u.user, "sa");
        assert_eq!(u.password, "p@ss");
        assert_eq!(u.database(), "shop");
        assert_eq!(u.address(), "db.example:1444");
        assert_eq!(u.encryption, EncryptionLevel::Strict);
        assert!(u.trust_cert);
        assert!(!format!("{u:?} {u}").contains("p%40ss"));
        let d: MsUrl = "sqlserver://sa@h/db".parse().unwrap();
        assert_eq!(d.port, 1433);
        assert_eq!(d.encryption, EncryptionLevel::Required);
        for bad in [
            "postgres://h/db",
            "mssql://h/db",
            "mssql://sa@h/",
            "mssql://sa@h/db?encrypt=maybe",
            "mssql://sa@h/db?colour=blue",
            "mssql://sa:secret@h/db?connect_timeout=soon",
        ] {
            let e = bad.parse::<MsUrl>().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
