//! The whole-pipeline property for fuzzing (`fuzz/`, `tests/fuzz_smoke.rs`):
//! an arbitrary frame, on a pod port, tun0 or — wrapped in VXLAN to our
//! VTEP — the uplink, goes through extraction, EMC, megaflow lookup, an
//! upcall with translation and the actions, over the embedded default
//! cluster's node-d tables, without a panic and without losing a frame.
//! Not part of the API.

use std::cell::RefCell;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use fastpath::batch::UPLINK;
use fastpath::flow::LocalVtep;
use fastpath::pmd::Pmd;
use fastpath::port::memory::SinkPort;
use fastpath::shared::{Shared, TunnelState};
use fastpath::upcall::Upcall;
use fastpath::wire;

use crate::upcall::SlowPath;
use crate::Ofproto;

struct Rig {
    pmd: Pmd,
    slow: SlowPath,
    upcalls: Receiver<Upcall>,
    inject: Vec<(u32, crossbeam_channel::Sender<Vec<u8>>)>,
}

const VTEP: u32 = 0xac10_0119;
const PORTS: [u32; 6] = [UPLINK, 2, 3, 4, 5, 6];

fn rig() -> Rig {
    let c = config::yaml::Cluster::default_cluster();
    let r = config::render::render(&c, "node-d").expect("default cluster renders");
    let mut of = Ofproto::with_flows(&r.flows).expect("rendered flows load");
    of.ports = Some([1, 2, 3, 4, 5, 6].into());
    let shared = Arc::new(Shared::default());
    shared.tunnel.store(Arc::new(TunnelState {
        vtep: Some(LocalVtep { ip: VTEP, udp_port: 4789, port: 1 }),
        local_mac: 0x0a00_0000_0001,
        neighbours: [(0xac10_010f, 2), (0xac10_0110, 3)].into_iter().collect(),
    }));
    let (up_tx, up_rx) = crossbeam_channel::bounded(64);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(64);
    let mut pmd = Pmd::new(0, shared.clone(), up_tx, rep_rx, 256, 1);
    let mut inject = Vec::new();
    for p in PORTS {
        let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
        pmd.add_port(p, Box::new(ChanPort { rx, sink: SinkPort::new("sink"), counters: Default::default() }), true);
        inject.push((p, tx));
    }
    let slow = SlowPath::new(of, shared, vec![rep_tx], vec![pmd.stats.clone()]);
    Rig { pmd, slow, upcalls: up_rx, inject }
}

/// A port fed from a channel, sending to a sink.
struct ChanPort {
    rx: Receiver<Vec<u8>>,
    sink: SinkPort,
    counters: fastpath::port::api::PortCounters,
}

impl fastpath::port::api::Port for ChanPort {
    fn name(&self) -> &str {
        "fuzz"
    }
    fn rx(&mut self, pool: &mut fastpath::pool::FramePool, out: &mut [u32]) -> usize {
        let rx = &self.rx;
        fastpath::port::api::rx_from(pool, out, &mut self.counters, || rx.try_recv().ok())
    }
    fn tx(&mut self, pool: &mut fastpath::pool::FramePool, frames: &[u32]) {
        self.sink.tx(pool, frames)
    }
    fn counters(&self) -> fastpath::port::api::PortCounters {
        self.sink.counters()
    }
}

thread_local! {
    static RIG: RefCell<Option<Rig>> = const { RefCell::new(None) };
}

/// Runs one input: byte 0 picks the port (and VXLAN wrapping for the
/// uplink), the rest is the frame.
///
/// # Panics
/// When a frame is lost (that is the point) or the datapath panics.
pub fn pipeline(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else { return };
    RIG.with(|cell| {
        let mut g = cell.borrow_mut();
        let rig = g.get_or_insert_with(rig);
        let (port, tx) = &rig.inject[sel as usize % PORTS.len()];
        let bytes = if *port == UPLINK && sel & 0x80 != 0 {
            let t = wire::VxlanTemplate::new(2, 1, 0xac10_0110, VTEP, 4789, u32::from(sel) << 8 | 0x2b);
            let mut f = vec![0u8; wire::VXLAN_ENCAP_LEN];
            t.write(&mut f, frame.len(), 50000);
            f.extend_from_slice(frame);
            f
        } else {
            frame.to_vec()
        };
        let _ = tx.send(bytes);
        for _ in 0..3 {
            rig.pmd.iterate();
            let batch: Vec<Upcall> = rig.upcalls.try_iter().collect();
            rig.slow.handle(&batch);
        }
        rig.pmd.iterate();
        let in_use = rig.pmd.pool().capacity() - rig.pmd.pool().n_free();
        assert_eq!(in_use, rig.pmd.n_pending() + rig.pmd.n_held(), "a frame leaked");
    });
}

/// OpenFlow messages (the listener's input): decoding never panics;
/// whatever decodes as a FLOW_MOD re-encodes, in the version the decoder
/// read it as (1.3 to 1.5: importance exists from 1.4 on), to a message
/// that decodes to the same flow (match, priority, cookie, timeouts,
/// flags, importance, filters) with as many actions; an action may change
/// form, not meaning (a whole-field NX `load` is encoded as `set_field`
/// from 1.5), so encoding again gives exactly the same command. Applying
/// it to tables never panics.
pub fn openflow_message(data: &[u8]) {
    use crate::openflow::codec;
    use config::ofctl::FlowCommand;
    let _ = codec::hello_accepts_of13(data);
    let _ = codec::decode_match(data);
    let _ = codec::decode_actions(data);
    let _ = codec::decode_instructions(data, 0);
    let _ = codec::decode_flow_stats(data);
    if data.len() >= 16 {
        let _ = codec::decode_flow_filter(&data[16..]);
    }
    if let Ok(cmd) = codec::decode_flow_mod(data) {
        let version = data[0].clamp(4, 6);
        let once = codec::decode_flow_mod(&codec::encode_flow_mod_v(&cmd, version, 1));
        let once = once.unwrap_or_else(|e| panic!("a re-encoded FLOW_MOD does not decode: {e:?}\n{cmd:?}"));
        let bare = |c: &FlowCommand| match c {
            FlowCommand::Add(s) | FlowCommand::Modify { spec: s, .. } | FlowCommand::Delete { spec: s, .. } => {
                let n = s.actions.len();
                let mut s = s.clone();
                s.actions.clear();
                Some((std::mem::discriminant(c), s, n))
            }
            FlowCommand::Group(_) => None,
        };
        assert_eq!(bare(&once), bare(&cmd), "re-encoded FLOW_MOD decodes to another flow");
        let twice = codec::decode_flow_mod(&codec::encode_flow_mod_v(&once, version, 1));
        assert_eq!(twice.as_ref(), Ok(&once), "a second encoding changes the FLOW_MOD");
        let mut of = Ofproto::new();
        let _ = of.apply(&[cmd]);
    }
}
