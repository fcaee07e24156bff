//! `sdnfwd netcheck` (hidden): the TCP probes the demo and the end-to-end
//! tests run inside pod namespaces, so that they need no netcat.

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

pub fn netcheck(a: NetcheckArgs) -> Result<ExitCode, String> {
    match a.what {
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
        Probe::TcpConnect { addr, timeout } => {
            let end = Instant::now() + Duration::from_secs_f64(timeout);
            let mut last = String::new();
            while Instant::now() < end {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
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
