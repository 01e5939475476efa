//! Multi-version history entries and their per-stripe pools.
//!
//! A granule's history is a singly linked list, newest first, of entries `(writer, mask,
//! bytes)`: the bytes a user stored, byte-precise through the mask. Entries of a granule come
//! from the pool of its stripe and are touched only under that stripe's lock. Index 0 is nil.

use crate::arena::Region;
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

/// Keyed mixing function for checksums: cheap, and a wild write cannot forge it without the
/// per-process key.
#[inline]
pub fn mix(a: u64, b: u64, c: u64, key: u64) -> u64 {
    let mut h = a ^ key;
    h = (h ^ b.rotate_left(23)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ c.rotate_left(41) ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 32)
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
pub struct Pool {
    chunks: [*mut Entry; MAX_CHUNKS],
    nchunks: usize,
    free: u32,
    pub live: u64,
}

impl Pool {
    /// # Safety
    /// `this` must be valid for writes of a Pool.
    pub unsafe fn init(this: *mut Pool) {
        // SAFETY: field initialisation of caller-owned memory.
        unsafe {
            ptr::addr_of_mut!((*this).chunks).write([ptr::null_mut(); MAX_CHUNKS]);
            ptr::addr_of_mut!((*this).nchunks).write(0);
            ptr::addr_of_mut!((*this).free).write(NIL);
            ptr::addr_of_mut!((*this).live).write(0);
        }
    }

    /// Is `idx` an index this pool handed out? (Guards walks over possibly corrupt links.)
    #[inline]
    pub fn valid(&self, idx: u32) -> bool {
        idx != NIL && (idx as usize - 1) < self.nchunks * CHUNK
    }

    #[inline]
    fn slot(&self, idx: u32) -> *mut Entry {
        let i = idx as usize - 1;
        let c = self.chunks[i / CHUNK];
        debug_assert!(!c.is_null());
        // SAFETY: `idx` was handed out by `alloc`, so its chunk is mapped and holds CHUNK entries.
        unsafe { c.add(i % CHUNK) }
    }

    #[inline]
    pub fn get(&self, idx: u32) -> &Entry {
        // SAFETY: see `slot`; the caller holds the stripe lock.
        unsafe { &*self.slot(idx) }
    }

    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub fn get_mut(&self, idx: u32) -> &mut Entry {
        // SAFETY: see `slot`; the stripe lock held by the caller makes the access exclusive.
        unsafe { &mut *self.slot(idx) }
    }

    /// A fresh entry index, or `None` when no memory can be mapped.
    pub fn alloc(&mut self) -> Option<u32> {
        if self.free == NIL && !self.grow() {
            return None;
        }
        let idx = self.free;
        self.free = self.get(idx).next;
        self.live += 1;
        Some(idx)
    }

    pub fn release(&mut self, idx: u32) {
        let e = self.get_mut(idx);
        *e = Entry { next: self.free, ..Entry::default() };
        self.free = idx;
        self.live -= 1;
    }

    fn grow(&mut self) -> bool {
        if self.nchunks == MAX_CHUNKS {
            return false;
        }
        let Some(r) = Region::map(CHUNK * core::mem::size_of::<Entry>()) else { return false };
        let c = r.leak() as *mut Entry;
        self.chunks[self.nchunks] = c;
        let first = (self.nchunks * CHUNK + 1) as u32;
        self.nchunks += 1;
        for k in 0..CHUNK as u32 {
            let next = if k + 1 == CHUNK as u32 { self.free } else { first + k + 1 };
            // SAFETY: `k < CHUNK` lies in the chunk just mapped.
            unsafe { c.add(k as usize).write(Entry { next, ..Entry::default() }) };
        }
        self.free = first;
        true
    }

    /// Does `addr` point into this pool's entries? (For the corruption-injection test hook.)
    pub fn chunk_of(&self, idx: u32) -> *mut Entry {
        self.slot(idx)
    }
}
