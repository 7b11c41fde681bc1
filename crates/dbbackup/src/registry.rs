//! The engine registry: which engine handles a URL, built from typed options. The one place the
//! scheme -> engine mapping lives.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use dbbackup_core::{
    EntryRecord, Error, ErrorKind, Filter, RestoreTarget, Result, ScratchServer, ServerBackupKind,
    SharedDir, Sink, Source,
};

/// How a backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineTool {
    /// The library's own logical backup (no client tools needed).
    #[default]
    Native,
    /// The database's dump tools (`pg_dump`/`pg_restore`, `mariadb-dump`/`mariadb`).
    Dump,
    /// The server's own backup (SQL Server `BACKUP DATABASE` / `BACKUP LOG`).
    ServerBackup,
    /// A physical base backup (PostgreSQL `pg_basebackup`; the WAL comes from `wal-push`).
    BaseBackup,
}

impl FromStr for EngineTool {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "native" => Ok(EngineTool::Native),
            "dump" => Ok(EngineTool::Dump),
            "server-backup" => Ok(EngineTool::ServerBackup),
            "basebackup" => Ok(EngineTool::BaseBackup),
            other => Err(invalid(format!(
                "--engine-tool must be native, dump, server-backup or basebackup, not {other:?}"
            ))),
        }
    }
}

impl fmt::Display for EngineTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineTool::Native => "native",
            EngineTool::Dump => "dump",
            EngineTool::ServerBackup => "server-backup",
            EngineTool::BaseBackup => "basebackup",
        })
    }
}

/// What a backup covers (`--include-table`, `--schema-only`, ...).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Which schemas and tables (schemas: PostgreSQL only).
    pub filter: Filter,
    /// Definitions only.
    pub schema_only: bool,
    /// Table data only.
    pub data_only: bool,
    /// PostgreSQL: owners and privileges too.
    pub privileges: bool,
}

impl Selection {
    fn is_everything(&self) -> bool {
        *self == Selection::default()
    }
}

/// How to open a [`Source`] with [`source`].
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Native, dump tools or the server's own backup.
    pub tool: EngineTool,
    /// Connections (entries) read at once.
    pub jobs: usize,
    /// What the backup covers (native engines).
    pub selection: Selection,
    /// SQL Server `server-backup`: the shared directory.
    pub shared_dir: Option<SharedDir>,
    /// SQL Server `server-backup`: full, differential or log.
    pub kind: ServerBackupKind,
    /// The repository the backup goes to (SQL Server differential and log backups find their
    /// parent there).
    pub repo: Option<Arc<dyn Sink>>,
    /// PostgreSQL native: back up without the objects it cannot back up yet, listing them in
    /// the manifest (default: such a backup fails naming them).
    pub allow_incomplete: bool,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            tool: EngineTool::Native,
            jobs: 2,
            selection: Selection::default(),
            shared_dir: None,
            kind: ServerBackupKind::Full,
            repo: None,
            allow_incomplete: false,
        }
    }
}

/// How to open a [`RestoreTarget`] with [`target`].
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// The engine that took the backup (`Manifest::source.engine`): picks SQL Server's
    /// server-backup target for its backups.
    pub backup_engine: Option<String>,
    /// Create the target database (dropped again if the restore fails).
    pub create: bool,
    /// Entries restored at once.
    pub jobs: usize,
    /// PostgreSQL: leave out owners and privileges.
    pub skip_privileges: bool,
    /// MySQL: load rows with `LOAD DATA LOCAL INFILE` where the server allows it (default).
    pub local_infile: bool,
    /// SQL Server server-backup restores: the shared directory.
    pub shared_dir: Option<SharedDir>,
    /// SQL Server server-backup restores: move the files into this server directory.
    pub data_dir: Option<String>,
    /// SQL Server server-backup restores: leave the database restoring (for the next log).
    pub no_recovery: bool,
    /// Rows only, by column name, into the tables of an existing (re-created, migrated)
    /// database; columns and tables it no longer has are reported.
    pub data_only: bool,
    /// With `data_only`: fail (changing nothing) instead of reporting a column or table the
    /// target no longer has.
    pub strict_columns: bool,
    /// SQLite data-only restores: copy only the tables matching these patterns (the backup is one
    /// file, so the selection happens in the target; other engines select entries with
    /// [`table_filter`]).
    pub tables: Vec<String>,
    /// PostgreSQL and MySQL, into an existing database: drop the backup's objects the target
    /// has first (`pg_restore --clean --if-exists`).
    pub clean: bool,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            backup_engine: None,
            create: false,
            jobs: 2,
            skip_privileges: false,
            local_infile: true,
            shared_dir: None,
            data_dir: None,
            no_recovery: false,
            data_only: false,
            strict_columns: false,
            tables: Vec::new(),
            clean: false,
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

/// The engines a URL scheme can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
    Mysql,
    Mssql,
}

impl Engine {
    fn of(url: &str) -> Result<Engine> {
        match url.split_once(':').map(|(s, _)| s).unwrap_or("") {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            "mysql" | "mariadb" => Ok(Engine::Mysql),
            "mssql" | "sqlserver" => Ok(Engine::Mssql),
            _ => Err(invalid(format!(
                "{} is not a database URL dbbackup knows; use sqlite://PATH, postgres://, \
                 mysql://, mariadb:// or mssql://",
                dbbackup_storage::redact(url)
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
            Engine::Mssql => "mssql",
        }
    }
}

#[allow(dead_code)]
fn not_built(engine: Engine) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "this build has no {0} engine; enable the `{0}` feature of the dbbackup crate",
            engine.name()
        ),
    )
}

/// Checks what a tool and a selection can do for an engine, before any connection.
fn check_source(engine: Engine, o: &SourceOptions) -> Result<()> {
    let select = &o.selection;
    if o.tool == EngineTool::ServerBackup && engine != Engine::Mssql {
        return Err(invalid(
            "--engine-tool server-backup is SQL Server's BACKUP DATABASE; for this database use \
             native or dump",
        ));
    }
    if o.tool == EngineTool::BaseBackup && engine != Engine::Postgres {
        return Err(invalid(
            "--engine-tool basebackup is PostgreSQL's physical base backup; for this database use \
             native or dump",
        ));
    }
    if o.tool == EngineTool::Dump && engine == Engine::Mssql {
        return Err(invalid(
            "SQL Server has no dump tool mode; use native (a logical backup of the tables) or \
             server-backup (BACKUP DATABASE with --shared-dir)",
        ));
    }
    if o.tool == EngineTool::Dump && engine == Engine::Sqlite {
        return Err(invalid(
            "the SQLite engine has no dump-tool mode; drop --engine-tool dump",
        ));
    }
    if select.schema_only && select.data_only {
        return Err(invalid(
            "--schema-only and --data-only exclude each other; give at most one",
        ));
    }
    if engine == Engine::Sqlite && !select.is_everything() {
        return Err(invalid(
            "a SQLite backup is the whole database file; drop the table, schema and \
             --schema-only/--data-only options",
        ));
    }
    if o.tool != EngineTool::Native && !select.is_everything() {
        return Err(invalid(
            "--include-table, --exclude-table, --include-schema, --exclude-schema, --schema-only \
             and --data-only apply to the native engine; drop them or --engine-tool dump",
        ));
    }
    if select.privileges && engine != Engine::Postgres {
        return Err(invalid("--privileges is for PostgreSQL backups; drop it"));
    }
    if select.filter.has_schemas() && engine == Engine::Mysql {
        return Err(invalid(
            "a MySQL backup covers the one database of the URL; --include-schema/--exclude-schema \
             are for PostgreSQL (use --include-table/--exclude-table)",
        ));
    }
    if o.allow_incomplete && (engine != Engine::Postgres || o.tool != EngineTool::Native) {
        return Err(invalid(
            "--allow-incomplete is for the native PostgreSQL engine (other engines and the dump \
             tools never leave objects out silently); drop it",
        ));
    }
    if select.filter.has_schemas() && engine == Engine::Mssql {
        return Err(invalid(
            "for SQL Server select schemas with --include-table 'SCHEMA.*' / --exclude-table \
             'SCHEMA.*'",
        ));
    }
    Ok(())
}

/// The [`Source`] for a database URL (`sqlite://`, `postgres://`, `mysql://`/`mariadb://`,
/// `mssql://`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a URL no engine knows or options the engine cannot honour;
/// [`ErrorKind::Unsupported`] for an engine this build leaves out.
pub fn source(url: &str, o: &SourceOptions) -> Result<Arc<dyn Source>> {
    let engine = Engine::of(url)?;
    check_source(engine, o)?;
    let select = &o.selection;
    match engine {
        #[cfg(feature = "sqlite")]
        Engine::Sqlite => Ok(Arc::new(url.parse::<dbbackup_sqlite::SqliteSource>()?)),
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            use dbbackup_postgres::{PgDumpSource, PgSource};
            if o.tool == EngineTool::Dump {
                return Ok(Arc::new(PgDumpSource::new(url)?));
            }
            if o.tool == EngineTool::BaseBackup {
                return Ok(Arc::new(dbbackup_postgres::PgBaseBackupSource::new(url)?));
            }
            Ok(Arc::new(
                PgSource::new(url)?
                    .with_jobs(o.jobs)
                    .with_filter(select.filter.clone())
                    .schema_only(select.schema_only)
                    .data_only(select.data_only)
                    .with_privileges(select.privileges)
                    .allow_incomplete(o.allow_incomplete),
            ))
        }
        #[cfg(feature = "mysql")]
        Engine::Mysql => {
            use dbbackup_mysql::{MyDumpSource, MySqlSource};
            if o.tool == EngineTool::Dump {
                return Ok(Arc::new(MyDumpSource::new(url)?));
            }
            Ok(Arc::new(
                MySqlSource::new(url)?
                    .with_jobs(o.jobs)
                    .with_filter(select.filter.clone())
                    .schema_only(select.schema_only)
                    .data_only(select.data_only),
            ))
        }
        #[cfg(feature = "mssql")]
        Engine::Mssql => {
            use dbbackup_mssql::{MssqlSource, ServerBackupSource};
            if o.tool == EngineTool::ServerBackup {
                let mut s =
                    ServerBackupSource::new(url, mssql_shared_dir(&o.shared_dir)?)?.kind(o.kind);
                if let Some(repo) = &o.repo {
                    s = s.chain_in(repo.clone());
                }
                return Ok(Arc::new(s));
            }
            Ok(Arc::new(
                MssqlSource::new(url)?
                    .with_filter(select.filter.clone())
                    .schema_only(select.schema_only)
                    .data_only(select.data_only),
            ))
        }
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

#[cfg(feature = "mssql")]
fn mssql_shared_dir(dir: &Option<SharedDir>) -> Result<SharedDir> {
    let d = dir.as_ref().ok_or_else(|| {
        invalid(
            "SQL Server server backups need --shared-dir SERVER_PATH=LOCAL_PATH: a directory the \
             server writes its backup file to and dbbackup reads here",
        )
    })?;
    Ok(d.clone())
}

/// The [`RestoreTarget`] for a database URL.
///
/// # Errors
/// As [`source`].
pub fn target(url: &str, o: &TargetOptions) -> Result<Arc<dyn RestoreTarget>> {
    let engine = Engine::of(url)?;
    if o.clean && !matches!(engine, Engine::Postgres | Engine::Mysql) {
        return Err(invalid(
            "--clean is for PostgreSQL and MySQL/MariaDB targets (a SQLite restore writes a new \
             file; SQL Server restores into a new database)",
        ));
    }
    match engine {
        // A SQLite restore creates a new file, or (data-only) copies rows into an existing one.
        #[cfg(feature = "sqlite")]
        Engine::Sqlite => Ok(Arc::new(
            url.parse::<dbbackup_sqlite::SqliteTarget>()?
                .data_only(o.data_only)
                .fail_on_dropped_columns(o.strict_columns)
                .tables(o.tables.clone()),
        )),
        #[cfg(feature = "postgres")]
        Engine::Postgres => Ok(Arc::new(
            dbbackup_postgres::PgTarget::new(url)?
                .create(o.create)
                .with_jobs(o.jobs)
                .skip_privileges(o.skip_privileges)
                .data_only(o.data_only)
                .fail_on_dropped_columns(o.strict_columns)
                .clean(o.clean),
        )),
        #[cfg(feature = "mysql")]
        Engine::Mysql => Ok(Arc::new(
            dbbackup_mysql::MySqlTarget::new(url)?
                .create(o.create)
                .with_jobs(o.jobs)
                .local_infile(o.local_infile)
                .data_only(o.data_only)
                .fail_on_dropped_columns(o.strict_columns)
                .clean(o.clean),
        )),
        #[cfg(feature = "mssql")]
        Engine::Mssql
            if o.backup_engine.as_deref() == Some(dbbackup_mssql::SERVER_BACKUP_ENGINE) =>
        {
            let mut t =
                dbbackup_mssql::ServerBackupTarget::new(url, mssql_shared_dir(&o.shared_dir)?)?;
            if let Some(d) = &o.data_dir {
                t = t.data_dir(d.clone());
            }
            if o.no_recovery {
                t = t.recovery(dbbackup_mssql::Recovery::NoRecovery);
            }
            Ok(Arc::new(t))
        }
        #[cfg(feature = "mssql")]
        Engine::Mssql => Ok(Arc::new(
            dbbackup_mssql::MssqlTarget::new(url)?
                .create(o.create)
                .data_only(o.data_only)
                .fail_on_dropped_columns(o.strict_columns),
        )),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// How [`scratch`] opens a scratch server for restore tests.
#[derive(Debug, Clone)]
pub struct ScratchOptions {
    /// Entries restored at once.
    pub jobs: usize,
    /// PostgreSQL: leave out owners and privileges (a scratch server without the backup's
    /// roles).
    pub skip_privileges: bool,
    /// MySQL: load rows with `LOAD DATA LOCAL INFILE` where the server allows it.
    pub local_infile: bool,
}

impl Default for ScratchOptions {
    fn default() -> Self {
        ScratchOptions {
            jobs: 2,
            skip_privileges: false,
            local_infile: true,
        }
    }
}

/// Where restore tests of `engine`'s backups create their scratch databases: the server of
/// `url` (`postgres://`, `mysql://`; its database is only where a PostgreSQL scratch database
/// is created from), or for SQLite a temporary directory (`url`, when given, is
/// `sqlite:///DIR` or a directory).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a missing or mismatched URL; [`ErrorKind::Unsupported`] for
/// an engine whose restore tests are not built (SQL Server) or that this build leaves out.
pub fn scratch(
    engine: &str,
    url: Option<&str>,
    o: &ScratchOptions,
) -> Result<Arc<dyn ScratchServer>> {
    if engine == "sqlite" {
        #[cfg(feature = "sqlite")]
        return Ok(match url {
            None => Arc::new(dbbackup_sqlite::SqliteScratch::new()),
            Some(u) => Arc::new(dbbackup_sqlite::SqliteScratch::in_dir(
                u.strip_prefix("sqlite://").unwrap_or(u),
            )),
        });
        #[cfg(not(feature = "sqlite"))]
        return Err(not_built(Engine::Sqlite));
    }
    if engine.starts_with("mssql") {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "restore tests of SQL Server backups are not built yet (no SQL Server runs where \
             dbbackup is tested); restore into a scratch database with `dbbackup restore \
             --create` and check it there",
        ));
    }
    let url = url.ok_or_else(|| {
        invalid(format!(
            "a restore test of a {engine} backup needs a scratch server: give --scratch URL (a \
             server where it may create and drop a database, e.g. {})",
            match engine {
                "mysql" => "mysql://root@127.0.0.1:3306",
                _ => "postgres://postgres@127.0.0.1:5432/postgres",
            }
        ))
    })?;
    let given = Engine::of(url)?;
    if given.name() != engine && !engine.starts_with(given.name()) {
        return Err(invalid(format!(
            "the scratch server {} is {}, the backup is {engine}: give a {engine} server",
            dbbackup_storage::redact(url),
            given.name()
        )));
    }
    match given {
        #[cfg(feature = "postgres")]
        Engine::Postgres => Ok(Arc::new(
            dbbackup_postgres::PgScratch::new(url)?
                .with_jobs(o.jobs)
                .skip_privileges(o.skip_privileges),
        )),
        #[cfg(feature = "mysql")]
        Engine::Mysql => Ok(Arc::new(
            dbbackup_mysql::MySqlScratch::new(url)?
                .with_jobs(o.jobs)
                .local_infile(o.local_infile),
        )),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// The entry filter for restoring chosen tables: entries naming a table (`meta.table`) must match
/// a pattern (`*`, `?`); schema entries always pass. `None` for no patterns.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for engines without per-table entries (SQLite).
pub fn table_filter(
    engine: &str,
    patterns: Vec<String>,
) -> Result<Option<impl Fn(&EntryRecord) -> bool + Send + Sync + 'static>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    if engine == "sqlite" {
        return Err(invalid(
            "--tables is not available for SQLite backups (they hold the database as one file); \
             restore all of it, or give --data-only to copy the rows of some tables into an \
             existing database",
        ));
    }
    Ok(Some(move |e: &EntryRecord| match e.table() {
        Some(table) => patterns
            .iter()
            .any(|p| dbbackup_core::table_pattern_matches(p, &table)),
        None => true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(url: &str, tool: &str, sel: &Selection) -> Result<Arc<dyn Source>> {
        source(
            url,
            &SourceOptions {
                tool: tool.parse()?,
                jobs: 1,
                selection: sel.clone(),
                ..SourceOptions::default()
            },
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
        assert!("sometimes".parse::<EngineTool>().is_err());
        assert!("x".parse::<SharedDir>().is_err());
        assert!("weekly".parse::<ServerBackupKind>().is_err());
    }

    #[test]
    fn selections_the_engine_cannot_honour_are_refused() {
        let some = Selection {
            filter: Filter {
                include_tables: vec!["t*".into()],
                ..Filter::default()
            },
            ..Selection::default()
        };
        let e = src("sqlite:///tmp/x.db", "native", &some).err().unwrap();
        assert!(e.to_string().contains("whole database"), "{e}");
        let e = src("postgres://h/db", "dump", &some).err().unwrap();
        assert!(e.to_string().contains("native engine"), "{e}");
        let schemas = Selection {
            filter: Filter {
                include_schemas: vec!["s".into()],
                ..Filter::default()
            },
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
