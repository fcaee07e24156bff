//! Packet generator for oracle and property tests: ofproto/trace flow
//! strings drawn from a node's addresses, so that every table is reached
//! (ARP, IP, TCP, UDP, ICMP, fragments, vxlan0 with known and unknown
//! tun_src, tun0, pods, spoofed sources, services, multicast, external).

use super::Rng;
use config::yaml::Cluster;

/// Address pools of one node's view.
pub struct Pools {
    /// (ofport, ip) of local pods.
    pub local: Vec<(u32, String)>,
    pub remote_pods: Vec<String>,
    pub gateway: String,
    pub node_ip: String,
    pub node_ips: Vec<String>,
    pub services: Vec<String>,
    pub vnids: Vec<u64>,
}

impl Pools {
    pub fn from_cluster(c: &Cluster, node: &str) -> Pools {
        let hs = c.host_subnet(node).unwrap();
        let gw = std::net::Ipv4Addr::from(hs.subnet.addr() | 1).to_string();
        let local: Vec<(u32, String)> = c
            .find_node(node)
            .map(|n| n.pods.iter().map(|p| (p.ofport, p.ip.to_string())).collect())
            .unwrap_or_default();
        let mut remote_pods: Vec<String> =
            c.all_nodes().filter(|n| n.name != node).flat_map(|n| n.pods.iter().map(|p| p.ip.to_string())).collect();
        for h in &c.host_subnets {
            let a = h.subnet.addr();
            remote_pods.push(std::net::Ipv4Addr::from(a + 9).to_string());
            remote_pods.push(std::net::Ipv4Addr::from(a + 0x1f0).to_string());
        }
        let mut vnids: Vec<u64> = c.net_namespaces.iter().map(|n| n.netid as u64).collect();
        vnids.push(0);
        Pools {
            local,
            remote_pods,
            gateway: gw,
            node_ip: hs.host_ip.to_string(),
            node_ips: c.host_subnets.iter().map(|h| h.host_ip.to_string()).collect(),
            services: c.services.iter().map(|s| s.cluster_ip.clone()).chain(["172.30.99.99".to_string()]).collect(),
            vnids,
        }
    }

    fn any_ip(&self, r: &mut Rng) -> String {
        match r.below(10) {
            0 | 1 => r.pick(&self.local).1.clone(),
            2 | 3 => r.pick(&self.remote_pods).clone(),
            4 => self.gateway.clone(),
            5 => r.pick(&self.services).clone(),
            6 => r.pick(&["224.0.0.251", "239.1.2.3", "224.0.0.1"]).to_string(),
            7 => self.node_ip.clone(),
            8 => r.pick(&self.node_ips).clone(),
            _ => format!("{}.{}.{}.{}", 1 + r.below(223), r.below(256), r.below(256), r.below(256)),
        }
    }

    fn mac_of(ip: &str) -> String {
        let o: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
        format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    }

    /// One flow in ofproto/trace syntax.
    pub fn flow(&self, r: &mut Rng) -> String {
        let pod = r.pick(&self.local).clone();
        let in_port = match r.below(20) {
            0..=4 => 1,
            5..=7 => 2,
            8 => 9,
            _ => pod.0,
        };
        let mut f = Vec::<String>::new();
        if in_port == 1 {
            let src = match r.below(6) {
                0 => "172.16.9.9".to_string(),
                1 => "0.0.0.0".to_string(),
                _ => r.pick(&self.node_ips).clone(),
            };
            let id = if r.chance(80) { *r.pick(&self.vnids) } else { r.below(1 << 24) };
            f.push(format!("tun_id={id:#x},tun_src={src},tun_dst={}", self.node_ip));
        }
        f.push(format!("in_port={in_port}"));
        let own_src = in_port == pod.0 && r.chance(80);
        let src_ip = if own_src {
            pod.1.clone()
        } else if in_port == 2 && r.chance(60) {
            self.gateway.clone()
        } else {
            self.any_ip(r)
        };
        match r.below(100) {
            0..=64 => {
                let frag = match r.below(10) {
                    0 => "first",
                    1 => "later",
                    _ => "no",
                };
                let proto = match r.below(10) {
                    0..=3 => "tcp",
                    4..=6 => "udp",
                    7..=8 => "icmp",
                    _ => "ip",
                };
                f.push(proto.into());
                f.push(format!("dl_src={}", Self::mac_of(&src_ip)));
                f.push(format!("nw_src={src_ip},nw_dst={},nw_ttl=64,nw_frag={frag}", self.any_ip(r)));
                if proto == "ip" && r.chance(50) {
                    f.push("nw_proto=47".into());
                }
                if frag != "later" {
                    match proto {
                        "tcp" | "udp" => {
                            let any = 1 + r.below(65535);
                            let dport = *r.pick(&[53u64, 80, 443, 514, 4789, 5353, 8080, 8443, any]);
                            f.push(format!("{proto}_src={},{proto}_dst={dport}", 1024 + r.below(60000)));
                        }
                        "icmp" => f.push("icmp_type=8,icmp_code=0".into()),
                        _ => {}
                    }
                }
            }
            65..=89 => {
                let sha = if r.chance(80) { Self::mac_of(&src_ip) } else { "0a:58:01:02:03:04".into() };
                let tpa = match r.below(3) {
                    0 => self.gateway.clone(),
                    _ => self.any_ip(r),
                };
                f.push(format!("arp,arp_op={},arp_spa={src_ip},arp_tpa={tpa},arp_sha={sha}", 1 + r.below(2)));
            }
            90..=94 => f.push("ipv6".into()),
            _ => f.push("dl_type=0x88cc".into()),
        }
        f.join(",")
    }
}
