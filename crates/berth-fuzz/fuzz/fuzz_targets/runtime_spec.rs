//! A runtime config.json; see `berth_fuzz::fuzz_runtime_spec`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::fuzz_runtime_spec(data));
