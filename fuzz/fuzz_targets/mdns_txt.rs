//! `cargo fuzz run mdns_txt`: what is checked is in `eyrie::fuzzing::mdns_txt` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::mdns_txt(data));
