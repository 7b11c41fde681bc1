//! Connection and selection options.

use std::fmt;
use std::str::FromStr;

use dbbackup_core::{Error, ErrorKind, Result};
use sqlx::postgres::PgConnectOptions;

/// The engine name recorded in manifests.
pub const ENGINE: &str = "postgres";

/// Which schemas and tables a backup or restore covers. Patterns use `*` and `?`; table patterns
/// match `schema.table`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these schemas (empty: all).
    pub include_schemas: Vec<String>,
    /// Never these schemas.
    pub exclude_schemas: Vec<String>,
    /// Only these tables (empty: all).
    pub include_tables: Vec<String>,
    /// Never these tables.
    pub exclude_tables: Vec<String>,
}

/// `*`/`?` wildcard match (re-exported from `dbbackup-core`).
pub use dbbackup_core::glob_match as glob;

impl Filter {
    /// Whether objects of `schema` are included.
    pub fn schema_included(&self, schema: &str) -> bool {
        dbbackup_core::selected(&self.include_schemas, &self.exclude_schemas, schema)
    }

    /// Whether `schema.table` is included.
    pub fn table_included(&self, schema: &str, table: &str) -> bool {
        let full = format!("{schema}.{table}");
        self.schema_included(schema)
            && dbbackup_core::selected(&self.include_tables, &self.exclude_tables, &full)
    }
}

/// A PostgreSQL connection target, parsed from a `postgres://` or `postgresql://` URL.
#[derive(Clone)]
pub struct PgUrl {
    pub(crate) options: PgConnectOptions,
    pub(crate) redacted: String,
    pub(crate) database: String,
    pub(crate) password: Option<String>,
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
        Ok(PgUrl {
            options,
            redacted,
            database,
            password,
        })
    }
}

impl PgUrl {
    /// The same server, another database.
    pub(crate) fn with_database(&self, db: &str) -> PgConnectOptions {
        self.options.clone().database(db)
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }
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
