//! `sdnfwd netcheck` (hidden): the TCP probes the demo and the end-to-end
//! tests run inside pod namespaces, so that they need no netcat: echo
//! probes, UDP bursts, long TCP transfers whose every byte is checked, and
//! for the conntrack tests a link watcher (the sequence numbers of a live
//! connection) and a raw frame sender (crafted segments from a third pod).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

/// `sdnfwd netcheck`.
#[derive(Args)]
pub struct NetcheckArgs {
    #[command(subcommand)]
    pub what: Probe,
}

/// The probes.
#[derive(Subcommand)]
pub enum Probe {
    /// Accept connections and echo one line each, until the timeout.
    TcpListen {
        /// Address to listen on.
        addr: SocketAddr,
        /// Seconds to serve.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Connect, send a line, expect it back; exit 0 on success.
    TcpConnect {
        /// Address to connect to.
        addr: SocketAddr,
        /// Seconds to keep trying.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        /// Seconds each attempt waits for the handshake (below 1, the
        /// kernel's first SYN retransmission: one SYN per attempt).
        #[arg(long, default_value_t = 1.0)]
        connect_timeout: f64,
    },
    /// Count UDP datagrams for a while; print `received N packets B bytes`.
    UdpSink {
        /// Address to bind.
        addr: SocketAddr,
        /// Seconds to count.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Join this IPv4 multicast group first.
        #[arg(long)]
        group: Option<std::net::Ipv4Addr>,
    },
    /// Accept one connection and read it to its end, checking every byte
    /// against the pattern `tcp-send` writes; print `received N bytes,
    /// pattern ok` (exit 1 on a wrong byte or fewer than `--bytes`).
    TcpSink {
        /// Address to listen on.
        addr: SocketAddr,
        /// Bytes expected.
        #[arg(long)]
        bytes: u64,
        /// Seconds to wait for the connection and its end.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Connect and send `--bytes` of a position-dependent pattern, then
    /// close and wait for the peer's close; print `sent N bytes in T s`.
    TcpSend {
        /// Destination.
        addr: SocketAddr,
        /// Bytes to send.
        #[arg(long)]
        bytes: u64,
        /// Seconds for the whole transfer.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Pause once this many bytes are written (print `paused at N
        /// bytes`), for `--pause-ms`.
        #[arg(long)]
        pause_at: Option<u64>,
        /// How long to pause.
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Watch an interface for a TCP segment from `src` to `dst`
    /// (IP:PORT each; port 0: any) and print `seq=S ack=A win=W sport=P
    /// dport=Q flags=F` of the first one.
    TcpPeek {
        /// Interface.
        #[arg(long)]
        iface: String,
        /// Sender, IP:PORT.
        #[arg(long)]
        src: SocketAddr,
        /// Receiver, IP:PORT.
        #[arg(long)]
        dst: SocketAddr,
        /// Seconds to wait.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// Send whole frames (hex) out of an interface through an AF_PACKET
    /// socket.
    RawSend {
        /// Interface.
        #[arg(long)]
        iface: String,
        /// Frames, in hex.
        #[arg(required = true)]
        frames: Vec<String>,
    },
    /// Send UDP datagrams as fast as a socket goes; print `sent N packets`.
    UdpSend {
        /// Destination.
        addr: SocketAddr,
        /// Seconds to send.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Payload bytes (18 makes 64-byte frames).
        #[arg(long, default_value_t = 18)]
        size: usize,
        /// Source ports to cycle through (flows).
        #[arg(long, default_value_t = 1)]
        flows: u16,
    },
}

/// The byte at offset `i` of a `tcp-send` stream: a reordered, repeated
/// or lost run of bytes breaks the sequence.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8 ^ ((i / 251) as u8).wrapping_mul(7)
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("`{s}`: odd number of hex digits"));
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("`{s}`: {e}"))).collect()
}

pub fn netcheck(a: NetcheckArgs) -> Result<ExitCode, String> {
    match a.what {
        Probe::TcpSink { addr, bytes, timeout } => {
            let l = TcpListener::bind(addr).map_err(|e| format!("listen {addr}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            println!("listening {addr}");
            let end = Instant::now() + Duration::from_secs_f64(timeout);
            let (s, peer) = loop {
                match l.accept() {
                    Ok(c) => break c,
                    Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => return Err(format!("{addr}: no connection within {timeout} s ({e})")),
                }
            };
            s.set_nonblocking(false).map_err(|e| e.to_string())?;
            let mut got = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!("{peer}: {got} of {bytes} bytes within {timeout} s"));
                }
                s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
                let n =
                    std::io::Read::read(&mut &s, &mut buf).map_err(|e| format!("{peer}: after {got} bytes: {e}"))?;
                if n == 0 {
                    break;
                }
                if let Some(k) = (0..n).find(|&k| buf[k] != pattern(got + k as u64)) {
                    return Err(format!(
                        "{peer}: byte {} is {:#04x}, not {:#04x}",
                        got + k as u64,
                        buf[k],
                        pattern(got + k as u64)
                    ));
                }
                got += n as u64;
            }
            if got != bytes {
                return Err(format!("{peer}: the stream ended after {got} of {bytes} bytes"));
            }
            println!("received {got} bytes, pattern ok, from {peer}");
            Ok(ExitCode::SUCCESS)
        }
        Probe::TcpSend { addr, bytes, timeout, pause_at, pause_ms } => {
            let t0 = Instant::now();
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| format!("{addr}: {e}"))?;
            println!("connected {} -> {addr}", s.local_addr().map_err(|e| e.to_string())?);
            let mut buf = vec![0u8; 1 << 16];
            let mut sent = 0u64;
            s.set_write_timeout(Some(Duration::from_secs_f64(timeout))).map_err(|e| e.to_string())?;
            let mut pause = pause_at;
            while sent < bytes {
                if pause.is_some_and(|p| sent >= p) {
                    pause = None;
                    println!("paused at {sent} bytes");
                    std::thread::sleep(Duration::from_millis(pause_ms));
                }
                let mut n = ((bytes - sent) as usize).min(buf.len());
                if let Some(p) = pause.filter(|p| *p > sent) {
                    n = n.min((p - sent) as usize);
                }
                for (k, b) in buf[..n].iter_mut().enumerate() {
                    *b = pattern(sent + k as u64);
                }
                (&s).write_all(&buf[..n]).map_err(|e| format!("{addr}: after {sent} bytes: {e}"))?;
                sent += n as u64;
                if t0.elapsed().as_secs_f64() > timeout {
                    return Err(format!("{addr}: {sent} of {bytes} bytes within {timeout} s"));
                }
            }
            s.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())?;
            // The peer closes once it has read everything.
            s.set_read_timeout(Some(Duration::from_secs_f64(timeout))).map_err(|e| e.to_string())?;
            let _ = std::io::Read::read(&mut &s, &mut buf);
            println!("sent {sent} bytes in {:.3} s", t0.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Probe::TcpPeek { iface, src, dst, timeout } => {
            let mut sock = fastpath::port::packet::PacketSocket::open(&iface).map_err(|e| e.to_string())?;
            let end = Instant::now() + Duration::from_secs_f64(timeout);
            let mut buf = vec![0u8; 65536];
            let (sip, dip) = match (src.ip(), dst.ip()) {
                (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => (a.octets(), b.octets()),
                _ => return Err("IPv4 addresses only".into()),
            };
            while Instant::now() < end {
                let Some(n) = sock.recv(&mut buf, end - Instant::now()).map_err(|e| e.to_string())? else { break };
                let f = &buf[..n];
                if n < 54 || f[12..14] != [8, 0] || f[23] != 6 || f[26..30] != sip || f[30..34] != dip {
                    continue;
                }
                let l4 = 14 + ((f[14] & 15) as usize) * 4;
                let port = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
                let word = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
                if n < l4 + 20
                    || (src.port() != 0 && port(l4) != src.port())
                    || (dst.port() != 0 && port(l4 + 2) != dst.port())
                {
                    continue;
                }
                println!(
                    "seq={} ack={} win={} sport={} dport={} flags={:#04x}",
                    word(l4 + 4),
                    word(l4 + 8),
                    port(l4 + 14),
                    port(l4),
                    port(l4 + 2),
                    f[l4 + 13]
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(format!("{iface}: no TCP segment {src} -> {dst} within {timeout} s"))
        }
        Probe::RawSend { iface, frames } => {
            let mut sock = fastpath::port::packet::PacketSocket::open(&iface).map_err(|e| e.to_string())?;
            let frames: Vec<Vec<u8>> = frames.iter().map(|f| hex_bytes(f)).collect::<Result<_, _>>()?;
            for f in &frames {
                let end = Instant::now() + Duration::from_secs(2);
                while sock.send(&[f]).map_err(|e| e.to_string())? == 0 {
                    if Instant::now() > end {
                        return Err(format!("{iface}: the kernel took no frame for 2 s"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            println!("sent {} frame(s) on {iface}", frames.len());
            Ok(ExitCode::SUCCESS)
        }
        Probe::UdpSink { addr, seconds, group } => {
            let s = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            if let Some(g) = group {
                s.join_multicast_v4(&g, &std::net::Ipv4Addr::UNSPECIFIED).map_err(|e| format!("join {g}: {e}"))?;
            }
            s.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
            println!("listening {addr}");
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            let (mut n, mut bytes) = (0u64, 0u64);
            let mut buf = [0u8; 2048];
            while Instant::now() < end {
                if let Ok(k) = s.recv(&mut buf) {
                    n += 1;
                    bytes += k as u64;
                }
            }
            println!("received {n} packets {bytes} bytes");
            Ok(ExitCode::SUCCESS)
        }
        Probe::UdpSend { addr, seconds, size, flows } => {
            let socks: Vec<UdpSocket> = (0..flows.max(1))
                .map(|_| UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(addr).map(|_| s)))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{addr}: {e}"))?;
            let payload = vec![0x5a; size];
            let t0 = Instant::now();
            let mut n = 0u64;
            while t0.elapsed().as_secs_f64() < seconds {
                for s in &socks {
                    if s.send(&payload).is_ok() {
                        n += 1;
                    }
                }
            }
            println!("sent {n} packets in {:.3} s", t0.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Probe::TcpListen { addr, timeout } => {
            let l = TcpListener::bind(addr).map_err(|e| format!("listen {addr}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            println!("listening {addr}");
            let end = Instant::now() + Duration::from_secs_f64(timeout);
            while Instant::now() < end {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut line = String::new();
                        let mut r = BufReader::new(&s);
                        if r.read_line(&mut line).is_ok() {
                            let _ = (&s).write_all(line.as_bytes());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Probe::TcpConnect { addr, timeout, connect_timeout } => {
            if !(connect_timeout > 0.0 && connect_timeout <= 60.0) {
                return Err(format!("--connect-timeout {connect_timeout}: 0 to 60 seconds"));
            }
            let end = Instant::now() + Duration::from_secs_f64(timeout);
            let mut last = String::new();
            while Instant::now() < end {
                match TcpStream::connect_timeout(&addr, Duration::from_secs_f64(connect_timeout)) {
                    Ok(s) => {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let msg = "sdnfwd-probe\n";
                        (&s).write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
                        let mut line = String::new();
                        BufReader::new(&s)
                            .read_line(&mut line)
                            .map_err(|e| format!("{addr}: reading the echo: {e}"))?;
                        if line == msg {
                            println!("tcp {addr} ok");
                            return Ok(ExitCode::SUCCESS);
                        }
                        return Err(format!("{addr}: echo was {line:?}"));
                    }
                    Err(e) => {
                        last = e.to_string();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            Err(format!("tcp {addr}: {last}"))
        }
    }
}
