//! SQL Server engine for dbbackup.
//!
//! * [`statement`]: typed builders for `BACKUP DATABASE` / `BACKUP LOG` / `RESTORE ...`, with
//!   names and paths quoted by [`quote`].

pub mod quote;
pub mod statement;
