//! Managing stored images as Docker does: tags (`docker tag`), removal (`docker rmi`), pruning
//! and garbage collection (`docker image prune`), disk usage (`docker system df -v`).
//!
//! Removal only touches the database. Files go with garbage collection, which deletes every
//! blob and unpacked layer that no remaining image refers to, under the store lock held
//! exclusive (see the crate docs), database rows first and files after, so a crash in between
//! leaves files nobody refers to (collected next time), never a record without its files.

use std::collections::{HashMap, HashSet};

use berth_registry::Reference;
use berth_store::Digest;
use redb::{ReadableTable, Table};

use crate::rootfs::{RootRecord, roots_in};
use crate::{
    Error, IMAGES, ImageRecord, ImageStore, LAYER_SIZES, ROOTS, Result, TAG_TIMES, TAGS, db_err,
    find_id, get_record, util,
};

/// One thing a removal did, in Docker's terms (`Untagged: …`, `Deleted: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A tag (full form) was removed.
    Untagged(String),
    /// The image (ID) was deleted.
    Deleted(String),
}

/// What garbage collection deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted from the content store.
    pub blobs: Vec<String>,
    /// Unpacked layers deleted (diff IDs).
    pub layers: Vec<String>,
    /// Bytes on disk freed.
    pub reclaimed: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Tags removed and images deleted.
    pub removed: Vec<Removed>,
    /// What the garbage collection after it deleted.
    pub gc: GcReport,
}

/// Disk usage of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// Image ID.
    pub id: String,
    /// Its tags (full form).
    pub repo_tags: Vec<String>,
    /// Bytes on disk of its unpacked layers.
    pub size: u64,
    /// The part of `size` in layers other images have too.
    pub shared_size: u64,
    /// The part of `size` in layers only this image has (what deleting it would free).
    pub unique_size: u64,
}

/// Disk usage of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskUsage {
    /// Per image.
    pub images: Vec<ImageUsage>,
    /// Bytes on disk of the unpacked layers the images use, each layer counted once.
    pub layers_size: u64,
    /// Bytes on disk of the content store's blobs (compressed layers, configs, manifests).
    pub content_size: u64,
}

type ImagesTable<'t> = Table<'t, &'static str, &'static [u8]>;
type TagsTable<'t> = Table<'t, &'static str, &'static str>;

fn put_record(images: &mut ImagesTable, rec: &ImageRecord) -> Result<()> {
    let json = serde_json::to_vec(rec).map_err(db_err)?;
    images
        .insert(rec.id.as_str(), json.as_slice())
        .map_err(db_err)?;
    Ok(())
}

/// Take the digest references `refs` (full form) from every image but `id`: as in Docker, a
/// `repo@digest` reference names one image.
pub(crate) fn take_repo_digests(images: &mut ImagesTable, id: &str, refs: &[String]) -> Result<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let mut others = Vec::new();
    for row in images.iter().map_err(db_err)? {
        let (_, v) = row.map_err(db_err)?;
        let other: ImageRecord = serde_json::from_slice(v.value()).map_err(db_err)?;
        if other.id != id && other.repo_digests.iter().any(|d| refs.contains(d)) {
            others.push(other);
        }
    }
    for mut other in others {
        other.repo_digests.retain(|d| !refs.contains(d));
        put_record(images, &other)?;
    }
    Ok(())
}

/// Point `tag` (full form) at the image `id` (which must be recorded), taking it from the image
/// it named before, if any.
pub(crate) fn set_tag(
    images: &mut ImagesTable,
    tags: &mut TagsTable,
    id: &str,
    tag: &str,
) -> Result<()> {
    let previous = tags
        .get(tag)
        .map_err(db_err)?
        .map(|v| v.value().to_string());
    if let Some(prev) = previous.filter(|p| p != id)
        && let Some(mut old) = get_record(images, &prev)?
    {
        old.repo_tags.retain(|t| t != tag);
        put_record(images, &old)?;
    }
    tags.insert(tag, id).map_err(db_err)?;
    let mut rec = get_record(images, id)?.ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
    if !rec.repo_tags.iter().any(|t| t == tag) {
        rec.repo_tags.push(tag.to_string());
        put_record(images, &rec)?;
    }
    Ok(())
}

/// Remove `tag` (full form); the ID it named, if it existed.
fn remove_tag(images: &mut ImagesTable, tags: &mut TagsTable, tag: &str) -> Result<Option<String>> {
    let Some(id) = tags
        .remove(tag)
        .map_err(db_err)?
        .map(|v| v.value().to_string())
    else {
        return Ok(None);
    };
    if let Some(mut rec) = get_record(images, &id)? {
        rec.repo_tags.retain(|t| t != tag);
        put_record(images, &rec)?;
    }
    Ok(Some(id))
}

/// Delete image `id` and every tag of it.
fn delete_image(
    images: &mut ImagesTable,
    tags: &mut TagsTable,
    times: &mut TagsTable,
    id: &str,
) -> Result<Vec<Removed>> {
    let mut out = Vec::new();
    let Some(rec) = get_record(images, id)? else {
        return Ok(out);
    };
    for t in &rec.repo_tags {
        tags.remove(t.as_str()).map_err(db_err)?;
        out.push(Removed::Untagged(t.clone()));
    }
    out.extend(rec.repo_digests.iter().cloned().map(Removed::Untagged));
    images.remove(id).map_err(db_err)?;
    times.remove(id).map_err(db_err)?;
    out.push(Removed::Deleted(id.to_string()));
    Ok(out)
}

/// Remove every tag and digest reference of image `id`, keeping the image.
fn untag_all(images: &mut ImagesTable, tags: &mut TagsTable, id: &str) -> Result<Vec<Removed>> {
    let Some(mut rec) = get_record(images, id)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for t in rec.repo_tags.drain(..) {
        tags.remove(t.as_str()).map_err(db_err)?;
        out.push(Removed::Untagged(t));
    }
    out.extend(rec.repo_digests.drain(..).map(Removed::Untagged));
    put_record(images, &rec)?;
    Ok(out)
}

/// After the reference `gone` (a tag or a digest reference, full form) of image `id` was
/// removed: as Docker does, when it was the last tag of its repository the digest references
/// of that repository go too, and an image left with no reference at all is deleted.
fn drop_reference(
    images: &mut ImagesTable,
    times: &mut TagsTable,
    id: &str,
    gone: &str,
    in_use: bool,
) -> Result<Vec<Removed>> {
    let mut out = Vec::new();
    let Some(mut rec) = get_record(images, id)? else {
        return Ok(out);
    };
    let repo = |name: &str| {
        Reference::parse(name)
            .ok()
            .map(|r| (r.registry, r.repository))
    };
    let gone_repo = repo(gone);
    if !rec.repo_tags.iter().any(|t| repo(t) == gone_repo) {
        let (drop, keep): (Vec<String>, Vec<String>) = rec
            .repo_digests
            .drain(..)
            .partition(|d| repo(d) == gone_repo);
        rec.repo_digests = keep;
        if !drop.is_empty() {
            put_record(images, &rec)?;
            out.extend(drop.into_iter().map(Removed::Untagged));
        }
    }
    // An image a root filesystem uses stays, untagged, until its last user is gone.
    if rec.repo_tags.is_empty() && rec.repo_digests.is_empty() && !in_use {
        images.remove(id).map_err(db_err)?;
        times.remove(id).map_err(db_err)?;
        out.push(Removed::Deleted(id.to_string()));
    }
    Ok(out)
}

/// The short form of an image ID Docker prints (12 hex digits).
pub(crate) fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Does the image have at most one tag, all its digest references in that tag's repository
/// (Docker's "single reference": removing it leaves the image unnamed)?
fn single_reference(rec: &ImageRecord) -> bool {
    let repo = |name: &str| {
        Reference::parse(name)
            .ok()
            .map(|r| (r.registry, r.repository))
    };
    match rec.repo_tags.as_slice() {
        [] => {
            let repos: HashSet<_> = rec.repo_digests.iter().map(|d| repo(d)).collect();
            repos.len() <= 1
        }
        [tag] => {
            let r = repo(tag);
            rec.repo_digests.iter().all(|d| repo(d) == r)
        }
        _ => false,
    }
}

/// The first root filesystem made from image `id`, if any.
fn user_of(roots: &[RootRecord], id: &str) -> Option<String> {
    roots.iter().find(|r| r.image == id).map(|r| r.user.clone())
}

/// A tag given by the user, as its full form; digests are refused.
pub(crate) fn tag_name(name: &str) -> Result<String> {
    let r = Reference::parse(name)?;
    if r.digest.is_some() {
        return Err(Error::Invalid(format!(
            "{name}: a tag cannot have a digest (refer to the image by name:tag)"
        )));
    }
    Ok(r.to_string())
}

impl ImageStore {
    /// `docker tag SOURCE TARGET`: point the tag `target` at the image `source` names (tag,
    /// ID or short ID), moving it from the image it named before. Returns the image.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord> {
        let tag = tag_name(target)?;
        let now = util::now_rfc3339();
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        let id = {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            let mut times = txn.open_table(TAG_TIMES).map_err(db_err)?;
            let id = find_id(&images, &tags, source)?
                .ok_or_else(|| Error::NoSuchImage(source.to_string()))?;
            set_tag(&mut images, &mut tags, &id, &tag)?;
            times.insert(id.as_str(), now.as_str()).map_err(db_err)?;
            id
        };
        txn.commit().map_err(db_err)?;
        self.get(&id)
    }

    /// Apply several tags to image `id` at once (loads: tags move only once every image of
    /// the archive is in).
    pub(crate) fn set_tags(&self, assignments: &[(String, String)]) -> Result<()> {
        if assignments.is_empty() {
            return Ok(());
        }
        let now = util::now_rfc3339();
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            let mut times = txn.open_table(TAG_TIMES).map_err(db_err)?;
            for (id, tag) in assignments {
                set_tag(&mut images, &mut tags, id, tag)?;
                times.insert(id.as_str(), now.as_str()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    /// Record that image `id` is known as `reference` (full form, `registry/repo@digest`),
    /// e.g. after a push.
    pub fn add_repo_digest(&self, id: &str, reference: &str) -> Result<ImageRecord> {
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        let rec = {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut rec =
                get_record(&images, id)?.ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
            let reference = reference.to_string();
            take_repo_digests(&mut images, id, std::slice::from_ref(&reference))?;
            if !rec.repo_digests.contains(&reference) {
                rec.repo_digests.push(reference);
                put_record(&mut images, &rec)?;
            }
            rec
        };
        txn.commit().map_err(db_err)?;
        Ok(rec)
    }

    /// Delete images recorded by an operation that then failed (loads), unless tagged since.
    pub(crate) fn forget_untagged(&self, ids: &[String]) -> Result<()> {
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            let mut times = txn.open_table(TAG_TIMES).map_err(db_err)?;
            for id in ids {
                if get_record(&images, id)?.is_some_and(|r| r.repo_tags.is_empty()) {
                    delete_image(&mut images, &mut tags, &mut times, id)?;
                }
            }
        }
        txn.commit().map_err(db_err)
    }

    /// When the image was last tagged here (`docker tag`, load, import), RFC 3339.
    pub fn last_tag_time(&self, id: &str) -> Result<Option<String>> {
        let db = self.db.get()?;
        let txn = db.begin_read().map_err(db_err)?;
        let times = txn.open_table(TAG_TIMES).map_err(db_err)?;
        Ok(times
            .get(id)
            .map_err(db_err)?
            .map(|v| v.value().to_string()))
    }

    /// Remove the tag `name` (any form a reference accepts), keeping the image even when it
    /// was its last tag (it becomes dangling). Returns the image.
    ///
    /// Digest references are not touched here.
    pub fn untag(&self, name: &str) -> Result<ImageRecord> {
        let tag = tag_name(name)?;
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        let id = {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            remove_tag(&mut images, &mut tags, &tag)?
                .ok_or_else(|| Error::NoSuchImage(name.to_string()))?
        };
        txn.commit().map_err(db_err)?;
        self.get(&id)
    }

    /// `docker rmi NAME`: a tag or a recorded digest reference is removed (with the digest
    /// references of its repository when it was the repository's last tag), and the image
    /// with it if that was its last reference; an ID (full or short) or another `repo@digest`
    /// of its manifest deletes the image with all its references, which needs `force` when it
    /// has more than one tag. Blobs and layers stay until [`ImageStore::gc`].
    ///
    /// An image a recorded root filesystem (a container) uses is protected as Docker protects
    /// an image a container uses: removing its last name, or deleting it by ID, is a conflict
    /// naming the user, unless `force`, and then only its names go: the image itself (its
    /// layers and blobs) stays, untagged, until the last root made from it is removed.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<Removed>> {
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        let out = {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            let mut times = txn.open_table(TAG_TIMES).map_err(db_err)?;
            let roots = roots_in(&txn.open_table(ROOTS).map_err(db_err)?)?;
            let as_ref = Reference::parse(name).ok();
            let as_tag = as_ref
                .as_ref()
                .filter(|r| r.digest.is_none())
                .map(|r| r.to_string());
            let tagged = match &as_tag {
                Some(t) => tags.get(t.as_str()).map_err(db_err)?.is_some(),
                None => false,
            };
            // `repo@digest` as recorded by a pull or push: removed like a tag.
            let digested = match as_ref.as_ref().and_then(|r| Some((r, r.digest.as_ref()?))) {
                Some((r, d)) => {
                    let full = crate::digest_ref(r, &d.to_string());
                    match find_id(&images, &tags, name)? {
                        Some(id) => get_record(&images, &id)?
                            .filter(|rec| rec.repo_digests.contains(&full))
                            .map(|rec| (rec, full)),
                        None => None,
                    }
                }
                None => None,
            };
            // A name: refused when it is the image's last and a root uses the image.
            let check_name = |rec: &ImageRecord| -> Result<bool> {
                let user = user_of(&roots, &rec.id);
                if let Some(user) = &user
                    && !force
                    && single_reference(rec)
                {
                    return Err(Error::ReferenceInUse {
                        reference: name.to_string(),
                        user: user.clone(),
                        id: short_id(&rec.id).to_string(),
                    });
                }
                Ok(user.is_some())
            };
            if let (Some(tag), true) = (as_tag, tagged) {
                let id = tags
                    .get(tag.as_str())
                    .map_err(db_err)?
                    .map(|v| v.value().to_string())
                    .unwrap_or_default();
                let in_use = match get_record(&images, &id)? {
                    Some(rec) => check_name(&rec)?,
                    None => false,
                };
                let mut out = vec![Removed::Untagged(tag.clone())];
                if let Some(id) = remove_tag(&mut images, &mut tags, &tag)? {
                    out.extend(drop_reference(&mut images, &mut times, &id, &tag, in_use)?);
                }
                out
            } else if let Some((rec, full)) = digested {
                let in_use = check_name(&rec)?;
                let mut rec = rec;
                rec.repo_digests.retain(|d| *d != full);
                put_record(&mut images, &rec)?;
                let mut out = vec![Removed::Untagged(full.clone())];
                out.extend(drop_reference(
                    &mut images,
                    &mut times,
                    &rec.id,
                    &full,
                    in_use,
                )?);
                out
            } else {
                let id = find_id(&images, &tags, name)?
                    .ok_or_else(|| Error::NoSuchImage(name.to_string()))?;
                let rec = get_record(&images, &id)?
                    .ok_or_else(|| Error::NoSuchImage(name.to_string()))?;
                if rec.repo_tags.len() > 1 && !force {
                    return Err(Error::Conflict {
                        id: short_id(&id).to_string(),
                        tags: rec.repo_tags.join(", "),
                    });
                }
                match user_of(&roots, &id) {
                    Some(user) if !force => {
                        return Err(Error::ImageInUse {
                            id: short_id(&id).to_string(),
                            user,
                        });
                    }
                    // Forced: the names go, the image stays for its users.
                    Some(_) => untag_all(&mut images, &mut tags, &id)?,
                    None => delete_image(&mut images, &mut tags, &mut times, &id)?,
                }
            }
        };
        txn.commit().map_err(db_err)?;
        Ok(out)
    }

    /// `docker image prune [-a]`: delete dangling (untagged) images, or with `all` every image
    /// not in use: images a recorded root filesystem uses are kept, and so are those
    /// `in_use(id)` names. Then collect garbage ([`ImageStore::gc`]).
    pub fn prune(&self, all: bool, in_use: &dyn Fn(&str) -> bool) -> Result<PruneReport> {
        let _lock = self.lock_exclusive()?;
        self.forget_stale_roots()?;
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        let removed = {
            let mut images = txn.open_table(IMAGES).map_err(db_err)?;
            let mut tags = txn.open_table(TAGS).map_err(db_err)?;
            let mut times = txn.open_table(TAG_TIMES).map_err(db_err)?;
            let used: HashSet<String> = roots_in(&txn.open_table(ROOTS).map_err(db_err)?)?
                .into_iter()
                .map(|r| r.image)
                .collect();
            let mut victims = Vec::new();
            for row in images.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                let rec: ImageRecord = serde_json::from_slice(v.value()).map_err(db_err)?;
                let dangling = rec.repo_tags.is_empty() && rec.repo_digests.is_empty();
                if (all || dangling) && !used.contains(&rec.id) && !in_use(&rec.id) {
                    victims.push(rec.id);
                }
            }
            let mut removed = Vec::new();
            for id in victims {
                removed.extend(delete_image(&mut images, &mut tags, &mut times, &id)?);
            }
            removed
        };
        txn.commit().map_err(db_err)?;
        let gc = self.gc_locked()?;
        Ok(PruneReport { removed, gc })
    }

    /// Delete every blob and unpacked layer no recorded image or root filesystem refers to
    /// (an image's manifest, config, layer blobs and layers by diff ID; a root's image config
    /// and layers). Blobs left by failed loads and imports go here too. A root recorded whose
    /// directories are both gone (its maker died before making any, or someone deleted them
    /// by hand) is unrecorded first: nobody can be making it, since makers hold the store lock
    /// shared and this runs with it exclusive.
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.lock_exclusive()?;
        self.gc_locked()
    }

    pub(crate) fn gc_locked(&self) -> Result<GcReport> {
        // What the remaining images refer to. An unreadable manifest stops everything: its
        // layer blobs cannot be told from garbage.
        let mut keep_blobs = HashSet::new();
        let mut keep_layers = HashSet::new();
        for root in self.forget_stale_roots()? {
            keep_blobs.insert(root.image.clone());
            keep_layers.extend(root.diff_ids);
        }
        // The build cache's layers (see `build`).
        for l in self.cache_refs()? {
            keep_blobs.insert(l.digest);
            keep_layers.insert(l.diff_id);
        }
        for rec in self.images()? {
            let manifest: berth_registry::ImageManifest = self
                .read_blob(&rec.manifest)
                .and_then(|b| {
                    serde_json::from_slice(&b).map_err(|e| Error::Invalid(e.to_string()))
                })
                .map_err(|e| {
                    Error::Invalid(format!(
                        "image {}: its manifest {} cannot be read ({e}); garbage collection stopped, nothing deleted",
                        rec.id, rec.manifest
                    ))
                })?;
            keep_blobs.insert(rec.id.clone());
            keep_blobs.insert(rec.manifest.clone());
            keep_blobs.insert(manifest.config().digest().to_string());
            keep_blobs.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
            keep_layers.extend(rec.diff_ids);
        }
        let mut report = GcReport::default();

        // Layers: sizes first (the cache), then the cache rows, then the directories.
        let layers_dir = self.root.join("layers");
        let mut doomed = Vec::new();
        let rd = std::fs::read_dir(&layers_dir).map_err(|source| Error::Io {
            op: "reading",
            path: layers_dir.clone(),
            cause: source,
        })?;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_prefix("sha256-") else {
                continue; // .tmp-*: an unpack in progress or interrupted
            };
            let diff_id = format!("sha256:{hex}");
            if !keep_layers.contains(&diff_id) {
                doomed.push(diff_id);
            }
        }
        let sizes = self.layer_sizes(&doomed)?;
        let db = self.db.get()?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut cache = txn.open_table(LAYER_SIZES).map_err(db_err)?;
            for d in &doomed {
                cache.remove(d.as_str()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        for d in doomed {
            let dir = self.layer_path(&d);
            std::fs::remove_dir_all(&dir).map_err(|source| Error::Io {
                op: "removing",
                path: dir,
                cause: source,
            })?;
            report.reclaimed += sizes.get(&d).copied().unwrap_or(0);
            report.layers.push(d);
        }

        for d in self.blobs.list()? {
            let name = d.to_string();
            if keep_blobs.contains(&name) {
                continue;
            }
            report.reclaimed += util::dir_usage(&self.blobs.path(&d)).unwrap_or(0);
            self.blobs.remove(&d)?;
            report.blobs.push(name);
        }
        Ok(report)
    }

    /// Unrecord the roots whose directories are both gone (see [`ImageStore::gc`]); the
    /// others. Only with the store lock exclusive.
    fn forget_stale_roots(&self) -> Result<Vec<RootRecord>> {
        let mut live = Vec::new();
        for root in self.roots()? {
            if !root.dir.exists() && !root.target.exists() {
                self.forget_root(&root.id)?;
            } else {
                live.push(root);
            }
        }
        Ok(live)
    }

    /// Bytes on disk of the unpacked layer `diff_id` (0 when it is not unpacked).
    pub fn layer_size(&self, diff_id: &str) -> Result<u64> {
        let _lock = self.lock_shared()?;
        Ok(self
            .layer_sizes(&[diff_id.to_string()])?
            .get(diff_id)
            .copied()
            .unwrap_or(0))
    }

    /// Sizes of these unpacked layers, from the cache or by walking them (and then cached).
    /// Layers not unpacked are left out.
    pub(crate) fn layer_sizes(&self, diff_ids: &[String]) -> Result<HashMap<String, u64>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let db = self.db.get()?;
            let txn = db.begin_read().map_err(db_err)?;
            let cache = txn.open_table(LAYER_SIZES).map_err(db_err)?;
            for d in diff_ids {
                match cache.get(d.as_str()).map_err(db_err)? {
                    Some(v) => {
                        out.insert(d.clone(), v.value());
                    }
                    None => missing.push(d.clone()),
                }
            }
        }
        let mut computed = Vec::new();
        for d in missing {
            let dir = self.layer_path(&d);
            if !dir.is_dir() {
                continue;
            }
            let size = util::dir_usage(&dir).map_err(|source| Error::Io {
                op: "measuring",
                path: dir,
                cause: source,
            })?;
            out.insert(d.clone(), size);
            computed.push((d, size));
        }
        if !computed.is_empty() {
            let db = self.db.get()?;
            let txn = db.begin_write().map_err(db_err)?;
            {
                let mut cache = txn.open_table(LAYER_SIZES).map_err(db_err)?;
                for (d, size) in &computed {
                    cache.insert(d.as_str(), *size).map_err(db_err)?;
                }
            }
            txn.commit().map_err(db_err)?;
        }
        Ok(out)
    }

    /// `docker system df -v` for images: each image's size, the part shared with other images
    /// and its own part; the layers' total and the content store's.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let _lock = self.lock_shared()?;
        let images = self.images()?;
        let mut users: HashMap<&str, usize> = HashMap::new();
        for rec in &images {
            let distinct: HashSet<&str> = rec.diff_ids.iter().map(String::as_str).collect();
            for d in distinct {
                *users.entry(d).or_default() += 1;
            }
        }
        let all: Vec<String> = users.keys().map(|d| d.to_string()).collect();
        let sizes = self.layer_sizes(&all)?;
        let size_of = |d: &str| sizes.get(d).copied().unwrap_or(0);
        let mut out = Vec::new();
        for rec in &images {
            let distinct: HashSet<&str> = rec.diff_ids.iter().map(String::as_str).collect();
            let size: u64 = distinct.iter().map(|d| size_of(d)).sum();
            let shared_size: u64 = distinct
                .iter()
                .filter(|d| users.get(*d).copied().unwrap_or(0) > 1)
                .map(|d| size_of(d))
                .sum();
            out.push(ImageUsage {
                id: rec.id.clone(),
                repo_tags: rec.repo_tags.clone(),
                size,
                shared_size,
                unique_size: size - shared_size,
            });
        }
        let content_size = self
            .blobs
            .list()?
            .iter()
            .map(|d: &Digest| util::dir_usage(&self.blobs.path(d)).unwrap_or(0))
            .sum();
        Ok(DiskUsage {
            images: out,
            layers_size: sizes.values().sum(),
            content_size,
        })
    }
}
