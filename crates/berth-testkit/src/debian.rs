//! Debian image fixtures: a minbase bookworm root filesystem made by `debootstrap` (cached once
//! per machine) and one with a C compiler ([`debian_gcc`], for build tests), multi-layer OCI
//! image layouts built from it (a package installed in a layer of its own, whiteouts and an
//! opaque directory in another), and the benchmark images.
//!
//! The roots are built once per machine into [`cache_dir`] (`/var/cache/berth-test` unless
//! `$BERTH_TEST_CACHE` says otherwise), under a file lock so parallel test processes wait for
//! one build (debootstrap takes half a minute to a few minutes). Building needs
//! deb.debian.org: where the tests run without a network (`scripts/test.sh` runs them in a
//! network namespace of their own), build them first with
//! `cargo run -p berth-testkit --example debian-base`.
//!
//! Layers are written with the system's `tar`, `gzip`/`zstd` and `sha256sum` (fast in debug
//! builds, where the tests run), layouts are pushed with skopeo.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::images::{Registry, skopeo_copy_in};
use crate::{build_once, fixtures_dir};

/// The Debian mirror debootstrap uses.
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// The suite the base is made of.
pub const SUITE: &str = "bookworm";
/// The package installed in the second layer of [`debian_layout`].
pub const PACKAGE: &str = "hello";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where machine-wide test caches live: `$BERTH_TEST_CACHE`, else `/var/cache/berth-test`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("BERTH_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/berth-test"))
}

/// The cached Debian base: a tar of the root file system and the package installed on top.
#[derive(Debug, Clone)]
pub struct DebianBase {
    /// `debian-base.tar`: `debootstrap --variant=minbase bookworm`, with apt's lists and
    /// caches and `/dev` emptied, as Debian's container images are; numeric owners, xattrs.
    pub tar: PathBuf,
    /// The [`PACKAGE`] .deb (`apt-get download`), for the second layer.
    pub package: PathBuf,
}

/// The Debian base, built on first use (see the module docs) and cached in [`cache_dir`].
pub fn debian_base() -> DebianBase {
    let dir = cache_dir().join(format!("debian-{SUITE}"));
    build_once(&dir, make_debian_base);
    let package = fs::read_dir(&dir)
        .expect("reading the Debian cache")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("the cached .deb");
    DebianBase {
        tar: dir.join("debian-base.tar"),
        package,
    }
}

/// Run `cmd`, panicking with its output if it fails.
fn run(cmd: &mut Command) {
    if let Err(why) = try_run(cmd) {
        panic!("{why}");
    }
}

/// Run `cmd`; its output as the error if it fails.
fn try_run(cmd: &mut Command) -> Result<(), String> {
    cmd.env("PATH", PATH);
    let o = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if o.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ))
}

fn make_debian_base(dir: &Path) {
    debootstrap_tar(dir, &[], "debian-base.tar");
    // The package for the second layer, downloaded as the host's apt knows it (the host is
    // Debian 12 too); the lists are refreshed if apt does not know it.
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q", PACKAGE])
            .current_dir(dir)
            .env("PATH", PATH)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !download() {
        run(Command::new("apt-get").args(["update", "-qq"]));
        assert!(download(), "apt-get download {PACKAGE} failed");
    }
}

/// `debootstrap --variant=minbase [--include=…] bookworm` into `dir/rootfs`, emptied of
/// what Debian's container images leave out (apt's lists and caches, device nodes), tarred
/// into `dir/<name>` ([`tar_dir_to`]); the tree is removed.
fn debootstrap_tar(dir: &Path, include: &[&str], name: &str) {
    fs::create_dir_all(dir).expect("mkdir cache");
    let rootfs = dir.join("rootfs");
    let mut debootstrap = Command::new("debootstrap");
    debootstrap.arg("--variant=minbase");
    if !include.is_empty() {
        debootstrap.arg(format!("--include={}", include.join(",")));
    }
    debootstrap.arg(SUITE).arg(&rootfs).arg(MIRROR);
    if let Err(why) = try_run(&mut debootstrap) {
        panic!(
            "building the Debian fixture needs {MIRROR} (once per machine; without a network, \
             build it beforehand with `cargo run -p berth-testkit --example debian-base`): {why}"
        );
    }
    // What Debian's container images leave out: apt's lists and caches, device nodes.
    for sub in ["var/lib/apt/lists", "var/cache/apt", "var/cache/debconf"] {
        run(Command::new("find")
            .arg(rootfs.join(sub))
            .args(["-type", "f", "-delete"]));
    }
    for e in fs::read_dir(rootfs.join("dev")).expect("dev").flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p).expect("rm dev dir");
        } else {
            fs::remove_file(&p).expect("rm dev node");
        }
    }
    let tmp = dir.join(format!("{name}.tmp"));
    tar_dir_to(&rootfs, &tmp);
    fs::rename(&tmp, dir.join(name)).expect("rename");
    fs::remove_dir_all(&rootfs).expect("rm rootfs");
}

/// The packages the compiler image ([`debian_gcc`]) has beyond minbase.
pub const GCC_PACKAGES: &[&str] = &["gcc", "libc6-dev"];

/// A Debian root with a C compiler: `debootstrap --variant=minbase --include=gcc,libc6-dev
/// bookworm`, as a tar (as [`DebianBase::tar`] is made), built on first use under the same
/// lock as the base and cached in [`cache_dir`] (`debian-bookworm-gcc/debian-gcc.tar`;
/// needs deb.debian.org, see the module docs).
pub fn debian_gcc() -> PathBuf {
    let dir = cache_dir().join(format!("debian-{SUITE}-gcc"));
    build_once(&dir, |d| debootstrap_tar(d, GCC_PACKAGES, "debian-gcc.tar"));
    dir.join("debian-gcc.tar")
}

/// The compiler image ([`debian_gcc`], one gzip layer, `Cmd ["bash"]`, Debian's PATH) as an
/// OCI layout, built once per run into the fixtures directory; the layout directory.
pub fn debian_gcc_layout() -> PathBuf {
    let dir = fixtures_dir().join("debian-gcc-layout");
    build_once(&dir, |d| {
        let tar = debian_gcc();
        let mut lb = LayoutBuilder::new(d);
        lb.add_tar(
            &tar,
            Compression::Gzip,
            &format!(
                "debootstrap --variant=minbase --include={} bookworm",
                GCC_PACKAGES.join(",")
            ),
        );
        lb.finish("latest", &["bash"]);
    });
    dir
}

/// Push the compiler image ([`debian_gcc_layout`]) to `reg` as `repo_tag`; its reference
/// (`ADDR/REPO:TAG`).
pub fn push_debian_gcc(reg: &Registry, repo_tag: &str) -> String {
    push_layout(reg, &debian_gcc_layout(), repo_tag);
    format!("{}/{repo_tag}", reg.addr)
}

/// A tar of the tree at `root` (entries `./…`, sorted, numeric owners, xattrs) into `out`,
/// by GNU tar.
pub fn tar_dir_to(root: &Path, out: &Path) {
    run(Command::new("tar")
        .args([
            "--create",
            "--format=posix",
            "--pax-option=delete=atime,delete=ctime",
            "--sort=name",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--file",
        ])
        .arg(out)
        .arg("--directory")
        .arg(root)
        .arg("."));
}

/// Extract the tar `tar` into the directory `dest` (owners, modes, xattrs kept).
pub fn untar(tar: &Path, dest: &Path) {
    fs::create_dir_all(dest).expect("mkdir");
    run(Command::new("tar")
        .args([
            "--extract",
            "--numeric-owner",
            "--same-permissions",
            "--xattrs",
            "--xattrs-include=*",
            "--file",
        ])
        .arg(tar)
        .arg("--directory")
        .arg(dest));
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip, as Docker and podman push (`gzip -n -6`).
    Gzip,
    /// zstd (`zstd -3`).
    Zstd,
}

impl Compression {
    fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The sha256 of a file, `sha256:<hex>` (sha256sum: fast in debug builds).
pub fn sha256_file(path: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(o.status.success(), "sha256sum {}", path.display());
    let out = String::from_utf8_lossy(&o.stdout);
    format!(
        "sha256:{}",
        out.split_whitespace().next().expect("a digest")
    )
}

fn sha256_bytes(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

/// Builds a multi-layer OCI image layout (one image, one tag) from layer tars.
#[derive(Debug)]
pub struct LayoutBuilder {
    dir: PathBuf,
    layers: Vec<Value>,
    diff_ids: Vec<String>,
    history: Vec<Value>,
}

/// A layer made by [`LayoutBuilder::add_tar`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The blob's digest (compressed).
    pub digest: String,
    /// The blob's size.
    pub size: u64,
    /// The uncompressed tar's digest.
    pub diff_id: String,
}

impl LayoutBuilder {
    /// Start a layout at `dir` (created).
    pub fn new(dir: &Path) -> LayoutBuilder {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir layout");
        LayoutBuilder {
            dir: dir.to_path_buf(),
            layers: Vec::new(),
            diff_ids: Vec::new(),
            history: Vec::new(),
        }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn put_bytes(&self, bytes: &[u8]) -> String {
        let d = sha256_bytes(bytes);
        fs::write(self.blob_path(&d), bytes).expect("blob");
        d
    }

    /// Add the uncompressed layer tar at `tar` as the next layer, compressed with `c`.
    pub fn add_tar(&mut self, tar: &Path, c: Compression, created_by: &str) -> BuiltLayer {
        let diff_id = sha256_file(tar);
        let tmp = self.dir.join("blobs/layer.tmp");
        let out = fs::File::create(&tmp).expect("layer blob");
        let input = fs::File::open(tar).expect("layer tar");
        let mut cmd = match c {
            Compression::Gzip => {
                let mut c = Command::new("gzip");
                c.args(["-n", "-6", "-c"]);
                c
            }
            Compression::Zstd => {
                let mut c = Command::new("zstd");
                c.args(["-q", "-3", "-c", "--no-progress"]);
                c
            }
        };
        let st = cmd.stdin(input).stdout(out).status().expect("compressor");
        assert!(st.success(), "compressing {}", tar.display());
        let digest = sha256_file(&tmp);
        let size = fs::metadata(&tmp).expect("stat").len();
        fs::rename(&tmp, self.blob_path(&digest)).expect("rename blob");
        self.layers.push(json!({
            "mediaType": c.media_type(),
            "digest": digest,
            "size": size,
        }));
        self.diff_ids.push(diff_id.clone());
        self.history.push(json!({
            "created": "2026-01-01T00:00:00Z",
            "created_by": created_by,
        }));
        BuiltLayer {
            digest,
            size,
            diff_id,
        }
    }

    /// Add `blob` as the next layer exactly as given, with this media type and diff ID
    /// (for broken layers: bad compression, a diff ID that does not match).
    pub fn add_blob(&mut self, blob: &[u8], media_type: &str, diff_id: &str) -> BuiltLayer {
        let digest = self.put_bytes(blob);
        self.layers.push(json!({
            "mediaType": media_type,
            "digest": digest,
            "size": blob.len(),
        }));
        self.diff_ids.push(diff_id.to_string());
        self.history
            .push(json!({"created": "2026-01-01T00:00:00Z", "created_by": "blob"}));
        BuiltLayer {
            digest,
            size: blob.len() as u64,
            diff_id: diff_id.to_string(),
        }
    }

    /// Add the tree at `root` as the next layer (tarred with [`tar_dir_to`]).
    pub fn add_dir(&mut self, root: &Path, c: Compression, created_by: &str) -> BuiltLayer {
        let tar = self.dir.join("blobs/layer.tar.tmp");
        tar_dir_to(root, &tar);
        let built = self.add_tar(&tar, c, created_by);
        fs::remove_file(&tar).expect("rm tar");
        built
    }

    /// Write the config, the manifest and `index.json` (tag `tag`); the manifest's digest.
    pub fn finish(&self, tag: &str, cmd: &[&str]) -> String {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": cmd, "Env": [format!("PATH={PATH}")]},
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            "history": self.history,
        });
        let config = serde_json::to_vec(&config).expect("json");
        let config_digest = self.put_bytes(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": self.layers,
        });
        let manifest = serde_json::to_vec(&manifest).expect("json");
        let digest = self.put_bytes(&manifest);
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("json"),
        )
        .expect("index.json");
        fs::write(
            self.dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        digest
    }
}

/// Metadata of one path, to tell what a command changed in a tree.
#[derive(Debug, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ino: u64,
    link: Option<PathBuf>,
}

fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, Meta> {
    fn walk(root: &Path, rel: &Path, out: &mut std::collections::BTreeMap<PathBuf, Meta>) {
        for e in fs::read_dir(root.join(rel)).expect("read_dir").flatten() {
            let rel = rel.join(e.file_name());
            let m = e.metadata().expect("lstat");
            out.insert(
                rel.clone(),
                Meta {
                    mode: m.mode(),
                    uid: m.uid(),
                    gid: m.gid(),
                    size: m.size(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    ino: m.ino(),
                    link: m
                        .file_type()
                        .is_symlink()
                        .then(|| fs::read_link(root.join(&rel)).expect("readlink")),
                },
            );
            if m.file_type().is_dir() {
                walk(root, &rel, out);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// A layer tar of what changed in `root` since `before` (a [`snapshot`]): changed and new
/// entries (with their metadata), whiteouts for removed ones.
fn diff_tar(
    root: &Path,
    before: &std::collections::BTreeMap<PathBuf, Meta>,
    out: &Path,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let after = snapshot(root);
    let changed: Vec<PathBuf> = after
        .iter()
        .filter(|(p, m)| before.get(*p) != Some(*m))
        .map(|(p, _)| p.clone())
        .collect();
    let removed: Vec<PathBuf> = before
        .keys()
        .filter(|p| !after.contains_key(*p) && p.parent().is_none_or(|d| after.contains_key(d)))
        .cloned()
        .collect();
    let mut b = tar::Builder::new(fs::File::create(out).expect("layer tar"));
    b.follow_symlinks(false);
    for p in &changed {
        b.append_path_with_name(root.join(p), p).expect("tar entry");
    }
    for p in &removed {
        let name = p.file_name().expect("name").to_string_lossy();
        let wh = p.with_file_name(format!(".wh.{name}"));
        whiteout(&mut b, &wh);
    }
    b.finish().expect("tar");
    (changed, removed)
}

fn whiteout<W: Write>(b: &mut tar::Builder<W>, path: &Path) {
    file_entry(b, path, b"", 0o644);
}

fn file_entry<W: Write>(b: &mut tar::Builder<W>, path: &Path, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_767_225_600); // 2026-01-01
    b.append_data(&mut h, path, data).expect("tar entry");
}

fn dir_entry<W: Write>(b: &mut tar::Builder<W>, path: &Path) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_767_225_600);
    b.append_data(&mut h, path, &b""[..]).expect("tar entry");
}

/// What the third layer of [`debian_layout`] does, for tests to check.
pub mod layer3 {
    /// A file of the base deleted (`etc/.wh.motd`).
    pub const DELETED_FILE: &str = "etc/motd";
    /// A directory the package layer added, deleted (`usr/share/doc/.wh.hello`).
    pub const DELETED_DIR: &str = "usr/share/doc/hello";
    /// A directory made opaque (`.wh..wh..opq`): only [`OPAQUE_KEEPS`] is left in it.
    pub const OPAQUE_DIR: &str = "usr/share/info";
    /// The one file the opaque directory has in the merged view.
    pub const OPAQUE_KEEPS: &str = "usr/share/info/NOTE";
    /// A file added.
    pub const ADDED: &str = "etc/berth-layer3";
}

/// Write the three-layer Debian image into the layout at `dir` (tag `latest`), layers
/// compressed with `c`:
/// 1. the Debian base ([`debian_base`]);
/// 2. [`PACKAGE`] installed with `dpkg --root` (what dpkg changed: its files, dpkg's
///    database);
/// 3. whiteouts: a file and a directory deleted, an opaque directory, a file added (see
///    [`layer3`]).
///
/// With `extra`, a fourth layer: that tree. Returns the manifest's digest.
pub fn write_debian_layout(dir: &Path, c: Compression, extra: Option<&Path>) -> String {
    let base = debian_base();
    let mut lb = LayoutBuilder::new(dir);
    lb.add_tar(&base.tar, c, "debootstrap --variant=minbase bookworm");

    let work = tempfile::Builder::new()
        .prefix("berth-debian-")
        .tempdir()
        .expect("tempdir");
    let rootfs = work.path().join("rootfs");
    untar(&base.tar, &rootfs);
    let before = snapshot(&rootfs);
    run(Command::new("dpkg")
        .arg(format!("--root={}", rootfs.display()))
        .arg("--install")
        .arg(&base.package));
    let tar2 = work.path().join("layer2.tar");
    let (changed, _) = diff_tar(&rootfs, &before, &tar2);
    assert!(
        changed.iter().any(|p| p == Path::new("usr/bin/hello")),
        "dpkg installed {PACKAGE}"
    );
    lb.add_tar(&tar2, c, &format!("dpkg -i {PACKAGE}"));

    let tar3 = work.path().join("layer3.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&tar3).expect("layer tar"));
        whiteout(&mut b, Path::new("etc/.wh.motd"));
        whiteout(&mut b, Path::new("usr/share/doc/.wh.hello"));
        dir_entry(&mut b, Path::new(layer3::OPAQUE_DIR));
        whiteout(&mut b, Path::new("usr/share/info/.wh..wh..opq"));
        file_entry(
            &mut b,
            Path::new(layer3::OPAQUE_KEEPS),
            b"only this is left\n",
            0o644,
        );
        file_entry(&mut b, Path::new(layer3::ADDED), b"third layer\n", 0o644);
        b.finish().expect("tar");
    }
    lb.add_tar(
        &tar3,
        c,
        "rm etc/motd usr/share/doc/hello; opaque usr/share/info",
    );
    if let Some(extra) = extra {
        lb.add_dir(extra, c, "data");
    }
    lb.finish("latest", &["/usr/bin/hello"])
}

/// The three-layer Debian image ([`write_debian_layout`], gzip) as an OCI layout, built once
/// per run into the fixtures directory; (layout directory, manifest digest).
pub fn debian_layout() -> (PathBuf, String) {
    let dir = fixtures_dir().join("debian-layout");
    build_once(&dir, |d| {
        write_debian_layout(d, Compression::Gzip, None);
    });
    let index: Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index json");
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    (dir, digest)
}

/// Push the OCI layout at `layout` (tag `latest`) to `reg` as `repo_tag`.
pub fn push_layout(reg: &Registry, layout: &Path, repo_tag: &str) {
    skopeo_copy_in(
        reg.netns.as_deref(),
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/{repo_tag}", reg.addr),
        &[],
    );
}

/// Push the three-layer Debian image ([`debian_layout`]) as `repo_tag`; its manifest digest.
pub fn push_debian(reg: &Registry, repo_tag: &str) -> String {
    let (layout, digest) = debian_layout();
    push_layout(reg, &layout, repo_tag);
    digest
}

/// A small, deterministic pseudo-random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    /// Seeded (a zero seed is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Prng {
        Prng(seed.max(1))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fill `buf` with data that compresses to about half: each 1 KiB is 512 random bytes
    /// then 512 bytes of a repeated line.
    pub fn fill_half_compressible(&mut self, buf: &mut [u8]) {
        const TEXT: &[u8] = b"berth benchmark data, compressible half of the block.\n";
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            if (i * 8) % 1024 < 512 {
                let r = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            } else {
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = TEXT[(i * 8 + j) % TEXT.len()];
                }
            }
        }
    }
}

/// Write about `total` bytes of half-compressible data (seeded by `seed`) into new files
/// under `dir`: half in four big files, a quarter in 256 KiB files, a quarter in 16 KiB files
/// (in subdirectories of 64 files).
pub fn write_data_tree(dir: &Path, total: u64, seed: u64) {
    let mut rng = Prng::new(seed);
    let mut files: Vec<u64> = vec![total / 8; 4];
    files.extend(std::iter::repeat_n(
        256 * 1024,
        (total / 4 / (256 * 1024)) as usize,
    ));
    files.extend(std::iter::repeat_n(
        16 * 1024,
        (total / 4 / (16 * 1024)) as usize,
    ));
    let mut buf = vec![0u8; 1024 * 1024];
    for (i, size) in files.into_iter().enumerate() {
        let sub = dir.join(format!("d{:03}", i / 64));
        fs::create_dir_all(&sub).expect("mkdir data");
        let mut f = fs::File::create(sub.join(format!("f{i:05}.bin"))).expect("data file");
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_half_compressible(&mut buf[..n]);
            f.write_all(&buf[..n]).expect("write data");
            left -= n as u64;
        }
    }
}

/// The benchmark images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchImage {
    /// The Debian base, the package layer, the whiteout layer and 24 MiB of data: about
    /// 150 MB unpacked in four layers, mostly small files (as real images are).
    Debian,
    /// busybox and three layers of 40 MiB of half-compressible data each: about 122 MiB
    /// unpacked, 64 MB gzipped.
    Synthetic,
}

/// Write the benchmark image `kind` as an OCI layout at `dir` (tag `latest`, gzip layers);
/// its manifest digest.
pub fn write_bench_layout(dir: &Path, kind: BenchImage) -> String {
    let work = tempfile::Builder::new()
        .prefix("berth-bench-data-")
        .tempdir()
        .expect("tempdir");
    match kind {
        BenchImage::Debian => {
            let data = work.path().join("data");
            write_data_tree(&data.join("opt/data"), 24 << 20, 4);
            fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).expect("chmod");
            write_debian_layout(dir, Compression::Gzip, Some(&data))
        }
        BenchImage::Synthetic => {
            let mut lb = LayoutBuilder::new(dir);
            lb.add_dir(&crate::busybox_rootfs(), Compression::Gzip, "busybox");
            for seed in 1..=3u64 {
                let data = work.path().join(format!("data{seed}"));
                write_data_tree(&data.join(format!("opt/data{seed}")), 40 << 20, seed);
                lb.add_dir(&data, Compression::Gzip, &format!("data {seed}"));
            }
            lb.finish("latest", &["sh"])
        }
    }
}

/// A small three-layer image over the busybox fixture, as an OCI layout at `dir` (tag
/// `latest`), layers compressed with `c`; its manifest digest:
/// 1. the busybox root file system;
/// 2. `etc/two` and `opt/two/{a,data}` (`data`: 3 MiB of half-compressible bytes, so a
///    layer spans many read buffers);
/// 3. whiteouts: `etc/.wh.hostname` (a base file), `opt/.wh.two` (the directory layer 2
///    added), `usr/sbin/.wh..wh..opq` (an opaque directory) with `usr/sbin/only` in it.
pub fn write_busybox_layered(dir: &Path, c: Compression) -> String {
    let work = tempfile::Builder::new()
        .prefix("berth-layers-")
        .tempdir()
        .expect("tempdir");
    let mut lb = LayoutBuilder::new(dir);
    lb.add_dir(&crate::busybox_rootfs(), c, "busybox");

    let tar2 = work.path().join("layer2.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&tar2).expect("layer tar"));
        dir_entry(&mut b, Path::new("etc"));
        file_entry(&mut b, Path::new("etc/two"), b"layer two\n", 0o644);
        dir_entry(&mut b, Path::new("opt"));
        dir_entry(&mut b, Path::new("opt/two"));
        file_entry(&mut b, Path::new("opt/two/a"), b"a\n", 0o600);
        let mut data = vec![0u8; 3 << 20];
        Prng::new(7).fill_half_compressible(&mut data);
        file_entry(&mut b, Path::new("opt/two/data"), &data, 0o644);
        b.finish().expect("tar");
    }
    lb.add_tar(&tar2, c, "layer two");

    let tar3 = work.path().join("layer3.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&tar3).expect("layer tar"));
        whiteout(&mut b, Path::new("etc/.wh.hostname"));
        whiteout(&mut b, Path::new("opt/.wh.two"));
        dir_entry(&mut b, Path::new("usr/sbin"));
        whiteout(&mut b, Path::new("usr/sbin/.wh..wh..opq"));
        file_entry(&mut b, Path::new("usr/sbin/only"), b"only\n", 0o755);
        b.finish().expect("tar");
    }
    lb.add_tar(&tar3, c, "whiteouts");
    lb.finish("latest", &["sh"])
}
