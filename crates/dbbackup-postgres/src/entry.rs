//! The entries of a PostgreSQL backup and their typed metadata (stored in the manifest).

use dbbackup_core::TableRef;
use serde::{Deserialize, Serialize};

/// The pre-data entry: schemas, types, tables, functions, views ...
pub(crate) const PRE_DATA: &str = "pre-data";
/// The post-data entry: keys, indexes, triggers, sequence values ...
pub(crate) const POST_DATA: &str = "post-data";

/// How an entry's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Format {
    /// Statements, one JSON object per line (`dbbackup_core::statements`).
    #[serde(rename = "statements-jsonl")]
    Statements,
    /// A table's rows in `COPY ... TO STDOUT` text format.
    #[serde(rename = "copy-text")]
    CopyText,
    /// A `pg_dump --format=custom` archive.
    #[serde(rename = "pg_dump-custom")]
    PgDumpCustom,
    /// Large objects' data (`large_objects.rs`).
    #[serde(rename = "large-objects-v1")]
    LargeObjects,
    /// A physical base backup: the base tablespace as `pg_basebackup --format=tar` writes it,
    /// `backup_manifest` included (`physical.rs`).
    #[serde(rename = "base-tar")]
    BaseTar,
    /// The server's `backup_manifest` of a base backup, kept apart too (the parent of an
    /// incremental backup is named by it).
    #[serde(rename = "backup-manifest")]
    BaseManifest,
}

/// An entry's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EntryMeta {
    pub(crate) format: Format,
    /// Data entries: the table and its columns.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub(crate) table: Option<TableRef>,
    /// A part of a big table: its heap block range `[from, to)` (`to` open for the last part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) blocks: Option<(i64, Option<i64>)>,
    /// The post-data entry of a data-only backup: only the sequence values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) sequences_only: bool,
    /// Data entries: the table's keys and indexes (copies of post-data statements), which a
    /// restore into a new database may build once every part of the table is loaded; post-data
    /// then skips them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) indexes: Vec<dbbackup_core::statements::Statement>,
}

impl EntryMeta {
    /// The metadata of `entry`.
    pub(crate) fn read(entry: &dbbackup_core::EntryRecord) -> dbbackup_core::Result<Self> {
        entry.meta_of()
    }

    /// Metadata of an entry in `format` with nothing else.
    pub(crate) fn of(format: Format) -> Self {
        EntryMeta {
            format,
            table: None,
            blocks: None,
            sequences_only: false,
            indexes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_its_stored_shape() {
        let m = EntryMeta {
            table: Some(TableRef {
                schema: Some("s".into()),
                name: "t".into(),
                table: "s.t".into(),
                columns: vec!["a".into()],
            }),
            blocks: Some((0, None)),
            ..EntryMeta::of(Format::CopyText)
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"format": "copy-text", "schema": "s", "name": "t", "table": "s.t",
                               "columns": ["a"], "blocks": [0, null]})
        );
        assert_eq!(serde_json::from_value::<EntryMeta>(v).unwrap(), m);
        let seq = serde_json::json!({"format": "statements-jsonl", "sequences_only": true});
        let m: EntryMeta = serde_json::from_value(seq).unwrap();
        assert!(m.sequences_only && m.table.is_none());
        assert!(serde_json::from_value::<EntryMeta>(serde_json::json!({"format": "x"})).is_err());
    }
}
