//! Pulling an image into the store, and storing an image made here (load, import, commit):
//! both end in [`ImageStore::add_image`] — every layer blob present and unpacked (verified
//! against the config's diff IDs), then one database transaction.

use std::path::Path;

use berth_registry::{Client, Platform, Reference};
use berth_store::Digest;

use crate::{ConfigHead, Error, ImageRecord, ImageStore, Result};

impl ImageStore {
    /// Pull `r` for `platform` and record it under its tag.
    pub fn pull(&self, client: &Client, r: &Reference, platform: &Platform) -> Result<ImageRecord> {
        let resolved = client.pull(r, platform, &self.blobs)?;
        let tag = r.tag_or_latest().map(|_| r.to_string());
        self.add_image(&resolved.digest, &resolved.manifest, tag.as_deref())
    }

    /// Record the image whose manifest (digest `manifest_digest`) is `manifest`: its config and
    /// layer blobs must be in the content store. Unpacks each layer not unpacked yet, checks the
    /// layers against the config's diff IDs, and records the image under `tag` (full form).
    pub fn add_image(
        &self,
        manifest_digest: &Digest,
        manifest: &berth_registry::Manifest,
        tag: Option<&str>,
    ) -> Result<ImageRecord> {
        let config_digest = Digest::parse(&manifest.config.digest)?;
        let config_bytes =
            std::fs::read(self.blobs.path(&config_digest)).map_err(|source| Error::Io {
                op: "reading",
                path: self.blobs.path(&config_digest),
                source,
            })?;
        let bad = |why: String| Error::BadConfig {
            digest: config_digest.to_string(),
            why,
        };
        let head: ConfigHead =
            serde_json::from_slice(&config_bytes).map_err(|e| bad(e.to_string()))?;
        let layers = &manifest.layers;
        if head.rootfs.diff_ids.len() != layers.len() {
            return Err(bad(format!(
                "{} diff IDs for {} layers",
                head.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        for (layer, diff_id) in layers.iter().zip(&head.rootfs.diff_ids) {
            self.unpack_layer(&layer.digest, diff_id)?;
        }
        let record = ImageRecord {
            id: config_digest.to_string(),
            manifest: manifest_digest.to_string(),
            repo_tags: Vec::new(),
            diff_ids: head.rootfs.diff_ids.clone(),
            size: layers.iter().map(|l| l.size).sum(),
        };
        self.record(record, tag)
    }

    /// Unpack the layer blob `digest` as `diff_id`, unless it is there already.
    fn unpack_layer(&self, digest: &str, diff_id: &str) -> Result<()> {
        let dest = self.layer_path(diff_id);
        if dest.is_dir() {
            return Ok(());
        }
        let layer_err = |source| Error::Layer {
            digest: digest.to_string(),
            source,
        };
        let d = Digest::parse(digest)?;
        let blob = self.blobs.open_blob(&d)?;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = self.root.join("layers").join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { op, path, source }
        };
        std::fs::create_dir(&tmp).map_err(io("creating", &tmp))?;
        let result = berth_layer::unpack(
            std::io::BufReader::new(blob),
            &tmp,
            berth_layer::Mode::Overlay,
        )
        .map_err(layer_err)
        .and_then(|u| {
            if u.diff_id != diff_id {
                return Err(Error::DiffIdMismatch {
                    digest: digest.to_string(),
                    expected: diff_id.to_string(),
                    actual: u.diff_id,
                });
            }
            std::fs::rename(&tmp, &dest).map_err(io("storing the layer in", &dest))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }
}
