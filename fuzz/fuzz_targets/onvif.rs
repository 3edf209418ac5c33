//! `cargo fuzz run onvif`: what is checked is in `eyrie::fuzzing::onvif` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::onvif(data));
