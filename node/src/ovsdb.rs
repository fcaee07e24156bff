//! An OVSDB client (RFC 7047) for the Open_vSwitch database, as
//! ovs-vswitchd uses it: the tables a switch reads are monitored (the
//! first answer is the whole state, then each change arrives as an
//! `update` notification), and what the switch learns is written back with
//! `transact` (an interface's `ofport`, `Open_vSwitch.cur_cfg` once a
//! change is applied, which is what a plain `ovs-vsctl` waits for).
//!
//! [`Db`] is the monitored replica, [`Switch`] its typed view: bridges,
//! ports, interfaces with their types, options and requested ofports.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::jsonrpc::{request, response, Conn};

/// The database ovs-vswitchd serves.
pub const DB: &str = "Open_vSwitch";

/// The schema major version this client reads (Open vSwitch 2.x and 3.x
/// ship 7.x and 8.x; the columns read here are in both).
pub const SCHEMA_MAJORS: &[u64] = &[7, 8];

/// The tables and columns a switch monitors.
pub const MONITORED: &[(&str, &[&str])] = &[
    ("Open_vSwitch", &["bridges", "next_cfg", "cur_cfg", "other_config"]),
    ("Bridge", &["name", "ports", "fail_mode", "protocols", "datapath_id"]),
    ("Port", &["name", "interfaces"]),
    ("Interface", &["name", "type", "options", "ofport_request", "ofport", "error", "mtu_request"]),
];

/// How long a request may wait for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to ovsdb-server.
pub struct Client {
    conn: Conn,
    next_id: u64,
    /// Notifications that arrived while waiting for a response.
    pending: VecDeque<Value>,
}

impl Client {
    /// Connects to `target`: `unix:PATH` (as `ovs-vswitchd` takes it) or a
    /// plain path.
    ///
    /// # Errors
    /// Another scheme, or nothing listens there.
    pub fn connect(target: &str) -> Result<Client, String> {
        let path = match target.split_once(':') {
            Some(("unix", p)) => p,
            Some((scheme, _)) if !target.starts_with('/') => {
                return Err(format!("database {target}: only unix: sockets are supported, not {scheme}:"))
            }
            _ => target,
        };
        let s = UnixStream::connect(path).map_err(|e| format!("database {target}: {e}"))?;
        Ok(Client { conn: Conn::new(s), next_id: 0, pending: VecDeque::new() })
    }

    /// Sends a request and waits for its response, answering the server's
    /// echo requests and keeping its notifications meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.conn.send(&request(method, params, id.clone()))?;
        loop {
            let m = self
                .conn
                .recv(CALL_TIMEOUT)?
                .ok_or_else(|| format!("ovsdb-server did not answer `{method}` in {} s", CALL_TIMEOUT.as_secs()))?;
            if m.get("id") == Some(&id) && m.get("method").is_none() {
                return match m.get("error") {
                    Some(e) if !e.is_null() => Err(format!("ovsdb-server refused `{method}`: {e}")),
                    _ => Ok(m.get("result").cloned().unwrap_or(Value::Null)),
                };
            }
            self.other(m)?;
        }
    }

    /// A message that is not the awaited response: an echo is answered,
    /// a notification kept.
    fn other(&mut self, m: Value) -> Result<(), String> {
        match m.get("method").and_then(Value::as_str) {
            Some("echo") => {
                let id = m.get("id").cloned().unwrap_or(Value::Null);
                self.conn.send(&response(&id, m.get("params").cloned().unwrap_or(json!([]))))
            }
            Some(_) => {
                self.pending.push_back(m);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The version of database `db`'s schema, checked against
    /// [`SCHEMA_MAJORS`].
    ///
    /// # Errors
    /// No such database, or a schema version this client does not know.
    pub fn check_schema(&mut self, db: &str) -> Result<String, String> {
        let s = self.call("get_schema", json!([db]))?;
        let v = s.get("version").and_then(Value::as_str).unwrap_or("").to_string();
        let major = v.split('.').next().and_then(|m| m.parse::<u64>().ok());
        match major {
            Some(m) if SCHEMA_MAJORS.contains(&m) => Ok(v),
            _ => Err(format!(
                "database {db}: schema version `{v}` is not one sdnfwd knows (majors {SCHEMA_MAJORS:?}: Open vSwitch 2.x and 3.x)"
            )),
        }
    }

    /// Starts monitoring `tables` of `db` (monitor id `id`): the state as
    /// it is, as table updates ([`Db::apply`]).
    ///
    /// # Errors
    /// The server refused (an unknown table or column).
    pub fn monitor(&mut self, db: &str, id: &str, tables: &[(&str, &[&str])]) -> Result<Value, String> {
        let mut req = Map::new();
        for (t, cols) in tables {
            req.insert((*t).to_string(), json!({ "columns": cols }));
        }
        self.call("monitor", json!([db, id, req]))
    }

    /// The next `update` notification's table updates, waiting at most
    /// `timeout`.
    ///
    /// # Errors
    /// The connection broke.
    pub fn next_update(&mut self, timeout: Duration) -> Result<Option<Value>, String> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                if m.get("method").and_then(Value::as_str) == Some("update") {
                    return Ok(m.get("params").and_then(|p| p.get(1)).cloned());
                }
                continue;
            }
            match self.conn.recv(timeout)? {
                None => return Ok(None),
                Some(m) => self.other(m)?,
            }
        }
    }

    /// Runs `ops` in one transaction.
    ///
    /// # Errors
    /// The transaction failed: the failing operation's error and details.
    pub fn transact(&mut self, db: &str, ops: Vec<Value>) -> Result<Vec<Value>, String> {
        let n = ops.len();
        let mut params = vec![json!(db)];
        params.extend(ops);
        let r = self.call("transact", Value::Array(params))?;
        let results = r.as_array().cloned().ok_or_else(|| format!("transact: not an array: {r}"))?;
        for (i, res) in results.iter().enumerate() {
            if let Some(e) = res.get("error") {
                let details = res.get("details").and_then(Value::as_str).unwrap_or("");
                let which = if i < n { format!("operation {}", i + 1) } else { "the transaction".into() };
                return Err(format!("transact: {which}: {e} {details}").trim_end().to_string());
            }
        }
        Ok(results)
    }
}

/// A monitored replica: table → row UUID → column → value (OVSDB's JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Db {
    /// The rows.
    pub tables: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
}

impl Db {
    /// Applies table updates (a monitor's first answer, or an `update`
    /// notification's): a row with `new` is inserted or replaced (monitor
    /// v1 sends every monitored column), one without is deleted.
    ///
    /// # Errors
    /// The updates are not shaped as RFC 7047 §4.1.6 says (nothing is
    /// applied then).
    pub fn apply(&mut self, updates: &Value) -> Result<(), String> {
        let tables = updates.as_object().ok_or_else(|| format!("table updates: not an object: {updates}"))?;
        let mut next = self.clone();
        for (t, rows) in tables {
            let rows = rows.as_object().ok_or_else(|| format!("table {t}: rows are not an object"))?;
            let table = next.tables.entry(t.clone()).or_default();
            for (uuid, change) in rows {
                match change.get("new") {
                    Some(Value::Object(new)) => {
                        table.insert(uuid.clone(), new.clone());
                    }
                    Some(other) => return Err(format!("{t} row {uuid}: `new` is not an object: {other}")),
                    None => {
                        table.remove(uuid);
                    }
                }
            }
        }
        *self = next;
        Ok(())
    }
}

/// The UUID of a `["uuid", "..."]` atom.
pub fn uuid_atom(v: &Value) -> Option<&str> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Some(u),
        _ => None,
    }
}

/// The elements of a set (`["set", [...]]`, or one atom standing for a
/// set of one).
pub fn set_items(v: &Value) -> Vec<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        _ => vec![v],
    }
}

/// A map of strings (`["map", [[k, v], ...]]`).
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some([tag, Value::Array(pairs)]) = v.and_then(Value::as_array).map(Vec::as_slice) {
        if tag == "map" {
            for p in pairs {
                if let Some([Value::String(k), val]) = p.as_array().map(Vec::as_slice) {
                    let val = val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string());
                    m.insert(k.clone(), val);
                }
            }
        }
    }
    m
}

/// An optional integer column (a set of zero or one integers).
fn opt_int(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| set_items(v).first().and_then(|x| x.as_i64()))
}

/// An optional string column.
fn opt_str(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| set_items(v).first().and_then(|x| x.as_str().map(str::to_string)))
}

/// The switch's configuration as the database holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Switch {
    /// The Open_vSwitch row.
    pub uuid: String,
    /// `next_cfg`: bumped by every `ovs-vsctl` change that waits.
    pub next_cfg: i64,
    /// `cur_cfg`: what the switch has applied.
    pub cur_cfg: i64,
    /// `other_config` (`pmd-cpu-mask`, ...).
    pub other_config: BTreeMap<String, String>,
    /// The bridges, by name.
    pub bridges: Vec<Bridge>,
}

/// A Bridge row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bridge {
    /// Row UUID.
    pub uuid: String,
    /// `name`.
    pub name: String,
    /// `fail_mode` (`secure`, `standalone`).
    pub fail_mode: Option<String>,
    /// `protocols` (`OpenFlow13`, ...).
    pub protocols: Vec<String>,
    /// Its ports, by name.
    pub ports: Vec<Port>,
}

/// A Port row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Port {
    /// Row UUID.
    pub uuid: String,
    /// `name`.
    pub name: String,
    /// Its interfaces (one, except for bonds).
    pub interfaces: Vec<Interface>,
}

/// An Interface row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interface {
    /// Row UUID.
    pub uuid: String,
    /// `name`.
    pub name: String,
    /// `type`: empty or `system` for a kernel interface, `internal`,
    /// `vxlan`, ...
    pub kind: String,
    /// `options` (`remote_ip`, `key`, `dst_port` for a tunnel).
    pub options: BTreeMap<String, String>,
    /// `ofport_request`.
    pub ofport_request: Option<i64>,
    /// `mtu_request`.
    pub mtu_request: Option<i64>,
    /// `ofport` as last written back.
    pub ofport: Option<i64>,
    /// `error` as last written back.
    pub error: Option<String>,
}

/// The typed view of a replica.
///
/// # Errors
/// No Open_vSwitch row (an uninitialised database: `ovs-vsctl init`), or a
/// reference to a row that is not there.
pub fn switch(db: &Db) -> Result<Switch, String> {
    let empty = BTreeMap::new();
    let table = |t: &str| db.tables.get(t).unwrap_or(&empty);
    let (uuid, root) = table("Open_vSwitch")
        .iter()
        .next()
        .ok_or("the database has no Open_vSwitch row (`ovs-vsctl init` makes it)")?;
    let row = |t: &str, u: &str| table(t).get(u).ok_or_else(|| format!("{t} row {u} is referenced but absent"));
    let refs = |v: Option<&Value>| -> Vec<String> {
        v.map(|v| set_items(v).into_iter().filter_map(uuid_atom).map(str::to_string).collect()).unwrap_or_default()
    };
    let mut bridges = Vec::new();
    for bu in refs(root.get("bridges")) {
        let b = row("Bridge", &bu)?;
        let mut ports = Vec::new();
        for pu in refs(b.get("ports")) {
            let p = row("Port", &pu)?;
            let mut interfaces = Vec::new();
            for iu in refs(p.get("interfaces")) {
                let i = row("Interface", &iu)?;
                interfaces.push(Interface {
                    uuid: iu.clone(),
                    name: opt_str(i.get("name")).unwrap_or_default(),
                    kind: opt_str(i.get("type")).unwrap_or_default(),
                    options: string_map(i.get("options")),
                    ofport_request: opt_int(i.get("ofport_request")),
                    mtu_request: opt_int(i.get("mtu_request")),
                    ofport: opt_int(i.get("ofport")),
                    error: opt_str(i.get("error")),
                });
            }
            interfaces.sort_by(|a, b| a.name.cmp(&b.name));
            ports.push(Port { uuid: pu.clone(), name: opt_str(p.get("name")).unwrap_or_default(), interfaces });
        }
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        bridges.push(Bridge {
            uuid: bu.clone(),
            name: opt_str(b.get("name")).unwrap_or_default(),
            fail_mode: opt_str(b.get("fail_mode")),
            protocols: b
                .get("protocols")
                .map(|v| set_items(v).into_iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            ports,
        });
    }
    bridges.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Switch {
        uuid: uuid.clone(),
        next_cfg: opt_int(root.get("next_cfg")).unwrap_or(0),
        cur_cfg: opt_int(root.get("cur_cfg")).unwrap_or(0),
        other_config: string_map(root.get("other_config")),
        bridges,
    })
}

/// The operation that records `cfg` as applied (`cur_cfg`), on which a
/// waiting `ovs-vsctl` returns.
pub fn set_cur_cfg(switch_uuid: &str, cfg: i64) -> Value {
    json!({"op": "update", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", switch_uuid]]],
           "row": {"cur_cfg": cfg}})
}

/// The operation that writes back an interface's state: its OpenFlow port
/// number (-1 when it could not be attached) and `error` (cleared when
/// `None`).
pub fn set_interface(uuid: &str, ofport: i64, error: Option<&str>) -> Value {
    let error = match error {
        Some(e) => json!(e),
        None => json!(["set", []]),
    };
    json!({"op": "update", "table": "Interface", "where": [["_uuid", "==", ["uuid", uuid]]],
           "row": {"ofport": ofport, "error": error}})
}

/// A port of one interface (UUIDs `p-NAME`, `i-NAME`), for tests.
#[cfg(test)]
pub(crate) fn test_port(name: &str, kind: &str, req: Option<i64>, opts: &[(&str, &str)]) -> Port {
    Port {
        uuid: format!("p-{name}"),
        name: name.into(),
        interfaces: vec![Interface {
            uuid: format!("i-{name}"),
            name: name.into(),
            kind: kind.into(),
            options: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ofport_request: req,
            ..Default::default()
        }],
    }
}

/// OpenFlow's LOCAL port: the bridge's own internal interface.
pub const OFPP_LOCAL: i64 = 65534;

/// Whether sdnfwd can serve an interface of type `kind` with `options`
/// (`Err` says why not, for `Interface.error`): a kernel interface (a
/// pod's veth, AF_XDP), `internal` (a TAP: tun0, or the bridge's own), and
/// `vxlan` with the flow-based remote and key openshift-sdn sets.
pub fn supported(kind: &str, options: &BTreeMap<String, String>) -> Result<(), String> {
    match kind {
        "" | "system" | "internal" => Ok(()),
        "vxlan" => {
            for (k, want) in [("remote_ip", "flow"), ("key", "flow")] {
                match options.get(k).map(String::as_str) {
                    Some(v) if v == want => {}
                    other => {
                        return Err(format!(
                            "vxlan options:{k}={} is not supported (sdnfwd's VXLAN port takes {k}=flow)",
                            other.unwrap_or("(absent)")
                        ))
                    }
                }
            }
            if let Some(p) = options.get("dst_port") {
                p.parse::<u16>().map_err(|_| format!("vxlan options:dst_port={p} is not a UDP port"))?;
            }
            if let Some(ip) = options.get("local_ip") {
                ip.parse::<std::net::Ipv4Addr>()
                    .map_err(|_| format!("vxlan options:local_ip={ip} is not an IPv4 address"))?;
            }
            let known = ["remote_ip", "key", "dst_port", "local_ip"];
            if let Some(k) = options.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!("vxlan options:{k} is not supported"));
            }
            Ok(())
        }
        other => Err(format!("interface type `{other}` is not supported (system, internal and vxlan are)")),
    }
}

/// The OpenFlow port number of each interface of `bridge` (by interface
/// UUID), as ovs-vswitchd picks them (ofproto.c's `alloc_ofp_port`): the
/// bridge's own internal interface is LOCAL; an interface keeps the number
/// it has (`prev`, by name); one with `ofport_request` gets that number
/// unless another interface holds it, and then, as in OVS, the lowest free
/// number with a warning naming both (the second return); the rest get the
/// lowest free number from 1. An interface that cannot be served gets the
/// reason (written back as `ofport=-1` and `error`).
pub fn assign_ofports(
    bridge: &Bridge,
    prev: &BTreeMap<String, i64>,
) -> (BTreeMap<String, Result<i64, String>>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut out = BTreeMap::new();
    let mut taken: BTreeMap<i64, String> = BTreeMap::new();
    let ifaces: Vec<&Interface> = bridge.ports.iter().flat_map(|p| &p.interfaces).collect();
    let mut todo = Vec::new();
    for i in &ifaces {
        if let Err(e) = supported(&i.kind, &i.options) {
            out.insert(i.uuid.clone(), Err(e));
        } else if i.name == bridge.name {
            out.insert(i.uuid.clone(), Ok(OFPP_LOCAL));
        } else {
            todo.push(*i);
        }
    }
    // Numbers already given stay; then requests; then the rest.
    let mut rest = Vec::new();
    let mut moved = Vec::new();
    for i in todo {
        match prev.get(&i.name) {
            Some(&n) if n > 0 && !taken.contains_key(&n) && i.ofport_request.is_none_or(|r| r == n) => {
                taken.insert(n, i.name.clone());
                out.insert(i.uuid.clone(), Ok(n));
            }
            Some(&n) if n > 0 => moved.push((i, n)),
            _ => rest.push(i),
        }
    }
    // A numbered interface whose request changed moves to the requested
    // number if it is free, else keeps its own.
    for (i, n) in moved {
        match i.ofport_request {
            Some(r) if !taken.contains_key(&r) => rest.push(i),
            _ if !taken.contains_key(&n) => {
                taken.insert(n, i.name.clone());
                out.insert(i.uuid.clone(), Ok(n));
            }
            _ => rest.push(i),
        }
    }
    let mut free = Vec::new();
    for i in rest {
        // The schema bounds ofport_request to 1..65279: ovsdb-server
        // refuses anything else before it gets here.
        match i.ofport_request {
            Some(r) => match taken.get(&r) {
                Some(holder) => {
                    free.push((i, Some((r, holder.clone()))));
                }
                None => {
                    taken.insert(r, i.name.clone());
                    out.insert(i.uuid.clone(), Ok(r));
                }
            },
            None => free.push((i, None)),
        }
    }
    let mut next = 1;
    for (i, clash) in free {
        while taken.contains_key(&next) {
            next += 1;
        }
        if let Some((r, holder)) = clash {
            warnings.push(format!(
                "{}: interface {}: ofport_request={r} is {holder}'s port number; it gets {next}",
                bridge.name, i.name
            ));
        }
        taken.insert(next, i.name.clone());
        out.insert(i.uuid.clone(), Ok(next));
    }
    (out, warnings)
}

/// The writes that report `assigned` (per interface UUID, from
/// [`assign_ofports`]) and mark the configuration applied: each interface
/// whose `ofport` or `error` differs from what the database holds, then
/// `cur_cfg = next_cfg` if it lags. Empty when the database already says
/// it all (so a switch writes only on change).
pub fn write_back(sw: &Switch, assigned: &BTreeMap<String, Result<i64, String>>) -> Vec<Value> {
    let mut ops = Vec::new();
    for i in sw.bridges.iter().flat_map(|b| &b.ports).flat_map(|p| &p.interfaces) {
        let Some(a) = assigned.get(&i.uuid) else { continue };
        let (ofport, error) = match a {
            Ok(n) => (*n, None),
            Err(e) => (-1, Some(e.as_str())),
        };
        if i.ofport != Some(ofport) || i.error.as_deref() != error {
            ops.push(set_interface(&i.uuid, ofport, error));
        }
    }
    if sw.cur_cfg != sw.next_cfg {
        ops.push(set_cur_cfg(&sw.uuid, sw.next_cfg));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica built from updates as ovsdb-server sends them, changed,
    /// then read through the typed view; malformed updates change nothing.
    #[test]
    fn test_replica_and_view() {
        let mut db = Db::default();
        db.apply(&json!({
            "Open_vSwitch": {"o1": {"new": {"bridges": ["uuid", "b1"], "next_cfg": 3, "cur_cfg": 2,
                                            "other_config": ["map", [["pmd-cpu-mask", "0x6"]]]}}},
            "Bridge": {"b1": {"new": {"name": "br0", "ports": ["set", [["uuid", "p2"], ["uuid", "p1"]]],
                                      "fail_mode": "secure", "protocols": ["set", ["OpenFlow13"]],
                                      "datapath_id": ["set", []]}}},
            "Port": {"p1": {"new": {"name": "vxlan0", "interfaces": ["uuid", "i1"]}},
                     "p2": {"new": {"name": "tun0", "interfaces": ["uuid", "i2"]}}},
            "Interface": {"i1": {"new": {"name": "vxlan0", "type": "vxlan", "ofport_request": 1, "ofport": ["set", []],
                                         "options": ["map", [["dst_port", "4789"], ["key", "flow"], ["remote_ip", "flow"]]],
                                         "error": ["set", []]}},
                          "i2": {"new": {"name": "tun0", "type": "internal", "ofport_request": 2, "ofport": 2,
                                         "options": ["map", []], "error": ["set", []]}}}
        }))
        .unwrap();
        let s = switch(&db).unwrap();
        assert_eq!((s.next_cfg, s.cur_cfg, s.other_config["pmd-cpu-mask"].as_str()), (3, 2, "0x6"));
        let br = &s.bridges[0];
        assert_eq!(
            (br.name.as_str(), br.fail_mode.as_deref(), &br.protocols[..]),
            ("br0", Some("secure"), &["OpenFlow13".to_string()][..])
        );
        let names: Vec<&str> = br.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["tun0", "vxlan0"]);
        let vx = &br.ports[1].interfaces[0];
        assert_eq!((vx.kind.as_str(), vx.ofport_request, vx.ofport), ("vxlan", Some(1), None));
        assert_eq!(vx.options["remote_ip"], "flow");
        // A port deleted, with its interface.
        db.apply(&json!({"Bridge": {"b1": {"new": {"name": "br0", "ports": ["uuid", "p1"]}}},
                         "Port": {"p2": {"old": {}}}, "Interface": {"i2": {"old": {}}}}))
            .unwrap();
        assert_eq!(switch(&db).unwrap().bridges[0].ports.len(), 1);
        // Malformed: refused whole.
        let before = db.clone();
        assert!(db.apply(&json!({"Port": {"p9": {"new": {}}}, "Bridge": 7})).is_err());
        assert!(db.apply(&json!({"Bridge": {"b1": {"new": 5}}})).is_err());
        assert_eq!(db, before);
        // A dangling reference is named.
        db.apply(&json!({"Bridge": {"b1": {"new": {"name": "br0", "ports": ["uuid", "p7"]}}}})).unwrap();
        assert!(switch(&db).unwrap_err().contains("Port row p7"));
        assert!(switch(&Db::default()).unwrap_err().contains("ovs-vsctl init"));
    }

    fn iface(name: &str, kind: &str, req: Option<i64>) -> Interface {
        let mut options = BTreeMap::new();
        if kind == "vxlan" {
            options.insert("remote_ip".into(), "flow".into());
            options.insert("key".into(), "flow".into());
        }
        Interface {
            uuid: format!("u-{name}"),
            name: name.into(),
            kind: kind.into(),
            options,
            ofport_request: req,
            ..Default::default()
        }
    }

    #[test]
    fn test_ofports_as_vswitchd_assigns_them() {
        let port = |i: Interface| Port { uuid: format!("p-{}", i.name), name: i.name.clone(), interfaces: vec![i] };
        let mut geneve = iface("gen0", "geneve", None);
        geneve.options.insert("remote_ip".into(), "flow".into());
        let mut fixed_vx = iface("vx9", "vxlan", None);
        fixed_vx.options.insert("remote_ip".into(), "10.0.0.1".into());
        let br = Bridge {
            name: "br0".into(),
            ports: vec![
                port(iface("br0", "internal", None)),
                port(iface("vxlan0", "vxlan", Some(1))),
                port(iface("tun0", "internal", Some(2))),
                port(iface("veth-a", "", Some(3))),
                port(iface("veth-b", "", Some(3))),
                port(iface("veth-c", "", None)),
                port(geneve),
                port(fixed_vx),
            ],
            ..Default::default()
        };
        let (got, warnings) = assign_ofports(&br, &BTreeMap::new());
        assert_eq!(got["u-br0"], Ok(OFPP_LOCAL));
        assert_eq!((&got["u-vxlan0"], &got["u-tun0"], &got["u-veth-a"]), (&Ok(1), &Ok(2), &Ok(3)));
        // veth-c (no request) and veth-b (its request taken) get the lowest
        // free numbers, in name order.
        assert_eq!((&got["u-veth-b"], &got["u-veth-c"]), (&Ok(4), &Ok(5)));
        assert_eq!(warnings, ["br0: interface veth-b: ofport_request=3 is veth-a's port number; it gets 4"]);
        assert!(got["u-gen0"].as_ref().unwrap_err().contains("type `geneve` is not supported"));
        assert!(got["u-vx9"].as_ref().unwrap_err().contains("remote_ip=10.0.0.1 is not supported"));
        // A number given stays with its interface when another asks for it
        // later (veth-c had 5 first).
        let mut br2 = br.clone();
        br2.ports.push(port(iface("veth-e", "", Some(5))));
        let prev: BTreeMap<String, i64> = br
            .ports
            .iter()
            .flat_map(|p| &p.interfaces)
            .filter_map(|i| got[&i.uuid].as_ref().ok().map(|n| (i.name.clone(), *n)))
            .collect();
        let (got, warnings) = assign_ofports(&br2, &prev);
        assert_eq!((&got["u-veth-b"], &got["u-veth-c"], &got["u-veth-e"]), (&Ok(4), &Ok(5), &Ok(6)));
        assert_eq!(warnings, ["br0: interface veth-e: ofport_request=5 is veth-c's port number; it gets 6"]);
    }
}
