//! libFuzzer target `wallet_file`: see `lode_fuzz::wallet_file` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::wallet_file(data);
});
