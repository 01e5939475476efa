//! The library's own allocator: glibc's `__libc_*` entry points, never the `malloc` symbol.
//!
//! In drop-in mode `malloc` resolves to our interposed wrapper; Rust allocations inside
//! libvmsrs must not recurse into it (ECOSYSTEM pitfalls 1 and 2), so they go straight to
//! glibc's implementation.

use core::alloc::{GlobalAlloc, Layout};
use libc::{c_void, size_t};

extern "C" {
    fn __libc_malloc(size: size_t) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
    fn __libc_realloc(p: *mut c_void, size: size_t) -> *mut c_void;
    fn __libc_memalign(align: size_t, size: size_t) -> *mut c_void;
    fn __libc_calloc(n: size_t, size: size_t) -> *mut c_void;
}

/// glibc's malloc alignment on x86-64.
const MIN_ALIGN: usize = 16;

pub struct LibcAlloc;

// SAFETY: forwards to glibc's allocator, which satisfies GlobalAlloc's contract for the
// alignments it is asked for (memalign for anything above malloc's natural alignment).
unsafe impl GlobalAlloc for LibcAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain calls into glibc's allocator.
        unsafe {
            if layout.align() <= MIN_ALIGN {
                __libc_malloc(layout.size()) as *mut u8
            } else {
                __libc_memalign(layout.align(), layout.size()) as *mut u8
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            // SAFETY: plain call into glibc's allocator.
            unsafe { __libc_calloc(1, layout.size()) as *mut u8 }
        } else {
            // SAFETY: fresh allocation of layout.size() bytes.
            unsafe {
                let p = self.alloc(layout);
                if !p.is_null() {
                    core::ptr::write_bytes(p, 0, layout.size());
                }
                p
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { __libc_free(ptr as *mut c_void) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            // SAFETY: `ptr` came from __libc_malloc/calloc with natural alignment.
            unsafe { __libc_realloc(ptr as *mut c_void, new_size) as *mut u8 }
        } else {
            // SAFETY: allocate, copy the smaller size, free the old block.
            unsafe {
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

/// The real allocator, for class-3 functions and the interposition layer.
pub mod real {
    use super::*;

    pub fn malloc(n: usize) -> *mut c_void {
        // SAFETY: plain call into glibc's allocator.
        unsafe { __libc_malloc(n) }
    }

    pub fn calloc(n: usize, size: usize) -> *mut c_void {
        // SAFETY: plain call into glibc's allocator.
        unsafe { __libc_calloc(n, size) }
    }

    /// # Safety
    /// `p` is NULL or came from this allocator.
    pub unsafe fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { __libc_realloc(p, n) }
    }

    /// # Safety
    /// `p` is NULL or came from this allocator and is not used afterwards.
    pub unsafe fn free(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { __libc_free(p) }
    }
}
