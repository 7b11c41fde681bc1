//! `dbbackup check` (recovery objectives, for monitoring: exit 0 when they hold, 4 when one
//! does not) and `dbbackup status` (what a person asks about a repository, on one screen).

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;
use dbbackup::{Catalog, RestoreTestRecord};

use super::restore_test::CHECK_FAILED;

/// What `check` and `status` read from a repository.
struct Facts {
    catalog: Catalog,
    tests: std::collections::BTreeMap<String, RestoreTestRecord>,
    /// The newest archived log piece: kind, name, when.
    last_piece: Option<(String, String, time::OffsetDateTime)>,
    piece_error: Option<String>,
    windows: Vec<(String, serde_json::Value)>,
}

impl Facts {
    async fn read(repo: &Repository) -> Result<Facts> {
        let (catalog, tests) = repo.catalog_and_restore_tests().await?;
        let (last_piece, piece_error) = match last_piece(repo).await {
            Ok(p) => (p, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut windows = Vec::new();
        match super::wal::windows(repo, super::wal::physical(catalog.trusted())?).await {
            Ok(w) => windows.extend(w.iter().map(|r| (r.line(), r.json()))),
            Err(e) => windows.push((
                format!("recovery windows unknown: the WAL archive cannot be read: {e}"),
                json!({"error": e.to_string()}),
            )),
        }
        match super::binlog::windows(repo, catalog.trusted()).await {
            Ok(w) => windows.extend(w.iter().map(|r| (r.line(), r.json()))),
            Err(e) => windows.push((
                format!("recovery windows unknown: the binlog archive cannot be read: {e}"),
                json!({"error": e.to_string()}),
            )),
        }
        Ok(Facts {
            catalog,
            tests,
            last_piece,
            piece_error,
            windows,
        })
    }

    fn newest(&self) -> Option<&dbbackup::Manifest> {
        self.catalog
            .trusted()
            .max_by_key(|m| (m.finished_at, m.backup_id.clone()))
    }

    /// The newest restore test of any backup.
    fn last_test(&self) -> Option<&RestoreTestRecord> {
        self.tests.values().max_by_key(|t| t.finished_at)
    }

    fn last_passed_test(&self) -> Option<&RestoreTestRecord> {
        self.tests
            .values()
            .filter(|t| t.passed)
            .max_by_key(|t| t.finished_at)
    }
}

/// The newest piece of any log archive, by its (authenticated) record.
pub(crate) async fn last_piece(
    repo: &Repository,
) -> Result<Option<(String, String, time::OffsetDateTime)>> {
    let seals: Vec<dbbackup::ObjectMeta> = repo
        .sink()
        .list(dbbackup::LOGS_PREFIX)
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".seal"))
        .collect();
    let Some(newest) = seals
        .iter()
        .max_by(|a, b| (a.last_modified, &a.key).cmp(&(b.last_modified, &b.key)))
    else {
        return Ok(None);
    };
    let rest = newest
        .key
        .strip_prefix(dbbackup::LOGS_PREFIX)
        .unwrap_or(&newest.key);
    let Some((kind, name)) = rest.split_once('/') else {
        return Ok(None);
    };
    let name = name.strip_suffix(".seal").unwrap_or(name);
    let record = dbbackup::LogArchive::new(repo.clone(), kind)?
        .record(name)
        .await?;
    Ok(Some((kind.to_owned(), name.to_owned(), record.archived_at)))
}

fn since(t: time::OffsetDateTime, now: time::OffsetDateTime) -> Duration {
    (now - t).try_into().unwrap_or(Duration::ZERO)
}

fn limit(flag: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|s| {
            dbbackup::parse_duration(s)
                .map_err(|e| invalid(format!("--{flag} {s:?}: {e} (e.g. 26h, 8d, 5m)")))
        })
        .transpose()
}

/// Runs `check`.
pub(crate) async fn check(a: crate::cli::CheckArgs, json: bool) -> Result<ExitCode> {
    let max_age = limit("max-age", &a.max_age)?;
    let max_test = limit("max-restore-test-age", &a.max_restore_test_age)?;
    let max_lag = limit("max-archive-lag", &a.max_archive_lag)?;
    if max_age.is_none() && max_test.is_none() && max_lag.is_none() {
        return Err(invalid(
            "check needs at least one objective: --max-age DUR (the newest backup), \
             --max-restore-test-age DUR (the last passed restore test) or --max-archive-lag DUR \
             (the newest archived WAL / binlog piece)",
        ));
    }
    let repo = open_existing(&a.repo, &a.key).await?;
    let f = Facts::read(&repo).await?;
    let now = time::OffsetDateTime::now_utc();
    // (objective, held, what was found)
    let mut results: Vec<(&str, bool, String, serde_json::Value)> = Vec::new();
    if let Some(max) = max_age {
        let r = match f.newest() {
            Some(m) => {
                let age_ = since(m.finished_at, now);
                (
                    age_ <= max,
                    format!(
                        "newest backup {} finished {} ago (limit {})",
                        m.backup_id,
                        age(age_).trim(),
                        age(max).trim()
                    ),
                    json!({"backup_id": m.backup_id, "age_seconds": age_.as_secs_f64()}),
                )
            }
            None => (
                false,
                "no trusted backup in the repository".to_owned(),
                json!({}),
            ),
        };
        let refused = f.catalog.refused().count();
        let mut text = r.1;
        if refused > 0 {
            text.push_str(&format!(
                "; {refused} backup(s) refused (see dbbackup list)"
            ));
        }
        results.push(("max-age", r.0, text, r.2));
    }
    if let Some(max) = max_test {
        let r = match (f.last_test(), f.last_passed_test()) {
            (Some(last), _) if !last.passed => (
                false,
                format!(
                    "the last restore test (backup {}, {} ago) FAILED: {}",
                    last.backup_id,
                    age(since(last.finished_at, now)).trim(),
                    last.failures()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                json!({"backup_id": last.backup_id, "passed": false,
                       "age_seconds": since(last.finished_at, now).as_secs_f64()}),
            ),
            (_, Some(t)) => {
                let age_ = since(t.finished_at, now);
                (
                    age_ <= max,
                    format!(
                        "last passed restore test {} ago (backup {}, restore took {:.1}s; limit {})",
                        age(age_).trim(),
                        t.backup_id,
                        t.restore_seconds,
                        age(max).trim()
                    ),
                    json!({"backup_id": t.backup_id, "passed": true, "age_seconds": age_.as_secs_f64(),
                           "restore_seconds": t.restore_seconds}),
                )
            }
            _ => (
                false,
                "no backup in the repository was ever restore-tested (dbbackup restore-test)"
                    .to_owned(),
                json!({}),
            ),
        };
        results.push(("max-restore-test-age", r.0, r.1, r.2));
    }
    if let Some(max) = max_lag {
        let r = match (&f.last_piece, &f.piece_error) {
            (Some((kind, name, at)), _) => {
                let lag = since(*at, now);
                (
                    lag <= max,
                    format!(
                        "newest {kind} piece {name} archived {} ago (limit {})",
                        age(lag).trim(),
                        age(max).trim()
                    ),
                    json!({"kind": kind, "name": name, "lag_seconds": lag.as_secs_f64()}),
                )
            }
            (None, Some(e)) => (
                false,
                format!("the log archive cannot be read: {e}"),
                json!({"error": e}),
            ),
            (None, None) => (
                false,
                "the repository has no log archive (wal-push / wal-stream / binlog-stream)"
                    .to_owned(),
                json!({}),
            ),
        };
        results.push(("max-archive-lag", r.0, r.1, r.2));
    }
    let held = results.iter().all(|r| r.1);
    if json {
        let items: Vec<_> = results
            .iter()
            .map(|(o, ok, text, v)| json!({"objective": o, "ok": ok, "message": text, "found": v}))
            .collect();
        println!(
            "{}",
            json!({"ok": held, "command": "check", "objectives": items})
        );
    } else {
        for (o, ok, text, _) in &results {
            println!("{} {o}: {text}", if *ok { "OK  " } else { "FAIL" });
        }
    }
    Ok(if held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECK_FAILED)
    })
}

/// Runs `status`.
pub(crate) async fn status(a: crate::cli::StatusArgs, json: bool) -> Result<ExitCode> {
    let repo = open_existing(&a.repo, &a.key).await?;
    let f = Facts::read(&repo).await?;
    let now = time::OffsetDateTime::now_utc();
    let trusted: Vec<&dbbackup::Manifest> = f.catalog.trusted().collect();
    let refused = f.catalog.refused().count();
    let stored: u64 = trusted.iter().map(|m| m.stored_size()).sum();
    let chained = trusted.iter().filter(|m| m.parent.is_some()).count();
    let newest = f.newest();
    let oldest = trusted.iter().min_by_key(|m| m.finished_at);
    let encrypted = f.catalog.config.as_ref().is_some_and(|c| c.is_encrypted());
    if json {
        println!(
            "{}",
            json!({"ok": true, "command": "status", "encrypted": encrypted,
                   "backups": trusted.len(), "refused": refused, "unchecked": f.catalog.entries.len() - trusted.len() - refused,
                   "stored_bytes": stored, "incremental": chained,
                   "newest": newest.map(|m| json!({"backup_id": m.backup_id, "finished_at": rfc3339(m.finished_at),
                        "age_seconds": since(m.finished_at, now).as_secs_f64(), "raw_bytes": m.raw_size(), "stored_bytes": m.stored_size()})),
                   "oldest": oldest.map(|m| json!({"backup_id": m.backup_id, "finished_at": rfc3339(m.finished_at)})),
                   "last_restore_test": f.last_test().map(|t| super::list::test_json(t, now)),
                   "last_passed_restore_test": f.last_passed_test().map(|t| super::list::test_json(t, now)),
                   "last_log_piece": f.last_piece.as_ref().map(|(k, n, at)| json!({"kind": k, "name": n,
                        "archived_at": rfc3339(*at), "lag_seconds": since(*at, now).as_secs_f64()})),
                   "log_archive_error": f.piece_error,
                   "recovery": f.windows.iter().map(|w| w.1.clone()).collect::<Vec<_>>()})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "repository  {} ({})",
        a.repo
            .repo
            .as_deref()
            .map(dbbackup::redact)
            .unwrap_or_default(),
        if encrypted {
            "encrypted"
        } else {
            "NOT encrypted"
        }
    );
    println!(
        "backups     {} trusted, {} stored{}{}",
        trusted.len(),
        human(stored),
        if chained > 0 {
            format!(", {chained} incremental on a parent")
        } else {
            String::new()
        },
        if refused > 0 {
            format!(", {refused} REFUSED or DAMAGED (see dbbackup list)")
        } else {
            String::new()
        }
    );
    match newest {
        Some(m) => println!(
            "newest      {} ({} ago), {} -> {}",
            m.backup_id,
            age(since(m.finished_at, now)).trim(),
            human(m.raw_size()),
            human(m.stored_size())
        ),
        None => println!("newest      none"),
    }
    if let Some(m) = oldest {
        println!(
            "oldest      {} ({} ago)",
            m.backup_id,
            age(since(m.finished_at, now)).trim()
        );
    }
    match (f.last_test(), f.last_passed_test()) {
        (None, _) => {
            println!("restore     never tested (dbbackup restore-test proves a backup restorable)")
        }
        (Some(last), passed) => {
            let when = |t: &RestoreTestRecord| age(since(t.finished_at, now)).trim().to_owned();
            if last.passed {
                println!(
                    "restore     last tested {} ago on backup {}: passed, restore took {:.1}s (RTO)",
                    when(last),
                    last.backup_id,
                    last.restore_seconds
                );
            } else {
                println!(
                    "restore     last tested {} ago on backup {}: FAILED ({})",
                    when(last),
                    last.backup_id,
                    last.failures()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(p) = passed {
                    println!(
                        "            last passed {} ago on backup {}, restore took {:.1}s",
                        when(p),
                        p.backup_id,
                        p.restore_seconds
                    );
                }
            }
        }
    }
    match (&f.last_piece, &f.piece_error) {
        (Some((kind, name, at)), _) => println!(
            "log archive {kind}: newest piece {name}, archived {} ago",
            age(since(*at, now)).trim()
        ),
        (None, Some(e)) => println!("log archive cannot be read: {e}"),
        (None, None) => println!("log archive none (no point-in-time recovery beyond the backups)"),
    }
    for (line, _) in &f.windows {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
