//! Pushing an image from the blob store to a registry: every blob the registry does not have
//! yet (mounted from another repository of the same registry when one is named, else
//! uploaded whole or in chunks), then the manifest, so a manifest on the registry always has
//! its blobs.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use berth_store::{BlobStore, Digest};
use oci_spec::image::{Descriptor, ImageManifest, MediaType};

use crate::client::{
    Auth, Body, Client, DEFAULT_CHUNK_SIZE, Error, Result, descriptor_digest, error_body,
};
use crate::media;
use crate::reference::Reference;

/// How many blobs are uploaded at once.
const PARALLEL: usize = 4;

/// How often (in bytes sent) an upload reports [`PushEvent::Progress`].
const PROGRESS_EVERY: u64 = 512 * 1024;

/// An image to push: its manifest and the blobs it needs, all in the blob store.
#[derive(Debug, Clone)]
pub struct PushImage {
    /// The manifest's bytes, pushed as they are (its digest is their sha256).
    pub manifest: Vec<u8>,
    /// The manifest's media type (its Content-Type): an image manifest or index, OCI's or
    /// Docker's.
    pub media_type: MediaType,
    /// The blobs the manifest refers to (config and layers); each must be in the store.
    pub blobs: Vec<Descriptor>,
    /// Repositories of the same registry that may hold these blobs: each blob the target
    /// lacks is first mounted from them (in order), which needs no upload.
    pub mount_from: Vec<String>,
    /// Tags to put the manifest under besides the reference's own tag.
    pub extra_tags: Vec<String>,
}

impl PushImage {
    /// The image whose manifest is `manifest` (an image manifest of `media_type`): its blobs
    /// are the config and the layers it lists.
    pub fn from_manifest(manifest: Vec<u8>, media_type: &MediaType) -> Result<PushImage> {
        if !media::is_manifest(media_type) {
            return Err(Error::UnknownMediaType(media_type.to_string()));
        }
        let parsed: ImageManifest = serde_json::from_slice(&manifest)
            .map_err(|e| Error::BadRequest(format!("the manifest does not parse: {e}")))?;
        Ok(PushImage {
            manifest,
            media_type: media_type.clone(),
            blobs: std::iter::once(parsed.config().clone())
                .chain(parsed.layers().iter().cloned())
                .collect(),
            mount_from: Vec::new(),
            extra_tags: Vec::new(),
        })
    }
}

/// What a push reports as it goes (from several threads: blobs are pushed in parallel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// The registry has the blob already in the target repository: not sent ("Layer already
    /// exists").
    Exists {
        /// The blob.
        digest: Digest,
    },
    /// The blob was mounted from another repository of the registry: not sent.
    Mounted {
        /// The blob.
        digest: Digest,
        /// The repository it was mounted from.
        from: String,
    },
    /// Bytes of a blob sent so far.
    Progress {
        /// The blob.
        digest: Digest,
        /// Bytes sent.
        sent: u64,
        /// The blob's size.
        total: u64,
    },
    /// A blob was uploaded and the registry confirmed it.
    Pushed {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The number of chunks (PATCH requests) it went in; 0 for one PUT.
        chunks: u32,
    },
    /// The manifest was put under a tag (or its digest, for a push by digest).
    ManifestPushed {
        /// The tag, or the digest.
        reference: String,
        /// The manifest's digest.
        digest: Digest,
    },
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
    /// The tags it was put under (empty for a push by digest).
    pub tags: Vec<String>,
}

/// How one blob got to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPushed {
    /// It was there already.
    Exists,
    /// Mounted from this repository.
    Mounted(String),
    /// Uploaded, in this many chunks (0: one PUT).
    Uploaded {
        /// The number of PATCH requests.
        chunks: u32,
    },
}

/// `loc` (a Location header) as an absolute URL: absolute as is, else on `origin`.
fn absolute(origin: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else if loc.starts_with('/') {
        format!("{origin}{loc}")
    } else {
        format!("{origin}/{loc}")
    }
}

/// `url` with one more query parameter.
fn with_query(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Whether `repo` is a valid repository name.
fn repository_ok(registry: &str, repo: &str) -> bool {
    Reference::parse(&format!("{registry}/{repo}")).is_ok_and(|r| r.repository == repo)
}

/// Counts the bytes read, reporting progress every [`PROGRESS_EVERY`] and at the end.
struct Counting<'a, R> {
    inner: R,
    sent: u64,
    reported: u64,
    total: u64,
    report: &'a dyn Fn(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        if self.sent - self.reported >= PROGRESS_EVERY || (n > 0 && self.sent == self.total) {
            self.reported = self.sent;
            (self.report)(self.sent);
        }
        Ok(n)
    }
}

/// Bytes `[offset, offset + len)` of a stored blob, as a request body.
pub(crate) struct BlobSection<'a> {
    pub(crate) store: &'a BlobStore,
    pub(crate) digest: &'a Digest,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// The blob's size.
    pub(crate) total: u64,
    /// Told the bytes of the blob sent so far.
    pub(crate) report: &'a dyn Fn(u64),
}

impl<'a> BlobSection<'a> {
    /// A reader of the section, from its start.
    pub(crate) fn open(&self) -> Result<impl Read + 'a> {
        let mut f = self.store.open_blob(self.digest)?;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|cause| berth_store::Error::Io {
                op: "reading",
                path: self.store.path(self.digest),
                cause,
            })?;
        Ok(Counting {
            inner: f.take(self.len),
            sent: self.offset,
            reported: self.offset,
            total: self.total,
            report: self.report,
        })
    }
}

impl Client {
    /// Push `image` to `r`: every blob the repository lacks, then the manifest under `r`'s
    /// tag (`latest` if it has neither tag nor digest) and the extra tags, or under its digest
    /// when `r` names one (which must be the manifest's). Every blob is checked to be in
    /// `store` with its size before anything is sent, so a missing blob pushes nothing.
    /// `progress` hears about each blob and the manifest.
    pub fn push(
        &self,
        r: &Reference,
        image: &PushImage,
        store: &BlobStore,
        progress: &(dyn Fn(PushEvent) + Sync),
    ) -> Result<Pushed> {
        if !media::is_manifest(&image.media_type) && !media::is_index(&image.media_type) {
            return Err(Error::UnknownMediaType(image.media_type.to_string()));
        }
        let digest = Digest::of(&image.manifest);
        if let Some(want) = &r.digest
            && *want != digest
        {
            return Err(Error::BadRequest(format!(
                "{r} names digest {want} but the manifest's is {digest}"
            )));
        }
        for t in &image.extra_tags {
            let parsed = Reference::parse(&format!("{}/{}:{t}", r.registry, r.repository));
            if !parsed.is_ok_and(|p| p.tag.as_deref() == Some(t.as_str()) && p.digest.is_none()) {
                return Err(Error::BadRequest(format!("{t:?} is not a valid tag")));
            }
        }
        for m in &image.mount_from {
            if !repository_ok(&r.registry, m) {
                return Err(Error::BadRequest(format!(
                    "mount source {m:?} is not a repository name"
                )));
            }
        }
        // Every blob present, with its size, before anything is sent.
        let mut seen = HashSet::new();
        let mut blobs = Vec::new();
        for d in &image.blobs {
            let dg = descriptor_digest(d)?;
            let meta = std::fs::metadata(store.path(&dg));
            match meta {
                Ok(m) if m.is_file() => {
                    if m.len() != d.size() {
                        return Err(berth_store::Error::SizeMismatch {
                            digest: dg,
                            expected: d.size(),
                            actual: m.len(),
                        }
                        .into());
                    }
                }
                _ => return Err(Error::BlobMissing { digest: dg }),
            }
            if seen.insert(dg.clone()) {
                blobs.push((dg, d.size()));
            }
        }

        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..blobs.len().clamp(1, PARALLEL) {
                s.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((d, size)) = blobs.get(i) else { break };
                        if let Err(e) =
                            self.push_blob(r, d, *size, &image.mount_from, store, progress)
                        {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }

        // The manifest last: once it is there, so are its blobs.
        let mut tags = Vec::new();
        if let Some(t) = r.tag_or_latest() {
            tags.push(t.to_string());
        }
        for t in &image.extra_tags {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let targets = if tags.is_empty() {
            vec![digest.to_string()]
        } else {
            tags.clone()
        };
        for t in &targets {
            self.put_manifest(r, t, image, &digest)?;
            progress(PushEvent::ManifestPushed {
                reference: t.clone(),
                digest: digest.clone(),
            });
        }
        Ok(Pushed {
            digest,
            size: image.manifest.len() as u64,
            tags,
        })
    }

    fn push_auth<'a>(&self, r: &'a Reference, mount_from: &[String]) -> Auth<'a> {
        let mut scope = format!("repository:{}:pull,push", r.repository);
        for (i, m) in mount_from.iter().enumerate() {
            if *m != r.repository && !mount_from[..i].contains(m) {
                scope.push_str(&format!(" repository:{m}:pull"));
            }
        }
        Auth {
            registry: &r.registry,
            scope,
        }
    }

    fn put_manifest(
        &self,
        r: &Reference,
        tag: &str,
        image: &PushImage,
        digest: &Digest,
    ) -> Result<()> {
        let auth = self.push_auth(r, &image.mount_from);
        let url = format!("{}/manifests/{tag}", self.base(r));
        let what = format!("manifest {}/{}:{tag}", r.registry, r.repository);
        let resp = self.send(
            &auth,
            "PUT",
            &url,
            &[("Content-Type", image.media_type.as_ref())],
            &Body::Bytes(&image.manifest),
        )?;
        if !(200..300).contains(&resp.status()) {
            return Err(refused(&what, resp));
        }
        check_digest(&what, digest, &resp)
    }

    /// Push one blob of the store to `r`'s repository unless it is there: mounted from one of
    /// `mount_from` (repositories of the same registry) if one has it, else uploaded (in
    /// chunks above the chunk size). The blob must be in `store` with `size` bytes.
    pub fn push_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        mount_from: &[String],
        store: &BlobStore,
        progress: &(dyn Fn(PushEvent) + Sync),
    ) -> Result<BlobPushed> {
        if let Some(m) = mount_from.iter().find(|m| !repository_ok(&r.registry, m)) {
            return Err(Error::BadRequest(format!(
                "mount source {m:?} is not a repository name"
            )));
        }
        if !store.contains(digest) {
            return Err(Error::BlobMissing {
                digest: digest.clone(),
            });
        }
        let auth = self.push_auth(r, mount_from);
        let base = self.base(r);
        let origin = self.origin(&r.registry, r.api_host());
        let what = format!("blob {digest}");

        let head = self.send(
            &auth,
            "HEAD",
            &format!("{base}/blobs/{digest}"),
            &[],
            &Body::Empty,
        )?;
        match head.status() {
            200..=299 => {
                progress(PushEvent::Exists {
                    digest: digest.clone(),
                });
                return Ok(BlobPushed::Exists);
            }
            404 => {}
            _ => return Err(crate::client::status_error(&what, head)),
        }

        // A mount, else an upload session (a failed mount starts one).
        let sources: Vec<&String> = mount_from.iter().filter(|m| **m != r.repository).collect();
        let mut location = None;
        for (i, from) in sources.iter().enumerate() {
            let url = format!("{base}/blobs/uploads/?mount={digest}&from={from}");
            let resp = self.send(
                &auth,
                "POST",
                &url,
                &[("Content-Length", "0")],
                &Body::Empty,
            )?;
            match resp.status() {
                201 => {
                    progress(PushEvent::Mounted {
                        digest: digest.clone(),
                        from: from.to_string(),
                    });
                    return Ok(BlobPushed::Mounted(from.to_string()));
                }
                202 => {
                    let loc = upload_location(&what, &origin, &resp)?;
                    if i + 1 < sources.len() {
                        // Another source to try: drop this session (best effort).
                        let _ = self.send(&auth, "DELETE", &loc, &[], &Body::Empty);
                    } else {
                        location = Some(loc);
                    }
                }
                _ => return Err(refused(&what, resp)),
            }
        }
        let mut location = match location {
            Some(l) => l,
            None => {
                let resp = self.send(
                    &auth,
                    "POST",
                    &format!("{base}/blobs/uploads/"),
                    &[("Content-Length", "0")],
                    &Body::Empty,
                )?;
                if resp.status() != 202 {
                    return Err(refused(&what, resp));
                }
                upload_location(&what, &origin, &resp)?
            }
        };

        let report = |sent| {
            progress(PushEvent::Progress {
                digest: digest.clone(),
                sent,
                total: size,
            })
        };
        let section = |offset: u64, len: u64| BlobSection {
            store,
            digest,
            offset,
            len,
            total: size,
            report: &report,
        };
        let octets = ("Content-Type", "application/octet-stream");
        let chunk = self
            .options()
            .chunk_size
            .unwrap_or(DEFAULT_CHUNK_SIZE)
            .max(1);
        let mut chunks = 0u32;
        let done = if size <= chunk {
            let open = section(0, size);
            let url = with_query(&location, &format!("digest={digest}"));
            self.send(&auth, "PUT", &url, &[octets], &Body::Blob(&open))?
        } else {
            let mut offset = 0;
            while offset < size {
                let len = chunk.min(size - offset);
                let range = format!("{offset}-{}", offset + len - 1);
                let open = section(offset, len);
                let resp = self.send(
                    &auth,
                    "PATCH",
                    &location,
                    &[octets, ("Content-Range", &range)],
                    &Body::Blob(&open),
                )?;
                if resp.status() != 202 {
                    return Err(refused(&what, resp));
                }
                // The registry says how much it has: it must be all we sent.
                if let Some(have) = resp.header("Range")
                    && have.trim() != format!("0-{}", offset + len - 1)
                {
                    return Err(Error::Protocol(format!(
                        "{what}: after sending bytes {range} the registry has {have:?}"
                    )));
                }
                location = upload_location(&what, &origin, &resp)?;
                offset += len;
                chunks += 1;
            }
            let url = with_query(&location, &format!("digest={digest}"));
            self.send(&auth, "PUT", &url, &[("Content-Length", "0")], &Body::Empty)?
        };
        if !(200..300).contains(&done.status()) {
            return Err(refused(&what, done));
        }
        check_digest(&what, digest, &done)?;
        progress(PushEvent::Pushed {
            digest: digest.clone(),
            size,
            chunks,
        });
        Ok(BlobPushed::Uploaded { chunks })
    }
}

/// An upload the registry refused, with its error body.
fn refused(what: &str, resp: ureq::Response) -> Error {
    let status = resp.status();
    Error::UploadRefused {
        what: what.to_string(),
        status,
        body: error_body(resp),
    }
}

/// The upload session's URL from a response's Location.
fn upload_location(what: &str, origin: &str, resp: &ureq::Response) -> Result<String> {
    resp.header("Location")
        .filter(|l| !l.trim().is_empty())
        .map(|l| absolute(origin, l.trim()))
        .ok_or_else(|| Error::Protocol(format!("{what}: the registry gave no upload Location")))
}

/// The registry's Docker-Content-Digest, if it sent one, must be `want`.
fn check_digest(what: &str, want: &Digest, resp: &ureq::Response) -> Result<()> {
    match resp.header("Docker-Content-Digest").map(str::trim) {
        Some(got) if !got.is_empty() && got != want.to_string() => Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: want.to_string(),
            actual: got.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_queries() {
        assert_eq!(
            absolute("http://h:1", "/v2/a/blobs/uploads/x?_state=y"),
            "http://h:1/v2/a/blobs/uploads/x?_state=y"
        );
        assert_eq!(absolute("http://h:1", "https://o/u"), "https://o/u");
        assert_eq!(
            with_query("http://h/u?a=b", "digest=d"),
            "http://h/u?a=b&digest=d"
        );
        assert_eq!(with_query("http://h/u", "digest=d"), "http://h/u?digest=d");
        assert!(repository_ok("127.0.0.1:5000", "a/b"));
        assert!(!repository_ok("127.0.0.1:5000", "A"));
        assert!(!repository_ok("127.0.0.1:5000", "a&b=c"));
        assert!(!repository_ok("127.0.0.1:5000", "a:b"));
    }

    #[test]
    fn push_scopes_ask_pull_on_mount_sources() {
        let client = Client::new(crate::Options::default());
        let r = Reference::parse("registry.example/team/app:1").unwrap();
        let auth = client.push_auth(&r, &["base/os".into(), "team/app".into(), "base/os".into()]);
        assert_eq!(auth.registry, "registry.example");
        assert_eq!(
            auth.scope,
            "repository:team/app:pull,push repository:base/os:pull"
        );
    }

    #[test]
    fn from_manifest_lists_config_and_layers() {
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{a}","size":1}},"layers":[{{"mediaType":"l","digest":"{b}","size":2}}]}}"#
        );
        let p =
            PushImage::from_manifest(m.clone().into_bytes(), &MediaType::ImageManifest).unwrap();
        assert_eq!(
            p.blobs
                .iter()
                .map(|d| descriptor_digest(d).unwrap())
                .collect::<Vec<_>>(),
            [a, b]
        );
        let docker = MediaType::from(media::DOCKER_MANIFEST);
        assert!(PushImage::from_manifest(m.clone().into_bytes(), &docker).is_ok());
        assert!(PushImage::from_manifest(m.into_bytes(), &MediaType::ImageIndex).is_err());
        assert!(PushImage::from_manifest(b"{".to_vec(), &MediaType::ImageManifest).is_err());
    }
}
