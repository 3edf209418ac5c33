//! `cargo fuzz run config`: what is checked is in `eyrie::fuzzing::config` (src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eyrie::fuzzing::config(data));
