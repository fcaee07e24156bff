//! OpenFlow groups as `ovs-ofctl add-group[s]`, `mod-group`, `del-groups`
//! and `dump-groups` write them: `group_id=N,type=select,bucket=...`.

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
}

/// One bucket: its actions and how it is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// `bucket_id:N` (OVS numbers them from 0 when not given).
    pub bucket_id: Option<u32>,
    /// `weight:N` (select groups; 100 when not given, as OVS).
    pub weight: Option<u16>,
    /// `watch_port:N`.
    pub watch_port: Option<u32>,
    /// `watch_group:N`.
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
    /// dp_hash, which sdnfwd computes as hash).
    pub selection_method: Option<String>,
    /// `fields(...)`: the fields `selection_method=hash` hashes (names as
    /// written; empty: OVS's default, the 5-tuple).
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
