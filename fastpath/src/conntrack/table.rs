//! The connection table: a fixed power-of-two array of bucket heads, each
//! the head of a singly linked chain of entries; lookups walk chains
//! without a lock, inserts and removals take the mutex of the shard(s) of
//! the bucket(s) they change. Memory is reclaimed with crossbeam-epoch: a
//! removed entry is freed once every thread that was pinned when it was
//! unlinked has unpinned.
//!
//! Each entry (a connection) has two keys, its original and reply keys,
//! and sits in the chain of each: one allocation, two links (`next[0]`,
//! `next[1]`); a chain pointer's tag says which link of the entry it
//! points through. Keys hash symmetrically, so when the reply key is the
//! original reversed (no NAT) both are in one bucket and the entry is
//! linked once, through `next[0]`, as OVS links such a connection once; an
//! entry is matched in a chain on either key. The newest entry is first in
//! its chain.
//!
//! Synchronisation:
//! - A bucket head and every `next` link that is part of that bucket's
//!   chain are written only under the bucket's shard mutex (Release), and
//!   read by anyone (Acquire): a writer publishes an entry fully built.
//! - An insert locks the shards of both its buckets (in index order),
//!   checks that neither key is present, and links the entry at the heads.
//!   The check under the locks is what keeps keys unique: every other
//!   insert of either key needs one of those locks.
//! - A removal first claims the entry (`unlinked`: whoever swaps it from
//!   false removes it; lookups skip claimed entries), then locks its shards,
//!   unlinks it from its chain(s) and defers its destruction to the epoch.
//!   The unlinked entry's own links are left as they are, so a reader
//!   standing on it walks on; whatever they point to was linked when the
//!   entry was unlinked, hence after any reader now on it pinned, hence not
//!   freed before that reader unpins.
//! - Entries are never modified by the table after insertion except their
//!   links; whatever else they hold synchronises itself.
//!
//! This is the tracker's only `unsafe` code: dereferencing chain pointers
//! (valid while pinned, by the argument above), deferring destruction of
//! an unlinked entry, freeing every entry when the table is dropped, and
//! asking for huge pages for the bucket array.
#![allow(unsafe_code)]

use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use super::key::Key;

/// What the table holds: something with two keys, liveness, and links.
pub trait Entry: Send + Sync + Sized + 'static {
    /// The entry's chain links (owned by the table).
    fn links(&self) -> &Links<Self>;
    /// The original and reply keys; never change once inserted.
    fn keys(&self) -> &[Key; 2];
    /// Whether the entry is live at `now` (not expired).
    fn live(&self, now: u64) -> bool;
}

/// An entry's links, written by the table only.
pub struct Links<T> {
    /// Next entry of the chain of the original key (0) and of the reply key
    /// (1, used only when the reply key hashes apart).
    next: [Atomic<T>; 2],
    /// Claimed for removal (set once, by the remover).
    unlinked: AtomicBool,
}

impl<T> Default for Links<T> {
    fn default() -> Links<T> {
        Links { next: [Atomic::null(), Atomic::null()], unlinked: AtomicBool::new(false) }
    }
}

impl<T> Links<T> {
    /// Whether the entry was claimed for removal.
    #[inline]
    pub fn is_unlinked(&self) -> bool {
        self.unlinked.load(Ordering::Relaxed)
    }
}

/// Pins the current thread (see crossbeam-epoch): entries found through the
/// table stay allocated until the guard is dropped.
#[inline]
pub fn pin() -> Guard {
    epoch::pin()
}

/// The table.
pub struct Table<T: Entry> {
    /// Chain heads; written under the bucket's shard mutex.
    buckets: Box<[Atomic<T>]>,
    /// `buckets.len() - 1`.
    mask: usize,
    /// One mutex per shard of buckets (bucket index & shard mask).
    shards: Box<[Mutex<()>]>,
    /// `shards.len() - 1`.
    shard_mask: usize,
    /// Hash seed.
    seed: u64,
}

/// Bytes of a transparent huge page (x86-64, aarch64 with 4 KB pages).
const HUGE_PAGE: usize = 2 << 20;

/// `n` empty bucket heads. An array of more than a huge page is asked to
/// be backed by transparent huge pages (`madvise(MADV_HUGEPAGE)`, before
/// it is first touched) where the kernel leaves that to the program:
/// lookups land anywhere in it, and with 4 KB pages nearly every one of
/// them also misses the TLB.
fn bucket_array<T>(n: usize) -> Box<[Atomic<T>]> {
    let mut v: Vec<Atomic<T>> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<Atomic<T>>();
    if bytes >= 2 * HUGE_PAGE {
        let start = v.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE);
        let len = (start + bytes).saturating_sub(aligned) / HUGE_PAGE * HUGE_PAGE;
        // SAFETY: madvise only advises: the range [aligned, aligned + len)
        // lies within the vector's allocation, which this function owns and
        // has not initialised; MADV_HUGEPAGE changes how its pages are
        // backed, never their contents. A failure is harmless and ignored.
        unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    }
    v.extend((0..n).map(|_| Atomic::null()));
    v.into_boxed_slice()
}

/// Whether an entry with these keys needs a second link.
#[inline]
fn two_links(k: &[Key; 2]) -> bool {
    k[1] != k[0].reverse()
}

impl<T: Entry> Table<T> {
    /// A table of `n_buckets` (rounded up to a power of two)
    /// with `n_shards` locks (likewise, at most the buckets), hashing with
    /// `seed`.
    pub fn new(n_buckets: usize, n_shards: usize, seed: u64) -> Table<T> {
        // At most 2^31 buckets: a bucket index fits a u32 (what a packet's
        // metadata keeps of its connection, `Cached`).
        let n = n_buckets.clamp(1, 1 << 31).next_power_of_two();
        let s = n_shards.max(1).next_power_of_two().min(n);
        Table {
            buckets: bucket_array(n),
            mask: n - 1,
            shards: (0..s).map(|_| Mutex::new(())).collect(),
            shard_mask: s - 1,
            seed,
        }
    }

    /// Number of buckets.
    pub fn n_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket of `key`.
    #[inline]
    pub fn bucket(&self, key: &Key) -> usize {
        key.hash(self.seed) as usize & self.mask
    }

    /// Locks the shards of buckets `a` and `b`, in index order.
    fn lock(&self, a: usize, b: usize) -> (MutexGuard<'_, ()>, Option<MutexGuard<'_, ()>>) {
        let (sa, sb) = (a & self.shard_mask, b & self.shard_mask);
        let (lo, hi) = (sa.min(sb), sa.max(sb));
        let first = self.shards[lo].lock().unwrap_or_else(PoisonError::into_inner);
        let second = (hi != lo).then(|| self.shards[hi].lock().unwrap_or_else(PoisonError::into_inner));
        (first, second)
    }

    /// The live entry with `key` as either key, and whether it is its reply
    /// key. Lock-free; the entry stays allocated while `g` is held.
    #[inline]
    pub fn lookup<'g>(&self, key: &Key, now: u64, g: &'g Guard) -> Option<(&'g T, bool)> {
        self.lookup_in(self.bucket(key), key, now, g)
    }

    /// [`Table::lookup`] with the key's bucket known ([`Table::bucket`] of
    /// it, or of its reverse: the hash is symmetric), not hashed again.
    #[inline]
    pub fn lookup_in<'g>(&self, bucket: usize, key: &Key, now: u64, g: &'g Guard) -> Option<(&'g T, bool)> {
        debug_assert_eq!(bucket, self.bucket(key));
        let want = key.bits();
        let mut cur = self.buckets[bucket & self.mask].load(Ordering::Acquire, g);
        // SAFETY: `cur` was loaded from a bucket head or a link while `g` is
        // pinned; it is null or an entry that was linked after `g` pinned or
        // is still linked, which the epoch keeps allocated until `g` drops
        // (module doc). Entries are only ever created by `insert` as valid
        // `T`s.
        while let Some(e) = unsafe { cur.as_ref() } {
            let k = e.keys();
            let (orig, reply) = (k[0].bits() == want, k[1].bits() == want);
            if (orig || reply) && !e.links().is_unlinked() && e.live(now) {
                return Some((e, !orig));
            }
            cur = e.links().next[cur.tag()].load(Ordering::Acquire, g);
        }
        None
    }

    /// Inserts `e` unless a live entry has either of its keys: `Err` gives
    /// it back with the index (0 original, 1 reply) of the key found.
    ///
    /// # Errors
    /// A key is taken.
    pub fn insert<'g>(&self, e: T, now: u64, g: &'g Guard) -> Result<&'g T, (T, usize)> {
        let k = *e.keys();
        let two = two_links(&k);
        let b0 = self.bucket(&k[0]);
        let b1 = if two { self.bucket(&k[1]) } else { b0 };
        let _locks = self.lock(b0, b1);
        if self.lookup(&k[0], now, g).is_some() {
            return Err((e, 0));
        }
        if self.lookup(&k[1], now, g).is_some() {
            return Err((e, 1));
        }
        let shared = Owned::new(e).into_shared(g);
        // SAFETY: `shared` was just allocated from a valid `T` and is not yet
        // reachable by any other thread, nor freed while `g` is held.
        let node = unsafe { shared.deref() };
        node.links().next[0].store(self.buckets[b0].load(Ordering::Relaxed, g), Ordering::Relaxed);
        self.buckets[b0].store(shared.with_tag(0), Ordering::Release);
        if two {
            node.links().next[1].store(self.buckets[b1].load(Ordering::Relaxed, g), Ordering::Relaxed);
            self.buckets[b1].store(shared.with_tag(1), Ordering::Release);
        }
        Ok(node)
    }

    /// Unlinks the entry `e` points through `dir` from chain `b` (shard
    /// locked by the caller); the pointer to it, if it was found.
    fn unlink<'g>(&self, b: usize, dir: usize, e: &T, g: &'g Guard) -> Option<Shared<'g, T>> {
        let mut link = &self.buckets[b];
        loop {
            let cur = link.load(Ordering::Acquire, g);
            // SAFETY: as in `lookup`: loaded from the chain while pinned.
            let node = unsafe { cur.as_ref() }?;
            if ptr::eq(node, e) && cur.tag() == dir {
                link.store(node.links().next[dir].load(Ordering::Acquire, g), Ordering::Release);
                return Some(cur.with_tag(0));
            }
            link = &node.links().next[cur.tag()];
        }
    }

    /// Removes `e` (an entry of this table) and frees it once no pinned
    /// thread can see it. False if someone else removed or is removing it.
    pub fn remove(&self, e: &T, g: &Guard) -> bool {
        if e.links().unlinked.swap(true, Ordering::AcqRel) {
            return false;
        }
        let k = *e.keys();
        let two = two_links(&k);
        let b0 = self.bucket(&k[0]);
        let b1 = if two { self.bucket(&k[1]) } else { b0 };
        let locks = self.lock(b0, b1);
        let first = self.unlink(b0, 0, e, g);
        let second = if two { self.unlink(b1, 1, e, g).is_some() } else { true };
        drop(locks);
        debug_assert!(first.is_some() && second, "a table entry is in its chains");
        if let (Some(s), true) = (first, second) {
            // SAFETY: the entry is no longer reachable from any bucket (both
            // of its links were found and cut under the shard locks, and no
            // one links it again), so only threads pinned now can reach it;
            // the epoch frees it after they unpin. `unlinked` was ours, so
            // it is destroyed once. Entries are `Send`.
            unsafe { g.defer_destroy(s) };
        }
        true
    }

    /// Calls `f` on each entry of bucket `b` that is not claimed for
    /// removal, once per entry (through its original-key link); `f` may
    /// remove entries.
    pub fn scan<'g>(&self, b: usize, g: &'g Guard, mut f: impl FnMut(&'g T)) {
        let mut cur = self.buckets[b & self.mask].load(Ordering::Acquire, g);
        // SAFETY: as in `lookup`.
        while let Some(e) = unsafe { cur.as_ref() } {
            let next = e.links().next[cur.tag()].load(Ordering::Acquire, g);
            if cur.tag() == 0 && !e.links().is_unlinked() {
                f(e);
            }
            cur = next;
        }
    }
}

impl<T: Entry> Drop for Table<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread holds the table, so no one is
        // walking its chains; entries still linked are owned by it alone
        // (removed ones were handed to the epoch and are not in any chain).
        // Each is collected once, through its original-key link, before any
        // is freed.
        let g = unsafe { epoch::unprotected() };
        let mut all = Vec::new();
        for b in self.buckets.iter() {
            let mut cur = b.load(Ordering::Relaxed, g);
            // SAFETY: see above; nothing is freed while walking.
            while let Some(e) = unsafe { cur.as_ref() } {
                if cur.tag() == 0 {
                    all.push(cur);
                }
                cur = e.links().next[cur.tag()].load(Ordering::Relaxed, g);
            }
        }
        for s in all {
            // SAFETY: each linked entry once, none reachable any more.
            drop(unsafe { s.into_owned() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    struct E {
        keys: [Key; 2],
        links: Links<E>,
        exp: AtomicU64,
        drops: Arc<AtomicU64>,
    }

    impl Drop for E {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Entry for E {
        fn links(&self) -> &Links<E> {
            &self.links
        }
        fn keys(&self) -> &[Key; 2] {
            &self.keys
        }
        fn live(&self, now: u64) -> bool {
            now < self.exp.load(Ordering::Relaxed)
        }
    }

    fn k(src: u32, sport: u16) -> Key {
        Key { src, dst: 99, sport, dport: 80, zone: 0, proto: 6, icmp_type: 0 }
    }

    fn e(keys: [Key; 2], drops: &Arc<AtomicU64>) -> E {
        E { keys, links: Links::default(), exp: AtomicU64::new(100), drops: drops.clone() }
    }

    #[test]
    fn test_insert_lookup_remove() {
        let drops = Arc::new(AtomicU64::new(0));
        let t: Table<E> = Table::new(64, 4, 1);
        let g = pin();
        // Plain: one link; NAT: two.
        let a = [k(1, 1000), k(1, 1000).reverse()];
        let b = [k(2, 1000), Key { dst: 7, ..k(2, 1000).reverse() }];
        assert!(t.insert(e(a, &drops), 0, &g).is_ok());
        assert!(t.insert(e(b, &drops), 0, &g).is_ok());
        assert_eq!(t.insert(e(a, &drops), 0, &g).err().map(|x| x.1), Some(0));
        assert_eq!(t.insert(e([k(3, 1), b[1]], &drops), 0, &g).err().map(|x| x.1), Some(1));
        let (x, r) = t.lookup(&a[1], 0, &g).unwrap();
        assert!(r && x.keys == a);
        let (y, r) = t.lookup(&b[1], 0, &g).unwrap();
        assert!(r && y.keys == b);
        assert!(!t.lookup(&b[0], 0, &g).unwrap().1);
        assert!(t.lookup(&b[0].reverse(), 0, &g).is_none(), "a NAT entry is not found by its original reversed");
        assert!(t.lookup(&a[0], 100, &g).is_none(), "expired entries are absent");
        // Removal: once.
        assert!(t.remove(y, &g));
        assert!(!t.remove(y, &g));
        assert!(t.lookup(&b[0], 0, &g).is_none() && t.lookup(&b[1], 0, &g).is_none());
        let mut n = 0;
        for i in 0..t.n_buckets() {
            t.scan(i, &g, |_| n += 1);
        }
        assert_eq!(n, 1);
        drop(g);
        drop(t);
        // The removed one goes with the epoch, the rest with the table.
        for _ in 0..64 {
            pin().flush();
        }
        assert!(drops.load(Ordering::Relaxed) >= 3, "the refused inserts and the table's entry");
    }

    #[test]
    fn test_same_bucket_two_links() {
        // One bucket: every entry collides; NAT entries link twice there.
        let drops = Arc::new(AtomicU64::new(0));
        let t: Table<E> = Table::new(1, 1, 5);
        assert_eq!(t.n_buckets(), 1);
        let g = pin();
        let mut all = Vec::new();
        for i in 0..50u32 {
            let o = k(i, 1);
            let keys = if i % 2 == 0 { [o, o.reverse()] } else { [o, Key { src: 1000 + i, ..o.reverse() }] };
            t.insert(e(keys, &drops), 0, &g).ok().unwrap();
            all.push(keys);
        }
        for (i, keys) in all.iter().enumerate() {
            if i % 3 == 0 {
                let (x, _) = t.lookup(&keys[0], 0, &g).unwrap();
                assert!(t.remove(x, &g));
            }
        }
        for (i, keys) in all.iter().enumerate() {
            let found = t.lookup(&keys[1], 0, &g).map(|(x, r)| (x.keys, r));
            assert_eq!(found, (i % 3 != 0).then_some((*keys, true)), "entry {i}");
        }
    }
}
