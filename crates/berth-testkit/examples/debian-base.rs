//! Build the cached Debian base of the test fixtures (debootstrap; needs deb.debian.org), so
//! that tests run without a network find it:
//!
//!     cargo run -p berth-testkit --example debian-base
//!
//! Prints where it is. Nothing is done if it is cached already.

fn main() {
    let base = berth_testkit::debian::debian_base();
    println!("{}", base.tar.display());
    println!("{}", base.package.display());
}
