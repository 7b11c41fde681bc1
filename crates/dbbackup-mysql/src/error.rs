//! Errors naming what failed.

use dbbackup_core::{Error, ErrorKind};

/// A database error while doing `what`; connection-level failures are marked temporary.
pub fn my_error(e: sqlx::Error, kind: ErrorKind, what: &str) -> Error {
    let temporary = matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut);
    let detail = match &e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (error {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    };
    let err = Error::new(kind, format!("{what}: {detail}"));
    if temporary {
        err.temporary()
    } else {
        err
    }
}
