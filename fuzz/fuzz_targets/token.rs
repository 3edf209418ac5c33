//! `cargo fuzz run token`: what is checked is in `eyrie::fuzzing::token` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::token(data));
