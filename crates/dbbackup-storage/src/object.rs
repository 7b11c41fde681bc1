//! Object storage sinks (S3 and S3-compatible servers, GCS, Azure) on the `object_store` crate.
//!
//! Writes stream through multipart uploads: parts are uploaded while the backup runs (at most
//! `concurrency` parts in flight plus one filling), so an object of any size never sits in memory.
//! Objects smaller than one part are written with a single PUT. A failed, aborted or dropped write
//! aborts its multipart upload; if the abort itself fails (the server is unreachable) the upload is
//! remembered and [`Sink::collect_garbage`] retries it. Uploads left by a killed process are
//! invisible to `list` and `get`; a bucket lifecycle rule (`AbortIncompleteMultipartUpload`)
//! reclaims them.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dbbackup_core::{
    check_range, ByteStream, Capabilities, Error, ErrorKind, ObjectMeta, ObjectWriter, PutMode,
    Result, Sink,
};
use futures::TryStreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use time::OffsetDateTime;
use tokio::task::JoinSet;

/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Parts per upload after which the part size doubles (S3 allows 10 000 parts).
const PARTS_PER_DOUBLING: usize = 1000;

type PendingAborts = Arc<Mutex<Vec<(Path, String)>>>;

/// A [`Sink`] over an `object_store` backend that supports multipart uploads.
#[derive(Clone)]
pub struct ObjectStoreSink {
    store: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    prefix: String,
    description: String,
    part_size: usize,
    concurrency: usize,
    conditional_create: bool,
    pending_aborts: PendingAborts,
}

impl fmt::Debug for ObjectStoreSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The description is already redacted; the store may hold credentials.
        write!(f, "ObjectStoreSink({})", self.description)
    }
}

impl ObjectStoreSink {
    /// Wraps a store. `prefix` is the repository's folder in the bucket (may be empty);
    /// `description` names the location in messages and must not contain secrets.
    pub fn new<S: ObjectStore + MultipartStore>(
        store: S,
        prefix: &str,
        description: impl Into<String>,
    ) -> Self {
        let store = Arc::new(store);
        ObjectStoreSink {
            store: store.clone(),
            multipart: store,
            prefix: prefix.trim_matches('/').to_owned(),
            description: description.into(),
            part_size: MIN_PART_SIZE,
            concurrency: 2,
            conditional_create: true,
            pending_aborts: Arc::default(),
        }
    }

    /// Bytes per uploaded part (at least 5 MiB; default 5 MiB). Memory per object being written is
    /// about `part_size * (concurrency + 1)`.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// Parts uploaded at once per object (default 2).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Whether the backend enforces create-only puts atomically (default true; S3 and most
    /// S3-compatible servers do with `If-None-Match`).
    pub fn with_conditional_create(mut self, yes: bool) -> Self {
        self.conditional_create = yes;
        self
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    fn key_of(&self, path: &Path) -> Option<String> {
        let s = path.as_ref();
        if self.prefix.is_empty() {
            Some(s.to_owned())
        } else {
            s.strip_prefix(&self.prefix)?
                .strip_prefix('/')
                .map(str::to_owned)
        }
    }

    fn err(&self, e: object_store::Error, key: &str) -> Error {
        map_error(e, &self.description).with_object(key)
    }
}

fn no_bucket(location: &str) -> Error {
    Error::new(
        ErrorKind::Sink,
        format!("the bucket of {location} does not exist; create it or fix the URL"),
    )
}

/// Maps an `object_store` error to ours, saying what to do where that is clear.
pub(crate) fn map_error(e: object_store::Error, location: &str) -> Error {
    use object_store::Error as E;
    match e {
        E::NotFound { source, .. } if source.to_string().contains("NoSuchBucket") => {
            no_bucket(location)
        }
        E::NotFound { .. } => {
            Error::new(ErrorKind::NotFound, format!("no such object in {location}"))
        }
        E::AlreadyExists { .. } | E::Precondition { .. } => Error::new(
            ErrorKind::AlreadyExists,
            "object already exists and the put was create-only",
        ),
        E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => Error::new(
            ErrorKind::Sink,
            format!(
                "access to {location} was refused ({source}); check the credentials \
                 (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket policy"
            ),
        ),
        E::NotSupported { source } => {
            Error::new(ErrorKind::Unsupported, format!("{location}: {source}"))
        }
        E::NotImplemented {
            operation,
            implementer,
        } => Error::new(
            ErrorKind::Unsupported,
            format!("{location}: {implementer} does not implement {operation}"),
        ),
        other => {
            let text = other.to_string();
            if text.contains("NoSuchBucket") {
                no_bucket(location)
            } else if text.contains("/latest/api/token") || text.contains("/latest/meta-data") {
                // No key was given, so object_store asked the instance metadata service, which
                // is not there: say that, not the failed request.
                Error::new(
                    ErrorKind::Sink,
                    format!(
                        "no S3 credentials were found for {location}: give access_key_id and \
                         secret_access_key in the URL, set AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), use a web identity \
                         (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) or run where an instance \
                         or task role provides them (the metadata service did not answer)"
                    ),
                )
            } else {
                let mut err = Error::new(ErrorKind::Sink, format!("{location}: {text}"));
                if text.contains("retries")
                    || text.contains("timed out")
                    || text.contains("connect")
                {
                    err = err.temporary();
                }
                err
            }
        }
    }
}

fn meta_of(sink: &ObjectStoreSink, m: &object_store::ObjectMeta) -> Option<ObjectMeta> {
    let t = &m.last_modified;
    let nanos = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    Some(ObjectMeta {
        key: sink.key_of(&m.location)?,
        size: m.size,
        last_modified: OffsetDateTime::from_unix_timestamp_nanos(nanos).ok(),
    })
}

struct Upload {
    id: String,
    parts: Vec<Option<PartId>>,
    inflight: JoinSet<(usize, object_store::Result<PartId>)>,
}

struct OsWriter {
    sink: ObjectStoreSink,
    path: Path,
    key: String,
    mode: PutMode,
    buf: Vec<Bytes>,
    buffered: usize,
    size: u64,
    upload: Option<Upload>,
}

impl OsWriter {
    fn part_size(&self, idx: usize) -> usize {
        let doublings = (idx / PARTS_PER_DOUBLING).min(6) as u32;
        self.sink.part_size << doublings
    }

    fn next_part_size(&self) -> usize {
        self.part_size(self.upload.as_ref().map_or(0, |u| u.parts.len()))
    }

    async fn start_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let id = self
                .sink
                .multipart
                .create_multipart(&self.path)
                .await
                .map_err(|e| self.sink.err(e, &self.key))?;
            self.upload = Some(Upload {
                id,
                parts: Vec::new(),
                inflight: JoinSet::new(),
            });
        }
        let payload: PutPayload = std::mem::take(&mut self.buf).into_iter().collect();
        self.buffered = 0;
        let store = self.sink.multipart.clone();
        let path = self.path.clone();
        let upload = self.upload.as_mut().expect("started");
        let idx = upload.parts.len();
        upload.parts.push(None);
        let id = upload.id.clone();
        upload
            .inflight
            .spawn(async move { (idx, store.put_part(&path, &id, idx, payload).await) });
        // Backpressure: wait while too many parts are in flight.
        while upload.inflight.len() >= self.sink.concurrency {
            Self::reap_one(upload, &self.sink, &self.key).await?;
        }
        Ok(())
    }

    async fn reap_one(upload: &mut Upload, sink: &ObjectStoreSink, key: &str) -> Result<()> {
        match upload.inflight.join_next().await {
            Some(Ok((idx, Ok(part)))) => {
                upload.parts[idx] = Some(part);
                Ok(())
            }
            Some(Ok((_, Err(e)))) => Err(sink.err(e, key)),
            Some(Err(e)) => Err(Error::new(
                ErrorKind::Internal,
                format!("part upload task failed: {e}"),
            )),
            None => Ok(()),
        }
    }

    /// Aborts the multipart upload, remembering it for garbage collection if that fails.
    async fn abort_upload(sink: &ObjectStoreSink, path: &Path, upload: Upload) -> Result<()> {
        let Upload {
            id, mut inflight, ..
        } = upload;
        inflight.abort_all();
        while inflight.join_next().await.is_some() {}
        match sink.multipart.abort_multipart(path, &id).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "aborting a multipart upload failed; gc will retry");
                sink.pending_aborts
                    .lock()
                    .expect("lock")
                    .push((path.clone(), id));
                Err(map_error(e, &sink.description))
            }
        }
    }
}

impl Drop for OsWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            let (sink, path) = (self.sink.clone(), self.path.clone());
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(async move {
                        let _ = OsWriter::abort_upload(&sink, &path, upload).await;
                    });
                }
                Err(_) => {
                    sink.pending_aborts
                        .lock()
                        .expect("lock")
                        .push((path, upload.id));
                }
            }
        }
    }
}

#[async_trait]
impl ObjectWriter for OsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.size += data.len() as u64;
        self.buffered += data.len();
        self.buf.push(data);
        if self.buffered >= self.next_part_size() {
            if let Err(e) = self.start_part().await {
                if let Some(u) = self.upload.take() {
                    let _ = Self::abort_upload(&self.sink, &self.path, u).await;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<ObjectMeta> {
        let result = self.finish().await;
        if result.is_err() {
            if let Some(u) = self.upload.take() {
                let _ = Self::abort_upload(&self.sink, &self.path, u).await;
            }
        }
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        match self.upload.take() {
            Some(u) => Self::abort_upload(&self.sink, &self.path, u).await,
            None => Ok(()),
        }
    }
}

impl OsWriter {
    async fn finish(&mut self) -> Result<ObjectMeta> {
        let meta = |w: &OsWriter| ObjectMeta {
            key: w.key.clone(),
            size: w.size,
            last_modified: Some(OffsetDateTime::now_utc()),
        };
        if self.upload.is_none() {
            let payload: PutPayload = std::mem::take(&mut self.buf).into_iter().collect();
            let mode = match self.mode {
                PutMode::Create => object_store::PutMode::Create,
                PutMode::Overwrite => object_store::PutMode::Overwrite,
            };
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            self.sink
                .store
                .put_opts(&self.path, payload, opts)
                .await
                .map_err(|e| self.sink.err(e, &self.key))?;
            return Ok(meta(self));
        }
        if self.buffered > 0 {
            self.start_part().await?;
        }
        let upload = self.upload.as_mut().expect("started");
        while !upload.inflight.is_empty() {
            Self::reap_one(upload, &self.sink, &self.key).await?;
        }
        let parts: Vec<PartId> = upload
            .parts
            .iter()
            .map(|p| p.clone().expect("every part done"))
            .collect();
        if self.mode == PutMode::Create && self.sink.store.head(&self.path).await.is_ok() {
            // Multipart completion has no portable create-only condition; entry keys are unique
            // per backup, and the manifest (small) always goes through the conditional PUT above.
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "object already exists and the put was create-only",
            )
            .with_object(self.key.clone()));
        }
        let id = upload.id.clone();
        self.sink
            .multipart
            .complete_multipart(&self.path, &id, parts)
            .await
            .map_err(|e| self.sink.err(e, &self.key))?;
        self.upload = None;
        Ok(meta(self))
    }
}

#[async_trait]
impl Sink for ObjectStoreSink {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::full();
        c.conditional_create = self.conditional_create;
        c.max_object_size = Some(5 << 40);
        c
    }

    async fn put(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(OsWriter {
            sink: self.clone(),
            path: self.path(key),
            key: key.to_owned(),
            mode,
            buf: Vec::new(),
            buffered: 0,
            size: 0,
            upload: None,
        }))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let path = self.path(key);
        let range = match range {
            Some(r) => {
                let size = self.head(key).await?.size;
                let r = check_range(key, &r, size)?;
                if r.start == r.end {
                    return Ok(Box::pin(futures::stream::empty()));
                }
                Some(GetRange::Bounded(r))
            }
            None => None,
        };
        let opts = GetOptions {
            range,
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| self.err(e, key))?;
        let (desc, key) = (self.description.clone(), key.to_owned());
        Ok(Box::pin(result.into_stream().map_err(move |e| {
            map_error(e, &desc).with_object(key.clone())
        })))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let m = self
            .store
            .head(&self.path(key))
            .await
            .map_err(|e| self.err(e, key))?;
        meta_of(self, &m)
            .ok_or_else(|| Error::new(ErrorKind::Internal, "object outside the prefix"))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // object_store lists by path segments; list the folder and filter by the string prefix.
        let folder = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let list_path = match (self.prefix.is_empty(), folder.is_empty()) {
            (true, true) => None,
            (true, false) => Some(Path::from(folder)),
            (false, true) => Some(Path::from(self.prefix.as_str())),
            (false, false) => Some(Path::from(format!("{}/{folder}", self.prefix))),
        };
        let mut out: Vec<ObjectMeta> = self
            .store
            .list(list_path.as_ref())
            .map_err(|e| map_error(e, &self.description))
            .try_filter_map(|m| {
                let meta = meta_of(self, &m).filter(|o| o.key.starts_with(prefix));
                async move { Ok(meta) }
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e, key)),
        }
    }

    async fn collect_garbage(&self, _grace: Duration, _now: OffsetDateTime) -> Result<Vec<String>> {
        let pending: Vec<(Path, String)> =
            std::mem::take(&mut *self.pending_aborts.lock().expect("lock"));
        let mut done = Vec::new();
        let mut still = Vec::new();
        for (path, id) in pending {
            match self.multipart.abort_multipart(&path, &id).await {
                Ok(()) => done.push(format!("multipart upload {id} of {path}")),
                Err(e) => {
                    tracing::warn!(path = %path, error = %e, "aborting a multipart upload failed again");
                    still.push((path, id));
                }
            }
        }
        self.pending_aborts.lock().expect("lock").extend(still);
        Ok(done)
    }
}
