//! `docker cp`: a container's files read and written from the host side, every path resolved
//! beneath the container's root by the kernel (openat2 `RESOLVE_IN_ROOT`, magic links
//! refused): the container is hostile, and a symlink it planted (`/tmp/x -> /etc/shadow`, `..`
//! chains) resolves to the container's own file, never the host's.
//!
//! The root: for a running (or paused) container its init's `/proc/<pid>/root`, which is the
//! container's view with every mount of its mount namespace (volumes, binds, tmpfs); for a
//! stopped one its root filesystem on the host (`…/root/merged`), with its recorded bind and
//! volume mounts looked through by their host sources. Pseudo file systems (proc, sysfs,
//! cgroup…) a running container has mounted are listed but never descended into.
//!
//! Reading (GET archive) walks with one directory fd per level, each child opened relative to
//! its directory with `O_NOFOLLOW`, regular files read through the fd that was checked.
//! Writing (PUT archive) spools the tar, checks it (Docker's `noOverwriteDirNonDir`, no
//! whiteout names), and unpacks it with berth-layer's unpacker into the destination
//! directory's fd: every entry resolved beneath it without following any symlink, `..` and
//! absolute names refused.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde::Serialize;

use crate::{Error, Result};

/// How paths are resolved inside a container: as if its root were `/`, `..` stopping there,
/// absolute symlinks relative to it, magic links (`/proc/<pid>/root`) refused.
pub(crate) const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
/// Beneath a directory, following nothing.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Docker's `X-Docker-Container-Path-Stat`: `mode` in Go's `os.FileMode` bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStat {
    /// The base name of the path asked for.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go's os.FileMode.
    pub mode: u32,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// A symlink's target, fully resolved inside the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` of a `st_mode`.
pub(crate) fn go_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match FileType::from_raw_mode(st_mode) {
        FileType::Directory => DIR,
        FileType::Symlink => SYMLINK,
        FileType::BlockDevice => DEVICE,
        FileType::CharacterDevice => DEVICE | CHAR,
        FileType::Fifo => PIPE,
        FileType::Socket => SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        m |= SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= STICKY;
    }
    m
}

/// Go's `filepath.Clean` of `/` + `p`.
pub(crate) fn clean_abs(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// The path as Docker takes it (`archive.PreserveTrailingDotOrSeparator(filepath.Join("/",
/// p), p)`): cleaned, absolute, keeping a trailing `/` or `/.`, which ask for the last
/// symlink to be followed.
pub(crate) fn abs_path(p: &str) -> String {
    let mut c = clean_abs(p);
    let base_dot = |s: &str| s == "." || s.ends_with("/.");
    if !base_dot(&c) && base_dot(p) {
        if !c.ends_with('/') {
            c.push('/');
        }
        c.push('.');
    }
    if !c.ends_with('/') && p.ends_with('/') {
        c.push('/');
    }
    c
}

/// Go's `filepath.Base`.
pub(crate) fn go_base(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Does this (absolute, Docker-form) path ask for its last symlink to be followed?
fn follows_last(abs: &str) -> bool {
    abs.ends_with('/') || go_base(abs) == "."
}

/// A container's file system as the host reaches it.
pub(crate) struct ContainerFs {
    root: OwnedFd,
    /// Looked through for a stopped container: (destination, host source), longest first.
    mounts: Vec<(String, PathBuf)>,
}

fn open_dir_path(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::internal(format!("opening {}", p.display()), io::Error::from(e)))
}

impl ContainerFs {
    /// The root of a running container: its init's root, `pid` checked with `still_init`
    /// after the process's /proc directory is held (so a recycled pid cannot be used).
    pub(crate) fn running(pid: i32, still_init: impl FnOnce() -> bool) -> Result<ContainerFs> {
        let gone = || Error::Conflict("the container stopped while its files were opened".into());
        let proc_dir = rustix::fs::open(
            format!("/proc/{pid}"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| gone())?;
        if !still_init() {
            return Err(gone());
        }
        let root = rustix::fs::openat(
            &proc_dir,
            "root",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| gone())?;
        Ok(ContainerFs {
            root,
            mounts: Vec::new(),
        })
    }

    /// The root of a stopped container: its root filesystem, and its bind and volume mounts
    /// (destination, host source).
    pub(crate) fn stopped(rootfs: &Path, mounts: Vec<(String, PathBuf)>) -> Result<ContainerFs> {
        let mut mounts: Vec<(String, PathBuf)> = mounts
            .into_iter()
            .map(|(d, s)| (clean_abs(&d), s))
            .filter(|(d, _)| d != "/")
            .collect();
        mounts.sort_by_key(|(d, _)| std::cmp::Reverse(d.len()));
        Ok(ContainerFs {
            root: open_dir_path(rootfs)?,
            mounts,
        })
    }

    /// The directory to resolve `clean` (a cleaned absolute path) in, and the path relative
    /// to it.
    fn base_for(&self, clean: &str) -> io::Result<(Option<OwnedFd>, String)> {
        for (dest, src) in &self.mounts {
            let rest = if clean == dest {
                Some(".")
            } else {
                clean
                    .strip_prefix(dest.as_str())
                    .and_then(|r| r.strip_prefix('/'))
            };
            if let Some(rest) = rest {
                // The mount's source: a host path the client chose (a bind) or a volume's
                // directory; what is beneath it is resolved beneath it.
                let fd = rustix::fs::open(src, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
                return Ok((Some(fd), rest.to_string()));
            }
        }
        let rel = clean.trim_start_matches('/');
        Ok((
            None,
            if rel.is_empty() {
                ".".into()
            } else {
                rel.into()
            },
        ))
    }

    /// Open `abs` (Docker's form: see [`abs_path`]) as an O_PATH fd: resolved inside the
    /// container, the last symlink followed only when the path ends in `/` or `/.`
    /// (`follow_all`: always).
    pub(crate) fn open(&self, abs: &str, follow_all: bool) -> io::Result<OwnedFd> {
        let follow = follow_all || follows_last(abs);
        let (base, rel) = self.base_for(&clean_abs(abs))?;
        let dir = match base {
            // A mount's own root (a file, for a bind of one).
            Some(fd) if rel == "." => return Ok(fd),
            Some(ref fd) => fd.as_fd(),
            None => self.root.as_fd(),
        };
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        Ok(rustix::fs::openat2(
            dir,
            rel.as_str(),
            flags,
            Mode::empty(),
            IN_ROOT,
        )?)
    }

    /// `abs` with every symlink on it followed inside the container (Docker's
    /// `FollowSymlinkInScope`): the container path it names.
    pub(crate) fn resolve_in_scope(&self, abs: &str) -> io::Result<String> {
        let mut todo: std::collections::VecDeque<OsString> = split(abs.as_bytes());
        let mut done: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            let path = format!("/{}", join_lossy(&done));
            let fd = match self.open(&path, false) {
                Ok(fd) => fd,
                // What does not exist is kept as it is (Docker's too).
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            let st = rustix::fs::fstat(&fd)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                continue;
            }
            links += 1;
            if links > 255 {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = rustix::fs::readlinkat(&fd, "", Vec::new())?.into_bytes();
            done.pop();
            if target.first() == Some(&b'/') {
                done.clear();
            }
            let mut next = split(&target);
            next.extend(todo.drain(..));
            todo = next;
        }
        Ok(format!("/{}", join_lossy(&done)))
    }

    /// Is `fd` (opened for `abs`) inside a kernel file system the container mounted (its
    /// /proc, /sys…)? Its mount point is a plain (empty) directory to `docker cp`, as on
    /// Docker's host-side view of a root; what is beneath it is not the container's files.
    pub(crate) fn in_pseudo_fs(&self, abs: &str, fd: &OwnedFd) -> bool {
        if !pseudo_fs(fd) {
            return false;
        }
        let clean = clean_abs(abs);
        let parent = match clean.rsplit_once('/') {
            Some(("", _)) => "/".to_string(),
            Some((p, _)) => p.to_string(),
            None => return true,
        };
        clean == "/"
            || self
                .open(&parent, true)
                .map(|p| pseudo_fs(&p))
                .unwrap_or(true)
    }

    /// `docker cp`'s stat of `abs`.
    pub(crate) fn stat(&self, abs: &str) -> io::Result<(PathStat, OwnedFd, rustix::fs::Stat)> {
        let fd = self.open(abs, false)?;
        if self.in_pseudo_fs(abs, &fd) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let st = rustix::fs::fstat(&fd)?;
        let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            self.resolve_in_scope(abs)?
        } else {
            String::new()
        };
        let mtime = std::time::UNIX_EPOCH
            + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
        Ok((
            PathStat {
                name: go_base(abs),
                size: st.st_size,
                mode: go_mode(st.st_mode),
                mtime: humantime::format_rfc3339_nanos(mtime).to_string(),
                link_target,
            },
            fd,
            st,
        ))
    }
}

fn split(p: &[u8]) -> std::collections::VecDeque<OsString> {
    p.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

fn join_lossy(parts: &[OsString]) -> String {
    parts
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// A file system the walk lists but does not descend into: the kernel's views a running
/// container has mounted (its /proc, /sys, cgroups…), which are not its files.
pub(crate) fn pseudo_fs(fd: &OwnedFd) -> bool {
    const SKIP: &[u64] = &[
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x1cd1,      // devpts
        0x1980_0202, // mqueue
        0x7363_6673, // securityfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0xcafe_4a11, // bpf
        0xf97c_ff8c, // selinuxfs
        0x6573_5543, // fusectl
        0x6265_6570, // configfs
        0x6165_676c, // pstore
        0xde5e_81e4, // efivarfs
        0x4249_4e4d, // binfmt_misc
        0x6e73_6673, // nsfs
    ];
    rustix::fs::fstatfs(fd)
        .map(|s| SKIP.contains(&(s.f_type as u64)))
        .unwrap_or(false)
}

/// Reopen an O_PATH fd for reading (the same inode: no path is looked up again).
fn reopen(fd: &OwnedFd, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Reads exactly `size` bytes of a file: what it has, then zeros if it shrank meanwhile.
struct Exactly {
    file: File,
    left: u64,
    eof: bool,
}

impl Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = if self.eof {
            buf[..want].fill(0);
            want
        } else {
            match self.file.read(&mut buf[..want])? {
                0 => {
                    self.eof = true;
                    buf[..want].fill(0);
                    want
                }
                n => n,
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

fn header_for(st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Writes entries of the container's files as a tar, names as given (Docker's `./x` and `/x`
/// included, which the tar crate's path setters would normalize away).
struct TarWriter<W: Write> {
    b: tar::Builder<W>,
    /// Hard links: the first name of each (dev, inode) with several links.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> TarWriter<W> {
    /// A GNU long name (`L`) or long link name (`K`) record for what follows.
    fn long(&mut self, kind: u8, data: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let name = b"././@LongLink";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64 + 1);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        self.b.append(&h, data.chain(&[0u8][..]))
    }

    /// Append `h` named `name` (linking to `link`), with its data.
    fn append(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: impl Read,
    ) -> io::Result<()> {
        if name.contains(&0) || link.is_some_and(|l| l.contains(&0)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a NUL byte in a name",
            ));
        }
        if name.len() >= 100 {
            self.long(b'L', name)?;
        }
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        if let Some(l) = link {
            if l.len() >= 100 {
                self.long(b'K', l)?;
            }
            let n = l.len().min(100);
            h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
        }
        h.set_cksum();
        self.b.append(&h, data)
    }

    /// One entry: `fd` (O_PATH) with stat `st`, named `name`. Returns a directory fd to
    /// descend into, for a directory that is not a pseudo file system.
    fn entry(
        &mut self,
        name: &[u8],
        fd: &OwnedFd,
        st: &rustix::fs::Stat,
    ) -> io::Result<Option<OwnedFd>> {
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let h = header_for(st, tar::EntryType::Link);
                self.append(h, name, Some(&first), io::empty())?;
                return Ok(None);
            }
            self.links.insert(key, name.to_vec());
        }
        match ft {
            FileType::Directory => {
                let h = header_for(st, tar::EntryType::Directory);
                let mut n = name.to_vec();
                if !n.ends_with(b"/") {
                    n.push(b'/');
                }
                self.append(h, &n, None, io::empty())?;
                if pseudo_fs(fd) {
                    return Ok(None);
                }
                Ok(Some(reopen(fd, OFlags::RDONLY | OFlags::DIRECTORY)?))
            }
            FileType::RegularFile => {
                let mut h = header_for(st, tar::EntryType::Regular);
                let size = st.st_size.max(0) as u64;
                h.set_size(size);
                let file = File::from(reopen(fd, OFlags::RDONLY | OFlags::NONBLOCK)?);
                let data = Exactly {
                    file,
                    left: size,
                    eof: false,
                };
                self.append(h, name, None, data)?;
                Ok(None)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(fd, "", Vec::new())?.into_bytes();
                let h = header_for(st, tar::EntryType::Symlink);
                self.append(h, name, Some(&target), io::empty())?;
                Ok(None)
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header_for(st, kind);
                if ft != FileType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
                }
                self.append(h, name, None, io::empty())?;
                Ok(None)
            }
            // Sockets are not archived (Docker's archive skips them too).
            _ => Ok(None),
        }
    }
}

/// Write a tar of the file or directory `fd` (O_PATH, stat `st`) to `out`, its entries named
/// `rebase` (a directory's contents `rebase/…`; Docker's names for `.`, `./x`, and for `/`,
/// `/x`).
pub(crate) fn write_tar(
    fd: OwnedFd,
    st: &rustix::fs::Stat,
    rebase: &str,
    out: impl Write,
) -> io::Result<()> {
    let mut w = TarWriter {
        b: tar::Builder::new(out),
        links: HashMap::new(),
    };
    let top = rebase.as_bytes().to_vec();
    let Some(dir) = w.entry(&top, &fd, st)? else {
        w.b.finish()?;
        return Ok(());
    };
    // Depth first, one open directory per level, names sorted (Go's Walk order).
    struct Level {
        dir: OwnedFd,
        names: std::vec::IntoIter<OsString>,
        prefix: Vec<u8>,
    }
    let level = |dir: OwnedFd, prefix: Vec<u8>| -> io::Result<Level> {
        let mut names = Vec::new();
        for e in rustix::fs::Dir::read_from(&dir)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsString::from_vec(n.to_vec()));
            }
        }
        names.sort();
        Ok(Level {
            dir,
            names: names.into_iter(),
            prefix,
        })
    };
    let mut stack = vec![level(dir, top)?];
    while let Some(cur) = stack.last_mut() {
        let Some(n) = cur.names.next() else {
            stack.pop();
            continue;
        };
        let fd = match rustix::fs::openat(
            &cur.dir,
            n.as_os_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Gone since it was listed.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        let mut name = cur.prefix.clone();
        if !name.is_empty() && !name.ends_with(b"/") {
            name.push(b'/');
        }
        name.extend_from_slice(n.as_bytes());
        if let Some(sub) = w.entry(&name, &fd, &st)? {
            let l = level(sub, name)?;
            stack.push(l);
        }
    }
    w.b.finish()?;
    Ok(())
}

/// The tar stream in `f` read from its start, decompressed as its first bytes say (plain,
/// gzip or zstd).
pub(crate) fn decompressed(mut f: File) -> io::Result<Box<dyn Read>> {
    f.rewind()?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head)?;
    f.rewind()?;
    let r = io::BufReader::new(f);
    Ok(match berth_layer::Compression::detect(&head[..n]) {
        berth_layer::Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        berth_layer::Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        berth_layer::Compression::None => Box::new(r),
    })
}

/// An entry's path as components (None: `..` or absolute, which the unpacker refuses).
fn entry_parts(raw: &[u8]) -> Option<Vec<&[u8]>> {
    if raw.first() == Some(&b'/') {
        return None;
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// What `PUT archive` was asked to do with the tar.
pub(crate) struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory and the other way round.
    pub(crate) no_overwrite_dir_non_dir: bool,
    /// Own every extracted entry by this uid:gid (`copyUIDGID` with a container user).
    pub(crate) owner: Option<(u32, u32)>,
}

/// Unpack the tar in `spool` into the directory `dest` (an O_PATH fd of the destination,
/// resolved in the container), whose container path is `dest_name` (for messages).
pub(crate) fn extract(
    spool: &File,
    dest: &OwnedFd,
    dest_name: &str,
    opts: &ExtractOptions,
) -> Result<()> {
    let bad_tar = |e: io::Error| Error::Invalid(format!("reading the archive: {e}"));
    let dup = |f: &File| {
        f.try_clone()
            .map_err(|e| Error::internal("reading the archive", e))
    };
    // Check first: nothing is written unless the whole archive may be.
    {
        let mut a = tar::Archive::new(decompressed(dup(spool)?).map_err(bad_tar)?);
        for e in a.entries().map_err(bad_tar)? {
            let e = e.map_err(bad_tar)?;
            let raw = e.path_bytes().into_owned();
            let Some(parts) = entry_parts(&raw) else {
                continue; // the unpacker refuses it, with its reason
            };
            let shown = String::from_utf8_lossy(&raw).into_owned();
            if parts
                .iter()
                .any(|p| p.starts_with(berth_layer::WHITEOUT_PREFIX))
            {
                return Err(Error::Invalid(format!(
                    "archive entry {shown:?}: names starting with .wh. are not copied"
                )));
            }
            if !opts.no_overwrite_dir_non_dir || parts.is_empty() {
                continue;
            }
            let rel = OsStr::from_bytes(&raw);
            let existing = match rustix::fs::openat2(
                dest,
                rel,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            ) {
                Ok(fd) => rustix::fs::fstat(&fd).ok(),
                Err(_) => None,
            };
            let Some(st) = existing else { continue };
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let entry_dir = e.header().entry_type().is_dir();
            let target = format!(
                "{}/{}",
                dest_name.trim_end_matches('/'),
                String::from_utf8_lossy(&parts.join(&b'/'))
            );
            if is_dir && !entry_dir {
                return Err(Error::Invalid(format!(
                    "cannot overwrite directory {target:?} with non-directory {shown:?}"
                )));
            }
            if !is_dir && entry_dir {
                return Err(Error::Invalid(format!(
                    "cannot overwrite non-directory {target:?} with directory {shown:?}"
                )));
            }
        }
    }
    let mut f = dup(spool)?;
    f.rewind()
        .map_err(|e| Error::internal("reading the archive", e))?;
    let dest_path = format!("/proc/self/fd/{}", dest.as_raw_fd());
    berth_layer::unpack(
        io::BufReader::new(f),
        Path::new(&dest_path),
        berth_layer::Mode::Flatten,
    )
    .map_err(|e| match e {
        berth_layer::Error::Escape { .. } | berth_layer::Error::Invalid { .. } => {
            Error::Invalid(e.to_string().replacen("layer entry", "archive entry", 1))
        }
        berth_layer::Error::Read(_) => Error::Invalid(e.to_string().replacen(
            "reading the layer",
            "reading the archive",
            1,
        )),
        berth_layer::Error::Fs { .. } => {
            Error::Internal(format!("extracting into {dest_name}: {e}"))
        }
    })?;
    if let Some((uid, gid)) = opts.owner {
        let mut a = tar::Archive::new(decompressed(dup(spool)?).map_err(bad_tar)?);
        for e in a.entries().map_err(bad_tar)? {
            let e = e.map_err(bad_tar)?;
            let raw = e.path_bytes().into_owned();
            let Some(parts) = entry_parts(&raw) else {
                continue;
            };
            let Some((name, parent)) = parts.split_last() else {
                continue;
            };
            let pdir = if parent.is_empty() {
                b".".to_vec()
            } else {
                parent.join(&b'/')
            };
            let Ok(pfd) = rustix::fs::openat2(
                dest,
                OsStr::from_bytes(&pdir),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            ) else {
                continue;
            };
            rustix::fs::chownat(
                &pfd,
                OsStr::from_bytes(name),
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|err| {
                Error::internal(
                    format!("setting the owner of {}", String::from_utf8_lossy(&raw)),
                    io::Error::from(err),
                )
            })?;
        }
    }
    Ok(())
}

/// Read a small file of the container (its /etc/passwd, /etc/group), resolved inside it.
pub(crate) fn read_small(fs: &ContainerFs, abs: &str) -> Option<String> {
    let fd = fs.open(abs, true).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || st.st_size > 4 << 20 {
        return None;
    }
    let mut s = String::new();
    File::from(reopen(&fd, OFlags::RDONLY).ok()?)
        .take(4 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// The uid and gid of a container's `User` (`name`, `uid`, `name:group`, `uid:gid`), from its
/// own /etc/passwd and /etc/group, as Docker's `copyUIDGID` looks them up.
pub(crate) fn lookup_user(fs: &ContainerFs, user: &str) -> Result<(u32, u32)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_small(fs, "/etc/passwd").unwrap_or_default();
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let (uid, gid) = (f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?);
        (f[0] == u || f[2] == u).then_some((uid, gid))
    });
    let (uid, mut gid) = match (entry, u.parse::<u32>()) {
        (Some(e), _) => e,
        (None, Ok(n)) => (n, n),
        (None, Err(_)) => {
            return Err(Error::NotFound(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )));
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read_small(fs, "/etc/group")
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[0] == g).then(|| f[2].parse().ok())?
                })
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_docker_takes_them() {
        assert_eq!(abs_path("etc"), "/etc");
        assert_eq!(abs_path("/etc/"), "/etc/");
        assert_eq!(abs_path("/etc/."), "/etc/.");
        assert_eq!(abs_path("/a/../../b/./c"), "/b/c");
        assert_eq!(abs_path("/"), "/");
        assert_eq!(abs_path(""), "/");
        assert_eq!(abs_path("/."), "/.");
        assert_eq!(go_base("/etc/"), "etc");
        assert_eq!(go_base("/etc/."), ".");
        assert_eq!(go_base("/"), "/");
        assert!(follows_last("/etc/"));
        assert!(follows_last("/etc/."));
        assert!(!follows_last("/etc"));
    }

    #[test]
    fn go_file_modes() {
        assert_eq!(go_mode(0o100644), 0o644);
        assert_eq!(go_mode(0o040755), (1 << 31) | 0o755);
        assert_eq!(go_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_mode(0o020666), (1 << 26) | (1 << 21) | 0o666);
        assert_eq!(go_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(go_mode(0o041777), (1 << 31) | (1 << 20) | 0o777);
    }

    /// A tree standing for a container's root, with symlinks pointing out of it.
    fn hostile_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("tmp/d/e")).unwrap();
        std::fs::write(r.join("etc/shadow"), "container's\n").unwrap();
        std::fs::write(t.path().join("host-secret"), "host's\n").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", r.join("tmp/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../host-secret", r.join("tmp/rel")).unwrap();
        std::os::unix::fs::symlink("../..", r.join("tmp/up")).unwrap();
        std::fs::write(r.join("tmp/d/e/f"), "f\n").unwrap();
        t
    }

    fn read_all(fs: &ContainerFs, p: &str) -> io::Result<String> {
        let fd = fs.open(&abs_path(p), true)?;
        let mut s = String::new();
        File::from(reopen(&fd, OFlags::RDONLY)?).read_to_string(&mut s)?;
        Ok(s)
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = hostile_root();
        let fs = ContainerFs::stopped(&t.path().join("root"), Vec::new()).unwrap();
        assert_eq!(read_all(&fs, "/tmp/abs").unwrap(), "container's\n");
        assert_eq!(
            read_all(&fs, "/tmp/up/etc/shadow").unwrap(),
            "container's\n"
        );
        assert!(
            read_all(&fs, "/tmp/rel").is_err(),
            "the host's file is out of reach"
        );
        assert!(read_all(&fs, "/../host-secret").is_err());
        // Stat: the link itself, its target resolved in the container.
        let (st, _, _) = fs.stat(&abs_path("/tmp/abs")).unwrap();
        assert_eq!(st.mode & (1 << 27), 1 << 27);
        assert_eq!(st.link_target, "/etc/shadow");
        assert_eq!(st.name, "abs");
        let (st, _, _) = fs.stat(&abs_path("/tmp/up/")).unwrap();
        assert_eq!(st.mode & (1 << 31), 1 << 31, "followed: a directory");
        assert_eq!(fs.resolve_in_scope("/tmp/rel").unwrap(), "/host-secret");
    }

    /// A stopped container's bind and volume mounts are looked through (resolution beneath
    /// the mount's source).
    #[test]
    fn a_stopped_containers_mounts_are_looked_through() {
        let t = hostile_root();
        let vol = t.path().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("data"), "volume's\n").unwrap();
        std::os::unix::fs::symlink("../../../host-secret", vol.join("out")).unwrap();
        let fs = ContainerFs::stopped(
            &t.path().join("root"),
            vec![
                ("/srv/data/".into(), vol.clone()),
                ("/etc/bound".into(), vol.join("data")),
            ],
        )
        .unwrap();
        assert_eq!(read_all(&fs, "/srv/data/data").unwrap(), "volume's\n");
        assert_eq!(
            read_all(&fs, "/srv/./data/../data/data").unwrap(),
            "volume's\n"
        );
        assert!(
            read_all(&fs, "/srv/data/out").is_err(),
            "beneath the volume"
        );
        let (st, _, _) = fs.stat(&abs_path("/srv/data")).unwrap();
        assert_eq!(st.mode & (1 << 31), 1 << 31);
        assert_eq!(read_all(&fs, "/etc/shadow").unwrap(), "container's\n");
        assert_eq!(read_all(&fs, "/etc/bound").unwrap(), "volume's\n");
    }

    #[test]
    fn tar_of_a_directory_is_rebased() {
        let t = hostile_root();
        let fs = ContainerFs::stopped(&t.path().join("root"), Vec::new()).unwrap();
        let (_, fd, st) = fs.stat(&abs_path("/tmp")).unwrap();
        let mut out = Vec::new();
        write_tar(fd, &st, "tmp", &mut out).unwrap();
        let mut a = tar::Archive::new(out.as_slice());
        let mut names = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let n = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            if n == "tmp/abs" {
                assert_eq!(
                    e.link_name().unwrap().unwrap().to_str(),
                    Some("/etc/shadow"),
                    "a symlink is archived as one, never followed"
                );
            }
            names.push(n);
        }
        assert_eq!(
            names,
            [
                "tmp/",
                "tmp/abs",
                "tmp/d/",
                "tmp/d/e/",
                "tmp/d/e/f",
                "tmp/rel",
                "tmp/up"
            ]
        );
        // `/tmp/d/.` (contents only) and the root, named as Docker names them; long names.
        let long = "x".repeat(150);
        std::fs::write(t.path().join("root/tmp/d").join(&long), "l\n").unwrap();
        let names = |p: &str, rebase: &str| {
            let (_, fd, st) = fs.stat(&abs_path(p)).unwrap();
            let mut out = Vec::new();
            write_tar(fd, &st, rebase, &mut out).unwrap();
            let mut a = tar::Archive::new(out.as_slice());
            a.entries()
                .unwrap()
                .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("/tmp/d/.", "."),
            ["./", "./e/", "./e/f", &format!("./{long}")]
        );
        let all = names("/", "/");
        assert_eq!(all[0], "/");
        assert!(all.contains(&"/etc/shadow".to_string()), "{all:?}");
    }

    #[test]
    fn extract_refuses_what_leaves_the_directory() {
        let t = hostile_root();
        let root = t.path().join("root");
        let fs = ContainerFs::stopped(&root, Vec::new()).unwrap();
        let dest = fs.open(&abs_path("/tmp"), true).unwrap();
        let opts = ExtractOptions {
            no_overwrite_dir_non_dir: true,
            owner: None,
        };
        let tar_of = |entries: &[(&str, Option<&str>)]| -> File {
            let mut b = tar::Builder::new(Vec::new());
            for (name, link) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                match link {
                    Some(target) => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        h.set_mode(0o777);
                        b.append_link(&mut h, name, target).unwrap();
                    }
                    None => {
                        h.set_size(2);
                        h.set_mode(0o644);
                        // Raw names (`..`) that the tar crate's builder refuses.
                        let bytes = name.as_bytes();
                        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
                        h.set_cksum();
                        b.append(&h, &b"x\n"[..]).unwrap();
                    }
                }
            }
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(&b.into_inner().unwrap()).unwrap();
            f.rewind().unwrap();
            f
        };
        let e = extract(&tar_of(&[("../escaped", None)]), &dest, "/tmp", &opts).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        assert!(!root.join("escaped").exists());
        let e = extract(
            &tar_of(&[("out", Some("/")), ("out/etc/evil", None)]),
            &dest,
            "/tmp",
            &opts,
        )
        .unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(!root.join("etc/evil").exists());
        // Through a symlink the container planted.
        let e = extract(&tar_of(&[("up/etc/evil", None)]), &dest, "/tmp", &opts).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        // A directory is not replaced by a file.
        let e = extract(&tar_of(&[("d", None)]), &dest, "/tmp", &opts).unwrap_err();
        assert!(e.to_string().contains("cannot overwrite directory"), "{e}");
        // What is fine is written.
        extract(&tar_of(&[("new", None)]), &dest, "/tmp", &opts).unwrap();
        assert_eq!(std::fs::read(root.join("tmp/new")).unwrap(), b"x\n");
    }
}
