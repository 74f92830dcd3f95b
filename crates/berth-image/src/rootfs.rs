//! Container root filesystems made from images, each one a recorded reference in the
//! database (containerd's leases are the model): a root is recorded *before* it is made
//! and unrecorded only *after* it is removed, so garbage collection and prune, which keep
//! every layer and blob a recorded root uses, can never delete what lies under a live root,
//! and a root whose maker was killed half-way is still known and can be removed.
//!
//! The root filesystems themselves (overlayfs or a copy) are `berth_snapshot`'s; this module
//! adds the records: [`ImageStore::create_rootfs_with`] (record, then prepare, holding the
//! store lock shared so the collector waits), [`ImageStore::remove_rootfs`] /
//! [`ImageStore::remove_root`] (remove, then unrecord; refused while a process runs in the
//! root unless forced), [`ImageStore::roots`]. `docker rmi` of an image a root uses is
//! refused as Docker refuses it for a container (see `manage`).

use std::io;
use std::path::{Path, PathBuf};

pub use berth_snapshot::{
    Change, ChangeKind, Error as SnapshotError, Kind as RootfsKind, Root, STATE_FILE, user_of,
};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::{Error, ImageRecord, ImageStore, ROOTS, Result, db_err, get_record};

/// What can go wrong making, reading, changing or removing a container's root filesystem, its
/// bundle, diff, commit or export.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The image store failed (an unknown image is [`Error::NoSuchImage`] in here).
    #[error(transparent)]
    Store(#[from] Error),
    /// The directory to create is already there (or a root is recorded there already).
    #[error("{}: already exists", crate::util::short_path(.0))]
    Exists(PathBuf),
    /// No root filesystem (or bundle) at this directory: never made, or removed.
    #[error("{}: no root filesystem here (never made, or already removed)", crate::util::short_path(.0))]
    NotFound(PathBuf),
    /// An overlay root filesystem whose mount is gone (e.g. after a reboot).
    #[error("{}: the root filesystem is not mounted", crate::util::short_path(.0))]
    NotMounted(PathBuf),
    /// overlayfs refused the mount (with [`RootfsKind::Overlay`]; `Auto` falls back to a copy
    /// on EINVAL, EPERM, ENODEV and E2BIG).
    #[error("mounting overlayfs at {}: {source}", crate::util::short_path(path))]
    Overlay {
        /// The mount point.
        path: PathBuf,
        /// The error mount(2) returned.
        #[source]
        source: io::Error,
    },
    /// A process runs in the root filesystem (a container): removal needs force.
    #[error(
        "{}: in use by process {pid} (a container runs in it); stop it first, or force",
        crate::util::short_path(path)
    )]
    Busy {
        /// The root filesystem.
        path: PathBuf,
        /// A process whose root it is.
        pid: u32,
    },
    /// A file operation failed.
    #[error("{op} {}: {source}", crate::util::short_path(path))]
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

impl From<berth_snapshot::Error> for RootfsError {
    fn from(e: berth_snapshot::Error) -> RootfsError {
        use berth_snapshot::Error as S;
        match e {
            S::Exists(p) => RootfsError::Exists(p),
            S::NotFound(p) => RootfsError::NotFound(p),
            S::NotMounted(p) => RootfsError::NotMounted(p),
            S::Overlay { path, source } => RootfsError::Overlay { path, source },
            S::Busy { path, pid } => RootfsError::Busy { path, pid },
            S::Io { op, path, source } => RootfsError::Io { op, path, source },
            S::Pack(e) => RootfsError::Pack(e),
        }
    }
}

impl From<RootfsError> for Error {
    fn from(e: RootfsError) -> Error {
        match e {
            RootfsError::Store(e) => e,
            RootfsError::Io { op, path, source } => Error::Io {
                op,
                path,
                cause: source,
            },
            RootfsError::Overlay { path, source } => Error::Io {
                op: "mounting overlayfs at",
                path,
                cause: source,
            },
            RootfsError::Exists(path) => Error::Io {
                op: "creating",
                path,
                cause: io::Error::from(io::ErrorKind::AlreadyExists),
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

/// A root filesystem as the database records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootRecord {
    /// Its ID (the key): `rootfs:<dir>`, `bundle:<bundle dir>`, `container:<id>`.
    pub id: String,
    /// Who uses it, as conflicts name it: `bundle /tmp/b`, `container 3f2a…`.
    pub user: String,
    /// The image it was made from (image ID).
    pub image: String,
    /// That image's layers, bottom first (diff IDs): kept while the root is recorded.
    pub diff_ids: Vec<String>,
    /// Its state directory.
    pub dir: PathBuf,
    /// Where the root filesystem is.
    pub target: PathBuf,
    /// The kind asked for.
    pub kind: RootfsKind,
    /// When it was recorded, RFC 3339.
    pub created: String,
}

/// A container's root filesystem made by the store: the snapshot and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The record's ID.
    pub id: String,
    /// The image it was made from (image ID).
    pub image: String,
    /// That image's layers (diff IDs), bottom first.
    pub diff_ids: Vec<String>,
    /// The root filesystem.
    pub root: Root,
}

impl std::ops::Deref for Rootfs {
    type Target = Root;
    fn deref(&self) -> &Root {
        &self.root
    }
}

impl Rootfs {
    /// Where the root filesystem is.
    pub fn merged(&self) -> PathBuf {
        self.root.target().to_path_buf()
    }

    /// The image it was made from (its ID).
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Is the root filesystem there (and, for overlayfs, mounted)?
    pub fn check(&self) -> Result<(), RootfsError> {
        Ok(self.root.check()?)
    }

    /// Mount it again if its mount is gone (after a reboot).
    pub fn remount(&self) -> Result<(), RootfsError> {
        Ok(self.root.snapshotter().remount(&self.root)?)
    }
}

/// The record ID of a plain root made in `dir` by [`ImageStore::create_rootfs_with`].
pub fn rootfs_id(dir: &Path) -> String {
    format!("rootfs:{}", dir.display())
}

fn absolute(p: &Path) -> Result<PathBuf, RootfsError> {
    std::path::absolute(p).map_err(io_err("resolving", p))
}

impl ImageStore {
    /// Mount a fresh copy-on-write root filesystem of `image` in `dir` (created; must not
    /// exist): overlayfs, `dir/merged` over `dir/upper`.
    pub fn create_rootfs(&self, image: &ImageRecord, dir: &Path) -> Result<Rootfs> {
        self.create_rootfs_with(image, dir, RootfsKind::Overlay)
            .map_err(Error::from)
    }

    /// Make a root filesystem of `image` of `kind` in `dir` (created; must not exist); the
    /// root filesystem is `dir/merged`. Recorded as [`rootfs_id`]`(dir)`.
    pub fn create_rootfs_with(
        &self,
        image: &ImageRecord,
        dir: &Path,
        kind: RootfsKind,
    ) -> Result<Rootfs, RootfsError> {
        let dir = absolute(dir)?;
        let user = format!("root filesystem {}", dir.display());
        self.create_root(
            image,
            &rootfs_id(&dir),
            &user,
            &dir,
            &dir.join("merged"),
            kind,
        )
    }

    /// Make a root filesystem of `image` of `kind` at `target`, its state in `dir` (both
    /// absolute; `dir` must not exist, nor `target` unless inside `dir`), recorded as `id`
    /// for `user` first: see the module docs.
    pub fn create_root(
        &self,
        image: &ImageRecord,
        id: &str,
        user: &str,
        dir: &Path,
        target: &Path,
        kind: RootfsKind,
    ) -> Result<Rootfs, RootfsError> {
        // Shared: the collector (exclusive) cannot run between the check that the image is
        // still here and the root's record, nor while the root is being made.
        let _lock = self.lock_shared()?;
        let rec = RootRecord {
            id: id.to_string(),
            user: user.to_string(),
            image: image.id.clone(),
            diff_ids: image.diff_ids.clone(),
            dir: dir.to_path_buf(),
            target: target.to_path_buf(),
            kind,
            created: crate::util::now_rfc3339(),
        };
        {
            let db = self.db.get()?;
            let txn = db.begin_write().map_err(db_err)?;
            {
                let images = txn.open_table(crate::IMAGES).map_err(db_err)?;
                // A build state (no manifest: see `build`) needs its config blob only.
                let state = image.manifest.is_empty()
                    && berth_store::Digest::parse(&image.id).is_ok_and(|d| self.blobs.contains(&d));
                if !state && get_record(&images, &image.id)?.is_none() {
                    return Err(Error::NoSuchImage(image.id.clone()).into());
                }
                let mut roots = txn.open_table(ROOTS).map_err(db_err)?;
                if roots.get(id).map_err(db_err)?.is_some() {
                    return Err(RootfsError::Exists(dir.to_path_buf()));
                }
                let json = serde_json::to_vec(&rec).map_err(db_err)?;
                roots.insert(id, json.as_slice()).map_err(db_err)?;
            }
            txn.commit().map_err(db_err)?;
        }
        let layers: Vec<PathBuf> = image.diff_ids.iter().map(|d| self.layer_path(d)).collect();
        match berth_snapshot::prepare(kind, dir, target, &layers) {
            Ok(root) => Ok(Rootfs {
                id: id.to_string(),
                image: image.id.clone(),
                diff_ids: image.diff_ids.clone(),
                root,
            }),
            Err(e) => {
                // Nothing was made (prepare cleans up after itself): unrecord.
                let _ = self.forget_root(id);
                Err(e.into())
            }
        }
    }

    /// The recorded root `id`, if any.
    pub fn root_record(&self, id: &str) -> Result<Option<RootRecord>> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(db_err)?;
        let roots = txn.open_table(ROOTS).map_err(db_err)?;
        match roots.get(id).map_err(db_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(db_err)?)),
            None => Ok(None),
        }
    }

    /// Every recorded root.
    pub fn roots(&self) -> Result<Vec<RootRecord>> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(db_err)?;
        let roots = txn.open_table(ROOTS).map_err(db_err)?;
        roots_in(&roots)
    }

    /// The recorded root `id`, opened.
    pub fn open_root(&self, id: &str) -> Result<Rootfs, RootfsError> {
        let rec = self
            .root_record(id)?
            .ok_or_else(|| RootfsError::NotFound(PathBuf::from(id)))?;
        Ok(Rootfs {
            id: rec.id,
            image: rec.image,
            diff_ids: rec.diff_ids,
            root: Root::open(&rec.dir)?,
        })
    }

    /// Remove the root `r` (see [`ImageStore::remove_root`]), not forced.
    pub fn remove_rootfs(&self, r: &Rootfs) -> Result<(), RootfsError> {
        self.remove_root(&r.id, false)
    }

    /// Unmount and delete the recorded root `id`, then drop its record (which releases its
    /// layers to the collector). Also cleans up a root whose maker was killed before it was
    /// whole. Refused while a process runs in it ([`RootfsError::Busy`]) unless `force`.
    /// Removing a root that is not recorded is [`RootfsError::NotFound`].
    pub fn remove_root(&self, id: &str, force: bool) -> Result<(), RootfsError> {
        let _db = self.db.get()?;
        let rec = self
            .root_record(id)?
            .ok_or_else(|| RootfsError::NotFound(PathBuf::from(id)))?;
        let root = match Root::open(&rec.dir) {
            Ok(r) => r,
            Err(berth_snapshot::Error::NotFound(_)) => {
                Root::partial(&rec.dir, &rec.target, rec.kind)
            }
            Err(e) => return Err(e.into()),
        };
        berth_snapshot::remove(&root, force)?;
        self.forget_root(id)?;
        Ok(())
    }

    pub(crate) fn forget_root(&self, id: &str) -> Result<()> {
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut roots = txn.open_table(ROOTS).map_err(db_err)?;
            roots.remove(id).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }
}

/// Every root in the table.
pub(crate) fn roots_in(
    roots: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<RootRecord>> {
    let mut out = Vec::new();
    for row in roots.iter().map_err(db_err)? {
        let (_, v) = row.map_err(db_err)?;
        out.push(serde_json::from_slice(v.value()).map_err(db_err)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_convert_to_the_store_error() {
        let e: Error = RootfsError::Exists(PathBuf::from("/x")).into();
        assert!(matches!(e, Error::Io { .. }));
        let e: Error = RootfsError::Store(Error::NoSuchImage("a".into())).into();
        assert!(matches!(e, Error::NoSuchImage(_)));
    }
}
