//! The libc symbols libvmsrs interposes, in drop-in and linked mode alike (a program linked
//! with `-lvmsrs` resolves them here before libc). Each one only forwards to the runtime.
//!
//! - `sigaction`, `signal`, `bsd_signal`, `ssignal`, `sysv_signal`, `__sysv_signal`: the
//!   program's dispositions are recorded and its handlers chained, so libvmsrs's fault
//!   handlers stay first and signals that arrive while a thread is inside libvmsrs are
//!   deferred until it leaves (`fault::chain`). glibc's `signal` calls its internal
//!   `__sigaction` directly, so each name must be interposed on its own.
//!
//! - `pthread_create`: each new thread gets its alternate signal stack and thread-exit
//!   bookkeeping before the program's start routine runs.
//! - `_Unwind_RaiseException`, `_Unwind_Resume_or_Rethrow`, `__gxx_personality_v0` and
//!   `pthread_exit`: a C++ exception (or `pthread_exit`'s forced unwind) passing through a
//!   rescue call finds its real return address in place of the exit stub's; once the search
//!   phase has found the catching frame, a catch inside the call puts the exit stub back and a
//!   catch above it ends the call's user (`vmsrs_runtime::rescue`).
//! - `longjmp`, `_longjmp`, `siglongjmp`, `__longjmp_chk`: a jump out of a rescue call ends
//!   its user (and of the program's signal handlers it leaves).
//!
//! - `pthread_mutex_{lock,trylock,timedlock,clocklock,unlock}`,
//!   `pthread_rwlock_{rd,wr,tryrd,trywr,timedrd,timedwr,clockrd,clockwr,un}lock` and
//!   `pthread_spin_{lock,trylock,unlock}`: each thread's record of the locks it holds, so the
//!   locks of an unwound user are released (`vmsrs_runtime::locks`). `pthread_cond_*wait`
//!   re-acquire their mutex before returning and are not interposed (see there).
//!
//! Real functions are reached without recursion: glibc's own `__sigaction`, and `dlvsym`
//! for `pthread_create` and the lock functions (resolved once; no allocation on the way).

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

/// glibc's `pthread_create` (the GLIBC_2.34 version, where it moved into libc; the older
/// one before), resolved once.
fn real_pthread_create() -> Option<PthreadCreate> {
    static REAL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let mut f = REAL.load(core::sync::atomic::Ordering::Acquire);
    if f == 0 {
        for version in [c"GLIBC_2.34", c"GLIBC_2.2.5"] {
            // SAFETY: dlvsym with NUL-terminated names; RTLD_NEXT skips this object.
            f = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"pthread_create".as_ptr(), version.as_ptr()) }
                as usize;
            if f != 0 {
                break;
            }
        }
        REAL.store(f, core::sync::atomic::Ordering::Release);
    }
    // SAFETY: a non-zero value is glibc's pthread_create, which has this signature.
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, PthreadCreate>(f) })
}

type StartRoutine = extern "C" fn(*mut libc::c_void) -> *mut libc::c_void;
type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    StartRoutine,
    *mut libc::c_void,
) -> c_int;

extern "C" {
    fn __libc_malloc(n: usize) -> *mut libc::c_void;
    fn __libc_free(p: *mut libc::c_void);
}

/// `pthread_create(3)`: the new thread gets its alternate signal stack (so a fault, even a
/// stack overflow, is handled on it) and its thread-exit bookkeeping before the program's
/// start routine runs.
///
/// # Safety
/// pthread_create's contract.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: StartRoutine,
    arg: *mut libc::c_void,
) -> c_int {
    let Some(real) = real_pthread_create() else { return libc::EAGAIN };
    // A monitored range of a library loaded since (httpd's modules, loaded before it starts
    // its worker threads) is watched before the new thread can store to it.
    vmsrs_runtime::watch::arm_pending_now();
    // SAFETY: glibc's allocator, not the interposed one; two words for the start routine.
    let pair = unsafe { __libc_malloc(2 * core::mem::size_of::<usize>()) } as *mut usize;
    if pair.is_null() {
        // SAFETY: forwarded contract: the thread runs without the set-up, as plain.
        return unsafe { real(thread, attr, start, arg) };
    }
    // SAFETY: `pair` holds two words.
    unsafe {
        pair.write(start as usize);
        pair.add(1).write(arg as usize);
        real(thread, attr, thread_start, pair as *mut libc::c_void)
    }
}

extern "C" fn thread_start(pair: *mut libc::c_void) -> *mut libc::c_void {
    let pair = pair as *mut usize;
    // SAFETY: written by pthread_create above and owned by this thread now.
    let (start, arg) = unsafe { (pair.read(), pair.add(1).read()) };
    // SAFETY: allocated with __libc_malloc above.
    unsafe { __libc_free(pair as *mut libc::c_void) };
    vmsrs_runtime::thread::thread_started();
    // SAFETY: the program's start routine, as it gave it.
    let start = unsafe { core::mem::transmute::<usize, StartRoutine>(start) };
    start(arg as *mut libc::c_void)
}

type RaiseException = unsafe extern "C" fn(*mut libc::c_void) -> c_int;

/// The next definition of `name` after this object (`memory::resolve_next`), found once and
/// kept in `slot` (0: none).
fn next_symbol(slot: &core::sync::atomic::AtomicUsize, name: &core::ffi::CStr) -> usize {
    let mut f = slot.load(core::sync::atomic::Ordering::Acquire);
    if f == 0 {
        f = crate::memory::resolve_next(name, None);
        slot.store(f, core::sync::atomic::Ordering::Release);
    }
    f
}

/// Defines an interposed libgcc function that starts an exception's unwinding: a rescue call
/// the exception may leave gets its real return address back first, because the unwinder
/// cannot step through libvmsrs's exit stub (`vmsrs_runtime::rescue::before_exception`).
macro_rules! raise_fn {
    ($(#[$doc:meta])* $name:ident, $cname:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The unwinder's contract: `exception` is a live `_Unwind_Exception`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(exception: *mut libc::c_void) -> c_int {
            static REAL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
            let f = next_symbol(&REAL, $cname);
            vmsrs_runtime::rescue::before_exception();
            if f == 0 {
                // No unwinder loaded: what libgcc returns when it cannot unwind.
                return 5; // _URC_END_OF_STACK
            }
            // SAFETY: libgcc's own function, with its own argument.
            unsafe { core::mem::transmute::<usize, RaiseException>(f)(exception) }
        }
    };
}

raise_fn!(/// `_Unwind_RaiseException` (libgcc_s; what a C++ `throw` calls).
    _Unwind_RaiseException, c"_Unwind_RaiseException");
raise_fn!(/// `_Unwind_Resume_or_Rethrow` (libgcc_s; what `throw;` and `std::rethrow_exception` call).
    _Unwind_Resume_or_Rethrow, c"_Unwind_Resume_or_Rethrow");

/// `pthread_exit(3)`: a rescue call on the stack gets its real return address back and its
/// user ends before glibc's forced unwind runs, so the destructors and cleanups of the
/// call's caller's frames run (`vmsrs_runtime::rescue::before_forced_unwind`). (glibc reaches
/// libgcc's `_Unwind_ForcedUnwind` through its own pointer, so that is no place to step in;
/// a cancellation acted on inside a rescue call still stops at the exit stub.)
///
/// # Safety
/// pthread_exit's contract.
#[no_mangle]
pub unsafe extern "C" fn pthread_exit(retval: *mut libc::c_void) -> ! {
    static REAL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let f = next_symbol(&REAL, c"pthread_exit");
    vmsrs_runtime::rescue::before_forced_unwind();
    if f == 0 {
        std::process::abort();
    }
    // SAFETY: glibc's pthread_exit, with its own argument.
    unsafe { core::mem::transmute::<usize, unsafe extern "C" fn(*mut libc::c_void) -> !>(f)(retval) }
}

/// `__gxx_personality_v0` (libstdc++; the unwinder calls it for every C++ frame an exception
/// meets): when the search phase finds the frame that catches the exception, libvmsrs learns
/// where that frame is (its CFA), and so whether the exception stays inside a rescue call or
/// leaves it (`vmsrs_runtime::rescue::handler_found`).
///
/// # Safety
/// The unwinder's contract (the Itanium C++ ABI's personality routine).
#[no_mangle]
pub unsafe extern "C" fn __gxx_personality_v0(
    version: c_int,
    actions: c_int,
    class: u64,
    exception: *mut libc::c_void,
    context: *mut libc::c_void,
) -> c_int {
    type Personality = unsafe extern "C" fn(c_int, c_int, u64, *mut libc::c_void, *mut libc::c_void) -> c_int;
    type GetCfa = unsafe extern "C" fn(*mut libc::c_void) -> usize;
    const UA_SEARCH_PHASE: c_int = 1;
    const URC_HANDLER_FOUND: c_int = 6;
    const URC_FATAL_PHASE1_ERROR: c_int = 3;
    static REAL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    static GET_CFA: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let f = next_symbol(&REAL, c"__gxx_personality_v0");
    if f == 0 {
        return URC_FATAL_PHASE1_ERROR;
    }
    // SAFETY: libstdc++'s personality routine, with the unwinder's own arguments.
    let r =
        unsafe { core::mem::transmute::<usize, Personality>(f)(version, actions, class, exception, context) };
    if actions & UA_SEARCH_PHASE != 0 && r == URC_HANDLER_FOUND {
        let get_cfa = next_symbol(&GET_CFA, c"_Unwind_GetCFA");
        if get_cfa != 0 {
            // SAFETY: libgcc's _Unwind_GetCFA on the context the unwinder passed us.
            let cfa = unsafe { core::mem::transmute::<usize, GetCfa>(get_cfa)(context) };
            vmsrs_runtime::rescue::handler_found(cfa);
        }
    }
    r
}

/// Defines an interposed `longjmp`-family function: tells libvmsrs where the jump lands (a
/// rescue call it leaves is over: `vmsrs_runtime::rescue::before_longjmp`), then jumps.
macro_rules! longjmp_fn {
    ($(#[$doc:meta])* $name:ident, $cname:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// longjmp's contract: `env` was filled by a setjmp whose frame is still live.
        #[no_mangle]
        pub unsafe extern "C" fn $name(env: *mut libc::c_void, val: c_int) -> ! {
            static REAL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
            let f = next_symbol(&REAL, $cname);
            // SAFETY: `env` is a jmp_buf filled by setjmp (the contract).
            unsafe { vmsrs_runtime::rescue::before_longjmp(env as *const u64) };
            if f == 0 {
                std::process::abort();
            }
            // SAFETY: glibc's own function, with its own arguments.
            unsafe { core::mem::transmute::<usize, unsafe extern "C" fn(*mut libc::c_void, c_int) -> !>(f)(env, val) }
        }
    };
}

longjmp_fn!(/// `longjmp(3)`.
    longjmp, c"longjmp");
longjmp_fn!(/// `_longjmp(3)`.
    _longjmp, c"_longjmp");
longjmp_fn!(/// `siglongjmp(3)`.
    siglongjmp, c"siglongjmp");
longjmp_fn!(/// `__longjmp_chk` (`longjmp` under `_FORTIFY_SOURCE`).
    __longjmp_chk, c"__longjmp_chk");

// ----- locks (vmsrs_runtime::locks) ---------------------------------------------------------

use libc::{clockid_t, pthread_mutex_t, pthread_rwlock_t, pthread_spinlock_t, timespec};
use vmsrs_runtime::locks;

/// Defines an interposed lock function forwarding to `locks::$body` with the same arguments.
macro_rules! lock_fn {
    ($(#[$doc:meta])* $name:ident => $body:ident ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The libc function's contract.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            // SAFETY: forwarded contract.
            unsafe { locks::$body($($arg),*) }
        }
    };
}

lock_fn!(/// `pthread_mutex_lock(3)`, recorded.
    pthread_mutex_lock => mutex_lock(m: *mut pthread_mutex_t));
lock_fn!(/// `pthread_mutex_trylock(3)`, recorded when it succeeds.
    pthread_mutex_trylock => mutex_trylock(m: *mut pthread_mutex_t));
lock_fn!(/// `pthread_mutex_timedlock(3)`, recorded when it succeeds.
    pthread_mutex_timedlock => mutex_timedlock(m: *mut pthread_mutex_t, t: *const timespec));
lock_fn!(/// `pthread_mutex_clocklock(3)`, recorded when it succeeds.
    pthread_mutex_clocklock => mutex_clocklock(m: *mut pthread_mutex_t, c: clockid_t, t: *const timespec));
lock_fn!(/// `pthread_mutex_unlock(3)`, recorded.
    pthread_mutex_unlock => mutex_unlock(m: *mut pthread_mutex_t));
lock_fn!(/// `pthread_rwlock_rdlock(3)`, recorded.
    pthread_rwlock_rdlock => rwlock_rdlock(l: *mut pthread_rwlock_t));
lock_fn!(/// `pthread_rwlock_wrlock(3)`, recorded.
    pthread_rwlock_wrlock => rwlock_wrlock(l: *mut pthread_rwlock_t));
lock_fn!(/// `pthread_rwlock_tryrdlock(3)`, recorded when it succeeds.
    pthread_rwlock_tryrdlock => rwlock_tryrdlock(l: *mut pthread_rwlock_t));
lock_fn!(/// `pthread_rwlock_trywrlock(3)`, recorded when it succeeds.
    pthread_rwlock_trywrlock => rwlock_trywrlock(l: *mut pthread_rwlock_t));
lock_fn!(/// `pthread_rwlock_timedrdlock(3)`, recorded when it succeeds.
    pthread_rwlock_timedrdlock => rwlock_timedrdlock(l: *mut pthread_rwlock_t, t: *const timespec));
lock_fn!(/// `pthread_rwlock_timedwrlock(3)`, recorded when it succeeds.
    pthread_rwlock_timedwrlock => rwlock_timedwrlock(l: *mut pthread_rwlock_t, t: *const timespec));
lock_fn!(/// `pthread_rwlock_clockrdlock(3)`, recorded when it succeeds.
    pthread_rwlock_clockrdlock => rwlock_clockrdlock(l: *mut pthread_rwlock_t, c: clockid_t, t: *const timespec));
lock_fn!(/// `pthread_rwlock_clockwrlock(3)`, recorded when it succeeds.
    pthread_rwlock_clockwrlock => rwlock_clockwrlock(l: *mut pthread_rwlock_t, c: clockid_t, t: *const timespec));
lock_fn!(/// `pthread_rwlock_unlock(3)` (read or write), recorded.
    pthread_rwlock_unlock => rwlock_unlock(l: *mut pthread_rwlock_t));
lock_fn!(/// `pthread_spin_lock(3)`, recorded.
    pthread_spin_lock => spin_lock(s: *mut pthread_spinlock_t));
lock_fn!(/// `pthread_spin_trylock(3)`, recorded when it succeeds.
    pthread_spin_trylock => spin_trylock(s: *mut pthread_spinlock_t));
lock_fn!(/// `pthread_spin_unlock(3)`, recorded.
    pthread_spin_unlock => spin_unlock(s: *mut pthread_spinlock_t));
lock_fn!(/// `pthread_cond_wait(3)`: a faulted user's thread may wait on a keyed page.
    pthread_cond_wait => cond_wait(c: *mut libc::pthread_cond_t, m: *mut pthread_mutex_t));
lock_fn!(/// `pthread_cond_timedwait(3)`, as `pthread_cond_wait`.
    pthread_cond_timedwait => cond_timedwait(c: *mut libc::pthread_cond_t, m: *mut pthread_mutex_t, t: *const timespec));
lock_fn!(/// `pthread_cond_clockwait(3)`, as `pthread_cond_wait`.
    pthread_cond_clockwait => cond_clockwait(c: *mut libc::pthread_cond_t, m: *mut pthread_mutex_t, k: clockid_t, t: *const timespec));
lock_fn!(/// `sem_wait(3)`: a faulted user's thread may wait on a keyed page.
    sem_wait => sem_wait(s: *mut libc::sem_t));
lock_fn!(/// `sem_timedwait(3)`, as `sem_wait`.
    sem_timedwait => sem_timedwait(s: *mut libc::sem_t, t: *const timespec));
lock_fn!(/// `sem_clockwait(3)`, as `sem_wait`.
    sem_clockwait => sem_clockwait(s: *mut libc::sem_t, c: clockid_t, t: *const timespec));
lock_fn!(/// `pthread_barrier_wait(3)`, as `sem_wait`.
    pthread_barrier_wait => barrier_wait(b: *mut libc::pthread_barrier_t));

// ---------------------------------------------------------------------------------------------
// System calls that write the caller's buffer: the kernel cannot write a watched (read-only)
// page, so a buffer on one is filled through a bounce buffer and stored as the caller's
// stores (`vmsrs_runtime::watch::kernel_into`). Every other call goes straight to libc.

extern "C" {
    fn __read(fd: c_int, buf: *mut libc::c_void, n: usize) -> isize;
    fn __pread64(fd: c_int, buf: *mut libc::c_void, n: usize, off: libc::off_t) -> isize;
}

/// `read(2)`.
///
/// # Safety
/// read's contract.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut libc::c_void, n: usize) -> isize {
    // SAFETY: forwarded contract (glibc's own entry point, also a cancellation point).
    vmsrs_runtime::watch::kernel_into(buf as *mut u8, n, |b, n| unsafe {
        __read(fd, b as *mut libc::c_void, n)
    })
}

/// `pread(2)` (`pread64` is the same function on x86-64).
///
/// # Safety
/// pread's contract.
#[no_mangle]
pub unsafe extern "C" fn pread(fd: c_int, buf: *mut libc::c_void, n: usize, off: libc::off_t) -> isize {
    vmsrs_runtime::watch::kernel_into(buf as *mut u8, n, |b, n| {
        // SAFETY: forwarded contract.
        unsafe { __pread64(fd, b as *mut libc::c_void, n, off) }
    })
}

/// `readv(2)`: as `read`, for a vector of buffers (`watch::kernel_into_iov`).
///
/// # Safety
/// readv's contract.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, cnt: c_int) -> isize {
    type F = unsafe extern "C" fn(c_int, *const libc::iovec, c_int) -> isize;
    static REAL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let f = next_symbol(&REAL, c"readv");
    if f == 0 {
        // SAFETY: forwarded contract: the system call glibc's readv makes.
        return unsafe { libc::syscall(libc::SYS_readv, fd, iov, cnt) as isize };
    }
    // SAFETY: glibc's readv, with the caller's arguments (or one bounce iovec).
    unsafe {
        vmsrs_runtime::watch::kernel_into_iov(iov, cnt, |v, n| core::mem::transmute::<usize, F>(f)(fd, v, n))
    }
}

/// `preadv(2)`.
///
/// # Safety
/// preadv's contract.
#[no_mangle]
pub unsafe extern "C" fn preadv(fd: c_int, iov: *const libc::iovec, cnt: c_int, off: libc::off_t) -> isize {
    type F = unsafe extern "C" fn(c_int, *const libc::iovec, c_int, libc::off_t) -> isize;
    static REAL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let f = next_symbol(&REAL, c"preadv");
    if f == 0 {
        // SAFETY: forwarded contract: the system call glibc's preadv makes.
        return unsafe { libc::syscall(libc::SYS_preadv, fd, iov, cnt, off, 0) as isize };
    }
    // SAFETY: glibc's preadv, with the caller's arguments (or one bounce iovec).
    unsafe {
        vmsrs_runtime::watch::kernel_into_iov(iov, cnt, |v, n| {
            core::mem::transmute::<usize, F>(f)(fd, v, n, off)
        })
    }
}

/// `pread64(2)`.
///
/// # Safety
/// pread's contract.
#[no_mangle]
pub unsafe extern "C" fn pread64(fd: c_int, buf: *mut libc::c_void, n: usize, off: libc::off_t) -> isize {
    // SAFETY: forwarded contract.
    unsafe { pread(fd, buf, n, off) }
}

/// `recv(2)`: `recvfrom` without an address.
///
/// # Safety
/// recv's contract.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut libc::c_void, n: usize, flags: c_int) -> isize {
    // SAFETY: forwarded contract.
    unsafe { recvfrom(fd, buf, n, flags, core::ptr::null_mut(), core::ptr::null_mut()) }
}

/// `recvfrom(2)`, through glibc's own (resolved once by the constructor, see
/// `vmsrs_runtime::watch::real_recvfrom`).
///
/// # Safety
/// recvfrom's contract.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut libc::c_void,
    n: usize,
    flags: c_int,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
) -> isize {
    vmsrs_runtime::watch::kernel_into(buf as *mut u8, n, |b, n| {
        // SAFETY: forwarded contract.
        unsafe { vmsrs_runtime::watch::real_recvfrom(fd, b as *mut libc::c_void, n, flags, addr, addrlen) }
    })
}

// ---------------------------------------------------------------------------------------------
// Watched ranges the program unmaps: they stop being watched (said on stderr), so no later
// fault at those addresses is taken for a watched page's.

/// `munmap(2)`.
///
/// # Safety
/// munmap's contract.
#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut libc::c_void, len: usize) -> c_int {
    vmsrs_runtime::watch::before_unmap(addr as usize, len);
    // SAFETY: forwarded contract; the system call is what glibc's munmap makes.
    unsafe { libc::syscall(libc::SYS_munmap, addr, len) as c_int }
}

/// `mmap(2)`: with `MAP_FIXED`, the watched runs it maps over stop being watched first, as at
/// `munmap`.
///
/// # Safety
/// mmap's contract.
#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut libc::c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut libc::c_void {
    vmsrs_runtime::watch::before_map(addr as usize, len, flags, fd, off);
    // SAFETY: forwarded contract; the system call is what glibc's mmap makes (the kernel checks
    // the offset's alignment), -1 with errno (MAP_FAILED) on failure.
    unsafe { libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) as *mut libc::c_void }
}

/// `mmap64(2)`: the same call (`off_t` is 64 bits here; `_FILE_OFFSET_BITS=64` programs call it
/// by this name).
///
/// # Safety
/// mmap's contract.
#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut libc::c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off64_t,
) -> *mut libc::c_void {
    // SAFETY: forwarded contract.
    unsafe { mmap(addr, len, prot, flags, fd, off) }
}

/// `mremap(2)`: the watched runs it moves or resizes are given back to the program first, and
/// those a fixed destination maps over stop being watched (`vmsrs_runtime::watch::before_remap`).
///
/// C declares it variadic (`new_address` only with `MREMAP_FIXED`); on x86-64 a variadic
/// argument travels in the register a fifth fixed one would, so it is declared with five and
/// `new_addr` is only read with `MREMAP_FIXED`, as the kernel does.
///
/// # Safety
/// mremap's contract.
#[no_mangle]
pub unsafe extern "C" fn mremap(
    old: *mut libc::c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut libc::c_void,
) -> *mut libc::c_void {
    if let Err(e) =
        vmsrs_runtime::watch::before_remap(old as usize, old_len, new_len, flags, new_addr as usize)
    {
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = e };
        return libc::MAP_FAILED;
    }
    // SAFETY: forwarded contract; the system call is what glibc's mremap makes.
    unsafe { libc::syscall(libc::SYS_mremap, old, old_len, new_len, flags, new_addr) as *mut libc::c_void }
}

/// `shmat(2)`: with `SHM_REMAP`, the watched runs the segment maps over stop being watched
/// first, as at `munmap`.
///
/// # Safety
/// shmat's contract.
#[no_mangle]
pub unsafe extern "C" fn shmat(shmid: c_int, addr: *const libc::c_void, flags: c_int) -> *mut libc::c_void {
    vmsrs_runtime::watch::before_shmat(shmid, addr as usize, flags);
    // SAFETY: forwarded contract; the system call is what glibc's shmat makes.
    unsafe { libc::syscall(libc::SYS_shmat, shmid, addr, flags) as *mut libc::c_void }
}

/// `mprotect(2)`: as asked, except that pages watched by page protection never become
/// writable (`vmsrs_runtime::watch::mprotect`): their stores must keep trapping.
///
/// # Safety
/// mprotect's contract.
#[no_mangle]
pub unsafe extern "C" fn mprotect(addr: *mut libc::c_void, len: usize, prot: c_int) -> c_int {
    vmsrs_runtime::watch::mprotect(addr as usize, len, prot)
}

/// `pkey_mprotect(2)`: as `mprotect`, the pages getting the key too (-1: plain `mprotect`).
///
/// # Safety
/// pkey_mprotect's contract.
#[no_mangle]
pub unsafe extern "C" fn pkey_mprotect(
    addr: *mut libc::c_void,
    len: usize,
    prot: c_int,
    pkey: c_int,
) -> c_int {
    vmsrs_runtime::watch::pkey_mprotect(addr as usize, len, prot, pkey)
}

// ---------------------------------------------------------------------------------------------
// Descriptors the program closes or replaces: one that is a hardware watchpoint's event
// (watch=hw) is forgotten by libvmsrs first, so libvmsrs never closes that number later.

/// `close(2)`.
///
/// # Safety
/// close's contract.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { vmsrs_runtime::watch::close(fd) }
}

/// `dup2(2)`.
#[no_mangle]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    vmsrs_runtime::watch::dup_to(old, new, None)
}

/// `dup3(2)`.
#[no_mangle]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    vmsrs_runtime::watch::dup_to(old, new, Some(flags))
}

/// `close_range(2)`.
#[no_mangle]
pub extern "C" fn close_range(first: libc::c_uint, last: libc::c_uint, flags: c_int) -> c_int {
    vmsrs_runtime::watch::close_range(first, last, flags)
}

/// `closefrom(3)`.
#[no_mangle]
pub extern "C" fn closefrom(low: c_int) {
    vmsrs_runtime::watch::closefrom(low)
}

/// `dlclose(3)`: glibc's, then the watched ranges of an unloaded library are dropped.
///
/// # Safety
/// dlclose's contract.
#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut libc::c_void) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { vmsrs_runtime::watch::dlclose(handle) }
}

// ---------------------------------------------------------------------------------------------
// Signal masks.

/// While ranges are watched every store to their pages is a SIGSEGV that libvmsrs handles;
/// with SIGSEGV blocked the kernel kills the process instead. A program's
/// `sigprocmask`/`pthread_sigmask` (e.g. `sigfillset` + `SIG_BLOCK` around a critical
/// section, a common idiom) therefore never blocks SIGSEGV while watching: blocking a
/// synchronous fault signal has no other effect than that death.
fn without_sigsegv(set: *const libc::sigset_t, out: &mut libc::sigset_t) -> *const libc::sigset_t {
    if set.is_null() || !vmsrs_runtime::watch::active() {
        return set;
    }
    // SAFETY: `set` is the caller's valid set (contract); `out` is ours.
    unsafe {
        *out = *set;
        libc::sigdelset(out, libc::SIGSEGV);
        if vmsrs_runtime::watch::hw::active() {
            // A watchpoint's SIGTRAP blocked would come late, after other stores.
            libc::sigdelset(out, libc::SIGTRAP);
        }
    }
    out
}

/// `sigprocmask(2)`, never blocking SIGSEGV while ranges are watched (see [`without_sigsegv`]).
///
/// # Safety
/// sigprocmask's contract.
#[no_mangle]
pub unsafe extern "C" fn sigprocmask(
    how: c_int,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> c_int {
    // SAFETY: pthread_sigmask (ours, below) has sigprocmask's contract, its result in errno form.
    let rc = unsafe { pthread_sigmask(how, set, old) };
    if rc != 0 {
        // SAFETY: this thread's errno.
        unsafe { *libc::__errno_location() = rc };
        return -1;
    }
    0
}

/// `pthread_sigmask(3)`, never blocking SIGSEGV while ranges are watched.
///
/// # Safety
/// pthread_sigmask's contract.
#[no_mangle]
pub unsafe extern "C" fn pthread_sigmask(
    how: c_int,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> c_int {
    // SAFETY: an all-zero sigset_t is valid.
    let mut tmp: libc::sigset_t = unsafe { core::mem::zeroed() };
    // Only a set that blocks is changed (unblocking SIGSEGV or SIGTRAP is always fine).
    let set = if how == libc::SIG_UNBLOCK { set } else { without_sigsegv(set, &mut tmp) };
    // SAFETY: forwarded contract.
    unsafe { real_pthread_sigmask(how, set, old) }
}

/// glibc's `pthread_sigmask` (which also keeps its internal signals unblocked).
unsafe fn real_pthread_sigmask(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int {
    use core::sync::atomic::{AtomicUsize, Ordering};
    type F = unsafe extern "C" fn(c_int, *const libc::sigset_t, *mut libc::sigset_t) -> c_int;
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let mut f = REAL.load(Ordering::Relaxed);
    if f == 0 {
        // SAFETY: NUL-terminated names; dlvsym allocates nothing for a versioned lookup.
        f = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"pthread_sigmask".as_ptr(), c"GLIBC_2.32".as_ptr()) }
            as usize;
        if f == 0 {
            // SAFETY: as above.
            f = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"pthread_sigmask".as_ptr(), c"GLIBC_2.2.5".as_ptr()) }
                as usize;
        }
        REAL.store(f, Ordering::Relaxed);
    }
    if f == 0 {
        // SAFETY: the raw system call with the kernel's sigset size.
        let rc = unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, set, old, 8) };
        // SAFETY: this thread's errno.
        return if rc == 0 { 0 } else { unsafe { *libc::__errno_location() } };
    }
    // SAFETY: glibc's pthread_sigmask; forwarded contract.
    unsafe { core::mem::transmute::<usize, F>(f)(how, set, old) }
}
