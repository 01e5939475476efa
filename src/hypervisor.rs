//! Class 5 of the paper's function library (hypervisor half): explicit suppression,
//! statistics, exposures, the last fault, and a debugging window onto recovery data.

use crate::error::VmsrsError::*;
use crate::fault::report::{self, vmsrs_fault_info};
use crate::ffi::{boundary, non_null};
use crate::runtime::{self, COUNTERS};
use crate::{thread, user};
use core::sync::atomic::Ordering;
use vmsrs_hv::{host::inproc::vmmcall, uaccess, Hypercall};

/// Why a user entered suppression explicitly (`vmsrs_crash_suppression`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vmsrs_fault_kind {
    /// The program detected the error itself.
    VMSRS_KIND_EXPLICIT = 0,
    /// A pointer left its object (`vmsrs_ptr_add`, `vmsrs_ptr_check`).
    VMSRS_KIND_BOUNDS = 1,
    VMSRS_KIND_ILL = 4,
    VMSRS_KIND_ABRT = 6,
    VMSRS_KIND_BUS = 7,
    VMSRS_KIND_FPE = 8,
    VMSRS_KIND_SEGV = 11,
}

impl vmsrs_fault_kind {
    fn valid(k: i32) -> bool {
        matches!(k, 0 | 1 | 4 | 6 | 7 | 8 | 11)
    }
}

/// Enter suppression mode for this thread's user now, as if it had crashed with `kind` at
/// `addr` (may be NULL). The user's monitored writes are withdrawn from other users' view;
/// it runs on to its end point. Idempotent.
///
/// Returns 0, or `VMSRS_EUNINIT`, `VMSRS_EINVAL` (unknown kind), `VMSRS_ETOOMANY` (no user
/// could be created for this thread).
#[no_mangle]
pub extern "C" fn vmsrs_crash_suppression(kind: i32, addr: *const libc::c_void) -> i32 {
    boundary(|| {
        let rt = runtime::require()?;
        if !vmsrs_fault_kind::valid(kind) {
            return Err(VMSRS_EINVAL);
        }
        let u = user::current_or_implicit(rt.hv);
        if u == 0 {
            return Err(VMSRS_ETOOMANY);
        }
        let _e = thread::HvEntry::enter();
        // SAFETY: CrashSuppression takes no buffers; `u` is this thread's user.
        let r = crate::watch::fencing(rt.hv, u, || unsafe {
            vmmcall(rt.hv, Hypercall::CrashSuppression, [u, kind as u64, addr as u64, 0, 0, 0])
        });
        crate::profile::status(r)?;
        crate::fault::count_explicit();
        crate::fault::note_explicit(kind, addr as u64, u);
        Ok(0)
    })
}

/// Counters of libvmsrs (`vmsrs_stats`). All fields count since `vmsrs_init_profile`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct vmsrs_stats {
    /// Profiled ranges now.
    pub ranges: u64,
    pub users_begun: u64,
    pub users_committed: u64,
    /// Users that entered suppression mode.
    pub users_faulted: u64,
    /// Faulted users whose end point ran (G7 cleanup done).
    pub users_collected: u64,
    /// Users live now (active or suppressed). Summed slot by slot without stopping other
    /// threads: exact when no user begins or ends meanwhile, otherwise a user that moved to
    /// another slot during the read may count twice.
    pub users_live: u64,
    /// Users suppressed now.
    pub users_suppressed_now: u64,
    /// Granules restored on demand or at cleanup.
    pub restorations: u64,
    /// History entries held now.
    pub history_entries: u64,
    /// Recovery data found corrupt (reported, never restored from).
    pub corruptions: u64,
    /// Address of the 8-byte granule whose recovery data was last found corrupt (0: none).
    pub last_corruption_addr: u64,
    /// Monitored stores that could not be recorded (out of memory or users).
    pub unrecorded_stores: u64,
    /// Stores that went to a suppressed user's shadow.
    pub shadow_stores: u64,
    /// Exposures reported (G8) and exposures lost to a full table.
    pub exposures: u64,
    pub exposures_dropped: u64,
    /// Faults contained / chained to the program's handler.
    pub faults_contained: u64,
    pub faults_chained: u64,
    /// Instructions skipped (oblivious), unwinds to recovery points, threads ended.
    pub instructions_skipped: u64,
    pub unwinds: u64,
    pub threads_ended: u64,
    /// `free` calls withheld from suppressed users (leaked, never double-freed).
    pub frees_withheld: u64,
    /// Output calls marked as a suppressed user's.
    pub suppressed_outputs: u64,
    /// Pointer bounds faults (class 4).
    pub bounds_faults: u64,
}

/// Fill `*out` with the current counters. Returns 0, `VMSRS_ENULL`, `VMSRS_EFAULT` (`out` not
/// writable; nothing else happens) or `VMSRS_EUNINIT`.
///
/// # Safety
/// `out` is NULL or points to a writable `struct vmsrs_stats`.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_stats(out: *mut vmsrs_stats) -> i32 {
    boundary(|| {
        non_null(out)?;
        let rt = runtime::require()?;
        let h = rt.hv.stats();
        let c = &COUNTERS;
        let l = |a: &core::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let s = vmsrs_stats {
            ranges: h.ranges,
            users_begun: h.users_begun,
            users_committed: h.users_committed,
            users_faulted: h.users_faulted,
            users_collected: h.users_collected,
            users_live: h.users_live,
            users_suppressed_now: h.faulted_now,
            restorations: h.restorations,
            history_entries: h.history_entries,
            corruptions: h.corruptions,
            last_corruption_addr: h.last_corruption,
            unrecorded_stores: h.unrecorded,
            shadow_stores: h.shadow_stores,
            exposures: h.exposures,
            exposures_dropped: h.exposures_dropped,
            faults_contained: l(&c.faults_contained),
            faults_chained: l(&c.faults_chained),
            instructions_skipped: l(&c.instructions_skipped),
            unwinds: l(&c.unwinds),
            threads_ended: l(&c.threads_ended),
            frees_withheld: l(&c.frees_withheld),
            suppressed_outputs: l(&c.suppressed_outputs),
            bounds_faults: l(&c.bounds_faults),
        };
        // SAFETY: a caller's out-pointer; a bad one is reported as VMSRS_EFAULT.
        unsafe { uaccess::write(out, s) }.map_err(|_| VMSRS_EFAULT)?;
        Ok(0)
    })
}

/// Copy up to `cap` reported exposures, oldest first, into `out` (may be NULL when `cap` is
/// 0); `*total` (if not NULL) receives how many are reported in all. Returns the number
/// copied, or `VMSRS_EUNINIT`, `VMSRS_ENULL` (`out` NULL with `cap > 0`), `VMSRS_EFAULT`
/// (`out` or `total` not writable). Exposure tracking is on with `VMSRS_EXPOSURE=1`.
///
/// # Safety
/// `out` holds `cap` writable entries; `total` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_exposures(out: *mut vmsrs_hv::Exposure, cap: usize, total: *mut usize) -> i32 {
    boundary(|| {
        let rt = runtime::require()?;
        if cap > 0 {
            non_null(out)?;
        }
        // Copied out through a bounce buffer: `out` is the caller's.
        let mut buf = [vmsrs_hv::Exposure::default(); 64];
        let mut copied = 0;
        let all = loop {
            let want = (cap - copied).min(buf.len());
            let (n, all) = rt.hv.exposures(copied, &mut buf[..want]);
            for (i, e) in buf[..n].iter().enumerate() {
                // SAFETY: the caller's out-array; a bad entry is reported as VMSRS_EFAULT.
                unsafe { uaccess::write(out.wrapping_add(copied + i), *e) }.map_err(|_| VMSRS_EFAULT)?;
            }
            copied += n;
            if n < want || copied == cap {
                break all;
            }
        };
        if !total.is_null() {
            // SAFETY: a caller's out-pointer; a bad one is reported as VMSRS_EFAULT.
            unsafe { uaccess::write(total, all) }.map_err(|_| VMSRS_EFAULT)?;
        }
        Ok(copied as i32)
    })
}

/// Fill `*out` with the last contained fault. Returns 0, `VMSRS_ENULL`, `VMSRS_EFAULT` (`out`
/// not writable), or `VMSRS_ENOFAULT` (none yet).
///
/// # Safety
/// `out` is NULL or points to a writable `struct vmsrs_fault_info`.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_last_fault(out: *mut vmsrs_fault_info) -> i32 {
    boundary(|| {
        non_null(out)?;
        let f = report::last().ok_or(VMSRS_ENOFAULT)?;
        // SAFETY: a caller's out-pointer; a bad one is reported as VMSRS_EFAULT.
        unsafe { uaccess::write(out, f) }.map_err(|_| VMSRS_EFAULT)?;
        Ok(0)
    })
}

/// For experiments on isolation (paper Fig. 10) only: where the recovery data of the
/// monitored granule holding `addr` lives in the in-process host. Writing there simulates a
/// faulty user overwriting the recovery area; libvmsrs must then report the corruption and
/// never restore from it. Returns 0, `VMSRS_EUNINIT`, `VMSRS_ENULL`, `VMSRS_EFAULT`,
/// `VMSRS_ENOTPROFILED`.
///
/// # Safety
/// `area` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_debug_recovery_area(
    addr: *const libc::c_void,
    area: *mut *mut libc::c_void,
    len: *mut usize,
) -> i32 {
    boundary(|| {
        let rt = runtime::require()?;
        non_null(addr)?;
        non_null(area)?;
        non_null(len)?;
        let (p, n) = rt.hv.recovery_area_of(addr as usize).ok_or(VMSRS_ENOTPROFILED)?;
        // SAFETY: a caller's out-pointer; a bad one is reported as VMSRS_EFAULT.
        unsafe { uaccess::write(area, p as *mut libc::c_void) }.map_err(|_| VMSRS_EFAULT)?;
        // SAFETY: a caller's out-pointer; a bad one is reported as VMSRS_EFAULT.
        unsafe { uaccess::write(len, n) }.map_err(|_| VMSRS_EFAULT)?;
        Ok(0)
    })
}
