//! An AF_PACKET raw socket bound to one interface ([`PacketSocket`]):
//! whole frames out with `sendmmsg`, the packet generator's last fallback
//! where neither XDP live frames nor AF_XDP can be had. The socket is
//! opened, bound and written through libc, whose calls are `unsafe`; each
//! block says why it holds.
#![allow(unsafe_code)]

use super::xsk::{ifindex, XskError};

/// An AF_PACKET raw socket bound to one interface: whole frames out with
/// `sendmmsg` (the generator's fallback where neither XDP live frames nor
/// AF_XDP can be had; every frame takes the kernel's full transmit path).
pub struct PacketSocket {
    fd: std::os::fd::OwnedFd,
}

/// Most frames one [`PacketSocket::send`] hands the kernel.
pub const PACKET_BATCH: usize = 64;

impl PacketSocket {
    /// Opens and binds the socket to `ifname`.
    ///
    /// # Errors
    /// The interface does not exist, or the socket cannot be had (not root).
    pub fn open(ifname: &str) -> Result<PacketSocket, XskError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let idx = ifindex(ifname)?;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto as i32) };
        if raw < 0 {
            return Err(XskError(format!("{ifname}: AF_PACKET socket: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: `raw` is a descriptor we just opened and nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = idx;
        // SAFETY: `sll` is a valid sockaddr_ll and the length given is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(XskError(format!("{ifname}: binding AF_PACKET: {}", std::io::Error::last_os_error())));
        }
        Ok(PacketSocket { fd })
    }

    /// Sends up to [`PACKET_BATCH`] frames with one `sendmmsg`; returns how
    /// many the kernel took (0 when its queue is full for now).
    ///
    /// # Errors
    /// Any other failure of the system call.
    pub fn send(&mut self, frames: &[&[u8]]) -> Result<usize, XskError> {
        use std::os::fd::AsRawFd;
        let n = frames.len().min(PACKET_BATCH);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: iovec and mmsghdr are plain data; all zeroes is valid.
        let mut iov: [libc::iovec; PACKET_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; PACKET_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            iov[i].iov_base = frames[i].as_ptr() as *mut libc::c_void;
            iov[i].iov_len = frames[i].len();
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: msgs[..n] point at iovecs that point into `frames`; all
        // outlive the call, and the kernel only reads them.
        let r = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => Ok(0),
                _ => Err(XskError(format!("sendmmsg: {e}"))),
            };
        }
        Ok(r as usize)
    }

    /// Receives one frame (sent or received on the interface) into `buf`,
    /// waiting up to `timeout`; `Ok(None)` when none came. For tests that
    /// watch a link (the socket sees frames both ways).
    ///
    /// # Errors
    /// A failure of the system calls.
    pub fn recv(&mut self, buf: &mut [u8], timeout: std::time::Duration) -> Result<Option<usize>, XskError> {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, its count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            return Err(XskError(format!("poll: {}", std::io::Error::last_os_error())));
        }
        if r == 0 {
            return Ok(None);
        }
        // SAFETY: `buf` is writable for its length, which is what is passed.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            return Err(XskError(format!("recv: {}", std::io::Error::last_os_error())));
        }
        Ok(Some(n as usize))
    }
}
