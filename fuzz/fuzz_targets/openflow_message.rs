//! OpenFlow 1.3 messages as the listener reads them: no panic; a decoded
//! FLOW_MOD re-encodes to the same command.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| slowpath::fuzzing::openflow_message(data));
