//! The AF_XDP port (xsk-rs): one socket per (interface, queue), owned by
//! the poll loop that serves that queue, with its settings, counters and
//! errors, and the helpers the other kernel-facing modules share (an
//! interface's index, silencing libxdp). One of the few modules with
//! `unsafe` code: xsk-rs marks every ring and UMEM access unsafe because
//! the kernel shares those memories; each block says why it holds.
//!
//! Frames: the socket has its own UMEM. Received frames are copied into the
//! loop's pool frames (the pool keeps the headroom VXLAN push needs and is
//! what the rest of the datapath works on), and sent frames are copied into
//! free UMEM frames; on veth, the kernel's copy mode already copies every
//! frame, and a 64-byte copy is a few nanoseconds beside it. UMEM frames
//! are accounted: each is either ours (the free list), in the fill ring or
//! received, or in the TX ring until the completion ring gives it back; a
//! port that is dropped gives all of them back with its UMEM.
//!
//! Wakeups: with `need_wakeup` (the default) the loop makes a syscall only
//! when the kernel asks for one: `poll` when the fill ring needs it,
//! `sendto` after a TX batch when the TX ring needs it; both are counted.
#![allow(unsafe_code)]

use std::io::Write;
use std::num::NonZeroU32;

use xsk_rs::config::{BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::api::{Port, PortCounters};
use crate::pool::{FrameId, FramePool};

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic (SKB) mode.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode.
    Skb,
}

/// Settings of an AF_XDP port.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// Interface name.
    pub ifname: String,
    /// Queue id.
    pub queue: u32,
    /// XDP attach mode.
    pub mode: XdpMode,
    /// Ask for zero-copy (fails where the driver cannot: veth).
    pub zero_copy: bool,
    /// UMEM frames (a power of two, at least twice `ring`).
    pub frames: u32,
    /// Size of each ring (fill, completion, RX, TX; a power of two).
    pub ring: u32,
    /// Use `XDP_USE_NEED_WAKEUP`.
    pub need_wakeup: bool,
    /// Do not load libxdp's default program (the caller attached its own
    /// and inserts the socket into its XSKMAP).
    pub inhibit_prog_load: bool,
}

impl XskConfig {
    /// Defaults for `ifname` queue 0: auto mode, copy, 4096 frames, rings
    /// of 2048 (room to ride out a scheduling hiccup of the loop at a few
    /// Mpps), need_wakeup on.
    pub fn new(ifname: &str) -> XskConfig {
        XskConfig {
            ifname: ifname.into(),
            queue: 0,
            mode: XdpMode::Auto,
            zero_copy: false,
            frames: 4096,
            ring: 2048,
            need_wakeup: true,
            inhibit_prog_load: false,
        }
    }
}

/// Why a port could not be opened.
#[derive(Debug)]
pub struct XskError(pub String);

impl std::fmt::Display for XskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for XskError {}

/// Syscall and ring counters of an AF_XDP port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskCounters {
    /// `poll` calls made for the fill ring's need_wakeup.
    pub rx_wakeups: u64,
    /// `sendto` calls made for the TX ring.
    pub tx_wakeups: u64,
    /// Frames dropped on receive: no pool frame free.
    pub rx_no_buffer: u64,
    /// Frames dropped on send: no UMEM frame free or TX ring full.
    pub tx_ring_full: u64,
    /// Received frames longer than a pool frame holds (dropped).
    pub rx_too_long: u64,
    /// Nanoseconds spent in the wakeup system calls (two clock reads per
    /// call, never per packet).
    pub syscall_ns: u64,
}

/// The kernel's side of a socket's counters (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskKernelCounters {
    /// Frames dropped for another reason (a frame too long for the UMEM).
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full: userspace was late.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty (frames dropped or delayed).
    pub rx_fill_ring_empty: u64,
    /// Times the TX ring was found empty.
    pub tx_ring_empty: u64,
}

/// One AF_XDP socket on one queue, with its own UMEM.
pub struct XskPort {
    name: String,
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    rx: RxQueue,
    tx: TxQueue,
    /// UMEM frames owned by userspace (neither in a ring nor in flight).
    free: Vec<FrameDesc>,
    /// Scratch for ring transfers.
    scratch: Vec<FrameDesc>,
    n_frames: usize,
    /// Frames handed to the TX ring and not yet completed.
    in_tx: usize,
    zero_copy: bool,
    mode: &'static str,
    c: PortCounters,
    x: XskCounters,
}

/// Silences libxdp's and libbpf's own messages (sdnfwd logs what happened
/// itself, including the fallback libxdp takes without a bpffs).
pub fn quiet_libs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: setting a null print callback only stores the pointer;
        // the libraries check for null before printing.
        unsafe {
            libxdp_sys::libxdp_set_print(None);
            libbpf_set_print(None);
        }
    });
}

unsafe extern "C" {
    // libbpf (linked into libxdp-sys); its bindings do not export it.
    fn libbpf_set_print(f: Option<unsafe extern "C" fn()>) -> Option<unsafe extern "C" fn()>;
}

/// An interface's index, from sysfs.
pub fn ifindex(ifname: &str) -> Result<i32, XskError> {
    let p = format!("/sys/class/net/{ifname}/ifindex");
    let s = std::fs::read_to_string(&p).map_err(|e| XskError(format!("interface {ifname}: {e}")))?;
    s.trim().parse().map_err(|e| XskError(format!("{p}: {e}")))
}

fn qsize(n: u32) -> Result<QueueSize, XskError> {
    QueueSize::new(n).map_err(|e| XskError(format!("ring size {n}: {e}")))
}

impl XskPort {
    /// Opens the socket: creates the UMEM, binds (attaching libxdp's
    /// program unless inhibited) and fills the fill ring.
    pub fn open(cfg: &XskConfig) -> Result<XskPort, XskError> {
        quiet_libs();
        if cfg.frames < 2 * cfg.ring {
            return Err(XskError(format!("{}: {} UMEM frames for rings of {}", cfg.ifname, cfg.frames, cfg.ring)));
        }
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(2048).map_err(|e| XskError(e.to_string()))?)
            .fill_queue_size(qsize(cfg.ring)?)
            .comp_queue_size(qsize(cfg.ring)?)
            .build()
            .map_err(|e| XskError(e.to_string()))?;
        let count = NonZeroU32::new(cfg.frames).ok_or_else(|| XskError("zero UMEM frames".into()))?;
        let (umem, descs) = Umem::new(umem_cfg, count, false)
            .map_err(|e| XskError(format!("{}: UMEM of {} frames: {e}", cfg.ifname, cfg.frames)))?;
        let ifname = cfg.ifname.parse().map_err(|e| XskError(format!("interface name {:?}: {e:?}", cfg.ifname)))?;
        let modes: &[(XdpFlags, &str)] = match cfg.mode {
            XdpMode::Auto => &[(XdpFlags::XDP_FLAGS_DRV_MODE, "native"), (XdpFlags::XDP_FLAGS_SKB_MODE, "generic")],
            XdpMode::Native => &[(XdpFlags::XDP_FLAGS_DRV_MODE, "native")],
            XdpMode::Skb => &[(XdpFlags::XDP_FLAGS_SKB_MODE, "generic")],
        };
        let mut bind = if cfg.zero_copy { BindFlags::XDP_ZEROCOPY } else { BindFlags::XDP_COPY };
        if cfg.need_wakeup {
            bind |= BindFlags::XDP_USE_NEED_WAKEUP;
        }
        let mut last = String::new();
        for &(flags, mode) in modes {
            let mut b = SocketConfig::builder();
            b.rx_queue_size(qsize(cfg.ring)?)
                .tx_queue_size(qsize(cfg.ring)?)
                .xdp_flags(flags | XdpFlags::XDP_FLAGS_UPDATE_IF_NOEXIST)
                .bind_flags(bind);
            if cfg.inhibit_prog_load {
                b.libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD);
            }
            // SAFETY: the UMEM is new and used by this socket only, so the
            // (interface, queue) pair is not already bound from it and the
            // INHIBIT_PROG_LOAD rule for shared UMEMs does not apply.
            match unsafe { Socket::new(b.build(), &umem, &ifname, cfg.queue) } {
                Ok((tx, rx, Some((fq, cq)))) => {
                    let mut p = XskPort {
                        name: format!("{}@{}", cfg.ifname, cfg.queue),
                        umem,
                        fq,
                        cq,
                        rx,
                        tx,
                        free: descs,
                        scratch: vec![FrameDesc::default(); cfg.ring as usize],
                        n_frames: cfg.frames as usize,
                        in_tx: 0,
                        zero_copy: cfg.zero_copy,
                        mode,
                        c: PortCounters::default(),
                        x: XskCounters::default(),
                    };
                    p.refill();
                    return Ok(p);
                }
                Ok(_) => return Err(XskError(format!("{}: no fill/completion ring for a new UMEM", cfg.ifname))),
                Err(e) => last = format!("{mode} mode: {e}"),
            }
        }
        let zc = if cfg.zero_copy { " (zero-copy asked: veth and many drivers refuse it)" } else { "" };
        Err(XskError(format!("{} queue {}: AF_XDP socket: {last}{zc}", cfg.ifname, cfg.queue)))
    }

    /// "native"/"generic", and whether zero-copy was asked and granted.
    pub fn mode(&self) -> (&'static str, bool) {
        (self.mode, self.zero_copy)
    }

    /// The socket's file descriptor (to insert into an XSKMAP).
    pub fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.rx.fd().as_raw_fd()
    }

    /// Syscall and ring counters.
    pub fn xsk_counters(&self) -> XskCounters {
        self.x
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`): frames
    /// it dropped before userspace saw them; `None` where the kernel does
    /// not answer.
    pub fn kernel_counters(&self) -> Option<XskKernelCounters> {
        let k = self.rx.fd().xdp_statistics().ok()?;
        Some(XskKernelCounters {
            rx_dropped: k.rx_dropped(),
            rx_ring_full: k.rx_ring_full(),
            rx_fill_ring_empty: k.rx_fill_ring_empty_descs(),
            tx_ring_empty: k.tx_ring_empty_descs(),
        })
    }

    /// UMEM frames: (owned by userspace, in the TX ring, total). The rest
    /// are in the fill ring or the RX ring.
    pub fn umem_frames(&self) -> (usize, usize, usize) {
        (self.free.len(), self.in_tx, self.n_frames)
    }

    /// How many frames a `tx` call can take now without dropping any
    /// (UMEM frames free for TX, after taking back completed ones).
    pub fn tx_room(&mut self) -> usize {
        self.reclaim();
        self.free.len().min(self.scratch.len())
    }

    /// Gives free frames to the fill ring, keeping half the ring's worth
    /// for TX.
    fn refill(&mut self) {
        // `scratch` is one ring's worth.
        let keep = self.scratch.len() / 2;
        if self.free.len() <= keep {
            return;
        }
        let want = self.fq.nb_free((self.free.len() - keep) as u32) as usize;
        let want = want.min(self.free.len() - keep);
        if want == 0 {
            return;
        }
        let from = self.free.len() - want;
        // SAFETY: the descriptors come from this port's UMEM and are on the
        // free list only, so nothing else (TX ring, kernel, userspace)
        // touches those frames while the kernel owns them.
        let n = unsafe { self.fq.produce(&self.free[from..]) };
        self.free.truncate(self.free.len() - n);
    }

    /// Kicks the kernel for frames it left in the TX ring. In copy mode a
    /// `sendto` sends at most 32 frames, and a device may refuse some for
    /// a moment: those wait for another kick, and with no later traffic
    /// they would wait forever. Called each poll; it reads the ring's
    /// consumer position only while frames are out, and makes a system
    /// call only when some are still in the ring.
    fn kick_leftovers(&mut self) {
        if self.in_tx == 0 || self.tx.nb_free_exact() as usize >= self.scratch.len() {
            return;
        }
        if self.tx.needs_wakeup() {
            self.wakeup_tx();
        }
    }

    /// One `sendto` for the TX ring, counted and timed. EAGAIN and ENOBUFS
    /// are absorbed by xsk-rs (frames left in the ring: see
    /// [`XskPort::kick_leftovers`]); anything else shows up as frames never
    /// completed, counted by the caller's stats.
    fn wakeup_tx(&mut self) {
        self.x.tx_wakeups += 1;
        let t = std::time::Instant::now();
        let _ = self.tx.wakeup();
        self.x.syscall_ns += t.elapsed().as_nanos() as u64;
    }

    /// Takes frames the kernel finished sending back onto the free list.
    fn reclaim(&mut self) {
        if self.in_tx == 0 {
            return;
        }
        let n = self.scratch.len().min(self.in_tx);
        // SAFETY: the completion ring returns descriptors of this UMEM that
        // were submitted for TX; the kernel no longer reads them.
        let got = unsafe { self.cq.consume(&mut self.scratch[..n]) };
        self.free.extend_from_slice(&self.scratch[..got]);
        self.in_tx -= got;
    }
}

impl Port for XskPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize {
        self.kick_leftovers();
        self.reclaim();
        self.refill();
        let want = out.len().min(self.scratch.len());
        // SAFETY: the RX ring hands back descriptors of frames of this
        // UMEM that we gave to the fill ring.
        let got = unsafe { self.rx.consume(&mut self.scratch[..want]) };
        let mut n = 0;
        for i in 0..got {
            let d = self.scratch[i];
            // SAFETY: `d` came from this UMEM's RX ring and is ours until
            // we return it to the fill ring (below, via the free list).
            let data = unsafe { self.umem.data(&d) };
            let bytes = data.contents();
            if bytes.len() > crate::pool::MAX_FRAME_LEN {
                self.x.rx_too_long += 1;
            } else if let Some(id) = pool.alloc() {
                pool.fill(id, bytes);
                self.c.rx_packets += 1;
                self.c.rx_bytes += bytes.len() as u64;
                out[n] = id;
                n += 1;
            } else {
                self.x.rx_no_buffer += 1;
            }
            self.free.push(d);
        }
        if got > 0 {
            self.refill();
        }
        if self.fq.needs_wakeup() {
            self.x.rx_wakeups += 1;
            let t = std::time::Instant::now();
            // A failed poll only delays reception; the next iteration retries.
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
            self.x.syscall_ns += t.elapsed().as_nanos() as u64;
        }
        n
    }

    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
        self.reclaim();
        let mut k = 0;
        for &f in frames {
            let Some(mut d) = self.free.pop() else {
                self.x.tx_ring_full += 1;
                pool.free(f);
                continue;
            };
            let bytes = pool.data(f);
            // SAFETY: `d` was on the free list: neither ring nor the kernel
            // holds it, and no other reference to its data exists.
            let mut data = unsafe { self.umem.data_mut(&mut d) };
            let mut cur = data.cursor();
            // The descriptor may still carry the length of what it last
            // received: write from the start.
            cur.set_pos(0);
            if cur.write_all(bytes).is_err() {
                self.x.tx_ring_full += 1;
                self.free.push(d);
                pool.free(f);
                continue;
            }
            self.c.tx_bytes += bytes.len() as u64;
            pool.free(f);
            if k == self.scratch.len() {
                self.free.push(d);
                self.x.tx_ring_full += 1;
                continue;
            }
            self.scratch[k] = d;
            k += 1;
        }
        if k == 0 {
            return;
        }
        // SAFETY: the descriptors are UMEM frames just written and owned by
        // us; after submission we do not touch them until the completion
        // ring returns them.
        let sent = unsafe { self.tx.produce(&self.scratch[..k]) };
        self.in_tx += sent;
        self.c.tx_packets += sent as u64;
        if sent < k {
            self.x.tx_ring_full += (k - sent) as u64;
            for i in sent..k {
                let d = self.scratch[i];
                self.free.push(d);
            }
        }
        if self.tx.needs_wakeup() {
            self.wakeup_tx();
        }
    }

    fn counters(&self) -> PortCounters {
        self.c
    }

    fn syscall_ns(&self) -> u64 {
        self.x.syscall_ns
    }

    fn detail(&self) -> String {
        let x = self.x;
        let mut s = format!(
            "rx_wakeups={} tx_wakeups={} rx_no_buffer={} tx_ring_full={} rx_too_long={}",
            x.rx_wakeups, x.tx_wakeups, x.rx_no_buffer, x.tx_ring_full, x.rx_too_long
        );
        if let Some(k) = self.kernel_counters() {
            s += &format!(
                " kernel: rx_dropped={} rx_ring_full={} rx_fill_ring_empty={} tx_ring_empty={}",
                k.rx_dropped, k.rx_ring_full, k.rx_fill_ring_empty, k.tx_ring_empty
            );
        }
        s
    }
}
