//! Keys: the user's master key (raw or from a passphrase), per-backup data keys wrapped by it,
//! and the subkeys derived from a data key. Everything secret is zeroized on drop and never printed.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    getrandom::getrandom(buf).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("the OS random generator failed: {e}"),
        )
    })
}

/// A 256-bit master key. Wraps (encrypts) the data key of every backup.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A new random key (for `dbbackup key generate` and tests).
    ///
    /// # Errors
    /// When the OS random generator fails.
    pub fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; 32]);
        random_bytes(k.as_mut())?;
        Ok(MasterKey(k))
    }

    /// Parses a key written as 64 hex digits or as standard base64 of 32 bytes (surrounding
    /// whitespace, such as a key file's newline, is ignored).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the text is neither; the message never contains the text.
    pub fn from_encoded(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = Zeroizing::new(if text.len() == 64 {
            hex::decode(text).ok()
        } else {
            B64.decode(text).ok()
        });
        match bytes.as_deref() {
            Some(b) if b.len() == 32 => {
                let mut k = Zeroizing::new([0u8; 32]);
                k.copy_from_slice(b);
                Ok(MasterKey(k))
            }
            _ => Err(Error::invalid(format!(
                "a raw key must be 32 bytes written as 64 hex digits or as base64 (44 characters); \
                 got {} characters that are neither. Generate one with `openssl rand -hex 32`",
                text.len()
            ))),
        }
    }

    /// Reads a key (hex or base64) from the environment variable `var`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the variable is unset or does not hold a key; the message
    /// names the variable, never its value.
    pub fn from_env(var: &str) -> Result<Self> {
        let value = Zeroizing::new(std::env::var(var).map_err(|_| {
            Error::invalid(format!(
                "the key variable {var} is not set (or not valid UTF-8)"
            ))
        })?);
        Self::from_encoded(&value)
            .map_err(|e| Error::invalid(format!("the key in {var} is not usable: {}", e.message())))
    }

    /// Reads a key (hex or base64) from a file.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`]/[`ErrorKind::Io`] when the file cannot be read,
    /// [`ErrorKind::InvalidInput`] when it does not hold a key.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::from(e).with_object(path.display().to_string()))?,
        );
        Self::from_encoded(&text).map_err(|e| {
            Error::invalid(format!(
                "the key file {} is not usable: {}",
                path.display(),
                e.message()
            ))
        })
    }

    /// The key's public identifier: the first 8 bytes of a BLAKE3 derivation, in hex.
    pub fn key_id(&self) -> String {
        let d = blake3::derive_key("dbbackup 2026-11 master key id", self.0.as_ref());
        hex::encode(&d[..8])
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_ref()).expect("32-byte key")
    }

    /// The MAC of a repository config body under this key (the config's key check).
    pub(crate) fn config_mac(&self, body: &[u8]) -> blake3::Hash {
        let k = Zeroizing::new(blake3::derive_key(
            "dbbackup 2026-12 repository config mac",
            self.0.as_ref(),
        ));
        blake3::keyed_hash(&k, body)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey {{ id: {} }}", self.key_id())
    }
}

/// Argon2id parameters and salt that turn a passphrase into a master key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Always `argon2id` in format version 1.
    pub algorithm: String,
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism.
    pub p_cost: u32,
    /// Random salt, base64.
    pub salt: String,
}

impl fmt::Debug for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KdfParams {{ {} m={}KiB t={} p={} }}",
            self.algorithm, self.m_cost_kib, self.t_cost, self.p_cost
        )
    }
}

impl KdfParams {
    /// The weakest accepted memory cost: OWASP's Argon2id minimum, 19 MiB.
    pub const MIN_M_COST_KIB: u32 = 19 * 1024;
    /// The fewest accepted passes (OWASP's minimum with 19 MiB).
    pub const MIN_T_COST: u32 = 2;
    /// The largest accepted memory cost, 1 GiB: stored parameters above it are refused, so a
    /// tampered config or manifest cannot make a derivation exhaust memory.
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    /// The most accepted passes.
    pub const MAX_T_COST: u32 = 64;
    /// The most accepted lanes.
    pub const MAX_P_COST: u32 = 16;

    /// Argon2id with 64 MiB, 3 passes, 1 lane and a fresh 16-byte salt.
    ///
    /// # Errors
    /// When the OS random generator fails.
    pub fn recommended() -> Result<Self> {
        Self::new(64 * 1024, 3, 1)
    }

    /// The cheapest accepted setup (19 MiB, 2 passes, 1 lane): for tests and small machines.
    ///
    /// # Errors
    /// When the OS random generator fails.
    pub fn minimum() -> Result<Self> {
        Self::new(Self::MIN_M_COST_KIB, Self::MIN_T_COST, 1)
    }

    /// Argon2id with the given costs and a fresh salt. Costs outside
    /// [`MIN_M_COST_KIB`](Self::MIN_M_COST_KIB)..=[`MAX_M_COST_KIB`](Self::MAX_M_COST_KIB),
    /// [`MIN_T_COST`](Self::MIN_T_COST)..=[`MAX_T_COST`](Self::MAX_T_COST) and
    /// 1..=[`MAX_P_COST`](Self::MAX_P_COST) are refused.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for costs out of range.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        if let Some(problem) = Self::cost_problem(m_cost_kib, t_cost, p_cost) {
            return Err(Error::invalid(format!(
                "Argon2id costs m={m_cost_kib}KiB t={t_cost} p={p_cost} {problem} \
                 (recommended: m=65536KiB t=3 p=1)"
            )));
        }
        let mut salt = [0u8; 16];
        random_bytes(&mut salt)?;
        Ok(KdfParams {
            algorithm: "argon2id".into(),
            m_cost_kib,
            t_cost,
            p_cost,
            salt: B64.encode(salt),
        })
    }

    fn cost_problem(m: u32, t: u32, p: u32) -> Option<String> {
        let (min_m, min_t) = (Self::MIN_M_COST_KIB, Self::MIN_T_COST);
        let (max_m, max_t, max_p) = (Self::MAX_M_COST_KIB, Self::MAX_T_COST, Self::MAX_P_COST);
        if m < min_m || t < min_t || p < 1 {
            Some(format!(
                "are below the accepted floor m={min_m}KiB t={min_t} p=1 (OWASP's Argon2id minimum)"
            ))
        } else if m > max_m || t > max_t || p > max_p {
            Some(format!(
                "are above the accepted ceiling m={max_m}KiB t={max_t} p={max_p}"
            ))
        } else {
            None
        }
    }

    /// Derives the master key for `passphrase`. CPU- and memory-heavy by design: call it from a
    /// blocking thread. Stored parameters outside the accepted range are refused before any work.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] for an unknown algorithm, [`ErrorKind::Corrupt`] for parameters
    /// out of range or malformed (they were altered, or written by a build without the bounds).
    pub fn derive(&self, passphrase: &str) -> Result<MasterKey> {
        if let Some(problem) = Self::cost_problem(self.m_cost_kib, self.t_cost, self.p_cost) {
            return Err(Error::corrupt(format!(
                "the stored Argon2id parameters m={}KiB t={} p={} {problem}; they were altered \
                 (or written by a build without these bounds), so no key is derived from them",
                self.m_cost_kib, self.t_cost, self.p_cost
            )));
        }
        if self.algorithm != "argon2id" {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "key derivation {:?} is not supported (only argon2id)",
                    self.algorithm
                ),
            ));
        }
        let salt = B64
            .decode(&self.salt)
            .map_err(|_| Error::corrupt("the Argon2id salt is not valid base64"))?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| Error::corrupt(format!("invalid Argon2id parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
            .map_err(|e| Error::corrupt(format!("Argon2id failed: {e}")))?;
        Ok(MasterKey(out))
    }
}

/// A credential the user gives: a raw key, or a passphrase that Argon2id turns into one.
///
/// A passphrase remembers the master keys derived from it (per Argon2id setup), shared by its
/// clones, so verifying or re-keying many backups derives each key once.
#[derive(Clone)]
pub struct Key {
    secret: Secret,
    derived: Arc<Mutex<HashMap<String, MasterKey>>>,
}

#[derive(Clone)]
enum Secret {
    Raw(MasterKey),
    Passphrase(Zeroizing<String>),
}

impl Key {
    /// A passphrase credential.
    pub fn passphrase(p: impl Into<String>) -> Self {
        Key {
            secret: Secret::Passphrase(Zeroizing::new(p.into())),
            derived: Arc::default(),
        }
    }

    /// A raw key credential.
    pub fn raw(k: MasterKey) -> Self {
        Key {
            secret: Secret::Raw(k),
            derived: Arc::default(),
        }
    }

    /// Turns the credential into a master key. `kdf` is the Argon2id setup the key must be derived
    /// with (the repository's, or a backup's); `what` names it in errors ("backup X"). A derivation is
    /// CPU- and memory-heavy: call this from a blocking thread.
    ///
    /// # Errors
    /// [`ErrorKind::WrongKey`] when a passphrase is given for a raw-key backup.
    pub(crate) fn resolve(&self, kdf: Option<&KdfParams>, what: &str) -> Result<MasterKey> {
        match (&self.secret, kdf) {
            (Secret::Raw(k), _) => Ok(k.clone()),
            (Secret::Passphrase(p), Some(kdf)) => {
                let id = format!(
                    "{}:{}:{}:{}:{}",
                    kdf.algorithm, kdf.salt, kdf.m_cost_kib, kdf.t_cost, kdf.p_cost
                );
                if let Some(k) = self.derived.lock().expect("key cache lock").get(&id) {
                    return Ok(k.clone());
                }
                let k = kdf.derive(p)?;
                self.derived
                    .lock()
                    .expect("key cache lock")
                    .insert(id, k.clone());
                Ok(k)
            }
            (Secret::Passphrase(_), None) => Err(Error::new(
                ErrorKind::WrongKey,
                format!(
                    "wrong key for {what}: it was encrypted with a raw key, but a \
                     passphrase was given; pass the key file or key variable instead"
                ),
            )),
        }
    }

    /// Whether this is a passphrase (needs Argon2id parameters).
    pub fn is_passphrase(&self) -> bool {
        matches!(self.secret, Secret::Passphrase(_))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.secret {
            Secret::Raw(k) => write!(f, "Key::Raw({k:?})"),
            Secret::Passphrase(_) => f.write_str("Key::Passphrase(<redacted>)"),
        }
    }
}

/// How a backup's data key is stored in its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionInfo {
    /// Always `aes-256-gcm` (the data-key wrap) in format version 1.
    pub wrap_algorithm: String,
    /// Id of the master key that wraps the data key.
    pub key_id: String,
    /// When the master key comes from a passphrase: how it was derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    /// base64 of `nonce (12) || AES-256-GCM(master key, data key) (32 + 16)`.
    pub wrapped_key: String,
}

/// A backup's random data key. Everything stored in the backup is keyed from it.
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

fn wrap_aad(backup_id: &str) -> Vec<u8> {
    let mut aad = b"dbbackup data key v1\0".to_vec();
    aad.extend_from_slice(backup_id.as_bytes());
    aad
}

impl DataKey {
    pub(crate) fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; 32]);
        random_bytes(k.as_mut())?;
        Ok(DataKey(k))
    }

    #[cfg(test)]
    pub(crate) fn from_test_bytes(k: [u8; 32]) -> Self {
        DataKey(Zeroizing::new(k))
    }

    /// Wraps this data key with `master` for `backup_id`.
    pub(crate) fn wrap(
        &self,
        master: &MasterKey,
        kdf: Option<KdfParams>,
        backup_id: &str,
    ) -> Result<EncryptionInfo> {
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce)?;
        let aad = wrap_aad(backup_id);
        let ct = master
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: self.0.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::internal("wrapping the data key failed"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(EncryptionInfo {
            wrap_algorithm: "aes-256-gcm".into(),
            key_id: master.key_id(),
            kdf,
            wrapped_key: B64.encode(blob),
        })
    }

    /// Unwraps the data key of `backup_id` with `key`.
    ///
    /// # Errors
    /// [`ErrorKind::WrongKey`] when the key is not the one the backup was written with.
    #[cfg(test)]
    pub(crate) fn unwrap(info: &EncryptionInfo, key: &Key, backup_id: &str) -> Result<Self> {
        let master = key.resolve(info.kdf.as_ref(), &format!("backup {backup_id}"))?;
        Self::unwrap_with(info, &master, key.is_passphrase(), backup_id)
    }

    /// Unwraps with an already resolved master key (`passphrase` only shapes the message).
    pub(crate) fn unwrap_with(
        info: &EncryptionInfo,
        master: &MasterKey,
        passphrase: bool,
        backup_id: &str,
    ) -> Result<Self> {
        if info.wrap_algorithm != "aes-256-gcm" {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("key wrap {:?} is not supported", info.wrap_algorithm),
            ));
        }
        // The id of the key given is never printed: it would help an offline guess of the
        // passphrase to whoever reads the message.
        if master.key_id() != info.key_id {
            let what = if passphrase { "passphrase" } else { "key" };
            return Err(Error::new(
                ErrorKind::WrongKey,
                format!(
                    "wrong {what} for backup {backup_id}: it was encrypted with key id {}, \
                     which the {what} given is not",
                    info.key_id
                ),
            ));
        }
        let blob = B64
            .decode(&info.wrapped_key)
            .map_err(|_| Error::corrupt("the wrapped data key is not valid base64"))?;
        if blob.len() != 12 + 32 + 16 {
            return Err(Error::corrupt("the wrapped data key has the wrong length"));
        }
        let aad = wrap_aad(backup_id);
        let pt = Zeroizing::new(
            master
                .cipher()
                .decrypt(
                    Nonce::from_slice(&blob[..12]),
                    Payload {
                        msg: &blob[12..],
                        aad: &aad,
                    },
                )
                .map_err(|_| {
                    Error::new(
                        ErrorKind::WrongKey,
                        format!(
                            "wrong key for backup {backup_id} (key id {}): the data key does not \
                             unwrap with it, or the wrapped key was modified",
                            info.key_id
                        ),
                    )
                })?,
        );
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&pt);
        Ok(DataKey(k))
    }

    /// The AES-256 key for one entry's object.
    pub(crate) fn entry_key(&self, entry: &str) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("dbbackup 2026-11 entry encryption key");
        h.update(self.0.as_ref());
        h.update(entry.as_bytes());
        Zeroizing::new(*h.finalize().as_bytes())
    }

    /// The key of the plaintext checksums (so the manifest does not reveal hashes of the data).
    pub(crate) fn checksum_key(&self) -> [u8; 32] {
        blake3::derive_key("dbbackup 2026-11 plaintext checksum key", self.0.as_ref())
    }

    /// The key of the manifest's MAC.
    pub(crate) fn mac_key(&self) -> [u8; 32] {
        blake3::derive_key("dbbackup 2026-11 manifest mac key", self.0.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_keys_parse_and_bad_ones_do_not_echo() {
        let hexkey = "00".repeat(31) + "ff";
        let k = MasterKey::from_encoded(&format!("{hexkey}\n")).unwrap();
        let b = MasterKey::from_encoded(&B64.encode(*k.0)).unwrap();
        assert_eq!(k.key_id(), b.key_id());
        let err = MasterKey::from_encoded("secret-passphrase-not-a-key").unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert!(!format!("{:?}", Key::passphrase("hunter2")).contains("hunter2"));
    }

    #[test]
    fn keys_from_files() {
        let dir = std::env::temp_dir().join(format!("dbbackup-keytest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("key");
        std::fs::write(&f, format!("{}\n", "ab".repeat(32))).unwrap();
        assert_eq!(
            MasterKey::from_file(&f).unwrap().key_id(),
            MasterKey::from_bytes([0xab; 32]).key_id()
        );
        std::fs::write(&f, "nope").unwrap();
        let e = MasterKey::from_file(&f).unwrap_err();
        assert!(e.to_string().contains("not usable"), "{e}");
        let e = MasterKey::from_file(&dir.join("missing")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = MasterKey::from_env("DBBACKUP_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(
            e.to_string().contains("DBBACKUP_TEST_SURELY_UNSET_VAR"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn passphrases_derive_each_setup_once_across_clones() {
        let (a, b) = (KdfParams::minimum().unwrap(), KdfParams::minimum().unwrap());
        let key = Key::passphrase("pass");
        let clone = key.clone();
        let k1 = key.resolve(Some(&a), "B").unwrap();
        let k2 = clone.resolve(Some(&a), "B").unwrap();
        assert_eq!(k1.key_id(), k2.key_id());
        assert_eq!(
            key.derived.lock().unwrap().len(),
            1,
            "the clone reused the derivation"
        );
        let k3 = key.resolve(Some(&b), "B").unwrap();
        assert_ne!(k1.key_id(), k3.key_id(), "another salt is another key");
        assert_eq!(key.derived.lock().unwrap().len(), 2);
        assert_eq!(k1.key_id(), a.derive("pass").unwrap().key_id());
    }

    #[test]
    fn wrap_unwrap_and_wrong_keys() {
        let kdf = KdfParams::minimum().unwrap();
        let master = kdf.derive("correct horse").unwrap();
        let dk = DataKey::generate().unwrap();
        let info = dk.wrap(&master, Some(kdf.clone()), "B1").unwrap();
        let back = DataKey::unwrap(&info, &Key::passphrase("correct horse"), "B1").unwrap();
        assert_eq!(*back.0, *dk.0);

        let e = DataKey::unwrap(&info, &Key::passphrase("wrong"), "B1")
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::WrongKey);
        assert!(
            e.to_string().contains("wrong passphrase for backup B1"),
            "{e}"
        );

        let e = DataKey::unwrap(&info, &Key::raw(MasterKey::generate().unwrap()), "B1")
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::WrongKey);

        // The wrap is bound to the backup id.
        let e = DataKey::unwrap(&info, &Key::passphrase("correct horse"), "B2")
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::WrongKey);
    }
}
