//! The one runner of every operation: its tracing span, cancellation by token, and the
//! Finished / Failed events.

use super::*;

/// What a finished operation reports in its `Finished` event.
pub(super) struct Totals {
    pub(super) raw_bytes: u64,
    pub(super) stored_bytes: u64,
    pub(super) elapsed: Duration,
}

/// Runs `work` for `operation` on `backup_id`: inside a tracing span, stopped when `cancel` fires
/// ([`ErrorKind::Cancelled`]), then emits `Finished` (with `totals` of the result) or `Failed`.
/// `on_error` runs before the `Failed` event (e.g. a failed backup removing what it wrote).
pub(super) async fn run_operation<T, W, E>(
    operation: Operation,
    backup_id: &str,
    emitter: &Emitter,
    cancel: Option<&CancellationToken>,
    work: W,
    totals: impl FnOnce(&T) -> Totals,
    on_error: impl FnOnce(&Error) -> E,
) -> Result<T>
where
    W: std::future::Future<Output = Result<T>>,
    E: std::future::Future<Output = ()>,
{
    let span = match operation {
        Operation::Backup => tracing::info_span!("backup", backup_id = %backup_id),
        Operation::Restore => tracing::info_span!("restore", backup_id = %backup_id),
        Operation::Verify => tracing::info_span!("verify", backup_id = %backup_id),
    };
    let work = work.instrument(span);
    let result = match cancel {
        Some(token) => tokio::select! {
            r = work => r,
            _ = token.cancelled() => Err(Error::cancelled()),
        },
        None => work.await,
    };
    match result {
        Ok(r) => {
            let t = totals(&r);
            emitter.emit(Event::Finished {
                operation,
                backup_id: backup_id.to_owned(),
                raw_bytes: t.raw_bytes,
                stored_bytes: t.stored_bytes,
                elapsed: t.elapsed,
            });
            Ok(r)
        }
        Err(e) => {
            let e = e.with_backup(backup_id);
            on_error(&e).await;
            emitter.emit(Event::Failed {
                operation,
                backup_id: backup_id.to_owned(),
                kind: e.kind(),
                message: e.to_string(),
            });
            Err(e)
        }
    }
}
