//! The libc symbols libvmsrs interposes, in drop-in and linked mode alike (a program linked
//! with `-lvmsrs` resolves them here before libc). Each one only forwards to the runtime.
//!
//! - `sigaction`, `signal`, `bsd_signal`, `ssignal`, `sysv_signal`, `__sysv_signal`: the
//!   program's dispositions are recorded and its handlers chained, so libvmsrs's fault
//!   handlers stay first and signals that arrive while a thread is inside libvmsrs are
//!   deferred until it leaves (`fault::chain`). glibc's `signal` calls its internal
//!   `__sigaction` directly, so each name must be interposed on its own.
//!
//! These are also defined in Rust programs that link the rlib (the test binaries), where
//! they are as transparent as in any C program.

use libc::{c_int, sighandler_t};
use vmsrs_runtime::fault::chain;

/// `sigaction(2)`, through libvmsrs's table of the program's dispositions.
///
/// # Safety
/// sigaction's contract.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { chain::program_sigaction(sig, act, old) }
}

/// `signal(2)` (BSD semantics, as glibc's).
#[no_mangle]
pub extern "C" fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    chain::program_signal(sig, handler, false)
}

/// `bsd_signal`: as `signal`.
#[no_mangle]
pub extern "C" fn bsd_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    chain::program_signal(sig, handler, false)
}

/// `ssignal`: as `signal`.
#[no_mangle]
pub extern "C" fn ssignal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    chain::program_signal(sig, handler, false)
}

/// `sysv_signal`: System V semantics (reset on delivery, not blocked while handled).
#[no_mangle]
pub extern "C" fn sysv_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    chain::program_signal(sig, handler, true)
}

/// `__sysv_signal`: as `sysv_signal`.
#[no_mangle]
pub extern "C" fn __sysv_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    chain::program_signal(sig, handler, true)
}
