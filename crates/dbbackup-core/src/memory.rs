//! An in-memory [`Sink`], for tests and for applications that post-process backups.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};
use crate::sink::{check_range, ByteStream, Capabilities, ObjectMeta, ObjectWriter, PutMode, Sink};

type Objects = Arc<Mutex<BTreeMap<String, (Bytes, OffsetDateTime)>>>;

/// A [`Sink`] that keeps objects in memory. Cloning shares the same objects.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    objects: Objects,
}

impl MemorySink {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces an object's bytes directly (tests use it to tamper with a repository).
    pub fn set_raw(&self, key: &str, data: impl Into<Bytes>) {
        self.objects
            .lock()
            .expect("memory sink lock")
            .insert(key.to_owned(), (data.into(), OffsetDateTime::now_utc()));
    }

    /// An object's bytes, if present.
    pub fn get_raw(&self, key: &str) -> Option<Bytes> {
        self.objects
            .lock()
            .expect("memory sink lock")
            .get(key)
            .map(|(b, _)| b.clone())
    }

    /// Every key held.
    pub fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .expect("memory sink lock")
            .keys()
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, OffsetDateTime)>> {
        self.objects.lock().expect("memory sink lock")
    }
}

struct MemoryWriter {
    objects: Objects,
    key: String,
    mode: PutMode,
    buf: BytesMut,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&data);
        Ok(())
    }

    async fn complete(self: Box<Self>) -> Result<ObjectMeta> {
        let mut map = self.objects.lock().expect("memory sink lock");
        if self.mode == PutMode::Create && map.contains_key(&self.key) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "object already exists and the put was create-only",
            )
            .with_object(self.key.clone()));
        }
        let now = OffsetDateTime::now_utc();
        let size = self.buf.len() as u64;
        map.insert(self.key.clone(), (self.buf.freeze(), now));
        Ok(ObjectMeta {
            key: self.key,
            size,
            last_modified: Some(now),
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    async fn put(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(MemoryWriter {
            objects: self.objects.clone(),
            key: key.to_owned(),
            mode,
            buf: BytesMut::new(),
        }))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let data = self
            .lock()
            .get(key)
            .map(|(b, _)| b.clone())
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such object").with_object(key))?;
        let data = match range {
            Some(r) => {
                let r = check_range(key, &r, data.len() as u64)?;
                data.slice(r.start as usize..r.end as usize)
            }
            None => data,
        };
        // Hand out moderate chunks, as a network backend would.
        let chunks: Vec<Result<Bytes>> = (0..data.len())
            .step_by(256 * 1024)
            .map(|i| Ok(data.slice(i..(i + 256 * 1024).min(data.len()))))
            .collect();
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.lock()
            .get(key)
            .map(|(b, t)| ObjectMeta {
                key: key.to_owned(),
                size: b.len() as u64,
                last_modified: Some(*t),
            })
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "no such object").with_object(key))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(self
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (b, t))| ObjectMeta {
                key: k.clone(),
                size: b.len() as u64,
                last_modified: Some(*t),
            })
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.lock().remove(key);
        Ok(())
    }
}
