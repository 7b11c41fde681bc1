//! What every engine shares about choosing objects and about the server's own backups: the
//! [`Filter`] of schemas and tables, the [`ServerBackupKind`] and the [`SharedDir`] a server
//! writes its backup files to.

use std::path::PathBuf;
use std::str::FromStr;

use crate::{glob_match, selected, Error, ErrorKind, Result};

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
    /// `schema.table` (a pattern without a `.` matches the table's name in any schema, as
    /// `pg_dump -t` does).
    pub fn table_included(&self, schema: &str, table: &str) -> bool {
        let full = format!("{schema}.{table}");
        let m = |p: &String| table_pattern_matches(p, &full);
        self.schema_included(schema)
            && (self.include_tables.is_empty() || self.include_tables.iter().any(m))
            && !self.exclude_tables.iter().any(m)
    }

    /// Fails when an include pattern matches none of `tables` (`schema.table`, or bare names
    /// in one-namespace engines): a selection that matches nothing is a mistake, not an empty
    /// backup.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming the pattern, with the tables that look like it (or
    /// some of them) and `hint` (how the engine's patterns read).
    pub fn check_includes_match(&self, tables: &[String], hint: &str) -> Result<()> {
        check_patterns_match("include table pattern", &self.include_tables, tables, hint)
    }

    /// Whether a table of a one-namespace engine is included: the table patterns match `table`.
    pub fn name_included(&self, table: &str) -> bool {
        selected(&self.include_tables, &self.exclude_tables, table)
    }
}

/// Whether a table pattern matches the table `qualified` (`schema.table`, or a bare name): a
/// pattern with a `.` matches the qualified name, one without matches the name alone.
pub fn table_pattern_matches(pattern: &str, qualified: &str) -> bool {
    if pattern.contains('.') {
        return glob_match(pattern, qualified);
    }
    let bare = qualified.rsplit_once('.').map_or(qualified, |(_, t)| t);
    glob_match(pattern, bare)
}

/// Fails when one of `patterns` matches none of `tables`, saying what the names look like.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the first such pattern (`what`: e.g. "--tables pattern").
pub fn check_patterns_match(
    what: &str,
    patterns: &[String],
    tables: &[String],
    hint: &str,
) -> Result<()> {
    for p in patterns {
        if tables.iter().any(|t| table_pattern_matches(p, t)) {
            continue;
        }
        let needle = p.trim_matches(['*', '?']).to_lowercase();
        let mut like: Vec<&String> = tables
            .iter()
            .filter(|t| !needle.is_empty() && t.to_lowercase().contains(&needle))
            .collect();
        let guess = !like.is_empty();
        if like.is_empty() {
            like = tables.iter().collect();
        }
        let shown: Vec<&str> = like.iter().take(5).map(|t| t.as_str()).collect();
        let more = if like.len() > 5 { ", ..." } else { "" };
        let names = if tables.is_empty() {
            "there are no tables".to_owned()
        } else if guess {
            format!("did you mean {}{more}?", shown.join(", "))
        } else {
            format!("the tables are named like {}{more}", shown.join(", "))
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("the {what} {p:?} matches no table: {names} ({hint})"),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod pattern_tests {
    use super::*;

    #[test]
    fn unqualified_table_patterns_match_in_any_schema_and_unmatched_ones_fail() {
        let f = Filter {
            include_tables: vec!["customers".into()],
            ..Filter::default()
        };
        assert!(f.table_included("public", "customers"));
        assert!(f.table_included("sales", "customers"));
        assert!(!f.table_included("public", "orders"));
        let f = Filter {
            include_tables: vec!["sales.*".into()],
            exclude_tables: vec!["tmp_*".into()],
            ..Filter::default()
        };
        assert!(f.table_included("sales", "x"));
        assert!(!f.table_included("public", "x"));
        assert!(!f.table_included("sales", "tmp_1"));
        let tables = vec!["public.customers".to_owned(), "public.orders".to_owned()];
        let e = check_patterns_match("include table pattern", &["Customer".into()], &tables, "h")
            .unwrap_err();
        assert!(
            e.to_string().contains("did you mean public.customers?"),
            "{e}"
        );
        let e = check_patterns_match("p", &["zzz".into()], &tables, "h").unwrap_err();
        assert!(
            e.to_string()
                .contains("named like public.customers, public.orders"),
            "{e}"
        );
        assert!(
            check_patterns_match("p", &["cust*".into(), "public.o*".into()], &tables, "h").is_ok()
        );
    }
}
