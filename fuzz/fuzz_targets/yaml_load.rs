//! Cluster YAML: no panic loading or rendering; rendered flows parse back.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| config::fuzzing::yaml_load(data));
