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
//! A whiteout must name a plain entry of its directory: `.wh.` (empty), `.wh..`, `.wh...`,
//! aufs metadata (`.wh..wh.*` other than the opaque marker) and paths through a `.wh.` name
//! are refused, and every removal (a whiteout, an opaque directory's clearing in Flatten
//! mode) is an unlinkat of a plain name in a directory resolved beneath the target.
//! Directory modes and times are set at the end through each directory reopened the same
//! way, so a symlink a later entry put in its place is never followed.
//!
//! Sparse files (module `sparse`) are unpacked whole, holes left as holes: GNU tar's old
//! format (entry type `S`) and its PAX formats 0.0, 0.1 and 1.0; a malformed or unknown
//! sparse description is refused, as are entry types layers do not hold (volume labels,
//! multi-volume parts, unknown types). PAX global headers are ignored.

pub mod pack;
mod sparse;
pub use pack::{PackError, PackOptions, Packed, pack};

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode as FsMode, OFlags, ResolveFlags};

use sparse::{PaxSparse, Segment, Tap, TapState};

/// What can go wrong unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or decompressing the stream failed (truncated or corrupt data included).
    /// The message holds the cause, on one line (the tar reader's messages may quote raw
    /// header bytes), so the cause is not also given as a source to print again.
    #[error("reading the layer: {}", one_line(&.0.to_string()))]
    Read(io::Error),
    /// An entry tries to leave the target directory.
    #[error("layer entry {path:?} {why}: refused")]
    Escape {
        /// The entry's path as the tar has it (shortened when long).
        path: String,
        /// How it tries to escape.
        why: &'static str,
    },
    /// An entry that cannot be applied as it is: a whiteout of something that is not a plain
    /// name, a malformed sparse file, an entry type that layers do not hold.
    #[error("layer entry {path:?} {why}: refused")]
    Invalid {
        /// The entry's path as the tar has it (shortened when long).
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A file system operation failed.
    #[error("{op} {path:?}: {source}")]
    Fs {
        /// What was being done.
        op: &'static str,
        /// The entry's path (shortened when long).
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

/// The prefix of whiteout names.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The name of the opaque marker.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

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
    let tap_state = Rc::new(RefCell::new(TapState::default()));
    // Buffered: tar reads headers 512 bytes at a time, which a decompressor serves slowly.
    let tap = Tap {
        inner: BufReader::with_capacity(TAR_BUFFER, hashing),
        state: tap_state.clone(),
    };
    let mut archive = tar::Archive::new(tap);
    let mut state = State {
        root,
        mode,
        created: HashSet::new(),
        dirs: Vec::new(),
        copy_buf: vec![0u8; COPY_BUFFER],
        tap: tap_state,
        pending: None,
    };
    let mut entries = 0u64;
    let mut iter = archive.entries().map_err(Error::Read)?;
    loop {
        // While the tar reader looks for the next entry, keep what it reads: an old-GNU
        // sparse entry's map is in the blocks after its header.
        state.tap.borrow_mut().record(true);
        let next = iter.next();
        state.tap.borrow_mut().record(false);
        let next = next.transpose().map_err(Error::Read)?;
        // The sparse file before this entry has had its data now (the tar reader skipped it).
        state.finish_pending()?;
        let Some(entry) = next else { break };
        state.apply(entry)?;
        entries += 1;
    }
    state.finish()?;
    // The rest of the stream (tar's end blocks and padding) counts for the digest too.
    let mut rest = archive.into_inner().inner;
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

/// The longest path shown whole in an error.
const SHOWN_MAX: usize = 200;

/// `s`, or its beginning and end around "…" when longer than [`SHOWN_MAX`] characters.
pub(crate) fn shorten(s: &str) -> String {
    let n = s.chars().count();
    if n <= SHOWN_MAX {
        return s.to_string();
    }
    let head: String = s.chars().take(SHOWN_MAX / 2).collect();
    let tail: String = s.chars().skip(n - SHOWN_MAX / 2).collect();
    format!("{head}…{tail}")
}

/// `s` on one line: control characters escaped, shortened like a path.
pub(crate) fn one_line(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| {
            let e: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            e
        })
        .collect();
    shorten(&escaped)
}

/// An entry's path for an error message.
fn shown(path: &[u8]) -> String {
    shorten(&String::from_utf8_lossy(path))
}

fn fs_err(op: &'static str, path: &[u8], e: impl Into<io::Error>) -> Error {
    Error::Fs {
        op,
        path: shown(path),
        source: e.into(),
    }
}

fn invalid(path: &[u8], why: impl Into<String>) -> Error {
    Error::Invalid {
        path: shown(path),
        why: why.into(),
    }
}

/// An entry's path as components inside the layer; refuses absolute paths, `..`, NUL bytes
/// and whiteout names used as directories.
fn clean(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    if raw.first() == Some(&b'/') {
        return Err(Error::Escape {
            path: shown(raw),
            why: "is an absolute path",
        });
    }
    if raw.contains(&0) {
        return Err(invalid(raw, "has a NUL byte in its name"));
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::Escape {
                    path: shown(raw),
                    why: "climbs out with '..'",
                });
            }
            c => out.push(c.to_vec()),
        }
    }
    if let Some((_, parents)) = out.split_last()
        && parents.iter().any(|p| p.starts_with(WHITEOUT_PREFIX))
    {
        return Err(invalid(raw, "has a whiteout name (.wh.) as a directory"));
    }
    Ok(out)
}

/// What a whiteout entry's last component asks for.
#[derive(Debug, PartialEq, Eq)]
enum Whiteout<'a> {
    /// Not a whiteout: a name to create.
    No,
    /// `.wh..wh..opq`: the directory hides what lower layers have in it.
    Opaque,
    /// `.wh.NAME`: NAME (a plain name) is deleted.
    Hide(&'a [u8]),
}

/// Classify `name` (an entry's last component); refuses whiteouts of anything but a plain
/// name (`.wh.`, `.wh..`, `.wh...`) and aufs metadata (`.wh..wh.*` other than the opaque
/// marker).
fn whiteout<'a>(name: &'a [u8], raw: &[u8]) -> Result<Whiteout<'a>> {
    if name == OPAQUE_MARKER {
        return Ok(Whiteout::Opaque);
    }
    let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Whiteout::No);
    };
    match hidden {
        b"" => Err(invalid(raw, "is a whiteout of an empty name")),
        b"." => Err(Error::Escape {
            path: shown(raw),
            why: "is a whiteout of '.' (its own directory)",
        }),
        b".." => Err(Error::Escape {
            path: shown(raw),
            why: "is a whiteout of '..'",
        }),
        h if h.starts_with(WHITEOUT_PREFIX) => Err(invalid(
            raw,
            "is aufs metadata (.wh..wh.), which image layers do not hold",
        )),
        h if !is_plain_name(h) => Err(invalid(
            raw,
            "is a whiteout of something that is not a plain name",
        )),
        h => Ok(Whiteout::Hide(h)),
    }
}

/// A name of one directory entry: not empty, not `.` or `..`, no `/` or NUL.
fn is_plain_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
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

/// What is left to do for an entry once its data is in place.
struct Meta {
    pdir: OwnedFd,
    name: Vec<u8>,
    raw: Vec<u8>,
    header: tar::Header,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// An old-GNU sparse file whose data the tar reader has yet to skip over (into the file).
struct Pending {
    meta: Meta,
    real_size: u64,
}

struct State {
    root: OwnedFd,
    mode: Mode,
    /// Paths this layer created (Flatten: an opaque marker keeps them).
    created: HashSet<Vec<u8>>,
    dirs: Vec<DirMeta>,
    /// Reused for every file's contents.
    copy_buf: Vec<u8>,
    tap: Rc<RefCell<TapState>>,
    pending: Option<Pending>,
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// An entry's PAX records, in order.
fn pax_records<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = e.pax_extensions().map_err(Error::Read)? {
        for ext in exts {
            let ext = ext.map_err(Error::Read)?;
            out.push((ext.key_bytes().to_vec(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

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
                path: shown(entry),
                why: "goes through a symlink",
            },
            rustix::io::Errno::NOTDIR => Error::Escape {
                path: shown(entry),
                why: "goes through something that is not a directory",
            },
            e => fs_err("resolving", entry, e),
        }
    }

    fn apply<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<()> {
        let h = e.header().clone();
        let kind = h.entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            // A PAX global header applies to every entry after it; GNU tar and image builders
            // do not write one with anything a layer needs (moby ignores them too).
            return Ok(());
        }
        let records = pax_records(&mut e)?;
        let header_path = e.path_bytes().into_owned();
        let pax_sparse =
            PaxSparse::from_records(&records).map_err(|why| invalid(&header_path, why))?;
        // A PAX sparse file's header may hold a made-up name; its real one is a record.
        let raw = match pax_sparse.as_ref().and_then(|s| s.name.clone()) {
            Some(name) => name,
            None => header_path,
        };
        let parts = clean(&raw)?;
        let Some((name, parent)) = parts.split_last() else {
            return Ok(()); // "./": the layer's root directory itself.
        };
        let path = join(&parts);
        let what = whiteout(name, &raw)?;
        let pdir = self.dir(parent, &raw)?;
        let name_os = OsStr::from_bytes(name);

        match what {
            Whiteout::Opaque => return self.opaque(&pdir, parent, &raw),
            Whiteout::Hide(hidden) => {
                let hidden = OsStr::from_bytes(hidden);
                remove_all(pdir.as_fd(), hidden)
                    .map_err(|err| fs_err("applying the whiteout", &raw, err))?;
                if self.mode == Mode::Overlay {
                    rustix::fs::mknodat(
                        &pdir,
                        hidden,
                        FileType::CharacterDevice,
                        FsMode::empty(),
                        0,
                    )
                    .map_err(|err| fs_err("creating the whiteout", &raw, err))?;
                }
                return Ok(());
            }
            Whiteout::No => {}
        }

        let sparse_kind = kind == tar::EntryType::GNUSparse;
        if pax_sparse.is_some()
            && !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous)
        {
            return Err(invalid(&raw, "has a sparse map but is not a regular file"));
        }
        match kind {
            tar::EntryType::Directory
            | tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::GNUSparse
            | tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo => {}
            other => {
                return Err(invalid(
                    &raw,
                    format!(
                        "has the entry type {:?}, which image layers do not hold",
                        char::from(other.as_byte())
                    ),
                ));
            }
        }

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
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
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
                let mut f = File::from(fd);
                if sparse_kind {
                    // Its data follows; the tar reader skips it on its way to the next
                    // entry, and the tap sends it into the file (see `sparse`).
                    self.start_gnu_sparse(&e, f, &raw)?;
                    self.created.insert(path);
                    self.pending = Some(Pending {
                        meta: Meta {
                            pdir,
                            name: name.clone(),
                            raw,
                            header: h,
                            xattrs: records,
                        },
                        real_size: e.size(),
                    });
                    return Ok(());
                }
                match pax_sparse {
                    Some(s) => self.write_pax_sparse(&mut e, &f, s, &raw)?,
                    None => copy(&mut e, &mut f, &mut self.copy_buf, &raw)?,
                }
            }
            tar::EntryType::Symlink => {
                let target = link_target(&e, &raw)?;
                if target.contains(&0) {
                    return Err(invalid(&raw, "has a NUL byte in its link target"));
                }
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &pdir, name_os)
                    .map_err(|err| fs_err("creating symlink", &raw, err))?;
            }
            tar::EntryType::Link => {
                let target = link_target(&e, &raw)?;
                let tparts = clean(&target)?;
                let Some((tname, tparent)) = tparts.split_last() else {
                    return Err(Error::Escape {
                        path: shown(&raw),
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
            _ => {
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
        }
        self.created.insert(path.clone());
        if kind.is_dir() {
            self.owner_and_xattrs(&pdir, name, &raw, &h, &records)?;
            self.dirs.push(DirMeta {
                path,
                mode,
                mtime: h.mtime().unwrap_or(0),
            });
            return Ok(());
        }
        self.meta(Meta {
            pdir,
            name: name.clone(),
            raw,
            header: h,
            xattrs: records,
        })
    }

    /// Ownership and xattrs of `name` in `pdir`.
    fn owner_and_xattrs(
        &self,
        pdir: &OwnedFd,
        name: &[u8],
        raw: &[u8],
        h: &tar::Header,
        records: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        let name_os = OsStr::from_bytes(name);
        // Ownership first: chown clears set-id bits, which the mode then restores.
        let uid = h.uid().map_err(Error::Read)? as u32;
        let gid = h.gid().map_err(Error::Read)? as u32;
        rustix::fs::chownat(
            pdir,
            name_os,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|err| fs_err("setting the owner of", raw, err))?;
        if h.entry_type().is_symlink() {
            return Ok(());
        }
        let xattrs: Vec<_> = records
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(b"SCHILY.xattr.")?, v)))
            .collect();
        if xattrs.is_empty() {
            return Ok(());
        }
        let fd = rustix::fs::openat(
            pdir,
            name_os,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            FsMode::empty(),
        )
        .map_err(|err| fs_err("opening", raw, err))?;
        let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        for (key, value) in xattrs {
            if key.contains(&0) {
                return Err(invalid(raw, "has an xattr name with a NUL byte"));
            }
            rustix::fs::setxattr(
                &proc_path,
                OsStr::from_bytes(key),
                value,
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|err| fs_err("setting an xattr of", raw, err))?;
        }
        Ok(())
    }

    /// Owner, xattrs, mode and times of a non-directory whose data is in place.
    fn meta(&self, m: Meta) -> Result<()> {
        let name_os = OsStr::from_bytes(&m.name);
        self.owner_and_xattrs(&m.pdir, &m.name, &m.raw, &m.header, &m.xattrs)?;
        let mtime = m.header.mtime().unwrap_or(0);
        if !m.header.entry_type().is_symlink() {
            let mode = m.header.mode().map_err(Error::Read)? & 0o7777;
            // Not a symlink (checked above and created here), so following is harmless;
            // chmod cannot not follow.
            rustix::fs::chmodat(
                &m.pdir,
                name_os,
                FsMode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .map_err(|err| fs_err("setting the mode of", &m.raw, err))?;
        }
        set_times(&m.pdir, name_os, mtime, &m.raw)
    }

    /// An old-GNU sparse entry: read its map (the header's four slots and the extension
    /// blocks the tap kept) and have the tap send the data into `file` as it passes.
    fn start_gnu_sparse<R: Read>(
        &mut self,
        e: &tar::Entry<'_, R>,
        file: File,
        raw: &[u8],
    ) -> Result<()> {
        let h = e.header();
        let gnu = h
            .as_gnu()
            .ok_or_else(|| invalid(raw, "is a sparse entry without a GNU header"))?;
        let mut tap = self.tap.borrow_mut();
        let ext_from = e.raw_header_position() + 512;
        let ext = if gnu.is_extended() {
            tap.recorded_since(ext_from)
                .ok_or_else(|| invalid(raw, "has a sparse map longer than the unpacker reads"))?
        } else {
            Vec::new()
        };
        let map = sparse::gnu_map(gnu, &ext, e.size()).map_err(|why| invalid(raw, why))?;
        let total = h.entry_size().map_err(Error::Read)?;
        if sparse::data_len(&map) != Some(total) {
            return Err(invalid(
                raw,
                "has a sparse map that does not match its data",
            ));
        }
        tap.set_sink(file, map, total);
        Ok(())
    }

    /// The old-GNU sparse file whose data the tar reader has just skipped: check it all
    /// arrived, give it its size (the hole at its end) and its metadata.
    fn finish_pending(&mut self) -> Result<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let Some((file, received, total, error)) = self.tap.borrow_mut().take_sink() else {
            return Err(fs_err(
                "writing",
                &p.meta.raw,
                io::Error::other("the sparse data went nowhere"),
            ));
        };
        if let Some(err) = error {
            return Err(fs_err("writing", &p.meta.raw, err));
        }
        if received != total {
            return Err(Error::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the layer ends inside the sparse file {:?}",
                    shown(&p.meta.raw)
                ),
            )));
        }
        file.set_len(p.real_size)
            .map_err(|err| fs_err("setting the size of", &p.meta.raw, err))?;
        drop(file);
        self.meta(p.meta)
    }

    /// A PAX-format sparse file: its map (from the records, or for version 1.0 from the
    /// front of the data), then each data segment at its offset, holes left as holes.
    fn write_pax_sparse<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        file: &File,
        s: PaxSparse,
        raw: &[u8],
    ) -> Result<()> {
        let size = e.size();
        let (map, used) = match s.map {
            Some(m) => (m, 0),
            None => sparse::read_map_1_0(e, size, s.real_size).map_err(|err| match err {
                Ok(why) => invalid(raw, why),
                Err(io) => Error::Read(io),
            })?,
        };
        let stored = size - used;
        if sparse::data_len(&map) != Some(stored) {
            return Err(invalid(
                raw,
                format!("has a sparse map that does not match its {stored} bytes of data"),
            ));
        }
        for Segment { offset, len } in map {
            let mut at = offset;
            let mut left = len;
            while left > 0 {
                let want = left.min(self.copy_buf.len() as u64) as usize;
                let n = match e.read(&mut self.copy_buf[..want]) {
                    Ok(0) => {
                        return Err(Error::Read(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the layer ends inside the sparse file {:?}", shown(raw)),
                        )));
                    }
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(Error::Read(err)),
                };
                file.write_all_at(&self.copy_buf[..n], at)
                    .map_err(|err| fs_err("writing", raw, err))?;
                at += n as u64;
                left -= n as u64;
            }
        }
        file.set_len(s.real_size)
            .map_err(|err| fs_err("setting the size of", raw, err))
    }

    /// `.wh..wh..opq`: the directory hides everything lower layers have in it.
    fn opaque(&self, pdir: &OwnedFd, parent: &[Vec<u8>], raw: &[u8]) -> Result<()> {
        // A readable fd for the directory (pdir is O_PATH, resolved beneath the root).
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
                        remove_all(fd.as_fd(), OsStr::from_bytes(&name))
                            .map_err(|e| fs_err("applying the opaque whiteout", raw, e))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Directory modes and times, deepest first, once nothing more is written into them.
    /// Each is reopened beneath the root without following symlinks: a later entry may have
    /// replaced the directory (or a parent) with a symlink, which must not be followed.
    fn finish(&mut self) -> Result<()> {
        for d in self.dirs.drain(..).rev() {
            let fd = match rustix::fs::openat2(
                &self.root,
                OsStr::from_bytes(&d.path),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                FsMode::empty(),
                RESOLVE,
            ) {
                Ok(fd) => fd,
                // Replaced or removed by a later entry: its metadata went with it.
                Err(
                    rustix::io::Errno::NOENT
                    | rustix::io::Errno::NOTDIR
                    | rustix::io::Errno::LOOP
                    | rustix::io::Errno::XDEV,
                ) => continue,
                Err(err) => return Err(fs_err("opening", &d.path, err)),
            };
            rustix::fs::fchmod(&fd, FsMode::from_raw_mode(d.mode))
                .map_err(|err| fs_err("setting the mode of", &d.path, err))?;
            let t = timespec(d.mtime);
            rustix::fs::futimens(
                &fd,
                &rustix::fs::Timestamps {
                    last_access: t,
                    last_modification: t,
                },
            )
            .map_err(|err| fs_err("setting the times of", &d.path, err))?;
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

/// A tar mtime as a timestamp (times past i64's range are clamped).
fn timespec(mtime: u64) -> rustix::fs::Timespec {
    rustix::fs::Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    }
}

fn set_times(dir: &OwnedFd, name: &OsStr, mtime: u64, raw: &[u8]) -> Result<()> {
    let t = timespec(mtime);
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

/// Remove `name` in `dir`, recursively, following no symlink. Missing is fine. `name` must be
/// a plain name (never `.`, `..` or a path): what is removed is always an entry of `dir`.
fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    if !is_plain_name(name.as_bytes()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a plain name: refused to remove",
        ));
    }
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
    fn whiteout_names_are_classified() {
        assert_eq!(whiteout(b"file", b"file").unwrap(), Whiteout::No);
        assert_eq!(whiteout(b".wh.x", b"").unwrap(), Whiteout::Hide(b"x"));
        assert_eq!(whiteout(b".wh...x", b"").unwrap(), Whiteout::Hide(b"..x"));
        assert_eq!(whiteout(b".wh..wh..opq", b"").unwrap(), Whiteout::Opaque);
        for bad in [
            &b".wh."[..],
            b".wh..",
            b".wh...",
            b".wh..wh.plnk",
            b".wh.a\0b",
        ] {
            assert!(
                whiteout(bad, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(clean(b"a/.wh.b/c").is_err());
        assert!(clean(b"a/.wh.b").is_ok());
        assert!(clean(b"a\0b").is_err());
    }

    #[test]
    fn long_paths_are_shortened_in_messages() {
        let long = "é".repeat(1000);
        let s = shorten(&long);
        assert_eq!(s.chars().count(), SHOWN_MAX + 1);
        assert!(s.contains('…'));
        assert_eq!(shorten("short"), "short");
        assert_eq!(one_line("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let e = Error::Read(io::Error::other(format!(
            "bad {}\n{}",
            "x".repeat(500),
            "y"
        )));
        let msg = e.to_string();
        assert!(!msg.contains('\n') && msg.len() < 300, "{msg}");
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
