//! An application server that backs up its own PostgreSQL every N minutes, keeps a week of
//! backups, and shuts down cleanly on Ctrl-C (a backup in flight is cancelled and commits
//! nothing).
//!
//! ```text
//! DATABASE_URL=postgres://app@127.0.0.1/app BACKUP_REPO=/var/backups/app \
//! BACKUP_PASSPHRASE='correct horse' EVERY_MINUTES=15 \
//!     cargo run -p dbbackup --example scheduled_backups
//! ```

use std::time::Duration;

use dbbackup::service::{hook, Job, Scheduler};
use dbbackup::{
    open_sink, source, Backup, CancellationToken, Event, KeepPolicy, Key, SourceOptions, Zstd,
};

#[tokio::main]
async fn main() -> dbbackup::Result<()> {
    let env = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.to_owned());
    let db = env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let repo = env("BACKUP_REPO", "/tmp/dbbackup-example-repo");
    let every: u32 = env("EVERY_MINUTES", "15").parse().unwrap_or(15);
    let key = Key::passphrase(env(
        "BACKUP_PASSPHRASE",
        "example only: set BACKUP_PASSPHRASE",
    ));

    let job = Job::builder("app-db")
        .backup(
            Backup::builder()
                .source_arc(source(&db, &SourceOptions::default())?)
                .sink(open_sink(&repo)?)
                .transform(Zstd::new(3))
                .encryption(key)
                .label("service", "example"),
        )
        .schedule(dbbackup::service::Schedule::parse(&format!(
            "*/{every} * * * *"
        ))?)
        .keep(KeepPolicy {
            keep_within: Some(Duration::from_secs(7 * 86400)),
            ..KeepPolicy::default()
        })
        // Up to a minute late, so that many instances do not start at the same second.
        .jitter(Duration::from_secs(60.min(u64::from(every) * 30)))
        .on_failure(hook(|c| async move {
            eprintln!(
                "backup of {} failed: {}",
                c.job,
                c.error.unwrap_or_default()
            );
            Ok(())
        }))
        .build()?;

    let cancel = CancellationToken::new();
    let scheduler = Scheduler::new()
        .job(job)
        .subscribe(|e: &Event| match e {
            Event::JobFinished {
                job,
                status,
                backup_id,
                elapsed,
                pruned,
                ..
            } => println!(
                "{job}: {status} {} in {:.1}s, pruned {}",
                backup_id.as_deref().unwrap_or("-"),
                elapsed.as_secs_f64(),
                pruned.len()
            ),
            Event::JobSkipped { job, reason, .. } => println!("{job}: skipped ({reason})"),
            _ => {}
        })
        .start(cancel.clone());
    println!("backing up {db} every {every} min into {repo}; Ctrl-C stops");

    // The application's own work would run here; this example only waits for Ctrl-C.
    let _ = tokio::signal::ctrl_c().await;
    cancel.cancel();
    scheduler.wait().await;
    Ok(())
}
