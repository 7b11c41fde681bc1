//! The `dbbackup` command line: a thin shell over the dbbackup library.
//!
//! Exit codes: `0` success, `1` failure, `2` usage error (bad flags, missing options, invalid
//! input), `3` a backup is damaged (verification found corruption). Options come from flags, then
//! `DBBACKUP_*` environment variables, then the `--config` TOML file, in that order of precedence.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dbbackup_core::{
    parse_keep_within, plan_grouped, Backup, BackupSelector, BackupStatus, CancellationToken,
    CatalogEntry, Error, ErrorKind, GroupBy, KeepPolicy, Key, MasterKey, Repository, Restore,
    Result, Sink, SkippedBackup, Verify, Zstd,
};
use serde_json::json;

use crate::cli::{Cli, Command, KeyArgs};
use crate::config::{pick, pick_list, required, FileConfig};
use crate::output::{human, Mode, Progress};

mod cli;
mod config;
mod engines;
mod output;

/// Runs the command line with `args` (including the program name) and returns the exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
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
    let file = match FileConfig::load(cli.config.as_deref()) {
        Ok(f) => f,
        Err(e) => return report_error(&e, cli.json),
    };
    let json = cli.json || file.json.unwrap_or(false);
    match runtime.block_on(dispatch(cli.command, &file, json)) {
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

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

fn load_key(args: &KeyArgs, file: &FileConfig) -> Result<Option<Key>> {
    key_from(
        pick(&args.passphrase_env, &file.passphrase_env),
        pick(&args.key_file, &file.key_file),
    )
}

fn key_from(pass_env: Option<String>, key_file: Option<std::path::PathBuf>) -> Result<Option<Key>> {
    match (pass_env, key_file) {
        (Some(_), Some(_)) => Err(invalid(
            "give either a passphrase variable or a key file, not both",
        )),
        (Some(var), None) => {
            // A passphrase typed where the variable's name belongs must not be printed back.
            let is_name = !var.is_empty()
                && var.len() <= 128
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !var.as_bytes()[0].is_ascii_digit();
            if !is_name {
                return Err(invalid(
                    "--passphrase-env takes the NAME of an environment variable that holds the \
                     passphrase (letters, digits and _), and what was given is not a variable \
                     name (it is not shown, in case it is the passphrase itself): \
                     export BK_PASS='...' and pass --passphrase-env BK_PASS",
                ));
            }
            let p = std::env::var(&var)
                .map_err(|_| invalid(format!("the passphrase variable {var} is not set")))?;
            if p.is_empty() {
                return Err(invalid(format!("the passphrase variable {var} is empty")));
            }
            Ok(Some(Key::passphrase(p)))
        }
        (None, Some(path)) => Ok(Some(Key::raw(MasterKey::from_file(&path).map_err(
            |e| {
                if e.kind() == ErrorKind::NotFound {
                    invalid(format!("the key file {} does not exist", path.display()))
                } else {
                    e
                }
            },
        )?))),
        (None, None) => Ok(None),
    }
}

fn allow_unencrypted(args: &KeyArgs, file: &FileConfig) -> bool {
    args.allow_unencrypted || file.allow_unencrypted.unwrap_or(false)
}

/// Newer backups that `latest` passed over are shown, never only logged: silently using older
/// data is a failure mode.
fn report_skipped(skipped: &[SkippedBackup], json: bool) {
    for s in skipped {
        if json {
            eprintln!(
                "{}",
                json!({"event": "skipped", "backup_id": s.backup_id, "kind": s.kind, "reason": s.reason})
            );
        } else {
            eprintln!(
                "dbbackup: warning: passing over the newer backup {}: {}",
                s.backup_id, s.reason
            );
        }
    }
}

fn open_repo(url: Option<String>) -> Result<Arc<dyn Sink>> {
    let url = required(url, "repo", "DBBACKUP_REPO")?;
    dbbackup_storage::open_sink(&url)
}

fn parse_labels(items: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(invalid(format!("{flag} {l:?} must look like KEY=VALUE"))),
        })
        .collect()
}

fn parse_selector(s: Option<String>) -> Result<BackupSelector> {
    s.as_deref().unwrap_or("latest").parse()
}

fn cancel_on_ctrl_c() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("dbbackup: interrupted; stopping (nothing half-done is kept)");
            t.cancel();
        }
    });
    token
}

async fn dispatch(command: Command, f: &FileConfig, json: bool) -> Result<ExitCode> {
    let mode = Mode::pick(json);
    match command {
        Command::Backup(a) => {
            let source_url = required(pick(&a.source, &f.source), "source", "DBBACKUP_SOURCE")?;
            let sink = open_repo(pick(&a.repo.repo, &f.repo))?;
            let tool = pick(&a.engine_tool, &f.engine_tool).unwrap_or_else(|| "native".into());
            let jobs = pick(&a.jobs, &f.jobs).unwrap_or(2);
            let select = engines::Selection {
                include_tables: pick_list(&a.select.include_tables, &f.include_table),
                exclude_tables: pick_list(&a.select.exclude_tables, &f.exclude_table),
                include_schemas: pick_list(&a.select.include_schemas, &f.include_schema),
                exclude_schemas: pick_list(&a.select.exclude_schemas, &f.exclude_schema),
                schema_only: a.select.schema_only || f.schema_only.unwrap_or(false),
                data_only: a.select.data_only || f.data_only.unwrap_or(false),
                privileges: a.select.privileges || f.privileges.unwrap_or(false),
            };
            let server = engines::ServerBackup {
                shared_dir: pick(&a.shared_dir, &f.shared_dir),
                kind: pick(&a.backup_kind, &f.backup_kind),
                ..engines::ServerBackup::default()
            };
            let source = engines::source(&source_url, &tool, jobs, &select, &server, sink.clone())?;
            let key = load_key(&a.key, f)?;
            let mut b = Backup::builder()
                .source_arc(source)
                .sink(sink)
                .allow_unencrypted(allow_unencrypted(&a.key, f))
                .subscribe(Progress::new(mode))
                .cancel_token(cancel_on_ctrl_c());
            match pick(&a.compression, &f.compression)
                .as_deref()
                .unwrap_or("zstd:3")
            {
                "none" => {}
                "zstd" => b = b.transform(Zstd::new(3)),
                other => {
                    let level = other
                        .strip_prefix("zstd:")
                        .and_then(|l| l.parse::<i32>().ok())
                        .filter(|l| (1..=22).contains(l))
                        .ok_or_else(|| {
                            invalid(format!(
                                "--compression {other:?}: use zstd, zstd:LEVEL (1-22) or none"
                            ))
                        })?;
                    b = b.transform(Zstd::new(level));
                }
            }
            if let Some(j) = pick(&a.jobs, &f.jobs) {
                b = b.jobs(j);
            }
            for (k, v) in parse_labels(&pick_list(&a.labels, &f.label), "--label")? {
                b = b.label(k, v);
            }
            let encrypted = key.is_some();
            if let Some(k) = key {
                b = b.encryption(k);
            } else if !json {
                eprintln!("dbbackup: warning: this backup is not encrypted (give --passphrase-env or --key-file)");
            }
            let report = b.build()?.run().await?;
            let m = &report.manifest;
            if json {
                println!(
                    "{}",
                    json!({"ok": true, "command": "backup", "backup_id": m.backup_id, "engine": m.source.engine,
                           "database": m.source.database, "entries": m.entries.len(),
                           "rows": m.entries.iter().filter_map(|e| e.rows).sum::<u64>(), "raw_bytes": m.raw_size(),
                           "stored_bytes": m.stored_size(), "duration_seconds": report.elapsed.as_secs_f64(),
                           "encrypted": encrypted, "labels": m.labels, "warnings": m.warnings})
                );
            } else {
                println!(
                    "backup {} committed: {} entries, {} -> {} stored in {:.1}s{}",
                    m.backup_id,
                    m.entries.len(),
                    human(m.raw_size()),
                    human(m.stored_size()),
                    report.elapsed.as_secs_f64(),
                    if encrypted { ", encrypted" } else { "" }
                );
                for w in &m.warnings {
                    println!("warning: {w}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(a) => {
            let sink = open_repo(pick(&a.repo.repo, &f.repo))?;
            let target_url = required(pick(&a.target, &f.target), "target", "DBBACKUP_TARGET")?;
            let selector = parse_selector(pick(&a.backup, &f.backup))?;
            let create = a.create || f.create.unwrap_or(false);
            let key = load_key(&a.key, f)?;
            let allow = allow_unencrypted(&a.key, f);
            let resolved = Repository::new(sink.clone())
                .with_key(key.clone())
                .allow_unencrypted(allow)
                .resolve(&selector)
                .await?;
            report_skipped(&resolved.skipped, json);
            let manifest = resolved.manifest;
            let server = engines::ServerBackup {
                shared_dir: pick(&a.shared_dir, &f.shared_dir),
                data_dir: pick(&a.data_dir, &f.data_dir),
                no_recovery: a.no_recovery || f.no_recovery.unwrap_or(false),
                skip_privileges: a.skip_privileges || f.skip_privileges.unwrap_or(false),
                no_local_infile: a.no_local_infile || f.no_local_infile.unwrap_or(false),
                ..engines::ServerBackup::default()
            };
            let target = engines::target(
                &target_url,
                create,
                pick(&a.jobs, &f.jobs).unwrap_or(2),
                &manifest.source.engine,
                &server,
            )?;
            let mut r = Restore::builder()
                .sink(sink)
                .allow_unencrypted(allow)
                .target_arc(target)
                .backup(BackupSelector::Id(manifest.backup_id.clone()))
                .subscribe(Progress::new(mode))
                .cancel_token(cancel_on_ctrl_c());
            if let Some(filter) =
                engines::table_filter(&manifest.source.engine, pick_list(&a.tables, &f.tables))?
            {
                r = r.filter(filter);
            }
            if let Some(j) = pick(&a.jobs, &f.jobs) {
                r = r.jobs(j);
            }
            if let Some(k) = key {
                r = r.key(k);
            }
            let report = r.build()?.run().await?;
            if json {
                println!(
                    "{}",
                    json!({"ok": true, "command": "restore", "backup_id": report.backup_id, "entries": report.entries,
                           "raw_bytes": report.raw_bytes, "rows": report.rows,
                           "duration_seconds": report.elapsed.as_secs_f64(), "warnings": report.warnings,
                           "skipped": resolved.skipped})
                );
            } else {
                println!(
                    "restored backup {} into {}: {} entries, {} in {:.1}s",
                    report.backup_id,
                    dbbackup_storage::redact(&target_url),
                    report.entries,
                    human(report.raw_bytes),
                    report.elapsed.as_secs_f64()
                );
                for w in &report.warnings {
                    println!("warning: {w}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List(a) => {
            let key = load_key(&a.key, f)?;
            let repo = Repository::new(open_repo(pick(&a.repo.repo, &f.repo))?)
                .with_key(key)
                .allow_unencrypted(allow_unencrypted(&a.key, f));
            repo.check_exists().await?;
            let catalog = repo.catalog().await?;
            let status_word = |e: &CatalogEntry| match &e.status {
                BackupStatus::Trusted => "ok",
                BackupStatus::Unchecked => "unchecked",
                BackupStatus::Refused { kind, .. } if kind == "corrupt" => "DAMAGED",
                BackupStatus::Refused { .. } => "REFUSED",
            };
            if json {
                let items: Vec<_> = catalog
                    .entries
                    .iter()
                    .map(|e| {
                        let (kind, reason) = match &e.status {
                            BackupStatus::Refused { kind, reason } => (Some(kind), Some(reason)),
                            _ => (None, None),
                        };
                        let mut item = json!({"backup_id": e.backup_id, "status": status_word(e).to_lowercase(),
                                              "problem_kind": kind, "problem": reason});
                        if let Some(m) = &e.manifest {
                            let extra = json!({"started_at": m.started_at.to_string(),
                               "finished_at": m.finished_at.to_string(), "engine": m.source.engine,
                               "server_version": m.source.server_version, "database": m.source.database,
                               "entries": m.entries.len(),
                               "rows": m.entries.iter().filter_map(|e| e.rows).sum::<u64>(), "raw_bytes": m.raw_size(), "stored_bytes": m.stored_size(),
                               "labels": m.labels, "parent": m.parent,
                               "encrypted": m.encryption.is_some(),
                               "key_id": m.encryption.as_ref().map(|e| e.key_id.clone())});
                            if let (Some(o), Some(x)) = (item.as_object_mut(), extra.as_object()) {
                                o.extend(x.clone());
                            }
                        }
                        item
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"ok": true, "command": "list", "encrypted": catalog.config.as_ref().is_some_and(|c| c.is_encrypted()),
                           "backups": items})
                );
            } else if catalog.entries.is_empty() {
                println!("no backups yet");
            } else {
                println!(
                    "{:<29} {:<9} {:<10} {:<20} {:>7} {:>11} {:>11}  labels",
                    "id", "status", "engine", "database", "entries", "size", "stored"
                );
                for e in &catalog.entries {
                    match &e.manifest {
                        Some(m) => {
                            let labels: Vec<String> =
                                m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            println!(
                                "{:<29} {:<9} {:<10} {:<20} {:>7} {:>11} {:>11}  {}",
                                m.backup_id,
                                status_word(e),
                                m.source.engine,
                                m.source.database.as_deref().unwrap_or("-"),
                                m.entries.len(),
                                human(m.raw_size()),
                                human(m.stored_size()),
                                labels.join(",")
                            );
                        }
                        None => println!("{:<29} {:<9}", e.backup_id, status_word(e)),
                    }
                }
                for e in &catalog.entries {
                    if let BackupStatus::Refused { reason, .. } = &e.status {
                        println!("{} {}: {reason}", status_word(e), e.backup_id);
                    }
                }
                if catalog
                    .entries
                    .iter()
                    .any(|e| e.status == BackupStatus::Unchecked)
                {
                    println!("(unchecked: encrypted; give the key to authenticate them)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(a) => {
            let sink = open_repo(pick(&a.repo.repo, &f.repo))?;
            let key = load_key(&a.key, f)?;
            let allow = allow_unencrypted(&a.key, f);
            let repo = Repository::new(sink.clone())
                .with_key(key.clone())
                .allow_unencrypted(allow);
            let which = pick(&a.backup, &f.backup).unwrap_or_else(|| "latest".into());
            let mut ok = Vec::new();
            let mut failed: Vec<Error> = Vec::new();
            // The repository itself first: a missing repository is an error, a damaged config
            // is damage.
            let mut selectors: Vec<BackupSelector> = Vec::new();
            match repo.check().await {
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(e),
                Err(e) => {
                    if !json {
                        println!("FAILED  repository config: {e}");
                    }
                    failed.push(e);
                }
                Ok(_) => {}
            }
            if failed.iter().all(|e| e.kind() != ErrorKind::WrongKey) {
                if which == "all" {
                    selectors = repo
                        .backup_ids()
                        .await?
                        .into_iter()
                        .map(BackupSelector::Id)
                        .collect();
                } else {
                    let sel: BackupSelector = which.parse()?;
                    match repo.resolve(&sel).await {
                        Ok(r) => {
                            for s in &r.skipped {
                                let e = Error::new(
                                    ErrorKind::Corrupt,
                                    format!(
                                        "newer than the latest usable backup, and refused: {}",
                                        s.reason
                                    ),
                                )
                                .with_backup(s.backup_id.clone());
                                if !json {
                                    println!("FAILED  {}: {e}", s.backup_id);
                                }
                                failed.push(e);
                            }
                            selectors.push(BackupSelector::Id(r.manifest.backup_id));
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound && failed.is_empty() => {
                            if !json {
                                println!("no backups to verify");
                            }
                        }
                        Err(e) => {
                            if !json {
                                println!("FAILED  {}: {e}", e.backup().unwrap_or(&which));
                            }
                            failed.push(e);
                        }
                    }
                }
            }
            for sel in &selectors {
                let mut v = Verify::builder()
                    .sink(sink.clone())
                    .backup(sel.clone())
                    .allow_unencrypted(allow)
                    .subscribe(Progress::new(mode));
                if let Some(k) = &key {
                    v = v.key(k.clone());
                }
                match v.build()?.run().await {
                    Ok(r) => {
                        if !json {
                            println!(
                                "ok      {}: {} entries, {} checked",
                                r.backup_id,
                                r.entries,
                                human(r.raw_bytes)
                            );
                        }
                        ok.push(json!({"backup_id": r.backup_id, "entries": r.entries, "raw_bytes": r.raw_bytes,
                                       "stored_bytes": r.stored_bytes, "duration_seconds": r.elapsed.as_secs_f64()}));
                    }
                    Err(e) => {
                        if !json {
                            println!("FAILED  {}: {e}", e.backup().unwrap_or(&sel.to_string()));
                        }
                        failed.push(e);
                    }
                }
            }
            let code = if failed.iter().any(|e| e.kind() == ErrorKind::Corrupt) {
                3
            } else if failed.is_empty() {
                0
            } else {
                1
            };
            if json {
                let failures: Vec<_> = failed
                    .iter()
                    .map(|e| json!({"backup_id": e.backup(), "entry": e.entry(), "object": e.object(), "kind": e.kind().to_string(), "error": e.to_string()}))
                    .collect();
                println!(
                    "{}",
                    json!({"ok": failed.is_empty(), "command": "verify", "verified": ok, "failed": failures})
                );
            } else if which == "all" && selectors.is_empty() && failed.is_empty() {
                println!("no backups to verify");
            }
            Ok(ExitCode::from(code))
        }
        Command::Prune(a) => {
            let key = load_key(&a.key, f)?;
            let repo = Repository::new(open_repo(pick(&a.repo.repo, &f.repo))?)
                .with_key(key)
                .allow_unencrypted(allow_unencrypted(&a.key, f));
            repo.check_exists().await?;
            let offset = match pick(&a.utc_offset, &f.utc_offset) {
                None => 0,
                Some(o) => time::UtcOffset::parse(
                    &o,
                    time::macros::format_description!(
                        "[offset_hour sign:mandatory]:[offset_minute]"
                    ),
                )
                .map_err(|_| {
                    invalid(format!(
                        "--utc-offset {o:?}: use a form like +02:00 or -05:30"
                    ))
                })?
                .whole_seconds(),
            };
            let policy = KeepPolicy {
                keep_last: pick(&a.keep_last, &f.keep_last),
                keep_within: pick(&a.keep_within, &f.keep_within)
                    .map(|d| parse_keep_within(&d))
                    .transpose()?,
                keep_hourly: pick(&a.keep_hourly, &f.keep_hourly),
                keep_daily: pick(&a.keep_daily, &f.keep_daily),
                keep_weekly: pick(&a.keep_weekly, &f.keep_weekly),
                keep_monthly: pick(&a.keep_monthly, &f.keep_monthly),
                keep_yearly: pick(&a.keep_yearly, &f.keep_yearly),
                keep_labels: parse_labels(
                    &pick_list(&a.keep_labels, &f.keep_label),
                    "--keep-label",
                )?,
                utc_offset_seconds: offset,
            };
            let dry_run = a.dry_run || f.dry_run.unwrap_or(false);
            let catalog = repo.catalog().await?;
            let refused: Vec<SkippedBackup> = catalog.refused().collect();
            let summaries = repo.summaries().await?;
            let group_by: GroupBy = pick(&a.group_by, &f.group_by)
                .as_deref()
                .unwrap_or("source")
                .parse()?;
            let plan = plan_grouped(
                &policy,
                &summaries,
                &group_by,
                time::OffsetDateTime::now_utc(),
            )?;
            let deleted = if dry_run {
                Vec::new()
            } else {
                repo.apply(&plan).await?
            };
            if json {
                println!(
                    "{}",
                    json!({"ok": refused.is_empty(), "command": "prune", "dry_run": dry_run, "decisions": plan.decisions,
                           "deleted": deleted, "refused": refused})
                );
            } else {
                for d in &plan.decisions {
                    let action = match d.action {
                        dbbackup_core::Action::Keep => "keep  ",
                        dbbackup_core::Action::Delete => {
                            if dry_run {
                                "would delete"
                            } else {
                                "delete"
                            }
                        }
                    };
                    println!(
                        "{action:<12} {}  [{}]  {}",
                        d.backup_id,
                        d.group,
                        d.reasons.join("; ")
                    );
                }
                let n = plan.to_delete().count();
                if dry_run {
                    println!(
                        "dry run: {n} backup(s) would be deleted, {} kept",
                        plan.to_keep().count()
                    );
                } else {
                    println!(
                        "deleted {} backup(s), kept {}",
                        deleted.len(),
                        plan.to_keep().count()
                    );
                }
            }
            if !refused.is_empty() {
                for r in &refused {
                    eprintln!(
                        "dbbackup: error: backup {} was left alone, refused: {}",
                        r.backup_id, r.reason
                    );
                }
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rekey(a) => {
            let repo = Repository::new(open_repo(pick(&a.repo.repo, &f.repo))?)
                .allow_unencrypted(allow_unencrypted(&a.key, f));
            let old = load_key(&a.key, f)?.ok_or_else(|| {
                invalid("rekey needs the current key: --passphrase-env or --key-file")
            })?;
            let new = key_from(a.new_passphrase_env.clone(), a.new_key_file.clone())?.ok_or_else(
                || invalid("rekey needs the new key: --new-passphrase-env or --new-key-file"),
            )?;
            let report = repo.rekey(&old, &new).await?;
            if json {
                println!(
                    "{}",
                    json!({"ok": true, "command": "rekey", "report": report})
                );
            } else {
                println!(
                    "rekeyed {} backup(s) to key id {} ({} already used it, {} unencrypted)",
                    report.rekeyed.len(),
                    report.new_key_id,
                    report.already.len(),
                    report.unencrypted.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc(a) => {
            let repo = Repository::new(open_repo(pick(&a.repo.repo, &f.repo))?);
            let grace = match pick(&a.grace, &f.grace) {
                Some(g) => parse_keep_within(&g)?,
                None => Duration::from_secs(24 * 3600),
            };
            let report = repo.gc(grace, time::OffsetDateTime::now_utc()).await?;
            if json {
                println!("{}", json!({"ok": true, "command": "gc", "report": report}));
            } else {
                println!("removed {} leftover(s)", report.deleted.len());
                for r in &report.running {
                    println!("  left alone: backup {r} is running (its lease is fresh)");
                }
                for d in &report.deleted {
                    println!("  {d}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
