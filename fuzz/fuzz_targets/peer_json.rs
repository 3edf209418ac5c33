//! `cargo fuzz run peer_json`: what is checked is in `eyrie::fuzzing::peer_json` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::peer_json(data));
