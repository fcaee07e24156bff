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
        #[cfg(debug_assertions)]
        {
            self.out[id as usize] = true;
        }
        self.start[id as usize] = HEADROOM as u16;
        self.len[id as usize] = 0;
        Some(id)
    }

    /// Returns a frame.
    #[inline]
    pub fn free(&mut self, id: FrameId) {
        #[cfg(debug_assertions)]
        {
            assert!(self.out[id as usize], "double free of frame {id}");
            self.out[id as usize] = false;
        }
        self.free.push(id);
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
        let n = bytes.len().min(MAX_FRAME_LEN);
        let i = id as usize;
        self.start[i] = HEADROOM as u16;
        self.len[i] = n as u16;
        let s = i * STRIDE + HEADROOM;
        copy_frame(&mut self.mem[s..s + n], &bytes[..n]);
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
}
