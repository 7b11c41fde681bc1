//! `dbbackup prune`: apply a retention policy.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::PruneArgs, json: bool) -> Result<ExitCode> {
    let key = load_key(&a.key)?;
    let repo = Repository::new(open_repo(a.repo.repo.clone())?)
        .with_key(key)
        .allow_unencrypted(allow_unencrypted(&a.key));
    repo.check_exists().await?;
    let offset = match a.utc_offset.clone() {
        None => 0,
        Some(o) => time::UtcOffset::parse(
            &o,
            time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]"),
        )
        .map_err(|_| {
            invalid(format!(
                "--utc-offset {o:?}: use a form like +02:00 or -05:30"
            ))
        })?
        .whole_seconds(),
    };
    let policy = KeepPolicy {
        keep_last: a.keep_last,
        keep_within: a
            .keep_within
            .clone()
            .map(|d| parse_keep_within(&d))
            .transpose()?,
        keep_hourly: a.keep_hourly,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_labels: parse_labels(&a.keep_labels.clone(), "--keep-label")?,
        utc_offset_seconds: offset,
    };
    let dry_run = a.dry_run;
    let catalog = repo.catalog().await?;
    let refused: Vec<SkippedBackup> = catalog.refused().collect();
    repo.require_key_for_retention(&catalog)?;
    let summaries = catalog.summaries();
    let group_by: GroupBy = a.group_by.clone().as_deref().unwrap_or("source").parse()?;
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
                dbbackup::Action::Keep => "keep  ",
                dbbackup::Action::Delete => {
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
