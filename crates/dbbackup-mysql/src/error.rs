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
    classified(kind, what, &detail, temporary).with_source(e)
}

/// A `mysql_async` error (the LOAD DATA connections) while restoring, as [`my_error`] does.
pub(crate) fn load_error(e: mysql_async::Error, what: &str) -> Error {
    let temporary = matches!(e, mysql_async::Error::Io(_));
    let detail = match &e {
        mysql_async::Error::Server(s) => format!("{} (error {})", s.message, s.code),
        other => other.to_string(),
    };
    classified(ErrorKind::Target, what, &detail, temporary).with_source(e)
}

fn classified(kind: ErrorKind, what: &str, detail: &str, temporary: bool) -> Error {
    let err = Error::new(kind, format!("{what}: {detail}"));
    if temporary {
        err.temporary()
    } else {
        err
    }
}
