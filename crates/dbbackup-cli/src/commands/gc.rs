//! `dbbackup gc`: remove what failed or interrupted backups left.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::GcArgs, json: bool) -> Result<ExitCode> {
    let repo = Repository::new(open_repo(a.repo.repo.clone())?);
    let grace = match a.grace.clone() {
        Some(g) => dbbackup::parse_duration(&g)?,
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
