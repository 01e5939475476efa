//! Class 1 of the paper's function library: monitored loads, stores and assignments.
//!
//! Loads take the fast path — one plain load — while no user is faulted (the hv publishes
//! that state read-only); otherwise they go through demand restoration. Stores to monitored
//! memory record history through the hypervisor component. On unmonitored addresses every
//! function is the plain access, and a bad address faults exactly like the plain access
//! would (the fault is then contained like any fault of the user).

use crate::ffi::{boundary, non_null, non_zero};
use crate::{runtime, thread, user};
use core::arch::asm;
use vmsrs_hv::{host::inproc::vmmcall, Hv, Hypercall};

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

/// Slow path of a monitored load of `dst.len()` bytes at `src`.
#[cold]
#[inline(never)]
pub(crate) fn load_slow(hv: &Hv, src: usize, dst: &mut [u8]) {
    let u = user::current();
    let _e = thread::HvEntry::enter();
    // SAFETY: `dst` is a live buffer of the given length; `src` is the caller's address.
    unsafe { vmmcall(hv, Hypercall::Load, [u, src as u64, dst.as_mut_ptr() as u64, dst.len() as u64, 0, 0]) };
}

/// Monitored store of `src` at `dst` by this thread's user.
#[inline(never)]
pub(crate) fn store_slow(hv: &Hv, dst: usize, src: &[u8]) {
    let u = user::current_or_implicit(hv);
    let _e = thread::HvEntry::enter();
    // SAFETY: `src` is a live buffer of the given length; `dst` is the caller's address.
    unsafe { vmmcall(hv, Hypercall::Store, [u, dst as u64, src.as_ptr() as u64, src.len() as u64, 0, 0]) };
}

macro_rules! scalar_api {
    ($load:ident, $store:ident, $t:ty, $pl:ident, $ps:ident, $doc:literal) => {
        #[doc = concat!("Monitored load of ", $doc, " at `p` (any alignment), as seen by this thread's user (G3; G4 when")]
        /// suppressed). On unmonitored memory it is the plain load.
        ///
        /// # Safety
        /// `p` must be an address the caller could load from directly.
        #[no_mangle]
        pub unsafe extern "C" fn $load(p: *const $t) -> $t {
            let a = p as usize;
            if let Some(hv) = runtime::hv() {
                if !hv.quiescent() && hv.may_touch(a, size_of::<$t>()) {
                    let mut b = [0u8; size_of::<$t>()];
                    load_slow(hv, a, &mut b);
                    return <$t>::from_le_bytes(b);
                }
            }
            // SAFETY: forwarded contract.
            unsafe { $pl(a) }
        }

        #[doc = concat!("Monitored store of ", $doc, " `v` at `p` (any alignment) by this thread's user. On")]
        /// unmonitored memory it is the plain store.
        ///
        /// # Safety
        /// `p` must be an address the caller could store to directly.
        #[no_mangle]
        pub unsafe extern "C" fn $store(p: *mut $t, v: $t) {
            let a = p as usize;
            if let Some(hv) = runtime::hv() {
                if hv.may_touch(a, size_of::<$t>()) {
                    return store_slow(hv, a, &v.to_le_bytes());
                }
            }
            // SAFETY: forwarded contract.
            unsafe { $ps(a, v) }
        }
    };
}

scalar_api!(vmsrs_load8, vmsrs_store8, u8, plain_load8, plain_store8, "a byte");
scalar_api!(vmsrs_load16, vmsrs_store16, u16, plain_load16, plain_store16, "2 bytes");
scalar_api!(vmsrs_load32, vmsrs_store32, u32, plain_load32, plain_store32, "4 bytes");
scalar_api!(vmsrs_load64, vmsrs_store64, u64, plain_load64, plain_store64, "8 bytes");

/// Copy `n` bytes from `src` into `dst` through the monitored view (`src` may be monitored;
/// `dst` is written plainly). In chunks so any length works without allocation.
pub(crate) fn load_into(src: usize, dst: usize, n: usize) {
    match runtime::hv() {
        Some(hv) if !hv.quiescent() && hv.may_touch(src, n) => {
            let mut done = 0;
            while done < n {
                let k = (n - done).min(256);
                // SAFETY: `dst + done .. + k` is inside the caller's destination.
                let out = unsafe { core::slice::from_raw_parts_mut((dst + done) as *mut u8, k) };
                load_slow(hv, src + done, out);
                done += k;
            }
        }
        _ => {
            // SAFETY: the caller vouches for both buffers, as for memcpy.
            unsafe { libc::memcpy(dst as *mut libc::c_void, src as *const libc::c_void, n) };
        }
    }
}

/// Store `n` bytes from the plain buffer `src` into `dst` as monitored stores.
pub(crate) fn store_from(dst: usize, src: usize, n: usize) {
    match runtime::hv() {
        Some(hv) if hv.may_touch(dst, n) => {
            // SAFETY: the caller vouches for `src..src+n`.
            let bytes = unsafe { core::slice::from_raw_parts(src as *const u8, n) };
            store_slow(hv, dst, bytes);
        }
        _ => {
            // SAFETY: the caller vouches for both buffers, as for memcpy.
            unsafe { libc::memcpy(dst as *mut libc::c_void, src as *const libc::c_void, n) };
        }
    }
}

/// Assign `n` bytes from `src` to `dst`, both possibly monitored, in either direction of
/// overlap (memmove semantics): each byte is loaded through G3 and stored as this user.
pub(crate) fn assign(dst: usize, src: usize, n: usize) {
    let mut buf = [0u8; 256];
    let backwards = dst > src && dst < src + n;
    let mut done = 0;
    while done < n {
        let k = (n - done).min(buf.len());
        let off = if backwards { n - done - k } else { done };
        load_into(src + off, buf.as_mut_ptr() as usize, k);
        store_from(dst + off, buf.as_ptr() as usize, k);
        done += k;
    }
}

/// Monitored load of `n` bytes at `src` into the plain buffer `dst`.
///
/// Returns 0, `VMSRS_ENULL` or `VMSRS_EZEROLEN`.
///
/// # Safety
/// `dst` must be writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_load(dst: *mut libc::c_void, src: *const libc::c_void, n: usize) -> i32 {
    boundary(|| {
        non_null(dst)?;
        non_null(src)?;
        non_zero(n)?;
        load_into(src as usize, dst as usize, n);
        Ok(0)
    })
}

/// Monitored store of `n` bytes from the plain buffer `src` at `dst`.
///
/// Returns 0, `VMSRS_ENULL` or `VMSRS_EZEROLEN`.
///
/// # Safety
/// `dst` must be writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_store(dst: *mut libc::c_void, src: *const libc::c_void, n: usize) -> i32 {
    boundary(|| {
        non_null(dst)?;
        non_null(src)?;
        non_zero(n)?;
        store_from(dst as usize, src as usize, n);
        Ok(0)
    })
}

/// Monitored assignment `dst = src` of `n` bytes, both sides possibly monitored (the
/// paper's assignment class: the source is read through G3, the destination recorded).
/// Overlapping buffers are handled as by `memmove`.
///
/// Returns 0, `VMSRS_ENULL` or `VMSRS_EZEROLEN`.
///
/// # Safety
/// `dst` must be writable and `src` readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_assign(dst: *mut libc::c_void, src: *const libc::c_void, n: usize) -> i32 {
    boundary(|| {
        non_null(dst)?;
        non_null(src)?;
        non_zero(n)?;
        assign(dst as usize, src as usize, n);
        Ok(0)
    })
}

