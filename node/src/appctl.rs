//! ovs-vswitchd's `ovs-appctl` commands, answered from the running
//! datapath, in the layout OVS 3.1 prints them (so that what reads their
//! output, a person or a script, finds what it knows). Registered on the
//! unixctl server ([`crate::unixctl`]) by the drop-in for ovs-vswitchd:
//!
//! - `version`: `ovs-vswitchd (sdnfwd) 0.1.0`: OVS's form (`PROGRAM
//!   (PACKAGE) VERSION`), naming sdnfwd and its version rather than
//!   pretending to be Open vSwitch 3.1.0.
//! - `ofproto/trace BRIDGE FLOW [--ct-next FLAGS]...`, or `ofproto/trace
//!   [DP] ODP_FLOW` with the datapath's own syntax
//!   (`in_port(3),eth(...),eth_type(0x0800),ipv4(...)`): the live tables'
//!   trace ([`slowpath::trace`]), each recirculation resumed with the
//!   tracker's verdict or `--ct-next`'s states. Tracing a packet (a hex
//!   argument, `-generate`) is not supported.
//! - `dpif/show`: `netdev@ovs-netdev: hit:H missed:M`, the bridge, its
//!   ports by name with `OFPORT/ODP_PORT: (TYPE[: OPTIONS])`. The
//!   datapath numbers its ports as OpenFlow does, so the two numbers are
//!   the same; the type as `port_type` reads it (`system`, `tap`,
//!   `vxlan: key=flow, remote_ip=flow`).
//! - `dpif/dump-flows [--no-names] BRIDGE` and `dpctl/dump-flows [DP]`:
//!   the megaflows in dpif-netdev's format, `recirc_id(0),in_port(3),
//!   packet_type(ns=0,id=0),eth(...),eth_type(0x0800),ipv4(...),
//!   packets:N, bytes:N, used:0.120s, actions:4` (`used` as of the last
//!   expiry pass).
//! - `dpif-netdev/pmd-stats-show [-pmd CORE] [DP]`, `pmd-stats-clear`:
//!   one block a poll loop, `pmd thread numa_id N core_id C:` and OVS's
//!   counters; what sdnfwd does not have is 0, the cycle lines are left
//!   out (see [`fastpath::stats::PmdStats::show_ovs_since`]).
//! - `dpctl/dump-conntrack [DP] [-s] [zone=N]`, `dpctl/flush-conntrack
//!   [DP] [zone=N]`, `dpctl/ct-stats-show [DP] [verbose] [zone=N]`: the
//!   control socket's (`crate::ctl`) on the node's tracker.
//! - `vlog/set [SPEC]...`, `vlog/list`: sdnfwd has one log with one level,
//!   the module `sdnfwd`, the same on every destination (console, syslog,
//!   file); OVS's levels map onto it (`emer` and `err` → error, `warn`,
//!   `info`, `dbg` → debug; `off` → error, as sdnfwd always logs its
//!   failures). `vlog/set` alone sets `dbg`, as in OVS.
//! - `exit [--cleanup]`: sets the flag the vswitchd's main loop stops on.
//!
//! Thread-safety: each handler runs on the unixctl server's thread and
//! reaches the datapath through [`Control`] (the slow path answers on a
//! channel; counters are atomics).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use config::ofctl::{cs, parse_trace_flow, Field, ETH_TYPE_ARP, ETH_TYPE_IP};
use slowpath::upcall::MegaflowEntry;
use slowpath::OfFlow;

use crate::control::{on_slow_path, Control, OfPort};
use crate::logging::{self, Level};
use crate::unixctl::Commands;

/// The datapath's name, as ovs-vswitchd's userspace datapath is named.
pub const DATAPATH: &str = "netdev@ovs-netdev";

/// What `version` answers.
pub fn version() -> String {
    format!("ovs-vswitchd (sdnfwd) {}", env!("CARGO_PKG_VERSION"))
}

/// The commands [`register`] registers (docs/REFERENCE.md names each).
/// (`list-commands` is the unixctl server's own).
pub const COMMANDS: [&str; 14] = [
    "dpctl/ct-stats-show",
    "dpctl/dump-conntrack",
    "dpctl/dump-flows",
    "dpctl/flush-conntrack",
    "dpif-netdev/pmd-stats-clear",
    "dpif-netdev/pmd-stats-show",
    "dpif/dump-flows",
    "dpif/show",
    "exit",
    "ofproto/trace",
    "version",
    "vlog/list",
    "vlog/set",
    "list-commands",
];

/// The one logging module `vlog/list` shows.
const MODULE: &str = "sdnfwd";

/// Registers ovs-vswitchd's unixctl commands, answered from the running datapath.
pub fn register(cmds: &mut Commands, c: Control, bridge: Arc<Mutex<Option<String>>>, exit: Arc<AtomicBool>) {
    cmds.register("version", "", 0, 0, Box::new(|_| Ok(version())));
    let (c1, b1) = (c.clone(), bridge.clone());
    cmds.register(
        "ofproto/trace",
        "{[dp_name] odp_flow | bridge br_flow} [OPTIONS...] [-generate|packet]",
        1,
        usize::MAX,
        Box::new(move |a| trace(&c1, &current(&b1), a)),
    );
    let (c2, b2) = (c.clone(), bridge.clone());
    cmds.register("dpif/show", "", 0, 0, Box::new(move |_| dpif_show(&c2, current(&b2).as_deref())));
    let (c3, b3) = (c.clone(), bridge);
    cmds.register(
        "dpif/dump-flows",
        "[-m] [--names | --no-names] bridge",
        1,
        usize::MAX,
        Box::new(move |a| {
            let (opts, name) = a.split_at(a.len() - 1);
            if let Some(o) = opts.iter().find(|o| *o != "--no-names") {
                return Err(format!("{o}: not supported by sdnfwd (--no-names is)"));
            }
            bridge_named(&current(&b3), &name[0], "no such bridge")?;
            dump_flows(&c3)
        }),
    );
    let c4 = c.clone();
    cmds.register(
        "dpctl/dump-flows",
        "[-m] [--names | --no-names] [dp]",
        0,
        2,
        Box::new(move |a| {
            let rest = strip_dp(a)?;
            match rest.first() {
                None => dump_flows(&c4),
                Some(w) if w == "--no-names" && rest.len() == 1 => dump_flows(&c4),
                Some(w) => Err(format!("{w}: not supported by sdnfwd (--no-names is)")),
            }
        }),
    );
    let c5 = c.clone();
    cmds.register("dpif-netdev/pmd-stats-show", "[-pmd core] [dp]", 0, 3, Box::new(move |a| pmd_stats_show(&c5, a)));
    let c6 = c.clone();
    cmds.register(
        "dpif-netdev/pmd-stats-clear",
        "[-pmd core] [dp]",
        0,
        3,
        Box::new(move |a| {
            pmd_filter(a)?;
            crate::ctl::clear_pmd_stats(&c6);
            Ok(String::new())
        }),
    );
    for (name, usage, ctl) in [
        ("dpctl/dump-conntrack", "[-m] [-s] [dp] [zone=N]", "dump-conntrack"),
        ("dpctl/flush-conntrack", "[dp] [zone=N]", "flush-conntrack"),
        ("dpctl/ct-stats-show", "[dp] [zone=N] [verbose]", "ct-stats"),
    ] {
        let c = c.clone();
        cmds.register(
            name,
            usage,
            0,
            4,
            Box::new(move |a| crate::ctl::conntrack_cmd(&c, ctl, &strip_dp(a)?.join(" "))),
        );
    }
    cmds.register(
        "vlog/set",
        "{spec | PATTERN:destination:pattern}",
        0,
        usize::MAX,
        Box::new(|a| {
            if a.is_empty() {
                logging::set(Level::Debug);
            }
            for spec in a {
                logging::set(vlog_spec(spec)?);
            }
            Ok(String::new())
        }),
    );
    cmds.register("vlog/list", "", 0, 0, Box::new(|_| Ok(vlog_list(logging::level()))));
    cmds.register(
        "exit",
        "[--cleanup]",
        0,
        1,
        Box::new(move |_| {
            exit.store(true, Ordering::Relaxed);
            Ok(String::new())
        }),
    );
}

/// The bridge the datapath serves now.
fn current(bridge: &Mutex<Option<String>>) -> Option<String> {
    bridge.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `name` if it is the datapath's bridge; else `err`, OVS's words.
fn bridge_named<'a>(bridge: &Option<String>, name: &'a str, err: &str) -> Result<&'a str, String> {
    match bridge {
        Some(b) if b == name => Ok(name),
        _ => Err(err.to_string()),
    }
}

/// Whether `w` names the datapath (`netdev@ovs-netdev`, `ovs-netdev`,
/// `netdev`), as dpctl and ofproto/trace take it.
fn is_dp(w: &str) -> bool {
    matches!(w, DATAPATH | "ovs-netdev" | "netdev")
}

/// A dpctl command's words without its optional leading datapath name.
fn strip_dp(a: &[String]) -> Result<&[String], String> {
    match a.first() {
        Some(w) if is_dp(w) => Ok(&a[1..]),
        Some(w) if w.contains('@') => Err(format!("{w}: no such datapath (sdnfwd's is {DATAPATH})")),
        _ => Ok(a),
    }
}

/// `ofproto/trace`'s arguments: options anywhere, then `BRIDGE BR_FLOW`,
/// `DP ODP_FLOW` or `ODP_FLOW`.
fn trace(c: &Control, bridge: &Option<String>, a: &[String]) -> Result<String, String> {
    let (mut args, mut ct_next) = (Vec::new(), Vec::new());
    let mut words = a.iter();
    while let Some(w) = words.next() {
        match w.as_str() {
            "--ct-next" => {
                let f = words.next().ok_or("Missing argument for option --ct-next")?;
                ct_next.push(slowpath::trace::parse_ct_flags(f).map_err(|e| format!("--ct-next {f}: {e}"))?);
            }
            "-generate" | "--generate" | "--l7" | "--l7-len" => {
                return Err(format!("{w}: not supported by sdnfwd (it traces a flow, never a packet)"))
            }
            o if o.starts_with('-') => return Err(format!("{o}: unknown option")),
            _ => args.push(w.as_str()),
        }
    }
    let not_ours = || "Cannot find the datapath".to_string();
    let (name, flow) = match args[..] {
        [odp] => (bridge.clone().ok_or_else(not_ours)?, odp_flow(odp)?),
        [dp, odp] if is_dp(dp) => (bridge.clone().ok_or_else(not_ours)?, odp_flow(odp)?),
        [br, text] => {
            let br = bridge_named(bridge, br, &format!("{br}: unknown bridge"))?;
            let m = parse_trace_flow(text).map_err(|e| format!("Bad openflow flow syntax: {e}"))?;
            (br.to_string(), OfFlow::from_match(&m).0)
        }
        [] => return Err("Syntax error".into()),
        [.., p] if args.len() == 3 => {
            return Err(format!("{p}: not supported by sdnfwd (it traces a flow, never a packet)"))
        }
        _ => return Err("too many arguments".into()),
    };
    crate::ctl::trace(c, flow, ct_next, &name)
}

/// A flow in the datapath's syntax (`in_port(3),eth(src=..,dst=..),
/// eth_type(0x0800),ipv4(src=..,dst=..,proto=1),icmp(type=8,code=0)`), as
/// the one-argument `ofproto/trace` takes it, read as the OpenFlow flow
/// with the same fields. A mask (`/..`) is ignored: a trace's flow is
/// exact.
fn odp_flow(text: &str) -> Result<OfFlow, String> {
    let bad = |what: &str| format!("{text}: {what} (or the bridge name was omitted)");
    let mut of = Vec::new();
    for attr in split_top(text) {
        let (name, inner) = attr
            .strip_suffix(')')
            .and_then(|a| a.split_once('('))
            .ok_or_else(|| bad(&format!("`{attr}` is not NAME(VALUE)")))?;
        let fields: &[(&str, &str)] = match name {
            "in_port" | "skb_mark" | "eth_type" | "recirc_id" | "ct_zone" | "ct_mark" => {
                let v = inner.split('/').next().unwrap_or_default();
                match name {
                    "recirc_id" if v.parse::<u32>() == Ok(0) || v == "0x0" => {}
                    "recirc_id" => return Err(bad("tracing from a recirculation is not supported")),
                    "skb_mark" => of.push(format!("pkt_mark={v}")),
                    "eth_type" => of.push(format!("dl_type={v}")),
                    _ => of.push(format!("{name}={v}")),
                }
                continue;
            }
            "packet_type" | "dp_hash" | "skb_priority" => continue,
            "eth" => &[("src", "dl_src"), ("dst", "dl_dst")],
            "ipv4" => &[("src", "nw_src"), ("dst", "nw_dst"), ("proto", "nw_proto"), ("ttl", "nw_ttl")],
            "tcp" | "udp" | "sctp" => &[("src", "tp_src"), ("dst", "tp_dst")],
            "icmp" => &[("type", "icmp_type"), ("code", "icmp_code")],
            "arp" => {
                &[("sip", "arp_spa"), ("tip", "arp_tpa"), ("op", "arp_op"), ("sha", "arp_sha"), ("tha", "arp_tha")]
            }
            "tunnel" => &[("tun_id", "tun_id"), ("src", "tun_src"), ("dst", "tun_dst")],
            _ => return Err(bad(&format!("`{name}` is not supported by sdnfwd's datapath"))),
        };
        for kv in inner.split(',').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad(&format!("`{kv}` in {name}() is not KEY=VALUE")))?;
            let v = v.split('/').next().unwrap_or_default();
            match (name, k) {
                ("ipv4", "tos") => {
                    let tos = parse_u8(v).ok_or_else(|| bad(&format!("tos={v} is not a number")))?;
                    of.push(format!("nw_tos={},nw_ecn={}", tos & 0xfc, tos & 3));
                }
                ("ipv4", "frag") if v == "no" => {}
                ("ipv4", "frag") => of.push(format!("nw_frag={v}")),
                ("tunnel", _) if !fields.iter().any(|f| f.0 == k) => {}
                _ => {
                    let f = fields.iter().find(|f| f.0 == k).ok_or_else(|| bad(&format!("{name}({k}=) unknown")))?;
                    of.push(format!("{}={v}", f.1));
                }
            }
        }
    }
    let m = parse_trace_flow(&of.join(",")).map_err(|e| bad(&e.to_string()))?;
    Ok(OfFlow::from_match(&m).0)
}

fn parse_u8(v: &str) -> Option<u8> {
    match v.strip_prefix("0x") {
        Some(h) => u8::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Splits at the commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.into_iter().filter(|a| !a.is_empty()).collect()
}

/// The counters since the last `pmd-stats-clear`, each loop with its
/// baseline (from the start for a loop without one).
fn with_baselines<T>(
    c: &Control,
    f: impl Fn(usize, &fastpath::stats::PmdStats, &fastpath::stats::PmdBaseline) -> T,
) -> Vec<T> {
    let b = c.baselines.lock().unwrap_or_else(|p| p.into_inner());
    let zero = fastpath::stats::PmdBaseline::default();
    c.stats.iter().enumerate().map(|(i, (core, s))| f(*core, s, b.get(i).unwrap_or(&zero))).collect()
}

/// `dpif/show`.
fn dpif_show(c: &Control, bridge: Option<&str>) -> Result<String, String> {
    let (hit, missed) =
        with_baselines(c, |_, s, b| s.hit_missed_since(b)).into_iter().fold((0, 0), |a, x| (a.0 + x.0, a.1 + x.1));
    let mut out = format!("{DATAPATH}: hit:{hit} missed:{missed}\n");
    if let Some(br) = bridge {
        out += &format!("  {br}:\n");
        let mut ports: Vec<OfPort> = c.of_ports.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        // What each port's poll-loop end is called (an internal port's is
        // its peer).
        // An AF_XDP socket is named INTERFACE@QUEUE.
        let polled: std::collections::BTreeMap<u32, String> = crate::control::port_dumps(c)?
            .into_iter()
            .map(|(_, n, name, _, _)| (n, name.split('@').next().unwrap_or_default().to_string()))
            .collect();
        for p in ports {
            let kind = port_type(&p, polled.get(&p.ofport).map(String::as_str));
            out += &format!("    {} {}/{}: ({kind})\n", p.name, p.ofport, p.ofport);
        }
    }
    Ok(out)
}

/// A port's type as `dpif/show` shows it, with its options: the
/// bridge's LOCAL port, an internal port (the loop polls another
/// interface, its peer) and a kernel TAP are `tap`, as the userspace
/// datapath makes them; the VXLAN port (no interface of its own, or the
/// uplink's) is `vxlan` with the options the SDN sets; the rest `system`.
fn port_type(p: &OfPort, polled: Option<&str>) -> String {
    let tap = |i: &str| std::path::Path::new(&format!("/sys/class/net/{i}/tun_flags")).exists();
    match &p.ifname {
        _ if p.ofport == crate::ovsdb::OFPP_LOCAL as u32 => "tap".into(),
        Some(i) if *i == p.name && (polled.is_some_and(|d| d != p.name) || tap(i)) => "tap".into(),
        Some(i) if *i == p.name => "system".into(),
        _ => "vxlan: key=flow, remote_ip=flow".into(),
    }
}

/// The megaflows in dpif-netdev's dump format.
fn dump_flows(c: &Control) -> Result<String, String> {
    let flows = on_slow_path(c, |s| s.megaflows())?;
    Ok(flows.iter().map(|m| fmt_dump_flow(m) + "\n").collect())
}

/// One megaflow as `ovs-appctl dpif/dump-flows` prints it.
fn fmt_dump_flow(m: &MegaflowEntry) -> String {
    let used = match m.used {
        None => "never".to_string(),
        Some(d) => format!("{:.3}s", d.as_secs_f64()),
    };
    let actions = if m.actions.is_empty() {
        "drop".to_string()
    } else {
        m.actions.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    };
    format!(
        "{}, packets:{}, bytes:{}, used:{used}, actions:{actions}",
        odp_match(&m.key, &m.mask),
        m.n_packets,
        m.n_bytes
    )
}

/// `NAME=VALUE` of a field under its mask as odp-util writes it: the value
/// alone when exact, `/MASK` after it when partial, nothing when
/// wildcarded.
fn field(out: &mut Vec<String>, name: &str, v: u64, m: u64, full: u64, fmt: fn(u64) -> String) {
    if m == 0 {
        return;
    }
    let mut s = format!("{name}={}", fmt(v));
    if m != full {
        // An address's mask is an address; a number's is hexadecimal.
        let address = fmt(0).contains(['.', ':']);
        s += &format!("/{}", if address { fmt(m) } else { format!("{m:#x}") });
    }
    out.push(s);
}

fn dec(v: u64) -> String {
    v.to_string()
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

fn ip(v: u64) -> String {
    std::net::Ipv4Addr::from(v as u32).to_string()
}

fn mac(v: u64) -> String {
    fastpath::wire::fmt_mac(v)
}

/// A megaflow's key under its mask in dpif-netdev's syntax, attributes in
/// its order (tunnel, skb_mark, ct_*, recirc_id, in_port, packet_type,
/// eth, eth_type, ipv4 or arp, L4); a wildcarded attribute is left out.
pub fn odp_match(k: &OfFlow, m: &OfFlow) -> String {
    let mut attrs: Vec<String> = Vec::new();
    let group = |attrs: &mut Vec<String>, name: &str, parts: Vec<String>| {
        if !parts.is_empty() {
            attrs.push(format!("{name}({})", parts.join(",")));
        }
    };
    let g = |f: Field| (k.get(f), m.get(f));
    let mut t = Vec::new();
    for (name, f, full, fmt) in [
        ("tun_id", Field::TunId, u64::MAX, hex as fn(u64) -> String),
        ("src", Field::TunSrc, 0xffff_ffff, ip),
        ("dst", Field::TunDst, 0xffff_ffff, ip),
    ] {
        field(&mut t, name, g(f).0, g(f).1, full, fmt);
    }
    group(&mut attrs, "tunnel", t);
    let scalar = |attrs: &mut Vec<String>, name: &str, (v, mk): (u64, u64), full: u64| {
        if mk != 0 {
            attrs.push(format!("{name}({v:#x}{})", if mk == full { String::new() } else { format!("/{mk:#x}") }));
        }
    };
    scalar(&mut attrs, "skb_mark", g(Field::PktMark), 0xffff_ffff);
    let (state, smask) = g(Field::CtState);
    if smask != 0 {
        let flags: String = (0..32)
            .map(|i| 1u64 << i)
            .filter(|b| smask & b != 0)
            .map(|b| {
                let name = cs::NAMES.iter().find(|(x, _)| *x == b).map_or("[unknown]", |(_, n)| n);
                format!("{}{name}", if state & b != 0 { '+' } else { '-' })
            })
            .collect();
        attrs.push(format!("ct_state({flags})"));
    }
    scalar(&mut attrs, "ct_zone", g(Field::CtZone), 0xffff);
    scalar(&mut attrs, "ct_mark", g(Field::CtMark), 0xffff_ffff);
    let label = |f: &OfFlow| (f.get(Field::CtLabelHi) as u128) << 64 | f.get(Field::CtLabelLo) as u128;
    let (lv, lm) = (label(k), label(m));
    if lm != 0 {
        attrs.push(format!("ct_label({lv:#x}{})", if lm == u128::MAX { String::new() } else { format!("/{lm:#x}") }));
    }
    match k.recirc_id() {
        0 => attrs.push("recirc_id(0)".into()),
        r => attrs.push(format!("recirc_id({r:#x})")),
    }
    if m.get(Field::InPort) != 0 {
        attrs.push(format!("in_port({})", k.get(Field::InPort)));
    }
    attrs.push("packet_type(ns=0,id=0)".into());
    let mut e = Vec::new();
    field(&mut e, "src", g(Field::DlSrc).0, g(Field::DlSrc).1, 0xffff_ffff_ffff, mac);
    field(&mut e, "dst", g(Field::DlDst).0, g(Field::DlDst).1, 0xffff_ffff_ffff, mac);
    group(&mut attrs, "eth", e);
    let (dl, dlm) = g(Field::DlType);
    if dlm != 0 {
        attrs.push(format!("eth_type({dl:#06x})"));
    }
    let mut l3 = Vec::new();
    if dl == ETH_TYPE_IP && dlm != 0 {
        field(&mut l3, "src", g(Field::NwSrc).0, g(Field::NwSrc).1, 0xffff_ffff, ip);
        field(&mut l3, "dst", g(Field::NwDst).0, g(Field::NwDst).1, 0xffff_ffff, ip);
        field(&mut l3, "proto", g(Field::NwProto).0, g(Field::NwProto).1, 0xff, dec);
        let tos = (k.get(Field::NwTos) | k.get(Field::NwEcn), m.get(Field::NwTos) | m.get(Field::NwEcn));
        field(&mut l3, "tos", tos.0, tos.1, 0xff, hex);
        field(&mut l3, "ttl", g(Field::NwTtl).0, g(Field::NwTtl).1, 0xff, dec);
        let (fv, fm) = g(Field::NwFrag);
        if fm != 0 {
            l3.push(format!(
                "frag={}",
                if fv & 1 == 0 {
                    "no"
                } else if fv & 2 != 0 {
                    "later"
                } else {
                    "first"
                }
            ));
        }
        group(&mut attrs, "ipv4", l3);
        let (proto, pm) = g(Field::NwProto);
        let l4 = match proto {
            _ if pm != 0xff => None,
            6 => Some(("tcp", "src", "dst")),
            17 => Some(("udp", "src", "dst")),
            132 => Some(("sctp", "src", "dst")),
            1 => Some(("icmp", "type", "code")),
            _ => None,
        };
        if let Some((name, a, b)) = l4 {
            let mut p = Vec::new();
            let full = if proto == 1 { 0xff } else { 0xffff };
            field(&mut p, a, g(Field::TpSrc).0, g(Field::TpSrc).1, full, dec);
            field(&mut p, b, g(Field::TpDst).0, g(Field::TpDst).1, full, dec);
            group(&mut attrs, name, p);
        }
    } else if dl == ETH_TYPE_ARP && dlm != 0 {
        field(&mut l3, "sip", g(Field::NwSrc).0, g(Field::NwSrc).1, 0xffff_ffff, ip);
        field(&mut l3, "tip", g(Field::NwDst).0, g(Field::NwDst).1, 0xffff_ffff, ip);
        field(&mut l3, "op", g(Field::NwProto).0, g(Field::NwProto).1, 0xff, dec);
        field(&mut l3, "sha", g(Field::ArpSha).0, g(Field::ArpSha).1, 0xffff_ffff_ffff, mac);
        field(&mut l3, "tha", g(Field::ArpTha).0, g(Field::ArpTha).1, 0xffff_ffff_ffff, mac);
        group(&mut attrs, "arp", l3);
    }
    attrs.join(",")
}

/// `-pmd CORE` and the datapath name of the pmd-stats commands: the core
/// asked for, if any.
fn pmd_filter(a: &[String]) -> Result<Option<usize>, String> {
    let mut core = None;
    let mut w = a.iter();
    while let Some(x) = w.next() {
        match x.as_str() {
            "-pmd" => {
                let v = w.next().ok_or("-pmd needs a core id")?;
                core = Some(v.parse().map_err(|_| format!("-pmd {v}: a core id is a number"))?);
            }
            d if is_dp(d) => {}
            d => return Err(format!("{d}: please specify an existing datapath ({DATAPATH})")),
        }
    }
    Ok(core)
}

/// `dpif-netdev/pmd-stats-show`: each loop (by core) since the last
/// clear.
fn pmd_stats_show(c: &Control, a: &[String]) -> Result<String, String> {
    let only = pmd_filter(a)?;
    let mut blocks = with_baselines(c, |core, s, b| (core, s.show_ovs_since(numa_of(core), Some(core), b)));
    blocks.sort_by_key(|(core, _)| *core);
    Ok(blocks.into_iter().filter(|(core, _)| only.is_none_or(|o| o == *core)).map(|(_, s)| s).collect())
}

/// The NUMA node of a CPU, as the kernel lists it (`nodeN` in the CPU's
/// sysfs directory); none when it does not say.
fn numa_of(core: usize) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{core}")).ok()?;
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("node")?.parse().ok()).next()
}

/// One `vlog/set` spec: words separated by spaces, commas or colons, each
/// `ANY`, a destination, a level or the module (at most one of each); the
/// level it sets (`dbg` when it names none).
pub fn vlog_spec(spec: &str) -> Result<Level, String> {
    let mut words = spec.split([' ', ',', ':', '\t']).filter(|w| !w.is_empty()).peekable();
    match words.peek().map(|w| w.to_ascii_lowercase()) {
        Some(w) if w == "pattern" || w == "facility" => {
            return Err(format!("{spec}: sdnfwd's log has no patterns or syslog facility to set"))
        }
        _ => {}
    }
    let (mut dest, mut level, mut module) = (false, None, false);
    for w in words {
        let l = w.to_ascii_lowercase();
        if l == "any" {
            continue;
        } else if ["console", "syslog", "file"].contains(&l.as_str()) {
            if dest {
                return Err("cannot specify multiple destinations".into());
            }
            dest = true;
        } else if let Some(v) = vlog_level(&l) {
            if level.is_some() {
                return Err("cannot specify multiple levels".into());
            }
            level = Some(v);
        } else if l == MODULE {
            if module {
                return Err("cannot specify multiple modules".into());
            }
            module = true;
        } else {
            return Err(format!("no destination, level, or module \"{w}\""));
        }
    }
    Ok(level.unwrap_or(Level::Debug))
}

/// OVS's level names onto sdnfwd's levels.
fn vlog_level(w: &str) -> Option<Level> {
    Some(match w {
        "off" | "emer" | "err" => Level::Error,
        "warn" => Level::Warn,
        "info" => Level::Info,
        "dbg" => Level::Debug,
        _ => return None,
    })
}

/// `vlog/list` in OVS's layout: the module's level on each destination.
fn vlog_list(level: Level) -> String {
    let name = match level {
        Level::Error => "ERR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DBG",
    };
    format!(
        "                 console    syslog    file\n                 -------    ------    ------\n\
         {MODULE:<16}  {name:>4}       {name:>4}       {name:>4}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdp::TestDatapath;

    const FLOWS: &str = "\
        table=0,priority=100,ip,in_port=3,nw_dst=10.128.0.4,actions=output:4\n\
        table=0,priority=100,arp,actions=drop\n\
        table=0,priority=0,actions=drop\n";

    fn setup() -> (TestDatapath, Commands, Arc<Mutex<Option<String>>>, Arc<AtomicBool>) {
        let dp = TestDatapath::start(FLOWS, &[(3, "veth-a"), (4, "veth-b")], 2).unwrap();
        let bridge = Arc::new(Mutex::new(Some("br0".to_string())));
        let exit = Arc::new(AtomicBool::new(false));
        let mut cmds = Commands::default();
        register(&mut cmds, dp.control.clone(), bridge.clone(), exit.clone());
        (dp, cmds, bridge, exit)
    }

    fn run(cmds: &Commands, line: &str) -> Result<String, String> {
        let w: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        cmds.run(&w[0], &w[1..])
    }

    fn icmp(src: u32, dst: u32) -> Vec<u8> {
        fastpath::wire::build_frame(0x0a58_0a80_0003, 0x0a58_0a80_0004, src, dst, 1, 0x0800, 0, 64)
    }

    #[test]
    fn test_commands_listed() {
        let (_dp, cmds, _, _) = setup();
        let list = run(&cmds, "list-commands").unwrap();
        let mut names: Vec<&str> = list.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
        let mut want = COMMANDS.to_vec();
        names.sort_unstable();
        want.sort_unstable();
        assert_eq!(names, want);
    }

    #[test]
    fn test_version_and_exit() {
        let (_dp, cmds, _, exit) = setup();
        assert_eq!(run(&cmds, "version").unwrap(), "ovs-vswitchd (sdnfwd) 0.1.0");
        assert!(!exit.load(Ordering::Relaxed));
        assert_eq!(run(&cmds, "exit --cleanup").unwrap(), "");
        assert!(exit.load(Ordering::Relaxed));
    }

    #[test]
    fn test_trace_forms() {
        let (_dp, cmds, bridge, _) = setup();
        let t = run(&cmds, "ofproto/trace br0 in_port=3,icmp,nw_src=10.128.0.3,nw_dst=10.128.0.4").unwrap();
        assert!(t.starts_with("Flow: icmp,in_port=3,"), "{t}");
        assert!(t.contains("bridge(\"br0\")\n-------------\n 0. ip,in_port=3,nw_dst=10.128.0.4, priority 100"), "{t}");
        assert!(t.contains("\nDatapath actions: 4\n"), "{t}");
        // The datapath's syntax, alone or after the datapath's name.
        let odp = "in_port(3),eth(src=0a:58:0a:80:00:03,dst=0a:58:0a:80:00:04),eth_type(0x0800),\
                   ipv4(src=10.128.0.3,dst=10.128.0.4,proto=1,tos=0,ttl=64,frag=no),icmp(type=8,code=0)";
        let a = run(&cmds, &format!("ofproto/trace {odp}")).unwrap();
        assert!(a.contains("\nDatapath actions: 4\n"), "{a}");
        assert_eq!(run(&cmds, &format!("ofproto/trace ovs-netdev {odp}")).unwrap(), a);
        let with_ct = run(&cmds, "ofproto/trace br0 in_port=3,arp --ct-next trk,est").unwrap();
        assert!(with_ct.contains("Datapath actions: drop"), "{with_ct}");
        for (line, err) in [
            ("ofproto/trace br1 in_port=3", "br1: unknown bridge"),
            ("ofproto/trace br0 in_port=3,bogus=1", "Bad openflow flow syntax"),
            ("ofproto/trace br0 in_port=3 --ct-next", "Missing argument for option --ct-next"),
            ("ofproto/trace br0 in_port=3 --ct-next zzz", "--ct-next zzz: unknown ct_state flag `zzz`"),
            ("ofproto/trace br0 in_port=3 --frob", "--frob: unknown option"),
            ("ofproto/trace br0 in_port=3 -generate", "-generate: not supported"),
            ("ofproto/trace in_port=3", "(or the bridge name was omitted)"),
            ("ofproto/trace vlan(vid=5)", "`vlan` is not supported"),
            ("ofproto/trace a b c d", "too many arguments"),
        ] {
            let e = run(&cmds, line).unwrap_err();
            assert!(e.contains(err), "{line}: {e}");
        }
        *bridge.lock().unwrap() = None;
        assert_eq!(run(&cmds, &format!("ofproto/trace {odp}")).unwrap_err(), "Cannot find the datapath");
        assert_eq!(run(&cmds, "ofproto/trace br0 in_port=3").unwrap_err(), "br0: unknown bridge");
    }

    #[test]
    fn test_dpif_show_dump_flows_and_pmd_stats() {
        let (dp, cmds, bridge, _) = setup();
        assert_eq!(
            run(&cmds, "dpif/show").unwrap(),
            "netdev@ovs-netdev: hit:0 missed:0\n  br0:\n    veth-a 3/3: (system)\n    veth-b 4/4: (system)\n"
        );
        assert_eq!(run(&cmds, "dpif/dump-flows br0").unwrap(), "");
        dp.receive(3, icmp(0x0a80_0003, 0x0a80_0004));
        assert!(dp.sent(4).is_some(), "forwarded to port 4");
        dp.receive(3, icmp(0x0a80_0003, 0x0a80_0004));
        assert!(dp.sent(4).is_some());
        let f = run(&cmds, "dpif/dump-flows br0").unwrap();
        assert!(
            f.starts_with(
                "recirc_id(0),in_port(3),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(dst=10.128.0.4), \
                 packets:"
            ),
            "{f}"
        );
        assert!(f.ends_with(", actions:4\n"), "{f}");
        assert_eq!(run(&cmds, "dpctl/dump-flows netdev@ovs-netdev").unwrap(), f);
        assert_eq!(run(&cmds, "dpif/dump-flows br1").unwrap_err(), "no such bridge");
        assert!(run(&cmds, "dpif/dump-flows -m br0").unwrap_err().starts_with("-m: not supported"));
        let show = run(&cmds, "dpif/show").unwrap();
        assert!(show.starts_with("netdev@ovs-netdev: hit:1 missed:1\n"), "{show}");
        let s = run(&cmds, "dpif-netdev/pmd-stats-show").unwrap();
        assert!(s.starts_with("pmd thread ") && s.contains(" core_id 2:\n  packets received: 2\n"), "{s}");
        assert!(s.contains("\n  miss with success upcall: 1\n"), "{s}");
        assert_eq!(run(&cmds, "dpif-netdev/pmd-stats-show -pmd 7").unwrap(), "");
        assert!(run(&cmds, "dpif-netdev/pmd-stats-show -pmd x").unwrap_err().contains("-pmd x"));
        assert!(run(&cmds, "dpif-netdev/pmd-stats-show dpx").unwrap_err().starts_with("dpx: please specify"));
        assert_eq!(run(&cmds, "dpif-netdev/pmd-stats-clear").unwrap(), "");
        let s = run(&cmds, "dpif-netdev/pmd-stats-show ovs-netdev").unwrap();
        assert!(s.contains("  packets received: 0\n  packet recirculations: 0\n"), "{s}");
        *bridge.lock().unwrap() = None;
        assert_eq!(run(&cmds, "dpif/show").unwrap(), "netdev@ovs-netdev: hit:0 missed:0\n");
    }

    #[test]
    fn test_conntrack_commands() {
        let (_dp, cmds, _, _) = setup();
        assert_eq!(run(&cmds, "dpctl/dump-conntrack").unwrap(), "");
        assert_eq!(run(&cmds, "dpctl/dump-conntrack netdev@ovs-netdev zone=3").unwrap(), "");
        assert_eq!(run(&cmds, "dpctl/flush-conntrack zone=3").unwrap(), "");
        assert!(run(&cmds, "dpctl/ct-stats-show").unwrap().contains("Total: 0"));
        assert!(run(&cmds, "dpctl/dump-conntrack zone=x").unwrap_err().contains("zone=x"));
        assert!(run(&cmds, "dpctl/dump-conntrack system@ovs-system").unwrap_err().contains("system@ovs-system"));
    }

    #[test]
    fn test_vlog() {
        let (_dp, cmds, _, _) = setup();
        let before = logging::level();
        assert_eq!(run(&cmds, "vlog/set ANY:ANY:info").unwrap(), "");
        assert_eq!(
            run(&cmds, "vlog/list").unwrap(),
            "                 console    syslog    file\n                 -------    ------    ------\n\
             sdnfwd            INFO       INFO       INFO\n"
        );
        assert_eq!(vlog_spec("console:sdnfwd:warn"), Ok(Level::Warn));
        assert_eq!(vlog_spec("dbg"), Ok(Level::Debug));
        assert_eq!(vlog_spec("sdnfwd"), Ok(Level::Debug));
        assert_eq!(vlog_spec("emer"), Ok(Level::Error));
        assert_eq!(vlog_spec("bridge:dbg"), Err("no destination, level, or module \"bridge\"".into()));
        assert_eq!(vlog_spec("info:dbg"), Err("cannot specify multiple levels".into()));
        assert_eq!(vlog_spec("console:file"), Err("cannot specify multiple destinations".into()));
        assert!(vlog_spec("PATTERN:console:%m").unwrap_err().contains("no patterns"));
        assert_eq!(run(&cmds, "vlog/set loud").unwrap_err(), "no destination, level, or module \"loud\"");
        logging::set(before);
    }

    #[test]
    fn test_port_types() {
        let port = |ofport, name: &str, ifname: Option<&str>| OfPort {
            ofport,
            name: name.into(),
            ifname: ifname.map(Into::into),
            up: true,
        };
        let vxlan = "vxlan: key=flow, remote_ip=flow";
        assert_eq!(port_type(&port(65534, "br0", None), None), "tap");
        assert_eq!(port_type(&port(1, "vxlan0", None), None), vxlan, "sdnfwd run's");
        assert_eq!(port_type(&port(1, "vxlan0", Some("eth0")), None), vxlan, "the vswitchd's: the uplink");
        assert_eq!(port_type(&port(2, "tun0", Some("tun0")), Some("tun0-dp")), "tap", "polled through its peer");
        assert_eq!(port_type(&port(3, "veth-a", Some("veth-a")), Some("veth-a")), "system");
        assert_eq!(port_type(&port(4, "veth-b", Some("veth-b")), None), "system", "not attached");
    }

    #[test]
    fn test_odp_match_formats() {
        let mut k = OfFlow::default();
        let mut m = OfFlow::default();
        for (f, v, mk) in [
            (Field::InPort, 1, 0xffff_ffff),
            (Field::CtState, 0x22, 0x23),
            (Field::CtZone, 5, 0xffff),
            (Field::DlDst, 0x0a58_0a80_0004, 0xffff_ffff_ffff),
            (Field::DlType, 0x0800, 0xffff),
            (Field::NwSrc, 0x0a80_0000, 0xfffc_0000),
            (Field::NwProto, 6, 0xff),
            (Field::NwFrag, 0, 3),
            (Field::TpDst, 16, 0xfff0),
        ] {
            k.set(f, v);
            m.set(f, mk);
        }
        assert_eq!(
            odp_match(&k, &m),
            "ct_state(-new+est+trk),ct_zone(0x5),recirc_id(0),in_port(1),packet_type(ns=0,id=0),\
             eth(dst=0a:58:0a:80:00:04),eth_type(0x0800),ipv4(src=10.128.0.0/255.252.0.0,proto=6,frag=no),\
             tcp(dst=16/0xfff0)"
        );
    }
}
