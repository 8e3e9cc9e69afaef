//! libFuzzer target `transaction`: see `lode_fuzz::transaction` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::transaction(data);
});
