//! Connection and selection options.

use std::fmt;
use std::str::FromStr;

use dbbackup_core::{selected, Error, ErrorKind, Result};
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
        Ok(MyUrl {
            options,
            redacted,
            database,
            password: dbbackup_core::url_password(url),
        })
    }
}

impl MyUrl {
    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The same server without a default database (for CREATE / DROP DATABASE).
    pub(crate) fn server(&self) -> MySqlConnectOptions {
        self.options.clone().database("")
    }
}

/// Which tables a backup covers; patterns (`*`, `?`) match the table name.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these tables (empty: all).
    pub include_tables: Vec<String>,
    /// Never these tables.
    pub exclude_tables: Vec<String>,
}

impl Filter {
    /// Whether `table` is included.
    pub fn table_included(&self, table: &str) -> bool {
        selected(&self.include_tables, &self.exclude_tables, table)
    }
}
