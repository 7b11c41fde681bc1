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

/// The source for `url`; `tool` is `native` or `dump`.
pub fn source(url: &str, tool: &str, jobs: usize) -> Result<Arc<dyn Source>> {
    if tool != "native" && tool != "dump" {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--engine-tool must be native or dump, not {tool:?}"),
        ));
    }
    match scheme(url) {
        "sqlite" => {
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
            Ok(Arc::new(PgSource::new(url)?.with_jobs(jobs)))
        }
        "mysql" | "mariadb" => {
            if tool == "dump" {
                return Ok(Arc::new(MyDumpSource::new(url)?));
            }
            Ok(Arc::new(MySqlSource::new(url)?.with_jobs(jobs)))
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
        let e = source("ftp://x", "native", 1).err().unwrap();
        assert!(e.to_string().contains("sqlite://"), "{e}");
        let e = source("mssql://u:secret@h/db", "native", 1).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = source("oracle://u:secret@h/db", "native", 1).err().unwrap();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
