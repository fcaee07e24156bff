//! A tracked connection: its two keys and NAT action (fixed at creation),
//! its expiry time (read without a lock by lookups, written under its
//! lock), and its mutable state (mark, label, protocol state) under its own
//! spin flag, which no other connection shares.
//!
//! The mutable state is kept as six 64-bit atomic words, read into a plain
//! [`ConnState`] when the flag is taken and written back when it is
//! released ([`StateGuard`]): the flag's Acquire and Release order every
//! access in between, so the Relaxed loads and stores (plain moves on
//! x86) see and publish whole states. One atomic read-modify-write per
//! packet, and no `unsafe`. A holder keeps the flag for a few dozen
//! instructions; a waiter spins, yielding after a while (a holder that is
//! not a poll loop may be preempted).
//!
//! The flag is the low bit of a sequence number, bumped when it is taken
//! and again when it is released, so that mark and label can also be read
//! without it, as a seqlock ([`Conn::marks`]: a later `ct` of a packet
//! whose connection is known, with no `exec(set_field...)`): a read that
//! saw the same even number before and after is whole.
//!
//! Expiry is monotonic: an expired connection is never revived, because
//! every write of `expiration` happens under the flag after checking,
//! under it, that it has not expired (0 ends a connection at once).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use super::key::Key;
use super::proto::ProtoState;
use super::table::{Entry, Links};
use super::tcp::{Peer, Tcp};

/// Spins before yielding the CPU while waiting for a connection's flag.
const SPINS: u32 = 64;

/// What changes in a connection after its creation (see [`Conn::lock`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnState {
    /// `ct_mark`.
    pub mark: u32,
    /// `ct_label`.
    pub label: u128,
    /// Protocol state.
    pub proto: ProtoState,
}

/// Words of the encoded state.
const WORDS: usize = 6;

#[inline]
fn peer_bits(p: &Peer) -> u64 {
    (p.max_win as u64) << 16 | (p.wscale as u64) << 8 | p.state as u64
}

#[inline]
fn peer_from(seq: u64, bits: u64) -> Peer {
    Peer {
        seqlo: (seq >> 32) as u32,
        seqhi: seq as u32,
        max_win: (bits >> 16) as u16,
        wscale: (bits >> 8) as u8,
        state: bits as u8,
    }
}

impl ConnState {
    /// The state as words: mark and protocol kind and small state; label
    /// high and low; each TCP peer's sequence bounds; both peers' windows,
    /// scales and states.
    #[inline]
    fn encode(&self) -> [u64; WORDS] {
        let (kind, small, tcp) = match self.proto {
            ProtoState::Tcp(t) => (0u64, 0u64, t),
            ProtoState::Icmp(s) => (1, s as u64, Tcp::default()),
            ProtoState::Other(s) => (2, s as u64, Tcp::default()),
        };
        let [a, b] = tcp.peers;
        [
            (self.mark as u64) << 32 | kind << 8 | small,
            (self.label >> 64) as u64,
            self.label as u64,
            (a.seqlo as u64) << 32 | a.seqhi as u64,
            (b.seqlo as u64) << 32 | b.seqhi as u64,
            peer_bits(&a) << 32 | peer_bits(&b),
        ]
    }

    /// [`ConnState::encode`] undone.
    #[inline]
    fn decode(w: &[u64; WORDS]) -> ConnState {
        let small = w[0] as u8;
        let proto = match (w[0] >> 8) as u8 {
            0 => ProtoState::Tcp(Tcp { peers: [peer_from(w[3], w[5] >> 32), peer_from(w[4], w[5] & 0xffff_ffff)] }),
            1 => ProtoState::Icmp(small),
            _ => ProtoState::Other(small),
        };
        ConnState { mark: (w[0] >> 32) as u32, label: (w[1] as u128) << 64 | w[2] as u128, proto }
    }
}

/// A connection.
pub struct Conn {
    /// Original and reply keys (the reply key is the translated one under
    /// NAT); fixed at creation.
    pub keys: [Key; 2],
    /// The `NAT_*` action applied in the original direction (0: none);
    /// fixed at creation.
    pub nat: u8,
    /// Odd while the state is being read or changed under the flag (its
    /// low bit); bumped on taking and on releasing it.
    seq: AtomicU32,
    /// Expiry time in ms (`now >= expiration`: expired; 0: ended). Read
    /// without the flag; written only under it, and never once expired.
    pub expiration: AtomicU64,
    /// The encoded [`ConnState`]; accessed under `busy` only.
    state: [AtomicU64; WORDS],
    /// Table links (the table's alone).
    links: Links<Conn>,
}

/// The state of a connection whose flag is held; written back and the flag
/// released on drop.
pub struct StateGuard<'a> {
    conn: &'a Conn,
    st: ConnState,
    /// The (odd) sequence number taken.
    seq: u32,
}

impl Deref for StateGuard<'_> {
    type Target = ConnState;

    #[inline]
    fn deref(&self) -> &ConnState {
        &self.st
    }
}

impl DerefMut for StateGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut ConnState {
        &mut self.st
    }
}

impl Drop for StateGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        for (a, v) in self.conn.state.iter().zip(self.st.encode()) {
            a.store(v, Ordering::Relaxed);
        }
        self.conn.seq.store(self.seq.wrapping_add(1), Ordering::Release);
    }
}

impl Conn {
    /// A connection with these keys, NAT action, state and expiry.
    pub fn new(keys: [Key; 2], nat: u8, proto: ProtoState, expiration: u64) -> Conn {
        let words = ConnState { mark: 0, label: 0, proto }.encode();
        Conn {
            keys,
            nat,
            seq: AtomicU32::new(0),
            expiration: AtomicU64::new(expiration),
            state: words.map(AtomicU64::new),
            links: Links::default(),
        }
    }

    /// Takes the connection's flag and reads its state.
    #[inline]
    pub fn lock(&self) -> StateGuard<'_> {
        let mut spins = 0u32;
        let mut s = self.seq.load(Ordering::Relaxed);
        loop {
            if s & 1 == 0 {
                match self.seq.compare_exchange_weak(s, s.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
                continue;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            s = self.seq.load(Ordering::Relaxed);
        }
        // The odd number before any store of the state (for readers
        // without the flag: `marks`).
        fence(Ordering::Release);
        let w = std::array::from_fn(|i| self.state[i].load(Ordering::Relaxed));
        StateGuard { conn: self, st: ConnState::decode(&w), seq: s.wrapping_add(1) }
    }

    /// Mark and label, read without taking the flag (a seqlock read: the
    /// sequence number even and unchanged around the words read); under
    /// the flag after a few tries that met a writer.
    #[inline]
    pub fn marks(&self) -> (u32, u128) {
        for _ in 0..4 {
            let s = self.seq.load(Ordering::Acquire);
            if s & 1 == 0 {
                let w0 = self.state[0].load(Ordering::Relaxed);
                let hi = self.state[1].load(Ordering::Relaxed);
                let lo = self.state[2].load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s {
                    return ((w0 >> 32) as u32, (hi as u128) << 64 | lo as u128);
                }
            }
            std::hint::spin_loop();
        }
        let g = self.lock();
        (g.mark, g.label)
    }

    /// Whether the connection has expired at `now`.
    #[inline]
    pub fn expired(&self, now: u64) -> bool {
        now >= self.expiration.load(Ordering::Relaxed)
    }

    /// Sets the expiry (the caller holds the flag, as `_held` shows, and
    /// checked it had not expired).
    #[inline]
    pub fn set_expiration(&self, _held: &StateGuard<'_>, at: u64) {
        self.expiration.store(at, Ordering::Relaxed);
    }
}

impl Entry for Conn {
    #[inline]
    fn links(&self) -> &Links<Conn> {
        &self.links
    }

    #[inline]
    fn keys(&self) -> &[Key; 2] {
        &self.keys
    }

    #[inline]
    fn live(&self, now: u64) -> bool {
        !self.expired(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn test_encode_roundtrip() {
        let p = |s: u32| Peer { seqlo: s, seqhi: !s, max_win: (s >> 3) as u16, wscale: 0x87, state: 9 };
        for st in [
            ConnState {
                mark: u32::MAX,
                label: u128::MAX - 5,
                proto: ProtoState::Tcp(Tcp { peers: [p(7), p(0xdead_beef)] }),
            },
            ConnState { mark: 1, label: 1 << 100, proto: ProtoState::Icmp(1) },
            ConnState { mark: 0, label: 0, proto: ProtoState::Other(2) },
        ] {
            assert_eq!(ConnState::decode(&st.encode()), st);
        }
    }

    #[test]
    fn test_marks_read_whole() {
        // A writer keeps mark == label's halves; readers without the flag
        // never see them apart.
        use std::sync::atomic::AtomicBool;
        let k = Key::default();
        let c = Arc::new(Conn::new([k, k], 0, ProtoState::Other(0), 1));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (c, stop, reads) = (c.clone(), stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let (m, l) = c.marks();
                        assert_eq!((m as u128) << 64 | m as u128, l);
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut i = 0u32;
        while i < 50_000 || (reads.load(Ordering::Relaxed) < 100_000 && i < 50_000_000) {
            i += 1;
            let mut g = c.lock();
            g.mark = i;
            g.label = (i as u128) << 64 | i as u128;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(reads.load(Ordering::Relaxed) >= 100_000);
        assert_eq!(c.marks(), (i, (i as u128) << 64 | i as u128));
    }

    #[test]
    fn test_flag_excludes() {
        let k = Key::default();
        let c = Arc::new(Conn::new([k, k], 0, ProtoState::Other(0), 1));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut g = c.lock();
                        g.mark += 1;
                        g.label += 3;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let g = c.lock();
        assert_eq!((g.mark, g.label), (80_000, 240_000));
    }
}
