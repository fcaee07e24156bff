//! Frame buffers: a per-core pool of fixed-size frames with headroom for a
//! VXLAN header, addressed by index (the shape of an AF_XDP UMEM). Frames
//! are handed out and returned by index; the pool never allocates after
//! creation, and [`FramePool::n_free`] lets tests prove nothing leaks.

/// Bytes per frame.
pub const FRAME_SIZE: usize = 2048;
/// Distance between frames in memory: a frame and a cache line more, so
/// that frames do not all start in the same few L1 cache sets (a
/// power-of-two stride maps every frame's header onto 2 of the 64 sets,
/// and a burst of 32 evicts itself).
const STRIDE: usize = FRAME_SIZE + 64;
/// Bytes kept free in front of received data (VXLAN push needs 50).
pub const HEADROOM: usize = 128;
/// Largest frame the pool carries.
pub const MAX_FRAME_LEN: usize = FRAME_SIZE - HEADROOM;

/// A frame's index in its pool.
pub type FrameId = u32;

/// Copies a frame: small ones (the common 64–128 bytes) with two or four
/// overlapping fixed-size moves inlined here, larger ones with memcpy (a
/// call that costs as much as the copy itself for a minimum-size frame).
#[inline]
pub fn copy_frame(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    let mv = |d: &mut [u8], s: &[u8], at: usize| {
        let (Some(d), Some(s)) = (d.get_mut(at..at + 32), s.get(at..at + 32)) else { return };
        d.copy_from_slice(s);
    };
    if (32..=64).contains(&n) {
        mv(dst, src, 0);
        mv(dst, src, n - 32);
    } else if (64..=128).contains(&n) {
        mv(dst, src, 0);
        mv(dst, src, 32);
        mv(dst, src, n - 64);
        mv(dst, src, n - 32);
    } else {
        dst.copy_from_slice(src);
    }
}

/// Fills frames `ids` with `src`'s frames from `*next` on, cyclically,
/// each truncated to [`MAX_FRAME_LEN`] after the full headroom; returns the
/// bytes written. The pool's arrays come as distinct slices (a frame's copy
/// cannot alias its start and length, so nothing is reloaded between
/// frames). The ring is taken in stretches up to its end, so the loop over
/// frames has no wrap-around test (a port replaying a short ring repeats it
/// up to a burst: see `MemPort::new`). [`FramePool::fill`] and
/// [`FramePool::alloc_fill_cyclic`] both write frames through it.
#[inline(always)]
fn fill_cyclic<B: AsRef<[u8]>>(
    mem: &mut [u8],
    start: &mut [u16],
    len: &mut [u16],
    ids: &[FrameId],
    src: &[B],
    next: &mut usize,
) -> u64 {
    let mut bytes = 0;
    let mut k = if *next < src.len() { *next } else { 0 };
    let mut ids = ids;
    while !ids.is_empty() && !src.is_empty() {
        let run = ids.len().min(src.len() - k);
        for (&id, f) in ids[..run].iter().zip(&src[k..k + run]) {
            let f = f.as_ref();
            let f = &f[..f.len().min(MAX_FRAME_LEN)];
            let i = id as usize;
            let s = i * STRIDE + HEADROOM;
            if let (Some(st), Some(ln), Some(d)) = (start.get_mut(i), len.get_mut(i), mem.get_mut(s..s + f.len())) {
                *st = HEADROOM as u16;
                *ln = f.len() as u16;
                copy_frame(d, f);
                bytes += f.len() as u64;
            }
        }
        ids = &ids[run..];
        k += run;
        if k == src.len() {
            k = 0;
        }
    }
    *next = k;
    bytes
}

/// The pool.
pub struct FramePool {
    mem: Vec<u8>,
    free: Vec<FrameId>,
    start: Vec<u16>,
    len: Vec<u16>,
    n: usize,
    /// Debug builds: which frames are handed out (double-free check in
    /// O(1); searching the free list made debug-built loops crawl).
    #[cfg(debug_assertions)]
    out: Vec<bool>,
}

impl FramePool {
    /// A pool of `n` frames.
    pub fn new(n: usize) -> FramePool {
        FramePool {
            mem: vec![0; n * STRIDE],
            free: (0..n as u32).rev().collect(),
            start: vec![HEADROOM as u16; n],
            len: vec![0; n],
            n,
            #[cfg(debug_assertions)]
            out: vec![false; n],
        }
    }

    /// Total frames.
    pub fn capacity(&self) -> usize {
        self.n
    }

    /// Frames not handed out.
    pub fn n_free(&self) -> usize {
        self.free.len()
    }

    /// Takes a frame (data empty, full headroom).
    #[inline]
    pub fn alloc(&mut self) -> Option<FrameId> {
        let id = self.free.pop()?;
        self.handed_out(id);
        self.start[id as usize] = HEADROOM as u16;
        self.len[id as usize] = 0;
        Some(id)
    }

    /// Returns a frame.
    #[inline]
    pub fn free(&mut self, id: FrameId) {
        self.returned(id);
        self.free.push(id);
    }

    /// Debug builds: records that `id` is handed out.
    #[inline(always)]
    fn handed_out(&mut self, _id: FrameId) {
        #[cfg(debug_assertions)]
        {
            self.out[_id as usize] = true;
        }
    }

    /// Debug builds: records that `id` came back, and catches a double free.
    #[inline(always)]
    fn returned(&mut self, _id: FrameId) {
        #[cfg(debug_assertions)]
        {
            assert!(self.out[_id as usize], "double free of frame {_id}");
            self.out[_id as usize] = false;
        }
    }

    /// Takes up to `out.len()` frames at once and fills them with `src`'s
    /// frames from `*next` on, cyclically (a replaying port: the work of
    /// DPDK's bulk mbuf allocation and a copy per frame). Returns how many
    /// frames were taken and their bytes; `src` must not be empty.
    #[inline]
    pub fn alloc_fill_cyclic(&mut self, out: &mut [FrameId], src: &[Vec<u8>], next: &mut usize) -> (usize, u64) {
        let n = out.len().min(self.free.len());
        let from = self.free.len() - n;
        // The order `alloc` would hand them out in (the free list's top first).
        for (o, &id) in out[..n].iter_mut().zip(self.free[from..].iter().rev()) {
            *o = id;
        }
        self.free.truncate(from);
        for &id in &out[..n] {
            self.handed_out(id);
        }
        let bytes = fill_cyclic(&mut self.mem, &mut self.start, &mut self.len, &out[..n], src, next);
        (n, bytes)
    }

    /// Returns frames at once; gives their bytes (a sink's count).
    #[inline]
    pub fn free_all(&mut self, ids: &[FrameId]) -> u64 {
        let mut bytes = 0;
        for &id in ids {
            self.returned(id);
            bytes += self.len.get(id as usize).map_or(0, |&l| l as u64);
        }
        self.free.extend_from_slice(ids);
        bytes
    }

    /// The frame's data.
    #[inline]
    pub fn data(&self, id: FrameId) -> &[u8] {
        let i = id as usize;
        let s = i * STRIDE + self.start[i] as usize;
        &self.mem[s..s + self.len[i] as usize]
    }

    /// The frame's data, writable.
    #[inline]
    pub fn data_mut(&mut self, id: FrameId) -> &mut [u8] {
        let i = id as usize;
        let s = i * STRIDE + self.start[i] as usize;
        &mut self.mem[s..s + self.len[i] as usize]
    }

    /// Length of the frame's data.
    #[inline]
    pub fn len(&self, id: FrameId) -> usize {
        self.len[id as usize] as usize
    }

    /// Whether the frame holds no data.
    #[inline]
    pub fn is_empty(&self, id: FrameId) -> bool {
        self.len[id as usize] == 0
    }

    /// Copies `bytes` into the frame (truncated to [`MAX_FRAME_LEN`]).
    #[inline]
    pub fn fill(&mut self, id: FrameId, bytes: &[u8]) {
        fill_cyclic(&mut self.mem, &mut self.start, &mut self.len, &[id], &[bytes], &mut 0);
    }

    /// Grows the frame at the front by `N` bytes (into the headroom) and
    /// returns just those; `None` if the headroom is too small.
    #[inline]
    pub fn push_header<const N: usize>(&mut self, id: FrameId) -> Option<&mut [u8; N]> {
        let i = id as usize;
        let start = (self.start[i] as usize).checked_sub(N)?;
        let s = i * STRIDE + start;
        let h = self.mem.get_mut(s..s + N)?;
        self.start[i] = start as u16;
        self.len[i] += N as u16;
        h.try_into().ok()
    }

    /// Drops `n` bytes from the front (decapsulation).
    #[inline]
    pub fn pull_front(&mut self, id: FrameId, n: usize) {
        let i = id as usize;
        let n = n.min(self.len[i] as usize);
        self.start[i] += n as u16;
        self.len[i] -= n as u16;
    }

    /// A copy of a frame in a new frame; `None` when the pool is empty.
    #[inline]
    pub fn clone_frame(&mut self, id: FrameId) -> Option<FrameId> {
        let c = self.alloc()?;
        let (i, j) = (id as usize, c as usize);
        let (s, n) = (i * STRIDE + self.start[i] as usize, self.len[i] as usize);
        let d = j * STRIDE + self.start[i] as usize;
        self.mem.copy_within(s..s + n, d);
        self.start[j] = self.start[i];
        self.len[j] = self.len[i];
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_copy_frame_every_length() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..300 {
            let mut d = vec![0u8; n];
            copy_frame(&mut d, &src[..n]);
            assert_eq!(d, &src[..n], "length {n}");
        }
    }

    #[test]
    fn test_alloc_fill_push_clone() {
        let mut p = FramePool::new(4);
        let a = p.alloc().unwrap();
        p.fill(a, &[1, 2, 3]);
        assert_eq!(p.data(a), &[1, 2, 3]);
        *p.push_header::<2>(a).unwrap() = [9, 9];
        assert_eq!(p.data(a), &[9, 9, 1, 2, 3]);
        let b = p.clone_frame(a).unwrap();
        p.pull_front(a, 2);
        assert_eq!(p.data(a), &[1, 2, 3]);
        assert_eq!(p.data(b), &[9, 9, 1, 2, 3]);
        assert!(p.push_header::<{ HEADROOM + 10 }>(a).is_none());
        *p.push_header::<2>(a).unwrap() = [7, 8];
        assert_eq!(p.data(a), &[7, 8, 1, 2, 3]);
        assert!(p.push_header::<HEADROOM>(a).is_none(), "2 bytes of headroom used");
        assert_eq!(p.data(a), &[7, 8, 1, 2, 3]);
        p.free(a);
        p.free(b);
        assert_eq!(p.n_free(), 4);
    }

    #[test]
    fn test_bulk_fill_and_free_match_one_by_one() {
        let src: Vec<Vec<u8>> = vec![vec![1; 60], vec![2; 3], vec![3; 2000], vec![4; 128]];
        let (mut bulk, mut single) = (FramePool::new(10), FramePool::new(10));
        let reused = {
            let a = single.alloc().unwrap();
            single.push_header::<8>(a).unwrap();
            single.free(a);
            let b = bulk.alloc().unwrap();
            bulk.push_header::<8>(b).unwrap();
            bulk.free(b);
            b
        };
        let mut out = [0; 7];
        let mut next = 2;
        let (n, bytes) = bulk.alloc_fill_cyclic(&mut out, &src, &mut next);
        assert_eq!((n, next), (7, 1), "seven frames from the third, wrapping around");
        let want: Vec<&[u8]> = (2..9).map(|k| &src[k % 4][..src[k % 4].len().min(MAX_FRAME_LEN)]).collect();
        assert_eq!(bytes, want.iter().map(|f| f.len() as u64).sum::<u64>());
        for (k, &id) in out.iter().enumerate() {
            let s = single.alloc().unwrap();
            single.fill(s, want[k]);
            assert_eq!(id, s, "handed out in alloc's order");
            assert_eq!(bulk.data(id), single.data(s), "frame {k}: same data, headroom restored");
        }
        assert_eq!(out[0], reused);
        let mut more = [0; 5];
        assert_eq!(bulk.alloc_fill_cyclic(&mut more, &src, &mut next).0, 3, "only three frames left");
        assert_eq!(bulk.free_all(&out), bytes);
        assert_eq!(bulk.free_all(&more[..3]), 3 + MAX_FRAME_LEN as u64 + 128);
        assert_eq!(bulk.n_free(), 10);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "double free")]
    fn test_bulk_free_catches_a_double_free() {
        let mut p = FramePool::new(4);
        let mut out = [0; 2];
        p.alloc_fill_cyclic(&mut out, &[vec![0; 64]], &mut 0);
        p.free(out[1]);
        p.free_all(&out);
    }
}
