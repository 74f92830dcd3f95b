//! Image archives: `docker save` / `docker load` (and podman's `save`/`load`).
//!
//! [`ImageStore::save`] writes what Docker 25+ writes: one tar that is both a docker-archive
//! (`manifest.json` `[{Config, RepoTags, Layers}]`, `repositories`) and an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`), the docker-archive's paths pointing into
//! `blobs/sha256/`. Layers are written uncompressed (a docker-archive layer is the diff itself),
//! so the archive's OCI manifest is one made for them (media type
//! `application/vnd.oci.image.layer.v1.tar`), not the registry's; the image ID (the config
//! digest) is unchanged, and loading the archive here gives back the same manifest digest.
//! Each tag gets an `index.json` entry annotated with `io.containerd.image.name` (the full
//! name) and `org.opencontainers.image.ref.name` (the tag), as Docker does.
//!
//! [`ImageStore::load`] reads docker-archives (Docker's old `<id>/layer.tar` layout, podman's
//! `<hex>.tar` layers, Docker 25+'s `blobs/sha256/` paths; symlinked and hard-linked layers
//! too) and OCI layout archives (`index.json`, nested indexes resolved to this host's platform),
//! plain or gzip/zstd-compressed. The tar is read once, as a stream, in whatever order its
//! entries come: every file is stored in the content store as it passes (`blobs/sha256/<hex>`
//! verified against its name, anything else hashed on the way in), and the images are put
//! together at the end. A docker-archive's image gets an OCI manifest made for its layers.
//! Nothing is recorded unless every image of the archive is complete and its layers match
//! their diff IDs; tags are applied last, in one transaction. A failed load may leave blobs in
//! the content store that no image refers to: [`ImageStore::gc`] deletes them.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, Write};

use berth_layer::Compression;
use berth_registry::{
    Descriptor, ImageIndex, ImageManifest, MediaType, Platform, PlatformExt, Reference,
    descriptor_digest, media,
};
use berth_store::Digest;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::inspect::familiar;
use crate::{Error, ImageRecord, ImageStore, Result, util};

/// The most a metadata file of an archive (`manifest.json`, `index.json`, …) may hold.
const MAX_METADATA: u64 = 16 * 1024 * 1024;
/// How deep image indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;

/// A descriptor of the blob `digest` (`size` bytes) of type `media_type`.
pub(crate) fn descriptor(media_type: MediaType, digest: &Digest, size: u64) -> Result<Descriptor> {
    let oci = oci_spec::image::Digest::try_from(digest.to_string())
        .map_err(|e| Error::Invalid(format!("digest {digest}: {e}")))?;
    Ok(Descriptor::new(media_type, size, oci))
}

/// An OCI image manifest for this config and these layers: its bytes and parsed form. The same
/// inputs always give the same bytes (`schemaVersion`, `mediaType`, `config`, `layers`, each
/// descriptor `mediaType`, `digest`, `size`, plus what a given layer descriptor carries).
pub(crate) fn make_manifest(
    config: &Digest,
    config_size: u64,
    layers: Vec<Descriptor>,
) -> Result<(Vec<u8>, ImageManifest)> {
    let manifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, config, config_size)?)
        .layers(layers)
        .build()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((bytes, manifest))
}

/// The media type of a layer blob, told by its first bytes.
fn layer_media_type(c: Compression) -> MediaType {
    match c {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    }
}

/// A path inside an archive, cleaned: no leading `./` or `/`, no empty or `.` components,
/// `..` applied (never above the top). `None` for the archive's top itself.
fn clean_path(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// An entry of a docker-archive's `manifest.json`.
#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// An image of an archive, ready to be recorded.
struct Plan {
    manifest_digest: Digest,
    manifest: ImageManifest,
    tags: Vec<String>,
}

/// The tag (full form) an `index.json` entry's annotations give, if any: containerd's full
/// name, else `org.opencontainers.image.ref.name` when it is a name (podman writes
/// `localhost/a:1`); a bare tag (`latest`, as Docker writes next to the containerd name) names
/// no repository, so it gives none.
fn tag_from_annotations(a: &HashMap<String, String>) -> Option<String> {
    let full = |n: &str| {
        Reference::parse(n)
            .ok()
            .filter(|r| r.digest.is_none())
            .map(|r| r.to_string())
    };
    if let Some(n) = a.get("io.containerd.image.name") {
        return full(n);
    }
    a.get("org.opencontainers.image.ref.name")
        .filter(|n| n.contains('/') || n.contains(':'))
        .and_then(|n| full(n))
}

/// What `save` writes for one image.
struct Saved {
    rec: ImageRecord,
    tags: Vec<String>,
}

impl ImageStore {
    /// The images a `save` argument means, with the tags to write: a tag names its image (that
    /// tag); a repository without tag every tagged image of it (their tags in it); an ID (full
    /// or short) or `repo@digest` its image, with no tag (as Docker).
    fn save_targets(&self, name: &str) -> Result<Vec<(ImageRecord, Vec<String>)>> {
        if let Ok(r) = Reference::parse(name)
            && r.digest.is_none()
        {
            if r.tag.is_some() {
                if let Some(rec) = self.lookup(name)?
                    && rec.repo_tags.contains(&r.to_string())
                {
                    return Ok(vec![(rec, vec![r.to_string()])]);
                }
            } else {
                let mut out = Vec::new();
                for rec in self.images()? {
                    let tags: Vec<String> = rec
                        .repo_tags
                        .iter()
                        .filter(|t| {
                            Reference::parse(t).is_ok_and(|t| {
                                t.registry == r.registry && t.repository == r.repository
                            })
                        })
                        .cloned()
                        .collect();
                    if !tags.is_empty() {
                        out.push((rec, tags));
                    }
                }
                if !out.is_empty() {
                    return Ok(out);
                }
            }
        }
        let rec = self.get(name)?;
        Ok(vec![(rec, Vec::new())])
    }

    /// `docker save NAME…`: write the images, with their tags, as one archive both Docker and
    /// podman load (see the module docs). A tag saves that tag; a repository without tag every
    /// tag of it; an ID the image without tags. Each layer, config and manifest is written once
    /// however many images share it.
    pub fn save(&self, names: &[&str], out: impl Write) -> Result<()> {
        if names.is_empty() {
            return Err(Error::Invalid("save: no image named".into()));
        }
        let _lock = self.lock_shared()?;
        let mut chosen: Vec<Saved> = Vec::new();
        for name in names {
            for (rec, tags) in self.save_targets(name)? {
                match chosen.iter_mut().find(|s| s.rec.id == rec.id) {
                    Some(s) => {
                        for t in tags {
                            if !s.tags.contains(&t) {
                                s.tags.push(t);
                            }
                        }
                    }
                    None => chosen.push(Saved { rec, tags }),
                }
            }
        }

        let w = |e: io::Error| Error::ArchiveWrite(e);
        let mut tar = tar::Builder::new(out);
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            tar.append_data(&mut h, dir, io::empty()).map_err(w)?;
        }
        let mut written: HashSet<String> = HashSet::new();
        let mut index = Vec::new();
        let mut docker_manifest = Vec::new();
        let mut repositories: serde_json::Map<String, Value> = serde_json::Map::new();
        for s in &chosen {
            let rec = &s.rec;
            let stored: ImageManifest = serde_json::from_slice(&self.read_blob(&rec.manifest)?)
                .map_err(|e| {
                    Error::Invalid(format!("image {}: manifest {}: {e}", rec.id, rec.manifest))
                })?;
            if stored.layers().len() != rec.diff_ids.len() {
                return Err(Error::BadConfig {
                    digest: rec.id.clone(),
                    why: format!(
                        "{} diff IDs for {} layers",
                        rec.diff_ids.len(),
                        stored.layers().len()
                    ),
                });
            }
            let mut layers: Vec<Descriptor> = Vec::new();
            let mut diffs: Vec<Digest> = Vec::new();
            for (layer, diff_id) in stored.layers().iter().zip(&rec.diff_ids) {
                let diff = Digest::parse(diff_id)?;
                let (mut reader, size) = self.layer_tar(&descriptor_digest(layer)?, &diff)?;
                if written.insert(diff.to_string()) {
                    append_file(&mut tar, &blob_path(&diff), size, &mut reader)?;
                }
                layers.push(descriptor(MediaType::ImageLayer, &diff, size)?);
                diffs.push(diff);
            }
            let config_bytes = self.read_blob(&rec.id)?;
            let config = Digest::parse(&rec.id)?;
            if written.insert(config.to_string()) {
                append_file(
                    &mut tar,
                    &blob_path(&config),
                    config_bytes.len() as u64,
                    &mut &config_bytes[..],
                )?;
            }
            let (manifest_bytes, _) = make_manifest(&config, config_bytes.len() as u64, layers)?;
            let manifest_digest = Digest::of(&manifest_bytes);
            if written.insert(manifest_digest.to_string()) {
                append_file(
                    &mut tar,
                    &blob_path(&manifest_digest),
                    manifest_bytes.len() as u64,
                    &mut &manifest_bytes[..],
                )?;
            }
            let entry = json!({
                "mediaType": MediaType::ImageManifest,
                "digest": manifest_digest.to_string(),
                "size": manifest_bytes.len(),
            });
            if s.tags.is_empty() {
                index.push(entry.clone());
            }
            for t in &s.tags {
                let mut d = entry.clone();
                let short_tag = Reference::parse(t)
                    .ok()
                    .and_then(|r| r.tag)
                    .unwrap_or_else(|| "latest".into());
                d["annotations"] = json!({
                    "io.containerd.image.name": t,
                    "org.opencontainers.image.ref.name": short_tag,
                });
                index.push(d);
                let fam = familiar(t);
                if let (Some((repo, tag)), Some(top)) = (fam.rsplit_once(':'), diffs.last()) {
                    let entry = repositories
                        .entry(repo.to_string())
                        .or_insert_with(|| json!({}));
                    entry[tag] = json!(top.hex());
                }
            }
            let repo_tags: Vec<String> = s.tags.iter().map(|t| familiar(t)).collect();
            docker_manifest.push(json!({
                "Config": blob_path(&config),
                "RepoTags": if repo_tags.is_empty() { Value::Null } else { json!(repo_tags) },
                "Layers": diffs.iter().map(blob_path).collect::<Vec<_>>(),
            }));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageIndex,
            "manifests": index,
        });
        let json_bytes =
            |v: &Value| serde_json::to_vec(v).map_err(|e| Error::Invalid(e.to_string()));
        for (path, bytes) in [
            ("index.json", json_bytes(&index)?),
            ("manifest.json", json_bytes(&Value::Array(docker_manifest))?),
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            ("repositories", json_bytes(&Value::Object(repositories))?),
        ] {
            append_file(&mut tar, path, bytes.len() as u64, &mut &bytes[..])?;
        }
        let mut out = tar.into_inner().map_err(w)?;
        out.flush().map_err(w)
    }

    /// The uncompressed tar of layer blob `blob` (diff ID `diff`) and its size: the blob itself
    /// when it is stored uncompressed, else decompressed into an anonymous scratch file (and
    /// checked against the diff ID on the way).
    fn layer_tar(&self, d: &Digest, diff: &Digest) -> Result<(Box<dyn Read>, u64)> {
        let blob = d.to_string();
        let path = self.blobs.path(d);
        let io_err = |op, source| Error::Io {
            op,
            path: path.clone(),
            cause: source,
        };
        let mut file = self.blobs.open_blob(d)?;
        let compression = util::sniff(&mut file).map_err(|e| io_err("reading", e))?;
        file.rewind().map_err(|e| io_err("reading", e))?;
        if compression == Compression::None && d == diff {
            let size = file.metadata().map_err(|e| io_err("reading", e))?.len();
            return Ok((Box::new(file), size));
        }
        let tmp_dir = self.tmp_dir();
        let mut tmp = tempfile::tempfile_in(&tmp_dir).map_err(|source| Error::Io {
            op: "creating a scratch file in",
            path: tmp_dir.clone(),
            cause: source,
        })?;
        let layer_err = |e: io::Error| Error::Layer {
            digest: blob.to_string(),
            cause: berth_layer::Error::Read(e),
        };
        let reader = util::decompressed(io::BufReader::new(file)).map_err(layer_err)?;
        let (actual, size) = util::copy_hashing(reader, &mut tmp).map_err(|e| match e {
            Ok(read) => layer_err(read),
            Err(write) => Error::Io {
                op: "writing a scratch file in",
                path: tmp_dir.clone(),
                cause: write,
            },
        })?;
        if &actual != diff {
            return Err(Error::DiffIdMismatch {
                digest: blob.to_string(),
                expected: diff.to_string(),
                actual: actual.to_string(),
            });
        }
        tmp.rewind().map_err(|source| Error::Io {
            op: "reading a scratch file in",
            path: tmp_dir,
            cause: source,
        })?;
        Ok((Box::new(tmp), size))
    }

    /// `docker load`: read a docker-archive or OCI archive (see the module docs) and record its
    /// images with their tags. Returns the images (tags included); an image the archive does
    /// not name is recorded untagged (report its ID).
    pub fn load(&self, input: impl Read) -> Result<Vec<ImageRecord>> {
        Ok(self
            .load_tagged(input)?
            .into_iter()
            .map(|(rec, _)| rec)
            .collect())
    }

    /// As [`ImageStore::load`], each image with the tags the archive gave it (what `docker
    /// load` reports: an image loaded without a tag is reported by ID, whatever tags the store
    /// already had for it).
    pub fn load_tagged(&self, input: impl Read) -> Result<Vec<(ImageRecord, Vec<String>)>> {
        let _lock = self.lock_shared()?;
        let reader = util::decompressed(input).map_err(Error::ArchiveRead)?;
        // The tar reader's own errors quote the bytes it could not parse (the input may be any
        // file): they become `NotAnArchive`; only the input's read errors are passed on.
        let read_failed = Cell::new(false);
        let tar_error = |e: io::Error| {
            if read_failed.get() {
                Error::ArchiveRead(e)
            } else {
                Error::NotAnArchive
            }
        };
        let mut archive = tar::Archive::new(Tracked {
            inner: reader,
            failed: &read_failed,
        });
        let mut files: HashMap<String, (Digest, u64)> = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        let mut meta: HashMap<&'static str, Vec<u8>> = HashMap::new();
        for entry in archive.entries().map_err(tar_error)? {
            let mut entry = entry.map_err(tar_error)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(path) = clean_path(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink => {
                    if let Some(target) = entry.link_name_bytes() {
                        let target = String::from_utf8_lossy(&target).into_owned();
                        let base = path.rsplit_once('/').map_or("", |(d, _)| d);
                        if let Some(t) = clean_path(&format!("{base}/{target}")) {
                            links.push((path, t));
                        }
                    }
                    continue;
                }
                tar::EntryType::Link => {
                    if let Some(target) = entry.link_name_bytes()
                        && let Some(t) = clean_path(&String::from_utf8_lossy(&target))
                    {
                        links.push((path, t));
                    }
                    continue;
                }
                _ => continue,
            }
            let size = entry.size();
            if let Some(name) = ["manifest.json", "index.json", "oci-layout", "repositories"]
                .into_iter()
                .find(|n| *n == path)
            {
                if size > MAX_METADATA {
                    return Err(Error::BadArchive(format!(
                        "{path} is {size} bytes: too large"
                    )));
                }
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(MAX_METADATA)
                    .read_to_end(&mut bytes)
                    .map_err(Error::ArchiveRead)?;
                if bytes.len() as u64 != size {
                    return Err(truncated(&path));
                }
                meta.insert(name, bytes);
                continue;
            }
            // Docker's old per-layer metadata: not needed.
            if path.contains('/') && (path.ends_with("/json") || path.ends_with("/VERSION")) {
                continue;
            }
            let stored = match path
                .strip_prefix("blobs/sha256/")
                .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
            {
                Some(d) => self.put_entry(&path, &d, size, &mut entry)?,
                None => self.spool(&path, size, &mut entry)?,
            };
            files.insert(path, stored);
        }
        // Links (old docker-archives link repeated layers), chains included.
        for _ in 0..links.len() {
            let mut progress = false;
            for (path, target) in &links {
                if !files.contains_key(path)
                    && let Some(v) = files.get(target).cloned()
                {
                    files.insert(path.clone(), v);
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }

        let plans = if let Some(m) = meta.get("manifest.json") {
            self.docker_plans(m, &files)?
        } else if let Some(i) = meta.get("index.json") {
            self.oci_plans(i)?
        } else {
            return Err(Error::BadArchive(
                "neither manifest.json nor index.json: not a docker-archive or OCI archive (or truncated)".into(),
            ));
        };
        if plans.is_empty() {
            return Err(Error::BadArchive("the archive holds no image".into()));
        }

        // Record every image untagged first; tags only once all are in.
        let mut added = Vec::new();
        let mut ids = Vec::new();
        let mut assignments = Vec::new();
        for p in &plans {
            let id = p.manifest.config().digest().to_string();
            let existed = self.lookup(&id)?.is_some();
            match self.add_image(&p.manifest_digest, &p.manifest, None) {
                Ok(rec) => {
                    if !existed {
                        added.push(rec.id.clone());
                    }
                    if !ids.contains(&rec.id) {
                        ids.push(rec.id.clone());
                    }
                    assignments.extend(p.tags.iter().map(|t| (rec.id.clone(), t.clone())));
                }
                Err(e) => {
                    let _ = self.forget_untagged(&added);
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.set_tags(&assignments) {
            let _ = self.forget_untagged(&added);
            return Err(e);
        }
        ids.iter()
            .map(|id| {
                let tags = assignments
                    .iter()
                    .filter(|(i, _)| i == id)
                    .map(|(_, t)| t.clone())
                    .collect();
                self.get(id).map(|rec| (rec, tags))
            })
            .collect()
    }

    /// Store an archive entry named `blobs/sha256/<hex>` under that digest, verified.
    fn put_entry(
        &self,
        path: &str,
        d: &Digest,
        size: u64,
        entry: &mut impl Read,
    ) -> Result<(Digest, u64)> {
        match self.blobs.put(d, Some(size), entry) {
            Ok(_) => Ok((d.clone(), size)),
            Err(e @ berth_store::Error::SizeMismatch { .. }) => Err(Error::BadArchive(format!(
                "{path}: {e} (truncated archive?)"
            ))),
            Err(e @ berth_store::Error::DigestMismatch { .. }) => {
                Err(Error::BadArchive(format!("{path} is corrupt: {e}")))
            }
            Err(berth_store::Error::Io {
                op: "reading content for",
                cause,
                ..
            }) => Err(Error::ArchiveRead(cause)),
            Err(e) => Err(e.into()),
        }
    }

    /// Store an archive entry whose digest is not known yet (see [`ImageStore::spool_unknown`]),
    /// checking it is as long as its header says.
    fn spool(&self, path: &str, size: u64, entry: &mut impl Read) -> Result<(Digest, u64)> {
        self.spool_checked(entry, Some((path, size)))
    }

    /// Store what `reader` yields as a blob whose digest is not known beforehand: hashed on its
    /// way into a scratch file, which then becomes the blob. (The blob store's `put` wants the
    /// digest first; this is its verified write with the digest computed instead of checked:
    /// the file is complete and synced before it is renamed into place.) Read errors are
    /// [`Error::ArchiveRead`].
    pub(crate) fn spool_unknown(&self, reader: impl Read) -> Result<(Digest, u64)> {
        self.spool_checked(reader, None)
    }

    fn spool_checked(
        &self,
        reader: impl Read,
        expect: Option<(&str, u64)>,
    ) -> Result<(Digest, u64)> {
        let tmp_dir = self.tmp_dir();
        let io_err = |op, source| Error::Io {
            op,
            path: tmp_dir.clone(),
            cause: source,
        };
        let mut tmp = tempfile::Builder::new()
            .prefix("load-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| io_err("creating a scratch file in", e))?;
        let (d, n) = util::copy_hashing(reader, tmp.as_file_mut()).map_err(|e| match e {
            Ok(read) => Error::ArchiveRead(read),
            Err(write) => io_err("writing a scratch file in", write),
        })?;
        if let Some((path, size)) = expect
            && n != size
        {
            return Err(truncated(path));
        }
        if !self.blobs.contains(&d) {
            tmp.as_file()
                .sync_all()
                .map_err(|e| io_err("syncing a scratch file in", e))?;
            let dest = self.blobs.path(&d);
            tmp.persist(&dest).map_err(|e| Error::Io {
                op: "storing",
                path: dest.clone(),
                cause: e.error,
            })?;
            if let Some(dir) = dest.parent() {
                std::fs::File::open(dir)
                    .and_then(|f| f.sync_all())
                    .map_err(|source| Error::Io {
                        op: "syncing",
                        path: dir.to_path_buf(),
                        cause: source,
                    })?;
            }
        }
        Ok((d, n))
    }

    /// The images of a docker-archive's `manifest.json`, each with an OCI manifest made for
    /// its layers (stored).
    fn docker_plans(
        &self,
        manifest_json: &[u8],
        files: &HashMap<String, (Digest, u64)>,
    ) -> Result<Vec<Plan>> {
        let entries: Vec<DockerEntry> = serde_json::from_slice(manifest_json)
            .map_err(|e| Error::BadArchive(format!("manifest.json: {e}")))?;
        let find = |p: &str| {
            clean_path(p)
                .and_then(|p| files.get(&p).cloned())
                .ok_or_else(|| {
                    Error::BadArchive(format!(
                        "manifest.json names {p}, which the archive does not hold"
                    ))
                })
        };
        let mut plans = Vec::new();
        for e in entries {
            let (config, config_size) = find(&e.config)?;
            let mut layers: Vec<Descriptor> = Vec::new();
            for l in &e.layers {
                let (d, size) = find(l)?;
                let blob = self.blobs.open_blob(&d)?;
                let c = util::sniff(blob).map_err(|source| Error::Io {
                    op: "reading",
                    path: self.blobs.path(&d),
                    cause: source,
                })?;
                layers.push(descriptor(layer_media_type(c), &d, size)?);
            }
            let mut tags = Vec::new();
            for t in e.repo_tags.unwrap_or_default() {
                let r = Reference::parse(&t)
                    .map_err(|err| Error::BadArchive(format!("manifest.json: tag {t:?}: {err}")))?;
                if r.digest.is_none() {
                    tags.push(r.to_string());
                }
            }
            let (bytes, manifest) = make_manifest(&config, config_size, layers)?;
            let manifest_digest = self.blobs.put_bytes(&bytes)?;
            plans.push(Plan {
                manifest_digest,
                manifest,
                tags,
            });
        }
        Ok(plans)
    }

    /// The images of an OCI archive's `index.json`.
    fn oci_plans(&self, index_json: &[u8]) -> Result<Vec<Plan>> {
        let index = parse_index(index_json, "index.json")?;
        let mut plans: Vec<Plan> = Vec::new();
        for entry in index.manifests() {
            let tag = entry.annotations().as_ref().and_then(tag_from_annotations);
            for (manifest_digest, manifest) in self.resolve_oci(entry, "index.json", 0)? {
                match plans
                    .iter_mut()
                    .find(|p| p.manifest_digest == manifest_digest)
                {
                    Some(p) => p.tags.extend(tag.clone().filter(|t| !p.tags.contains(t))),
                    None => plans.push(Plan {
                        manifest_digest,
                        manifest,
                        tags: tag.clone().into_iter().collect(),
                    }),
                }
            }
        }
        Ok(plans)
    }

    /// The blob `d` descriptor `desc` (in `named_by`) names, checked to be in the store with
    /// the size the descriptor declares (a wrong size would only fail later, at a push).
    fn described_blob(&self, desc: &Descriptor, named_by: &str) -> Result<Digest> {
        let d =
            descriptor_digest(desc).map_err(|e| Error::BadArchive(format!("{named_by}: {e}")))?;
        let actual = match std::fs::metadata(self.blobs.path(&d)) {
            Ok(m) if m.is_file() => m.len(),
            _ => {
                return Err(Error::BadArchive(format!(
                    "{named_by} names blob {d}, which the archive does not hold"
                )));
            }
        };
        if actual != desc.size() {
            return Err(Error::BadArchive(format!(
                "{named_by} declares {} bytes for blob {d}, which has {actual}",
                desc.size()
            )));
        }
        Ok(d)
    }

    /// The image manifests an index entry leads to: itself, or for an index the manifest for
    /// this host's platform (every manifest when none says its platform). Every blob on the
    /// way must be in the store with the size its descriptor declares.
    fn resolve_oci(
        &self,
        entry: &Descriptor,
        named_by: &str,
        depth: usize,
    ) -> Result<Vec<(Digest, ImageManifest)>> {
        let d = self.described_blob(entry, named_by)?;
        let bytes = self.read_blob(&d.to_string())?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadArchive(format!("blob {d}: {e}")))?;
        let untyped = entry.media_type().as_ref().is_empty();
        let is_index =
            media::is_index(entry.media_type()) || (untyped && value.get("manifests").is_some());
        if is_index {
            if depth >= MAX_INDEX_DEPTH {
                return Err(Error::BadArchive(format!(
                    "image indexes nested deeper than {MAX_INDEX_DEPTH}"
                )));
            }
            let index = parse_index(&bytes, &format!("index {d}"))?;
            let host = Platform::host();
            let manifests = index.manifests();
            let chosen: Vec<&Descriptor> = if manifests.iter().all(|m| m.platform().is_none()) {
                manifests.iter().collect()
            } else {
                manifests
                    .iter()
                    .find(|m| {
                        m.platform().as_ref().is_some_and(|p| {
                            p.os() == host.os() && p.architecture() == host.architecture()
                        })
                    })
                    .into_iter()
                    .collect()
            };
            if chosen.is_empty() {
                return Err(Error::BadArchive(format!(
                    "index {d} has no image for {} (it has {})",
                    host.format(),
                    manifests
                        .iter()
                        .filter_map(|m| m.platform().as_ref().map(|p| p.format()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let mut out = Vec::new();
            for m in chosen {
                out.extend(self.resolve_oci(m, &format!("index {d}"), depth + 1)?);
            }
            return Ok(out);
        }
        let manifest: ImageManifest = serde_json::from_value(value)
            .map_err(|e| Error::BadArchive(format!("manifest {d}: {e}")))?;
        for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
            self.described_blob(blob, &format!("manifest {d}"))?;
        }
        Ok(vec![(d, manifest)])
    }
}

/// An image index of an archive (`index.json`, or a nested index), as oci-spec's type. Older
/// writers left out `schemaVersion` and the entries' `mediaType`, which the OCI spec requires:
/// those are filled in (2, and an empty type that [`ImageStore::resolve_oci`] tells by the
/// blob's content).
fn parse_index(bytes: &[u8], what: &str) -> Result<ImageIndex> {
    let bad = |e: serde_json::Error| Error::BadArchive(format!("{what}: {e}"));
    let mut v: Value = serde_json::from_slice(bytes).map_err(bad)?;
    if let Some(o) = v.as_object_mut() {
        o.entry("schemaVersion").or_insert(json!(2));
        if let Some(entries) = o.get_mut("manifests").and_then(Value::as_array_mut) {
            for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                e.entry("mediaType").or_insert(json!(""));
            }
        }
    }
    serde_json::from_value(v).map_err(bad)
}

/// A reader that notes whether reading failed (so a tar error can be told from a read error).
struct Tracked<'a, R> {
    inner: R,
    failed: &'a Cell<bool>,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        if r.as_ref()
            .is_err_and(|e| e.kind() != io::ErrorKind::Interrupted)
        {
            self.failed.set(true);
        }
        r
    }
}

fn truncated(path: &str) -> Error {
    Error::BadArchive(format!("{path} is cut short: truncated archive"))
}

/// `blobs/sha256/<hex>`.
fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Append a regular file of `size` bytes read from `data` (which must yield exactly that).
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: &mut dyn Read,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    // Exactly `size` bytes, so a source shorter than announced cannot shift the archive.
    let mut limited = data.take(size);
    let mut counting = Counting {
        inner: &mut limited,
        n: 0,
    };
    tar.append_data(&mut h, path, &mut counting)
        .map_err(Error::ArchiveWrite)?;
    if counting.n != size {
        return Err(Error::ArchiveWrite(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{path}: {} bytes of {size}", counting.n),
        )));
    }
    Ok(())
}

struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_cleaned() {
        assert_eq!(
            clean_path("./manifest.json").as_deref(),
            Some("manifest.json")
        );
        assert_eq!(clean_path("a/../b.tar").as_deref(), Some("b.tar"));
        assert_eq!(clean_path("x/../../etc").as_deref(), Some("etc"));
        assert_eq!(clean_path("./"), None);
    }

    #[test]
    fn names_from_annotations() {
        let a = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            tag_from_annotations(&a(&[("org.opencontainers.image.ref.name", "latest")])),
            None
        );
        assert_eq!(
            tag_from_annotations(&a(&[(
                "org.opencontainers.image.ref.name",
                "localhost/bb:1"
            )])),
            Some("localhost/bb:1".into())
        );
        assert_eq!(
            tag_from_annotations(&a(&[
                ("org.opencontainers.image.ref.name", "1.36"),
                ("io.containerd.image.name", "busybox:1.36"),
            ])),
            Some("docker.io/library/busybox:1.36".into())
        );
    }

    #[test]
    fn made_manifests_are_stable() {
        let c = Digest::of(b"config");
        let l = Digest::of(b"layer");
        let layer = || vec![descriptor(MediaType::ImageLayer, &l, 5).unwrap()];
        let (a, m) = make_manifest(&c, 6, layer()).unwrap();
        let (b, _) = make_manifest(&c, 6, layer()).unwrap();
        assert_eq!(a, b);
        assert_eq!(*m.layers()[0].media_type(), MediaType::ImageLayer);
        // The bytes berth has always written for such a manifest (its digest is the image's
        // name in registries and archives).
        assert_eq!(
            String::from_utf8(a).unwrap(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":6}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":5}}]}}"#
            )
        );
    }

    #[test]
    fn old_indexes_without_types_parse() {
        let d = Digest::of(b"m");
        let i = parse_index(
            format!(r#"{{"manifests":[{{"digest":"{d}","size":1}}]}}"#).as_bytes(),
            "index.json",
        )
        .unwrap();
        assert_eq!(i.manifests()[0].media_type().as_ref(), "");
        assert!(matches!(
            parse_index(b"[]", "index.json"),
            Err(Error::BadArchive(_))
        ));
    }
}
