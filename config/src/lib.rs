//! sdnfwd configuration: ovs-ofctl flow text ([`ofctl`]), the cluster YAML
//! model ([`yaml`]) and its loading from API objects ([`load`]),
//! NetworkPolicy ([`netpol`]), the checks of a cluster as a whole ([`check`]) and the
//! OpenShift SDN flow renderer ([`render`]).
//!
//! Pure functions over text and values: no I/O beyond what the caller hands
//! in, no threads. Every user-facing error is a [`ParseError`] naming the
//! line and column.
#![warn(missing_docs)]

pub mod check;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod load;
pub mod netpol;
pub mod obj;
pub mod ofctl;
pub mod render;
pub mod yaml;
pub mod yaml_pos;

pub use error::ParseError;
