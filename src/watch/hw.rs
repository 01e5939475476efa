//! Hardware data watchpoints (`watch=hw`): a monitored range of 1, 2, 4 or 8 aligned bytes
//! watched by a debug register of every thread, so only stores to its own bytes trap, never
//! stores to the data that shares its page (DESIGN §6; the false-sharing case:
//! MariaDB's `max_connections` shares a page with `global_query_id`, written by every query).
//!
//! * **Arming** ([`add`]). The range's pages are memfd-backed with an alias as for page
//!   protection ([`super::arm`]), but stay writable. One `perf_event_open` breakpoint event
//!   (`PERF_TYPE_BREAKPOINT`, `HW_BREAKPOINT_W`, user space only) per range and thread, with
//!   `sigtrap`: the kernel sends SIGTRAP (`TRAP_PERF`, the range's slot in `si_perf_data`)
//!   synchronously to the thread that stored, before it runs its next instruction. Threads
//!   living at arming get theirs from a scan of `/proc/self/task`; threads the program creates
//!   later open their own as they start ([`thread_started`]); they are closed at thread exit.
//!   After `fork` the child opens them again for its one thread.
//! * **The trap** ([`on_trap`]) comes *after* the store. The before-image is the copy of the
//!   range libvmsrs keeps: under the watch lock the copy is put back and the new bytes are
//!   stored through the hv as the storing user's monitored store at the alias (journaled,
//!   G3–G5; a suppressed user's store goes to its shadow, so memory keeps the copy, G4). The
//!   hv writes at the alias, a different virtual address, so its own stores and restorations
//!   never trigger the watchpoint.
//! * **Limits**, inherent to a trap after the store: until the storing thread's trap runs
//!   (microseconds), other threads can read the stored value, even a suppressed user's; two
//!   threads that store to the range within that window are journaled as one store of the
//!   first thread to trap (counted as `unchanged` traps); a store is seen by the bytes it
//!   changes, so a byte stored with the value it already had is not journaled as the
//!   storing user's (the instruction's own extent is not decoded); stores by the kernel (a `read` into
//!   the range) are journaled only when they go through libvmsrs's interposed calls; a thread
//!   started by a raw `clone` after arming has no watchpoint. At most [`MAX`] ranges (the four
//!   debug registers).

use crate::{runtime, thread};
use core::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// Ranges watched by hardware, at most (x86-64 has four debug address registers).
pub(crate) const MAX: usize = 4;

/// `si_code` of a SIGTRAP sent by a perf event with `sigtrap` set.
pub(crate) const TRAP_PERF: libc::c_int = 6;

/// `si_perf_data` of our events: this tag, plus the slot.
const TAG: u64 = 0x766d_7372_735f_6877; // "vmsrs_hw"

/// Whether `addr..addr+len` fits one debug register.
pub fn fits(addr: usize, len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && addr.is_multiple_of(len)
}

struct Slot {
    addr: AtomicUsize,
    len: AtomicUsize,
    alias: AtomicUsize,
    /// The range's bytes as last journaled (little-endian, `len` low bytes).
    copy: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const NO_SLOT: Slot = Slot {
    addr: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    alias: AtomicUsize::new(0),
    copy: AtomicU64::new(0),
};
static SLOTS: [Slot; MAX] = [NO_SLOT; MAX];
/// Slots in use (published with Release after a slot's fields).
static USED: AtomicUsize = AtomicUsize::new(0);
/// Set before the first [`add`] scans the threads: from then on a starting or ending thread
/// takes the table lock, so none is missed between the scan and the slot's publication.
static WANTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Counters (`vmsrs_watch_*` metrics and the tests).
pub static TRAPS: AtomicU64 = AtomicU64::new(0);
pub static UNCHANGED: AtomicU64 = AtomicU64::new(0);

/// Whether any range is watched by hardware.
#[inline]
pub fn active() -> bool {
    USED.load(Ordering::Acquire) != 0
}

/// Whether a watchpoint watches `addr` (the start of a range).
pub fn watches(addr: usize) -> bool {
    SLOTS[..USED.load(Ordering::Acquire)]
        .iter()
        .any(|s| s.addr.load(Ordering::Relaxed) == addr && s.alias.load(Ordering::Relaxed) != 0)
}

/// Debug registers still free for [`add`].
pub fn free() -> usize {
    MAX - USED.load(Ordering::Acquire)
}

// ---------------------------------------------------------------------------------------------
// The events of each thread.

/// Threads whose events libvmsrs holds, at most; an open-addressed table keyed by tid.
const MAX_THREADS: usize = 16384;
const EMPTY: i32 = 0;
const GONE: i32 = -1;

struct Watcher {
    tid: AtomicI32,
    fds: [AtomicI32; MAX],
}
#[allow(clippy::declare_interior_mutable_const)]
const NO_WATCHER: Watcher = Watcher { tid: AtomicI32::new(EMPTY), fds: [const { AtomicI32::new(-1) }; MAX] };
static THREADS: [Watcher; MAX_THREADS] = [NO_WATCHER; MAX_THREADS];
/// Serialises the table (normal context only: arming, thread start and exit, fork child).
static TABLE: spin::Mutex<()> = spin::Mutex::new(());

fn home(tid: i32) -> usize {
    (tid as u32).wrapping_mul(2_654_435_761) as usize % MAX_THREADS
}

/// The entry of `tid` (with the table lock held).
fn find(tid: i32) -> Option<&'static Watcher> {
    let h = home(tid);
    for k in 0..MAX_THREADS {
        let w = &THREADS[(h + k) % MAX_THREADS];
        match w.tid.load(Ordering::Relaxed) {
            EMPTY => return None,
            t if t == tid => return Some(w),
            _ => {}
        }
    }
    None
}

/// The entry of `tid`, made if missing (with the table lock held); `None`: the table is full.
fn entry(tid: i32) -> Option<&'static Watcher> {
    if let Some(w) = find(tid) {
        return Some(w);
    }
    let h = home(tid);
    (0..MAX_THREADS).map(|k| &THREADS[(h + k) % MAX_THREADS]).find(|w| {
        let t = w.tid.load(Ordering::Relaxed);
        (t == EMPTY || t == GONE) && {
            w.tid.store(tid, Ordering::Relaxed);
            true
        }
    })
}

fn close_all(w: &Watcher) {
    for fd in &w.fds {
        let f = fd.swap(-1, Ordering::Relaxed);
        if f >= 0 {
            // SAFETY: an event descriptor libvmsrs opened and nobody else uses.
            unsafe { libc::close(f) };
        }
    }
}

/// `struct perf_event_attr` (kernel ABI, `PERF_ATTR_SIZE_VER8`, 136 bytes) as 17 words.
const ATTR_WORDS: usize = 17;
const PERF_TYPE_BREAKPOINT: u64 = 5;
const HW_BREAKPOINT_W: u64 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
// Bits of the flags word (offset 40).
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const REMOVE_ON_EXEC: u64 = 1 << 36;
const SIGTRAP: u64 = 1 << 37;

/// Open the write breakpoint of `slot` on thread `tid` (0: the calling thread): the fd, or
/// the errno.
fn open(tid: i32, slot: usize) -> Result<i32, i32> {
    let s = &SLOTS[slot];
    let mut a = [0u64; ATTR_WORDS];
    a[0] = PERF_TYPE_BREAKPOINT | ((ATTR_WORDS as u64 * 8) << 32); // type, size
    a[2] = 1; // sample_period: every hit
    a[5] = EXCLUDE_KERNEL | EXCLUDE_HV | REMOVE_ON_EXEC | SIGTRAP;
    a[6] = 1 | (HW_BREAKPOINT_W << 32); // wakeup_events, bp_type
    a[7] = s.addr.load(Ordering::Relaxed) as u64; // bp_addr
    a[8] = s.len.load(Ordering::Relaxed) as u64; // bp_len
    a[15] = TAG ^ slot as u64; // sig_data
                               // SAFETY: a complete attribute of the size it declares; the kernel only reads it.
    let fd = unsafe {
        libc::syscall(libc::SYS_perf_event_open, a.as_ptr(), tid, -1i32, -1i32, PERF_FLAG_FD_CLOEXEC)
    };
    if fd < 0 {
        // SAFETY: errno is thread-local.
        return Err(unsafe { *libc::__errno_location() });
    }
    Ok(fd as i32)
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The threads of this process now.
fn threads() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return vec![gettid()] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

// ---------------------------------------------------------------------------------------------
// Arming.

fn read_copy(alias: usize, len: usize) -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: the alias is `len` readable bytes of a watched region (libvmsrs's mapping).
    unsafe { core::ptr::copy_nonoverlapping(alias as *const u8, b.as_mut_ptr(), len) };
    u64::from_le_bytes(b)
}

/// Watch `addr..addr+len` (which [`fits`]) with a debug register of every thread; `alias` is
/// its address in the region's alias. With the watch lock held, the range's pages still
/// read-only (so no store is missed while the events are opened). `Err` names why, with
/// nothing left armed.
pub fn add(name: &str, addr: usize, len: usize, alias: usize) -> Result<(), String> {
    let slot = USED.load(Ordering::Acquire);
    if slot == MAX {
        return Err(format!("range {name}: all {MAX} hardware watchpoints are in use (watch=hw)"));
    }
    let s = &SLOTS[slot];
    s.addr.store(addr, Ordering::Relaxed);
    s.len.store(len, Ordering::Relaxed);
    s.alias.store(alias, Ordering::Relaxed);
    s.copy.store(read_copy(alias, len), Ordering::Relaxed);
    WANTED.store(true, Ordering::SeqCst);
    let _t = TABLE.lock();
    let me = gettid();
    let mut failure = None;
    for tid in threads() {
        let Some(w) = entry(tid) else {
            failure = Some(format!("more than {MAX_THREADS} threads"));
            break;
        };
        match open(if tid == me { 0 } else { tid }, slot) {
            Ok(fd) => w.fds[slot].store(fd, Ordering::Relaxed),
            Err(libc::ESRCH) => {} // ended meanwhile
            Err(e) => {
                failure = Some(format!("perf_event_open of a write breakpoint failed: {}", errno_name(e)));
                break;
            }
        }
    }
    if let Some(why) = failure {
        for w in &THREADS {
            let f = w.fds[slot].swap(-1, Ordering::Relaxed);
            if f >= 0 {
                // SAFETY: an event descriptor opened above.
                unsafe { libc::close(f) };
            }
        }
        s.alias.store(0, Ordering::Relaxed);
        return Err(format!("range {name} ({addr:#x}+{len}): {why}; use watch=page"));
    }
    USED.store(slot + 1, Ordering::Release);
    Ok(())
}

fn errno_name(e: i32) -> String {
    let what = match e {
        libc::ENOSPC => "ENOSPC (no debug register free on a thread)",
        libc::EACCES | libc::EPERM => "EACCES/EPERM (perf events not permitted: kernel.perf_event_paranoid)",
        libc::ENOENT | libc::EOPNOTSUPP => "ENOENT/EOPNOTSUPP (no hardware breakpoints here)",
        libc::EINVAL => "EINVAL (the kernel lacks perf sigtrap, Linux 5.13+)",
        _ => return format!("errno {e}"),
    };
    what.to_owned()
}

/// A thread the program created is starting: open its watchpoints.
pub fn thread_started() {
    if !WANTED.load(Ordering::SeqCst) {
        return;
    }
    let _t = TABLE.lock();
    let n = USED.load(Ordering::Acquire);
    if n == 0 {
        return;
    }
    let tid = gettid();
    // An entry of this tid belonged to a thread that ended (the tid is ours now).
    if let Some(w) = find(tid) {
        close_all(w);
    }
    let Some(w) = entry(tid) else {
        warn_thread(tid, "the table of watched threads is full");
        return;
    };
    for slot in (0..n).filter(|&i| SLOTS[i].alias.load(Ordering::Relaxed) != 0) {
        match open(0, slot) {
            Ok(fd) => w.fds[slot].store(fd, Ordering::Relaxed),
            Err(e) => warn_thread(tid, &errno_name(e)),
        }
    }
}

fn warn_thread(tid: i32, why: &str) {
    eprintln!(
        "=={}==vmsrs: error: thread {tid} has no hardware watchpoint ({why}): its stores to watch=hw ranges \
         are NOT journaled",
        std::process::id()
    );
}

/// Thread exit: close this thread's events.
pub fn thread_exit() {
    if !WANTED.load(Ordering::SeqCst) {
        return;
    }
    let _t = TABLE.lock();
    if let Some(w) = find(gettid()) {
        close_all(w);
        w.tid.store(GONE, Ordering::Relaxed);
    }
}

/// In a child after fork (one thread; the parent's events were not inherited): drop the
/// parent's descriptors and open this thread's events.
pub fn after_fork_child() {
    if !WANTED.load(Ordering::SeqCst) {
        return;
    }
    // SAFETY: the child has one thread; a lock another thread of the parent held is void.
    unsafe { TABLE.force_unlock() };
    for w in &THREADS {
        if w.tid.load(Ordering::Relaxed) != EMPTY {
            close_all(w);
            w.tid.store(GONE, Ordering::Relaxed);
        }
    }
    thread_started();
}

/// The program unmapped `start..end`: its watchpoints are closed on every thread (the slot
/// is not reused). With the watch lock held; normal context.
pub fn remove(start: usize, end: usize) {
    let _t = TABLE.lock();
    for (slot, s) in SLOTS[..USED.load(Ordering::Acquire)].iter().enumerate() {
        let a = s.addr.load(Ordering::Relaxed);
        if start <= a && a < end && s.alias.swap(0, Ordering::Relaxed) != 0 {
            for w in &THREADS {
                let f = w.fds[slot].swap(-1, Ordering::Relaxed);
                if f >= 0 {
                    // SAFETY: an event descriptor libvmsrs opened.
                    unsafe { libc::close(f) };
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The trap.

/// The slot of a SIGTRAP sent by one of our events, if it is one.
///
/// # Safety
/// `info` is the siginfo of the SIGTRAP being handled.
unsafe fn slot_of(info: *const libc::siginfo_t) -> Option<usize> {
    // SAFETY: `si_perf_data` follows `si_addr` in the fault fields (offset 24 of siginfo_t).
    let data = unsafe { (info as *const u8).add(24).cast::<u64>().read_unaligned() };
    let slot = (data ^ TAG) as usize;
    (slot < USED.load(Ordering::Acquire)).then_some(slot)
}

/// Handle a SIGTRAP of a watchpoint: journal what the interrupted thread just stored to the
/// range. `false`: not one of ours.
///
/// # Safety
/// `info` is the siginfo of the SIGTRAP being handled on this thread.
pub unsafe fn on_trap(info: *const libc::siginfo_t) -> bool {
    // SAFETY: the contract.
    let Some(slot) = (unsafe { slot_of(info) }) else { return false };
    let Some(hv) = runtime::hv() else { return true };
    let _g = super::lock();
    let _e = thread::HvEntry::enter();
    TRAPS.fetch_add(1, Ordering::Relaxed);
    let s = &SLOTS[slot];
    let (len, alias) = (s.len.load(Ordering::Relaxed), s.alias.load(Ordering::Relaxed));
    if alias == 0 {
        return true; // no longer watched
    }
    let (old, new) = (s.copy.load(Ordering::Relaxed), read_copy(alias, len));
    if old == new {
        // The same bytes stored again, or a store another thread's trap journaled already.
        UNCHANGED.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    // Put the before-image back, then store the bytes that changed as this thread's user's
    // store: byte-precise, a byte another user wrote and this store left alone stays theirs.
    // SAFETY: `len` bytes of the alias (libvmsrs's own mapping).
    unsafe { core::ptr::copy_nonoverlapping(old.to_le_bytes().as_ptr(), alias as *mut u8, len) };
    let u = super::storing_user(hv);
    let (ob, nb) = (old.to_le_bytes(), new.to_le_bytes());
    let mut i = 0;
    while i < len {
        if ob[i] == nb[i] {
            i += 1;
            continue;
        }
        let j = (i..len).find(|&k| ob[k] == nb[k]).unwrap_or(len);
        let _ = hv.store(u, alias + i, &nb[i..j]);
        i = j;
    }
    s.copy.store(read_copy(alias, len), Ordering::Relaxed);
    true
}

/// After libvmsrs itself wrote watched memory through an alias (a restoration, a store for a
/// system call): the copies are the journaled bytes again. With the watch lock held.
pub fn refresh() {
    for s in &SLOTS[..USED.load(Ordering::Acquire)] {
        let alias = s.alias.load(Ordering::Relaxed);
        if alias != 0 {
            s.copy.store(read_copy(alias, s.len.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
    }
}
