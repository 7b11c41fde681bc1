//! # dbbackup-storage
//!
//! [`Sink`](dbbackup_core::Sink)s for the places backups go: a local directory ([`FsSink`]),
//! memory ([`MemorySink`]), S3 and S3-compatible servers ([`S3Builder`]), Google Cloud Storage and
//! Azure Blob Storage (through `object_store`, features `gcs` and `azure`), and a bandwidth limit
//! that wraps any of them ([`Throttled`]). [`open_sink`] turns a repository URL into the right one.
//!
//! ```
//! # fn main() -> dbbackup_core::Result<()> {
//! let repo = dbbackup_storage::open_sink("memory://")?;
//! let err = dbbackup_storage::open_sink("ftp://example/backups").unwrap_err();
//! assert!(err.to_string().contains("s3://"));
//! # let _ = repo;
//! # Ok(())
//! # }
//! ```
//!
//! Every sink here passes `dbbackup_core::testing::conformance::sink_suite`; the S3 sink is tested
//! against a real S3-compatible server (moto) on loopback. GCS and Azure compile and share the S3
//! sink's code path, but are only exercised when credentials are given (see the README).

pub use dbbackup_core::MemorySink;
pub use fs::FsSink;
pub use location::{open_sink, parse_duration, parse_size, redact, S3Builder, SUPPORTED};
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
pub use object::{ObjectStoreSink, MIN_PART_SIZE};
pub use throttle::Throttled;

mod fs;
mod location;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
mod object;
mod throttle;
