//! Copy-on-write root filesystems: an overlayfs mount of an image's unpacked layers (read-only,
//! shared) under a writable upper directory of the container's own. Creating one is a mount,
//! whatever the image's size.

use std::path::{Path, PathBuf};

use crate::{Error, ImageRecord, ImageStore, Result};

/// A container's root filesystem: `<dir>/merged` over `<dir>/upper`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rootfs {
    /// The container's directory.
    pub dir: PathBuf,
}

impl Rootfs {
    /// Where the root filesystem is mounted.
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// The container's own changes (what `diff` and `commit` read).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// Unmount and remove everything of it.
    pub fn remove(&self) -> Result<()> {
        let merged = self.merged();
        match rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(Error::Io {
                    op: "unmounting",
                    path: merged,
                    source: e.into(),
                });
            }
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
                op: "removing",
                path: self.dir.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

impl ImageStore {
    /// Mount a fresh copy-on-write root filesystem of `image` in `dir` (created; must not
    /// exist).
    pub fn create_rootfs(&self, image: &ImageRecord, dir: &Path) -> Result<Rootfs> {
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        std::fs::create_dir(dir).map_err(io("creating", dir))?;
        let rootfs = Rootfs {
            dir: dir.to_path_buf(),
        };
        let result = (|| {
            for d in ["upper", "work", "merged"] {
                std::fs::create_dir(dir.join(d)).map_err(io("creating", &dir.join(d)))?;
            }
            // overlayfs lists lower directories top first.
            let lower: Vec<String> = image
                .diff_ids
                .iter()
                .rev()
                .map(|d| self.layer_path(d).display().to_string())
                .collect();
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                rootfs.upper().display(),
                dir.join("work").display()
            );
            if opts.len() >= 4096 {
                return Err(Error::Io {
                    op: "mounting (too many layers for one mount's options)",
                    path: rootfs.merged(),
                    source: std::io::Error::from_raw_os_error(
                        rustix::io::Errno::TOOBIG.raw_os_error(),
                    ),
                });
            }
            let data = std::ffi::CString::new(opts).map_err(|_| Error::Io {
                op: "mounting",
                path: rootfs.merged(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
            rustix::mount::mount(
                "overlay",
                rootfs.merged(),
                "overlay",
                rustix::mount::MountFlags::empty(),
                Some(data.as_c_str()),
            )
            .map_err(|e| Error::Io {
                op: "mounting overlayfs at",
                path: rootfs.merged(),
                source: e.into(),
            })
        })();
        if let Err(e) = result {
            let _ = rootfs.remove();
            return Err(e);
        }
        Ok(rootfs)
    }
}
