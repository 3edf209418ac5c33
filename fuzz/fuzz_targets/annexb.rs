//! `cargo fuzz run annexb`: what is checked is in `eyrie::fuzzing::annexb` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::annexb(data));
