//! `dbbackup prune`: apply a retention policy.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// The keep rules and grouping of `a`.
pub(crate) fn policy_of(a: &crate::cli::PruneArgs) -> Result<(KeepPolicy, GroupBy)> {
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
    let group_by: GroupBy = a.group_by.clone().as_deref().unwrap_or("source").parse()?;
    Ok((policy, group_by))
}

/// What a prune decided and deleted.
pub(crate) struct Pruned {
    pub plan: dbbackup::RetentionPlan,
    pub deleted: Vec<String>,
    pub wal_deleted: Vec<String>,
    pub binlog_deleted: Vec<String>,
    pub refused: Vec<SkippedBackup>,
}

/// Applies the keep rules to the backups of `repo`, then deletes the WAL and binlog pieces no
/// kept backup needs (nothing with `dry_run`).
pub(crate) async fn prune_repo(
    repo: &Repository,
    policy: &KeepPolicy,
    group_by: &GroupBy,
    dry_run: bool,
) -> Result<Pruned> {
    let catalog = repo.catalog().await?;
    let refused: Vec<SkippedBackup> = catalog.refused().collect();
    repo.require_key_for_retention(&catalog)?;
    let summaries = catalog.summaries();
    let plan = plan_grouped(
        policy,
        &summaries,
        group_by,
        time::OffsetDateTime::now_utc(),
    )?;
    let deleted = if dry_run {
        Vec::new()
    } else {
        repo.apply(&plan).await?
    };
    // The WAL no kept base backup needs (none kept: the WAL stays).
    let gone: Vec<&str> = if dry_run {
        plan.to_delete().collect()
    } else {
        deleted.iter().map(String::as_str).collect()
    };
    let kept = super::wal::physical(
        catalog
            .trusted()
            .filter(|m| !gone.contains(&m.backup_id.as_str())),
    )?;
    let (binlog, binlog_deleted) = super::binlog::unneeded(
        repo,
        catalog
            .trusted()
            .filter(|m| !gone.contains(&m.backup_id.as_str())),
    )
    .await?;
    if !dry_run {
        for name in &binlog_deleted {
            binlog.delete(name).await?;
        }
    }
    let mut wal_deleted = Vec::new();
    if !kept.is_empty() {
        let archive = dbbackup::LogArchive::new(repo.clone(), dbbackup::postgres::WAL_ARCHIVE)?;
        let wal = dbbackup::postgres::WalArchive::read(&archive).await?;
        wal_deleted = wal.unneeded(&kept);
        if !dry_run {
            for name in &wal_deleted {
                archive.delete(name).await?;
            }
        }
    }
    Ok(Pruned {
        plan,
        deleted,
        wal_deleted,
        binlog_deleted,
        refused,
    })
}

/// Runs the command.
pub(crate) async fn run(a: crate::cli::PruneArgs, json: bool) -> Result<ExitCode> {
    let repo = open_existing(&a.repo, &a.key).await?;
    let (policy, group_by) = policy_of(&a)?;
    let dry_run = a.dry_run;
    let Pruned {
        plan,
        deleted,
        wal_deleted,
        binlog_deleted,
        refused,
    } = prune_repo(&repo, &policy, &group_by, dry_run).await?;
    if json {
        println!(
            "{}",
            json!({"ok": refused.is_empty(), "command": "prune", "dry_run": dry_run, "decisions": plan.decisions,
                   "deleted": deleted, "wal_deleted": wal_deleted, "binlog_deleted": binlog_deleted,
                   "refused": refused})
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
        if !binlog_deleted.is_empty() {
            println!(
                "{} {} binlog piece(s) that no kept backup needs",
                if dry_run { "would delete" } else { "deleted" },
                binlog_deleted.len()
            );
        }
        if !wal_deleted.is_empty() {
            println!(
                "{} {} WAL file(s) that no kept base backup needs ({} .. {})",
                if dry_run { "would delete" } else { "deleted" },
                wal_deleted.len(),
                wal_deleted.first().map_or("", String::as_str),
                wal_deleted.last().map_or("", String::as_str)
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
