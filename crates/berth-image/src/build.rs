//! What the image builder keeps in the store: the layers its steps make, the build cache
//! (a step's key to what the step made), the states between steps, and the built image.
//!
//! A build state is the base image's layers plus the layers of the steps so far, with an
//! image config. A step that runs something needs a root filesystem of a state: the state's
//! config goes into the content store and [`ImageStore::state_record`] gives an
//! [`ImageRecord`] without a manifest (it is not an image: no listing shows it), which
//! [`ImageStore::create_root`] accepts as long as the config blob is there. What a step
//! changed in such a root becomes a layer ([`ImageStore::record_step`]): packed, put in the
//! content store, unpacked, and recorded in the build cache under the step's key in one go
//! (under the store lock, so the collector cannot take the new layer before it is cached).
//!
//! The cache's entries are references like images: the collector keeps their layers and
//! blobs, and [`ImageStore::cache_prune`] (`docker builder prune`) drops entries and then
//! collects what nothing else uses.

use std::io;
use std::path::Path;

use berth_layer::{Compression, PackOptions};
use berth_registry::{Descriptor, ImageManifest, MediaType};
use berth_store::Digest;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::archive::{descriptor, make_manifest};
use crate::commit::{Scratch, scratch};
use crate::rootfs::{Rootfs, RootfsError, io_err};
use crate::{Error, ImageRecord, ImageStore, Result, db_err};

/// Build cache entries by step key, as JSON ([`CacheEntry`]).
pub(crate) const BUILD_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("build_cache");

/// A layer a build step made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// The blob's digest.
    pub digest: String,
    /// The blob's size.
    pub size: u64,
    /// The blob's media type when not gzip (a layer taken from an image, `--cache-from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// What a build step made, as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Its layer (none: the step changed the config only, or no file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerRef>,
    /// The history entry's time (RFC 3339): kept, so that a rebuild from the cache makes
    /// the same image.
    pub created: String,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// The history entry's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step as `docker builder du` shows it.
    #[serde(default)]
    pub description: String,
    /// When it was last used (RFC 3339).
    #[serde(default)]
    pub last_used: String,
    /// How often it was used.
    #[serde(default)]
    pub usage_count: u64,
}

impl ImageStore {
    /// The cache entry of step `key`, if it is there with its layer.
    pub fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(db_err)?;
        let table = match txn.open_table(BUILD_CACHE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let Some(v) = table.get(key).map_err(db_err)? else {
            return Ok(None);
        };
        let e: CacheEntry = serde_json::from_slice(v.value()).map_err(db_err)?;
        if let Some(l) = &e.layer
            && !self.layer_path(&l.diff_id).is_dir()
        {
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// The layers of image `rec` as build-step layers (for `--cache-from`): one per layer of
    /// its manifest, bottom first.
    pub fn image_layers(&self, rec: &ImageRecord) -> Result<Vec<LayerRef>> {
        let m: ImageManifest =
            serde_json::from_slice(&self.read_blob(&rec.manifest)?).map_err(|e| {
                Error::BadConfig {
                    digest: rec.manifest.clone(),
                    why: format!("manifest: {e}"),
                }
            })?;
        Ok(m.layers()
            .iter()
            .zip(&rec.diff_ids)
            .map(|(l, d)| LayerRef {
                diff_id: d.clone(),
                digest: l.digest().to_string(),
                size: l.size(),
                media_type: Some(l.media_type().to_string()),
            })
            .collect())
    }

    /// Mark the entries `keys` used now (one transaction for a whole build).
    pub fn cache_touch(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = crate::util::now_rfc3339();
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(BUILD_CACHE).map_err(db_err)?;
            for k in keys {
                let e = table
                    .get(k.as_str())
                    .map_err(db_err)?
                    .and_then(|v| serde_json::from_slice::<CacheEntry>(v.value()).ok());
                if let Some(mut e) = e {
                    e.last_used = now.clone();
                    e.usage_count += 1;
                    let json = serde_json::to_vec(&e).map_err(db_err)?;
                    table.insert(k.as_str(), json.as_slice()).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// Every cache entry, by key.
    pub fn cache_entries(&self) -> Result<Vec<(String, CacheEntry)>> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(db_err)?;
        let table = match txn.open_table(BUILD_CACHE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            if let Ok(e) = serde_json::from_slice(v.value()) {
                out.push((k.value().to_string(), e));
            }
        }
        Ok(out)
    }

    /// `docker builder prune`: drop the entries `pick` chooses, then collect what nothing
    /// uses any more. Returns the keys dropped and the bytes reclaimed.
    pub fn cache_prune(
        &self,
        pick: &dyn Fn(&str, &CacheEntry) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let _lock = self.lock_exclusive()?;
        let mut dropped = Vec::new();
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(BUILD_CACHE).map_err(db_err)?;
            let mut doomed = Vec::new();
            for row in table.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                let key = k.value().to_string();
                match serde_json::from_slice::<CacheEntry>(v.value()) {
                    Ok(e) if !pick(&key, &e) => {}
                    _ => doomed.push(key),
                }
            }
            for k in doomed {
                table.remove(k.as_str()).map_err(db_err)?;
                dropped.push(k);
            }
        }
        txn.commit().map_err(db_err)?;
        drop(db);
        let report = self.gc_locked()?;
        Ok((dropped, report.reclaimed))
    }

    /// The layers and blobs the build cache keeps (for the collector).
    pub(crate) fn cache_refs(&self) -> Result<Vec<LayerRef>> {
        Ok(self
            .cache_entries()?
            .into_iter()
            .filter_map(|(_, e)| e.layer)
            .collect())
    }

    /// A build state to make a root filesystem of: the config `config` (JSON, its diff IDs
    /// the state's layers) put in the content store, and a record without a manifest.
    pub fn state_record(&self, config: &[u8], diff_ids: &[String]) -> Result<ImageRecord> {
        let digest = self.blobs.put_bytes(config)?;
        Ok(ImageRecord {
            id: digest.to_string(),
            manifest: String::new(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            diff_ids: diff_ids.to_vec(),
            size: 0,
            parent: None,
        })
    }

    /// Record a build step under `key`: what it changed in `root` (if any) as a new layer,
    /// without the empty files at `mount_points` the engine made to mount over, and the
    /// history in `entry`. Returns the entry as recorded.
    pub fn record_step(
        &self,
        key: &str,
        root: Option<&Rootfs>,
        mount_points: &[&str],
        mut entry: CacheEntry,
    ) -> std::result::Result<CacheEntry, RootfsError> {
        let _lock = self.lock_shared()?;
        if let Some(root) = root {
            entry.layer = self.pack_root(root, mount_points)?;
        }
        entry.last_used = entry.created.clone();
        let json = serde_json::to_vec(&entry).map_err(db_err)?;
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(BUILD_CACHE).map_err(db_err)?;
            table.insert(key, json.as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(entry)
    }

    /// Pack what changed in `root` as a gzip layer, store and unpack it (none when nothing
    /// changed).
    fn pack_root(
        &self,
        root: &Rootfs,
        mount_points: &[&str],
    ) -> std::result::Result<Option<LayerRef>, RootfsError> {
        let stage = Scratch(scratch(&root.dir, "step"));
        std::fs::create_dir(&stage.0).map_err(io_err("creating", &stage.0))?;
        let changes = root.root.snapshotter().changes_dir(&root.root, &stage.0)?;
        for p in mount_points {
            drop_empty_file(&changes, p);
        }
        let tmp = Scratch(scratch(&self.tmp_dir(), "step"));
        let packed = {
            let file = std::fs::File::create(&tmp.0).map_err(io_err("creating", &tmp.0))?;
            let mut w = io::BufWriter::new(file);
            let opts = PackOptions {
                compression: Compression::Gzip,
                whiteouts: true,
            };
            let packed = berth_layer::pack(&changes, &mut w, &opts)?;
            w.into_inner()
                .map_err(|e| io_err("writing", &tmp.0)(e.into_error()))?
                .sync_all()
                .map_err(io_err("writing", &tmp.0))?;
            packed
        };
        if packed.entries == 0 {
            return Ok(None);
        }
        let digest = Digest::parse(&packed.digest).map_err(Error::from)?;
        let diff_id = Digest::parse(&packed.diff_id).map_err(Error::from)?;
        let file = std::fs::File::open(&tmp.0).map_err(io_err("opening", &tmp.0))?;
        self.blobs
            .put(&digest, Some(packed.size), file)
            .map_err(Error::from)?;
        self.unpack_blob(&digest, packed.size, &diff_id)?;
        Ok(Some(LayerRef {
            diff_id: packed.diff_id,
            digest: packed.digest,
            size: packed.size,
            media_type: None,
        }))
    }

    /// Record the image a build made: the base image's layers (none for `scratch`) and the
    /// steps' `layers`, with the config `config` (its diff IDs and history complete), tagged
    /// with `tags` (full forms).
    pub fn build_image(
        &self,
        base: Option<&ImageRecord>,
        config: &[u8],
        layers: &[LayerRef],
        tags: &[String],
    ) -> Result<ImageRecord> {
        let _lock = self.lock_shared()?;
        let mut descs: Vec<Descriptor> = match base {
            Some(b) if !b.manifest.is_empty() => {
                let m: ImageManifest = serde_json::from_slice(&self.read_blob(&b.manifest)?)
                    .map_err(|e| Error::BadConfig {
                        digest: b.manifest.clone(),
                        why: format!("manifest: {e}"),
                    })?;
                m.layers()
                    .iter()
                    .map(|l| {
                        let mut l = l.clone();
                        l.set_media_type(berth_registry::media::oci_layer(l.media_type()));
                        l
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        for l in layers {
            let d = Digest::parse(&l.digest)?;
            let mt = match &l.media_type {
                Some(m) => berth_registry::media::oci_layer(&MediaType::from(m.as_str())),
                None => MediaType::ImageLayerGzip,
            };
            descs.push(descriptor(mt, &d, l.size)?);
        }
        let config_digest = self.blobs.put_bytes(config)?;
        let (manifest_bytes, parsed) = make_manifest(&config_digest, config.len() as u64, descs)?;
        let manifest_digest = self.blobs.put_bytes(&manifest_bytes)?;
        let rec = self.add_image(&manifest_digest, &parsed, None)?;
        if !tags.is_empty() {
            let named: Vec<(String, String)> =
                tags.iter().map(|t| (rec.id.clone(), t.clone())).collect();
            self.set_tags(&named)?;
        }
        self.get(&rec.id)
    }
}

/// Remove `path` (absolute, in the root) from the changes directory `dir` if it is an empty
/// regular file there: a mount point the engine made (/etc/hosts…), not the step's work.
fn drop_empty_file(dir: &Path, path: &str) {
    let p = dir.join(path.trim_start_matches('/'));
    if let Ok(m) = std::fs::symlink_metadata(&p)
        && m.file_type().is_file()
        && m.len() == 0
    {
        let _ = std::fs::remove_file(&p);
    }
}
