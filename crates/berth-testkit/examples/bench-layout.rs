//! Print the path of a benchmark image's OCI layout (tag `latest`), building it once per
//! machine (see `berth_testkit::bench`), for `bench/rootfs.sh`:
//!
//!     cargo run --release -p berth-testkit --example bench-layout -- busybox|debian|synthetic

use berth_testkit::bench::{BENCH_IMAGES, bench_layout};

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    if !BENCH_IMAGES.contains(&name.as_str()) {
        eprintln!("usage: bench-layout {}", BENCH_IMAGES.join("|"));
        std::process::exit(2);
    }
    println!("{}", bench_layout(&name).display());
}
