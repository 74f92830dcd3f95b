//! Packing real directories (every kind of file, as root) and unpacking what was packed:
//! the trees must match, whiteouts must survive the trip (checked through real overlayfs
//! mounts), and the same tree must always pack to the same bytes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_layer::pack::{self, PackError};
use berth_layer::{Compression, Mode, PackOptions, unpack};
use sha2::{Digest, Sha256};

fn sha(b: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-pack-")
        .tempdir()
        .unwrap()
}

fn set_xattr(p: &Path, key: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, key, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {key} on {}: {e}", p.display()));
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn mknod(p: &Path, kind: rustix::fs::FileType, mode: u32, major: u32, minor: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        kind,
        rustix::fs::Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
}

/// Everything about a tree that a layer carries: per path, its kind, mode, owner, mtime
/// (seconds), content, link target, device, xattrs (overlayfs' own left out); and which paths
/// share an inode.
fn describe(root: &Path) -> (BTreeMap<String, String>, Vec<Vec<String>>) {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, String>,
        inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
    ) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_file() {
                format!("file {}", sha(&std::fs::read(&p).unwrap()))
            } else if ft.is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_char_device() {
                format!("char {:x}", md.rdev())
            } else if ft.is_block_device() {
                format!("block {:x}", md.rdev())
            } else if ft.is_fifo() {
                "fifo".into()
            } else {
                "other".into()
            };
            let xattrs: Vec<String> = pack::xattrs(&p)
                .unwrap()
                .into_iter()
                .filter(|(k, _)| !k.as_bytes().starts_with(b"trusted.overlay."))
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), String::from_utf8_lossy(&v)))
                .collect();
            let mode = if ft.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            };
            out.insert(
                rel.clone(),
                format!(
                    "{what} mode={mode:o} owner={}:{} mtime={} xattrs={xattrs:?}",
                    md.uid(),
                    md.gid(),
                    md.mtime()
                ),
            );
            if !ft.is_dir() {
                inodes.entry((md.dev(), md.ino())).or_default().push(rel);
            }
            if ft.is_dir() {
                walk(root, &p, out, inodes);
            }
        }
    }
    walk(root, root, &mut out, &mut inodes);
    let mut groups: Vec<Vec<String>> = inodes.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    (out, groups)
}

/// A tree with every kind of entry a layer can hold, odd metadata included.
fn rich_tree(d: &Path) {
    use rustix::fs::FileType;
    std::fs::create_dir_all(d.join("etc/deep")).unwrap();
    std::fs::write(d.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    std::fs::hard_link(d.join("etc/hosts"), d.join("etc/hosts.hard")).unwrap();
    std::fs::hard_link(d.join("etc/hosts"), d.join("etc/deep/hosts.hard2")).unwrap();
    std::fs::write(d.join("tool"), b"#!/bin/sh\necho hi\n").unwrap();
    chown(&d.join("tool"), 1234, 5678);
    std::fs::set_permissions(d.join("tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", d.join("sh")).unwrap();
    chown(&d.join("sh"), 7, 8);
    let long_target = "x/".repeat(80) + "target";
    std::os::unix::fs::symlink(&long_target, d.join("longlink")).unwrap();
    mknod(&d.join("null"), FileType::CharacterDevice, 0o666, 1, 3);
    mknod(&d.join("loop9"), FileType::BlockDevice, 0o660, 7, 9);
    mknod(&d.join("fifo"), FileType::Fifo, 0o644, 0, 0);
    std::fs::write(d.join("caps"), b"x").unwrap();
    set_xattr(&d.join("caps"), "user.berth", b"yes");
    set_xattr(&d.join("caps"), "trusted.berth", b"t");
    set_xattr(&d.join("caps"), "trusted.overlay.origin", b"ignored");
    std::fs::create_dir(d.join("locked")).unwrap();
    std::fs::write(d.join("locked/inside"), b"s").unwrap();
    std::fs::set_permissions(d.join("locked"), std::fs::Permissions::from_mode(0o500)).unwrap();
    // A path longer than ustar's name + prefix can hold in one component.
    let long_dir = d.join("a".repeat(120));
    std::fs::create_dir(&long_dir).unwrap();
    std::fs::write(long_dir.join("b".repeat(150)), b"long").unwrap();
    chown(&long_dir, 3_000_000, 3_000_001); // beyond ustar's octal IDs
    std::fs::write(d.join("empty"), b"").unwrap();
    // A socket: skipped.
    let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    for p in [
        "etc/hosts",
        "tool",
        "sh",
        "longlink",
        "null",
        "loop9",
        "fifo",
        "caps",
        "locked/inside",
        "empty",
    ] {
        set_mtime(&d.join(p), 1_600_000_000);
    }
    for p in ["etc/deep", "etc", "locked", &"a".repeat(120), "."] {
        set_mtime(&d.join(p), 1_500_000_000);
    }
}

#[test]
fn a_packed_tree_unpacks_to_the_same_tree_in_every_compression() {
    let src = tempdir();
    rich_tree(src.path());
    let (want, want_links) = describe(src.path());
    let mut want = want;
    want.remove("sock");
    assert_eq!(
        want_links,
        [vec![
            "etc/deep/hosts.hard2".to_string(),
            "etc/hosts".into(),
            "etc/hosts.hard".into()
        ]]
    );
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let opts = PackOptions {
            compression: c,
            whiteouts: true,
        };
        let mut out = Vec::new();
        let p = pack::pack(src.path(), &mut out, &opts).unwrap();
        assert_eq!(p.digest, sha(&out), "{c:?}");
        assert_eq!(p.size, out.len() as u64);
        if c == Compression::None {
            assert_eq!(p.diff_id, p.digest);
            assert_eq!(p.tar_size, p.size);
        } else {
            assert_ne!(p.diff_id, p.digest);
            assert_eq!(Compression::detect(&out), c);
        }
        // The same tree packs to the same bytes.
        let mut again = Vec::new();
        pack::pack(src.path(), &mut again, &opts).unwrap();
        assert_eq!(out, again, "{c:?}: deterministic");

        let dst = tempdir();
        let u = unpack(&out[..], dst.path(), Mode::Overlay).unwrap();
        assert_eq!(u.diff_id, p.diff_id, "{c:?}");
        assert_eq!(u.tar_size, p.tar_size);
        let (got, got_links) = describe(dst.path());
        assert_eq!(got, want, "{c:?}");
        assert_eq!(got_links, want_links, "{c:?}: hard links");
    }
}

/// Entry names of a plain tar, in order, with their PAX keys.
fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, Vec<String>)> {
    let mut a = tar::Archive::new(tar);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let keys = e
            .pax_extensions()
            .unwrap()
            .map(|x| {
                x.map(|x| x.unwrap().key().unwrap().to_string())
                    .collect::<Vec<String>>()
            })
            .unwrap_or_default();
        out.push((
            String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            e.header().entry_type(),
            keys,
        ));
    }
    out
}

#[test]
fn order_is_depth_first_by_name_and_overlay_metadata_is_not_packed() {
    let src = tempdir();
    rich_tree(src.path());
    let mut out = Vec::new();
    pack::pack(src.path(), &mut out, &PackOptions::default()).unwrap();
    let es = entries(&out);
    let names: Vec<&str> = es.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut sorted_check = Vec::new();
    for n in &names {
        assert!(!n.starts_with("./") && !n.starts_with('/'), "{n}");
        sorted_check.push(n.trim_end_matches('/'));
    }
    assert_eq!(names.first(), Some(&&*format!("{}/", "a".repeat(120))));
    assert!(names.contains(&"etc/deep/hosts.hard2"));
    assert!(!names.iter().any(|n| n.contains("sock")), "sockets skipped");
    let caps = es.iter().find(|(n, _, _)| n == "caps").unwrap();
    assert_eq!(
        caps.2,
        ["SCHILY.xattr.trusted.berth", "SCHILY.xattr.user.berth"],
        "overlayfs' xattrs left out"
    );
    // The first path of a hard-linked inode is the file; the others link to it.
    let kinds: BTreeMap<&str, tar::EntryType> =
        es.iter().map(|(n, k, _)| (n.as_str(), *k)).collect();
    assert_eq!(kinds["etc/deep/hosts.hard2"], tar::EntryType::Regular);
    assert_eq!(kinds["etc/hosts"], tar::EntryType::Link);
    assert_eq!(kinds["etc/hosts.hard"], tar::EntryType::Link);
}

fn mount_overlay(lower: &[&Path], upper: Option<(&Path, &Path)>, at: &Path) {
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let mut opts = format!("lowerdir={}", lowers.join(":"));
    if let Some((u, w)) = upper {
        opts += &format!(",upperdir={},workdir={}", u.display(), w.display());
    }
    let data = std::ffi::CString::new(opts).unwrap();
    rustix::mount::mount(
        "overlay",
        at,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .unwrap();
}

fn unmount(at: &Path) {
    rustix::mount::unmount(at, rustix::mount::UnmountFlags::empty()).unwrap();
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix)))
        .map(str::to_string)
        .collect()
}

/// Unmounts on drop (a failed assertion must not leave a mount behind).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn whiteouts_and_opaque_directories_survive_a_trip_through_overlayfs() {
    let t = tempdir();
    let d = t.path();
    for x in [
        "lower", "upper", "work", "merged", "layer", "view1", "view2", "flat",
    ] {
        std::fs::create_dir(d.join(x)).unwrap();
    }
    let lower = d.join("lower");
    std::fs::create_dir_all(lower.join("dir/sub")).unwrap();
    std::fs::create_dir_all(lower.join("keep")).unwrap();
    for f in ["gone", "changed", "dir/x", "dir/sub/y", "keep/k"] {
        std::fs::write(lower.join(f), f.as_bytes()).unwrap();
    }
    // Changes made through a real overlayfs mount.
    {
        let merged = d.join("merged");
        mount_overlay(
            &[&lower],
            Some((&d.join("upper"), &d.join("work"))),
            &merged,
        );
        let _m = Mounted(merged.clone());
        std::fs::remove_file(merged.join("gone")).unwrap();
        std::fs::write(merged.join("changed"), b"new content").unwrap();
        std::fs::remove_dir_all(merged.join("dir")).unwrap();
        std::fs::create_dir(merged.join("dir")).unwrap(); // opaque now
        std::fs::write(merged.join("dir/fresh"), b"fresh").unwrap();
        std::fs::write(merged.join("added"), b"added").unwrap();
        std::fs::remove_file(merged.join("keep/k")).unwrap();
        unmount(&merged);
    }
    let mut out = Vec::new();
    let p = pack::pack(&d.join("upper"), &mut out, &PackOptions::default()).unwrap();
    let names: Vec<String> = entries(&out).into_iter().map(|(n, _, _)| n).collect();
    for want in [
        ".wh.gone",
        "dir/.wh..wh..opq",
        "keep/.wh.k",
        "dir/fresh",
        "added",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let opq = names.iter().position(|n| n == "dir/.wh..wh..opq").unwrap();
    assert_eq!(
        names[opq - 1],
        "dir/",
        "the opaque marker follows its directory"
    );

    // Unpacked in overlay form, the layer over the same lower gives the same view.
    let u = unpack(&out[..], &d.join("layer"), Mode::Overlay).unwrap();
    assert_eq!(u.diff_id, p.diff_id);
    mount_overlay(&[&d.join("upper"), &lower], None, &d.join("view1"));
    let _v1 = Mounted(d.join("view1"));
    mount_overlay(&[&d.join("layer"), &lower], None, &d.join("view2"));
    let _v2 = Mounted(d.join("view2"));
    let (v1, _) = describe(&d.join("view1"));
    let (v2, _) = describe(&d.join("view2"));
    assert_eq!(v1, v2);
    assert!(!v2.contains_key("gone") && !v2.contains_key("dir/x") && !v2.contains_key("keep/k"));
    assert!(v2.contains_key("dir/fresh"));

    // Flattened: the lower tree, then the layer, by deleting.
    let mut base = Vec::new();
    pack::pack(&lower, &mut base, &PackOptions::default()).unwrap();
    unpack(&base[..], &d.join("flat"), Mode::Flatten).unwrap();
    unpack(&out[..], &d.join("flat"), Mode::Flatten).unwrap();
    let (flat, _) = describe(&d.join("flat"));
    let strip_dir_times = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), v.split(" mtime=").next().unwrap().to_string()))
            .collect()
    };
    assert_eq!(strip_dir_times(&flat), strip_dir_times(&v1));

    unmount(&d.join("view1"));
    unmount(&d.join("view2"));
    assert!(mounts_under(d).is_empty(), "{:?}", mounts_under(d));
}

#[test]
fn without_whiteouts_a_null_device_is_a_device() {
    let src = tempdir();
    mknod(
        &src.path().join("wh"),
        rustix::fs::FileType::CharacterDevice,
        0o600,
        0,
        0,
    );
    let plain = PackOptions {
        compression: Compression::None,
        whiteouts: false,
    };
    let mut out = Vec::new();
    pack::pack(src.path(), &mut out, &plain).unwrap();
    let es = entries(&out);
    assert_eq!(es.len(), 1);
    assert_eq!((es[0].0.as_str(), es[0].1), ("wh", tar::EntryType::Char));
    let mut out = Vec::new();
    pack::pack(src.path(), &mut out, &PackOptions::default()).unwrap();
    assert_eq!(entries(&out)[0].0, ".wh.wh");
}

#[test]
fn what_a_layer_cannot_express_is_refused() {
    let src = tempdir();
    std::fs::create_dir(src.path().join("moved")).unwrap();
    set_xattr(
        &src.path().join("moved"),
        "trusted.overlay.redirect",
        b"/old",
    );
    let e = pack::pack(src.path(), std::io::sink(), &PackOptions::default()).unwrap_err();
    assert!(
        matches!(&e, PackError::Unsupported { path, .. } if path == Path::new("moved")),
        "{e}"
    );
    let src = tempdir();
    std::fs::write(src.path().join("meta"), b"").unwrap();
    set_xattr(&src.path().join("meta"), "trusted.overlay.metacopy", b"");
    let e = pack::pack(src.path(), std::io::sink(), &PackOptions::default()).unwrap_err();
    assert!(matches!(e, PackError::Unsupported { .. }), "{e}");
    // Not a directory at all.
    let e = pack::pack(
        &src.path().join("meta"),
        std::io::sink(),
        &PackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, PackError::Fs { .. }), "{e}");
    // A writer that fails.
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    std::fs::write(src.path().join("big"), vec![7u8; 100_000]).unwrap();
    let e = pack::pack(src.path(), Broken, &PackOptions::default()).unwrap_err();
    assert!(matches!(e, PackError::Write(_)), "{e}");
}

#[test]
fn files_named_like_whiteouts_are_refused_naming_the_path() {
    // A container that created "/.wh..." (or any ".wh." name) must not be committed into a
    // layer whose unpacking would delete "..": the tree is refused, in either form.
    let cases: [(&[&str], &str); 5] = [
        (&[".wh..."], ".wh..."),
        (&[".wh.foo"], ".wh.foo"),
        (&["d/", "d/.wh.foo"], "d/.wh.foo"),
        (&["d/", "d/.wh..wh..opq"], "d/.wh..wh..opq"),
        (&[".wh.dir/", ".wh.dir/inside"], ".wh.dir"),
    ];
    for (files, bad) in cases {
        for whiteouts in [true, false] {
            let src = tempdir();
            std::fs::write(src.path().join("fine"), b"ok").unwrap();
            for f in files {
                let p = src.path().join(f);
                if f.ends_with('/') {
                    std::fs::create_dir(&p).unwrap();
                } else {
                    std::fs::write(&p, b"").unwrap();
                }
            }
            let opts = PackOptions {
                compression: Compression::Gzip,
                whiteouts,
            };
            let e = pack::pack(src.path(), std::io::sink(), &opts).unwrap_err();
            assert!(
                matches!(&e, PackError::WhiteoutName { path } if path == Path::new(bad)),
                "{bad}: {e}"
            );
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{bad}: ")), "{msg}");
            assert!(msg.ends_with("refused") && !msg.contains('\n'), "{msg}");
        }
    }
    // A whiteout (0/0 device) of a name starting with ".wh." would pack to ".wh..wh.*".
    let src = tempdir();
    mknod(
        &src.path().join(".wh.x"),
        rustix::fs::FileType::CharacterDevice,
        0,
        0,
        0,
    );
    let e = pack::pack(src.path(), std::io::sink(), &PackOptions::default()).unwrap_err();
    assert!(matches!(e, PackError::WhiteoutName { .. }), "{e}");
}

#[test]
fn helpers_read_names_and_xattrs() {
    let d = tempdir();
    std::fs::write(d.path().join("b"), b"").unwrap();
    std::fs::write(d.path().join("a"), b"").unwrap();
    let dir = std::fs::File::open(d.path()).unwrap();
    use std::os::fd::AsFd;
    let names = pack::sorted_names(dir.as_fd()).unwrap();
    assert_eq!(names, [OsStr::new("a"), OsStr::new("b")]);
    let at = pack::path_at(dir.as_fd(), OsStr::new("a"));
    set_xattr(&at, "user.k", b"v");
    assert_eq!(
        pack::xattr(&at, OsStr::new("user.k")).unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(pack::xattr(&at, OsStr::new("user.none")).unwrap(), None);
    let mut s = String::new();
    std::fs::File::open(&at)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert!(s.is_empty());
}
