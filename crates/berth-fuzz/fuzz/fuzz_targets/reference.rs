//! An image reference and a platform string; see `berth_fuzz::fuzz_reference`.
#![no_main]
libfuzzer_sys::fuzz_target!(|s: &str| {
    berth_fuzz::fuzz_reference(s);
    berth_fuzz::fuzz_platform(s);
});
