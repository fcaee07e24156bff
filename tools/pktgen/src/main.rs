//! `pktgen`: sdnfwd's packet generator and sink (this kernel has no pktgen
//! module, and Debian's xdp-trafficgen fails on it).
//!
//! `pktgen gen --iface IF ...` sends UDP or TCP frames (optionally inside
//! VXLAN) out of an interface: with an XDP program run by BPF_PROG_RUN in
//! live-frames mode (several Mpps per core; on a veth the peer needs a
//! native XDP program, which an AF_XDP socket's is), else through an
//! AF_XDP socket's TX ring, else through an AF_PACKET socket: `--mode
//! auto` takes the first the machine allows (some refuse live frames
//! whatever their kernel version) and `pktgen probe` says which work.
//! Each frame carries a magic, a sequence number and its send time. `pktgen sink --iface IF` receives on an AF_XDP
//! socket and reports packets, bytes, loss, reordering and latency
//! percentiles. Both print a progress line each second and a summary
//! (`--json` for a machine).

mod xdp_gen;

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use fastpath::pool::FramePool;
use fastpath::port::api::Port;
use fastpath::port::packet::{PacketSocket, PACKET_BATCH};
use fastpath::port::xsk::{XskConfig, XskPort};
use fastpath::wire;
use serde_json::json;
use xdp_gen::{monotonic_ns, GenLayout, XdpGenerator};

/// Payload magic in front of the stamp.
const MAGIC: &[u8; 4] = b"SDNG";

#[derive(Parser)]
#[command(name = "pktgen", about = "Packet generator and sink (XDP live frames / AF_XDP)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// XDP live frames, else AF_XDP TX, else AF_PACKET.
    Auto,
    /// BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES.
    Xdp,
    /// An AF_XDP socket's TX ring.
    Xsk,
    /// An AF_PACKET socket (`sendmmsg`).
    Packet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Proto {
    Udp,
    Tcp,
}

#[derive(clap::Args)]
struct GenArgs {
    /// Interface to send from.
    #[arg(long)]
    iface: String,
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    proto: Proto,
    /// Frame size in bytes (64–1518; at least what headers and stamp need).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Distinct flows (source ports from --sport).
    #[arg(long, default_value_t = 1)]
    flows: u32,
    #[arg(long, default_value = "02:00:00:00:00:01")]
    src_mac: String,
    #[arg(long, default_value = "02:00:00:00:00:02")]
    dst_mac: String,
    #[arg(long, default_value = "10.0.0.1")]
    src_ip: Ipv4Addr,
    #[arg(long, default_value = "10.0.0.2")]
    dst_ip: Ipv4Addr,
    #[arg(long, default_value_t = 1024)]
    sport: u16,
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// Take MACs and addresses from a cluster YAML's pods (with --src/--dst).
    #[arg(long)]
    cluster: Option<String>,
    /// Source pod `namespace/name` (with --cluster).
    #[arg(long)]
    src: Option<String>,
    /// Destination pod `namespace/name` (with --cluster).
    #[arg(long)]
    dst: Option<String>,
    /// Wrap each frame in VXLAN with this VNI (to drive decapsulation);
    /// outer addresses from --vtep-src/--vtep-dst and the outer MACs.
    #[arg(long)]
    vxlan: Option<u32>,
    #[arg(long, default_value = "172.16.1.16")]
    vtep_src: Ipv4Addr,
    #[arg(long, default_value = "172.16.1.25")]
    vtep_dst: Ipv4Addr,
    #[arg(long, default_value = "02:00:00:00:01:01")]
    outer_src_mac: String,
    #[arg(long, default_value = "02:00:00:00:01:02")]
    outer_dst_mac: String,
    /// Packets per second (0: as fast as it goes).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds to send.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Frames to send (instead of --seconds).
    #[arg(long)]
    count: Option<u64>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SinkArgs {
    /// Interface to receive on (an AF_XDP socket on queue 0).
    #[arg(long)]
    iface: String,
    /// Seconds to count at most.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Stop once traffic has paused this long (after the first packet).
    #[arg(long, default_value_t = 1.0)]
    idle: f64,
    /// Print `ready` on stdout once the socket is bound.
    #[arg(long)]
    ready: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct FwdArgs {
    /// Receive here.
    #[arg(long = "in")]
    input: String,
    /// Send there.
    #[arg(long = "out")]
    output: String,
    /// Seconds to run (0: until killed).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// Core to pin to.
    #[arg(long)]
    core: Option<usize>,
}

#[derive(clap::Args)]
struct PassArgs {
    /// Interface to attach an XDP program that passes every frame to the
    /// kernel (a veth's peer needs one for XDP live frames to arrive).
    #[arg(long)]
    iface: String,
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// Interface to probe.
    #[arg(long)]
    iface: String,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Which generator modes work on an interface (each is opened and
    /// closed again; XDP live frames by a dry run that sends nothing), and
    /// which one `gen --mode auto` picks.
    Probe(ProbeArgs),
    /// Hold a pass-everything XDP program on an interface until killed.
    Pass(PassArgs),
    /// A bare AF_XDP receive→send loop with no lookup (the I/O limit of a
    /// userspace forwarder on these ports).
    Fwd(FwdArgs),
    /// Generate frames.
    Gen(Box<GenArgs>),
    /// Count, check and time received frames.
    Sink(SinkArgs),
}

fn mac(s: &str) -> Result<u64, String> {
    wire::parse_mac(s).ok_or_else(|| format!("bad MAC `{s}`"))
}

/// The template frame and where the generator stamps it.
fn template(a: &GenArgs) -> Result<(Vec<u8>, GenLayout), String> {
    let (mut smac, mut dmac, mut sip, mut dip) = (mac(&a.src_mac)?, mac(&a.dst_mac)?, a.src_ip, a.dst_ip);
    if let Some(path) = &a.cluster {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let c = config::yaml::Cluster::from_yaml(&text).map_err(|e| e.in_file(path).to_string())?;
        let pick = |id: &Option<String>, what: &str| -> Result<config::yaml::Pod, String> {
            let id = id.as_deref().ok_or(format!("--cluster needs --{what} namespace/pod"))?;
            c.find_pod(id).map(|(_, p)| p.clone()).ok_or(format!("{path}: no pod {id}"))
        };
        let (s, d) = (pick(&a.src, "src")?, pick(&a.dst, "dst")?);
        (smac, dmac, sip, dip) = (s.mac(), d.mac(), s.ip.0, d.ip.0);
    }
    let proto = if a.proto == Proto::Tcp { 6 } else { 17 };
    let l4_len = if proto == 6 { 20 } else { 8 };
    let need = wire::ETH_LEN + 20 + l4_len + MAGIC.len() + 16;
    let inner_size = a.size.saturating_sub(if a.vxlan.is_some() { wire::VXLAN_ENCAP_LEN } else { 0 }).max(need);
    let mut f = wire::build_frame(smac, dmac, u32::from(sip), u32::from(dip), proto, a.sport, a.dport, inner_size);
    let payload = wire::ETH_LEN + 20 + l4_len;
    f[payload..payload + 4].copy_from_slice(MAGIC);
    let ip = wire::ipv4(&f, wire::ETH_LEN).ok_or("template: bad IPv4")?;
    wire::fix_l4_checksum(&mut f, wire::ETH_LEN, &ip);
    let mut off = 0;
    if let Some(vni) = a.vxlan {
        let t = wire::VxlanTemplate::new(
            mac(&a.outer_src_mac)?,
            mac(&a.outer_dst_mac)?,
            u32::from(a.vtep_src),
            u32::from(a.vtep_dst),
            4789,
            vni,
        );
        let mut o = vec![0u8; wire::VXLAN_ENCAP_LEN];
        t.write(&mut o, f.len(), 49152);
        o.extend_from_slice(&f);
        f = o;
        off = wire::VXLAN_ENCAP_LEN;
    }
    let l4 = off + wire::ETH_LEN + 20;
    let csum = l4 + if proto == 6 { 16 } else { 6 };
    let layout = GenLayout {
        flows: a.flows.max(1),
        base_port: a.sport,
        l4_off: l4 as u16,
        csum_off: csum as u16,
        stamp_off: (off + payload + 4) as u16,
    };
    Ok((f, layout))
}

/// Paces sends: how many frames may go now.
/// A token bucket: frames become due at `rate`; after a stall (the
/// generator descheduled) at most 10 ms worth are owed, so that catching
/// up never bursts more than a receive ring rides out.
struct Pacer {
    rate: f64,
    t0: Instant,
    sent: u64,
    /// Frames no longer owed after stalls.
    forgiven: u64,
}

impl Pacer {
    fn allow(&mut self, want: u64) -> u64 {
        if self.rate <= 0.0 {
            return want;
        }
        let due = ((self.t0.elapsed().as_secs_f64() * self.rate) as u64).saturating_sub(self.forgiven);
        let cap = ((self.rate * 0.01) as u64).max(64);
        let owed = due.saturating_sub(self.sent);
        if owed > cap {
            self.forgiven += owed - cap;
        }
        owed.min(cap).min(want)
    }
}

/// A way of sending frames, as opened by [`open_sender`].
enum Sender {
    Xdp(XdpGenerator),
    Xsk(Box<XskPort>),
    Packet(PacketSocket),
}

impl Sender {
    /// The name reports use (`mode` in the JSON).
    fn name(&self) -> &'static str {
        match self {
            Sender::Xdp(_) => "xdp-live-frames",
            Sender::Xsk(_) => "af_xdp-tx",
            Sender::Packet(_) => "af_packet",
        }
    }
}

/// Opens one mode on `iface`; for XDP live frames, also checks that the
/// kernel runs the program in that mode (a dry run that sends nothing).
fn open_mode(mode: Mode, iface: &str, frame: &[u8], layout: GenLayout) -> Result<Sender, String> {
    let e = |e: fastpath::port::xsk::XskError| e.to_string();
    match mode {
        Mode::Xdp => {
            let mut g = XdpGenerator::new(iface, frame.to_vec(), layout).map_err(e)?;
            g.probe().map_err(e)?;
            Ok(Sender::Xdp(g))
        }
        Mode::Xsk => XskPort::open(&XskConfig::new(iface)).map(|p| Sender::Xsk(Box::new(p))).map_err(e),
        Mode::Packet => PacketSocket::open(iface).map(Sender::Packet).map_err(e),
        Mode::Auto => Err("auto is not a mode of its own".into()),
    }
}

/// The modes `auto` tries, fastest first.
const AUTO_ORDER: [Mode; 3] = [Mode::Xdp, Mode::Xsk, Mode::Packet];

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Auto => "auto",
        Mode::Xdp => "xdp",
        Mode::Xsk => "xsk",
        Mode::Packet => "packet",
    }
}

fn mode_what(m: Mode) -> &'static str {
    match m {
        Mode::Auto => "the first that works",
        Mode::Xdp => "XDP live frames",
        Mode::Xsk => "AF_XDP TX",
        Mode::Packet => "AF_PACKET",
    }
}

/// Every mode's verdict on `iface` (each opened and closed again).
fn probe_modes(iface: &str, frame: &[u8], layout: GenLayout) -> Vec<(Mode, Result<(), String>)> {
    AUTO_ORDER.iter().map(|&m| (m, open_mode(m, iface, frame, layout).map(drop))).collect()
}

/// The sender for `mode`: `auto` takes the first of [`AUTO_ORDER`] that
/// opens and says on stderr why it passed over the others; an explicit
/// mode that fails is one line naming the refusal and the modes that work.
fn open_sender(mode: Mode, iface: &str, frame: &[u8], layout: GenLayout) -> Result<Sender, String> {
    if mode == Mode::Auto {
        let mut refused = Vec::new();
        for m in AUTO_ORDER {
            match open_mode(m, iface, frame, layout) {
                Ok(s) => {
                    for (r, e) in &refused {
                        eprintln!(
                            "pktgen: {iface}: {} unavailable ({e}); --mode auto uses {}",
                            mode_what(*r),
                            s.name()
                        );
                    }
                    return Ok(s);
                }
                Err(e) => refused.push((m, e)),
            }
        }
        let why: Vec<String> = refused.iter().map(|(m, e)| format!("{}: {e}", mode_name(*m))).collect();
        return Err(format!("pktgen: {iface}: no generator mode works here ({})", why.join("; ")));
    }
    open_mode(mode, iface, frame, layout).map_err(|e| {
        let working: Vec<String> = probe_modes(iface, frame, layout)
            .into_iter()
            .filter(|(m, r)| *m != mode && r.is_ok())
            .map(|(m, _)| format!("{} ({})", mode_name(m), mode_what(m)))
            .collect();
        let working = if working.is_empty() { "none".to_string() } else { working.join(", ") };
        format!(
            "pktgen: {iface}: {} refused: {e}; modes that work here: {working} (--mode auto picks the first)",
            mode_what(mode)
        )
    })
}

/// `pktgen probe`: which modes work on an interface, and what `auto` picks.
fn probe(a: ProbeArgs) -> Result<ExitCode, String> {
    let Cmd::Gen(g) = Cli::parse_from(["pktgen", "gen", "--iface", &a.iface]).cmd else {
        return Err("pktgen: probe: no default template".into());
    };
    let (frame, layout) = template(&g)?;
    let verdicts = probe_modes(&a.iface, &frame, layout);
    let auto = verdicts.iter().find(|(_, r)| r.is_ok()).map(|(m, _)| mode_name(*m));
    if a.json {
        let mut o = serde_json::Map::new();
        for (m, r) in &verdicts {
            let v = match r {
                Ok(()) => json!({"ok": true}),
                Err(e) => json!({"ok": false, "error": e}),
            };
            o.insert(mode_name(*m).into(), v);
        }
        o.insert("auto".into(), json!(auto));
        println!("{}", serde_json::Value::Object(o));
    } else {
        for (m, r) in &verdicts {
            match r {
                Ok(()) => println!("{:<7} {:<16} works", mode_name(*m), mode_what(*m)),
                Err(e) => println!("{:<7} {:<16} refused: {e}", mode_name(*m), mode_what(*m)),
            }
        }
        println!("auto    picks {}", auto.unwrap_or("nothing"));
    }
    Ok(if auto.is_some() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn gen(a: GenArgs) -> Result<ExitCode, String> {
    let (frame, layout) = template(&a)?;
    let limit = a.count.unwrap_or(u64::MAX);
    let end = Duration::from_secs_f64(a.seconds);
    // Opened before the clock starts, so that the pacer does not owe a
    // burst for the set-up time.
    let mut sender = open_sender(a.mode, &a.iface, &frame, layout)?;
    let mode = sender.name();
    eprintln!(
        "pktgen: {} on {} ({} bytes, {} flow(s){})",
        mode,
        a.iface,
        frame.len(),
        layout.flows,
        if matches!(sender, Sender::Xdp(_)) { "; the peer needs a native XDP program" } else { "" }
    );
    let t0 = Instant::now();
    let mut pacer = Pacer { rate: a.rate, t0, sent: 0, forgiven: 0 };
    let mut last = (t0, 0u64);
    let progress = |sent: u64, last: &mut (Instant, u64)| {
        if last.0.elapsed() >= Duration::from_secs(1) {
            let dt = last.0.elapsed().as_secs_f64();
            eprintln!("pktgen: {:.3} Mpps ({} sent)", (sent - last.1) as f64 / dt / 1e6, sent);
            *last = (Instant::now(), sent);
        }
    };
    match &mut sender {
        Sender::Xdp(g) => {
            let base = g.generated();
            // Each BPF_PROG_RUN sets up a page pool and patches kernel
            // text: runs of about 50 ms keep that off the rate.
            let mut chunk = 4096u64;
            while pacer.sent < limit && t0.elapsed() < end {
                let n = pacer.allow(chunk.min(limit - pacer.sent));
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                let t = Instant::now();
                g.run(n as u32).map_err(|e| format!("pktgen: {e}"))?;
                let dt = t.elapsed().as_secs_f64().max(1e-6);
                chunk = ((n as f64 / dt * 0.05) as u64).clamp(1024, 1 << 22);
                pacer.sent += n;
                progress(pacer.sent, &mut last);
            }
            pacer.sent = g.generated() - base;
        }
        Sender::Packet(sock) => {
            let mut bufs: Vec<Vec<u8>> = vec![frame.clone(); PACKET_BATCH];
            let mut seq = 0u64;
            while pacer.sent < limit && t0.elapsed() < end {
                let n = pacer.allow((PACKET_BATCH as u64).min(limit - pacer.sent)) as usize;
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                let now = monotonic_ns();
                for (i, b) in bufs[..n].iter_mut().enumerate() {
                    stamp(b, &layout, seq + i as u64, now);
                }
                let refs: [&[u8]; PACKET_BATCH] = std::array::from_fn(|i| bufs[i].as_slice());
                let sent = sock.send(&refs[..n]).map_err(|e| format!("pktgen: {e}"))?;
                if sent == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
                // Frames the kernel did not take are stamped again next
                // round with the same sequence numbers.
                seq += sent as u64;
                pacer.sent += sent as u64;
                progress(pacer.sent, &mut last);
            }
        }
        Sender::Xsk(port) => {
            let mut pool = FramePool::new(4096);
            let mut seq = 0u64;
            let mut ids = Vec::with_capacity(64);
            while pacer.sent < limit && t0.elapsed() < end {
                let room = port.tx_room() as u64;
                let n = pacer.allow(64.min(limit - pacer.sent).min(room));
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                    port.tx(&mut pool, &[]);
                    continue;
                }
                let now = monotonic_ns();
                ids.clear();
                for _ in 0..n {
                    let Some(id) = pool.alloc() else { break };
                    pool.fill(id, &frame);
                    stamp(pool.data_mut(id), &layout, seq, now);
                    seq += 1;
                    ids.push(id);
                }
                let before = port.counters().tx_packets;
                port.tx(&mut pool, &ids);
                pacer.sent += port.counters().tx_packets - before;
                // Keep receiving so the socket's RX ring never fills.
                discard_rx(port, &mut pool);
                progress(pacer.sent, &mut last);
            }
            // What is still in the TX ring leaves on later kicks: until
            // every frame completed (a second at most), and what never did
            // is not counted as sent.
            let t1 = Instant::now();
            while port.umem_frames().1 > 0 && t1.elapsed() < Duration::from_secs(1) {
                // A poll: reclaims completions, kicks what the ring holds.
                discard_rx(port, &mut pool);
                std::thread::sleep(Duration::from_micros(100));
            }
            pacer.sent -= port.umem_frames().1 as u64;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let mpps = pacer.sent as f64 / secs / 1e6;
    if a.json {
        println!(
            "{}",
            json!({"mode": mode, "sent": pacer.sent, "seconds": secs, "mpps": mpps, "frame_size": frame.len()})
        );
    } else {
        println!("pktgen: sent {} frames in {secs:.3} s: {mpps:.3} Mpps ({mode})", pacer.sent);
    }
    Ok(ExitCode::SUCCESS)
}

/// Stamps a frame in userspace as the XDP program does (AF_XDP mode).
fn stamp(f: &mut [u8], l: &GenLayout, seq: u64, now: u64) {
    let port = l.base_port.wrapping_add((seq % l.flows.max(1) as u64) as u16);
    let (l4, st) = (l.l4_off as usize, l.stamp_off as usize);
    f[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
    f[st..st + 8].copy_from_slice(&seq.to_be_bytes());
    f[st + 8..st + 16].copy_from_slice(&now.to_be_bytes());
    let off = l4 - 20;
    if let Some(ip) = wire::ipv4(f, off) {
        wire::fix_l4_checksum(f, off, &ip);
    }
}

/// Finds the stamp in a received frame: (sequence, send time).
fn read_stamp(f: &[u8]) -> Option<(u64, u64)> {
    let (_, _, t, mut off) = wire::ethernet(f)?;
    if t != wire::ETH_TYPE_IPV4 {
        return None;
    }
    let mut ip = wire::ipv4(f, off)?;
    let mut l4 = off + ip.ihl;
    if ip.proto == 17 && wire::l4_ports(f, l4).is_some_and(|(_, d)| d == 4789) {
        off = l4 + 16 + wire::ETH_LEN;
        ip = wire::ipv4(f, off)?;
        l4 = off + ip.ihl;
    }
    let p = l4 + if ip.proto == 6 { 20 } else { 8 };
    let s = f.get(p..p + 20)?;
    if &s[..4] != MAGIC {
        return None;
    }
    let be = |b: &[u8]| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    Some((be(&s[4..12]), be(&s[12..20])))
}

/// Sequence numbers seen, over a sliding window of 2^20: tells new,
/// reordered (older than the highest seen, first time) and duplicate.
struct Seen {
    bits: Vec<u64>,
    max: Option<u64>,
}

#[derive(PartialEq, Eq)]
enum Arrival {
    New,
    Reordered,
    Duplicate,
}

impl Seen {
    const W: u64 = 1 << 20;

    fn new() -> Seen {
        Seen { bits: vec![0; (Self::W / 64) as usize], max: None }
    }

    fn bit(&mut self, seq: u64, set: bool) -> bool {
        let i = (seq % Self::W) as usize;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let was = self.bits[w] & b != 0;
        if set {
            self.bits[w] |= b;
        } else {
            self.bits[w] &= !b;
        }
        was
    }

    fn insert(&mut self, seq: u64) -> Arrival {
        match self.max {
            Some(m) if seq <= m => {
                if m - seq >= Self::W {
                    Arrival::Reordered
                } else if self.bit(seq, true) {
                    Arrival::Duplicate
                } else {
                    Arrival::Reordered
                }
            }
            Some(m) => {
                if seq - m >= Self::W {
                    self.bits.fill(0);
                } else {
                    for s in m + 1..seq {
                        self.bit(s, false);
                    }
                }
                self.bit(seq, true);
                self.max = Some(seq);
                Arrival::New
            }
            None => {
                self.bit(seq, true);
                self.max = Some(seq);
                Arrival::New
            }
        }
    }
}

/// Latency histogram: 1 µs buckets to 10 ms, then one overflow bucket.
struct Hist {
    b: Vec<u64>,
    n: u64,
}

impl Hist {
    fn add(&mut self, ns: u64) {
        let i = ((ns / 1000) as usize).min(self.b.len() - 1);
        self.b[i] += 1;
        self.n += 1;
    }
    fn pct(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let want = ((self.n as f64) * p).ceil() as u64;
        let mut acc = 0;
        for (i, &c) in self.b.iter().enumerate() {
            acc += c;
            if acc >= want {
                return i as f64;
            }
        }
        (self.b.len() - 1) as f64
    }
}

/// Receives what the port holds and drops it (a poll of an AF_XDP port
/// also takes back completed TX frames and kicks those left in its ring).
fn discard_rx(port: &mut XskPort, pool: &mut FramePool) {
    let mut rx = [0u32; 32];
    let got = port.rx(pool, &mut rx);
    for &f in &rx[..got] {
        pool.free(f);
    }
}

fn sink(a: SinkArgs) -> Result<ExitCode, String> {
    let mut port = XskPort::open(&XskConfig::new(&a.iface)).map_err(|e| format!("pktgen: {e}"))?;
    let mut pool = FramePool::new(4096);
    if a.ready {
        println!("ready");
    }
    eprintln!("pktgen: sink on {} (AF_XDP)", a.iface);
    let t0 = Instant::now();
    let (mut n, mut bytes, mut stamped, mut reordered, mut dups) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut first_seq, mut max_seq): (Option<u64>, u64) = (None, 0);
    let mut seen = Seen::new();
    let mut unique = 0u64;
    let mut hist = Hist { b: vec![0; 10_001], n: 0 };
    let mut first: Option<Instant> = None;
    let mut last_rx = Instant::now();
    let mut tick = (Instant::now(), 0u64);
    let mut ids = [0u32; 256];
    loop {
        let got = port.rx(&mut pool, &mut ids);
        if got > 0 {
            let now = monotonic_ns();
            last_rx = Instant::now();
            first.get_or_insert(last_rx);
            for &f in &ids[..got] {
                let d = pool.data(f);
                n += 1;
                bytes += d.len() as u64;
                if let Some((seq, ts)) = read_stamp(d) {
                    stamped += 1;
                    match seen.insert(seq) {
                        Arrival::Duplicate => dups += 1,
                        a => {
                            unique += 1;
                            reordered += u64::from(a == Arrival::Reordered);
                            max_seq = max_seq.max(seq);
                            first_seq = Some(first_seq.map_or(seq, |s: u64| s.min(seq)));
                            hist.add(now.saturating_sub(ts));
                        }
                    }
                }
                pool.free(f);
            }
        } else {
            // Idle: a short nap (the RX ring holds 2,048 frames, ~2 ms at
            // 1 Mpps).
            std::thread::sleep(Duration::from_micros(20));
        }
        if tick.0.elapsed() >= Duration::from_secs(1) {
            let dt = tick.0.elapsed().as_secs_f64();
            eprintln!("pktgen: sink {:.3} Mpps ({n} received)", (n - tick.1) as f64 / dt / 1e6);
            tick = (Instant::now(), n);
        }
        if t0.elapsed().as_secs_f64() >= a.seconds {
            break;
        }
        if first.is_some() && last_rx.elapsed().as_secs_f64() >= a.idle {
            break;
        }
    }
    let secs = first.map_or(0.0, |f| (last_rx - f).as_secs_f64()).max(1e-9);
    let expected = first_seq.map_or(0, |s| max_seq - s + 1);
    let lost = expected.saturating_sub(unique);
    let (p50, p99, p999) = (hist.pct(0.50), hist.pct(0.99), hist.pct(0.999));
    // Frames that reached this socket and that the kernel dropped because
    // the sink was late (its RX ring full): a loss of the sink's, not of
    // whatever forwarded them.
    let k = port.kernel_counters().unwrap_or_default();
    if a.json {
        println!(
            "{}",
            json!({"received": n, "bytes": bytes, "stamped": stamped, "seconds": secs, "mpps": n as f64 / secs / 1e6,
                   "lost": lost, "reordered": reordered, "duplicates": dups,
                   "latency_us": {"p50": p50, "p99": p99, "p999": p999},
                   "first_seq": first_seq, "max_seq": max_seq,
                   "sink_dropped": {"rx_ring_full": k.rx_ring_full, "rx_dropped": k.rx_dropped,
                                    "rx_fill_ring_empty": k.rx_fill_ring_empty}})
        );
    } else {
        println!(
            "pktgen: sink received {n} frames ({bytes} bytes) in {secs:.3} s: {:.3} Mpps; lost {lost}, reordered {reordered}, \
             duplicates {dups}; latency p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs; the sink's own socket dropped \
             {} (RX ring full) and {} (other)",
            n as f64 / secs / 1e6,
            k.rx_ring_full,
            k.rx_dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn fwd(a: FwdArgs) -> Result<ExitCode, String> {
    let mut rx = XskPort::open(&XskConfig::new(&a.input)).map_err(|e| format!("pktgen: {e}"))?;
    let mut tx = XskPort::open(&XskConfig::new(&a.output)).map_err(|e| format!("pktgen: {e}"))?;
    if let Some(c) = a.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            eprintln!("pktgen: could not pin to core {c}");
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let mut pool = FramePool::new(4096);
    let mut ids = [0u32; 32];
    let t0 = Instant::now();
    eprintln!("pktgen: forwarding {} → {} (bare AF_XDP loop)", a.input, a.output);
    while !stop.load(std::sync::atomic::Ordering::Relaxed)
        && (a.seconds == 0.0 || t0.elapsed().as_secs_f64() < a.seconds)
    {
        let n = rx.rx(&mut pool, &mut ids);
        tx.tx(&mut pool, &ids[..n]);
        // Frames sent back by the peer of the output port are dropped.
        discard_rx(&mut tx, &mut pool);
    }
    let (r, t) = (rx.counters(), tx.counters());
    println!(
        "{}",
        json!({"rx_packets": r.rx_packets, "tx_packets": t.tx_packets, "seconds": t0.elapsed().as_secs_f64(),
               "in": rx.detail(), "out": tx.detail()})
    );
    Ok(ExitCode::SUCCESS)
}

fn pass(a: PassArgs) -> Result<ExitCode, String> {
    // The uplink program with no VTEP redirects nothing: every frame passes.
    let p = fastpath::port::uplink::UplinkProgram::attach(
        &a.iface,
        fastpath::port::xsk::XdpMode::Native,
        0,
        0,
        fastpath::port::uplink::Leftover::Refuse,
    )
    .map_err(|e| format!("pktgen: {e}"))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    println!("ready");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(p);
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let r = match Cli::parse().cmd {
        Cmd::Gen(a) => gen(*a),
        Cmd::Sink(a) => sink(a),
        Cmd::Fwd(a) => fwd(a),
        Cmd::Pass(a) => pass(a),
        Cmd::Probe(a) => probe(a),
    };
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_seen_tells_new_reordered_duplicate() {
        let mut s = Seen::new();
        assert!(s.insert(10) == Arrival::New);
        assert!(s.insert(12) == Arrival::New);
        assert!(s.insert(11) == Arrival::Reordered);
        assert!(s.insert(11) == Arrival::Duplicate);
        assert!(s.insert(12) == Arrival::Duplicate);
        assert!(s.insert(10 + Seen::W + 5) == Arrival::New);
        // The window moved on: 12's slot was cleared on the way.
        assert!(s.insert(12 + Seen::W) == Arrival::Reordered);
    }

    #[test]
    fn test_stamp_round_trips_with_valid_checksums() {
        for (proto, vxlan) in [(Proto::Udp, None), (Proto::Tcp, None), (Proto::Udp, Some(11235))] {
            let Cmd::Gen(a) = Cli::parse_from(["pktgen", "gen", "--iface", "lo", "--flows", "8"]).cmd else {
                unreachable!()
            };
            let a = GenArgs { proto, vxlan, ..*a };
            let (mut f, l) = template(&a).unwrap();
            stamp(&mut f, &l, 12345, 987_654_321);
            assert_eq!(read_stamp(&f), Some((12345, 987_654_321)));
            let off = l.l4_off as usize - 20;
            let ip = wire::ipv4(&f, off).unwrap();
            let mut g = f.clone();
            wire::fix_l4_checksum(&mut g, off, &ip);
            assert_eq!(f, g, "checksum after stamping ({proto:?}, {vxlan:?})");
            assert_eq!(wire::l4_ports(&f, l.l4_off as usize).unwrap().0, 1024 + (12345 % 8) as u16);
        }
    }
}
