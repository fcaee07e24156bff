//! The tracker's vocabulary: its configuration ([`CtConfig`], [`Timeouts`]),
//! what a `ct` action asks of it ([`CtRequest`], [`NatRequest`],
//! [`NatRange`]), what it answers ([`CtResult`], the `ct_state` bits,
//! [`CtTuple`]) and its counters ([`CtStats`]). Plain values: no locks, no
//! allocation.

use super::key::Key;

/// `ct_state` bit: the start of a new connection (`+new`).
pub const CS_NEW: u8 = 0x01;
/// `ct_state` bit: part of an existing connection (`+est`).
pub const CS_ESTABLISHED: u8 = 0x02;
/// `ct_state` bit: related to an existing connection (`+rel`: an ICMP error).
pub const CS_RELATED: u8 = 0x04;
/// `ct_state` bit: in the reply direction (`+rpl`).
pub const CS_REPLY_DIR: u8 = 0x08;
/// `ct_state` bit: could not be tracked (`+inv`).
pub const CS_INVALID: u8 = 0x10;
/// `ct_state` bit: went through the tracker (`+trk`).
pub const CS_TRACKED: u8 = 0x20;
/// `ct_state` bit: its source was translated (`+snat`).
pub const CS_SRC_NAT: u8 = 0x40;
/// `ct_state` bit: its destination was translated (`+dnat`).
pub const CS_DST_NAT: u8 = 0x80;

/// Timeouts in seconds, named as OVS's timeout policy attributes
/// (`CT_DPIF_TP_ATTR_*`); the defaults are OVS's (`conntrack-tp.c`,
/// `ct_dpif_netdev_tp_def`). As in OVS's userspace tracker, protocols other
/// than TCP and ICMP (UDP among them) use the `udp_*` values, and the TCP
/// values apply to the tracker's timeout classes as OVS maps them
/// (`tm_to_ct_dpif_tp`): a connection opening (one side not yet
/// established) gets `tcp_syn_recv`, one side closing `tcp_fin_wait`, both
/// closing `tcp_time_wait`, both closed (or reset) `tcp_close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// The first packet of a TCP connection (and a repeated SYN): 30 s.
    pub tcp_syn_sent: u32,
    /// A TCP connection opening: 30 s.
    pub tcp_syn_recv: u32,
    /// Both sides established: 86 400 s (a day).
    pub tcp_established: u32,
    /// One side closing: 900 s.
    pub tcp_fin_wait: u32,
    /// Both sides closing: 45 s.
    pub tcp_time_wait: u32,
    /// Both sides closed, or reset: 30 s.
    pub tcp_close: u32,
    /// Other protocols (UDP included), the first packet: 60 s.
    pub udp_first: u32,
    /// Several packets, one direction only: 60 s.
    pub udp_single: u32,
    /// Packets both ways: 30 s.
    pub udp_multiple: u32,
    /// ICMP, the first packet: 60 s.
    pub icmp_first: u32,
    /// ICMP, a reply seen: 30 s.
    pub icmp_reply: u32,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            tcp_syn_sent: 30,
            tcp_syn_recv: 30,
            tcp_established: 24 * 60 * 60,
            tcp_fin_wait: 15 * 60,
            tcp_time_wait: 45,
            tcp_close: 30,
            udp_first: 60,
            udp_single: 60,
            udp_multiple: 30,
            icmp_first: 60,
            icmp_reply: 30,
        }
    }
}

impl Timeouts {
    /// The names of the timeouts, as OVS's timeout policies spell them
    /// (`ovs-vsctl add-zone-tp ... tcp_established=N`).
    pub const NAMES: [&'static str; 11] = [
        "tcp_syn_sent",
        "tcp_syn_recv",
        "tcp_established",
        "tcp_fin_wait",
        "tcp_time_wait",
        "tcp_close",
        "udp_first",
        "udp_single",
        "udp_multiple",
        "icmp_first",
        "icmp_reply",
    ];

    fn slot(&mut self, name: &str) -> Option<&mut u32> {
        Some(match name {
            "tcp_syn_sent" => &mut self.tcp_syn_sent,
            "tcp_syn_recv" => &mut self.tcp_syn_recv,
            "tcp_established" => &mut self.tcp_established,
            "tcp_fin_wait" => &mut self.tcp_fin_wait,
            "tcp_time_wait" => &mut self.tcp_time_wait,
            "tcp_close" => &mut self.tcp_close,
            "udp_first" => &mut self.udp_first,
            "udp_single" => &mut self.udp_single,
            "udp_multiple" => &mut self.udp_multiple,
            "icmp_first" => &mut self.icmp_first,
            "icmp_reply" => &mut self.icmp_reply,
            _ => return None,
        })
    }

    /// Sets one timeout from `NAME=SECONDS` (a name of [`Timeouts::NAMES`];
    /// 1 s to 10 years); the error names the wrong part.
    pub fn set(&mut self, setting: &str) -> Result<(), String> {
        let (name, v) = setting.split_once('=').ok_or_else(|| format!("`{setting}`: expected NAME=SECONDS"))?;
        let secs: u32 = v.trim().parse().map_err(|_| format!("`{setting}`: `{v}` is not a number of seconds"))?;
        if !(1..=10 * 365 * 86_400).contains(&secs) {
            return Err(format!("`{setting}`: {secs} s is out of range (1 s to 10 years)"));
        }
        let slot = self
            .slot(name.trim())
            .ok_or_else(|| format!("`{setting}`: unknown timeout `{name}` (one of {})", Timeouts::NAMES.join(", ")))?;
        *slot = secs;
        Ok(())
    }
}

/// OVS's default connection limit (`DEFAULT_N_CONN_LIMIT`).
pub const DEFAULT_MAX_CONNS: usize = 3_000_000;

/// IPv4 reassembly before tracking ([`super::ipf`]), with OVS's defaults
/// (`ipf_init`): on, fragments other than the last at least 1,200 bytes,
/// at most 1,000 fragments held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpfConfig {
    /// Reassemble IPv4 fragments (`dpctl/ipf-set-enabled v4`); off, every
    /// fragment is `+trk+inv`.
    pub enabled: bool,
    /// The smallest fragment but the last, bytes of IPv4
    /// (`dpctl/ipf-set-min-frag v4`; at least 400).
    pub min_frag_size: u32,
    /// Fragments held at most (`dpctl/ipf-set-max-nfrags`; at most 5,000).
    pub max_frags: u32,
}

impl Default for IpfConfig {
    fn default() -> IpfConfig {
        IpfConfig { enabled: true, min_frag_size: 1200, max_frags: 1000 }
    }
}

/// The reassembler's state and counters, as `ovs-appctl
/// dpctl/ipf-get-status` shows them (IPv4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpfStatus {
    /// Reassembly on.
    pub v4_enabled: bool,
    /// Fragments held at most.
    pub max_frags: u32,
    /// Fragments held now.
    pub n_frags: usize,
    /// The smallest fragment but the last.
    pub min_frag_size: u32,
    /// Fragments taken into a list.
    pub n_accepted: u64,
    /// Fragments sent on after their list was reassembled and tracked.
    pub n_completed: u64,
    /// Fragments sent on (`+inv`) after their list expired.
    pub n_expired: u64,
    /// Fragments refused as too small (`+inv`).
    pub n_too_small: u64,
    /// Fragments refused as overlapping a held one (`+inv`).
    pub n_overlapped: u64,
    /// Fragments dropped with a list left unsent too long.
    pub n_purged: u64,
}

/// How a [`super::tracker::Conntrack`] is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtConfig {
    /// Connections tracked at most (OVS: 3 000 000); a commit beyond it
    /// creates nothing and is counted in [`CtStats::n_full`]. The hash
    /// table's bucket array is sized from it once (the next power of two,
    /// 8 bytes a bucket), so it also bounds the table's memory.
    pub max_conns: usize,
    /// Timeouts in seconds.
    pub timeouts: Timeouts,
    /// Check TCP sequence numbers and windows (OVS's `tcp_seq_chk`, on by
    /// default); off, every segment of a known connection is in window.
    pub tcp_seq_check: bool,
    /// Verify the IPv4 header and TCP/UDP/ICMP checksums of every packet
    /// that is looked up (OVS does when the NIC has not, which is always for
    /// AF_XDP and dummy ports): a bad checksum is `+inv`.
    pub validate_checksums: bool,
    /// IPv4 reassembly.
    pub ipf: IpfConfig,
}

impl Default for CtConfig {
    fn default() -> CtConfig {
        CtConfig {
            max_conns: DEFAULT_MAX_CONNS,
            timeouts: Timeouts::default(),
            tcp_seq_check: true,
            validate_checksums: true,
            ipf: IpfConfig::default(),
        }
    }
}

/// An address and port range for NAT, in host order, as OpenFlow's
/// `nat(src=ADDR[-ADDR][:PORT[-PORT]])` gives it. `addr_min` 0 (`0.0.0.0`,
/// or no address) keeps the packet's address and only remaps the port on a
/// collision; `port_min` 0 means no port range: the packet's port is kept
/// unless it collides, then one is picked from its class (1-511, 600-1023 or
/// 1024-65535), as OVS does. A max below its min is taken as the min.
/// `random`, `hash` and `persistent` are accepted and, as in OVS's userspace
/// datapath, change nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NatRange {
    /// Lowest address.
    pub addr_min: u32,
    /// Highest address (≤ `addr_min`: just `addr_min`).
    pub addr_max: u32,
    /// Lowest port (0: no port range).
    pub port_min: u16,
    /// Highest port (≤ `port_min`: just `port_min`).
    pub port_max: u16,
    /// `random` (ignored, as by OVS's userspace datapath).
    pub random: bool,
    /// `hash` (ignored, likewise).
    pub hash: bool,
    /// `persistent` (ignored, likewise).
    pub persistent: bool,
}

/// The `nat` clause of a `ct` action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatRequest {
    /// Plain `nat`: apply the connection's existing translation (either
    /// direction); a new connection committed with it is not translated.
    Reverse,
    /// `nat(src=...)`: a new connection's source is translated into the
    /// range; an existing connection's translation is applied.
    Src(NatRange),
    /// `nat(dst=...)`: likewise for the destination.
    Dst(NatRange),
}

/// What one `ct` action asks of the tracker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtRequest {
    /// Zone (`zone=`).
    pub zone: u16,
    /// `commit`: a new connection is created.
    pub commit: bool,
    /// `force`: a connection found in the reply direction is ended and a new
    /// one committed in this packet's direction (implies `commit`, as in
    /// OVS, when it is set by the caller).
    pub force: bool,
    /// `nat`.
    pub nat: Option<NatRequest>,
    /// `exec(set_field:V/M->ct_mark)`: (value, mask), applied to the
    /// connection found or created.
    pub set_mark: Option<(u32, u32)>,
    /// `exec(set_field:V/M->ct_label)`: (value, mask).
    pub set_label: Option<(u128, u128)>,
    /// The packet came from the host (tun0), whose own connection tracker
    /// may have translated it (kube-proxy's service DNAT): a packet that
    /// would start a connection first has the host's translation looked up
    /// ([`CtResult::host_query`]), and a connection committed for it is
    /// adopted with that translation ([`super::tracker::Conntrack::adopt`]).
    pub from_host: bool,
}

/// A connection's original-direction tuple as OVS reports it to the flow
/// (`ct_nw_src`, `ct_nw_dst`, `ct_nw_proto`, `ct_tp_src`, `ct_tp_dst`); for
/// ICMP the ports are the ICMP type and code, as in OVS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtTuple {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// IP protocol.
    pub proto: u8,
    /// Source port (ICMP: type).
    pub sport: u16,
    /// Destination port (ICMP: code).
    pub dport: u16,
}

impl CtTuple {
    /// The tuple OVS reports for a connection key (`write_ct_md`).
    pub(crate) fn of(k: &Key) -> CtTuple {
        let (sport, dport) =
            if k.proto == super::key::IPPROTO_ICMP { (k.icmp_type as u16, 0) } else { (k.sport, k.dport) };
        CtTuple { src: k.src, dst: k.dst, proto: k.proto, sport, dport }
    }
}

/// The connection a packet was last matched to, remembered with the packet
/// as OVS keeps `md.conn`: a later `ct` in the same zone without `force`
/// neither looks it up again nor runs its state machine a second time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cached {
    /// The connection's original key.
    pub key: Key,
    /// Its table bucket (found again without hashing the key).
    pub bucket: u32,
    /// The packet was in the reply direction.
    pub reply: bool,
    /// The packet was an ICMP error related to it.
    pub related: bool,
}

/// What the tracker tells the pipeline about a packet: the `ct_*` fields
/// of OVS's packet metadata after a `ct` action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtResult {
    /// `ct_state`: the `CS_*` bits (`CS_TRACKED` always set).
    pub state: u8,
    /// `ct_zone`.
    pub zone: u16,
    /// `ct_mark` of the connection (0 if none).
    pub mark: u32,
    /// `ct_label` of the connection (0 if none).
    pub label: u128,
    /// The original-direction tuple (`ct_nw_*`, `ct_tp_*`): the
    /// connection's, or the packet's own when no connection was found or
    /// created; `None` when the packet could not be parsed.
    pub orig: Option<CtTuple>,
    /// OVS's `md.conn`: the connection to reuse on a later `ct` of this
    /// packet (see [`CtResult::forget_conn`]).
    pub(crate) cached: Option<Cached>,
    /// Set by a `ct` with [`CtRequest::from_host`] for a packet of no known
    /// connection whose host translation was not looked up yet: the packet
    /// should wait for that lookup ([`super::tracker::Conntrack::adopt`])
    /// and run its pass again with [`CtResult::host_checked`]. Nothing else
    /// of the result is meaningful then.
    pub host_query: bool,
    /// The host's translation was looked up for this packet (do not ask
    /// again).
    pub host_checked: bool,
}

impl CtResult {
    /// No verdict: a packet's first pass, before any `ct` (the default).
    pub const NONE: CtResult = CtResult {
        state: 0,
        zone: 0,
        mark: 0,
        label: 0,
        orig: None,
        cached: None,
        host_query: false,
        host_checked: false,
    };

    /// Forgets the connection remembered with the packet, as OVS does when
    /// an action rewrites a header the tracker keys on (every `packet_set_*`
    /// clears `md.conn`): call it after such a rewrite, before a later `ct`.
    pub fn forget_conn(&mut self) {
        self.cached = None;
    }

    /// Whether a connection is remembered with the packet.
    pub fn has_conn(&self) -> bool {
        self.cached.is_some()
    }
}

/// The tracker's counters ([`super::tracker::Conntrack::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtStats {
    /// Connections in the table now (expired ones not yet swept included).
    pub n_conns: usize,
    /// Connections created.
    pub n_created: u64,
    /// Connections removed by [`super::tracker::Conntrack::sweep`] (expired,
    /// ended by a new SYN on their tuple or by `force`).
    pub n_expired: u64,
    /// Connections removed by [`super::tracker::Conntrack::flush`].
    pub n_flushed: u64,
    /// Commits refused because the table was full (OVS's `conntrack_full`).
    pub n_full: u64,
    /// Packets marked `+inv`.
    pub n_invalid: u64,
    /// IPv4 fragments that reached the tracker (held for reassembly or
    /// refused; the reassembler's own counters are in
    /// [`super::tracker::Conntrack::ipf_status`]).
    pub n_fragments: u64,
    /// Commits refused because NAT found no free tuple.
    pub n_nat_exhausted: u64,
    /// Connections created with the host's translation
    /// ([`super::tracker::Conntrack::adopt`]).
    pub adopted: u64,
}
