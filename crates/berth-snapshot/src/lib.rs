//! Container root filesystems: a stack of unpacked image layers (read-only, shared) made into
//! one writable tree for a container, what the container changed in it, and its removal.
//! The model is containerd's snapshotters: one interface, [`Snapshotter`], with one shared
//! test suite (`tests/suite.rs`) that every kind passes:
//!
//! - [`Overlay`]: an overlayfs mount of the layers under a writable upper directory of the
//!   root's own. Making one is a mount, whatever the image's size.
//! - [`Copy`]: where overlayfs cannot be used (no overlayfs, a file system it cannot stack on,
//!   no privilege to mount, too many layers for one mount), a plain copy: the layers applied
//!   bottom-up into one directory, whiteouts (0/0 character devices) deleting what is below,
//!   opaque directories clearing the lower content, with ownership, modes, set-id bits,
//!   xattrs, times, hard links, device nodes and symlinks kept.
//!
//! [`prepare`] with [`Kind::Auto`] asks for overlayfs and falls back to a copy when the mount
//! is refused with EINVAL, EPERM, ENODEV or E2BIG.
//!
//! A root's state lives in its directory `dir`: [`STATE_FILE`] (the serialized [`Root`]:
//! kind, target, layers) and, for overlayfs, `upper/` and `work/`. The root filesystem
//! itself is at its *target* (e.g. a bundle's `rootfs/`). Layers are directories in overlay
//! form, as `berth_layer::unpack` makes them with `Mode::Overlay`.
//!
//! This crate knows directories only: which image a root was made from, and keeping the
//! layers it uses from being collected, is the image store's business (it records every
//! root before making it).

mod copy;
mod diff;
mod fsutil;
mod overlay;

pub use copy::Copy;
pub use diff::{Change, ChangeKind};
pub use overlay::Overlay;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the state file in a root's directory.
pub const STATE_FILE: &str = "rootfs.json";

/// What can go wrong making, reading, changing or removing a root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory to create is already there.
    #[error("{}: already exists", fsutil::short(.0))]
    Exists(PathBuf),
    /// No root filesystem at this directory: never made, or removed.
    #[error("{}: no root filesystem here (never made, or already removed)", fsutil::short(.0))]
    NotFound(PathBuf),
    /// An overlay root filesystem whose mount is gone (e.g. after a reboot).
    #[error("{}: the root filesystem is not mounted", fsutil::short(.0))]
    NotMounted(PathBuf),
    /// overlayfs refused the mount.
    #[error("mounting overlayfs at {}: {source}", fsutil::short(path))]
    Overlay {
        /// The mount point.
        path: PathBuf,
        /// The error mount(2) returned.
        #[source]
        source: io::Error,
    },
    /// A process uses the root filesystem (a container runs in it).
    #[error(
        "{}: in use by process {pid} (a container runs in it); stop it first",
        fsutil::short(path)
    )]
    Busy {
        /// The root filesystem.
        path: PathBuf,
        /// A process whose root directory it is.
        pid: u32,
    },
    /// A file operation failed.
    #[error("{op} {}: {source}", fsutil::short(path))]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Packing (the changes or an export) failed.
    #[error(transparent)]
    Pack(#[from] berth_layer::PackError),
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of a root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// overlayfs over the shared layers.
    Overlay,
    /// A plain copy of the layers.
    Copy,
    /// overlayfs where it can be mounted, else a copy (only ever asked for: a made root is
    /// `Overlay` or `Copy`).
    Auto,
}

/// A root filesystem (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// The directory holding its state.
    #[serde(skip)]
    pub dir: PathBuf,
    /// Where the root filesystem is.
    #[serde(rename = "merged")]
    target: PathBuf,
    /// `Overlay` or `Copy`.
    kind: Kind,
    /// The layer directories, bottom first.
    #[serde(deserialize_with = "layers_compat")]
    layers: Vec<PathBuf>,
}

/// Layers as paths, also from state files of before this crate (pairs of diff ID and path).
fn layers_compat<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Path(PathBuf),
        Pair(serde::de::IgnoredAny, PathBuf),
    }
    Ok(Vec::<Entry>::deserialize(d)?
        .into_iter()
        .map(|e| match e {
            Entry::Path(p) | Entry::Pair(_, p) => p,
        })
        .collect())
}

/// One kind of root filesystem: how it is made, checked, mounted again and diffed.
/// [`remove`] and [`export`] work on every kind alike.
pub trait Snapshotter: Sync {
    /// Which kind this is.
    fn kind(&self) -> Kind;

    /// Make a root filesystem of `layers` (bottom first) at `target`, its state in `dir`.
    /// Both are absolute; `dir` must not exist, nor `target` unless it is inside `dir`. On
    /// failure nothing it made is left.
    fn prepare(&self, dir: &Path, target: &Path, layers: &[PathBuf]) -> Result<Root>;

    /// Is the root filesystem there (and, for overlayfs, mounted)?
    fn check(&self, root: &Root) -> Result<()>;

    /// Mount it again if its mount is gone (after a reboot); nothing to do if it is there.
    fn remount(&self, root: &Root) -> Result<()>;

    /// What changed in it since it was made, sorted by path (`docker diff`).
    fn changes(&self, root: &Root) -> Result<Vec<Change>>;

    /// The changes as a directory in overlay form (whiteouts as 0/0 character devices,
    /// opaque directories marked), ready to be packed as a layer. `scratch` is an empty
    /// directory on the root's file system the snapshotter may fill.
    fn changes_dir(&self, root: &Root, scratch: &Path) -> Result<PathBuf>;
}

/// The snapshotter of a kind (`Auto` is overlayfs; use [`prepare`] for the fallback).
pub fn snapshotter(kind: Kind) -> &'static dyn Snapshotter {
    match kind {
        Kind::Copy => &Copy,
        Kind::Overlay | Kind::Auto => &Overlay,
    }
}

/// Make a root filesystem of `kind` (see [`Snapshotter::prepare`]); `Auto` falls back to a
/// copy when overlayfs cannot be used here.
pub fn prepare(kind: Kind, dir: &Path, target: &Path, layers: &[PathBuf]) -> Result<Root> {
    if kind == Kind::Copy {
        return Copy.prepare(dir, target, layers);
    }
    match Overlay.prepare(dir, target, layers) {
        Err(Error::Overlay { source, .. }) if kind == Kind::Auto && overlay::unusable(&source) => {
            Copy.prepare(dir, target, layers)
        }
        other => other,
    }
}

impl Root {
    /// The root filesystem made in `dir` (reads `dir/rootfs.json`).
    pub fn open(dir: &Path) -> Result<Root> {
        let state = dir.join(STATE_FILE);
        let bytes = match std::fs::read(&state) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(dir.to_path_buf()));
            }
            Err(e) => return Err(fsutil::io_err("reading", &state)(e)),
        };
        let mut r: Root = serde_json::from_slice(&bytes).map_err(|e| {
            fsutil::io_err("parsing", &state)(io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        r.dir = dir.to_path_buf();
        Ok(r)
    }

    /// A root that may be only partly made (its state file missing, e.g. after a crash
    /// while it was prepared), known from what its maker recorded: enough to [`remove`] it.
    pub fn partial(dir: &Path, target: &Path, kind: Kind) -> Root {
        Root {
            dir: dir.to_path_buf(),
            target: target.to_path_buf(),
            kind,
            layers: Vec::new(),
        }
    }

    /// Where the root filesystem is.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// `Overlay` or `Copy`.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The layer directories, bottom first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// Its snapshotter.
    pub fn snapshotter(&self) -> &'static dyn Snapshotter {
        snapshotter(self.kind)
    }

    /// See [`Snapshotter::check`].
    pub fn check(&self) -> Result<()> {
        self.snapshotter().check(self)
    }

    /// See [`Snapshotter::changes`].
    pub fn changes(&self) -> Result<Vec<Change>> {
        self.snapshotter().changes(self)
    }

    /// Write the state file (last: a root with a state file is whole).
    fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| fsutil::io_err("writing", &path)(io::Error::other(e)))?;
        let tmp = self.dir.join(".rootfs.json.tmp");
        std::fs::write(&tmp, bytes).map_err(fsutil::io_err("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(fsutil::io_err("writing", &path))
    }
}

/// A process whose root directory is the root filesystem at `target`, if any: a container
/// running (or created, or paused) in it. Found by the device and inode of every process's
/// root, which a container's pivot_root or chroot into a bind of `target` keeps, in any
/// mount namespace.
pub fn user_of(target: &Path) -> Result<Option<u32>> {
    let md = match std::fs::metadata(target) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fsutil::io_err("reading", target)(e)),
    };
    let want = (md.dev(), md.ino());
    let procs =
        std::fs::read_dir("/proc").map_err(fsutil::io_err("reading", Path::new("/proc")))?;
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // Processes that end meanwhile, or kernel threads, are skipped.
        if let Ok(r) = std::fs::metadata(format!("/proc/{pid}/root"))
            && (r.dev(), r.ino()) == want
        {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// Remove a root filesystem of any kind: unmount it (overlayfs) and delete its target and
/// its state directory. Removing one that is gone, or only partly made, is fine. Refused
/// while a process runs in it ([`Error::Busy`]) unless `force`.
pub fn remove(root: &Root, force: bool) -> Result<()> {
    if !force && let Some(pid) = user_of(&root.target)? {
        return Err(Error::Busy {
            path: root.target.clone(),
            pid,
        });
    }
    // A copy is not a mount: EINVAL. Detached, so that nothing on this side keeps it busy.
    match rustix::mount::unmount(&root.target, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(fsutil::io_err("unmounting", &root.target)(e.into())),
    }
    for p in [&root.target, &root.dir] {
        match std::fs::remove_dir_all(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(fsutil::io_err("removing", p)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `docker export`: a plain tar of the whole root filesystem (what the container sees; no
/// whiteouts) written to `out`.
pub fn export(root: &Root, out: impl std::io::Write) -> Result<berth_layer::Packed> {
    root.check()?;
    Ok(berth_layer::pack(
        &root.target,
        out,
        &berth_layer::PackOptions {
            compression: berth_layer::Compression::None,
            whiteouts: false,
        },
    )?)
}

/// Copy the plain tree `src` into the directory `dst` (no whiteouts to apply): ownership,
/// modes, xattrs, times, hard links and special files kept (seeding a volume with what the
/// image has at its path).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    copy::copy_tree(src, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_in_lowercase() {
        assert_eq!(
            serde_json::to_string(&Kind::Overlay).unwrap(),
            "\"overlay\""
        );
        assert_eq!(
            serde_json::from_str::<Kind>("\"copy\"").unwrap(),
            Kind::Copy
        );
    }

    #[test]
    fn old_state_files_still_read() {
        let old = r#"{"dir":"/x","merged":"/b/rootfs","kind":"overlay","image":"sha256:aa",
            "layers":[["sha256:11","/l/1"],["sha256:22","/l/2"]]}"#;
        let r: Root = serde_json::from_str(old).unwrap();
        assert_eq!(r.layers, vec![PathBuf::from("/l/1"), PathBuf::from("/l/2")]);
        assert_eq!(r.target, PathBuf::from("/b/rootfs"));
        let new = serde_json::to_string(&r).unwrap();
        let again: Root = serde_json::from_str(&new).unwrap();
        assert_eq!(again, r);
    }
}
