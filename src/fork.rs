//! `fork` (ECOSYSTEM pitfall 7): every table-wide lock of libvmsrs is taken before the fork
//! (pthread_atfork prepare) and released after it, in the parent and in the child, so a child
//! never inherits a lock held mid-operation by a thread that does not come along (httpd forks
//! its children from a running parent). Signals are blocked across the window, so a handler
//! that calls into libvmsrs cannot wait on a lock its own thread took for the fork. The child
//! also forgets the grace-period sections of the threads it did not inherit.

use core::cell::Cell;

thread_local! {
    /// The forking thread's signal mask, restored after the fork.
    static SAVED: Cell<Option<libc::sigset_t>> = const { Cell::new(None) };
}

pub extern "C" fn prepare() {
    // SAFETY: sets on the stack; pthread_sigmask is async-signal-safe.
    let mut all: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: filling and applying local sets.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
    }
    SAVED.with(|s| s.set(Some(old)));
    crate::fault::chain::lock_for_fork();
    crate::memory::lock_for_fork();
    crate::watch::lock_for_fork();
    if let Some(hv) = crate::runtime::hv() {
        hv.before_fork();
    }
}

fn after(child: bool) {
    if let Some(hv) = crate::runtime::hv() {
        hv.after_fork(child);
    }
    if child {
        crate::watch::after_fork_child();
    } else {
        crate::watch::unlock_after_fork_parent();
    }
    crate::memory::unlock_after_fork();
    crate::fault::chain::unlock_after_fork(child);
    if let Some(old) = SAVED.with(|s| s.take()) {
        // SAFETY: restoring the mask saved by prepare on this thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
    }
}

pub extern "C" fn parent() {
    after(false);
}

pub extern "C" fn child() {
    after(true);
}
