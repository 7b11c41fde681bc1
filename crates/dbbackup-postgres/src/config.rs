//! Connection and selection options.

use std::fmt;
use std::str::FromStr;

use dbbackup_core::{Error, ErrorKind, Result};
use sqlx::postgres::PgConnectOptions;

/// The engine name recorded in manifests.
pub const ENGINE: &str = "postgres";

/// `*`/`?` wildcard match (re-exported from `dbbackup-core`).
pub use dbbackup_core::glob_match as glob;
pub use dbbackup_core::Filter;

/// A PostgreSQL connection target, parsed from a `postgres://` or `postgresql://` URL.
#[derive(Clone)]
pub struct PgUrl {
    pub(crate) options: PgConnectOptions,
    pub(crate) redacted: String,
    pub(crate) database: String,
    pub(crate) password: Option<String>,
    /// libpq's TLS settings from the URL (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), passed
    /// to the client tools as `PGSSL*` variables.
    pub(crate) tls: Vec<(&'static str, String)>,
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({})", self.redacted)
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// `url` with its password replaced by `***`.
pub use dbbackup_core::redact_url as redact;

impl FromStr for PgUrl {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a postgres:// URL", redact(url)),
            ));
        }
        let redacted = redact(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("invalid PostgreSQL URL {redacted}: {e}"),
            )
        })?;
        let database = options
            .get_database()
            .map(str::to_owned)
            .or_else(|| options.get_username().to_owned().into())
            .unwrap_or_default();
        let password = dbbackup_core::url_password(url);
        let mut tls = Vec::new();
        if let Ok(parsed) = url::Url::parse(url) {
            for (k, v) in parsed.query_pairs() {
                let var = match &*k {
                    "sslmode" => "PGSSLMODE",
                    "sslrootcert" => "PGSSLROOTCERT",
                    "sslcert" => "PGSSLCERT",
                    "sslkey" => "PGSSLKEY",
                    _ => continue,
                };
                tls.push((var, v.into_owned()));
            }
        }
        Ok(PgUrl {
            options,
            redacted,
            database,
            password,
            tls,
        })
    }
}

impl PgUrl {
    /// The same server, another database.
    pub(crate) fn with_database(&self, db: &str) -> PgConnectOptions {
        self.options.clone().database(db)
    }

    /// The same server and settings, another database.
    pub(crate) fn for_database(&self, db: &str) -> PgUrl {
        let redacted = match url::Url::parse(&self.redacted) {
            Ok(mut u) => {
                u.set_path(&format!("/{db}"));
                u.to_string()
            }
            Err(_) => format!("{} (database {db})", self.redacted),
        };
        PgUrl {
            options: self.with_database(db),
            redacted,
            database: db.to_owned(),
            password: self.password.clone(),
            tls: self.tls.clone(),
        }
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Whether the server is on this machine (loopback address or a Unix socket), where a
    /// plaintext connection exposes nothing on a network.
    pub(crate) fn is_local(&self) -> bool {
        let h = self.options.get_host();
        h.starts_with('/')
            || h == "localhost"
            || h.starts_with("127.")
            || h == "::1"
            || h == "[::1]"
    }

    /// Sets the password and TLS settings of a client tool.
    pub(crate) fn child_env(&self, cmd: &mut tokio::process::Command) {
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
        for (k, v) in &self.tls {
            cmd.env(k, v);
        }
    }
}

/// A warning for a backup whose connection to another host is not encrypted.
pub(crate) async fn plaintext_warning(
    url: &PgUrl,
    conn: &mut sqlx::PgConnection,
) -> Option<String> {
    if url.is_local() {
        return None;
    }
    let ssl: Option<bool> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(conn)
            .await
            .ok()
            .flatten();
    (ssl != Some(true)).then(|| {
        format!(
            "the connection to {} is not encrypted (TLS was not used): the data crossed the \
             network in plaintext; require TLS with ?sslmode=verify-full (or require)",
            url.options.get_host()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_decode_and_never_show() {
        let u: PgUrl = "postgres://me:p%40ss+word@127.0.0.1:5432/db"
            .parse()
            .unwrap();
        assert_eq!(u.password.as_deref(), Some("p@ss+word"));
        assert!(!format!("{u:?} {u}").contains("ss+word"));
        assert_eq!(u.database(), "db");
        assert!("mysql://x".parse::<PgUrl>().is_err());
    }

    #[test]
    fn filters() {
        let f = Filter {
            include_schemas: vec!["app*".into()],
            exclude_tables: vec!["app.tmp_*".into()],
            ..Default::default()
        };
        assert!(f.table_included("app", "users"));
        assert!(!f.table_included("app", "tmp_x"));
        assert!(!f.table_included("public", "users"));
    }
}
