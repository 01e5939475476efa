//! The in-process host (default): a hypercall is a direct call into the store, which lives in
//! its own guarded mappings with keyed checksums. Isolation here is detection (G6): a wild
//! write into recovery data is reported, never restored from.

use crate::abi::{Hypercall, VmFrame};
use crate::store::{Hv, HvBox, HvConfig};
use crate::HvResult;

static HV: spin::Once<HvBox> = spin::Once::new();

/// Create the process-wide hypervisor component (first call wins).
pub fn start(cfg: HvConfig) -> HvResult<&'static Hv> {
    let mut err = None;
    let hv = HV.call_once(|| match Hv::create(cfg) {
        Ok(b) => b,
        Err(e) => {
            err = Some(e);
            // A zero-config fallback keeps `Once` total; the error is still reported.
            Hv::create(HvConfig::default()).unwrap_or_else(|_| std::process::abort())
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(hv),
    }
}

/// Issue a hypercall to the in-process host.
///
/// # Safety
/// As for [`svm_exit_handler`](crate::svm_exit_handler).
#[inline(always)]
pub unsafe fn vmmcall(hv: &Hv, nr: Hypercall, args: [u64; 6]) -> i64 {
    let mut frame = VmFrame::call(nr, args);
    // SAFETY: forwarded contract.
    unsafe { crate::svm_exit_handler(&mut frame, hv) };
    frame.ret()
}
