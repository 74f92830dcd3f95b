//! The benchmarks' images, as OCI layouts (tag `latest`) cached once per machine in
//! [`cache_dir`]`/bench-layout-<name>` (the same place `bench/pull.sh` keeps them):
//!
//! - `busybox`: the busybox fixture, one layer (~1 MiB unpacked);
//! - `debian`: [`BenchImage::Debian`], about 150 MB unpacked in four layers;
//! - `synthetic`: [`BenchImage::Synthetic`], 122 MiB of big files in four layers.
//!
//! A layout is built into `<dir>.tmp` under an flock and renamed into place, so a parallel
//! caller waits and an interrupted build leaves nothing that looks complete.

use std::fs;
use std::path::PathBuf;

use crate::debian::{BenchImage, cache_dir, write_bench_layout};

/// The names [`bench_layout`] knows.
pub const BENCH_IMAGES: [&str; 3] = ["busybox", "debian", "synthetic"];

/// The cached OCI layout of the benchmark image `name` (see the module docs), built on first
/// use. Panics on an unknown name.
pub fn bench_layout(name: &str) -> PathBuf {
    assert!(
        BENCH_IMAGES.contains(&name),
        "unknown benchmark image {name:?}: one of {BENCH_IMAGES:?}"
    );
    let dir = cache_dir().join(format!("bench-layout-{name}"));
    if dir.join("index.json").is_file() {
        return dir;
    }
    fs::create_dir_all(cache_dir()).expect("creating the test cache");
    let lock_path = dir.with_extension("lock");
    let lock = fs::File::create(&lock_path).expect("creating the layout lock");
    // Held until `lock` is closed, after the build.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    if !dir.join("index.json").is_file() {
        let tmp = dir.with_extension("tmp");
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_dir_all(&dir);
        match name {
            "busybox" => {
                crate::images::oci_layout(&tmp, "latest", &crate::busybox_rootfs(), &["sh"]);
            }
            "debian" => {
                write_bench_layout(&tmp, BenchImage::Debian);
            }
            _ => {
                write_bench_layout(&tmp, BenchImage::Synthetic);
            }
        }
        fs::rename(&tmp, &dir).expect("moving the layout into place");
    }
    dir
}
