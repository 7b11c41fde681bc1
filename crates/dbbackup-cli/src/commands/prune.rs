//! `dbbackup prune`: apply a retention policy.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::PruneArgs, f: &FileConfig, json: bool) -> Result<ExitCode> {
    let key = load_key(&a.key, f)?;
    let repo = Repository::new(open_repo(pick(&a.repo.repo, &f.repo))?)
        .with_key(key)
        .allow_unencrypted(allow_unencrypted(&a.key, f));
    repo.check_exists().await?;
    let offset = match pick(&a.utc_offset, &f.utc_offset) {
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
        keep_last: pick(&a.keep_last, &f.keep_last),
        keep_within: pick(&a.keep_within, &f.keep_within)
            .map(|d| parse_keep_within(&d))
            .transpose()?,
        keep_hourly: pick(&a.keep_hourly, &f.keep_hourly),
        keep_daily: pick(&a.keep_daily, &f.keep_daily),
        keep_weekly: pick(&a.keep_weekly, &f.keep_weekly),
        keep_monthly: pick(&a.keep_monthly, &f.keep_monthly),
        keep_yearly: pick(&a.keep_yearly, &f.keep_yearly),
        keep_labels: parse_labels(&pick_list(&a.keep_labels, &f.keep_label), "--keep-label")?,
        utc_offset_seconds: offset,
    };
    let dry_run = a.dry_run || f.dry_run.unwrap_or(false);
    let catalog = repo.catalog().await?;
    let refused: Vec<SkippedBackup> = catalog.refused().collect();
    repo.require_key_for_retention(&catalog)?;
    let summaries = catalog.summaries();
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
