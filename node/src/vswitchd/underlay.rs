//! The underlay as the kernel datapath would use it for a flow-based VXLAN
//! port (`options:remote_ip=flow`): the remote VTEPs are whatever the
//! flows send to (`set_field:IP->tun_dst`, also in group buckets) or
//! accept from (`tun_src=IP`), and the local end is the interface and
//! source address of the kernel's route to them, unless the port names
//! its `options:local_ip`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use config::ofctl::{Action, Field};
use slowpath::Ofproto;

use crate::sys::ip_json;

/// The remote VTEPs the tables name.
pub fn remote_vteps(of: &Ofproto) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut from_actions = |actions: &[Action]| {
        for a in actions {
            match a {
                Action::SetField { field: Field::TunDst, value, mask } if *mask == 0xffff_ffff => {
                    out.insert(*value as u32);
                }
                Action::Load { value, dst } if dst.field == Field::TunDst && dst.n_bits == 32 => {
                    out.insert(*value as u32);
                }
                _ => {}
            }
        }
    };
    let rules = of.rules(None);
    for r in &rules {
        from_actions(&r.spec.actions);
    }
    for g in of.groups() {
        for b in &g.buckets {
            from_actions(&b.actions);
        }
    }
    for r in &rules {
        if let (v, 0xffff_ffff) = r.spec.m.get(Field::TunSrc) {
            out.insert(v as u32);
        }
    }
    out.remove(&0);
    out
}

/// The local end of a tunnel to `remote`: the interface and source
/// address of the kernel's route (`ip route get`).
///
/// # Errors
/// No route, or a route with no source address.
pub fn route_to(remote: Ipv4Addr) -> Result<(String, Ipv4Addr), String> {
    let j = ip_json(&["route", "get", &remote.to_string()])?;
    let r = &j[0];
    let dev = r["dev"].as_str().ok_or_else(|| format!("no route to {remote}"))?;
    let src = r["prefsrc"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("the route to {remote} (dev {dev}) has no source address"))?;
    Ok((dev.to_string(), src))
}

/// The interface that holds address `ip` in this network namespace.
///
/// # Errors
/// No interface holds it.
pub fn holder_of(ip: Ipv4Addr) -> Result<String, String> {
    let j = ip_json(&["-4", "addr", "show"])?;
    j.as_array()
        .into_iter()
        .flatten()
        .find(|l| l["addr_info"].as_array().into_iter().flatten().any(|a| a["local"].as_str() == Some(&ip.to_string())))
        .and_then(|l| l["ifname"].as_str().map(str::to_string))
        .ok_or_else(|| format!("no interface of this network namespace holds local_ip {ip}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's tables name their remote VTEPs in table 10's `tun_src`
    /// and tables 50 and 90's `set_field:...->tun_dst`.
    #[test]
    fn test_remote_vteps_of_the_seed() {
        let mut of = Ofproto::new();
        let text = "table=10,priority=100,tun_src=172.16.1.15 actions=goto_table:30\n\
                    table=50,priority=100,arp,arp_tpa=10.128.0.0/23 actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.16->tun_dst,output:1\n\
                    table=90,priority=100,ip,nw_dst=10.130.0.0/23 actions=load:0xac100117->NXM_NX_TUN_IPV4_DST[],output:1\n\
                    table=90,priority=0 actions=drop\n";
        for (_, c) in config::ofctl::parse_flow_file(text).unwrap() {
            of.apply(std::slice::from_ref(&c)).unwrap();
        }
        let got: Vec<Ipv4Addr> = remote_vteps(&of).into_iter().map(Ipv4Addr::from).collect();
        assert_eq!(got, ["172.16.1.15", "172.16.1.16", "172.16.1.23"].map(|s| s.parse::<Ipv4Addr>().unwrap()));
    }

    /// Loopback holds 127.0.0.1 in every namespace; the route to it is
    /// `lo`'s.
    #[test]
    fn test_the_kernel_answers() {
        assert_eq!(holder_of(Ipv4Addr::LOCALHOST).unwrap(), "lo");
        assert!(holder_of("192.0.2.77".parse().unwrap()).unwrap_err().contains("192.0.2.77"));
        assert_eq!(route_to(Ipv4Addr::LOCALHOST).unwrap().0, "lo");
    }
}
