//! Recirculation: a packet that went through `ct` with `table=N` goes back
//! through the classifier with a new key: re-extracted from the frame (NAT
//! may have rewritten it), the earlier pass's tunnel metadata kept, the
//! recirculation id the slow path froze its translation under, and the
//! tracker's verdict in the connection-tracking fields. A loop queues such
//! packets while it runs a burst and looks them up again before it sends
//! its batches, at most [`MAX_RECIRC_DEPTH`] passes a packet.

use crate::conntrack::types::CtResult;
use crate::flow::{loc, FieldLoc, FlowKey, BASE_WORDS};
use crate::pool::FrameId;
use crate::stats::MAX_RECIRC_DEPTH;

/// The `nw_frag` bit of a fragment at a non-zero offset.
const FRAG_LATER: u64 = 2;

/// Packets a loop keeps queued for recirculation (more are dropped, as
/// no-buffer): a burst's worth, each recirculated a few times.
pub const RECIRC_MAX: usize = 1024;

/// A packet on its way to its next pass.
///
/// `repr(C)`, the frame and depth between the key and the metadata: the
/// entry is then queued as two copies small enough to be inlined (104 and
/// 80 bytes) rather than one 184-byte `memcpy` call.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Recirculating {
    /// Its key for the next pass (tracked); hashed where the hash is
    /// needed (the EMC, a VXLAN push, an upcall), not when queued.
    pub key: FlowKey,
    /// The frame.
    pub frame: FrameId,
    /// Passes it has taken (1 after its first).
    pub depth: u8,
    /// What the tracker said of it (a later `ct` of the same packet reuses
    /// the connection found).
    pub md: CtResult,
}

/// The key of a packet's next pass: `frame`'s own fields (extracted again),
/// the previous pass's input port and tunnel metadata, recirculation id
/// `id`, and the tracker's verdict `md`.
pub fn next_key(frame: &[u8], prev: &FlowKey, id: u32, md: &CtResult) -> FlowKey {
    let mut k = FlowKey::default();
    k.extract(frame, prev.get(loc::IN_PORT) as u32);
    for l in [loc::TUN_ID, loc::TUN_SRC, loc::TUN_DST] {
        k.set(l, prev.get(l));
    }
    set_ct(&mut k, id, md);
    k
}

/// [`next_key`] of a frame that no action of the pass rewrote (no
/// `set_field`, no NAT), made in place from a copy of the previous key
/// (`k`): its packet and tunnel fields kept as they are, the frame not
/// parsed again, the recirculation id and every connection-tracking word
/// written.
#[inline]
pub fn next_key_unchanged(k: &mut FlowKey, id: u32, md: &CtResult) {
    set_ct(k, id, md);
}

/// The recirculation id and the tracker's verdict into `k`: the
/// connection-tracking words written whole, all of them, not field by
/// field (their layout checked below), so whatever `k` held there before
/// does not matter.
#[inline]
fn set_ct(k: &mut FlowKey, id: u32, md: &CtResult) {
    k.set(loc::RECIRC_ID, id as u64);
    k.set(loc::CT_STATE, md.state as u64);
    let (proto, src, dst, ports) = match md.orig {
        // OVS fills ct_tp_src/dst where it reads an L4 header, so never
        // for a later fragment (`miniflow_extract`).
        Some(t) => {
            let ports = if k.get(loc::NW_FRAG) & FRAG_LATER == 0 { t.sport as u64 | (t.dport as u64) << 16 } else { 0 };
            (t.proto as u64, t.src as u64, t.dst as u64, ports)
        }
        None => (0, 0, 0, 0),
    };
    k.w[CT_WORD] = md.zone as u64 | proto << 16 | (md.mark as u64) << 32;
    k.w[CT_WORD + 1] = src | dst << 32;
    k.w[CT_WORD + 2] = ports;
    k.w[CT_WORD + 3] = md.label as u64;
    k.w[CT_WORD + 4] = (md.label >> 64) as u64;
}

/// The first connection-tracking word, and the layout `set_ct` writes.
const CT_WORD: usize = BASE_WORDS;
const fn at(l: FieldLoc, word: usize, shift: u32, mask: u64) -> bool {
    l.word == word && l.shift == shift && l.mask == mask
}
const _: () = {
    assert!(at(loc::CT_ZONE, CT_WORD, 0, 0xffff));
    assert!(at(loc::CT_NW_PROTO, CT_WORD, 16, 0xff));
    assert!(at(loc::CT_MARK, CT_WORD, 32, 0xffff_ffff));
    assert!(at(loc::CT_NW_SRC, CT_WORD + 1, 0, 0xffff_ffff));
    assert!(at(loc::CT_NW_DST, CT_WORD + 1, 32, 0xffff_ffff));
    assert!(at(loc::CT_TP_SRC, CT_WORD + 2, 0, 0xffff));
    assert!(at(loc::CT_TP_DST, CT_WORD + 2, 16, 0xffff));
    assert!(at(loc::CT_LABEL_LO, CT_WORD + 3, 0, u64::MAX));
    assert!(at(loc::CT_LABEL_HI, CT_WORD + 4, 0, u64::MAX));
    assert!(CT_WORD + 5 == crate::flow::KEY_WORDS);
};

/// Whether a packet that has taken `depth` passes may take another.
#[inline]
pub fn may_recirculate(depth: u8) -> bool {
    (depth as usize) < MAX_RECIRC_DEPTH
}
