//! Pull an image into a store with the library alone (for profiling and `bench/pull.sh` when
//! the `berth` binary is not at hand):
//!
//!     cargo run --release -p berth-image --example pull -- DATA_ROOT REFERENCE
//!
//! Plain HTTP is used for localhost and 127.0.0.0/8 registries. Prints the image ID.

use berth_image::ImageStore;
use berth_registry::{Client, Options, Platform, PlatformExt, Reference};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, reference] = args.as_slice() else {
        eprintln!("usage: pull DATA_ROOT REFERENCE");
        std::process::exit(2);
    };
    let result = Reference::parse(reference)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let store = ImageStore::open(std::path::Path::new(root)).map_err(|e| e.to_string())?;
            store
                .pull(&Client::new(Options::default()), &r, &Platform::host())
                .map_err(|e| e.to_string())
        });
    match result {
        Ok(img) => println!("{}", img.id),
        Err(e) => {
            eprintln!("pull {reference}: {e}");
            std::process::exit(1);
        }
    }
}
