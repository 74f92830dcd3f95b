//! What containers change (diff), images made of it (commit) and tars of whole root
//! filesystems (export), for both kinds of root filesystem, with real containers run by the
//! `berth runtime`. As root; every test checks it left no mount behind.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::commit::{Change, ChangeKind, CommitOptions, diff, export};
use berth_image::config::Overrides;
use berth_image::rootfs::{RootfsError, RootfsKind};
use berth_image::{Error, ImageRecord, ImageStore};
use berth_registry::Reference;
use berth_testkit::busybox_rootfs;
use berth_testkit::images::tar_dir;
use berth_testkit::tar::Layer;
use serde_json::{Value, json};

mod common;
use common::{add_image, mounts_under, run_bundle, sh, sha};

// ---- helpers (images made here) ----

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-commit-")
        .tempdir()
        .expect("tempdir")
}

/// Every entry of a tree (root excluded): kind, mode, owner, mtime (seconds: layers keep
/// no more), content, link target,
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
                    "{what} mode={:o} owner={}:{} mtime={} xattrs={xattrs:?}",
                    if ft.is_symlink() { 0 } else { md.mode() },
                    md.uid(),
                    md.gid(),
                    md.mtime()
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

// ---- tests ----

/// busybox plus a layer with /data, /opt (a hard link among its files) and /etc/motd.
fn base_image(s: &ImageStore, tag: &str) -> ImageRecord {
    let extra = Layer::new()
        .dir("data/", 0o755)
        .file("data/a", 0o644, b"A")
        .dir("data/sub/", 0o755)
        .file("data/sub/b", 0o644, b"B")
        .dir("opt/", 0o755)
        .file("opt/a", 0o644, b"a")
        .link(tar::EntryType::Link, "opt/b", "opt/a")
        .file("opt/c", 0o644, b"c")
        .file("etc/motd", 0o644, b"welcome\n")
        .tar();
    add_image(
        s,
        &[tar_dir(&busybox_rootfs()), extra],
        json!({"config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin"], "Labels": {"base": "yes"}}}),
        tag,
    )
}

fn change(kind: ChangeKind, path: &str) -> Change {
    Change {
        kind,
        path: PathBuf::from(path),
    }
}

/// The image config of a record.
fn config_of(s: &ImageStore, rec: &ImageRecord) -> Value {
    let d = berth_store::Digest::parse(&rec.id).unwrap();
    serde_json::from_slice(&std::fs::read(s.blobs().path(&d)).unwrap()).unwrap()
}

fn new_layer_existed(seen: &[PathBuf], layer: &Path) -> bool {
    seen.iter().any(|p| p == layer)
}

fn layer_dirs(store_root: &Path) -> usize {
    std::fs::read_dir(store_root.join("layers"))
        .unwrap()
        .count()
}

#[test]
fn diff_reports_what_changed_like_docker_diff() {
    use ChangeKind::{Added as A, Changed as C, Deleted as D};
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = base_image(&s, "localhost/base:diff");
    for kind in [RootfsKind::Overlay, RootfsKind::Copy] {
        let r = s
            .create_rootfs_with(&img, &t.path().join(format!("{kind:?}")), kind)
            .unwrap();
        assert_eq!(diff(&r).unwrap(), [], "{kind:?}: nothing changed yet");
        let m = r.merged();
        std::fs::write(m.join("new.txt"), b"new").unwrap();
        std::fs::create_dir(m.join("newdir")).unwrap();
        std::fs::write(m.join("newdir/f"), b"f").unwrap();
        std::fs::write(m.join("etc/hostname"), b"changed\n").unwrap();
        std::fs::set_permissions(
            m.join("etc/passwd"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        std::fs::remove_dir_all(m.join("data")).unwrap();
        std::fs::remove_dir_all(m.join("opt")).unwrap();
        std::fs::create_dir(m.join("opt")).unwrap();
        std::fs::write(m.join("opt/z"), b"z").unwrap();
        std::fs::remove_file(m.join("bin/zcat")).unwrap();
        let want = [
            change(C, "/bin"),
            change(D, "/bin/zcat"),
            change(D, "/data"),
            change(C, "/etc"),
            change(C, "/etc/hostname"),
            change(C, "/etc/passwd"),
            change(A, "/new.txt"),
            change(A, "/newdir"),
            change(A, "/newdir/f"),
            change(C, "/opt"),
            change(D, "/opt/a"),
            change(D, "/opt/b"),
            change(D, "/opt/c"),
            change(A, "/opt/z"),
        ];
        assert_eq!(diff(&r).unwrap(), want, "{kind:?}");
        let shown: Vec<String> = diff(&r).unwrap().iter().map(|c| c.to_string()).collect();
        assert_eq!(shown[..3], ["C /bin", "D /bin/zcat", "D /data"]);
        s.remove_rootfs(&r).unwrap();
        assert!(matches!(diff(&r), Err(RootfsError::NotFound(_))));
    }
    assert!(mounts_under(t.path()).is_empty());
}

#[test]
fn a_commit_is_an_image_that_runs_with_the_changes() {
    let t = tempdir();
    let store_root = t.path().join("store");
    let s = ImageStore::open(&store_root).unwrap();
    let base = base_image(&s, "localhost/base:commit");
    let mut layers_seen: Vec<PathBuf> = base.diff_ids.iter().map(|d| s.layer_path(d)).collect();
    for kind in [RootfsKind::Overlay, RootfsKind::Copy] {
        let layers_before = layer_dirs(&store_root);
        let dir = t.path().join(format!("b-{kind:?}"));
        // A real container makes the changes.
        let b = s
            .bundle(
                "localhost/base:commit",
                &dir,
                kind,
                &sh(
                    "echo committed > /hello && ln /hello /hello2 && rm /etc/motd && \
                     rm -r /data && mkdir -p /opt/new && echo x > /opt/new/f && \
                     chown 1000:1000 /opt/new/f && chmod 4750 /opt/new/f",
                ),
            )
            .unwrap();
        let (code, _, err) = run_bundle(&dir);
        assert_eq!(code, 0, "{kind:?}: {err}");
        let (container_view, container_links) = describe(&b.rootfs.merged());
        let opts = CommitOptions {
            tag: Some(format!("localhost/committed:{kind:?}").to_lowercase()),
            author: Some("Tester <t@example.com>".into()),
            message: Some("added hello".into()),
            created_by: Some("/bin/sh -c echo committed".into()),
            changes: vec![
                r#"CMD ["cat", "/hello"]"#.into(),
                "ENV FOO=bar".into(),
                "LABEL stage=committed".into(),
                "WORKDIR /opt".into(),
                "USER user".into(),
                "EXPOSE 8080".into(),
            ],
        };
        let rec = s.commit(&b.rootfs, "localhost/base:commit", &opts).unwrap();
        s.unbundle(&b.dir, false).unwrap();

        // The record: the base's layers plus one, only that one unpacked.
        assert_eq!(rec.diff_ids.len(), base.diff_ids.len() + 1);
        assert_eq!(rec.diff_ids[..base.diff_ids.len()], base.diff_ids[..]);
        // (Both kinds may well make the very same layer: packing is deterministic.)
        let new_layer = s.layer_path(rec.diff_ids.last().unwrap());
        assert!(new_layer.is_dir());
        let fresh = !new_layer_existed(&layers_seen, &new_layer);
        assert_eq!(layer_dirs(&store_root), layers_before + usize::from(fresh));
        layers_seen.push(new_layer);
        assert_eq!(
            rec.repo_tags,
            [Reference::parse(opts.tag.as_deref().unwrap())
                .unwrap()
                .to_string()]
        );
        assert_eq!(
            s.lookup(opts.tag.as_deref().unwrap()).unwrap().unwrap().id,
            rec.id
        );
        let cfg = config_of(&s, &rec);
        assert_eq!(cfg["author"], "Tester <t@example.com>");
        assert_eq!(cfg["comment"], "added hello");
        let last = cfg["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["created_by"], "/bin/sh -c echo committed");
        assert_eq!(last["author"], "Tester <t@example.com>");
        assert_eq!(last["comment"], "added hello");
        assert!(last.get("empty_layer").is_none());
        let c = &cfg["config"];
        assert_eq!(c["Cmd"], json!(["cat", "/hello"]));
        assert_eq!(c["Env"], json!(["PATH=/bin:/usr/bin", "FOO=bar"]));
        assert_eq!(c["Labels"], json!({"base": "yes", "stage": "committed"}));
        assert_eq!(
            (c["WorkingDir"].clone(), c["User"].clone()),
            (json!("/opt"), json!("user"))
        );
        assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
        assert_eq!(cfg["rootfs"]["diff_ids"], json!(rec.diff_ids));

        // The new image's root filesystem is what the container left.
        let again = s
            .create_rootfs_with(
                &rec,
                &t.path().join(format!("again-{kind:?}")),
                RootfsKind::Copy,
            )
            .unwrap();
        let (view, links) = describe(&again.merged());
        for (k, v) in &container_view {
            assert_eq!(Some(v), view.get(k), "{kind:?}: {k}");
        }
        assert_eq!(view.len(), container_view.len(), "{kind:?}");
        assert_eq!(links, container_links);
        assert!(links.contains(&vec!["hello".to_string(), "hello2".to_string()]));
        assert!(
            view["opt/new/f"].contains("mode=104750 owner=1000:1000"),
            "{}",
            view["opt/new/f"]
        );
        s.remove_rootfs(&again).unwrap();

        // Its bundles run the new config and see the changes.
        let dir2 = t.path().join(format!("c-{kind:?}"));
        let b2 = s
            .bundle(
                opts.tag.as_deref().unwrap(),
                &dir2,
                kind,
                &Overrides::default(),
            )
            .unwrap();
        let (code, out, err) = run_bundle(&dir2);
        assert_eq!((code, out.as_str()), (0, "committed\n"), "{err}");
        s.unbundle(&b2.dir, false).unwrap();
        let b3 = s
            .bundle(
                &rec.id,
                &dir2,
                kind,
                &sh(
                    "test -e /data || echo no-data; test -e /etc/motd || echo no-motd; \
                     cat /opt/new/f; pwd; id -un; echo $FOO",
                ),
            )
            .unwrap();
        let (code, out, err) = run_bundle(&dir2);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "no-data\nno-motd\nx\n/opt\nuser\nbar\n");
        s.unbundle(&b3.dir, false).unwrap();
    }
    assert!(
        mounts_under(t.path()).is_empty(),
        "{:?}",
        mounts_under(t.path())
    );
}

#[test]
fn a_commit_without_changes_adds_no_layer() {
    let t = tempdir();
    let store_root = t.path().join("store");
    let s = ImageStore::open(&store_root).unwrap();
    let base = base_image(&s, "localhost/base:empty");
    for kind in [RootfsKind::Overlay, RootfsKind::Copy] {
        let r = s
            .create_rootfs_with(&base, &t.path().join(format!("{kind:?}")), kind)
            .unwrap();
        let before = layer_dirs(&store_root);
        let rec = s.commit(&r, &base.id, &CommitOptions::default()).unwrap();
        assert_eq!(rec.diff_ids, base.diff_ids);
        assert_ne!(rec.id, base.id);
        assert!(rec.repo_tags.is_empty());
        // Docker's Parent: the image the root was made from; the base has none.
        assert_eq!(rec.parent.as_deref(), Some(base.id.as_str()));
        assert_eq!(s.get(&base.id).unwrap().parent, None);
        assert_eq!(layer_dirs(&store_root), before);
        let cfg = config_of(&s, &rec);
        let last = cfg["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["empty_layer"], true);
        assert_eq!(last["created_by"], "berth commit");
        assert!(cfg.get("author").is_none());
        s.remove_rootfs(&r).unwrap();
    }
    assert!(mounts_under(t.path()).is_empty());
}

/// Entry names of a tar and whether it has hard links.
fn tar_names(tar: &[u8]) -> (Vec<String>, usize) {
    let mut a = tar::Archive::new(tar);
    let mut names = Vec::new();
    let mut links = 0;
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.header().entry_type() == tar::EntryType::Link {
            links += 1;
        }
        names.push(
            String::from_utf8_lossy(&e.path_bytes())
                .trim_end_matches('/')
                .to_string(),
        );
    }
    (names, links)
}

#[test]
fn export_is_a_tar_of_the_merged_tree() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let img = base_image(&s, "localhost/base:export");
    for kind in [RootfsKind::Overlay, RootfsKind::Copy] {
        let r = s
            .create_rootfs_with(&img, &t.path().join(format!("{kind:?}")), kind)
            .unwrap();
        let m = r.merged();
        std::fs::remove_file(m.join("etc/motd")).unwrap();
        std::fs::remove_dir_all(m.join("data")).unwrap();
        std::fs::write(m.join("exported"), b"yes").unwrap();
        let mut out = Vec::new();
        let p = export(&r, &mut out).unwrap();
        assert_eq!(p.size, out.len() as u64);
        let (names, links) = tar_names(&out);
        assert!(names.iter().any(|n| n == "exported"));
        assert!(names.iter().any(|n| n == "bin/busybox"));
        assert!(!names.iter().any(|n| n.contains(".wh.")), "no whiteouts");
        assert!(
            !names
                .iter()
                .any(|n| n == "etc/motd" || n.starts_with("data"))
        );
        assert_eq!(links, 1, "opt/b is a hard link to opt/a");
        // Unpacked, it is the same tree.
        let flat = t.path().join(format!("flat-{kind:?}"));
        std::fs::create_dir(&flat).unwrap();
        berth_layer::unpack(&out[..], &flat, berth_layer::Mode::Flatten).unwrap();
        assert_eq!(describe(&flat), describe(&m), "{kind:?}");
        s.remove_rootfs(&r).unwrap();
        assert!(matches!(
            export(&r, std::io::sink()),
            Err(RootfsError::NotFound(_))
        ));
    }
    assert!(mounts_under(t.path()).is_empty());
}

/// A container that creates a file named `.wh...` (a whiteout of `..`) cannot destroy the
/// store through a commit: the commit is refused, every layer stays, both kinds.
#[test]
fn a_commit_of_a_whiteout_named_file_is_refused_and_the_store_stays_whole() {
    let t = tempdir();
    let store_root = t.path().join("store");
    let s = ImageStore::open(&store_root).unwrap();
    let base = base_image(&s, "localhost/base:wh");
    let layers_before = layer_dirs(&store_root);
    for kind in [RootfsKind::Overlay, RootfsKind::Copy] {
        let r = s
            .create_rootfs_with(&base, &t.path().join(format!("{kind:?}")), kind)
            .unwrap();
        for name in [".wh...", ".wh.etc"] {
            std::fs::write(r.merged().join(name), b"").unwrap();
            let e = s
                .commit(&r, &base.id, &CommitOptions::default())
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    RootfsError::Pack(berth_layer::PackError::WhiteoutName { .. })
                ),
                "{kind:?} {name}: {e}"
            );
            std::fs::remove_file(r.merged().join(name)).unwrap();
        }
        assert!(r.merged().join("etc").is_dir());
        s.remove_rootfs(&r).unwrap();
    }
    assert_eq!(layer_dirs(&store_root), layers_before);
    for d in &base.diff_ids {
        assert!(std::fs::read_dir(s.layer_path(d)).unwrap().next().is_some());
    }
    assert_eq!(s.images().unwrap().len(), 1);
}

#[test]
fn bad_input_is_refused_with_typed_errors() {
    let t = tempdir();
    let s = ImageStore::open(&t.path().join("store")).unwrap();
    let base = base_image(&s, "localhost/base:bad");
    let other = add_image(
        &s,
        &[tar_dir(&busybox_rootfs())],
        json!({"config": {"Cmd": ["sh"]}}),
        "localhost/other:1",
    );
    let r = s
        .create_rootfs_with(&base, &t.path().join("r"), RootfsKind::Overlay)
        .unwrap();
    std::fs::write(r.merged().join("x"), b"x").unwrap();
    let images_before = s.images().unwrap().len();
    let e = s
        .commit(&r, "localhost/nothing:here", &CommitOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, RootfsError::Store(Error::NoSuchImage(_))),
        "{e}"
    );
    let e = s
        .commit(&r, &other.id, &CommitOptions::default())
        .unwrap_err();
    assert!(matches!(e, RootfsError::WrongBase { .. }), "{e}");
    let bad_change = CommitOptions {
        changes: vec!["RUN rm -rf /".into()],
        ..Default::default()
    };
    let e = s.commit(&r, &base.id, &bad_change).unwrap_err();
    assert!(
        matches!(e, RootfsError::Store(Error::InvalidChange { .. })),
        "{e}"
    );
    let bad_tag = CommitOptions {
        tag: Some("Not A Tag".into()),
        ..Default::default()
    };
    let e = s.commit(&r, &base.id, &bad_tag).unwrap_err();
    assert!(matches!(e, RootfsError::Store(Error::Reference(_))), "{e}");
    assert_eq!(s.images().unwrap().len(), images_before, "nothing recorded");

    // The mount gone from under it: export says so; diff and commit still read the upper.
    rustix::mount::unmount(r.merged(), rustix::mount::UnmountFlags::empty()).unwrap();
    assert!(matches!(
        export(&r, std::io::sink()),
        Err(RootfsError::NotMounted(_))
    ));
    assert_eq!(diff(&r).unwrap(), [change(ChangeKind::Added, "/x")]);
    // Mounted again, with the container's changes.
    r.remount().unwrap();
    r.remount().unwrap(); // mounted: nothing to do
    assert_eq!(std::fs::read(r.merged().join("x")).unwrap(), b"x");
    export(&r, std::io::sink()).unwrap();
    assert_eq!(mounts_under(t.path()).len(), 1);
    // Removed: everything refuses.
    s.remove_rootfs(&r).unwrap();
    let e = s
        .commit(&r, &base.id, &CommitOptions::default())
        .unwrap_err();
    assert!(matches!(e, RootfsError::NotFound(_)), "{e}");
    assert!(matches!(r.remount(), Err(RootfsError::NotFound(_))));
    assert!(matches!(diff(&r), Err(RootfsError::NotFound(_))));
    assert!(matches!(
        berth_image::rootfs::Root::open(&r.dir),
        Err(berth_image::rootfs::SnapshotError::NotFound(_))
    ));
    assert_eq!(s.images().unwrap().len(), images_before);
    assert!(mounts_under(t.path()).is_empty());
}
