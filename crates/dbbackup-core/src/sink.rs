//! The storage side: a [`Sink`] holds a repository's objects.
//!
//! # The write contract
//! [`Sink::put`] returns an [`ObjectWriter`]. Bytes passed to [`ObjectWriter::write`] are not
//! visible to `get`, `head` or `list` under the object's key. After [`ObjectWriter::complete`]
//! returns `Ok`, the whole object is visible at once (and durable, as far as the backend can
//! promise). [`ObjectWriter::abort`], a failed `complete`, or dropping the writer without
//! completing it leaves the key as it was before `put` (absent, or the old object); a backend may
//! finish cleaning up in the background (e.g. an S3 multipart abort), and leftovers it cannot remove
//! are found by the backend's garbage collection, never under the final key.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};

/// A stream of byte chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// What a [`Sink`] can do, declared up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `get` honours a byte range without reading the whole object.
    pub ranged_reads: bool,
    /// `delete` is supported.
    pub delete: bool,
    /// [`PutMode::Create`] is enforced atomically (two writers can never both create one key).
    pub conditional_create: bool,
    /// The largest object the backend accepts, if limited.
    pub max_object_size: Option<u64>,
}

impl Capabilities {
    /// A backend that can do everything, without size limit.
    pub const fn full() -> Self {
        Capabilities {
            ranged_reads: true,
            delete: true,
            conditional_create: true,
            max_object_size: None,
        }
    }
}

/// Whether a put may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Fail with [`ErrorKind::AlreadyExists`] at `complete` if the key exists (atomically where
    /// [`Capabilities::conditional_create`] says so, best-effort otherwise).
    Create,
}

/// One stored object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key, relative to the sink's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, if the backend knows.
    pub last_modified: Option<OffsetDateTime>,
}

/// An object being written: nothing is visible under its key until [`complete`](Self::complete)
/// returns `Ok`, then all of it is; [`abort`](Self::abort), a failed `complete` or a drop leaves the
/// key as it was (the write contract of [`Sink`]).
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes. May apply backpressure by not returning until the backend took them.
    ///
    /// # Errors
    /// On a storage failure; the writer must then be aborted or dropped.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Makes the object visible under its key.
    ///
    /// # Errors
    /// On a storage failure, or [`ErrorKind::AlreadyExists`] for a [`PutMode::Create`] put whose
    /// key exists. The object is then not visible.
    async fn complete(self: Box<Self>) -> Result<ObjectMeta>;

    /// Discards everything written; the key stays as it was.
    ///
    /// # Errors
    /// When cleanup failed; the object is still not visible under its key.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Object storage for a repository.
///
/// Keys are `/`-separated relative paths of ASCII letters, digits and `-_.` per segment (the core
/// only ever writes such keys).
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Starts writing `key`.
    ///
    /// # Errors
    /// When the write cannot be started (permissions, unreachable backend).
    async fn put(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>>;

    /// Streams `key`, or a byte range of it.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when the key does not exist; [`ErrorKind::Unsupported`] for a range
    /// on a backend without [`Capabilities::ranged_reads`].
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Size and time of `key`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when the key does not exist.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Every complete object whose key starts with `prefix`, sorted by key.
    ///
    /// # Errors
    /// On a storage failure.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Removes `key`. Removing a key that does not exist succeeds.
    ///
    /// # Errors
    /// On a storage failure, or [`ErrorKind::Unsupported`] without [`Capabilities::delete`].
    async fn delete(&self, key: &str) -> Result<()>;

    /// Removes the backend's own leftovers of writes that never completed (temporary files,
    /// multipart uploads whose abort failed) that are older than `grace` at `now`. Returns a
    /// description of each thing removed. The default has nothing to clean.
    ///
    /// # Errors
    /// On a storage failure.
    async fn collect_garbage(&self, grace: Duration, now: OffsetDateTime) -> Result<Vec<String>> {
        let _ = (grace, now);
        Ok(Vec::new())
    }
}

/// Convenience calls on every [`Sink`].
#[async_trait]
pub trait SinkExt: Sink {
    /// Writes a whole object from memory.
    ///
    /// # Errors
    /// As [`Sink::put`] and [`ObjectWriter::complete`].
    async fn put_bytes(&self, key: &str, data: Bytes, mode: PutMode) -> Result<ObjectMeta> {
        let mut w = self.put(key, mode).await?;
        if let Err(e) = w.write(data).await {
            let _ = w.abort().await;
            return Err(e);
        }
        w.complete().await
    }

    /// Reads a whole object into memory (for small objects such as manifests).
    ///
    /// # Errors
    /// As [`Sink::get`].
    async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        let mut s = self.get(key, None).await?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = s.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }

    /// Reads a whole object of at most `limit` bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupt`] when the object is larger (nothing beyond the limit is buffered),
    /// else as [`get`](Sink::get).
    async fn get_bytes_limited(&self, key: &str, limit: u64) -> Result<Bytes> {
        let too_big = |size: u64| {
            Error::corrupt(format!(
                "the object is {size} bytes or more, larger than the {limit} bytes such an \
                 object can be; it was damaged or planted"
            ))
            .with_object(key)
        };
        let mut s = self.get(key, None).await?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(too_big((buf.len() + chunk.len()) as u64));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// Whether `key` exists.
    ///
    /// # Errors
    /// On a storage failure other than not-found.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<T: Sink + ?Sized> SinkExt for T {}

#[async_trait]
impl<T: Sink + ?Sized> Sink for Arc<T> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn put(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        (**self).put(key, mode).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        (**self).get(key, range).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        (**self).head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        (**self).list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        (**self).delete(key).await
    }
    async fn collect_garbage(&self, grace: Duration, now: OffsetDateTime) -> Result<Vec<String>> {
        (**self).collect_garbage(grace, now).await
    }
}

/// Checks a requested range against an object size; returns the clamped range.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for an inverted range or one starting past the end.
pub fn check_range(key: &str, range: &Range<u64>, size: u64) -> Result<Range<u64>> {
    if range.start > range.end || range.start > size {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "byte range {}..{} is outside the object (size {size})",
                range.start, range.end
            ),
        )
        .with_object(key));
    }
    Ok(range.start..range.end.min(size))
}
