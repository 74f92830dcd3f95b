//! Sparse files, in archives made by GNU tar itself (`--sparse`, in the old GNU format and
//! in the three PAX formats) from files made with `truncate` and `dd seek`: unpacked whole,
//! byte for byte, their holes left as holes, the diff ID still the sha256 of the tar. And
//! malformed or unknown sparse descriptions are refused, never unpacked into a wrong file.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_layer::{Error, Mode, unpack};
use berth_testkit::tar::{EntryType, Layer, PaxSparse, gzip};
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
        .prefix("berth-sparse-")
        .tempdir()
        .unwrap()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// `dd` `data` into `file` at `offset` without truncating it.
fn dd_at(file: &Path, offset: u64, data: &[u8]) {
    let mut child = Command::new("dd")
        .arg(format!("of={}", file.display()))
        .args(["bs=1", "conv=notrunc", "status=none"])
        .arg(format!("seek={offset}"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    assert!(child.wait().unwrap().success());
}

/// A tree with sparse files: `d/holes` (data at the start, in the middle, a hole at its
/// end), `d/many` (40 data runs: more than the old GNU header's four slots, so extension
/// blocks follow it), `d/empty` (all hole), and `plain` (not sparse).
fn sparse_tree(root: &Path) {
    let d = root.join("d");
    std::fs::create_dir_all(&d).unwrap();
    let holes = d.join("holes");
    run(Command::new("truncate").arg("-s").arg("3M").arg(&holes));
    dd_at(&holes, 0, b"the head");
    dd_at(&holes, 1_500_000, b"the middle");
    let many = d.join("many");
    run(Command::new("truncate").arg("-s").arg("5M").arg(&many));
    for i in 0..40u64 {
        dd_at(&many, i * 128 * 1024 + 7, format!("run {i}").as_bytes());
    }
    dd_at(&many, 5 * 1024 * 1024 - 4, b"end!");
    run(Command::new("truncate")
        .arg("-s")
        .arg("1M")
        .arg(d.join("empty")));
    std::fs::write(root.join("plain"), b"not sparse").unwrap();
    for f in ["d/holes", "d/many", "d/empty", "plain"] {
        let p = root.join(f);
        std::os::unix::fs::chown(&p, Some(1000), Some(1001)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    }
    // The file system must have kept the holes, or GNU tar has nothing sparse to store.
    assert!(std::fs::metadata(&holes).unwrap().blocks() * 512 < 1_000_000);
}

/// GNU tar of `root`'s tree with `args` (a hard link to d/holes added after it).
fn gnu_tar(root: &Path, args: &[&str]) -> Vec<u8> {
    let out = root.parent().unwrap().join("out.tar");
    let _ = std::fs::remove_file(root.join("link"));
    std::fs::hard_link(root.join("d/holes"), root.join("link")).unwrap();
    run(Command::new("tar")
        .args(args)
        .arg("-C")
        .arg(root)
        .arg("-cf")
        .arg(&out)
        .args(["d", "plain", "link"]));
    std::fs::read(&out).unwrap()
}

fn assert_same_file(src: &Path, got: &Path, what: &str) {
    let (a, b) = (
        std::fs::metadata(src).unwrap(),
        std::fs::metadata(got).unwrap(),
    );
    assert_eq!(a.len(), b.len(), "{what}: size of {}", got.display());
    assert!(
        std::fs::read(src).unwrap() == std::fs::read(got).unwrap(),
        "{what}: content of {}",
        got.display()
    );
    assert_eq!(
        (b.uid(), b.gid(), b.mode() & 0o7777, b.mtime()),
        (1000, 1001, 0o640, a.mtime()),
        "{what}: metadata of {}",
        got.display()
    );
    // Holes stay holes: no more allocated than the source (plus a block per data run).
    assert!(
        b.blocks() <= a.blocks() + 8 * 42,
        "{what}: {} allocates {} blocks, the source {}",
        got.display(),
        b.blocks(),
        a.blocks()
    );
}

#[test]
fn sparse_files_from_gnu_tar_in_every_format_unpack_whole_with_their_holes() {
    let t = tempdir();
    let src = t.path().join("src");
    sparse_tree(&src);
    let formats: [(&str, &[&str]); 5] = [
        ("gnu", &["--sparse", "--format=gnu"]),
        ("posix (default 1.0)", &["--sparse", "--format=posix"]),
        (
            "posix 0.0",
            &["--sparse", "--format=posix", "--sparse-version=0.0"],
        ),
        (
            "posix 0.1",
            &["--sparse", "--format=posix", "--sparse-version=0.1"],
        ),
        (
            "posix 1.0",
            &["--sparse", "--format=posix", "--sparse-version=1.0"],
        ),
    ];
    for (what, args) in formats {
        let tar = gnu_tar(&src, args);
        // GNU tar did write sparse entries (else this test would prove nothing).
        let mut kinds = Vec::new();
        let mut a = tar::Archive::new(&tar[..]);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let sparse_pax = e.pax_extensions().unwrap().is_some_and(|mut x| {
                x.any(|r| r.unwrap().key().unwrap().starts_with("GNU.sparse"))
            });
            kinds.push((e.header().entry_type(), sparse_pax));
        }
        let sparse = kinds
            .iter()
            .filter(|(k, p)| *k == EntryType::GNUSparse || *p)
            .count();
        assert_eq!(sparse, 3, "{what}: {kinds:?}");
        for (mode, bytes) in [(Mode::Overlay, tar.clone()), (Mode::Flatten, gzip(&tar))] {
            let dest = tempdir();
            let u = unpack(&bytes[..], dest.path(), mode).unwrap();
            assert_eq!(u.diff_id, sha(&tar), "{what}");
            assert_eq!(u.tar_size, tar.len() as u64, "{what}");
            for f in ["d/holes", "d/many", "d/empty", "plain"] {
                assert_same_file(&src.join(f), &dest.path().join(f), what);
            }
            let mut names: Vec<String> = std::fs::read_dir(dest.path().join("d"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(
                names,
                ["empty", "holes", "many"],
                "{what}: no GNUSparseFile.*"
            );
            assert_eq!(
                std::fs::metadata(dest.path().join("link")).unwrap().ino(),
                std::fs::metadata(dest.path().join("d/holes"))
                    .unwrap()
                    .ino(),
                "{what}: the hard link to the sparse file"
            );
        }
    }
}

#[test]
fn an_exabyte_of_holes_is_no_work() {
    // A few hundred bytes declaring a file of 2^60 bytes: expanding the holes by writing (or
    // reading) zeros would never end. The file system refuses the size, quickly; a size it
    // takes (1 TiB) becomes a file of that size with nothing allocated.
    for (size, ok) in [(1u64 << 60, false), (1u64 << 40, true)] {
        for tar in [
            Layer::new()
                .gnu_sparse("big", 0o644, size, &[(0, b"a"), (size / 2, b"b")])
                .tar(),
            Layer::new()
                .pax_sparse(
                    PaxSparse::V1_0,
                    "big",
                    0o644,
                    size,
                    &[(0, b"a"), (size / 2, b"b")],
                )
                .tar(),
        ] {
            let dest = tempdir();
            let t0 = Instant::now();
            let r = unpack(&tar[..], dest.path(), Mode::Overlay);
            assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
            if ok {
                r.unwrap();
                let md = std::fs::metadata(dest.path().join("big")).unwrap();
                assert_eq!(md.len(), size);
                assert!(md.blocks() <= 64, "{} blocks", md.blocks());
            } else {
                let err = r.unwrap_err();
                assert!(matches!(err, Error::Fs { .. }), "{err}");
            }
        }
    }
}

#[test]
fn sparse_entries_built_here_unpack_in_every_format() {
    let segs: Vec<(u64, Vec<u8>)> = (0..30u64)
        .map(|i| (i * 10_000 + 3, format!("segment {i}").into_bytes()))
        .collect();
    let segs: Vec<(u64, &[u8])> = segs.iter().map(|(o, d)| (*o, &d[..])).collect();
    let size = 400_000u64;
    let mut want = vec![0u8; size as usize];
    for (o, d) in &segs {
        want[*o as usize..*o as usize + d.len()].copy_from_slice(d);
    }
    let layers = [
        ("gnu", Layer::new().gnu_sparse("a/s", 0o600, size, &segs)),
        (
            "0.0",
            Layer::new().pax_sparse(PaxSparse::V0_0, "a/s", 0o600, size, &segs),
        ),
        (
            "0.1",
            Layer::new().pax_sparse(PaxSparse::V0_1, "a/s", 0o600, size, &segs),
        ),
        (
            "1.0",
            Layer::new().pax_sparse(PaxSparse::V1_0, "a/s", 0o600, size, &segs),
        ),
    ];
    for (what, layer) in layers {
        // Another sparse file right after (two pending in a row), then a plain one.
        let tar = layer
            .gnu_sparse("a/t", 0o600, 5000, &[(4000, b"t")])
            .file("a/after", 0o644, b"after")
            .tar();
        let dest = tempdir();
        unpack(&tar[..], dest.path(), Mode::Flatten).unwrap();
        assert!(
            std::fs::read(dest.path().join("a/s")).unwrap() == want,
            "{what}"
        );
        let mut t = vec![0u8; 5000];
        t[4000] = b't';
        assert_eq!(std::fs::read(dest.path().join("a/t")).unwrap(), t, "{what}");
        assert_eq!(
            std::fs::read(dest.path().join("a/after")).unwrap(),
            b"after"
        );
        assert_eq!(
            std::fs::metadata(dest.path().join("a/s")).unwrap().mode() & 0o7777,
            0o600
        );
    }
}

#[test]
fn malformed_and_unknown_sparse_files_are_refused() {
    let pax_file = |records: &[(&str, &[u8])], data: &[u8]| {
        Layer::new()
            .pax(records)
            .file("GNUSparseFile.0/f", 0o644, data)
            .tar()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "version 2.0",
            pax_file(
                &[
                    ("GNU.sparse.major", b"2"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.name", b"f"),
                    ("GNU.sparse.realsize", b"10"),
                ],
                b"",
            ),
        ),
        (
            "a map beyond the size",
            pax_file(
                &[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"8,4")],
                b"abcd",
            ),
        ),
        (
            "a map covering less data than the entry has",
            pax_file(
                &[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"0,2")],
                b"abcd",
            ),
        ),
        (
            "a map covering more data than the entry has",
            pax_file(
                &[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"0,8")],
                b"abcd",
            ),
        ),
        (
            "a 1.0 map longer than the data",
            pax_file(
                &[
                    ("GNU.sparse.major", b"1"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.name", b"f"),
                    ("GNU.sparse.realsize", b"10"),
                ],
                b"3\n0\n1\n",
            ),
        ),
        (
            "a sparse directory",
            Layer::new()
                .pax(&[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"")])
                .dir("d/", 0o755)
                .tar(),
        ),
        (
            "a sparse file named .wh...",
            pax_file(
                &[
                    ("GNU.sparse.major", b"1"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.name", b".wh..."),
                    ("GNU.sparse.realsize", b"0"),
                ],
                b"0\n",
            ),
        ),
        (
            "a sparse file named ../x",
            pax_file(
                &[
                    ("GNU.sparse.major", b"1"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.name", b"../x"),
                    ("GNU.sparse.realsize", b"0"),
                ],
                b"0\n",
            ),
        ),
    ];
    for (what, tar) in cases {
        let outer = tempdir();
        let dest = outer.path().join("layer");
        std::fs::create_dir(&dest).unwrap();
        let err = unpack(&tar[..], &dest, Mode::Overlay).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { .. } | Error::Escape { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().ends_with("refused"), "{what}: {err}");
        let left: Vec<_> = std::fs::read_dir(outer.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{what}: nothing beside the layer");
    }
    // An old-GNU entry whose map is out of order is the tar reader's error.
    let mut tar = Layer::new()
        .gnu_sparse("s", 0o644, 100, &[(10, b"abc"), (50, b"def")])
        .tar();
    // The second slot's offset (header bytes 410..422) goes before the first segment.
    tar[410..422].copy_from_slice(b"00000000005\0");
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&tar[..512]);
    h.set_cksum();
    tar[..512].copy_from_slice(h.as_bytes());
    let dest = tempdir();
    let err = unpack(&tar[..], dest.path(), Mode::Overlay).unwrap_err();
    assert!(matches!(err, Error::Read(_)), "{err}");
}

#[test]
fn a_stream_cut_inside_sparse_data_is_a_read_error() {
    let tar = Layer::new()
        .gnu_sparse(
            "s",
            0o644,
            1 << 20,
            &[(0, &[7u8; 5000]), (500_000, &[8u8; 5000])],
        )
        .tar();
    for cut in [512 + 100, 512 + 4096, 512 + 9000] {
        let dest = tempdir();
        let err = unpack(&tar[..cut], dest.path(), Mode::Overlay).unwrap_err();
        assert!(matches!(err, Error::Read(_)), "cut at {cut}: {err}");
    }
}
