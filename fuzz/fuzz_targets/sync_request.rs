//! libFuzzer target `sync_request`: see `lode_fuzz::sync_request` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::sync_request(data);
});
