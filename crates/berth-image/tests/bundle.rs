//! Root filesystems (overlayfs and the copying fallback) of real multi-layer images with
//! whiteouts, and OCI bundles made from images, run with the real `berth runtime`. As root;
//! every test checks it left no mount behind.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_image::bundle::{Bundle, annotation, runtime_spec};
use berth_image::config::{ConfigError, ImageConfiguration, Overrides};
use berth_image::rootfs::{Root, RootfsError, RootfsKind};
use berth_image::{Error, ImageRecord, ImageStore};
use berth_registry::{Client, Options, Platform, Reference};
use berth_testkit::busybox_rootfs;
use berth_testkit::images::{Registry, push_busybox, tar_dir};
use berth_testkit::tar::Layer;
use serde_json::{Value, json};

mod common;
use common::{add_image, mounts_under, run_bundle, sh, sha};

// ---- helpers (images made here) ----

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-bundle-")
        .tempdir()
        .expect("tempdir")
}

/// busybox, then layers with every kind of entry, whiteouts, an opaque directory, changed
/// metadata and a directory replaced by a symlink.
fn layered_image(s: &ImageStore, tag: &str) -> ImageRecord {
    let base = tar_dir(&busybox_rootfs());
    let l2 = Layer::new()
        .dir("data/", 0o755)
        .file("data/a", 0o644, b"A")
        .dir("data/sub/", 0o700)
        .file("data/sub/b", 0o600, b"B")
        .dir("opt/", 0o755)
        .file_owned("opt/a", 0o640, 1000, 1000, b"hard")
        .link(tar::EntryType::Link, "opt/b", "opt/a")
        .file("opt/c", 0o644, b"C")
        .link(tar::EntryType::Symlink, "opt/link", "/etc/hostname")
        .node(tar::EntryType::Char, "opt/null", 1, 3)
        .node(tar::EntryType::Fifo, "opt/fifo", 0, 0)
        .xattr_file("opt/x", "user.test", b"1")
        .dir("srv/", 0o755)
        .file("srv/tool", 0o4755, b"#!/bin/sh\n")
        .xattr_file("srv/attr", "user.test", b"1")
        .file("etc/motd", 0o644, b"v1\n")
        .tar();
    let l3 = Layer::new()
        .dir("opt/", 0o755)
        .file("opt/.wh.c", 0o644, b"")
        .dir("data/", 0o750)
        .file("data/.wh..wh..opq", 0o644, b"")
        .file("data/new", 0o644, b"N")
        .file("etc/motd", 0o644, b"v2\n")
        .dir_owned("var/", 0o700, 5, 5)
        .tar();
    let l4 = Layer::new()
        .link(tar::EntryType::Symlink, "mnt", "/tmp")
        .file("bin/.wh.zcat", 0o644, b"")
        .file("opt/.wh.x", 0o644, b"")
        .tar();
    add_image(
        s,
        &[base, l2, l3, l4],
        json!({"config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin"]}}),
        tag,
    )
}

/// Every entry of a tree (root excluded): kind, mode, owner, mtime, content, link target,
/// device, xattrs (overlayfs' own left out); and the groups of paths sharing an inode.
fn describe(root: &Path) -> (BTreeMap<String, String>, Vec<Vec<String>>) {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let what = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if ft.is_file() {
                inodes.entry(md.ino()).or_default().push(rel.clone());
                format!("file {}", sha(&std::fs::read(&p).unwrap()))
            } else if ft.is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_char_device() || ft.is_block_device() {
                format!("dev {:x}", md.rdev())
            } else if ft.is_fifo() {
                "fifo".into()
            } else {
                "other".into()
            };
            let xattrs: Vec<String> = berth_layer::pack::xattrs(&p)
                .unwrap()
                .into_iter()
                .filter(|(k, _)| !k.as_bytes().starts_with(b"trusted.overlay."))
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), String::from_utf8_lossy(&v)))
                .collect();
            out.insert(
                rel,
                format!(
                    "{what} mode={:o} owner={}:{} mtime={}.{} xattrs={xattrs:?}",
                    if ft.is_symlink() { 0 } else { md.mode() },
                    md.uid(),
                    md.gid(),
                    md.mtime(),
                    md.mtime_nsec()
                ),
            );
        }
    }
    let mut groups: Vec<Vec<String>> = inodes
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    (out, groups)
}

// ---- root filesystems ----

#[test]
fn overlay_and_copy_give_the_same_view_of_a_layered_image() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = layered_image(&s, "localhost/layered:1");
    let ov = s
        .create_rootfs_with(&img, &t.path().join("ov"), RootfsKind::Overlay)
        .unwrap();
    let cp = s
        .create_rootfs_with(&img, &t.path().join("cp"), RootfsKind::Copy)
        .unwrap();
    let auto = s
        .create_rootfs_with(&img, &t.path().join("auto"), RootfsKind::Auto)
        .unwrap();
    assert_eq!(ov.kind(), RootfsKind::Overlay);
    assert_eq!(cp.kind(), RootfsKind::Copy);
    assert_eq!(auto.kind(), RootfsKind::Overlay, "overlayfs works here");
    assert_eq!(mounts_under(t.path()).len(), 2);

    let (a, a_links) = describe(&ov.merged());
    let (b, b_links) = describe(&cp.merged());
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{k}");
    }
    assert_eq!(
        a.len(),
        b.len(),
        "{:?}",
        b.keys().filter(|k| !a.contains_key(*k)).collect::<Vec<_>>()
    );
    assert_eq!(a_links, b_links);
    assert_eq!(a_links, [vec!["opt/a".to_string(), "opt/b".to_string()]]);
    // The whiteouts, the opaque directory and the replaced directory did their work.
    for gone in ["opt/c", "opt/x", "data/a", "data/sub", "bin/zcat"] {
        assert!(!a.contains_key(gone), "{gone}");
    }
    assert!(!a.keys().any(|k| k.starts_with("mnt/")));
    assert!(a["srv/attr"].contains("user.test=1"), "{}", a["srv/attr"]);
    assert!(a["mnt"].starts_with("symlink /tmp"));
    assert!(a["data/new"].starts_with("file"));
    assert!(a["data"].contains("mode=40750"));
    assert!(a["var"].contains("mode=40700 owner=5:5"));
    assert!(
        a["srv/tool"].contains("mode=104755"),
        "setuid kept: {}",
        a["srv/tool"]
    );
    assert_eq!(
        std::fs::read(cp.merged().join("etc/motd")).unwrap(),
        b"v2\n"
    );
    assert_eq!(
        b["opt/a"].split(" mode=").nth(1).unwrap(),
        "100640 owner=1000:1000 mtime=1700000000.0 xattrs=[]"
    );

    // The kind survives a reopen; remove handles both.
    assert_eq!(s.open_root(&cp.id).unwrap(), cp);
    assert_eq!(s.open_root(&ov.id).unwrap(), ov);
    assert_eq!(Root::open(&ov.dir).unwrap(), ov.root);
    assert_eq!(s.roots().unwrap().len(), 3);
    for r in [ov, cp, auto] {
        r.check().unwrap();
        s.remove_rootfs(&r).unwrap();
        assert!(!r.dir.exists() && !r.merged().exists());
        assert!(matches!(r.check(), Err(RootfsError::NotFound(_))));
        // Gone, and unrecorded.
        assert!(matches!(s.remove_rootfs(&r), Err(RootfsError::NotFound(_))));
    }
    assert!(s.roots().unwrap().is_empty());
    assert!(mounts_under(t.path()).is_empty());
    // The shared layers are untouched.
    assert!(s.layer_path(&img.diff_ids[1]).join("opt/c").is_file());
}

#[test]
fn a_layer_repeated_in_an_image_mounts_and_counts_where_it_is_highest() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let a = Layer::new()
        .file("x", 0o644, b"A")
        .dir("d/", 0o755)
        .file("d/f", 0o644, b"F")
        .tar();
    let b = Layer::new()
        .file(".wh.x", 0o644, b"")
        .file("y", 0o644, b"Y")
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/g", 0o644, b"G")
        .tar();
    let img = add_image(&s, &[a.clone(), b, a], json!({}), "localhost/twice:1");
    assert_eq!(img.diff_ids[0], img.diff_ids[2]);
    let ov = s
        .create_rootfs_with(&img, &t.path().join("ov"), RootfsKind::Overlay)
        .unwrap();
    let cp = s
        .create_rootfs_with(&img, &t.path().join("cp"), RootfsKind::Copy)
        .unwrap();
    assert_eq!(ov.kind(), RootfsKind::Overlay, "mounted, not copied");
    // The upper copy of the layer brings back what the middle layer deleted.
    let m = ov.merged();
    assert_eq!(std::fs::read(m.join("x")).unwrap(), b"A");
    assert_eq!(std::fs::read(m.join("y")).unwrap(), b"Y");
    let mut d: Vec<String> = std::fs::read_dir(m.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    d.sort();
    assert_eq!(d, ["f", "g"]);
    assert_eq!(
        describe(&m),
        describe(&cp.merged()),
        "the same as applying every layer"
    );
    s.remove_rootfs(&ov).unwrap();
    s.remove_rootfs(&cp).unwrap();
    assert!(mounts_under(t.path()).is_empty());
}

#[test]
fn a_copy_keeps_xattrs_devices_and_links() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = layered_image(&s, "localhost/layered:2");
    let cp = s
        .create_rootfs_with(&img, &t.path().join("cp"), RootfsKind::Copy)
        .unwrap();
    let m = cp.merged();
    assert_eq!(
        berth_layer::pack::xattr(&m.join("srv/attr"), std::ffi::OsStr::new("user.test"))
            .unwrap()
            .as_deref(),
        Some(&b"1"[..])
    );
    let null = std::fs::symlink_metadata(m.join("opt/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(
        std::fs::symlink_metadata(m.join("opt/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        std::fs::metadata(m.join("opt/a")).unwrap().ino(),
        std::fs::metadata(m.join("opt/b")).unwrap().ino()
    );
    assert_eq!(
        std::fs::read_link(m.join("opt/link")).unwrap(),
        Path::new("/etc/hostname")
    );
    // A copy is a real directory: no mount.
    assert!(mounts_under(t.path()).is_empty());
    let state: Value =
        serde_json::from_slice(&std::fs::read(cp.dir.join("rootfs.json")).unwrap()).unwrap();
    assert_eq!(state["kind"], "copy");
    s.remove_rootfs(&cp).unwrap();
}

#[test]
fn auto_falls_back_to_a_copy_where_overlayfs_cannot_be_used() {
    // More layers than one page of mount options can list: overlayfs cannot stack them.
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let mut layers = vec![tar_dir(&busybox_rootfs())];
    for i in 0..45 {
        layers.push(
            Layer::new()
                .dir("layers/", 0o755)
                .file(&format!("layers/{i}"), 0o644, format!("{i}\n").as_bytes())
                .file("layers/top", 0o644, format!("{i}\n").as_bytes())
                .tar(),
        );
    }
    let img = add_image(
        &s,
        &layers,
        json!({"config": {"Cmd": ["cat", "/layers/top", "/layers/0"]}}),
        "localhost/tall:1",
    );
    let e = s
        .create_rootfs_with(&img, &t.path().join("ov"), RootfsKind::Overlay)
        .unwrap_err();
    assert!(
        matches!(&e, RootfsError::Overlay { source, .. } if source.raw_os_error() == Some(7)),
        "E2BIG: {e}"
    );
    assert!(!t.path().join("ov").exists(), "nothing left");
    let dir = t.path().join("b");
    let b = s
        .bundle(
            "localhost/tall:1",
            &dir,
            RootfsKind::Auto,
            &Overrides::default(),
        )
        .unwrap();
    assert_eq!(b.rootfs.kind(), RootfsKind::Copy);
    assert!(!dir.join(".berth-rootfs/upper").exists());
    let (code, out, err) = run_bundle(&dir);
    assert_eq!((code, out.as_str()), (0, "44\n0\n"), "{err}");
    s.unbundle(&b.dir, false).unwrap();
    assert!(!dir.exists());
    assert!(mounts_under(t.path()).is_empty());
}

// ---- bundles ----

#[test]
fn a_bundle_of_a_pulled_image_runs_with_the_berth_runtime() {
    let reg = Registry::start();
    push_busybox(&reg, "bb:run");
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let r = Reference::parse(&format!("{}/bb:run", reg.addr)).unwrap();
    s.pull(
        &Client::new(Options::default()),
        &r,
        &<Platform as berth_registry::PlatformExt>::host(),
    )
    .unwrap();
    for kind in [RootfsKind::Overlay, RootfsKind::Copy] {
        let dir = t.path().join(format!("bundle-{kind:?}"));
        let o = Overrides {
            cmd: None,
            env: vec!["GREETING=hello from the image".into()],
            user: Some("user".into()),
            workdir: Some("/tmp".into()),
            hostname: Some("boxy".into()),
            ..sh("echo \"$GREETING\"; id -u; id -g; pwd; hostname")
        };
        let b = s.bundle(&r.to_string(), &dir, kind, &o).unwrap();
        assert_eq!(b.rootfs.kind(), kind);
        assert!(dir.join("config.json").is_file() && dir.join("rootfs/bin/busybox").is_file());
        let (code, out, err) = run_bundle(&dir);
        assert_eq!(code, 0, "{kind:?}: {err}");
        assert_eq!(
            out, "hello from the image\n1000\n1000\n/tmp\nboxy\n",
            "{kind:?}"
        );
        s.unbundle(&b.dir, false).unwrap();
        assert!(!dir.exists());
    }
    assert!(
        mounts_under(t.path()).is_empty(),
        "{:?}",
        mounts_under(t.path())
    );
}

/// A bundle's container runs under Docker's default seccomp profile: a user namespace, which
/// needs no capability, is refused there, and allowed once the profile is taken out.
#[test]
fn a_bundles_container_runs_under_the_default_seccomp_profile() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    add_image(
        &s,
        &[tar_dir(&busybox_rootfs())],
        json!({"config": {"Cmd": ["sh"]}}),
        "localhost/seccomp:1",
    );
    let dir = t.path().join("b");
    let b = s
        .bundle(
            "localhost/seccomp:1",
            &dir,
            RootfsKind::Overlay,
            &sh("unshare -U true 2>/dev/null; echo unshare=$?"),
        )
        .unwrap();
    let seccomp = b.spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
    assert_eq!(
        seccomp.default_action(),
        oci_spec::runtime::LinuxSeccompAction::ScmpActErrno
    );
    let (code, out, err) = run_bundle(&dir);
    assert_eq!((code, out.as_str()), (0, "unshare=1\n"), "{err}");
    // The control: without the profile the same call works.
    let config = dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    v["linux"].as_object_mut().unwrap().remove("seccomp");
    std::fs::write(&config, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, out, err) = run_bundle(&dir);
    assert_eq!((code, out.as_str()), (0, "unshare=0\n"), "{err}");
    s.unbundle(&dir, false).unwrap();
}

/// busybox plus a layer with /data seeded, under a config that uses every field.
fn configured_image(s: &ImageStore, tag: &str) -> ImageRecord {
    let base = tar_dir(&busybox_rootfs());
    let extra = Layer::new()
        .dir_owned("data/", 0o750, 1000, 1000)
        .file_owned("data/seed", 0o640, 1000, 1000, b"seeded\n")
        .file(
            "etc/group",
            0o644,
            b"root:x:0:\nuser:x:1000:\nnogroup:x:65534:\naudio:x:29:user\nvideo:x:44:user\n",
        )
        .dir("srv/", 0o755)
        .tar();
    add_image(
        s,
        &[base, extra],
        json!({
            "architecture": "amd64", "os": "linux", "variant": "v3",
            "author": "berth tests", "created": "2026-01-02T03:04:05Z",
            "config": {
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": ["echo from-image-cmd"],
                "Env": ["PATH=/bin:/usr/bin", "MODE=image", "KEEP=1"],
                "WorkingDir": "/srv",
                "User": "user",
                "Labels": {"com.example.app": "demo", "org.opencontainers.image.author": "label wins"},
                "StopSignal": "SIGQUIT",
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
                "Volumes": {"/data": {}, "/var/cache/app": {}}
            }
        }),
        tag,
    )
}

#[test]
fn the_image_config_becomes_the_runtime_spec() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    configured_image(&s, "localhost/configured:1");
    let dir = t.path().join("b");
    let o = Overrides {
        env: vec!["MODE=run".into(), "EXTRA=2".into()],
        ..Default::default()
    };
    let b = s
        .bundle("localhost/configured:1", &dir, RootfsKind::Overlay, &o)
        .unwrap();
    let spec = &b.spec;
    let p = spec.process().as_ref().unwrap();
    assert_eq!(
        p.args().as_ref().unwrap(),
        &["/bin/sh", "-c", "echo from-image-cmd"]
    );
    assert_eq!(
        p.env().as_ref().unwrap(),
        &["PATH=/bin:/usr/bin", "MODE=run", "KEEP=1", "EXTRA=2"],
        "the image's Env merged with the run's, no default PATH added"
    );
    assert_eq!(p.cwd(), Path::new("/srv"));
    assert!(!p.terminal().unwrap_or(false));
    let u = p.user();
    assert_eq!((u.uid(), u.gid()), (1000, 1000));
    assert_eq!(u.additional_gids().as_deref(), Some(&[29, 44][..]));
    let ann = spec.annotations().as_ref().unwrap();
    assert_eq!(ann[annotation::OS], "linux");
    assert_eq!(ann[annotation::ARCHITECTURE], "amd64");
    assert_eq!(ann[annotation::VARIANT], "v3");
    assert_eq!(
        ann[annotation::AUTHOR],
        "label wins",
        "labels take precedence"
    );
    assert_eq!(ann[annotation::CREATED], "2026-01-02T03:04:05Z");
    assert_eq!(ann[annotation::STOP_SIGNAL], "SIGQUIT");
    assert_eq!(ann[annotation::EXPOSED_PORTS], "53/udp,8080/tcp");
    assert_eq!(ann["com.example.app"], "demo");
    assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
    assert!(!spec.root().as_ref().unwrap().readonly().unwrap_or(false));

    // Volumes: bind mounts of bundle directories, seeded from the image.
    let mounts = spec.mounts().as_ref().unwrap();
    let vols: Vec<_> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("bind"))
        .map(|m| {
            (
                m.destination().display().to_string(),
                m.source().as_ref().unwrap().display().to_string(),
            )
        })
        .collect();
    assert_eq!(
        vols,
        [
            ("/data".to_string(), "volumes/data".to_string()),
            (
                "/var/cache/app".to_string(),
                "volumes/var_cache_app".to_string()
            )
        ]
    );
    assert_eq!(b.volumes.len(), 2);
    let seeded = dir.join("volumes/data");
    assert_eq!(std::fs::read(seeded.join("seed")).unwrap(), b"seeded\n");
    let md = std::fs::metadata(&seeded).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (1000, 0o750));
    assert!(dir.join("volumes/var_cache_app").is_dir());

    // config.json says the same, and reopening finds it all.
    let reopened = Bundle::open(&s, &dir).unwrap();
    assert_eq!(&reopened.spec, spec);
    assert_eq!(reopened.volumes, b.volumes);
    assert_eq!(reopened.rootfs, b.rootfs);

    // It runs.
    let (code, out, err) = run_bundle(&dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "from-image-cmd\n");
    s.unbundle(&b.dir, false).unwrap();

    let b = s
        .bundle(
            "localhost/configured:1",
            &dir,
            RootfsKind::Copy,
            &sh("cat /data/seed; echo kept > /data/out; id -G; echo $MODE $KEEP"),
        )
        .unwrap();
    assert_eq!(b.rootfs.kind(), RootfsKind::Copy);
    // Data written to a volume stays out of the root filesystem.
    let (code, out, err) = run_bundle(&dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "seeded\n1000 29 44\nimage 1\n");
    assert_eq!(
        std::fs::read(dir.join("volumes/data/out")).unwrap(),
        b"kept\n"
    );
    assert!(!dir.join("rootfs/data/out").exists());
    s.unbundle(&dir, false).unwrap();
    assert!(!dir.exists());
    assert!(mounts_under(t.path()).is_empty());
}

#[test]
fn runtime_spec_alone() {
    let root = tempdir();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/passwd"), "app:x:7:8::/:/bin/sh\n").unwrap();
    let cfg: ImageConfiguration = serde_json::from_value(json!({
        "os": "linux", "architecture": "arm64",
        "config": {"Cmd": ["run"], "User": "app"},
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    let spec = runtime_spec(&cfg, root.path(), &Overrides::default()).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &["run"]);
    assert_eq!((p.user().uid(), p.user().gid()), (7, 8));
    assert_eq!(p.env().as_ref().unwrap()[0].split('=').next(), Some("PATH"));
    assert_eq!(spec.hostname().as_deref(), Some("berth"));
    assert_eq!(spec.root().as_ref().unwrap().path(), root.path());
    let caps = p.capabilities().as_ref().unwrap();
    assert!(caps.bounding().as_ref().unwrap().len() >= 14);
    // Unknown users are errors.
    let cfg: ImageConfiguration = serde_json::from_value(json!({
        "os": "linux", "architecture": "arm64",
        "config": {"Cmd": ["x"], "User": "ghost"},
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    assert!(matches!(
        runtime_spec(&cfg, root.path(), &Overrides::default()),
        Err(RootfsError::Config(ConfigError::Unknown { .. }))
    ));
}

#[test]
fn bad_input_is_refused_with_typed_errors_and_leaves_nothing() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    configured_image(&s, "localhost/configured:2");
    let dir = t.path().join("b");
    // Unknown image.
    let e = s
        .bundle(
            "localhost/nothing:here",
            &dir,
            RootfsKind::Auto,
            &Overrides::default(),
        )
        .unwrap_err();
    assert!(
        matches!(e, RootfsError::Store(Error::NoSuchImage(_))),
        "{e}"
    );
    assert!(!dir.exists());
    // The directory exists already: refused, untouched.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mine"), b"x").unwrap();
    let e = s
        .bundle(
            "localhost/configured:2",
            &dir,
            RootfsKind::Auto,
            &Overrides::default(),
        )
        .unwrap_err();
    assert!(matches!(&e, RootfsError::Exists(p) if p == &dir), "{e}");
    assert!(dir.join("mine").is_file());
    // Not a bundle: unbundle and open refuse, and delete nothing.
    assert!(matches!(
        s.unbundle(&dir, false),
        Err(RootfsError::NotFound(_))
    ));
    assert!(matches!(
        Bundle::open(&s, &dir),
        Err(RootfsError::NotFound(_))
    ));
    assert!(dir.join("mine").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
    // A user the image does not know: refused after the rootfs was made, which is undone.
    let o = Overrides {
        user: Some("ghost".into()),
        ..Default::default()
    };
    for kind in [RootfsKind::Overlay, RootfsKind::Copy] {
        let e = s
            .bundle("localhost/configured:2", &dir, kind, &o)
            .unwrap_err();
        assert!(
            matches!(
                e,
                RootfsError::Config(ConfigError::Unknown { what: "user", .. })
            ),
            "{e}"
        );
        assert!(!dir.exists());
    }
    // A volume path that is not absolute.
    add_image(
        &s,
        &[tar_dir(&busybox_rootfs())],
        json!({"config": {"Cmd": ["sh"], "Volumes": {"relative/path": {}}}}),
        "localhost/badvol:1",
    );
    let e = s
        .bundle(
            "localhost/badvol:1",
            &dir,
            RootfsKind::Copy,
            &Overrides::default(),
        )
        .unwrap_err();
    assert!(matches!(e, RootfsError::Invalid(_)), "{e}");
    assert!(!dir.exists());
    // A volume where the image has a file.
    add_image(
        &s,
        &[tar_dir(&busybox_rootfs())],
        json!({"config": {"Cmd": ["sh"], "Volumes": {"/etc/passwd": {}}}}),
        "localhost/badvol:2",
    );
    let e = s
        .bundle(
            "localhost/badvol:2",
            &dir,
            RootfsKind::Overlay,
            &Overrides::default(),
        )
        .unwrap_err();
    assert!(matches!(e, RootfsError::Invalid(_)), "{e}");
    assert!(!dir.exists());
    // A rootfs directory that exists.
    std::fs::create_dir(t.path().join("taken")).unwrap();
    let img = s.get("localhost/configured:2").unwrap();
    assert!(matches!(
        s.create_rootfs_with(&img, &t.path().join("taken"), RootfsKind::Copy),
        Err(RootfsError::Exists(_))
    ));
    assert!(matches!(
        s.create_rootfs(&img, &t.path().join("taken")),
        Err(Error::Io { .. })
    ));
    assert!(t.path().join("taken").is_dir());
    assert!(matches!(
        Root::open(&t.path().join("taken")),
        Err(berth_image::rootfs::SnapshotError::NotFound(_))
    ));
    assert!(mounts_under(t.path()).is_empty());
}
