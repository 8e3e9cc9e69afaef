//! libFuzzer target `header`: see `lode_fuzz::header` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::header(data);
});
