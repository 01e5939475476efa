//! Profiled ranges (the paper's `profile` / `Init_profile`) and their granule metadata.
//!
//! The table is read on every monitored access and written only by profile/unprofile, so it
//! is a seqlock over atomics: readers never block and never write shared lines.
//!
//! Metadata is lazy: a range's metadata mapping starts as untouched zero pages, and an
//! all-zero [`GranuleMeta`] is a valid, unlocked granule with no history (see the seal in
//! `store.rs`), so profiling costs nothing per byte and memory is paid only for granules that
//! are written. An unprofiled range's mapping is unmapped once a grace period
//! ([`crate::grace`]) shows that no thread still holds a reference to it.

use crate::arena::Region;
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::cell::UnsafeCell;

pub const GRANULE: usize = 8;
pub const MAX_RANGES: usize = 256;
pub const NAME_LEN: usize = 32;

/// Granule flags (lock-free readable).
pub const POLLUTED: u32 = 1;
pub const DEAD: u32 = 2;
pub const CORRUPT: u32 = 4;
/// Raw memory holds newer bytes of the head entry than the entry does: the head's writer
/// stored through the fast path (see `Hv::store_granule`). Read and written under the lock.
pub const DIRTY: u32 = 8;
/// Bits 8..16: the head entry's byte mask, as the fast path knows it (with `hwriter`).
pub const HEAD_MASK_SHIFT: u32 = 8;
const HEAD_MASK_BITS: u32 = 0xFF << HEAD_MASK_SHIFT;
/// The granule's lock: held while its metadata, history or raw bytes are changed.
pub const LOCKED: u32 = 1 << 31;

/// Recovery metadata of one 8-byte granule, in two parts: this hot record — the lock word
/// and the hint, all that a user's repeated store to a granule it heads touches — and a
/// [`ColdMeta`] record (`base`, `head`, `sum`) that only locked slow paths reach. The two lie
/// side by side in one [`RECORD`] (32 bytes, aligned, so within one cache line): a first store
/// or a commit, which needs both, misses cache once, not twice. (Hot records packed apart
/// from the cold ones were measured: the fast path gained a few percent on a 4 MiB working
/// set, and the first store of a user to a granule paid a second miss, which is what a
/// request-per-user server mostly does.)
///
/// `hwriter` is guarded by the granule's lock (the `LOCKED` bit of `flags`); `flags` is also
/// read without it. `hwriter` and the head-mask bits of `flags` are the *hint*: the head
/// entry's writer and mask, as a keyed tag (`Hv::hint_tag`: the writer id's low 32 bits, which
/// differ between live users in their slot bits, xored with a keyed pad of the granule and
/// the mask), so a wild write cannot name a live user except by chance (2^-32). Every use of
/// the head entry also checks the hint against it (a mismatch is reported as corruption,
/// G6). 0 means no hint.
#[repr(C)]
pub struct GranuleMeta {
    pub flags: AtomicU32,
    pub hwriter: UnsafeCell<u32>,
}

/// The cold part of a granule's metadata (see [`GranuleMeta`]), guarded by its lock.
#[repr(C)]
pub struct ColdMeta {
    pub base: UnsafeCell<u64>,
    pub sum: UnsafeCell<u64>,
    pub head: UnsafeCell<u32>,
    _pad: u32,
}

/// A metadata page (what `mincore` reports on).
pub const META_PAGE: usize = 4096;
const HOT: usize = core::mem::size_of::<GranuleMeta>();
const COLD: usize = core::mem::size_of::<ColdMeta>();
/// One granule's metadata: the hot record, then the cold one (32 bytes; more under loom,
/// whose atomics are larger).
pub const RECORD: usize = (HOT + COLD).next_power_of_two();
/// Granules per metadata page (128).
pub const PER_PAGE: usize = META_PAGE / RECORD;

impl GranuleMeta {
    #[cfg(loom)]
    fn new() -> Self {
        GranuleMeta { flags: AtomicU32::new(0), hwriter: UnsafeCell::new(0) }
    }

    /// This granule's cold record, right after the hot one in its [`RECORD`].
    #[inline(always)]
    pub fn cold(&self) -> &ColdMeta {
        let p = self as *const GranuleMeta as usize;
        // SAFETY: every GranuleMeta starts a RECORD of a metadata mapping (`RangeRef::meta`
        // is the only way to one), whose cold part is mapped and zero-initialised (a valid
        // ColdMeta) for as long as the hot one is.
        unsafe { &*((p + HOT) as *const ColdMeta) }
    }
}

impl GranuleMeta {
    /// Lock the granule. Its flags word doubles as the lock, so taking it brings in the cache
    /// line that holds the metadata anyway.
    #[inline]
    pub fn lock(&self) -> GranuleGuard<'_> {
        let mut f = self.flags.load(Ordering::Relaxed);
        let mut spins = 0;
        loop {
            if f & LOCKED == 0 {
                match self.flags.compare_exchange_weak(f, f | LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return GranuleGuard { meta: self, flags: f },
                    Err(now) => {
                        f = now;
                        continue;
                    }
                }
            }
            spins += 1;
            crate::sync::relax(spins);
            f = self.flags.load(Ordering::Relaxed);
        }
    }
}

/// A held granule lock. Flags change only under it, so the holder keeps the word's value and
/// publishes each change with one plain store (lock-free readers read `POLLUTED`).
pub struct GranuleGuard<'a> {
    pub meta: &'a GranuleMeta,
    flags: u32,
}

impl GranuleGuard<'_> {
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    #[inline]
    pub fn set(&mut self, bits: u32) {
        self.flags |= bits;
        self.meta.flags.store(self.flags | LOCKED, Ordering::SeqCst);
    }

    #[inline]
    pub fn clear(&mut self, bits: u32) {
        self.flags &= !bits;
        self.meta.flags.store(self.flags | LOCKED, Ordering::SeqCst);
    }

    /// Set or clear lock-held-only bits (`DIRTY`, the head mask), which no lock-free reader
    /// looks at: published by the unlock, at no extra store.
    #[inline(always)]
    pub fn set_quiet(&mut self, bits: u32, on: bool) {
        if on {
            self.flags |= bits;
        } else {
            self.flags &= !bits;
        }
    }

    /// The hint: (its keyed tag, head mask), or (0, 0). See `Hv::hint_tag`.
    #[inline(always)]
    pub fn hint(&self) -> (u32, u8) {
        // SAFETY: the granule lock is held (self is its guard).
        (unsafe { *self.meta.hwriter.get() }, (self.flags >> HEAD_MASK_SHIFT) as u8)
    }

    /// Set the hint to a keyed tag and the head mask (tag 0: none).
    #[inline(always)]
    pub fn set_hint(&mut self, tag: u32, mask: u8) {
        // SAFETY: the granule lock is held (self is its guard).
        unsafe { *self.meta.hwriter.get() = tag };
        let mask = if tag == 0 { 0 } else { mask };
        self.flags = (self.flags & !HEAD_MASK_BITS) | (mask as u32) << HEAD_MASK_SHIFT;
    }
}

impl Drop for GranuleGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.meta.flags.store(self.flags, Ordering::Release);
    }
}

/// A snapshot of one range, as found by a lookup.
#[derive(Clone, Copy, Debug)]
pub struct RangeRef {
    pub start: usize,
    pub len: usize,
    /// Address of the first granule (start rounded down to 8).
    pub gstart: usize,
    pub meta: *const GranuleMeta,
    pub id: u64,
}

impl RangeRef {
    pub fn end(&self) -> usize {
        self.start + self.len
    }

    /// Metadata of the granule at `gaddr` (which must lie in this range's granules).
    ///
    /// # Safety
    /// `gaddr` is 8-aligned and within `[gstart, end)`.
    pub unsafe fn meta(&self, gaddr: usize) -> &GranuleMeta {
        let i = (gaddr - self.gstart) / GRANULE;
        let at = self.meta as usize + i * RECORD;
        // SAFETY: the mapping holds a RECORD per granule (see `meta_bytes`),
        // and stays mapped while a reference to the range can be used (grace periods).
        unsafe { &*(at as *const GranuleMeta) }
    }

    /// The mask of this range's bytes within granule `gaddr`.
    pub fn granule_mask(&self, gaddr: usize) -> u8 {
        let lo = self.start.max(gaddr);
        let hi = self.end().min(gaddr + GRANULE);
        if hi <= lo {
            return 0;
        }
        let n = hi - lo;
        let shift = lo - gaddr;
        (((1u16 << n) - 1) << shift) as u8
    }
}

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    meta: AtomicUsize,
    id: AtomicU64,
}

pub struct RangeTable {
    seq: AtomicU64,
    n: AtomicUsize,
    lo: AtomicUsize,
    hi: AtomicUsize,
    next_id: AtomicU64,
    /// Sorted by start.
    slots: [Slot; MAX_RANGES],
    names: UnsafeCell<[[u8; NAME_LEN]; MAX_RANGES]>,
}

// SAFETY: `names` is written only under the writer lock held by the caller of
// insert/remove (the hv's profile lock); everything else is atomic.
unsafe impl Sync for RangeTable {}

impl RangeTable {
    /// # Safety
    /// `this` must be valid for writes of a `RangeTable`.
    pub unsafe fn init(this: *mut RangeTable) {
        // SAFETY: field-by-field initialisation of memory the caller owns.
        unsafe {
            core::ptr::addr_of_mut!((*this).seq).write(AtomicU64::new(0));
            core::ptr::addr_of_mut!((*this).n).write(AtomicUsize::new(0));
            core::ptr::addr_of_mut!((*this).lo).write(AtomicUsize::new(usize::MAX));
            core::ptr::addr_of_mut!((*this).hi).write(AtomicUsize::new(0));
            core::ptr::addr_of_mut!((*this).next_id).write(AtomicU64::new(1));
            for i in 0..MAX_RANGES {
                core::ptr::addr_of_mut!((*this).slots[i]).write(Slot {
                    start: AtomicUsize::new(0),
                    len: AtomicUsize::new(0),
                    meta: AtomicUsize::new(0),
                    id: AtomicU64::new(0),
                });
            }
            core::ptr::addr_of_mut!((*this).names).write(UnsafeCell::new([[0; NAME_LEN]; MAX_RANGES]));
        }
    }

    /// Quick reject: can `addr..addr+len` touch any range at all?
    #[inline(always)]
    pub fn may_touch(&self, addr: usize, len: usize) -> bool {
        addr < self.hi.load(Ordering::Relaxed) && addr.wrapping_add(len) > self.lo.load(Ordering::Relaxed)
    }

    /// The range containing `addr`, if any.
    #[inline]
    pub fn find(&self, addr: usize) -> Option<RangeRef> {
        if !self.may_touch(addr, 1) {
            return None;
        }
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                core::hint::spin_loop();
                continue;
            }
            let r = self.find_unsynced(addr);
            crate::sync::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return r;
            }
        }
    }

    /// The first range that starts at or after `addr` (for walking a span), if any.
    pub fn next_from(&self, addr: usize) -> Option<RangeRef> {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                core::hint::spin_loop();
                continue;
            }
            let n = self.n.load(Ordering::Relaxed).min(MAX_RANGES);
            let mut found = None;
            for i in 0..n {
                let r = self.read(i);
                if r.end() > addr {
                    found = Some(r);
                    break;
                }
            }
            crate::sync::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return found;
            }
        }
    }

    #[inline(always)]
    fn read(&self, i: usize) -> RangeRef {
        let s = &self.slots[i];
        let start = s.start.load(Ordering::Relaxed);
        RangeRef {
            start,
            len: s.len.load(Ordering::Relaxed),
            gstart: start & !(GRANULE - 1),
            meta: s.meta.load(Ordering::Relaxed) as *const GranuleMeta,
            id: s.id.load(Ordering::Relaxed),
        }
    }

    #[inline(always)]
    fn find_unsynced(&self, addr: usize) -> Option<RangeRef> {
        let n = self.n.load(Ordering::Relaxed).min(MAX_RANGES);
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.slots[mid].start.load(Ordering::Relaxed) <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return None;
        }
        let r = self.read(lo - 1);
        (addr < r.end() && !r.meta.is_null()).then_some(r)
    }

    /// Add a range; the caller holds the profile lock and has validated the arguments. Its
    /// metadata starts as untouched zero pages (fresh granules).
    pub fn insert(&self, start: usize, len: usize, name: &[u8]) -> crate::HvResult<RangeRef> {
        use crate::VmsrsError::*;
        let n = self.n.load(Ordering::Relaxed);
        let end = start.checked_add(len).ok_or(VMSRS_EINVAL)?;
        for i in 0..n {
            let r = self.read(i);
            if start < r.end() && r.start < end {
                return Err(VMSRS_EOVERLAP);
            }
        }
        if n == MAX_RANGES {
            return Err(VMSRS_ETOOMANY);
        }
        let gstart = start & !(GRANULE - 1);
        let granules = (end - gstart).div_ceil(GRANULE);
        let bytes = granules.div_ceil(PER_PAGE).checked_mul(META_PAGE).ok_or(VMSRS_ENOMEM)?;
        let region = Region::map(bytes).ok_or(VMSRS_ENOMEM)?;
        // Zero pages are fresh granules; loom's atomics need to be constructed, though.
        #[cfg(loom)]
        for g in 0..granules {
            let at = region.as_ptr() as usize + g * RECORD;
            // SAFETY: the hot record of granule g lies in the region, suitably aligned.
            unsafe { (at as *mut GranuleMeta).write(GranuleMeta::new()) };
        }
        // Owned by the table from here on; unmapped after the range's grace period.
        let meta = region.leak() as usize;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pos = (0..n).find(|&i| self.slots[i].start.load(Ordering::Relaxed) > start).unwrap_or(n);

        self.seq.fetch_add(1, Ordering::AcqRel);
        crate::sync::fence(Ordering::Release);
        for i in (pos..n).rev() {
            self.copy_slot(i, i + 1);
        }
        let s = &self.slots[pos];
        s.start.store(start, Ordering::Relaxed);
        s.len.store(len, Ordering::Relaxed);
        s.meta.store(meta, Ordering::Relaxed);
        s.id.store(id, Ordering::Relaxed);
        // SAFETY: names are only touched under the caller's profile lock.
        let names = unsafe { &mut *self.names.get() };
        names.copy_within(pos..n, pos + 1);
        let mut nm = [0u8; NAME_LEN];
        let k = name.len().min(NAME_LEN - 1);
        nm[..k].copy_from_slice(&name[..k]);
        names[pos] = nm;
        self.n.store(n + 1, Ordering::Relaxed);
        self.recompute_bounds(n + 1);
        self.seq.fetch_add(1, Ordering::Release);
        Ok(self.read(pos))
    }

    /// Unpublish the range starting exactly at `start`; the caller holds the profile lock and
    /// becomes the owner of its metadata mapping ([`release_meta`]).
    pub fn remove(&self, start: usize) -> crate::HvResult<RangeRef> {
        let n = self.n.load(Ordering::Relaxed);
        let pos = (0..n)
            .find(|&i| self.slots[i].start.load(Ordering::Relaxed) == start)
            .ok_or(crate::VmsrsError::VMSRS_ENOTPROFILED)?;
        let r = self.read(pos);
        self.seq.fetch_add(1, Ordering::AcqRel);
        crate::sync::fence(Ordering::Release);
        for i in pos..n - 1 {
            self.copy_slot(i + 1, i);
        }
        // SAFETY: names are only touched under the caller's profile lock.
        let names = unsafe { &mut *self.names.get() };
        names.copy_within(pos + 1..n, pos);
        self.n.store(n - 1, Ordering::Relaxed);
        self.recompute_bounds(n - 1);
        self.seq.fetch_add(1, Ordering::Release);
        Ok(r)
    }

    fn copy_slot(&self, from: usize, to: usize) {
        let (a, b) = (&self.slots[from], &self.slots[to]);
        b.start.store(a.start.load(Ordering::Relaxed), Ordering::Relaxed);
        b.len.store(a.len.load(Ordering::Relaxed), Ordering::Relaxed);
        b.meta.store(a.meta.load(Ordering::Relaxed), Ordering::Relaxed);
        b.id.store(a.id.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn recompute_bounds(&self, n: usize) {
        let (mut lo, mut hi) = (usize::MAX, 0);
        for i in 0..n {
            let r = self.read(i);
            lo = lo.min(r.start);
            hi = hi.max(r.end());
        }
        self.lo.store(lo, Ordering::Relaxed);
        self.hi.store(hi, Ordering::Relaxed);
    }

    /// Ranges and names, for reports (caller holds the profile lock).
    pub fn snapshot(&self, out: &mut dyn FnMut(RangeRef, &[u8])) {
        let n = self.n.load(Ordering::Relaxed);
        // SAFETY: read under the caller's profile lock.
        let names = unsafe { &*self.names.get() };
        for (i, name) in names.iter().enumerate().take(n) {
            let len = name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
            out(self.read(i), &name[..len]);
        }
    }

    /// Unmap the metadata of every live range (when the store goes away).
    ///
    /// # Safety
    /// Nothing reads the table or its metadata afterwards.
    pub unsafe fn unmap_all(&self) {
        let n = self.n.load(Ordering::Relaxed);
        for i in 0..n {
            // SAFETY: exclusive access per the contract.
            unsafe { release_meta(&self.read(i)) };
        }
    }

    pub fn count(&self) -> usize {
        self.n.load(Ordering::Relaxed)
    }
}

/// Size of a range's metadata mapping, as `Region::map` rounded it.
pub(crate) fn meta_bytes(r: &RangeRef) -> usize {
    let granules = (r.end() - r.gstart).div_ceil(GRANULE);
    granules.div_ceil(PER_PAGE) * META_PAGE
}

/// Unmap an unpublished range's metadata.
///
/// # Safety
/// `r` was removed from its table, and no thread can still reach its metadata (a grace
/// period has passed, or the whole store is going away).
pub unsafe fn release_meta(r: &RangeRef) {
    // SAFETY: the mapping was leaked by `insert` with exactly this size; unused per contract.
    unsafe { crate::arena::release_leaked(r.meta as *mut u8, meta_bytes(r)) };
}

/// Call `f` with the address of every granule of `r` whose metadata page has ever been
/// touched (untouched pages are all fresh granules, and are skipped without being written).
pub fn for_touched_granules(r: &RangeRef, f: &mut dyn FnMut(usize)) {
    for_granules_of_pages(r, &mut |base, out| touched_pages(base, out), f);
}

/// [`for_touched_granules`] with `touched(base, out)` saying which metadata pages from `base`
/// may hold a granule with state (`out[j]`: page `j`).
fn for_granules_of_pages(
    r: &RangeRef,
    touched: &mut dyn FnMut(usize, &mut [bool]),
    f: &mut dyn FnMut(usize),
) {
    let granules = (r.end() - r.gstart).div_ceil(GRANULE);
    let pages = meta_bytes(r) / META_PAGE;
    let mut out = [false; 256];
    let mut p = 0;
    while p < pages {
        let k = (pages - p).min(out.len());
        touched(r.meta as usize + p * META_PAGE, &mut out[..k]);
        for (j, _) in out[..k].iter().enumerate().filter(|(_, &t)| t) {
            // A metadata page holds PER_PAGE whole records.
            let first = (p + j) * PER_PAGE;
            for i in first..(first + PER_PAGE).min(granules) {
                f(r.gstart + i * GRANULE);
            }
        }
        p += k;
    }
}

/// Which of the metadata pages from `base` may hold a granule with state: those the process
/// ever touched. A resident page (`mincore`) may; of the others, one the kernel swapped out
/// does (`mincore` says no for it, and skipping it left a faulted user's byte in raw memory at
/// unprofile), which `/proc/self/pagemap` tells apart from one never touched. Where pagemap
/// cannot be read, a page that is not all zero bytes may (an all-zero record is a fresh
/// granule; reading a never-touched page maps the zero page, reading a swapped one swaps it
/// in). Normal context.
fn touched_pages(base: usize, out: &mut [bool]) {
    #[cfg(miri)]
    {
        let _ = base;
        out.fill(true);
    }
    #[cfg(not(miri))]
    {
        let mut vec = [0u8; 256];
        let k = out.len().min(vec.len());
        // SAFETY: mincore only inspects our own metadata mapping; `vec` holds `k` bytes.
        let ok = unsafe { libc::mincore(base as *mut libc::c_void, k * META_PAGE, vec.as_mut_ptr()) } == 0;
        let mut map = [0u64; 256];
        let mapped = ok && vec[..k].iter().any(|v| v & 1 == 0) && pagemap(base, &mut map[..k]);
        for j in 0..k {
            out[j] = may_hold_state(ok.then_some(vec[j] & 1 != 0), mapped.then_some(map[j]), || {
                all_zero(base + j * META_PAGE)
            });
        }
    }
}

/// Whether a metadata page may hold a granule with state, from what the kernel says of it:
/// whether it is `resident` (`mincore`; `None`: unknown), its pagemap `entry` (`None`: not
/// read), and, when these cannot tell, whether its bytes are all zero (`zero`).
fn may_hold_state(resident: Option<bool>, entry: Option<u64>, zero: impl FnOnce() -> bool) -> bool {
    match (resident, entry) {
        (Some(true), _) => true,
        // Bit 63: present; bit 62: swapped out.
        (Some(false), Some(e)) => e & (3 << 62) != 0,
        _ => !zero(),
    }
}

/// `/proc/self/pagemap`'s entries for the pages from `base` into `out`; `false` if it cannot
/// be read (no /proc, or a kernel that hides it).
#[cfg(not(miri))]
fn pagemap(base: usize, out: &mut [u64]) -> bool {
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let want = core::mem::size_of_val(out);
    // SAFETY: reads at most `want` bytes into `out`; the offset is the first page's entry.
    let n = unsafe {
        libc::pread(fd, out.as_mut_ptr() as *mut libc::c_void, want, (base / 4096 * 8) as libc::off_t)
    };
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    n == want as isize
}

/// Whether the metadata page at `page` holds only zero bytes (fresh granules).
#[cfg(not(miri))]
fn all_zero(page: usize) -> bool {
    (0..META_PAGE / 8).all(|i| {
        // SAFETY: a page of our own metadata mapping, readable; volatile: each word is read.
        unsafe { core::ptr::read_volatile((page + i * 8) as *const u64) == 0 }
    })
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// A page `mincore` calls not resident may have been swapped out, state and all: it must be
    /// visited (unprofile skipped it, so a faulted user's byte stayed in raw memory and its
    /// entries leaked). Only a page that was never touched is skipped.
    #[test]
    fn a_swapped_out_metadata_page_is_visited_and_a_never_touched_one_is_not() {
        let never = || -> bool { panic!("the bytes are read only when the kernel cannot tell") };
        assert!(may_hold_state(Some(true), None, never));
        assert!(may_hold_state(Some(false), Some(1 << 62), never), "swapped out");
        assert!(may_hold_state(Some(false), Some(1 << 63), never), "present");
        assert!(!may_hold_state(Some(false), Some(0), never), "never touched");
        assert!(may_hold_state(None, None, || false));
        assert!(!may_hold_state(Some(false), None, || true));
    }

    /// On a real mapping: a written page may hold state, a never-touched one is skipped
    /// without being written (pagemap, else its bytes).
    #[test]
    fn touched_pages_sees_written_pages_and_skips_untouched_ones() {
        let len = 4 * META_PAGE;
        // SAFETY: a fresh private anonymous mapping, unmapped below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let base = p as usize;
        // SAFETY: inside our mapping.
        unsafe { core::ptr::write_volatile((base + 2 * META_PAGE + 64) as *mut u64, 7) };
        let mut out = [false; 4];
        touched_pages(base, &mut out);
        assert_eq!(out, [false, false, true, false]);
        let mut map = [0u64; 4];
        assert!(pagemap(base, &mut map), "/proc/self/pagemap is readable");
        assert!(all_zero(base) && !all_zero(base + 2 * META_PAGE));
        // SAFETY: our mapping.
        unsafe { libc::munmap(p, len) };
    }
}
