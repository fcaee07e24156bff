//! OpenFlow groups as `ovs-ofctl add-group[s]`, `mod-group`, `del-groups`
//! and `dump-groups` write them: `group_id=N,type=select,bucket=...`.
//!
//! The model and its printing; `parse` reads the text (`parse_group_line`,
//! `parse_group_file`, bundle lines in `parse_flow_file`).
//!
//! Printing follows `ovs-ofctl -O OpenFlow13 dump-groups`: OpenFlow 1.3 has
//! no place for `selection_method`, `fields` or `bucket_id`, so OVS drops
//! them on the way to the switch and never shows them; sdnfwd keeps them in
//! the model (it reads the text itself) but prints as OVS does. A bucket's
//! weight shows only when it is not the default (1 in a select group).

use std::fmt::Write as _;

use super::print::fmt_actions;
use super::spec::Action;

/// A group's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Every bucket gets a copy.
    All,
    /// One bucket, chosen per flow (by weight; OVS's `selection_method`).
    Select,
    /// Exactly one bucket.
    Indirect,
    /// The first live bucket.
    FastFailover,
}

impl GroupType {
    /// The name `type=` takes.
    pub fn name(self) -> &'static str {
        match self {
            GroupType::All => "all",
            GroupType::Select => "select",
            GroupType::Indirect => "indirect",
            GroupType::FastFailover => "ff",
        }
    }

    /// A bucket's weight when none is written (OVS: 1 in a select group,
    /// 0 in the others, which take no weight).
    pub fn default_weight(self) -> u16 {
        if self == GroupType::Select {
            1
        } else {
            0
        }
    }
}

/// One bucket: its actions and how it is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// `bucket_id:N` (OpenFlow 1.5 only: over OpenFlow 1.3, which sdnfwd
    /// and openshift-sdn speak, OVS drops it and numbers buckets from 0).
    pub bucket_id: Option<u32>,
    /// `weight:N`; `None`: the group type's default
    /// ([`GroupType::default_weight`], 1 in a select group). The parser
    /// keeps `None` for a written default.
    pub weight: Option<u16>,
    /// `watch_port:N` (`None`: any, as OVS's `OFPP_ANY`).
    pub watch_port: Option<u32>,
    /// `watch_group:N` (`None`: any, as OVS's `OFPG_ANY`).
    pub watch_group: Option<u32>,
    /// `actions=...`.
    pub actions: Vec<Action>,
}

/// A group as `add-group` writes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupSpec {
    /// `group_id=N`.
    pub group_id: u32,
    /// `type=`.
    pub kind: GroupType,
    /// `selection_method=hash|dp_hash` (select groups; OVS's default is
    /// dp_hash, which sdnfwd computes as hash). OpenFlow 1.5 only, like
    /// `fields`: never printed.
    pub selection_method: Option<String>,
    /// `fields(...)`: the fields `selection_method=hash` hashes (names as
    /// written, with `=MASK` when one was; empty: OVS's default, the
    /// 5-tuple).
    pub fields: Vec<String>,
    /// The buckets, in order.
    pub buckets: Vec<Bucket>,
}

/// What a group line asks for (`ovs-ofctl` commands and bundle lines
/// `group add|modify|delete ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupCommand {
    /// `add-group`: a new group (an existing id is an error).
    Add(GroupSpec),
    /// `mod-group`: replace an existing group's type and buckets.
    Modify(GroupSpec),
    /// `del-groups [group_id=N]`: one group, or all (`None`).
    Delete(Option<u32>),
}

/// Which `ovs-ofctl` command a group line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupLineKind {
    /// `add-group`, `add-groups`, bundle `group add`.
    Add,
    /// `mod-group`, bundle `group modify`.
    Modify,
    /// `del-groups`, bundle `group delete`: only `group_id=` (none: all).
    Delete,
}

/// The controller port, a valid watch port (printed `CONTROLLER`).
pub(super) const OFPP_CONTROLLER: u32 = 0xfffd;

impl GroupSpec {
    /// The line `ovs-ofctl -O OpenFlow13 dump-groups` prints for the group,
    /// with its leading space.
    pub fn to_dump_line(&self) -> String {
        format!(" {self}")
    }
}

impl std::fmt::Display for GroupSpec {
    /// As OVS's `ofp_print_group` over OpenFlow 1.3, without the leading
    /// space: `group_id=N,type=T,bucket=[weight:W,][watch_port:P,]
    /// [watch_group:G,]actions=...` per bucket.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = format!("group_id={},type={}", self.group_id, self.kind.name());
        for b in &self.buckets {
            s.push_str(",bucket=");
            if let Some(w) = b.weight.filter(|&w| w != self.kind.default_weight()) {
                let _ = write!(s, "weight:{w},");
            }
            match b.watch_port {
                Some(OFPP_CONTROLLER) => s.push_str("watch_port:CONTROLLER,"),
                Some(p) => {
                    let _ = write!(s, "watch_port:{p},");
                }
                None => {}
            }
            if let Some(g) = b.watch_group {
                let _ = write!(s, "watch_group:{g},");
            }
            let _ = write!(s, "actions={}", fmt_actions(&b.actions));
        }
        f.write_str(&s)
    }
}

impl std::fmt::Display for GroupCommand {
    /// The bundle line (`ovs-ofctl bundle`, as openshift-sdn writes it):
    /// `group add ...`, `group modify ...`, `group delete [group_id=N]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupCommand::Add(g) => write!(f, "group add {g}"),
            GroupCommand::Modify(g) => write!(f, "group modify {g}"),
            GroupCommand::Delete(Some(id)) => write!(f, "group delete group_id={id}"),
            GroupCommand::Delete(None) => f.write_str("group delete"),
        }
    }
}
