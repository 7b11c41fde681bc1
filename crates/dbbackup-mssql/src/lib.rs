//! SQL Server engine for dbbackup.
//!
//! * [`statement`]: typed builders for `BACKUP DATABASE` / `BACKUP LOG` / `RESTORE ...`, with
//!   names and paths quoted by [`quote`].

pub mod config;
pub mod conn;
pub mod quote;
pub mod statement;

pub use config::{redact, MsUrl, ENGINE, NATIVE_ENGINE};
pub use conn::{connect_to, ms_error, MsClient};

pub mod native;
#[cfg(feature = "testing")]
pub mod testing;
pub use native::{NativeKind, NativeSource, NativeTarget, SharedDir};
pub mod restore;
pub mod schema;
pub mod source;
pub mod types;
pub use restore::MssqlTarget;
pub use source::{Filter, MssqlSource};
