//! Pushing an image of the store to a registry, as `docker push` does: the image the reference
//! names locally, its manifest as stored (so its digest is unchanged), its blobs mounted from
//! the other repositories of that registry the image is known in (those it was pulled from or
//! pushed to, then its tags there) or uploaded ([`Client::push`]), then the digest reference
//! recorded (RepoDigests).
//!
//! Progress is told per layer, as Docker prints it: every layer is `Preparing` first (top
//! layer first), then pushed, found already there, or mounted. The config blob is pushed too,
//! but it is not a layer: it is not reported.

use std::collections::HashSet;

use berth_registry::{
    Client, ImageManifest, MediaType, PushImage, Pushed, Reference, descriptor_digest,
};
use berth_store::Digest;

use crate::{Error, ImageStore, Result};

/// How a push is getting on, layer by layer (each named by its blob's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// The layer is to be pushed (told for every layer before anything is sent, top layer
    /// first).
    Preparing {
        /// The layer blob.
        digest: Digest,
    },
    /// The registry has the layer already in the target repository ("Layer already exists").
    Exists {
        /// The layer blob.
        digest: Digest,
    },
    /// The layer was mounted from another repository of the registry ("Mounted from …").
    Mounted {
        /// The layer blob.
        digest: Digest,
        /// The repository it came from.
        from: String,
    },
    /// Bytes of the layer sent so far ("Pushing").
    Progress {
        /// The layer blob.
        digest: Digest,
        /// Bytes sent.
        sent: u64,
        /// The blob's size.
        total: u64,
    },
    /// The layer was uploaded and the registry confirmed it ("Pushed").
    Pushed {
        /// The layer blob.
        digest: Digest,
    },
}

impl ImageStore {
    /// `docker push`: push the image `r` names here (by tag, or by digest) to `r`'s registry
    /// and repository, under `r`'s tag (`latest` if it has none) or, for a reference by
    /// digest, under that digest. `on_event` hears about each layer (from the pushing
    /// threads, so it must be quick). The image's digest reference in `r`'s repository is
    /// recorded. Returns what the registry has now.
    pub fn push(
        &self,
        client: &Client,
        r: &Reference,
        on_event: &(dyn Fn(PushEvent) + Sync),
    ) -> Result<Pushed> {
        // Held while the blobs are read: the garbage collector must not take them away.
        let _lock = self.lock_shared()?;
        let rec = self.get(&r.to_string())?;
        let manifest_digest = Digest::parse(&rec.manifest)?;
        let bytes = self.read_blob(&rec.manifest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::BadConfig {
                digest: rec.id.clone(),
                why: format!("its manifest {manifest_digest} does not parse: {e}"),
            })?;
        let media_type = manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest);
        let mut image = PushImage::from_manifest(bytes, &media_type)?;
        image.mount_from = mount_sources(r, rec.repo_digests.iter().chain(&rec.repo_tags));

        let mut layers = Vec::new();
        for l in manifest.layers() {
            let d = descriptor_digest(l)?;
            if !layers.contains(&d) {
                layers.push(d);
            }
        }
        let is_layer: HashSet<&Digest> = layers.iter().collect();
        for digest in layers.iter().rev() {
            on_event(PushEvent::Preparing {
                digest: digest.clone(),
            });
        }
        let forward = |e: berth_registry::PushEvent| {
            use berth_registry::PushEvent as E;
            let event = match e {
                E::Exists { digest } => PushEvent::Exists { digest },
                E::Mounted { digest, from } => PushEvent::Mounted { digest, from },
                E::Progress {
                    digest,
                    sent,
                    total,
                } => PushEvent::Progress {
                    digest,
                    sent,
                    total,
                },
                E::Pushed { digest, .. } => PushEvent::Pushed { digest },
                E::ManifestPushed { .. } => return,
            };
            let digest = match &event {
                PushEvent::Preparing { digest }
                | PushEvent::Exists { digest }
                | PushEvent::Mounted { digest, .. }
                | PushEvent::Progress { digest, .. }
                | PushEvent::Pushed { digest } => digest,
            };
            // The config blob is not a layer.
            if is_layer.contains(digest) {
                on_event(event);
            }
        };
        let pushed = client.push(r, &image, &self.blobs, &forward)?;
        self.add_repo_digest(&rec.id, &crate::digest_ref(r, &pushed.digest.to_string()))?;
        Ok(pushed)
    }
}

/// The repositories of `r`'s registry, other than `r`'s, that the references `known` (full
/// form: digest references, then tags) name, each once in order: where the image's blobs may
/// be mounted from.
fn mount_sources<'a>(r: &Reference, known: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in known {
        if let Ok(o) = Reference::parse(k)
            && o.registry == r.registry
            && o.repository != r.repository
            && !out.contains(&o.repository)
        {
            out.push(o.repository);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_mount_from_other_repositories_of_the_registry() {
        let r = Reference::parse("reg.example:5000/team/app:2").unwrap();
        let d = Digest::of(b"m");
        let known = [
            format!("reg.example:5000/base/os@{d}"),
            "reg.example:5000/team/app:1".to_string(),
            "reg.example:5000/base/os:3".to_string(),
            "other.example/x/y:1".to_string(),
            "reg.example:5000/mirror/app:1".to_string(),
        ];
        assert_eq!(mount_sources(&r, known.iter()), ["base/os", "mirror/app"]);
    }
}
