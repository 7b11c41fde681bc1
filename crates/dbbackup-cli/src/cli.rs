//! Command-line arguments. Every option also comes from `DBBACKUP_*` environment variables and
//! from the `--config` TOML file; precedence is flag > environment > file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Back up, verify and restore SQL databases.
#[derive(Debug, Parser)]
#[command(
    name = "dbbackup",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success; 1 failure; 2 usage error (bad or missing options); 3 a \
                  backup is damaged or refused (verify, restore, show); 4 a restore test or a \
                  `check` objective failed.\n\nEvery option also comes from its DBBACKUP_* \
                  environment variable (e.g. DBBACKUP_REPO) and from the --config TOML file \
                  (keys are the long option names); a flag wins over both."
)]
pub struct Cli {
    /// Machine-readable output: one JSON result on stdout, JSON progress events on stderr.
    #[arg(long, global = true, env = "DBBACKUP_JSON")]
    pub json: bool,

    /// A TOML file with defaults for any option (keys are the long option names).
    #[arg(long, global = true, env = "DBBACKUP_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up a database into a repository.
    Backup(BackupArgs),
    /// Restore a backup into a database.
    Restore(RestoreArgs),
    /// List the committed backups of a repository (damaged and refused ones marked).
    List(ListArgs),
    /// Read every object of a backup and check every checksum and authentication tag.
    Verify(VerifyArgs),
    /// Prove a backup restorable: restore it into a new scratch database (a temporary file for
    /// SQLite), compare every table's rows with the counts recorded at backup time, run the
    /// engine's integrity checks and each --check query, drop the database, and record the
    /// result (with the measured restore time) beside the backup. Exit 0 when every check
    /// passed, 4 when one failed, 1 when nothing could be tested.
    ///
    /// Example: dbbackup restore-test --repo /var/backups/app --scratch
    /// postgres://postgres@127.0.0.1/postgres --check 'select count(*) > 0 from orders'
    RestoreTest(RestoreTestArgs),
    /// Check recovery objectives, for monitoring (cron mail, Nagios, a Kubernetes CronJob): one
    /// line per objective; exit 0 when all hold, 4 when one does not.
    ///
    /// Example: dbbackup check --repo /var/backups/app --max-age 26h --max-restore-test-age 8d
    Check(CheckArgs),
    /// A repository on one screen: its backups, the newest and oldest, the last restore test
    /// and its restore time, the log archive and the recoverable windows.
    Status(StatusArgs),
    /// One backup's details: time, source, recorded position, sizes, encoding and key id,
    /// labels, parent, each entry with its rows, warnings, what it leaves out. Exit 3 when the
    /// backup is damaged or refused.
    Show(ShowArgs),
    /// Delete backups that no keep rule keeps.
    Prune(PruneArgs),
    /// Re-wrap every backup's data key under a new key or passphrase (data is not rewritten).
    Rekey(RekeyArgs),
    /// Remove what failed or interrupted backups left behind.
    Gc(GcArgs),
    /// Archive one PostgreSQL WAL file (`archive_command = 'dbbackup wal-push %p ...'`).
    WalPush(WalPushArgs),
    /// Fetch one archived WAL file (`restore_command = 'dbbackup wal-fetch %f %p ...'`): exit 1
    /// when it is not archived (the end of the archive), 126 on any other failure, which makes
    /// PostgreSQL stop recovery instead of ending it early.
    WalFetch(WalFetchArgs),
    /// Archive a MySQL/MariaDB server's binary log into the repository, as a replica, until
    /// SIGINT/SIGTERM (or with --until-now up to the server's current position): pieces closed on
    /// the server's rotate, at 16 MiB or after --piece-age. Resumes where the archive ends.
    BinlogStream(BinlogStreamArgs),
    /// Stream WAL into the repository over the replication protocol, from a physical
    /// replication slot, until SIGINT/SIGTERM: completed segments as they fill, the unfinished
    /// one every --partial-interval (the recovery point). Resumes where the archive ends.
    WalStream(WalStreamArgs),
    /// Run the jobs of the --config file (`[[job]]` tables: name, schedule, and the options of
    /// `backup` and `prune` under their long names; docs/DAEMON.md) on their schedules until SIGTERM/SIGINT; SIGHUP reloads the
    /// file (a broken file is reported and the old jobs keep running). One line per run on
    /// stdout (JSON lines with --json).
    Daemon(DaemonArgs),
    /// Run one job of a daemon's --config file once, now (for cron and CI): exit 0 when it
    /// succeeded, 1 when it failed.
    RunJob(RunJobArgs),
}

/// `daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Check the file (keys, cron expressions, secrets, repositories) and exit: 0 when valid,
    /// 2 with every problem listed.
    #[arg(long)]
    pub check_config: bool,
    /// How many runs may go at once across all jobs.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub max_concurrent: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9187): each job's last
    /// success, status, duration, sizes, failures, backup age, last restore test and its
    /// restore time, and the archive lag of its repository.
    #[arg(long, env = "DBBACKUP_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// `run-job`.
#[derive(Debug, Args)]
pub struct RunJobArgs {
    /// The job's name in the file.
    pub name: String,
    /// backup (default; then the job's retention), verify (its newest backup), prune, or
    /// restore-test (its newest backup, on the job's scratch server).
    #[arg(long, default_value = "backup", value_name = "OP")]
    pub operation: String,
}

/// The repository.
#[derive(Debug, Args, Clone)]
pub struct RepoArgs {
    /// Where backups live: a path, file://, s3://bucket/prefix?..., gs://, az://.
    #[arg(long, env = "DBBACKUP_REPO", value_name = "URL")]
    pub repo: Option<String>,
}

/// The database password, kept out of the URL (and so out of shell history and `ps`).
#[derive(Debug, Args, Clone, Default)]
pub struct PasswordArgs {
    /// Read the database password from this environment variable. Without it (and without a
    /// password in the URL) the engines' own conventions apply: PostgreSQL PGPASSWORD, then
    /// PGPASSFILE or ~/.pgpass; MySQL MYSQL_PWD, then ~/.my.cnf [client] password.
    #[arg(
        long,
        env = "DBBACKUP_PASSWORD_ENV",
        value_name = "VAR",
        conflicts_with = "password_file"
    )]
    pub password_env: Option<String>,
    /// Read the database password from this file (its first line).
    #[arg(long, env = "DBBACKUP_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

/// The key of encrypted backups.
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// Read the passphrase from this environment variable.
    #[arg(
        long,
        env = "DBBACKUP_PASSPHRASE_ENV",
        value_name = "VAR",
        conflicts_with = "key_file"
    )]
    pub passphrase_env: Option<String>,
    /// Read a raw 256-bit key (64 hex digits or base64) from this file.
    #[arg(long, env = "DBBACKUP_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Accept unencrypted backups in an encrypted repository (a repository meant to mix both).
    /// Without it they are refused: nothing vouches for an unencrypted backup, so anyone with
    /// write access to the storage could have written it.
    #[arg(long, env = "DBBACKUP_ALLOW_UNENCRYPTED")]
    pub allow_unencrypted: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// With the key, each backup is authenticated, and those it does not open are marked.
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A backup id, or latest (default).
    pub backup: Option<String>,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `backup`.
#[derive(Debug, Args)]
#[command(
    after_help = "Required: --source and --repo (as flags, DBBACKUP_SOURCE / DBBACKUP_REPO, \
    or the --config file).\n\nTable patterns (* and ?): PostgreSQL and SQL Server match \
    schema.table, and a pattern without a '.' matches the table's name in any schema; MySQL \
    matches the table name. A pattern that matches nothing is an error.\n\n\
    Examples:\n  dbbackup backup --source sqlite:///srv/app.db --repo /var/backups/app \
    --passphrase-env BK_PASS\n  dbbackup backup --source postgres://backup@db1/shop --password-env \
    PGPW --repo s3://backups/shop --key-file /etc/dbbackup/shop.key --jobs 4 --exclude-table \
    'audit.*' --label env=prod"
)]
pub struct BackupArgs {
    /// The database: sqlite://PATH, postgres://, mysql:// (mariadb://) or mssql://.
    #[arg(long, env = "DBBACKUP_SOURCE", value_name = "URL")]
    pub source: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// zstd[:LEVEL] (default zstd:3) or none.
    #[arg(long, env = "DBBACKUP_COMPRESSION", value_name = "ALGO")]
    pub compression: Option<String>,
    /// Entries produced at once (default: the CPU count, at most 4).
    #[arg(long, env = "DBBACKUP_JOBS", value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// A label K=V recorded in the backup (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// native (the library's own engine), dump (pg_dump / mariadb-dump) or server-backup
    /// (SQL Server's BACKUP DATABASE / BACKUP LOG, with --shared-dir).
    #[arg(long, env = "DBBACKUP_ENGINE_TOOL", value_name = "TOOL")]
    pub engine_tool: Option<String>,
    /// logical (default) or physical (PostgreSQL: a base backup with pg_basebackup, for
    /// point-in-time recovery; the same as --engine-tool basebackup).
    #[arg(long, env = "DBBACKUP_KIND", value_name = "KIND")]
    pub kind: Option<String>,
    /// PostgreSQL 17+ physical: an incremental base backup on top of the newest base backup in
    /// the repository (the server needs summarize_wal = on).
    #[arg(long)]
    pub incremental: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    /// SQL Server server-backup: a directory as SERVER_PATH=LOCAL_PATH (the server writes there,
    /// dbbackup reads the same files here).
    #[arg(long, env = "DBBACKUP_SHARED_DIR", value_name = "SERVER=LOCAL")]
    pub shared_dir: Option<String>,
    /// SQL Server server-backup: full (default), differential or log.
    #[arg(long, env = "DBBACKUP_BACKUP_KIND", value_name = "KIND")]
    pub backup_kind: Option<String>,
    /// PostgreSQL: back up even if the database holds objects the native engine cannot back up
    /// yet, leaving them out (listed in the manifest, by `list` and by every restore). Without
    /// it such a backup fails naming them.
    #[arg(long, env = "DBBACKUP_ALLOW_INCOMPLETE")]
    pub allow_incomplete: bool,
}

/// What a native PostgreSQL or MySQL backup covers. Table patterns use `*` and `?`; PostgreSQL
/// table patterns match `schema.table`, MySQL ones the table name.
#[derive(Debug, Args, Default)]
pub struct SelectArgs {
    /// Back up only tables matching this pattern (repeatable).
    #[arg(long = "include-table", value_name = "PATTERN")]
    pub include_tables: Vec<String>,
    /// Leave out tables matching this pattern (repeatable).
    #[arg(long = "exclude-table", value_name = "PATTERN")]
    pub exclude_tables: Vec<String>,
    /// PostgreSQL: back up only schemas matching this pattern (repeatable).
    #[arg(long = "include-schema", value_name = "PATTERN")]
    pub include_schemas: Vec<String>,
    /// PostgreSQL: leave out schemas matching this pattern (repeatable).
    #[arg(long = "exclude-schema", value_name = "PATTERN")]
    pub exclude_schemas: Vec<String>,
    /// Only the schema (object definitions), no table data.
    #[arg(long, env = "DBBACKUP_SCHEMA_ONLY", conflicts_with = "data_only")]
    pub schema_only: bool,
    /// Only table data; restore it into a database that has the schema.
    #[arg(long, env = "DBBACKUP_DATA_ONLY")]
    pub data_only: bool,
    /// PostgreSQL: also back up owners and privileges (the roles must exist where it is restored).
    #[arg(long, env = "DBBACKUP_PRIVILEGES")]
    pub privileges: bool,
}

/// `restore`.
#[derive(Debug, Args)]
#[command(
    after_help = "Required: --repo, and --target (a database URL) or, for a physical \
    PostgreSQL base backup, --data-dir.\n\nExamples:\n  dbbackup restore --repo /var/backups/app \
    --target sqlite:///srv/app-restored.db --passphrase-env BK_PASS\n  dbbackup restore --repo \
    s3://backups/shop --key-file shop.key --target postgres://postgres@staging/shop_copy --create \
    --tables 'public.orders*'\n  dbbackup restore --repo s3://backups/shop --key-file shop.key \
    --target postgres://postgres@staging/shop --clean\n  dbbackup restore --repo /var/backups/pg --key-file pg.key \
    --data-dir /srv/pg-restored --to-time 2026-12-01T17:30:00Z"
)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// A backup id, or latest (default).
    #[arg(long, env = "DBBACKUP_BACKUP", value_name = "ID")]
    pub backup: Option<String>,
    /// Where to restore: sqlite://NEW_PATH (an existing file with --data-only), postgres://,
    /// mysql://, mssql://.
    #[arg(long, env = "DBBACKUP_TARGET", value_name = "URL")]
    pub target: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Restore only tables matching this pattern (`*` and `?` wildcards; repeatable).
    #[arg(long = "tables", value_name = "PATTERN")]
    pub tables: Vec<String>,
    /// Entries restored at once (default: the CPU count, at most 4).
    #[arg(long, env = "DBBACKUP_JOBS", value_name = "N")]
    pub jobs: Option<usize>,
    /// Create the target database.
    #[arg(long, env = "DBBACKUP_CREATE")]
    pub create: bool,
    /// Rows only, into the tables of an existing database (re-created with a new schema: the
    /// schema-change sequence), by column name: a new column takes its default, sequences move
    /// past the restored rows, foreign keys are checked at the end; columns and tables the target
    /// no longer has are reported. One transaction (PostgreSQL, MySQL InnoDB, SQLite: the
    /// backed-up file is restored beside the target and its rows copied; the target's triggers
    /// do not fire).
    #[arg(long, conflicts_with = "create")]
    pub data_only: bool,
    /// With --data-only: fail, changing nothing, when a backed-up column or table no longer
    /// exists in the target, instead of reporting it.
    #[arg(long, requires = "data_only")]
    pub strict_columns: bool,
    /// PostgreSQL and MySQL/MariaDB, into an existing database: drop the backup's objects the
    /// target has first, as `pg_restore --clean --if-exists` ("refresh staging from last night's
    /// backup"). PostgreSQL: in the restore's one transaction, so a failure changes nothing;
    /// never CASCADE, so an object of the target's own that depends on one stops the restore.
    /// MySQL commits each DROP at once (it cannot roll back DDL).
    #[arg(long, env = "DBBACKUP_CLEAN", conflicts_with_all = ["create", "data_only", "data_dir"])]
    pub clean: bool,
    #[command(flatten)]
    pub key: KeyArgs,
    /// PostgreSQL: leave out the owners and privileges a backup holds (objects then belong to
    /// the restoring user).
    #[arg(long, env = "DBBACKUP_SKIP_PRIVILEGES")]
    pub skip_privileges: bool,
    /// MySQL/MariaDB: load rows with INSERT statements, never `LOAD DATA LOCAL INFILE` (for
    /// servers or proxies that refuse local files; slower).
    #[arg(long, env = "DBBACKUP_NO_LOCAL_INFILE")]
    pub no_local_infile: bool,
    /// SQL Server server-backup restores: the shared directory as SERVER_PATH=LOCAL_PATH.
    #[arg(long, env = "DBBACKUP_SHARED_DIR", value_name = "SERVER=LOCAL")]
    pub shared_dir: Option<String>,
    /// PostgreSQL physical backups: the new (or empty) data directory to restore into, set up to
    /// recover from the WAL archive. SQL Server server-backup restores: move the data and log
    /// files into this server directory.
    #[arg(long, env = "DBBACKUP_DATA_DIR", value_name = "PATH")]
    pub data_dir: Option<String>,
    /// SQL Server server-backup restores: leave the database restoring, for the next
    /// differential or log backup.
    #[arg(long, env = "DBBACKUP_NO_RECOVERY")]
    pub no_recovery: bool,
    /// Point in time (RFC 3339 with an offset, e.g. 2026-12-01T17:55:03.5+00:00, or
    /// PostgreSQL's timestamptz text). PostgreSQL physical backups: recover to it instead of the
    /// end of the WAL archive. MySQL/MariaDB: after the restore, replay the archived binlog
    /// (binlog-stream) up to it, to the second.
    #[arg(long, value_name = "TIME", conflicts_with_all = ["to_lsn", "to_name", "to_xid", "to_position"])]
    pub to_time: Option<String>,
    /// MySQL/MariaDB: after the restore, replay the archived binlog up to FILE:POS (a
    /// transaction boundary, as SHOW MASTER STATUS gives).
    #[arg(long, value_name = "FILE:POS", conflicts_with_all = ["to_lsn", "to_name", "to_xid"])]
    pub to_position: Option<String>,
    /// MariaDB: after the restore, replay the archived binlog up to and including this GTID's
    /// transaction (e.g. 0-1-1234).
    #[arg(long, value_name = "GTID", conflicts_with_all = ["to_time", "to_position", "to_lsn", "to_name", "to_xid"])]
    pub to_gtid: Option<String>,
    /// MySQL/MariaDB: after the restore, replay the archived binlog to its end.
    #[arg(long, conflicts_with_all = ["to_time", "to_position", "to_gtid"])]
    pub replay_binlog: bool,
    /// MySQL/MariaDB binlog replay: log the replayed events on the target (default: not, with
    /// sql_log_bin = 0).
    #[arg(long)]
    pub relog: bool,
    /// PostgreSQL physical backups: recover to this LSN (e.g. 0/3000060).
    #[arg(long, value_name = "LSN", conflicts_with_all = ["to_name", "to_xid"])]
    pub to_lsn: Option<String>,
    /// PostgreSQL physical backups: recover to this restore point (pg_create_restore_point).
    #[arg(long, value_name = "NAME", conflicts_with = "to_xid")]
    pub to_name: Option<String>,
    /// PostgreSQL physical backups: recover to this transaction id.
    #[arg(long, value_name = "XID")]
    pub to_xid: Option<String>,
    /// PostgreSQL physical backups: the timeline to follow (latest, the default, or a number).
    #[arg(long, value_name = "TIMELINE")]
    pub timeline: Option<String>,
}

/// `restore-test`.
#[derive(Debug, Args)]
pub struct RestoreTestArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// A backup id or latest (default).
    #[arg(long, env = "DBBACKUP_BACKUP", value_name = "ID")]
    pub backup: Option<String>,
    /// The server to create the scratch database on (postgres://..., mysql://...): the user
    /// must be allowed to create and drop databases. Not needed for SQLite (a temporary file;
    /// give a directory to put it elsewhere).
    #[arg(long, env = "DBBACKUP_SCRATCH", value_name = "URL")]
    pub scratch: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// A query that must return one row whose first column is true, run on the restored
    /// database (repeatable), e.g. 'select count(*) > 0 from orders'.
    #[arg(long = "check", value_name = "SQL")]
    pub checks: Vec<String>,
    /// Entries restored at once.
    #[arg(long, env = "DBBACKUP_JOBS", value_name = "N")]
    pub jobs: Option<usize>,
    /// PostgreSQL: leave out owners and privileges (a scratch server without the backup's roles).
    #[arg(long)]
    pub skip_privileges: bool,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The newest backup must have finished within this long (e.g. 26h).
    #[arg(long, value_name = "DUR")]
    pub max_age: Option<String>,
    /// A restore test must have passed within this long, and the last one must not have
    /// failed (e.g. 8d).
    #[arg(long, value_name = "DUR")]
    pub max_restore_test_age: Option<String>,
    /// The newest WAL / binlog piece must have been archived within this long (e.g. 5m).
    #[arg(long, value_name = "DUR")]
    pub max_archive_lag: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `verify`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit 3 when a backup is damaged or refused (the object and the reason \
    are named).\n\nExample:\n  dbbackup verify --repo s3://backups/shop --key-file shop.key \
    --backup all"
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// A backup id, latest (default) or all.
    #[arg(long, env = "DBBACKUP_BACKUP", value_name = "ID")]
    pub backup: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `prune`.
#[derive(Debug, Args)]
#[command(
    after_help = "Required: --repo and at least one keep rule. A backup is kept when any \
    rule keeps it; the newest backup and the parents of kept ones are never deleted.\n\n\
    Examples:\n  dbbackup prune --repo /var/backups/app --keep-within 7d --dry-run\n  dbbackup \
    prune --repo s3://backups/shop --key-file shop.key --keep-daily 7 --keep-weekly 4 --keep-monthly 12"
)]
pub struct PruneArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The key (needed for an encrypted repository: retention counts authenticated backups only).
    #[command(flatten)]
    pub key: KeyArgs,
    /// Which backups a policy is applied to together: source (default: engine, server and
    /// database), engine, database, label:KEY, or none (every backup in one group).
    #[arg(long, env = "DBBACKUP_GROUP_BY", value_name = "GROUP")]
    pub group_by: Option<String>,
    /// Keep the newest N backups.
    #[arg(long, env = "DBBACKUP_KEEP_LAST", value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep backups newer than this (e.g. 7d, 36h, 2w).
    #[arg(long, env = "DBBACKUP_KEEP_WITHIN", value_name = "DUR")]
    pub keep_within: Option<String>,
    /// Keep the newest backup of each of the last N hours.
    #[arg(long, env = "DBBACKUP_KEEP_HOURLY", value_name = "N")]
    pub keep_hourly: Option<usize>,
    /// ... of each of the last N days.
    #[arg(long, env = "DBBACKUP_KEEP_DAILY", value_name = "N")]
    pub keep_daily: Option<usize>,
    /// ... of each of the last N ISO weeks.
    #[arg(long, env = "DBBACKUP_KEEP_WEEKLY", value_name = "N")]
    pub keep_weekly: Option<usize>,
    /// ... of each of the last N months.
    #[arg(long, env = "DBBACKUP_KEEP_MONTHLY", value_name = "N")]
    pub keep_monthly: Option<usize>,
    /// ... of each of the last N years.
    #[arg(long, env = "DBBACKUP_KEEP_YEARLY", value_name = "N")]
    pub keep_yearly: Option<usize>,
    /// Keep every backup with this label (repeatable).
    #[arg(long = "keep-label", value_name = "K=V")]
    pub keep_labels: Vec<String>,
    /// Calendar buckets in this UTC offset, e.g. +02:00 (default UTC).
    #[arg(long, env = "DBBACKUP_UTC_OFFSET", value_name = "OFFSET")]
    pub utc_offset: Option<String>,
    /// Print the plan without deleting anything.
    #[arg(long, env = "DBBACKUP_DRY_RUN")]
    pub dry_run: bool,
}

/// `rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The current key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Read the new passphrase from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "new_key_file")]
    pub new_passphrase_env: Option<String>,
    /// Read the new raw key from this file.
    #[arg(long, value_name = "PATH")]
    pub new_key_file: Option<PathBuf>,
}

/// `wal-push`.
#[derive(Debug, Args)]
pub struct WalPushArgs {
    /// The WAL file (PostgreSQL's `%p`: its path relative to the data directory).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `binlog-stream`.
#[derive(Debug, Args)]
pub struct BinlogStreamArgs {
    /// The server: mysql://user@host (a user with REPLICATION SLAVE and REPLICATION CLIENT).
    #[arg(long, env = "DBBACKUP_SOURCE", value_name = "URL")]
    pub source: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Copy up to the server's current position, then stop (for cron).
    #[arg(long)]
    pub until_now: bool,
    /// The server id to register with; unique among the server's replicas (default 4473419).
    #[arg(long, value_name = "N")]
    pub server_id: Option<u32>,
    /// A piece is closed this long after its first event: the recovery point (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub piece_age: Option<String>,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `wal-stream`.
#[derive(Debug, Args)]
pub struct WalStreamArgs {
    /// The server: postgres://user@host/db (a user with REPLICATION, and a replication line in
    /// pg_hba.conf).
    #[arg(long, env = "DBBACKUP_SOURCE", value_name = "URL")]
    pub source: Option<String>,
    #[command(flatten)]
    pub password: PasswordArgs,
    /// The physical replication slot that keeps the server's WAL while the stream is down.
    #[arg(long, default_value = "dbbackup")]
    pub slot: String,
    /// Create the slot when it does not exist.
    #[arg(long)]
    pub create_slot: bool,
    /// How often the unfinished segment is archived: the recovery point (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub partial_interval: Option<String>,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `wal-fetch`.
#[derive(Debug, Args)]
pub struct WalFetchArgs {
    /// The archived file's name (PostgreSQL's `%f`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to write it (PostgreSQL's `%p`).
    #[arg(value_name = "DEST")]
    pub dest: PathBuf,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// `gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Only remove leftovers older than this (default 24h), so running backups are never touched.
    #[arg(long, env = "DBBACKUP_GRACE", value_name = "DUR")]
    pub grace: Option<String>,
}
