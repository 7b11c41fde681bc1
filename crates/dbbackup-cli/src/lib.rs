//! The `dbbackup` command line: a thin shell over the dbbackup library.
//!
//! Exit codes: `0` success, `1` failure, `2` usage error (bad flags, missing options, invalid
//! input), `3` a backup is damaged (verification found corruption); `wal-fetch` exits `1` when
//! the file is not archived and `126` on every other failure (see [`commands::wal`]). Options come from flags, then
//! `DBBACKUP_*` environment variables, then the `--config` TOML file, in that order of precedence.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use dbbackup::{Error, ErrorKind, Result};
use serde_json::json;

use crate::cli::{Cli, Command};
use crate::output::Mode;

mod cli;
mod commands;
mod common;
mod config;
mod output;

/// Runs the command line with `args` (including the program name) and returns the exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // The config file's values become the parser's defaults (flag > environment > file);
    // for `daemon` and `run-job` it is the jobs file instead.
    let defaults = if config::is_jobs_command(&args) {
        None
    } else {
        config::path_in(&args)
    };
    let command = config::load(defaults.as_deref())
        .and_then(|file| config::with_defaults(Cli::command(), &file));
    let command = match command {
        Ok(c) => c,
        Err(e) => {
            let json = args.iter().any(|a| a == "--json");
            return report_error(&e, json);
        }
    };
    let parsed = command
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Ok(filter) = std::env::var("DBBACKUP_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dbbackup: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    let jobs = cli.config.clone();
    match runtime.block_on(dispatch(cli.command, json, jobs)) {
        Ok(code) => code,
        Err(e) => report_error(&e, json),
    }
}

fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::InvalidInput => 2,
        ErrorKind::Corrupt => 3,
        _ => 1,
    }
}

fn report_error(e: &Error, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            json!({"ok": false, "error": {"kind": e.kind().to_string(), "message": e.to_string(),
                   "backup_id": e.backup(), "entry": e.entry()}})
        );
    }
    eprintln!("dbbackup: error: {e}");
    ExitCode::from(exit_code(e))
}

async fn dispatch(
    command: Command,
    json: bool,
    config: Option<std::path::PathBuf>,
) -> Result<ExitCode> {
    let mode = Mode::pick(json);
    match command {
        Command::Daemon(a) => commands::daemon::daemon(a, config, json).await,
        Command::RunJob(a) => commands::daemon::run_job(a, config, json).await,
        Command::Backup(a) => commands::backup::run(a, json, mode).await,
        Command::Restore(a) => commands::restore::run(a, json, mode).await,
        Command::List(a) => commands::list::run(a, json).await,
        Command::RestoreTest(a) => commands::restore_test::run(a, json, mode).await,
        Command::Check(a) => commands::check::check(a, json).await,
        Command::Status(a) => commands::check::status(a, json).await,
        Command::Show(a) => commands::show::run(a, json).await,
        Command::Verify(a) => commands::verify::run(a, json, mode).await,
        Command::Prune(a) => commands::prune::run(a, json).await,
        Command::Rekey(a) => commands::rekey::run(a, json).await,
        Command::Gc(a) => commands::gc::run(a, json).await,
        Command::WalPush(a) => commands::wal::push(a, json).await,
        Command::WalStream(a) => commands::wal::stream(a, json).await,
        Command::BinlogStream(a) => commands::binlog::stream(a, json).await,
        Command::WalFetch(a) => match commands::wal::fetch(a, json).await {
            Ok(code) => Ok(code),
            // PostgreSQL ends recovery at a restore_command that exits 1..=125 (the file is
            // not archived) and stops at one above 125: only a missing file may end it.
            Err(e) if e.kind() == ErrorKind::NotFound => Err(e),
            Err(e) => {
                report_error(&e, json);
                Ok(ExitCode::from(126))
            }
        },
    }
}
