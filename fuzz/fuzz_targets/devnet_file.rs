//! libFuzzer target `devnet_file`: see `lode_fuzz::devnet_file` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::devnet_file(data);
});
