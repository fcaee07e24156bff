//! The objects of a cluster (for problems and positions) and where each
//! came from ([`Origins`]: file, document, path), kept apart from the model
//! so that the loader, the model and the checks can all name them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::yaml_pos::Positions;

/// An object of the cluster a problem is about (indices as in the
/// cluster's lists; a node by its index in [`Cluster::all_nodes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Obj {
    /// `clusterNetwork`.
    ClusterNetwork,
    /// `clusterNetwork.clusterNetworks[i]`.
    ClusterNetworkEntry(usize),
    /// `hostSubnets[i]`.
    HostSubnet(usize),
    /// `netNamespaces[i]`.
    NetNamespace(usize),
    /// A node (`node:` first, then `nodes:`).
    Node(usize),
    /// Pod `p` of node `n`.
    Pod(usize, usize),
    /// `services[i]`.
    Service(usize),
    /// `egressNetworkPolicies[i]`.
    EgressPolicy(usize),
    /// `namespaces[i]` (a Namespace object).
    Namespace(usize),
    /// `pods[i]` (a Pod object of the cluster).
    ClusterPod(usize),
    /// `networkPolicies[i]`.
    NetworkPolicy(usize),
}

/// Where each object of a merged cluster came from.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    /// Per source: its name (None: an unnamed single input) and the
    /// positions of each of its documents. Written once by the loader.
    files: Arc<Vec<(Option<String>, Vec<Positions>)>>,
    /// Object → (source, document, path of the object in the document).
    pub(crate) objs: HashMap<Obj, (usize, usize, String)>,
}

impl Origins {
    /// Origins over these sources (name, positions per document).
    pub(crate) fn new(files: Vec<(Option<String>, Vec<Positions>)>) -> Origins {
        Origins { files: Arc::new(files), objs: HashMap::new() }
    }

    pub(crate) fn set(&mut self, obj: Obj, src: usize, doc: usize, path: String) {
        self.objs.insert(obj, (src, doc, path));
    }

    /// Whether an object's origin is known.
    pub fn knows(&self, obj: Obj) -> bool {
        self.objs.contains_key(&obj)
    }

    /// Where an object's field (or, when it is not written, the object)
    /// starts: (file name, line, column).
    pub fn locate(&self, obj: Obj, field: &str) -> Option<(Option<&str>, usize, usize)> {
        let (s, d, path) = self.objs.get(&obj)?;
        let (name, docs) = self.files.get(*s)?;
        let pos = docs.get(*d)?;
        let join = |f: &str| if path.is_empty() { f.to_string() } else { format!("{path}.{f}") };
        let at = (!field.is_empty()).then(|| pos.get(&join(field))).flatten().or_else(|| pos.get(path));
        let (l, c) = at.unwrap_or((1, 1));
        Some((name.as_deref(), l, c))
    }
}
