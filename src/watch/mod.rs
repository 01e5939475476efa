//! Monitored ranges of unmodified programs, watched the way a hypervisor watches guest memory
//! (DESIGN §6; the paper's monitored shared memory in drop-in mode).
//!
//! * **Arming** ([`arm`]). The pages holding the configured ranges ([`resolve`]) are copied
//!   into a memfd and mapped back over themselves read-only (`MAP_FIXED`); a second, writable
//!   mapping of the same memfd is the *alias*. The hv profiles the ranges at their alias
//!   addresses, so its recovery store works on the alias as it works on any profiled range.
//! * **Stores** trap (SIGSEGV, `SEGV_ACCERR`, a write). [`on_trap`] decodes the instruction
//!   and emulates it ([`emulate`]): the bytes it stores go to the hv as the storing user's
//!   monitored store at the alias address (journaled before-image, G3–G5), its register and
//!   flag effects go to the interrupted context, and the thread resumes after it. Emulated
//!   stores are serialised by one lock, and every store to a watched page traps, so locked
//!   read-modify-writes stay atomic. An instruction that cannot be emulated is reported by
//!   mnemonic and is a contained fault of its user (its store is never performed).
//! * **Fault entry** ([`fencing`]). Under the watch lock (no emulated store interleaves), the
//!   user's fault is entered in the hv, then every granule it polluted in the watched ranges
//!   is restored at once (G3), before the faulting thread goes on: the fault's observable
//!   linearisation point is the end of that restoration. Watched pages are never made
//!   inaccessible: fencing a page with `PROT_NONE` until its first touch (restoration on
//!   demand, as linked mode does) made the kernel fail every system call on it with EFAULT,
//!   and glibc abort the process when a pthread mutex shared the page (its futex call failed).
//!   At the faulted user's end point the hv frees its history (G7).
//! * **A faulted user's loads** ([`pkey`]). The pages where its view differs from memory
//!   carry a protection key its thread alone denies: its loads there trap (`SEGV_PKUERR`) and
//!   are emulated from its view (G4).
//! * **Fork.** The child gets a private copy of every alias, mapped at the same addresses, so
//!   parent and child never share watched memory (httpd forks its children without exec).
//!
//! The trap path is async-signal-safe: fixed tables published at arming, a spin lock that a
//! thread may re-enter (a signal handler on the same thread), system calls that are
//! async-signal-safe (`mprotect`, `mmap`, `memfd_create`).

pub mod emulate;
pub mod hw;
pub mod patch;
pub mod pkey;
pub mod resolve;

use crate::fault::context;
use crate::{runtime, thread, user};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use vmsrs_config::config::Watch;
use vmsrs_hv::{uaccess, Hv};

/// Regions (runs of watched pages with one alias) and watched pages, at most.
const MAX_REGIONS: usize = 64;
const MAX_PAGES: usize = 8192;
const PAGE: usize = 4096;

/// A run of watched pages and its writable alias.
struct Region {
    /// Its pages `start..end`, packed in one word ([`Region::bounds`]) so that a lock-free
    /// reader never pairs one run's start with another's end; 0 while the slot is unused or
    /// dead (its run unmapped), when no address is in it.
    span: AtomicU64,
    alias: AtomicUsize,
    /// Index of its first page in [`PAGES`], and how many it holds there (a dead slot is
    /// taken again by a run of at most as many pages).
    first_page: AtomicUsize,
    pages: AtomicUsize,
    /// Watched by hardware watchpoints ([`hw`]): its pages stay writable.
    hw: core::sync::atomic::AtomicBool,
    /// Every range on it is `watch=auto` and fits a watchpoint: it moves to watchpoints when
    /// other data makes its pages hot ([`promote`]), which the trap flags in `promote`.
    auto: core::sync::atomic::AtomicBool,
    promote: core::sync::atomic::AtomicBool,
    /// The last run of this slot given back to the program ([`disarm`]), as a `span` word,
    /// kept when the slot is taken again: a trap that no region claims finds it here
    /// ([`given_back`]).
    given: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const NO_REGION: Region = Region {
    span: AtomicU64::new(0),
    alias: AtomicUsize::new(0),
    first_page: AtomicUsize::new(0),
    pages: AtomicUsize::new(0),
    hw: core::sync::atomic::AtomicBool::new(false),
    auto: core::sync::atomic::AtomicBool::new(false),
    promote: core::sync::atomic::AtomicBool::new(false),
    given: AtomicU64::new(0),
};
static REGIONS: [Region; MAX_REGIONS] = [NO_REGION; MAX_REGIONS];

impl Region {
    /// Its pages, `(start, end)`; `(0, 0)` when unused or dead.
    #[inline]
    fn bounds(&self) -> (usize, usize) {
        let w = self.span.load(Ordering::Acquire);
        let start = ((w >> 16) as usize) * PAGE;
        (start, start + (w & 0xFFFF) as usize * PAGE)
    }

    /// Publish its pages (`start..end`, page-aligned, at most 2^16 pages); `(0, 0)`: none.
    fn set_bounds(&self, start: usize, end: usize) {
        debug_assert!(start.is_multiple_of(PAGE) && end >= start && (end - start) / PAGE <= MAX_PAGES);
        let w = ((start / PAGE) as u64) << 16 | ((end - start) / PAGE) as u64;
        self.span.store(w, Ordering::Release);
    }
}
/// Regions published (written before, read with Acquire).
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// One watched page's trap counts.
struct Page {
    /// Traps taken on the page, and how many stored outside every monitored range (data that
    /// only shares the page with one).
    traps: AtomicU64,
    outside: AtomicU64,
    /// Traps in the current second: (second << 32) | count.
    window: AtomicU64,
    /// The second of the last hot-page warning.
    warned: AtomicU64,
    /// The protection the program gave the page (`PROT_*`; read and write when watching began),
    /// which the watch itself does not show: a store to a page the program made read-only is
    /// the program's own fault, never emulated, and pages given back keep it.
    prot: AtomicU64,
    /// It carries the protection key that a faulted user's thread denies ([`pkey`]).
    keyed: core::sync::atomic::AtomicBool,
    /// The protection key the program gave it (`pkey_mprotect`; 0: none), which libvmsrs's
    /// never replaces.
    own_key: core::sync::atomic::AtomicU32,
}
#[allow(clippy::declare_interior_mutable_const)]
const NO_PAGE: Page = Page {
    traps: AtomicU64::new(0),
    outside: AtomicU64::new(0),
    window: AtomicU64::new(0),
    warned: AtomicU64::new(0),
    prot: AtomicU64::new(RW as u64),
    keyed: core::sync::atomic::AtomicBool::new(false),
    own_key: core::sync::atomic::AtomicU32::new(0),
};
const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;
static PAGES: [Page; MAX_PAGES] = [NO_PAGE; MAX_PAGES];

/// Counters for `vmsrs_stats`-style reporting and the tests.
pub struct Counters {
    pub stores_emulated: AtomicU64,
    pub restorations: AtomicU64,
    pub unsupported: AtomicU64,
    /// A faulted user's loads of keyed pages emulated from its view ([`pkey`]), and those that
    /// could not be (its thread then reads memory until its end point).
    pub loads_emulated: AtomicU64,
    pub loads_unsupported: AtomicU64,
}
pub static COUNTERS: Counters = Counters {
    stores_emulated: AtomicU64::new(0),
    restorations: AtomicU64::new(0),
    unsupported: AtomicU64::new(0),
    loads_emulated: AtomicU64::new(0),
    loads_unsupported: AtomicU64::new(0),
};

/// Whether any range is watched (one load; the fault-entry path checks it first).
#[inline]
pub fn active() -> bool {
    COUNT.load(Ordering::Acquire) != 0
}

// ---------------------------------------------------------------------------------------------
// The watch lock: serialises emulated stores, fault entry and page state changes. A thread
// that holds it may take it again (a signal handler on the same thread).

static OWNER: AtomicU64 = AtomicU64::new(0);

struct Held(bool);

/// This thread's token for the lock: the address of its libvmsrs state (a thread-local, so
/// no system call on the trap path).
fn me() -> u64 {
    thread::with(|t| t as *const thread::ThreadState as u64)
}

fn lock() -> Held {
    let me = me();
    if OWNER.load(Ordering::Relaxed) == me {
        return Held(false);
    }
    let mut spins = 0u32;
    while OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
        spins += 1;
        if spins.is_multiple_of(64) {
            // SAFETY: sched_yield has no preconditions (async-signal-safe system call).
            unsafe { libc::sched_yield() };
        } else {
            core::hint::spin_loop();
        }
    }
    Held(true)
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.0 {
            OWNER.store(0, Ordering::Release);
        }
    }
}

/// Why [`arm`] did not watch a run.
#[derive(Debug)]
pub enum Unarmed {
    /// Its pages were unmapped while it was armed (its library unloaded by another thread):
    /// its ranges may be pending again.
    Gone,
    /// It cannot be watched: the reason.
    Refused(String),
}

impl From<String> for Unarmed {
    fn from(why: String) -> Unarmed {
        Unarmed::Refused(why)
    }
}

/// [`map_alias`]'s error when the pages it copies were unmapped meanwhile.
const GONE: &str = "its pages were unmapped meanwhile";

impl core::fmt::Display for Unarmed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Unarmed::Gone => f.write_str(GONE),
            Unarmed::Refused(why) => f.write_str(why),
        }
    }
}

/// `dlclose` calls in progress (glibc's, then [`after_dlclose`]). While one is, a run whose
/// library it unloads is still claimed though its pages are gone: a fork first drops such runs
/// ([`lock_for_fork`]), so the child never maps the old bytes over another thread's memory.
/// Only counted: nothing ever waits for a `dlclose` (its destructors may wait for any thread).
static UNLOADING: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------------------------
// Lookup.

/// The region holding `addr`: (index, start, end, alias).
fn region_of(addr: usize) -> Option<(usize, usize, usize, usize)> {
    let n = COUNT.load(Ordering::Acquire);
    REGIONS[..n].iter().enumerate().find_map(|(i, r)| {
        let (s, e) = r.bounds();
        (s <= addr && addr < e).then(|| (i, s, e, r.alias.load(Ordering::Relaxed)))
    })
}

fn page_of(region: usize, start: usize, addr: usize) -> &'static Page {
    &PAGES[REGIONS[region].first_page.load(Ordering::Relaxed) + (addr - start) / PAGE]
}

/// Whether `addr..addr+len` shares a page with a watched range.
pub fn overlaps(addr: usize, len: usize) -> bool {
    let end = addr.saturating_add(len);
    let n = COUNT.load(Ordering::Acquire);
    REGIONS[..n].iter().any(|r| {
        let (s, e) = r.bounds();
        s < end && addr < e
    })
}

// ---------------------------------------------------------------------------------------------
// Arming.

/// Watch `ranges` (resolved and checked): make their pages read-only with a writable alias
/// and profile them in the hv at the alias. Safe while other threads run: the pages are made
/// read-only before they are copied, under the watch lock, so a concurrent store traps and
/// waits for the alias instead of being lost.
pub fn arm(hv: &Hv, ranges: &[resolve::Resolved]) -> Result<(), Unarmed> {
    if resolve::page_size() != PAGE {
        return Err(format!("page size {} is not {PAGE}", resolve::page_size()).into());
    }
    // Page runs: ranges sorted, merged where their pages touch or overlap.
    let mut sorted: Vec<&resolve::Resolved> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.addr);
    let mut runs: Vec<(usize, usize, Vec<&resolve::Resolved>)> = Vec::new();
    for r in sorted {
        let (p0, p1) = resolve::pages(r.addr, r.len);
        match runs.last_mut() {
            Some(last) if p0 < last.1 => {
                last.1 = last.1.max(p1);
                last.2.push(r);
            }
            _ => runs.push((p0, p1, vec![r])),
        }
    }
    // How each run is watched, decided (and a `watch=hw` that cannot be refused) before any
    // run is armed.
    let mut free = hw::free();
    let mut by_hw = Vec::with_capacity(runs.len());
    for (p0, p1, members) in &runs {
        if overlaps(*p0, p1 - p0) {
            return Err(format!(
                "range {} shares a page with a range watched already; name them in one configuration",
                members[0].name
            )
            .into());
        }
        let hw = hw_choice(members, free)?;
        free -= if hw { members.len() } else { 0 };
        by_hw.push(hw);
    }
    for ((p0, p1, members), by_hw) in runs.into_iter().zip(by_hw) {
        // No signal handler of the program may run on this thread while it holds the watch
        // lock with a region published but not yet aliased: a store of that handler to the
        // region would trap, re-enter the lock (same thread) and retry for ever.
        let _quiet = BlockAsync::new();
        let _g = lock();
        let n = COUNT.load(Ordering::Acquire);
        let npages = (p1 - p0) / PAGE;
        // A dead slot (its run went with its library, or was unmapped) with room for these
        // pages is taken again, with its pages' counters; else a new slot after the last.
        let reuse = REGIONS[..n]
            .iter()
            .position(|r| r.bounds() == (0, 0) && r.pages.load(Ordering::Relaxed) >= npages);
        let (i, first_page) = match reuse {
            Some(i) => (i, REGIONS[i].first_page.load(Ordering::Relaxed)),
            None => {
                let pages_used = match n {
                    0 => 0,
                    _ => {
                        REGIONS[n - 1].first_page.load(Ordering::Relaxed)
                            + REGIONS[n - 1].pages.load(Ordering::Relaxed)
                    }
                };
                if n == MAX_REGIONS || pages_used + npages > MAX_PAGES {
                    return Err(format!(
                        "too many watched pages (at most {MAX_PAGES} in {MAX_REGIONS} runs); watch smaller ranges"
                    )
                    .into());
                }
                (n, pages_used)
            }
        };
        for pg in &PAGES[first_page..first_page + npages] {
            pg.traps.store(0, Ordering::Relaxed);
            pg.outside.store(0, Ordering::Relaxed);
            pg.window.store(0, Ordering::Relaxed);
            pg.warned.store(0, Ordering::Relaxed);
            pg.prot.store(RW as u64, Ordering::Relaxed);
            pg.keyed.store(false, Ordering::Relaxed);
            pg.own_key.store(0, Ordering::Relaxed);
        }
        // Published without an alias first: a store that traps now waits on the lock.
        let r = &REGIONS[i];
        r.alias.store(0, Ordering::Relaxed);
        r.hw.store(false, Ordering::Relaxed);
        r.auto.store(!by_hw && auto_eligible(&members), Ordering::Relaxed);
        r.promote.store(false, Ordering::Relaxed);
        r.first_page.store(first_page, Ordering::Relaxed);
        if i == n {
            r.pages.store(npages, Ordering::Relaxed);
        }
        r.set_bounds(p0, p1);
        if i == n {
            COUNT.store(n + 1, Ordering::Release);
        }
        // SAFETY: the program's own private data pages (checked by resolve), read-only from
        // here until they are replaced by the memfd mapping.
        // A library unloaded since it was resolved (its `dlclose` in another thread): the
        // pages are gone, refused here or by the copy, and the ranges are pending again.
        let protected = unsafe { sys_mprotect(p0 as *mut libc::c_void, p1 - p0, libc::PROT_READ) } == 0;
        let alias = match if protected { map_alias(p0, p1 - p0, None) } else { Err(GONE) } {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: undo the protection above; the pages are the program's again.
                unsafe { sys_mprotect(p0 as *mut libc::c_void, p1 - p0, libc::PROT_READ | libc::PROT_WRITE) };
                r.set_bounds(0, 0);
                if i == n {
                    COUNT.store(n, Ordering::Release);
                }
                return Err(match e {
                    GONE => Unarmed::Gone,
                    e => format!("cannot watch {p0:#x}..{p1:#x}: {e}").into(),
                });
            }
        };
        r.alias.store(alias, Ordering::Release);
        // Inside libvmsrs while the hv profiles: its range table copies names with memmove,
        // which the preload interposes; from the program's side that copy asks the same table,
        // whose writer (this thread) is mid-update, and waited for it for ever.
        let profiled = {
            let _e = thread::HvEntry::enter();
            members.iter().try_for_each(|m| {
                hv.profile(alias + (m.addr - p0), m.len, m.name.as_bytes()).map(drop).map_err(|e| (m, e))
            })
        };
        if let Err((m, e)) = profiled {
            return Err(format!("range {}: the hv refused to profile it ({e:?})", m.name).into());
        }
        WATCHED.lock().extend(members.iter().map(|m| (*m).clone()));
        if by_hw {
            // The pages are still read-only: a store while the watchpoints are opened traps
            // and is emulated. Then the pages become writable and only the ranges' own bytes
            // trap.
            crate::fault::take_over_sigtrap().map_err(|e| format!("cannot handle SIGTRAP ({e:?})"))?;
            let failed =
                members.iter().find_map(|m| hw::add(&m.name, m.addr, m.len, alias + (m.addr - p0)).err());
            match failed {
                Some(why) => {
                    // Page protection stays: slower, not less exact.
                    hw::remove(p0, p1);
                    eprintln!(
                        "=={}==vmsrs: error: {why}: watched by page protection instead of a hardware watchpoint",
                        std::process::id()
                    );
                }
                None => {
                    r.hw.store(true, Ordering::Release);
                    // SAFETY: the watched pages (our memfd mapping), writable as the program had them.
                    unsafe {
                        sys_mprotect(p0 as *mut libc::c_void, p1 - p0, libc::PROT_READ | libc::PROT_WRITE)
                    };
                }
            }
        }
    }
    Ok(())
}

/// Whether a run of pages with these ranges is watched by hardware: every range `hw` or `auto`,
/// each fitting a debug register, enough of them free. A `hw` range that cannot be is refused.
fn hw_choice(members: &[&resolve::Resolved], free: usize) -> Result<bool, String> {
    // `auto` starts with page protection; see [`promote`].
    let Some(m) = members.iter().find(|m| m.watch == Watch::Hw) else { return Ok(false) };
    let fit = members.iter().all(|m| m.watch != Watch::Page && hw::fits(m.addr, m.len));
    let room = members.len() <= free;
    if fit && room {
        return Ok(true);
    }
    if !room {
        return Err(format!(
            "range {}: no hardware watchpoint left (at most {} watch=hw ranges)",
            m.name,
            hw::MAX
        ));
    }
    let other =
        members.iter().find(|o| o.watch == Watch::Page || !hw::fits(o.addr, o.len)).map_or("", |o| &o.name);
    Err(format!(
        "range {} (watch=hw) shares a page with range {other}, which is watched by page protection, so \
         every store to that page traps anyway; watch both with page, or move one",
        m.name
    ))
}

/// Every range of the run is `auto` and fits a watchpoint, and the run needs no more of them
/// than there are.
fn auto_eligible(members: &[&resolve::Resolved]) -> bool {
    members.len() <= hw::MAX && members.iter().all(|m| m.watch == Watch::Auto && hw::fits(m.addr, m.len))
}

fn warn(what: &str) {
    eprintln!("=={}==vmsrs: warning: {what}", std::process::id());
}

/// `mprotect` as a system call: libvmsrs's own changes of watched pages never go through the
/// interposed one ([`after_mprotect`]).
///
/// # Safety
/// mprotect's contract.
unsafe fn sys_mprotect(addr: *mut libc::c_void, len: usize, prot: libc::c_int) -> libc::c_int {
    // SAFETY: forwarded contract.
    unsafe { libc::syscall(libc::SYS_mprotect, addr, len, prot) as libc::c_int }
}

/// Copy `len` bytes from `src` to `dst` through the kernel, which says so (`false`) when some
/// of `src` is unmapped instead of faulting; a plain copy where the system call is not allowed
/// (a seccomp filter). Async-signal-safe.
///
/// # Safety
/// `dst` is `len` writable bytes of ours; `src` was mapped and readable when checked.
unsafe fn copy_unless_unmapped(src: usize, dst: usize, len: usize) -> bool {
    let local = libc::iovec { iov_base: dst as *mut libc::c_void, iov_len: len };
    let remote = libc::iovec { iov_base: src as *mut libc::c_void, iov_len: len };
    // SAFETY: reads this process's own memory into `dst` (contract).
    let got = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if got < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EFAULT) {
        // SAFETY: contract.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) };
        return true;
    }
    got == len as isize
}

/// `munmap` as a system call: libvmsrs's own mappings are unmapped without the interposed
/// `munmap` ([`before_unmap`]), which takes the watch lock and may give runs back (a fork
/// child hung there, nested in a give-back of its own).
///
/// # Safety
/// munmap's contract.
pub(crate) unsafe fn sys_munmap(addr: *mut libc::c_void, len: usize) -> libc::c_int {
    // SAFETY: forwarded contract.
    unsafe { libc::syscall(libc::SYS_munmap, addr, len) as libc::c_int }
}

/// The `mmap` system call itself: libvmsrs's own fixed mappings over watched pages must not
/// pass through the interposed `mmap` ([`before_map`]), which would stop watching them.
///
/// # Safety
/// mmap's contract.
unsafe fn sys_mmap(
    addr: *mut libc::c_void,
    len: usize,
    prot: libc::c_int,
    flags: libc::c_int,
    fd: libc::c_int,
) -> *mut libc::c_void {
    // SAFETY: forwarded contract; the kernel returns the address or -errno, which `syscall`
    // turns into -1 (MAP_FAILED) with errno set.
    unsafe { libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, 0usize) as *mut libc::c_void }
}

/// The program's `mprotect(addr, len, prot)`: as asked, except that pages watched by page
/// protection never become writable. With `PROT_WRITE`, the call is split, under the watch lock
/// (no arming interleaves): the watched pages get `prot` without write and with read (a store
/// implies a read on x86, and a write-only page must stay readable), the rest `prot`; said once.
/// The program sees no difference but the trap's cost.
pub fn mprotect(addr: usize, len: usize, prot: libc::c_int) -> libc::c_int {
    // SAFETY: the program's own call.
    protect(addr, len, prot, -1, &|a, l, p| unsafe { sys_mprotect(a as *mut libc::c_void, l, p) })
}

/// The program's `pkey_mprotect(addr, len, prot, pkey)`: as [`mprotect`], the pages getting
/// `pkey` too (-1: none, plain `mprotect`).
pub fn pkey_mprotect(addr: usize, len: usize, prot: libc::c_int, pkey: libc::c_int) -> libc::c_int {
    protect(addr, len, prot, pkey, &|a, l, p| {
        // SAFETY: the program's own call, on its own pages or watched ones as `mprotect` does.
        unsafe { libc::syscall(libc::SYS_pkey_mprotect, a, l, p, pkey) as libc::c_int }
    })
}

/// [`mprotect`] through `call` (the system call the program asked for, on `(addr, len,
/// prot)`). The protection recorded for watched pages is the program's only where the kernel
/// granted it: a refused call leaves the records as they were ([`refused_from`]).
fn protect(
    addr: usize,
    len: usize,
    prot: libc::c_int,
    pkey: libc::c_int,
    call: &dyn Fn(usize, usize, libc::c_int) -> libc::c_int,
) -> libc::c_int {
    if !active() || !addr.is_multiple_of(PAGE) {
        return call(addr, len, prot);
    }
    // A range past the end of memory the kernel refuses before changing anything (ENOMEM).
    let Some(end) = len.checked_next_multiple_of(PAGE).and_then(|l| addr.checked_add(l)) else {
        return call(addr, len, prot);
    };
    if overlaps(addr, end - addr) {
        drop_stale(addr, end);
    }
    let _quiet = BlockAsync::new();
    let _g = lock();
    let n = COUNT.load(Ordering::Acquire);
    let rc = protect_locked(n, addr, len, end, prot, call);
    // The program's protection, recorded where the kernel granted it.
    let granted = if rc == 0 {
        end
    } else {
        let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        let upto = refused_from(addr, end, err);
        // SAFETY: errno is this thread's (first_hole's msync may have changed it).
        unsafe { *libc::__errno_location() = err };
        upto
    };
    note_program_prot(n, addr, granted, prot);
    if pkey >= 0 {
        pkey::program_keyed(n, addr, granted, pkey as u32);
    }
    rc
}

/// Where the kernel stopped an `mprotect` from `addr` to `end` that failed with `err`:
/// `EINVAL` is found before anything changes; otherwise (`ENOMEM` at a hole, `EACCES`) the
/// pages before the first hole changed and none after; with no hole, none is taken as changed.
fn refused_from(addr: usize, end: usize, err: i32) -> usize {
    match err {
        libc::EINVAL => addr,
        _ => first_hole(addr, end).unwrap_or(addr),
    }
}

/// The first unmapped page in `addr..end` (page-aligned), if any: `msync` fails with ENOMEM
/// on a range with one, which a binary search narrows down.
fn first_hole(addr: usize, end: usize) -> Option<usize> {
    // SAFETY: msync with MS_ASYNC only checks that the range is mapped (Linux).
    let has_hole =
        |hi: usize| unsafe { libc::msync(addr as *mut libc::c_void, hi - addr, libc::MS_ASYNC) } != 0;
    if !has_hole(end) {
        return None;
    }
    let (mut lo, mut hi) = (0, (end - addr) / PAGE); // [addr, addr + hi pages) has one
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if has_hole(addr + mid * PAGE) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(addr + lo * PAGE)
}

fn protect_locked(
    n: usize,
    addr: usize,
    len: usize,
    end: usize,
    prot: libc::c_int,
    call: &dyn Fn(usize, usize, libc::c_int) -> libc::c_int,
) -> libc::c_int {
    if prot & libc::PROT_WRITE == 0 || !overlaps(addr, end - addr) {
        return call(addr, len, prot);
    }
    let mut pieces: Vec<(usize, usize)> = REGIONS[..n]
        .iter()
        .filter(|r| !r.hw.load(Ordering::Relaxed) && r.alias.load(Ordering::Relaxed) != 0)
        .map(|r| {
            let (s, e) = r.bounds();
            (s.max(addr), e.min(end))
        })
        .filter(|&(lo, hi)| lo < hi)
        .collect();
    if pieces.is_empty() {
        return call(addr, len, prot);
    }
    pieces.sort_unstable();
    let watched_prot = (prot & !libc::PROT_WRITE) | libc::PROT_READ;
    let mut at = addr;
    let mut rc = 0;
    for &(lo, hi) in &pieces {
        if at < lo {
            // The program's own pages, as it asked.
            rc |= call(at, lo - at, prot);
        }
        // Watched pages of the program: readable, never writable.
        rc |= call(lo, hi - lo, watched_prot);
        at = hi;
    }
    if at < end {
        // The program's own pages, as it asked.
        rc |= call(at, end - at, prot);
    }
    static SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        warn(&format!(
            "the program made watched pages at {:#x}..{:#x} writable (mprotect): they stay read-only to \
             libvmsrs's trap, so their stores are still journaled",
            pieces[0].0,
            pieces[pieces.len() - 1].1
        ));
    }
    if rc != 0 {
        -1
    } else {
        0
    }
}

/// Every asynchronous signal blocked on this thread while it lives (normal context only).
pub(super) struct BlockAsync(libc::sigset_t);

impl BlockAsync {
    pub(super) fn new() -> BlockAsync {
        // SAFETY: local sets; pthread_sigmask is async-signal-safe.
        unsafe {
            let mut all: libc::sigset_t = core::mem::zeroed();
            let mut old: libc::sigset_t = core::mem::zeroed();
            libc::sigfillset(&mut all);
            for s in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGSYS] {
                libc::sigdelset(&mut all, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            BlockAsync(old)
        }
    }
}

impl Drop for BlockAsync {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved by `new` on this thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, core::ptr::null_mut()) };
    }
}

/// Every range watched so far (for overlap checks of ranges armed later).
static WATCHED: spin::Mutex<Vec<resolve::Resolved>> = spin::Mutex::new(Vec::new());

// ---------------------------------------------------------------------------------------------
// Ranges of objects loaded later.

static PENDING: spin::Mutex<Vec<resolve::Pending>> = spin::Mutex::new(Vec::new());
static HAS_PENDING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// The loader's count of objects added when pending ranges were last looked for.
static LAST_ADDS: AtomicU64 = AtomicU64::new(0);
static LAST_CHECK_NS: AtomicU64 = AtomicU64::new(0);
/// Pending ranges are looked for at most this often (and only after the loader added one).
const PENDING_CHECK_NS: u64 = 2_000_000;

/// Keep `pending` ranges to watch when their object is loaded (start-up).
pub fn set_pending(pending: Vec<resolve::Pending>) {
    LAST_ADDS.store(loader_adds(), Ordering::Relaxed);
    HAS_PENDING.store(!pending.is_empty(), Ordering::Release);
    *PENDING.lock() = pending;
}

/// Watch the pending ranges whose object has been loaded since the last look. Called where
/// libvmsrs gets control in normal context: thread creation and the start of a rescue call.
/// Costs one load while nothing is pending.
#[inline]
pub fn arm_pending() {
    if HAS_PENDING.load(Ordering::Relaxed) {
        arm_pending_slow(true);
    }
    patch::apply_wanted();
    hw::ensure_this_thread();
    if PROMOTE.load(Ordering::Relaxed) {
        promote();
    }
}

/// As [`arm_pending`], without the time throttle (before a thread is created, so a range of
/// a library loaded before it is watched before the thread can store to it).
#[inline]
pub fn arm_pending_now() {
    if HAS_PENDING.load(Ordering::Relaxed) {
        arm_pending_slow(false);
    }
    if PROMOTE.load(Ordering::Relaxed) {
        promote();
    }
}

/// Some `auto` run was flagged by the trap for hardware watchpoints.
static PROMOTE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// A trap of a page that turned hot: flag its run for watchpoints if it is `auto` and at least
/// 10 of every 11 of its traps stored to other data (a watchpoint's trap costs about ten page
/// traps: below that ratio watchpoints would cost more than they save). Signal context.
fn flag_for_promotion(region: usize, pg: &Page) {
    let r = &REGIONS[region];
    let (traps, outside) = (pg.traps.load(Ordering::Relaxed), pg.outside.load(Ordering::Relaxed));
    if r.auto.load(Ordering::Relaxed) && !r.promote.load(Ordering::Relaxed) && outside * 11 >= traps * 10 {
        r.promote.store(true, Ordering::Relaxed);
        PROMOTE.store(true, Ordering::Release);
    }
}

/// Move the flagged `auto` runs to hardware watchpoints (normal context: thread creation and
/// rescue-call entry). Under the watch lock with the pages still read-only, as at arming: no
/// store is missed while the watchpoints are opened; then the pages become writable.
#[cold]
fn promote() {
    if !PROMOTE.swap(false, Ordering::Acquire) {
        return;
    }
    if crate::fault::take_over_sigtrap().is_err() {
        return;
    }
    let n = COUNT.load(Ordering::Acquire);
    for r in &REGIONS[..n] {
        if !r.promote.load(Ordering::Relaxed)
            || r.hw.load(Ordering::Relaxed)
            || !r.auto.load(Ordering::Relaxed)
        {
            continue;
        }
        let _quiet = BlockAsync::new();
        let _g = lock();
        let (s, e, a) = {
            let (s, e) = r.bounds();
            (s, e, r.alias.load(Ordering::Relaxed))
        };
        let members: Vec<resolve::Resolved> =
            WATCHED.lock().iter().filter(|m| s <= m.addr && m.addr < e).cloned().collect();
        r.auto.store(false, Ordering::Relaxed);
        if a == 0 || members.is_empty() || members.len() > hw::free() {
            continue;
        }
        for m in &members {
            if let Err(why) = hw::add(&m.name, m.addr, m.len, a + (m.addr - s)) {
                warn(&format!("{why}; staying with page protection (watch=auto)"));
                hw::remove(s, e);
                break;
            }
        }
        if members.iter().all(|m| hw::watches(m.addr)) {
            r.hw.store(true, Ordering::Release);
            // SAFETY: the watched pages (our memfd mapping), writable as the program had them.
            unsafe { sys_mprotect(s as *mut libc::c_void, e - s, libc::PROT_READ | libc::PROT_WRITE) };
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            warn(&format!(
                "watched page {s:#x} is hot with stores to other data: {} now watched by hardware \
                 watchpoints (watch=auto)",
                names.join(", ")
            ));
        }
    }
}

#[cold]
fn arm_pending_slow(throttled: bool) {
    let now = coarse_ns();
    let last = LAST_CHECK_NS.load(Ordering::Relaxed);
    if throttled
        && (now.wrapping_sub(last) < PENDING_CHECK_NS
            || LAST_CHECK_NS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err())
    {
        return;
    }
    let adds = loader_adds();
    if adds == LAST_ADDS.swap(adds, Ordering::Relaxed) {
        return;
    }
    let Some(hv) = runtime::hv() else { return };
    let Some(mut pending) = PENDING.try_lock() else { return };
    let watched = WATCHED.lock().clone();
    let (now, later, refused) =
        resolve::resolve_pending(core::mem::take(&mut *pending), resolve::own_object(), &watched);
    *pending = later;
    HAS_PENDING.store(!pending.is_empty(), Ordering::Release);
    drop(pending);
    let pid = std::process::id();
    for why in refused {
        eprintln!("=={pid}==vmsrs: error: {why}: this range is NOT watched");
    }
    if now.is_empty() {
        return;
    }
    match arm(hv, &now) {
        Err(Unarmed::Gone) => {
            // Another thread unloaded the library: the ranges not armed before it are pending
            // again, for its next load (an address range does not come back: said).
            let watched = WATCHED.lock().clone();
            let mut again = Vec::new();
            for r in now.iter().filter(|r| !watched.iter().any(|w| w.addr == r.addr && w.name == r.name)) {
                match pending_again(r, GONE) {
                    Some(p) => again.push(p),
                    None => eprintln!("=={pid}==vmsrs: error: range {}: {GONE}: it is NOT watched", r.name),
                }
            }
            pend(again);
        }
        Err(why) => eprintln!("=={pid}==vmsrs: error: {why}: these ranges are NOT watched"),
        Ok(()) => {
            for r in &now {
                eprintln!(
                    "=={pid}==vmsrs: watching {} at {:#x}+{} (its object was loaded)",
                    r.name, r.addr, r.len
                );
            }
        }
    }
}

fn coarse_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The loader's count of objects ever added (`dlpi_adds`).
fn loader_adds() -> u64 {
    unsafe extern "C" fn first(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> i32 {
        // SAFETY: the loader's info for the callback; `data` is the u64 below.
        unsafe { *(data as *mut u64) = (*info).dlpi_adds };
        1
    }
    let mut adds = 0u64;
    // SAFETY: the callback writes one u64 into our local.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut adds as *mut u64 as *mut libc::c_void) };
    adds
}

/// Copy `len` bytes of pages at `start` (or, for a child after fork, of `at = (old alias,
/// snapshot)`'s snapshot) into a new memfd, map it writable somewhere (or over the old alias)
/// and over `start` read-only. Returns the alias address. Async-signal-safe (the fork child calls it).
fn map_alias(start: usize, len: usize, at: Option<(usize, usize)>) -> Result<usize, &'static str> {
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"vmsrs-watch".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err("memfd_create failed");
    }
    let result = (|| {
        // SAFETY: resizing our own new memfd.
        if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
            return Err("ftruncate of the memfd failed");
        }
        let (hint, flags) = match at {
            Some((a, _)) => (a as *mut libc::c_void, libc::MAP_SHARED | libc::MAP_FIXED),
            None => (core::ptr::null_mut(), libc::MAP_SHARED),
        };
        // Fill the memfd through a temporary view first: a fixed alias replaces the old one,
        // whose bytes are the source.
        // SAFETY: a new shared mapping of our memfd.
        let tmp = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if tmp == libc::MAP_FAILED {
            return Err("mmap of the memfd failed");
        }
        let src = match at {
            Some((_, from)) => from,
            None => start,
        };
        // SAFETY: `tmp` is our new mapping of `len` bytes; `src` is the old alias (always
        // readable) or the watched pages, which a library another thread unloads may unmap now.
        if !unsafe { copy_unless_unmapped(src, tmp as usize, len) } {
            // SAFETY: our own temporary view.
            unsafe { sys_munmap(tmp, len) };
            return Err(GONE);
        }
        // SAFETY: the new alias replaces the old one at the same address (fork child) or goes
        // where the kernel picks.
        let alias = unsafe { sys_mmap(hint, len, libc::PROT_READ | libc::PROT_WRITE, flags, fd) };
        // SAFETY: unmapping our temporary view.
        unsafe { sys_munmap(tmp, len) };
        if alias == libc::MAP_FAILED {
            return Err("mmap of the alias failed");
        }
        // The watched pages themselves, read-only, from the memfd.
        // SAFETY: replacing the watched pages by the same bytes.
        let p = unsafe {
            sys_mmap(start as *mut libc::c_void, len, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_FIXED, fd)
        };
        if p == libc::MAP_FAILED {
            return Err("mmap over the watched pages failed");
        }
        Ok(alias as usize)
    })();
    // SAFETY: the mappings keep the memfd alive; our descriptor is no longer needed.
    unsafe { libc::close(fd) };
    result
}

/// In a child after fork: give every region a private alias at the same address.
pub fn after_fork_child() {
    let n = COUNT.load(Ordering::Acquire);
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e, a) = {
            let (s, e) = r.bounds();
            (s, e, r.alias.load(Ordering::Relaxed))
        };
        if s == e {
            continue; // no longer watched
        }
        // The bytes as they were at the fork (the parent stores to the shared alias again as
        // soon as it returns from fork): the snapshot taken in prepare, else the alias.
        let from = match SNAP[i].load(Ordering::Relaxed) {
            0 => a,
            p => p,
        };
        if map_alias(s, e - s, Some((a, from))).is_err() {
            let mut l = crate::fault::report::Line::prefixed();
            l.s("error: after fork, the watched pages at ").hex(s as u64);
            l.s(" could not get a private alias; they may be shared with the parent\n");
            l.write_stderr();
        } else if r.hw.load(Ordering::Relaxed) {
            // SAFETY: the region's pages, writable as in the parent (hardware-watched).
            unsafe { sys_mprotect(s as *mut libc::c_void, e - s, libc::PROT_READ | libc::PROT_WRITE) };
        } else {
            pkey::after_fork_child(i, s, e);
        }
    }
    drop_snapshots(n);
    OWNER.store(0, Ordering::Release);
    hw::after_fork_child();
}

/// Private copies of every alias taken in fork's prepare, under the watch lock (no store in
/// flight): the child's private alias is filled from them, never from the shared alias that
/// the parent's threads write again as soon as the parent returns from fork.
static SNAP: [AtomicUsize; MAX_REGIONS] = [const { AtomicUsize::new(0) }; MAX_REGIONS];

fn take_snapshots() {
    let n = COUNT.load(Ordering::Acquire);
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e, a) = {
            let (s, e) = r.bounds();
            (s, e, r.alias.load(Ordering::Relaxed))
        };
        // SAFETY: a new private anonymous mapping, filled from our own alias.
        if s == e || a == 0 {
            SNAP[i].store(0, Ordering::Relaxed);
            continue;
        }
        // SAFETY: a new private anonymous mapping, filled from our own alias.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                e - s,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            SNAP[i].store(0, Ordering::Relaxed);
            continue;
        }
        // SAFETY: the alias is `e - s` readable bytes; `p` is our new mapping of that size.
        unsafe { core::ptr::copy_nonoverlapping(a as *const u8, p as *mut u8, e - s) };
        SNAP[i].store(p as usize, Ordering::Relaxed);
    }
}

fn drop_snapshots(n: usize) {
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let p = SNAP[i].swap(0, Ordering::Relaxed);
        if p != 0 {
            let len = {
                let (s, e) = r.bounds();
                e - s
            };
            // SAFETY: our own snapshot mapping.
            unsafe { sys_munmap(p as *mut libc::c_void, len) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fault entry and restoration.

/// Run `f`, a user's fault entry in the hv, under the watch lock, then restore every polluted
/// granule of the watched ranges (see the module comment: the end of this is the fault's
/// observable linearisation point for watched memory).
pub fn fencing<R>(hv: &Hv, u: u64, f: impl FnOnce() -> R) -> R {
    if !active() {
        return f();
    }
    let _g = lock();
    // This thread's own store to a hardware-watched range whose trap has not run yet is
    // journaled first; the bytes the restoration changes are then the copies'.
    hw::absorb(hv, u);
    let n = COUNT.load(Ordering::Acquire);
    let out = f();
    let rewritten = hw::polluted(hv);
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e, a) = {
            let (s, e) = r.bounds();
            (s, e, r.alias.load(Ordering::Relaxed))
        };
        if a != 0 && hv.polluted(a, e - s) {
            // Where the faulted user's view now differs from memory: its loads there trap.
            if !r.hw.load(Ordering::Relaxed) {
                pkey::key_polluted(hv, i, s, e, a);
            }
            hv.restore_range(a, e - s);
            COUNTERS.restorations.fetch_add(1, Ordering::Relaxed);
        }
    }
    hw::restored(hv, &rewritten);
    pkey::deny_here();
    out
}

// ---------------------------------------------------------------------------------------------
// The trap.

/// Handle a SIGSEGV at `addr` if it is a watched page's: emulate a store, or a faulted user's
/// load of a keyed page (`key`: the `si_pkey` of a `SEGV_PKUERR`, see [`pkey`]). `true`:
/// handled, resume the interrupted context. `false`: not ours, or a store that cannot be
/// emulated (reported), to be contained as the user's fault.
///
/// # Safety
/// `uc` is the context of the SIGSEGV being handled on this thread.
pub unsafe fn on_trap(addr: usize, key: Option<u32>, uc: *mut libc::ucontext_t) -> bool {
    if let Some(k) = key {
        if !pkey::is_ours(k) {
            // On a watched page, a key fault raised while our key was on it and reported after
            // it came off (as key 0: a faulted user's end point raced the load; a hostile
            // review saw normal users' loads contained so): retried (`pkey::stale`).
            if region_of(addr).is_none() {
                return false;
            }
            if !pkey::denied_here() {
                // Our key, on again by the retry, must not fault it again.
                // SAFETY: the context of this signal (contract).
                unsafe { pkey::allow_in(uc) };
            }
            // SAFETY: the context of this signal (contract).
            return unsafe { pkey::stale(k, uc) };
        }
        if !pkey::denied_here() || region_of(addr).is_none() {
            // A thread that runs no faulted user: created before the key, or a signal
            // handler (every key but 0 denied). Or a keyed page no longer watched.
            // SAFETY: the context of this signal (contract).
            return unsafe { pkey::allow_in(uc) };
        }
    }
    if region_of(addr).is_none() {
        // SAFETY: the context of this signal (contract).
        let pc = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as u64 };
        return given_back(addr, pc);
    }
    let Some(hv) = runtime::hv() else { return false };
    let _g = lock();
    // Looked up again under the lock: a region being armed has its alias now (or is gone,
    // its pages writable again: retry).
    let Some((i, s, _, a)) = region_of(addr).filter(|r| r.3 != 0) else { return true };
    let page = addr & !(PAGE - 1);
    let pg = page_of(i, s, page);
    // SAFETY: the context of this signal (contract).
    let (err, pc) = unsafe {
        let g = &(*uc).uc_mcontext.gregs;
        (g[libc::REG_ERR as usize] as u64, g[libc::REG_RIP as usize] as u64)
    };
    let _e = thread::HvEntry::enter();
    if key.is_some() && err & 2 == 0 {
        // SAFETY: the context of this signal (contract).
        return unsafe { faulted_load(hv, addr, pc, uc) };
    }
    if count_trap(pg, page) {
        flag_for_promotion(i, pg);
    }
    if patch::covers(pc as usize) {
        // Trapped on the old bytes of an instruction patched meanwhile: run the new ones.
        return true;
    }
    if err & 2 == 0 || pg.prot.load(Ordering::Relaxed) & libc::PROT_WRITE as u64 == 0 {
        // A read fault, or a store to a page the program itself made read-only: the program's
        // own fault (watched pages are otherwise always readable, and writable to it).
        return false;
    }
    // SAFETY: the context of this signal (contract).
    match unsafe { emulate_trapped(hv, addr, pc, uc, emulate::emulate) } {
        emulate::Outcome::Done | emulate::Outcome::Partial => {
            COUNTERS.stores_emulated.fetch_add(1, Ordering::Relaxed);
            if !hv.is_monitored(a + (addr - s), 1) {
                pg.outside.fetch_add(1, Ordering::Relaxed);
                patch::note(pc as usize, addr);
            }
            true
        }
        emulate::Outcome::Unsupported(m) => {
            COUNTERS.unsupported.fetch_add(1, Ordering::Relaxed);
            report_unsupported(m, pc, addr);
            false
        }
        emulate::Outcome::Fault(_) => false,
    }
}

/// Emulate the instruction at `pc` that trapped accessing `addr` with `how`
/// ([`emulate::emulate`] or [`emulate::emulate_load`]), in the interrupted context `uc`, for
/// the storing user over the watched memory.
///
/// # Safety
/// `uc` is the context of the SIGSEGV being handled on this thread.
unsafe fn emulate_trapped(
    hv: &Hv,
    addr: usize,
    pc: u64,
    uc: *mut libc::ucontext_t,
    how: fn(&[u8], u64, &mut dyn emulate::Cpu, &mut dyn emulate::Memory) -> emulate::Outcome,
) -> emulate::Outcome {
    let mut code = [0u8; 16];
    // SAFETY: the CPU just fetched the instruction at pc.
    let n = unsafe { crate::fault::readable_code(pc as usize, &mut code) };
    how(&code[..n], addr as u64, &mut UcCpu(uc), &mut WatchedMemory { hv, user: storing_user(hv) })
}

/// A faulted user's load at `addr` (instruction `pc`) of a keyed page (the watch lock held):
/// emulated from its view. One that cannot be is reported, and the thread allows the key
/// until its user's end point (its loads then read memory): `true`, retry or resume. `false`:
/// a part of the load outside the watched pages is a memory error of the user.
///
/// # Safety
/// `uc` is the context of the SIGSEGV being handled on this thread.
unsafe fn faulted_load(hv: &Hv, addr: usize, pc: u64, uc: *mut libc::ucontext_t) -> bool {
    // SAFETY: the context of this signal (contract).
    match unsafe { emulate_trapped(hv, addr, pc, uc, emulate::emulate_load) } {
        emulate::Outcome::Done | emulate::Outcome::Partial => {
            COUNTERS.loads_emulated.fetch_add(1, Ordering::Relaxed);
            true
        }
        emulate::Outcome::Unsupported(m) => {
            COUNTERS.loads_unsupported.fetch_add(1, Ordering::Relaxed);
            report_unsupported_load(m, pc, addr);
            thread::with(|t| t.pkey_denied.set(false));
            // SAFETY: the context of this signal (contract).
            unsafe { pkey::allow_in(uc) }
        }
        // A part of the load outside the watched pages failed: the user's own memory error.
        emulate::Outcome::Fault(_) => false,
    }
}

/// A fault at `addr` (instruction `pc`) that no region claims: `true` (retry the instruction)
/// if it is on a run given back ([`Region::given`]: the last of each slot, so one `disarm` of
/// every run forgets none; a ring of 16 did, and 7 of 25 runs of 17 to 20 runs given back in
/// one call were killed) and this thread did not just retry it. Such a store
/// trapped on the run's read-only page and reached [`on_trap`] only after the page was given
/// back, writable (a hostile review saw 35 to 86 of 100 runs contain a correct store as a
/// fault); a page the program itself keeps read-only faults again at the same place, and is
/// then its own fault.
fn given_back(addr: usize, pc: u64) -> bool {
    let page = (addr / PAGE) as u64;
    let on_run = REGIONS[..COUNT.load(Ordering::Acquire)].iter().any(|r| {
        let w = r.given.load(Ordering::Acquire);
        w != 0 && ((w >> 16)..(w >> 16) + (w & 0xFFFF)).contains(&page)
    });
    if !on_run {
        return false;
    }
    // A give-back in progress ends first.
    drop(lock());
    let key = (pc, addr as u64);
    thread::with(|t| {
        if t.watch_retry.get() == key {
            t.watch_retry.set((0, 0));
            false
        } else {
            t.watch_retry.set(key);
            true
        }
    })
}

/// The user whose store this is (the thread's, or its implicit user when the policy contains
/// threads without one; 0: a store final at once).
fn storing_user(hv: &Hv) -> u64 {
    let u = match user::current() {
        0 if runtime::get().is_some_and(|rt| rt.settings.contain_implicit) => user::implicit_in_handler(hv),
        u => u,
    };
    user::settle_doom(hv, u);
    u
}

/// A page that traps this many times within one second is named in a warning (at most once a
/// minute per page): every store to it costs a trap, including stores to data that only
/// shares the page with a monitored range.
const HOT_PAGE_RATE: u64 = 1000;

/// Count a trap of `pg`; `true` when the page just turned hot.
fn count_trap(pg: &Page, page: usize) -> bool {
    pg.traps.fetch_add(1, Ordering::Relaxed);
    let sec = coarse_ns() / 1_000_000_000;
    let w = pg.window.load(Ordering::Relaxed);
    let n = if w >> 32 != sec {
        pg.window.store((sec << 32) | 1, Ordering::Relaxed);
        1
    } else {
        (pg.window.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff) + 1
    };
    let warned = pg.warned.load(Ordering::Relaxed);
    if n == HOT_PAGE_RATE && (warned == 0 || sec >= warned + 60) {
        pg.warned.store(sec.max(1), Ordering::Relaxed);
        let (traps, outside) = (pg.traps.load(Ordering::Relaxed), pg.outside.load(Ordering::Relaxed));
        let mut l = crate::fault::report::Line::prefixed();
        l.s("warning: watched page ").hex(page as u64).s(" traps over ").dec(HOT_PAGE_RATE);
        l.s(" times a second (").dec(traps).s(" traps so far, ").dec(outside);
        l.s(" of them stores to data outside the monitored ranges that only shares their page): each costs ");
        l.s("a trap of a few microseconds; a range of 1, 2, 4 or 8 aligned bytes can be watched by a ");
        l.s("hardware watchpoint instead (VMSRS_WATCH_<N>=hw or auto), which traps only for its own bytes\n");
        l.write_stderr();
    }
    n == HOT_PAGE_RATE
}

fn report_unsupported(m: iced_x86::Mnemonic, pc: u64, addr: usize) {
    report_cannot(m, pc, addr, " storing to watched ", ": the store is not performed; a fault of its user\n");
}

fn report_unsupported_load(m: iced_x86::Mnemonic, pc: u64, addr: usize) {
    report_cannot(
        m,
        pc,
        addr,
        " loading watched ",
        " for a faulted user: its loads read memory (what normal users see) until its end point\n",
    );
}

fn report_cannot(m: iced_x86::Mnemonic, pc: u64, addr: usize, what: &str, then: &str) {
    struct Buf([u8; 48], usize);
    impl core::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let n = s.len().min(self.0.len() - self.1);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut name = Buf([0; 48], 0);
    // Debug of a Mnemonic is a static name: no allocation.
    let _ = core::fmt::write(&mut name, format_args!("{m:?}"));
    let mut l = crate::fault::report::Line::prefixed();
    l.s("watch: cannot emulate ").bytes(&name.0[..name.1]).s(" at pc ").hex(pc);
    l.s(what).hex(addr as u64).s(then);
    l.write_stderr();
}

/// The interrupted registers, in the signal frame.
struct UcCpu(*mut libc::ucontext_t);

impl UcCpu {
    fn get(&self, i: libc::c_int) -> u64 {
        // SAFETY: the signal's context, live for the handler (see on_trap's contract).
        unsafe { (*self.0).uc_mcontext.gregs[i as usize] as u64 }
    }
    fn put(&mut self, i: libc::c_int, v: u64) {
        // SAFETY: as for get; the handler's own frame, resumed when it returns.
        unsafe { (*self.0).uc_mcontext.gregs[i as usize] = v as i64 }
    }
}

impl emulate::Cpu for UcCpu {
    fn gpr(&self, n: usize) -> u64 {
        self.get(context::GREG_INDEX[n])
    }
    fn set_gpr(&mut self, n: usize, v: u64) {
        self.put(context::GREG_INDEX[n], v)
    }
    fn rip(&self) -> u64 {
        self.get(libc::REG_RIP)
    }
    fn set_rip(&mut self, v: u64) {
        self.put(libc::REG_RIP, v)
    }
    fn flags(&self) -> u64 {
        self.get(libc::REG_EFL)
    }
    fn set_flags(&mut self, v: u64) {
        self.put(libc::REG_EFL, v)
    }
    fn vector(&self, n: usize, out: &mut [u8; 64]) -> bool {
        // SAFETY: the signal's context.
        unsafe { context::read_vector(self.0, n, out) }
    }
    fn opmask(&self, n: usize) -> Option<u64> {
        // SAFETY: the signal's context.
        unsafe { context::read_opmask(self.0, n) }
    }
    fn set_vector(&mut self, n: usize, bytes: &[u8], zero_to: usize) -> bool {
        // SAFETY: the signal's context, this handler's own frame.
        unsafe { context::write_vector(self.0, n, bytes, zero_to) }
    }
}

/// Memory as the storing user sees it: watched bytes through the hv at their alias, the rest
/// through guarded copies.
struct WatchedMemory<'a> {
    hv: &'a Hv,
    user: u64,
}

impl WatchedMemory<'_> {
    /// Split `addr..addr+len` at region boundaries: (offset, len, alias if watched).
    fn parts(addr: usize, len: usize, f: &mut dyn FnMut(usize, usize, Option<usize>) -> bool) -> bool {
        let mut off = 0;
        while off < len {
            let p = addr + off;
            let (n, alias) = match region_of(p) {
                Some((_, s, e, a)) => ((e - p).min(len - off), Some(a + (p - s))),
                None => {
                    // Up to the next watched byte, if any.
                    let mut n = len - off;
                    for k in 1..n {
                        if region_of(p + k).is_some() {
                            n = k;
                            break;
                        }
                    }
                    (n, None)
                }
            };
            if !f(off, n, alias) {
                return false;
            }
            off += n;
        }
        true
    }
}

impl emulate::Memory for WatchedMemory<'_> {
    fn read(&mut self, addr: u64, out: &mut [u8]) -> bool {
        let (hv, u) = (self.hv, self.user);
        let len = out.len();
        Self::parts(addr as usize, len, &mut |off, n, alias| match alias {
            Some(a) => hv.load(u, a, &mut out[off..off + n]).is_ok(),
            None => {
                uaccess::copy_from_guest(&mut out[off..off + n], (addr as usize + off) as *const u8).is_ok()
            }
        })
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) -> bool {
        let (hv, u) = (self.hv, self.user);
        // Unwatched parts first: if one is bad, nothing watched has been stored.
        Self::parts(addr as usize, bytes.len(), &mut |off, n, alias| {
            alias.is_some()
                // SAFETY: an address the program stores to; a bad one is reported.
                || unsafe { uaccess::copy_to_guest((addr as usize + off) as *mut u8, &bytes[off..off + n]) }.is_ok()
        }) && Self::parts(addr as usize, bytes.len(), &mut |off, n, alias| match alias {
            Some(a) => {
                let ok = hv.store(u, a, &bytes[off..off + n]).is_ok();
                // A faulted user's store goes to its shadow: its loads of the page must trap.
                pkey::stored(addr as usize + off, n);
                // A hardware-watched range written through its alias: no trap saw it.
                hw::wrote(a, n);
                ok
            }
            None => true,
        })
    }

    fn watched(&self, addr: u64) -> Option<(u64, u64)> {
        region_of(addr as usize).map(|(_, s, e, _)| (s as u64, e as u64))
    }
}

/// A system call that writes up to `len` bytes at `buf` (`read`, `recv`, ...). The kernel
/// cannot write a watched page (it is read-only: the call would fail with EFAULT), so when
/// `buf` shares a page with a watched range the call writes a bounce buffer instead, and the
/// bytes it returns are stored at `buf` as the calling user's stores, journaled like any other
/// (at most 16 KiB per call: a short read, as the call's contract allows). Returns what `call`
/// returns, or -1 with errno EFAULT when `buf` turns out not to be writable.
pub fn kernel_into(buf: *mut u8, len: usize, call: impl FnOnce(*mut u8, usize) -> isize) -> isize {
    if !active() || !overlaps(buf as usize, len) {
        return call(buf, len);
    }
    let mut bounce = [0u8; 16384];
    let n = len.min(bounce.len());
    let r = call(bounce.as_mut_ptr(), n);
    if r > 0 && !store_program_bytes(buf as usize, &bounce[..r as usize]) {
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = libc::EFAULT };
        return -1;
    }
    r
}

/// [`kernel_into`] for a vector of buffers (`readv`, `preadv`): when one of them shares a page
/// with a watched range, the call reads into one bounce buffer (at most 16 KiB: a short read)
/// and the bytes are scattered to the buffers, those on watched pages as the caller's stores.
///
/// # Safety
/// `iov` is `cnt` iovecs as the call's contract gives them (a bad array is the call's EFAULT).
pub unsafe fn kernel_into_iov(
    iov: *const libc::iovec,
    cnt: libc::c_int,
    call: impl FnOnce(*const libc::iovec, libc::c_int) -> isize,
) -> isize {
    const MAX_IOV: usize = 64;
    if !active() || iov.is_null() || cnt <= 0 || cnt as usize > MAX_IOV {
        return call(iov, cnt);
    }
    let n = cnt as usize;
    let mut v = [libc::iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }; MAX_IOV];
    // SAFETY: reading the caller's array through a guarded copy (a bad one fails here).
    let raw =
        unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, n * size_of::<libc::iovec>()) };
    if uaccess::copy_from_guest(raw, iov as *const u8).is_err()
        || !v[..n].iter().any(|e| overlaps(e.iov_base as usize, e.iov_len))
    {
        return call(iov, cnt);
    }
    let mut bounce = [0u8; 16384];
    let total = v[..n].iter().fold(0usize, |t, e| t.saturating_add(e.iov_len)).min(bounce.len());
    let one = libc::iovec { iov_base: bounce.as_mut_ptr() as *mut libc::c_void, iov_len: total };
    let r = call(&one, 1);
    if r <= 0 {
        return r;
    }
    let mut off = 0usize;
    for e in &v[..n] {
        let k = e.iov_len.min(r as usize - off);
        if k == 0 {
            continue; // an empty buffer, or all read bytes placed
        }
        let (dst, bytes) = (e.iov_base as usize, &bounce[off..off + k]);
        let ok = if overlaps(dst, k) {
            store_program_bytes(dst, bytes)
        } else {
            // SAFETY: the caller's buffer; a bad one is reported.
            unsafe { uaccess::copy_to_guest(dst as *mut u8, bytes) }.is_ok()
        };
        if !ok {
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = libc::EFAULT };
            return -1;
        }
        off += k;
    }
    r
}

type RecvFrom = unsafe extern "C" fn(
    libc::c_int,
    *mut libc::c_void,
    usize,
    libc::c_int,
    *mut libc::sockaddr,
    *mut libc::socklen_t,
) -> isize;

static REAL_RECVFROM: AtomicUsize = AtomicUsize::new(0);

static REAL_DLCLOSE: AtomicUsize = AtomicUsize::new(0);

static REAL_CLOSE: AtomicUsize = AtomicUsize::new(0);

/// Look up glibc's `recvfrom`, `close` and `dlclose` (the constructor: [`crate::on_load`]).
pub fn resolve_real() {
    // SAFETY: dlvsym with NUL-terminated names.
    let p = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"recvfrom".as_ptr(), c"GLIBC_2.2.5".as_ptr()) };
    REAL_RECVFROM.store(p as usize, Ordering::Release);
    // SAFETY: as above.
    let p = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"close".as_ptr(), c"GLIBC_2.2.5".as_ptr()) };
    REAL_CLOSE.store(p as usize, Ordering::Release);
    let mut p = 0usize;
    for v in [c"GLIBC_2.34", c"GLIBC_2.2.5"] {
        if p == 0 {
            // SAFETY: as above.
            p = unsafe { libc::dlvsym(libc::RTLD_NEXT, c"dlclose".as_ptr(), v.as_ptr()) } as usize;
        }
    }
    REAL_DLCLOSE.store(p, Ordering::Release);
}

/// The program's `close(fd)`: an event descriptor of `hw` is forgotten first
/// ([`hw::fds_taken`]), then glibc's close (a cancellation point), or the system call if it
/// could not be found.
///
/// # Safety
/// close's contract.
pub unsafe fn close(fd: libc::c_int) -> libc::c_int {
    hw::fds_taken(fd, fd);
    match REAL_CLOSE.load(Ordering::Acquire) {
        // SAFETY: the system call glibc's close makes.
        0 => unsafe { libc::syscall(libc::SYS_close, fd) as libc::c_int },
        // SAFETY: glibc's close (dlvsym), of this signature.
        p => unsafe {
            core::mem::transmute::<usize, unsafe extern "C" fn(libc::c_int) -> libc::c_int>(p)(fd)
        },
    }
}

/// The program's `dup2(old, new)` and `dup3(old, new, flags)` (`flags` `None`: dup2): `new`,
/// if an event descriptor of `hw`, is forgotten first.
pub fn dup_to(old: libc::c_int, new: libc::c_int, flags: Option<libc::c_int>) -> libc::c_int {
    if old != new {
        hw::fds_taken(new, new);
    }
    // SAFETY: the system calls glibc's dup2 and dup3 make; they only take numbers.
    unsafe {
        match flags {
            None => libc::syscall(libc::SYS_dup2, old, new) as libc::c_int,
            Some(f) => libc::syscall(libc::SYS_dup3, old, new, f) as libc::c_int,
        }
    }
}

/// The program's `close_range(first, last, flags)`: the event descriptors of `hw` in the
/// range are forgotten first (unless it only sets close-on-exec).
pub fn close_range(first: libc::c_uint, last: libc::c_uint, flags: libc::c_int) -> libc::c_int {
    const CLOSE_RANGE_CLOEXEC: libc::c_int = 4;
    if flags & CLOSE_RANGE_CLOEXEC == 0 {
        hw::fds_taken(first.min(i32::MAX as u32) as i32, last.min(i32::MAX as u32) as i32);
    }
    // SAFETY: the system call glibc's close_range makes; it only takes numbers.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as libc::c_int }
}

/// The program's `closefrom(low)`: as `close_range(low, ~0, 0)`; where that system call is
/// missing, each descriptor up to the limit is closed.
pub fn closefrom(low: libc::c_int) {
    let low = low.max(0);
    if close_range(low as libc::c_uint, libc::c_uint::MAX, 0) == 0 {
        return;
    }
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: writes into a local.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    for fd in low..(lim.rlim_cur.min(i32::MAX as u64) as libc::c_int) {
        // SAFETY: closing by number, as closefrom does (the events among them were forgotten).
        unsafe { libc::syscall(libc::SYS_close, fd) };
    }
}

/// glibc's `dlclose`, then [`after_dlclose`].
///
/// # Safety
/// dlclose's contract.
pub unsafe fn dlclose(handle: *mut libc::c_void) -> libc::c_int {
    let p = REAL_DLCLOSE.load(Ordering::Acquire);
    if p == 0 {
        return -1;
    }
    UNLOADING.fetch_add(1, Ordering::AcqRel);
    // SAFETY: `p` is glibc's dlclose (dlvsym), of this signature; forwarded contract.
    let r = unsafe {
        core::mem::transmute::<usize, unsafe extern "C" fn(*mut libc::c_void) -> libc::c_int>(p)(handle)
    };
    after_dlclose();
    UNLOADING.fetch_sub(1, Ordering::AcqRel);
    r
}

/// glibc's `recvfrom`, or the system call itself if it could not be found.
///
/// # Safety
/// recvfrom's contract.
pub unsafe fn real_recvfrom(
    fd: libc::c_int,
    buf: *mut libc::c_void,
    n: usize,
    flags: libc::c_int,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
) -> isize {
    match REAL_RECVFROM.load(Ordering::Acquire) {
        0 => {
            // SAFETY: forwarded contract.
            unsafe { libc::syscall(libc::SYS_recvfrom, fd, buf, n, flags, addr, addrlen) as isize }
        }
        p => {
            // SAFETY: `p` is glibc's recvfrom (dlvsym), of this signature.
            let f: RecvFrom = unsafe { core::mem::transmute::<usize, RecvFrom>(p) };
            // SAFETY: forwarded contract.
            unsafe { f(fd, buf, n, flags, addr, addrlen) }
        }
    }
}

/// Store `bytes` at `addr` (which may span watched and unwatched memory) as the calling
/// thread's user would with store instructions: watched bytes journaled through the hv.
pub fn store_program_bytes(addr: usize, bytes: &[u8]) -> bool {
    let Some(hv) = runtime::hv() else { return false };
    let _g = lock();
    let _e = thread::HvEntry::enter();
    let mut mem = WatchedMemory { hv, user: storing_user(hv) };
    emulate::Memory::write(&mut mem, addr as u64, bytes)
}

/// Per-page trap counts of the watched pages: (page address, traps, traps storing outside
/// the monitored ranges), for reports.
pub fn page_traps(out: &mut dyn FnMut(usize, u64, u64)) {
    let n = COUNT.load(Ordering::Acquire);
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e) = r.bounds();
        let mut p = s;
        while p < e {
            let pg = page_of(i, s, p);
            out(p, pg.traps.load(Ordering::Relaxed), pg.outside.load(Ordering::Relaxed));
            p += PAGE;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ranges unmapped while watched.

/// The program is about to unmap `addr..addr+len` (`munmap`): every watched run with a page
/// there stops being watched first (said on stderr: its recovery ends), so no later fault
/// at those addresses is taken for a watched page's.
pub fn before_unmap(addr: usize, len: usize) {
    replacing(addr, len, "is being unmapped by the program (munmap)");
}

/// The mapping-type bits of `mmap`'s flags, and the type Linux 6.11 added (`libc` lacks it).
const MAP_TYPE: libc::c_int = 0x0f;
const MAP_DROPPABLE: libc::c_int = 0x08;

/// The program is about to `mmap(addr, len, .., flags, fd, off)`: with `MAP_FIXED` (and not
/// `MAP_FIXED_NOREPLACE`, which replaces nothing) the watched pages there are replaced, as at
/// [`before_unmap`]. A call the kernel refuses before it maps anything (a bad offset, no
/// mapping type, a bad descriptor) changes nothing.
pub fn before_map(addr: usize, len: usize, flags: libc::c_int, fd: libc::c_int, off: i64) {
    if flags & libc::MAP_FIXED == 0 || flags & libc::MAP_FIXED_NOREPLACE != 0 || !active() {
        return;
    }
    // The kernel's MAP_TYPE: shared, private, shared-validate, or droppable (Linux 6.11:
    // anonymous only, never locked or growing down); anything else is refused before anything
    // is mapped.
    let known_kind = match flags & MAP_TYPE {
        0x01..=0x03 => true,
        MAP_DROPPABLE => {
            flags & libc::MAP_ANONYMOUS != 0 && flags & (libc::MAP_LOCKED | libc::MAP_GROWSDOWN) == 0
        }
        _ => false,
    };
    // SAFETY: F_GETFD only asks whether `fd` is open.
    let bad_fd = flags & libc::MAP_ANONYMOUS == 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0;
    if !known_kind || off & (PAGE as i64 - 1) != 0 || bad_fd {
        return;
    }
    replacing(addr, len, "is being mapped over by the program (mmap MAP_FIXED)");
}

/// The program is about to `mremap(old, old_len, new_len, flags, new_addr)`. Every watched run
/// with a page in `old..old+old_len` stops being watched and is given back whole, private and
/// writable, first, so the kernel moves or resizes the program's own pages as it would
/// without libvmsrs (the moved pages were libvmsrs's read-only mapping of its memfd); with
/// `MREMAP_FIXED` the watched pages at `new_addr..new_addr+new_len` are replaced, as at
/// [`before_unmap`]. A call the kernel would refuse changes nothing (checked as the kernel
/// does, in its order). `Err(errno)`: fail the call without making it: `old_len` 0 on a
/// watched run asks to duplicate it, which the kernel refuses for the program's own (private)
/// pages but would do for libvmsrs's shared memfd mapping.
pub fn before_remap(
    old: usize,
    old_len: usize,
    new_len: usize,
    flags: libc::c_int,
    new_addr: usize,
) -> Result<(), i32> {
    if !active() {
        return Ok(());
    }
    let (maymove, fixed) = (flags & libc::MREMAP_MAYMOVE != 0, flags & libc::MREMAP_FIXED != 0);
    let dontunmap = flags & libc::MREMAP_DONTUNMAP != 0;
    let known = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP;
    let old_len = old_len.checked_next_multiple_of(PAGE);
    let new_len = new_len.checked_next_multiple_of(PAGE);
    let (Some(old_len), Some(new_len)) = (old_len, new_len) else { return Ok(()) };
    if flags & !known != 0
        || (fixed && !maymove)
        || (dontunmap && (!maymove || old_len != new_len))
        || !old.is_multiple_of(PAGE)
        || new_len == 0
        || new_len > TASK_SIZE
        || old.checked_add(old_len).is_none()
    {
        return Ok(()); // EINVAL
    }
    if fixed
        && (!new_addr.is_multiple_of(PAGE)
            || new_addr > TASK_SIZE - new_len
            || (old + old_len > new_addr && new_addr + new_len > old))
    {
        return Ok(()); // EINVAL
    }
    let (lo, hi) = (old, old + old_len.max(PAGE));
    if !overlaps(lo, hi - lo) {
        if fixed {
            replacing(new_addr, new_len, "is being mapped over by the program (mremap MREMAP_FIXED)");
        }
        return Ok(());
    }
    if old_len == 0 {
        return Err(libc::EINVAL);
    }
    if !maymove && new_len > old_len && !free_pages(old + old_len, new_len - old_len) {
        return Ok(()); // ENOMEM: it cannot grow in place
    }
    disarm(|s, e| s < hi && lo < e, "is being moved by the program (mremap)", false, true);
    if fixed {
        replacing(new_addr, new_len, "is being mapped over by the program (mremap MREMAP_FIXED)");
    }
    Ok(())
}

/// The program is about to `shmat(shmid, addr, flags)`: with `SHM_REMAP` at an address, the
/// segment replaces whatever is mapped there, watched pages too, as at [`before_unmap`]. A
/// call the kernel refuses for a bad segment or address (`EINVAL`) changes nothing.
pub fn before_shmat(shmid: libc::c_int, addr: usize, flags: libc::c_int) {
    if flags & libc::SHM_REMAP == 0 || addr == 0 || !active() {
        return;
    }
    let addr = if flags & libc::SHM_RND != 0 { addr & !(PAGE - 1) } else { addr };
    // SAFETY: a plain-old-data struct the kernel fills.
    let mut ds: libc::shmid_ds = unsafe { core::mem::zeroed() };
    // SAFETY: IPC_STAT writes into `ds`.
    if unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) } != 0 {
        return;
    }
    replacing(addr, ds.shm_segsz, "is being mapped over by the program (shmat SHM_REMAP)");
}

/// The top of user space (4-level paging): a length beyond it is refused by the kernel.
const TASK_SIZE: usize = (1 << 47) - PAGE;

/// Whether no page of `addr..addr+len` is mapped (`mincore` fails with ENOMEM on unmapped
/// pages), looked at page by page up to 65,536 pages (beyond: taken as free).
fn free_pages(addr: usize, len: usize) -> bool {
    (0..(len / PAGE).min(1 << 16)).all(|i| {
        let mut v = 0u8;
        // SAFETY: mincore only inspects the mapping at that page.
        unsafe { libc::mincore((addr + i * PAGE) as *mut libc::c_void, PAGE, &mut v) != 0 }
    })
}

/// The whole pages `addr..addr+len` are about to be unmapped or replaced by the program: every
/// watched run with a page there stops being watched first (`why` said on stderr), and all
/// its pages become the program's private writable memory again, those about to go too (so a
/// store the program makes there before its own call lands as it would without libvmsrs, and
/// a call the kernel then refuses leaves them the program's).
fn replacing(addr: usize, len: usize, why: &str) {
    // A call the kernel refuses (EINVAL) replaces nothing: nothing to stop watching.
    if len == 0 || !addr.is_multiple_of(PAGE) || addr.checked_add(len).is_none() {
        return;
    }
    let (lo, hi) = pages_of(addr, len);
    if active() && overlaps(lo, hi - lo) {
        drop_stale(lo, hi);
        disarm(|s, e| s < hi && lo < e, why, false, true);
    }
}

/// Runs in `lo..hi` whose pages are no longer libvmsrs's memfd mapping, their library
/// unloaded, stop being watched and are pending again. At `dlclose`; and before a call on
/// watched pages, or a fork, while another thread's `dlclose` may not have got there yet (a
/// third thread's pages mapped at the address were given back as the run's, which was never
/// watched again). Reads `/proc/self/maps`: only on those rare paths.
fn drop_stale(lo: usize, hi: usize) {
    // Where the maps cannot be read, a run is stale when its first page is unmapped.
    let maps = std::fs::read_to_string("/proc/self/maps").ok();
    let stale = |s: usize| match &maps {
        Some(maps) => !is_watch_mapping(maps, s),
        None => {
            let mut v = 0u8;
            // SAFETY: mincore only inspects the mapping; ENOMEM means unmapped.
            unsafe { libc::mincore(s as *mut libc::c_void, 1, &mut v) != 0 }
        }
    };
    disarm(
        |s, e| s < hi && lo < e && stale(s),
        "was unmapped when its library was unloaded (dlclose)",
        true,
        false,
    );
}

/// The whole pages holding `addr..addr+len` (`len` > 0), saturating at the top of memory.
fn pages_of(addr: usize, len: usize) -> (usize, usize) {
    let lo = addr & !(PAGE - 1);
    (lo, addr.saturating_add(len).saturating_add(PAGE - 1) & !(PAGE - 1))
}

/// After `dlclose`: watched runs whose pages the loader unmapped (their library was unloaded)
/// stop being watched.
pub fn after_dlclose() {
    if active() {
        // Gone: no longer libvmsrs's memfd mapping, unmapped or mapped again by another
        // thread since (judged as unmapped by `mincore`, such a run was left armed over that
        // thread's memory, and a fork child mapped the old bytes over it).
        drop_stale(0, usize::MAX);
    }
}

/// `addr` is in a mapping of a libvmsrs watch memfd, by `/proc/self/maps` (`maps`).
fn is_watch_mapping(maps: &str, addr: usize) -> bool {
    maps.lines().any(|l| {
        let mut f = l.split_ascii_whitespace();
        let Some((lo, hi)) = f.next().and_then(|r| r.split_once('-')) else { return false };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else {
            return false;
        };
        (lo..hi).contains(&addr) && f.nth(4).is_some_and(|path| path == "/memfd:vmsrs-watch")
    })
}

/// Stop watching the runs `gone(start, end)` selects: their ranges are unprofiled in the hv
/// and their aliases unmapped; with `requeue` they are pending again (a library unloaded may
/// be loaded again). `give_back`: the run's pages are still mapped, and become the program's
/// own private memory again, each with the protection the program last asked for. A store
/// that trapped on one of them before and reaches [`on_trap`] only after is retried
/// ([`given_back`]). Normal context.
fn disarm(gone: impl Fn(usize, usize) -> bool, why: &str, requeue: bool, give_back: bool) {
    let Some(hv) = runtime::hv() else { return };
    // No handler of the program may run here: its store to a page being given back would
    // trap, take the lock again (same thread) and land in the old alias after the copy.
    let _quiet = BlockAsync::new();
    let _g = lock();
    let n = COUNT.load(Ordering::Acquire);
    let pid = std::process::id();
    let mut requeued = Vec::new();
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e, a) = {
            let (s, e) = r.bounds();
            (s, e, r.alias.load(Ordering::Relaxed))
        };
        if s == e || !gone(s, e) {
            continue;
        }
        // Its patched stores trap again before its alias goes.
        patch::unpatch(|ri| ri == i);
        if r.hw.load(Ordering::Relaxed) {
            hw::remove(s, e);
        }
        let mut watched = WATCHED.lock();
        watched.retain(|m| {
            if m.addr < s || m.addr >= e {
                return true;
            }
            eprintln!(
                "=={pid}==vmsrs: warning: watched range {} at {:#x}+{} {why}: it is no longer watched{}",
                m.name,
                m.addr,
                m.len,
                if requeue { " until its library is loaded again" } else { "" }
            );
            if requeue {
                requeued.extend(pending_again(m, why));
            }
            let _e = thread::HvEntry::enter();
            let _ = hv.unprofile(a + (m.addr - s));
            false
        });
        // Pages the program keeps: private and writable again, as before they were watched
        // (while the region still claims them, so a store that traps meanwhile waits for the
        // lock and is then retried on the new pages).
        if give_back {
            make_private(s, e);
            // Each page as the program last protected it.
            let mut p = s;
            while p < e {
                let prot = page_of(i, s, p).prot.load(Ordering::Relaxed) as libc::c_int;
                if prot != RW {
                    // SAFETY: the program's own page, as it last asked.
                    unsafe { sys_mprotect(p as *mut libc::c_void, PAGE, prot) };
                }
                p += PAGE;
            }
            // Before the run is dead: a trap that finds no region finds it here.
            r.given.store(r.span.load(Ordering::Relaxed), Ordering::Release);
        }
        // Dead: no address is in it; the slot and its pages' counters may be taken again.
        r.set_bounds(0, 0);
        // SAFETY: our own alias mapping, no longer referenced by the hv.
        unsafe { sys_munmap(a as *mut libc::c_void, e - s) };
    }
    // After WATCHED is released: arm_pending takes PENDING, then WATCHED.
    pend(requeued);
}

/// The watched range `m` as a pending one again (`why` it is), unless it is an address range
/// (those do not come back with a library).
fn pending_again(m: &resolve::Resolved, why: &str) -> Option<resolve::Pending> {
    let spec = vmsrs_config::config::parse_range(&m.name).ok()?;
    let by_address = matches!(spec, vmsrs_config::config::RangeSpec::Addr { .. });
    (!by_address).then(|| resolve::Pending { spec, watch: m.watch, why: why.to_owned() })
}

/// Add `ranges` to the pending ones, checked at the next loader change. Not with WATCHED held.
fn pend(ranges: Vec<resolve::Pending>) {
    if !ranges.is_empty() {
        PENDING.lock().extend(ranges);
        LAST_ADDS.store(0, Ordering::Relaxed);
        HAS_PENDING.store(true, Ordering::Release);
    }
}

/// Replace the watched pages `start..end` (the memfd mapping) by private anonymous writable
/// pages holding the same bytes, in one `mremap` (a thread touching them sees the old pages or
/// the new ones, never a hole). Said on stderr if it fails: the pages then stay read-only.
fn make_private(start: usize, end: usize) {
    let len = end - start;
    // SAFETY: a fresh anonymous mapping; checked.
    let tmp = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    let moved = tmp != libc::MAP_FAILED && {
        // SAFETY: read-only first (pages watched by hardware are writable: a store between the
        // copy and the move would be lost; now it traps and waits for the watch lock, which
        // the caller holds). `start..end` is readable and `tmp` is our own mapping of `len`
        // bytes; then `tmp` replaces the watched pages.
        unsafe {
            sys_mprotect(start as *mut libc::c_void, len, libc::PROT_READ);
            core::ptr::copy_nonoverlapping(start as *const u8, tmp as *mut u8, len);
            // The system call itself, not the interposed mremap ([`before_remap`]).
            libc::syscall(
                libc::SYS_mremap,
                tmp,
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                start as *mut libc::c_void,
            ) as *mut libc::c_void
                != libc::MAP_FAILED
        }
    };
    if !moved {
        if tmp != libc::MAP_FAILED {
            // SAFETY: our own mapping, not moved.
            unsafe { sys_munmap(tmp, len) };
        }
        eprintln!(
            "=={}==vmsrs: error: cannot give the pages {start:#x}..{end:#x} back as writable memory: they stay read-only",
            std::process::id()
        );
    }
}

/// Record `prot` as the program's protection of the watched pages in `addr..end`. Under the
/// watch lock.
fn note_program_prot(n: usize, addr: usize, end: usize, prot: libc::c_int) {
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e) = r.bounds();
        let mut p = s.max(addr);
        while p < e.min(end) {
            page_of(i, s, p).prot.store(prot as u64, Ordering::Relaxed);
            p += PAGE;
        }
    }
}

/// Take the watch lock for a fork (prepare) and release it in the parent.
pub fn lock_for_fork() {
    if active() {
        if UNLOADING.load(Ordering::Acquire) != 0 {
            drop_stale(0, usize::MAX);
        }
        core::mem::forget(lock());
        take_snapshots();
    }
}

pub fn unlock_after_fork_parent() {
    if active() {
        drop_snapshots(COUNT.load(Ordering::Acquire));
    }
    if active() && OWNER.load(Ordering::Relaxed) == me() {
        OWNER.store(0, Ordering::Release);
    }
}
