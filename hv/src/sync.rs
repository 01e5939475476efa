//! Synchronisation primitives of the store, swappable for loom's under `--cfg loom` so the
//! critical sections of store, restore and fault entry can be model-checked.
//!
//! Every primitive here is async-signal-safe: no allocation, no futex, no blocking syscall
//! beyond `sched_yield`. This is what allows fault entry to run inside a signal handler.

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A test-and-test-and-set spin lock guarding one stripe of granule metadata.
///
/// Built on `spin`'s relax idea but on our own atomic so loom can see it. Spins briefly, then
/// yields the CPU: on a 2-core machine a preempted holder must be allowed to run.
pub struct StripeLock {
    held: AtomicBool,
}

impl Default for StripeLock {
    fn default() -> Self {
        Self::new()
    }
}

impl StripeLock {
    pub fn new() -> Self {
        StripeLock { held: AtomicBool::new(false) }
    }

    #[inline]
    pub fn lock(&self) -> StripeGuard<'_> {
        if self.held.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
        StripeGuard { lock: self }
    }

    /// Take the lock with no guard (for `fork`: taken before, released after by
    /// [`StripeLock::unlock_raw`], in the parent and in the child).
    pub fn lock_raw(&self) {
        core::mem::forget(self.lock());
    }

    /// Release a lock taken with [`StripeLock::lock_raw`].
    pub fn unlock_raw(&self) {
        self.held.store(false, Ordering::Release);
    }

    #[cold]
    fn lock_slow(&self) {
        let mut spins = 0u32;
        loop {
            while self.held.load(Ordering::Relaxed) {
                spins += 1;
                relax(spins);
            }
            if self.held.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }
}

/// Back off while a lock is held: spin, and yield the CPU now and then.
#[cfg(not(loom))]
#[inline]
pub fn relax(spins: u32) {
    if spins.is_multiple_of(64) {
        // SAFETY: sched_yield has no preconditions and is async-signal-safe.
        unsafe { libc::sched_yield() };
    } else {
        core::hint::spin_loop();
    }
}

#[cfg(loom)]
pub fn relax(_spins: u32) {
    loom::thread::yield_now();
}

/// Releases the stripe on drop.
pub struct StripeGuard<'a> {
    lock: &'a StripeLock,
}

impl Drop for StripeGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.held.store(false, Ordering::Release);
    }
}
