//! The OCI distribution client: manifests and blobs over HTTP(S), with anonymous, Bearer-token
//! and Basic authentication. Blobs are handed over as streams ([`Client::blob_reader`]): the
//! image store's pull hashes and stores them (the one pull path).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use berth_store::Digest;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType, Platform};
use serde::Deserialize;

use crate::media;
use crate::platform::PlatformExt as _;
use crate::reference::Reference;

/// What can go wrong talking to a registry. Each message is whole (what was asked of which
/// registry, and why it failed, once): no variant returns a `source()`, so printing the chain
/// (anyhow's `{:#}`) does not repeat a cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry could not be reached.
    #[error("registry {registry} is unreachable: {why}")]
    Unreachable {
        /// host\[:port\].
        registry: String,
        /// The transport error.
        why: String,
    },
    /// Reading a response broke off (the connection failed or timed out part-way).
    #[error("reading {what} from {registry}: {why}")]
    ReadFailed {
        /// What was being read (`blob sha256:…`, `manifest …`).
        what: String,
        /// host\[:port\].
        registry: String,
        /// The transport's error.
        why: String,
    },
    /// A blob's download ended before the size its descriptor gives.
    #[error(
        "reading blob {digest} from {registry}: connection closed before the end ({read} of {size} bytes)"
    )]
    Cut {
        /// The blob.
        digest: Digest,
        /// host\[:port\].
        registry: String,
        /// Bytes received.
        read: u64,
        /// Bytes the descriptor announced.
        size: u64,
    },
    /// The registry answered with an error status.
    #[error("{what}: the registry answered {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// What was asked.
        what: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body (the registry's error JSON).
        body: String,
    },
    /// Authentication was refused.
    #[error("{registry}: authentication failed ({status}); check the credentials (berth login)")]
    Unauthorized {
        /// host\[:port\].
        registry: String,
        /// HTTP status.
        status: u16,
    },
    /// The registry wants credentials and none are set for it.
    #[error(
        "{registry}: authentication failed: the registry requires credentials and none are set for it (berth login {registry})"
    )]
    NoCredentials {
        /// host\[:port\].
        registry: String,
    },
    /// A blob to push is not in the local blob store (nothing was pushed).
    #[error("blob {digest} is not in the local store: nothing pushed")]
    BlobMissing {
        /// The blob.
        digest: Digest,
    },
    /// The registry refused an upload (a blob or a manifest).
    #[error("{what}: the registry refused the upload ({status}){}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    UploadRefused {
        /// What was being uploaded.
        what: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body (the registry's error JSON).
        body: String,
    },
    /// The registry stored something under another digest than berth computed.
    #[error("{what}: berth computed {expected} but the registry reports {actual}")]
    DigestMismatch {
        /// What was uploaded.
        what: String,
        /// The digest of the bytes sent.
        expected: String,
        /// The registry's Docker-Content-Digest.
        actual: String,
    },
    /// The request cannot be made as asked (refused before anything is sent).
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// The registry sent something berth does not understand.
    #[error("{0}")]
    Protocol(String),
    /// The manifest's media type is not an image manifest or index.
    #[error("unsupported manifest media type {0:?}")]
    UnknownMediaType(String),
    /// A manifest or index that does not parse (or names a digest berth refuses).
    #[error("{what}: {why}")]
    BadManifest {
        /// `manifest <reference>`, `index <digest>`…
        what: String,
        /// What is wrong.
        why: String,
    },
    /// No manifest in the index matches the platform.
    #[error("no image for platform {wanted} (the index has {have})")]
    NoPlatform {
        /// The platform asked for.
        wanted: String,
        /// The platforms offered.
        have: String,
    },
    /// Storing a blob failed (digest or size mismatch included).
    #[error(transparent)]
    Store(#[from] berth_store::Error),
}

/// Result with this module's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Credentials for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Registries spoken to in plain HTTP (besides localhost and 127.0.0.0/8, always allowed).
    pub insecure: Vec<String>,
    /// Credentials by registry host (as in [`Reference::registry`]: `docker.io` for Docker
    /// Hub); [`crate::credentials::CredentialsFile::all`] gives them in this form.
    pub credentials: HashMap<String, Credentials>,
    /// Blobs larger than this are pushed in chunks of this size (PATCH requests), smaller ones
    /// in one PUT. `None`: [`DEFAULT_CHUNK_SIZE`].
    pub chunk_size: Option<u64>,
}

/// The push chunk size when [`Options::chunk_size`] is not set: 16 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

/// A client for one or more registries. Tokens are cached per registry and scope.
pub struct Client {
    agent: ureq::Agent,
    opts: Options,
    tokens: Mutex<HashMap<(String, String), String>>,
}

/// The result of resolving a reference to one image manifest.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The image manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// Its bytes, as served (and stored).
    pub bytes: Vec<u8>,
    /// Parsed.
    pub manifest: ImageManifest,
    /// The index the reference named, when it named one (a multi-platform image) and the
    /// manifest was chosen from it for a platform.
    pub index: Option<Digest>,
}

impl Resolved {
    /// The digest the reference resolved to: the index's for a multi-platform image, else the
    /// manifest's. What Docker prints (`Digest: …`) and records (RepoDigests) for a pull.
    pub fn reference_digest(&self) -> &Digest {
        self.index.as_ref().unwrap_or(&self.digest)
    }
}

impl Error {
    /// The error for a failed read of blob `digest`'s download from `registry` after `read`
    /// of its `size` bytes: an end of the stream before the last byte is [`Error::Cut`],
    /// anything else [`Error::ReadFailed`].
    pub fn reading_blob(
        registry: &str,
        digest: &Digest,
        read: u64,
        size: u64,
        e: &std::io::Error,
    ) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof && read < size {
            Error::Cut {
                digest: digest.clone(),
                registry: registry.to_string(),
                read,
                size,
            }
        } else {
            Error::ReadFailed {
                what: format!("blob {digest}"),
                registry: registry.to_string(),
                why: e.to_string(),
            }
        }
    }
}

/// The digest of the blob `d` describes, as the blob store's [`Digest`]: only `sha256:` and
/// 64 hex digits, so a descriptor can never name a path.
pub fn descriptor_digest(d: &Descriptor) -> Result<Digest, berth_store::Error> {
    Digest::parse(d.digest().as_ref())
}

fn is_local(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// Who a request authenticates as: the registry (the key of its credentials and tokens) and
/// the token scope wanted (`repository:NAME:pull`, several separated by spaces, or none).
pub(crate) struct Auth<'a> {
    pub(crate) registry: &'a str,
    pub(crate) scope: String,
}

/// A request body, re-creatable so a request can be repeated after an auth challenge.
pub(crate) enum Body<'a> {
    /// No body.
    Empty,
    /// These bytes.
    Bytes(&'a [u8]),
    /// A section of a stored blob (opened afresh for each attempt, sent with its
    /// Content-Length).
    Blob(&'a crate::push::BlobSection<'a>),
}

/// An error status as [`Error::Status`], with the start of the registry's error body.
pub(crate) fn status_error(what: &str, resp: ureq::Response) -> Error {
    let status = resp.status();
    Error::Status {
        what: what.to_string(),
        status,
        body: error_body(resp),
    }
}

/// The start of a response body (a registry's error JSON), trimmed.
pub(crate) fn error_body(resp: ureq::Response) -> String {
    let mut body = Vec::new();
    let _ = resp.into_reader().take(300).read_to_end(&mut body);
    String::from_utf8_lossy(&body).trim().to_string()
}

impl Client {
    /// A client with these options.
    pub fn new(opts: Options) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .redirects(5)
            .build();
        Client {
            agent,
            opts,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// `http(s)://host`: plain HTTP for localhost, 127.0.0.0/8 and registries marked insecure.
    pub(crate) fn origin(&self, registry: &str, api_host: &str) -> String {
        let scheme = if is_local(api_host)
            || self
                .opts
                .insecure
                .iter()
                .any(|i| i == api_host || i == registry)
        {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{api_host}")
    }

    /// `http(s)://host/v2/<repository>`.
    pub(crate) fn base(&self, r: &Reference) -> String {
        format!(
            "{}/v2/{}",
            self.origin(&r.registry, r.api_host()),
            r.repository
        )
    }

    /// The options this client was made with.
    pub(crate) fn options(&self) -> &Options {
        &self.opts
    }

    /// GET with authentication; an error status is an error.
    fn get(
        &self,
        r: &Reference,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<ureq::Response> {
        let auth = Auth {
            registry: &r.registry,
            scope: format!("repository:{}:pull", r.repository),
        };
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let resp = self.send(&auth, "GET", url, &headers, &Body::Empty)?;
        if resp.status() >= 400 {
            return Err(status_error(what, resp));
        }
        Ok(resp)
    }

    /// One authenticated request: sent with the cached Authorization for the registry and
    /// scope, or anonymously; on a 401 the challenge is answered (a token or Basic
    /// credentials, then cached) and the request is sent once more. Every status except 401 and
    /// 403 (which are [`Error::Unauthorized`]) comes back as a response for the caller to judge.
    pub(crate) fn send(
        &self,
        auth: &Auth<'_>,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<ureq::Response> {
        let key = (auth.registry.to_string(), auth.scope.clone());
        let mut header = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned());
        for attempt in 0..2 {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(h) = &header {
                req = req.set("Authorization", h);
            }
            let sent = match body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::Blob(section) => {
                    let reader = section.open()?;
                    req.set("Content-Length", &section.len.to_string())
                        .send(reader)
                }
            };
            match sent {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if attempt == 0 => {
                    let challenge = resp
                        .header("WWW-Authenticate")
                        .unwrap_or_default()
                        .to_string();
                    let h = self.authenticate(auth.registry, &challenge, &auth.scope)?;
                    if let Ok(mut t) = self.tokens.lock() {
                        t.insert(key.clone(), h.clone());
                    }
                    header = Some(h);
                }
                Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                    return Err(Error::Unauthorized {
                        registry: auth.registry.to_string(),
                        status: code,
                    });
                }
                Err(ureq::Error::Status(_, resp)) => return Ok(resp),
                Err(e) => {
                    return Err(Error::Unreachable {
                        registry: auth.registry.to_string(),
                        why: e.to_string(),
                    });
                }
            }
        }
        Err(Error::Unauthorized {
            registry: auth.registry.to_string(),
            status: 401,
        })
    }

    /// The Authorization header answering a challenge for `scope` (space-separated scopes;
    /// empty for none, as a login asks).
    fn authenticate(&self, registry: &str, challenge: &str, scope: &str) -> Result<String> {
        let creds = self.opts.credentials.get(registry);
        let basic = |c: &Credentials| {
            let raw = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return creds.map(basic).ok_or_else(|| Error::NoCredentials {
                registry: registry.to_string(),
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Protocol(format!(
                "unsupported authentication challenge {challenge:?}"
            )));
        }
        let params = parse_challenge(params);
        let realm = params.get("realm").ok_or_else(|| {
            Error::Protocol(format!("Bearer challenge without realm: {challenge:?}"))
        })?;
        let mut req = self.agent.get(realm);
        for s in scope.split_whitespace() {
            req = req.query("scope", s);
        }
        if let Some(service) = params.get("service") {
            req = req.query("service", service);
        }
        if let Some(c) = creds {
            req = req.set("Authorization", &basic(c));
        }
        let resp = match req.call() {
            Ok(resp) => resp,
            Err(ureq::Error::Status(code, _)) => {
                return Err(Error::Unauthorized {
                    registry: registry.to_string(),
                    status: code,
                });
            }
            Err(e) => {
                return Err(Error::Unreachable {
                    registry: realm.clone(),
                    why: e.to_string(),
                });
            }
        };
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_reader(resp.into_reader().take(1024 * 1024))
            .map_err(|e| Error::Protocol(format!("token response from {realm}: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| Error::Protocol(format!("token response from {realm} has no token")))?;
        Ok(format!("Bearer {token}"))
    }

    /// Check that the registry accepts this client's credentials for it: `GET /v2/`, answering
    /// the challenge (a token for no scope, or Basic). `registry` is a host\[:port\] or a
    /// config.json key (`https://index.docker.io/v1/` is Docker Hub). A registry that asks for
    /// no authentication is accepted as it is.
    pub fn check_login(&self, registry: &str) -> Result<()> {
        let registry = crate::credentials::normalize_registry(registry);
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(Error::BadRequest(format!(
                "{registry:?} is not a registry host[:port]"
            )));
        }
        let api_host = if registry == crate::reference::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &registry
        };
        let url = format!("{}/v2/", self.origin(&registry, api_host));
        let auth = Auth {
            registry: &registry,
            scope: String::new(),
        };
        // A login is a fresh check, never a cached answer.
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(&(registry.clone(), String::new()));
        }
        let resp = self.send(&auth, "GET", &url, &[], &Body::Empty)?;
        if resp.status() >= 300 {
            return Err(status_error(&format!("login to {registry}"), resp));
        }
        Ok(())
    }

    /// Fetch the manifest `r` names; an index is resolved to the manifest for `platform`
    /// (and its digest kept in [`Resolved::index`]).
    pub fn resolve(&self, r: &Reference, platform: &Platform) -> Result<Resolved> {
        let accept = media::manifest_accept();
        let mut want = r.manifest_ref();
        let mut index = None;
        for _ in 0..2 {
            let url = format!("{}/manifests/{want}", self.base(r));
            let what = format!("manifest {r}");
            let resp = self.get(r, &url, Some(&accept), &what)?;
            let media_type = MediaType::from(
                resp.header("Content-Type")
                    .unwrap_or_default()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim(),
            );
            let mut bytes = Vec::new();
            resp.into_reader()
                .take(16 * 1024 * 1024)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::ReadFailed {
                    what: what.clone(),
                    registry: r.registry.clone(),
                    why: e.to_string(),
                })?;
            let digest = Digest::of(&bytes);
            if want.starts_with("sha256:") && want != digest.to_string() {
                return Err(Error::Protocol(format!(
                    "manifest {want} from {} hashes to {digest}: refused",
                    r.registry
                )));
            }
            let bad = |why: String| Error::BadManifest {
                what: format!("manifest {want} of {r}"),
                why,
            };
            if media::is_manifest(&media_type) {
                let manifest: ImageManifest =
                    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
                return Ok(Resolved {
                    digest,
                    media_type,
                    bytes,
                    manifest,
                    index,
                });
            }
            if !media::is_index(&media_type) {
                return Err(Error::UnknownMediaType(media_type.to_string()));
            }
            let list: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
            let chosen = list
                .manifests()
                .iter()
                .find(|m| m.platform().as_ref().is_some_and(|p| platform.matches(p)))
                .ok_or_else(|| Error::NoPlatform {
                    wanted: platform.format(),
                    have: list
                        .manifests()
                        .iter()
                        .filter_map(|m| m.platform().as_ref().map(|p| p.format()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            // Through the blob store's digest: only sha256 and hex ever goes into a URL.
            want = descriptor_digest(chosen)
                .map_err(|e| bad(e.to_string()))?
                .to_string();
            index = Some(digest);
        }
        Err(Error::Protocol(format!(
            "{r}: an index points to another index"
        )))
    }

    /// Open blob `digest` of `r`'s repository as a byte stream (authenticated like every
    /// request; an error status is an error). Nothing is verified here: the caller hashes what
    /// it reads (e.g. through [`berth_store::BlobStore::ingest`]) and trusts none of it before
    /// the digest matches. Read errors are the transport's ([`Error::reading_blob`] names
    /// them).
    pub fn blob_reader(
        &self,
        r: &Reference,
        digest: &Digest,
    ) -> Result<Box<dyn Read + Send + Sync + 'static>> {
        let url = format!("{}/blobs/{digest}", self.base(r));
        let resp = self.get(r, &url, None, &format!("blob {digest}"))?;
        Ok(resp.into_reader())
    }
}

/// `realm="…",service="…",scope="…"` into a map.
fn parse_challenge(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, after) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (&v[..end], &v[end..])
        };
        out.insert(k, val.to_string());
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(c["realm"], "https://auth.example/token");
        assert_eq!(c["service"], "registry.example");
        assert_eq!(c["scope"], "repository:a/b:pull");
    }

    #[test]
    fn errors_name_the_object_and_give_the_cause_once() {
        use std::error::Error as _;
        let d = Digest::of(b"blob");
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
        let cut = Error::reading_blob("127.0.0.1:5000", &d, 10, 20, &eof);
        assert_eq!(
            cut.to_string(),
            format!(
                "reading blob {d} from 127.0.0.1:5000: connection closed before the end (10 of 20 bytes)"
            )
        );
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let failed = Error::reading_blob("r:1", &d, 10, 20, &reset);
        assert_eq!(
            failed.to_string(),
            format!("reading blob {d} from r:1: reset by peer")
        );
        // A store error inside: its message carries its cause, and nothing repeats it.
        let store = Error::from(berth_store::Error::Io {
            op: "reading",
            path: "/x".into(),
            cause: std::io::Error::from_raw_os_error(5),
        });
        for e in [&cut, &failed, &store] {
            assert!(e.source().is_none(), "{e}: {:?}", e.source());
        }
        assert_eq!(
            store.to_string().matches("os error 5").count(),
            1,
            "{store}"
        );
    }
}
