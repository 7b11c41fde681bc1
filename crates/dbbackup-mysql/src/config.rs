//! Connection and selection options.

use std::fmt;
use std::str::FromStr;

use dbbackup_core::{Error, ErrorKind, Result};
use sqlx::mysql::MySqlConnectOptions;

/// The engine name recorded in manifests.
pub const ENGINE: &str = "mysql";

/// A MySQL / MariaDB connection target from a `mysql://` or `mariadb://` URL.
#[derive(Clone)]
pub struct MyUrl {
    pub(crate) options: MySqlConnectOptions,
    pub(crate) redacted: String,
    pub(crate) database: String,
    pub(crate) password: Option<String>,
    pub(crate) tls: MyTls,
}

/// MySQL's `ssl-mode` (the URL's `ssl-mode` / `sslmode`; default `PREFERRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plaintext.
    Disabled,
    /// TLS when the server offers it, else plaintext (not verified).
    #[default]
    Preferred,
    /// TLS or fail (not verified).
    Required,
    /// TLS with the server certificate verified against the CA (`ssl-ca`).
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyIdentity,
}

impl FromStr for SslMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "ssl-mode {other:?}: use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or \
                         VERIFY_IDENTITY"
                    ),
                ))
            }
        })
    }
}

/// TLS settings of every connection to one server: the sqlx ones, the `LOAD DATA` loaders and
/// the client tools.
#[derive(Debug, Clone, Default)]
pub(crate) struct MyTls {
    pub(crate) mode: SslMode,
    pub(crate) ca: Option<String>,
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
}

impl MyTls {
    fn from_url(url: &str) -> Result<Self> {
        let mut tls = MyTls::default();
        let Ok(parsed) = url::Url::parse(url) else {
            return Ok(tls);
        };
        for (k, v) in parsed.query_pairs() {
            match &*k {
                "ssl-mode" | "sslmode" => tls.mode = v.parse()?,
                "ssl-ca" | "sslca" => tls.ca = Some(v.into_owned()),
                "ssl-cert" | "sslcert" => tls.cert = Some(v.into_owned()),
                "ssl-key" | "sslkey" => tls.key = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(tls)
    }

    /// `mysql_async` TLS options (`None`: plaintext), given whether TLS is to be used.
    pub(crate) fn ssl_opts(&self, use_tls: bool) -> Option<mysql_async::SslOpts> {
        if !use_tls || self.mode == SslMode::Disabled {
            return None;
        }
        let mut o = mysql_async::SslOpts::default();
        if let Some(ca) = &self.ca {
            o = o.with_root_certs(vec![std::path::PathBuf::from(ca).into()]);
        }
        if let (Some(c), Some(k)) = (&self.cert, &self.key) {
            o = o.with_client_identity(Some(mysql_async::ClientIdentity::new(
                std::path::PathBuf::from(c).into(),
                std::path::PathBuf::from(k).into(),
            )));
        }
        match self.mode {
            SslMode::Preferred | SslMode::Required => o.with_danger_accept_invalid_certs(true),
            SslMode::VerifyCa => o.with_danger_skip_domain_validation(true),
            _ => o,
        }
        .into()
    }

    /// Client-tool arguments: `--ssl-mode` for MySQL's tools, `--ssl*` for MariaDB's.
    pub(crate) fn tool_args(&self, mysql_flavour: bool) -> Vec<String> {
        let mut args = Vec::new();
        if mysql_flavour {
            let m = match self.mode {
                SslMode::Disabled => "DISABLED",
                SslMode::Preferred => "PREFERRED",
                SslMode::Required => "REQUIRED",
                SslMode::VerifyCa => "VERIFY_CA",
                SslMode::VerifyIdentity => "VERIFY_IDENTITY",
            };
            args.push(format!("--ssl-mode={m}"));
        } else {
            match self.mode {
                SslMode::Disabled => args.push("--skip-ssl".into()),
                SslMode::Preferred => {}
                SslMode::Required => args.push("--ssl".into()),
                // MariaDB's client verifies the CA and the host name together.
                SslMode::VerifyCa | SslMode::VerifyIdentity => {
                    args.push("--ssl".into());
                    args.push("--ssl-verify-server-cert".into());
                }
            }
        }
        if self.mode != SslMode::Disabled {
            for (flag, v) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
                if let Some(v) = v {
                    args.push(format!("--ssl-{flag}={v}"));
                }
            }
        }
        args
    }
}

impl fmt::Debug for MyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MyUrl({})", self.redacted)
    }
}

impl fmt::Display for MyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// `url` with its password replaced by `***`.
pub use dbbackup_core::redact_url as redact;

impl FromStr for MyUrl {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self> {
        let normalized = if let Some(rest) = url.strip_prefix("mariadb://") {
            format!("mysql://{rest}")
        } else if url.starts_with("mysql://") {
            url.to_owned()
        } else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a mysql:// URL", redact(url)),
            ));
        };
        let redacted = redact(url);
        let options = MySqlConnectOptions::from_str(&normalized).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid MySQL URL {redacted}: {e}"),
            )
        })?;
        let database = options.get_database().map(str::to_owned).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{redacted} names no database (mysql://user@host:3306/DATABASE)"),
            )
        })?;
        let tls = MyTls::from_url(&normalized)?;
        // No password in the URL: the MySQL clients' conventions, in their order.
        let mut password = dbbackup_core::url_password(url);
        let mut options = options;
        if password.is_none() {
            password = std::env::var("MYSQL_PWD")
                .ok()
                .filter(|p| !p.is_empty())
                .or_else(option_file_password);
            if let Some(p) = &password {
                options = options.password(p);
            }
        }
        Ok(MyUrl {
            options,
            redacted,
            database,
            password,
            tls,
        })
    }
}

/// `password` from the `[client]` (or `[client-mariadb]`, `[mysql]`) group of `~/.my.cnf`, as
/// the MySQL and MariaDB clients read it.
fn option_file_password() -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let text = std::fs::read_to_string(std::path::Path::new(&home).join(".my.cnf")).ok()?;
    parse_option_file(&text)
}

fn parse_option_file(text: &str) -> Option<String> {
    let mut found = None;
    for (group, k, v) in dbbackup_core::ini_entries(text) {
        if !matches!(
            group.to_ascii_lowercase().as_str(),
            "client" | "client-mariadb" | "mysql"
        ) {
            continue;
        }
        if k.replace('_', "-") != "password" {
            continue;
        }
        let v = v.as_str();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        found = Some(v.to_owned());
    }
    found
}

impl MyUrl {
    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The TLS mode in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.tls.mode
    }

    /// Whether the server is on this machine (loopback or a socket).
    pub(crate) fn is_local(&self) -> bool {
        let h = self.options.get_host();
        self.options.get_socket().is_some()
            || h == "localhost"
            || h.starts_with("127.")
            || h == "::1"
            || h == "[::1]"
    }

    /// The same server without a default database (for CREATE / DROP DATABASE).
    pub(crate) fn server(&self) -> MySqlConnectOptions {
        self.options.clone().database("")
    }
}

pub use dbbackup_core::Filter;

#[cfg(test)]
mod option_file_tests {
    use super::parse_option_file;

    #[test]
    fn the_client_groups_password_is_read() {
        let f = "# mine\n[mysqld]\npassword=no\n[client]\nuser = app\npassword = \"s3 cret\"\n[other]\npassword=x\n";
        assert_eq!(parse_option_file(f).as_deref(), Some("s3 cret"));
        assert_eq!(
            parse_option_file("[client-mariadb]\npassword=a\n").as_deref(),
            Some("a")
        );
        assert_eq!(parse_option_file("[mysqld]\npassword=a\n"), None);
    }
}
