//! ovs-ofctl flow text: the add-flows syntax and the dump-flows output, parsed
//! into [`FlowSpec`]s and printed back in ovs-ofctl's layout.
//!
//! `field`: the match fields; `spec`: the flow model; `parse`: text to
//! model, a pure function with located errors ([`crate::ParseError`]);
//! `print`: model to text, following OVS's `match_format`/`ofpacts_format`
//! so that a dump of sdnfwd's tables reads like `ovs-ofctl -O OpenFlow13
//! dump-flows br0`, and `print(parse(print(x))) == print(x)` holds (fuzzed);
//! `group`: groups, parsed and printed as `add-group`/`dump-groups` do.
//! This file only names them.

mod field;
mod group;
mod parse;
mod print;
mod spec;

pub use field::*;
pub use group::{Bucket, GroupCommand, GroupLineKind, GroupSpec, GroupType};
pub use parse::{
    parse_flow_file, parse_flow_line, parse_group_file, parse_group_line, parse_trace_flow, FlowCommand, LineKind,
};
pub use print::*;
pub use spec::*;

#[cfg(test)]
mod tests;
