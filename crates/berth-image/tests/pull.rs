//! Pulling into the image store from a real registry: blobs, unpacked layers, tags.

use berth_image::ImageStore;
use berth_registry::{Client, Options, Platform, PlatformExt, Reference};
use berth_testkit::images::{Registry, busybox_layout, skopeo_copy};
use std::os::unix::fs::MetadataExt;

#[test]
fn pull_unpacks_layers_once_and_records_tags() {
    let reg = Registry::start();
    let (_tmp, layout, digest) = busybox_layout();
    for tag in ["1", "2"] {
        skopeo_copy(
            &format!("oci:{}:latest", layout.display()),
            &format!("docker://{}/bb:{tag}", reg.addr),
        );
    }
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let client = Client::new(Options::default());
    let r1 = Reference::parse(&format!("{}/bb:1", reg.addr)).unwrap();
    let img = store.pull(&client, &r1, &Platform::host()).unwrap();
    assert_eq!(img.manifest, digest);
    assert_eq!(img.repo_tags, [r1.to_string()]);
    assert_eq!(img.diff_ids.len(), 1);
    let layer = store.layer_path(&img.diff_ids[0]);
    assert!(layer.join("bin/busybox").is_file(), "the layer is unpacked");
    let ino = std::fs::metadata(&layer).unwrap().ino();

    // The same image under another tag: the layer is shared, not unpacked again.
    let r2 = Reference::parse(&format!("{}/bb:2", reg.addr)).unwrap();
    let again = store.pull(&client, &r2, &Platform::host()).unwrap();
    assert_eq!(again.id, img.id);
    assert_eq!(std::fs::metadata(&layer).unwrap().ino(), ino);
    let all = store.images().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].repo_tags, [r1.to_string(), r2.to_string()]);
    assert_eq!(
        store
            .lookup(&format!("{}/bb:2", reg.addr))
            .unwrap()
            .unwrap()
            .id,
        img.id
    );
    assert_eq!(store.lookup(&img.id).unwrap().unwrap().id, img.id);
    assert!(store.lookup("nothing:here").unwrap().is_none());

    // Reopening finds everything (the database is on disk).
    drop(store);
    let store = ImageStore::open(root.path()).unwrap();
    assert_eq!(store.images().unwrap().len(), 1);
}

#[test]
fn a_failed_pull_leaves_the_store_as_it_was() {
    let reg = Registry::start();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let client = Client::new(Options::default());
    let r = Reference::parse(&format!("{}/missing:1", reg.addr)).unwrap();
    assert!(store.pull(&client, &r, &Platform::host()).is_err());
    assert!(store.images().unwrap().is_empty());
    assert!(store.blobs().list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(root.path().join("layers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn copy_on_write_rootfs_over_shared_layers() {
    let reg = Registry::start();
    let (_tmp, layout, _) = busybox_layout();
    skopeo_copy(
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/bb:1", reg.addr),
    );
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let img = store
        .pull(
            &Client::new(Options::default()),
            &Reference::parse(&format!("{}/bb:1", reg.addr)).unwrap(),
            &Platform::host(),
        )
        .unwrap();
    let layer = store.layer_path(&img.diff_ids[0]);
    let c1 = store.create_rootfs(&img, &root.path().join("c1")).unwrap();
    let c2 = store.create_rootfs(&img, &root.path().join("c2")).unwrap();
    assert!(c1.merged().join("bin/busybox").is_file());
    // Writes land in the container's upper directory only.
    std::fs::write(c1.merged().join("etc/hostname"), "changed\n").unwrap();
    std::fs::remove_file(c1.merged().join("etc/passwd")).unwrap();
    assert_eq!(
        std::fs::read_to_string(c1.upper().join("etc/hostname")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(c2.merged().join("etc/hostname")).unwrap(),
        "busybox\n"
    );
    assert!(
        layer.join("etc/passwd").is_file(),
        "the shared layer is untouched"
    );
    assert!(c2.merged().join("etc/passwd").is_file());
    for c in [c1, c2] {
        store.remove_rootfs(&c).unwrap();
        assert!(!c.dir.exists());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.path().to_str().unwrap()),
        "no mount left"
    );
}

// ---- Streaming pulls of layered images (berth_testkit::debian fixtures) ----

use berth_testkit::debian::{self, Compression, push_debian, push_layout, write_busybox_layered};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The file a testkit registry serves blob `digest` from (found through the registry's
/// config, which names its address).
fn registry_blob(reg: &Registry, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .starts_with("berth-registry-")
        {
            continue;
        }
        let config = std::fs::read_to_string(e.path().join("config.yml")).unwrap_or_default();
        if config.contains(&format!("addr: {}\n", reg.addr)) {
            return e
                .path()
                .join("storage/docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex)
                .join("data");
        }
    }
    panic!("no storage found for the registry on {}", reg.addr);
}

/// The layer descriptors (digest, size) of the image in an OCI layout.
fn layout_layers(layout: &Path) -> Vec<(String, u64)> {
    let blob = |d: &str| {
        let bytes = std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Nothing of a pull is left: no image, blob, layer directory or temporary.
fn assert_store_empty(root: &Path, store: &ImageStore) {
    assert!(store.images().unwrap().is_empty(), "no image recorded");
    assert!(store.blobs().list().unwrap().is_empty(), "no blob stored");
    assert_eq!(count(&root.join("layers")), 0, "no layer directory left");
    assert_eq!(
        count(&root.join("content/ingest")),
        0,
        "no partial blob left"
    );
}

/// No temporary of a pull is left.
fn assert_no_temporaries(root: &Path) {
    assert_eq!(
        count(&root.join("content/ingest")),
        0,
        "no partial blob left"
    );
    for e in std::fs::read_dir(root.join("layers")).unwrap().flatten() {
        assert!(
            !e.file_name().to_string_lossy().starts_with(".tmp-"),
            "temporary layer {:?} left",
            e.path()
        );
    }
}

fn is_whiteout(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

fn is_opaque(p: &Path) -> bool {
    let mut buf = [0u8; 8];
    rustix::fs::getxattr(p, "trusted.overlay.opaque", &mut buf).is_ok_and(|n| &buf[..n] == b"y")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn pull(
    store: &ImageStore,
    reg: &Registry,
    name: &str,
) -> berth_image::Result<berth_image::ImageRecord> {
    store.pull(
        &Client::new(Options::default()),
        &Reference::parse(&format!("{}/{name}", reg.addr)).unwrap(),
        &Platform::host(),
    )
}

#[test]
fn a_layered_debian_image_with_whiteouts_pulls_and_runs() {
    let reg = Registry::start();
    let digest = push_debian(&reg, "debian:layers");
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let img = pull(&store, &reg, "debian:layers").unwrap();
    assert_eq!(img.manifest, digest);
    assert_eq!(img.diff_ids.len(), 3);
    let l: Vec<PathBuf> = img.diff_ids.iter().map(|d| store.layer_path(d)).collect();
    assert!(l[0].join("usr/bin/bash").is_file(), "the base layer");
    assert!(l[1].join("usr/bin/hello").is_file(), "the package layer");
    assert!(!l[0].join("usr/bin/hello").exists());
    // The third layer, as overlayfs wants it.
    assert!(is_whiteout(&l[2].join(debian::layer3::DELETED_FILE)));
    assert!(is_whiteout(&l[2].join(debian::layer3::DELETED_DIR)));
    assert!(is_opaque(&l[2].join(debian::layer3::OPAQUE_DIR)));
    assert_eq!(
        std::fs::read_to_string(l[2].join(debian::layer3::ADDED)).unwrap(),
        "third layer\n"
    );
    assert_eq!(
        store.blobs().list().unwrap().len(),
        5,
        "manifest, config, 3 layers"
    );
    assert_no_temporaries(root.path());

    // The merged view: deletions applied, the opaque directory holds only its new file, and
    // the installed program runs.
    let c = store.create_rootfs(&img, &root.path().join("c")).unwrap();
    let m = c.merged();
    assert!(m.join("usr/bin/bash").is_file());
    assert!(std::fs::symlink_metadata(m.join(debian::layer3::DELETED_FILE)).is_err());
    assert!(std::fs::symlink_metadata(m.join(debian::layer3::DELETED_DIR)).is_err());
    assert_eq!(names(&m.join(debian::layer3::OPAQUE_DIR)), ["NOTE"]);
    assert!(m.join(debian::layer3::OPAQUE_KEEPS).is_file());
    let out = std::process::Command::new("chroot")
        .arg(&m)
        .arg("/usr/bin/hello")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world!\n");
    store.remove_rootfs(&c).unwrap();
}

#[test]
fn zstd_layers_with_whiteouts() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_busybox_layered(&layout, Compression::Zstd);
    push_layout(&reg, &layout, "zst:1");
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let img = pull(&store, &reg, "zst:1").unwrap();
    let l: Vec<PathBuf> = img.diff_ids.iter().map(|d| store.layer_path(d)).collect();
    assert_eq!(l.len(), 3);
    assert_eq!(
        std::fs::metadata(l[1].join("opt/two/data")).unwrap().len(),
        3 << 20
    );
    assert!(is_whiteout(&l[2].join("etc/hostname")));
    assert!(is_whiteout(&l[2].join("opt/two")));
    assert!(is_opaque(&l[2].join("usr/sbin")));
    let c = store.create_rootfs(&img, &root.path().join("c")).unwrap();
    let m = c.merged();
    assert!(m.join("bin/busybox").is_file());
    assert!(!m.join("etc/hostname").exists());
    assert!(!m.join("opt/two").exists());
    assert_eq!(
        std::fs::read_to_string(m.join("etc/two")).unwrap(),
        "layer two\n"
    );
    assert_eq!(names(&m.join("usr/sbin")), ["only"]);
    store.remove_rootfs(&c).unwrap();
    assert_no_temporaries(root.path());
}

#[test]
fn a_corrupt_or_truncated_blob_fails_the_pull_leaves_nothing_and_a_retry_succeeds() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_busybox_layered(&layout, Compression::Gzip);
    push_layout(&reg, &layout, "bad:1");
    let layers = layout_layers(&layout);
    // The data layer: a few MiB, so the failure comes mid-stream while the other layers
    // are being (or have been) staged.
    let (victim, size) = layers[1].clone();
    let served = registry_blob(&reg, &victim);
    let good = std::fs::read(&served).unwrap();
    assert_eq!(good.len() as u64, size);

    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();

    // A flipped byte in the middle.
    let mut corrupt = good.clone();
    corrupt[good.len() / 2] ^= 0x55;
    std::fs::write(&served, &corrupt).unwrap();
    let err = pull(&store, &reg, "bad:1").unwrap_err();
    match &err {
        berth_image::Error::Store(berth_store::Error::DigestMismatch { expected, .. }) => {
            assert_eq!(expected.to_string(), victim)
        }
        other => panic!("expected a digest mismatch for {victim}, got {other}"),
    }
    eprintln!("corrupt: {err}");
    assert_store_empty(root.path(), &store);

    // Cut short: the registry serves half of it.
    std::fs::write(&served, &good[..good.len() / 2]).unwrap();
    let err = pull(&store, &reg, "bad:1").unwrap_err();
    eprintln!("truncated: {err}");
    assert!(
        matches!(
            &err,
            berth_image::Error::Store(berth_store::Error::SizeMismatch { expected, actual, .. })
                if *expected == size && *actual == size / 2
        ),
        "{err}"
    );
    assert_store_empty(root.path(), &store);

    // Fixed: the retry succeeds.
    std::fs::write(&served, &good).unwrap();
    let img = pull(&store, &reg, "bad:1").unwrap();
    assert!(
        store
            .layer_path(&img.diff_ids[1])
            .join("opt/two/data")
            .is_file()
    );
    assert_eq!(store.blobs().list().unwrap().len(), 5);
    assert_no_temporaries(root.path());
}

#[test]
fn a_manifest_with_a_wrong_layer_size_fails_and_leaves_nothing() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_busybox_layered(&layout, Compression::Gzip);
    push_layout(&reg, &layout, "size:1");
    // The same manifest with the data layer announced 1000 bytes short.
    let (_, body) = reg.get("/v2/size/manifests/1").unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&body).unwrap();
    let size = m["layers"][1]["size"].as_u64().unwrap();
    m["layers"][1]["size"] = (size - 1000).into();
    let bytes = serde_json::to_vec(&m).unwrap();
    assert_eq!(
        reg.put_manifest(
            "size",
            "short",
            "application/vnd.oci.image.manifest.v1+json",
            &bytes
        ),
        201
    );
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let err = pull(&store, &reg, "size:short").unwrap_err();
    eprintln!("short: {err}");
    assert!(
        matches!(
            &err,
            berth_image::Error::Store(berth_store::Error::SizeMismatch { expected, .. })
                if *expected == size - 1000
        ),
        "{err}"
    );
    assert_store_empty(root.path(), &store);
    pull(&store, &reg, "size:1").unwrap();
}

#[test]
fn layers_in_the_store_are_neither_fetched_nor_unpacked_again() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_busybox_layered(&layout, Compression::Gzip);
    push_layout(&reg, &layout, "have:1");
    let layers = layout_layers(&layout);
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let img = pull(&store, &reg, "have:1").unwrap();
    let dirs: Vec<PathBuf> = img.diff_ids.iter().map(|d| store.layer_path(d)).collect();
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();

    // Layer directory there, blob missing: the blob is fetched, the directory kept as it is.
    let d1 = berth_store::Digest::parse(&layers[1].0).unwrap();
    store.blobs().remove(&d1).unwrap();
    let before = ino(&dirs[1]);
    pull(&store, &reg, "have:1").unwrap();
    assert!(store.blobs().contains(&d1), "the missing blob is fetched");
    assert_eq!(ino(&dirs[1]), before, "the layer is not unpacked again");

    // Blob there, layer directory missing: unpacked from the stored blob, not downloaded
    // (the registry's copy is broken now, and the pull still succeeds).
    std::fs::remove_dir_all(&dirs[2]).unwrap();
    let served = registry_blob(&reg, &layers[2].0);
    std::fs::write(&served, b"not the layer").unwrap();
    pull(&store, &reg, "have:1").unwrap();
    assert!(dirs[2].join("usr/sbin/only").is_file());
    assert!(is_opaque(&dirs[2].join("usr/sbin")));

    // Both there: nothing is fetched at all.
    for (d, _) in &layers {
        std::fs::write(registry_blob(&reg, d), b"broken").unwrap();
    }
    let again = pull(&store, &reg, "have:1").unwrap();
    assert_eq!(again.id, img.id);
    assert_no_temporaries(root.path());
}

#[test]
fn concurrent_pulls_sharing_layers_both_succeed() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_busybox_layered(&layout, Compression::Gzip);
    push_layout(&reg, &layout, "twice:a");
    push_layout(&reg, &layout, "twice:b");
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| pull(&store, &reg, "twice:a"));
        let b = s.spawn(|| pull(&store, &reg, "twice:b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.id, b.id);
    let all = store.images().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].repo_tags.len(), 2);
    assert_eq!(count(&root.path().join("layers")), 3);
    assert_no_temporaries(root.path());
}

/// A gzipped layer tar with one file entry named `name` (written into the header as is, so
/// it may be what a tar writer refuses).
fn gz_layer(name: &[u8]) -> (Vec<u8>, String) {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(4);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &b"evil"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let diff_id = berth_store::Digest::of(&tar).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

#[test]
fn bad_layers_are_refused_with_typed_errors_and_leave_nothing() {
    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();
    let (ok_blob, ok_diff) = gz_layer(b"fine");
    type AddLayer<'a> = Box<dyn Fn(&mut debian::LayoutBuilder) + 'a>;
    let cases: Vec<(&str, AddLayer)> = vec![
        // Not gzip after the magic: the blob matches its digest, so the layer is at fault.
        (
            "garbage",
            Box::new(|lb| {
                let mut bad = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
                bad.extend_from_slice(&[0xff; 5000]);
                lb.add_blob(&bad, GZ, &format!("sha256:{}", "0".repeat(64)));
            }),
        ),
        // Gzip of something that is not a tar (a passwd file): refused without quoting it.
        (
            "nottar",
            Box::new(|lb| {
                let text = "root:x:0:0:root:/root:/bin/bash\n".repeat(40);
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
                let blob = gz.finish().unwrap();
                lb.add_blob(
                    &blob,
                    GZ,
                    &berth_store::Digest::of(text.as_bytes()).to_string(),
                );
            }),
        ),
        // A good layer whose diff ID in the config is another's.
        (
            "diffid",
            Box::new(|lb| {
                let (b, _) = gz_layer(b"other");
                lb.add_blob(&b, GZ, &format!("sha256:{}", "1".repeat(64)));
            }),
        ),
        // The same blob twice, with two diff IDs.
        (
            "twice",
            Box::new(|lb| {
                lb.add_blob(&ok_blob, GZ, &format!("sha256:{}", "1".repeat(64)));
            }),
        ),
        // A layer that climbs out of its directory.
        (
            "escape",
            Box::new(|lb| {
                let (b, d) = gz_layer(b"../../escaped");
                lb.add_blob(&b, GZ, &d);
            }),
        ),
    ];
    for (name, add) in &cases {
        let layout = tmp.path().join(name);
        let mut lb = debian::LayoutBuilder::new(&layout);
        lb.add_blob(&ok_blob, GZ, &ok_diff);
        add(&mut lb);
        lb.finish("latest", &["sh"]);
        push_layout(&reg, &layout, &format!("{name}:1"));
        let err = pull(&store, &reg, &format!("{name}:1")).unwrap_err();
        eprintln!("{name}: {err}");
        match (*name, &err) {
            (
                "garbage",
                berth_image::Error::Layer {
                    cause: berth_layer::Error::Read(_),
                    ..
                },
            ) => {}
            ("nottar", berth_image::Error::LayerNotTar { .. }) => {
                assert!(!err.to_string().contains("root:"), "{err}");
            }
            ("diffid", berth_image::Error::DiffIdMismatch { .. }) => {}
            ("twice", berth_image::Error::BadConfig { .. }) => {}
            (
                "escape",
                berth_image::Error::Layer {
                    cause: berth_layer::Error::Escape { .. },
                    ..
                },
            ) => {}
            _ => panic!("{name}: unexpected error {err}"),
        }
        assert_store_empty(root.path(), &store);
    }
    assert!(!tmp.path().join("escaped").exists() && !root.path().join("escaped").exists());
}

/// Every event of a pull, in order.
fn pull_events(
    store: &ImageStore,
    reg: &Registry,
    name: &str,
) -> (berth_image::ImageRecord, Vec<berth_image::PullEvent>) {
    let events = std::sync::Mutex::new(Vec::new());
    let img = store
        .pull_with_progress(
            &Client::new(Options::default()),
            &Reference::parse(&format!("{}/{name}", reg.addr)).unwrap(),
            &Platform::host(),
            &|e| events.lock().unwrap().push(e),
        )
        .unwrap();
    (img, events.into_inner().unwrap())
}

#[test]
fn a_pull_reports_each_layers_progress() {
    use berth_image::PullEvent;
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_busybox_layered(&layout, Compression::Gzip);
    push_layout(&reg, &layout, "progress:1");
    let layers = layout_layers(&layout);
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::open(root.path()).unwrap();

    // Into an empty store: per layer, downloads counted up to the blob's size, then done.
    let (img, events) = pull_events(&store, &reg, "progress:1");
    for (digest, size) in &layers {
        let mine: Vec<&PullEvent> = events
            .iter()
            .filter(|e| match e {
                PullEvent::Exists { digest: d }
                | PullEvent::Done { digest: d }
                | PullEvent::Progress { digest: d, .. } => d.to_string() == *digest,
                PullEvent::Resolved { .. } => false,
            })
            .collect();
        let (last, counts) = mine.split_last().expect("events for every layer");
        assert_eq!(
            **last,
            PullEvent::Done {
                digest: berth_store::Digest::parse(digest).unwrap()
            }
        );
        let done: Vec<u64> = counts
            .iter()
            .map(|e| match e {
                PullEvent::Progress {
                    done,
                    total,
                    downloading,
                    ..
                } => {
                    assert_eq!((*total, *downloading), (*size, true), "{e:?}");
                    *done
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
        assert_eq!(done.last(), Some(size), "counted to the end");
    }

    // Layers present: each is said to exist, nothing else happens.
    let (again, events) = pull_events(&store, &reg, "progress:1");
    assert_eq!(again.id, img.id);
    let exists: Vec<PullEvent> = layers
        .iter()
        .map(|(d, _)| PullEvent::Exists {
            digest: berth_store::Digest::parse(d).unwrap(),
        })
        .collect();
    // First what the tag resolved to (a manifest: its digest), then the layers.
    assert_eq!(
        events[0],
        PullEvent::Resolved {
            digest: berth_store::Digest::parse(&again.manifest).unwrap()
        }
    );
    assert_eq!(events[1..], exists);

    // A layer unpacked from a stored blob is read from the store, not downloaded.
    std::fs::remove_dir_all(store.layer_path(&img.diff_ids[0])).unwrap();
    let (_, events) = pull_events(&store, &reg, "progress:1");
    let first = berth_store::Digest::parse(&layers[0].0).unwrap();
    assert!(events.iter().any(|e| matches!(e,
        PullEvent::Progress { digest, downloading: false, done, .. }
            if *digest == first && *done == layers[0].1)));
    assert!(events.contains(&PullEvent::Done { digest: first }));
    assert_no_temporaries(root.path());
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let opts = std::ffi::CString::new(format!("size={size},mode=0700")).unwrap();
        rustix::mount::mount(
            "tmpfs",
            dir.path(),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            opts.as_c_str(),
        )
        .expect("mount a tmpfs");
        SmallDisk { dir }
    }

    fn resize(&self, size: &str) {
        let opts = std::ffi::CString::new(format!("size={size}")).unwrap();
        rustix::mount::mount_remount(
            self.dir.path(),
            rustix::mount::MountFlags::empty(),
            opts.as_c_str(),
        )
        .expect("resize the tmpfs");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.dir.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn a_disk_that_fills_up_mid_pull_leaves_the_store_as_it_was_and_a_retry_succeeds() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_busybox_layered(&layout, Compression::Gzip);
    push_layout(&reg, &layout, "full:1");
    // Room for the store's database, not for the image (busybox alone is 2 MB unpacked).
    let disk = SmallDisk::new("1m");
    let root = disk.dir.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let err = pull(&store, &reg, "full:1").unwrap_err();
    let shown = format!("{err}");
    let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(
        chain.contains("No space left on device"),
        "the cause is named: {shown} / {chain}"
    );
    assert_store_empty(&root, &store);

    // Room again: the same pull succeeds.
    disk.resize("64m");
    let img = pull(&store, &reg, "full:1").unwrap();
    assert_eq!(store.images().unwrap().len(), 1);
    assert!(
        store
            .layer_path(&img.diff_ids[0])
            .join("bin/busybox")
            .is_file()
    );
    assert_no_temporaries(&root);
    drop(store);
}
