//! Multi-version history entries and their per-stripe pools.
//!
//! A granule's history is a singly linked list, newest first, of entries `(writer, mask,
//! bytes)`: the bytes a user stored, byte-precise through the mask. Entries of a granule come
//! from the pool of its stripe and are touched only under that granule's lock. Index 0 is nil.

use crate::arena::Region;
use crate::sync::{AtomicU32, Ordering, StripeLock};
use core::cell::UnsafeCell;
use core::ptr;

pub const NIL: u32 = 0;
const CHUNK: usize = 1024;
const MAX_CHUNKS: usize = 1024;

/// One recorded store. `sum` covers every other field and the entry's index.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    pub writer: u64,
    pub bytes: u64,
    pub next: u32,
    pub mask: u8,
    pub _pad: [u8; 3],
    pub sum: u64,
}

/// Keyed checksum of three words. Each word enters through a bijection (an odd multiply or a
/// rotation) and the results are xored, so a change confined to any one word always changes
/// the sum; the two multiplies are independent, so the CPU overlaps them (this runs on every
/// monitored store). It detects wild writes; it is no defence against a forger who can read
/// the key, which in-process anyone can (the isolated hosts are for that).
#[inline(always)]
pub fn mix(a: u64, b: u64, c: u64, key: u64) -> u64 {
    let ha = (a ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let hc = (c ^ key.rotate_left(32)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ha ^ b.rotate_left(23) ^ hc
}

impl Entry {
    #[inline]
    pub fn seal(&mut self, idx: u32, key: u64) {
        self.sum = self.compute(idx, key);
    }

    #[inline]
    pub fn intact(&self, idx: u32, key: u64) -> bool {
        self.sum == self.compute(idx, key)
    }

    #[inline]
    fn compute(&self, idx: u32, key: u64) -> u64 {
        mix(self.writer, self.bytes, (self.next as u64) | (self.mask as u64) << 32 | (idx as u64) << 40, key)
    }
}

/// A stripe's entry pool: chunks of mapped entries plus a free list threaded through `next`.
///
/// Allocation and release take the pool's own lock. An entry in use belongs to one granule's
/// history and is read and written only under that granule's lock; the chunk table slot it
/// lives in was written (under the pool lock) before its index was ever handed out.
pub struct Pool {
    lock: StripeLock,
    chunks: UnsafeCell<[*mut Entry; MAX_CHUNKS]>,
    nchunks: AtomicU32,
    free: UnsafeCell<u32>,
    live: UnsafeCell<u64>,
}

// SAFETY: `free`, `live` and chunk-table writes are guarded by `lock`; entries by their
// granule's lock (see the type's comment); `nchunks` is atomic.
unsafe impl Sync for Pool {}

impl Pool {
    /// # Safety
    /// `this` must be valid for writes of a Pool.
    pub unsafe fn init(this: *mut Pool) {
        // SAFETY: field initialisation of caller-owned memory.
        unsafe {
            ptr::addr_of_mut!((*this).lock).write(StripeLock::new());
            ptr::addr_of_mut!((*this).chunks).write(UnsafeCell::new([ptr::null_mut(); MAX_CHUNKS]));
            ptr::addr_of_mut!((*this).nchunks).write(AtomicU32::new(0));
            ptr::addr_of_mut!((*this).free).write(UnsafeCell::new(NIL));
            ptr::addr_of_mut!((*this).live).write(UnsafeCell::new(0));
        }
    }

    /// Is `idx` an index this pool handed out? (Guards walks over possibly corrupt links.)
    #[inline]
    pub fn valid(&self, idx: u32) -> bool {
        idx != NIL && (idx as usize - 1) < self.nchunks.load(Ordering::Acquire) as usize * CHUNK
    }

    #[inline]
    fn slot(&self, idx: u32) -> *mut Entry {
        let i = idx as usize - 1;
        // SAFETY: reading one slot of the chunk table, written before `idx` was handed out.
        let c = unsafe { *(self.chunks.get() as *const *mut Entry).add(i / CHUNK) };
        debug_assert!(!c.is_null());
        // SAFETY: `idx` was handed out by `alloc`, so its chunk is mapped and holds CHUNK entries.
        unsafe { c.add(i % CHUNK) }
    }

    /// The entry `idx`; the caller holds the lock of the granule whose history holds it.
    #[inline]
    pub fn get(&self, idx: u32) -> &Entry {
        // SAFETY: see `slot`; the granule lock held by the caller excludes writers.
        unsafe { &*self.slot(idx) }
    }

    /// The entry `idx`, mutably; the caller holds the lock of the granule owning it.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub fn get_mut(&self, idx: u32) -> &mut Entry {
        // SAFETY: see `slot`; the granule lock held by the caller makes the access exclusive.
        unsafe { &mut *self.slot(idx) }
    }

    /// A fresh entry index, or `None` when no memory can be mapped.
    pub fn alloc(&self) -> Option<u32> {
        let _l = self.lock.lock();
        // SAFETY: pool lock held.
        let (free, live) = unsafe { (&mut *self.free.get(), &mut *self.live.get()) };
        if *free == NIL && !self.grow(free) {
            return None;
        }
        let idx = *free;
        *free = self.get(idx).next;
        *live += 1;
        Some(idx)
    }

    /// Return an entry no granule links to any more.
    pub fn release(&self, idx: u32) {
        let _l = self.lock.lock();
        // SAFETY: pool lock held.
        let (free, live) = unsafe { (&mut *self.free.get(), &mut *self.live.get()) };
        *self.get_mut(idx) = Entry { next: *free, ..Entry::default() };
        *free = idx;
        *live -= 1;
    }

    /// The pool's lock, for `Hv::before_fork`/`Hv::after_fork`.
    pub fn fork_lock(&self) -> &StripeLock {
        &self.lock
    }

    /// Entries in use.
    pub fn live(&self) -> u64 {
        let _l = self.lock.lock();
        // SAFETY: pool lock held.
        unsafe { *self.live.get() }
    }

    /// Map one more chunk (pool lock held by the caller).
    fn grow(&self, free: &mut u32) -> bool {
        let n = self.nchunks.load(Ordering::Relaxed) as usize;
        if n == MAX_CHUNKS {
            return false;
        }
        let Some(r) = Region::map(CHUNK * core::mem::size_of::<Entry>()) else { return false };
        let c = r.leak() as *mut Entry;
        let first = (n * CHUNK + 1) as u32;
        for k in 0..CHUNK as u32 {
            let next = if k + 1 == CHUNK as u32 { *free } else { first + k + 1 };
            // SAFETY: `k < CHUNK` lies in the chunk just mapped.
            unsafe { c.add(k as usize).write(Entry { next, ..Entry::default() }) };
        }
        // SAFETY: slot n is beyond every index handed out; the pool lock excludes other growers.
        unsafe { (self.chunks.get() as *mut *mut Entry).add(n).write(c) };
        self.nchunks.store(n as u32 + 1, Ordering::Release);
        *free = first;
        true
    }

    /// Unmap every chunk (when the whole store goes away).
    ///
    /// # Safety
    /// No entry of this pool is used afterwards.
    pub unsafe fn unmap_all(&self) {
        let n = self.nchunks.swap(0, Ordering::AcqRel) as usize;
        for i in 0..n {
            // SAFETY: slot i < n holds a chunk mapped by `grow` and leaked there.
            unsafe {
                let c = *(self.chunks.get() as *const *mut Entry).add(i);
                crate::arena::release_leaked(c as *mut u8, CHUNK * core::mem::size_of::<Entry>());
            }
        }
    }

    /// Where entry `idx` lives (for the corruption-injection test hook).
    pub fn chunk_of(&self, idx: u32) -> *mut Entry {
        self.slot(idx)
    }
}
