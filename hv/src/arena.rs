//! Guarded anonymous mappings: the only memory the recovery store lives in.
//!
//! Every region sits between two `PROT_NONE` guard pages, so a linear overrun from a
//! neighbouring heap object or from a monitored range faults instead of silently editing
//! recovery data (G6). Mapping is a syscall, never `malloc`, so the store can grow inside a
//! signal handler and never recurses into an interposed allocator.

use core::ptr::NonNull;

const PAGE: usize = 4096;

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
        Some(Region { base: NonNull::new(inner as *mut u8)?, len })
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
        let start = self.base.as_ptr() as usize - PAGE;
        // SAFETY: unmaps exactly the mapping (guards included) created in `map`.
        unsafe { libc::munmap(start as *mut libc::c_void, self.len + 2 * PAGE) };
    }
}

pub const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}
