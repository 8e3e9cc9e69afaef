//! libFuzzer target `header_chain`: see `lode_fuzz::header_chain_batch` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::header_chain_batch(data);
});
