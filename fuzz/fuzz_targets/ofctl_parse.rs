//! ovs-ofctl flow text: no panic; print(parse(print(x))) == print(x).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| config::fuzzing::ofctl_roundtrip(data));
