//! Fault containment (the paper's crash suppression module, DESIGN §5).
//!
//! SIGSEGV/SIGBUS/SIGFPE/SIGILL (and optionally SIGABRT) raised in a user's thread make that
//! user faulted at one linearization point ([`vmsrs_hv::Hv::crash_suppression`]); then the
//! thread goes on, by policy:
//! - *oblivious*: the faulting instruction is decoded ([`decode`]) and skipped, a load
//!   yielding 0 in its destination ([`context`]);
//! - *unwind*: back to the user's recovery point (`VMSRS_USER_BEGIN()`);
//! - with no recovery point, the thread is ended and the process goes on.
//!
//! A budget (skipped faults, repeats at one pc, time since the first fault) turns oblivious
//! into unwind. Faults inside libvmsrs itself, or in threads the policy excludes, are chained
//! to the program's own handler ([`chain`]). The main thread is never ended: with no
//! recovery point its fault goes to the program's handler (or the default action), so the
//! process cannot exit 0 after losing it.
//!
//! A bad pointer handed to a libvmsrs call is caught by `vmsrs_hv::uaccess` (the handler
//! resumes the guarded copy at its fixup) and then treated as the calling user's memory error
//! by [`pointer_fault`], where the library holds no lock. An asynchronous signal that arrives
//! while the thread is inside libvmsrs is deferred (`thread::defer`).
//!
//! Signal-safety rule for everything reachable from [`on_fault`]: no allocation, no blocking
//! lock, no formatting machinery; only atomics, stripe spin locks, and `write(2)`.

pub mod chain;
pub mod context;
pub mod decode;
pub mod report;

use crate::runtime::{self, bump, Policy, COUNTERS};
use crate::thread;
use core::sync::atomic::{AtomicUsize, Ordering};
use libc::{c_int, c_void, siginfo_t};

/// What became of a contained fault (`enum vmsrs_fault_action`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vmsrs_fault_action {
    /// The faulting instruction was skipped (oblivious policy).
    VMSRS_ACTION_SKIPPED = 1,
    /// The user was unwound to its recovery point.
    VMSRS_ACTION_UNWOUND = 2,
    /// No recovery point: the thread was ended, the process went on.
    VMSRS_ACTION_THREAD_ENDED = 3,
    /// The user entered suppression explicitly (`vmsrs_crash_suppression`, a bounds check).
    VMSRS_ACTION_EXPLICIT = 4,
    /// The signal carried no faulting instruction (raise/kill); the user is suppressed and
    /// the thread continues after it.
    VMSRS_ACTION_SUPPRESSED = 5,
    /// A pointer argument of a libvmsrs call could not be accessed; the user is suppressed
    /// and the call returned `VMSRS_EFAULT` (NULL for pointer-returning calls).
    VMSRS_ACTION_REFUSED = 6,
}

static LIB_TEXT_LO: AtomicUsize = AtomicUsize::new(0);
static LIB_TEXT_HI: AtomicUsize = AtomicUsize::new(0);

/// Install the handlers for the signals in `mask` (bit per signal number), remembering the
/// program's handlers for chaining. Called once by `vmsrs_init_profile`.
pub fn install(mask: u64) -> Result<(), crate::error::VmsrsError> {
    prepare();
    thread::ensure_altstack();
    for sig in 1..64 {
        if mask & (1u64 << sig) != 0 {
            chain::take_over(sig, on_fault)?;
        }
    }
    Ok(())
}

/// Handle SIGTRAP too (hardware watchpoints, `watch::hw`), if `VMSRS_SIGNALS` does not name it:
/// a SIGTRAP that is not a watchpoint's then goes to the program's disposition untouched.
pub fn take_over_sigtrap() -> Result<(), crate::error::VmsrsError> {
    if chain::owned(libc::SIGTRAP) {
        return Ok(());
    }
    chain::take_over(libc::SIGTRAP, on_fault)
}

/// Build everything the handler needs, so that it never allocates or waits on a lazily
/// built table: iced-x86's decoder tables, the XSAVE layout, libvmsrs's own text extent, the
/// thread-exit key. Run by the library's constructor (before `main`, one thread) and again,
/// idempotently, by `install`.
pub fn prepare() {
    static DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    // Decoding one instruction builds the decoder's tables (they allocate).
    let _ = decode::plan(&[0x48, 0x8b, 0x01], 0);
    chain::claim_table();
    context::init();
    find_own_text();
    crate::user::create_exit_key();
}

/// The executable extent of libvmsrs, so a fault can be told to be the library's own.
fn find_own_text() {
    let mut info: libc::Dl_info = libc::Dl_info {
        dli_fname: core::ptr::null(),
        dli_fbase: core::ptr::null_mut(),
        dli_sname: core::ptr::null(),
        dli_saddr: core::ptr::null_mut(),
    };
    // SAFETY: dladdr on an address inside this object, writing into a local (outside signals).
    if unsafe { libc::dladdr(find_own_text as *const c_void, &mut info) } == 0 {
        return;
    }
    let base = info.dli_fbase as usize;
    // SAFETY: the callback only reads the phdr array the loader hands it.
    unsafe { libc::dl_iterate_phdr(Some(phdr_cb), base as *mut c_void) };
}

unsafe extern "C" fn phdr_cb(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: the loader passes a valid dl_phdr_info for the duration of the callback.
    let info = unsafe { &*info };
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    let base = info.dlpi_addr as usize;
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr holds dlpi_phnum headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
            lo = lo.min(base + ph.p_vaddr as usize);
            hi = hi.max(base + (ph.p_vaddr + ph.p_memsz) as usize);
        }
    }
    if lo <= data as usize && (data as usize) < hi || (base == data as usize && hi > 0) {
        LIB_TEXT_LO.store(lo, Ordering::Relaxed);
        LIB_TEXT_HI.store(hi, Ordering::Relaxed);
        return 1;
    }
    0
}

fn in_library(pc: usize) -> bool {
    pc >= LIB_TEXT_LO.load(Ordering::Relaxed) && pc < LIB_TEXT_HI.load(Ordering::Relaxed)
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime is async-signal-safe and writes into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

extern "C" {
    fn siglongjmp(env: *mut c_void, val: c_int) -> !;
}

/// The signal handler.
extern "C" fn on_fault(sig: c_int, info: *mut siginfo_t, ucv: *mut c_void) {
    // SAFETY: errno is thread-local; saved and restored around the handler.
    let errno = unsafe { *libc::__errno_location() };
    let uc = ucv as *mut libc::ucontext_t;
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as u64) };
    // SAFETY: as above.
    let pc = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] } as u64;
    // Whether this thread denied the watched pages' key when the signal came: a user whose
    // fault is entered inside this handler (its own fault, or a cascade's, settled by the
    // trap of its store) must resume denying it (`pkey::settle_frame`, on every path that
    // resumes the interrupted context after such an entry).
    let denied = crate::watch::pkey::denied_here();

    // The stop byte (`hlt`) of an instruction being patched (watch::patch): run it again from
    // its start.
    // SAFETY: `uc` is this signal's context.
    if sig == libc::SIGSEGV && unsafe { crate::watch::patch::at_stop(code, uc) } {
        // SAFETY: restore errno for the interrupted code.
        unsafe { *libc::__errno_location() = errno };
        return;
    }
    // A hardware watchpoint of a monitored range: journal the store that just happened.
    if sig == libc::SIGTRAP && code == crate::watch::hw::TRAP_PERF {
        // SAFETY: the kernel's siginfo of this SIGTRAP.
        if unsafe { crate::watch::hw::on_trap(info) } {
            // SAFETY: `uc` is this signal's context.
            unsafe { crate::watch::pkey::settle_frame(uc, denied) };
            // SAFETY: restore errno for the interrupted code.
            unsafe { *libc::__errno_location() = errno };
            return;
        }
    }
    // A debug-register hit that perf did not turn into its SIGTRAP: the kernel sends a plain
    // TRAP_HWBKPT one when no event claims the hit (e.g. while a thread's events are being
    // closed), and a TRAP_BRKPT one when the hit's DR6 bits were lost (this nested guest does
    // that). Forwarded, it would reach the program's SIG_DFL, and the next watchpoint would
    // kill the process. What changed is journaled as this thread's store.
    // SAFETY: `uc` is this signal's context.
    if sig == libc::SIGTRAP && unsafe { crate::watch::hw::is_stray(code, uc) } {
        crate::watch::hw::on_stray_trap();
        // SAFETY: restore errno for the interrupted code.
        unsafe { *libc::__errno_location() = errno };
        return;
    }
    if sig == libc::SIGTRAP && runtime::get().is_some_and(|rt| rt.settings.signals & (1u64 << sig) == 0) {
        // Taken over only for the watchpoints: every other SIGTRAP is the program's.
        // SAFETY: the kernel's own arguments to this handler.
        unsafe { chain::forward(sig, info, ucv) };
        // SAFETY: restore errno for the interrupted code.
        unsafe { *libc::__errno_location() = errno };
        return;
    }
    // A watched page (drop-in monitored ranges): a store to emulate, or a faulted user's load
    // of a keyed page. A store that cannot be emulated goes on as the user's fault.
    let pkey_err = code == crate::watch::pkey::SEGV_PKUERR;
    if sig == libc::SIGSEGV && (code == 2 /* SEGV_ACCERR */ || pkey_err) && crate::watch::active() {
        // SAFETY: the kernel's siginfo of this SIGSEGV.
        let key = pkey_err.then(|| unsafe { crate::watch::pkey::si_pkey(info) });
        // SAFETY: `uc` is this signal's context.
        if unsafe { crate::watch::on_trap(addr as usize, key, uc) } {
            // SAFETY: `uc` is this signal's context.
            unsafe { crate::watch::pkey::settle_frame(uc, denied) };
            // SAFETY: restore errno for the interrupted code.
            unsafe { *libc::__errno_location() = errno };
            return;
        }
    }
    // A guarded access to a caller's pointer: resume at its fixup, reporting the address.
    if code > 0 {
        if let Some(fix) = vmsrs_hv::uaccess::fixup(pc as usize) {
            // SAFETY: the interrupted context of this signal; the fixup returns (rest, rdx).
            unsafe {
                let g = &mut (*uc).uc_mcontext.gregs;
                g[libc::REG_RIP as usize] = fix as i64;
                g[libc::REG_RDX as usize] = addr as i64;
                *libc::__errno_location() = errno;
            }
            return;
        }
    }
    // Sent to a thread libvmsrs is already ending: its user is contained, and the thread
    // must reach its end. Containing it again would end it a second time from wherever the
    // signal landed (inside glibc's pthread_exit, or the loader holding its lock).
    if !thread::is_synchronous(sig, code) && thread::with(|t| t.ending.get()) {
        // SAFETY: restore errno for the interrupted code.
        unsafe { *libc::__errno_location() = errno };
        return;
    }
    // Sent while this thread is inside libvmsrs: deliver it when the call is done.
    // SAFETY: the kernel's arguments.
    if unsafe { thread::defer(sig, info, ucv) } {
        // SAFETY: restore errno for the interrupted code.
        unsafe { *libc::__errno_location() = errno };
        return;
    }

    // A fault delivered together with a watchpoint's SIGTRAP interrupts this very handler
    // at its entry, before the trap's store is journaled (`watch::hw::absorb`).
    thread::with(|t| t.trap_below.set(pc == on_fault as *const () as usize as u64));
    // SAFETY: `uc` is the context the kernel handed to this handler.
    unsafe { report::enter_handler(uc) };
    let action = contain(sig, code, addr, pc, uc);
    // SAFETY: `uc` is this signal's context.
    unsafe { crate::watch::pkey::settle_frame(uc, denied) };
    report::leave_handler();
    match action {
        Some(Step::Return) => {}
        Some(Step::Unwind(buf)) => {
            // SAFETY: restore errno before leaving.
            unsafe { *libc::__errno_location() = errno };
            // SAFETY: `buf` was filled by sigsetjmp in a frame that is still live (the user's
            // recovery point: its user is still running), and no value with a destructor is
            // live in this handler frame.
            unsafe { siglongjmp(buf as *mut c_void, 1) }
        }
        // SAFETY: the kernel's own arguments to this handler.
        None => unsafe { chain::forward(sig, info, ucv) },
    }
    // SAFETY: restore errno for the interrupted code.
    unsafe { *libc::__errno_location() = errno };
}

enum Step {
    Return,
    Unwind(*mut u8),
}

/// Is this the process's main thread (which libvmsrs never ends alone)?
fn on_main_thread() -> bool {
    // SAFETY: getpid has no preconditions.
    thread::tid() == unsafe { libc::getpid() } as u64
}

/// Decide and perform containment; `None` means "not ours: chain".
fn contain(sig: c_int, code: c_int, addr: u64, pc: u64, uc: *mut libc::ucontext_t) -> Option<Step> {
    let rt = runtime::get().filter(|rt| rt.settings.policy != Policy::Abort)?;
    let (depth, forwarded) = thread::with(|t| (t.depth.get(), t.forwarded.get()));
    if depth > 0 && in_library(pc as usize) {
        return None;
    }
    if code <= 0 && forwarded & (1u64 << sig) != 0 {
        // The program's own handler re-raising the fault it was handed: let it die.
        thread::with(|t| t.forwarded.set(forwarded & !(1u64 << sig)));
        return None;
    }
    if code > 0 {
        // A new synchronous fault: a re-raise the program's handler owed is long gone.
        thread::with(|t| t.forwarded.set(0));
    }
    let u = fault_user(rt)?;
    if !suppress(rt, u) {
        return None;
    }
    bump(&COUNTERS.faults_contained);
    let escalate = charge_budget(rt, pc);

    if code <= 0 {
        // Sent by kill/raise: there is no faulting instruction to skip. abort() never returns
        // from its raise (it re-raises with the default action), so SIGABRT must unwind.
        if rt.settings.policy == Policy::Oblivious && !escalate && sig != libc::SIGABRT {
            report::fault(sig, code, addr, pc, u, vmsrs_fault_action::VMSRS_ACTION_SUPPRESSED, 0);
            return Some(Step::Return);
        }
    } else if rt.settings.policy == Policy::Oblivious && !escalate && !(sig == libc::SIGSEGV && addr == pc) {
        // The CPU fetched the instruction at pc, so its bytes are readable.
        let mut code_bytes = [0u8; 16];
        // SAFETY: reading up to 15 bytes of executable memory at pc, which the CPU just
        // fetched; an instruction may end at a page boundary, so read only what is mapped
        // in pc's page and the next page only if it is mapped.
        let n = unsafe { readable_code(pc as usize, &mut code_bytes) };
        // Trap-only instructions (ud2 after a provably bad access) are never skipped.
        if let Some(plan) = decode::plan(&code_bytes[..n], pc).filter(|p| p.kind != decode::AccessKind::Trap)
        {
            // SAFETY: `uc` is the interrupted context handed to this handler.
            unsafe { context::apply(&plan, uc) };
            thread::with(|t| t.skipped.set(t.skipped.get() + 1));
            bump(&COUNTERS.instructions_skipped);
            report::fault(sig, code, addr, pc, u, vmsrs_fault_action::VMSRS_ACTION_SKIPPED, plan.len as u64);
            return Some(Step::Return);
        }
    }

    if let Some(buf) = thread::with(|t| t.armed_buf()) {
        bump(&COUNTERS.unwinds);
        report::fault(sig, code, addr, pc, u, vmsrs_fault_action::VMSRS_ACTION_UNWOUND, 0);
        thread::with(|t| t.armed.set(None));
        return Some(Step::Unwind(buf));
    }
    // SAFETY: the interrupted context of this signal.
    let sp = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] } as usize;
    if crate::rescue::active(sp) {
        bump(&COUNTERS.unwinds);
        report::fault(sig, code, addr, pc, u, vmsrs_fault_action::VMSRS_ACTION_UNWOUND, 0);
        // SAFETY: `uc` is this signal's context and the thread is in a rescue call.
        unsafe { crate::rescue::unwind_context(uc) };
        return Some(Step::Return);
    }
    if on_main_thread() {
        report::main_thread_lost(sig, addr, pc, u);
        return None;
    }
    report::fault(sig, code, addr, pc, u, vmsrs_fault_action::VMSRS_ACTION_THREAD_ENDED, 0);
    // SAFETY: `uc` is the interrupted context; redirecting it to the trampoline.
    unsafe { redirect_to_thread_end(uc) };
    Some(Step::Return)
}

/// The user a fault of this thread belongs to (its implicit user if it never began one and
/// the policy contains those); `Some(0)`: contained, though no user could be created (the
/// table is full: the thread's stores were final, so there is nothing to withdraw); `None`:
/// not containable.
fn fault_user(rt: &runtime::Runtime) -> Option<u64> {
    let u = crate::user::current();
    if u != 0 {
        return Some(u);
    }
    if !rt.settings.contain_implicit {
        return None;
    }
    Some(crate::user::implicit_in_handler(rt.hv))
}

/// Enter suppression for `u` (nothing to do for `0`, see [`fault_user`]).
fn suppress(rt: &runtime::Runtime, u: u64) -> bool {
    u == 0 || {
        let _e = thread::HvEntry::enter();
        crate::watch::fencing(rt.hv, u, || rt.hv.crash_suppression(u)).is_ok()
    }
}

/// Count a fault against the user's budget; `true` when it must escalate to unwind.
fn charge_budget(rt: &runtime::Runtime, pc: u64) -> bool {
    thread::with(|t| {
        let now = now_ns();
        if t.first_fault_ns.get() == 0 {
            t.first_fault_ns.set(now);
        }
        if t.last_pc.get() == pc {
            t.same_pc.set(t.same_pc.get() + 1);
        } else {
            t.last_pc.set(pc);
            t.same_pc.set(1);
        }
        t.skipped.get() >= rt.settings.fault_budget
            || t.same_pc.get() > rt.settings.same_pc_limit
            || now - t.first_fault_ns.get() > rt.settings.time_budget_ns
    })
}

/// Note that a pointer argument of the current call could not be accessed at `addr`; the
/// entry point then returns `VMSRS_EFAULT` through [`settle`].
pub fn note_bad_pointer(addr: usize) -> crate::error::VmsrsError {
    thread::with(|t| t.bad_pointer.set(addr.wrapping_add(1)));
    crate::error::VmsrsError::VMSRS_EFAULT
}

/// The last step of an entry point that may have met a bad pointer argument: `status` is
/// what it returns. If a bad pointer was noted, the calling user made a memory error: it is
/// contained like the plain access would be ([`pointer_fault`]).
///
/// Call it in the exported function itself, after every guard and lock is released: it may
/// not return (unwind to the recovery point, or end the thread).
#[inline]
pub fn settle(status: i32) -> i32 {
    let bad = thread::with(|t| t.bad_pointer.replace(0));
    if bad != 0 {
        pointer_fault(bad.wrapping_sub(1));
    }
    status
}

/// The calling user handed libvmsrs a pointer it cannot access: suppress the user, then, by
/// policy, return (the call fails with `VMSRS_EFAULT`, as a skipped instruction would have
/// dropped the access) or unwind to its recovery point / end its thread (never the main
/// thread: there the call just fails). Runs in normal context with no lock held.
fn pointer_fault(addr: usize) {
    let Some(rt) = runtime::get().filter(|rt| rt.settings.policy != Policy::Abort) else { return };
    let Some(u) = fault_user(rt) else { return };
    if !suppress(rt, u) {
        return;
    }
    bump(&COUNTERS.faults_contained);
    let escalate = charge_budget(rt, 0);
    thread::with(|t| t.skipped.set(t.skipped.get() + 1));
    let sig = libc::SIGSEGV;
    if rt.settings.policy == Policy::Unwind || escalate {
        if let Some(buf) = thread::with(|t| t.armed_buf()) {
            bump(&COUNTERS.unwinds);
            report::fault(sig, 0, addr as u64, 0, u, vmsrs_fault_action::VMSRS_ACTION_UNWOUND, 0);
            thread::with(|t| t.armed.set(None));
            // SAFETY: `buf` was filled by sigsetjmp in the user's recovery point, a frame
            // below this one that is still live; the frames in between (the exported call)
            // hold no value with a destructor and no lock at this point.
            unsafe { siglongjmp(buf as *mut c_void, 1) }
        }
        let here = 0u8;
        if crate::rescue::active(&here as *const u8 as usize) {
            bump(&COUNTERS.unwinds);
            report::fault(sig, 0, addr as u64, 0, u, vmsrs_fault_action::VMSRS_ACTION_UNWOUND, 0);
            // SAFETY: the frames between here and the hooked call (the exported call) hold no
            // value with a destructor and no lock at this point.
            unsafe { crate::rescue::resume() }
        }
        if !on_main_thread() {
            report::fault(sig, 0, addr as u64, 0, u, vmsrs_fault_action::VMSRS_ACTION_THREAD_ENDED, 0);
            thread_end_trampoline();
        }
    }
    report::fault(sig, 0, addr as u64, 0, u, vmsrs_fault_action::VMSRS_ACTION_REFUSED, 0);
}

/// Copy the instruction bytes at `pc`, stopping at an unmapped page.
///
/// # Safety
/// `pc` must be an address the CPU fetched an instruction from.
pub(crate) unsafe fn readable_code(pc: usize, out: &mut [u8; 16]) -> usize {
    let page_end = (pc | 4095) + 1;
    let mut n = (page_end - pc).min(15);
    if n < 15 {
        let mut vec = 0u8;
        // SAFETY: mincore only inspects the mapping; ENOMEM means unmapped.
        let mapped = unsafe { libc::mincore(page_end as *mut c_void, 1, &mut vec) } == 0;
        if mapped {
            n = 15;
        }
    }
    // SAFETY: the bytes lie in pages just checked to be mapped (and executable ones are
    // readable on x86-64 Linux).
    unsafe { core::ptr::copy_nonoverlapping(pc as *const u8, out.as_mut_ptr(), n) };
    n
}

/// Make the interrupted thread resume in [`thread_end_trampoline`] on its own stack, below
/// the red zone, with a zero return address so `pthread_exit`'s unwinder stops there.
///
/// # Safety
/// `uc` must be the context of the current signal.
unsafe fn redirect_to_thread_end(uc: *mut libc::ucontext_t) {
    // Before the handler returns: a signal arriving on the way to the trampoline is dropped.
    thread::with(|t| t.ending.set(true));
    // SAFETY: the context belongs to this signal; the stack below rsp-256 is the thread's
    // own free stack.
    unsafe {
        let g = &mut (*uc).uc_mcontext.gregs;
        let rsp = g[libc::REG_RSP as usize] as u64;
        let new_rsp = ((rsp - 1024) & !15) - 8;
        (new_rsp as *mut u64).write(0);
        g[libc::REG_RSP as usize] = new_rsp as i64;
        g[libc::REG_RIP as usize] = thread_end_trampoline as *const () as usize as i64;
    }
}

/// Ends the user of a thread that had no recovery point, releases every lock the thread
/// holds, then ends the thread itself.
extern "C" fn thread_end_trampoline() -> ! {
    thread::with(|t| t.ending.set(true));
    crate::reporter::poll();
    if let Some(hv) = runtime::hv() {
        thread::with(|t| {
            let u = t.user.get();
            if u != 0 {
                let _e = thread::HvEntry::enter();
                let _ = crate::user::end_here(hv, u);
                t.user.set(0);
                t.explicit.set(false);
                t.rescue.set(0);
            }
        });
    }
    crate::locks::release_since(0, "the ended thread");
    bump(&COUNTERS.threads_ended);
    // SAFETY: ending the calling thread; no Rust frame with destructors is above us.
    unsafe { libc::pthread_exit(core::ptr::null_mut()) }
}

/// Record an explicit suppression entry (class 5, bounds checks) in the last-fault record.
pub fn note_explicit(kind: c_int, addr: u64, u: u64) {
    report::fault(kind, 0, addr, 0, u, vmsrs_fault_action::VMSRS_ACTION_EXPLICIT, 0);
}

/// Count a contained fault that did not come through a signal.
pub fn count_explicit() {
    bump(&COUNTERS.faults_contained);
}
