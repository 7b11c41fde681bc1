//! Which engine handles a source or target URL.

use std::sync::Arc;

use dbbackup_core::{EntryRecord, Error, ErrorKind, RestoreTarget, Result, Source};
use dbbackup_mysql::{MyDumpSource, MySqlSource, MySqlTarget};
use dbbackup_postgres::{PgDumpSource, PgSource, PgTarget};
use dbbackup_sqlite::{SqliteSource, SqliteTarget};

fn scheme(url: &str) -> &str {
    url.split_once(':').map(|(s, _)| s).unwrap_or("")
}

fn not_built(engine: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("the {engine} engine is not part of this dbbackup build yet; supported now: sqlite://PATH, postgres://, mysql:// (mariadb://)"),
    )
}

fn unknown(url: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!(
            "{} is not a database URL dbbackup knows; use sqlite://PATH, postgres://, mysql://, mariadb:// or mssql://",
            dbbackup_storage::redact(url)
        ),
    )
}

/// What a backup covers (`--include-table`, `--schema-only`, ...).
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Only tables matching these patterns (empty: all).
    pub include_tables: Vec<String>,
    /// Never tables matching these.
    pub exclude_tables: Vec<String>,
    /// PostgreSQL: only these schemas.
    pub include_schemas: Vec<String>,
    /// PostgreSQL: never these schemas.
    pub exclude_schemas: Vec<String>,
    /// Definitions only.
    pub schema_only: bool,
    /// Table data only.
    pub data_only: bool,
}

impl Selection {
    fn is_everything(&self) -> bool {
        self.include_tables.is_empty()
            && self.exclude_tables.is_empty()
            && self.include_schemas.is_empty()
            && self.exclude_schemas.is_empty()
            && !self.schema_only
            && !self.data_only
    }

    fn has_schemas(&self) -> bool {
        !self.include_schemas.is_empty() || !self.exclude_schemas.is_empty()
    }
}

/// The source for `url`; `tool` is `native` or `dump`.
pub fn source(url: &str, tool: &str, jobs: usize, select: &Selection) -> Result<Arc<dyn Source>> {
    if tool != "native" && tool != "dump" {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--engine-tool must be native or dump, not {tool:?}"),
        ));
    }
    if select.schema_only && select.data_only {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--schema-only and --data-only exclude each other; give at most one",
        ));
    }
    if tool == "dump" && !select.is_everything() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--include-table, --exclude-table, --include-schema, --exclude-schema, --schema-only and --data-only apply to the native engine; drop them or --engine-tool dump",
        ));
    }
    match scheme(url) {
        "sqlite" => {
            if !select.is_everything() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "a SQLite backup is the whole database file; drop the table, schema and --schema-only/--data-only options",
                ));
            }
            if tool == "dump" {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "the SQLite engine has no dump-tool mode; drop --engine-tool dump",
                ));
            }
            Ok(Arc::new(url.parse::<SqliteSource>()?))
        }
        "postgres" | "postgresql" => {
            if tool == "dump" {
                return Ok(Arc::new(PgDumpSource::new(url)?));
            }
            let filter = dbbackup_postgres::Filter {
                include_schemas: select.include_schemas.clone(),
                exclude_schemas: select.exclude_schemas.clone(),
                include_tables: select.include_tables.clone(),
                exclude_tables: select.exclude_tables.clone(),
            };
            Ok(Arc::new(
                PgSource::new(url)?
                    .with_jobs(jobs)
                    .with_filter(filter)
                    .schema_only(select.schema_only)
                    .data_only(select.data_only),
            ))
        }
        "mysql" | "mariadb" => {
            if tool == "dump" {
                return Ok(Arc::new(MyDumpSource::new(url)?));
            }
            if select.has_schemas() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "a MySQL backup covers the one database of the URL; --include-schema/--exclude-schema are for PostgreSQL (use --include-table/--exclude-table)",
                ));
            }
            let filter = dbbackup_mysql::Filter {
                include_tables: select.include_tables.clone(),
                exclude_tables: select.exclude_tables.clone(),
            };
            Ok(Arc::new(
                MySqlSource::new(url)?
                    .with_jobs(jobs)
                    .with_filter(filter)
                    .schema_only(select.schema_only)
                    .data_only(select.data_only),
            ))
        }
        "mssql" | "sqlserver" => Err(not_built("SQL Server")),
        _ => Err(unknown(url)),
    }
}

/// The restore target for `url`.
pub fn target(url: &str, create: bool, jobs: usize) -> Result<Arc<dyn RestoreTarget>> {
    match scheme(url) {
        // A SQLite restore always creates a new file.
        "sqlite" => Ok(Arc::new(url.parse::<SqliteTarget>()?)),
        "postgres" | "postgresql" => {
            Ok(Arc::new(PgTarget::new(url)?.create(create).with_jobs(jobs)))
        }
        "mysql" | "mariadb" => Ok(Arc::new(
            MySqlTarget::new(url)?.create(create).with_jobs(jobs),
        )),
        "mssql" | "sqlserver" => Err(not_built("SQL Server")),
        _ => Err(unknown(url)),
    }
}

use dbbackup_core::glob_match as glob;

/// The entry filter for `--tables`: entries naming a table (`meta.table`) must match a pattern;
/// schema entries always pass. Engines without per-table entries refuse patterns.
pub fn table_filter(
    engine: &str,
    patterns: Vec<String>,
) -> Result<Option<impl Fn(&EntryRecord) -> bool + Send + Sync + 'static>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    if engine == dbbackup_sqlite::ENGINE {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--tables is not available for SQLite backups (they hold the database as one file); restore all of it",
        ));
    }
    Ok(Some(move |e: &EntryRecord| {
        match e.meta.get("table").and_then(|t| t.as_str()) {
            Some(table) => patterns.iter().any(|p| glob(p, table)),
            None => true,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_urls_and_missing_engines_are_clear() {
        let all = Selection::default();
        let e = source("ftp://x", "native", 1, &all).err().unwrap();
        assert!(e.to_string().contains("sqlite://"), "{e}");
        let e = source("mssql://u:secret@h/db", "native", 1, &all)
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = source("oracle://u:secret@h/db", "native", 1, &all)
            .err()
            .unwrap();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn selections_the_engine_cannot_honour_are_refused() {
        let some = Selection {
            include_tables: vec!["t*".into()],
            ..Selection::default()
        };
        let e = source("sqlite:///tmp/x.db", "native", 1, &some)
            .err()
            .unwrap();
        assert!(e.to_string().contains("whole database"), "{e}");
        let e = source("postgres://h/db", "dump", 1, &some).err().unwrap();
        assert!(e.to_string().contains("native engine"), "{e}");
        let schemas = Selection {
            include_schemas: vec!["s".into()],
            ..Selection::default()
        };
        let e = source("mysql://h/db", "native", 1, &schemas).err().unwrap();
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
        let both = Selection {
            schema_only: true,
            data_only: true,
            ..Selection::default()
        };
        let e = source("postgres://h/db", "native", 1, &both).err().unwrap();
        assert!(e.to_string().contains("exclude each other"), "{e}");
        assert!(source("postgres://h/db", "native", 1, &some).is_ok());
        assert!(source("mysql://h/db", "native", 1, &some).is_ok());
    }
}
