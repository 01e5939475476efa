//! Class 4 of the paper's function library: pointer arithmetic and bounds checks. A pointer
//! that leaves the allocation (from `vmsrs_malloc`) or profiled range it points into is a
//! fault of the current user, which enters suppression mode.

use crate::error::{set_last, VmsrsError::*};
use crate::ffi::{boundary, non_null, non_zero};
use crate::{fault, memory, runtime, thread, user};
use libc::c_void;

/// The object (allocation or profiled range) containing `p`, as (start, len).
fn object_of(p: usize) -> Option<(usize, usize)> {
    memory::allocation_of(p).or_else(|| runtime::hv()?.range_of(p).map(|(s, n, _)| (s, n)))
}

/// Make the current user faulted (a bounds fault), as if it had crashed.
fn bounds_fault(addr: usize) {
    let Some(hv) = runtime::hv() else { return };
    let u = user::current_or_implicit(hv);
    if u == 0 {
        return;
    }
    {
        let _e = thread::HvEntry::enter();
        let _ = crate::watch::fencing(hv, u, || hv.crash_suppression(u));
    }
    runtime::bump(&runtime::COUNTERS.bounds_faults);
    fault::count_explicit();
    fault::note_explicit(crate::hypervisor::vmsrs_fault_kind::VMSRS_KIND_BOUNDS as i32, addr as u64, u);
}

/// `p + delta`, checked: if `p` lies in a known allocation or profiled range and the result
/// leaves it (one past the end is allowed), the current user faults and NULL is returned
/// (`vmsrs_last_error() == VMSRS_ERANGE`). NULL `p` returns NULL with `VMSRS_ENULL`.
/// Pointers into unknown memory (stack, unprofiled globals) are not judged.
#[no_mangle]
pub extern "C" fn vmsrs_ptr_add(p: *const c_void, delta: isize) -> *mut c_void {
    if p.is_null() {
        set_last(VMSRS_ENULL);
        return core::ptr::null_mut();
    }
    let r = (p as usize).wrapping_add_signed(delta);
    if let Some((s, n)) = object_of(p as usize) {
        if r < s || r > s + n {
            bounds_fault(r);
            set_last(VMSRS_ERANGE);
            return core::ptr::null_mut();
        }
    }
    r as *mut c_void
}

/// Check that `n` bytes at `p` lie inside the allocation or profiled range `p` points into.
/// Returns 0, `VMSRS_ENULL`, `VMSRS_EZEROLEN`, or `VMSRS_ERANGE` (and the current user is now
/// faulted). Pointers into unknown memory return 0.
#[no_mangle]
pub extern "C" fn vmsrs_ptr_check(p: *const c_void, n: usize) -> i32 {
    boundary(|| {
        non_null(p)?;
        non_zero(n)?;
        if let Some((s, len)) = object_of(p as usize) {
            let end = (p as usize).checked_add(n).ok_or(VMSRS_ERANGE);
            if end.map_or(true, |e| e > s + len) {
                bounds_fault(p as usize);
                return Err(VMSRS_ERANGE);
            }
        }
        Ok(0)
    })
}
