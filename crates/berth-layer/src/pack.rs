//! Packing a directory into an image layer: the reverse of [`crate::unpack`].
//!
//! [`pack`] writes a tar stream of a directory in OCI layer form, optionally compressed, and
//! returns the layer's diff ID (the sha256 of the tar) and, for a compressed layer, the digest
//! and size of what was written.
//!
//! - Entries are written depth-first, each directory's entries sorted by name (bytes), paths
//!   relative to the directory without a leading `./`; the directory itself is not an entry.
//!   Headers are ustar with PAX records where ustar cannot say it (long paths and link
//!   targets, large IDs, extended attributes as `SCHILY.xattr.<name>`). User and group names
//!   are left empty and times are whole seconds, so the same tree always packs to the same
//!   bytes.
//! - With [`PackOptions::whiteouts`] (a directory in overlay form: an overlayfs upper
//!   directory, or a layer directory [`crate::unpack`] made with [`crate::Mode::Overlay`]),
//!   a 0/0 character device `NAME` becomes the whiteout entry `.wh.NAME` and a directory with
//!   `trusted.overlay.opaque=y` gets a `.wh..wh..opq` entry right after its own. Overlay
//!   metadata (`trusted.overlay.*`) is never packed; a directory renamed by overlayfs'
//!   `redirect_dir` or a file copied up metadata-only (`metacopy`) cannot be packed from the
//!   upper directory alone and is refused.
//! - Hard links (non-directories with more than one link, met more than once) are written as
//!   link entries to the first path packed; device nodes and FIFOs as such; sockets are
//!   skipped (a tar cannot hold them).
//!
//! - A file whose name starts with `.wh.` cannot be packed: read back, it would be a
//!   whiteout (a `.wh...` would even name the layer directory's parent); such a tree is
//!   refused with [`PackError::WhiteoutName`].
//!
//! Every entry is opened relative to its parent directory's descriptor without following
//! symlinks, so a tree that changes while it is packed cannot redirect the packer outside it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode as FsMode, OFlags};

use crate::Compression;

/// The overlayfs xattr marking a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The prefix of overlayfs' own xattrs (never packed).
pub const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// What can go wrong packing a layer.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading the directory failed.
    #[error("{op} {path}: {source}")]
    Fs {
        /// What was being done.
        op: &'static str,
        /// The path, relative to the packed directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing (or compressing) the layer failed.
    #[error("writing the layer: {0}")]
    Write(#[source] io::Error),
    /// A file whose name starts with `.wh.`: in a layer it would be read back as a
    /// whiteout (or opaque marker) instead of a file.
    #[error(
        "{path}: a file named \".wh.*\" cannot be put in an image layer (it would be read back as a whiteout): refused"
    )]
    WhiteoutName {
        /// The path, relative to the packed directory.
        path: PathBuf,
    },
    /// Something in the directory a layer cannot express.
    #[error("{path}: {why}")]
    Unsupported {
        /// The path, relative to the packed directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// How to pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    /// Compress the stream ([`Compression::None`] writes a plain tar).
    pub compression: Compression,
    /// The directory is in overlay form: turn overlayfs whiteouts (0/0 character devices,
    /// opaque directories) into OCI whiteout entries. Off, a 0/0 character device is packed as
    /// a device (a plain tree, e.g. an export of a container's root filesystem).
    pub whiteouts: bool,
}

impl Default for PackOptions {
    /// A plain tar of a directory in overlay form.
    fn default() -> Self {
        PackOptions {
            compression: Compression::None,
            whiteouts: true,
        }
    }
}

/// What packing wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// `sha256:<hex>` of the uncompressed tar stream (the image config's diff ID).
    pub diff_id: String,
    /// `sha256:<hex>` of the bytes written (the layer blob's digest; the diff ID when not
    /// compressed).
    pub digest: String,
    /// Bytes written (the layer blob's size).
    pub size: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    /// Entries written (whiteouts included, PAX headers not).
    pub entries: u64,
}

/// A writer that hashes (sha256, by ring) and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: ring::digest::Context,
    n: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            n: 0,
        }
    }

    fn digest(&self) -> String {
        format!(
            "sha256:{}",
            crate::hex(self.hasher.clone().finish().as_ref())
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor between the tar and the output.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(c: Compression, w: W) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Encoder::Plain(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

/// Pack the directory `dir` into `out` as an image layer (see the module docs).
pub fn pack(dir: &Path, out: impl Write, opts: &PackOptions) -> Result<Packed, PackError> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .map_err(|e| PackError::Fs {
        op: "opening",
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let outer = HashingWriter::new(out);
    let encoder = Encoder::new(opts.compression, outer).map_err(PackError::Write)?;
    let mut packer = Packer {
        builder: tar::Builder::new(HashingWriter::new(encoder)),
        opts: *opts,
        links: HashMap::new(),
        entries: 0,
    };
    packer.dir(root.as_fd(), &[])?;
    let tar = packer.builder.into_inner().map_err(PackError::Write)?;
    let (diff_id, tar_size) = (tar.digest(), tar.n);
    let mut outer = tar.inner.finish().map_err(PackError::Write)?;
    outer.flush().map_err(PackError::Write)?;
    Ok(Packed {
        diff_id,
        digest: outer.digest(),
        size: outer.n,
        tar_size,
        entries: packer.entries,
    })
}

/// `/proc/self/fd/<dir>/<name>`: a path naming `name` in the open directory `dir`, for the
/// calls that only take paths (`l*xattr`, `symlink_metadata`); the last component is never
/// followed by those calls.
pub fn path_at(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    p
}

/// The extended attributes of `path` (not following a final symlink), sorted by name. A file
/// system without xattrs has none.
pub fn xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let list = loop {
        let n = match rustix::fs::llistxattr_query(path) {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; n];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(m) => {
                buf.truncate(m);
                break buf;
            }
            Err(rustix::io::Errno::RANGE) => continue, // grew meanwhile
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        match xattr(path, name)? {
            Some(v) => out.push((name.to_os_string(), v)),
            None => continue, // removed meanwhile
        }
    }
    out.sort();
    Ok(out)
}

/// The value of the extended attribute `name` of `path` (not following a final symlink), if
/// it has one.
pub fn xattr(path: &Path, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
    loop {
        let n = match rustix::fs::lgetxattr_query(path, name) {
            Ok(n) => n,
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut buf = vec![0u8; n];
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(m) => {
                buf.truncate(m);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Is this an overlayfs whiteout (a 0/0 character device)?
pub fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Names in an open directory (without `.` and `..`), sorted by bytes.
pub fn sorted_names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    // A fresh descriptor: reading a directory moves its offset.
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FsMode::empty(),
    )?;
    let mut out = Vec::new();
    let mut d = rustix::fs::Dir::read_from(&fd)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsString::from_vec(n.to_vec()));
        }
    }
    out.sort();
    Ok(out)
}

struct Packer<W: Write> {
    builder: tar::Builder<W>,
    opts: PackOptions,
    /// First path packed of each multiply-linked inode, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
}

fn shown(rel: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(rel))
}

fn fs_err(op: &'static str, rel: &[u8]) -> impl FnOnce(io::Error) -> PackError {
    let path = shown(rel);
    move |source| PackError::Fs { op, path, source }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A header for `md` of entry type `kind`, size 0.
fn header(md: &Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(u64::from(md.uid()));
    h.set_gid(u64::from(md.gid()));
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// The largest ID a ustar header holds in octal.
const USTAR_MAX_ID: u32 = 0o7777777;

impl<W: Write> Packer<W> {
    fn dir(&mut self, dir: BorrowedFd<'_>, rel: &[u8]) -> Result<(), PackError> {
        let names = sorted_names(dir).map_err(fs_err("listing", rel))?;
        for name in names {
            let path = join(rel, name.as_bytes());
            // A name unpack would take for a whiteout (or the opaque marker).
            if name.as_bytes().starts_with(crate::WHITEOUT_PREFIX) {
                return Err(PackError::WhiteoutName { path: shown(&path) });
            }
            let at = path_at(dir, &name);
            let md = match std::fs::symlink_metadata(&at) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => return Err(fs_err("reading the metadata of", &path)(e)),
            };
            let ft = md.file_type();
            if self.opts.whiteouts && is_whiteout(&md) {
                let wh = join(rel, &[b".wh.", name.as_bytes()].concat());
                let mut h = header(&md, tar::EntryType::Regular);
                h.set_mode(0o600);
                h.set_uid(0);
                h.set_gid(0);
                self.append(&wh, h, None, Vec::new(), io::empty())?;
                continue;
            }
            let xattrs = self.xattrs_of(&at, &path, ft.is_dir())?;
            if ft.is_dir() {
                let h = header(&md, tar::EntryType::Directory);
                let mut name_dir = path.clone();
                name_dir.push(b'/');
                self.append(&name_dir, h, None, xattrs, io::empty())?;
                if self.opts.whiteouts
                    && xattr(&at, OsStr::new(OPAQUE_XATTR))
                        .map_err(fs_err("reading the xattrs of", &path))?
                        .is_some_and(|v| v == b"y")
                {
                    let mut h = header(&md, tar::EntryType::Regular);
                    h.set_mode(0o600);
                    h.set_uid(0);
                    h.set_gid(0);
                    self.append(
                        &join(&path, b".wh..wh..opq"),
                        h,
                        None,
                        Vec::new(),
                        io::empty(),
                    )?;
                }
                let sub = rustix::fs::openat(
                    dir,
                    &name,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    FsMode::empty(),
                )
                .map_err(|e| fs_err("opening", &path)(e.into()))?;
                self.dir(sub.as_fd(), &path)?;
                continue;
            }
            if ft.is_socket() {
                continue;
            }
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    let h = header(&md, tar::EntryType::Link);
                    self.append(&path, h, Some(&first), Vec::new(), io::empty())?;
                    continue;
                }
                self.links.insert(key, path.clone());
            }
            if ft.is_file() {
                let fd = rustix::fs::openat(
                    dir,
                    &name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
                    FsMode::empty(),
                )
                .map_err(|e| fs_err("opening", &path)(e.into()))?;
                let mut h = header(&md, tar::EntryType::Regular);
                h.set_size(md.len());
                let file = std::fs::File::from(fd);
                let data = Exact {
                    inner: file.take(md.len()),
                    left: md.len(),
                };
                self.append(&path, h, None, xattrs, data)?;
            } else if ft.is_symlink() {
                let target =
                    std::fs::read_link(&at).map_err(fs_err("reading the symlink", &path))?;
                let h = header(&md, tar::EntryType::Symlink);
                self.append(
                    &path,
                    h,
                    Some(target.as_os_str().as_bytes()),
                    xattrs,
                    io::empty(),
                )?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Fifo
                };
                let mut h = header(&md, kind);
                if !ft.is_fifo() {
                    let dev = md.rdev();
                    h.set_device_major(rustix::fs::major(dev))
                        .map_err(PackError::Write)?;
                    h.set_device_minor(rustix::fs::minor(dev))
                        .map_err(PackError::Write)?;
                }
                self.append(&path, h, None, xattrs, io::empty())?;
            }
        }
        Ok(())
    }

    /// The xattrs to pack for `at` (overlayfs' own left out), as PAX records.
    fn xattrs_of(
        &self,
        at: &Path,
        rel: &[u8],
        is_dir: bool,
    ) -> Result<Vec<(String, Vec<u8>)>, PackError> {
        let mut out = Vec::new();
        for (name, value) in xattrs(at).map_err(fs_err("reading the xattrs of", rel))? {
            let n = name.as_bytes();
            if n.starts_with(OVERLAY_XATTR_PREFIX) {
                if self.opts.whiteouts {
                    let what = &n[OVERLAY_XATTR_PREFIX.len()..];
                    if what == b"redirect" && is_dir {
                        return Err(PackError::Unsupported {
                            path: shown(rel),
                            why: "a directory renamed by overlayfs (redirect_dir): its content is in a lower layer".into(),
                        });
                    }
                    if what == b"metacopy" {
                        return Err(PackError::Unsupported {
                            path: shown(rel),
                            why: "copied up metadata-only by overlayfs (metacopy): its data is in a lower layer".into(),
                        });
                    }
                }
                continue;
            }
            let Some(key) = name.to_str() else {
                return Err(PackError::Unsupported {
                    path: shown(rel),
                    why: format!("the xattr name {name:?} is not UTF-8 (PAX keys must be)"),
                });
            };
            out.push((format!("SCHILY.xattr.{key}"), value));
        }
        Ok(out)
    }

    /// Append one entry: PAX records first where the header cannot hold something.
    fn append(
        &mut self,
        path: &[u8],
        mut h: tar::Header,
        link: Option<&[u8]>,
        mut pax: Vec<(String, Vec<u8>)>,
        data: impl Read,
    ) -> Result<(), PackError> {
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        // Short names as they are (a directory keeps its trailing '/'); longer ones split
        // into ustar's prefix and name where they can be, else a PAX record.
        let name_field = |h: &mut tar::Header, bytes: &[u8]| {
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..bytes.len()].copy_from_slice(bytes);
        };
        if path.len() <= 100 {
            name_field(&mut h, path);
        } else if h.set_path(OsStr::from_bytes(path)).is_err() {
            records.push(("path".into(), path.to_vec()));
            name_field(&mut h, &path[..99]);
        }
        if let Some(link) = link {
            if link.len() > 100 {
                records.push(("linkpath".into(), link.to_vec()));
            } else {
                h.set_link_name_literal(link).map_err(PackError::Write)?;
            }
        }
        for (key, id) in [("uid", h.uid()), ("gid", h.gid())] {
            if let Ok(id) = id
                && id > u64::from(USTAR_MAX_ID)
            {
                records.push((key.into(), id.to_string().into_bytes()));
            }
        }
        records.append(&mut pax);
        if !records.is_empty() {
            self.builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(PackError::Write)?;
        }
        h.set_cksum();
        self.builder.append(&h, data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                PackError::Unsupported {
                    path: shown(path),
                    why: "the file shrank while it was being packed".into(),
                }
            } else {
                PackError::Write(e)
            }
        })?;
        self.entries += 1;
        Ok(())
    }
}

/// A reader that must yield exactly `left` bytes: a file that shrank while being packed is an
/// error (UnexpectedEof), not a short entry that would corrupt the archive.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_writer_counts_and_hashes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello").unwrap();
        assert_eq!(w.n, 5);
        assert_eq!(
            w.digest(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn short_reads_are_errors() {
        let mut r = Exact {
            inner: &b"abc"[..],
            left: 5,
        };
        let mut out = Vec::new();
        assert_eq!(
            r.read_to_end(&mut out).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
