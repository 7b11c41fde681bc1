//! `dbbackup list`: every backup, with whether it can be believed.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// A backup's status as `list` prints it: `ok`, `unchecked`, `DAMAGED`, `REFUSED`.
pub(crate) fn status_word(e: &CatalogEntry) -> &'static str {
    match &e.status {
        BackupStatus::Trusted => "ok",
        BackupStatus::Unchecked => "unchecked",
        BackupStatus::Refused { kind, .. } if kind == "corrupt" => "DAMAGED",
        BackupStatus::Refused { .. } => "REFUSED",
    }
}

/// A restore test in `list`'s column: `ok 2h` / `FAILED 3d` (how long ago it ran).
pub(crate) fn test_word(t: &dbbackup::RestoreTestRecord, now: time::OffsetDateTime) -> String {
    format!(
        "{} {}",
        if t.passed { "ok" } else { "FAILED" },
        age((now - t.finished_at).try_into().unwrap_or(Duration::ZERO)).trim()
    )
}

/// A restore test in `--json` output.
pub(crate) fn test_json(
    t: &dbbackup::RestoreTestRecord,
    now: time::OffsetDateTime,
) -> serde_json::Value {
    json!({"tested_at": rfc3339(t.finished_at), "passed": t.passed,
           "restore_seconds": t.restore_seconds,
           "age_seconds": (now - t.finished_at).as_seconds_f64(),
           "failed": t.failures().map(|c| c.name.clone()).collect::<Vec<_>>()})
}

/// Runs the command.
pub(crate) async fn run(a: crate::cli::ListArgs, json: bool) -> Result<ExitCode> {
    let repo = open_existing(&a.repo, &a.key).await?;
    // The catalog and the newest restore test of each backup, from one listing.
    let (catalog, tests) = repo.catalog_and_restore_tests().await?;
    // Base backups: how far the WAL archive recovers from each.
    let windows = super::wal::windows(&repo, super::wal::physical(catalog.trusted())?).await;
    let binlog_windows = super::binlog::windows(&repo, catalog.trusted()).await;
    let binlog_of = |id: &str| {
        binlog_windows
            .as_ref()
            .ok()
            .and_then(|w| w.iter().find(|r| r.backup_id == id))
    };
    let window_of = |id: &str| {
        windows
            .as_ref()
            .ok()
            .and_then(|w| w.iter().find(|r| r.backup.backup_id == id))
    };
    let now = time::OffsetDateTime::now_utc();
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
                    let extra = json!({"started_at": rfc3339(m.started_at),
                       "finished_at": rfc3339(m.finished_at), "engine": m.source.engine,
                       "server_version": m.source.server_version, "database": m.source.database,
                       "entries": m.entries.len(),
                       "rows": m.entries.iter().filter_map(|e| e.rows).sum::<u64>(), "raw_bytes": m.raw_size(), "stored_bytes": m.stored_size(),
                       "labels": m.labels, "parent": m.parent,
                       "encrypted": m.encryption.is_some(), "omitted": m.omitted,
                       "age_seconds": (time::OffsetDateTime::now_utc() - m.finished_at).as_seconds_f64(),
                       "key_id": m.encryption.as_ref().map(|e| e.key_id.clone())});
                    if let (Some(o), Some(x)) = (item.as_object_mut(), extra.as_object()) {
                        o.extend(x.clone());
                        if let Some(r) = window_of(&m.backup_id) {
                            o.insert("recovery".into(), r.json());
                        }
                        if let Some(r) = binlog_of(&m.backup_id) {
                            o.insert("recovery".into(), r.json());
                        }
                        if let Some(t) = tests.get(&m.backup_id) {
                            o.insert("restore_test".into(), test_json(t, now));
                        }
                    }
                }
                item
            })
            .collect();
        println!(
            "{}",
            json!({"ok": true, "command": "list", "encrypted": catalog.config.as_ref().is_some_and(|c| c.is_encrypted()),
                   "backups": items, "wal_archive_error": windows.as_ref().err().map(|e| e.to_string()),
                   "binlog_archive_error": binlog_windows.as_ref().err().map(|e| e.to_string())})
        );
    } else if catalog.entries.is_empty() {
        println!("no backups yet");
    } else {
        println!(
            "{:<29} {:<9} {:<10} {:<20} {:>7} {:>11} {:>11} {:>7} {:<3} {:<11} labels",
            "id",
            "status",
            "engine",
            "database",
            "entries",
            "size",
            "stored",
            "age",
            "enc",
            "tested"
        );
        for e in &catalog.entries {
            match &e.manifest {
                Some(m) => {
                    let labels: Vec<String> =
                        m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!(
                        "{:<29} {:<9} {:<10} {:<20} {:>7} {:>11} {:>11} {:>7} {:<3} {:<11} {}",
                        m.backup_id,
                        status_word(e),
                        m.source.engine,
                        m.source.database.as_deref().unwrap_or("-"),
                        m.entries.len(),
                        human(m.raw_size()),
                        human(m.stored_size()),
                        age((now - m.finished_at).try_into().unwrap_or(Duration::ZERO)),
                        if m.encryption.is_some() { "yes" } else { "no" },
                        tests
                            .get(&m.backup_id)
                            .map(|t| test_word(t, now))
                            .unwrap_or_else(|| "-".into()),
                        labels.join(",")
                    );
                }
                None => println!("{:<29} {:<9}", e.backup_id, status_word(e)),
            }
        }
        for m in catalog.entries.iter().filter_map(|e| e.manifest.as_ref()) {
            if !m.omitted.is_empty() {
                println!(
                    "INCOMPLETE {}: leaves out {} object(s): {}",
                    m.backup_id,
                    m.omitted.len(),
                    m.omitted.join(", ")
                );
            }
        }
        match &windows {
            Ok(w) => w.iter().for_each(|r| println!("{}", r.line())),
            Err(e) => println!("recovery windows unknown: the WAL archive cannot be read: {e}"),
        }
        match &binlog_windows {
            Ok(w) => w.iter().for_each(|r| println!("{}", r.line())),
            Err(e) => println!("recovery windows unknown: the binlog archive cannot be read: {e}"),
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
