//! Helpers shared by the image store's test suites: small images made here (layers, configs,
//! OCI archives, docker-archives), stores in temporary directories, what is on disk.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_image::config::Overrides;
use berth_image::{ImageRecord, ImageStore};
use berth_registry::{Platform, PlatformExt, Reference};
use berth_testkit::{Berth, RuntimeRoot, unique};
use serde_json::{Value, json};
/// `sha256:<hex>` of bytes.
pub fn sha(b: &[u8]) -> String {
    berth_store::Digest::of(b).to_string()
}

/// The hex part of a digest.
pub fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

/// A store in a fresh temporary directory.
pub fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::Builder::new()
        .prefix("berth-image-")
        .tempdir()
        .expect("tempdir");
    let s = ImageStore::open(dir.path()).expect("open store");
    (dir, s)
}

/// An uncompressed layer tar holding these files (parents made on the way).
pub fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    berth_testkit::tar::Layer::new().files(files).tar()
}

/// How a test image's layer blobs are compressed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

pub fn compress(c: Comp, data: &[u8]) -> Vec<u8> {
    match c {
        Comp::None => data.to_vec(),
        Comp::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(data).expect("gzip");
            gz.finish().expect("gzip")
        }
        Comp::Zstd => zstd::encode_all(data, 1).expect("zstd"),
    }
}

/// An image made here: layers (uncompressed tars) and the config without its rootfs.
#[derive(Clone)]
pub struct TestImage {
    pub layers: Vec<Vec<u8>>,
    pub config: Value,
    pub comp: Comp,
    /// Annotations of its `index.json` entry.
    pub annotations: Vec<(String, String)>,
}

/// The blobs of a built image.
pub struct Built {
    /// (digest, bytes) of every blob: layers, config, manifest.
    pub blobs: Vec<(String, Vec<u8>)>,
    pub config_digest: String,
    pub manifest_digest: String,
    pub manifest_size: usize,
    pub layer_digests: Vec<String>,
    pub diff_ids: Vec<String>,
}

impl TestImage {
    /// An image of these layers for this host, running `sh`, with a label making it unique.
    pub fn new(layers: Vec<Vec<u8>>, label: &str) -> TestImage {
        let host = Platform::host();
        TestImage {
            layers,
            config: json!({
                "architecture": host.architecture().to_string(),
                "os": "linux",
                "created": "2026-01-02T03:04:05Z",
                "config": {"Cmd": ["sh"], "Labels": {"test": label}},
            }),
            comp: Comp::Gzip,
            annotations: Vec::new(),
        }
    }

    /// Name it in `index.json` as `org.opencontainers.image.ref.name`.
    pub fn named(mut self, name: &str) -> TestImage {
        self.annotations
            .push(("org.opencontainers.image.ref.name".into(), name.into()));
        self
    }

    pub fn build(&self) -> Built {
        let mut blobs = Vec::new();
        let mut layer_descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut layer_digests = Vec::new();
        for l in &self.layers {
            diff_ids.push(sha(l));
            let c = compress(self.comp, l);
            let d = sha(&c);
            let media = match self.comp {
                Comp::None => "application/vnd.oci.image.layer.v1.tar",
                Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            layer_descs.push(json!({"mediaType": media, "digest": d, "size": c.len()}));
            layer_digests.push(d.clone());
            blobs.push((d, c));
        }
        let mut config = self.config.clone();
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        let config = serde_json::to_vec(&config).expect("json");
        let config_digest = sha(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": layer_descs,
        }))
        .expect("json");
        let manifest_digest = sha(&manifest);
        let manifest_size = manifest.len();
        blobs.push((config_digest.clone(), config));
        blobs.push((manifest_digest.clone(), manifest));
        Built {
            blobs,
            config_digest,
            manifest_digest,
            manifest_size,
            layer_digests,
            diff_ids,
        }
    }
}

/// A tar of these (path, bytes) files, in this order.
pub fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, &content[..]).expect("tar");
    }
    b.into_inner().expect("tar")
}

/// The files of an OCI archive holding these images (index.json first, blobs after).
pub fn oci_files(images: &[TestImage]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut manifests = Vec::new();
    let mut seen = BTreeSet::new();
    let mut blobs = Vec::new();
    for img in images {
        let b = img.build();
        let mut desc = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": b.manifest_digest, "size": b.manifest_size,
        });
        if !img.annotations.is_empty() {
            desc["annotations"] = img
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        manifests.push(desc);
        for (d, bytes) in b.blobs {
            if seen.insert(d.clone()) {
                blobs.push((format!("blobs/sha256/{}", hex(&d)), bytes));
            }
        }
    }
    files.push((
        "index.json".into(),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).expect("json"),
    ));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    files.extend(blobs);
    files
}

/// An OCI archive (tar) holding these images.
pub fn oci_archive(images: &[TestImage]) -> Vec<u8> {
    tar_of(&oci_files(images))
}

/// Every blob in the store.
pub fn blobs(s: &ImageStore) -> BTreeSet<String> {
    s.blobs()
        .list()
        .expect("list")
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// Every unpacked layer directory (diff IDs).
pub fn layer_dirs(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("layers"))
        .expect("layers dir")
        .flatten()
        .map(|e| {
            e.file_name()
                .to_string_lossy()
                .replacen("sha256-", "sha256:", 1)
        })
        .collect()
}

/// Run `/bin/busybox ARGS` chrooted into `root`; its stdout.
pub fn run_in(root: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("chroot")
        .arg(root)
        .arg("/bin/busybox")
        .args(args)
        .output()
        .expect("chroot");
    assert!(
        out.status.success(),
        "busybox {args:?} in {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory for container root filesystems under a store root.
pub fn rootfs_dir(root: &Path, name: &str) -> PathBuf {
    root.join(format!("rootfs-{name}"))
}

// ---- root filesystems and bundles (bundle.rs, commit.rs) ----

/// Store an image of these layers (uncompressed tars) with this config (its rootfs filled in
/// here), tagged `tag`.
pub fn add_image(s: &ImageStore, layers: &[Vec<u8>], mut config: Value, tag: &str) -> ImageRecord {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let gz = gzip(l);
        let d = s.blobs().put_bytes(&gz).unwrap();
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": gz.len()}));
        diff_ids.push(sha(l));
    }
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    if config.get("architecture").is_none() {
        config["architecture"] = json!(Platform::host().architecture().to_string());
        config["os"] = json!("linux");
    }
    let cfg = serde_json::to_vec(&config).unwrap();
    let cd = s.blobs().put_bytes(&cfg).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cfg.len()},
        "layers": descs,
    }))
    .unwrap();
    let md = s.blobs().put_bytes(&manifest).unwrap();
    let m: berth_registry::ImageManifest = serde_json::from_slice(&manifest).unwrap();
    let tag = Reference::parse(tag).unwrap().to_string();
    s.add_image(&md, &m, Some(&tag)).unwrap()
}

/// The berth binary next to the test binaries (built if missing).
pub fn berth_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("berth");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let st = std::process::Command::new(cargo)
            .args(["build", "-p", "berth"])
            .current_dir(ws)
            .status()
            .unwrap();
        assert!(st.success(), "cargo build -p berth");
    }
    assert!(bin.exists(), "{} (cargo build -p berth)", bin.display());
    bin
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix)))
        .map(str::to_string)
        .collect()
}

/// Run the bundle with `berth runtime run`; (exit status, stdout, stderr).
pub fn run_bundle(dir: &Path) -> (i32, String, String) {
    let root = RuntimeRoot::new();
    let berth = Berth::new(berth_bin(), &root);
    let id = unique("bundle");
    let out = berth.run(&["run", "--bundle", dir.to_str().unwrap(), &id]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn sh(script: &str) -> Overrides {
    Overrides {
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}
