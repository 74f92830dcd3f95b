//! Root filesystems are recorded references: nothing a live root uses is ever collected,
//! images a root uses are removed only by force (and then only their names go), and roots
//! whose makers were killed half-way are found again and removed. Needs root (mounts).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use berth_image::config::Overrides;
use berth_image::rootfs::{RootfsError, RootfsKind};
use berth_image::{Error, ImageStore, Removed};
use common::*;
use serde_json::json;

/// Every regular file of a tree and its content.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// An image of two layers with a few files, tagged `tag`.
fn two_layer_image(s: &ImageStore, tag: &str) -> berth_image::ImageRecord {
    let l1 = layer(&[("bin/tool", b"#!tool\n"), ("etc/motd", b"v1\n")]);
    let l2 = layer(&[("etc/motd", b"v2\n"), ("srv/data", &[7u8; 100_000])]);
    add_image(s, &[l1, l2], json!({"config": {"Cmd": ["/bin/tool"]}}), tag)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-roots-")
        .tempdir()
        .unwrap()
}

#[test]
fn rmi_and_prune_leave_a_live_root_whole_and_its_removal_releases_the_layers() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = two_layer_image(&s, "gc/test:1");
    let dir = t.path().join("b");
    let b = s
        .bundle(
            "gc/test:1",
            &dir,
            RootfsKind::Overlay,
            &Overrides::default(),
        )
        .unwrap();
    let before = files(&b.rootfs.merged());
    assert_eq!(before[Path::new("etc/motd")], b"v2\n");

    // rmi of the image the bundle uses: a conflict naming the user, nothing changes.
    let e = s.remove("gc/test:1", false).unwrap_err();
    assert!(matches!(e, Error::ReferenceInUse { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("unable to remove repository reference \"gc/test:1\" (must force)")
            && msg.contains(&format!("bundle {}", dir.display())),
        "{msg}"
    );
    let e = s.remove(&img.id, false).unwrap_err();
    assert!(matches!(e, Error::ImageInUse { .. }), "{e}");
    assert!(e.to_string().contains("(must be forced)"), "{e}");
    assert_eq!(s.get("gc/test:1").unwrap().id, img.id);

    // Forced: the name goes, the image stays (untagged) with its layers.
    let removed = s.remove("gc/test:1", true).unwrap();
    assert_eq!(
        removed,
        [Removed::Untagged("docker.io/gc/test:1".into())],
        "untagged only"
    );
    assert!(s.lookup("gc/test:1").unwrap().is_none());
    assert!(s.get(&img.id).unwrap().repo_tags.is_empty());

    // Prune, even -a, and GC keep everything the root uses, and say they freed nothing.
    let report = s.prune(true, &|_| false).unwrap();
    assert!(report.removed.is_empty(), "{:?}", report.removed);
    assert_eq!(report.gc.reclaimed, 0);
    assert!(report.gc.layers.is_empty() && report.gc.blobs.is_empty());
    assert_eq!(s.gc().unwrap().reclaimed, 0);
    assert_eq!(files(&b.rootfs.merged()), before, "the root is intact");
    for d in &img.diff_ids {
        assert!(s.layer_path(d).is_dir());
    }
    // It still runs.
    std::fs::write(b.rootfs.merged().join("etc/motd"), "written\n").unwrap();

    // Removing the bundle releases them: the next prune deletes the image and its layers
    // and reports the bytes it freed.
    let layer_bytes: u64 = img.diff_ids.iter().map(|d| du(&s.layer_path(d))).sum();
    s.unbundle(&dir, false).unwrap();
    assert!(s.roots().unwrap().is_empty());
    let report = s.prune(true, &|_| false).unwrap();
    assert!(report.removed.contains(&Removed::Deleted(img.id.clone())));
    assert_eq!(report.gc.layers.len(), 2);
    assert!(
        report.gc.reclaimed >= layer_bytes && layer_bytes > 100_000,
        "{} < {layer_bytes}",
        report.gc.reclaimed
    );
    assert!(layer_dirs(&t.path().join("store")).is_empty());
    assert!(mounts_under(t.path()).is_empty());
}

/// Bytes on disk under `p` (as `du`).
fn du(p: &Path) -> u64 {
    let out = std::process::Command::new("du")
        .args(["-s", "-B1"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn an_image_with_other_names_is_untagged_without_force_and_the_id_is_refused() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = two_layer_image(&s, "names/a:1");
    s.tag("names/a:1", "names/b:1").unwrap();
    let r = s
        .create_rootfs_with(&img, &t.path().join("r"), RootfsKind::Copy)
        .unwrap();
    // Not its last name: untagging needs no force (as Docker).
    assert_eq!(
        s.remove("names/a:1", false).unwrap(),
        [Removed::Untagged("docker.io/names/a:1".into())]
    );
    // Its last name: refused.
    assert!(matches!(
        s.remove("names/b:1", false),
        Err(Error::ReferenceInUse { .. })
    ));
    // By ID, forced: every name goes, the image stays for its user.
    let out = s.remove(&img.id, true).unwrap();
    assert_eq!(out, [Removed::Untagged("docker.io/names/b:1".into())]);
    assert_eq!(s.images().unwrap().len(), 1);
    s.remove_rootfs(&r).unwrap();
    // Now plain removal by ID works.
    assert_eq!(
        s.remove(&img.id, false).unwrap(),
        [Removed::Deleted(img.id.clone())]
    );
}

#[test]
fn a_busy_root_is_not_removed_without_force() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = two_layer_image(&s, "busy/a:1");
    let r = s
        .create_rootfs_with(&img, &t.path().join("r"), RootfsKind::Overlay)
        .unwrap();
    // A process whose root is the root filesystem, as a container's is.
    std::fs::copy("/bin/busybox", r.merged().join("busybox")).unwrap();
    let mut holder = std::process::Command::new("chroot")
        .arg(r.merged())
        .args(["/busybox", "sleep", "60"])
        .spawn()
        .unwrap();
    let pid = holder.id();
    wait_for(|| berth_image::rootfs::user_of(&r.merged()).unwrap() == Some(pid));
    let e = s.remove_rootfs(&r).unwrap_err();
    assert!(
        matches!(e, RootfsError::Busy { pid: p, .. } if p == pid),
        "{e}"
    );
    assert!(r.merged().join("srv/data").is_file(), "untouched");
    assert_eq!(s.roots().unwrap().len(), 1, "still recorded");
    holder.kill().unwrap();
    holder.wait().unwrap();
    s.remove_rootfs(&r).unwrap();
    assert!(mounts_under(t.path()).is_empty());
}

fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out");
}

#[test]
fn prune_running_while_roots_are_made_and_removed_never_takes_a_live_roots_layers() {
    let t = tempdir();
    let store_dir = t.path().join("store");
    let s = Arc::new(ImageStore::open(&store_dir).unwrap());
    let img = two_layer_image(&s, "race/a:1");
    let archive = t.path().join("image.tar");
    {
        let f = std::fs::File::create(&archive).unwrap();
        s.save(&["race/a:1"], f).unwrap();
    }
    let want = {
        let r = s
            .create_rootfs_with(&img, &t.path().join("probe"), RootfsKind::Overlay)
            .unwrap();
        let f = files(&r.merged());
        s.remove_rootfs(&r).unwrap();
        f
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Prunes finished so far: each root waits for two, so at least one whole prune runs
    // while it is recorded.
    let prunes = Arc::new(AtomicUsize::new(0));
    let pruner = {
        let (s, stop, prunes) = (s.clone(), stop.clone(), prunes.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                s.prune(true, &|_| false).unwrap();
                prunes.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut workers = Vec::new();
    for w in 0..3 {
        let (s, prunes) = (s.clone(), prunes.clone());
        let (want, archive, base) = (want.clone(), archive.clone(), t.path().to_path_buf());
        workers.push(std::thread::spawn(move || {
            let mut made = 0;
            for i in 0..8 {
                let kind = if i % 3 == 2 {
                    RootfsKind::Copy
                } else {
                    RootfsKind::Overlay
                };
                let dir = base.join(format!("w{w}-{i}"));
                // The pruner may have deleted the image while no root used it: load it again.
                let b = match s.bundle("race/a:1", &dir, kind, &Overrides::default()) {
                    Ok(b) => b,
                    Err(RootfsError::Store(Error::NoSuchImage(_))) => {
                        s.load(std::io::BufReader::new(
                            std::fs::File::open(&archive).unwrap(),
                        ))
                        .unwrap();
                        continue;
                    }
                    Err(e) => panic!("worker {w}: {e}"),
                };
                made += 1;
                // The root and the layers under it stay whole while it is recorded (overlayfs
                // would go on showing files it has looked up already: check the layers).
                let whole = |what: &str| {
                    assert_eq!(files(&b.rootfs.merged()), want, "{what}");
                    for d in &b.rootfs.diff_ids {
                        assert!(!files(&s.layer_path(d)).is_empty(), "{what}: layer {d}");
                    }
                };
                whole("made whole");
                let seen = prunes.load(Ordering::SeqCst);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while prunes.load(Ordering::SeqCst) < seen + 2 {
                    assert!(std::time::Instant::now() < deadline, "the pruner stopped");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                whole("whole after a prune");
                s.unbundle(&dir, false).unwrap();
            }
            made
        }));
    }
    let made: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    pruner.join().unwrap();
    assert!(made >= 8, "{made} roots made");
    assert!(s.roots().unwrap().is_empty());
    assert!(mounts_under(t.path()).is_empty());
    // Everything collectable goes once nobody uses it.
    s.prune(true, &|_| false).unwrap();
    assert!(layer_dirs(&store_dir).is_empty());
}

#[test]
fn stale_records_of_roots_that_are_gone_are_dropped_by_the_collector() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = two_layer_image(&s, "stale/a:1");
    let r = s
        .create_rootfs_with(&img, &t.path().join("r"), RootfsKind::Copy)
        .unwrap();
    // Deleted by hand (no mount: a copy).
    std::fs::remove_dir_all(&r.dir).unwrap();
    assert_eq!(s.roots().unwrap().len(), 1);
    s.remove("stale/a:1", true).unwrap();
    s.prune(true, &|_| false).unwrap();
    assert!(s.roots().unwrap().is_empty());
    assert!(s.images().unwrap().is_empty());
}

#[test]
fn the_store_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempdir();
    let root = t.path().join("store");
    std::fs::create_dir(&root).unwrap();
    // A store made before: open 0755 everywhere.
    for d in ["layers", "tmp", "content"] {
        std::fs::create_dir(root.join(d)).unwrap();
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = ImageStore::open(&root).unwrap();
    two_layer_image(&s, "private/a:1");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o700);
    for d in ["layers", "tmp", "content"] {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&root.join("metadata.redb")), 0o600);
    assert_eq!(mode(&root.join("lock")), 0o600);
    // Another user reaches nothing: not the lock, not a blob, not a layer.
    let blob = std::fs::read_dir(root.join("content/blobs/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for p in [root.join("lock"), blob, root.join("layers")] {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{} readable by nobody", p.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
