//! The runtime's side of the libc symbols libvmsrs.so interposes (preload/src/memory.rs,
//! preload/src/output.rs): the slow paths of `memset`/`memcpy`/`memmove` on monitored memory,
//! the withheld `free` of a suppressed user, and the question "must this output call be
//! checked or marked?". The interposers keep their no-fault path to a few loads and call
//! in here only when one of those says so.

use crate::fault::report::Line;
use crate::runtime::{self, bump, COUNTERS};
use crate::{access, fault, thread, user};
use core::sync::atomic::{AtomicU64, Ordering};

/// Is this thread inside libvmsrs (a call of the runtime or the hv)? Then the interposed
/// functions are plain: the hv's own copies must not be recorded again.
#[inline]
pub fn inside_libvmsrs() -> bool {
    thread::with(|t| t.depth.get() != 0)
}

/// Is a user faulted anywhere (the load gate)? Cheap: one load.
#[inline(always)]
pub fn any_fault() -> bool {
    !runtime::loads_are_plain()
}

/// Is this thread's user suppressed? Only asked after [`any_fault`].
#[inline]
pub fn current_suppressed() -> bool {
    let u = user::current();
    u != 0
        && runtime::hv().is_some_and(|hv| {
            user::settle_doom(hv, u);
            hv.suppressed(u)
        })
}

/// Does `dst..dst+n` (or, while a user is faulted, `src..src+n`) possibly touch monitored
/// memory? The interposers' no-fault test: the hv handle and its two range bounds.
#[inline(always)]
pub fn may_be_monitored(dst: usize, src: usize, n: usize) -> bool {
    match runtime::hv() {
        Some(hv) => hv.may_touch(dst, n) || (src != 0 && any_fault() && hv.may_touch(src, n)),
        None => false,
    }
}

/// `memcpy`/`memmove` that may touch monitored memory: the destination's monitored bytes are
/// range stores of this thread's user, the source's are read through its view (as
/// `vmsrs_assign`). Returns false when the caller must do the plain copy (inside libvmsrs).
/// A buffer that cannot be accessed is this user's memory error, contained here (no lock is
/// held); the copy then stops where it could not go on.
#[cold]
pub fn monitored_copy(dst: usize, src: usize, n: usize) -> bool {
    if inside_libvmsrs() {
        return false;
    }
    let r = access::assign(dst, src, n);
    if r.is_err() {
        fault::settle(0);
    }
    true
}

/// `memset` that may touch monitored memory (see [`monitored_copy`]).
#[cold]
pub fn monitored_fill(dst: usize, byte: u8, n: usize) -> bool {
    if inside_libvmsrs() {
        return false;
    }
    if crate::memory::fill(dst, byte, n).is_err() {
        fault::settle(0);
    }
    true
}

/// The last user whose withheld `free` was reported (one line per user).
static REPORTED: AtomicU64 = AtomicU64::new(0);

/// After its fault a user's `free` is not performed (DESIGN §5): if this thread's user is
/// suppressed, count the withheld free (`frees_withheld`), report it once per user, and
/// return true: the caller must not free `p`. What = "free" or "realloc".
#[cold]
pub fn withhold_free(p: usize, what: &str) -> bool {
    if !current_suppressed() {
        return false;
    }
    bump(&COUNTERS.frees_withheld);
    let u = user::current();
    if REPORTED.swap(u, Ordering::Relaxed) != u {
        let mut l = Line::prefixed();
        l.s("user ").dec(u).s(" is suppressed: its ").s(what).s("(").hex(p as u64);
        l.s(") is withheld (a leak, never a double free; counted in frees_withheld)\n");
        l.write_stderr();
    }
    true
}

/// Must an output call on this thread check its pointer arguments before libc takes the
/// stream's lock (the thread runs a user, DESIGN §5), and mark its output (the user is
/// suppressed)? 0: neither (the plain call); 1: check; 2: check and mark.
#[inline]
pub fn output_mode() -> i32 {
    let u = user::current();
    if u == 0 {
        return 0;
    }
    if any_fault() && current_suppressed() {
        2
    } else {
        1
    }
}

/// Count one marked output call.
pub fn count_marked_output() {
    bump(&COUNTERS.suppressed_outputs);
}

/// `realloc(p, n)` by a suppressed user (DESIGN §5): the old block is never freed (a faulty
/// user must not free memory others may still use); its contents, read through guarded
/// copies, move to a new block from glibc's allocator. `None`: this thread's user is not
/// suppressed (the caller does the real realloc). `realloc(p, 0)` withholds the free and
/// returns NULL, as glibc's returns after freeing.
#[cold]
pub fn suppressed_realloc(p: usize, n: usize) -> Option<*mut libc::c_void> {
    if !withhold_free(p, "realloc") {
        return None;
    }
    if n == 0 {
        return Some(core::ptr::null_mut());
    }
    let q = crate::alloc::real::malloc(n);
    if q.is_null() {
        return Some(q);
    }
    // glibc keeps the chunk size (low 3 bits are flags, bit 1: mmapped) in the word before
    // the block; the usable size is the chunk size less its header (two words if mmapped).
    // Read it guarded: a faulty user's pointer may be wild.
    let usable = match vmsrs_hv::uaccess::read(p.wrapping_sub(8) as *const usize) {
        Ok(size) => {
            let chunk = size & !7;
            chunk.saturating_sub(if size & 2 != 0 { 16 } else { 8 })
        }
        Err(b) => {
            fault::note_bad_pointer(b.0);
            0
        }
    };
    let k = usable.min(n);
    // SAFETY: `q` is our fresh block of `n >= k` bytes; `p` is read guarded.
    if let Err(b) = unsafe { vmsrs_hv::uaccess::copy(q as *mut u8, p as *const u8, k) } {
        fault::note_bad_pointer(b.0);
    }
    fault::settle(0);
    Some(q)
}
