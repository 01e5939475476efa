//! Class 3 of the paper's function library: memory. Allocation bounds are recorded for the
//! pointer checks of class 4; `memset`/`memcpy`/`memmove` on monitored memory are range
//! stores. A suppressed user's `free` is withheld (a counted leak, never a double free).

use crate::access;
use crate::alloc::real;
use crate::error::{set_last, VmsrsError::*};
use crate::runtime::{self, bump, COUNTERS};
use crate::{thread, user};
use libc::c_void;
use std::collections::BTreeMap;
use vmsrs_hv::{host::inproc::vmmcall, Hypercall};

/// Live allocations made through `vmsrs_malloc` and friends: start → length.
static BOUNDS: spin::Mutex<BTreeMap<usize, usize>> = spin::Mutex::new(BTreeMap::new());

/// Take the bounds table around `fork` (see `crate::fork`).
pub fn lock_for_fork() {
    core::mem::forget(BOUNDS.lock());
}

/// Release the table taken by [`lock_for_fork`].
pub fn unlock_after_fork() {
    // SAFETY: taken by lock_for_fork on this thread (or, in the child, its copy), with its
    // guard forgotten.
    unsafe { BOUNDS.force_unlock() };
}

fn record(p: *mut c_void, n: usize) {
    let _e = thread::HvEntry::enter();
    if !p.is_null() {
        BOUNDS.lock().insert(p as usize, n.max(1));
    }
}

fn forget(p: *mut c_void) -> Option<usize> {
    let _e = thread::HvEntry::enter();
    // Bound to a local: the guard must go before `_e` (a tail temporary would outlive it).
    let removed = BOUNDS.lock().remove(&(p as usize));
    removed
}

/// The allocation containing `addr`: (start, len).
pub fn allocation_of(addr: usize) -> Option<(usize, usize)> {
    let _e = thread::HvEntry::enter();
    let b = BOUNDS.lock();
    let (&s, &n) = b.range(..=addr).next_back()?;
    (addr < s + n).then_some((s, n))
}

fn suppressed() -> bool {
    crate::user::vmsrs_user_suppressed() == 1
}

/// `malloc`, with the allocation's bounds recorded.
#[no_mangle]
pub extern "C" fn vmsrs_malloc(n: usize) -> *mut c_void {
    let _e = thread::HvEntry::enter();
    let p = real::malloc(n);
    record(p, n);
    p
}

/// `calloc`, with the allocation's bounds recorded (NULL on overflow, as calloc).
#[no_mangle]
pub extern "C" fn vmsrs_calloc(n: usize, size: usize) -> *mut c_void {
    let _e = thread::HvEntry::enter();
    let p = real::calloc(n, size);
    record(p, n.saturating_mul(size));
    p
}

/// `realloc`, keeping the bounds table current. For a suppressed user the old block is not
/// freed (its contents are copied to a new block), so a faulty user can never free memory
/// others still use.
///
/// # Safety
/// `p` is NULL or a live allocation from this allocator.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_realloc(p: *mut c_void, n: usize) -> *mut c_void {
    let _e = thread::HvEntry::enter();
    if p.is_null() {
        return vmsrs_malloc(n);
    }
    if suppressed() {
        let old = allocation_of(p as usize).map_or(0, |(_, len)| len);
        let q = real::malloc(n);
        if !q.is_null() {
            // SAFETY: both blocks hold at least min(old, n) bytes (old is the recorded size;
            // unrecorded blocks copy nothing).
            unsafe { libc::memcpy(q, p, old.min(n)) };
            record(q, n);
        }
        bump(&COUNTERS.frees_withheld);
        return q;
    }
    // SAFETY: forwarded contract.
    let q = unsafe { real::realloc(p, n) };
    // realloc(p, 0) frees p; a failed realloc leaves p allocated, bounds unchanged.
    if !q.is_null() || n == 0 {
        forget(p);
        record(q, n);
    }
    q
}

/// `free`. Withheld (counted in `frees_withheld`) when the calling user is suppressed.
///
/// # Safety
/// `p` is NULL or a live allocation from this allocator.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_free(p: *mut c_void) {
    let _e = thread::HvEntry::enter();
    if p.is_null() {
        return;
    }
    if suppressed() {
        bump(&COUNTERS.frees_withheld);
        return;
    }
    forget(p);
    // SAFETY: forwarded contract.
    unsafe { real::free(p) };
}

/// `memset` that records monitored bytes as stores of this user. Returns `dst`, or NULL
/// with `vmsrs_last_error()` set: `VMSRS_ENULL` when `dst` is NULL and `n > 0`,
/// `VMSRS_EFAULT` when `dst` is not writable (the calling user made a memory error and is
/// now faulted; under the unwind policy the call unwinds to its recovery point instead).
/// `n == 0` is a no-op, as in libc.
///
/// # Safety
/// `dst` must be writable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_memset(dst: *mut c_void, c: i32, n: usize) -> *mut c_void {
    if n == 0 {
        return dst;
    }
    if dst.is_null() {
        set_last(VMSRS_ENULL);
        return core::ptr::null_mut();
    }
    let r = {
        let _e = thread::HvEntry::enter();
        fill(dst as usize, c as u8, n)
    };
    returned_pointer(dst, r)
}

pub(crate) fn fill(dst: usize, byte: u8, n: usize) -> Result<(), crate::error::VmsrsError> {
    match runtime::hv() {
        Some(hv) if hv.may_touch(dst, n) => {
            let _e = thread::HvEntry::enter();
            let u = user::current_or_implicit(hv);
            user::settle_doom(hv, u);
            // SAFETY: Fill takes no buffers; `dst` is written as monitored memory or through
            // guarded copies.
            let r = unsafe { vmmcall(hv, Hypercall::Fill, [dst as u64, byte as u64, n as u64, u, 0, 0]) };
            crate::profile::status(r).map(|_| ()).map_err(|e| {
                if e == VMSRS_EFAULT {
                    crate::fault::note_bad_pointer(dst)
                } else {
                    e
                }
            })
        }
        _ => {
            let chunk = [byte; 256];
            let mut done = 0;
            while done < n {
                let k = (n - done).min(chunk.len());
                // SAFETY: a guarded copy from our own buffer.
                unsafe { vmsrs_hv::uaccess::copy((dst + done) as *mut u8, chunk.as_ptr(), k) }
                    .map_err(|b| crate::fault::note_bad_pointer(b.0))?;
                done += k;
            }
            Ok(())
        }
    }
}

/// The result of a pointer-returning class-3 call: `dst`, or NULL with the last error set
/// (after a bad pointer has been dealt with as the user's fault).
fn returned_pointer(dst: *mut c_void, r: Result<(), crate::error::VmsrsError>) -> *mut c_void {
    match r {
        Ok(()) => dst,
        Err(e) => {
            set_last(e);
            crate::fault::settle(0);
            core::ptr::null_mut()
        }
    }
}

fn copy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    if n == 0 {
        return dst;
    }
    if dst.is_null() || src.is_null() {
        set_last(VMSRS_ENULL);
        return core::ptr::null_mut();
    }
    let r = {
        let _e = thread::HvEntry::enter();
        access::assign(dst as usize, src as usize, n)
    };
    returned_pointer(dst, r)
}

/// `memcpy` through the monitored view: monitored source bytes are read as G3/G4 say,
/// monitored destination bytes are recorded stores. Returns `dst`, or NULL with
/// `vmsrs_last_error()` set: `VMSRS_ENULL` for a NULL pointer with `n > 0`, `VMSRS_EFAULT`
/// for a buffer that cannot be accessed (as for `vmsrs_memset`).
///
/// # Safety
/// `dst` writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    copy(dst, src, n)
}

/// `memmove` through the monitored view (overlap allowed). Same returns as `vmsrs_memcpy`.
///
/// # Safety
/// `dst` writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    copy(dst, src, n)
}
