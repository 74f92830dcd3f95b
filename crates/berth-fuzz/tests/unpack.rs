//! The layer unpacker against the known bad layers and generated ones (see `berth_fuzz`):
//! never a panic, a hang, or a change outside the target directory. As root.

use berth_fuzz::runner::{config, with_deadline};
use berth_fuzz::{fuzz_unpack, inputs, seeds};
use proptest::prelude::*;

#[test]
fn known_bad_layers() {
    for (what, data) in seeds::layers() {
        let mut forms = vec![("plain", data.clone())];
        // Compressed too, unless big (compression is the same path for every layer).
        if data.len() < 64 * 1024 {
            forms.push(("gzip", berth_fuzz::gzip(&data)));
            forms.push(("zstd", berth_fuzz::zstd(&data)));
        }
        for (how, bytes) in forms {
            with_deadline(&format!("{what} ({how})"), move || fuzz_unpack(&bytes));
        }
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn generated_layers(spec in inputs::layer()) {
        let bytes = spec.bytes();
        with_deadline("a generated layer", move || fuzz_unpack(&bytes));
    }

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..4096)) {
        with_deadline("arbitrary bytes", move || fuzz_unpack(&data));
    }
}

/// A corpus for cargo-fuzz (`fuzz/`): the seeds, one file each, written into
/// `$BERTH_FUZZ_CORPUS` (e.g. `fuzz/corpus/unpack`).
#[test]
#[ignore = "writes files: BERTH_FUZZ_CORPUS=DIR cargo test -p berth-fuzz --test unpack -- --ignored"]
fn write_corpus() {
    let dir = std::path::PathBuf::from(
        std::env::var("BERTH_FUZZ_CORPUS").expect("BERTH_FUZZ_CORPUS: the corpus directory"),
    );
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (_, data)) in seeds::layers().into_iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), data).unwrap();
    }
}
