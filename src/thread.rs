//! Per-thread state: the user the thread runs, its recovery point, its alternate signal
//! stack, its fault budget, and the asynchronous signals deferred while it is inside
//! libvmsrs.
//!
//! Re-entrancy: while a thread is inside libvmsrs ([`HvEntry`], `depth > 0`) it may hold a
//! granule or stripe lock. An asynchronous signal that arrives then (kill, pthread_kill, a
//! timer) is not run: its handler would re-enter libvmsrs and wait forever for a lock its
//! own thread holds. The signal is queued again to the thread, kept blocked ([`defer`]), and
//! unblocked as soon as the outermost libvmsrs call returns, so it is delivered a few
//! instructions later, to code that holds nothing. Synchronous faults are never deferred.
//!
//! Plain `const`-initialised thread-locals with no destructor: reading them never allocates
//! and is safe inside a signal handler (in the initial-exec/static TLS block of a library
//! loaded at start-up or preloaded). The end of a thread's implicit user is driven by a
//! pthread key destructor registered in [`crate::user`].

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{compiler_fence, Ordering};

/// Room for glibc's `sigjmp_buf` (200 bytes on x86-64) with margin.
pub const JMP_BUF_BYTES: usize = 512;

#[repr(C, align(16))]
pub struct JmpBuf(pub UnsafeCell<[u8; JMP_BUF_BYTES]>);

pub struct ThreadState {
    /// The user this thread runs (0: none yet).
    pub user: Cell<u64>,
    /// The last user this thread began: the next one is begun in its slot if it is free.
    pub last_user: Cell<u64>,
    /// Whether `user` was begun explicitly (else it is the thread's implicit user).
    pub explicit: Cell<bool>,
    /// Nesting depth of calls into the hypervisor component; a fault at depth > 0 inside
    /// libvmsrs is the library's own and is chained, never contained.
    pub depth: Cell<u32>,
    /// Two recovery-point buffers: `VMSRS_USER_BEGIN` fills the idle one, a successful begin
    /// arms it, so a refused begin never clobbers the armed one.
    pub jmp: [JmpBuf; 2],
    pub armed: Cell<Option<u8>>,
    pub altstack: Cell<bool>,
    /// The alternate stack libvmsrs mapped for this thread (address, length), freed at exit.
    pub own_altstack: Cell<(usize, usize)>,
    /// Fault budget of the current user.
    pub skipped: Cell<u32>,
    pub last_pc: Cell<u64>,
    /// The watched-page store this thread retried last (pc, address), see `watch::given_back`.
    pub watch_retry: Cell<(u64, u64)>,
    pub same_pc: Cell<u32>,
    pub first_fault_ns: Cell<u64>,
    /// Whether the pthread key that ends the implicit user at thread exit is set.
    pub exit_hook: Cell<bool>,
    /// Rounds of thread-exit destructors run so far (see `user::thread_exit`).
    pub exit_rounds: Cell<u8>,
    /// Signals (bit per number) deferred while inside libvmsrs: queued again and blocked,
    /// to be unblocked when `depth` returns to 0.
    pub deferred: Cell<u64>,
    /// A pointer argument of the current call could not be accessed (address + 1; 0: none).
    pub bad_pointer: Cell<usize>,
    /// Fault signals (bit per number) this thread just handed to the program's own handler:
    /// that handler's re-raise of the same signal is not contained again.
    pub forwarded: Cell<u64>,
    /// The rescue call this thread is in (hook index + 1; 0: none), see `rescue.rs`: the
    /// caller's return address, the address it was stored at (the stack pointer at the call),
    /// and the frame of registers at the call.
    pub rescue: Cell<u32>,
    pub rescue_ret: Cell<usize>,
    pub rescue_rsp: Cell<usize>,
    pub rescue_frame: UnsafeCell<[u64; crate::rescue::FRAME_WORDS]>,
    /// A C++ exception is being unwound through the rescue call: its return-address slot
    /// holds the caller's address (not the exit stub's) until a handler catches it.
    pub rescue_in_flight: Cell<bool>,
    /// The program's signal handlers running on this thread (`fault::chain`), outermost
    /// first: the signal mask of the code each one interrupted (signals 1-64), kept for the
    /// first `HANDLER_MARKS`; and how many were running when the rescue call began. An unwind
    /// out of a handler that interrupted the rescue call restores that handler's mask.
    pub handler_masks: Cell<[u64; HANDLER_MARKS]>,
    /// The address of each of those handlers' frames (a `longjmp` above one leaves it).
    pub handler_frames: Cell<[usize; HANDLER_MARKS]>,
    pub handler_depth: Cell<u32>,
    pub rescue_handler_depth: Cell<u32>,
    /// The fault being handled interrupted libvmsrs's own handler at its entry: a SIGTRAP of
    /// a hardware watchpoint (`watch::hw`) was delivered with it and has not run.
    pub trap_below: Cell<bool>,
    /// The generation of the hardware watchpoints this thread was last checked against
    /// (`watch::hw::ensure_this_thread`).
    pub hw_gen: Cell<u32>,
    /// libvmsrs is ending this thread (its user is contained and it had no recovery point):
    /// a fault signal sent to it from now on is dropped, never contained a second time.
    pub ending: Cell<bool>,
    /// This thread runs a faulted user and denies the protection key of the watched pages
    /// where its view differs from memory (`watch::pkey`).
    pub pkey_denied: Cell<bool>,
}

/// Nested program signal handlers whose interrupted masks a thread keeps.
pub const HANDLER_MARKS: usize = 4;

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            user: Cell::new(0),
            last_user: Cell::new(0),
            explicit: Cell::new(false),
            depth: Cell::new(0),
            jmp: [JmpBuf(UnsafeCell::new([0; JMP_BUF_BYTES])), JmpBuf(UnsafeCell::new([0; JMP_BUF_BYTES]))],
            armed: Cell::new(None),
            altstack: Cell::new(false),
            own_altstack: Cell::new((0, 0)),
            skipped: Cell::new(0),
            last_pc: Cell::new(0),
            watch_retry: Cell::new((0, 0)),
            same_pc: Cell::new(0),
            first_fault_ns: Cell::new(0),
            exit_hook: Cell::new(false),
            exit_rounds: Cell::new(0),
            deferred: Cell::new(0),
            bad_pointer: Cell::new(0),
            forwarded: Cell::new(0),
            rescue: Cell::new(0),
            rescue_ret: Cell::new(0),
            rescue_rsp: Cell::new(0),
            rescue_frame: UnsafeCell::new([0; crate::rescue::FRAME_WORDS]),
            rescue_in_flight: Cell::new(false),
            handler_masks: Cell::new([0; HANDLER_MARKS]),
            handler_frames: Cell::new([0; HANDLER_MARKS]),
            handler_depth: Cell::new(0),
            rescue_handler_depth: Cell::new(0),
            trap_below: Cell::new(false),
            hw_gen: Cell::new(0),
            ending: Cell::new(false),
            pkey_denied: Cell::new(false),
        }
    };
}

/// Run `f` with this thread's state.
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> R {
    STATE.with(f)
}

impl ThreadState {
    /// Reset the per-user fault budget (at begin and end of a user).
    pub fn reset_budget(&self) {
        self.skipped.set(0);
        self.last_pc.set(0);
        self.same_pc.set(0);
        self.first_fault_ns.set(0);
    }

    /// The buffer `VMSRS_USER_BEGIN` should `sigsetjmp` into: the one not armed.
    pub fn staging(&self) -> (u8, *mut u8) {
        let i = match self.armed.get() {
            Some(0) => 1,
            _ => 0,
        };
        (i, self.jmp[i as usize].0.get() as *mut u8)
    }

    pub fn armed_buf(&self) -> Option<*mut u8> {
        self.armed.get().map(|i| self.jmp[i as usize].0.get() as *mut u8)
    }
}

/// Inside libvmsrs (see [`ThreadState::depth`] and the module comment).
pub struct HvEntry;

impl HvEntry {
    #[inline(always)]
    pub fn enter() -> HvEntry {
        with(enter_in);
        HvEntry
    }
}

impl Drop for HvEntry {
    #[inline(always)]
    fn drop(&mut self) {
        with(leave_in);
    }
}

/// [`HvEntry::enter`] for a caller that already holds the thread state.
#[inline(always)]
pub fn enter_in(t: &ThreadState) {
    t.depth.set(t.depth.get() + 1);
    // A signal handler observes `depth` on this thread: keep the increment before the work.
    compiler_fence(Ordering::SeqCst);
}

/// The end of [`enter_in`]: delivers what was deferred once the outermost call is done.
#[inline(always)]
pub fn leave_in(t: &ThreadState) {
    compiler_fence(Ordering::SeqCst);
    let d = t.depth.get() - 1;
    t.depth.set(d);
    if d == 0 && t.deferred.get() != 0 {
        deliver_deferred(t);
    }
}

#[cold]
#[inline(never)]
fn deliver_deferred(t: &ThreadState) {
    let set = crate::fault::chain::bits_to_mask(t.deferred.replace(0));
    // SAFETY: a local set. The re-queued signals are pending: unblocking delivers them now.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut()) };
}

/// Is `sig` with `code` a synchronous fault (raised by the instruction at the pc)?
pub fn is_synchronous(sig: libc::c_int, code: libc::c_int) -> bool {
    code > 0
        && matches!(
            sig,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP | libc::SIGSYS
        )
}

/// Called by a signal handler: if this thread is inside libvmsrs and the signal is
/// asynchronous, queue it again to this thread, keep it blocked when the handler returns
/// (through `uc`), and return `true`: the handler must then return at once. Async-signal-safe.
///
/// # Safety
/// `info` and `uc` are the arguments the kernel passed to the running handler.
pub unsafe fn defer(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) -> bool {
    // SAFETY: the kernel's siginfo for this signal.
    let code = unsafe { (*info).si_code };
    if is_synchronous(sig, code) || !(1..64).contains(&sig) {
        return false;
    }
    with(|t| {
        if t.depth.get() == 0 {
            return false;
        }
        // Blocked in this handler first: a handler installed with SA_NODEFER runs with its own
        // signal deliverable, so the copy queued next would be delivered at once, deferred
        // again, and so on until the signal stack overflowed (the mask of `uc` only takes
        // effect when the handler returns).
        let set = crate::fault::chain::bits_to_mask(1u64 << sig);
        // SAFETY: a local set; rt_sigprocmask on this thread is async-signal-safe.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut()) };
        // SAFETY: re-queue the same siginfo to this very thread (allowed for any code when the
        // target is the caller itself); it stays pending while blocked.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                libc::getpid(),
                libc::syscall(libc::SYS_gettid),
                sig,
                info,
            )
        };
        if rc != 0 {
            return false;
        }
        let uc = uc as *mut libc::ucontext_t;
        // SAFETY: the interrupted context's mask is restored at sigreturn; adding `sig` keeps
        // the re-queued signal pending until `leave_in` unblocks it.
        unsafe { libc::sigaddset(&mut (*uc).uc_sigmask, sig) };
        t.deferred.set(t.deferred.get() | 1u64 << sig);
        true
    })
}

/// The kernel thread id (for reports).
pub fn tid() -> u64 {
    // SAFETY: gettid has no preconditions and is async-signal-safe.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

/// glibc's `_SC_SIGSTKSZ` (not in the libc crate).
const SC_SIGSTKSZ: libc::c_int = 250;

/// Give this thread an alternate signal stack if it has none (DESIGN §5: handlers run on a
/// per-thread alternate stack). The stack is a guarded mapping, never freed while the thread
/// lives; glibc 2.34+ makes SIGSTKSZ a sysconf value, so the size is taken from there.
pub fn ensure_altstack() {
    with(ensure_altstack_in)
}

/// [`ensure_altstack`] for a thread state already in hand.
#[inline]
pub fn ensure_altstack_in(t: &ThreadState) {
    // Not once the thread is exiting (its exit hook has run): nothing would free it, and the
    // few handlers left to run there can use the thread's stack.
    if !t.altstack.get() && t.exit_rounds.get() == 0 {
        give_altstack(t);
    }
}

#[cold]
fn give_altstack(t: &ThreadState) {
    {
        let mut cur: libc::stack_t = libc::stack_t { ss_sp: core::ptr::null_mut(), ss_flags: 0, ss_size: 0 };
        // SAFETY: querying the current alternate stack into a local.
        let rc = unsafe { libc::sigaltstack(core::ptr::null(), &mut cur) };
        if rc == 0 && cur.ss_flags & libc::SS_DISABLE == 0 {
            t.altstack.set(true);
            return;
        }
        // SAFETY: sysconf has no preconditions.
        let min = unsafe { libc::sysconf(SC_SIGSTKSZ) }.max(16384) as usize;
        let size = (min * 4).max(64 * 1024);
        let Some(region) = vmsrs_hv::arena::Region::map(size) else { return };
        let st =
            libc::stack_t { ss_sp: region.as_ptr() as *mut libc::c_void, ss_flags: 0, ss_size: region.len() };
        // SAFETY: `st` describes a private mapping that lives as long as the thread (leaked).
        if unsafe { libc::sigaltstack(&st, core::ptr::null_mut()) } == 0 {
            let len = region.len();
            t.own_altstack.set((region.leak() as usize, len));
            t.altstack.set(true);
        }
    }
}

/// A thread the program created is starting (the interposed `pthread_create`): give it its
/// alternate signal stack, and the thread-exit hook that gives it back.
pub fn thread_started() {
    ensure_altstack();
    crate::user::ensure_exit_hook_here();
    crate::watch::hw::thread_started();
    crate::watch::pkey::thread_started();
}

/// Disable and unmap the alternate stack libvmsrs gave this thread (at thread exit).
pub fn release_altstack_in(t: &ThreadState) {
    let (p, len) = t.own_altstack.get();
    if p == 0 {
        return;
    }
    let off = libc::stack_t { ss_sp: core::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
    // SAFETY: disabling this thread's alternate stack; we are not running on it.
    if unsafe { libc::sigaltstack(&off, core::ptr::null_mut()) } == 0 {
        // SAFETY: the region was mapped by ensure_altstack and leaked; it is disabled now.
        unsafe { vmsrs_hv::arena::release_leaked(p as *mut u8, len) };
        t.own_altstack.set((0, 0));
        t.altstack.set(false);
    }
}
