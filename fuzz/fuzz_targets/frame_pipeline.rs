//! Arbitrary frames (and VXLAN payloads) through extraction and the whole
//! pipeline: no panic, no lost frame.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| slowpath::fuzzing::pipeline(data));
