//! `dbbackup verify`: read every object and check every checksum and tag.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::VerifyArgs, json: bool, mode: Mode) -> Result<ExitCode> {
    let sink = open_repo(a.repo.repo.clone())?;
    let key = load_key(&a.key)?;
    let allow = allow_unencrypted(&a.key);
    let repo = Repository::new(sink.clone())
        .with_key(key.clone())
        .allow_unencrypted(allow);
    let which = a.backup.clone().unwrap_or_else(|| "latest".into());
    let mut ok = Vec::new();
    let mut failed: Vec<Error> = Vec::new();
    // The repository itself first: a missing repository is an error, a damaged config
    // is damage.
    let mut selectors: Vec<BackupSelector> = Vec::new();
    match repo.check().await {
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(e),
        Err(e) => {
            if !json {
                println!("FAILED  repository config: {e}");
            }
            failed.push(e);
        }
        Ok(_) => {}
    }
    if failed.iter().all(|e| e.kind() != ErrorKind::WrongKey) {
        if which == "all" {
            selectors = repo
                .backup_ids()
                .await?
                .into_iter()
                .map(BackupSelector::Id)
                .collect();
        } else {
            let sel: BackupSelector = which.parse()?;
            match repo.resolve(&sel).await {
                Ok(r) => {
                    for s in &r.skipped {
                        let e = Error::new(
                            ErrorKind::Corrupt,
                            format!(
                                "newer than the latest usable backup, and refused: {}",
                                s.reason
                            ),
                        )
                        .with_backup(s.backup_id.clone());
                        if !json {
                            println!("FAILED  {}: {e}", s.backup_id);
                        }
                        failed.push(e);
                    }
                    selectors.push(BackupSelector::Id(r.manifest.backup_id));
                }
                Err(e) if e.kind() == ErrorKind::NotFound && failed.is_empty() => {
                    if !json {
                        println!("no backups to verify");
                    }
                }
                Err(e) => {
                    if !json {
                        println!("FAILED  {}: {e}", e.backup().unwrap_or(&which));
                    }
                    failed.push(e);
                }
            }
        }
    }
    for sel in &selectors {
        let mut v = Verify::builder()
            .sink(sink.clone())
            .backup(sel.clone())
            .allow_unencrypted(allow)
            .subscribe(Progress::new(mode));
        if let Some(k) = &key {
            v = v.key(k.clone());
        }
        match v.build()?.run().await {
            Ok(r) => {
                if !json {
                    println!(
                        "ok      {}: {}, {} checked",
                        r.backup_id,
                        entries(r.entries),
                        human(r.raw_bytes)
                    );
                }
                ok.push(json!({"backup_id": r.backup_id, "entries": r.entries, "raw_bytes": r.raw_bytes,
                               "stored_bytes": r.stored_bytes, "duration_seconds": r.elapsed.as_secs_f64()}));
            }
            Err(e) => {
                if !json {
                    println!("FAILED  {}: {e}", e.backup().unwrap_or(&sel.to_string()));
                }
                failed.push(e);
            }
        }
    }
    // Base backups: the WAL they replay is there, without a gap, and every piece of it reads.
    let ids: Vec<String> = selectors.iter().map(|s| s.to_string()).collect();
    if !ids.is_empty() {
        match check_wal(&repo, &ids, json).await {
            Ok(checked) => ok.extend(checked),
            Err(mut errs) => failed.append(&mut errs),
        }
        match super::binlog::check(&repo, &ids, json).await {
            Ok(checked) => ok.extend(checked),
            Err(mut errs) => failed.append(&mut errs),
        }
    }
    let code = if failed.iter().any(|e| e.kind() == ErrorKind::Corrupt) {
        3
    } else if failed.is_empty() {
        0
    } else {
        1
    };
    if json {
        let failures: Vec<_> = failed
            .iter()
            .map(|e| json!({"backup_id": e.backup(), "entry": e.entry(), "object": e.object(), "kind": e.kind().to_string(), "error": e.to_string()}))
            .collect();
        println!(
            "{}",
            json!({"ok": failed.is_empty(), "command": "verify", "verified": ok, "failed": failures})
        );
    } else if which == "all" && selectors.is_empty() && failed.is_empty() {
        println!("no backups to verify");
    }
    Ok(ExitCode::from(code))
}

/// Checks the WAL of the base backups among `ids`: continuity (the first missing segment or
/// history file is named) and every segment's checksum. Each segment is read once.
async fn check_wal(
    repo: &Repository,
    ids: &[String],
    json: bool,
) -> std::result::Result<Vec<serde_json::Value>, Vec<Error>> {
    let one = |e: Error| vec![e];
    let catalog = repo.catalog().await.map_err(one)?;
    let backups = super::wal::physical(catalog.trusted().filter(|m| ids.contains(&m.backup_id)))
        .map_err(one)?;
    let windows = super::wal::windows(repo, backups).await.map_err(one)?;
    let archive =
        dbbackup::LogArchive::new(repo.clone(), dbbackup::postgres::WAL_ARCHIVE).map_err(one)?;
    let mut failed = Vec::new();
    let mut ok = Vec::new();
    let mut read = std::collections::HashSet::new();
    for r in &windows {
        let b = &r.backup;
        let mut problems = Vec::new();
        let mut bytes = 0u64;
        let mut segments = 0;
        for w in std::iter::once(&r.window).chain(r.own.as_ref()) {
            let on = format!("timeline {}", w.timeline);
            if let Some(m) = w.missing_needed.as_ref().or(w.missing_history.as_ref()) {
                problems.push(format!(
                    "cannot be restored on {on}: {m}, which it needs, is missing from the WAL \
                     archive"
                ));
            }
            if let Some(g) = &w.gap {
                problems.push(format!(
                    "the WAL archive has a gap on {on}: {g} is missing, so recovery stops at \
                     LSN {} and the WAL archived after it cannot be used",
                    w.reaches
                ));
            }
            for name in &w.segments {
                if !read.insert(name.clone()) {
                    continue;
                }
                segments += 1;
                bytes += read_piece(&archive, name, "WAL", &mut problems).await;
            }
        }
        let w = &r.window;
        if problems.is_empty() {
            if !json {
                println!(
                    "ok      WAL of {}: {} segment(s) checked ({}), recoverable to LSN {} on \
                     timeline {}",
                    b.backup_id,
                    segments,
                    human(bytes),
                    w.reaches,
                    w.timeline
                );
            }
            ok.push(json!({"backup_id": b.backup_id, "wal_segments": segments,
                           "wal_bytes": bytes, "recoverable_to_lsn": w.reaches.to_string(),
                           "timeline": w.timeline}));
        }
        report_problems(
            &b.backup_id,
            "WAL of base backup",
            problems,
            json,
            &mut failed,
        );
    }
    if failed.is_empty() {
        Ok(ok)
    } else {
        Err(failed)
    }
}

/// Reads one log piece through every check `fetch` makes; a failure becomes a problem.
/// Returns its bytes (0 when it failed).
pub(super) async fn read_piece(
    archive: &dbbackup::LogArchive,
    name: &str,
    what: &str,
    problems: &mut Vec<String>,
) -> u64 {
    match archive.fetch(name).await {
        Ok(d) => d.len() as u64,
        Err(e) => {
            problems.push(format!("{what} {name}: {e}"));
            0
        }
    }
}

/// The problems found in a backup's log archive, as damage (exit 3) naming the backup.
pub(super) fn report_problems(
    backup_id: &str,
    what: &str,
    problems: Vec<String>,
    json: bool,
    failed: &mut Vec<Error>,
) {
    for p in problems {
        let e = Error::new(ErrorKind::Corrupt, format!("{what}: {p}")).with_backup(backup_id);
        if !json {
            println!("FAILED  {backup_id}: {e}");
        }
        failed.push(e);
    }
}
