//! Errors with the table and statement named.

use dbbackup_core::{Error, ErrorKind};

/// A database error while doing `what`; connection-level failures are marked temporary.
pub fn pg_error(e: sqlx::Error, kind: ErrorKind, what: &str) -> Error {
    let temporary = matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut);
    let detail = match &e {
        sqlx::Error::Database(db) => {
            let mut s = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(d) = pg.detail() {
                    s.push_str(&format!(" ({d})"));
                }
                if let Some(h) = pg.hint() {
                    s.push_str(&format!("; hint: {h}"));
                }
            }
            s
        }
        other => other.to_string(),
    };
    let err = Error::new(kind, format!("{what}: {detail}")).with_source(e);
    if temporary {
        err.temporary()
    } else {
        err
    }
}
