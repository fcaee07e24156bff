//! sdnfwd as a library: what the binary, the demo and the end-to-end tests
//! share.

pub mod bench_ct;
pub mod ct_mode;
pub mod netns;
pub mod netpol;
pub mod topology;
pub mod vswitchd_lab;
