//! A layer stream (tar, gzip or zstd) unpacked in both modes; see `berth_fuzz::fuzz_unpack`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzz::fuzz_unpack(data));
