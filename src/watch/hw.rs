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
//!   later open their own as they start ([`thread_started`]). The descriptors are moved to
//!   the top quarter of the descriptor limit, and closed once their thread is gone ([`reap`]).
//!   After `fork` the child opens them again for its one thread.
//! * **The trap** ([`on_trap`]) comes *after* the store. Its bytes are those that differ from
//!   the copy of the range libvmsrs keeps; they are journaled as the storing user's store over
//!   the copy's bytes (`Hv::store_landed`), memory untouched, so a store another thread makes
//!   meanwhile is never overwritten. A suppressed user's bytes go to its shadow and memory is
//!   put back to the copy unless another store landed since (G4). The hv writes at the alias,
//!   a different virtual address, so its restorations never trigger the watchpoint.
//! * **Fault entry** ([`absorb`]): bytes that changed with no trap handled yet (a thread whose
//!   SIGTRAP is still pending or blocked) are journaled before the fault's restoration: as the
//!   faulting user's if its own SIGTRAP is pending, else as final stores of no user.
//! * **Limits**, inherent to a trap after the store: until the storing thread's trap runs
//!   (microseconds), other threads can read the stored value, even a suppressed user's; two
//!   threads that store to the range within that window are journaled as one store of the
//!   first to trap (the second trap finds nothing changed: counted as `unchanged`), and a
//!   store that lands while its range is being restored at a fault can be lost; a byte stored
//!   with the value it already had is not journaled (the instruction is not decoded); stores
//!   by the kernel into the range are journaled only through libvmsrs's interposed calls, and
//!   a thread started by a raw `clone`, or that blocked SIGTRAP before arming, is watched late
//!   or not at all: each such store is journaled as the next trap's. At most [`MAX`] ranges
//!   (the four debug registers); one descriptor per range and thread.

use super::emulate;
use crate::{runtime, thread};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use vmsrs_hv::Hv;

/// Ranges watched by hardware, at most (x86-64 has four debug address registers).
pub(crate) const MAX: usize = 4;

/// `si_code` of a SIGTRAP sent by a perf event with `sigtrap` set.
pub(crate) const TRAP_PERF: libc::c_int = 6;

/// `si_code` of a SIGTRAP the kernel sends for a debug-register hit no perf event claimed.
pub(crate) const TRAP_HWBKPT: libc::c_int = 4;

/// `si_code` of a SIGTRAP the kernel sends for a debug exception whose DR6 names no cause: an
/// `int1` (`icebp`) instruction, or a watchpoint hit whose DR6 bits were lost on the way (seen
/// in this nested guest: about one hit in 10^5 arrives so, and perf never sees it).
pub(crate) const TRAP_BRKPT: libc::c_int = 1;

/// Whether a SIGTRAP of `code`, interrupting the thread in context `uc`, is a debug-register
/// hit of ours that perf did not turn into its own SIGTRAP: `TRAP_HWBKPT`, or a `TRAP_BRKPT`
/// unless it is the program's own `int1`: the byte before the pc is 0xF1, no instruction
/// that ends at the pc accesses a watched range (a store's last byte can be 0xF1 too:
/// `lock addq $-15, m`), and no watched range differs from its copy. Only libvmsrs sets
/// debug registers in a process no debugger traces. Never true while no range is watched.
///
/// # Safety
/// `uc` is the context of the SIGTRAP being handled on this thread.
pub(crate) unsafe fn is_stray(code: libc::c_int, uc: *mut libc::ucontext_t) -> bool {
    if !active() {
        return false;
    }
    match code {
        TRAP_HWBKPT => true,
        TRAP_BRKPT => {
            let cpu = super::UcCpu(uc);
            let pc = emulate::Cpu::rip(&cpu) as usize;
            vmsrs_hv::uaccess::read(pc.wrapping_sub(1) as *const u8) != Ok(0xF1)
                || watched_access_ends_at(pc, &cpu)
                || live().any(|(_, s)| changed(s).is_some())
        }
        _ => false,
    }
}

/// Whether some instruction of 2 to 15 bytes that ends exactly at `pc` accesses memory that
/// overlaps a watched range, at the address the registers of `cpu` (after it ran) give: the
/// store a watchpoint hit follows. Reads only what is readable before `pc`.
fn watched_access_ends_at(pc: usize, cpu: &dyn emulate::Cpu) -> bool {
    use iced_x86::{Decoder, DecoderOptions, OpKind};
    const MAX_LEN: usize = 15;
    let mut code = [0u8; MAX_LEN];
    let mut n = MAX_LEN.min(pc);
    if vmsrs_hv::uaccess::copy_from_guest(&mut code[MAX_LEN - n..], (pc - n) as *const u8).is_err() {
        // The page before pc-1's may be unmapped: only pc-1's own page.
        n = n.min((pc.wrapping_sub(1) & 0xfff) + 1);
        if vmsrs_hv::uaccess::copy_from_guest(&mut code[MAX_LEN - n..], (pc - n) as *const u8).is_err() {
            return false;
        }
    }
    (2..=n).any(|k| {
        let Ok(mut d) = Decoder::try_with_ip(64, &code[MAX_LEN - k..], (pc - k) as u64, DecoderOptions::NONE)
        else {
            return false;
        };
        let i = d.decode();
        if i.is_invalid() || i.len() != k {
            return false;
        }
        (0..i.op_count()).any(|o| {
            let (lo, hi) = match i.op_kind(o) {
                OpKind::Memory => {
                    let Some(ea) = emulate::effective_address(&i, o, cpu) else { return false };
                    let size = i.memory_size().size().max(1) as u64;
                    (ea, ea.wrapping_add(size))
                }
                // A string store: rdi has moved past (or before) what it stored.
                OpKind::MemoryESRDI | OpKind::MemoryESEDI | OpKind::MemoryESDI => {
                    let rdi = cpu.gpr(7);
                    (rdi.wrapping_sub(64), rdi.wrapping_add(64))
                }
                _ => return false,
            };
            live().any(|(_, s)| {
                let a = s.addr.load(Ordering::Relaxed) as u64;
                let n = s.len.load(Ordering::Relaxed) as u64;
                lo < a + n && a < hi
            })
        })
    })
}

/// `si_perf_data` of our events: this tag, plus the slot.
const TAG: u64 = 0x766d_7372_735f_6877; // "vmsrs_hw"

/// Whether `addr..addr+len` fits one debug register.
pub fn fits(addr: usize, len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && addr.is_multiple_of(len)
}

struct Slot {
    addr: AtomicUsize,
    len: AtomicUsize,
    /// The range's address in its alias; 0: the slot is free.
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
/// Slots ever used (published with Release after a slot's fields); a freed slot is reused.
static USED: AtomicUsize = AtomicUsize::new(0);
/// Set before the first [`add`] scans the threads: from then on a starting thread takes the
/// table lock, so none is missed between the scan and the slot's publication.
static WANTED: AtomicBool = AtomicBool::new(false);

/// Changed whenever a slot is armed or freed ([`ensure_this_thread`]).
static GEN: AtomicU32 = AtomicU32::new(1);

/// Counters (`vmsrs_watch_*` metrics and the tests).
pub static TRAPS: AtomicU64 = AtomicU64::new(0);
pub static UNCHANGED: AtomicU64 = AtomicU64::new(0);

fn live() -> impl Iterator<Item = (usize, &'static Slot)> {
    SLOTS[..USED.load(Ordering::Acquire)]
        .iter()
        .enumerate()
        .filter(|(_, s)| s.alias.load(Ordering::Relaxed) != 0)
}

/// Whether any range is watched by hardware.
#[inline]
pub fn active() -> bool {
    USED.load(Ordering::Acquire) != 0
}

/// Whether a watchpoint watches `addr` (the start of a range).
pub fn watches(addr: usize) -> bool {
    live().any(|(_, s)| s.addr.load(Ordering::Relaxed) == addr)
}

/// Debug registers still free for [`add`].
pub fn free() -> usize {
    MAX - live().count()
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
/// Serialises the table (normal context only: arming, thread start, fork child).
static TABLE: spin::Mutex<()> = spin::Mutex::new(());
/// Thread starts since the last [`reap`].
static STARTS: AtomicUsize = AtomicUsize::new(0);
const REAP_EVERY: usize = 256;

fn home(tid: i32) -> usize {
    (tid as u32).wrapping_mul(2_654_435_761) as usize % MAX_THREADS
}

/// The entry of `tid` (with the table lock held).
fn find(tid: i32) -> Option<&'static Watcher> {
    find_keyed(tid, tid)
}

/// The entry of `tid`'s thread that is ending ([`thread_exit`]; with the table lock held). It
/// stays in the place `tid` hashed to.
fn find_ending(tid: i32) -> Option<&'static Watcher> {
    find_keyed(tid, exited(tid))
}

fn find_keyed(tid: i32, key: i32) -> Option<&'static Watcher> {
    let h = home(tid);
    for k in 0..MAX_THREADS {
        let w = &THREADS[(h + k) % MAX_THREADS];
        match w.tid.load(Ordering::Relaxed) {
            EMPTY => return None,
            t if t == key => return Some(w),
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
            close_event(f);
        }
    }
}

/// Close the events of threads that are gone (with the table lock held). An event of a
/// thread that ended counts nothing, but its descriptor stays open until closed here.
fn reap() {
    STARTS.store(0, Ordering::Relaxed);
    reap_where(|_| true);
}

/// Close the descriptors of threads that ended and are gone (with the table lock held): at
/// every thread start and exit, so a thread's descriptors outlive it by about one more
/// thread's start or exit, not by 256 (they sit in the quarter of RLIMIT_NOFILE libvmsrs
/// keeps, and a program's `dup2` onto one of their numbers would be closed with them).
fn reap_ended() {
    if ENDING.load(Ordering::Relaxed) != 0 {
        reap_where(|t| t < GONE);
    }
}

/// Drop the entries, among those whose tid word passes `pick`, of threads that are gone.
fn reap_where(pick: impl Fn(i32) -> bool) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    for w in &THREADS {
        let t = w.tid.load(Ordering::Relaxed);
        let tid = if t < GONE { -t - 1 } else { t };
        // SAFETY: signal 0 only checks that the thread exists.
        if tid > 0 && pick(t) && unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, 0) } != 0 {
            drop_entry(w);
        }
    }
}

/// Entries marked ending ([`thread_exit`]) not dropped yet: while it is 0, [`reap_ended`]
/// scans nothing. Changed only with the table lock held, by `thread_exit` and [`drop_entry`].
static ENDING: AtomicUsize = AtomicUsize::new(0);

/// Close an entry's events and free it (with the table lock held).
fn drop_entry(w: &Watcher) {
    if w.tid.load(Ordering::Relaxed) < GONE {
        ENDING.store(ENDING.load(Ordering::Relaxed).saturating_sub(1), Ordering::Relaxed);
    }
    close_all(w);
    w.tid.store(GONE, Ordering::Relaxed);
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
    let r = high(fd as i32);
    if let Ok(f) = r {
        held(f);
    }
    r
}

/// Move `fd` into the top quarter of the descriptor limit, so that the program's own
/// descriptors (always the lowest free number) keep the rest: with one event per range and
/// thread, a thread-per-connection server would otherwise run out. No room there: the event
/// is closed, `EMFILE`.
fn high(fd: i32) -> Result<i32, i32> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: writes into a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur < 256 {
        return Ok(fd);
    }
    let floor = (lim.rlim_cur - lim.rlim_cur / 4).min(i32::MAX as u64) as i32;
    if fd >= floor {
        return Ok(fd);
    }
    // SAFETY: duplicating our own descriptor at or above `floor`, close-on-exec.
    let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
    // SAFETY: the original descriptor (replaced by `moved`, or given up); the system call, not
    // the interposed close.
    unsafe { libc::syscall(libc::SYS_close, fd) };
    if moved < 0 {
        return Err(libc::EMFILE);
    }
    Ok(moved)
}

// ---------------------------------------------------------------------------------------------
// Descriptors: the program's `close`, `dup2`, `dup3`, `close_range` and `closefrom` can close
// or replace an event's descriptor (a daemon's closefrom, a dup2 onto a number libvmsrs holds).
// libvmsrs then forgets it, and never closes the number later (it may be the program's by then).

/// Descriptors that are events of libvmsrs, one bit each (numbers below 2^20; above, every
/// check scans the table).
static HELD: [AtomicU64; HELD_WORDS] = [const { AtomicU64::new(0) }; HELD_WORDS];
const HELD_WORDS: usize = 1 << 14;

fn held_bit(fd: i32) -> Option<(&'static AtomicU64, u64)> {
    let i = fd as usize / 64;
    (fd >= 0 && i < HELD_WORDS).then(|| (&HELD[i], 1u64 << (fd as usize % 64)))
}

/// Record `fd` as an event's (with the table lock held).
fn held(fd: i32) {
    if let Some((w, b)) = held_bit(fd) {
        w.fetch_or(b, Ordering::Relaxed);
    }
}

/// `fd` is no longer an event's.
fn unheld(fd: i32) {
    if let Some((w, b)) = held_bit(fd) {
        w.fetch_and(!b, Ordering::Relaxed);
    }
}

/// Close an event's descriptor (the system call, not the interposed close; with the table
/// lock held).
fn close_event(fd: i32) {
    unheld(fd);
    // SAFETY: an event descriptor libvmsrs opened and nobody else uses.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// The program is about to close or replace descriptors `first..=last`: forget those that are
/// events of libvmsrs. A thread whose event is gone this way gets it again at its next rescue
/// call. One load per 64 descriptors when none is libvmsrs's.
pub fn fds_taken(first: i32, last: i32) {
    if first < 0 || last < first || !WANTED.load(Ordering::Relaxed) {
        return;
    }
    let (lo, hi) = (first as usize / 64, (last as usize / 64).min(HELD_WORDS - 1));
    let any = lo >= HELD_WORDS || HELD[lo..=hi].iter().any(|w| w.load(Ordering::Relaxed) != 0);
    if !any && (last as usize) < HELD_WORDS * 64 {
        return;
    }
    let _quiet = super::BlockAsync::new();
    let _t = TABLE.lock();
    let mut forgot = false;
    for w in &THREADS {
        for fd in &w.fds {
            let f = fd.load(Ordering::Relaxed);
            if f >= first && f <= last {
                fd.store(-1, Ordering::Relaxed);
                unheld(f);
                forgot = true;
            }
        }
    }
    if forgot {
        // Each thread's next rescue call opens what it lacks.
        GEN.fetch_add(1, Ordering::Release);
    }
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

fn read_bytes(alias: usize, len: usize) -> u64 {
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
    let _t = TABLE.lock();
    let used = USED.load(Ordering::Acquire);
    let Some(slot) = (0..MAX).find(|&i| i >= used || SLOTS[i].alias.load(Ordering::Relaxed) == 0) else {
        return Err(format!("range {name}: all {MAX} hardware watchpoints are in use (watch=hw)"));
    };
    let s = &SLOTS[slot];
    s.addr.store(addr, Ordering::Relaxed);
    s.len.store(len, Ordering::Relaxed);
    s.copy.store(read_bytes(alias, len), Ordering::Relaxed);
    WANTED.store(true, Ordering::SeqCst);
    reap();
    let me = gettid();
    let mut failure = None;
    for tid in threads() {
        if find_ending(tid).is_some() {
            continue; // ending: its events would outlive it
        }
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
        close_slot(slot);
        return Err(format!("range {name} ({addr:#x}+{len}): {why}"));
    }
    s.alias.store(alias, Ordering::Release);
    if slot >= used {
        USED.store(slot + 1, Ordering::Release);
    }
    GEN.fetch_add(1, Ordering::Release);
    Ok(())
}

/// Close the events of `slot` on every thread (with the table lock held).
fn close_slot(slot: usize) {
    for w in &THREADS {
        let f = w.fds[slot].swap(-1, Ordering::Relaxed);
        if f >= 0 {
            close_event(f);
        }
    }
}

fn errno_name(e: i32) -> String {
    let what = match e {
        libc::ENOSPC => "ENOSPC (no debug register free on a thread)",
        libc::EACCES | libc::EPERM => {
            "EACCES/EPERM (perf events not permitted: kernel.perf_event_paranoid, seccomp)"
        }
        libc::ENOENT | libc::EOPNOTSUPP => "ENOENT/EOPNOTSUPP (no hardware breakpoints here)",
        libc::EINVAL => "EINVAL (the kernel lacks perf sigtrap, Linux 5.13+)",
        libc::EMFILE | libc::ENFILE => {
            "EMFILE (no descriptor free in the top quarter of RLIMIT_NOFILE, which libvmsrs keeps to \
             itself: one per watch=hw range and thread)"
        }
        _ => return format!("errno {e}"),
    };
    what.to_owned()
}

/// A thread the program created is starting: open its watchpoints.
pub fn thread_started() {
    if !WANTED.load(Ordering::SeqCst) {
        return;
    }
    // A program handler's store to a watched page while this thread holds the table would
    // wait for the watch lock, which arming holds while it waits for the table.
    let _quiet = super::BlockAsync::new();
    let _t = TABLE.lock();
    if STARTS.fetch_add(1, Ordering::Relaxed) >= REAP_EVERY {
        reap();
    }
    let tid = gettid();
    // An entry of this tid belonged to a thread that ended (the tid is ours now).
    if let Some(w) = find(tid) {
        close_all(w);
    }
    if let Some(w) = find_ending(tid) {
        drop_entry(w);
    }
    reap_ended();
    let slots: Vec<usize> = live().map(|(i, _)| i).collect();
    if slots.is_empty() {
        return;
    }
    let Some(w) = entry(tid) else {
        warn_thread(tid, "the table of watched threads is full");
        return;
    };
    let mut failed = None;
    for slot in slots {
        let mut r = open(0, slot);
        if r == Err(libc::EMFILE) {
            // Descriptors of threads that ended, not reaped yet, may fill the quarter.
            reap();
            r = open(0, slot);
        }
        match r {
            Ok(fd) => w.fds[slot].store(fd, Ordering::Relaxed),
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        warn_thread(tid, &errno_name(e));
    }
}

/// Threads that started with no watchpoint (counted; said once).
pub static UNWATCHED_THREADS: AtomicU64 = AtomicU64::new(0);

fn warn_thread(tid: i32, why: &str) {
    if UNWATCHED_THREADS.fetch_add(1, Ordering::Relaxed) != 0 {
        return;
    }
    eprintln!(
        "=={}==vmsrs: error: thread {tid} has no hardware watchpoint ({why}): its stores to watch=hw ranges \
         are journaled late, as the next trap's (said once; counted in vmsrs_watch_hw_unwatched_threads_total)",
        std::process::id()
    );
}

/// At a rescue call's entry (normal context): a thread libvmsrs did not see start (glibc's
/// own threads, a raw `clone`) gets its watchpoints now, and a thread that blocked SIGTRAP
/// before the ranges were armed gets it unblocked (the interposed masks never block it after),
/// so its traps come with its stores again. One thread-local load when nothing changed.
#[inline]
pub fn ensure_this_thread() {
    if WANTED.load(Ordering::Relaxed) && thread::with(|t| t.hw_gen.get()) != GEN.load(Ordering::Acquire) {
        ensure_slow();
    }
}

#[cold]
fn ensure_slow() {
    let gen = GEN.load(Ordering::Acquire);
    thread::with(|t| t.hw_gen.set(gen));
    // SAFETY: local sets; unblocking SIGTRAP on this thread delivers a pending trap now (before
    // the table is taken, with asynchronous signals blocked: see `thread_started`).
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTRAP);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
    }
    let _quiet = super::BlockAsync::new();
    let _t = TABLE.lock();
    let tid = gettid();
    let Some(w) = entry(tid) else { return };
    for (slot, _) in live() {
        if w.fds[slot].load(Ordering::Relaxed) < 0 {
            match open(0, slot) {
                Ok(fd) => w.fds[slot].store(fd, Ordering::Relaxed),
                Err(e) => warn_thread(tid, &errno_name(e)),
            }
        }
    }
}

/// Thread exit (libvmsrs's key destructor, the first of the thread's key destructors): mark
/// this thread's entry as ending, so that an arming scan that still sees the thread opens
/// no events for it. Its events stay open and keep watching the program's own key
/// destructors, which run after this one, in every round (closing them here left those
/// stores unwatched); the kernel detaches them when the thread is gone, and [`reap`] then
/// closes their descriptors.
pub fn thread_exit() {
    if !WANTED.load(Ordering::SeqCst) {
        return;
    }
    let _quiet = super::BlockAsync::new();
    let _t = TABLE.lock();
    reap_ended();
    let tid = gettid();
    if let Some(w) = find(tid) {
        w.tid.store(exited(tid), Ordering::Relaxed);
        ENDING.fetch_add(1, Ordering::Relaxed);
    }
}

/// The table's mark of a thread that ran [`thread_exit`] (tid ≥ 1: never EMPTY or GONE).
fn exited(tid: i32) -> i32 {
    -tid - 1
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
            drop_entry(w);
        }
    }
    thread_started();
}

/// The program unmapped `start..end`: its watchpoints are closed on every thread and their
/// slots freed. With the watch lock held; normal context.
pub fn remove(start: usize, end: usize) {
    let _t = TABLE.lock();
    for (slot, s) in live() {
        let a = s.addr.load(Ordering::Relaxed);
        if start <= a && a < end {
            close_slot(slot);
            s.alias.store(0, Ordering::Release);
            GEN.fetch_add(1, Ordering::Release);
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
    // SAFETY: the contract.
    let slot = unsafe { tag_of(info) };
    (slot < USED.load(Ordering::Acquire)).then_some(slot)
}

/// `si_perf_data` without our tag (small: one of our events, maybe of a slot freed since).
///
/// # Safety
/// `info` is the siginfo of the SIGTRAP being handled.
unsafe fn tag_of(info: *const libc::siginfo_t) -> usize {
    // SAFETY: `si_perf_data` follows `si_addr` in the fault fields (offset 24 of siginfo_t).
    let data = unsafe { (info as *const u8).add(24).cast::<u64>().read_unaligned() };
    (data ^ TAG) as usize
}

/// Journal the bytes of `new` that differ from `old` as `u`'s store that already landed.
fn journal(hv: &Hv, u: u64, alias: usize, len: usize, old: u64, new: u64) {
    let (ob, nb) = (old.to_le_bytes(), new.to_le_bytes());
    if hv.store_landed(u, alias, &ob[..len], &nb[..len]).is_err() {
        // The user went away meanwhile: the store is final.
        let _ = hv.store_landed(0, alias, &ob[..len], &nb[..len]);
    }
}

/// Put `old` back at `alias` if it still holds `new` (`len` bytes, aligned to `len`).
fn put_back(alias: usize, len: usize, new: u64, old: u64) -> bool {
    use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU8};
    let ord = Ordering::SeqCst;
    // SAFETY: `alias` is `len` bytes of libvmsrs's writable alias mapping, aligned to `len`
    // (the range fits a debug register); accessed atomically by every writer we control.
    unsafe {
        match len {
            1 => (*(alias as *const AtomicU8)).compare_exchange(new as u8, old as u8, ord, ord).is_ok(),
            2 => (*(alias as *const AtomicU16)).compare_exchange(new as u16, old as u16, ord, ord).is_ok(),
            4 => (*(alias as *const AtomicU32)).compare_exchange(new as u32, old as u32, ord, ord).is_ok(),
            _ => (*(alias as *const AtomicU64)).compare_exchange(new, old, ord, ord).is_ok(),
        }
    }
}

/// Handle a SIGTRAP of a watchpoint: journal what the interrupted thread just stored to the
/// range. `false`: not one of ours.
///
/// # Safety
/// `info` is the siginfo of the SIGTRAP being handled on this thread.
pub unsafe fn on_trap(info: *const libc::siginfo_t) -> bool {
    // SAFETY: the contract.
    let Some(slot) = (unsafe { slot_of(info) }) else {
        // One of ours for a slot no longer there is consumed; another program's is not ours.
        // SAFETY: the contract.
        return unsafe { tag_of(info) } < 64;
    };
    let Some(hv) = runtime::hv() else { return true };
    let _g = super::lock();
    let _e = thread::HvEntry::enter();
    TRAPS.fetch_add(1, Ordering::Relaxed);
    let s = &SLOTS[slot];
    match changed(s) {
        Some((old, new)) => journal_slot(hv, super::storing_user(hv), s, old, new),
        // No longer watched, the same bytes stored again, or a store another thread's trap
        // journaled already.
        None => {
            UNCHANGED.fetch_add(1, Ordering::Relaxed);
        }
    }
    true
}

/// `s`'s (copy, memory) when a watched slot's memory differs from its copy.
fn changed(s: &Slot) -> Option<(u64, u64)> {
    let (len, alias) = (s.len.load(Ordering::Relaxed), s.alias.load(Ordering::Relaxed));
    if alias == 0 {
        return None;
    }
    let (old, new) = (s.copy.load(Ordering::Relaxed), read_bytes(alias, len));
    (old != new).then_some((old, new))
}

/// Journal `s`'s change from `old` (its copy) to `new` (in memory) as `u`'s store that already
/// landed, and settle the copy. With the watch lock held.
fn journal_slot(hv: &Hv, u: u64, s: &Slot, old: u64, new: u64) {
    let (len, alias) = (s.len.load(Ordering::Relaxed), s.alias.load(Ordering::Relaxed));
    journal(hv, u, alias, len, old, new);
    if u != 0 && hv.suppressed(u) {
        // G4: the suppressed user's bytes are in its shadow; memory goes back to the journaled
        // bytes, unless another thread stored since (its own trap journals that).
        put_back(alias, len, new, old);
        s.copy.store(old, Ordering::Relaxed);
    } else {
        s.copy.store(new, Ordering::Relaxed);
    }
}

/// A debug-register SIGTRAP that carries no slot (see `fault::on_fault`): journal whatever
/// changed in every range as this thread's user's store.
pub fn on_stray_trap() {
    let Some(hv) = runtime::hv() else { return };
    let _g = super::lock();
    let _e = thread::HvEntry::enter();
    TRAPS.fetch_add(1, Ordering::Relaxed);
    let u = super::storing_user(hv);
    journal_changes(hv, u);
}

/// At a user's fault entry, with the watch lock held and before the restoration: if this
/// thread stored to a range and faulted before its trap ran (its SIGTRAP pending, or
/// delivered together with the fault), journal what changed as `faulting`'s store. Changes of
/// other threads are left to their own traps.
pub fn absorb(hv: &Hv, faulting: u64) {
    if !active() {
        return;
    }
    // SAFETY: a zeroed set filled by sigpending.
    let mine = unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGTRAP) == 1
    } || thread::with(|t| t.trap_below.get());
    if !mine {
        return;
    }
    journal_changes(hv, faulting);
}

/// Journal, as `u`'s store, whatever differs from the copy in every range (a store no trap of
/// its own has journaled), as a trap would ([`journal_slot`]: a suppressed user's bytes go to
/// its shadow and memory is put back). With the watch lock held.
fn journal_changes(hv: &Hv, u: u64) {
    for (_, s) in live() {
        if let Some((old, new)) = changed(s) {
            journal_slot(hv, u, s, old, new);
        }
    }
}

/// Before a restoration: which ranges it may rewrite (those with a polluted granule).
pub fn polluted(hv: &Hv) -> [bool; MAX] {
    let mut out = [false; MAX];
    for (i, s) in live() {
        out[i] = hv.polluted(s.alias.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
    }
    out
}

/// After a restoration: the copy of each range it rewrote is the restored bytes. The others'
/// stay, so a program store no trap has seen yet keeps showing as a difference (its trap
/// journals it).
pub fn restored(hv: &Hv, rewritten: &[bool; MAX]) {
    for (i, s) in live() {
        if !rewritten[i] {
            continue;
        }
        let (len, alias) = (s.len.load(Ordering::Relaxed), s.alias.load(Ordering::Relaxed));
        let mut b = [0u8; 8];
        if hv.load(0, alias, &mut b[..len]).is_ok() {
            s.copy.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }
}

/// libvmsrs stored `n` bytes at `alias` through the alias (an emulated store, a system call's
/// bytes): no watchpoint saw them, so they are the journaled bytes of the ranges they cover.
pub fn wrote(alias: usize, n: usize) {
    for (_, s) in live() {
        let (a, len) = (s.alias.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
        let (lo, hi) = (alias.max(a), (alias + n).min(a + len));
        if lo < hi {
            let now = read_bytes(a, len);
            let bytes = (lo - a..hi - a).fold(0u64, |m, k| m | 0xFF << (8 * k));
            let copy = s.copy.load(Ordering::Relaxed);
            s.copy.store((copy & !bytes) | (now & bytes), Ordering::Relaxed);
        }
    }
}
