//! The C boundary: every exported function runs inside [`boundary`], so a panic becomes
//! `VMSRS_EINTERNAL` instead of unwinding into C (release builds also abort on panic), the
//! call counts as inside libvmsrs (asynchronous signals are deferred until it returns, so a
//! handler may call libvmsrs whatever it interrupted: `thread.rs`), and pointer arguments are
//! checked here in one place.

use crate::error::VmsrsError;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Run `f`, mapping `Err` and panics to a status code.
pub fn boundary(f: impl FnOnce() -> Result<i32, VmsrsError>) -> i32 {
    let _inside = crate::thread::HvEntry::enter();
    // A fork child starts its own reporter thread at its first call (one relaxed load).
    crate::reporter::poll();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => e.code(),
        Err(_) => VmsrsError::VMSRS_EINTERNAL.code(),
    }
}

/// `Err(VMSRS_ENULL)` for a NULL pointer.
pub fn non_null<T>(p: *const T) -> Result<*const T, VmsrsError> {
    if p.is_null() {
        Err(VmsrsError::VMSRS_ENULL)
    } else {
        Ok(p)
    }
}

/// `Err(VMSRS_EZEROLEN)` for a zero length.
pub fn non_zero(n: usize) -> Result<usize, VmsrsError> {
    if n == 0 {
        Err(VmsrsError::VMSRS_EZEROLEN)
    } else {
        Ok(n)
    }
}
