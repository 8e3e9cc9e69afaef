//! libFuzzer target `node_key`: see `lode_fuzz::node_key` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::node_key(data);
});
