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

/// The service files libpq reads, in its order: `PGSERVICEFILE` or `~/.pg_service.conf`, then
/// `pg_service.conf` in `PGSYSCONFDIR` (Debian's default `/etc/postgresql-common`).
fn service_files() -> Vec<std::path::PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let mut files = Vec::new();
    match env("PGSERVICEFILE") {
        Some(f) => files.push(f.into()),
        None => {
            if let Some(home) = env("HOME") {
                files.push(std::path::Path::new(&home).join(".pg_service.conf"));
            }
        }
    }
    let sysconf = env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into());
    files.push(std::path::Path::new(&sysconf).join("pg_service.conf"));
    files
}

/// libpq's connection service: `?service=NAME` in the URL, or `PGSERVICE`. The service's
/// settings (`host`, `port`, `dbname`, `user`, `password`, `sslmode`, ...) fill in what the URL
/// does not say, as libpq does; the first file that defines the service is used.
fn with_service(
    url: &str,
    env_service: Option<String>,
    files: &[std::path::PathBuf],
) -> Result<String> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Ok(url.to_owned());
    };
    let in_url = parsed
        .query_pairs()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.into_owned());
    let Some(service) = in_url.or(env_service) else {
        return Ok(url.to_owned());
    };
    let header = format!("[{service}]");
    let mut settings = None;
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let entries: Vec<(String, String)> = dbbackup_core::ini_entries(&text)
            .into_iter()
            .filter(|(g, _, _)| *g == service)
            .map(|(_, k, v)| (k, v))
            .collect();
        // A section of its own, even an empty one, defines the service.
        if text.lines().any(|l| l.trim() == header) {
            settings = Some(entries);
            break;
        }
    }
    let Some(settings) = settings else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "definition of service {service:?} not found (looked in {}); define it there or \
                 drop ?service= / PGSERVICE",
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let bad = |what: &str| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("service {service:?}: cannot use its {what}"),
        )
    };
    let keep: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "service")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = keep.clone();
    for (k, v) in settings {
        match k.as_str() {
            "host" | "hostaddr" if parsed.host_str().is_none_or(str::is_empty) => {
                parsed.set_host(Some(&v)).map_err(|_| bad("host"))?;
            }
            "port" if parsed.port().is_none() => {
                let p: u16 = v.parse().map_err(|_| bad("port"))?;
                parsed.set_port(Some(p)).map_err(|_| bad("port"))?;
            }
            "dbname" if parsed.path().trim_start_matches('/').is_empty() => {
                parsed.set_path(&format!("/{v}"))
            }
            "user" if parsed.username().is_empty() => {
                parsed.set_username(&v).map_err(|_| bad("user"))?;
            }
            "password" if parsed.password().is_none() => {
                parsed.set_password(Some(&v)).map_err(|_| bad("password"))?;
            }
            "host" | "hostaddr" | "port" | "dbname" | "user" | "password" => {}
            other if !keep.iter().any(|(k, _)| k == other) => query.push((k, v)),
            _ => {}
        }
    }
    parsed.set_query(None);
    if !query.is_empty() {
        parsed.query_pairs_mut().extend_pairs(query);
    }
    Ok(parsed.to_string())
}

impl FromStr for PgUrl {
    type Err = Error;
    fn from_str(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a postgres:// URL", redact(url)),
            ));
        }
        let expanded = with_service(
            url,
            std::env::var("PGSERVICE").ok().filter(|s| !s.is_empty()),
            &service_files(),
        )?;
        let url = expanded.as_str();
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
    fn a_service_fills_in_what_the_url_does_not_say() {
        let dir = std::env::temp_dir().join(format!("dbbackup-pgservice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let user = dir.join("user.conf");
        let system = dir.join("system.conf");
        std::fs::write(
            &user,
            "# mine\n[prod]\nhost=db.internal\nport=6432\ndbname=shop\nuser=backup\npassword=s3cr/t\nsslmode=verify-full\n",
        )
        .unwrap();
        std::fs::write(&system, "[prod]\nhost=elsewhere\n[sys]\nhost=10.0.0.9\n").unwrap();
        let files = [user.clone(), system.clone()];
        let got = with_service("postgres://?service=prod", None, &files).unwrap();
        assert_eq!(
            got,
            "postgres://backup:s3cr%2Ft@db.internal:6432/shop?sslmode=verify-full"
        );
        // The URL wins; PGSERVICE names a service when the URL does not; the first file that
        // defines it is used.
        let got = with_service(
            "postgres://admin@other/app?sslmode=disable",
            Some("prod".into()),
            &files,
        )
        .unwrap();
        assert_eq!(
            got,
            "postgres://admin:s3cr%2Ft@other:6432/app?sslmode=disable"
        );
        assert_eq!(
            with_service("postgres:///x?service=sys", None, &files).unwrap(),
            "postgres://10.0.0.9/x"
        );
        let e = with_service("postgres://?service=nope", None, &files).unwrap_err();
        assert!(e.to_string().contains("service \"nope\" not found"), "{e}");
        assert!(e.to_string().contains("user.conf"), "{e}");
        // No service: unchanged.
        assert_eq!(
            with_service("postgres://h/db", None, &files).unwrap(),
            "postgres://h/db"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

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
