//! sdnfwd as a library: what the binary, the demo and the end-to-end tests
//! share.

pub mod netns;
pub mod netpol;
pub mod topology;
