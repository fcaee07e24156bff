//! The generator's XDP live frames: the generator program
//! (bpf/pktgen.c, built by build.rs and embedded in the binary) run by
//! `BPF_PROG_RUN` in live-frames mode over a template frame, stamping each
//! copy with a sequence number and its send time ([`XdpGenerator`],
//! [`GenLayout`], [`monotonic_ns`]). The program, its map and the clock are
//! reached through libbpf (libxdp-sys) and libc, whose calls are `unsafe`;
//! each block says why it holds.
#![allow(unsafe_code)]

use fastpath::port::xsk::{ifindex, quiet_libs, XskError};

/// The generator program (tools/pktgen/bpf/pktgen.c).
static PKTGEN_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pktgen.bpf.o"));

/// Where the generator stamps each frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct GenLayout {
    /// Source ports `base_port .. base_port + flows`.
    pub flows: u32,
    /// First source port.
    pub base_port: u16,
    /// Offset of the (inner) TCP/UDP header.
    pub l4_off: u16,
    /// Offset of its checksum (0: do not fix).
    pub csum_off: u16,
    /// Offset of the 16-byte stamp (sequence number, send time in ns of
    /// CLOCK_MONOTONIC, both big-endian).
    pub stamp_off: u16,
}

/// A packet generator on an interface: BPF_PROG_RUN in live-frames mode
/// (kernel ≥ 5.18) runs the generator program over a template frame; each
/// run stamps it and returns XDP_TX, so the frame leaves through the
/// interface's XDP transmit path. On a veth the peer must have an XDP
/// program in native mode (an AF_XDP socket's is enough).
pub struct XdpGenerator {
    obj: std::ptr::NonNull<libxdp_sys::bpf_object>,
    prog_fd: i32,
    cfg_fd: i32,
    ifindex: i32,
    frame: Vec<u8>,
    /// The map's value as configured (sequence number left at 0).
    cfg: [u8; 24],
}

// SAFETY: as for fastpath's UplinkProgram: the object is used through
// &mut self only.
unsafe impl Send for XdpGenerator {}

impl XdpGenerator {
    /// Loads the generator for `ifname` with this template and layout.
    pub fn new(ifname: &str, frame: Vec<u8>, layout: GenLayout) -> Result<XdpGenerator, XskError> {
        quiet_libs();
        let ifindex = ifindex(ifname)?;
        if frame.len() < layout.stamp_off as usize + 16 || frame.len() < layout.l4_off as usize + 2 {
            return Err(XskError(format!("template of {} bytes too short for its layout", frame.len())));
        }
        // SAFETY: static ELF object, copied by libbpf; null opts = defaults.
        let obj =
            unsafe { libxdp_sys::bpf_object__open_mem(PKTGEN_OBJ.as_ptr().cast(), PKTGEN_OBJ.len(), std::ptr::null()) };
        let obj = std::ptr::NonNull::new(obj).ok_or_else(|| XskError("cannot open the generator object".into()))?;
        let mut g = XdpGenerator { obj, prog_fd: -1, cfg_fd: -1, ifindex, frame, cfg: [0; 24] };
        // SAFETY: `obj` is valid and not loaded yet; owned by `g`.
        let rc = unsafe { libxdp_sys::bpf_object__load(g.obj.as_ptr()) };
        if rc != 0 {
            return Err(XskError(format!("loading the generator program: {}", std::io::Error::from_raw_os_error(-rc))));
        }
        // SAFETY: loaded object; NUL-terminated literal names.
        let (prog, cfg_fd) = unsafe {
            (
                libxdp_sys::bpf_object__find_program_by_name(g.obj.as_ptr(), c"sdnfwd_pktgen".as_ptr()),
                libxdp_sys::bpf_object__find_map_fd_by_name(g.obj.as_ptr(), c"gen_map".as_ptr()),
            )
        };
        if prog.is_null() || cfg_fd < 0 {
            return Err(XskError("generator object lacks its program or map".into()));
        }
        // SAFETY: `prog` belongs to the loaded object.
        g.prog_fd = unsafe { libxdp_sys::bpf_program__fd(prog) };
        g.cfg_fd = cfg_fd;
        g.cfg[8..12].copy_from_slice(&layout.flows.max(1).to_ne_bytes());
        g.cfg[12..14].copy_from_slice(&layout.base_port.to_ne_bytes());
        g.cfg[14..16].copy_from_slice(&layout.l4_off.to_ne_bytes());
        g.cfg[16..18].copy_from_slice(&layout.csum_off.to_ne_bytes());
        g.cfg[18..20].copy_from_slice(&layout.stamp_off.to_ne_bytes());
        g.configure(false)?;
        Ok(g)
    }

    /// Writes the configuration, with the program in dry mode (it drops the
    /// frame untouched) or not. The sequence number restarts at 0.
    fn configure(&mut self, dry: bool) -> Result<(), XskError> {
        let mut cfg = self.cfg;
        cfg[20..24].copy_from_slice(&u32::from(dry).to_ne_bytes());
        let key = 0u32;
        // SAFETY: key and value buffers match the map's 4- and 24-byte sizes.
        let rc = unsafe {
            libxdp_sys::bpf_map_update_elem(self.cfg_fd, (&key as *const u32).cast(), cfg.as_ptr().cast(), 0)
        };
        if rc != 0 {
            return Err(XskError(format!("configuring the generator: {}", std::io::Error::from_raw_os_error(-rc))));
        }
        Ok(())
    }

    /// Whether the kernel runs the program in live-frames mode here: one
    /// run in dry mode, which drops its frame, so that nothing is sent.
    /// Machines differ (a BPF restriction may refuse `BPF_PROG_RUN` with
    /// EPERM whatever the kernel version).
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn probe(&mut self) -> Result<(), XskError> {
        self.configure(true)?;
        let r = self.run(1);
        self.configure(false)?;
        r
    }

    /// Sends `repeat` frames (one BPF_PROG_RUN).
    pub fn run(&mut self, repeat: u32) -> Result<(), XskError> {
        // The kernel wants data_end = the frame's length, no metadata.
        let mut ctx = libxdp_sys::xdp_md {
            data: 0,
            data_end: self.frame.len() as u32,
            data_meta: 0,
            ingress_ifindex: self.ifindex as u32,
            rx_queue_index: 0,
            egress_ifindex: 0,
        };
        let mut opts = libxdp_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libxdp_sys::bpf_test_run_opts>(),
            data_in: self.frame.as_ptr().cast(),
            data_out: std::ptr::null_mut(),
            data_size_in: self.frame.len() as u32,
            data_size_out: 0,
            ctx_in: (&mut ctx as *mut libxdp_sys::xdp_md).cast(),
            ctx_out: std::ptr::null_mut(),
            ctx_size_in: std::mem::size_of::<libxdp_sys::xdp_md>() as u32,
            ctx_size_out: 0,
            retval: 0,
            repeat: repeat as i32,
            duration: 0,
            flags: libxdp_sys::BPF_F_TEST_XDP_LIVE_FRAMES,
            cpu: 0,
            batch_size: 0,
        };
        // SAFETY: `opts` points at live buffers (the template, the context)
        // that outlive the call; the kernel copies the frame per run.
        let rc = unsafe { libxdp_sys::bpf_prog_test_run_opts(self.prog_fd, &mut opts) };
        if rc != 0 {
            return Err(XskError(format!("BPF_PROG_RUN (live frames): {}", std::io::Error::from_raw_os_error(-rc))));
        }
        Ok(())
    }

    /// Frames generated so far (the program's sequence counter).
    pub fn generated(&self) -> u64 {
        let key = 0u32;
        let mut v = [0u8; 24];
        // SAFETY: key and value buffers match the map's sizes.
        let rc =
            unsafe { libxdp_sys::bpf_map_lookup_elem(self.cfg_fd, (&key as *const u32).cast(), v.as_mut_ptr().cast()) };
        if rc != 0 {
            return 0;
        }
        u64::from_ne_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])
    }
}

impl Drop for XdpGenerator {
    fn drop(&mut self) {
        // SAFETY: opened by us, closed once.
        unsafe { libxdp_sys::bpf_object__close(self.obj.as_ptr()) };
    }
}

/// CLOCK_MONOTONIC in nanoseconds (the clock of the generator's stamps,
/// `bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
