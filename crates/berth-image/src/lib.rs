//! The image store: images pulled into the content store, their layers unpacked once (each in
//! a directory of its own, named by diff ID, ready for overlayfs) and shared by every image
//! that has them, and the metadata (images, tags) in a crash-safe embedded database (redb).
//!
//! Layout under the data root:
//! - `content/` — the blob store (manifests, configs, compressed layers);
//! - `layers/sha256-<hex>/` — one unpacked layer per diff ID; a layer is unpacked into
//!   `layers/.tmp-*` and renamed into place only once its diff ID is verified, so a layer
//!   directory is always complete;
//! - `metadata.redb` — images by ID (the config digest) and tags.
//!
//! A pull writes the database last: an image that is listed has all its blobs and layers.

pub mod config;
mod pull;
pub mod rootfs;

use std::path::{Path, PathBuf};

use berth_registry::Reference;
use berth_store::BlobStore;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// Image records by image ID (`sha256:<config hex>`), as JSON.
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Image ID by tag (the reference's full form, `registry/repo:tag`).
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");

/// What can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] berth_registry::client::Error),
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    /// Unpacking a layer failed.
    #[error("layer {digest}: {source}")]
    Layer {
        /// The layer blob.
        digest: String,
        /// Why.
        #[source]
        source: berth_layer::Error,
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
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn db_err(e: impl std::fmt::Display) -> Error {
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
    /// Diff IDs of its layers, bottom first.
    pub diff_ids: Vec<String>,
    /// Compressed size of its layers, bytes.
    pub size: u64,
}

/// The image store at a data root.
pub struct ImageStore {
    pub(crate) root: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) db: redb::Database,
}

#[derive(Deserialize)]
pub(crate) struct ConfigRootfs {
    pub(crate) diff_ids: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct ConfigHead {
    pub(crate) rootfs: ConfigRootfs,
}

impl ImageStore {
    /// Open (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let layers = root.join("layers");
        std::fs::create_dir_all(&layers).map_err(|source| Error::Io {
            op: "creating",
            path: layers.clone(),
            source,
        })?;
        // Unpacks that were interrupted.
        if let Ok(rd) = std::fs::read_dir(&layers) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let blobs = BlobStore::open(&root.join("content"))?;
        let db = redb::Database::create(root.join("metadata.redb")).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(IMAGES).map_err(db_err)?;
        txn.open_table(TAGS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            blobs,
            db,
        })
    }

    /// The content store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The directory of the unpacked layer `diff_id`.
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        berth_layer::layer_dir(&self.root.join("layers"), diff_id)
    }

    /// Store the record, moving `tag` to it.
    pub(crate) fn record(&self, mut record: ImageRecord, tag: Option<&str>) -> Result<ImageRecord> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            if let Some(existing) = images.get(record.id.as_str()).map_err(db_err)? {
                let old: ImageRecord = serde_json::from_slice(existing.value()).map_err(db_err)?;
                record.repo_tags = old.repo_tags;
            }
            if let Some(tag) = tag {
                // The tag leaves the image it pointed at before.
                let previous = tags
                    .get(tag)
                    .map_err(db_err)?
                    .map(|v| v.value().to_string());
                if let Some(prev) = previous.filter(|p| *p != record.id) {
                    let prev_json = images
                        .get(prev.as_str())
                        .map_err(db_err)?
                        .map(|v| v.value().to_vec());
                    if let Some(bytes) = prev_json {
                        let mut old: ImageRecord =
                            serde_json::from_slice(&bytes).map_err(db_err)?;
                        old.repo_tags.retain(|t| t != tag);
                        let json = serde_json::to_vec(&old).map_err(db_err)?;
                        images
                            .insert(prev.as_str(), json.as_slice())
                            .map_err(db_err)?;
                    }
                }
                tags.insert(tag, record.id.as_str()).map_err(db_err)?;
                if !record.repo_tags.iter().any(|t| t == tag) {
                    record.repo_tags.push(tag.to_string());
                }
            }
            let json = serde_json::to_vec(&record).map_err(db_err)?;
            images
                .insert(record.id.as_str(), json.as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(record)
    }

    /// Every image.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let images = txn.open_table(IMAGES).map_err(db_err)?;
        let mut out = Vec::new();
        for row in images.iter().map_err(db_err)? {
            let (_, v) = row.map_err(db_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(db_err)?);
        }
        Ok(out)
    }

    /// The image a tag (any form a reference accepts) or an ID names.
    pub fn lookup(&self, name: &str) -> Result<Option<ImageRecord>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let images = txn.open_table(IMAGES).map_err(db_err)?;
        let tags = txn.open_table(TAGS).map_err(db_err)?;
        let by_tag = match Reference::parse(name) {
            Ok(r) => tags
                .get(r.to_string().as_str())
                .map_err(db_err)?
                .map(|v| v.value().to_string()),
            Err(_) => None,
        };
        let id = by_tag.unwrap_or_else(|| name.to_string());
        match images.get(id.as_str()).map_err(db_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(db_err)?)),
            None => Ok(None),
        }
    }
}
