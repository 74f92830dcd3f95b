//! The content-addressed blob store: image manifests, configs and compressed layers, each
//! stored once under its digest (`blobs/sha256/<hex>`), whoever refers to it.
//!
//! Writes are verified and crash-safe: a blob streams into `ingest/` while it is hashed, is
//! checked against the digest (and size) it was asked for, is synced, and only then renamed
//! into place, so a blob under `blobs/` is always complete and correct. A failed or interrupted
//! write leaves nothing in `blobs/`; leftovers in `ingest/` are removed when the store opens.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// What can go wrong in the blob store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A digest string that is not `sha256:` and 64 lowercase hex digits.
    #[error("invalid digest {0:?} (expected sha256:<64 hex digits>)")]
    InvalidDigest(String),
    /// The content did not hash to the digest it was stored under.
    #[error("content of {expected} hashes to {actual}: corrupt or truncated, not stored")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The content's length differs from the size announced for it.
    #[error("{digest}: expected {expected} bytes, got {actual}: not stored")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The announced size.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// The blob is not in the store.
    #[error("blob {0} is not in the store")]
    NotFound(Digest),
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A sha256 content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parse `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .filter(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .ok_or_else(|| Error::InvalidDigest(s.to_string()))?;
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Digest {
        Digest {
            hex: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl std::str::FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

/// The blob store at a directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl BlobStore {
    /// Open (creating if needed) the store under `root`, dropping interrupted writes.
    pub fn open(root: &Path) -> Result<BlobStore> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
        fs::create_dir_all(&ingest).map_err(io_err("creating", &ingest))?;
        for e in fs::read_dir(&ingest)
            .map_err(io_err("reading", &ingest))?
            .flatten()
        {
            let _ = fs::remove_file(e.path());
        }
        Ok(BlobStore { blobs, ingest })
    }

    /// Where the blob lives (whether or not it is there).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(&d.hex)
    }

    /// Whether the blob is stored.
    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Open a stored blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(d.clone()),
            _ => Error::Io {
                op: "opening",
                path: self.path(d),
                source: e,
            },
        })
    }

    /// Store what `content` yields under `expected`, verifying digest and (if given) size.
    /// Returns the number of bytes stored. A blob already present is not read again.
    pub fn put(&self, expected: &Digest, size: Option<u64>, content: impl Read) -> Result<u64> {
        if self.contains(expected) {
            return Ok(fs::metadata(self.path(expected))
                .map(|m| m.len())
                .unwrap_or(0));
        }
        let (tmp, mut file) = self.temp_file()?;
        let result = (|| {
            let mut hasher = Sha256::new();
            let mut content = content;
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0u64;
            loop {
                let r = match content.read(&mut buf) {
                    Ok(0) => break,
                    Ok(r) => r,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("reading content for", &tmp)(e)),
                };
                hasher.update(&buf[..r]);
                file.write_all(&buf[..r]).map_err(io_err("writing", &tmp))?;
                n += r as u64;
                if size.is_some_and(|s| n > s) {
                    break; // more than announced: stop reading, report below
                }
            }
            if let Some(s) = size
                && s != n
            {
                return Err(Error::SizeMismatch {
                    digest: expected.clone(),
                    expected: s,
                    actual: n,
                });
            }
            let actual = Digest::from_hasher(hasher);
            if &actual != expected {
                return Err(Error::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            file.sync_all().map_err(io_err("syncing", &tmp))?;
            let dest = self.path(expected);
            fs::rename(&tmp, &dest).map_err(io_err("storing", &dest))?;
            File::open(&self.blobs)
                .and_then(|d| d.sync_all())
                .map_err(io_err("syncing", &self.blobs))?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Store bytes held in memory (manifests, configs) under their own digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        self.put(&d, Some(bytes.len() as u64), bytes)?;
        Ok(d)
    }

    /// Remove a blob (missing is fine).
    pub fn remove(&self, d: &Digest) -> Result<()> {
        match fs::remove_file(self.path(d)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err("removing", &self.path(d))(e))
            }
            _ => Ok(()),
        }
    }

    /// Every stored blob.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs)
            .map_err(io_err("reading", &self.blobs))?
            .flatten()
        {
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    fn temp_file(&self) -> Result<(PathBuf, File)> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.ingest.join(format!("{}-{n}", std::process::id()));
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        Ok((tmp, f))
    }
}
