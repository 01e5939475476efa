//! Class 1 of the paper's function library: monitored loads, stores and assignments.
//!
//! Loads take the fast path — one plain load — while no user is faulted (the hv publishes
//! that state read-only); otherwise they go through demand restoration. Stores to monitored
//! memory record history through the hypervisor component. On unmonitored addresses every
//! function is the plain access. A scalar access to a bad address faults exactly like the
//! plain access would (then contained like any fault of the user); a buffer the caller
//! names is only ever copied through `vmsrs_hv::uaccess`, into bounce buffers of our own
//! before the hv sees it, so a bad buffer is a contained memory error of the calling user
//! (`VMSRS_EFAULT`), never a crash inside libvmsrs.

use crate::error::VmsrsError;
use crate::fault::{note_bad_pointer, settle};
use crate::ffi::{boundary, non_null, non_zero};
use crate::{runtime, thread, user};
use core::arch::asm;
use vmsrs_hv::uaccess;
use vmsrs_hv::{host::inproc::vmmcall, svm_exit_handler, Hv, Hypercall, VmFrame, READER_NEEDED};

/// Bytes moved per bounce-buffer round.
const CHUNK: usize = 256;

macro_rules! plain_access {
    ($load:ident, $store:ident, $t:ty, $ld:literal, $st:literal) => {
        /// The plain load, as one instruction the fault handler can skip.
        #[inline(always)]
        pub(crate) unsafe fn $load(p: usize) -> $t {
            let v: u64;
            // SAFETY: the caller passes an address it would dereference itself; a fault is
            // contained by the handler, which zeroes the destination register.
            unsafe { asm!($ld, p = in(reg) p, v = lateout(reg) v, options(nostack, readonly, preserves_flags)) };
            v as $t
        }

        /// The plain store, as one instruction the fault handler can skip.
        #[inline(always)]
        pub(crate) unsafe fn $store(p: usize, v: $t) {
            // SAFETY: as for the load; a faulting store is dropped by the handler.
            unsafe { asm!($st, p = in(reg) p, v = in(reg) v as u64, options(nostack, preserves_flags)) };
        }
    };
}

plain_access!(plain_load8, plain_store8, u8, "movzx {v:e}, byte ptr [{p}]", "mov byte ptr [{p}], {v:l}");
plain_access!(plain_load16, plain_store16, u16, "movzx {v:e}, word ptr [{p}]", "mov word ptr [{p}], {v:x}");
plain_access!(plain_load32, plain_store32, u32, "mov {v:e}, dword ptr [{p}]", "mov dword ptr [{p}], {v:e}");
plain_access!(plain_load64, plain_store64, u64, "mov {v}, qword ptr [{p}]", "mov qword ptr [{p}], {v}");

/// Slow path of a monitored load of `dst.len()` bytes at `src` into our own buffer.
#[cold]
#[inline(never)]
pub(crate) fn load_slow(hv: &Hv, src: usize, dst: &mut [u8]) -> Result<(), VmsrsError> {
    let _e = thread::HvEntry::enter();
    warn_dropped_exposures(hv);
    let load = |u: u64, ask: u64| {
        // SAFETY: `dst` is our own live buffer of the given length; `src` is the caller's
        // address, which the hv reads only as monitored memory or through a guarded copy.
        unsafe {
            vmmcall(hv, Hypercall::Load, [u, src as u64, dst.as_mut_ptr() as u64, dst.len() as u64, ask, 0])
        }
    };
    let u = user::current();
    user::settle_doom(hv, u);
    let r = as_reader(hv, u, load, |&r| r as u64);
    crate::profile::status(r).map(|_| ()).map_err(|e| bad_span(e, src))
}

/// Make a load (`load(user, ask)`, whose hypercall status `status` reads) by this thread's
/// user `u`. A thread that never began a user asks the hv (`r8`) whether its load read an
/// active user's bytes, which G8 must then be able to name: at `READER_NEEDED` the load is
/// made again by the thread's implicit user, which never asks.
#[inline(always)]
fn as_reader<R>(hv: &Hv, u: u64, mut load: impl FnMut(u64, u64) -> R, status: impl Fn(&R) -> u64) -> R {
    let r = load(u, (u == 0) as u64);
    if status(&r) == READER_NEEDED {
        load(reader_again(hv), 0)
    } else {
        r
    }
}

/// The user a load answered `READER_NEEDED` is made again by: the thread's implicit user, or
/// 0 when none can be begun (the user table is full), and then the reader G8 could not name
/// is counted in `exposures_dropped`.
#[cold]
fn reader_again(hv: &Hv) -> u64 {
    let u = user::current_or_implicit(hv);
    if u == 0 {
        hv.note_unnamed_reader();
    }
    u
}

/// Say on stderr when exposure records were dropped (the tables are full: a writer that never
/// ends, such as a thread's implicit user that filled a table before the workers started,
/// keeps every candidate of its readers), the first time and at every tenfold more. Called
/// where candidates are made, the loads' slow path; one load of the count.
fn warn_dropped_exposures(hv: &Hv) {
    static WARNED_AT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let n = hv.exposures_dropped();
    let last = WARNED_AT.load(core::sync::atomic::Ordering::Relaxed);
    if n > 0
        && n >= last.saturating_mul(10).max(1)
        && WARNED_AT
            .compare_exchange(
                last,
                n,
                core::sync::atomic::Ordering::Relaxed,
                core::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        let mut l = crate::fault::report::Line::prefixed();
        l.s("warning: ").dec(n).s(" exposure records dropped: a reader could not be made a user (the user ");
        l.s("table is full), or the table of ");
        l.dec(vmsrs_hv::exposure::CANDIDATES as u64).s(" (reader, writer, granule) candidates or of ");
        l.dec(vmsrs_hv::exposure::REPORTED as u64)
            .s(" reported exposures is full (candidates stay until their writer ends); ");
        l.s("readers of data whose writer faults from now on may go unreported (G8)\n");
        l.write_stderr();
    }
}

/// Monitored store of our own buffer `src` at `dst` by this thread's user (or by no user
/// when none can be created: the store still happens, final at once).
#[inline(never)]
pub(crate) fn store_slow(hv: &Hv, dst: usize, src: &[u8]) -> Result<(), VmsrsError> {
    let _e = thread::HvEntry::enter();
    let u = user::current_or_implicit(hv);
    user::settle_doom(hv, u);
    // SAFETY: `src` is our own live buffer; `dst` is the caller's address, written by the hv
    // only as monitored memory or through a guarded copy.
    let r = unsafe {
        vmmcall(hv, Hypercall::Store, [u, dst as u64, src.as_ptr() as u64, src.len() as u64, 0, 0])
    };
    crate::profile::status(r).map(|_| ()).map_err(|e| bad_span(e, dst))
}

/// The largest assignment [`assign`] makes without a bounce-buffer round (the Fig. 14
/// workloads assign 16-byte record halves).
const SMALL_ASSIGN: usize = 16;

/// Monitored store of our own buffer `src` (at most [`SMALL_ASSIGN`] bytes) at `dst`: inside
/// one granule, the scalar path of `vmsrs_store64`; else one span store of `src` itself (no
/// second copy of our own bytes).
fn store_small(hv: &Hv, dst: usize, src: &[u8]) -> Result<(), VmsrsError> {
    const G: usize = vmsrs_hv::ranges::GRANULE;
    if dst % G + src.len() > G {
        return store_slow(hv, dst, src);
    }
    let _e = thread::HvEntry::enter();
    let u = user::current_or_implicit(hv);
    user::settle_doom(hv, u);
    let mut v = [0u8; 8];
    v[..src.len()].copy_from_slice(src);
    // SAFETY: StoreScalar takes no buffers; the user is this thread's.
    let r = unsafe {
        vmmcall(hv, Hypercall::StoreScalar, [u, dst as u64, u64::from_le_bytes(v), src.len() as u64, 0, 0])
    };
    crate::profile::status(r).map(|_| ()).map_err(|e| bad_span(e, dst))
}

/// An hv status for an unmonitored span the caller named: `VMSRS_EFAULT` is a bad pointer.
fn bad_span(e: VmsrsError, addr: usize) -> VmsrsError {
    if e == VmsrsError::VMSRS_EFAULT {
        note_bad_pointer(addr)
    } else {
        e
    }
}

/// A monitored scalar load of `N` bytes (any alignment); `plain` is the one-instruction
/// plain load, used on unmonitored memory and while the load gate is down.
#[inline(always)]
fn load_scalar<const N: usize>(a: usize, plain: impl FnOnce() -> u64) -> u64 {
    if !runtime::loads_are_plain() {
        if let Some(hv) = runtime::hv() {
            if hv.may_touch(a, N) {
                return load_scalar_slow(hv, a, N);
            }
        }
    }
    plain()
}

#[inline(never)]
fn load_scalar_slow(hv: &Hv, a: usize, n: usize) -> u64 {
    warn_dropped_exposures(hv);
    thread::with(|t| {
        thread::enter_in(t);
        let load = |u: u64, ask: u64| {
            let mut frame = VmFrame::call(Hypercall::LoadScalar, [u, a as u64, 0, n as u64, ask, 0]);
            // SAFETY: LoadScalar takes no buffers; the user is this thread's.
            unsafe { svm_exit_handler(&mut frame, hv) };
            frame.genrl_regs
        };
        let u = t.user.get();
        user::settle_doom(hv, u);
        let regs = as_reader(hv, u, load, |regs| regs.rax);
        thread::leave_in(t);
        regs.rdx
    })
}

/// A monitored scalar store of the low `N` bytes of `v` (any alignment).
#[inline(always)]
fn store_scalar<const N: usize>(a: usize, v: u64, plain: impl FnOnce()) {
    if let Some(hv) = runtime::hv() {
        if hv.may_touch(a, N) {
            return store_scalar_slow(hv, a, v, N);
        }
    }
    plain()
}

#[inline(never)]
fn store_scalar_slow(hv: &Hv, a: usize, v: u64, n: usize) {
    let status = thread::with(|t| {
        thread::enter_in(t);
        let mut u = t.user.get();
        if u == 0 {
            // 0 again if the user table is full: the hv then makes the store final at once.
            u = user::current_or_implicit(hv);
        }
        user::settle_doom(hv, u);
        let mut frame = VmFrame::call(Hypercall::StoreScalar, [u, a as u64, v, n as u64, 0, 0]);
        // SAFETY: StoreScalar takes no buffers; the user is this thread's.
        unsafe { svm_exit_handler(&mut frame, hv) };
        thread::leave_in(t);
        frame.ret()
    });
    if status == VmsrsError::VMSRS_EFAULT.code() as i64 {
        // Bytes outside the range were not writable (a store straddling a range's end): the
        // plain store would have faulted, so it is the user's fault, and nothing was written.
        note_bad_pointer(a);
        settle(0);
    }
}

// Scalar loads and stores: each is the plain access on unmonitored memory, and a bad
// address faults exactly as the plain access would (then contained like any user fault).

/// Monitored load of a byte at `p`, as this thread's user sees it (G3; G4 when suppressed).
///
/// # Safety
/// `p` must be an address the caller could load from directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_load8(p: *const u8) -> u8 {
    // SAFETY: forwarded contract.
    load_scalar::<1>(p as usize, || unsafe { plain_load8(p as usize) } as u64) as u8
}

/// Monitored load of 2 bytes at `p` (any alignment).
///
/// # Safety
/// `p` must be an address the caller could load from directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_load16(p: *const u16) -> u16 {
    // SAFETY: forwarded contract.
    load_scalar::<2>(p as usize, || unsafe { plain_load16(p as usize) } as u64) as u16
}

/// Monitored load of 4 bytes at `p` (any alignment).
///
/// # Safety
/// `p` must be an address the caller could load from directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_load32(p: *const u32) -> u32 {
    // SAFETY: forwarded contract.
    load_scalar::<4>(p as usize, || unsafe { plain_load32(p as usize) } as u64) as u32
}

/// Monitored load of 8 bytes at `p` (any alignment).
///
/// # Safety
/// `p` must be an address the caller could load from directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_load64(p: *const u64) -> u64 {
    // SAFETY: forwarded contract.
    load_scalar::<8>(p as usize, || unsafe { plain_load64(p as usize) })
}

/// Monitored store of a byte `v` at `p` by this thread's user.
///
/// # Safety
/// `p` must be an address the caller could store to directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_store8(p: *mut u8, v: u8) {
    // SAFETY: forwarded contract.
    store_scalar::<1>(p as usize, v as u64, || unsafe { plain_store8(p as usize, v) })
}

/// Monitored store of 2 bytes `v` at `p` (any alignment).
///
/// # Safety
/// `p` must be an address the caller could store to directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_store16(p: *mut u16, v: u16) {
    // SAFETY: forwarded contract.
    store_scalar::<2>(p as usize, v as u64, || unsafe { plain_store16(p as usize, v) })
}

/// Monitored store of 4 bytes `v` at `p` (any alignment).
///
/// # Safety
/// `p` must be an address the caller could store to directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_store32(p: *mut u32, v: u32) {
    // SAFETY: forwarded contract.
    store_scalar::<4>(p as usize, v as u64, || unsafe { plain_store32(p as usize, v) })
}

/// Monitored store of 8 bytes `v` at `p` (any alignment).
///
/// # Safety
/// `p` must be an address the caller could store to directly.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_store64(p: *mut u64, v: u64) {
    // SAFETY: forwarded contract.
    store_scalar::<8>(p as usize, v, || unsafe { plain_store64(p as usize, v) })
}

/// Copy `n` bytes from the caller's `src` into the caller's `dst` through the monitored view
/// (`src` may be monitored; `dst` is written plainly).
pub(crate) fn load_into(src: usize, dst: usize, n: usize) -> Result<(), VmsrsError> {
    match runtime::hv() {
        Some(hv) if !runtime::loads_are_plain() && hv.may_touch(src, n) => {
            let mut buf = [0u8; CHUNK];
            let mut done = 0;
            while done < n {
                let k = (n - done).min(CHUNK);
                load_slow(hv, src + done, &mut buf[..k])?;
                put(dst + done, &buf[..k])?;
                done += k;
            }
            Ok(())
        }
        // SAFETY: a guarded copy between two caller buffers.
        _ => unsafe { uaccess::copy(dst as *mut u8, src as *const u8, n) }.map_err(|b| note_bad_pointer(b.0)),
    }
}

/// Store `n` bytes from the caller's `src` into `dst` as monitored stores.
pub(crate) fn store_from(dst: usize, src: usize, n: usize) -> Result<(), VmsrsError> {
    match runtime::hv() {
        Some(hv) if hv.may_touch(dst, n) => {
            let mut buf = [0u8; CHUNK];
            let mut done = 0;
            while done < n {
                let k = (n - done).min(CHUNK);
                get(&mut buf[..k], src + done)?;
                store_slow(hv, dst + done, &buf[..k])?;
                done += k;
            }
            Ok(())
        }
        // SAFETY: a guarded copy between two caller buffers.
        _ => unsafe { uaccess::copy(dst as *mut u8, src as *const u8, n) }.map_err(|b| note_bad_pointer(b.0)),
    }
}

/// Copy a caller's bytes at `src` into our buffer.
fn get(out: &mut [u8], src: usize) -> Result<(), VmsrsError> {
    // SAFETY: `out` is our own buffer; `src` is guarded.
    unsafe { uaccess::copy(out.as_mut_ptr(), src as *const u8, out.len()) }.map_err(|b| note_bad_pointer(b.0))
}

/// Copy our buffer to a caller's `dst`.
fn put(dst: usize, bytes: &[u8]) -> Result<(), VmsrsError> {
    // SAFETY: `bytes` is our own buffer; `dst` is guarded.
    unsafe { uaccess::copy(dst as *mut u8, bytes.as_ptr(), bytes.len()) }.map_err(|b| note_bad_pointer(b.0))
}

/// Assign `n` bytes from `src` to `dst`, both possibly monitored, in either direction of
/// overlap (memmove semantics): each byte is loaded through G3 and stored as this user.
pub(crate) fn assign(dst: usize, src: usize, n: usize) -> Result<(), VmsrsError> {
    if n <= SMALL_ASSIGN {
        if let Some(hv) = runtime::hv().filter(|hv| hv.may_touch(dst, n)) {
            let mut buf = [0u8; SMALL_ASSIGN];
            load_into(src, buf.as_mut_ptr() as usize, n)?;
            return store_small(hv, dst, &buf[..n]);
        }
    }
    let mut buf = [0u8; CHUNK];
    let backwards = dst > src && dst < src + n;
    let mut done = 0;
    while done < n {
        let k = (n - done).min(CHUNK);
        let off = if backwards { n - done - k } else { done };
        load_into(src + off, buf.as_mut_ptr() as usize, k)?;
        store_from(dst + off, buf.as_ptr() as usize, k)?;
        done += k;
    }
    Ok(())
}

/// Monitored load of `n` bytes at `src` into the plain buffer `dst`.
///
/// Returns 0, `VMSRS_ENULL`, `VMSRS_EZEROLEN`, or `VMSRS_EFAULT` (a buffer could not be
/// accessed: the calling user made a memory error and is now faulted; under the unwind
/// policy the call does not return but unwinds to the user's recovery point).
///
/// # Safety
/// `dst` must be writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_load(dst: *mut libc::c_void, src: *const libc::c_void, n: usize) -> i32 {
    settle(boundary(|| {
        non_null(dst)?;
        non_null(src)?;
        non_zero(n)?;
        load_into(src as usize, dst as usize, n)?;
        Ok(0)
    }))
}

/// Monitored store of `n` bytes from the plain buffer `src` at `dst`.
///
/// Returns 0, `VMSRS_ENULL`, `VMSRS_EZEROLEN`, or `VMSRS_EFAULT` (a buffer could not be
/// accessed: the calling user made a memory error and is now faulted; under the unwind
/// policy the call does not return but unwinds to the user's recovery point).
///
/// # Safety
/// `dst` must be writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_store(dst: *mut libc::c_void, src: *const libc::c_void, n: usize) -> i32 {
    settle(boundary(|| {
        non_null(dst)?;
        non_null(src)?;
        non_zero(n)?;
        store_from(dst as usize, src as usize, n)?;
        Ok(0)
    }))
}

/// Monitored assignment `dst = src` of `n` bytes, both sides possibly monitored (the
/// paper's assignment class: the source is read through G3, the destination recorded).
/// Overlapping buffers are handled as by `memmove`.
///
/// Returns 0, `VMSRS_ENULL`, `VMSRS_EZEROLEN`, or `VMSRS_EFAULT` (a buffer could not be
/// accessed: the calling user made a memory error and is now faulted; under the unwind
/// policy the call does not return but unwinds to the user's recovery point).
///
/// # Safety
/// `dst` must be writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_assign(dst: *mut libc::c_void, src: *const libc::c_void, n: usize) -> i32 {
    settle(boundary(|| {
        non_null(dst)?;
        non_null(src)?;
        non_zero(n)?;
        assign(dst as usize, src as usize, n)?;
        Ok(0)
    }))
}
