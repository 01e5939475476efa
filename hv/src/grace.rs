//! Grace periods: memory the hv unpublishes (the metadata of an unprofiled range) is given
//! back only once no thread can still be using a reference it took before.
//!
//! Every hv operation that follows a range's metadata pointer runs inside a reader section
//! ([`Section`]). A thread's sections are counted in its own cache-line slot: entering makes
//! the slot's sequence odd, leaving makes it even, with plain stores. The writer
//! ([`synchronize`]), after unpublishing, issues `membarrier(PRIVATE_EXPEDITED)` (a full
//! barrier on every running thread of the process, so a reader's plain store is visible and
//! any section that starts later sees the unpublished state), then waits until every slot
//! that was odd has moved on. Where membarrier is missing, readers pay a locked exchange
//! instead. Threads beyond [`SLOTS`] share one counter.
//!
//! The wait is bounded: a thread stopped inside a section (a debugger, a cancelled thread)
//! makes `synchronize` report failure instead of hanging, and the caller keeps the memory.

// Plain core atomics: this protocol is not part of what the loom models check.
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Threads with a slot of their own.
pub const SLOTS: usize = 1024;

#[repr(C, align(64))]
struct Slot {
    seq: AtomicU64,
    taken: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot { seq: AtomicU64::new(0), taken: AtomicBool::new(false) };

static SLOT: [Slot; SLOTS] = [FREE_SLOT; SLOTS];
/// Sections open in threads without a slot.
static SHARED: AtomicU64 = AtomicU64::new(0);
/// 0 unknown, 1 membarrier registered, 2 unavailable (readers use locked exchanges).
static MEMBARRIER: AtomicU8 = AtomicU8::new(0);

const NO_SLOT: u32 = u32::MAX;

struct Local {
    /// This thread's slot + 1 (0: not registered yet; `NO_SLOT`: none available).
    mine: Cell<u32>,
    /// Nesting of sections (only the outermost one is counted).
    depth: Cell<u32>,
}

thread_local! {
    static LOCAL: Local = const { Local { mine: Cell::new(0), depth: Cell::new(0) } };
}

/// An open reader section; closes on drop.
pub struct Section(());

impl Section {
    #[inline]
    pub fn enter() -> Section {
        LOCAL.with(|l| {
            let d = l.depth.get();
            l.depth.set(d + 1);
            if d == 0 {
                open(l);
            }
        });
        Section(())
    }
}

impl Drop for Section {
    #[inline]
    fn drop(&mut self) {
        LOCAL.with(|l| {
            let d = l.depth.get() - 1;
            l.depth.set(d);
            if d == 0 {
                close(l);
            }
        });
    }
}

#[inline]
fn open(l: &Local) {
    let mine = l.mine.get();
    let mine = if mine == 0 { register(l) } else { mine };
    if mine == NO_SLOT {
        SHARED.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let s = &SLOT[mine as usize - 1];
    let v = s.seq.load(Ordering::Relaxed) | 1;
    if MEMBARRIER.load(Ordering::Relaxed) == 1 {
        s.seq.store(v, Ordering::Relaxed);
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        s.seq.swap(v, Ordering::SeqCst);
    }
}

#[inline]
fn close(l: &Local) {
    let mine = l.mine.get();
    if mine == NO_SLOT {
        SHARED.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let s = &SLOT[mine as usize - 1];
    s.seq.store(s.seq.load(Ordering::Relaxed) + 1, Ordering::Release);
}

#[cold]
fn register(l: &Local) -> u32 {
    init_membarrier();
    let mut got = NO_SLOT;
    for (i, s) in SLOT.iter().enumerate() {
        if !s.taken.load(Ordering::Relaxed)
            && s.taken.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            got = i as u32 + 1;
            break;
        }
    }
    l.mine.set(got);
    got
}

/// Give this thread's slot back (at thread exit, outside any section).
pub fn thread_exit() {
    let mine = LOCAL.with(|l| l.mine.replace(0));
    if mine != 0 && mine != NO_SLOT {
        SLOT[mine as usize - 1].taken.store(false, Ordering::Release);
    }
}

/// In a child after `fork`: only the calling thread exists, so every other slot is free.
pub fn after_fork_child() {
    let mine = LOCAL.with(|l| l.mine.get());
    for (i, s) in SLOT.iter().enumerate() {
        if i as u32 + 1 != mine {
            s.seq.store(0, Ordering::Relaxed);
            s.taken.store(false, Ordering::Relaxed);
        }
    }
    SHARED.store(0, Ordering::Relaxed);
}

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

fn init_membarrier() {
    if MEMBARRIER.load(Ordering::Acquire) != 0 {
        return;
    }
    #[cfg(not(miri))]
    // SAFETY: membarrier takes no pointers; failure is reported through its result.
    let ok =
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) } == 0;
    #[cfg(miri)]
    let ok = false;
    MEMBARRIER.store(if ok { 1 } else { 2 }, Ordering::Release);
}

/// Wait until every section open at the call has closed. `false` if some section stayed
/// open past `limit_ms` (the caller must then keep what it unpublished).
pub fn synchronize(limit_ms: u64) -> bool {
    init_membarrier();
    if MEMBARRIER.load(Ordering::Acquire) == 1 {
        #[cfg(not(miri))]
        // SAFETY: as in init_membarrier.
        unsafe {
            libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
        }
    } else {
        core::sync::atomic::fence(Ordering::SeqCst);
    }
    let (mine, inside) = LOCAL.with(|l| (l.mine.get(), l.depth.get() > 0));
    let start = now_ms();
    for (i, s) in SLOT.iter().enumerate() {
        if i as u32 + 1 == mine || !s.taken.load(Ordering::Acquire) {
            continue;
        }
        let v = s.seq.load(Ordering::Acquire);
        let mut spins = 0;
        while v & 1 == 1 && s.seq.load(Ordering::Acquire) == v {
            spins += 1;
            relax(spins);
            if spins % 1024 == 0 && now_ms().saturating_sub(start) > limit_ms {
                return false;
            }
        }
    }
    let mut spins = 0;
    let own_shared = (mine == NO_SLOT && inside) as u64;
    while SHARED.load(Ordering::Acquire) > own_shared {
        spins += 1;
        relax(spins);
        if spins % 1024 == 0 && now_ms().saturating_sub(start) > limit_ms {
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
