//! One module per command.

pub(crate) mod backup;
pub(crate) mod binlog;
pub(crate) mod check;
pub(crate) mod daemon;
pub(crate) mod gc;
pub(crate) mod list;
pub(crate) mod prune;
pub(crate) mod rekey;
pub(crate) mod restore;
pub(crate) mod restore_test;
pub(crate) mod show;
pub(crate) mod verify;
pub(crate) mod wal;
