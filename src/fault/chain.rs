//! The program's signal dispositions, and chaining to them (ECOSYSTEM pitfalls 11 and 19).
//!
//! libvmsrs interposes `sigaction`, `signal` and their System V/BSD variants
//! (`crate::interpose`, which calls [`program_sigaction`] and [`program_signal`]), in linked
//! and drop-in mode alike. The program always sees and sets its own dispositions, kept in
//! [`PROG`]; the kernel's disposition of a signal is one of ours:
//! - a fault signal libvmsrs contains: `on_fault` ([`take_over`]). The program's handler is
//!   called for every fault libvmsrs does not contain ([`forward`]), with its flags honoured
//!   (`SA_SIGINFO` or not, `SA_RESETHAND`, `SA_NODEFER`, `sa_mask`), so a program that installs
//!   its handler after libvmsrs never silently replaces it;
//! - any other signal with a program handler: [`trampoline`], which defers the signal while
//!   the thread is inside libvmsrs (`thread::defer`) and otherwise calls the program's handler;
//! - `SIG_DFL` and `SIG_IGN`: exactly as the program set them.
//!
//! The table is changed under a spin lock taken with every signal blocked (so a handler that
//! calls `sigaction` cannot deadlock on it) and read lock-free by handlers.

use crate::runtime::{bump, COUNTERS};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use libc::{c_int, c_void, siginfo_t};

pub type Handler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);

extern "C" {
    /// glibc's own `sigaction` (ours interposes the public name).
    fn __sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
}

/// One signal's disposition as the program set it.
struct Disposition {
    known: AtomicBool,
    handler: AtomicUsize,
    flags: AtomicI32,
    /// `sa_mask`, signals 1..=64 as bits.
    mask: AtomicU64,
}

const NSIG: usize = 65;
/// x86-64 `SA_RESTORER`: glibc's own business (it supplies the restorer), never the program's.
const SA_RESTORER: c_int = 0x0400_0000;

#[allow(clippy::declare_interior_mutable_const)]
const UNKNOWN: Disposition = Disposition {
    known: AtomicBool::new(false),
    handler: AtomicUsize::new(0),
    flags: AtomicI32::new(0),
    mask: AtomicU64::new(0),
};

static PROG: [Disposition; NSIG] = [UNKNOWN; NSIG];
/// Signals whose kernel disposition is `on_fault`.
static OWNED: AtomicU64 = AtomicU64::new(0);
static LOCK: AtomicBool = AtomicBool::new(false);

fn bit(sig: c_int) -> u64 {
    1u64 << (sig as u32 & 63)
}

/// Run `f` under the table lock, with every signal blocked on this thread.
fn locked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: sets on the stack; pthread_sigmask is async-signal-safe.
    let mut all: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut saved: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: filling and applying local sets.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut saved);
    }
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    let r = f();
    LOCK.store(false, Ordering::Release);
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, core::ptr::null_mut()) };
    r
}

/// The process the table belongs to (set by the first use, and by the child after `fork`).
static OWNER: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

/// Make this process the table's owner (at load, before any child can exist).
pub fn claim_table() {
    let _ = in_vfork_child();
}

/// Is this a child that shares its parent's memory (vfork, clone with CLONE_VM), where
/// the table is the parent's?
fn in_vfork_child() -> bool {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    match OWNER.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => false,
        Err(owner) => owner != pid,
    }
}

/// Take the table lock around `fork` (see `crate::fork`); the caller has blocked signals.
pub fn lock_for_fork() {
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
}

/// Release the lock taken by [`lock_for_fork`]; in a child, it owns its copy of the table.
pub fn unlock_after_fork(child: bool) {
    if child {
        // SAFETY: getpid has no preconditions.
        OWNER.store(unsafe { libc::getpid() }, Ordering::Release);
    }
    LOCK.store(false, Ordering::Release);
}

fn mask_to_bits(set: &libc::sigset_t) -> u64 {
    (1..NSIG as c_int)
        // SAFETY: sigismember reads a valid set.
        .filter(|&s| unsafe { libc::sigismember(set, s) } == 1)
        .fold(0, |m, s| m | bit(s))
}

pub(crate) fn bits_to_mask(bits: u64) -> libc::sigset_t {
    // SAFETY: an empty set on the stack.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: sigemptyset/sigaddset on the local set.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in 1..NSIG as c_int {
            if bits & bit(s) != 0 {
                libc::sigaddset(&mut set, s);
            }
        }
    }
    set
}

fn action(handler: usize, flags: c_int, mask: u64) -> libc::sigaction {
    // SAFETY: an all-zero sigaction is valid; fields set below.
    let mut sa: libc::sigaction = unsafe { core::mem::zeroed() };
    sa.sa_sigaction = handler;
    sa.sa_flags = flags;
    sa.sa_mask = bits_to_mask(mask);
    sa
}

/// Learn the program's disposition of `sig` from the kernel if it was never set through us
/// (inherited across exec, or set before libvmsrs was reachable). Table lock held.
fn ensure_known(sig: c_int) {
    let d = &PROG[sig as usize];
    if d.known.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: querying into a zeroed local.
    let mut cur: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: valid pointers; NULL act only queries.
    unsafe { __sigaction(sig, core::ptr::null(), &mut cur) };
    d.handler.store(cur.sa_sigaction, Ordering::Relaxed);
    d.flags.store(cur.sa_flags & !SA_RESTORER, Ordering::Relaxed);
    d.mask.store(mask_to_bits(&cur.sa_mask), Ordering::Relaxed);
    d.known.store(true, Ordering::Release);
}

/// The program's disposition of `sig`.
fn program(sig: c_int) -> (usize, c_int, u64) {
    let d = &PROG[sig as usize];
    if !d.known.load(Ordering::Acquire) {
        locked(|| ensure_known(sig));
    }
    (d.handler.load(Ordering::Relaxed), d.flags.load(Ordering::Relaxed), d.mask.load(Ordering::Relaxed))
}

/// Make the kernel's disposition of `sig` match the table (table lock held).
fn apply(sig: c_int) -> c_int {
    if OWNED.load(Ordering::Acquire) & bit(sig) != 0 {
        return 0;
    }
    let d = &PROG[sig as usize];
    let (h, f, m) =
        (d.handler.load(Ordering::Relaxed), d.flags.load(Ordering::Relaxed), d.mask.load(Ordering::Relaxed));
    let sa = if h == libc::SIG_DFL || h == libc::SIG_IGN {
        action(h, f, m)
    } else {
        action(
            trampoline as *const () as usize,
            (f | libc::SA_SIGINFO) & !libc::SA_RESETHAND,
            m & !sync_bits(),
        )
    };
    // SAFETY: a fully initialised action.
    unsafe { __sigaction(sig, &sa, core::ptr::null_mut()) }
}

/// The synchronous fault signals: blocking one of them while its fault happens kills the
/// process (the kernel forces the default action), and every store to a watched page is a
/// SIGSEGV, so libvmsrs never lets a program handler's mask block them.
fn sync_bits() -> u64 {
    bit(libc::SIGSEGV)
        | bit(libc::SIGBUS)
        | bit(libc::SIGFPE)
        | bit(libc::SIGILL)
        | bit(libc::SIGTRAP)
        | bit(libc::SIGSYS)
}

/// Install `handler` (`on_fault`) as the kernel's disposition of `sig`, with `SA_SIGINFO |
/// SA_ONSTACK`; the program's own disposition stays in the table for chaining.
pub fn take_over(sig: c_int, handler: Handler) -> Result<(), crate::error::VmsrsError> {
    locked(|| {
        ensure_known(sig);
        // Every asynchronous signal is blocked while `handler` runs: a program handler that
        // interrupted it before it marked the thread as inside libvmsrs would run with this
        // signal blocked, and its first store to a watched page (a synchronous SIGSEGV while
        // SIGSEGV is blocked) would kill the process. The program's own handlers get their
        // own mask back in `call_program`.
        let all = (1..NSIG as c_int).fold(0u64, |m, s| m | bit(s));
        let sa = action(handler as usize, libc::SA_SIGINFO | libc::SA_ONSTACK, all & !sync_bits());
        // SAFETY: a fully initialised action.
        if unsafe { __sigaction(sig, &sa, core::ptr::null_mut()) } != 0 {
            return Err(crate::error::VmsrsError::VMSRS_EINVAL);
        }
        OWNED.fetch_or(bit(sig), Ordering::AcqRel);
        Ok(())
    })
}

/// Whether libvmsrs's handler is the kernel's disposition of `sig`.
pub fn owned(sig: c_int) -> bool {
    OWNED.load(Ordering::Acquire) & bit(sig) != 0
}

fn set_errno(e: c_int) {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = e };
}

/// The interposed `sigaction` (see the module comment). Same contract and errors as
/// sigaction(2), plus `EFAULT` for unreadable `act` or unwritable `old`.
///
/// # Safety
/// sigaction's contract (bad pointers are reported as EFAULT, not dereferenced).
pub unsafe fn program_sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    if !(1..NSIG as c_int).contains(&sig) || sig == libc::SIGKILL || sig == libc::SIGSTOP || in_vfork_child()
    {
        // A vfork child shares this memory with its parent: it must not touch the table.
        // SAFETY: forwarded; glibc reports EINVAL (or does what it does for these).
        return unsafe { __sigaction(sig, act, old) };
    }
    let new = if act.is_null() {
        None
    } else {
        match vmsrs_hv::uaccess::read(act) {
            Ok(a) => Some(a),
            Err(_) => {
                set_errno(libc::EFAULT);
                return -1;
            }
        }
    };
    locked(|| {
        ensure_known(sig);
        let d = &PROG[sig as usize];
        if !old.is_null() {
            let (h, f, m) = (
                d.handler.load(Ordering::Relaxed),
                d.flags.load(Ordering::Relaxed),
                d.mask.load(Ordering::Relaxed),
            );
            // SAFETY: the program's out-pointer; a bad one is reported as EFAULT.
            if unsafe { vmsrs_hv::uaccess::write(old, action(h, f, m)) }.is_err() {
                set_errno(libc::EFAULT);
                return -1;
            }
        }
        if let Some(a) = new {
            d.handler.store(a.sa_sigaction, Ordering::Relaxed);
            d.flags.store(a.sa_flags & !SA_RESTORER, Ordering::Relaxed);
            d.mask.store(mask_to_bits(&a.sa_mask), Ordering::Relaxed);
            return apply(sig);
        }
        0
    })
}

/// The interposed `signal` family: `sysv` selects System V semantics (`sysv_signal`: reset
/// to default on delivery, no deferral), else BSD semantics (`signal`, `bsd_signal`).
/// Returns the previous handler, or `SIG_ERR` with errno set.
///
pub fn program_signal(sig: c_int, handler: usize, sysv: bool) -> usize {
    let flags = if sysv { libc::SA_RESETHAND | libc::SA_NODEFER } else { libc::SA_RESTART };
    let mut sa = action(handler, flags, 0);
    if !sysv && (1..NSIG as c_int).contains(&sig) {
        // SAFETY: adding to a valid local set (BSD semantics block the signal in its handler,
        // which the kernel does anyway without SA_NODEFER).
        unsafe { libc::sigaddset(&mut sa.sa_mask, sig) };
    }
    // SAFETY: an all-zero sigaction is valid for the output.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both pointers are to locals.
    if unsafe { program_sigaction(sig, &sa, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// Kernel disposition of every signal the program handles that libvmsrs does not own.
extern "C" fn trampoline(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    // SAFETY: the kernel's arguments to this handler.
    if unsafe { crate::thread::defer(sig, info, uc) } {
        return;
    }
    // SAFETY: as above.
    unsafe { call_program(sig, info, uc) };
}

/// Call the program's handler for `sig` as the kernel would have, honouring its flags.
/// Returns `false` if the program's disposition is not a handler.
///
/// # Safety
/// The arguments are those the kernel passed to the running handler.
unsafe fn call_program(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) -> bool {
    let (h, flags, mask) = program(sig);
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return false;
    }
    if flags & libc::SA_RESETHAND != 0 {
        let d = &PROG[sig as usize];
        d.handler.store(libc::SIG_DFL, Ordering::Relaxed);
        d.flags.store(0, Ordering::Relaxed);
        locked(|| apply(sig));
    }
    // The program asked for `mask` (and, without SA_NODEFER, `sig`) to be blocked while its
    // handler runs; whatever the kernel blocked for our own handler is put right here.
    // The kernel would have run it with the interrupted code's mask, plus `mask`, plus `sig`
    // without SA_NODEFER (not with whatever libvmsrs's own handler blocks).
    // SAFETY: `uc` is the kernel's context of this signal.
    let interrupted_bits = mask_to_bits(unsafe { &(*(uc as *const libc::ucontext_t)).uc_sigmask });
    let nodefer = flags & libc::SA_NODEFER != 0;
    // A SIGTRAP handler keeps SIGTRAP blocked, as the kernel would run it: a program that sends
    // itself SIGTRAPs (pthread_kill) faster than its handler runs (every store of the handler to
    // a watched page is a trap) nested its handlers without bound until the signal stack
    // overflowed. (SIGSEGV & co stay deliverable: a store to a watched page in a handler is one.)
    let own = if nodefer { 0 } else { bit(sig) };
    let want = bits_to_mask(
        (interrupted_bits | mask | own) & !sync_bits()
            | interrupted_bits & sync_bits()
            | own & bit(libc::SIGTRAP),
    );
    // SAFETY: local sets; pthread_sigmask is async-signal-safe.
    let mut saved: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &want, &mut saved);
    }
    // The mask of the code this handler interrupted, should a fault in the handler unwind out
    // of it (`rescue::unwind_context`).
    // SAFETY: `uc` is the kernel's context of this signal.
    let interrupted = mask_to_bits(unsafe { &(*(uc as *const libc::ucontext_t)).uc_sigmask });
    let depth = crate::thread::with(|t| {
        let d = t.handler_depth.get();
        if (d as usize) < crate::thread::HANDLER_MARKS {
            let mut marks = t.handler_masks.get();
            marks[d as usize] = interrupted;
            t.handler_masks.set(marks);
            let mut frames = t.handler_frames.get();
            frames[d as usize] = &interrupted as *const u64 as usize;
            t.handler_frames.set(frames);
        }
        t.handler_depth.set(d + 1);
        d
    });
    let denied = crate::watch::pkey::denied_here();
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program installed this as an SA_SIGINFO handler.
        let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        f(sig, info, uc);
    } else {
        // SAFETY: the program installed this as a plain handler.
        let f: extern "C" fn(c_int) = unsafe { core::mem::transmute::<usize, extern "C" fn(c_int)>(h) };
        f(sig);
    }
    crate::thread::with(|t| t.handler_depth.set(depth));
    // A user that faulted inside the handler: the interrupted code's frame is this one.
    // SAFETY: `uc` is the kernel's context of this signal.
    unsafe { crate::watch::pkey::settle_frame(uc as *mut libc::ucontext_t, denied) };
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, core::ptr::null_mut()) };
    true
}

/// Whether the kernel forced this SIGTRAP on the thread (`force_sig_fault`: it kills even
/// when ignored): `int3` (`SI_KERNEL`), or the debug exception's `TRAP_BRKPT`, `TRAP_TRACE`,
/// `TRAP_BRANCH`, `TRAP_HWBKPT`, whose `si_addr` is the interrupted pc. Others (a perf
/// event's `TRAP_PERF`, one a program queued) are dropped when ignored.
///
/// # Safety
/// `info` and `uc` are the arguments the kernel passed to the current signal handler.
unsafe fn forced_trap(info: *const siginfo_t, uc: *const c_void) -> bool {
    // SAFETY: the contract.
    let (code, addr, pc) = unsafe {
        let uc = uc as *const libc::ucontext_t;
        (
            (*info).si_code,
            (*info).si_addr() as usize,
            (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as usize,
        )
    };
    code == 0x80 || ((1..=4).contains(&code) && addr == pc)
}

/// Hand a fault libvmsrs does not contain to the program's own handler, or apply the
/// default action (so core dumps and crash reports still work). A re-raise of the same
/// signal by that handler is then not contained again (see `ThreadState::forwarded`).
///
/// # Safety
/// `info` and `uc` are the arguments the kernel passed to the current signal handler.
pub unsafe fn forward(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    bump(&COUNTERS.faults_chained);
    // SAFETY: the kernel's siginfo.
    let code = unsafe { (*info).si_code };
    if code > 0 {
        // The handler of a real fault may re-raise it to die: that is not contained again.
        crate::thread::with(|t| t.forwarded.set(t.forwarded.get() | bit(sig)));
    }
    let (h, _, _) = program(sig);
    // SAFETY: the kernel's arguments (contract).
    if h == libc::SIG_IGN && (code <= 0 || (sig == libc::SIGTRAP && !unsafe { forced_trap(info, uc) })) {
        return;
    }
    // The program's handler may leave by longjmp: while it runs, this thread is not inside
    // libvmsrs (if the fault came from there), or signals would stay deferred for ever.
    let inside = crate::thread::with(|t| (t.depth.replace(0), t.deferred.replace(0)));
    // SAFETY: forwarded arguments.
    let handled = unsafe { call_program(sig, info, uc) };
    crate::thread::with(|t| {
        t.depth.set(inside.0);
        t.deferred.set(t.deferred.get() | inside.1);
    });
    if handled {
        return;
    }
    // Default action (an ignored synchronous fault gets it too, as the kernel would): give
    // the kernel SIG_DFL; the faulting instruction re-executes, or the signal is re-raised. A
    // SIGTRAP is a trap, not a fault: its instruction is done and does not re-execute, so it
    // is re-raised too (left alone, the program would go on, and the next SIGTRAP, a watchpoint
    // of ours, would kill it).
    let dfl = action(libc::SIG_DFL, 0, 0);
    // SAFETY: a fully initialised action; raise is async-signal-safe.
    unsafe {
        __sigaction(sig, &dfl, core::ptr::null_mut());
        if code <= 0 || sig == libc::SIGTRAP {
            libc::raise(sig);
        }
    }
}
