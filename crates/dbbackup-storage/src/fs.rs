//! The local filesystem sink.
//!
//! A put streams into a temporary file `.<name>.tmp-<random>` in the object's directory. `complete`
//! fsyncs the file, moves it into place (a hard link for create-only puts, which fails atomically
//! if the name exists; a rename for overwrites), and fsyncs the directory. A crash or kill at any
//! moment therefore leaves either the complete object or nothing under the final name. Temporaries
//! start with a dot, are never listed, and are removed by [`Sink::collect_garbage`] once older than
//! the grace period. Files are created `0600`, directories `0700`.

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dbbackup_core::{
    check_range, ByteStream, Capabilities, Error, ErrorKind, ObjectMeta, ObjectWriter, PutMode,
    Result, Sink,
};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const READ_CHUNK: usize = 256 * 1024;
const TMP_MARK: &str = ".tmp-";

/// A [`Sink`] over a local directory.
#[derive(Debug, Clone)]
pub struct FsSink {
    root: PathBuf,
}

fn io_err(e: io::Error, what: &str, path: &Path) -> Error {
    let kind = e.kind();
    let mut err = Error::from(e);
    if kind == io::ErrorKind::PermissionDenied {
        err = Error::new(
            ErrorKind::Sink,
            format!(
                "permission denied to {what} {}; check the directory's owner and mode",
                path.display()
            ),
        );
    } else if err.kind() == ErrorKind::Io {
        err = Error::new(
            ErrorKind::Sink,
            format!("cannot {what} {}: {}", path.display(), err.message()),
        );
    }
    err
}

fn random_suffix() -> String {
    let mut r = [0u8; 6];
    getrandom::getrandom(&mut r).expect("OS random generator");
    hex::encode(r)
}

impl FsSink {
    /// A sink rooted at `root`, created (mode 0700) on first write if missing.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `root` exists and is not a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if root.exists() && !root.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "repository path {} exists and is not a directory",
                    root.display()
                ),
            ));
        }
        Ok(FsSink { root })
    }

    /// The directory holding the repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Keys are `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`, none starting
/// with a dot (those names are reserved for temporaries).
fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{key:?} is not a valid object key for the filesystem sink"),
        ))
    }
}

fn create_dirs(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("a blocking task failed: {e}")))?
}

struct FsWriter {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    key: String,
    mode: PutMode,
    size: u64,
}

impl FsWriter {
    fn remove_tmp_later(&mut self) {
        self.file = None;
        let tmp = std::mem::take(&mut self.tmp);
        if tmp.as_os_str().is_empty() {
            return;
        }
        // Drop must not block an async worker: unlink on the blocking pool when there is one.
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(move || {
                    let _ = std::fs::remove_file(&tmp);
                });
            }
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        self.remove_tmp_later();
    }
}

#[async_trait]
impl ObjectWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "write after complete or abort"))?;
        file.write_all(&data)
            .await
            .map_err(|e| io_err(e, "write", &self.tmp).with_object(self.key.clone()))?;
        self.size += data.len() as u64;
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<ObjectMeta> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "complete after abort"))?;
        let key = self.key.clone();
        let tmp = self.tmp.clone();
        let ctx = |e: Error| e.with_object(key.clone());
        file.flush()
            .await
            .map_err(|e| ctx(io_err(e, "write", &tmp)))?;
        file.sync_all()
            .await
            .map_err(|e| ctx(io_err(e, "fsync", &tmp)))?;
        drop(file);
        let (dest, mode) = (self.dest.clone(), self.mode);
        let tmp2 = tmp.clone();
        let placed = blocking(move || {
            match mode {
                PutMode::Overwrite => {
                    std::fs::rename(&tmp2, &dest).map_err(|e| io_err(e, "rename into", &dest))?
                }
                PutMode::Create => {
                    // link(2) fails with EEXIST atomically: two creators can never both win.
                    std::fs::hard_link(&tmp2, &dest).map_err(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            Error::new(
                                ErrorKind::AlreadyExists,
                                "object already exists and the put was create-only",
                            )
                        } else {
                            io_err(e, "link into", &dest)
                        }
                    })?;
                    std::fs::remove_file(&tmp2).map_err(|e| io_err(e, "remove", &tmp2))?;
                }
            }
            if let Some(dir) = dest.parent() {
                sync_dir(dir).map_err(|e| io_err(e, "fsync directory", dir))?;
            }
            let meta = std::fs::metadata(&dest).map_err(|e| io_err(e, "stat", &dest))?;
            Ok(meta.modified().ok().map(OffsetDateTime::from))
        })
        .await;
        match placed {
            Ok(modified) => {
                self.tmp = PathBuf::new();
                Ok(ObjectMeta {
                    key: self.key.clone(),
                    size: self.size,
                    last_modified: modified,
                })
            }
            Err(e) => {
                self.remove_tmp_later();
                Err(ctx(e))
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.file = None;
        let tmp = std::mem::take(&mut self.tmp);
        if tmp.as_os_str().is_empty() {
            return Ok(());
        }
        blocking(move || match std::fs::remove_file(&tmp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e, "remove", &tmp)),
        })
        .await
    }
}

fn walk(
    dir: &Path,
    rel: &str,
    out: &mut Vec<(String, std::fs::Metadata)>,
    temporaries: bool,
) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let key = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry.file_type()?;
        if ft.is_dir() {
            if !name.starts_with('.') {
                walk(&entry.path(), &key, out, temporaries)?;
            }
        } else if ft.is_file() && name.starts_with('.') == temporaries {
            if temporaries && !name.contains(TMP_MARK) {
                continue;
            }
            match entry.metadata() {
                Ok(m) => out.push((key, m)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Sink for FsSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities::full()
    }

    async fn put(&self, key: &str, mode: PutMode) -> Result<Box<dyn ObjectWriter>> {
        let dest = self.path_of(key)?;
        let dir = dest.parent().expect("joined path has a parent").to_owned();
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .expect("validated key")
            .to_owned();
        let tmp = dir.join(format!(".{name}{TMP_MARK}{}", random_suffix()));
        let (dir2, tmp2) = (dir.clone(), tmp.clone());
        let file = blocking(move || {
            create_dirs(&dir2).map_err(|e| io_err(e, "create directory", &dir2))?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp2)
                .map_err(|e| io_err(e, "create", &tmp2))
        })
        .await
        .map_err(|e| e.with_object(key))?;
        Ok(Box::new(FsWriter {
            file: Some(tokio::fs::File::from_std(file)),
            tmp,
            dest,
            key: key.to_owned(),
            mode,
            size: 0,
        }))
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let path = self.path_of(key)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err(e, "open", &path).with_object(key))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| io_err(e, "stat", &path).with_object(key))?
            .len();
        let range = match range {
            Some(r) => check_range(key, &r, size)?,
            None => 0..size,
        };
        if range.start > 0 {
            file.seek(SeekFrom::Start(range.start))
                .await
                .map_err(|e| io_err(e, "seek", &path).with_object(key))?;
        }
        let remaining = range.end - range.start;
        let key = key.to_owned();
        Ok(Box::pin(futures::stream::try_unfold(
            (file, remaining, path, key),
            |(mut file, remaining, path, key)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let n = (READ_CHUNK as u64).min(remaining) as usize;
                let mut buf = vec![0u8; n];
                file.read_exact(&mut buf)
                    .await
                    .map_err(|e| io_err(e, "read", &path).with_object(key.clone()))?;
                Ok(Some((
                    Bytes::from(buf),
                    (file, remaining - n as u64, path, key),
                )))
            },
        )))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| io_err(e, "stat", &path).with_object(key))?;
        if !meta.is_file() {
            return Err(Error::new(ErrorKind::NotFound, "not an object").with_object(key));
        }
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: meta.len(),
            last_modified: meta.modified().ok().map(OffsetDateTime::from),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // Walk only the deepest directory the prefix names.
        let (dir_rel, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        if !dir_rel.is_empty() {
            validate_key(dir_rel)?;
        }
        let dir = if dir_rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir_rel)
        };
        let (rel, prefix2) = (dir_rel.to_owned(), prefix.to_owned());
        let root = self.root.clone();
        blocking(move || {
            let mut found = Vec::new();
            walk(&dir, &rel, &mut found, false).map_err(|e| io_err(e, "list", &root))?;
            let mut out: Vec<ObjectMeta> = found
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix2))
                .map(|(key, m)| ObjectMeta {
                    key,
                    size: m.len(),
                    last_modified: m.modified().ok().map(OffsetDateTime::from),
                })
                .collect();
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err(e, "delete", &path)),
            }
            // Tidy directories the delete emptied (a concurrent put recreates what it needs).
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir {
                if d == root || std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
            Ok(())
        })
        .await
        .map_err(|e| e.with_object(key))
    }

    async fn collect_garbage(&self, grace: Duration, now: OffsetDateTime) -> Result<Vec<String>> {
        let root = self.root.clone();
        blocking(move || {
            let mut temps = Vec::new();
            walk(&root, "", &mut temps, true).map_err(|e| io_err(e, "list", &root))?;
            let cutoff = now - grace;
            let mut removed = Vec::new();
            for (key, meta) in temps {
                let old = meta
                    .modified()
                    .ok()
                    .map(OffsetDateTime::from)
                    .is_some_and(|t| t < cutoff);
                if old {
                    let p = root.join(&key);
                    match std::fs::remove_file(&p) {
                        Ok(()) => removed.push(format!("temporary file {key}")),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(e, "remove", &p)),
                    }
                }
            }
            Ok(removed)
        })
        .await
    }
}
