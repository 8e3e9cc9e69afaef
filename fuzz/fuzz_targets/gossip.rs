//! libFuzzer target `gossip`: see `lode_fuzz::gossip_message` and docs/FUZZING.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lode_fuzz::gossip_message(data);
});
