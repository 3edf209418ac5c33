//! `cargo fuzz run segment`: what is checked is in `eyrie::fuzzing::segment` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::segment(data));
