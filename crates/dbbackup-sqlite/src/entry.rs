//! The one entry of a SQLite backup and its typed metadata (stored in the manifest).

use serde::{Deserialize, Serialize};

/// The one entry: the database file.
pub(crate) const ENTRY: &str = "database";

/// How the entry's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Format {
    /// A SQLite 3 database file (`VACUUM INTO`).
    #[serde(rename = "sqlite3-database-file")]
    DatabaseFile,
}

/// The entry's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryMeta {
    pub(crate) format: Format,
    /// The tables of the database (for `list` and humans; the restore takes the whole file).
    #[serde(default)]
    pub(crate) tables: Vec<String>,
    /// Each table's rows in the snapshot (restore tests compare them).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) rows: std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_its_stored_shape() {
        let m = EntryMeta {
            format: Format::DatabaseFile,
            tables: vec!["t".into()],
            rows: Default::default(),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"format": "sqlite3-database-file", "tables": ["t"]})
        );
        assert_eq!(serde_json::from_value::<EntryMeta>(v).unwrap(), m);
    }
}
