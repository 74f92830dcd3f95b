//! Pulling an image into the store, and storing an image made here (load, import, commit).
//!
//! A pull resolves the manifest, fetches the config into memory (verified against its
//! digest), then brings every layer the store lacks in with one streaming job per layer,
//! several at a time ([`stream`]): download, blob digest, decompression, untar and diff ID in
//! one pass. Everything is staged first (blobs in `content/ingest/`, trees in
//! `layers/.tmp-*`) and put in place only when every layer succeeded; then the config, the
//! manifest last, and the database record. A failure anywhere removes what was staged, so
//! the store is left as it was and a retry starts afresh.
//!
//! Layers already in the store are not fetched again: a layer whose directory and blob are
//! both present is skipped, a present directory with a missing blob only has its blob
//! downloaded, and a present blob without its directory is unpacked from the store.
//!
//! Durability: blobs are synced one by one as they are verified. Unpacked files are not
//! synced one by one (thousands of fsyncs); instead the layers' file system is synced once
//! (`syncfs`) after every layer is unpacked and before any is renamed into place, and the
//! `layers/` directory after the renames, so a layer directory in place, and the image
//! record written after it, never stand for data a crash could lose.
//!
//! [`ImageStore::add_image`] (load, import, commit) stores an image whose blobs are all in the
//! content store already: its missing layers are unpacked by the same jobs, from the stored
//! blobs.

mod pipe;
mod stream;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use berth_registry::{Client, Descriptor, ImageManifest, Platform, Reference, descriptor_digest};
use berth_store::Digest;

use crate::{Error, ImageRecord, ImageStore, Result};
use stream::{Ctx, Job, Staged};

/// How a pull is getting on: what the reference resolved to, then layer by layer (each layer
/// named by its blob's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The registry resolved the reference to this digest: an index's for a multi-platform
    /// image (the platform's manifest is then chosen from it), else the manifest's. What
    /// Docker prints as `Digest:` and records in RepoDigests. Told once, before the layers.
    Resolved {
        /// The digest.
        digest: Digest,
    },
    /// The store has the layer already: nothing to do ("Already exists").
    Exists {
        /// The layer blob.
        digest: Digest,
    },
    /// Bytes of the layer read so far: downloaded (and unpacked on the way), or, for a layer
    /// unpacked from a blob the store already had, read from the store.
    Progress {
        /// The layer blob.
        digest: Digest,
        /// Compressed bytes read so far.
        done: u64,
        /// The blob's size as the manifest gives it.
        total: u64,
        /// Whether the bytes come from the registry (else from the store).
        downloading: bool,
    },
    /// The layer is downloaded, verified and unpacked ("Pull complete"). It is put in place
    /// with the others once every layer is done.
    Done {
        /// The layer blob.
        digest: Digest,
    },
}

/// The largest image config fetched (held in memory until it is stored).
const MAX_CONFIG: u64 = 16 * 1024 * 1024;

impl ImageStore {
    /// Pull `r` for `platform` and record it under its tag (if `r` has one, or none and no
    /// digest: `latest`), with the digest reference `repo@digest` of what `r` resolved to (for
    /// a multi-platform image, the index's digest: the record keeps the platform's manifest).
    /// Layers are downloaded, verified and unpacked as streams, up to four at a time; on
    /// failure nothing of this pull is left in the store.
    pub fn pull(&self, client: &Client, r: &Reference, platform: &Platform) -> Result<ImageRecord> {
        self.pull_with_progress(client, r, platform, &|_| {})
    }

    /// As [`ImageStore::pull`], telling `on_event` how each layer is getting on (from the
    /// pulling threads, so it must be quick).
    pub fn pull_with_progress(
        &self,
        client: &Client,
        r: &Reference,
        platform: &Platform,
        on_event: &(dyn Fn(PullEvent) + Sync),
    ) -> Result<ImageRecord> {
        // Held until the image is recorded: the garbage collector must not take what is
        // staged or in place but not yet recorded.
        let _lock = self.lock_shared()?;
        let resolved = client.resolve(r, platform)?;
        on_event(PullEvent::Resolved {
            digest: resolved.reference_digest().clone(),
        });
        let manifest = &resolved.manifest;
        let config_digest = descriptor_digest(manifest.config())?;
        let config = self.config_bytes(client, r, &config_digest, manifest.config())?;
        let diff_ids = config_diff_ids(&config_digest, &config, manifest.layers().len())?;
        let jobs = self.plan(manifest, &diff_ids, true)?;
        let mut told = HashSet::new();
        for layer in manifest.layers() {
            let digest = descriptor_digest(layer)?;
            if !jobs.iter().any(|j| j.digest == digest) && told.insert(digest.clone()) {
                on_event(PullEvent::Exists { digest });
            }
        }
        let layers_dir = self.root.join("layers");
        let ctx = Ctx {
            blobs: &self.blobs,
            layers: &layers_dir,
            remote: Some((client, r)),
            on_event,
        };
        let staged = stream::run(&ctx, &jobs)?;
        self.commit_staged(staged)?;
        // The config, then the manifest last: a stored manifest implies its blobs.
        self.blobs
            .put(&config_digest, Some(config.len() as u64), &config[..])?;
        self.blobs.put(
            &resolved.digest,
            Some(resolved.bytes.len() as u64),
            &resolved.bytes[..],
        )?;
        // Pulled by digest: no tag, even if one was given beside it (as Docker). The digest
        // reference is recorded either way.
        let tag = r.digest.is_none().then(|| r.to_string());
        let mut rec = image_record(&resolved.digest, manifest, &config_digest, &diff_ids);
        rec.repo_digests.push(crate::digest_ref(
            r,
            &resolved.reference_digest().to_string(),
        ));
        self.record(rec, tag.as_deref())
    }

    /// Record the image whose manifest (digest `manifest_digest`) is `manifest`: its config and
    /// layer blobs must be in the content store. Unpacks each layer not unpacked yet (several at
    /// a time), checks the layers against the config's diff IDs, and records the image under
    /// `tag` (full form).
    pub fn add_image(
        &self,
        manifest_digest: &Digest,
        manifest: &ImageManifest,
        tag: Option<&str>,
    ) -> Result<ImageRecord> {
        let config_digest = descriptor_digest(manifest.config())?;
        let config = self.read_blob(&config_digest.to_string())?;
        let diff_ids = config_diff_ids(&config_digest, &config, manifest.layers().len())?;
        let jobs = self.plan(manifest, &diff_ids, false)?;
        let layers_dir = self.root.join("layers");
        let ctx = Ctx {
            blobs: &self.blobs,
            layers: &layers_dir,
            remote: None,
            on_event: &|_| {},
        };
        let staged = stream::run(&ctx, &jobs)?;
        self.commit_staged(staged)?;
        self.record(
            image_record(manifest_digest, manifest, &config_digest, &diff_ids),
            tag,
        )
    }

    /// The config blob: from the store if it is there, else fetched into memory (at most
    /// [`MAX_CONFIG`] bytes) and checked against its digest and size. A download that breaks
    /// off is the registry's error (the connection closed before the end), a complete answer
    /// of another size the store's (a size mismatch).
    fn config_bytes(
        &self,
        client: &Client,
        r: &Reference,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<Vec<u8>> {
        if self.blobs.contains(digest) {
            return self.read_blob(&digest.to_string());
        }
        let size = desc.size();
        if size > MAX_CONFIG {
            return Err(Error::BadConfig {
                digest: digest.to_string(),
                why: format!(
                    "the manifest says it has {size} bytes; berth reads configs of at most {MAX_CONFIG}"
                ),
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        let cut = |read: usize, e: &std::io::Error| {
            berth_registry::client::Error::reading_blob(&r.registry, digest, read as u64, size, e)
        };
        let mut reader = client.blob_reader(r, digest)?.take(size + 1);
        if let Err(e) = reader.read_to_end(&mut bytes) {
            return Err(cut(bytes.len(), &e).into());
        }
        if bytes.len() as u64 != size {
            return Err(berth_store::Error::SizeMismatch {
                digest: digest.clone(),
                expected: size,
                actual: bytes.len() as u64,
            }
            .into());
        }
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(berth_store::Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            }
            .into());
        }
        Ok(bytes)
    }

    /// The jobs for the layers the store lacks (each blob and each diff ID once). With
    /// `fetch`, missing blobs are downloaded; without, they must be in the store. One blob
    /// listed twice with two diff IDs is refused (one of them is wrong).
    fn plan(&self, manifest: &ImageManifest, diff_ids: &[Digest], fetch: bool) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        let mut seen_blobs: HashMap<Digest, &Digest> = HashMap::new();
        let mut seen_layers = HashSet::new();
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let digest = descriptor_digest(layer)?;
            if let Some(other) = seen_blobs.insert(digest.clone(), diff_id) {
                if other != diff_id {
                    return Err(Error::BadConfig {
                        digest: manifest.config().digest().to_string(),
                        why: format!(
                            "layer {digest} is listed twice, with diff IDs {other} and {diff_id}"
                        ),
                    });
                }
                continue;
            }
            let need_blob = fetch && !self.blobs.contains(&digest);
            let need_layer = !self.layer_path(&diff_id.to_string()).is_dir()
                && seen_layers.insert(diff_id.clone());
            if need_blob || need_layer {
                jobs.push(Job {
                    digest,
                    size: layer.size(),
                    diff_id: diff_id.clone(),
                    fetch: need_blob,
                    unpack: need_layer,
                });
            }
        }
        Ok(jobs)
    }

    /// Put staged layers in place: the unpacked data made durable first (one `syncfs`), then
    /// blobs and layer directories renamed into place, then `layers/` synced. On an error the
    /// layers not yet committed are removed.
    fn commit_staged(&self, staged: Vec<Staged>) -> Result<()> {
        let layers_dir = self.root.join("layers");
        let unpacked = staged.iter().any(Staged::unpacked);
        if unpacked {
            sync(&layers_dir, true)?;
        }
        for s in staged {
            s.commit()?;
        }
        if unpacked {
            sync(&layers_dir, false)?;
        }
        Ok(())
    }
}

/// The diff IDs of the image config `bytes` (digest `digest`), which must be one per layer
/// and valid digests.
fn config_diff_ids(digest: &Digest, bytes: &[u8], layers: usize) -> Result<Vec<Digest>> {
    let bad = |why: String| Error::BadConfig {
        digest: digest.to_string(),
        why,
    };
    let config = crate::config::parse(&digest.to_string(), bytes)?;
    let ids = config.rootfs().diff_ids();
    if ids.len() != layers {
        return Err(bad(format!("{} diff IDs for {layers} layers", ids.len())));
    }
    ids.iter()
        .map(|id| Digest::parse(id).map_err(|_| bad(format!("invalid diff ID {id:?}"))))
        .collect()
}

fn image_record(
    manifest_digest: &Digest,
    manifest: &ImageManifest,
    config_digest: &Digest,
    diff_ids: &[Digest],
) -> ImageRecord {
    ImageRecord {
        id: config_digest.to_string(),
        manifest: manifest_digest.to_string(),
        repo_tags: Vec::new(),
        repo_digests: Vec::new(),
        diff_ids: diff_ids.iter().map(Digest::to_string).collect(),
        size: manifest.layers().iter().map(Descriptor::size).sum(),
        parent: None,
    }
}

/// Sync the file system `dir` is on (`whole`: `syncfs`), or just the directory `dir`.
fn sync(dir: &Path, whole: bool) -> Result<()> {
    let io = |op, source| Error::Io {
        op,
        path: dir.to_path_buf(),
        cause: source,
    };
    let d = std::fs::File::open(dir).map_err(|e| io("opening", e))?;
    if whole {
        rustix::fs::syncfs(&d).map_err(|e| io("syncing the file system of", e.into()))
    } else {
        d.sync_all().map_err(|e| io("syncing", e))
    }
}

impl ImageStore {
    /// Unpack the layer blob `digest` (in the content store, `size` bytes) as the layer
    /// `diff_id`, unless that layer is unpacked already (a build step's new layer).
    pub(crate) fn unpack_blob(&self, digest: &Digest, size: u64, diff_id: &Digest) -> Result<()> {
        if self.layer_path(&diff_id.to_string()).is_dir() {
            return Ok(());
        }
        let layers_dir = self.root.join("layers");
        let ctx = Ctx {
            blobs: &self.blobs,
            layers: &layers_dir,
            remote: None,
            on_event: &|_| {},
        };
        let jobs = [Job {
            digest: digest.clone(),
            size,
            diff_id: diff_id.clone(),
            fetch: false,
            unpack: true,
        }];
        let staged = stream::run(&ctx, &jobs)?;
        self.commit_staged(staged)
    }
}
