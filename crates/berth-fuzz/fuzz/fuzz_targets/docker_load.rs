//! A docker-archive's manifest.json and config (the input split at the first NUL byte);
//! see `berth_fuzz::fuzz_docker_load`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (manifest, config) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    berth_fuzz::fuzz_docker_load(manifest, config);
});
