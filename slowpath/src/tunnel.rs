//! Underlay state for VXLAN: the next-hop MAC of each remote VTEP. The node
//! keeps its own address on the uplink, so the kernel ARPs there (the
//! uplink's XDP program passes ARP to it); this reads the kernel's
//! neighbour table, asks the kernel to resolve what is missing (a datagram
//! to the discard port makes it ARP), and reports what appeared, changed or
//! expired. Remote VTEPs behind a router resolve to the gateway's MAC.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

pub use fastpath::wire::{fmt_mac, parse_mac};

/// Neighbour state of the remote VTEPs.
#[derive(Debug, Default)]
pub struct Neighbours {
    /// Remote VTEP addresses (the other nodes' HostSubnet hostIP).
    pub vteps: Vec<Ipv4Addr>,
    /// Resolved: VTEP (u32) -> next-hop MAC (low 48 bits).
    pub known: BTreeMap<u32, u64>,
    asked: BTreeMap<u32, Instant>,
}

/// Complete entries of a `/proc/net/arp` text: IP -> MAC.
pub fn parse_arp_table(text: &str) -> BTreeMap<u32, u64> {
    let mut m = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Flags 0x2 = complete, 0x6 = complete + permanent.
        if f.len() < 4 || (f[2] != "0x2" && f[2] != "0x6") {
            continue;
        }
        if let (Ok(ip), Some(mac)) = (f[0].parse::<Ipv4Addr>(), parse_mac(f[3])) {
            m.insert(u32::from(ip), mac);
        }
    }
    m
}

/// The next hop in an `ip route get` answer: the `via` address, else the
/// destination itself (on-link).
pub fn parse_next_hop(route_get: &str, dst: Ipv4Addr) -> Ipv4Addr {
    let w: Vec<&str> = route_get.split_whitespace().collect();
    w.windows(2).find(|p| p[0] == "via").and_then(|p| p[1].parse().ok()).unwrap_or(dst)
}

impl Neighbours {
    /// State for these remote VTEPs, nothing resolved yet.
    pub fn new(vteps: Vec<Ipv4Addr>) -> Neighbours {
        Neighbours { vteps, ..Default::default() }
    }

    fn next_hop(ip: Ipv4Addr) -> Option<Ipv4Addr> {
        let out = Command::new("ip").args(["route", "get", &ip.to_string()]).output().ok()?;
        out.status.success().then(|| parse_next_hop(&String::from_utf8_lossy(&out.stdout), ip))
    }

    /// Refreshes from the kernel; returns whether the map changed, and
    /// reports each change through `log`. Unresolved next hops are asked
    /// for again at most once a second.
    pub fn refresh(&mut self, log: &mut dyn FnMut(String)) -> bool {
        let arp = parse_arp_table(&std::fs::read_to_string("/proc/net/arp").unwrap_or_default());
        let mut now = BTreeMap::new();
        for &v in &self.vteps {
            let Some(hop) = Self::next_hop(v) else { continue };
            match arp.get(&u32::from(hop)) {
                Some(&mac) => {
                    now.insert(u32::from(v), mac);
                }
                None => {
                    let due = self.asked.get(&u32::from(v)).is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                    if due {
                        self.asked.insert(u32::from(v), Instant::now());
                        if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") {
                            let _ = s.send_to(&[], (hop, 9));
                        }
                    }
                }
            }
        }
        if now == self.known {
            return false;
        }
        for (ip, mac) in &now {
            if self.known.get(ip) != Some(mac) {
                log(format!("neighbour {} is at {}", Ipv4Addr::from(*ip), fmt_mac(*mac)));
            }
        }
        for ip in self.known.keys() {
            if !now.contains_key(ip) {
                log(format!("neighbour {} expired", Ipv4Addr::from(*ip)));
            }
        }
        self.known = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_arp_table_keeps_complete_entries() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 172.16.1.16      0x1         0x2         aa:bb:cc:00:00:10     *        eth0\n\
                 172.16.1.15      0x1         0x0         00:00:00:00:00:00     *        eth0\n\
                 172.16.1.22      0x1         0x6         aa:bb:cc:00:00:16     *        eth0\n";
        let m = parse_arp_table(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&u32::from(Ipv4Addr::new(172, 16, 1, 16))], 0xaabb_cc00_0010);
        assert_eq!(fmt_mac(m[&u32::from(Ipv4Addr::new(172, 16, 1, 22))]), "aa:bb:cc:00:00:16");
    }

    #[test]
    fn test_next_hop_via_gateway_or_on_link() {
        let d = Ipv4Addr::new(10, 0, 0, 5);
        assert_eq!(
            parse_next_hop("10.0.0.5 via 172.16.1.1 dev eth0 src 172.16.1.25 uid 0\n    cache", d),
            Ipv4Addr::new(172, 16, 1, 1)
        );
        assert_eq!(
            parse_next_hop("172.16.1.16 dev eth0 src 172.16.1.25 uid 0\n    cache", Ipv4Addr::new(172, 16, 1, 16)),
            Ipv4Addr::new(172, 16, 1, 16)
        );
    }
}
