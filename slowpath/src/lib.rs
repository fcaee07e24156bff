//! sdnfwd's slow path: the OpenFlow tables ([`ofproto`]) and the translation
//! of a flow through them into datapath actions and a megaflow mask
//! ([`xlate`]), with an optional trace ([`trace`]).
#![warn(missing_docs)]

pub mod classifier;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod hostnat;
pub mod ofproto;
pub mod openflow;
pub mod recirc;
pub mod replay;
pub mod trace;
pub mod tunnel;
pub mod upcall;
pub mod xlate;

pub use flow::OfFlow;
pub use ofproto::{Ofproto, RuleRef};
pub use xlate::{xlate, Output, PipelineDrop, PipelineDropKind, Recirculation, Xlate};
