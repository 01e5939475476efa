//! Multi-version history entries and the per-user-slot pools they come from.
//!
//! A granule's history is a singly linked list, newest first, of entries `(writer, mask,
//! bytes)`: the bytes a user stored, byte-precise through the mask. An entry is touched only
//! under its granule's lock. Index 0 is nil.
//!
//! Entries live in chunks of one process-wide index space ([`Entries`]); each chunk belongs
//! to one user slot, whose [`LocalPool`] hands its entries out. A user allocates only on its
//! own thread, so allocation is a plain pop from the slot's free list, warm in that thread's
//! cache, and so is a release by the slot's own user (its commit, its collection). An entry
//! released by anyone else (another user's commit emptied it, an anonymous store, unprofile)
//! is pushed onto the owning slot's `remote` list, which the owner takes whole when its own
//! list runs dry: one atomic exchange per refill, and no ABA (nobody but the owner pops).

use crate::arena::Region;
use crate::sync::{AtomicU32, Ordering, StripeLock};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicU64 as CoreU64, Ordering as CoreOrdering};

pub const NIL: u32 = 0;

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

/// Entries per chunk (8 KiB).
const CHUNK: usize = 256;
/// Chunks in the index space: 2^26 entries, 2 GiB of history (smaller under Miri, where the
/// store's zeroed region is interpreted byte by byte).
const MAX_CHUNKS: usize = if cfg!(miri) { 1 << 8 } else { 1 << 18 };

/// The process-wide entry index space: chunk `c` holds entries `c*CHUNK+1 ..= (c+1)*CHUNK`.
///
/// The chunk table and the owner table are written (under `grow`) before `nchunks` publishes
/// a chunk, and never again while the store lives; an entry in use belongs to one granule's
/// history and is read and written only under that granule's lock.
pub struct Entries {
    grow: StripeLock,
    nchunks: AtomicU32,
    chunks: UnsafeCell<[*mut Entry; MAX_CHUNKS]>,
    owner: UnsafeCell<[u16; MAX_CHUNKS]>,
}

// SAFETY: the tables are written only under `grow`, before the chunk is published through
// `nchunks` (release); entries by their granule's lock holder (see the type's comment).
unsafe impl Sync for Entries {}

impl Entries {
    /// # Safety
    /// `this` must be valid for writes of an `Entries` and its tables already zero (the
    /// store's region is fresh zeroed memory): they are left untouched, so the 2.5 MiB of
    /// tables cost memory only as chunks are added.
    pub unsafe fn init(this: *mut Entries) {
        // SAFETY: field initialisation of caller-owned memory; null pointers and slot 0 are
        // valid (unused) table values, and the tables are zero already.
        unsafe {
            ptr::addr_of_mut!((*this).grow).write(StripeLock::new());
            ptr::addr_of_mut!((*this).nchunks).write(AtomicU32::new(0));
        }
    }

    /// Is `idx` an index some pool handed out? (Guards walks over possibly corrupt links.)
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
        // SAFETY: `idx` was handed out, so its chunk is mapped and holds CHUNK entries.
        unsafe { c.add(i % CHUNK) }
    }

    /// The user slot whose pool entry `idx` belongs to.
    #[inline]
    pub fn owner(&self, idx: u32) -> usize {
        // SAFETY: as in `slot`: written before `idx` was handed out, never again.
        unsafe { *(self.owner.get() as *const u16).add((idx as usize - 1) / CHUNK) as usize }
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

    /// Map one more chunk for user slot `owner`, its entries linked into a list ending in
    /// `tail`; returns the list's first index, or `None` when no memory can be mapped.
    fn add_chunk(&self, owner: usize, tail: u32) -> Option<u32> {
        let _g = self.grow.lock();
        let n = self.nchunks.load(Ordering::Relaxed) as usize;
        if n == MAX_CHUNKS {
            return None;
        }
        let r = Region::map(CHUNK * core::mem::size_of::<Entry>())?;
        let c = r.leak() as *mut Entry;
        let first = (n * CHUNK + 1) as u32;
        for k in 0..CHUNK as u32 {
            let next = if k + 1 == CHUNK as u32 { tail } else { first + k + 1 };
            // SAFETY: `k < CHUNK` lies in the chunk just mapped.
            unsafe { c.add(k as usize).write(Entry { next, ..Entry::default() }) };
        }
        // SAFETY: slot n is beyond every index handed out; `grow` excludes other writers.
        unsafe {
            (self.chunks.get() as *mut *mut Entry).add(n).write(c);
            (self.owner.get() as *mut u16).add(n).write(owner as u16);
        }
        self.nchunks.store(n as u32 + 1, Ordering::Release);
        Some(first)
    }

    /// The lock chunks are added under, for `Hv::before_fork`/`Hv::after_fork`.
    pub fn fork_lock(&self) -> &StripeLock {
        &self.grow
    }

    /// Unmap every chunk (when the whole store goes away).
    ///
    /// # Safety
    /// No entry is used afterwards.
    pub unsafe fn unmap_all(&self) {
        let n = self.nchunks.swap(0, Ordering::AcqRel) as usize;
        for i in 0..n {
            // SAFETY: slot i < n holds a chunk mapped by `add_chunk` and leaked there.
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

/// One user slot's free entries (see the module comment).
pub struct LocalPool {
    /// Owner-only free list.
    free: UnsafeCell<u32>,
    /// Entries released by other threads, pushed here; the owner takes the whole list.
    remote: AtomicU32,
    /// Entries handed out and taken back by the owner (plain stores, read by `live`), and
    /// entries released by other threads. Statistics only, outside the protocol the loom
    /// models check: plain core atomics (a loom atomic per slot would be 4096 per model).
    allocated: CoreU64,
    released: CoreU64,
    released_remote: CoreU64,
}

// SAFETY: `free` is touched only by the thread running the slot's user (the contract of
// `alloc` and `release_own`); the rest is atomic.
unsafe impl Sync for LocalPool {}

impl LocalPool {
    pub fn new() -> Self {
        LocalPool {
            free: UnsafeCell::new(NIL),
            remote: AtomicU32::new(NIL),
            allocated: CoreU64::new(0),
            released: CoreU64::new(0),
            released_remote: CoreU64::new(0),
        }
    }

    /// A fresh entry index for the user of slot `me` (whose pool this is), or `None` when no
    /// memory can be mapped.
    ///
    /// # Safety
    /// Only the thread running slot `me`'s user may call this or [`LocalPool::release_own`].
    pub unsafe fn alloc(&self, entries: &Entries, me: usize) -> Option<u32> {
        // SAFETY: owner-only (the caller's contract).
        let free = unsafe { &mut *self.free.get() };
        if *free == NIL {
            *free = self.remote.swap(NIL, Ordering::Acquire);
            if *free == NIL {
                *free = entries.add_chunk(me, NIL)?;
            }
        }
        let idx = *free;
        *free = entries.get(idx).next;
        bump(&self.allocated);
        Some(idx)
    }

    /// Take back an entry of this pool that no granule links to any more.
    ///
    /// # Safety
    /// As for [`LocalPool::alloc`]: only on the thread running this slot's user.
    pub unsafe fn release_own(&self, entries: &Entries, idx: u32) {
        // SAFETY: owner-only (the caller's contract).
        let free = unsafe { &mut *self.free.get() };
        *entries.get_mut(idx) = Entry { next: *free, ..Entry::default() };
        *free = idx;
        bump(&self.released);
    }

    /// Give back an entry of this pool from any other thread (the caller held the lock of
    /// the granule it was unlinked from, so no one else can reach it).
    pub fn release_remote(&self, entries: &Entries, idx: u32) {
        let mut head = self.remote.load(Ordering::Relaxed);
        loop {
            *entries.get_mut(idx) = Entry { next: head, ..Entry::default() };
            match self.remote.compare_exchange_weak(head, idx, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        self.released_remote.fetch_add(1, CoreOrdering::Relaxed);
    }

    /// Entries of this pool in use. Read without stopping the owner: the releases are read
    /// before the allocations, so it never undercounts what was in use at the start.
    pub fn live(&self) -> u64 {
        let out =
            self.released_remote.load(CoreOrdering::Acquire) + self.released.load(CoreOrdering::Acquire);
        self.allocated.load(CoreOrdering::Acquire).saturating_sub(out)
    }
}

impl Default for LocalPool {
    fn default() -> Self {
        Self::new()
    }
}

/// Add one to a counter only the pool's owner writes.
fn bump(c: &CoreU64) {
    c.store(c.load(CoreOrdering::Relaxed) + 1, CoreOrdering::Release);
}
