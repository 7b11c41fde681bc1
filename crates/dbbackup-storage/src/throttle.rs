//! A bandwidth limit that wraps any [`Sink`].

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use dbbackup_core::{
    ByteStream, Capabilities, Error, ErrorKind, ObjectMeta, ObjectWriter, PutMode, Result, Sink,
};
use futures::StreamExt;
use time::OffsetDateTime;

/// A token bucket shared by every read and write through one [`Throttled`] sink.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes `n` bytes' worth of tokens; returns how long to wait before using them.
    fn take(&mut self, n: usize) -> Duration {
        let now = Instant::now();
        let burst = self.rate; // one second's worth
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(burst);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Limits the bytes per second written to and read from `inner`, across all concurrent objects,
/// so a backup does not saturate a production network.
#[derive(Debug, Clone)]
pub struct Throttled {
    inner: Arc<dyn Sink>,
    bucket: Arc<Mutex<Bucket>>,
}

impl Throttled {
    /// Wraps `inner` at `bytes_per_second`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a limit below 1 KiB/s.
    pub fn new(inner: Arc<dyn Sink>, bytes_per_second: u64) -> Result<Self> {
        if bytes_per_second < 1024 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a bandwidth limit of {bytes_per_second} B/s is too low (minimum 1 KiB/s)"),
            ));
        }
        Ok(Throttled {
            inner,
            bucket: Arc::new(Mutex::new(Bucket {
                rate: bytes_per_second as f64,
                tokens: 0.0,
                last: Instant::now(),
            })),
        })
    }

    async fn pace(bucket: &Mutex<Bucket>, n: usize) {
        let wait = bucket.lock().expect("bucket lock").take(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

struct ThrottledWriter {
    inner: Box<dyn ObjectWriter>,
    bucket: Arc<Mutex<Bucket>>,
}

#[async_trait]
impl ObjectWriter for ThrottledWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        Throttled::pace(&self.bucket, data.len()).await;
        self.inner.write(data).await
    }
    async fn complete(self: Box<Self>) -> Result<ObjectMeta> {
        self.inner.complete().await
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl Sink for Throttled {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(ThrottledWriter {
            inner: self.inner.put(key, mode).await?,
            bucket: self.bucket.clone(),
        }))
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let stream = self.inner.get(key, range).await?;
        let bucket = self.bucket.clone();
        Ok(Box::pin(stream.then(move |item| {
            let bucket = bucket.clone();
            async move {
                if let Ok(b) = &item {
                    Throttled::pace(&bucket, b.len()).await;
                }
                item
            }
        })))
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn collect_garbage(&self, grace: Duration, now: OffsetDateTime) -> Result<Vec<String>> {
        self.inner.collect_garbage(grace, now).await
    }
}
