//! Fuzz harnesses for berth's parsers of untrusted input, run as bounded property tests on
//! the stable toolchain (`tests/*.rs`, with `proptest`), and callable as they are from a
//! cargo-fuzz target (`fuzz/`).
//!
//! Each harness is a plain function of the input's bytes that panics when a property breaks:
//!
//! | harness | input | properties |
//! |---|---|---|
//! | [`fuzz_unpack`] | a layer stream (tar, gzip, zstd) | no panic; nothing outside the target directory changes (its siblings, a canary directory that generated symlinks and absolute paths point at, `/`, `/tmp`, the working directory); errors are one short line; a success's diff ID is the sha256 of the whole decompressed stream |
//! | [`fuzz_reference`] | an image reference | no panic; what parses prints (full and familiar forms) to itself |
//! | [`fuzz_platform`] | `os/arch[/variant]` | no panic; what parses prints to itself |
//! | [`fuzz_manifest`] | a manifest | no panic (`PushImage::from_manifest`) |
//! | [`fuzz_image_config`] | an image config, the image's /etc/passwd and /etc/group | no panic: the process and the runtime spec made from them |
//! | [`fuzz_docker_load`], [`fuzz_oci_load`] | `manifest.json` / `index.json`, manifests, configs in an archive with a real layer | no panic in `ImageStore::load`; errors are one line |
//! | [`fuzz_runtime_spec`] | config.json | no panic in parsing, validation, or compiling its seccomp filter |
//!
//! The generators ([`inputs`]) build inputs that get past the first checks (tar headers with
//! right checksums, JSON from templates), and [`seeds`] holds the known bad inputs.
//!
//! The image harnesses go through today's public entry points and serde types; when those
//! move to `oci-spec`, only the few lines calling them change.

pub mod inputs;
pub mod runner;
pub mod seeds;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth_layer::{Compression, Mode};

/// The name generated entries use for files that must never appear outside the target.
pub const MARKER: &str = "ESCAPED";

/// A directory outside every target that generated symlinks and absolute paths point at:
/// `/tmp/berth-fuzz-canary-<pid>/` holding a file and a directory. It must never change.
/// (Removed when the process exits.)
pub fn canary() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = process_dir("canary");
        std::fs::create_dir_all(d.join("dir")).expect("canary dir");
        std::fs::write(d.join("file"), b"canary").expect("canary file");
        std::fs::write(d.join("dir/inner"), b"canary").expect("canary file");
        d
    })
}

/// `/tmp/berth-fuzz-<what>-<pid>`, removed when the process exits.
fn process_dir(what: &str) -> PathBuf {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: atexit takes a plain `extern "C" fn()` with no captured state; the
        // function only removes directories this process made.
        unsafe { libc::atexit(remove_process_dirs) };
    });
    std::env::temp_dir().join(format!("berth-fuzz-{what}-{}", std::process::id()))
}

extern "C" fn remove_process_dirs() {
    for what in ["canary", "store-template"] {
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("berth-fuzz-{what}-{}", std::process::id())),
        );
    }
}

/// Kind, size, mode, owner and content digest of everything under `root` (not following
/// symlinks), minus `skip` (a path relative to `root`).
pub fn snapshot(root: &Path, skip: Option<&Path>) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if skip.is_some_and(|s| rel == s) {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            let what = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("symlink {:?}", std::fs::read_link(&p).ok())
            } else if ft.is_file() {
                format!("file {}", sha256(&std::fs::read(&p).unwrap_or_default()))
            } else if ft.is_char_device() || ft.is_block_device() {
                format!("dev {}", md.rdev())
            } else {
                "other".to_string()
            };
            out.insert(
                rel,
                format!(
                    "{what} mode {:o} owner {}:{} mtime {}",
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    md.mtime()
                ),
            );
        }
    }
    out
}

/// `sha256:<hex>` of `b`.
pub fn sha256(b: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let hex: String = d.as_ref().iter().map(|x| format!("{x:02x}")).collect();
    format!("sha256:{hex}")
}

/// The whole decompressed stream, as the unpacker reads it, if it decompresses.
fn decompressed(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match Compression::detect(data) {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .ok()?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(data)
                .ok()?
                .read_to_end(&mut out)
                .ok()?;
        }
    }
    Some(out)
}

/// An error message must be one line of reasonable length.
fn assert_one_line(what: &str, msg: &str) {
    assert!(
        !msg.contains('\n'),
        "{what}: a message of several lines: {msg:?}"
    );
    assert!(
        msg.len() <= 2048,
        "{what}: a message of {} bytes: {msg:.300}",
        msg.len()
    );
}

/// The layer stream `data` unpacked in both modes into a fresh target directory that has
/// siblings (see the module docs for what is checked). Panics when a property breaks.
pub fn fuzz_unpack(data: &[u8]) {
    for mode in [Mode::Overlay, Mode::Flatten] {
        unpack_sandboxed(data, mode);
    }
}

fn unpack_sandboxed(data: &[u8], mode: Mode) {
    let sandbox = tempfile::Builder::new()
        .prefix("berth-fuzz-unpack-")
        .tempdir()
        .expect("tempdir");
    let s = sandbox.path();
    let target = s.join("store/target");
    std::fs::create_dir_all(&target).expect("target");
    std::fs::create_dir_all(s.join("store/sibling/sub")).expect("sibling");
    std::fs::write(s.join("store/sibling/f"), b"sibling").expect("sibling");
    std::fs::write(s.join("store/sibling/sub/g"), b"sibling").expect("sibling");
    std::fs::write(s.join("beside"), b"beside").expect("beside");
    if mode == Mode::Flatten {
        // What lower layers left: whiteouts and opaque markers may delete it, nothing else.
        std::fs::create_dir_all(target.join("a/b")).expect("base");
        std::fs::write(target.join("a/x"), b"x").expect("base");
        std::fs::write(target.join("c"), b"c").expect("base");
        std::os::unix::fs::symlink("a", target.join("l")).expect("base");
    }
    let skip = Path::new("store/target");
    let outside = snapshot(s, Some(skip));
    let canary_before = snapshot(canary(), None);
    let cwd = std::env::current_dir().expect("cwd");

    let result = berth_layer::unpack(data, &target, mode);

    let what = format!("unpack ({mode:?}) of {}", inputs::show(data));
    assert_eq!(
        snapshot(s, Some(skip)),
        outside,
        "{what}: outside the target changed"
    );
    assert_eq!(
        snapshot(canary(), None),
        canary_before,
        "{what}: the canary changed"
    );
    for d in [Path::new("/"), Path::new("/tmp"), &cwd, s] {
        assert!(
            !d.join(MARKER).exists(),
            "{what}: {} appeared in {}",
            MARKER,
            d.display()
        );
    }
    match result {
        Ok(u) => {
            if let Some(tar) = decompressed(data) {
                assert_eq!(u.diff_id, sha256(&tar), "{what}: diff ID");
                assert_eq!(u.tar_size, tar.len() as u64, "{what}: tar size");
            }
        }
        Err(e) => assert_one_line(&what, &e.to_string()),
    }
}

/// An image reference: parsing never panics, and what parses prints (in its full and its
/// familiar form) to a string that parses back to the same image (a reference without a
/// tag or digest prints with Docker's implicit `:latest`).
pub fn fuzz_reference(s: &str) {
    use berth_registry::Reference;
    let Ok(r) = Reference::parse(s) else {
        return;
    };
    let same = |a: &Reference, b: &Reference| {
        a.registry == b.registry
            && a.repository == b.repository
            && a.digest == b.digest
            && a.tag_or_latest() == b.tag_or_latest()
    };
    let full = r.to_string();
    for printed in [full.clone(), r.familiar()] {
        match Reference::parse(&printed) {
            Ok(back) => {
                assert!(
                    same(&back, &r),
                    "{s:?} parsed to {r:?}, printed {printed:?}, read back as {back:?}"
                );
                assert_eq!(back.to_string(), full, "{s:?}: printed {printed:?}");
            }
            Err(e) => {
                panic!("{s:?} parsed to {r:?}, printed {printed:?}, which does not parse: {e}")
            }
        }
    }
    let _ = (r.api_host(), r.manifest_ref(), r.familiar_name());
}

/// A Dockerfile as a build reads it: parsing never panics, an error names a line of the
/// file, and every word an instruction holds expands (or fails) without panicking, with
/// either escape character. The same text as a `.dockerignore` matches paths without
/// panicking.
pub fn fuzz_dockerfile(text: &str) {
    use berth_dockerfile::{Ignore, Kind, expand, expand_words};
    let lines = text.lines().count().max(1);
    let vars = |n: &str| (n.len() % 3 == 0).then(|| format!("v-{n}"));
    match berth_dockerfile::parse(text) {
        Ok(df) => {
            for a in &df.meta_args {
                if let Some(d) = &a.default {
                    let _ = expand(d, df.escape, &vars);
                }
            }
            for st in &df.stages {
                assert!(st.line >= 1 && st.line <= lines, "stage line {}", st.line);
                let _ = expand(&st.base, df.escape, &vars);
                for ins in &st.instructions {
                    assert!(ins.line >= 1 && ins.line <= lines, "{:?}", ins.original);
                    let words: Vec<&str> = match &ins.kind {
                        Kind::Env(p) | Kind::Label(p) => p
                            .iter()
                            .flat_map(|(k, v)| [k.as_str(), v.as_str()])
                            .collect(),
                        Kind::Copy(c) | Kind::Add(c) => c
                            .sources
                            .iter()
                            .map(String::as_str)
                            .chain([c.dest.as_str()])
                            .collect(),
                        Kind::Workdir(w) | Kind::User(w) | Kind::Stopsignal(w) => vec![w.as_str()],
                        Kind::Expose(v) | Kind::Volume(v) => v.iter().map(String::as_str).collect(),
                        _ => Vec::new(),
                    };
                    for w in words {
                        let _ = expand(w, df.escape, &vars);
                        let _ = expand_words(w, df.escape, &vars);
                    }
                }
            }
        }
        Err(e) => {
            if let Some(l) = e.line() {
                assert!(l >= 1 && l <= lines + 1, "error line {l} of {lines}: {e}");
            }
        }
    }
    let ig = Ignore::parse(text);
    for p in [
        "a",
        "a/b/c.txt",
        "Dockerfile",
        ".dockerignore",
        "x/../y",
        "",
    ] {
        let _ = ig.matches(p);
        let _ = ig.may_include_below(p);
    }
}

/// A platform string: parsing never panics, and what parses prints back to itself.
pub fn fuzz_platform(s: &str) {
    use berth_registry::{Platform, PlatformExt};
    if let Some(p) = Platform::parse(s) {
        assert_eq!(Platform::parse(&p.format()).as_ref(), Some(&p), "{s:?}");
    }
}

/// A manifest as the push path reads it.
pub fn fuzz_manifest(data: &[u8]) {
    use berth_registry::{MediaType, media};
    for media_type in [
        MediaType::ImageManifest,
        MediaType::from(media::DOCKER_MANIFEST),
        MediaType::from("application/json"),
    ] {
        if let Err(e) = berth_registry::PushImage::from_manifest(data.to_vec(), &media_type) {
            assert_one_line("from_manifest", &e.to_string());
        }
    }
}

/// An image config with the image's `/etc/passwd` and `/etc/group` (or `/etc/passwd` a
/// symlink to `passwd_link`): the process and the runtime spec made from them.
pub fn fuzz_image_config(config: &[u8], passwd: &[u8], group: &[u8], passwd_link: Option<&str>) {
    let Ok(cfg) = serde_json::from_slice::<berth_image::config::ImageConfiguration>(config) else {
        return;
    };
    let root = tempfile::Builder::new()
        .prefix("berth-fuzz-rootfs-")
        .tempdir()
        .expect("tempdir");
    let etc = root.path().join("etc");
    std::fs::create_dir(&etc).expect("etc");
    match passwd_link {
        Some(t) => std::os::unix::fs::symlink(t, etc.join("passwd")).expect("symlink"),
        None => std::fs::write(etc.join("passwd"), passwd).expect("passwd"),
    }
    std::fs::write(etc.join("group"), group).expect("group");
    let o = berth_image::config::Overrides::default();
    if let Err(e) = berth_image::config::process(&cfg, root.path(), &o) {
        assert_one_line("process", &e.to_string());
    }
    if let Err(e) = berth_image::bundle::runtime_spec(&cfg, root.path(), &o) {
        assert_one_line("runtime_spec", &e.to_string());
    }
}

/// A tar of `files` (path, content), in order.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, *data).expect("tar");
    }
    b.into_inner().expect("tar")
}

/// The one layer every generated archive holds (a real layer: one file).
pub fn archive_layer() -> Vec<u8> {
    berth_testkit::tar::Layer::new()
        .file("hello", 0o644, b"hello from a fuzzed archive\n")
        .tar()
}

/// A copy of `from` (a directory of directories and small files) at `to`.
fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("reading the template store") {
        let e = e.expect("reading the template store");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            std::fs::create_dir(&dst).expect("copying the template store");
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copying the template store");
        }
    }
}

/// A fresh, empty image store: a copy of one made once per process (making a store from
/// nothing costs several times more: the database is created and synced).
pub fn fresh_store() -> (tempfile::TempDir, berth_image::ImageStore) {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let d = process_dir("store-template");
        std::fs::create_dir_all(&d).expect("template store");
        drop(berth_image::ImageStore::open(&d).expect("making a store"));
        d
    });
    let root = tempfile::Builder::new()
        .prefix("berth-fuzz-store-")
        .tempdir()
        .expect("tempdir");
    copy_tree(template, root.path());
    let store = berth_image::ImageStore::open(root.path()).expect("opening a store");
    (root, store)
}

/// `ImageStore::load` of `archive` into a fresh store: never a panic; errors are one line.
pub fn fuzz_load(archive: &[u8]) {
    let (_root, store) = fresh_store();
    if let Err(e) = store.load(archive) {
        assert_one_line(
            &format!("load of {}", inputs::show(archive)),
            &e.to_string(),
        );
    }
}

/// A docker-archive holding `manifest_json`, `config.json` (`config`) and `layer.tar` (a
/// real layer), loaded.
pub fn fuzz_docker_load(manifest_json: &[u8], config: &[u8]) {
    let layer = archive_layer();
    fuzz_load(&tar_of(&[
        ("layer.tar", &layer),
        ("config.json", config),
        ("manifest.json", manifest_json),
    ]));
}

/// An OCI archive: `index.json` and the blobs `manifest`, `config` and a real layer (each
/// under its own digest), loaded.
pub fn fuzz_oci_load(index_json: &[u8], manifest: &[u8], config: &[u8]) {
    let layer = archive_layer();
    let blob = |b: &[u8]| format!("blobs/sha256/{}", &sha256(b)["sha256:".len()..]);
    let (m, c, l) = (blob(manifest), blob(config), blob(&layer));
    fuzz_load(&tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        (&l, &layer),
        (&c, config),
        (&m, manifest),
        ("index.json", index_json),
    ]));
}

/// A runtime config.json: parsed, validated, and its seccomp filter compiled (not loaded),
/// as `create` does before anything is made.
pub fn fuzz_runtime_spec(data: &[u8]) {
    let spec = match berth_runtime::spec::parse_spec(data) {
        Ok(s) => s,
        Err(e) => return assert_one_line("parse_spec", &e),
    };
    if let Err(e) = berth_runtime::spec::validate(&spec) {
        assert_one_line("validate", &e.to_string());
    }
    if let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref())
        && let Err(e) = berth_seccomp::compile(seccomp)
    {
        assert_one_line("seccomp compile", &e.to_string());
    }
}

/// `data` compressed with gzip.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// `data` compressed with zstd.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 1).expect("zstd")
}
