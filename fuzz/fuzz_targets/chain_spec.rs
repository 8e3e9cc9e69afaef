//! libFuzzer target `chain_spec`: see `lode_fuzz::chain_spec` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::chain_spec(data);
});
