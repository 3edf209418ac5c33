//! `cargo fuzz run rtsp`: what is checked is in `eyrie::fuzzing::rtsp` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::rtsp(data));
