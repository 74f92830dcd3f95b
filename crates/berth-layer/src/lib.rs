//! Unpack image layers: a tar stream, compressed with gzip or zstd or not at all, into a
//! directory, streaming (nothing is buffered whole) and computing the layer's diff ID (the
//! sha256 of the uncompressed tar) on the way.
//!
//! Two targets:
//! - [`Mode::Overlay`]: the layer gets a directory of its own, to be stacked by overlayfs.
//!   Whiteouts become what overlayfs understands: a `.wh.NAME` entry becomes a 0/0 character
//!   device `NAME`, `.wh..wh..opq` the `trusted.overlay.opaque` xattr on its directory.
//! - [`Mode::Flatten`]: layers are applied one after the other to the same tree (the copying
//!   fallback where overlayfs cannot be used): whiteouts delete what lower layers put there.
//!
//! Safety: every entry is resolved beneath the target directory without following any symlink
//! (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so an entry with `..`, an absolute
//! path, or a path through a symlink the layer itself planted is refused with a clear error
//! instead of being written anywhere else. Hard links may only point inside the layer.

pub mod pack;
pub use pack::{PackError, PackOptions, Packed, pack};

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode as FsMode, OFlags, ResolveFlags};

/// What can go wrong unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or decompressing the stream failed (truncated or corrupt data included).
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
    /// An entry tries to leave the target directory.
    #[error("layer entry {path:?} {why}: refused")]
    Escape {
        /// The entry's path as the tar has it.
        path: String,
        /// How it tries to escape.
        why: &'static str,
    },
    /// A file system operation failed.
    #[error("{op} {path:?}: {source}")]
    Fs {
        /// What was being done.
        op: &'static str,
        /// The entry's path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the layer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Into an empty directory of its own, with overlayfs whiteouts.
    Overlay,
    /// On top of the layers already in the directory, applying whiteouts by deleting.
    Flatten,
}

/// The compression of a layer stream, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Detect from the magic number at the start of the stream.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What unpacking found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:<hex>` of the uncompressed tar stream (the image config's diff ID).
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    /// Entries applied (whiteouts included).
    pub entries: u64,
}

/// A reader that hashes (sha256, by ring: assembly, SHA extensions where the CPU has them)
/// and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: ring::digest::Context,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Unpack the layer read from `layer` into the directory `dest`.
pub fn unpack(layer: impl Read, dest: &Path, mode: Mode) -> Result<Unpacked> {
    let mut buffered = BufReader::with_capacity(128 * 1024, layer);
    let head = buffered.fill_buf().map_err(Error::Read)?;
    let decompressed: Box<dyn Read> = match Compression::detect(head) {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(Error::Read)?)
        }
    };
    let hashing = Hashing {
        inner: decompressed,
        hasher: ring::digest::Context::new(&ring::digest::SHA256),
        n: 0,
    };
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(|e| fs_err("opening", dest.as_os_str().as_bytes(), e))?;
    // Buffered: tar reads headers 512 bytes at a time, which a decompressor serves slowly.
    let mut archive = tar::Archive::new(BufReader::with_capacity(TAR_BUFFER, hashing));
    let mut state = State {
        root,
        mode,
        created: HashSet::new(),
        dirs: Vec::new(),
        copy_buf: vec![0u8; COPY_BUFFER],
    };
    let mut entries = 0u64;
    for entry in archive.entries().map_err(Error::Read)? {
        let entry = entry.map_err(Error::Read)?;
        state.apply(entry)?;
        entries += 1;
    }
    state.finish()?;
    // The rest of the stream (tar's end blocks and padding) counts for the digest too.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(Error::Read)?;
    let rest = rest.into_inner();
    Ok(Unpacked {
        diff_id: format!("sha256:{}", hex(rest.hasher.finish().as_ref())),
        tar_size: rest.n,
        entries,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fs_err(op: &'static str, path: &[u8], e: impl Into<io::Error>) -> Error {
    Error::Fs {
        op,
        path: String::from_utf8_lossy(path).into_owned(),
        source: e.into(),
    }
}

/// An entry's path as components inside the layer; refuses absolute paths and `..`.
fn clean(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.first() == Some(&b'/') {
        return Err(Error::Escape {
            path: shown(),
            why: "is an absolute path",
        });
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::Escape {
                    path: shown(),
                    why: "climbs out with '..'",
                });
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.join(&b'/')
}

/// Read buffer between the (decompressed) stream and the tar reader.
const TAR_BUFFER: usize = 64 * 1024;
/// Buffer for file contents: one write per 128 KiB instead of std's 8 KiB.
const COPY_BUFFER: usize = 128 * 1024;

/// A directory whose metadata is set once everything inside it is written.
struct DirMeta {
    path: Vec<u8>,
    mode: u32,
    mtime: u64,
}

struct State {
    root: OwnedFd,
    mode: Mode,
    /// Paths this layer created (Flatten: an opaque marker keeps them).
    created: HashSet<Vec<u8>>,
    dirs: Vec<DirMeta>,
    /// Reused for every file's contents.
    copy_buf: Vec<u8>,
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

impl State {
    /// Open the directory `parts` beneath the root, creating what is missing, following no
    /// symlink.
    fn dir(&self, parts: &[Vec<u8>], entry: &[u8]) -> Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let path = if parts.is_empty() {
            b".".to_vec()
        } else {
            join(parts)
        };
        match rustix::fs::openat2(
            &self.root,
            OsStr::from_bytes(&path),
            flags,
            FsMode::empty(),
            RESOLVE,
        ) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(self.resolve_err(entry, e)),
        }
        let mut dir = rustix::fs::openat2(&self.root, ".", flags, FsMode::empty(), RESOLVE)
            .map_err(|e| fs_err("opening", b".", e))?;
        for p in parts {
            let name = OsStr::from_bytes(p);
            match rustix::fs::mkdirat(&dir, name, FsMode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(fs_err("creating a parent of", entry, e)),
            }
            dir = rustix::fs::openat2(&dir, name, flags, FsMode::empty(), RESOLVE)
                .map_err(|e| self.resolve_err(entry, e))?;
        }
        Ok(dir)
    }

    fn resolve_err(&self, entry: &[u8], e: rustix::io::Errno) -> Error {
        match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => Error::Escape {
                path: String::from_utf8_lossy(entry).into_owned(),
                why: "goes through a symlink",
            },
            rustix::io::Errno::NOTDIR => Error::Escape {
                path: String::from_utf8_lossy(entry).into_owned(),
                why: "goes through something that is not a directory",
            },
            e => fs_err("resolving", entry, e),
        }
    }

    fn apply<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let parts = clean(&raw)?;
        let Some((name, parent)) = parts.split_last() else {
            return Ok(()); // "./": the layer's root directory itself.
        };
        let path = join(&parts);
        let pdir = self.dir(parent, &raw)?;
        let name_os = OsStr::from_bytes(name);

        // Whiteouts.
        if name == b".wh..wh..opq" {
            return self.opaque(&pdir, parent, &raw);
        }
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            let hidden = OsStr::from_bytes(hidden);
            remove_all(pdir.as_fd(), hidden)
                .map_err(|err| fs_err("applying the whiteout", &raw, err))?;
            if self.mode == Mode::Overlay {
                rustix::fs::mknodat(&pdir, hidden, FileType::CharacterDevice, FsMode::empty(), 0)
                    .map_err(|err| fs_err("creating the whiteout", &raw, err))?;
            }
            return Ok(());
        }

        let h = e.header().clone();
        let kind = h.entry_type();
        let mode = h.mode().map_err(Error::Read)? & 0o7777;
        let existing = rustix::fs::statat(&pdir, name_os, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir = existing
            .as_ref()
            .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        // Anything in the way is replaced (a directory only by something that is not one).
        if existing.is_some() && !(kind.is_dir() && existing_dir) {
            remove_all(pdir.as_fd(), name_os).map_err(|err| fs_err("replacing", &raw, err))?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !existing_dir {
                    rustix::fs::mkdirat(&pdir, name_os, FsMode::from_raw_mode(0o700))
                        .map_err(|err| fs_err("creating directory", &raw, err))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &pdir,
                    name_os,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    FsMode::from_raw_mode(0o600),
                )
                .map_err(|err| fs_err("creating file", &raw, err))?;
                let mut f = std::fs::File::from(fd);
                copy(&mut e, &mut f, &mut self.copy_buf, &raw)?;
            }
            tar::EntryType::Symlink => {
                let target = link_target(&e, &raw)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &pdir, name_os)
                    .map_err(|err| fs_err("creating symlink", &raw, err))?;
            }
            tar::EntryType::Link => {
                let target = link_target(&e, &raw)?;
                let tparts = clean(&target)?;
                let Some((tname, tparent)) = tparts.split_last() else {
                    return Err(Error::Escape {
                        path: String::from_utf8_lossy(&raw).into_owned(),
                        why: "is a hard link to the layer's root",
                    });
                };
                let tdir = self.dir(tparent, &target)?;
                rustix::fs::linkat(
                    &tdir,
                    OsStr::from_bytes(tname),
                    &pdir,
                    name_os,
                    AtFlags::empty(),
                )
                .map_err(|err| fs_err("creating hard link", &raw, err))?;
                self.created.insert(path);
                return Ok(()); // a hard link shares its target's metadata
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    &pdir,
                    name_os,
                    ft,
                    FsMode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|err| fs_err("creating device node", &raw, err))?;
            }
            // pax and GNU long-name headers are consumed by the tar reader; other kinds
            // (sparse files, volume labels) do not occur in image layers.
            _ => return Ok(()),
        }
        self.created.insert(path.clone());

        // Ownership first: chown clears set-id bits, which the mode then restores.
        let uid = h.uid().map_err(Error::Read)? as u32;
        let gid = h.gid().map_err(Error::Read)? as u32;
        rustix::fs::chownat(
            &pdir,
            name_os,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|err| fs_err("setting the owner of", &raw, err))?;
        if kind.is_symlink() {
            set_times(&pdir, name_os, h.mtime().unwrap_or(0), &raw)?;
            return Ok(());
        }
        if let Some(exts) = e.pax_extensions().map_err(Error::Read)? {
            let fd = rustix::fs::openat(
                &pdir,
                name_os,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                FsMode::empty(),
            )
            .map_err(|err| fs_err("opening", &raw, err))?;
            let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            for ext in exts {
                let ext = ext.map_err(Error::Read)?;
                if let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    rustix::fs::setxattr(
                        &proc_path,
                        OsStr::from_bytes(key),
                        ext.value_bytes(),
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(|err| fs_err("setting an xattr of", &raw, err))?;
                }
            }
        }
        if kind.is_dir() {
            self.dirs.push(DirMeta {
                path,
                mode,
                mtime: h.mtime().unwrap_or(0),
            });
            return Ok(());
        }
        rustix::fs::chmodat(
            &pdir,
            name_os,
            FsMode::from_raw_mode(mode),
            AtFlags::empty(),
        )
        .map_err(|err| fs_err("setting the mode of", &raw, err))?;
        set_times(&pdir, name_os, h.mtime().unwrap_or(0), &raw)
    }

    /// `.wh..wh..opq`: the directory hides everything lower layers have in it.
    fn opaque(&self, pdir: &OwnedFd, parent: &[Vec<u8>], raw: &[u8]) -> Result<()> {
        // A readable fd for the directory (pdir is O_PATH).
        let fd = rustix::fs::openat2(
            pdir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            FsMode::empty(),
            RESOLVE,
        )
        .map_err(|e| fs_err("opening", raw, e))?;
        match self.mode {
            Mode::Overlay => rustix::fs::fsetxattr(
                &fd,
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| fs_err("marking opaque", raw, e)),
            Mode::Flatten => {
                let prefix = join(parent);
                for name in list(fd.as_fd()).map_err(|e| fs_err("listing", raw, e))? {
                    let mut child = prefix.clone();
                    if !child.is_empty() {
                        child.push(b'/');
                    }
                    child.extend_from_slice(&name);
                    if !self.created.contains(&child) {
                        remove_all(pdir.as_fd(), OsStr::from_bytes(&name))
                            .map_err(|e| fs_err("applying the opaque whiteout", raw, e))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Directory modes and times, deepest first, once nothing more is written into them.
    fn finish(&mut self) -> Result<()> {
        for d in self.dirs.drain(..).rev() {
            let p = OsStr::from_bytes(&d.path);
            rustix::fs::chmodat(
                &self.root,
                p,
                FsMode::from_raw_mode(d.mode),
                AtFlags::empty(),
            )
            .map_err(|err| fs_err("setting the mode of", &d.path, err))?;
            set_times(&self.root, p, d.mtime, &d.path)?;
        }
        Ok(())
    }
}

/// Copy `from` to the end into `to` through `buf`; read errors are the layer's, write errors
/// the file system's.
fn copy(from: &mut impl Read, to: &mut impl io::Write, buf: &mut [u8], raw: &[u8]) -> Result<()> {
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        to.write_all(&buf[..n])
            .map_err(|e| fs_err("writing", raw, e))?;
    }
}

/// The target of a symlink or hard link entry.
fn link_target<R: Read>(e: &tar::Entry<'_, R>, raw: &[u8]) -> Result<Vec<u8>> {
    e.link_name_bytes().map(|t| t.into_owned()).ok_or_else(|| {
        fs_err(
            "reading the link target of",
            raw,
            io::Error::from(io::ErrorKind::InvalidData),
        )
    })
}

fn set_times(dir: &OwnedFd, name: &OsStr, mtime: u64, raw: &[u8]) -> Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        dir,
        name,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|err| fs_err("setting the times of", raw, err))
}

/// Names in a directory (without . and ..).
fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Remove `name` in `dir`, recursively, following no symlink. Missing is fine.
fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => s,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        FsMode::empty(),
    )?;
    for child in list(sub.as_fd())? {
        remove_all(sub.as_fd(), OsStr::from_bytes(&child))?;
    }
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// The path of an unpacked layer's directory for `diff_id` under `layers_dir` (helper for
/// callers that name layer directories by diff ID).
pub fn layer_dir(layers_dir: &Path, diff_id: &str) -> PathBuf {
    layers_dir.join(diff_id.replace(':', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_paths() {
        assert_eq!(
            clean(b"./a//b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(clean(b"/etc/passwd").is_err());
        assert!(clean(b"a/../../b").is_err());
        assert!(clean(b"./").unwrap().is_empty());
    }

    #[test]
    fn compression_is_detected() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"usr/"), Compression::None);
    }
}
