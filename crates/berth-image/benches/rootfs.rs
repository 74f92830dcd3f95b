//! How long making a container's root filesystem from a pulled image takes (issue #3: under
//! 5 ms, whatever the image's size), for a small and a large image:
//!
//! - `rootfs/overlay`: [`ImageStore::create_rootfs`], the copy-on-write root filesystem (an
//!   overlayfs mount of the image's unpacked layers under a fresh `upper/` and `work/`);
//! - `bundle/overlay`: [`ImageStore::bundle`], what `berth image bundle` does (the same
//!   root filesystem plus the runtime's `config.json` made from the image config);
//! - `rootfs/copy`: the fallback where overlayfs cannot be used ([`RootfsKind::Copy`]): the
//!   layers copied into one tree, which grows with the image.
//!
//! Images (OCI layouts cached in `/var/cache/berth-test`, see `berth_testkit::bench`):
//! `busybox` (one layer, ~1 MiB) and `debian` (Debian bookworm minbase, a package, whiteouts
//! and 24 MiB of data: ~150 MB in four layers, ~7000 files). Both are loaded into a fresh
//! store first (not timed).
//!
//! Only the creation is timed (`iter_custom`): each root filesystem is then removed
//! ([`ImageStore::remove_rootfs`]: unmount, delete, unrecord) outside the measurement. Each
//! root is recorded in the store's database before it is made (a committed write
//! transaction); the store holds its database open, as the engine does
//! ([`ImageStore::hold_database`]).
//!
//! Run as root, best through `bench/rootfs.sh`, which puts the store on a fresh ext4 file
//! system; by hand:
//!
//! ```text
//! sudo BERTH_BENCH_DIR=/some/dir cargo bench -p berth-image --bench rootfs
//! ```
//!
//! The store lives in a temporary directory under `$BERTH_BENCH_DIR` (default `/var/tmp`),
//! removed at the end. The benchmark first moves itself into a mount namespace of its own
//! (private propagation), so even if it dies half-way no overlay mount outlives it. Without
//! root it prints why and measures nothing.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_image::config::Overrides;
use berth_image::rootfs::RootfsKind;
use berth_image::{ImageRecord, ImageStore};
use criterion::{BenchmarkId, Criterion, SamplingMode};

/// The images measured (names of `berth_testkit::bench` layouts).
const IMAGES: [&str; 2] = ["busybox", "debian"];

/// A store holding the images, in a temporary directory removed on drop.
struct Fixture {
    store: ImageStore,
    images: Vec<(&'static str, ImageRecord)>,
    /// Where root filesystems and bundles are made.
    scratch: PathBuf,
    /// Names handed out so far.
    next: std::cell::Cell<u64>,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let base = std::env::var_os("BERTH_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let tmp = tempfile::Builder::new()
            .prefix("berth-bench-rootfs-")
            .tempdir_in(&base)
            .expect("a temporary directory in $BERTH_BENCH_DIR");
        let store = ImageStore::open(&tmp.path().join("store")).expect("opening the store");
        // As the engine keeps it: the database open for the store's life, so each root costs
        // its record's commit, not an open and a close of the database as well.
        store.hold_database().expect("opening the database");
        let scratch = tmp.path().join("scratch");
        std::fs::create_dir(&scratch).expect("mkdir scratch");
        let mut images = Vec::new();
        for name in IMAGES {
            let layout = berth_testkit::bench::bench_layout(name);
            let img = load_layout(&store, &layout);
            let size: u64 = img
                .diff_ids
                .iter()
                .map(|d| store.layer_size(d).expect("layer size"))
                .sum();
            eprintln!(
                "{name}: {} layer(s), {:.1} MiB unpacked, {} files",
                img.diff_ids.len(),
                size as f64 / (1 << 20) as f64,
                img.diff_ids
                    .iter()
                    .map(|d| count_entries(&store.layer_path(d)))
                    .sum::<u64>()
            );
            images.push((name, img));
        }
        Fixture {
            store,
            images,
            scratch,
            next: std::cell::Cell::new(0),
            _tmp: tmp,
        }
    }

    /// A fresh path in the scratch directory (not created).
    fn fresh(&self) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        self.scratch.join(format!("c{n}"))
    }
}

/// Load the OCI layout at `layout` into `store` (GNU tar streams it as an archive).
fn load_layout(store: &ImageStore, layout: &Path) -> ImageRecord {
    let mut tar = Command::new("tar")
        .arg("--create")
        .arg("--directory")
        .arg(layout)
        .arg(".")
        .stdout(Stdio::piped())
        .spawn()
        .expect("running tar");
    let images = store
        .load(tar.stdout.take().expect("tar's stdout"))
        .expect("loading the image");
    assert!(tar.wait().expect("tar").success(), "tar failed");
    images.into_iter().next().expect("one image")
}

/// Files, directories and links in the tree at `dir` (itself not counted).
fn count_entries(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        n += 1;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            n += count_entries(&e.path());
        }
    }
    n
}

/// Time `make` (returning something to remove afterwards, untimed) `iters` times.
fn timed<T>(iters: u64, mut make: impl FnMut() -> T, mut remove: impl FnMut(T)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let made = black_box(make());
        total += start.elapsed();
        remove(made);
    }
    total
}

fn rootfs(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("rootfs/overlay");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, img) in &f.images {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || {
                        f.store
                            .create_rootfs_with(img, &f.fresh(), RootfsKind::Overlay)
                            .expect("making an overlay root filesystem")
                    },
                    |r| {
                        f.store
                            .remove_rootfs(&r)
                            .expect("removing the root filesystem")
                    },
                )
            })
        });
    }
    g.finish();
}

fn bundle(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("bundle/overlay");
    g.sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let none = Overrides::default();
    for (name, img) in &f.images {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || {
                        f.store
                            .bundle(&img.id, &f.fresh(), RootfsKind::Overlay, &none)
                            .expect("making a bundle")
                    },
                    |b| {
                        f.store
                            .unbundle(&b.dir, false)
                            .expect("removing the bundle")
                    },
                )
            })
        });
    }
    g.finish();
}

fn copy(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("rootfs/copy");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, img) in &f.images {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    || {
                        f.store
                            .create_rootfs_with(img, &f.fresh(), RootfsKind::Copy)
                            .expect("copying a root filesystem")
                    },
                    |r| {
                        f.store
                            .remove_rootfs(&r)
                            .expect("removing the root filesystem")
                    },
                )
            })
        });
    }
    g.finish();
}

/// Move into a mount namespace of our own whose mounts propagate nowhere.
fn private_mount_namespace() {
    // SAFETY: unshare has no memory-safety preconditions; the process is still single-threaded
    // here (criterion has started nothing), which CLONE_NEWNS needs.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNS): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the path is a NUL-terminated literal, the other pointers may be null for a
    // propagation change.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    assert_eq!(
        r,
        0,
        "making / private: {}",
        std::io::Error::last_os_error()
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // `cargo test --benches` runs this in test mode, which makes nothing worth skipping for.
    if !berth_testkit::is_root() {
        eprintln!("the rootfs benchmark mounts overlayfs: run it as root (bench/rootfs.sh)");
        return;
    }
    private_mount_namespace();
    let f = Fixture::new();
    rootfs(&mut c, &f);
    bundle(&mut c, &f);
    copy(&mut c, &f);
    c.final_summary();
    let left = f.scratch.read_dir().map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "root filesystems left in {}", f.scratch.display());
}
