//! Whiteouts that name something other than a plain entry of their directory (`.wh...`,
//! `.wh..`, `.wh.`, NUL bytes, aufs metadata, whiteout names used as directories, opaque
//! markers behind symlinks or files) are refused in both modes, and nothing outside what the
//! layer may touch changes: not the layer's siblings in the store, not the store's
//! neighbours, not what lower layers left in the target. As root, on real directories.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_layer::{Error, Mode, unpack};
use berth_testkit::tar::{EntryType, Layer};

/// A store as the image store lays it out: `outer/store/<layer>` side by side with another
/// layer, and a file beside the store. The target layer holds what a lower layer put there
/// (in Overlay mode a layer directory starts empty, but the point is what must not change).
struct Store {
    outer: tempfile::TempDir,
    layer: PathBuf,
}

fn store() -> Store {
    let outer = tempfile::Builder::new()
        .prefix("berth-whiteouts-")
        .tempdir()
        .unwrap();
    let s = outer.path().join("store");
    let layer = s.join("sha256-target");
    std::fs::create_dir_all(&layer).unwrap();
    std::fs::create_dir_all(s.join("sha256-other/sub")).unwrap();
    std::fs::write(s.join("sha256-other/f"), b"other layer").unwrap();
    std::fs::write(s.join("sha256-other/sub/g"), b"deeper").unwrap();
    std::fs::write(outer.path().join("beside"), b"beside the store").unwrap();
    let base = Layer::new()
        .dir("dir/", 0o755)
        .file("dir/y", 0o644, b"y")
        .file("keep", 0o644, b"k")
        .file("file", 0o644, b"f")
        .tar();
    unpack(&base[..], &layer, Mode::Flatten).unwrap();
    Store { outer, layer }
}

/// Every path under `root` with its kind and content (directories recursed).
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else if md.file_type().is_char_device() {
                format!("char {}", md.rdev())
            } else {
                format!("file {:?}", std::fs::read(&p).unwrap())
            };
            out.insert(p.strip_prefix(root).unwrap().display().to_string(), what);
        }
    }
    out
}

/// Refused in both modes; nothing outside the target changed, and inside it nothing but
/// `created` (what the layer's good entries before the bad one made) appeared.
fn assert_refused(what: &str, tar: &[u8], created: &[&str]) {
    for mode in [Mode::Overlay, Mode::Flatten] {
        let s = store();
        let before = snapshot(s.outer.path());
        let err = unpack(tar, &s.layer, mode).unwrap_err();
        assert!(
            matches!(err, Error::Escape { .. } | Error::Invalid { .. }),
            "{what} ({mode:?}): {err}"
        );
        let msg = err.to_string();
        assert!(msg.ends_with(": refused"), "{what} ({mode:?}): {msg}");
        assert!(!msg.contains('\n'), "{what}: one line: {msg}");
        let mut after = snapshot(s.outer.path());
        for c in created {
            after.remove(&format!("store/sha256-target/{c}"));
        }
        assert_eq!(after, before, "{what} ({mode:?}): {msg}");
    }
}

#[test]
fn a_one_entry_layer_whiting_out_dot_dot_is_refused_and_the_store_survives() {
    // The reported reproducer: a tar holding only an empty file named ".wh...".
    let tar = Layer::new().file(".wh...", 0o644, b"").tar();
    assert_eq!(tar.len(), 3 * 512, "one header, two end blocks");
    assert_refused(".wh...", &tar, &[]);
    for mode in [Mode::Overlay, Mode::Flatten] {
        let s = store();
        let err = unpack(&tar[..], &s.layer, mode).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer entry \".wh...\" is a whiteout of '..': refused"
        );
        assert!(s.outer.path().join("store/sha256-other/sub/g").exists());
        assert!(s.layer.join("keep").exists());
    }
}

#[test]
fn whiteouts_of_anything_but_a_plain_name_are_refused() {
    let raw = |name: &[u8]| Layer::new().raw(name, EntryType::Regular, b"", b"").tar();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (".wh..", raw(b".wh.."), vec![]),
        (".wh. (empty)", raw(b".wh."), vec![]),
        ("./.wh...", raw(b"./.wh..."), vec![]),
        ("dir/.wh...", raw(b"dir/.wh..."), vec![]),
        ("dir/.wh..", raw(b"dir/.wh.."), vec![]),
        ("dir/.wh.", raw(b"dir/.wh."), vec![]),
        ("dir//.wh...", raw(b"dir//.wh..."), vec![]),
        ("deep/new/.wh...", raw(b"deep/new/.wh..."), vec![]),
        ("a whiteout as a directory", raw(b".wh.dir/y"), vec![]),
        (
            "a whiteout of '..' as a directory",
            raw(b".wh.../sha256-other"),
            vec![],
        ),
        ("aufs metadata", raw(b".wh..wh.plnk"), vec![]),
        ("aufs metadata directory", raw(b".wh..wh.plnk/123"), vec![]),
        (
            "a NUL byte (PAX path)",
            Layer::new()
                .pax(&[("path", b"dir/.wh.y\0z")])
                .file("ignored", 0o644, b"")
                .tar(),
            vec![],
        ),
        (
            "a whiteout of '..' as a directory entry",
            Layer::new()
                .raw(b".wh.../", EntryType::Directory, b"", b"")
                .tar(),
            vec![],
        ),
        (
            "a whiteout through a symlink",
            Layer::new()
                .link(EntryType::Symlink, "up", "..")
                .raw(b"up/.wh.sha256-other", EntryType::Regular, b"", b"")
                .tar(),
            vec!["up"],
        ),
        (
            "an opaque marker through a symlink",
            Layer::new()
                .link(EntryType::Symlink, "up", "..")
                .opaque("up")
                .tar(),
            vec!["up"],
        ),
        (
            "an opaque marker through an absolute symlink",
            Layer::new()
                .link(EntryType::Symlink, "abs", "/")
                .opaque("abs/tmp")
                .tar(),
            vec!["abs"],
        ),
        (
            "an opaque marker in a file",
            Layer::new().opaque("file").tar(),
            vec![],
        ),
        (
            "an opaque marker as a directory",
            raw(b"dir/.wh..wh..opq/x"),
            vec![],
        ),
        (
            "an opaque marker after '..'",
            raw(b"dir/../.wh..wh..opq"),
            vec![],
        ),
        ("an absolute opaque marker", raw(b"/.wh..wh..opq"), vec![]),
    ];
    for (what, tar, created) in cases {
        assert_refused(what, &tar, &created);
    }
}

#[test]
fn opaque_markers_at_the_root_and_as_directories_stay_inside_the_layer() {
    // Valid, if odd: the layer's root is opaque (Flatten: everything lower layers put there
    // goes), or the marker comes as a directory entry.
    let tar = Layer::new()
        .opaque("")
        .file("new", 0o644, b"n")
        .raw(b"dir/.wh..wh..opq/", EntryType::Directory, b"", b"")
        .tar();
    for mode in [Mode::Overlay, Mode::Flatten] {
        let s = store();
        let outside = |s: &Store| {
            let mut m = snapshot(s.outer.path());
            m.retain(|k, _| !k.starts_with("store/sha256-target/"));
            m
        };
        let before = outside(&s);
        unpack(&tar[..], &s.layer, mode).unwrap();
        assert_eq!(outside(&s), before, "{mode:?}");
        let inside: Vec<String> = snapshot(&s.layer).into_keys().collect();
        match mode {
            // The marker of the (now gone) "dir" makes it again, empty.
            Mode::Flatten => assert_eq!(inside, ["dir", "new"]),
            Mode::Overlay => {
                assert_eq!(inside, ["dir", "dir/y", "file", "keep", "new"]);
                for d in [&s.layer, &s.layer.join("dir")] {
                    let mut v = [0u8; 8];
                    let n = rustix::fs::getxattr(d, "trusted.overlay.opaque", &mut v).unwrap();
                    assert_eq!(&v[..n], b"y");
                }
            }
        }
    }
}

#[test]
fn plain_whiteouts_still_work_in_both_modes() {
    let tar = Layer::new()
        .whiteout("dir/y")
        .whiteout("keep")
        .whiteout("dir/never-there")
        .tar();
    let s = store();
    unpack(&tar[..], &s.layer, Mode::Flatten).unwrap();
    let inside: Vec<String> = snapshot(&s.layer).into_keys().collect();
    assert_eq!(inside, ["dir", "file"]);
    let s = store();
    unpack(&tar[..], &s.layer, Mode::Overlay).unwrap();
    let snap = snapshot(&s.layer);
    assert_eq!(snap["keep"], "char 0");
    assert_eq!(snap["dir/y"], "char 0");
    assert_eq!(snap["dir/never-there"], "char 0");
}

#[test]
fn directory_metadata_never_follows_a_symlink_planted_after_the_directory() {
    // The layer makes "d" (its mode and times are set at the end), then replaces it with a
    // symlink to a directory outside. Setting d's mode must not chmod what the symlink
    // points at.
    let outer = tempfile::Builder::new()
        .prefix("berth-dirmeta-")
        .tempdir()
        .unwrap();
    let victim = outer.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::create_dir(victim.join("sub")).unwrap();
    std::fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let layer = outer.path().join("layer");
    std::fs::create_dir(&layer).unwrap();
    let target = victim.display().to_string();
    let tar = Layer::new()
        .dir("d/", 0o777)
        .dir("p/", 0o755)
        .dir("p/sub/", 0o777)
        .link(EntryType::Symlink, "d", &target)
        .link(EntryType::Symlink, "p", &target)
        .tar();
    for mode in [Mode::Overlay, Mode::Flatten] {
        let _ = std::fs::remove_dir_all(&layer);
        std::fs::create_dir(&layer).unwrap();
        unpack(&tar[..], &layer, mode).unwrap();
        for v in [&victim, &victim.join("sub")] {
            let md = std::fs::metadata(v).unwrap();
            assert_eq!(
                md.mode() & 0o7777,
                0o755,
                "{mode:?}: {} changed",
                v.display()
            );
            assert_ne!(
                md.mtime(),
                1_700_000_000,
                "{mode:?}: {} changed",
                v.display()
            );
        }
        assert!(
            std::fs::symlink_metadata(layer.join("d"))
                .unwrap()
                .is_symlink()
        );
    }
}
