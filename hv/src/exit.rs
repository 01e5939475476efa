//! `svm_exit_handler`: the single entry point to recovery state. Every host (in-process
//! call, process host draining rings, trap host catching `vmmcall`) decodes an exit into a
//! [`VmFrame`] and calls this function; the status goes back in `rax`.

use crate::abi::{Hypercall, VmFrame, READER_NEEDED};
use crate::store::{EndKind, Hv, Reading};
use crate::VmsrsError::{self, *};

/// Handle one hypercall exit. Buffers named by the frame are addresses in the guest, which
/// for the in-process host is this address space.
///
/// # Safety
/// Pointer arguments in the frame must be valid for the lengths given, as the ABI documents
/// for each call, and user ids must belong to the calling thread.
#[inline]
pub unsafe fn svm_exit_handler(frame: &mut VmFrame, hv: &Hv) {
    let status = match Hypercall::decode(frame.genrl_regs.rax) {
        // SAFETY: forwarded contract.
        Some(call) => match unsafe { dispatch(call, &mut *frame, hv) } {
            Ok(v) => v,
            Err(e) => e.code() as i64 as u64,
        },
        None => VMSRS_ENOTSUP.code() as i64 as u64,
    };
    frame.genrl_regs.rax = status;
}

/// # Safety
/// See [`svm_exit_handler`].
#[inline]
unsafe fn dispatch(call: Hypercall, f: &mut VmFrame, hv: &Hv) -> Result<u64, VmsrsError> {
    let args = [f.arg(0), f.arg(1), f.arg(2), f.arg(3)];
    let a = |i: usize| args[i];
    Ok(match call {
        Hypercall::StoreScalar => {
            hv.store_scalar(a(0), a(1) as usize, a(2), scalar_size(a(3))?).map(|_| 0)?
        }
        Hypercall::LoadScalar => {
            let (v, reading) =
                hv.load_scalar_asking(a(0), a(1) as usize, scalar_size(a(3))?, f.arg(4) == 1)?;
            f.genrl_regs.rdx = v;
            status_of(reading)
        }
        Hypercall::Profile => {
            let name = if a(2) == 0 {
                &[][..]
            } else {
                // SAFETY: the ABI says rdx/r10 name a readable buffer.
                unsafe { core::slice::from_raw_parts(a(2) as *const u8, a(3) as usize) }
            };
            hv.profile(a(0) as usize, a(1) as usize, name)?
        }
        Hypercall::Unprofile => hv.unprofile(a(0) as usize).map(|_| 0)?,
        Hypercall::UserBegin => hv.user_begin()?,
        Hypercall::UserEnd => match hv.user_end(a(0))? {
            EndKind::Committed => 0,
            EndKind::Faulted => VMSRS_FAULTED.code() as u64,
        },
        Hypercall::Store => {
            // SAFETY: the ABI says rdx/r10 name a readable source buffer.
            let src = unsafe { core::slice::from_raw_parts(a(2) as *const u8, a(3) as usize) };
            hv.store(a(0), a(1) as usize, src).map(|_| 0)?
        }
        Hypercall::Load => {
            // SAFETY: the ABI says rdx/r10 name a writable destination buffer.
            let dst = unsafe { core::slice::from_raw_parts_mut(a(2) as *mut u8, a(3) as usize) };
            status_of(hv.load_asking(a(0), a(1) as usize, dst, f.arg(4) == 1)?)
        }
        Hypercall::CrashSuppression => hv.crash_suppression(a(0)).map(|_| 0)?,
        Hypercall::Restore => {
            hv.restore_range(a(0) as usize, a(1) as usize);
            0
        }
        Hypercall::UserState => hv.suppressed(a(0)) as u64,
        Hypercall::Fill => hv.fill(a(3), a(0) as usize, a(1) as u8, a(2) as usize).map(|_| 0)?,
    })
}

/// The status of a load: 0, or [`READER_NEEDED`].
fn status_of(reading: Reading) -> u64 {
    match reading {
        Reading::ReaderNeeded => READER_NEEDED,
        _ => 0,
    }
}

fn scalar_size(n: u64) -> Result<usize, VmsrsError> {
    match n {
        1..=8 => Ok(n as usize),
        _ => Err(VMSRS_EINVAL),
    }
}
