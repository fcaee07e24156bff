//! Pcap files: [`read_pcap`] and [`write_pcap`] (Ethernet, microsecond or
//! nanosecond), and [`PcapPort`], which receives the frames of a capture
//! once, in order, and records what it is sent.

use std::io::{Read, Write};

use super::api::{rx_from, Port, PortCounters};
use crate::pool::{FrameId, FramePool};

/// A port backed by pcap data: receives the frames of a capture once, in
/// order, and records what it is sent (for [`write_pcap`]).
pub struct PcapPort {
    name: String,
    input: std::collections::VecDeque<Vec<u8>>,
    /// Frames sent to the port, in order.
    pub output: Vec<Vec<u8>>,
    c: PortCounters,
}

impl PcapPort {
    /// A port that will receive `frames` (e.g. from [`read_pcap`]).
    pub fn new(name: &str, frames: Vec<Vec<u8>>) -> PcapPort {
        PcapPort { name: name.into(), input: frames.into(), output: Vec::new(), c: PortCounters::default() }
    }
}

impl Port for PcapPort {
    fn name(&self) -> &str {
        &self.name
    }
    fn rx(&mut self, pool: &mut FramePool, out: &mut [FrameId]) -> usize {
        let input = &mut self.input;
        rx_from(pool, out, &mut self.c, || input.pop_front())
    }
    fn tx(&mut self, pool: &mut FramePool, frames: &[FrameId]) {
        for &f in frames {
            self.output.push(pool.data(f).to_vec());
            self.c.tx_packets += 1;
            self.c.tx_bytes += pool.len(f) as u64;
            pool.free(f);
        }
    }
    fn counters(&self) -> PortCounters {
        self.c
    }
}

/// Reads the frames of a pcap file (microsecond or nanosecond, Ethernet).
///
/// # Errors
/// I/O errors and files that are not Ethernet pcap.
pub fn read_pcap(mut r: impl Read) -> std::io::Result<Vec<Vec<u8>>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut h = [0u8; 24];
    r.read_exact(&mut h)?;
    let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let le = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        _ => return Err(bad("not a pcap file")),
    };
    let u32_at = |b: &[u8], i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    if u32_at(&h, 20) != 1 {
        return Err(bad("pcap link type is not Ethernet"));
    }
    let mut out = Vec::new();
    let mut rec = [0u8; 16];
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let n = u32_at(&rec, 8) as usize;
        if n > 262_144 {
            return Err(bad("pcap record too large"));
        }
        let mut f = vec![0; n];
        r.read_exact(&mut f)?;
        out.push(f);
    }
    Ok(out)
}

/// Writes frames as a pcap file (microsecond timestamps, all zero).
///
/// # Errors
/// I/O errors.
pub fn write_pcap(mut w: impl Write, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    w.write_all(&h)?;
    for f in frames {
        let mut r = [0u8; 16];
        r[8..12].copy_from_slice(&(f.len() as u32).to_le_bytes());
        r[12..16].copy_from_slice(&(f.len() as u32).to_le_bytes());
        w.write_all(&r)?;
        w.write_all(f)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pcap_roundtrip() {
        let frames = vec![vec![1u8; 60], vec![2u8; 1514]];
        let mut buf = Vec::new();
        write_pcap(&mut buf, &frames).unwrap();
        assert_eq!(read_pcap(&buf[..]).unwrap(), frames);
        assert!(read_pcap(&buf[..10]).is_err());
    }

    #[test]
    fn test_pcap_port() {
        let mut buf = Vec::new();
        write_pcap(&mut buf, &[vec![7u8; 60], vec![8u8; 64]]).unwrap();
        let mut p = PcapPort::new("pcap", read_pcap(&buf[..]).unwrap());
        let mut pool = FramePool::new(8);
        let mut ids = [0; 32];
        assert_eq!(p.rx(&mut pool, &mut ids), 2);
        p.tx(&mut pool, &ids[..2]);
        assert_eq!(p.rx(&mut pool, &mut ids), 0);
        assert_eq!(p.output, vec![vec![7u8; 60], vec![8u8; 64]]);
        assert_eq!(pool.n_free(), 8);
    }

    #[test]
    fn test_empty_pool_keeps_the_frame_at_its_source() {
        let mut p = PcapPort::new("pcap", vec![vec![1u8; 60], vec![2u8; 60]]);
        let mut pool = FramePool::new(1);
        let mut ids = [0; 4];
        assert_eq!(p.rx(&mut pool, &mut ids), 1);
        let first = ids[0];
        assert_eq!(p.rx(&mut pool, &mut ids), 0, "no buffer: nothing received");
        pool.free(first);
        assert_eq!(p.rx(&mut pool, &mut ids), 1);
        assert_eq!(pool.data(ids[0]), &[2u8; 60][..], "the second frame was not lost");
    }
}
