//! `dbbackup show`: one backup's details, again, after the fact.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::ShowArgs, json: bool) -> Result<ExitCode> {
    let repo = open_existing(&a.repo, &a.key).await?;
    let catalog = repo.catalog().await?;
    let wanted = a.backup.as_deref().unwrap_or("latest");
    let entry = if wanted == "latest" {
        catalog.entries.iter().rev().find(|e| e.manifest.is_some())
    } else {
        catalog.entries.iter().find(|e| e.backup_id == wanted)
    };
    let Some(entry) = entry else {
        return Err(Error::new(
            ErrorKind::NotFound,
            if wanted == "latest" {
                "the repository has no backups yet".to_owned()
            } else {
                format!("no backup {wanted:?} in the repository; `dbbackup list` shows its backups")
            },
        ));
    };
    let status = super::list::status_word(entry).to_lowercase();
    let problem = match &entry.status {
        BackupStatus::Refused { reason, .. } => Some(reason),
        _ => None,
    };
    let code = if problem.is_some() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    };
    let Some(m) = &entry.manifest else {
        if json {
            println!(
                "{}",
                json!({"ok": false, "command": "show", "backup_id": entry.backup_id, "status": status, "problem": problem})
            );
        } else {
            println!(
                "backup {}: {status}: {}",
                entry.backup_id,
                problem.map_or("", |p| p.as_str())
            );
        }
        return Ok(code);
    };
    let age_s = (time::OffsetDateTime::now_utc() - m.finished_at)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let tests = if problem.is_none() {
        repo.restore_tests(&m.backup_id).await.ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            json!({"ok": problem.is_none(), "command": "show", "status": status, "problem": problem,
                   "age_seconds": age_s.as_secs_f64(), "manifest": m,
                   "restore_tests": tests.as_ref().map(|t| &t.records),
                   "refused_restore_tests": tests.as_ref().map(|t| &t.refused)})
        );
        return Ok(code);
    }
    let counted = m.entries.iter().any(|e| e.rows.is_some());
    let rows: u64 = m.entries.iter().filter_map(|e| e.rows).sum();
    let took: Duration = (m.finished_at - m.started_at)
        .try_into()
        .unwrap_or(Duration::ZERO);
    println!("backup   {} ({status})", m.backup_id);
    if let Some(p) = problem {
        println!("problem  {p}");
    }
    println!(
        "time     {} to {} ({:.1}s), {} ago",
        rfc3339(m.started_at),
        rfc3339(m.finished_at),
        took.as_secs_f64(),
        age(age_s)
    );
    let src = &m.source;
    println!(
        "source   {}{}{}{}",
        src.engine,
        src.server_version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default(),
        src.database
            .as_deref()
            .map(|d| format!(", database {d}"))
            .unwrap_or_default(),
        src.server
            .as_deref()
            .map(|s| format!(" on {s}"))
            .unwrap_or_default()
    );
    if !src.position.is_empty() {
        let pos: Vec<String> = src
            .position
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("position {}", pos.join(" "));
    }
    println!(
        "size     {} -> {} stored, {}{}",
        human(m.raw_size()),
        human(m.stored_size()),
        entries(m.entries.len()),
        if counted {
            format!(", {}", count(rows, "row"))
        } else {
            String::new()
        }
    );
    let chain: Vec<String> = m
        .transforms
        .iter()
        .map(|t| {
            serde_json::to_value(t)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".into())
        })
        .collect();
    println!(
        "encoding {}{}",
        if chain.is_empty() {
            "none".to_owned()
        } else {
            chain.join(" -> ")
        },
        match &m.encryption {
            Some(e) => format!(", encrypted (key id {})", e.key_id),
            None => ", NOT encrypted".to_owned(),
        }
    );
    if !m.labels.is_empty() {
        let l: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("labels   {}", l.join(" "));
    }
    if let Some(p) = &m.parent {
        println!("parent   {p}");
    }
    println!("entries");
    for e in &m.entries {
        println!(
            "  {:<40} {:>11} -> {:>11}{}",
            e.name,
            human(e.raw_size),
            human(e.stored_size),
            e.rows
                .map(|r| format!("  {}", count(r, "row")))
                .unwrap_or_default()
        );
    }
    for w in &m.warnings {
        println!("warning  {w}");
    }
    if let Some(t) = &tests {
        let now = time::OffsetDateTime::now_utc();
        if t.records.is_empty() {
            println!("tested   never (dbbackup restore-test proves a backup restorable)");
        }
        for r in &t.records {
            let failed: Vec<&str> = r.failures().map(|c| c.name.as_str()).collect();
            println!(
                "tested   {} ({} ago): {}, restore took {:.1}s, on {}",
                rfc3339(r.finished_at),
                age((now - r.finished_at).try_into().unwrap_or(Duration::ZERO)).trim(),
                if r.passed {
                    "passed".to_owned()
                } else {
                    format!("FAILED ({})", failed.join(", "))
                },
                r.restore_seconds,
                r.scratch
            );
        }
        for (key, why) in &t.refused {
            println!("REFUSED restore-test record {key}: {why}");
        }
    }
    if !m.omitted.is_empty() {
        println!(
            "INCOMPLETE: leaves out {}: {}",
            count(m.omitted.len() as u64, "object"),
            m.omitted.join(", ")
        );
    }
    Ok(code)
}
