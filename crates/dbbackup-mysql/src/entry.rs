//! The entries of a MySQL backup and their typed metadata (stored in the manifest).

use dbbackup_core::{EntryRecord, Result, TableRef};
use serde::{Deserialize, Serialize};

/// The pre-data entry: tables, sequences, routines.
pub(crate) const PRE_DATA: &str = "pre-data";
/// The post-data entry: views, triggers, events, sequence values.
pub(crate) const POST_DATA: &str = "post-data";

/// How an entry's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Format {
    /// Statements, one JSON object per line (`dbbackup_core::statements`).
    #[serde(rename = "statements-jsonl")]
    Statements,
    /// A table's rows in `mysql-rows-v1` (`rows.rs`).
    #[serde(rename = "mysql-rows-v1")]
    Rows,
    /// A `mariadb-dump` / `mysqldump` SQL script.
    #[serde(rename = "mysqldump-sql")]
    DumpSql,
}

/// An entry's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EntryMeta {
    pub(crate) format: Format,
    /// Data entries: the table and its columns.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub(crate) table: Option<TableRef>,
    /// A part of a split table: `[this part (from 1), parts]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) part: Option<(u64, u64)>,
    /// The part's key range, for the reader of the manifest (the source uses its own).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub(crate) range: Option<String>,
    /// The pre-data entry: the database's default character set ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) charset: Option<String>,
    /// ... and collation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) collation: Option<String>,
    /// The pre-data entry: every object the backup creates, as `kind:name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) objects: Option<Vec<String>>,
}

impl EntryMeta {
    /// Metadata of an entry in `format` with nothing else.
    pub(crate) fn of(format: Format) -> Self {
        EntryMeta {
            format,
            table: None,
            part: None,
            range: None,
            charset: None,
            collation: None,
            objects: None,
        }
    }

    /// The metadata of `entry`.
    pub(crate) fn read(entry: &EntryRecord) -> Result<Self> {
        entry.meta_of()
    }

    /// The table of a data entry (its name is the table's: one namespace per database).
    pub(crate) fn table_name(&self) -> &str {
        self.table.as_ref().map_or("", |t| t.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_its_stored_shape() {
        let m = EntryMeta {
            table: Some(TableRef {
                schema: None,
                name: "t".into(),
                table: "t".into(),
                columns: vec!["a".into()],
            }),
            part: Some((1, 4)),
            range: Some("`id` < 10".into()),
            ..EntryMeta::of(Format::Rows)
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"format": "mysql-rows-v1", "name": "t", "table": "t",
                               "columns": ["a"], "part": [1, 4], "where": "`id` < 10"})
        );
        assert_eq!(serde_json::from_value::<EntryMeta>(v).unwrap(), m);
    }
}
