//! libFuzzer target `rpc`: see `lode_fuzz::rpc` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::rpc(data);
});
