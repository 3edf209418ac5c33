//! `cargo fuzz run mp4_file`: what is checked is in `eyrie::fuzzing::mp4_file` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::mp4_file(data));
