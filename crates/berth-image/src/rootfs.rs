//! Container root filesystems, of two kinds:
//!
//! - [`RootfsKind::Overlay`]: an overlayfs mount of the image's unpacked layers (read-only,
//!   shared) under a writable upper directory of the container's own. Creating one is a
//!   mount, whatever the image's size.
//! - [`RootfsKind::Copy`]: where overlayfs cannot be used (no overlayfs, a file system it
//!   cannot stack on, no privilege to mount, too many layers for one mount), a plain copy: the
//!   layers applied bottom-up into one directory, whiteouts (0/0 character devices) deleting
//!   what is below, opaque directories clearing the lower content, with ownership, modes,
//!   set-id bits, xattrs, times, hard links, device nodes and symlinks kept.
//!
//! [`RootfsKind::Auto`] asks for overlayfs and falls back to a copy when the mount is refused
//! with EINVAL, EPERM, ENODEV or E2BIG.
//!
//! A root filesystem's state lives in its directory `dir`: `rootfs.json` (the serialized
//! [`Rootfs`]: kind, image, layers, where it is mounted) and, for overlayfs, `upper/` and
//! `work/`. The root filesystem itself is `dir/merged`, or, in a bundle, the bundle's
//! `rootfs/` (see [`crate::bundle`]). [`Rootfs::open`] finds one again from its directory,
//! [`Rootfs::remount`] mounts an overlay again whose mount is gone (after a reboot), and
//! [`Rootfs::remove`] unmounts (overlayfs) and deletes both kinds.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_layer::pack::{OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, is_whiteout, path_at, sorted_names};
use rustix::fs::{AtFlags, FileType, Mode as FsMode, OFlags};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::{Error, ImageRecord, ImageStore, Result};

/// The name of the state file in a root filesystem's directory.
pub const STATE_FILE: &str = "rootfs.json";

/// overlayfs' `statfs` magic number.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// What can go wrong making, reading, changing or removing a container's root filesystem, its
/// bundle, diff, commit or export.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The image store failed (an unknown image is [`Error::NoSuchImage`] in here).
    #[error(transparent)]
    Store(#[from] Error),
    /// The directory to create is already there.
    #[error("{0}: already exists")]
    Exists(PathBuf),
    /// No root filesystem (or bundle) at this directory: never made, or removed.
    #[error("{0}: no root filesystem here (never made, or already removed)")]
    NotFound(PathBuf),
    /// An overlay root filesystem whose mount is gone (e.g. after a reboot).
    #[error("{0}: the root filesystem is not mounted")]
    NotMounted(PathBuf),
    /// overlayfs refused the mount (with [`RootfsKind::Overlay`]; `Auto` falls back to a copy
    /// on EINVAL, EPERM, ENODEV and E2BIG).
    #[error("mounting overlayfs at {path}: {source}")]
    Overlay {
        /// The mount point.
        path: PathBuf,
        /// The error mount(2) returned.
        #[source]
        source: io::Error,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The image config cannot be turned into a process (no command, unknown user…).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Packing a layer (commit) or the export failed.
    #[error(transparent)]
    Pack(#[from] berth_layer::PackError),
    /// The image config asks for something that cannot be done (a volume path that is not
    /// absolute, …).
    #[error("{0}")]
    Invalid(String),
    /// The root filesystem was not made from the image given as its base.
    #[error("the root filesystem at {dir} was made from image {made_from}, not from {given}")]
    WrongBase {
        /// The root filesystem's directory.
        dir: PathBuf,
        /// The image it was made from.
        made_from: String,
        /// The image given.
        given: String,
    },
}

impl From<RootfsError> for Error {
    fn from(e: RootfsError) -> Error {
        match e {
            RootfsError::Store(e) => e,
            RootfsError::Io { op, path, source } => Error::Io { op, path, source },
            RootfsError::Overlay { path, source } => Error::Io {
                op: "mounting overlayfs at",
                path,
                source,
            },
            RootfsError::Exists(path) => Error::Io {
                op: "creating",
                path,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            },
            e => Error::Invalid(e.to_string()),
        }
    }
}

pub(crate) fn io_err(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> RootfsError + use<> {
    let path = path.to_path_buf();
    move |source| RootfsError::Io { op, path, source }
}

fn errno(op: &'static str, path: &Path) -> impl FnOnce(rustix::io::Errno) -> RootfsError + use<> {
    let path = path.to_path_buf();
    move |e| RootfsError::Io {
        op,
        path,
        source: e.into(),
    }
}

/// How a root filesystem is (to be) made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsKind {
    /// overlayfs over the shared layers (fails if overlayfs cannot be mounted).
    Overlay,
    /// A plain copy of the layers.
    Copy,
    /// overlayfs where it can be mounted, else a copy (only ever asked for: a made root
    /// filesystem is `Overlay` or `Copy`).
    Auto,
}

/// A container's root filesystem (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    /// The directory holding its state (`rootfs.json`; overlayfs: `upper/`, `work/`).
    pub dir: PathBuf,
    /// Where the root filesystem is.
    merged: PathBuf,
    /// `Overlay` or `Copy`.
    kind: RootfsKind,
    /// The image it was made from (image ID).
    image: String,
    /// The image's layers, bottom first: (diff ID, unpacked layer directory).
    layers: Vec<(String, PathBuf)>,
}

impl Rootfs {
    /// The root filesystem made in `dir` (reads `dir/rootfs.json`).
    pub fn open(dir: &Path) -> Result<Rootfs, RootfsError> {
        let state = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&state) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RootfsError::NotFound(dir.to_path_buf()));
            }
            Err(e) => return Err(io_err("reading", &state)(e)),
        };
        let mut r: Rootfs = serde_json::from_slice(&bytes).map_err(|e| {
            io_err("parsing", &state)(io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        r.dir = dir.to_path_buf();
        Ok(r)
    }

    /// Where the root filesystem is (the overlay mount point, or the copy).
    pub fn merged(&self) -> PathBuf {
        self.merged.clone()
    }

    /// The container's own changes (overlayfs; what diff and commit read).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// overlayfs' work directory.
    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// `Overlay` or `Copy`.
    pub fn kind(&self) -> RootfsKind {
        self.kind
    }

    /// The image it was made from (its ID).
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The image's layers, bottom first: (diff ID, unpacked layer directory).
    pub fn layers(&self) -> &[(String, PathBuf)] {
        &self.layers
    }

    /// The layer directories, top first (overlayfs' lowerdir order), each once: overlayfs
    /// refuses a directory given twice, and a layer that is in an image twice (images built
    /// with identical, often empty, layers) counts only where it is highest, since it
    /// provides again everything its lower copy did, above whatever lies between.
    pub(crate) fn lower_dirs(&self) -> Vec<PathBuf> {
        let mut seen = std::collections::HashSet::new();
        self.layers
            .iter()
            .rev()
            .filter(|(d, _)| seen.insert(d.as_str()))
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// Check that the root filesystem is still there (and, for overlayfs, mounted).
    pub fn check(&self) -> Result<(), RootfsError> {
        if !self.dir.join(STATE_FILE).is_file() {
            return Err(RootfsError::NotFound(self.dir.clone()));
        }
        if self.kind == RootfsKind::Overlay {
            match rustix::fs::statfs(&self.merged) {
                // f_type is i64 here, u32 or i32 on other architectures.
                #[allow(clippy::unnecessary_cast)]
                Ok(s) if s.f_type as i64 == OVERLAYFS_SUPER_MAGIC => {}
                Ok(_) => return Err(RootfsError::NotMounted(self.merged.clone())),
                Err(e) => return Err(errno("checking", &self.merged)(e)),
            }
        } else if !self.merged.is_dir() {
            return Err(RootfsError::NotFound(self.merged.clone()));
        }
        Ok(())
    }

    /// Unmount (overlayfs) and remove everything of it: its directory and the root filesystem.
    /// Removing one that is already gone is fine.
    pub fn remove(&self) -> Result<()> {
        self.remove_inner().map_err(Error::from)
    }

    fn remove_inner(&self) -> Result<(), RootfsError> {
        let merged = &self.merged;
        if self.kind != RootfsKind::Copy {
            match rustix::mount::unmount(merged, rustix::mount::UnmountFlags::DETACH) {
                Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(errno("unmounting", merged)(e)),
            }
        }
        for p in [merged, &self.dir] {
            match std::fs::remove_dir_all(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("removing", p)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Write `rootfs.json`.
    fn save(&self) -> Result<(), RootfsError> {
        let path = self.dir.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| io_err("writing", &path)(io::Error::other(e)))?;
        let tmp = self.dir.join(".rootfs.json.tmp");
        std::fs::write(&tmp, bytes).map_err(io_err("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("writing", &path))
    }
}

impl ImageStore {
    /// Mount a fresh copy-on-write root filesystem of `image` in `dir` (created; must not
    /// exist): overlayfs, `dir/merged` over `dir/upper`.
    pub fn create_rootfs(&self, image: &ImageRecord, dir: &Path) -> Result<Rootfs> {
        self.create_rootfs_with(image, dir, RootfsKind::Overlay)
            .map_err(Error::from)
    }

    /// Make a root filesystem of `image` of `kind` in `dir` (created; must not exist); the
    /// root filesystem is `dir/merged`.
    pub fn create_rootfs_with(
        &self,
        image: &ImageRecord,
        dir: &Path,
        kind: RootfsKind,
    ) -> Result<Rootfs, RootfsError> {
        let dir = std::path::absolute(dir).map_err(io_err("resolving", dir))?;
        self.create_rootfs_at(image, &dir, &dir.join("merged"), kind)
    }

    /// Make a root filesystem of `image` of `kind` at `merged`, its state in `dir`. `dir`
    /// must not exist; neither must `merged` unless it is inside `dir`. Both are absolute.
    pub(crate) fn create_rootfs_at(
        &self,
        image: &ImageRecord,
        dir: &Path,
        merged: &Path,
        kind: RootfsKind,
    ) -> Result<Rootfs, RootfsError> {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(RootfsError::Exists(dir.to_path_buf()));
            }
            Err(e) => return Err(io_err("creating", dir)(e)),
        }
        let mut rootfs = Rootfs {
            dir: dir.to_path_buf(),
            merged: merged.to_path_buf(),
            kind,
            image: image.id.clone(),
            layers: image
                .diff_ids
                .iter()
                .map(|d| (d.clone(), self.layer_path(d)))
                .collect(),
        };
        let result = (|| {
            match std::fs::create_dir(merged) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(RootfsError::Exists(merged.to_path_buf()));
                }
                Err(e) => return Err(io_err("creating", merged)(e)),
            }
            for (_, layer) in &rootfs.layers {
                if !layer.is_dir() {
                    return Err(io_err("opening the layer", layer)(io::Error::from(
                        io::ErrorKind::NotFound,
                    )));
                }
            }
            if kind != RootfsKind::Copy {
                match rootfs.mount() {
                    Ok(()) => rootfs.kind = RootfsKind::Overlay,
                    Err(RootfsError::Overlay { source, .. })
                        if kind == RootfsKind::Auto && overlay_unusable(&source) =>
                    {
                        for d in [rootfs.upper(), rootfs.work()] {
                            let _ = std::fs::remove_dir_all(d);
                        }
                        rootfs.kind = RootfsKind::Copy;
                    }
                    Err(e) => return Err(e),
                }
            }
            if rootfs.kind == RootfsKind::Copy {
                for (_, layer) in &rootfs.layers {
                    apply_layer(layer, merged)?;
                }
            }
            rootfs.save()
        })();
        if let Err(e) = result {
            // Only what this call made: `merged` when it was made here.
            let mut cleanup = rootfs.clone();
            if matches!(&e, RootfsError::Exists(p) if p == merged) {
                cleanup.merged = dir.to_path_buf();
            }
            let _ = cleanup.remove_inner();
            return Err(e);
        }
        Ok(rootfs)
    }
}

impl Rootfs {
    /// Mount the overlay: `merged` over `upper` (made here) and the layers.
    fn mount(&self) -> Result<(), RootfsError> {
        for d in [self.upper(), self.work()] {
            std::fs::create_dir(&d).map_err(io_err("creating", &d))?;
        }
        self.mount_overlay()
    }

    /// Mount an overlay root filesystem again whose mount is gone (e.g. after a reboot), with
    /// its upper directory as it was. Nothing to do for a copy or a mounted one.
    pub fn remount(&self) -> Result<(), RootfsError> {
        match self.check() {
            Err(RootfsError::NotMounted(_)) => {}
            other => return other,
        }
        if !self.upper().is_dir() {
            return Err(RootfsError::NotFound(self.upper()));
        }
        // overlayfs wants an empty work directory of its own.
        let work = self.work();
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir(&work).map_err(io_err("creating", &work))?;
        self.mount_overlay()
    }

    fn mount_overlay(&self) -> Result<(), RootfsError> {
        // overlayfs lists lower directories top first.
        let lower: Vec<String> = self
            .lower_dirs()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper().display(),
            self.work().display()
        );
        let overlay_err = |source: io::Error| RootfsError::Overlay {
            path: self.merged.clone(),
            source,
        };
        if lower.is_empty() {
            // overlayfs needs a lower directory: an image without layers is empty.
            return Err(overlay_err(io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            )));
        }
        // One page of mount options: more layers than fit need a copy.
        if opts.len() >= 4096 {
            return Err(overlay_err(io::Error::from_raw_os_error(
                rustix::io::Errno::TOOBIG.raw_os_error(),
            )));
        }
        let data = std::ffi::CString::new(opts)
            .map_err(|_| overlay_err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        rustix::mount::mount(
            "overlay",
            &self.merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(data.as_c_str()),
        )
        .map_err(|e| overlay_err(e.into()))
    }
}

/// Does this mount(2) error mean overlayfs cannot be used here (so `Auto` copies instead)?
fn overlay_unusable(e: &io::Error) -> bool {
    [
        rustix::io::Errno::INVAL,
        rustix::io::Errno::PERM,
        rustix::io::Errno::NODEV,
        rustix::io::Errno::TOOBIG,
    ]
    .iter()
    .any(|x| e.raw_os_error() == Some(x.raw_os_error()))
}

/// Apply the unpacked layer directory `layer` (overlay form) onto the tree at `dest`.
pub(crate) fn apply_layer(layer: &Path, dest: &Path) -> Result<(), RootfsError> {
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

/// Open the directory `name` in `dir` as O_PATH, following no symlink.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        FsMode::empty(),
    )
}

/// Remove `name` in `dir`, recursively, following no symlink. Missing is fine.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let md = match std::fs::symlink_metadata(path_at(dir, name)) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !md.is_dir() {
        return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
    }
    let sub = open_dir(dir, name)?;
    clear_dir(sub.as_fd())?;
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Remove everything in the directory `dir`.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    for child in sorted_names(dir)? {
        remove_all(dir, &child)?;
    }
    Ok(())
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
    fn err(&self, op: &'static str, rel: &Path) -> impl FnOnce(io::Error) -> RootfsError + use<> {
        io_err(op, &self.dest.join(rel))
    }

    /// Apply the entries of `src` onto `dst` (`rel` is their path below the roots).
    pub(crate) fn apply_dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), RootfsError> {
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
    ) -> Result<(), RootfsError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_in_lowercase() {
        assert_eq!(
            serde_json::to_string(&RootfsKind::Overlay).unwrap(),
            "\"overlay\""
        );
        assert_eq!(
            serde_json::from_str::<RootfsKind>("\"copy\"").unwrap(),
            RootfsKind::Copy
        );
    }

    #[test]
    fn errors_convert_to_the_store_error() {
        let e: Error = RootfsError::Exists(PathBuf::from("/x")).into();
        assert!(matches!(e, Error::Io { .. }));
        let e: Error = RootfsError::Store(Error::NoSuchImage("a".into())).into();
        assert!(matches!(e, Error::NoSuchImage(_)));
    }
}
