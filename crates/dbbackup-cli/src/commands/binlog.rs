//! `dbbackup binlog-stream`, and what the other commands do with the binlog archive: replay after
//! a restore, recovery windows in `list`, continuity in `verify`, retention in `prune`.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;
use dbbackup::mysql::{BinlogEvent, BinlogWindow, ReplayStop, BINLOG_ARCHIVE};
use dbbackup::LogArchive;

fn archive(repo: &Repository) -> Result<LogArchive> {
    LogArchive::new(repo.clone(), BINLOG_ARCHIVE)
}

/// Runs `binlog-stream`.
pub(crate) async fn stream(a: crate::cli::BinlogStreamArgs, json: bool) -> Result<ExitCode> {
    let source = with_password(
        required(a.source.clone(), "source", "DBBACKUP_SOURCE")?,
        &a.password,
    )?;
    let repo = Repository::new(open_repo(a.repo.repo.clone())?)
        .with_key(load_key(&a.key)?)
        .allow_unencrypted(allow_unencrypted(&a.key));
    let age = match &a.piece_age {
        Some(d) => dbbackup::parse_duration(d)?,
        None => Duration::from_secs(10),
    };
    let listener: dbbackup::mysql::BinlogListener = Arc::new(move |e| {
        if json {
            let line = match e {
                BinlogEvent::Connected { file, position } => {
                    json!({"event": "connected", "file": file, "position": position})
                }
                BinlogEvent::Archived { name, events } => {
                    json!({"event": "archived", "name": name, "events": events})
                }
                BinlogEvent::Lost { error, retry_in } => {
                    json!({"event": "lost", "error": error, "retry_in_seconds": retry_in.as_secs_f64()})
                }
                _ => json!({"event": "other"}),
            };
            println!("{line}");
        } else {
            let text = match e {
                BinlogEvent::Connected { file, position } => {
                    format!("streaming from {file}:{position}")
                }
                BinlogEvent::Archived { name, events } => {
                    format!("{name}: archived ({events} events)")
                }
                BinlogEvent::Lost { error, retry_in } => format!(
                    "connection lost ({error}); retrying in {:.0}s",
                    retry_in.as_secs_f64()
                ),
                _ => String::new(),
            };
            eprintln!("binlog-stream: {text}");
        }
    });
    let mut s = dbbackup::mysql::BinlogStreamer::new(&source, archive(&repo)?)?
        .max_age(age)
        .until_now(a.until_now)
        .on_event(listener);
    if let Some(id) = a.server_id {
        s = s.server_id(id);
    }
    let cancel = cancel_on_signals();
    s.run(cancel).await?;
    Ok(ExitCode::SUCCESS)
}

/// The binlog position a MySQL backup recorded (none: the server had no binary log).
pub(crate) fn recorded(m: &dbbackup::Manifest) -> Option<(String, u64)> {
    if m.source.engine != dbbackup::mysql::ENGINE {
        return None;
    }
    let p = &m.source.position;
    Some((
        p.get("binlog_file")?.clone(),
        p.get("binlog_position")?.parse().ok()?,
    ))
}

/// Where a replay after a restore stops, from the restore's options (`None`: no replay).
pub(crate) fn stop_of(a: &crate::cli::RestoreArgs) -> Result<Option<ReplayStop>> {
    if let Some(t) = &a.to_time {
        return Ok(Some(ReplayStop::Time(
            dbbackup::postgres::wal::parse_target_time(t)?,
        )));
    }
    if let Some(p) = &a.to_position {
        let (file, pos) = p
            .rsplit_once(':')
            .and_then(|(f, n)| Some((f.to_owned(), n.parse::<u64>().ok()?)))
            .ok_or_else(|| {
                invalid(format!(
                    "--to-position {p:?}: use FILE:POS, e.g. binlog.000042:1234"
                ))
            })?;
        return Ok(Some(ReplayStop::Position {
            file,
            position: pos,
        }));
    }
    if let Some(g) = &a.to_gtid {
        return Ok(Some(ReplayStop::Gtid(g.clone())));
    }
    Ok(a.replay_binlog.then_some(ReplayStop::End))
}

/// Replays the archived binlog after the logical restore of `m` into `target_url`.
pub(crate) async fn replay(
    repo: &Repository,
    m: &dbbackup::Manifest,
    stop: &ReplayStop,
    target_url: &str,
    relog: bool,
) -> Result<dbbackup::mysql::ReplayReport> {
    let (file, pos) = recorded(m).ok_or_else(|| {
        invalid(format!(
            "backup {} recorded no binlog position (the server's binary log was off): it \
             cannot be rolled forward",
            m.backup_id
        ))
    })?;
    let db = m.source.database.clone().unwrap_or_default();
    dbbackup::mysql::replay_binlog(
        &archive(repo)?,
        (&file, pos),
        stop,
        &db,
        target_url,
        relog,
        &dbbackup::mysql::Tools::from_path(),
    )
    .await
}

/// A MySQL backup and how far the binlog archive reaches from it.
pub(crate) struct Recoverable {
    pub backup_id: String,
    pub from: (String, u64),
    pub window: BinlogWindow,
    pub reaches_time: Option<time::OffsetDateTime>,
}

/// The binlog windows of the MySQL backups among `manifests` (none: nothing is read).
pub(crate) async fn windows<'a>(
    repo: &Repository,
    manifests: impl Iterator<Item = &'a dbbackup::Manifest>,
) -> Result<Vec<Recoverable>> {
    let backups: Vec<(String, (String, u64))> = manifests
        .filter_map(|m| Some((m.backup_id.clone(), recorded(m)?)))
        .collect();
    if backups.is_empty() {
        return Ok(Vec::new());
    }
    let archive = archive(repo)?;
    let names = archive.names().await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (id, from) in backups {
        let window =
            dbbackup::mysql::binlog_window(names.iter().map(String::as_str), (&from.0, from.1));
        let reaches_time = match &window.last {
            Some(l) => Some(archive.record(l).await?.archived_at),
            None => None,
        };
        out.push(Recoverable {
            backup_id: id,
            from,
            window,
            reaches_time,
        });
    }
    Ok(out)
}

impl Recoverable {
    pub(crate) fn line(&self) -> String {
        let w = &self.window;
        let mut line = format!(
            "recovery window of {} (binlog): from {}:{}",
            self.backup_id, self.from.0, self.from.1
        );
        if !w.covers_start {
            line.push_str(": NOT COVERED, the binlog archive does not reach back to it");
            return line;
        }
        line.push_str(&format!(" to {}:{}", w.reaches.0, w.reaches.1));
        if let Some(t) = self.reaches_time {
            line.push_str(&format!(" (archived {})", rfc3339(t)));
        }
        if let Some((f, p)) = &w.gap_after {
            line.push_str(&format!("; GAP after {f}:{p}, later binlog cannot be used"));
        }
        line
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let w = &self.window;
        json!({"from": format!("{}:{}", self.from.0, self.from.1), "covered": w.covers_start,
               "to": w.covers_start.then(|| format!("{}:{}", w.reaches.0, w.reaches.1)),
               "to_time": self.reaches_time.map(rfc3339),
               "gap_after": w.gap_after.as_ref().map(|(f, p)| format!("{f}:{p}"))})
    }
}

/// `verify`: the binlog windows of the backups among `ids`, and every piece in them read.
pub(crate) async fn check(
    repo: &Repository,
    ids: &[String],
    json: bool,
) -> std::result::Result<Vec<serde_json::Value>, Vec<Error>> {
    let one = |e: Error| vec![e];
    let catalog = repo.catalog().await.map_err(one)?;
    let windows = windows(
        repo,
        catalog.trusted().filter(|m| ids.contains(&m.backup_id)),
    )
    .await
    .map_err(one)?;
    let archive = archive(repo).map_err(one)?;
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for r in &windows {
        let mut problems = Vec::new();
        if !r.window.covers_start {
            problems.push(format!(
                "the binlog archive does not reach back to its position {}:{}",
                r.from.0, r.from.1
            ));
        }
        if let Some((f, p)) = &r.window.gap_after {
            problems.push(format!(
                "the binlog archive has a gap after {f}:{p}: replay stops there"
            ));
        }
        let mut bytes = 0u64;
        for n in &r.window.pieces {
            bytes += super::verify::read_piece(&archive, n, "binlog", &mut problems).await;
        }
        if problems.is_empty() {
            if !json {
                println!(
                    "ok      binlog of {}: {} piece(s) checked ({}), replayable to {}:{}",
                    r.backup_id,
                    r.window.pieces.len(),
                    human(bytes),
                    r.window.reaches.0,
                    r.window.reaches.1
                );
            }
            ok.push(json!({"backup_id": r.backup_id, "binlog_pieces": r.window.pieces.len(),
                           "binlog_bytes": bytes,
                           "replayable_to": format!("{}:{}", r.window.reaches.0, r.window.reaches.1)}));
        }
        super::verify::report_problems(
            &r.backup_id,
            "binlog of the backup",
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

/// `prune`: the binlog pieces no kept MySQL backup needs (none kept: none).
pub(crate) async fn unneeded<'a>(
    repo: &Repository,
    kept: impl Iterator<Item = &'a dbbackup::Manifest>,
) -> Result<(LogArchive, Vec<String>)> {
    let kept: Vec<(String, u64)> = kept.filter_map(recorded).collect();
    let archive = archive(repo)?;
    if kept.is_empty() {
        return Ok((archive, Vec::new()));
    }
    let names = archive.names().await?;
    let gone = dbbackup::mysql::unneeded_pieces(names.iter().map(String::as_str), &kept);
    Ok((archive, gone))
}
