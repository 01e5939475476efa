//! A faulted user's own loads of watched ranges (G4), by memory protection keys.
//!
//! Read-only pages catch every store, but not loads: a faulted user F would read memory, which
//! holds the G3 view once F's pollution is restored at its fault ([`super::fencing`]), not
//! F's view (its shadow, else its own earlier stores, DESIGN §2 G4). So the pages where F's
//! view may differ from memory get one protection key, `KEY`, and F's thread alone denies it
//! in its PKRU register:
//!
//! * **Keyed pages.** At a fault entry, every watched page holding a polluted granule (before
//!   it is restored); afterwards, every page a thread that denies the key stores to (its
//!   stores go to its shadow). Keys come off every page when no user is faulted any more.
//! * **F's thread** denies the key from its fault entry (in the signal frame: a `wrpkru` in a
//!   handler is undone by `sigreturn`) to its end point. Its loads of keyed pages trap
//!   (SIGSEGV, `SEGV_PKUERR`) and are emulated from the hv's view for F
//!   ([`super::emulate::emulate_load`]); its stores trap as before. An instruction that cannot
//!   be emulated is reported by mnemonic, and F's thread then allows the key until its end
//!   point: its loads read memory (the G3 view), never a wrong register.
//! * **Every other thread** allows the key and loads at full speed. Threads that existed before
//!   the key was allocated, and every signal handler (the kernel runs handlers with every key
//!   but 0 denied), trap once: the trap allows the key in their frame and retries.
//!
//! Limits: the kernel refuses F's own system calls on keyed pages (EFAULT), e.g. a
//! `read(2)` into one (the lock and condition-variable calls libvmsrs interposes open the
//! key around themselves, [`Open`]: glibc aborts when a futex wait fails so); a signal
//! handler's system call on a keyed page fails the same way; hardware-watched ranges (`watch=hw`) are not keyed.
//! Without protection keys (CPU, kernel, or all 15 keys taken) F's loads read memory, and
//! libvmsrs says so once at start-up.

use super::{lock, page_of, region_of, Page, COUNT, PAGE, REGIONS};
use crate::thread;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use vmsrs_hv::Hv;

/// `si_code` of a SIGSEGV from a protection-key check.
pub(crate) const SEGV_PKUERR: i32 = 4;

/// The key (1..16); -1 before [`init`], -2 when none could be allocated.
static KEY: AtomicI32 = AtomicI32::new(-1);
/// Pages keyed now (an upper bound: a keyed page given back to the program keeps counting
/// until the next [`unkey_all`]).
static KEYED: AtomicUsize = AtomicUsize::new(0);

fn key() -> Option<u32> {
    match KEY.load(Ordering::Relaxed) {
        k @ 1..=15 => Some(k as u32),
        _ => None,
    }
}

/// The PKRU bits that deny access to the key (access-disable and write-disable).
fn deny_bits(k: u32) -> u32 {
    3 << (2 * k)
}

/// Allocate the key, once, in normal context, before the first range is armed (the threads
/// that exist now deny it until their first trap on a keyed page: see the module comment).
pub fn init() {
    if KEY.load(Ordering::Relaxed) != -1 {
        return;
    }
    // SAFETY: pkey_alloc(flags 0, access rights 0) takes no pointers; it fails with ENOSYS,
    // EINVAL (no protection keys) or ENOSPC.
    let k = unsafe { libc::syscall(libc::SYS_pkey_alloc, 0, 0) };
    if (1..=15).contains(&k) {
        KEY.store(k as i32, Ordering::Relaxed);
        return;
    }
    let err = std::io::Error::last_os_error();
    KEY.store(-2, Ordering::Relaxed);
    super::warn(&format!(
        "no memory protection key for the watched ranges ({err}): a faulted user's loads of them \
         read memory, the values normal users see, not its own stores (DESIGN G4 holds for its \
         stores only)"
    ));
}

fn rdpkru() -> u32 {
    let v: u32;
    // SAFETY: only called with a key allocated, so the CPU and kernel support protection
    // keys (CR4.PKE); rdpkru with ecx = 0 reads PKRU into eax and clears edx.
    unsafe {
        core::arch::asm!("rdpkru", in("ecx") 0u32, out("eax") v, out("edx") _, options(nomem, nostack))
    };
    v
}

fn wrpkru(v: u32) {
    // SAFETY: as for rdpkru; wrpkru with ecx = edx = 0 writes eax into PKRU, changing only
    // which keyed pages this thread may access.
    unsafe { core::arch::asm!("wrpkru", in("eax") v, in("ecx") 0u32, in("edx") 0u32, options(nostack)) };
}

/// Does this thread deny the key (it runs a faulted user)?
pub fn denied_here() -> bool {
    thread::with(|t| t.pkey_denied.get())
}

/// A new thread inherits its creator's PKRU, which denies the key when the creator runs a
/// faulted user (or is a handler): allow it.
pub fn thread_started() {
    if let Some(k) = key() {
        wrpkru(rdpkru() & !deny_bits(k));
    }
}

/// This thread's user just faulted (its fault entry, under the watch lock): deny the key
/// from now on. In a signal handler the denial must also go into the frame ([`settle_frame`]).
pub(super) fn deny_here() {
    if let Some(k) = key() {
        wrpkru(rdpkru() | deny_bits(k));
        thread::with(|t| t.pkey_denied.set(true));
    }
}

/// At the end of a handler (libvmsrs's fault handler, or the program's handler it called),
/// given whether the thread denied the key when the handler began (`denied_before`): if its
/// user faulted inside the handler, make the interrupted context resume denying the key (a
/// `wrpkru` in a handler is undone by `sigreturn`). A user faulted before keeps the rights its
/// frame has: inside a lock wait, which opens the key ([`Open`]), denying it again made the
/// resumed futex wait fail and glibc abort. A frame without a PKRU slot cannot be settled:
/// the thread then allows the key, and its loads read memory.
///
/// # Safety
/// `uc` is the context of the signal being handled on this thread.
pub unsafe fn settle_frame(uc: *mut libc::ucontext_t, denied_before: bool) {
    let Some(k) = key() else { return };
    if denied_before || !denied_here() {
        return;
    }
    // SAFETY: the context of this signal (contract).
    let ok = unsafe { crate::fault::context::read_pkru(uc) }
        // SAFETY: as above.
        .is_some_and(|v| unsafe { crate::fault::context::write_pkru(uc, v | deny_bits(k)) });
    if !ok {
        thread::with(|t| t.pkey_denied.set(false));
    }
}

/// Let the interrupted context access the key's pages; `true`: retry the instruction.
///
/// # Safety
/// As for [`settle_frame`].
pub(super) unsafe fn allow_in(uc: *mut libc::ucontext_t) -> bool {
    let Some(k) = key() else { return false };
    // SAFETY: the context of this signal (contract).
    match unsafe { crate::fault::context::read_pkru(uc) } {
        // SAFETY: as above.
        Some(v) => unsafe { crate::fault::context::write_pkru(uc, v & !deny_bits(k)) },
        None => false,
    }
}

/// A key fault with key `k` (not ours) on a watched page, in context `uc`: `true` (retry)
/// when it is stale: raised while our key was on the page and reported after it came off
/// (as key 0, or as a key the program gave the page meanwhile), which happens when a faulted
/// user's end point races a load by a thread that denies our key (a signal handler, an older
/// thread; a hostile review saw such loads contained as faults of normal users). The key the
/// page has now is then one the context may access. `false`: the context denies `k`, the
/// program's own key.
///
/// # Safety
/// `uc` is the context of the SIGSEGV being handled on this thread.
pub(super) unsafe fn stale(k: u32, uc: *mut libc::ucontext_t) -> bool {
    if k >= 16 {
        return false;
    }
    // SAFETY: the context of this signal (contract).
    match unsafe { crate::fault::context::read_pkru(uc) } {
        Some(v) => v & deny_bits(k) == 0,
        None => false,
    }
}

/// Is `k` (a `SEGV_PKUERR`'s key) libvmsrs's? Other keys are the program's own.
pub fn is_ours(k: u32) -> bool {
    key() == Some(k)
}

/// The key of a `SEGV_PKUERR` siginfo (`si_pkey`, after `si_addr` and `si_addr_lsb`).
///
/// # Safety
/// `info` is the kernel's siginfo of a SIGSEGV being handled.
pub unsafe fn si_pkey(info: *const libc::siginfo_t) -> u32 {
    // SAFETY: `_sigfault` on x86-64: si_addr at 16, si_addr_lsb at 24, the union holding
    // si_pkey at 32, inside the 128-byte siginfo.
    unsafe { core::ptr::read_unaligned(info.cast::<u8>().add(32).cast::<u32>()) }
}

/// The protection the kernel gives a watched page now: read-only while the program may write
/// it, as the program left it otherwise, or as the program has it on a run moved to hardware
/// watchpoints (`hw`), whose pages are writable again.
fn watched_prot(pg: &Page, hw: bool) -> libc::c_int {
    let p = pg.prot.load(Ordering::Relaxed) as libc::c_int;
    if p & libc::PROT_WRITE != 0 && !hw {
        (p & !libc::PROT_WRITE) | libc::PROT_READ
    } else {
        p
    }
}

fn set_key(page: usize, pg: &Page, hw: bool, k: u32) -> bool {
    let prot = watched_prot(pg, hw);
    // SAFETY: a watched page of ours (the caller holds the watch lock, so it stays watched);
    // pkey_mprotect changes only its key, with the protection it has.
    unsafe { libc::syscall(libc::SYS_pkey_mprotect, page, PAGE, prot, k as libc::c_long) == 0 }
}

/// Key watched page `page` (the watch lock held), unless it is already, or carries the
/// program's own key (a page has one key: the faulted user's loads there read memory).
pub(super) fn key_page(page: usize, pg: &Page) {
    let Some(k) = key() else { return };
    if !pg.keyed.load(Ordering::Relaxed)
        && pg.own_key.load(Ordering::Relaxed) == 0
        && set_key(page, pg, false, k)
    {
        pg.keyed.store(true, Ordering::Relaxed);
        KEYED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A thread that denies the key stored `addr..addr+len` (its shadow took the watched bytes;
/// the watch lock held): key the watched pages holding them, so that its loads there trap.
pub(super) fn stored(addr: usize, len: usize) {
    if key().is_none() || len == 0 || !denied_here() {
        return;
    }
    let mut p = addr & !(PAGE - 1);
    while p < addr + len {
        if let Some((i, s, _, a)) = region_of(p) {
            if a != 0 && !REGIONS[i].hw.load(Ordering::Relaxed) {
                key_page(p, page_of(i, s, p));
            }
        }
        p += PAGE;
    }
}

/// Key every page of region `i` (`s..e`, alias `a`) holding a polluted granule (the watch lock
/// held, before the restoration of a fault entry).
pub(super) fn key_polluted(hv: &Hv, i: usize, s: usize, e: usize, a: usize) {
    if key().is_none() {
        return;
    }
    for p in (s..e).step_by(PAGE) {
        if hv.polluted(a + (p - s), PAGE) {
            key_page(p, page_of(i, s, p));
        }
    }
}

/// Take the key off every page (the watch lock held).
fn unkey_all() {
    let n = COUNT.load(Ordering::Acquire);
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e) = r.bounds();
        if r.alias.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let hw = r.hw.load(Ordering::Relaxed);
        for p in (s..e).step_by(PAGE) {
            let pg = page_of(i, s, p);
            if pg.keyed.load(Ordering::Relaxed) {
                set_key(p, pg, hw, 0);
                pg.keyed.store(false, Ordering::Relaxed);
            }
        }
    }
    KEYED.store(0, Ordering::Relaxed);
}

/// In a fork child, whose watched pages were mapped again (a new mapping has key 0): key the
/// pages that were keyed, and give the program's own keys back (the watch lock held).
pub(super) fn after_fork_child(i: usize, s: usize, e: usize) {
    for p in (s..e).step_by(PAGE) {
        let pg = page_of(i, s, p);
        match (pg.own_key.load(Ordering::Relaxed), key()) {
            (0, Some(k)) if pg.keyed.load(Ordering::Relaxed) => {
                set_key(p, pg, false, k);
            }
            (0, _) => {}
            (own, _) => {
                set_key(p, pg, false, own);
            }
        }
    }
}

/// The program gave watched pages in `addr..end` its own key `k` (`pkey_mprotect`; the watch
/// lock held): it replaced ours where it was, and stays.
pub(super) fn program_keyed(n: usize, addr: usize, end: usize, k: u32) {
    for (i, r) in REGIONS[..n].iter().enumerate() {
        let (s, e) = r.bounds();
        let mut p = s.max(addr & !(PAGE - 1));
        while p < e.min(end) {
            let pg = page_of(i, s, p);
            pg.own_key.store(k, Ordering::Relaxed);
            pg.keyed.store(false, Ordering::Relaxed);
            p += PAGE;
        }
    }
}

/// While it lives, this thread may access keyed pages, if it denies them: around a blocking
/// lock or condition-variable call of a faulted user (the kernel refuses a futex wait on a
/// lock word in a keyed page with EFAULT, which glibc answers with `abort`). The lock word is
/// never a monitored byte the user's view could differ in (a monitored range is data).
pub struct Open(Option<u32>);

impl Open {
    #[inline]
    pub fn new() -> Open {
        match key() {
            Some(k) if denied_here() => {
                wrpkru(rdpkru() & !deny_bits(k));
                Open(Some(k))
            }
            _ => Open(None),
        }
    }
}

impl Default for Open {
    fn default() -> Open {
        Open::new()
    }
}

impl Drop for Open {
    #[inline]
    fn drop(&mut self) {
        if let Some(k) = self.0 {
            if denied_here() {
                wrpkru(rdpkru() | deny_bits(k));
            }
        }
    }
}

/// This thread's user ended (normal context): allow the key again, and take it off every page
/// when no user is faulted any more.
pub fn user_ended(hv: &Hv) {
    let Some(k) = key() else { return };
    if thread::with(|t| t.pkey_denied.replace(false)) {
        wrpkru(rdpkru() & !deny_bits(k));
    }
    if KEYED.load(Ordering::Relaxed) != 0 && hv.faulted_now() == 0 {
        let _quiet = super::BlockAsync::new();
        let _g = lock();
        // Checked again under the lock: a fault entry keys pages under it.
        if hv.faulted_now() == 0 {
            unkey_all();
        }
    }
}
