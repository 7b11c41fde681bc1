//! `dbbackup restore`: restore a backup into a database.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::RestoreArgs, json: bool, mode: Mode) -> Result<ExitCode> {
    let sink = open_repo(a.repo.repo.clone())?;
    let target_url = required(a.target.clone(), "target", "DBBACKUP_TARGET")?;
    let selector = parse_selector(a.backup.clone())?;
    let create = a.create;
    let key = load_key(&a.key)?;
    let allow = allow_unencrypted(&a.key);
    let resolved = Repository::new(sink.clone())
        .with_key(key.clone())
        .allow_unencrypted(allow)
        .resolve(&selector)
        .await?;
    report_skipped(&resolved.skipped, json);
    let manifest = resolved.manifest;
    let options = dbbackup::TargetOptions {
        backup_engine: Some(manifest.source.engine.clone()),
        create,
        jobs: a.jobs.unwrap_or(2),
        skip_privileges: a.skip_privileges,
        local_infile: !(a.no_local_infile),
        shared_dir: a.shared_dir.clone().map(|d| d.parse()).transpose()?,
        data_dir: a.data_dir.clone(),
        no_recovery: a.no_recovery,
    };
    let target = dbbackup::target(&target_url, &options)?;
    let mut r = Restore::builder()
        .sink(sink)
        .allow_unencrypted(allow)
        .target_arc(target)
        .backup(BackupSelector::Id(manifest.backup_id.clone()))
        .subscribe(Progress::new(mode))
        .cancel_token(cancel_on_ctrl_c());
    if let Some(filter) = dbbackup::table_filter(&manifest.source.engine, a.tables.clone())? {
        r = r.filter(filter);
    }
    if let Some(j) = a.jobs {
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
            dbbackup::redact(&target_url),
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
