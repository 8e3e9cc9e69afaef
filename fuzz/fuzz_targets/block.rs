//! libFuzzer target `block`: see `lode_fuzz::block` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::block(data);
});
