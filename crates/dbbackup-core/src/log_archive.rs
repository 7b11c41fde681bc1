//! Log archives beside backups (`docs/FORMAT.md`, "Log archives"): PostgreSQL WAL segments and
//! history files, later binary-log pieces. Each piece is one object, `logs/<kind>/<name>`,
//! stored through zstd and, in an encrypted repository, AES-256-GCM STREAM under a data key of
//! its own (wrapped by the master key, as a backup's is), and committed by its seal,
//! `logs/<kind>/<name>.seal`: a sealed record (sizes, checksum, transforms, wrapped key) whose
//! MAC only the repository's key can make. Nothing without a seal exists for [`LogArchive::fetch`].
//!
//! A push is cheap enough for PostgreSQL's `archive_command` (one per 16 MiB segment): one
//! in-memory pass through the codecs on the calling thread, no thread pool, and no Argon2id
//! derivation with a raw key (a passphrase pays one per process).

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codec::{CodecChain, CodecContext, Transform, TransformSpec, Zstd};
use crate::crypto::{Aes256GcmStream, DEFAULT_CHUNK_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{DataKey, EncryptionInfo};
use crate::manifest::{self, FORMAT_VERSION};
use crate::repo::{blocking, build_chain, unwrap_data_key, Repository};
use crate::sink::{PutMode, SinkExt};

/// Where log archives live in a repository.
pub const LOGS_PREFIX: &str = "logs/";

/// The largest piece one push takes (a WAL segment is 16 MiB by default, 1 GiB at most).
pub const MAX_PIECE: usize = 1 << 30;

/// The sealed description of one archived piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// Always `dbbackup-log`.
    pub format: String,
    /// The repository format version.
    pub format_version: u32,
    /// The archive (`wal`, ...).
    pub kind: String,
    /// The piece's name (`000000010000000000000003`, `00000002.history`, ...).
    pub name: String,
    /// Plaintext bytes.
    pub size: u64,
    /// BLAKE3 of the plaintext (keyed from the data key when encrypted), hex.
    pub checksum: String,
    /// Stored bytes.
    pub stored_size: u64,
    /// The transforms, in the order they were applied.
    pub transforms: Vec<TransformSpec>,
    /// The wrapped data key, when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// When it was archived.
    #[serde(with = "time::serde::rfc3339")]
    pub archived_at: OffsetDateTime,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored now.
    Stored,
    /// The archive already held this piece with the same content (a retry): nothing was written.
    AlreadyArchived,
}

/// One kind of log archive in a repository.
#[derive(Debug, Clone)]
pub struct LogArchive {
    repo: Repository,
    kind: String,
    level: i32,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.ends_with(".seal")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The id a piece's data key is wrapped for and its codecs are keyed with.
fn piece_id(kind: &str, name: &str) -> String {
    format!("log {kind}/{name}")
}

fn checksum(data: &[u8], key: Option<&DataKey>) -> String {
    match key {
        Some(k) => blake3::keyed_hash(&k.checksum_key(), data),
        None => blake3::hash(data),
    }
    .to_hex()
    .to_string()
}

fn run_chain(mut chain: CodecChain, input: &[u8], capacity: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    for block in input.chunks(crate::pipeline::BLOCK) {
        chain.update(block, &mut |b| {
            out.extend_from_slice(&b);
            Ok(())
        })?;
    }
    chain.finish(&mut |b| {
        out.extend_from_slice(&b);
        Ok(())
    })?;
    Ok(out)
}

impl LogArchive {
    /// The archive `kind` (lowercase letters, e.g. `wal`) of `repo`, read and written with the
    /// repository's key and trust rule.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a kind that is not lowercase letters.
    pub fn new(repo: Repository, kind: &str) -> Result<Self> {
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(Error::invalid(format!(
                "log archive kind {kind:?} is not lowercase letters"
            )));
        }
        Ok(LogArchive {
            repo,
            kind: kind.to_owned(),
            level: 3,
        })
    }

    /// The zstd level of new pieces (default 3).
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    fn object(&self, name: &str) -> String {
        format!("{LOGS_PREFIX}{}/{name}", self.kind)
    }

    fn seal_object(&self, name: &str) -> String {
        format!("{LOGS_PREFIX}{}/{name}.seal", self.kind)
    }

    fn check_name(&self, name: &str) -> Result<()> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{name:?} is not a {} file name (letters, digits, '.', '_', '-')",
                self.kind
            )))
        }
    }

    /// Archives `data` as `name`. A piece that is already archived with the same content is
    /// left as it is ([`Pushed::AlreadyArchived`]: PostgreSQL retries a push whose answer it
    /// did not get); with different content the push is refused and nothing changes.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] when `name` is archived with other content;
    /// [`ErrorKind::WrongKey`]; [`ErrorKind::InvalidInput`] for a bad name, an encrypted
    /// repository without its key, or a piece over [`MAX_PIECE`]; storage errors.
    pub async fn push(&self, name: &str, data: Bytes) -> Result<Pushed> {
        self.check_name(name)?;
        if data.len() > MAX_PIECE {
            return Err(Error::invalid(format!(
                "{name} is {} bytes, more than a log piece may be ({MAX_PIECE})",
                data.len()
            )));
        }
        let unlocked = self.repo.unlock_for_backup(None).await?;
        let seal_key = self.seal_object(name);
        if self.repo.sink().exists(&seal_key).await? {
            return self.compare(name, &data).await;
        }
        let id = piece_id(&self.kind, name);
        let mut transforms: Vec<Arc<dyn Transform>> = vec![Arc::new(Zstd::new(self.level))];
        let mut data_key = None;
        let mut encryption = None;
        if let Some(k) = &unlocked {
            let dk = Arc::new(DataKey::generate()?);
            encryption = Some(dk.wrap(&k.master, k.wrap_kdf.clone(), &id)?);
            transforms.push(Arc::new(Aes256GcmStream::new(
                dk.clone(),
                DEFAULT_CHUNK_SIZE,
            )?));
            data_key = Some(dk);
        }
        let specs = transforms.iter().map(|t| t.spec()).collect();
        let (input, entry) = (data.clone(), name.to_owned());
        let stored = blocking(move || {
            let ctx = CodecContext {
                backup_id: &id,
                entry: &entry,
            };
            run_chain(
                CodecChain::encoders(&transforms, &ctx)?,
                &input,
                input.len() / 2,
            )
        })
        .await?;
        let record = LogRecord {
            format: "dbbackup-log".into(),
            format_version: FORMAT_VERSION,
            kind: self.kind.clone(),
            name: name.to_owned(),
            size: data.len() as u64,
            checksum: checksum(&data, data_key.as_deref()),
            stored_size: stored.len() as u64,
            transforms: specs,
            encryption,
            archived_at: OffsetDateTime::now_utc(),
        };
        let object = self.object(name);
        // A leftover of an interrupted push (data without a seal) does not exist: overwrite it.
        let meta = self
            .repo
            .sink()
            .put_bytes(&object, Bytes::from(stored), PutMode::Overwrite)
            .await
            .map_err(|e| e.with_object(object.clone()))?;
        if meta.size != record.stored_size {
            return Err(Error::new(
                ErrorKind::Sink,
                format!(
                    "the sink stored {} bytes of {name}, {} were written",
                    meta.size, record.stored_size
                ),
            )
            .with_object(object));
        }
        if let Some(k) = &unlocked {
            self.repo.seal_config(k).await?;
        }
        let body = serde_json::to_vec(&record)
            .map_err(|e| Error::internal(format!("log record serialization failed: {e}")))?;
        let mac = data_key
            .as_deref()
            .map(|k| blake3::keyed_hash(&k.mac_key(), &body));
        match self
            .repo
            .sink()
            .put_bytes(
                &seal_key,
                manifest::sealed_object(body, mac),
                PutMode::Create,
            )
            .await
        {
            Ok(_) => Ok(Pushed::Stored),
            // Another push of the same name committed first: same content or a refusal.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => self.compare(name, &data).await,
            Err(e) => Err(e.with_object(seal_key)),
        }
    }

    async fn compare(&self, name: &str, data: &[u8]) -> Result<Pushed> {
        let (record, dk) = self.trusted_record(name).await?;
        if record.size == data.len() as u64 && record.checksum == checksum(data, dk.as_ref()) {
            return Ok(Pushed::AlreadyArchived);
        }
        Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{name} is already archived with different content ({} bytes, archived {}); \
                 the archive keeps the first. Two servers archiving into one repository, or a \
                 restored server that was not promoted to a new timeline, write the same names: \
                 give each its own repository",
                record.size,
                record
                    .archived_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        )
        .with_object(self.seal_object(name)))
    }

    /// The record of `name`, checked against the repository's key and trust rule, with its data
    /// key.
    async fn trusted_record(&self, name: &str) -> Result<(LogRecord, Option<DataKey>)> {
        let seal_key = self.seal_object(name);
        let ctx = |e: Error| e.with_object(seal_key.clone());
        let bytes = self
            .repo
            .sink()
            .get_bytes_limited(&seal_key, 1 << 20)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("{name} is not in the {} archive", self.kind),
                    )
                } else {
                    ctx(e)
                }
            })?;
        let (body, seal) = manifest::open_sealed(&bytes, "log record").map_err(ctx)?;
        let record: LogRecord = serde_json::from_slice(&body)
            .map_err(|e| ctx(Error::corrupt(format!("the log record is unreadable: {e}"))))?;
        if record.format != "dbbackup-log" || record.format_version != FORMAT_VERSION {
            return Err(ctx(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "log record format {:?} version {} is not read by this build",
                    record.format, record.format_version
                ),
            )));
        }
        if record.kind != self.kind || record.name != name {
            return Err(ctx(Error::corrupt(format!(
                "the seal of {}/{name} describes {}/{} (moved or replaced)",
                self.kind, record.kind, record.name
            ))));
        }
        let (config, key_verified) = self.repo.read_gate().await?;
        let encrypted_repo = config.as_ref().is_some_and(|c| c.is_encrypted());
        let id = piece_id(&self.kind, name);
        match (&record.encryption, self.repo.key()) {
            (Some(info), Some(key)) => {
                let dk = match unwrap_data_key(info, key, &id).await {
                    Ok(dk) => dk,
                    Err(e) if e.kind() == ErrorKind::WrongKey && key_verified => {
                        return Err(ctx(Error::corrupt(format!(
                            "{name} is not sealed by this repository's key (its data key is \
                             wrapped under key id {}): it was planted, or archived here with \
                             another key",
                            info.key_id
                        ))));
                    }
                    Err(e) => return Err(ctx(e)),
                };
                let want = blake3::keyed_hash(&dk.mac_key(), &body);
                if !seal
                    .mac
                    .as_deref()
                    .is_some_and(|m| manifest::mac_matches(m, &want))
                {
                    return Err(ctx(Error::corrupt(format!(
                        "the seal of {name} does not match its record (MAC mismatch): it was \
                         altered"
                    ))));
                }
                Ok((record, Some(dk)))
            }
            (Some(info), None) => Err(ctx(Error::new(
                ErrorKind::WrongKey,
                format!(
                    "{name} is encrypted (key id {}); give the repository's key or passphrase",
                    info.key_id
                ),
            ))),
            (None, key) if (key.is_some() || encrypted_repo) && !self.repo.allows_unencrypted() => {
                Err(ctx(Error::corrupt(format!(
                    "{name} is not sealed by the repository's key: it is unencrypted, and \
                     nothing vouches for it (anyone with write access to the storage can write \
                     one); allow unencrypted content explicitly (--allow-unencrypted) if this \
                     repository is meant to hold it"
                ))))
            }
            (None, _) => Ok((record, None)),
        }
    }

    /// The record of an archived piece, checked like [`fetch`](Self::fetch) checks it.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch), without reading the piece.
    pub async fn record(&self, name: &str) -> Result<LogRecord> {
        self.check_name(name)?;
        Ok(self.trusted_record(name).await?.0)
    }

    /// The archived piece `name`, decrypted, decompressed and checked against its sealed record.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when it is not archived (for `restore_command`: the end of the
    /// archive); [`ErrorKind::Corrupt`] when the piece or its seal is damaged, altered or not
    /// sealed by the repository's key; [`ErrorKind::WrongKey`]; storage errors.
    pub async fn fetch(&self, name: &str) -> Result<Bytes> {
        self.check_name(name)?;
        let (record, dk) = self.trusted_record(name).await?;
        let object = self.object(name);
        let ctx = |e: Error| e.with_object(object.clone());
        let stored = self
            .repo
            .sink()
            .get_bytes_limited(&object, record.stored_size.saturating_add(1))
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    ctx(Error::corrupt(format!(
                        "{name} has a seal but its data is gone (deleted from the storage)"
                    )))
                } else {
                    ctx(e)
                }
            })?;
        if stored.len() as u64 != record.stored_size {
            return Err(ctx(Error::corrupt(format!(
                "{name} is {} bytes in the storage, its record says {} (truncated or replaced)",
                stored.len(),
                record.stored_size
            ))));
        }
        let id = piece_id(&self.kind, name);
        let size = record.size as usize;
        let kind = self.kind.clone();
        let owned_name = name.to_owned();
        let data = blocking(move || {
            let dk = dk.map(Arc::new);
            let chain = build_chain(&record.transforms, dk.as_ref(), &Default::default(), &id)?;
            let ctx = CodecContext {
                backup_id: &id,
                entry: &owned_name,
            };
            let plain = run_chain(CodecChain::decoders(&chain, &ctx)?, &stored, size)?;
            if plain.len() != size || checksum(&plain, dk.as_deref()) != record.checksum {
                return Err(Error::corrupt(format!(
                    "{kind}/{owned_name} does not match its sealed checksum: the stored piece is \
                     damaged"
                )));
            }
            Ok(plain)
        })
        .await
        .map_err(ctx)?;
        Ok(Bytes::from(data))
    }

    /// Removes the piece `name`: its seal first (from then on it does not exist), then its data.
    /// Removing a piece that is not there succeeds.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad name; storage errors.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.check_name(name)?;
        for key in [self.seal_object(name), self.object(name)] {
            match self.repo.sink().delete(&key).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.with_object(key)),
            }
        }
        Ok(())
    }

    /// The names of the committed (sealed) pieces, sorted.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn names(&self) -> Result<Vec<String>> {
        self.names_starting("").await
    }

    /// The names of the committed pieces that start with `start`, sorted.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn names_starting(&self, start: &str) -> Result<Vec<String>> {
        let dir = format!("{LOGS_PREFIX}{}/", self.kind);
        let prefix = format!("{dir}{start}");
        let mut names: Vec<String> = self
            .repo
            .sink()
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|o| {
                o.key
                    .strip_prefix(&dir)?
                    .strip_suffix(".seal")
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        Ok(names)
    }
}
