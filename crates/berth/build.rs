//! Relink when the release build's code layout changes (scripts/link-ordered.sh reads it).
fn main() {
    println!("cargo:rerun-if-changed=../../scripts/layout/runtime-hot.txt");
    println!("cargo:rerun-if-changed=../../scripts/layout/order.py");
}
