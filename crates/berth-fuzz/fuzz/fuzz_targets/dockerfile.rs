//! A Dockerfile (and the same text as a .dockerignore); see `berth_fuzz::fuzz_dockerfile`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        berth_fuzz::fuzz_dockerfile(s);
    }
});
