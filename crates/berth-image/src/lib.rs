//! The image store: images pulled into the content store, their layers unpacked once (each in
//! a directory of its own, named by diff ID, ready for overlayfs) and shared by every image
//! that has them, and the metadata (images, tags) in a crash-safe embedded database (redb).
//!
//! Layout under the data root:
//! - `content/` — the blob store (manifests, configs, compressed layers);
//! - `layers/sha256-<hex>/` — one unpacked layer per diff ID; a layer is unpacked into
//!   `layers/.tmp-*` and renamed into place only once its diff ID is verified, so a layer
//!   directory is always complete;
//! - `metadata.redb` — images by ID (the config digest), tags, cached layer sizes, the time
//!   each image was last tagged, and the container root filesystems made from images
//!   (`rootfs`: each one recorded before it is made, so nothing it uses is ever collected);
//! - `tmp/` — scratch files of loads and saves (emptied when the store opens);
//! - `lock` — the store lock (see below).
//!
//! Everything is root's only: the data root and the directories beneath it are made (and,
//! in a store made before, set) 0700, the database and the lock 0600, so no other user reads
//! a private image, runs a set-id program from an unpacked layer, or holds the lock.
//!
//! A pull writes the database last: an image that is listed has all its blobs and layers.
//!
//! Names: [`ImageStore::lookup`] takes a tag in any form a reference accepts (`busybox`,
//! `docker.io/library/busybox:latest`), `repo@sha256:<digest>` (its manifest's, or a digest
//! reference it was recorded with, e.g. of the index it was pulled through), a full image ID
//! (`sha256:<hex>` or the bare hex) or an unambiguous prefix of one (at least
//! [`MIN_SHORT_ID`] hex digits, with or without `sha256:`), as Docker does.
//!
//! Removing an image ([`ImageStore::remove`], [`ImageStore::untag`]) only changes the
//! database; blobs and unpacked layers nobody refers to any more are deleted by the garbage
//! collector ([`ImageStore::gc`], run by [`ImageStore::prune`]). A recorded root filesystem
//! refers to its image's layers and blobs: an image a root uses is not removed without
//! force, and even forced its layers stay until the last root made from it is removed.
//!
//! # Locking
//!
//! Adding content and collecting garbage must not overlap: the collector deletes every blob
//! and layer no recorded image refers to, and the blobs of an image being pulled or loaded
//! are in the store before the image is recorded. So everything that adds content holds the
//! store lock *shared* from before its first blob is written until the image is recorded
//! (`lock_shared`: pull, load, import, commit; save too, for its scratch files), and the
//! garbage collector holds it *exclusive* (`lock_exclusive`). Opening a store clears the
//! scratch files of interrupted work (partial blobs, half-unpacked layers, `tmp/`) only if it
//! can take the lock exclusive at once, i.e. when nobody is working.
//!
//! Several processes use one store at the same time (each berth command is one): the
//! metadata database is opened for each transaction and closed after it (`db`), waiting
//! while another process has it open. The lock is
//! an flock on `<root>/lock`, taken on a fresh open file each time, so it excludes threads of
//! one process as well as processes. Shared holders never wait for each other, so taking it
//! shared again while holding it shared (e.g. `add_image` inside a load) is fine; nothing but
//! the collector may take it exclusive (a shared holder asking for it exclusive would wait
//! for itself forever).

pub mod archive;
pub mod build;
pub mod bundle;
pub mod commit;
pub mod config;
mod config_edit;
mod db;
mod import;
pub mod inspect;
pub mod manage;
mod pull;
mod push;
pub mod rootfs;
mod util;

pub use inspect::HistoryEntry;
pub use manage::{DiskUsage, GcReport, ImageUsage, PruneReport, Removed};
pub use pull::PullEvent;
pub use push::PushEvent;

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_registry::Reference;
use berth_store::BlobStore;
use redb::{ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};

/// Image records by image ID (`sha256:<config hex>`), as JSON.
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Image ID by tag (the reference's full form, `registry/repo:tag`).
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
/// Bytes on disk of each unpacked layer directory, by diff ID (a cache: layer directories never
/// change once in place; dropped by the garbage collector with the directory).
const LAYER_SIZES: TableDefinition<&str, u64> = TableDefinition::new("layer_sizes");
/// When an image was last tagged here (tag, load, import), RFC 3339, by image ID.
const TAG_TIMES: TableDefinition<&str, &str> = TableDefinition::new("tag_times");
/// Container root filesystems made from images, by ID, as JSON ([`rootfs::RootRecord`]):
/// references that keep their images' layers and blobs from being collected.
const ROOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("roots");

/// The fewest hex digits a short image ID may have.
pub const MIN_SHORT_ID: usize = 4;

/// What can go wrong in the image store. Each message is whole (the object, and the cause
/// once): no variant returns a `source()`, so printing the chain (anyhow's `{:#}`) does not
/// repeat a cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] berth_registry::client::Error),
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    /// Unpacking a layer failed.
    #[error("layer {digest}: {cause}")]
    Layer {
        /// The layer blob.
        digest: String,
        /// Why (in the message; not a `source()`).
        cause: berth_layer::Error,
    },
    /// A layer blob (whole, and decompressed) that is not a tar archive, or a damaged one.
    #[error("layer {digest}: not a tar archive (or a corrupt one)")]
    LayerNotTar {
        /// The layer blob.
        digest: String,
    },
    /// A layer's content does not match the image config's diff ID.
    #[error("layer {digest} unpacks to {actual}, but the image config says {expected}: refused")]
    DiffIdMismatch {
        /// The layer blob.
        digest: String,
        /// The config's diff ID.
        expected: String,
        /// What the layer's tar hashes to.
        actual: String,
    },
    /// The image config is not what an image config must be.
    #[error("image config {digest}: {why}")]
    BadConfig {
        /// The config blob.
        digest: String,
        /// What is wrong.
        why: String,
    },
    /// The metadata database failed.
    #[error("image metadata database: {0}")]
    Db(String),
    /// Another process kept the metadata database open for too long.
    #[error("the image store is busy: another process has kept {} open for two minutes", .0.display())]
    Busy(PathBuf),
    /// No image has this name or ID.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// A short ID matches more than one image.
    #[error("short image ID {prefix:?} is ambiguous: it matches {count} images; give more digits")]
    AmbiguousId {
        /// The prefix given.
        prefix: String,
        /// How many images it matches.
        count: usize,
    },
    /// A name that is not a valid image reference.
    #[error(transparent)]
    Reference(#[from] berth_registry::ReferenceError),
    /// Deleting the image by ID would drop several tags: needs `force`.
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories ({tags})"
    )]
    Conflict {
        /// The image's short ID.
        id: String,
        /// Its tags.
        tags: String,
    },
    /// Removing the last reference of an image a root filesystem (a container) uses: needs
    /// `force` (the image then stays, untagged, until its last user is gone).
    #[error(
        "conflict: unable to remove repository reference \"{reference}\" (must force) - {user} is using its referenced image {id}"
    )]
    ReferenceInUse {
        /// The reference as given.
        reference: String,
        /// Who uses the image (`bundle /tmp/b`, `container 3f2a…`).
        user: String,
        /// The image's short ID.
        id: String,
    },
    /// Deleting, by ID, an image a root filesystem (a container) uses: needs `force`.
    #[error("conflict: unable to delete {id} (must be forced) - image is being used by {user}")]
    ImageInUse {
        /// The image's short ID.
        id: String,
        /// Who uses it.
        user: String,
    },
    /// An argument that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// An image archive that is not what it must be (missing blobs, bad JSON, no images).
    #[error("invalid image archive: {0}")]
    BadArchive(String),
    /// The input is not a tar archive, or its tar structure is damaged (nothing of the
    /// input is quoted: it may be any file).
    #[error("not a tar archive (or a corrupt one)")]
    NotAnArchive,
    /// Reading an archive failed (truncated or corrupt compressed data included).
    #[error("reading the archive: {0}")]
    ArchiveRead(std::io::Error),
    /// Writing an archive failed.
    #[error("writing the archive: {0}")]
    ArchiveWrite(std::io::Error),
    /// An import `--change` that cannot be applied.
    #[error("invalid change {change:?}: {why}")]
    InvalidChange {
        /// The change as given.
        change: String,
        /// What is wrong.
        why: String,
    },
    /// A file operation failed.
    #[error("{op} {path}: {cause}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error (in the message; not a `source()`).
        cause: std::io::Error,
    },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Db(e.to_string())
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Image ID: the config's digest.
    pub id: String,
    /// The manifest's digest (what a registry knows it by).
    pub manifest: String,
    /// Tags pointing at it (full form).
    pub repo_tags: Vec<String>,
    /// Digest references it is known by in registries (full form, `registry/repo@sha256:…`):
    /// the repositories it was pulled from or pushed to, as Docker's RepoDigests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// Diff IDs of its layers, bottom first.
    pub diff_ids: Vec<String>,
    /// Compressed size of its layers, bytes.
    pub size: u64,
    /// The local image it was committed from (Docker's `Parent`; none for pulled, loaded or
    /// imported images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// An flock on the store's lock file, released when dropped (see the crate docs, "Locking").
pub(crate) struct StoreLock {
    _file: File,
}

/// The image store at a data root.
pub struct ImageStore {
    pub(crate) root: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) db: db::Db,
}

impl ImageStore {
    /// Open (creating) the store under `root`. Several stores, in this process or others, may
    /// have one root open at the same time: the database is opened for each transaction and
    /// closed after it (see `db`), and scratch files of interrupted work are cleared only when
    /// the store lock can be had exclusive, i.e. when nobody is adding content.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let layers = root.join("layers");
        let tmp = root.join("tmp");
        private_dir(root)?;
        for dir in [&layers, &tmp, &root.join("content")] {
            private_dir(dir)?;
        }
        let db = db::Db::new(&root.join("metadata.redb"), make_tables);
        let blobs = BlobStore::open_keeping_ingest(&root.join("content"))?;
        let store = ImageStore {
            root: root.to_path_buf(),
            blobs,
            db,
        };
        // Scratch files of interrupted work, cleared only when nobody is working: everything
        // that makes them holds the store lock shared.
        if let Some(_lock) = store.try_lock_exclusive()? {
            store.blobs.clear_ingest()?;
            for dir in [&layers, &tmp] {
                if let Ok(rd) = std::fs::read_dir(dir) {
                    for e in rd.flatten() {
                        let name = e.file_name();
                        if dir == &tmp {
                            let _ = std::fs::remove_file(e.path())
                                .or_else(|_| std::fs::remove_dir_all(e.path()));
                        } else if name.to_string_lossy().starts_with(".tmp-") {
                            let _ = std::fs::remove_dir_all(e.path());
                        }
                    }
                }
            }
        }
        for file in ["metadata.redb", "lock"] {
            let path = root.join(file);
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io {
                        op: "protecting",
                        path,
                        cause: e,
                    });
                }
                _ => {}
            }
        }
        Ok(store)
    }

    /// Keep the metadata database open for as long as this store lives, instead of opening it
    /// for each transaction: for a long-lived process that owns the store (the engine), whose
    /// every operation would otherwise pay the syncs of an open and a close. Other processes
    /// wait for the store until this one is dropped.
    pub fn hold_database(&self) -> Result<()> {
        self.db.hold()
    }

    /// The store lock exclusive if nobody holds it, else `None` (without waiting).
    fn try_lock_exclusive(&self) -> Result<Option<StoreLock>> {
        match self.lock(rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(l) => Ok(Some(l)),
            Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Take the store lock shared: held by whatever adds content (pull, load, import) from
    /// before its first blob is written until the image is recorded, so the garbage collector
    /// cannot delete those blobs in between. See the crate docs, "Locking".
    pub(crate) fn lock_shared(&self) -> Result<StoreLock> {
        self.lock(rustix::fs::FlockOperation::LockShared)
    }

    /// Take the store lock exclusive: the garbage collector only. Never call this while holding
    /// the lock shared on the same thread (it would wait for itself).
    pub(crate) fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock(rustix::fs::FlockOperation::LockExclusive)
    }

    fn lock(&self, op: rustix::fs::FlockOperation) -> Result<StoreLock> {
        let path = self.root.join("lock");
        let io = |op, source| Error::Io {
            op,
            path: path.clone(),
            cause: source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        loop {
            match rustix::fs::flock(&file, op) {
                Ok(()) => return Ok(StoreLock { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io("locking", e.into())),
            }
        }
    }

    /// The scratch directory (same file system as the content store).
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The content store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The directory of the unpacked layer `diff_id`.
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        berth_layer::layer_dir(&self.root.join("layers"), diff_id)
    }

    /// Store the record (keeping the tags and digest references of an image already
    /// recorded), moving `tag` (full form) to it. Its digest references move to it too: as in
    /// Docker, `repo@digest` names one image (pulling another platform of an index moves the
    /// index's reference to that image).
    pub(crate) fn record(&self, mut record: ImageRecord, tag: Option<&str>) -> Result<ImageRecord> {
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        let stored = {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            manage::take_repo_digests(&mut images, &record.id, &record.repo_digests)?;
            if let Some(old) = get_record(&images, &record.id)? {
                record.repo_tags = old.repo_tags;
                if record.parent.is_none() {
                    record.parent = old.parent;
                }
                let new = std::mem::replace(&mut record.repo_digests, old.repo_digests);
                for d in new {
                    if !record.repo_digests.contains(&d) {
                        record.repo_digests.push(d);
                    }
                }
            }
            let json = serde_json::to_vec(&record).map_err(db_err)?;
            images
                .insert(record.id.as_str(), json.as_slice())
                .map_err(db_err)?;
            if let Some(tag) = tag {
                manage::set_tag(&mut images, &mut tags, &record.id, tag)?;
            }
            get_record(&images, &record.id)?.unwrap_or(record)
        };
        txn.commit().map_err(db_err)?;
        Ok(stored)
    }

    /// Record that image `id` was committed from image `parent` (kept if already set).
    pub(crate) fn set_parent(&self, id: &str, parent: &str) -> Result<()> {
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            if let Some(mut rec) = get_record(&images, id)?
                && rec.parent.is_none()
                && rec.id != parent
            {
                rec.parent = Some(parent.to_string());
                let json = serde_json::to_vec(&rec).map_err(db_err)?;
                images.insert(id, json.as_slice()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// Every image.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(db_err)?;
        let images = txn.open_table(IMAGES).map_err(db_err)?;
        let mut out = Vec::new();
        for row in images.iter().map_err(db_err)? {
            let (_, v) = row.map_err(db_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(db_err)?);
        }
        Ok(out)
    }

    /// The image a name refers to: a tag (any form a reference accepts), `repo@<manifest
    /// digest>`, a full image ID or an unambiguous short one (see the crate docs). `None` when
    /// nothing matches; an ambiguous short ID is an error.
    pub fn lookup(&self, name: &str) -> Result<Option<ImageRecord>> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(db_err)?;
        let images = txn.open_table(IMAGES).map_err(db_err)?;
        let tags = txn.open_table(TAGS).map_err(db_err)?;
        match find_id(&images, &tags, name)? {
            Some(id) => get_record(&images, &id),
            None => Ok(None),
        }
    }

    /// As [`ImageStore::lookup`], with a "No such image" error when nothing matches.
    pub fn get(&self, name: &str) -> Result<ImageRecord> {
        self.lookup(name)?
            .ok_or_else(|| Error::NoSuchImage(name.to_string()))
    }

    /// Read a blob the store holds into memory (manifests and configs).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let d = berth_store::Digest::parse(digest)?;
        let path = self.blobs.path(&d);
        std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::Store(berth_store::Error::NotFound(d))
            } else {
                Error::Io {
                    op: "reading",
                    path,
                    cause: source,
                }
            }
        })
    }
}

/// Make the tables that are missing (a store made by an older berth lacks the newer ones). A
/// write transaction costs syncs, so it is made only when one is missing.
fn make_tables(db: &redb::Database) -> Result<()> {
    let have: Vec<String> = db
        .begin_read()
        .map_err(db_err)?
        .list_tables()
        .map_err(db_err)?
        .map(|t| t.name().to_string())
        .collect();
    let names = [
        IMAGES.name(),
        TAGS.name(),
        LAYER_SIZES.name(),
        TAG_TIMES.name(),
        ROOTS.name(),
    ];
    if !names.iter().all(|n| have.iter().any(|h| h == n)) {
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(IMAGES).map_err(db_err)?;
        txn.open_table(TAGS).map_err(db_err)?;
        txn.open_table(LAYER_SIZES).map_err(db_err)?;
        txn.open_table(TAG_TIMES).map_err(db_err)?;
        txn.open_table(ROOTS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
    }
    Ok(())
}

/// Make the directory `dir` (and its parents) if missing, and make it root's only (0700),
/// also when it was there already: the store holds private images, and unpacked layers hold
/// set-id programs that no other user may reach.
fn private_dir(dir: &Path) -> Result<()> {
    let io = |op, source| Error::Io {
        op,
        path: dir.to_path_buf(),
        cause: source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("creating", e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io("protecting", e))
}

/// The record of image `id`, if any.
pub(crate) fn get_record(
    images: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<ImageRecord>> {
    match images.get(id).map_err(db_err)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(db_err)?)),
        None => Ok(None),
    }
}

/// The digest reference (full form, no tag) of the manifest `digest` in `r`'s repository.
pub(crate) fn digest_ref(r: &Reference, digest: &str) -> String {
    format!("{}/{}@{digest}", r.registry, r.repository)
}

/// The lowercase hex digits of a (short or full) image ID given as `sha256:<hex>` or `<hex>`,
/// if that is what `name` is.
fn id_hex(name: &str) -> Option<&str> {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    (hex.len() >= MIN_SHORT_ID
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// The ID of the image `name` refers to (see [`ImageStore::lookup`]).
pub(crate) fn find_id(
    images: &impl ReadableTable<&'static str, &'static [u8]>,
    tags: &impl ReadableTable<&'static str, &'static str>,
    name: &str,
) -> Result<Option<String>> {
    if let Ok(r) = Reference::parse(name) {
        if let Some(digest) = &r.digest {
            // repo@digest: the image with that manifest, preferably one tagged in that repo.
            let digest = digest.to_string();
            let full = digest_ref(&r, &digest);
            let mut found: Option<String> = None;
            for row in images.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                let rec: ImageRecord = serde_json::from_slice(v.value()).map_err(db_err)?;
                if rec.repo_digests.contains(&full) {
                    return Ok(Some(rec.id));
                }
                if rec.manifest != digest {
                    continue;
                }
                let same_repo = rec.repo_tags.iter().any(|t| {
                    Reference::parse(t)
                        .is_ok_and(|t| t.registry == r.registry && t.repository == r.repository)
                });
                if same_repo {
                    return Ok(Some(rec.id));
                }
                found.get_or_insert(rec.id);
            }
            return Ok(found);
        }
        if let Some(id) = tags.get(r.to_string().as_str()).map_err(db_err)? {
            return Ok(Some(id.value().to_string()));
        }
    }
    let Some(hex) = id_hex(name) else {
        return Ok(None);
    };
    let start = format!("sha256:{hex}");
    let mut matches = Vec::new();
    for row in images.range(start.as_str()..).map_err(db_err)? {
        let (k, _) = row.map_err(db_err)?;
        if !k.value().starts_with(&start) {
            break;
        }
        matches.push(k.value().to_string());
    }
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.pop()),
        count => Err(Error::AmbiguousId {
            prefix: name.to_string(),
            count,
        }),
    }
}
