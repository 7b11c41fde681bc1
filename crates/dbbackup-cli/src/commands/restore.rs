//! `dbbackup restore`: restore a backup into a database.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::RestoreArgs, json: bool, mode: Mode) -> Result<ExitCode> {
    let sink = open_repo(a.repo.repo.clone())?;
    let mut selector = parse_selector(a.backup.clone())?;
    let key = load_key(&a.key)?;
    let allow = allow_unencrypted(&a.key);
    let repo = Repository::new(sink.clone())
        .with_key(key.clone())
        .allow_unencrypted(allow);
    let point = recovery_target(&a)?;
    if a.data_dir.is_some() && selector == BackupSelector::Latest {
        selector = BackupSelector::Id(latest_base_backup(&repo, point.as_ref()).await?);
    } else if selector == BackupSelector::Latest && a.to_time.is_some() {
        // MySQL: the newest backup with a binlog position that ends before the time.
        let t = dbbackup::postgres::wal::parse_target_time(a.to_time.as_deref().unwrap_or(""))?;
        let catalog = repo.catalog().await?;
        let candidates: Vec<&dbbackup::Manifest> = catalog
            .trusted()
            .filter(|m| super::binlog::recorded(m).is_some())
            .collect();
        if !candidates.is_empty() {
            let pick = candidates
                .iter()
                .filter(|m| m.finished_at <= t)
                .max_by_key(|m| (m.finished_at, m.backup_id.clone()))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "no backup with a binlog position ends before {}: the oldest ends at {}",
                            rfc3339(t),
                            candidates
                                .iter()
                                .map(|m| m.finished_at)
                                .min()
                                .map(rfc3339)
                                .unwrap_or_default()
                        ),
                    )
                })?;
            selector = BackupSelector::Id(pick.backup_id.clone());
        }
    }
    let resolved = repo.resolve(&selector).await?;
    report_skipped(&resolved.skipped, json);
    let manifest = resolved.manifest;
    let physical = manifest
        .entries
        .iter()
        .any(|e| e.meta.get("format").and_then(|f| f.as_str()) == Some("base-tar"));
    let (target, target_name) = if physical {
        let dir = a.data_dir.clone().ok_or_else(|| {
            invalid(format!(
                "backup {} is a physical PostgreSQL base backup: give --data-dir DIR (a new or \
                 empty directory) to restore it into",
                manifest.backup_id
            ))
        })?;
        let target = dbbackup::postgres::PgDataDirTarget::new(&dir, restore_command(&a)?)
            .recovery_target(point)
            .timeline(a.timeline.clone())
            .with_archive(dbbackup::LogArchive::new(
                repo.clone(),
                dbbackup::postgres::WAL_ARCHIVE,
            )?);
        if manifest.parent.is_some() {
            return restore_chain(&repo, &manifest, target, &dir, &a, json, mode).await;
        }
        (Arc::new(target) as Arc<dyn dbbackup::RestoreTarget>, dir)
    } else {
        let mysql = manifest.source.engine == dbbackup::mysql::ENGINE;
        if mysql && (a.to_lsn.is_some() || a.to_name.is_some() || a.to_xid.is_some()) {
            return Err(invalid(
                "--to-lsn, --to-name and --to-xid are PostgreSQL's; a MySQL backup rolls \
                 forward with --to-time, --to-position FILE:POS or --replay-binlog",
            ));
        }
        if !mysql
            && (point.is_some()
                || a.to_position.is_some()
                || a.to_gtid.is_some()
                || a.replay_binlog)
        {
            return Err(invalid(
                "--to-time, --to-lsn, --to-name and --to-xid apply to physical PostgreSQL base \
                 backups (backup --kind physical); --to-position, --to-gtid and --replay-binlog \
                 to MySQL backups",
            ));
        }
        let target_url = with_password(
            required(a.target.clone(), "target", "DBBACKUP_TARGET")?,
            &a.password,
        )?;
        (
            target_for(&a, &manifest, &target_url)?,
            dbbackup::redact(&target_url),
        )
    };
    let mut r = Restore::builder()
        .sink(sink)
        .allow_unencrypted(allow)
        .target_arc(target)
        .backup(BackupSelector::Id(manifest.backup_id.clone()))
        .subscribe(Progress::new(mode))
        .cancel_token(cancel_on_ctrl_c());
    // A selection that matches nothing restores nothing: a mistake, said before anything runs.
    let tables: Vec<String> = manifest.entries.iter().filter_map(|e| e.table()).collect();
    if manifest.source.engine != "sqlite" {
        dbbackup::check_patterns_match(
            "--tables pattern",
            &a.tables,
            &tables,
            "see `dbbackup list` for the backup's tables; a pattern without a '.' matches \
             the table's name in any schema",
        )?;
    }
    // A SQLite backup is one file: its data-only target selects the tables itself.
    if a.clean && !a.tables.is_empty() {
        return Err(dbbackup::Error::new(
            dbbackup::ErrorKind::InvalidInput,
            "--clean drops every object of the backup; with --tables the other tables would come \
             back empty: restore all of it, or the chosen tables into a new database (--create)",
        ));
    }
    let filter = if manifest.source.engine == "sqlite" && a.data_only {
        None
    } else {
        dbbackup::table_filter(&manifest.source.engine, a.tables.clone())?
    };
    if let Some(filter) = filter {
        r = r.filter(filter);
    }
    if let Some(j) = a.jobs {
        r = r.jobs(j);
    }
    if let Some(k) = key {
        r = r.key(k);
    }
    let report = r.build()?.run().await?;
    let replayed = match super::binlog::stop_of(&a)? {
        Some(stop) if manifest.source.engine == dbbackup::mysql::ENGINE => {
            let url = with_password(
                required(a.target.clone(), "target", "DBBACKUP_TARGET")?,
                &a.password,
            )?;
            Some(super::binlog::replay(&repo, &manifest, &stop, &url, a.relog).await?)
        }
        _ => None,
    };
    if json {
        println!(
            "{}",
            json!({"ok": true, "command": "restore", "backup_id": report.backup_id, "entries": report.entries,
                   "raw_bytes": report.raw_bytes, "rows": report.rows,
                   "duration_seconds": report.elapsed.as_secs_f64(), "warnings": report.warnings,
                   "skipped": resolved.skipped,
                   "binlog_replayed_to": replayed.as_ref().map(|r| format!("{}:{}", r.reached.0, r.reached.1)),
                   "binlog_pieces": replayed.as_ref().map(|r| r.pieces)})
        );
    } else {
        println!(
            "restored backup {} into {}: {}, {} in {:.1}s",
            report.backup_id,
            target_name,
            entries(report.entries),
            human(report.raw_bytes),
            report.elapsed.as_secs_f64()
        );
        if let Some(r) = &replayed {
            println!(
                "replayed the archived binlog: {} piece(s), up to {}:{}",
                r.pieces, r.reached.0, r.reached.1
            );
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn target_for(
    a: &crate::cli::RestoreArgs,
    manifest: &dbbackup::Manifest,
    target_url: &str,
) -> Result<Arc<dyn dbbackup::RestoreTarget>> {
    let create = a.create;
    let options = dbbackup::TargetOptions {
        backup_engine: Some(manifest.source.engine.clone()),
        create,
        jobs: a.jobs.unwrap_or(2),
        skip_privileges: a.skip_privileges,
        local_infile: !(a.no_local_infile),
        shared_dir: a.shared_dir.clone().map(|d| d.parse()).transpose()?,
        data_dir: a.data_dir.clone(),
        no_recovery: a.no_recovery,
        data_only: a.data_only,
        strict_columns: a.strict_columns,
        tables: a.tables.clone(),
        clean: a.clean,
    };
    dbbackup::target(target_url, &options)
}

/// The recovery target of the options, checked (a time with an offset, an LSN of
/// PostgreSQL's form).
fn recovery_target(
    a: &crate::cli::RestoreArgs,
) -> Result<Option<dbbackup::postgres::RecoveryTarget>> {
    use dbbackup::postgres::RecoveryTarget as T;
    if let Some(t) = &a.to_time {
        dbbackup::postgres::wal::parse_target_time(t)?;
    }
    if let Some(l) = &a.to_lsn {
        l.parse::<dbbackup::postgres::Lsn>()?;
    }
    Ok(a.to_time
        .clone()
        .map(T::Time)
        .or_else(|| a.to_lsn.clone().map(T::Lsn))
        .or_else(|| a.to_name.clone().map(T::Name))
        .or_else(|| a.to_xid.clone().map(T::Xid)))
}

/// `latest` for a data directory: the newest trusted base backup, and with a target time or
/// LSN the newest that ends before it.
async fn latest_base_backup(
    repo: &Repository,
    point: Option<&dbbackup::postgres::RecoveryTarget>,
) -> Result<String> {
    let catalog = repo.catalog().await?;
    let backups = super::wal::physical(catalog.trusted())?;
    if backups.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            "the repository holds no physical base backup (take one with backup \
             --engine-tool basebackup)",
        ));
    }
    match dbbackup::postgres::wal::choose_backup(&backups, point)? {
        Some(b) => Ok(b.backup_id.clone()),
        None => {
            let oldest = backups.iter().min_by_key(|b| b.finished_at);
            Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "no base backup ends before the recovery target; the oldest, {}, ends at \
                     {} (LSN {}): nothing in this repository can recover to an earlier point",
                    oldest.map_or("-", |b| b.backup_id.as_str()),
                    oldest.map_or(String::new(), |b| rfc3339(b.finished_at)),
                    oldest.map_or(String::new(), |b| b.end_lsn.to_string()),
                ),
            ))
        }
    }
}

/// `dbbackup wal-fetch %f %p` with this restore's repository and key options, for the
/// restored server's `restore_command`.
fn restore_command(a: &crate::cli::RestoreArgs) -> Result<String> {
    let exe = std::env::current_exe()
        .map_err(|e| invalid(format!("cannot tell where this dbbackup binary is: {e}")))?;
    let mut repo = required(a.repo.repo.clone(), "repo", "DBBACKUP_REPO")?;
    // The server runs the command from its data directory: a relative path must not move.
    if !repo.contains("://") {
        if let Ok(abs) = std::fs::canonicalize(&repo) {
            repo = abs.to_string_lossy().into_owned();
        }
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut cmd = format!(
        "{} wal-fetch %f %p --repo {}",
        quote(&exe.to_string_lossy()),
        quote(&repo)
    );
    if let Some(k) = &a.key.key_file {
        let k = std::fs::canonicalize(k).unwrap_or_else(|_| k.clone());
        cmd.push_str(&format!(" --key-file {}", quote(&k.to_string_lossy())));
    }
    if let Some(v) = &a.key.passphrase_env {
        cmd.push_str(&format!(" --passphrase-env {}", quote(v)));
    }
    if allow_unencrypted(&a.key) {
        cmd.push_str(" --allow-unencrypted");
    }
    Ok(cmd)
}

/// An incremental base backup: every member of its chain unpacked beside the target directory,
/// combined into it with `pg_combinebackup`, the parts removed whatever happens.
async fn restore_chain(
    repo: &Repository,
    tip: &dbbackup::Manifest,
    target: dbbackup::postgres::PgDataDirTarget,
    dir: &str,
    a: &crate::cli::RestoreArgs,
    json: bool,
    mode: Mode,
) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(invalid(format!(
            "{dir} is not empty: a base backup is restored into a new or empty directory only"
        )));
    }
    let mut chain = vec![tip.clone()];
    while let Some(p) = chain.last().and_then(|m| m.parent.clone()) {
        let parent = repo
            .resolve(&BackupSelector::Id(p.clone()))
            .await
            .map_err(|e| {
                Error::new(
                    e.kind(),
                    format!(
                        "the chain of incremental backup {} is broken at {p}: {e}",
                        tip.backup_id
                    ),
                )
            })?;
        chain.push(parent.manifest);
    }
    chain.reverse();
    let path = std::path::Path::new(dir);
    let parts_root = path.with_file_name(format!(
        ".{}.dbbackup-chain-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("restore"),
        std::process::id()
    ));
    let result = async {
        let mut parts = Vec::new();
        let mut bytes = 0;
        for (i, m) in chain.iter().enumerate() {
            let part = parts_root.join(format!("{i}"));
            let mut r = Restore::builder()
                .sink(repo.sink().clone())
                .allow_unencrypted(allow_unencrypted(&a.key))
                .target(dbbackup::postgres::PgDataDirTarget::new(&part, "").unpack_only())
                .backup(BackupSelector::Id(m.backup_id.clone()))
                .subscribe(Progress::new(mode))
                .cancel_token(cancel_on_ctrl_c());
            if let Some(k) = load_key(&a.key)? {
                r = r.key(k);
            }
            bytes += r.build()?.run().await?.raw_bytes;
            parts.push(part);
        }
        let summary = target.combine(tip, &parts).await?;
        Ok::<_, Error>((summary, bytes))
    }
    .await;
    let _ = std::fs::remove_dir_all(&parts_root);
    let (summary, bytes) = result?;
    let ids: Vec<&str> = chain.iter().map(|m| m.backup_id.as_str()).collect();
    if json {
        println!(
            "{}",
            json!({"ok": true, "command": "restore", "backup_id": tip.backup_id, "chain": ids,
                   "raw_bytes": bytes, "duration_seconds": started.elapsed().as_secs_f64(),
                   "warnings": summary.warnings})
        );
    } else {
        println!(
            "restored incremental backup {} into {dir}: {} backups combined ({}), {} in {:.1}s",
            tip.backup_id,
            ids.len(),
            ids.join(" + "),
            human(bytes),
            started.elapsed().as_secs_f64()
        );
        for w in &summary.warnings {
            println!("warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
