//! Error mapping.

use std::path::Path;

use dbbackup_core::{Error, ErrorKind};

/// Maps a sqlx error on `path` to a dbbackup error of `kind`, saying what was being done.
pub fn sqlite_error(e: sqlx::Error, kind: ErrorKind, doing: &str, path: &Path) -> Error {
    Error::new(kind, format!("{doing} {}: {e}", path.display())).with_source(e)
}
