//! The reconnect loop of the long-running archivers (WAL and binlog streaming): a session runs
//! until it ends; a failure a retry can fix starts a new one after a wait (1 s, doubling to 30 s,
//! back to 1 s after a session that lasted a minute); one a retry cannot fix ends the loop.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};

/// Whether a failed session is worth retrying: not for what a new connection cannot change (a
/// conflicting archive, a wrong key, bad input, something missing, damage, an unsupported
/// server).
pub fn retryable(e: &Error) -> bool {
    !matches!(
        e.kind(),
        ErrorKind::AlreadyExists
            | ErrorKind::WrongKey
            | ErrorKind::InvalidInput
            | ErrorKind::NotFound
            | ErrorKind::Corrupt
            | ErrorKind::Unsupported
    )
}

/// Runs `session` until it returns `Ok` or a failure that is not [`retryable`] (returned), or
/// `cancel` fires while waiting (`Ok`). `lost` hears of each retried failure and the wait before
/// the next attempt. With `retry` false the first failure is returned.
pub async fn keep_running<F, Fut>(
    cancel: &CancellationToken,
    retry: bool,
    mut session: F,
    mut lost: impl FnMut(&Error, Duration),
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut wait = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        match session().await {
            Ok(()) => return Ok(()),
            Err(e) if !retry || !retryable(&e) => return Err(e),
            Err(e) => {
                if started.elapsed() > Duration::from_secs(60) {
                    wait = Duration::from_secs(1);
                }
                lost(&e, wait);
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}
