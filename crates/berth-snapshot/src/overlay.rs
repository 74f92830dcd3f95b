//! The overlayfs snapshotter: the layers (read-only, shared) under an upper directory of the
//! root's own, mounted at the target.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::{io_err, mkdir};
use crate::{Error, Kind, Result, Root, STATE_FILE, Snapshotter};

/// overlayfs' `statfs` magic number.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// Root filesystems on overlayfs (see the crate docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overlay;

impl Root {
    /// The container's own changes (overlayfs: the upper directory).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// overlayfs' work directory.
    fn work(&self) -> PathBuf {
        self.dir.join("work")
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
            .filter(|p| seen.insert(p.as_path()))
            .cloned()
            .collect()
    }
}

/// Does this mount(2) error mean overlayfs cannot be used here (so `Auto` copies instead)?
pub(crate) fn unusable(e: &io::Error) -> bool {
    [
        rustix::io::Errno::INVAL,
        rustix::io::Errno::PERM,
        rustix::io::Errno::NODEV,
        rustix::io::Errno::TOOBIG,
    ]
    .iter()
    .any(|x| e.raw_os_error() == Some(x.raw_os_error()))
}

/// Make `dir` and `target` (unless inside `dir`) and check the layers, for either kind;
/// the root to fill in.
pub(crate) fn start(kind: Kind, dir: &Path, target: &Path, layers: &[PathBuf]) -> Result<Root> {
    mkdir(dir, 0o700)?;
    let root = Root {
        dir: dir.to_path_buf(),
        target: target.to_path_buf(),
        kind,
        layers: layers.to_vec(),
    };
    let made = (|| {
        mkdir(target, 0o755)?;
        for layer in layers {
            if !layer.is_dir() {
                return Err(io_err("opening the layer", layer)(io::Error::from(
                    io::ErrorKind::NotFound,
                )));
            }
        }
        Ok(())
    })();
    if let Err(e) = made {
        // Only what this call made: not a target that was there already.
        let mut cleanup = root.clone();
        if matches!(&e, Error::Exists(p) if p == target) {
            cleanup.target = dir.to_path_buf();
        }
        let _ = crate::remove(&cleanup, true);
        return Err(e);
    }
    Ok(root)
}

impl Snapshotter for Overlay {
    fn kind(&self) -> Kind {
        Kind::Overlay
    }

    fn prepare(&self, dir: &Path, target: &Path, layers: &[PathBuf]) -> Result<Root> {
        let root = start(Kind::Overlay, dir, target, layers)?;
        let made = (|| {
            for d in [root.upper(), root.work()] {
                mkdir(&d, 0o755)?;
            }
            mount(&root)?;
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
        match rustix::fs::statfs(&root.target) {
            // f_type is i64 here, u32 or i32 on other architectures.
            #[allow(clippy::unnecessary_cast)]
            Ok(s) if s.f_type as i64 == OVERLAYFS_SUPER_MAGIC => Ok(()),
            Ok(_) => Err(Error::NotMounted(root.target.clone())),
            Err(e) => Err(crate::fsutil::errno("checking", &root.target)(e)),
        }
    }

    fn remount(&self, root: &Root) -> Result<()> {
        match self.check(root) {
            Err(Error::NotMounted(_)) => {}
            other => return other,
        }
        if !root.upper().is_dir() {
            return Err(Error::NotFound(root.upper()));
        }
        // overlayfs wants an empty work directory of its own.
        let work = root.work();
        let _ = std::fs::remove_dir_all(&work);
        mkdir(&work, 0o755)?;
        mount(root)
    }

    fn changes(&self, root: &Root) -> Result<Vec<crate::Change>> {
        if !root.dir.join(STATE_FILE).is_file() {
            return Err(Error::NotFound(root.dir.clone()));
        }
        crate::diff::overlay_changes(root)
    }

    fn changes_dir(&self, root: &Root, _scratch: &Path) -> Result<PathBuf> {
        if !root.dir.join(STATE_FILE).is_file() || !root.upper().is_dir() {
            return Err(Error::NotFound(root.dir.clone()));
        }
        Ok(root.upper())
    }
}

/// Mount the overlay: the target over `upper` and the layers.
fn mount(root: &Root) -> Result<()> {
    // overlayfs lists lower directories top first.
    let lower: Vec<String> = root
        .lower_dirs()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        root.upper().display(),
        root.work().display()
    );
    let overlay_err = |source: io::Error| Error::Overlay {
        path: root.target.clone(),
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
        &root.target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| overlay_err(e.into()))
}
