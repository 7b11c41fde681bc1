//! # dbbackup-service
//!
//! Backups that run themselves: [`Job`]s (a backup flow built with [`BackupBuilder`], its
//! retention, hooks and cron [`Schedule`]s) run by a [`Scheduler`] on tokio, with no overlap, a
//! limit on concurrent runs, jitter, catch-up after downtime (from the repository, not local
//! state), graceful shutdown through a `CancellationToken`, and every run reported through the
//! core's events ([`Event::JobStarted`], [`Event::JobSkipped`], [`Event::JobFinished`]).
//! Database-agnostic: any [`Source`](dbbackup_core::Source) and any sink.
//!
//! [`BackupBuilder`]: dbbackup_core::BackupBuilder
//! [`Event::JobStarted`]: dbbackup_core::Event::JobStarted
//! [`Event::JobSkipped`]: dbbackup_core::Event::JobSkipped
//! [`Event::JobFinished`]: dbbackup_core::Event::JobFinished

mod hooks;
mod job;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "notify")]
mod notify;
mod restore_test;
mod schedule;
mod scheduler;

pub use hooks::{command_hook, hook, Hook, HookContext, HookStage};
pub use job::{Job, JobBuilder, JobOperation, JobOutcome, KeepRetention, Prune, Trigger};
#[cfg(feature = "metrics")]
pub use metrics::Metrics;
#[cfg(feature = "notify")]
pub use notify::{
    Channel, Email, Notification, Notifier, NotifierBuilder, NotifyOn, SmtpTls, Webhook,
    WebhookFormat,
};
/// The metrics registry and encoder ([`Metrics::register`] takes its `Registry`).
#[cfg(feature = "metrics")]
pub use prometheus_client;
pub use restore_test::RestoreTest;
pub use schedule::Schedule;
pub use scheduler::{JobHandle, Scheduler, SchedulerHandle};
