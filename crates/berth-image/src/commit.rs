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
use berth_registry::{Descriptor, ImageManifest, MediaType, media};
use berth_store::Digest;
use oci_spec::image::History;

use crate::archive::{descriptor, make_manifest};
use crate::config_edit::ConfigEdit;
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

/// A scratch path in `dir` unique to this process and call.
pub(crate) fn scratch(dir: &Path, what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    dir.join(format!(
        ".{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Removes a scratch file or directory when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

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
        let mut config = ConfigEdit::parse(&base_rec.id, &self.read_blob(&base_rec.id)?)?;
        for change in &opts.changes {
            config.apply_change(change)?;
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
        let mut step = History::default();
        step.set_created(Some(now.clone()))
            .set_created_by(Some(
                opts.created_by
                    .clone()
                    .unwrap_or_else(|| "berth commit".into()),
            ))
            .set_author(opts.author.clone())
            .set_comment(opts.message.clone());
        // The base's layers as they are (Docker's layer types as OCI's: the new manifest is
        // an OCI one), then the new one.
        let base: ImageManifest = serde_json::from_slice(&self.read_blob(&base_rec.manifest)?)
            .map_err(|e| Error::BadConfig {
                digest: base_rec.manifest.clone(),
                why: format!("manifest: {e}"),
            })?;
        let mut layers: Vec<Descriptor> = base
            .layers()
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l.set_media_type(media::oci_layer(l.media_type()));
                l
            })
            .collect();
        let mut ids = diff_ids.clone();
        if empty {
            step.set_empty_layer(Some(true));
        } else {
            let digest = Digest::parse(&packed.digest).map_err(Error::from)?;
            let file = std::fs::File::open(&tmp.0).map_err(io_err("opening", &tmp.0))?;
            self.blobs
                .put(&digest, Some(packed.size), file)
                .map_err(Error::from)?;
            layers.push(descriptor(MediaType::ImageLayerGzip, &digest, packed.size)?);
            ids.push(packed.diff_id.clone());
        }
        config.set_created(&now);
        config.set_author(opts.author.as_deref());
        config.set_comment(opts.message.as_deref());
        config.set_diff_ids(&ids);
        config.push_history(&step)?;
        let config_bytes = config.to_bytes()?;
        let config_digest = self.blobs.put_bytes(&config_bytes).map_err(Error::from)?;
        let (manifest_bytes, parsed) =
            make_manifest(&config_digest, config_bytes.len() as u64, layers)?;
        let manifest_digest = self.blobs.put_bytes(&manifest_bytes).map_err(Error::from)?;
        let rec = self.add_image(&manifest_digest, &parsed, None)?;
        self.set_parent(&rec.id, &base_rec.id)?;
        if let Some(tag) = tag {
            self.set_tags(&[(rec.id.clone(), tag)])?;
        }
        Ok(self.get(&rec.id)?)
    }
}
