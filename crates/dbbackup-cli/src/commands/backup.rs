//! `dbbackup backup`: back up a database into a repository.

use std::process::ExitCode;

#[allow(unused_imports)]
use crate::common::*;

/// Runs the command.
pub(crate) async fn run(a: crate::cli::BackupArgs, json: bool, mode: Mode) -> Result<ExitCode> {
    let (b, encrypted) = builder(&a).await?;
    if !encrypted && !json {
        eprintln!(
            "dbbackup: warning: this backup is not encrypted (give --passphrase-env or --key-file)"
        );
    }
    let b = b
        .subscribe(Progress::new(mode))
        .cancel_token(cancel_on_ctrl_c());
    let report = b.build()?.run().await?;
    let m = &report.manifest;
    if json {
        println!(
            "{}",
            json!({"ok": true, "command": "backup", "backup_id": m.backup_id, "engine": m.source.engine,
                   "database": m.source.database, "entries": m.entries.len(),
                   "rows": m.entries.iter().filter_map(|e| e.rows).sum::<u64>(), "raw_bytes": m.raw_size(),
                   "stored_bytes": m.stored_size(), "duration_seconds": report.elapsed.as_secs_f64(),
                   "encrypted": encrypted, "labels": m.labels, "warnings": m.warnings})
        );
    } else {
        println!(
            "backup {} committed: {}, {} -> {} stored in {:.1}s{}",
            m.backup_id,
            entries(m.entries.len()),
            human(m.raw_size()),
            human(m.stored_size()),
            report.elapsed.as_secs_f64(),
            if encrypted { ", encrypted" } else { "" }
        );
        for w in &m.warnings {
            println!("warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The backup `a` describes (without progress or cancellation), and whether it is encrypted.
pub(crate) async fn builder(a: &crate::cli::BackupArgs) -> Result<(dbbackup::BackupBuilder, bool)> {
    let source_url = with_password(
        required(a.source.clone(), "source", "DBBACKUP_SOURCE")?,
        &a.password,
    )?;
    let sink = open_repo(a.repo.repo.clone())?;
    let mut tool: dbbackup::EngineTool = a
        .engine_tool
        .clone()
        .as_deref()
        .unwrap_or("native")
        .parse()?;
    match a.kind.as_deref() {
        None | Some("logical") => {}
        Some("physical") if a.engine_tool.is_none() || tool == dbbackup::EngineTool::BaseBackup => {
            tool = dbbackup::EngineTool::BaseBackup;
        }
        Some("physical") => {
            return Err(invalid(format!(
                "--kind physical is a base backup; drop --engine-tool {tool}"
            )))
        }
        Some(other) => {
            return Err(invalid(format!(
                "--kind {other:?}: use logical (the default) or physical"
            )))
        }
    }
    if a.incremental && tool != dbbackup::EngineTool::BaseBackup {
        return Err(invalid(
            "--incremental is for PostgreSQL physical backups (--kind physical); SQL Server's \
             differential backups are --backup-kind differential",
        ));
    }
    let jobs = a.jobs.unwrap_or(2);
    let selection = dbbackup::Selection {
        filter: dbbackup::Filter {
            include_tables: a.select.include_tables.clone(),
            exclude_tables: a.select.exclude_tables.clone(),
            include_schemas: a.select.include_schemas.clone(),
            exclude_schemas: a.select.exclude_schemas.clone(),
        },
        schema_only: a.select.schema_only,
        data_only: a.select.data_only,
        privileges: a.select.privileges,
    };
    let options = dbbackup::SourceOptions {
        tool,
        jobs,
        selection,
        shared_dir: a.shared_dir.clone().map(|d| d.parse()).transpose()?,
        kind: a.backup_kind.clone().as_deref().unwrap_or("full").parse()?,
        repo: Some(sink.clone()),
        allow_incomplete: a.allow_incomplete,
    };
    let key = load_key(&a.key)?;
    let source = if a.incremental {
        incremental_source(&source_url, sink.clone(), key.clone(), a).await?
    } else {
        dbbackup::source(&source_url, &options)?
    };
    let mut b = Backup::builder()
        .source_arc(source)
        .sink(sink)
        .allow_unencrypted(allow_unencrypted(&a.key));
    match a.compression.clone().as_deref().unwrap_or("zstd:3") {
        "none" => {}
        "zstd" => b = b.transform(Zstd::new(3)),
        other => {
            let level = other
                .strip_prefix("zstd:")
                .and_then(|l| l.parse::<i32>().ok())
                .filter(|l| (1..=22).contains(l))
                .ok_or_else(|| {
                    invalid(format!(
                        "--compression {other:?}: use zstd, zstd:LEVEL (1-22) or none"
                    ))
                })?;
            b = b.transform(Zstd::new(level));
        }
    }
    if let Some(j) = a.jobs {
        b = b.jobs(j);
    }
    for (k, v) in parse_labels(&a.labels.clone(), "--label")? {
        b = b.label(k, v);
    }
    let encrypted = key.is_some();
    if let Some(k) = key {
        b = b.encryption(k);
    }
    Ok((b, encrypted))
}

/// An incremental base backup on top of the newest trusted base backup in the repository.
async fn incremental_source(
    url: &str,
    sink: Arc<dyn dbbackup::Sink>,
    key: Option<Key>,
    a: &crate::cli::BackupArgs,
) -> Result<Arc<dyn dbbackup::Source>> {
    let allow = allow_unencrypted(&a.key);
    let repo = Repository::new(sink.clone())
        .with_key(key.clone())
        .allow_unencrypted(allow);
    let catalog = repo.catalog().await?;
    let parent = catalog
        .trusted()
        .filter(|m| dbbackup::postgres::PhysicalBackup::of(m).is_ok_and(|b| b.is_some()))
        .max_by_key(|m| (m.finished_at, m.backup_id.clone()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "--incremental needs a base backup to build on, and the repository holds none: \
                 take a full one first (backup --kind physical)",
            )
        })?;
    let manifest =
        dbbackup::postgres::read_base_manifest(sink, key, allow, &parent.backup_id).await?;
    Ok(Arc::new(
        dbbackup::postgres::PgBaseBackupSource::new(url)?.incremental(parent, manifest),
    ))
}
