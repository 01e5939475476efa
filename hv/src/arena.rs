//! Guarded anonymous mappings: the only memory the recovery store lives in.
//!
//! Every region sits between two `PROT_NONE` guard pages, so a linear overrun from a
//! neighbouring heap object or from a monitored range faults instead of silently editing
//! recovery data (G6). Mapping is a syscall, never `malloc`, so the store can grow inside a
//! signal handler and never recurses into an interposed allocator.
//!
//! Under Miri (which has no `mmap`/`mprotect`) a region is a zeroed, page-aligned heap
//! allocation without guard pages; everything else (registry, leak/release) is the same.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

const PAGE: usize = 4096;

/// Every live mapping of libvmsrs (start, length, guards included), so that no monitored
/// range can ever be placed over libvmsrs's own state. Plain core atomics: this registry is
/// not part of any protocol the loom models check.
/// Smaller under Miri, where every `owned` scan is interpreted (a full registry only makes
/// `owned` conservative).
const REGISTRY: usize = if cfg!(miri) { 1 << 8 } else { 1 << 16 };
static REG_START: [AtomicUsize; REGISTRY] = [const { AtomicUsize::new(0) }; REGISTRY];
static REG_LEN: [AtomicUsize; REGISTRY] = [const { AtomicUsize::new(0) }; REGISTRY];
static REG_FULL: AtomicUsize = AtomicUsize::new(0);
/// A deleted registry slot (never a mapping address, which is page-aligned and non-zero).
const TOMBSTONE: usize = 1;

fn home(start: usize) -> usize {
    ((start as u64 >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize % REGISTRY
}

fn register(start: usize, len: usize) {
    let h = home(start);
    for k in 0..REGISTRY {
        let i = (h + k) % REGISTRY;
        let cur = REG_START[i].load(Ordering::Relaxed);
        if (cur == 0 || cur == TOMBSTONE)
            && REG_START[i].compare_exchange(cur, start, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            REG_LEN[i].store(len, Ordering::Release);
            return;
        }
    }
    REG_FULL.fetch_add(1, Ordering::Relaxed);
}

fn unregister(start: usize) {
    let h = home(start);
    for k in 0..REGISTRY {
        let i = (h + k) % REGISTRY;
        match REG_START[i].load(Ordering::Acquire) {
            0 => return,
            s if s == start => {
                REG_LEN[i].store(0, Ordering::Release);
                REG_START[i].store(TOMBSTONE, Ordering::Release);
                return;
            }
            _ => {}
        }
    }
}

/// Unmap a region given up with [`Region::leak`] (its address and length as mapped).
///
/// # Safety
/// `base`/`len` are exactly a leaked region's, and nothing uses it any more.
pub unsafe fn release_leaked(base: *mut u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { unmap(base, len) }
}

/// Map `len` bytes (a multiple of the page) readable, writable and zeroed between two guard
/// pages; returns the first byte after the lower guard.
#[cfg(not(miri))]
fn map_guarded(len: usize) -> Option<*mut u8> {
    let total = len.checked_add(2 * PAGE)?;
    // SAFETY: anonymous private mapping with no address hint; the result is checked.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let inner = (p as usize + PAGE) as *mut libc::c_void;
    // SAFETY: `inner..inner+len` lies inside the mapping just created.
    let rc = unsafe { libc::mprotect(inner, len, libc::PROT_READ | libc::PROT_WRITE) };
    if rc != 0 {
        // SAFETY: unmapping exactly what was mapped above.
        unsafe { libc::munmap(p, total) };
        return None;
    }
    register(p as usize, total);
    Some(inner as *mut u8)
}

/// Undo [`map_guarded`].
///
/// # Safety
/// `base`/`len` are exactly what `map_guarded` returned and was given; nothing uses it any more.
#[cfg(not(miri))]
unsafe fn unmap(base: *mut u8, len: usize) {
    let start = base as usize - PAGE;
    unregister(start);
    // SAFETY: the caller hands back exactly a mapping made by `map_guarded` (guards included).
    unsafe { libc::munmap(start as *mut libc::c_void, len + 2 * PAGE) };
}

/// Miri: a zeroed, page-aligned heap allocation (no guard pages).
#[cfg(miri)]
fn map_guarded(len: usize) -> Option<*mut u8> {
    let layout = std::alloc::Layout::from_size_align(len, PAGE).ok()?;
    // SAFETY: `len` is at least one page, so the layout is not zero-sized.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    register(p as usize, len);
    Some(p)
}

/// Miri: undo [`map_guarded`].
///
/// # Safety
/// `base`/`len` are exactly what `map_guarded` returned and was given; nothing uses it any more.
#[cfg(miri)]
unsafe fn unmap(base: *mut u8, len: usize) {
    unregister(base as usize);
    // SAFETY: `base` was allocated by `map_guarded` with exactly this layout.
    unsafe { std::alloc::dealloc(base, std::alloc::Layout::from_size_align_unchecked(len, PAGE)) };
}

/// Does `addr..addr+len` touch any mapping of libvmsrs (its recovery data, metadata, logs,
/// shadows, alternate stacks)? A full registry answers conservatively for what it holds.
pub fn owned(addr: usize, len: usize) -> bool {
    let end = addr.saturating_add(len);
    (0..REGISTRY).any(|i| {
        let s = REG_START[i].load(Ordering::Acquire);
        let n = REG_LEN[i].load(Ordering::Acquire);
        s > TOMBSTONE && addr < s + n && s < end
    })
}

/// An owned, zero-initialised, guarded mapping.
pub struct Region {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a Region is plain memory; synchronisation of its contents is the owner's business.
unsafe impl Send for Region {}
// SAFETY: as above; the Region handle itself is immutable.
unsafe impl Sync for Region {}

impl Region {
    /// Map `len` bytes (rounded up to pages) plus one guard page on each side.
    pub fn map(len: usize) -> Option<Region> {
        let len = round_up(len.max(1), PAGE);
        let base = map_guarded(len)?;
        Some(Region { base: NonNull::new(base)?, len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside this region (guards excluded).
    pub fn contains(&self, addr: usize) -> bool {
        let b = self.base.as_ptr() as usize;
        addr >= b && addr < b + self.len
    }

    /// Give up ownership without unmapping (used for mappings that must outlive every reader).
    pub fn leak(self) -> *mut u8 {
        let p = self.base.as_ptr();
        core::mem::forget(self);
        p
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `map`, which nothing uses any more.
        unsafe { unmap(self.base.as_ptr(), self.len) };
    }
}

pub const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}
