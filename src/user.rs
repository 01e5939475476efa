//! Users: a session of work bound to one thread at a time (`vmsrs_user_*`).
//!
//! A thread that never began a user runs as its own implicit user, created at its first
//! monitored store, its first fault, or (under exposure tracking, G8) its first load of an
//! active user's bytes, and ended when the thread exits. Beginning an explicit user ends the
//! implicit one first, so the two never overlap on one thread.

use crate::error::VmsrsError::{self, *};
use crate::ffi::boundary;
use crate::runtime;
use crate::thread::{self, ThreadState};
use core::sync::atomic::{AtomicU32, Ordering};
use vmsrs_hv::{EndKind, Hv};

/// The pthread key whose destructor ends a thread's user at thread exit (`u32::MAX`: not
/// created yet). Created by the library's constructor, never from a signal handler.
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// glibc keeps keys below this in each thread's first-level block: setting one never
/// allocates, so it may be done in a signal handler.
const KEY_FIRST_LEVEL: u32 = 32;

/// Create the thread-exit key (idempotent; outside signal handlers).
pub fn create_exit_key() {
    if EXIT_KEY.load(Ordering::Acquire) != u32::MAX {
        return;
    }
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: creating a key with a valid extern "C" destructor.
    if unsafe { libc::pthread_key_create(&mut k, Some(thread_exit)) } == 0
        && EXIT_KEY.compare_exchange(u32::MAX, k, Ordering::AcqRel, Ordering::Acquire).is_err()
    {
        // SAFETY: a key we just created and nobody uses.
        unsafe { libc::pthread_key_delete(k) };
    }
}

/// The user this thread runs, creating its implicit user if it has none. 0 if the user table
/// is full, or the thread is past its last round of exit destructors: the access then
/// proceeds by no user (a store is final at once and counted in `unrecorded_stores`; a load
/// that G8 could not name counts in `exposures_dropped`).
#[inline]
pub fn current_or_implicit(hv: &Hv) -> u64 {
    thread::with(|t| {
        let u = t.user.get();
        if u != 0 {
            return u;
        }
        implicit_with_altstack(hv, t)
    })
}

/// A user that another user's fault doomed (`VMSRS_EXPOSURE_POLICY=cascade`) enters its own
/// fault at its next monitored operation, inside the hv, which knows nothing of watched
/// ranges. Called on `u`'s thread before such an operation: enter the fault here first, as
/// every fault entry does ([`crate::watch::fencing`]), so what `u` stored in watched ranges
/// is restored for everyone else (G3) and its own loads there see its view (G4). One load
/// when no range is watched.
#[inline(always)]
pub fn settle_doom(hv: &Hv, u: u64) {
    if crate::watch::active() && u != 0 && hv.doomed(u) {
        doomed_fault(hv, u);
    }
}

#[cold]
#[inline(never)]
fn doomed_fault(hv: &Hv, u: u64) {
    // The program's asynchronous signals wait until the fault entry is done.
    let _e = thread::HvEntry::enter();
    let _ = crate::watch::fencing(hv, u, || hv.crash_suppression(u));
}

/// First monitored access of a thread that never began a user (kept out of the hot path).
#[cold]
#[inline(never)]
fn implicit_with_altstack(hv: &Hv, t: &ThreadState) -> u64 {
    let u = implicit(hv, t, false);
    thread::ensure_altstack_in(t);
    u
}

#[cold]
#[inline(never)]
fn implicit(hv: &Hv, t: &ThreadState, in_handler: bool) -> u64 {
    if t.exit_rounds.get() >= DESTRUCTOR_ROUNDS {
        // No destructor round is left to end it.
        return 0;
    }
    match hv.user_begin_after(t.last_user.get()) {
        Ok(u) => {
            t.user.set(u);
            t.last_user.set(u);
            t.explicit.set(false);
            t.reset_budget();
            ensure_exit_hook(t, in_handler);
            u
        }
        Err(_) => {
            table_full_warning();
            0
        }
    }
}

/// Create the implicit user from a signal handler (no altstack set-up there).
pub fn implicit_in_handler(hv: &Hv) -> u64 {
    thread::with(|t| if t.user.get() != 0 { t.user.get() } else { implicit(hv, t, true) })
}

/// Say once that the user table is full: threads without a user then store without one
/// (their stores are final at once and counted in `unrecorded_stores`).
#[cold]
fn table_full_warning() {
    static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        let mut l = crate::fault::report::Line::prefixed();
        l.s("warning: the user table is full (").dec(vmsrs_hv::users::MAX_USERS as u64);
        l.s(" live users): threads without a user now store without one; those stores are final at once ");
        l.s("(never withdrawn) and counted in unrecorded_stores\n");
        l.write_stderr();
    }
}

/// End user `u`, which this thread runs, in the hv; then this thread allows the protection
/// key of a faulted user's pages again (`watch::pkey::user_ended`).
pub fn end_here(hv: &Hv, u: u64) -> vmsrs_hv::HvResult<EndKind> {
    let kind = hv.user_end(u);
    crate::watch::pkey::user_ended(hv);
    kind
}

/// The user this thread runs, or 0.
#[inline]
pub fn current() -> u64 {
    thread::with(|t| t.user.get())
}

/// Make sure this thread's exit ends its user and frees what libvmsrs gave it.
pub fn ensure_exit_hook_here() {
    thread::with(|t| ensure_exit_hook(t, false));
}

fn ensure_exit_hook(t: &ThreadState, in_handler: bool) {
    if t.exit_hook.get() {
        return;
    }
    if !in_handler {
        create_exit_key();
    }
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key == u32::MAX || (in_handler && key >= KEY_FIRST_LEVEL) {
        // Setting it could allocate: the next ordinary call on this thread does it.
        return;
    }
    // SAFETY: any non-NULL value makes the destructor run at thread exit; for a first-level
    // key this only writes the thread's own key block.
    unsafe { libc::pthread_setspecific(key, core::ptr::NonNull::<libc::c_void>::dangling().as_ptr()) };
    t.exit_hook.set(true);
}

/// glibc's `PTHREAD_DESTRUCTOR_ITERATIONS`: rounds of key destructors at thread exit.
const DESTRUCTOR_ROUNDS: u8 = 4;

/// Thread exit: end whatever user the thread still runs, release its alternate stack, and
/// mark its hardware watchpoints as ending (they stay armed through the program's own key
/// destructors, which glibc runs after this one: `watch::hw::thread_exit`).
///
/// The program's destructors may still access monitored memory (a store, or a load that G8
/// must name), which begins an implicit user: so the hook arms itself again for every one of
/// glibc's rounds (its count is then glibc's round number) and ends such a user in the round
/// after. After the last round no implicit user is begun (`implicit`), so none outlives its
/// thread; no alternate stack is mapped once the hook has run (`thread::ensure_altstack_in`).
extern "C" fn thread_exit(_value: *mut libc::c_void) {
    crate::watch::hw::thread_exit();
    thread::with(|t| {
        if let Some(hv) = runtime::hv() {
            let u = t.user.get();
            if u != 0 {
                let _e = thread::HvEntry::enter();
                let _ = end_here(hv, u);
                t.user.set(0);
                t.explicit.set(false);
                t.armed.set(None);
            }
            hv.offer_slot(t.last_user.get());
        }
        thread::release_altstack_in(t);
        // glibc cleared the key before this call: set it again for the next round.
        let round = t.exit_rounds.get() + 1;
        t.exit_rounds.set(round);
        t.exit_hook.set(false);
        if round < DESTRUCTOR_ROUNDS {
            ensure_exit_hook(t, false);
        }
    });
}

fn end_implicit(hv: &Hv, t: &ThreadState) {
    let u = t.user.get();
    if u != 0 && !t.explicit.get() {
        let _e = thread::HvEntry::enter();
        let _ = end_here(hv, u);
        t.user.set(0);
    }
}

/// Begin the user of a rescue call (`rescue.rs`) on this thread, which runs no explicit user;
/// `false` when none can be created (the call then runs plainly).
pub fn begin_for_rescue(hv: &Hv, t: &ThreadState) -> bool {
    end_implicit(hv, t);
    let Ok(u) = hv.user_begin_after(t.last_user.get()) else {
        table_full_warning();
        return false;
    };
    adopt_explicit(t, u, None);
    thread::ensure_altstack_in(t);
    true
}

/// End the user of a rescue call (committed, or collected if it faulted); `true` if it had
/// faulted.
pub fn end_for_rescue(t: &ThreadState) -> bool {
    let u = t.user.get();
    let faulted = match (runtime::hv(), u != 0) {
        (Some(hv), true) => end_here(hv, u) == Ok(EndKind::Faulted),
        _ => false,
    };
    drop_explicit(t);
    faulted
}

/// Make `u` this thread's explicit user, armed with `arm`, with a fresh fault budget.
fn adopt_explicit(t: &ThreadState, u: u64, arm: Option<u8>) {
    t.user.set(u);
    t.last_user.set(u);
    t.explicit.set(true);
    t.armed.set(arm);
    t.reset_budget();
    ensure_exit_hook(t, false);
}

/// This thread runs no user any more (its last one has ended).
fn drop_explicit(t: &ThreadState) {
    t.user.set(0);
    t.explicit.set(false);
    t.armed.set(None);
    t.reset_budget();
}

/// Inside [`boundary`] (which counts the call as inside libvmsrs), like [`end`].
fn begin(arm: Option<u8>) -> Result<i32, VmsrsError> {
    let rt = runtime::require()?;
    thread::with(|t| {
        t.forwarded.set(0);
        if t.explicit.get() && t.user.get() != 0 {
            return Err(VMSRS_EINUSER);
        }
        end_implicit(rt.hv, t);
        let u = rt.hv.user_begin_after(t.last_user.get())?;
        adopt_explicit(t, u, arm);
        thread::ensure_altstack_in(t);
        Ok(0)
    })
}

fn end() -> Result<i32, VmsrsError> {
    let rt = runtime::require()?;
    thread::with(|t| {
        let u = t.user.get();
        if u == 0 || !t.explicit.get() {
            return Err(VMSRS_ENOUSER);
        }
        let kind = end_here(rt.hv, u)?;
        drop_explicit(t);
        Ok(match kind {
            EndKind::Committed => 0,
            EndKind::Faulted => VMSRS_FAULTED.code(),
        })
    })
}

/// Begin a user on this thread (no recovery point; see `VMSRS_USER_BEGIN()` for one).
///
/// Returns 0, or `VMSRS_EUNINIT`, `VMSRS_EINUSER` (this thread already runs an explicit
/// user), `VMSRS_ETOOMANY` (4096 users are live).
#[no_mangle]
pub extern "C" fn vmsrs_user_begin() -> i32 {
    boundary(|| begin(None))
}

/// End this thread's user at its end point. Returns 0 when it committed, `VMSRS_FAULTED` when
/// it had faulted (its writes are withdrawn and its shadow freed), or `VMSRS_EUNINIT`,
/// `VMSRS_ENOUSER` (no explicit user was begun on this thread).
#[no_mangle]
pub extern "C" fn vmsrs_user_end() -> i32 {
    boundary(end)
}

/// The id of the user this thread runs (explicit or implicit), or 0 if none. A thread that
/// never began a user gets its implicit one at its first monitored store or contained fault,
/// or, with `VMSRS_EXPOSURE=1`, at its first load of bytes an active user wrote. Ids are never
/// reused while the process lives.
#[no_mangle]
pub extern "C" fn vmsrs_user_current() -> u64 {
    current()
}

/// 1 if this thread's user is in suppression mode (faulted), else 0.
#[no_mangle]
pub extern "C" fn vmsrs_user_suppressed() -> i32 {
    let u = current();
    match runtime::hv() {
        Some(hv) if u != 0 => {
            settle_doom(hv, u);
            hv.suppressed(u) as i32
        }
        _ => 0,
    }
}

/// Internal to `VMSRS_USER_BEGIN()`: the buffer to `sigsetjmp` into. Never NULL.
#[no_mangle]
pub extern "C" fn vmsrs__recovery_point() -> *mut libc::c_void {
    thread::with(|t| t.staging().1 as *mut libc::c_void)
}

/// Internal to `VMSRS_USER_BEGIN()`: begin a user whose recovery point was just set.
#[no_mangle]
pub extern "C" fn vmsrs__user_begin_rp() -> i32 {
    let idx = thread::with(|t| t.staging().0);
    let rc = boundary(|| begin(Some(idx)));
    if rc == 0 {
        crate::locks::arm();
    }
    rc
}

/// Internal to `VMSRS_USER_BEGIN()`: the user was unwound to its recovery point after a
/// fault. Ends (collects) it and returns `VMSRS_FAULTED`.
// (Then releases the locks the user took since its recovery point: `locks::release_armed`.)
#[no_mangle]
pub extern "C" fn vmsrs__user_unwound() -> i32 {
    let rc = boundary(|| {
        let r = end();
        match r {
            Ok(_) | Err(VMSRS_ENOUSER) => Ok(VMSRS_FAULTED.code()),
            Err(e) => Err(e),
        }
    });
    crate::locks::release_armed();
    rc
}
