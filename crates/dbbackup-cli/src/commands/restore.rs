//! `dbbackup restore`: restore a backup into a database.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(
    a: crate::cli::RestoreArgs,
    f: &FileConfig,
    json: bool,
    mode: Mode,
) -> Result<ExitCode> {
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
    let options = dbbackup::TargetOptions {
        backup_engine: Some(manifest.source.engine.clone()),
        create,
        jobs: pick(&a.jobs, &f.jobs).unwrap_or(2),
        skip_privileges: a.skip_privileges || f.skip_privileges.unwrap_or(false),
        local_infile: !(a.no_local_infile || f.no_local_infile.unwrap_or(false)),
        shared_dir: pick(&a.shared_dir, &f.shared_dir)
            .map(|d| d.parse())
            .transpose()?,
        data_dir: pick(&a.data_dir, &f.data_dir),
        no_recovery: a.no_recovery || f.no_recovery.unwrap_or(false),
    };
    let target = dbbackup::target(&target_url, &options)?;
    let mut r = Restore::builder()
        .sink(sink)
        .allow_unencrypted(allow)
        .target_arc(target)
        .backup(BackupSelector::Id(manifest.backup_id.clone()))
        .subscribe(Progress::new(mode))
        .cancel_token(cancel_on_ctrl_c());
    if let Some(filter) =
        dbbackup::table_filter(&manifest.source.engine, pick_list(&a.tables, &f.tables))?
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
