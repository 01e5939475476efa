//! Chaining to the program's own handlers (ECOSYSTEM pitfall 11): a fault that is not
//! contained goes to the handler the program had before libvmsrs, or, if it had none, to the
//! default action (so core dumps and systemd-coredump still work).

use crate::error::VmsrsError;
use crate::runtime::{bump, COUNTERS};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use libc::{c_int, c_void, siginfo_t};

struct Saved(UnsafeCell<[libc::sigaction; 65]>);

// SAFETY: each entry is written once at install time, before our handler for that signal
// is active, and only read afterwards.
unsafe impl Sync for Saved {}

static SAVED: Saved = Saved(UnsafeCell::new(
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask, no flags).
    unsafe { core::mem::zeroed() },
));
static TAKEN: AtomicU64 = AtomicU64::new(0);

pub type Handler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);

/// Install `handler` for `sig` with `SA_SIGINFO | SA_ONSTACK`, saving the previous action.
pub fn take_over(sig: c_int, handler: Handler) -> Result<(), VmsrsError> {
    if TAKEN.load(Ordering::Acquire) & (1 << sig) != 0 {
        return Ok(());
    }
    // SAFETY: zeroed sigaction is valid; fields are set below.
    let mut sa: libc::sigaction = unsafe { core::mem::zeroed() };
    sa.sa_sigaction = handler as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: sigemptyset on a local.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: writing this signal's slot before the handler is installed (see `Saved`).
    let old = unsafe { &mut (*SAVED.0.get())[sig as usize] };
    // SAFETY: valid sigaction pointers.
    if unsafe { libc::sigaction(sig, &sa, old) } != 0 {
        return Err(VmsrsError::VMSRS_EINVAL);
    }
    TAKEN.fetch_or(1 << sig, Ordering::AcqRel);
    Ok(())
}

/// Hand the signal to the program's previous handler, or apply the default action.
///
/// # Safety
/// `info` and `uc` are the arguments the kernel passed to the current signal handler.
pub unsafe fn forward(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    bump(&COUNTERS.faults_chained);
    // SAFETY: read-only after install.
    let old = unsafe { &(*SAVED.0.get())[sig as usize] };
    let h = old.sa_sigaction;
    if h == libc::SIG_IGN {
        return;
    }
    if h == libc::SIG_DFL {
        // SAFETY: zeroed sigaction = SIG_DFL.
        let dfl: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: restoring the default action; the faulting instruction re-executes (or the
        // signal is re-raised) and the process takes the default action with a core dump.
        unsafe {
            libc::sigaction(sig, &dfl, core::ptr::null_mut());
            if (*info).si_code <= 0 {
                libc::raise(sig);
            }
        }
        return;
    }
    if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed this as an SA_SIGINFO handler.
        let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        f(sig, info, uc);
    } else {
        // SAFETY: the program installed this as a plain handler.
        let f: extern "C" fn(c_int) = unsafe { core::mem::transmute::<usize, extern "C" fn(c_int)>(h) };
        f(sig);
    }
}
