//! AF_XDP ports on real veth pairs: a kernel in a namespace the test
//! creates pings an address that only the test's AF_XDP socket answers, so
//! every echo goes through the socket's RX ring, userspace and its TX ring.
//! Needs root (CI has it); without it the test fails, it does not skip.

use std::time::{Duration, Instant};

use fastpath::pool::FramePool;
use fastpath::port::api::Port;
use fastpath::port::xsk::{XskConfig, XskPort};
use sdnfwd::netns::{run, Lab};

fn require_root() {
    let out = run("id", &["-u"]).expect("id -u");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "AF_XDP tests need root (CI runs as root)");
}

/// Turns an ICMP echo request to `ip` into the reply, in place.
fn answer_echo(f: &mut [u8], ip: [u8; 4]) -> bool {
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 1 || f[30..34] != ip {
        return false;
    }
    let ihl = (f[14] & 0xf) as usize * 4;
    let icmp = 14 + ihl;
    if f.len() < icmp + 8 || f[icmp] != 8 {
        return false;
    }
    let (dst, src) = (f[0..6].to_vec(), f[6..12].to_vec());
    f[0..6].copy_from_slice(&src);
    f[6..12].copy_from_slice(&dst);
    let (s, d) = (f[26..30].to_vec(), f[30..34].to_vec());
    f[26..30].copy_from_slice(&d);
    f[30..34].copy_from_slice(&s);
    f[icmp] = 0;
    // Checksum: type 8 -> 0 adds 0x0800 to the one's-complement sum.
    let c = u16::from_be_bytes([f[icmp + 2], f[icmp + 3]]) as u32 + 0x0800;
    let c = ((c & 0xffff) + (c >> 16)) as u16;
    f[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    true
}

/// A lab `tag` with a veth pair: its end in the caller's namespace (named
/// after the lab) holds an AF_XDP socket, the other is `eth0` in namespace
/// `peer`. Returns the lab, the peer namespace, the host end's name and the
/// socket.
fn socket_on_veth(tag: &str) -> (Lab, String, String, XskPort) {
    require_root();
    let mut lab = Lab::new(tag);
    let peer = lab.ns("peer").unwrap();
    let host = format!("{}h", lab.prefix());
    lab.veth((&host, None), ("eth0", Some(&peer))).unwrap();
    let port = XskPort::open(&XskConfig::new(&host)).unwrap_or_else(|e| panic!("AF_XDP on {host}: {e}"));
    (lab, peer, host, port)
}

#[test]
fn kernel_ping_answered_through_an_af_xdp_socket() {
    let (lab, peer, host, mut port) = socket_on_veth("sdx");
    lab.ip(Some(&peer), &["addr", "add", "10.99.0.1/24", "dev", "eth0"]).unwrap();
    lab.ip(Some(&peer), &["neigh", "add", "10.99.0.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0"]).unwrap();

    // What this machine gave: libxdp loads its multi-program dispatcher
    // where a bpffs is mounted, a single program where not.
    let bpffs = std::fs::read_to_string("/proc/self/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("bpf")));
    let (mode, zc) = port.mode();
    sdnfwd::netns::branch(
        "AF_XDP on veth",
        &format!(
            "XDP {mode} mode, {}; bpffs {}",
            if zc { "zero-copy" } else { "copy" },
            if bpffs { "mounted (libxdp's dispatcher)" } else { "not mounted (libxdp loads one program)" }
        ),
    );
    let (_, _, total) = port.umem_frames();
    let mut pool = FramePool::new(1024);
    let pinger = {
        let ns = peer.clone();
        std::thread::spawn(move || {
            run("ip", &["netns", "exec", &ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.99.0.2"])
        })
    };
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ids = [0u32; 32];
    while !pinger.is_finished() && Instant::now() < deadline {
        let n = port.rx(&mut pool, &mut ids);
        let mut out = Vec::new();
        for &f in &ids[..n] {
            if answer_echo(pool.data_mut(f), [10, 99, 0, 2]) {
                answered += 1;
                out.push(f);
            } else {
                pool.free(f);
            }
        }
        port.tx(&mut pool, &out);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let res = pinger.join().unwrap();
    let out = res.unwrap_or_else(|e| panic!("ping through the AF_XDP socket failed: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5 received"), "{text}");
    assert!(answered >= 5);
    let c = port.counters();
    assert!(c.rx_packets >= 5 && c.tx_packets >= 5, "{c:?}");
    // Every UMEM frame is accounted for; every pool frame came back.
    for _ in 0..100 {
        port.tx(&mut pool, &[]);
        if port.umem_frames().1 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(port.umem_frames().1, 0, "frames stuck in the TX ring");
    assert_eq!(port.umem_frames().2, total);
    assert_eq!(pool.n_free(), pool.capacity(), "pool frames leaked");
    drop(port);
    // The socket's XDP program went with it.
    let link = lab.ip(None, &["link", "show", &host]).unwrap();
    assert!(!String::from_utf8_lossy(&link.stdout).contains("xdp"), "XDP program left on {host}");
}

/// A burst larger than the kernel sends per `sendto` in copy mode (32
/// frames) leaves whole with nothing sent after it: the frames left in the
/// TX ring are kicked by the port's next polls, not stranded until the next
/// send, which at the end of a stream never comes.
#[test]
fn a_burst_larger_than_one_sendto_leaves_whole() {
    let (lab, peer, _, mut port) = socket_on_veth("sdb");
    let (mode, zc) = port.mode();
    sdnfwd::netns::branch("AF_XDP burst", &format!("XDP {mode} mode, {}", if zc { "zero-copy" } else { "copy" }));
    let rx_packets = || {
        let o = lab.ip(Some(&peer), &["-j", "-s", "link", "show", "dev", "eth0"]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["stats64"]["rx"]["packets"].as_u64().expect("stats64")
    };
    let before = rx_packets();
    let mut pool = FramePool::new(1024);
    // Broadcast frames of a local experimental ethertype: the peer's kernel
    // counts and drops them.
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5]);
    frame.resize(60, 0);
    const BURST: u64 = 200;
    let ids: Vec<u32> = (0..BURST)
        .map(|_| {
            let f = pool.alloc().unwrap();
            pool.fill(f, &frame);
            f
        })
        .collect();
    port.tx(&mut pool, &ids);
    assert_eq!(port.counters().tx_packets, BURST);
    // Polls only, as an idle poll loop's.
    let mut got = [0u32; 32];
    let deadline = Instant::now() + Duration::from_secs(5);
    while (port.umem_frames().1 > 0 || rx_packets() - before < BURST) && Instant::now() < deadline {
        let n = port.rx(&mut pool, &mut got);
        for &f in &got[..n] {
            pool.free(f);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(port.umem_frames().1, 0, "frames still in the TX ring after 5 s of polls");
    // (The host side's own IPv6 neighbour discovery may add one or two.)
    assert!(rx_packets() - before >= BURST, "the peer received {} of the burst's {BURST}", rx_packets() - before);
}
