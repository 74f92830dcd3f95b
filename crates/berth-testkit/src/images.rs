//! Image fixtures: a real registry (Debian's `docker-registry`) on 127.0.0.1 with its own port
//! and storage, and OCI image layouts built from the busybox fixture.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A `docker-registry` serving plain HTTP on 127.0.0.1, stopped (and its storage removed) on
/// drop.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The network namespace it serves in (None: the test's own).
    pub netns: Option<PathBuf>,
    child: Child,
    /// The token server of a registry with token authentication.
    token: Option<Child>,
    _dir: tempfile::TempDir,
}

/// How a test registry authenticates.
enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Token(&'a str, &'a str),
}

impl Registry {
    /// Start a registry on a free port and wait until it answers `/v2/`.
    pub fn start() -> Registry {
        Registry::start_with(Auth::None, None)
    }

    /// A registry serving on 127.0.0.1 of the network namespace `netns` (a test daemon's).
    pub fn start_in(netns: Option<PathBuf>) -> Registry {
        Registry::start_with(Auth::None, netns)
    }

    /// Connect to it (from inside its namespace).
    fn connect(&self) -> std::io::Result<TcpStream> {
        match &self.netns {
            Some(ns) => crate::in_netns(ns, || TcpStream::connect(&self.addr)),
            None => TcpStream::connect(&self.addr),
        }
    }

    /// A command run where the registry is reachable.
    pub fn command(&self, prog: &str) -> Command {
        net_command(self.netns.as_deref(), prog)
    }

    /// A registry that wants HTTP Basic authentication as `user`/`password` (htpasswd, bcrypt
    /// hash made with Python's crypt module).
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Auth::Basic(user, password), None)
    }

    /// A registry with token authentication (as Docker Hub and most registries): it sends
    /// clients to a token server (`src/scripts/token-server.py`, Debian's python3 with
    /// python3-cryptography) whose ES256 tokens it verifies. `user`/`password` get pull and
    /// push, anonymous clients pull only. [`Registry::token_requests`] tells what was asked.
    pub fn start_with_token_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Auth::Token(user, password), None)
    }

    /// The token server's requests so far, one line each: `USER SCOPE…` (`anonymous` without
    /// credentials), or `refused`.
    pub fn token_requests(&self) -> Vec<String> {
        std::fs::read_to_string(self._dir.path().join("tokens.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn start_token_server(dir: &Path, user: &str, password: &str) -> (Child, String, PathBuf) {
        let script = dir.join("token-server.py");
        std::fs::write(&script, include_str!("scripts/token-server.py")).expect("token server");
        let (cert, port_file) = (dir.join("token.pem"), dir.join("token.port"));
        let log = std::fs::File::create(dir.join("token-server.log")).expect("log");
        let child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&cert)
            .arg(&port_file)
            .args([user, password, "berth-test-registry", "berth-test-issuer"])
            .arg(dir.join("tokens.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("starting the token server (apt-get install python3-cryptography)");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "the token server did not start: {}",
                std::fs::read_to_string(dir.join("token-server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (
            child,
            format!("http://127.0.0.1:{}/token", port.trim()),
            cert,
        )
    }

    fn start_with(auth: Auth<'_>, netns: Option<PathBuf>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("tempdir");
        // A free port: bind port 0, note it, let it go.
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port()
        };
        let port = match &netns {
            Some(ns) => crate::in_netns(ns, free),
            None => free(),
        };
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut token = None;
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{}",
                dir.path().join("storage").display(),
                match &auth {
                    Auth::None => String::new(),
                    Auth::Basic(user, password) => {
                        let out = Command::new("python3")
                            .args(["-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))", password])
                            .output()
                            .expect("python3 for a bcrypt hash");
                        let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
                        let file = dir.path().join("htpasswd");
                        std::fs::write(&file, format!("{user}:{hash}\n")).expect("htpasswd");
                        format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", file.display())
                    }
                    Auth::Token(user, password) => {
                        let (child, realm, cert) = Registry::start_token_server(dir.path(), user, password);
                        token = Some(child);
                        format!(
                            "auth:\n  token:\n    realm: {realm}\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
                            cert.display()
                        )
                    }
                }
            ),
        )
        .expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = net_command(netns.as_deref(), "docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry (apt-get install docker-registry)");
        let r = Registry {
            addr,
            netns,
            child,
            token,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = if matches!(auth, Auth::None) { 200 } else { 401 };
        while r.get("/v2/").map(|(s, _)| s) != Some(ready) {
            assert!(
                Instant::now() < deadline,
                "the registry did not come up on {}",
                r.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// PUT a manifest (or index) `bytes` of `media_type` as `repo:reference`; the status.
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> u16 {
        let mut s = self.connect().expect("connect");
        write!(
            s,
            "PUT /v2/{repo}/manifests/{reference} HTTP/1.0\r\nHost: {}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            bytes.len()
        )
        .expect("write");
        s.write_all(bytes).expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        resp.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// A plain HTTP GET accepting every manifest type; (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = self.connect().ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: {}\r\n\r\n",
            self.addr, MANIFEST_TYPES
        )
        .ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let status = resp.split_whitespace().nth(1)?.parse().ok()?;
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.child).chain(self.token.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every manifest media type, for an Accept header.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn sha256(b: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

/// A tar (uncompressed) of the directory `root`, entries relative to it, in a stable order.
pub fn tar_dir(root: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(".", root).expect("tar");
    b.into_inner().expect("tar")
}

/// Write one image (layer, config, manifest) into the layout's blobs for `arch`; returns the
/// manifest's descriptor (JSON) with its platform.
fn write_image(dir: &Path, arch: &str, rootfs: &Path, cmd: &[&str]) -> Value {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| -> String {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).expect("blob");
        d
    };
    let tar = tar_dir(rootfs);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    let layer = gz.finish().expect("gzip");
    let layer_digest = put(&layer);
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
        "history": [{"created_by": "berth-testkit: busybox", "created": "2026-01-01T00:00:00Z"}]
    });
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = put(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}]
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(&manifest), "size": manifest.len(),
        "platform": {"os": "linux", "architecture": arch}
    })
}

fn write_index_json(dir: &Path, top: Value, tag: &str) {
    let mut top = top;
    if let Some(o) = top.as_object_mut() {
        o.remove("platform");
    }
    top["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    let index = json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
}

/// Write an OCI image layout at `dir` holding one image, tagged `tag`, whose single layer is
/// the tree at `rootfs`, with the process `cmd`. Returns the manifest's digest.
pub fn oci_layout(dir: &Path, tag: &str, rootfs: &Path, cmd: &[&str]) -> String {
    let desc = oci_layout_for(dir, tag, "amd64", rootfs, cmd);
    desc["digest"].as_str().expect("digest").to_string()
}

/// As [`oci_layout`], for architecture `arch`; returns the manifest's descriptor (with its
/// platform), ready to go into an image index.
pub fn oci_layout_for(dir: &Path, tag: &str, arch: &str, rootfs: &Path, cmd: &[&str]) -> Value {
    let desc = write_image(dir, arch, rootfs, cmd);
    write_index_json(dir, desc.clone(), tag);
    desc
}

/// An OCI image index over these manifest descriptors.
pub fn image_index(manifests: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    }))
    .expect("json")
}

/// The busybox fixture as an OCI layout in a new temporary directory (tag `latest`).
pub fn busybox_layout() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::Builder::new()
        .prefix("berth-oci-")
        .tempdir()
        .expect("tempdir");
    let layout = dir.path().join("busybox");
    let digest = oci_layout(&layout, "latest", &crate::busybox_rootfs(), &["sh"]);
    (dir, layout, digest)
}

/// `skopeo copy` between two transports, plain HTTP allowed; panics with skopeo's output on
/// failure.
pub fn skopeo_copy(from: &str, to: &str) {
    skopeo_copy_with(from, to, &[]);
}

/// `prog`, run in the network namespace `netns` if there is one.
pub fn net_command(netns: Option<&Path>, prog: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg("--").arg(prog);
            c
        }
        None => Command::new(prog),
    }
}

/// `skopeo copy` with extra options (e.g. `--dest-creds user:pass`).
pub fn skopeo_copy_with(from: &str, to: &str, extra: &[&str]) {
    skopeo_copy_in(None, from, to, extra)
}

/// `skopeo copy` run in the network namespace `netns` (where the registry is).
pub fn skopeo_copy_in(netns: Option<&Path>, from: &str, to: &str, extra: &[&str]) {
    let mut args = vec![
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ];
    args.extend_from_slice(extra);
    args.extend([from, to]);
    let o = net_command(netns, "skopeo")
        .args(&args)
        .output()
        .expect("running skopeo (apt-get install skopeo)");
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Parse a registry JSON body.
pub fn json_body(body: &str) -> Value {
    serde_json::from_str(body).expect("registry JSON")
}

/// Build the busybox layout and push it with skopeo as `repo:tag` on `reg`; returns the
/// manifest digest.
pub fn push_busybox(reg: &Registry, repo_tag: &str) -> String {
    push_busybox_as(reg, repo_tag, None)
}

/// As [`push_busybox`], logging in to the registry as `user:password`.
pub fn push_busybox_as(reg: &Registry, repo_tag: &str, creds: Option<&str>) -> String {
    let (_tmp, layout, digest) = busybox_layout();
    let extra: Vec<&str> = creds.map(|c| vec!["--dest-creds", c]).unwrap_or_default();
    skopeo_copy_in(
        reg.netns.as_deref(),
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/{repo_tag}", reg.addr),
        &extra,
    );
    digest
}
