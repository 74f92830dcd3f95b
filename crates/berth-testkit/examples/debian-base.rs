//! Build the cached Debian fixtures of the tests (debootstrap; needs deb.debian.org), so that
//! tests run without a network find them: the minbase base and the compiler root
//! (`--include=gcc,libc6-dev`, for the multi-stage build tests).
//!
//!     cargo run -p berth-testkit --example debian-base
//!
//! Prints where they are. Nothing is done for what is cached already.

fn main() {
    let base = berth_testkit::debian::debian_base();
    println!("{}", base.tar.display());
    println!("{}", base.package.display());
    println!("{}", berth_testkit::debian::debian_gcc().display());
}
