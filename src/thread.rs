//! Per-thread state: the user the thread runs, its recovery point, its alternate signal
//! stack and its fault budget.
//!
//! Plain `const`-initialised thread-locals with no destructor: reading them never allocates
//! and is safe inside a signal handler (in the initial-exec/static TLS block of a library
//! loaded at start-up or preloaded). The end of a thread's implicit user is driven by a
//! pthread key destructor registered in [`crate::user`].

use core::cell::{Cell, UnsafeCell};

/// Room for glibc's `sigjmp_buf` (200 bytes on x86-64) with margin.
pub const JMP_BUF_BYTES: usize = 512;

#[repr(C, align(16))]
pub struct JmpBuf(pub UnsafeCell<[u8; JMP_BUF_BYTES]>);

pub struct ThreadState {
    /// The user this thread runs (0: none yet).
    pub user: Cell<u64>,
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
    pub same_pc: Cell<u32>,
    pub first_fault_ns: Cell<u64>,
    /// Whether the pthread key that ends the implicit user at thread exit is set.
    pub exit_hook: Cell<bool>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            user: Cell::new(0),
            explicit: Cell::new(false),
            depth: Cell::new(0),
            jmp: [JmpBuf(UnsafeCell::new([0; JMP_BUF_BYTES])), JmpBuf(UnsafeCell::new([0; JMP_BUF_BYTES]))],
            armed: Cell::new(None),
            altstack: Cell::new(false),
            own_altstack: Cell::new((0, 0)),
            skipped: Cell::new(0),
            last_pc: Cell::new(0),
            same_pc: Cell::new(0),
            first_fault_ns: Cell::new(0),
            exit_hook: Cell::new(false),
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

/// Enter the hypervisor component (see [`ThreadState::depth`]).
pub struct HvEntry;

impl HvEntry {
    #[inline(always)]
    pub fn enter() -> HvEntry {
        with(|t| t.depth.set(t.depth.get() + 1));
        HvEntry
    }
}

impl Drop for HvEntry {
    #[inline(always)]
    fn drop(&mut self) {
        with(|t| t.depth.set(t.depth.get() - 1));
    }
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
    with(|t| {
        if t.altstack.get() {
            return;
        }
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
    })
}

/// Disable and unmap the alternate stack libvmsrs gave this thread (at thread exit).
pub fn release_altstack() {
    with(|t| {
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
    })
}
