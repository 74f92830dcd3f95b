//! Unpacking real tar streams (built here with the `tar` crate, compressed with real gzip and
//! zstd) into real directories, as root: ownership, devices and trusted xattrs need it.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_layer::{Error, Mode, unpack};
use berth_testkit::tar::{EntryType, Format, Layer};
use sha2::{Digest, Sha256};

/// A layer of GNU headers, every entry owned by 1234:5678 with mtime 1 600 000 000.
fn layer() -> Layer {
    Layer::new()
        .format(Format::Gnu)
        .owner(1234, 5678)
        .mtime(1_600_000_000)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_kind_of_entry_with_its_metadata_in_three_compressions() {
    let tar = layer()
        .dir("etc", 0o755)
        .file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")
        .file("bin/tool", 0o4755, b"#!/bin/sh\n") // parent not in the archive
        .link(EntryType::Symlink, "bin/sh", "/bin/busybox")
        .link(EntryType::Link, "etc/hosts.hard", "etc/hosts")
        .node(EntryType::Fifo, "run/fifo", 0, 0)
        .node(EntryType::Char, "dev/null", 1, 3)
        .xattr_file("caps", "user.berth", b"yes")
        .dir("locked", 0o500)
        .file("locked/inside", 0o600, b"s")
        .tar();
    let zstd = zstd::stream::encode_all(&tar[..], 3).unwrap();
    for (what, bytes) in [("plain", tar.clone()), ("gzip", gzip(&tar)), ("zstd", zstd)] {
        let dir = tempfile::tempdir().unwrap();
        let u = unpack(&bytes[..], dir.path(), Mode::Overlay).unwrap();
        assert_eq!(u.diff_id, format!("sha256:{}", sha(&tar)), "{what}");
        assert_eq!(u.tar_size, tar.len() as u64, "{what}");
        let d = dir.path();
        assert_eq!(
            std::fs::read(d.join("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        let m = std::fs::metadata(d.join("etc/hosts")).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
            (1234, 5678, 0o644, 1_600_000_000)
        );
        assert_eq!(
            std::fs::metadata(d.join("bin/tool")).unwrap().mode() & 0o7777,
            0o4755,
            "setuid kept"
        );
        assert_eq!(
            std::fs::read_link(d.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(
            std::fs::symlink_metadata(d.join("bin/sh")).unwrap().uid(),
            1234
        );
        assert_eq!(
            m.ino(),
            std::fs::metadata(d.join("etc/hosts.hard")).unwrap().ino(),
            "hard link"
        );
        assert!(
            std::fs::metadata(d.join("run/fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let null = std::fs::metadata(d.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        let x = xattr(&d.join("caps"), "user.berth");
        // tmpfs without user xattrs refuses; /tmp here is a real file system.
        assert_eq!(x.as_deref(), Some(&b"yes"[..]));
        let locked = std::fs::metadata(d.join("locked")).unwrap();
        assert_eq!(
            (locked.mode() & 0o7777, locked.mtime()),
            (0o500, 1_600_000_000),
            "directory metadata set last"
        );
        assert_eq!(std::fs::read(d.join("locked/inside")).unwrap(), b"s");
    }
}

fn xattr(p: &Path, key: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p, key, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn overlay_whiteouts_become_what_overlayfs_reads() {
    let tar = layer()
        .dir("a", 0o755)
        .file("a/.wh..wh..opq", 0o644, b"")
        .file("a/new", 0o644, b"n")
        .file(".wh.gone", 0o644, b"")
        .tar();
    let dir = tempfile::tempdir().unwrap();
    unpack(&tar[..], dir.path(), Mode::Overlay).unwrap();
    let wh = std::fs::symlink_metadata(dir.path().join("gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert_eq!(
        xattr(&dir.path().join("a"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(tree(dir.path()), ["a", "a/new", "gone"]);
}

#[test]
fn flattened_layers_apply_whiteouts_by_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let base = layer()
        .file("a/x", 0o644, b"x")
        .file("a/y", 0o644, b"y")
        .file("b/keep", 0o644, b"k")
        .file("c", 0o644, b"c")
        .tar();
    unpack(&base[..], dir.path(), Mode::Flatten).unwrap();
    let top = layer()
        .file("a/z", 0o644, b"z")
        .file("a/.wh..wh..opq", 0o644, b"")
        .file(".wh.b", 0o644, b"")
        .file("c", 0o600, b"replaced")
        .tar();
    unpack(&gzip(&top)[..], dir.path(), Mode::Flatten).unwrap();
    assert_eq!(tree(dir.path()), ["a", "a/z", "c"]);
    assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"replaced");
}

#[test]
fn escaping_entries_are_refused_and_nothing_lands_outside() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            layer()
                .raw(b"../evil", EntryType::Regular, b"", b"evil")
                .tar(),
        ),
        (
            "absolute",
            layer()
                .raw(b"/tmp/berth-layer-evil", EntryType::Regular, b"", b"evil")
                .tar(),
        ),
        (
            "through a planted symlink",
            layer()
                .link(EntryType::Symlink, "link", "/tmp")
                .raw(b"link/berth-layer-evil", EntryType::Regular, b"", b"evil")
                .tar(),
        ),
        (
            "through a relative planted symlink",
            layer()
                .link(EntryType::Symlink, "up", "..")
                .raw(b"up/evil", EntryType::Regular, b"", b"evil")
                .tar(),
        ),
        (
            "hard link out",
            layer()
                .raw(b"h", EntryType::Link, b"../../etc/passwd", b"")
                .tar(),
        ),
        (
            "hard link absolute",
            layer()
                .raw(b"h", EntryType::Link, b"/etc/passwd", b"")
                .tar(),
        ),
    ];
    for (what, tar) in cases {
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("layer");
        std::fs::create_dir(&dest).unwrap();
        let err = unpack(&tar[..], &dest, Mode::Overlay).unwrap_err();
        assert!(matches!(err, Error::Escape { .. }), "{what}: {err}");
        assert!(err.to_string().contains("refused"), "{what}: {err}");
        assert_eq!(
            tree(outer.path()),
            tree_with_layer(&dest, outer.path()),
            "{what}"
        );
        assert!(!Path::new("/tmp/berth-layer-evil").exists(), "{what}");
        assert!(!outer.path().join("evil").exists(), "{what}");
    }
}

/// The outer directory holds only the layer directory and what is inside it.
fn tree_with_layer(dest: &Path, outer: &Path) -> Vec<String> {
    let mut v = vec!["layer".to_string()];
    v.extend(tree(dest).into_iter().map(|p| format!("layer/{p}")));
    let _ = outer;
    v
}

#[test]
fn truncated_and_corrupt_streams_are_read_errors() {
    let tar = layer().file("f", 0o644, &vec![7u8; 100_000]).tar();
    let gz = gzip(&tar);
    let dir = tempfile::tempdir().unwrap();
    let err = unpack(&gz[..gz.len() / 2], dir.path(), Mode::Overlay).unwrap_err();
    assert!(matches!(err, Error::Read(_)), "{err}");
    let mut bad = gz.clone();
    bad[gz.len() / 2] ^= 0xff;
    let dir = tempfile::tempdir().unwrap();
    let err = unpack(&bad[..], dir.path(), Mode::Overlay).unwrap_err();
    assert!(matches!(err, Error::Read(_)), "{err}");
}

#[test]
fn overlayfs_stacks_unpacked_layers_with_their_whiteouts() {
    let t = tempfile::tempdir().unwrap();
    let (base, top, merged) = (
        t.path().join("base"),
        t.path().join("top"),
        t.path().join("merged"),
    );
    for d in [&base, &top, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    let l1 = layer()
        .file("a/old", 0o644, b"o")
        .file("gone", 0o644, b"g")
        .file("kept", 0o644, b"k")
        .tar();
    let l2 = layer()
        .dir("a", 0o755)
        .file("a/.wh..wh..opq", 0o644, b"")
        .file("a/new", 0o644, b"n")
        .file(".wh.gone", 0o644, b"")
        .tar();
    unpack(&l1[..], &base, Mode::Overlay).unwrap();
    unpack(&l2[..], &top, Mode::Overlay).unwrap();
    let opts =
        std::ffi::CString::new(format!("lowerdir={}:{}", top.display(), base.display())).unwrap();
    rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        Some(opts.as_c_str()),
    )
    .expect("mounting overlayfs");
    let seen = tree(&merged);
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert_eq!(seen, ["a", "a/new", "kept"]);
}

#[test]
fn entry_types_layers_do_not_hold_are_refused_and_global_headers_ignored() {
    for (kind, byte) in [
        (EntryType::new(b'V'), 'V'), // GNU volume label
        (EntryType::new(b'M'), 'M'), // GNU multi-volume continuation
        (EntryType::new(b'Z'), 'Z'), // unknown
    ] {
        let tar = layer().raw(b"x", kind, b"", b"data").tar();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&tar[..], dir.path(), Mode::Overlay).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(&format!("'{byte}'")), "{err}");
        assert_eq!(tree(dir.path()), Vec::<String>::new());
    }
    let tar = layer()
        .raw(
            b"pax_global_header",
            EntryType::XGlobalHeader,
            b"",
            b"not even PAX records",
        )
        .file("f", 0o644, b"f")
        .tar();
    let dir = tempfile::tempdir().unwrap();
    unpack(&tar[..], dir.path(), Mode::Overlay).unwrap();
    assert_eq!(tree(dir.path()), ["f"]);
}

#[test]
fn errors_about_very_long_paths_stay_short() {
    // 4096 components: the kernel refuses the path (ENAMETOOLONG), and the message names it
    // shortened, on one line.
    let deep = vec!["a"; 4096].join("/");
    let tar = layer()
        .pax(&[("path", deep.as_bytes())])
        .file("placeholder", 0o644, b"x")
        .tar();
    let dir = tempfile::tempdir().unwrap();
    let err = unpack(&tar[..], dir.path(), Mode::Flatten).unwrap_err();
    let msg = err.to_string();
    assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
    assert!(
        msg.contains("a/a/a") && msg.contains('…') && !msg.contains('\n'),
        "{msg}"
    );
}
