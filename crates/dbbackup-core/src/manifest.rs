//! The manifest: a backup's table of contents and its commit point. See `docs/FORMAT.md`.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::TransformSpec;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{random_bytes, DataKey, EncryptionInfo};
use crate::source::{EntryKind, SourceInfo};

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The prefix under which every backup lives.
pub(crate) const BACKUPS_PREFIX: &str = "backups/";

/// The object key of a backup's manifest.
pub fn manifest_key(backup_id: &str) -> String {
    format!("{BACKUPS_PREFIX}{backup_id}/MANIFEST")
}

/// The object key of a backup's `index`-th entry.
pub fn entry_key(backup_id: &str, index: usize) -> String {
    format!("{BACKUPS_PREFIX}{backup_id}/entries/{index:06}")
}

/// A new backup id: UTC time to the millisecond plus 24 random bits, so ids sort by time.
///
/// # Errors
/// When the OS random generator fails.
pub fn new_backup_id(at: OffsetDateTime) -> Result<String> {
    let t = at.to_offset(time::UtcOffset::UTC);
    let mut r = [0u8; 3];
    random_bytes(&mut r)?;
    Ok(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond(),
        hex::encode(r)
    ))
}

/// Whether `id` looks like a backup id (and is safe as a key segment).
pub fn is_valid_backup_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !id.starts_with('.')
}

/// How entry checksums are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumAlgorithm {
    /// Plain BLAKE3 (unencrypted backups).
    Blake3,
    /// BLAKE3 keyed from the backup's data key (encrypted backups: hashes reveal nothing).
    Blake3Keyed,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRecord {
    /// The entry's name, unique within the backup.
    pub name: String,
    /// What it holds.
    pub kind: EntryKind,
    /// Restore phase.
    pub phase: u32,
    /// Object key relative to the repository root.
    pub object: String,
    /// Bytes before transforms.
    pub raw_size: u64,
    /// Bytes stored.
    pub stored_size: u64,
    /// Rows, where the source counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Checksum of the plaintext (hex), per [`Manifest::checksum`].
    pub checksum: String,
    /// Plain BLAKE3 of the stored bytes (hex): checkable without a key.
    pub stored_checksum: String,
    /// Engine-specific facts the restore needs.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

impl EntryRecord {
    /// The entry's metadata as the engine's typed struct.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] naming the entry when the metadata does not have the engine's shape
    /// (a backup written by another engine, or by a newer version with a format this one does
    /// not know).
    pub fn meta_of<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        meta_from(&self.meta, &self.name)
    }

    /// The table whose rows the entry holds, as the engine names it in [`TableRef::table`]
    /// (`schema.table`, or the bare name in one-namespace engines); `None` for other entries.
    pub fn table(&self) -> Option<String> {
        self.meta
            .get("table")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
    }
}

/// The metadata every engine's table-data entry carries (flattened into the engine's own
/// entry metadata): which table, and which columns in which order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    /// The schema, in engines that have them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The table's name.
    pub name: String,
    /// How table selections name it: `schema.table`, or `name` where there are no schemas.
    pub table: String,
    /// The columns of the rows, in the order they were written.
    pub columns: Vec<String>,
}

/// `meta` of entry `name` as `T` (see [`EntryRecord::meta_of`]).
pub(crate) fn meta_from<T: serde::de::DeserializeOwned>(
    meta: &serde_json::Value,
    name: &str,
) -> Result<T> {
    let empty = serde_json::Value::Object(Default::default());
    let meta = if meta.is_null() { &empty } else { meta };
    T::deserialize(meta).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            format!(
                "entry {name:?} has metadata this engine cannot read ({e}); was the backup written \
                 by another engine or a newer dbbackup?"
            ),
        )
        .with_entry(name)
    })
}

/// A backup's manifest. Written last; a backup without one does not exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Repository format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The backup's id (sorts by time).
    pub backup_id: String,
    /// When the backup started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the backup finished (just before the manifest was written).
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Engine, server version, database and snapshot position.
    pub source: SourceInfo,
    /// The transform chain, in encoding order.
    pub transforms: Vec<TransformSpec>,
    /// The wrapped data key, when the backup is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// How entry checksums are computed.
    pub checksum: ChecksumAlgorithm,
    /// Every entry.
    pub entries: Vec<EntryRecord>,
    /// User labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The backup this one builds on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Warnings the source reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Objects the database held that this backup leaves out (`kind name`), accepted when it was
    /// taken; a restore of it is not the whole database, and says so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
}

impl Manifest {
    /// Total plaintext bytes.
    pub fn raw_size(&self) -> u64 {
        self.entries.iter().map(|e| e.raw_size).sum()
    }

    /// Total stored bytes (without the manifest).
    pub fn stored_size(&self) -> u64 {
        self.entries.iter().map(|e| e.stored_size).sum()
    }

    /// The entry called `name`.
    pub fn entry(&self, name: &str) -> Option<&EntryRecord> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// The largest manifest read (a crafted object must not exhaust memory): room for about a
/// million entries.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 512 << 20;

/// The second line of a sealed object (a manifest or the repository config).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Seal {
    pub(crate) blake3: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mac: Option<String>,
}

/// Writes `body` and its seal: line 1 the body, line 2 `{"blake3": ..., "mac": ...}`.
pub(crate) fn sealed_object(mut body: Vec<u8>, mac: Option<blake3::Hash>) -> Bytes {
    let seal = Seal {
        blake3: blake3::hash(&body).to_hex().to_string(),
        mac: mac.map(|m| m.to_hex().to_string()),
    };
    body.push(b'\n');
    body.extend_from_slice(&serde_json::to_vec(&seal).expect("seal serializes"));
    body.push(b'\n');
    Bytes::from(body)
}

/// Splits a sealed object into its body and seal, checking the body's unkeyed BLAKE3. `what`
/// names the object in messages ("manifest", "repository config").
pub(crate) fn open_sealed(bytes: &Bytes, what: &str) -> Result<(Bytes, Seal)> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| Error::corrupt(format!("the {what} has no seal line (truncated)")))?;
    let body = bytes.slice(..nl);
    let rest = bytes.slice(nl + 1..);
    let rest = rest.strip_suffix(b"\n").unwrap_or(&rest);
    let seal: Seal = serde_json::from_slice(rest)
        .map_err(|e| Error::corrupt(format!("the {what} seal is unreadable: {e}")))?;
    if blake3::hash(&body).to_hex().as_str() != seal.blake3 {
        return Err(Error::corrupt(format!(
            "{what} checksum mismatch: the {what} is damaged"
        )));
    }
    Ok((body, seal))
}

/// Checks a hex MAC against the expected one (in constant time).
pub(crate) fn mac_matches(given: &str, want: &blake3::Hash) -> bool {
    blake3::Hash::from_hex(given).is_ok_and(|g| g == *want)
}

/// Serializes a manifest: line 1 the JSON body, line 2 a seal with the body's BLAKE3 and, for an
/// encrypted backup, a MAC keyed from the data key.
pub(crate) fn seal(manifest: &Manifest, data_key: Option<&DataKey>) -> Result<Bytes> {
    let body = serde_json::to_vec(manifest)
        .map_err(|e| Error::internal(format!("manifest serialization failed: {e}")))?;
    let mac = data_key.map(|k| blake3::keyed_hash(&k.mac_key(), &body));
    Ok(sealed_object(body, mac))
}

/// A manifest as read from storage, before its MAC is checked.
#[derive(Clone)]
pub(crate) struct OpenedManifest {
    pub(crate) manifest: Manifest,
    body: Bytes,
    mac: Option<String>,
}

impl OpenedManifest {
    /// Checks the MAC with the backup's data key.
    pub(crate) fn authenticate(&self, key: &DataKey) -> Result<()> {
        let Some(mac) = &self.mac else {
            return Err(Error::corrupt(
                "the manifest of an encrypted backup carries no MAC (it was altered)",
            ));
        };
        let want = blake3::keyed_hash(&key.mac_key(), &self.body);
        if !mac_matches(mac, &want) {
            return Err(Error::corrupt(
                "the manifest was modified after it was written (MAC mismatch)",
            ));
        }
        Ok(())
    }
}

/// Parses and checks the unkeyed parts of a stored manifest.
pub(crate) fn open(bytes: &Bytes, backup_id: &str) -> Result<OpenedManifest> {
    let ctx = |e: Error| {
        e.with_backup(backup_id)
            .with_object(manifest_key(backup_id))
    };
    let (body, seal) = open_sealed(bytes, "manifest").map_err(ctx)?;
    // Read the version first, so a newer format gets a clear message instead of a parse error.
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = serde_json::from_slice(&body)
        .map_err(|e| ctx(Error::corrupt(format!("manifest is unreadable: {e}"))))?;
    if v.format_version != FORMAT_VERSION {
        return Err(ctx(Error::new(
            ErrorKind::Unsupported,
            format!(
                "backup uses repository format version {}, this build reads version {FORMAT_VERSION}; \
                 use a dbbackup release that supports it",
                v.format_version
            ),
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| ctx(Error::corrupt(format!("manifest is unreadable: {e}"))))?;
    if manifest.backup_id != backup_id {
        return Err(ctx(Error::corrupt(format!(
            "manifest stored under backup {backup_id} describes backup {} (moved or replaced)",
            manifest.backup_id
        ))));
    }
    if manifest.encryption.is_some() && seal.mac.is_none() {
        return Err(ctx(Error::corrupt(
            "the manifest of an encrypted backup carries no MAC (it was altered)",
        )));
    }
    Ok(OpenedManifest {
        manifest,
        body,
        mac: seal.mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ids_sort_by_time_and_are_key_safe() {
        let a = new_backup_id(time::macros::datetime!(2026-01-02 03:04:05.678 UTC)).unwrap();
        let b = new_backup_id(time::macros::datetime!(2026-01-02 03:04:06 UTC)).unwrap();
        assert!(a.starts_with("20260102T030405.678Z-"), "{a}");
        assert!(a < b);
        assert!(is_valid_backup_id(&a));
        assert!(!is_valid_backup_id("../x"));
        assert!(!is_valid_backup_id("a/b"));
    }
}
