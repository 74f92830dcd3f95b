//! The one test suite every snapshotter passes (as containerd's snapshotters share one): each
//! case is written once against `&dyn Snapshotter` and run for overlayfs and for the copy.
//! Layers are real tars unpacked by `berth_layer` (overlay form); the expected trees are
//! computed independently, by applying the same tars one after the other in flat form.
//! Needs root (mounts, ownership, device nodes, trusted xattrs).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_snapshot::{Change, ChangeKind, Error, Kind, Root, Snapshotter};
use berth_testkit::tar::Layer;
use tar::EntryType;

/// Every case, run once per snapshotter.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod overlay {
            $(#[test] fn $case() { super::$case(&berth_snapshot::Overlay) })*
        }
        mod copy {
            $(#[test] fn $case() { super::$case(&berth_snapshot::Copy) })*
        }
    };
}

suite!(
    the_root_shows_the_layers_stacked,
    changes_are_what_the_container_did,
    the_changes_packed_and_applied_give_the_same_tree,
    export_is_the_whole_tree,
    reopen_check_and_remount,
    remove_leaves_nothing_and_refuses_a_busy_root,
    bad_requests_leave_nothing_behind,
    a_half_made_root_is_removed,
);

/// Four layers: a small one, a base with every kind of entry, one that deletes, replaces and
/// hides (whiteouts, an opaque directory, a directory replaced by a file), and the small one
/// again on top (a repeated layer, as images built with identical steps have).
fn layer_tars() -> Vec<Vec<u8>> {
    let small = Layer::new()
        .dir("etc/", 0o755)
        .file("etc/issue", 0o644, b"berth\n")
        .tar();
    let base = Layer::new()
        .dir("bin/", 0o755)
        .file("bin/tool", 0o4755, b"#!tool\n")
        .file_owned("bin/zcat", 0o755, 2, 3, b"zcat\n")
        .dir("etc/", 0o755)
        .file("etc/motd", 0o644, b"v1\n")
        .link(
            EntryType::Symlink,
            "etc/localtime",
            "/usr/share/zoneinfo/UTC",
        )
        .dir_owned("data/", 0o750, 1000, 1000)
        .file("data/a", 0o600, b"a")
        .dir("data/sub/", 0o755)
        .file("data/sub/b", 0o644, b"b")
        .dir("opt/", 0o755)
        .file("opt/a", 0o640, b"shared inode")
        .link(EntryType::Link, "opt/b", "opt/a")
        .node(EntryType::Char, "opt/null", 1, 3)
        .node(EntryType::Fifo, "opt/fifo", 0, 0)
        .xattr_file("opt/attr", "user.test", b"1")
        .dir("var/", 0o755)
        .dir("var/cache/", 0o755)
        .file("var/cache/old", 0o644, b"old")
        .tar();
    // Parents are written out, as image builders write them (a directory a layer does not
    // list is made 0755 root's, as Docker's overlay2 makes it).
    let change = Layer::new()
        .whiteout("bin/zcat")
        .dir_owned("data/", 0o750, 1000, 1000)
        .opaque("data")
        .file("data/new", 0o644, b"new")
        .file("etc/motd", 0o644, b"v2\n")
        .whiteout("var/cache")
        .file("var/cache", 0o644, b"now a file")
        .tar();
    vec![small.clone(), base, change, small]
}

/// A description of every entry below `root`: kind, mode, owner, content or target, device,
/// xattrs (overlayfs' own left out), and hard-link groups.
fn describe(root: &Path) -> (BTreeMap<String, String>, Vec<Vec<String>>) {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let rel = rel.join(n);
            let p = root.join(&rel);
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let what = if ft.is_dir() {
                stack.push(rel.clone());
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!(
                    "file {:?}",
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                )
            } else if ft.is_char_device() {
                format!("char {}", md.rdev())
            } else if ft.is_fifo() {
                "fifo".to_string()
            } else {
                "other".to_string()
            };
            let mut xattrs: Vec<String> = berth_layer::pack::xattrs(&p)
                .unwrap()
                .into_iter()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), String::from_utf8_lossy(&v)))
                .filter(|x| !x.starts_with("trusted.overlay."))
                .collect();
            xattrs.sort();
            let name = rel.to_string_lossy().into_owned();
            if !ft.is_dir() && md.nlink() > 1 {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_default()
                    .push(name.clone());
            }
            let mode = if ft.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            };
            out.insert(
                name,
                format!(
                    "{what} mode={mode:o} owner={}:{} xattrs={xattrs:?}",
                    md.uid(),
                    md.gid()
                ),
            );
        }
    }
    let mut links: Vec<Vec<String>> = inodes.into_values().filter(|v| v.len() > 1).collect();
    for l in &mut links {
        l.sort();
    }
    links.sort();
    (out, links)
}

/// A scratch directory, with the layers unpacked (overlay form) and the expected tree.
struct Fixture {
    t: tempfile::TempDir,
    layers: Vec<PathBuf>,
    tars: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Fixture {
        let t = tempfile::Builder::new()
            .prefix("berth-snapshot-")
            .tempdir()
            .unwrap();
        let tars = layer_tars();
        let mut layers = Vec::new();
        for (i, tar) in tars.iter().enumerate() {
            let dir = t.path().join(format!("layer{i}"));
            std::fs::create_dir(&dir).unwrap();
            berth_layer::unpack(&tar[..], &dir, berth_layer::Mode::Overlay).unwrap();
            layers.push(dir);
        }
        Fixture { t, layers, tars }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }

    /// The tree the layers make, applied one after the other in flat form (the reference).
    fn expected(&self) -> PathBuf {
        let flat = self.path("expected");
        if !flat.exists() {
            std::fs::create_dir(&flat).unwrap();
            for tar in &self.tars {
                berth_layer::unpack(&tar[..], &flat, berth_layer::Mode::Flatten).unwrap();
            }
        }
        flat
    }

    fn prepare(&self, s: &dyn Snapshotter, name: &str) -> Root {
        let dir = self.path(name);
        let root = s.prepare(&dir, &dir.join("merged"), &self.layers).unwrap();
        assert_eq!(root.kind(), s.kind());
        root
    }

    fn mounts(&self) -> usize {
        let d = self.t.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
            .count()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A failed case may leave a mount: take it away before the directory goes.
        let d = self.t.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
            if m.starts_with(&d) {
                let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
}

fn the_root_shows_the_layers_stacked(s: &dyn Snapshotter) {
    let f = Fixture::new();
    let root = f.prepare(s, "r");
    let (got, got_links) = describe(root.target());
    let (want, want_links) = describe(&f.expected());
    assert_eq!(got, want);
    assert_eq!(got_links, want_links);
    // What the layers did, spelled out.
    assert!(!got.contains_key("bin/zcat"));
    assert!(!got.contains_key("data/a") && !got.contains_key("data/sub"));
    assert!(got["data/new"].starts_with("file \"new\""));
    assert!(got["var/cache"].starts_with("file \"now a file\""));
    assert!(got["bin/tool"].contains("mode=4755"), "set-uid kept");
    assert!(got["opt/attr"].contains("user.test=1"));
    assert!(got["etc/issue"].starts_with("file \"berth\\n\""));
    assert_eq!(got_links, [vec!["opt/a".to_string(), "opt/b".to_string()]]);
    berth_snapshot::remove(&root, false).unwrap();
}

fn changes_are_what_the_container_did(s: &dyn Snapshotter) {
    let f = Fixture::new();
    let root = f.prepare(s, "r");
    assert_eq!(root.changes().unwrap(), [], "nothing changed yet");
    let m = root.target();
    std::fs::write(m.join("etc/motd"), "v3\n").unwrap();
    std::fs::write(m.join("etc/added"), "added\n").unwrap();
    std::fs::remove_file(m.join("opt/fifo")).unwrap();
    std::fs::remove_dir_all(m.join("data")).unwrap();
    std::fs::create_dir(m.join("data")).unwrap();
    std::fs::write(m.join("data/fresh"), "fresh").unwrap();
    std::fs::create_dir_all(m.join("srv/www")).unwrap();
    std::fs::write(m.join("srv/www/index.html"), "hi").unwrap();
    let change = |kind, p: &str| Change {
        kind,
        path: PathBuf::from(p),
    };
    use ChangeKind::{Added as A, Changed as C, Deleted as D};
    let want = vec![
        change(C, "/data"),
        change(A, "/data/fresh"),
        change(D, "/data/new"),
        change(C, "/etc"),
        change(A, "/etc/added"),
        change(C, "/etc/motd"),
        change(C, "/opt"),
        change(D, "/opt/fifo"),
        change(A, "/srv"),
        change(A, "/srv/www"),
        change(A, "/srv/www/index.html"),
    ];
    assert_eq!(root.changes().unwrap(), want);
    berth_snapshot::remove(&root, false).unwrap();
}

fn the_changes_packed_and_applied_give_the_same_tree(s: &dyn Snapshotter) {
    let f = Fixture::new();
    let root = f.prepare(s, "r");
    let m = root.target();
    std::fs::write(m.join("etc/motd"), "v3\n").unwrap();
    std::fs::remove_dir_all(m.join("opt")).unwrap();
    std::fs::remove_file(m.join("var/cache")).unwrap();
    std::fs::create_dir(m.join("var/cache")).unwrap();
    std::fs::write(m.join("var/cache/new"), "n").unwrap();
    std::fs::set_permissions(
        m.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let scratch = f.path("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let changes = s.changes_dir(&root, &scratch).unwrap();
    let mut tar = Vec::new();
    berth_layer::pack(
        &changes,
        &mut tar,
        &berth_layer::PackOptions {
            compression: berth_layer::Compression::None,
            whiteouts: true,
        },
    )
    .unwrap();
    // The base layers, then the packed changes, applied flat: the container's tree.
    let applied = f.expected();
    berth_layer::unpack(&tar[..], &applied, berth_layer::Mode::Flatten).unwrap();
    assert_eq!(describe(&applied), describe(m));
    berth_snapshot::remove(&root, false).unwrap();
}

fn export_is_the_whole_tree(s: &dyn Snapshotter) {
    let f = Fixture::new();
    let root = f.prepare(s, "r");
    std::fs::write(root.target().join("etc/exported"), "yes").unwrap();
    let mut tar = Vec::new();
    berth_snapshot::export(&root, &mut tar).unwrap();
    let out = f.path("out");
    std::fs::create_dir(&out).unwrap();
    berth_layer::unpack(&tar[..], &out, berth_layer::Mode::Flatten).unwrap();
    assert_eq!(describe(&out), describe(root.target()));
    berth_snapshot::remove(&root, false).unwrap();
    assert!(matches!(
        berth_snapshot::export(&root, std::io::sink()),
        Err(Error::NotFound(_))
    ));
}

fn reopen_check_and_remount(s: &dyn Snapshotter) {
    let f = Fixture::new();
    let root = f.prepare(s, "r");
    std::fs::write(root.target().join("etc/kept"), "kept").unwrap();
    let again = Root::open(&root.dir).unwrap();
    assert_eq!(again, root);
    again.check().unwrap();
    if s.kind() == Kind::Overlay {
        // After a reboot the mount is gone, the changes are not.
        rustix::mount::unmount(root.target(), rustix::mount::UnmountFlags::empty()).unwrap();
        assert!(matches!(again.check(), Err(Error::NotMounted(_))));
    }
    s.remount(&again).unwrap();
    s.remount(&again).unwrap(); // there already: nothing to do
    again.check().unwrap();
    assert_eq!(
        std::fs::read(root.target().join("etc/kept")).unwrap(),
        b"kept"
    );
    assert_eq!(
        again.changes().unwrap(),
        [
            Change {
                kind: ChangeKind::Changed,
                path: "/etc".into()
            },
            Change {
                kind: ChangeKind::Added,
                path: "/etc/kept".into()
            }
        ]
    );
    berth_snapshot::remove(&again, false).unwrap();
}

fn remove_leaves_nothing_and_refuses_a_busy_root(s: &dyn Snapshotter) {
    let f = Fixture::new();
    let root = f.prepare(s, "r");
    std::fs::copy("/bin/busybox", root.target().join("busybox")).unwrap();
    let mut holder = std::process::Command::new("chroot")
        .arg(root.target())
        .args(["/busybox", "sleep", "60"])
        .spawn()
        .unwrap();
    let pid = holder.id();
    for _ in 0..500 {
        if berth_snapshot::user_of(root.target()).unwrap() == Some(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    match berth_snapshot::remove(&root, false) {
        Err(Error::Busy { pid: p, .. }) => assert_eq!(p, pid),
        other => panic!("{other:?}"),
    }
    assert!(root.target().join("etc/motd").is_file(), "untouched");
    holder.kill().unwrap();
    holder.wait().unwrap();
    berth_snapshot::remove(&root, false).unwrap();
    assert!(!root.dir.exists() && !root.target().exists());
    assert_eq!(f.mounts(), 0);
    assert!(matches!(root.check(), Err(Error::NotFound(_))));
    berth_snapshot::remove(&root, false).unwrap(); // gone already: fine
    // The layers are untouched.
    for l in &f.layers {
        assert!(l.join("etc").is_dir());
    }
}

fn bad_requests_leave_nothing_behind(s: &dyn Snapshotter) {
    let f = Fixture::new();
    // The state directory exists: refused, untouched.
    let taken = f.path("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("mine"), "x").unwrap();
    assert!(matches!(
        s.prepare(&taken, &taken.join("merged"), &f.layers),
        Err(Error::Exists(_))
    ));
    assert_eq!(std::fs::read(taken.join("mine")).unwrap(), b"x");
    // The target exists (outside the state directory): refused, untouched.
    let target = f.path("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("mine"), "x").unwrap();
    assert!(matches!(
        s.prepare(&f.path("r1"), &target, &f.layers),
        Err(Error::Exists(_))
    ));
    assert!(!f.path("r1").exists());
    assert_eq!(std::fs::read(target.join("mine")).unwrap(), b"x");
    // A layer that is not there: refused, nothing made.
    let mut layers = f.layers.clone();
    layers.push(f.path("no-such-layer"));
    let r2 = f.path("r2");
    assert!(matches!(
        s.prepare(&r2, &r2.join("merged"), &layers),
        Err(Error::Io { .. })
    ));
    assert!(!r2.exists());
    // Not a root: open says so.
    assert!(matches!(Root::open(&taken), Err(Error::NotFound(_))));
    assert_eq!(f.mounts(), 0);
}

fn a_half_made_root_is_removed(s: &dyn Snapshotter) {
    let f = Fixture::new();
    // As a maker killed after making the directories (and, for overlayfs, mounting) leaves it.
    let root = f.prepare(s, "r");
    std::fs::remove_file(root.dir.join(berth_snapshot::STATE_FILE)).unwrap();
    assert!(matches!(Root::open(&root.dir), Err(Error::NotFound(_))));
    let partial = Root::partial(&root.dir, root.target(), s.kind());
    berth_snapshot::remove(&partial, false).unwrap();
    assert!(!root.dir.exists());
    assert_eq!(f.mounts(), 0);
    // Nothing made at all: fine too.
    berth_snapshot::remove(
        &Root::partial(&f.path("never"), &f.path("never/m"), s.kind()),
        false,
    )
    .unwrap();
}
