//! `cargo fuzz run range`: what is checked is in `eyrie::fuzzing::range` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::range(data));
