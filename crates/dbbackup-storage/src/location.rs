//! Turning a repository URL into a [`Sink`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dbbackup_core::{Error, ErrorKind, MemorySink, Result, Sink};
use url::Url;

use crate::fs::FsSink;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
use crate::object::ObjectStoreSink;

/// The schemes [`open_sink`] understands, for messages.
pub const SUPPORTED: &str = "a local path, file:///path, memory://, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix";

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

/// Opens the repository at `url`: a plain path or `file://` (filesystem), `memory://` (a new,
/// empty in-memory store), `s3://bucket/prefix?endpoint=..&region=..` (S3 and S3-compatible),
/// `gs://bucket/prefix` (Google Cloud Storage), `az://container/prefix?account=..` (Azure).
/// Credentials come from the usual environment variables of each cloud.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a malformed URL or an unknown scheme (the message lists the
/// supported ones); [`ErrorKind::Unsupported`] for a scheme whose feature is not compiled in.
pub fn open_sink(url: &str) -> Result<Arc<dyn Sink>> {
    if url.is_empty() {
        return Err(invalid(format!(
            "the repository URL is empty; use {SUPPORTED}"
        )));
    }
    if !url.contains("://") {
        return Ok(Arc::new(FsSink::new(url)?));
    }
    let parsed = Url::parse(url)
        .map_err(|e| invalid(format!("cannot parse repository URL {}: {e}", redact(url))))?;
    match parsed.scheme() {
        "file" => {
            let path = parsed.to_file_path().map_err(|_| {
                invalid(format!(
                    "{} is not a local file URL (use file:///absolute/path)",
                    redact(url)
                ))
            })?;
            Ok(Arc::new(FsSink::new(path)?))
        }
        "memory" => Ok(Arc::new(MemorySink::new())),
        "s3" => s3(&parsed),
        "gs" | "gcs" => gcs(&parsed),
        "az" | "azure" | "abfs" => azure(&parsed),
        other => Err(invalid(format!(
            "unsupported repository URL scheme {other:?}; supported: {SUPPORTED}"
        ))),
    }
}

/// `url` with passwords and secret query parameters replaced by `***`.
pub fn redact(url: &str) -> String {
    // What does not parse is redacted by the lenient rules (never echoed as given).
    let Ok(mut u) = Url::parse(url) else {
        return dbbackup_core::redact_url(url);
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let secret = ["secret", "password", "token", "key", "sas"]
                .iter()
                .any(|s| k.to_ascii_lowercase().contains(s))
                && k != "access_key_id";
            (
                k.into_owned(),
                if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if !pairs.is_empty() {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Parses a size, [`bytesize`]'s syntax: `5MiB`, `8MB`, `1048576`, `64 KiB`, `1.5GiB`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the text.
pub fn parse_size(text: &str) -> Result<u64> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| {
            invalid(format!(
                "{text:?} is not a size ({e}); use e.g. 8MiB, 500KB or 1048576"
            ))
        })
}

/// Parses a duration: [`dbbackup_core::parse_duration`], the one duration parser.
pub use dbbackup_core::parse_duration;

fn bucket_and_prefix(u: &Url) -> Result<(String, String)> {
    let bucket = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| {
        invalid(format!(
            "{} names no bucket (expected {}://bucket/prefix)",
            redact(u.as_str()),
            u.scheme()
        ))
    })?;
    Ok((bucket.to_owned(), u.path().trim_matches('/').to_owned()))
}

/// Options of an S3 or S3-compatible repository. Unset options come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
/// `AWS_ENDPOINT`, ...).
#[derive(Clone, Default)]
pub struct S3Builder {
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    allow_http: Option<bool>,
    path_style: Option<bool>,
    part_size: Option<usize>,
    concurrency: Option<usize>,
    retry_timeout: Option<Duration>,
    max_retries: Option<usize>,
    metadata_endpoint: Option<String>,
}

impl fmt::Debug for S3Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Builder")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident, $field:ident, $t:ty) => {
        $(#[$m])*
        pub fn $name(mut self, v: impl Into<$t>) -> Self {
            self.$field = Some(v.into());
            self
        }
    };
}

impl S3Builder {
    /// A repository in `bucket` under `prefix` (may be empty).
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Builder {
            bucket: bucket.into(),
            prefix: prefix.into(),
            ..Default::default()
        }
    }

    setter!(
        /// The server, e.g. `http://127.0.0.1:9000` for an S3-compatible one. Implies path-style
        /// addressing (and plain HTTP for an `http://` endpoint) unless set otherwise.
        with_endpoint, endpoint, String);
    setter!(
        /// The region (default `us-east-1`).
        with_region, region, String);
    setter!(
        /// The access key id.
        with_access_key_id, access_key_id, String);
    setter!(
        /// The secret access key (never printed).
        with_secret_access_key, secret_access_key, String);
    setter!(
        /// A session token (never printed).
        with_session_token, session_token, String);
    setter!(
        /// Allow `http://` endpoints.
        with_allow_http, allow_http, bool);
    setter!(
        /// Path-style (`endpoint/bucket/key`) rather than virtual-hosted addressing.
        with_path_style, path_style, bool);
    setter!(
        /// Bytes per multipart part (at least 5 MiB).
        with_part_size, part_size, usize);
    setter!(
        /// Parts uploaded at once per object.
        with_concurrency, concurrency, usize);
    setter!(
        /// How long transient failures (5xx, timeouts, resets) are retried (default 60 s).
        with_retry_timeout, retry_timeout, Duration);
    setter!(
        /// How many times a transient failure is retried (default 8).
        with_max_retries, max_retries, usize);
    setter!(
        /// The instance metadata service asked for credentials when none are given (default
        /// AWS's `http://169.254.169.254`; also `AWS_METADATA_ENDPOINT`).
        with_metadata_endpoint, metadata_endpoint, String);

    /// Options from `s3://bucket/prefix?endpoint=..&region=..&access_key_id=..&secret_access_key=..
    /// &allow_http=true&path_style=true&part_size=8MiB&concurrency=2&retry_timeout=30s&max_retries=5`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an unknown or malformed parameter.
    pub fn from_url(u: &Url) -> Result<Self> {
        let (bucket, prefix) = bucket_and_prefix(u)?;
        let mut b = S3Builder::new(bucket, prefix);
        let bool_of = |k: &str, v: &str| -> Result<bool> {
            v.parse()
                .map_err(|_| invalid(format!("S3 URL parameter {k}={v:?} must be true or false")))
        };
        for (k, v) in u.query_pairs() {
            let v = v.into_owned();
            b = match k.as_ref() {
                "endpoint" => b.with_endpoint(v),
                "region" => b.with_region(v),
                "access_key_id" => b.with_access_key_id(v),
                "secret_access_key" => b.with_secret_access_key(v),
                "session_token" => b.with_session_token(v),
                "allow_http" => b.with_allow_http(bool_of(&k, &v)?),
                "path_style" => b.with_path_style(bool_of(&k, &v)?),
                "part_size" => b.with_part_size(parse_size(&v)? as usize),
                "concurrency" => b.with_concurrency(v.parse::<usize>().map_err(|_| {
                    invalid(format!(
                        "S3 URL parameter concurrency={v:?} must be a number"
                    ))
                })?),
                "retry_timeout" => b.with_retry_timeout(parse_duration(&v)?),
                "metadata_endpoint" => b.with_metadata_endpoint(v),
                "max_retries" => b.with_max_retries(v.parse::<usize>().map_err(|_| {
                    invalid(format!(
                        "S3 URL parameter max_retries={v:?} must be a number"
                    ))
                })?),
                other => {
                    return Err(invalid(format!(
                    "unknown S3 URL parameter {other:?}; known: endpoint, region, access_key_id, \
                         secret_access_key, session_token, allow_http, path_style, part_size, \
                         concurrency, retry_timeout, max_retries, metadata_endpoint"
                )))
                }
            };
        }
        Ok(b)
    }

    /// Builds the sink.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an invalid configuration; [`ErrorKind::Unsupported`] when
    /// built without the `s3` feature.
    #[cfg(feature = "s3")]
    pub fn build(self) -> Result<ObjectStoreSink> {
        use object_store::aws::AmazonS3Builder;
        use object_store::{BackoffConfig, RetryConfig};
        if self.bucket.is_empty() {
            return Err(invalid("an S3 repository needs a bucket name"));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        let region = self
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        b = b.with_region(region);
        let mut description = format!("s3://{}/{}", self.bucket, self.prefix);
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
            let http = e.starts_with("http://");
            b = b.with_allow_http(self.allow_http.unwrap_or(http));
            b = b.with_virtual_hosted_style_request(!self.path_style.unwrap_or(true));
            description.push_str(&format!(" at {e}"));
        } else {
            if let Some(a) = self.allow_http {
                b = b.with_allow_http(a);
            }
            if let Some(p) = self.path_style {
                b = b.with_virtual_hosted_style_request(!p);
            }
        }
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &self.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if let Some(t) = &self.session_token {
            b = b.with_token(t);
        }
        if let Some(m) = &self.metadata_endpoint {
            b = b.with_metadata_endpoint(m);
        }
        b = b.with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: self.max_retries.unwrap_or(8),
            retry_timeout: self.retry_timeout.unwrap_or(Duration::from_secs(60)),
        });
        let store = b
            .build()
            .map_err(|e| invalid(format!("invalid S3 configuration for {description}: {e}")))?;
        let mut sink = ObjectStoreSink::new(store, &self.prefix, description);
        if let Some(p) = self.part_size {
            sink = sink.with_part_size(p);
        }
        if let Some(c) = self.concurrency {
            sink = sink.with_concurrency(c);
        }
        Ok(sink)
    }

    /// Without the `s3` feature there is no S3 support.
    ///
    /// # Errors
    /// Always [`ErrorKind::Unsupported`].
    #[cfg(not(feature = "s3"))]
    pub fn build(self) -> Result<crate::fs::FsSink> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "this build has no S3 support (feature `s3`)",
        ))
    }
}

#[cfg(feature = "s3")]
fn s3(u: &Url) -> Result<Arc<dyn Sink>> {
    Ok(Arc::new(S3Builder::from_url(u)?.build()?))
}

#[cfg(not(feature = "s3"))]
fn s3(_u: &Url) -> Result<Arc<dyn Sink>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "this build has no S3 support (feature `s3`)",
    ))
}

#[cfg(feature = "gcs")]
fn gcs(u: &Url) -> Result<Arc<dyn Sink>> {
    let (bucket, prefix) = bucket_and_prefix(u)?;
    if u.query().is_some() {
        return Err(invalid("gs:// URLs take no parameters; configure credentials with GOOGLE_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS"));
    }
    let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&bucket)
        .build()
        .map_err(|e| invalid(format!("invalid GCS configuration for gs://{bucket}: {e}")))?;
    Ok(Arc::new(ObjectStoreSink::new(
        store,
        &prefix,
        format!("gs://{bucket}/{prefix}"),
    )))
}

#[cfg(not(feature = "gcs"))]
fn gcs(_u: &Url) -> Result<Arc<dyn Sink>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "this build has no GCS support (feature `gcs`)",
    ))
}

#[cfg(feature = "azure")]
fn azure(u: &Url) -> Result<Arc<dyn Sink>> {
    let (container, prefix) = bucket_and_prefix(u)?;
    let mut b =
        object_store::azure::MicrosoftAzureBuilder::from_env().with_container_name(&container);
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "account" => b = b.with_account(v.as_ref()),
            other => {
                return Err(invalid(format!(
                    "unknown Azure URL parameter {other:?}; known: account"
                )))
            }
        }
    }
    let store = b.build().map_err(|e| {
        invalid(format!(
            "invalid Azure configuration for az://{container}: {e}"
        ))
    })?;
    Ok(Arc::new(ObjectStoreSink::new(
        store,
        &prefix,
        format!("az://{container}/{prefix}"),
    )))
}

#[cfg(not(feature = "azure"))]
fn azure(_u: &Url) -> Result<Arc<dyn Sink>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "this build has no Azure support (feature `azure`)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_list_the_supported_ones() {
        let e = open_sink("ftp://host/x").err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("s3://"), "{e}");
        assert!(e.to_string().contains("\"ftp\""), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let r = redact("s3://b/p?endpoint=http://x&secret_access_key=hunter2&access_key_id=AK");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("AK"), "{r}");
        let r = redact("postgres://u:pw@host/db");
        assert!(!r.contains("pw@"), "{r}");
        let e = open_sink("s3://b/p?secret_access_key=hunter2&bogus=1")
            .err()
            .unwrap();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("bogus"), "{e}");
        let d = format!(
            "{:?}",
            S3Builder::new("b", "p").with_secret_access_key("hunter2")
        );
        assert!(!d.contains("hunter2"), "{d}");
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse_size("5MB").unwrap(), 5_000_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("8 parsecs").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn paths_and_file_urls_open_the_filesystem_sink() {
        let s = open_sink("/tmp/dbbackup-nonexistent-repo-x").unwrap();
        assert!(format!("{s:?}").contains("FsSink"));
        let s = open_sink("file:///tmp/dbbackup-nonexistent-repo-x").unwrap();
        assert!(format!("{s:?}").contains("FsSink"));
        assert!(open_sink("memory://").is_ok());
        assert!(open_sink("s3:///nobucket").is_err());
    }
}
