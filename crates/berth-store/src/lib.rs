//! The content-addressed blob store: image manifests, configs and compressed layers, each
//! stored once under its digest (`blobs/sha256/<hex>`), whoever refers to it.
//!
//! Writes are verified and crash-safe: a blob streams into `ingest/` while it is hashed, is
//! checked against the digest (and size) it was asked for, is synced, and only then renamed
//! into place, so a blob under `blobs/` is always complete and correct. A failed or interrupted
//! write leaves nothing in `blobs/`; leftovers in `ingest/` are removed when the store opens.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// sha256 by ring: assembly (SHA extensions where the CPU has them), as fast in a build
/// optimised for size as in any other; ring is linked already (rustls uses it).
type Sha256 = ring::digest::Context;

fn sha256() -> Sha256 {
    ring::digest::Context::new(&ring::digest::SHA256)
}

/// What can go wrong in the blob store.
///
/// Each message is whole (the object and the cause, once): no variant returns a `source()`,
/// so printing the chain (anyhow's `{:#}`) does not repeat the cause.
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
    #[error("{op} {path}: {cause}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error (in the message; not a `source()`).
        cause: io::Error,
    },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |cause| Error::Io {
        op,
        path: path.to_path_buf(),
        cause,
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
        let mut h = Hasher::new();
        h.update(bytes);
        h.finish()
    }

    fn from_hasher(h: Sha256) -> Digest {
        Digest {
            hex: h
                .finish()
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        }
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

/// A streaming sha256 (ring's, the one implementation berth uses): feed it bytes, get the
/// [`Digest`].
#[derive(Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Hasher {
        Hasher(sha256())
    }

    /// Hash `bytes` too.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Digest {
        Digest::from_hasher(self.0)
    }
}

impl Default for Hasher {
    fn default() -> Hasher {
        Hasher::new()
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
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
        let store = BlobStore::open_keeping_ingest(root)?;
        store.clear_ingest()?;
        Ok(store)
    }

    /// Open (creating) the store at `root` without touching `ingest/`: for a store other
    /// processes may be writing to at the same time (their blobs in progress are there). Its
    /// owner calls [`BlobStore::clear_ingest`] when it knows nobody is writing.
    pub fn open_keeping_ingest(root: &Path) -> Result<BlobStore> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
        fs::create_dir_all(&ingest).map_err(io_err("creating", &ingest))?;
        Ok(BlobStore { blobs, ingest })
    }

    /// Drop what is left in `ingest/` by writes that were interrupted. Only when nobody is
    /// writing a blob.
    pub fn clear_ingest(&self) -> Result<()> {
        for e in fs::read_dir(&self.ingest)
            .map_err(io_err("reading", &self.ingest))?
            .flatten()
        {
            let _ = fs::remove_file(e.path());
        }
        Ok(())
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
                cause: e,
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
        let mut ingest = self.ingest(expected, size)?;
        let mut content = content;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let r = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("reading content for", &ingest.tmp.path)(e)),
            };
            // More than announced: stop reading (the error says so).
            ingest.write_chunk(&buf[..r])?;
        }
        ingest.commit()
    }

    /// Start writing the blob `expected` (of `size` bytes, if known) as a stream: write its
    /// bytes into the returned [`Ingest`] (which hashes them on the way), then
    /// [`Ingest::commit`] checks digest and size, syncs and renames the blob into place. An
    /// ingest dropped before it is committed removes its temporary file, so a failed write
    /// leaves nothing.
    pub fn ingest(&self, expected: &Digest, size: Option<u64>) -> Result<Ingest> {
        let (path, file) = self.temp_file()?;
        Ok(Ingest {
            tmp: TempFile { path },
            file: BufWriter::with_capacity(INGEST_BUFFER, file),
            hasher: sha256(),
            n: 0,
            expected: expected.clone(),
            size,
            dest: self.path(expected),
            blobs: self.blobs.clone(),
        })
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

/// Bytes an [`Ingest`] gathers before writing them to its file.
const INGEST_BUFFER: usize = 256 * 1024;

/// A temporary file in `ingest/`, removed when dropped unless it was renamed away.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A blob being written: bytes go into a temporary file under `ingest/` and through sha256.
/// Made by [`BlobStore::ingest`]; written through [`Ingest::write_chunk`] or [`Write`];
/// finished by [`Ingest::verify`] (then [`Verified::commit`]) or [`Ingest::commit`]. Dropped
/// unfinished, it removes its temporary file.
pub struct Ingest {
    tmp: TempFile,
    file: BufWriter<File>,
    hasher: Sha256,
    n: u64,
    expected: Digest,
    size: Option<u64>,
    dest: PathBuf,
    blobs: PathBuf,
}

impl Ingest {
    /// Append `bytes`. More bytes in all than the announced size is a
    /// [`Error::SizeMismatch`] (the caller should stop there: nothing will be stored).
    pub fn write_chunk(&mut self, bytes: &[u8]) -> Result<()> {
        self.n += bytes.len() as u64;
        if let Some(s) = self.size
            && self.n > s
        {
            return Err(Error::SizeMismatch {
                digest: self.expected.clone(),
                expected: s,
                actual: self.n,
            });
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(io_err("writing", &self.tmp.path))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.n
    }

    /// The digest this blob must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// The digest of what was written so far.
    pub fn digest_so_far(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }

    /// Check size and digest, and sync the file: the blob is then ready to be put in place by
    /// [`Verified::commit`] (which is cheap), or dropped.
    pub fn verify(self) -> Result<Verified> {
        let Ingest {
            tmp,
            file,
            hasher,
            n,
            expected,
            size,
            dest,
            blobs,
        } = self;
        if let Some(s) = size
            && s != n
        {
            return Err(Error::SizeMismatch {
                digest: expected,
                expected: s,
                actual: n,
            });
        }
        let actual = Digest::from_hasher(hasher);
        if actual != expected {
            return Err(Error::DigestMismatch { expected, actual });
        }
        let file = file
            .into_inner()
            .map_err(|e| io_err("writing", &tmp.path)(e.into_error()))?;
        file.sync_all().map_err(io_err("syncing", &tmp.path))?;
        Ok(Verified {
            tmp,
            digest: expected,
            n,
            dest,
            blobs,
        })
    }

    /// [`Ingest::verify`] then [`Verified::commit`]: store the blob. Returns its size.
    pub fn commit(self) -> Result<u64> {
        self.verify()?.commit()
    }
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("tmp", &self.tmp.path)
            .field("expected", &self.expected)
            .field("written", &self.n)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A blob written whole, checked against its digest and size, and synced, not yet in place.
/// Dropped uncommitted, its temporary file is removed.
#[derive(Debug)]
pub struct Verified {
    tmp: TempFile,
    digest: Digest,
    n: u64,
    dest: PathBuf,
    blobs: PathBuf,
}

impl Verified {
    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.n
    }

    /// Rename the blob into place (replacing an identical copy another writer may have put
    /// there meanwhile) and sync the directory. Returns its size.
    pub fn commit(mut self) -> Result<u64> {
        fs::rename(&self.tmp.path, &self.dest).map_err(io_err("storing", &self.dest))?;
        self.tmp.path = PathBuf::new(); // renamed away: nothing to remove
        File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing", &self.blobs))?;
        Ok(self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest_dir_is_empty(dir: &Path) -> bool {
        fs::read_dir(dir.join("ingest")).unwrap().count() == 0
    }

    #[test]
    fn streaming_hash_is_the_digest_and_errors_say_their_cause_once() {
        let mut h = Hasher::new();
        h.update(b"hel");
        h.update(b"lo");
        assert_eq!(h.finish(), Digest::of(b"hello"));
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        fs::remove_dir_all(dir.path().join("blobs")).unwrap();
        fs::write(dir.path().join("blobs"), b"not a directory").unwrap();
        let e = store.put_bytes(b"x").unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Io { .. }) && msg.matches("os error").count() == 1,
            "{msg}"
        );
        assert!(std::error::Error::source(&e).is_none(), "{msg}");
    }

    #[test]
    fn ingest_streams_verifies_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let d = Digest::of(&data);
        let mut ingest = s.ingest(&d, Some(data.len() as u64)).unwrap();
        for chunk in data.chunks(4097) {
            ingest.write_all(chunk).unwrap();
        }
        assert_eq!(ingest.written(), data.len() as u64);
        assert_eq!(ingest.digest_so_far(), d);
        let verified = ingest.verify().unwrap();
        assert!(!s.contains(&d), "not in place before the commit");
        assert_eq!(verified.size(), data.len() as u64);
        verified.commit().unwrap();
        assert_eq!(fs::read(s.path(&d)).unwrap(), data);
        assert!(ingest_dir_is_empty(dir.path()));
    }

    #[test]
    fn ingest_refuses_bad_content_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let d = Digest::of(b"right");

        // Wrong bytes: the digest check fails, nothing stored.
        let mut i = s.ingest(&d, None).unwrap();
        i.write_chunk(b"wrong").unwrap();
        assert!(matches!(i.commit(), Err(Error::DigestMismatch { .. })));

        // More than announced: refused as it is written.
        let mut i = s.ingest(&d, Some(3)).unwrap();
        assert!(matches!(
            i.write_chunk(b"right"),
            Err(Error::SizeMismatch {
                expected: 3,
                actual: 5,
                ..
            })
        ));
        drop(i);

        // Fewer: refused at verification.
        let mut i = s.ingest(&d, Some(10)).unwrap();
        i.write_chunk(b"right").unwrap();
        assert!(matches!(i.verify(), Err(Error::SizeMismatch { .. })));

        // Abandoned half way, and verified but never committed.
        let mut i = s.ingest(&d, None).unwrap();
        i.write_chunk(b"ri").unwrap();
        drop(i);
        let mut i = s.ingest(&d, None).unwrap();
        i.write_chunk(b"right").unwrap();
        drop(i.verify().unwrap());

        assert!(s.list().unwrap().is_empty());
        assert!(ingest_dir_is_empty(dir.path()));
        // A retry succeeds.
        let mut i = s.ingest(&d, Some(5)).unwrap();
        i.write_chunk(b"right").unwrap();
        assert_eq!(i.commit().unwrap(), 5);
        assert!(s.contains(&d));
    }
}
