//! config.json as the runtime loads it (parse, validate, compile the seccomp filter),
//! against known odd documents and ones generated from the default spec.

use berth_fuzz::runner::{config, with_deadline};
use berth_fuzz::{fuzz_runtime_spec, inputs, seeds};
use proptest::prelude::*;

#[test]
fn known_odd_specs() {
    for (what, data) in seeds::runtime_specs() {
        with_deadline(what, move || fuzz_runtime_spec(&data));
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn generated_specs(data in inputs::json_from(
        berth_testkit::default_config(),
        seeds::SPEC_FIELDS.to_vec(),
    )) {
        fuzz_runtime_spec(&data);
    }

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz_runtime_spec(&data);
    }
}
