//! Write a benchmark image as an OCI layout (tag `latest`), for `bench/pull.sh`:
//!
//!     cargo run --release -p berth-testkit --example bench-image -- DIR [debian|synthetic]
//!
//! `debian` (the default): the Debian base, a package layer, a whiteout layer and 24 MiB of
//! data, about 150 MB unpacked in four layers. `synthetic`: busybox and three layers of
//! 40 MiB of half-compressible data. Prints the manifest digest.

use berth_testkit::debian::{BenchImage, write_bench_layout};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: bench-image DIR [debian|synthetic]");
        std::process::exit(2);
    };
    let kind = match args.next().as_deref() {
        None | Some("debian") => BenchImage::Debian,
        Some("synthetic") => BenchImage::Synthetic,
        Some(other) => {
            eprintln!("unknown image {other:?}: debian or synthetic");
            std::process::exit(2);
        }
    };
    println!("{}", write_bench_layout(std::path::Path::new(&dir), kind));
}
