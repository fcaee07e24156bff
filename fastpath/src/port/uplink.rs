//! The uplink's XDP program (bpf/uplink.c, built by build.rs and embedded
//! in the binary): loaded and attached to the uplink, it redirects the
//! VXLAN addressed to the local VTEP into the AF_XDP sockets registered in
//! its XSKMAP and passes everything else to the kernel. The program and
//! its maps are reached through libbpf (libxdp-sys), whose every call is
//! `unsafe`; each block says why it holds.
#![allow(unsafe_code)]

use xsk_rs::config::XdpFlags;

use super::xsk::{ifindex, quiet_libs, XdpMode, XskError};

/// The uplink's XDP program (fastpath/bpf/uplink.c, built by build.rs):
/// redirects VXLAN to the local VTEP into the AF_XDP sockets registered in
/// its XSKMAP and passes everything else to the kernel. Detached when
/// dropped.
pub struct UplinkProgram {
    obj: std::ptr::NonNull<libxdp_sys::bpf_object>,
    ifindex: i32,
    flags: u32,
    xsks_fd: i32,
    ifname: String,
    mode: &'static str,
    replaced: Option<u32>,
}

/// What [`UplinkProgram::attach`] does when the interface already has an
/// XDP program that is sdnfwd's own uplink program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// Refuse (the caller cannot tell whether a running sdnfwd owns it).
    Refuse,
    /// Replace it: the caller holds the uplink's lock, so no running
    /// sdnfwd does; the program was left by one that was killed.
    ReplaceOwn,
}

/// The name of the uplink program (its function in bpf/uplink.c), as the
/// kernel reports attached programs.
const PROG_NAME: &str = "sdnfwd_uplink";

/// The XDP program attached to interface `idx` in the mode of
/// `mode_flags`: its id and name (empty if it could not be read).
fn attached_program(idx: i32, mode_flags: u32) -> Option<(u32, String)> {
    let mut id = 0u32;
    // SAFETY: plain syscall wrapper writing one u32 we own.
    let rc = unsafe { libxdp_sys::bpf_xdp_query_id(idx, mode_flags as i32, &mut id) };
    if rc != 0 || id == 0 {
        return None;
    }
    // SAFETY: plain syscall wrapper; returns a new fd or a negative error.
    let fd = unsafe { libxdp_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Some((id, String::new()));
    }
    // SAFETY: `fd` was just returned to us and is owned by nothing else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: bpf_prog_info is a plain C struct of integers and arrays, for
    // which all-zero bytes are valid (and what the kernel expects).
    let mut info: libxdp_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libxdp_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` and `len` are live and `len` is `info`'s size.
    let rc = unsafe { libxdp_sys::bpf_prog_get_info_by_fd(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut info, &mut len) };
    if rc != 0 {
        return Some((id, String::new()));
    }
    let name: Vec<u8> = info.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Some((id, String::from_utf8_lossy(&name).into_owned()))
}

// SAFETY: the bpf_object is only used through &mut self or in Drop, never
// concurrently; libbpf objects are not tied to the creating thread.
unsafe impl Send for UplinkProgram {}

static UPLINK_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/uplink.bpf.o"));

impl UplinkProgram {
    /// Loads the program, configures the VTEP (`vtep_ip`, `udp_port`, host
    /// order) and attaches it to `ifname`. An XDP program already there is
    /// an error naming it, unless it is sdnfwd's own and `leftover` says to
    /// replace it ([`UplinkProgram::replaced`] then gives its id).
    pub fn attach(
        ifname: &str,
        mode: XdpMode,
        vtep_ip: u32,
        udp_port: u16,
        leftover: Leftover,
    ) -> Result<UplinkProgram, XskError> {
        quiet_libs();
        let idx = ifindex(ifname)?;
        let err = |what: &str, rc: i64| {
            XskError(format!("{ifname}: {what}: {}", std::io::Error::from_raw_os_error((-rc) as i32)))
        };
        let name = c"sdnfwd_uplink";
        // SAFETY: the buffer is a static ELF object that outlives the call
        // (libbpf copies it); a null opts pointer selects the defaults.
        let obj =
            unsafe { libxdp_sys::bpf_object__open_mem(UPLINK_OBJ.as_ptr().cast(), UPLINK_OBJ.len(), std::ptr::null()) };
        let obj =
            std::ptr::NonNull::new(obj).ok_or_else(|| XskError(format!("{ifname}: cannot open the XDP object")))?;
        let mut p =
            UplinkProgram { obj, ifindex: idx, flags: 0, xsks_fd: -1, ifname: ifname.into(), mode: "", replaced: None };
        // SAFETY: `obj` is a valid, not yet loaded object owned by `p`.
        let rc = unsafe { libxdp_sys::bpf_object__load(p.obj.as_ptr()) };
        if rc != 0 {
            return Err(err("loading the XDP program (needs root)", rc as i64));
        }
        // SAFETY: `obj` is loaded; the names are NUL-terminated literals.
        let (prog, xsks_fd, cfg_fd) = unsafe {
            (
                libxdp_sys::bpf_object__find_program_by_name(p.obj.as_ptr(), name.as_ptr()),
                libxdp_sys::bpf_object__find_map_fd_by_name(p.obj.as_ptr(), c"xsks_map".as_ptr()),
                libxdp_sys::bpf_object__find_map_fd_by_name(p.obj.as_ptr(), c"cfg_map".as_ptr()),
            )
        };
        if prog.is_null() || xsks_fd < 0 || cfg_fd < 0 {
            return Err(XskError(format!("{ifname}: XDP object lacks its program or maps")));
        }
        p.xsks_fd = xsks_fd;
        let mut cfg = [0u8; 8];
        cfg[0..4].copy_from_slice(&vtep_ip.to_be_bytes());
        cfg[4..6].copy_from_slice(&udp_port.to_be_bytes());
        let key = 0u32;
        // SAFETY: key and value point to live buffers of the map's key
        // (4 bytes) and value (8 bytes) sizes.
        let rc =
            unsafe { libxdp_sys::bpf_map_update_elem(cfg_fd, (&key as *const u32).cast(), cfg.as_ptr().cast(), 0) };
        if rc != 0 {
            return Err(err("configuring the XDP program", rc as i64));
        }
        // SAFETY: `prog` belongs to the loaded object.
        let prog_fd = unsafe { libxdp_sys::bpf_program__fd(prog) };
        let modes: &[(u32, &str)] = match mode {
            XdpMode::Auto => {
                &[(XdpFlags::XDP_FLAGS_DRV_MODE.bits(), "native"), (XdpFlags::XDP_FLAGS_SKB_MODE.bits(), "generic")]
            }
            XdpMode::Native => &[(XdpFlags::XDP_FLAGS_DRV_MODE.bits(), "native")],
            XdpMode::Skb => &[(XdpFlags::XDP_FLAGS_SKB_MODE.bits(), "generic")],
        };
        // A program already there (in either mode: the kernel refuses a
        // second one in the other mode too).
        let present = [XdpFlags::XDP_FLAGS_DRV_MODE.bits(), XdpFlags::XDP_FLAGS_SKB_MODE.bits()]
            .into_iter()
            .find_map(|f| attached_program(idx, f).map(|(id, name)| (f, id, name)));
        if let Some((f, id, name)) = present {
            let how = if f == XdpFlags::XDP_FLAGS_DRV_MODE.bits() { "xdp" } else { "xdpgeneric" };
            if name != PROG_NAME {
                let named = if name.is_empty() { String::new() } else { format!(" `{name}`") };
                return Err(XskError(format!(
                    "{ifname} already has an XDP program{named} (id {id}) that is not sdnfwd's: remove it \
                     (`ip link set dev {ifname} {how} off`) or choose another uplink"
                )));
            }
            if leftover == Leftover::Refuse {
                return Err(XskError(format!(
                    "{ifname} already has sdnfwd's XDP program (id {id}): another sdnfwd runs on it, or one \
                     was killed (`ip link set dev {ifname} {how} off` removes it)"
                )));
            }
            // SAFETY: plain syscall wrapper detaching the program of that
            // mode; a null opts pointer selects the defaults.
            let rc = unsafe { libxdp_sys::bpf_xdp_detach(idx, f, std::ptr::null()) };
            if rc != 0 {
                return Err(err("removing the XDP program a killed sdnfwd left", rc as i64));
            }
            p.replaced = Some(id);
        }
        let mut last = 0;
        for &(f, m) in modes {
            let flags = f | XdpFlags::XDP_FLAGS_UPDATE_IF_NOEXIST.bits();
            // SAFETY: plain syscall wrapper; null opts = defaults.
            let rc = unsafe { libxdp_sys::bpf_xdp_attach(idx, prog_fd, flags, std::ptr::null()) };
            if rc == 0 {
                p.flags = flags;
                p.mode = m;
                return Ok(p);
            }
            last = rc;
        }
        Err(err("attaching the XDP program (another XDP program there?)", last as i64))
    }

    /// The id of the program of a killed sdnfwd that this one replaced.
    pub fn replaced(&self) -> Option<u32> {
        self.replaced
    }

    /// Sends the uplink's VXLAN on `queue` to the socket `fd`.
    pub fn insert(&mut self, queue: u32, fd: i32) -> Result<(), XskError> {
        // SAFETY: key and value are live u32/i32 values of the XSKMAP's
        // key and value sizes.
        let rc = unsafe {
            libxdp_sys::bpf_map_update_elem(self.xsks_fd, (&queue as *const u32).cast(), (&fd as *const i32).cast(), 0)
        };
        if rc != 0 {
            return Err(XskError(format!(
                "{}: registering the AF_XDP socket of queue {queue}: {}",
                self.ifname,
                std::io::Error::from_raw_os_error(-rc)
            )));
        }
        Ok(())
    }

    /// "native" or "generic".
    pub fn mode(&self) -> &'static str {
        self.mode
    }
}

impl Drop for UplinkProgram {
    fn drop(&mut self) {
        if self.flags != 0 {
            // SAFETY: plain syscall wrapper with the flags it was attached
            // with; a null opts pointer selects the defaults.
            unsafe {
                libxdp_sys::bpf_xdp_detach(
                    self.ifindex,
                    self.flags & !XdpFlags::XDP_FLAGS_UPDATE_IF_NOEXIST.bits(),
                    std::ptr::null(),
                )
            };
        }
        // SAFETY: `obj` was opened by us and is closed once, here.
        unsafe { libxdp_sys::bpf_object__close(self.obj.as_ptr()) };
    }
}
