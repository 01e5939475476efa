//! Locks held by users (DESIGN §5: "locks the unwound user holds are released").
//!
//! Unwinding a user (to `VMSRS_USER_BEGIN()`, to a rescue point, or by ending its thread)
//! skips the code that would have unlocked what it locked, so every other user waiting on
//! those locks would hang. libvmsrs.so interposes the lock and unlock functions of
//! `pthread_mutex_*`, `pthread_rwlock_*` and `pthread_spin_*` (preload/src/interpose.rs,
//! which forward here), and each thread keeps a stack of the locks it holds:
//!
//! - a successful acquisition pushes (kind, address, sequence number); an unlock removes the
//!   newest entry for that address (usually the top, else found by a search downwards);
//!   failed acquisitions (`EBUSY`, `ETIMEDOUT`, `EDEADLK`, ...) and failed unlocks (`EPERM`)
//!   leave the record alone; `EOWNERDEAD` (robust mutexes) is an acquisition;
//! - a recovery point takes a [`mark`] (the sequence number of the next acquisition) when it
//!   is armed ([`arm`]); where the unwound user resumes, in normal context, [`release_armed`]
//!   (or [`release_since`]) unlocks, newest first and through the real unlock functions,
//!   every lock acquired since the mark and still held, and reports each on stderr;
//! - a thread ended for lack of a recovery point releases everything it holds
//!   (`release_since(0)`).
//!
//! Locks taken before the recovery point (outside the user) stay held: they belong to the
//! code that will run on after the unwind. A mutex (or rwlock write lock) whose owner, as
//! glibc records it, is no longer this thread is not unlocked (it was handed over or
//! unlocked behind our back, which POSIX leaves undefined); it is reported as skipped.
//!
//! Cost: one thread-local access, two stores and a counter on acquisition, one compare and a
//! store on release (no atomics, no shared cache lines); the record holds [`CAPACITY`]
//! locks per thread, and acquisitions beyond that are counted (`COUNTERS.locks_untracked`),
//! never a crash: they are simply not released at an unwind.
//!
//! Condition variables: `pthread_cond_wait`/`timedwait`/`clockwait` release and re-acquire
//! the mutex inside libc (not through these symbols), and the mutex is held again when they
//! return, whatever they return, so the record stays right across a wait and they are not
//! interposed. A user cannot be unwound while it is blocked in the wait (faults happen in
//! running code); the one exception, a contained fault in a signal handler that interrupted
//! the wait, leaves the condition variable's own waiter state inconsistent anyway.
//!
//! Signals: the record is per thread and updated so that a signal handler's balanced
//! lock/unlock pairs never corrupt the entries of the code it interrupted (a slot is
//! reserved before it is written). Nothing here is called to unlock from a signal handler:
//! releases run where the unwound user resumes, in normal context.
//!
//! Real functions: resolved once by the library's constructor ([`resolve_all`]), or lazily by
//! the first call that arrives before it (another library's constructor may lock first),
//! with `dlvsym(RTLD_NEXT, name, version)` at the oldest x86-64 version of each symbol
//! (`GLIBC_2.2.5`, `GLIBC_2.30` for the clock variants): on glibc 2.34+, where these moved
//! into libc, that version is an alias of the current code (`nm -D libc.so.6`), and on older
//! glibc it is libpthread's, so the first lookup succeeds and `dlerror` never allocates.
//! `GLIBC_2.34`, then libc's own handle (`RTLD_NEXT` finds nothing when the caller is the
//! last object), then an unversioned lookup are the fallbacks. `RTLD_DEFAULT` is never used:
//! it would find the interposed symbols themselves.

use crate::runtime::{bump, COUNTERS};
use core::cell::{Cell, UnsafeCell};
use core::ffi::CStr;
use core::sync::atomic::{compiler_fence, AtomicUsize, Ordering};
use libc::{c_int, clockid_t, pthread_mutex_t, pthread_rwlock_t, pthread_spinlock_t, timespec};

/// Locks recorded per thread; acquisitions beyond are counted, not recorded.
const CAPACITY: usize = 64;

/// What kind of lock an entry is (kept in the low bits of its address: every lock type is at
/// least 4-byte aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LockKind {
    Mutex = 0,
    RwlockRead = 1,
    RwlockWrite = 2,
    Spin = 3,
}

impl LockKind {
    fn from_bits(b: usize) -> LockKind {
        match b & 3 {
            0 => LockKind::Mutex,
            1 => LockKind::RwlockRead,
            2 => LockKind::RwlockWrite,
            _ => LockKind::Spin,
        }
    }

    /// How reports name it.
    pub fn name(self) -> &'static str {
        match self {
            LockKind::Mutex => "pthread_mutex",
            LockKind::RwlockRead => "pthread_rwlock (read)",
            LockKind::RwlockWrite => "pthread_rwlock (write)",
            LockKind::Spin => "pthread_spinlock",
        }
    }
}

/// The report name of a lock kind given by its number (the low bits of a recorded word).
pub fn kind_name(bits: usize) -> &'static str {
    LockKind::from_bits(bits).name()
}

/// One lock this thread holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldLock {
    pub kind: LockKind,
    /// The address of the lock object.
    pub addr: usize,
    /// Acquisition number on this thread (compare with a [`mark`]).
    pub seq: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    /// Address | kind.
    word: usize,
    seq: u64,
}

impl Entry {
    fn held(self) -> HeldLock {
        HeldLock { kind: LockKind::from_bits(self.word), addr: self.word & !3, seq: self.seq }
    }
}

struct Record {
    len: Cell<u32>,
    /// Sequence number of the next acquisition.
    next: Cell<u64>,
    /// The mark of the armed recovery point (see [`arm`]).
    armed: Cell<u64>,
    entries: UnsafeCell<[Entry; CAPACITY]>,
}

thread_local! {
    // const-initialised, no destructor: no allocation, usable in a signal handler.
    static RECORD: Record = const {
        Record {
            len: Cell::new(0),
            next: Cell::new(1),
            armed: Cell::new(u64::MAX),
            entries: UnsafeCell::new([Entry { word: 0, seq: 0 }; CAPACITY]),
        }
    };
}

#[inline(always)]
fn push(kind: LockKind, addr: usize) {
    RECORD.with(|r| {
        let n = r.len.get() as usize;
        let seq = r.next.get();
        r.next.set(seq + 1);
        if n < CAPACITY {
            // Reserve the slot before writing it: a signal handler that locks and unlocks in
            // between uses the slot above.
            r.len.set(n as u32 + 1);
            compiler_fence(Ordering::SeqCst);
            // SAFETY: this thread's own record, n < CAPACITY; no reference into it is live.
            unsafe { (*r.entries.get())[n] = Entry { word: addr | kind as usize, seq } };
        } else {
            overflow();
        }
    })
}

#[cold]
#[inline(never)]
fn overflow() {
    bump(&COUNTERS.locks_untracked);
}

/// Forget the newest entry for `addr` (an unlock succeeded). No entry: the lock was taken
/// before the record overflowed, or by code that did not go through these symbols.
#[inline(always)]
fn pop(addr: usize) {
    RECORD.with(|r| {
        let n = r.len.get() as usize;
        if n == 0 {
            return;
        }
        // SAFETY: this thread's own record; no other reference into it is live.
        let e = unsafe { &mut *r.entries.get() };
        if e[n - 1].word & !3 == addr {
            r.len.set(n as u32 - 1);
        } else {
            remove_below(r, e, n, addr);
        }
    })
}

#[cold]
#[inline(never)]
fn remove_below(r: &Record, e: &mut [Entry; CAPACITY], n: usize, addr: usize) {
    let Some(i) = (0..n - 1).rev().find(|&i| e[i].word & !3 == addr) else { return };
    // Shift the newer entries down; a handler's pushes go above `n`, untouched here.
    e.copy_within(i + 1..n, i);
    compiler_fence(Ordering::SeqCst);
    r.len.set(n as u32 - 1);
}

/// The current mark: locks acquired from now on are "since" it.
pub fn mark() -> u64 {
    RECORD.with(|r| r.next.get())
}

/// A recovery point was armed on this thread (`VMSRS_USER_BEGIN()`, a rescue call): locks
/// acquired from now on are released if the user is unwound to it.
pub fn arm() {
    RECORD.with(|r| r.armed.set(r.next.get()))
}

/// The mark of the armed recovery point (`u64::MAX`, nothing, if none was armed).
pub fn armed_mark() -> u64 {
    RECORD.with(|r| r.armed.get())
}

/// The locks this thread holds that were acquired since `mark`, newest first (a copy: usable
/// from a signal handler, e.g. to list them in a fault report before they are released).
pub fn held_since(mark: u64) -> impl Iterator<Item = HeldLock> {
    let (n, copy) = RECORD.with(|r| {
        let n = r.len.get() as usize;
        // SAFETY: this thread's own record, read by value.
        (n, unsafe { *r.entries.get() })
    });
    (0..n).rev().map(move |i| copy[i]).filter(move |e| e.seq >= mark).map(Entry::held)
}

/// Number of locks this thread holds (as recorded).
pub fn depth() -> usize {
    RECORD.with(|r| r.len.get() as usize)
}

/// What became of a lock at release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// Unlocked through the real unlock function (which returned 0).
    Unlocked,
    /// Not unlocked: glibc records another owner (or none) for it.
    NotOwned,
    /// The real unlock function returned this error.
    Failed(c_int),
}

/// Unlock, newest first and through the real unlock functions, every lock this thread
/// acquired since `mark` and still holds; report each (`whose`: "the unwound user", ...).
/// Returns how many were unlocked. Normal context only (never from a signal handler).
pub fn release_since(mark: u64, whose: &str) -> usize {
    let mut unlocked = 0;
    loop {
        let top = RECORD.with(|r| {
            let n = r.len.get() as usize;
            if n == 0 {
                return None;
            }
            // SAFETY: this thread's own record, read by value.
            let e = unsafe { (*r.entries.get())[n - 1] };
            if e.seq < mark {
                return None;
            }
            r.len.set(n as u32 - 1);
            Some(e.held())
        });
        let Some(lock) = top else { break };
        let outcome = release(&lock);
        if outcome == Released::Unlocked {
            unlocked += 1;
            bump(&COUNTERS.locks_released);
        }
        report(&lock, outcome, whose);
    }
    unlocked
}

/// [`release_since`] the armed recovery point's mark (the unwound user's locks), then disarm.
pub fn release_armed() -> usize {
    let m = RECORD.with(|r| r.armed.replace(u64::MAX));
    if m == u64::MAX {
        return 0;
    }
    release_since(m, "the unwound user")
}

/// glibc's owner fields (x86-64 `struct __pthread_mutex_s`: `__lock`, `__count`, `__owner`;
/// `struct __pthread_rwlock_arch_t`: six unsigned words, then `__cur_writer`).
const MUTEX_OWNER_OFFSET: usize = 8;
const RWLOCK_WRITER_OFFSET: usize = 24;

fn owned_by_me(lock: &HeldLock) -> bool {
    let off = match lock.kind {
        LockKind::Mutex => MUTEX_OWNER_OFFSET,
        LockKind::RwlockWrite => RWLOCK_WRITER_OFFSET,
        LockKind::RwlockRead | LockKind::Spin => return true,
    };
    // SAFETY: the lock object was valid when this thread locked it and, being still locked by
    // it, has not been destroyed; a relaxed read of glibc's owner word.
    let owner =
        unsafe { (*((lock.addr + off) as *const core::sync::atomic::AtomicI32)).load(Ordering::Relaxed) };
    owner as u64 == crate::thread::tid()
}

fn release(lock: &HeldLock) -> Released {
    if !owned_by_me(lock) {
        return Released::NotOwned;
    }
    // SAFETY: the real unlock function of this kind of lock, on the object this thread locked.
    let rc = unsafe {
        match lock.kind {
            LockKind::Mutex => real::<MutexFn>(F::MutexUnlock)(lock.addr as *mut pthread_mutex_t),
            LockKind::RwlockRead | LockKind::RwlockWrite => {
                real::<RwlockFn>(F::RwlockUnlock)(lock.addr as *mut pthread_rwlock_t)
            }
            LockKind::Spin => real::<SpinFn>(F::SpinUnlock)(lock.addr as *mut pthread_spinlock_t),
        }
    };
    if rc == 0 {
        Released::Unlocked
    } else {
        Released::Failed(rc)
    }
}

/// The report of one lock released at an unwind (one line on stderr,
/// `==PID==vmsrs: released pthread_mutex 0x... held by the unwound user`). The single place
/// where released locks are reported: a structured fault event can be fed from here.
pub fn report(lock: &HeldLock, outcome: Released, whose: &str) {
    let mut l = crate::fault::report::Line::prefixed();
    match outcome {
        Released::Unlocked => {
            l.s("released ").s(lock.kind.name()).s(" ").hex(lock.addr as u64).s(" held by ").s(whose);
        }
        Released::NotOwned => {
            l.s("not released: ").s(lock.kind.name()).s(" ").hex(lock.addr as u64);
            l.s(" locked by ").s(whose).s(" is no longer owned by its thread");
        }
        Released::Failed(rc) => {
            l.s("could not release ").s(lock.kind.name()).s(" ").hex(lock.addr as u64);
            l.s(" held by ").s(whose).s(": unlock returned error ").dec(rc as u64);
        }
    }
    l.s("\n");
    l.write_stderr();
}

// ----- the real functions --------------------------------------------------------------------

#[derive(Clone, Copy)]
#[repr(usize)]
enum F {
    MutexLock,
    MutexTrylock,
    MutexTimedlock,
    MutexClocklock,
    MutexUnlock,
    RwlockRdlock,
    RwlockWrlock,
    RwlockTryrdlock,
    RwlockTrywrlock,
    RwlockTimedrdlock,
    RwlockTimedwrlock,
    RwlockClockrdlock,
    RwlockClockwrlock,
    RwlockUnlock,
    SpinLock,
    SpinTrylock,
    SpinUnlock,
    CondWait,
    CondTimedwait,
    CondClockwait,
    SemWait,
    SemTimedwait,
    SemClockwait,
    BarrierWait,
}

const NFUNCS: usize = 24;

/// Name and oldest x86-64 version of each function.
const NAMES: [(&CStr, &CStr); NFUNCS] = [
    (c"pthread_mutex_lock", c"GLIBC_2.2.5"),
    (c"pthread_mutex_trylock", c"GLIBC_2.2.5"),
    (c"pthread_mutex_timedlock", c"GLIBC_2.2.5"),
    (c"pthread_mutex_clocklock", c"GLIBC_2.30"),
    (c"pthread_mutex_unlock", c"GLIBC_2.2.5"),
    (c"pthread_rwlock_rdlock", c"GLIBC_2.2.5"),
    (c"pthread_rwlock_wrlock", c"GLIBC_2.2.5"),
    (c"pthread_rwlock_tryrdlock", c"GLIBC_2.2.5"),
    (c"pthread_rwlock_trywrlock", c"GLIBC_2.2.5"),
    (c"pthread_rwlock_timedrdlock", c"GLIBC_2.2.5"),
    (c"pthread_rwlock_timedwrlock", c"GLIBC_2.2.5"),
    (c"pthread_rwlock_clockrdlock", c"GLIBC_2.30"),
    (c"pthread_rwlock_clockwrlock", c"GLIBC_2.30"),
    (c"pthread_rwlock_unlock", c"GLIBC_2.2.5"),
    (c"pthread_spin_lock", c"GLIBC_2.2.5"),
    (c"pthread_spin_trylock", c"GLIBC_2.2.5"),
    (c"pthread_spin_unlock", c"GLIBC_2.2.5"),
    (c"pthread_cond_wait", c"GLIBC_2.3.2"),
    (c"pthread_cond_timedwait", c"GLIBC_2.3.2"),
    (c"pthread_cond_clockwait", c"GLIBC_2.30"),
    (c"sem_wait", c"GLIBC_2.2.5"),
    (c"sem_timedwait", c"GLIBC_2.2.5"),
    (c"sem_clockwait", c"GLIBC_2.30"),
    (c"pthread_barrier_wait", c"GLIBC_2.2.5"),
];

#[allow(clippy::declare_interior_mutable_const)]
const UNRESOLVED: AtomicUsize = AtomicUsize::new(0);
static REAL: [AtomicUsize; NFUNCS] = [UNRESOLVED; NFUNCS];

type MutexFn = unsafe extern "C" fn(*mut pthread_mutex_t) -> c_int;
type MutexTimedFn = unsafe extern "C" fn(*mut pthread_mutex_t, *const timespec) -> c_int;
type MutexClockFn = unsafe extern "C" fn(*mut pthread_mutex_t, clockid_t, *const timespec) -> c_int;
type RwlockFn = unsafe extern "C" fn(*mut pthread_rwlock_t) -> c_int;
type RwlockTimedFn = unsafe extern "C" fn(*mut pthread_rwlock_t, *const timespec) -> c_int;
type RwlockClockFn = unsafe extern "C" fn(*mut pthread_rwlock_t, clockid_t, *const timespec) -> c_int;
type SpinFn = unsafe extern "C" fn(*mut pthread_spinlock_t) -> c_int;
type SemFn = unsafe extern "C" fn(*mut libc::sem_t) -> c_int;
type SemTimedFn = unsafe extern "C" fn(*mut libc::sem_t, *const timespec) -> c_int;
type SemClockFn = unsafe extern "C" fn(*mut libc::sem_t, clockid_t, *const timespec) -> c_int;
type BarrierFn = unsafe extern "C" fn(*mut libc::pthread_barrier_t) -> c_int;
type CondFn = unsafe extern "C" fn(*mut libc::pthread_cond_t, *mut pthread_mutex_t) -> c_int;
type CondTimedFn =
    unsafe extern "C" fn(*mut libc::pthread_cond_t, *mut pthread_mutex_t, *const timespec) -> c_int;
type CondClockFn = unsafe extern "C" fn(
    *mut libc::pthread_cond_t,
    *mut pthread_mutex_t,
    clockid_t,
    *const timespec,
) -> c_int;

/// The real function `f`, as the function pointer type `T` (its C signature).
///
/// # Safety
/// `T` must be the function pointer type of `f`'s C signature.
#[inline(always)]
unsafe fn real<T: Copy>(f: F) -> T {
    let mut p = REAL[f as usize].load(Ordering::Relaxed);
    if p == 0 {
        p = resolve(f as usize);
    }
    // SAFETY: `p` is the non-null address of `f` in libc, and `T` is a function pointer of its
    // signature (caller's contract), the same size as usize.
    unsafe { core::mem::transmute_copy::<usize, T>(&p) }
}

/// Resolve every real function (the library's constructor; idempotent).
pub fn resolve_all() {
    for (i, r) in REAL.iter().enumerate() {
        if r.load(Ordering::Relaxed) == 0 {
            resolve(i);
        }
    }
}

/// Look function `i` (an `F`) up (see the module comment); racing resolvers store the same
/// value.
#[cold]
#[inline(never)]
fn resolve(i: usize) -> usize {
    thread_local! {
        static RESOLVING: Cell<bool> = const { Cell::new(false) };
    }
    if RESOLVING.with(|r| r.replace(true)) {
        die(b"==vmsrs: a lock function was called while its real address was being looked up\n");
    }
    let (name, version) = NAMES[i];
    let mut p = 0usize;
    for handle in [Some(libc::RTLD_NEXT), None] {
        // libc's handle only when RTLD_NEXT found nothing: dlopen is not free.
        let Some(handle) = handle.or_else(libc_handle) else { continue };
        for v in [version, c"GLIBC_2.34"] {
            // SAFETY: dlvsym with NUL-terminated names on a valid handle (or RTLD_NEXT).
            p = unsafe { libc::dlvsym(handle, name.as_ptr(), v.as_ptr()) } as usize;
            if p != 0 {
                break;
            }
        }
        if p == 0 {
            // SAFETY: as above.
            p = unsafe { libc::dlsym(handle, name.as_ptr()) } as usize;
        }
        if p != 0 {
            break;
        }
    }
    RESOLVING.with(|r| r.set(false));
    if p == 0 {
        die(b"==vmsrs: the C library's lock functions cannot be found (dlvsym failed)\n");
    }
    REAL[i].store(p, Ordering::Relaxed);
    p
}

/// libc's own handle (it is always loaded), for when `RTLD_NEXT` finds nothing.
fn libc_handle() -> Option<*mut libc::c_void> {
    // SAFETY: dlopen with RTLD_NOLOAD only returns an already loaded object.
    let h = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    (!h.is_null()).then_some(h)
}

#[cold]
fn die(msg: &[u8]) -> ! {
    // SAFETY: write(2) of a static message, then abort: no lock can be taken without it.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::abort()
    }
}

// ----- the interposed functions' bodies (preload/src/interpose.rs forwards here) -------------

#[inline(always)]
fn acquired_mutex(rc: c_int) -> bool {
    rc == 0 || rc == libc::EOWNERDEAD
}

/// `pthread_mutex_lock`, recorded.
///
/// # Safety
/// pthread_mutex_lock's contract.
#[inline]
pub unsafe fn mutex_lock(m: *mut pthread_mutex_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<MutexFn>(F::MutexLock)(m) };
    if acquired_mutex(rc) {
        push(LockKind::Mutex, m as usize);
    }
    rc
}

/// `pthread_mutex_trylock`, recorded.
///
/// # Safety
/// pthread_mutex_trylock's contract.
#[inline]
pub unsafe fn mutex_trylock(m: *mut pthread_mutex_t) -> c_int {
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<MutexFn>(F::MutexTrylock)(m) };
    if acquired_mutex(rc) {
        push(LockKind::Mutex, m as usize);
    }
    rc
}

/// `pthread_mutex_timedlock`, recorded.
///
/// # Safety
/// pthread_mutex_timedlock's contract.
#[inline]
pub unsafe fn mutex_timedlock(m: *mut pthread_mutex_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<MutexTimedFn>(F::MutexTimedlock)(m, t) };
    if acquired_mutex(rc) {
        push(LockKind::Mutex, m as usize);
    }
    rc
}

/// `pthread_mutex_clocklock`, recorded.
///
/// # Safety
/// pthread_mutex_clocklock's contract.
#[inline]
pub unsafe fn mutex_clocklock(m: *mut pthread_mutex_t, c: clockid_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<MutexClockFn>(F::MutexClocklock)(m, c, t) };
    if acquired_mutex(rc) {
        push(LockKind::Mutex, m as usize);
    }
    rc
}

/// `pthread_mutex_unlock`, recorded.
///
/// # Safety
/// pthread_mutex_unlock's contract.
#[inline]
pub unsafe fn mutex_unlock(m: *mut pthread_mutex_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<MutexFn>(F::MutexUnlock)(m) };
    if rc == 0 {
        pop(m as usize);
    }
    rc
}

/// The rwlock acquisitions without a timeout, recorded as `kind`.
#[inline(always)]
unsafe fn rwlock_plain(f: F, kind: LockKind, l: *mut pthread_rwlock_t) -> c_int {
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<RwlockFn>(f)(l) };
    if rc == 0 {
        push(kind, l as usize);
    }
    rc
}

/// `pthread_rwlock_rdlock`, recorded.
///
/// # Safety
/// pthread_rwlock_rdlock's contract.
#[inline]
pub unsafe fn rwlock_rdlock(l: *mut pthread_rwlock_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract.
    unsafe { rwlock_plain(F::RwlockRdlock, LockKind::RwlockRead, l) }
}

/// `pthread_rwlock_wrlock`, recorded.
///
/// # Safety
/// pthread_rwlock_wrlock's contract.
#[inline]
pub unsafe fn rwlock_wrlock(l: *mut pthread_rwlock_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract.
    unsafe { rwlock_plain(F::RwlockWrlock, LockKind::RwlockWrite, l) }
}

/// `pthread_rwlock_tryrdlock`, recorded.
///
/// # Safety
/// pthread_rwlock_tryrdlock's contract.
#[inline]
pub unsafe fn rwlock_tryrdlock(l: *mut pthread_rwlock_t) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { rwlock_plain(F::RwlockTryrdlock, LockKind::RwlockRead, l) }
}

/// `pthread_rwlock_trywrlock`, recorded.
///
/// # Safety
/// pthread_rwlock_trywrlock's contract.
#[inline]
pub unsafe fn rwlock_trywrlock(l: *mut pthread_rwlock_t) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { rwlock_plain(F::RwlockTrywrlock, LockKind::RwlockWrite, l) }
}

/// `pthread_rwlock_timedrdlock`, recorded.
///
/// # Safety
/// pthread_rwlock_timedrdlock's contract.
#[inline]
pub unsafe fn rwlock_timedrdlock(l: *mut pthread_rwlock_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<RwlockTimedFn>(F::RwlockTimedrdlock)(l, t) };
    if rc == 0 {
        push(LockKind::RwlockRead, l as usize);
    }
    rc
}

/// `pthread_rwlock_timedwrlock`, recorded.
///
/// # Safety
/// pthread_rwlock_timedwrlock's contract.
#[inline]
pub unsafe fn rwlock_timedwrlock(l: *mut pthread_rwlock_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<RwlockTimedFn>(F::RwlockTimedwrlock)(l, t) };
    if rc == 0 {
        push(LockKind::RwlockWrite, l as usize);
    }
    rc
}

/// `pthread_rwlock_clockrdlock`, recorded.
///
/// # Safety
/// pthread_rwlock_clockrdlock's contract.
#[inline]
pub unsafe fn rwlock_clockrdlock(l: *mut pthread_rwlock_t, c: clockid_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<RwlockClockFn>(F::RwlockClockrdlock)(l, c, t) };
    if rc == 0 {
        push(LockKind::RwlockRead, l as usize);
    }
    rc
}

/// `pthread_rwlock_clockwrlock`, recorded.
///
/// # Safety
/// pthread_rwlock_clockwrlock's contract.
#[inline]
pub unsafe fn rwlock_clockwrlock(l: *mut pthread_rwlock_t, c: clockid_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<RwlockClockFn>(F::RwlockClockwrlock)(l, c, t) };
    if rc == 0 {
        push(LockKind::RwlockWrite, l as usize);
    }
    rc
}

/// `pthread_rwlock_unlock` (read or write), recorded.
///
/// # Safety
/// pthread_rwlock_unlock's contract.
#[inline]
pub unsafe fn rwlock_unlock(l: *mut pthread_rwlock_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<RwlockFn>(F::RwlockUnlock)(l) };
    if rc == 0 {
        pop(l as usize);
    }
    rc
}

/// `pthread_spin_lock`, recorded.
///
/// # Safety
/// pthread_spin_lock's contract.
#[inline]
pub unsafe fn spin_lock(s: *mut pthread_spinlock_t) -> c_int {
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<SpinFn>(F::SpinLock)(s) };
    if rc == 0 {
        push(LockKind::Spin, s as usize);
    }
    rc
}

/// `pthread_spin_trylock`, recorded.
///
/// # Safety
/// pthread_spin_trylock's contract.
#[inline]
pub unsafe fn spin_trylock(s: *mut pthread_spinlock_t) -> c_int {
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<SpinFn>(F::SpinTrylock)(s) };
    if rc == 0 {
        push(LockKind::Spin, s as usize);
    }
    rc
}

/// `pthread_spin_unlock`, recorded.
///
/// # Safety
/// pthread_spin_unlock's contract.
#[inline]
pub unsafe fn spin_unlock(s: *mut pthread_spinlock_t) -> c_int {
    // SAFETY: forwarded contract; the pointer type matches the function.
    let rc = unsafe { real::<SpinFn>(F::SpinUnlock)(s) };
    if rc == 0 {
        pop(s as usize);
    }
    rc
}

/// `pthread_cond_wait` (not recorded: it gives the mutex back before it returns).
///
/// # Safety
/// pthread_cond_wait's contract.
#[inline]
pub unsafe fn cond_wait(c: *mut libc::pthread_cond_t, m: *mut pthread_mutex_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    unsafe { real::<CondFn>(F::CondWait)(c, m) }
}

/// `pthread_cond_timedwait`, as [`cond_wait`].
///
/// # Safety
/// pthread_cond_timedwait's contract.
#[inline]
pub unsafe fn cond_timedwait(
    c: *mut libc::pthread_cond_t,
    m: *mut pthread_mutex_t,
    t: *const timespec,
) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    unsafe { real::<CondTimedFn>(F::CondTimedwait)(c, m, t) }
}

/// `pthread_cond_clockwait`, as [`cond_wait`].
///
/// # Safety
/// pthread_cond_clockwait's contract.
#[inline]
pub unsafe fn cond_clockwait(
    c: *mut libc::pthread_cond_t,
    m: *mut pthread_mutex_t,
    k: clockid_t,
    t: *const timespec,
) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    unsafe { real::<CondClockFn>(F::CondClockwait)(c, m, k, t) }
}

/// `sem_wait`, as [`cond_wait`] (a faulted user may wait on a semaphore in a keyed page).
///
/// # Safety
/// sem_wait's contract.
#[inline]
pub unsafe fn sem_wait(s: *mut libc::sem_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    unsafe { real::<SemFn>(F::SemWait)(s) }
}

/// `sem_timedwait`, as [`sem_wait`].
///
/// # Safety
/// sem_timedwait's contract.
#[inline]
pub unsafe fn sem_timedwait(s: *mut libc::sem_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    unsafe { real::<SemTimedFn>(F::SemTimedwait)(s, t) }
}

/// `sem_clockwait`, as [`sem_wait`].
///
/// # Safety
/// sem_clockwait's contract.
#[inline]
pub unsafe fn sem_clockwait(s: *mut libc::sem_t, c: clockid_t, t: *const timespec) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    unsafe { real::<SemClockFn>(F::SemClockwait)(s, c, t) }
}

/// `pthread_barrier_wait`, as [`sem_wait`].
///
/// # Safety
/// pthread_barrier_wait's contract.
#[inline]
pub unsafe fn barrier_wait(b: *mut libc::pthread_barrier_t) -> c_int {
    let _open = crate::watch::pkey::Open::new();
    // SAFETY: forwarded contract; the pointer type matches the function.
    unsafe { real::<BarrierFn>(F::BarrierWait)(b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_mutex(kind: c_int) -> Box<pthread_mutex_t> {
        let mut m: Box<pthread_mutex_t> = Box::new(libc::PTHREAD_MUTEX_INITIALIZER);
        // SAFETY: initialising attributes and a mutex we own.
        unsafe {
            let mut a: libc::pthread_mutexattr_t = core::mem::zeroed();
            libc::pthread_mutexattr_init(&mut a);
            libc::pthread_mutexattr_settype(&mut a, kind);
            libc::pthread_mutex_init(&mut *m, &a);
        }
        m
    }

    #[test]
    fn the_record_follows_locks_unlocks_and_failed_attempts() {
        resolve_all();
        let mut a = new_mutex(libc::PTHREAD_MUTEX_ERRORCHECK);
        let mut b = new_mutex(libc::PTHREAD_MUTEX_RECURSIVE);
        let (pa, pb) = (&mut *a as *mut pthread_mutex_t, &mut *b as *mut pthread_mutex_t);
        let base = depth();
        // SAFETY: valid mutexes owned by this test.
        unsafe {
            assert_eq!(mutex_lock(pa), 0);
            let m = mark();
            assert_eq!(mutex_lock(pb), 0);
            assert_eq!(mutex_trylock(pb), 0);
            // Relocking an error-checking mutex fails: not recorded.
            assert_eq!(mutex_lock(pa), libc::EDEADLK);
            assert_eq!(depth(), base + 3);
            let since: Vec<_> = held_since(m).collect();
            assert_eq!(since.len(), 2);
            assert!(since.iter().all(|h| h.addr == pb as usize && h.kind == LockKind::Mutex));
            // Out of order: the older entry goes, the newer ones stay.
            assert_eq!(mutex_unlock(pa), 0);
            assert_eq!(depth(), base + 2);
            assert_eq!(release_since(m, "the test"), 2);
            assert_eq!(depth(), base);
            // b is free again: a second unlock is refused by glibc and changes nothing.
            assert_eq!(mutex_unlock(pb), libc::EPERM);
            assert_eq!(depth(), base);
        }
    }

    #[test]
    fn overflow_is_counted_and_never_breaks_the_record() {
        resolve_all();
        let mut locks: Vec<Box<pthread_spinlock_t>> = (0..CAPACITY + 10).map(|_| Box::new(0)).collect();
        let base = depth();
        let before = COUNTERS.locks_untracked.load(Ordering::Relaxed);
        // SAFETY: spinlocks owned by this test, initialised first.
        unsafe {
            for l in locks.iter_mut() {
                assert_eq!(libc::pthread_spin_init(&mut **l, libc::PTHREAD_PROCESS_PRIVATE), 0);
            }
            for l in locks.iter_mut() {
                assert_eq!(spin_lock(&mut **l), 0);
            }
            assert_eq!(depth(), CAPACITY);
            assert!(COUNTERS.locks_untracked.load(Ordering::Relaxed) >= before + 10 + base as u64);
            for l in locks.iter_mut().rev() {
                assert_eq!(spin_unlock(&mut **l), 0);
            }
        }
        assert_eq!(depth(), base);
    }

    #[test]
    fn rwlocks_are_recorded_by_mode() {
        resolve_all();
        let mut l: Box<pthread_rwlock_t> = Box::new(libc::PTHREAD_RWLOCK_INITIALIZER);
        let p = &mut *l as *mut pthread_rwlock_t;
        let m = mark();
        // SAFETY: a valid rwlock owned by this test.
        unsafe {
            assert_eq!(rwlock_rdlock(p), 0);
            assert_eq!(rwlock_tryrdlock(p), 0);
            assert_eq!(rwlock_trywrlock(p), libc::EBUSY);
            let kinds: Vec<_> = held_since(m).map(|h| h.kind).collect();
            assert_eq!(kinds, [LockKind::RwlockRead, LockKind::RwlockRead]);
            assert_eq!(release_since(m, "the test"), 2);
            assert_eq!(rwlock_wrlock(p), 0);
            assert_eq!(held_since(m).map(|h| h.kind).collect::<Vec<_>>(), [LockKind::RwlockWrite]);
            assert_eq!(release_since(m, "the test"), 1);
            assert_eq!(rwlock_trywrlock(p), 0);
            assert_eq!(rwlock_unlock(p), 0);
        }
        assert_eq!(held_since(m).count(), 0);
    }
}
