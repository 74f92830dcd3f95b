//! What a container changed in its root filesystem ([`diff`], like `docker diff`, found by
//! the root's snapshotter), making an image of it ([`ImageStore::commit`], like `docker
//! commit`) and a tar of the whole root filesystem ([`export`], like `docker export`).
//!
//! A commit packs the changes as one gzip layer (the snapshotter's changes in overlay form:
//! an overlay's upper directory as it is, a copy's changes gathered in a scratch directory),
//! and records a new image: the
//! base image's config with the new diff ID, a history entry, the config changes asked for
//! (Dockerfile instructions, as `docker commit --change`), and an OCI manifest of the base's
//! layer blobs plus the new one. Only the new layer is unpacked; the others are shared.
//! A commit without changes adds no layer, only the history entry (`empty_layer`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use berth_layer::{Compression, PackOptions, Packed};
use berth_store::Digest;
use serde_json::{Value, json};

pub use crate::rootfs::{Change, ChangeKind};
use crate::rootfs::{Rootfs, RootfsError, io_err};
use crate::{Error, ImageRecord, ImageStore};

/// What `docker diff` shows for the root filesystem: every change, sorted by path.
pub fn diff(rootfs: &Rootfs) -> Result<Vec<Change>, RootfsError> {
    Ok(rootfs.root.changes()?)
}

/// `docker export`: a plain tar of the whole root filesystem (what the container sees; no
/// whiteouts) written to `out`.
pub fn export(rootfs: &Rootfs, out: impl Write) -> Result<Packed, RootfsError> {
    Ok(berth_snapshot::export(&rootfs.root, out)?)
}

/// What a commit records besides the changes.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Tag the new image (any form a reference accepts).
    pub tag: Option<String>,
    /// The image's author (`docker commit --author`).
    pub author: Option<String>,
    /// The commit message (`docker commit --message`): the config's and history's comment.
    pub message: Option<String>,
    /// The history entry's `created_by` (default: `berth commit`).
    pub created_by: Option<String>,
    /// Config changes as Dockerfile instructions (`docker commit --change`): CMD, ENTRYPOINT,
    /// ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
    pub changes: Vec<String>,
}

/// Docker's layer media types, as their OCI equivalents (the new manifest is an OCI one).
fn oci_layer_type(t: &str) -> &str {
    match t {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        }
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        t => t,
    }
}

/// A scratch path in `dir` unique to this process and call.
fn scratch(dir: &Path, what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    dir.join(format!(
        ".{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Removes a scratch file or directory when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

impl ImageStore {
    /// `docker commit`: make an image of the base image `base` (a name or ID; the image the
    /// root filesystem was made from, or one with the same layers) plus what the container
    /// changed in `rootfs` (see the module docs).
    pub fn commit(
        &self,
        rootfs: &Rootfs,
        base: &str,
        opts: &CommitOptions,
    ) -> Result<ImageRecord, RootfsError> {
        rootfs.check().or_else(|e| match e {
            // A root whose mount is gone still has its changes.
            RootfsError::NotMounted(_) => Ok(()),
            e => Err(e),
        })?;
        let tag = opts
            .tag
            .as_deref()
            .map(crate::manage::tag_name)
            .transpose()?;
        let base_rec = self.get(base)?;
        let diff_ids = rootfs.diff_ids.clone();
        if base_rec.diff_ids != diff_ids {
            return Err(RootfsError::WrongBase {
                dir: rootfs.dir.clone(),
                made_from: rootfs.image().to_string(),
                given: base_rec.id,
            });
        }
        let Value::Object(mut config) = self.config_json(&base_rec.id)? else {
            return Err(Error::BadConfig {
                digest: base_rec.id.clone(),
                why: "not a JSON object".into(),
            }
            .into());
        };
        {
            let c = config.entry("config").or_insert_with(|| json!({}));
            if !c.is_object() {
                *c = json!({});
            }
            if let Some(c) = c.as_object_mut() {
                for change in &opts.changes {
                    crate::import::apply_change(c, change)?;
                }
            }
        }

        let _lock = self.lock_shared()?;
        // The layer.
        let tmp = Scratch(scratch(&self.tmp_dir(), "commit"));
        let packed = {
            let file = std::fs::File::create(&tmp.0).map_err(io_err("creating", &tmp.0))?;
            let mut w = io::BufWriter::new(file);
            let opts = PackOptions {
                compression: Compression::Gzip,
                whiteouts: true,
            };
            let stage = Scratch(scratch(&rootfs.dir, "commit"));
            std::fs::create_dir(&stage.0).map_err(io_err("creating", &stage.0))?;
            let changes = rootfs
                .root
                .snapshotter()
                .changes_dir(&rootfs.root, &stage.0)?;
            let packed = berth_layer::pack(&changes, &mut w, &opts)?;
            w.into_inner()
                .map_err(|e| io_err("writing", &tmp.0)(e.into_error()))?
                .sync_all()
                .map_err(io_err("writing", &tmp.0))?;
            packed
        };
        let empty = packed.entries == 0;
        let now = crate::util::now_rfc3339();
        let mut history = json!({
            "created": now,
            "created_by": opts.created_by.clone().unwrap_or_else(|| "berth commit".into()),
        });
        if let Some(a) = &opts.author {
            history["author"] = json!(a);
        }
        if let Some(m) = &opts.message {
            history["comment"] = json!(m);
        }
        let mut layers: Vec<Value> = {
            let bytes = self.read_blob(&base_rec.manifest)?;
            let m: Value = serde_json::from_slice(&bytes).map_err(|e| Error::BadConfig {
                digest: base_rec.manifest.clone(),
                why: format!("manifest: {e}"),
            })?;
            m.get("layers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for l in &mut layers {
            if let Some(t) = l.get("mediaType").and_then(Value::as_str) {
                let t = oci_layer_type(t).to_string();
                l["mediaType"] = json!(t);
            }
        }
        if empty {
            history["empty_layer"] = json!(true);
        } else {
            let digest = Digest::parse(&packed.digest).map_err(Error::from)?;
            let file = std::fs::File::open(&tmp.0).map_err(io_err("opening", &tmp.0))?;
            self.blobs
                .put(&digest, Some(packed.size), file)
                .map_err(Error::from)?;
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": packed.digest,
                "size": packed.size,
            }));
        }
        config.insert("created".into(), json!(now));
        match &opts.author {
            Some(a) => config.insert("author".into(), json!(a)),
            None => config.remove("author"),
        };
        match &opts.message {
            Some(m) => config.insert("comment".into(), json!(m)),
            None => config.remove("comment"),
        };
        let mut ids = diff_ids.clone();
        if !empty {
            ids.push(packed.diff_id.clone());
        }
        let rootfs_v = config
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers"}));
        if !rootfs_v.is_object() {
            *rootfs_v = json!({"type": "layers"});
        }
        rootfs_v["diff_ids"] = json!(ids);
        let hist = config.entry("history").or_insert_with(|| json!([]));
        if !hist.is_array() {
            *hist = json!([]);
        }
        if let Some(h) = hist.as_array_mut() {
            h.push(history);
        }
        let config = Value::Object(config);
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        let config_digest = self.blobs.put_bytes(&config_bytes).map_err(Error::from)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(),
                "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
        let manifest_digest = self.blobs.put_bytes(&manifest_bytes).map_err(Error::from)?;
        let parsed: berth_registry::Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| Error::Invalid(e.to_string()))?;
        let rec = self.add_image(&manifest_digest, &parsed, None)?;
        if let Some(tag) = tag {
            self.set_tags(&[(rec.id.clone(), tag)])?;
        }
        Ok(self.get(&rec.id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_layer_types_become_oci_ones() {
        assert_eq!(
            oci_layer_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            oci_layer_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
}
