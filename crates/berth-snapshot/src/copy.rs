//! The copying snapshotter: the layers applied one after the other into one plain directory
//! (whiteouts delete, opaque directories clear), for where overlayfs cannot be used.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_layer::pack::{OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, is_whiteout, path_at, sorted_names};
use rustix::fs::{AtFlags, FileType, Mode as FsMode, OFlags};

use crate::diff::{Change, ChangeKind, components};
use crate::fsutil::{clear_dir, errno, io_err, open_dir, open_root, remove_all};
use crate::{Error, Kind, Result, Root, STATE_FILE, Snapshotter};

/// Root filesystems as plain copies (see the crate docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Copy;

impl Snapshotter for Copy {
    fn kind(&self) -> Kind {
        Kind::Copy
    }

    fn prepare(&self, dir: &Path, target: &Path, layers: &[PathBuf]) -> Result<Root> {
        let root = crate::overlay::start(Kind::Copy, dir, target, layers)?;
        let made = (|| {
            for layer in layers {
                apply_layer(layer, target)?;
            }
            root.save()
        })();
        if let Err(e) = made {
            let _ = crate::remove(&root, true);
            return Err(e);
        }
        Ok(root)
    }

    fn check(&self, root: &Root) -> Result<()> {
        if !root.dir.join(STATE_FILE).is_file() {
            return Err(Error::NotFound(root.dir.clone()));
        }
        if !root.target.is_dir() {
            return Err(Error::NotFound(root.target.clone()));
        }
        Ok(())
    }

    fn remount(&self, root: &Root) -> Result<()> {
        self.check(root)
    }

    fn changes(&self, root: &Root) -> Result<Vec<Change>> {
        self.check(root)?;
        crate::diff::copy_changes(root)
    }

    fn changes_dir(&self, root: &Root, scratch: &Path) -> Result<PathBuf> {
        let changes = self.changes(root)?;
        stage(root, &changes, scratch)?;
        Ok(scratch.to_path_buf())
    }
}

/// Copy the plain tree `src` into the directory `dst`.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let s = open_root(src)?;
    let d = open_root(dst)?;
    let mut c = Copier {
        links: HashMap::new(),
        root: d.try_clone().map_err(io_err("opening", dst))?,
        dest: dst.to_path_buf(),
    };
    c.apply_dir(s.as_fd(), d.as_fd(), Path::new(""))
}

/// Apply the unpacked layer directory `layer` (overlay form) onto the tree at `dest`.
pub(crate) fn apply_layer(layer: &Path, dest: &Path) -> Result<()> {
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            FsMode::empty(),
        )
        .map_err(errno("opening", p))
    };
    let src = open(layer)?;
    let dst = open(dest)?;
    let mut c = Copier {
        links: HashMap::new(),
        root: dst.try_clone().map_err(io_err("opening", dest))?,
        dest: dest.to_path_buf(),
    };
    c.apply_dir(src.as_fd(), dst.as_fd(), Path::new(""))
}

/// Copies entries from a layer (or any tree) into a destination tree, keeping their metadata.
pub(crate) struct Copier {
    /// Hard links met so far: (device, inode) of the source → path made, relative to `root`.
    pub(crate) links: HashMap<(u64, u64), PathBuf>,
    /// The destination's root.
    pub(crate) root: OwnedFd,
    /// The destination's root path (for messages).
    pub(crate) dest: PathBuf,
}

fn set_times(dir: BorrowedFd<'_>, name: &OsStr, md: &std::fs::Metadata) -> io::Result<()> {
    let ts = |s: i64, ns: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    rustix::fs::utimensat(
        dir,
        name,
        &rustix::fs::Timestamps {
            last_access: ts(md.atime(), md.atime_nsec()),
            last_modification: ts(md.mtime(), md.mtime_nsec()),
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// Make the xattrs of `dst` those of `src` (overlayfs' own left out on both sides).
fn copy_xattrs(src: &Path, dst: &Path, replace: bool) -> io::Result<()> {
    let want: Vec<_> = berth_layer::pack::xattrs(src)?
        .into_iter()
        .filter(|(k, _)| !k.as_bytes().starts_with(OVERLAY_XATTR_PREFIX))
        .collect();
    if replace {
        for (k, _) in berth_layer::pack::xattrs(dst)? {
            if !k.as_bytes().starts_with(OVERLAY_XATTR_PREFIX) && !want.iter().any(|(w, _)| *w == k)
            {
                rustix::fs::lremovexattr(dst, &k)?;
            }
        }
    }
    for (k, v) in want {
        rustix::fs::lsetxattr(dst, &k, &v, rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}

/// Owner, xattrs and (except for symlinks) the mode of `name` in `dst` from `md`/`src_at`,
/// in the order that keeps set-id bits and file capabilities (chown clears both).
fn copy_meta(
    src_at: &Path,
    md: &std::fs::Metadata,
    dst: BorrowedFd<'_>,
    name: &OsStr,
    replace_xattrs: bool,
) -> io::Result<()> {
    rustix::fs::chownat(
        dst,
        name,
        Some(rustix::fs::Uid::from_raw(md.uid())),
        Some(rustix::fs::Gid::from_raw(md.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    copy_xattrs(src_at, &path_at(dst, name), replace_xattrs)?;
    if !md.file_type().is_symlink() {
        rustix::fs::chmodat(
            dst,
            name,
            FsMode::from_raw_mode(md.mode() & 0o7777),
            AtFlags::empty(),
        )?;
    }
    Ok(())
}

/// Owner, xattrs, mode and times of the directory `name` in `dst` from `src_at` (`md`).
pub(crate) fn copy_dir_meta(
    src_at: &Path,
    md: &std::fs::Metadata,
    dst: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<()> {
    copy_meta(src_at, md, dst, name, true)?;
    set_times(dst, name, md)
}

impl Copier {
    fn err(&self, op: &'static str, rel: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
        io_err(op, &self.dest.join(rel))
    }

    /// Apply the entries of `src` onto `dst` (`rel` is their path below the roots).
    pub(crate) fn apply_dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), Error> {
        for name in sorted_names(src).map_err(self.err("listing", rel))? {
            let path = rel.join(&name);
            let s_at = path_at(src, &name);
            let md = std::fs::symlink_metadata(&s_at).map_err(self.err("reading", &path))?;
            if is_whiteout(&md) {
                remove_all(dst, &name).map_err(self.err("applying the whiteout", &path))?;
                continue;
            }
            let existing = std::fs::symlink_metadata(path_at(dst, &name)).ok();
            if md.is_dir() {
                let opaque = berth_layer::pack::xattr(&s_at, OsStr::new(OPAQUE_XATTR))
                    .map_err(self.err("reading", &path))?
                    .is_some_and(|v| v == b"y");
                let was_dir = existing.as_ref().is_some_and(|m| m.is_dir());
                if existing.is_some() && !was_dir {
                    remove_all(dst, &name).map_err(self.err("replacing", &path))?;
                }
                if !was_dir {
                    rustix::fs::mkdirat(dst, &name, FsMode::from_raw_mode(0o700))
                        .map_err(|e| self.err("creating", &path)(e.into()))?;
                }
                let s_sub =
                    open_dir(src, &name).map_err(|e| self.err("opening", &path)(e.into()))?;
                let d_sub =
                    open_dir(dst, &name).map_err(|e| self.err("opening", &path)(e.into()))?;
                if opaque && was_dir {
                    clear_dir(d_sub.as_fd())
                        .map_err(self.err("applying the opaque directory", &path))?;
                }
                self.apply_dir(s_sub.as_fd(), d_sub.as_fd(), &path)?;
                copy_meta(&s_at, &md, dst, &name, was_dir)
                    .and_then(|()| set_times(dst, &name, &md))
                    .map_err(self.err("setting the metadata of", &path))?;
                continue;
            }
            if existing.is_some() {
                remove_all(dst, &name).map_err(self.err("replacing", &path))?;
            }
            self.copy_node(src, &name, &md, dst, &path)?;
        }
        Ok(())
    }

    /// Copy the non-directory `name` of `src` (metadata `md`) to `dst` (where nothing has that
    /// name), as a hard link to the copy made earlier of the same inode if there is one.
    /// `rel` is its path below the destination's root.
    pub(crate) fn copy_node(
        &mut self,
        src: BorrowedFd<'_>,
        name: &OsStr,
        md: &std::fs::Metadata,
        dst: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), Error> {
        let key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            if let Some(first) = self.links.get(&key) {
                return rustix::fs::linkat(&self.root, first, dst, name, AtFlags::empty())
                    .map_err(|e| self.err("creating the hard link", rel)(e.into()));
            }
        }
        let ft = md.file_type();
        let made = if ft.is_file() {
            let from = rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
                FsMode::empty(),
            )
            .map_err(|e| self.err("opening", rel)(e.into()))?;
            let to = rustix::fs::openat(
                dst,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                FsMode::from_raw_mode(0o600),
            )
            .map_err(|e| self.err("creating", rel)(e.into()))?;
            io::copy(&mut std::fs::File::from(from), &mut std::fs::File::from(to))
                .map_err(self.err("copying", rel))?;
            true
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(path_at(src, name)).map_err(self.err("reading", rel))?;
            rustix::fs::symlinkat(&target, dst, name)
                .map_err(|e| self.err("creating", rel)(e.into()))?;
            true
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                FileType::CharacterDevice
            } else if ft.is_block_device() {
                FileType::BlockDevice
            } else {
                FileType::Fifo
            };
            rustix::fs::mknodat(
                dst,
                name,
                kind,
                FsMode::from_raw_mode(0o600),
                md.rdev() as _,
            )
            .map_err(|e| self.err("creating", rel)(e.into()))?;
            true
        } else {
            false // sockets: nothing to copy
        };
        if !made {
            return Ok(());
        }
        copy_meta(&path_at(src, name), md, dst, name, false)
            .and_then(|()| set_times(dst, name, md))
            .map_err(self.err("setting the metadata of", rel))?;
        if md.nlink() > 1 {
            self.links.insert(key, rel.to_path_buf());
        }
        Ok(())
    }
}

/// Gather the changes of a copied root filesystem into `stage` (an empty directory) in
/// overlay form: changed and added entries copied (hard links kept), deletions as whiteouts,
/// the directories on the way with the copy's metadata.
fn stage(root: &Root, changes: &[Change], stage: &Path) -> Result<()> {
    let merged = root.target.clone();
    let m_root = open_root(&merged)?;
    let s_root = open_root(stage)?;
    let mut copier = Copier {
        links: Default::default(),
        root: s_root.try_clone().map_err(io_err("opening", stage))?,
        dest: stage.to_path_buf(),
    };
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let err = |op, rel: &Path| io_err(op, &merged.join(rel));
    for c in changes {
        let rel = c.path.strip_prefix("/").unwrap_or(&c.path).to_path_buf();
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            continue;
        };
        // The directories on the way (made once; their metadata is set at the end).
        let mut s_dir = s_root.try_clone().map_err(io_err("opening", stage))?;
        let mut m_dir = m_root.try_clone().map_err(io_err("opening", &merged))?;
        let mut so_far = PathBuf::new();
        for comp in components(parent) {
            so_far.push(comp);
            if dirs.insert(so_far.clone()) {
                rustix::fs::mkdirat(&s_dir, comp, FsMode::from_raw_mode(0o700))
                    .map_err(|e| err("staging", &so_far)(e.into()))?;
            }
            s_dir = open_dir(s_dir.as_fd(), comp).map_err(|e| err("staging", &so_far)(e.into()))?;
            m_dir = open_dir(m_dir.as_fd(), comp).map_err(|e| err("opening", &so_far)(e.into()))?;
        }
        if c.kind == ChangeKind::Deleted {
            rustix::fs::mknodat(&s_dir, name, FileType::CharacterDevice, FsMode::empty(), 0)
                .map_err(|e| err("staging the whiteout of", &rel)(e.into()))?;
            continue;
        }
        let md = std::fs::symlink_metadata(path_at(m_dir.as_fd(), name))
            .map_err(err("reading", &rel))?;
        if md.is_dir() {
            if dirs.insert(rel.clone()) {
                rustix::fs::mkdirat(&s_dir, name, FsMode::from_raw_mode(0o700))
                    .map_err(|e| err("staging", &rel)(e.into()))?;
            }
        } else {
            copier.copy_node(m_dir.as_fd(), name, &md, s_dir.as_fd(), &rel)?;
        }
    }
    // Directory metadata last, deepest first (children change a directory's times).
    for rel in dirs.iter().rev() {
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            continue;
        };
        let m_at = merged.join(rel);
        let md = std::fs::symlink_metadata(&m_at).map_err(err("reading", rel))?;
        let s_parent = stage.join(parent);
        let pfd = open_root(&s_parent)?;
        copy_dir_meta(&m_at, &md, pfd.as_fd(), name)
            .map_err(err("staging the metadata of", rel))?;
    }
    Ok(())
}
