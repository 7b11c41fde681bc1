//! The entries of a SQL Server backup and their typed metadata (stored in the manifest).

use dbbackup_core::{EntryRecord, Result, ServerBackupKind, TableRef};
use serde::{Deserialize, Serialize};

use crate::rows::ROW_FORMAT;

/// How an entry's bytes are written (schema entries record none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Format {
    /// A table's rows in `mssql-rows-v1` ([`ROW_FORMAT`]).
    #[serde(rename = "mssql-rows-v1")]
    Rows,
}

/// A database file of a server backup, as `RESTORE FILELISTONLY` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BackupFile {
    /// `LogicalName`.
    pub(crate) logical: Option<String>,
    /// `PhysicalName`, on the server that took the backup.
    pub(crate) physical: Option<String>,
    /// `Type`: `D` data, `L` log, ...
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
}

/// An entry's metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct EntryMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) format: Option<Format>,
    /// Data entries of a logical backup: the table and its columns.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub(crate) table: Option<TableRef>,
    /// The entry of a server backup: full, differential or log ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    /// ... the file the server wrote ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<String>,
    /// ... its size ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<u64>,
    /// ... and the database files it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) files: Option<Vec<BackupFile>>,
}

impl EntryMeta {
    /// The metadata of a logical data entry.
    pub(crate) fn rows(table: TableRef) -> Self {
        debug_assert_eq!(ROW_FORMAT, "mssql-rows-v1");
        EntryMeta {
            format: Some(Format::Rows),
            table: Some(table),
            ..EntryMeta::default()
        }
    }

    /// The metadata of a server backup's entry.
    pub(crate) fn server_backup(
        kind: ServerBackupKind,
        file: String,
        size: u64,
        files: Vec<BackupFile>,
    ) -> Self {
        EntryMeta {
            kind: Some(kind.as_str().to_owned()),
            file: Some(file),
            size: Some(size),
            files: Some(files),
            ..EntryMeta::default()
        }
    }

    /// The metadata of `entry`.
    pub(crate) fn read(entry: &EntryRecord) -> Result<Self> {
        entry.meta_of()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_its_stored_shape() {
        let m = EntryMeta::rows(TableRef {
            schema: Some("dbo".into()),
            name: "t".into(),
            table: "dbo.t".into(),
            columns: vec!["a".into()],
        });
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"format": "mssql-rows-v1", "schema": "dbo", "name": "t",
                               "table": "dbo.t", "columns": ["a"]})
        );
        assert_eq!(serde_json::from_value::<EntryMeta>(v).unwrap(), m);
        let files = vec![BackupFile {
            logical: Some("d".into()),
            physical: None,
            kind: Some("D".into()),
        }];
        let m = EntryMeta::server_backup(ServerBackupKind::Full, "f.bak".into(), 9, files);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"kind": "full", "file": "f.bak", "size": 9,
                               "files": [{"logical": "d", "physical": null, "type": "D"}]})
        );
    }
}
