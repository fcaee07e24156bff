//! The ct-mode table: node-d of the default cluster in conntrack mode, as
//! the networkpolicy plugin programs it (OPENSHIFT_SDN_PIPELINE.md §8.8),
//! with egress groups. One table for the OVS oracle test
//! (tests/oracle_ovs.rs) and `sdnfwd bench --ct-mode` (and through it
//! tools/bench-ovs-dpdk.sh), until the renderer produces ct mode itself.

use config::yaml::Cluster;

/// Node-d in conntrack mode: the rendered table with the networkpolicy
/// plugin's differences (§8.8; the table 0 and 30 conntrack rules at the
/// 4.6+ priorities, which resolve 3.11's ties as "conntrack first" and
/// "gateway first"), project-a's policies P1 and P2, and egress through
/// groups as 4.8+ does it: project-a through an indirect
/// group after `ct(commit)`, project-b through an all group
/// (tun0 with a mark, and a copy tunnelled to node-b). Returns the flows
/// (`ovs-ofctl add-flows` lines) and the groups (`add-groups` lines).
///
/// # Panics
/// If `c` has no node-d to render (the default cluster has).
pub fn ct_mode_flows(c: &Cluster) -> (String, String) {
    let r = config::render::render(c, "node-d").expect("node-d renders");
    let kept: Vec<String> = r
        .flows
        .iter()
        .filter(|f| f.table != 60 && (f.table != 80 || [0, 300].contains(&f.priority)))
        .map(|f| f.to_dump_line(None).trim_start().to_string())
        .collect();
    let mut text = kept.join("\n") + "\n";
    text += "table=0,priority=1000,ip,ct_state=-trk,actions=ct(table=0)
table=0,priority=400,in_port=2,ip,nw_src=10.131.0.1,actions=goto_table:30
table=0,priority=300,in_port=2,ip,nw_src=10.131.0.0/23,nw_dst=10.128.0.0/14,actions=goto_table:25
table=25,priority=0,actions=drop
table=30,priority=250,ip,nw_dst=10.131.0.0/23,ct_state=+rpl,actions=ct(nat,table=70)
table=60,priority=200,actions=output:2
table=60,priority=0,actions=drop
table=21,priority=200,ip,nw_dst=10.128.0.0/14,actions=ct(commit,table=30)
table=80,priority=200,ip,ct_state=+rpl,actions=output:NXM_NX_REG2[]
table=80,priority=150,reg1=11235,ip,nw_dst=10.129.0.7,reg0=0,tcp,tp_dst=8080,actions=output:NXM_NX_REG2[]
table=80,priority=150,reg1=11235,ip,nw_dst=10.131.0.3,reg0=0,tcp,tp_dst=8080,actions=output:NXM_NX_REG2[]
table=80,priority=150,reg1=11235,ip,nw_dst=10.131.0.4,reg0=11235,ip,nw_src=10.129.0.7,tcp,tp_dst=5432,actions=output:NXM_NX_REG2[]
table=80,priority=150,reg1=11235,ip,nw_dst=10.131.0.4,reg0=11235,ip,nw_src=10.131.0.3,tcp,tp_dst=5432,actions=output:NXM_NX_REG2[]
table=80,priority=100,reg1=11235,ip,nw_dst=10.129.0.7,actions=drop
table=80,priority=100,reg1=11235,ip,nw_dst=10.131.0.3,actions=drop
table=80,priority=100,reg1=11235,ip,nw_dst=10.131.0.4,actions=drop
table=80,priority=50,reg1=11235,actions=output:NXM_NX_REG2[]
table=80,priority=50,reg1=0,actions=output:NXM_NX_REG2[]
table=80,priority=50,reg1=58132,actions=output:NXM_NX_REG2[]
table=100,priority=150,reg0=11235,ip,actions=ct(commit),group:11235
table=100,priority=150,reg0=58132,ip,actions=group:58132
";
    for n in c.find_node("node-d").unwrap().pods.iter() {
        let vnid = c.vnid(&n.namespace).unwrap();
        text +=
            &format!("table=25,priority=100,ip,nw_src={},actions=load:{vnid:#x}->NXM_NX_REG0[],goto_table:30\n", n.ip);
    }
    let groups = "group_id=11235,type=indirect,bucket=actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.16->tun_dst,output:1
group_id=58132,type=all,bucket=actions=set_field:0x0100a314->pkt_mark,output:2,bucket=actions=move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],set_field:172.16.1.16->tun_dst,output:1
"
    .to_string();
    (text, groups)
}
