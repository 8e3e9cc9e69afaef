//! libFuzzer target `sync_response`: see `lode_fuzz::sync_response` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::sync_response(data);
});
