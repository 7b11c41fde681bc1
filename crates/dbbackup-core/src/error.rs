//! The one public error type of `dbbackup-core`.

use std::fmt;

/// What went wrong, in a form a caller can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A backup, entry, object or key that was asked for does not exist.
    NotFound,
    /// Something that must be unique already exists (a backup id, a create-only object).
    AlreadyExists,
    /// Stored data failed a checksum, an authentication tag, a size check or could not be parsed.
    Corrupt,
    /// The key or passphrase given is not the one the backup was written with.
    WrongKey,
    /// The repository, backup or request uses a feature or version this build does not support.
    Unsupported,
    /// The caller passed something invalid (a bad option, a malformed URL or key).
    InvalidInput,
    /// A local I/O error.
    Io,
    /// The database being backed up failed.
    Source,
    /// The restore target (a database being restored into) failed.
    Target,
    /// The storage backend failed.
    Sink,
    /// The operation was cancelled by the caller.
    Cancelled,
    /// A bug or broken invariant inside dbbackup.
    Internal,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::WrongKey => "wrong key",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Io => "i/o error",
            ErrorKind::Source => "source error",
            ErrorKind::Target => "restore target error",
            ErrorKind::Sink => "storage error",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible `dbbackup-core` call.
///
/// Carries a [`kind`](Error::kind), a human message that says what was expected, what was found
/// and what to do, the context it happened in (backup id, entry, object key), whether a retry can
/// help, and the underlying cause.
pub struct Error {
    kind: ErrorKind,
    message: String,
    backup: Option<String>,
    entry: Option<String>,
    object: Option<String>,
    temporary: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            backup: None,
            entry: None,
            object: None,
            temporary: false,
            source: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The backup the error happened in, if known.
    pub fn backup(&self) -> Option<&str> {
        self.backup.as_deref()
    }

    /// The entry the error happened in, if known.
    pub fn entry(&self) -> Option<&str> {
        self.entry.as_deref()
    }

    /// The storage object key the error happened on, if known.
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// Whether retrying the same operation may succeed (a timeout, a 5xx, a reset connection).
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Marks the error as temporary (retrying may help).
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Adds the backup id, unless one is already set (the innermost context wins).
    pub fn with_backup(mut self, backup: impl Into<String>) -> Self {
        if self.backup.is_none() {
            self.backup = Some(backup.into());
        }
        self
    }

    /// The error without its backup id (an operation that failed before it wrote anything under
    /// that id: naming it would suggest a backup that never existed).
    pub(crate) fn without_backup(mut self) -> Self {
        self.backup = None;
        self
    }

    /// Adds the entry name, unless one is already set.
    pub fn with_entry(mut self, entry: impl Into<String>) -> Self {
        if self.entry.is_none() {
            self.entry = Some(entry.into());
        }
        self
    }

    /// Adds the object key, unless one is already set.
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        if self.object.is_none() {
            self.object = Some(object.into());
        }
        self
    }

    /// Replaces the kind, keeping message and context (e.g. a source's I/O error becomes `Source`).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// The error for a cancelled operation.
    pub fn cancelled() -> Self {
        Error::new(ErrorKind::Cancelled, "the operation was cancelled")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        let mut ctx = Vec::new();
        if let Some(b) = self
            .backup
            .as_ref()
            .filter(|b| !self.message.contains(b.as_str()))
        {
            ctx.push(format!("backup {b}"));
        }
        if let Some(e) = &self.entry {
            ctx.push(format!("entry {e:?}"));
        }
        if let Some(o) = &self.object {
            ctx.push(format!("object {o}"));
        }
        if !ctx.is_empty() {
            write!(f, " ({})", ctx.join(", "))?;
        }
        // The cause is not repeated: messages already say what it said, and error reporters
        // that walk `source()` would print it twice.
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Display already carries everything; Debug stays readable in `unwrap()` panics.
        write!(f, "Error {{ kind: {:?}, {} }}", self.kind, self)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::InvalidData | K::UnexpectedEof => ErrorKind::Corrupt,
            _ => ErrorKind::Io,
        };
        let temporary = matches!(
            e.kind(),
            K::TimedOut
                | K::Interrupted
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::WouldBlock
        );
        let mut err = Error::new(kind, e.to_string());
        err.temporary = temporary;
        err.with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_context_innermost_wins() {
        let e = Error::corrupt("checksum mismatch")
            .with_entry("public.t")
            .with_backup("B1")
            .with_entry("outer");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert_eq!(e.entry(), Some("public.t"));
        assert_eq!(
            e.to_string(),
            "corrupt: checksum mismatch (backup B1, entry \"public.t\")"
        );
    }

    #[test]
    fn io_errors_map_to_kinds() {
        let e: Error = std::io::Error::new(std::io::ErrorKind::NotFound, "x").into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e: Error = std::io::Error::new(std::io::ErrorKind::TimedOut, "x").into();
        assert!(e.is_temporary());
        assert!(
            std::error::Error::source(&e).is_some(),
            "the io::Error is kept as the cause"
        );
    }
}
