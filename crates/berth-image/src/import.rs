//! `docker import`: a root file system tarball becomes a one-layer image.

use std::io::Read;

use berth_registry::{MediaType, Platform, PlatformExt};
use oci_spec::image::History;

use crate::archive::{descriptor, make_manifest};
use crate::config_edit::ConfigEdit;
use crate::{Error, ImageRecord, ImageStore, Result, util};

impl ImageStore {
    /// `docker import`: the root file system tarball `input` (plain, gzip or zstd) becomes a
    /// one-layer image for this host's platform, its config made from `changes` (Dockerfile
    /// instructions, see `docker import --change`), tagged `reference` if given. The layer is
    /// stored uncompressed (its digest is its diff ID).
    pub fn import(
        &self,
        input: impl Read,
        reference: Option<&str>,
        changes: &[String],
    ) -> Result<ImageRecord> {
        let tag = reference.map(crate::manage::tag_name).transpose()?;
        let now = util::now_rfc3339();
        let mut config = ConfigEdit::new(&Platform::host(), &now);
        for c in changes {
            config.apply_change(c)?;
        }
        let _lock = self.lock_shared()?;
        let tar = util::decompressed(input).map_err(Error::ArchiveRead)?;
        let (layer, size) = self.spool_unknown(tar)?;
        if size == 0 {
            return Err(Error::BadArchive(
                "the root file system tarball is empty".into(),
            ));
        }
        config.set_diff_ids(&[layer.to_string()]);
        let mut step = History::default();
        step.set_created(Some(now))
            .set_created_by(Some("import".into()));
        config.push_history(&step)?;
        let config_bytes = config.to_bytes()?;
        let config_digest = self.blobs.put_bytes(&config_bytes)?;
        let (manifest_bytes, manifest) = make_manifest(
            &config_digest,
            config_bytes.len() as u64,
            vec![descriptor(MediaType::ImageLayer, &layer, size)?],
        )?;
        let manifest_digest = self.blobs.put_bytes(&manifest_bytes)?;
        let rec = self.add_image(&manifest_digest, &manifest, None)?;
        if let Some(tag) = tag {
            self.set_tags(&[(rec.id.clone(), tag)])?;
        }
        self.get(&rec.id)
    }
}
