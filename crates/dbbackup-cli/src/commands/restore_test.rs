//! `dbbackup restore-test`: restore a backup into a scratch database, check it, drop it, and
//! record the result beside the backup.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;
use dbbackup::service::RestoreTest;
use dbbackup::CheckStatus;

/// The exit code of a restore test (or freshness check) that ran and failed.
pub(crate) const CHECK_FAILED: u8 = 4;

/// Runs the command.
pub(crate) async fn run(
    a: crate::cli::RestoreTestArgs,
    json: bool,
    mode: Mode,
) -> Result<ExitCode> {
    let repo = open_existing(&a.repo, &a.key).await?;
    let selector = parse_selector(a.backup.clone())?;
    let resolved = repo.resolve(&selector).await?;
    report_skipped(&resolved.skipped, json);
    let engine = resolved.manifest.source.engine.clone();
    let options = dbbackup::ScratchOptions {
        jobs: a.jobs.unwrap_or(2),
        skip_privileges: a.skip_privileges,
        ..Default::default()
    };
    let scratch_url = a
        .scratch
        .clone()
        .map(|u| with_password(u, &a.password))
        .transpose()?;
    let scratch = dbbackup::scratch(&engine, scratch_url.as_deref(), &options)?;
    let mut t = RestoreTest::new(repo, scratch)
        .backup(BackupSelector::Id(resolved.manifest.backup_id.clone()))
        .subscribe(Arc::new(Progress::new(mode)))
        .cancel_token(cancel_on_ctrl_c());
    for c in &a.checks {
        t = t.check(c.clone());
    }
    if let Some(j) = a.jobs {
        t = t.jobs(j);
    }
    let record = t.run().await?;
    let code = if record.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECK_FAILED)
    };
    if json {
        println!(
            "{}",
            json!({"ok": record.passed, "command": "restore-test", "record": record})
        );
        return Ok(code);
    }
    for c in &record.checks {
        let word = match c.status {
            CheckStatus::Passed => "ok     ",
            CheckStatus::Failed => "FAILED ",
            CheckStatus::Skipped => "skipped",
        };
        println!("{word} {}: {}", c.name, c.detail);
    }
    let failed: Vec<&str> = record.failures().map(|c| c.name.as_str()).collect();
    if record.passed {
        println!(
            "restore test of backup {} passed: restored in {:.1}s on {}; recorded",
            record.backup_id, record.restore_seconds, record.scratch
        );
    } else {
        println!(
            "restore test of backup {} FAILED ({}): recorded",
            record.backup_id,
            failed.join(", ")
        );
    }
    Ok(code)
}
