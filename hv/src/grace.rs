//! Grace periods: memory the hv unpublishes (the metadata of an unprofiled range) is given
//! back only once no operation can still be using a reference it took before.
//!
//! Every hv operation that follows a range's metadata pointer runs inside a reader section.
//! Operations by a user count in that user's [`Reader`], which lives in its user slot (so a
//! store pays two plain stores to a line its thread owns anyway, and no thread-local lookup);
//! operations by no user count in one shared counter. Entering makes the reader's sequence
//! odd, leaving makes it even. The writer ([`synchronize`]), after unpublishing, issues
//! `membarrier(PRIVATE_EXPEDITED)` — a full barrier on every running thread of the process,
//! so a reader's plain store is visible, and a section that starts later sees the
//! unpublished state — then waits until every reader that was inside has moved on. Where
//! membarrier is missing, readers pay a locked exchange instead.
//!
//! The wait is bounded: a thread stopped inside a section (a debugger, a cancelled thread)
//! makes `synchronize` report failure instead of hanging, and the caller keeps the memory.

// Plain core atomics: this protocol is not part of what the loom models check.
use core::cell::Cell;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// One user's section counter. Touched by the thread running the user (and, nested, by a
/// signal handler on that same thread); read by `synchronize`.
pub struct Reader {
    seq: AtomicU64,
    depth: Cell<u32>,
}

// SAFETY: `depth` is only touched by the thread running the slot's user (see `UserSlot`);
// `seq` is atomic.
unsafe impl Sync for Reader {}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    pub const fn new() -> Self {
        Reader { seq: AtomicU64::new(0), depth: Cell::new(0) }
    }

    /// Open a section (nested ones count once). Call only on the thread running the user.
    #[inline(always)]
    pub fn enter(&self) -> Section<'_> {
        let d = self.depth.get();
        self.depth.set(d + 1);
        if d == 0 {
            self.open();
            if FORKING.load(Ordering::Relaxed) {
                self.wait_for_fork();
            }
        }
        Section(Ok(self))
    }

    #[inline(always)]
    fn open(&self) {
        let v = self.seq.load(Ordering::Relaxed) | 1;
        if MEMBARRIER.load(Ordering::Relaxed) == READY {
            self.seq.store(v, Ordering::Relaxed);
            core::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            self.seq.swap(v, Ordering::SeqCst);
        }
    }

    /// A `fork` is waiting for every section to close (see [`quiesce_for_fork`]): step out,
    /// wait until it is done, step back in.
    #[cold]
    fn wait_for_fork(&self) {
        while FORKING.load(Ordering::Acquire) {
            self.seq.store(self.seq.load(Ordering::Relaxed) + 1, Ordering::Release);
            let mut spins = 0;
            while FORKING.load(Ordering::Acquire) {
                spins += 1;
                relax(spins);
            }
            self.open();
        }
    }

    /// In a child after `fork`: only the forking thread exists, and it was inside no section
    /// (fork is not called from inside libvmsrs), so whatever other threads had open is gone.
    pub fn reset_after_fork(&self) {
        self.depth.set(0);
        self.seq.store(self.seq.load(Ordering::Relaxed) & !1, Ordering::Relaxed);
    }

    #[inline(always)]
    fn leave(&self) {
        let d = self.depth.get() - 1;
        self.depth.set(d);
        if d == 0 {
            self.seq.store(self.seq.load(Ordering::Relaxed) + 1, Ordering::Release);
        }
    }
}

/// Sections open by operations of no user, in two epochs: `synchronize` flips the epoch
/// and waits for the old counter to drain, so a stream of new shared sections cannot keep
/// it waiting.
static SHARED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// An open reader section; closes on drop.
pub struct Section<'a>(Result<&'a Reader, usize>);

impl Section<'_> {
    /// A section of an operation by no user (the shared counters).
    #[inline]
    pub fn shared() -> Section<'static> {
        loop {
            let e = (EPOCH.load(Ordering::SeqCst) & 1) as usize;
            SHARED[e].fetch_add(1, Ordering::SeqCst);
            if !FORKING.load(Ordering::SeqCst) {
                return Section(Err(e));
            }
            SHARED[e].fetch_sub(1, Ordering::SeqCst);
            let mut spins = 0;
            while FORKING.load(Ordering::Acquire) {
                spins += 1;
                relax(spins);
            }
        }
    }
}

impl Drop for Section<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        match self.0 {
            Ok(r) => r.leave(),
            Err(e) => {
                SHARED[e].fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Set while a `fork` waits for every section to close: new sections wait until it is done.
static FORKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Before `fork`: stop new sections and wait (at most `limit_ms`) until every open one has
/// closed, so no thread that will not come along holds a granule lock mid-operation. `false`
/// if one stayed open (a stopped thread): the fork goes on, and that lock stays held in the
/// child. Ended by [`fork_done`].
pub fn quiesce_for_fork<'a>(readers: impl Iterator<Item = &'a Reader>, limit_ms: u64) -> bool {
    FORKING.store(true, Ordering::SeqCst);
    synchronize(readers, None, limit_ms)
}

/// After `fork`, in the parent and in the child.
pub fn fork_done() {
    FORKING.store(false, Ordering::Release);
}

/// The shared counters' part of [`Reader::reset_after_fork`]. A child is a new process
/// for membarrier: it registers again at its next grace period.
pub fn reset_shared_after_fork() {
    SHARED[0].store(0, Ordering::Relaxed);
    SHARED[1].store(0, Ordering::Relaxed);
    MEMBARRIER.store(UNKNOWN, Ordering::Release);
    init();
}

const UNKNOWN: u8 = 0;
const READY: u8 = 1;
const UNAVAILABLE: u8 = 2;
static MEMBARRIER: AtomicU8 = AtomicU8::new(UNKNOWN);

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// Register for expedited membarrier (once; readers use plain stores from then on). Called
/// when the hv is created (and again in a fork child), before any section can matter.
pub fn init() {
    if MEMBARRIER.load(Ordering::Acquire) != UNKNOWN {
        return;
    }
    #[cfg(not(miri))]
    // SAFETY: membarrier takes no pointers; failure is reported through its result.
    let ok =
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) } == 0;
    #[cfg(miri)]
    let ok = false;
    MEMBARRIER.store(if ok { READY } else { UNAVAILABLE }, Ordering::Release);
}

/// Wait until every section open at the call (in `readers` or shared) has closed, except
/// the calling thread's own (`own`, open or not). `false` if one stayed open past
/// `limit_ms`: the caller must then keep what it unpublished.
pub fn synchronize<'a>(
    readers: impl Iterator<Item = &'a Reader>,
    own: Option<&Reader>,
    limit_ms: u64,
) -> bool {
    init();
    #[cfg(not(miri))]
    // SAFETY: as in init.
    let barrier = MEMBARRIER.load(Ordering::Acquire) == READY
        && unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) } == 0;
    #[cfg(miri)]
    let barrier = false;
    if !barrier {
        // Readers that stored their sequence plainly may not be visible yet: refuse to hand
        // memory back (the caller keeps it) rather than guess.
        core::sync::atomic::fence(Ordering::SeqCst);
        if MEMBARRIER.load(Ordering::Acquire) == READY {
            return false;
        }
    }
    let start = now_ms();
    let mut spins = 0u32;
    let waited_out = |spins: &mut u32| {
        *spins += 1;
        relax(*spins);
        spins.is_multiple_of(1024) && now_ms().saturating_sub(start) > limit_ms
    };
    for r in readers {
        if own.is_some_and(|o| core::ptr::eq(o, r)) {
            continue;
        }
        let v = r.seq.load(Ordering::Acquire);
        while v & 1 == 1 && r.seq.load(Ordering::Acquire) == v {
            if waited_out(&mut spins) {
                return false;
            }
        }
    }
    let old = (EPOCH.fetch_add(1, Ordering::SeqCst) & 1) as usize;
    while SHARED[old].load(Ordering::SeqCst) > 0 {
        if waited_out(&mut spins) {
            return false;
        }
    }
    true
}

fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn relax(spins: u32) {
    if spins.is_multiple_of(64) {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    } else {
        core::hint::spin_loop();
    }
}
