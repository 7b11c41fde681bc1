//! What every engine shares about choosing objects and about the server's own backups: the
//! [`Filter`] of schemas and tables, the [`ServerBackupKind`] and the [`SharedDir`] a server
//! writes its backup files to.

use std::path::PathBuf;
use std::str::FromStr;

use crate::{selected, Error, ErrorKind, Result};

/// Which schemas and tables a backup or restore covers. Patterns use `*` and `?`
/// ([`glob_match`](crate::glob_match)); an empty include list means all, an exclude always wins.
///
/// Engines with schemas (PostgreSQL, SQL Server) match table patterns against `schema.table`
/// ([`table_included`](Self::table_included)); engines with one namespace per database (MySQL)
/// against the bare table name ([`name_included`](Self::name_included)) and refuse schema
/// patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

impl Filter {
    /// Whether this filter selects everything.
    pub fn is_everything(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether it names schemas at all.
    pub fn has_schemas(&self) -> bool {
        !self.include_schemas.is_empty() || !self.exclude_schemas.is_empty()
    }

    /// Whether objects of `schema` are included.
    pub fn schema_included(&self, schema: &str) -> bool {
        selected(&self.include_schemas, &self.exclude_schemas, schema)
    }

    /// Whether `schema.table` is included: its schema is, and the table patterns match
    /// `schema.table`.
    pub fn table_included(&self, schema: &str, table: &str) -> bool {
        let full = format!("{schema}.{table}");
        self.schema_included(schema) && selected(&self.include_tables, &self.exclude_tables, &full)
    }

    /// Whether a table of a one-namespace engine is included: the table patterns match `table`.
    pub fn name_included(&self, table: &str) -> bool {
        selected(&self.include_tables, &self.exclude_tables, table)
    }
}

/// Which of the server's own backups (SQL Server `BACKUP`): the CLI's `--backup-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerBackupKind {
    /// The whole database (`BACKUP DATABASE`).
    #[default]
    Full,
    /// What changed since the last full backup (`BACKUP DATABASE ... WITH DIFFERENTIAL`),
    /// chained to it.
    Differential,
    /// The transaction log since the previous backup (`BACKUP LOG`), chained to it.
    Log,
}

impl ServerBackupKind {
    /// `full`, `differential` or `log`, as recorded in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Differential => "differential",
            Self::Log => "log",
        }
    }
}

impl std::fmt::Display for ServerBackupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServerBackupKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Self::Full),
            "differential" | "diff" => Ok(Self::Differential),
            "log" => Ok(Self::Log),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("--backup-kind {other:?}: use full, differential or log"),
            )),
        }
    }
}

/// A directory the database server and this process both reach, under two paths: the server
/// writes its backup file there, dbbackup reads it here (and the other way for a restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDir {
    /// The path in the server's file system (`/var/opt/mssql/backup`, `D:\Backup`).
    pub server: String,
    /// The same directory as this process sees it.
    pub local: PathBuf,
}

impl SharedDir {
    /// `server` on the server is `local` here.
    pub fn new(server: impl Into<String>, local: impl Into<PathBuf>) -> Self {
        Self {
            server: server.into(),
            local: local.into(),
        }
    }

    /// The server's path of `file` in this directory, with the server's separator.
    pub fn server_path(&self, file: &str) -> String {
        let windows = self.server.contains('\\') && !self.server.contains('/');
        let sep = if windows { '\\' } else { '/' };
        let base = self.server.trim_end_matches(['/', '\\']);
        format!("{base}{sep}{file}")
    }
}

impl FromStr for SharedDir {
    type Err = Error;
    /// `SERVER_PATH=LOCAL_PATH`.
    fn from_str(raw: &str) -> Result<Self> {
        let (server, local) = raw
            .split_once('=')
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "--shared-dir {raw:?}: give SERVER_PATH=LOCAL_PATH, e.g. \
                         /var/opt/mssql/backup=/mnt/mssql-backup"
                    ),
                )
            })?;
        Ok(SharedDir::new(server, local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_schemas_tables_and_names() {
        let f = Filter {
            exclude_schemas: vec!["audit".into()],
            include_tables: vec!["public.o*".into(), "orders".into()],
            ..Filter::default()
        };
        assert!(!f.is_everything() && f.has_schemas());
        assert!(f.table_included("public", "orders"));
        assert!(!f.table_included("audit", "orders"));
        assert!(!f.table_included("public", "users"));
        assert!(f.name_included("orders") && !f.name_included("order_lines"));
        assert!(Filter::default().table_included("x", "y"));
    }

    #[test]
    fn kinds_and_shared_dirs_parse() {
        assert_eq!(
            "diff".parse::<ServerBackupKind>().unwrap(),
            ServerBackupKind::Differential
        );
        assert!("weekly".parse::<ServerBackupKind>().is_err());
        let d: SharedDir = "D:\\Backup\\=/mnt/b".parse().unwrap();
        assert_eq!(d.server_path("x.bak"), "D:\\Backup\\x.bak");
        assert_eq!(SharedDir::new("/var/b/", "/m").server_path("x"), "/var/b/x");
        assert!("x".parse::<SharedDir>().is_err());
    }
}
