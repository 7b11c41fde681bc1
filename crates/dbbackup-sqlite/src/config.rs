//! Engine name and `sqlite://` URLs.

use std::path::PathBuf;

use dbbackup_core::{Error, ErrorKind, Result};

/// The engine name recorded in manifests.
pub const ENGINE: &str = "sqlite";

/// The path in a `sqlite://PATH` URL: `sqlite:///abs/path.db`, `sqlite://relative.db`, or
/// `sqlite:relative.db`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for another scheme or an empty path.
pub fn parse_url(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{url:?} is not a sqlite:// URL"),
            )
        })?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the sqlite:// URL names no file; use sqlite:///absolute/path.db or sqlite://relative.db",
        ));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("sqlite:///tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(parse_url("sqlite://a.db").unwrap(), PathBuf::from("a.db"));
        assert_eq!(parse_url("sqlite:a.db").unwrap(), PathBuf::from("a.db"));
        assert!(parse_url("sqlite://").is_err());
        assert!(parse_url("postgres://x").is_err());
    }
}
