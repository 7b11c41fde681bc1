//! Which engine handles a source or target URL.

use std::sync::Arc;

use dbbackup_core::{EntryRecord, Error, ErrorKind, RestoreTarget, Result, Sink, Source};
use dbbackup_mssql::statement::Recovery;
use dbbackup_mssql::{MssqlSource, MssqlTarget, NativeKind, NativeSource, NativeTarget, SharedDir};
use dbbackup_mysql::{MyDumpSource, MySqlSource, MySqlTarget};
use dbbackup_postgres::{PgDumpSource, PgSource, PgTarget};
use dbbackup_sqlite::{SqliteSource, SqliteTarget};

fn scheme(url: &str) -> &str {
    url.split_once(':').map(|(s, _)| s).unwrap_or("")
}

/// SQL Server's own BACKUP/RESTORE, for `--engine-tool server-backup`.
#[derive(Debug, Default, Clone)]
pub struct ServerBackup {
    /// `SERVER_PATH=LOCAL_PATH`.
    pub shared_dir: Option<String>,
    /// full, differential or log.
    pub kind: Option<String>,
    /// Restore: move files into this server directory.
    pub data_dir: Option<String>,
    /// Restore: leave the database restoring.
    pub no_recovery: bool,
    /// PostgreSQL restore: leave out owners and privileges.
    pub skip_privileges: bool,
    /// MySQL restore: INSERT statements instead of `LOAD DATA LOCAL INFILE`.
    pub no_local_infile: bool,
}

impl ServerBackup {
    fn shared_dir(&self) -> Result<SharedDir> {
        let raw = self.shared_dir.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "SQL Server server backups need --shared-dir SERVER_PATH=LOCAL_PATH: a directory the server writes its backup file to and dbbackup reads here",
            )
        })?;
        let (server, local) = raw.split_once('=').filter(|(a, b)| !a.is_empty() && !b.is_empty()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("--shared-dir {raw:?}: give SERVER_PATH=LOCAL_PATH, e.g. /var/opt/mssql/backup=/mnt/mssql-backup"),
            )
        })?;
        Ok(SharedDir::new(server, local))
    }

    fn kind(&self) -> Result<NativeKind> {
        match self.kind.as_deref().unwrap_or("full") {
            "full" => Ok(NativeKind::Full),
            "differential" | "diff" => Ok(NativeKind::Differential),
            "log" => Ok(NativeKind::Log),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("--backup-kind {other:?}: use full, differential or log"),
            )),
        }
    }
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
    /// PostgreSQL: owners and privileges too.
    pub privileges: bool,
}

impl Selection {
    fn is_everything(&self) -> bool {
        self.include_tables.is_empty()
            && self.exclude_tables.is_empty()
            && self.include_schemas.is_empty()
            && self.exclude_schemas.is_empty()
            && !self.schema_only
            && !self.data_only
            && !self.privileges
    }

    fn has_schemas(&self) -> bool {
        !self.include_schemas.is_empty() || !self.exclude_schemas.is_empty()
    }
}

/// The source for `url`; `tool` is `native`, `dump` or `server-backup`; `repo` is where the
/// backup goes (SQL Server log and differential backups find their parent there).
pub fn source(
    url: &str,
    tool: &str,
    jobs: usize,
    select: &Selection,
    server: &ServerBackup,
    repo: Arc<dyn Sink>,
) -> Result<Arc<dyn Source>> {
    if tool != "native" && tool != "dump" && tool != "server-backup" {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("--engine-tool must be native, dump or server-backup, not {tool:?}"),
        ));
    }
    let is_mssql = matches!(scheme(url), "mssql" | "sqlserver");
    if tool == "server-backup" && !is_mssql {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--engine-tool server-backup is SQL Server's BACKUP DATABASE; for this database use native or dump",
        ));
    }
    if is_mssql && tool == "dump" {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "SQL Server has no dump tool mode; use native (a logical backup of the tables) or server-backup (BACKUP DATABASE with --shared-dir)",
        ));
    }
    if select.schema_only && select.data_only {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--schema-only and --data-only exclude each other; give at most one",
        ));
    }
    if tool != "native" && !select.is_everything() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--include-table, --exclude-table, --include-schema, --exclude-schema, --schema-only and --data-only apply to the native engine; drop them or --engine-tool dump",
        ));
    }
    if select.privileges && !matches!(scheme(url), "postgres" | "postgresql") {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "--privileges is for PostgreSQL backups; drop it",
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
                    .data_only(select.data_only)
                    .with_privileges(select.privileges),
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
        "mssql" | "sqlserver" => {
            if tool == "server-backup" {
                return Ok(Arc::new(
                    NativeSource::new(url, server.shared_dir()?)?
                        .kind(server.kind()?)
                        .chain_in(repo),
                ));
            }
            if select.has_schemas() {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    "for SQL Server select schemas with --include-table 'SCHEMA.*' / --exclude-table 'SCHEMA.*'",
                ));
            }
            Ok(Arc::new(
                MssqlSource::new(url)?
                    .with_filter(dbbackup_mssql::Filter {
                        include_tables: select.include_tables.clone(),
                        exclude_tables: select.exclude_tables.clone(),
                    })
                    .schema_only(select.schema_only)
                    .data_only(select.data_only),
            ))
        }
        _ => Err(unknown(url)),
    }
}

/// The restore target for `url`, for a backup taken by `engine`.
pub fn target(
    url: &str,
    create: bool,
    jobs: usize,
    engine: &str,
    server: &ServerBackup,
) -> Result<Arc<dyn RestoreTarget>> {
    match scheme(url) {
        // A SQLite restore always creates a new file.
        "sqlite" => Ok(Arc::new(url.parse::<SqliteTarget>()?)),
        "postgres" | "postgresql" => Ok(Arc::new(
            PgTarget::new(url)?
                .create(create)
                .with_jobs(jobs)
                .skip_privileges(server.skip_privileges),
        )),
        "mysql" | "mariadb" => Ok(Arc::new(
            MySqlTarget::new(url)?
                .create(create)
                .with_jobs(jobs)
                .local_infile(!server.no_local_infile),
        )),
        "mssql" | "sqlserver" if engine == dbbackup_mssql::NATIVE_ENGINE => {
            let mut t = NativeTarget::new(url, server.shared_dir()?)?;
            if let Some(d) = &server.data_dir {
                t = t.data_dir(d.clone());
            }
            if server.no_recovery {
                t = t.recovery(Recovery::NoRecovery);
            }
            Ok(Arc::new(t))
        }
        "mssql" | "sqlserver" => Ok(Arc::new(MssqlTarget::new(url)?.create(create))),
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

    fn src(url: &str, tool: &str, sel: &Selection) -> Result<Arc<dyn Source>> {
        source(
            url,
            tool,
            1,
            sel,
            &ServerBackup::default(),
            Arc::new(dbbackup_core::MemorySink::new()),
        )
    }

    #[test]
    fn unknown_urls_and_missing_engines_are_clear() {
        let all = Selection::default();
        let e = src("ftp://x", "native", &all).err().unwrap();
        assert!(e.to_string().contains("sqlite://"), "{e}");
        let e = src("mssql://u:secret@h/db", "dump", &all).err().unwrap();
        assert!(e.to_string().contains("server-backup"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = src("mssql://u:secret@h/db", "server-backup", &all)
            .err()
            .unwrap();
        assert!(e.to_string().contains("--shared-dir"), "{e}");
        assert!(src("mssql://u:secret@h/db", "native", &all).is_ok());
        let e = src("postgres://h/db", "server-backup", &all).err().unwrap();
        assert!(e.to_string().contains("BACKUP DATABASE"), "{e}");
        let e = src("oracle://u:secret@h/db", "native", &all).err().unwrap();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn selections_the_engine_cannot_honour_are_refused() {
        let some = Selection {
            include_tables: vec!["t*".into()],
            ..Selection::default()
        };
        let e = src("sqlite:///tmp/x.db", "native", &some).err().unwrap();
        assert!(e.to_string().contains("whole database"), "{e}");
        let e = src("postgres://h/db", "dump", &some).err().unwrap();
        assert!(e.to_string().contains("native engine"), "{e}");
        let schemas = Selection {
            include_schemas: vec!["s".into()],
            ..Selection::default()
        };
        let e = src("mysql://h/db", "native", &schemas).err().unwrap();
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
        let both = Selection {
            schema_only: true,
            data_only: true,
            ..Selection::default()
        };
        let e = src("postgres://h/db", "native", &both).err().unwrap();
        assert!(e.to_string().contains("exclude each other"), "{e}");
        let privs = Selection {
            privileges: true,
            ..Selection::default()
        };
        let e = src("mysql://h/db", "native", &privs).err().unwrap();
        assert!(
            e.to_string().contains("--privileges is for PostgreSQL"),
            "{e}"
        );
        assert!(src("postgres://h/db", "native", &privs).is_ok());
        assert!(src("postgres://h/db", "native", &some).is_ok());
        assert!(src("mysql://h/db", "native", &some).is_ok());
    }
}
