//! Errors naming what failed.

use dbbackup_core::{Error, ErrorKind};

/// A SQL Server error while doing `what`. Server errors keep their number and message;
/// connection-level failures are marked temporary.
pub fn ms_error(e: tiberius::error::Error, kind: ErrorKind, what: &str) -> Error {
    described(&e, kind, what).with_source(e)
}

fn described(e: &tiberius::error::Error, kind: ErrorKind, what: &str) -> Error {
    use tiberius::error::Error as T;
    match e {
        T::Server(t) => {
            let kind = match t.code() {
                // Login failed, cannot open database, permission denied.
                18456 | 4060 => ErrorKind::InvalidInput,
                _ => kind,
            };
            let hint = match t.code() {
                18456 => "; check the user and password of the URL",
                4060 => "; check the database name of the URL and that the login may use it",
                262 | 229 | 230 => "; the login lacks a permission this needs",
                1801 => "; choose another name, or drop the existing database first",
                _ => "",
            };
            Error::new(
                kind,
                format!("{what}: {} (SQL Server error {}, state {}, severity {}){hint}", t.message(), t.code(), t.state(), t.class()),
            )
        }
        T::Io { .. } | T::Routing { .. } => {
            Error::new(kind, format!("{what}: connection lost or refused: {e}")).temporary()
        }
        T::Tls(m) => Error::new(
            kind,
            format!("{what}: TLS failed: {m}; for a server with a self-signed certificate add trust_server_certificate=true to the URL"),
        ),
        T::Protocol(m) if m.contains("encryption level") => Error::new(
            kind,
            format!("{what}: {m} The server offers no TLS; add encrypt=plaintext to the URL only if the network path is trusted (the password then crosses it in the clear)"),
        ),
        _ => Error::new(kind, format!("{what}: {e}")),
    }
}
