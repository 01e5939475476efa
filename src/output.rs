//! Class 2 of the paper's function library: output. The formatting lives in `output.c`
//! (it consumes a `va_list`); the exported symbols are naked trampolines that jump there
//! with every argument register untouched, so variadic calls keep their ABI.

use crate::{access, fault, runtime};
use core::arch::naked_asm;

extern "C" {
    fn vmsrs_c_printf();
    fn vmsrs_c_fprintf();
    fn vmsrs_c_vprintf();
    fn vmsrs_c_vfprintf();
}

macro_rules! trampoline {
    ($name:ident, $target:ident) => {
        /// See `vmsrs.h`: printf-family output with the caller's monitored view; a
        /// suppressed user's output is marked.
        ///
        /// # Safety
        /// Called from C with the printf-family signature declared in `vmsrs.h`.
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            naked_asm!("jmp {t}", t = sym $target)
        }
    };
}

trampoline!(vmsrs_printf, vmsrs_c_printf);
trampoline!(vmsrs_fprintf, vmsrs_c_fprintf);
trampoline!(vmsrs_vprintf, vmsrs_c_vprintf);
trampoline!(vmsrs_vfprintf, vmsrs_c_vfprintf);

/// Internal to output.c: must `%s` at `p` be read through the monitored view? With `p` NULL:
/// may any string need it (is some user faulted)?
#[no_mangle]
pub extern "C" fn vmsrs__needs_view(p: *const libc::c_void) -> i32 {
    match runtime::hv() {
        Some(hv) if !hv.quiescent() => (p.is_null() || hv.is_monitored(p as usize, 1)) as i32,
        _ => 0,
    }
}

/// Internal to output.c: copy the string at `p`, up to its NUL or `max` bytes (a `%.Ns`
/// conversion's precision: libc reads no further, so neither do we, and the string need not
/// be terminated), as this thread's user sees it, into `out` (at most `cap - 1` bytes, always
/// terminated); returns the length read. `p` was checked readable as far by
/// `vmsrs__probe_cstr` or `vmsrs__probe_cstr_n` first.
///
/// # Safety
/// `out` holds `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn vmsrs__view_cstr(p: *const u8, max: usize, out: *mut u8, cap: usize) -> usize {
    let mut n = 0usize;
    while n < max {
        let mut b = [0u8; 1];
        if access::load_into(p as usize + n, b.as_mut_ptr() as usize, 1).is_err() {
            b[0] = 0;
        }
        if n + 1 < cap {
            // SAFETY: n + 1 < cap keeps the write inside `out`.
            unsafe { out.add(n).write(b[0]) };
        }
        if b[0] == 0 {
            break;
        }
        n += 1;
    }
    if cap > 0 {
        // SAFETY: min(n, cap - 1) < cap.
        unsafe { out.add(n.min(cap - 1)).write(0) };
    }
    n
}

/// Internal to output.c: the length of the string at `p`, or -1 if it cannot be read (then
/// noted as the calling user's bad pointer; see `vmsrs__settle`).
#[no_mangle]
pub extern "C" fn vmsrs__probe_cstr(p: *const u8) -> isize {
    match vmsrs_hv::uaccess::strnlen(p, isize::MAX as usize) {
        Ok(n) => n as isize,
        Err(b) => {
            fault::note_bad_pointer(b.0);
            -1
        }
    }
}

/// Internal to output.c: [`vmsrs__probe_cstr`] that reads at most `max` bytes (a `%.Ns`
/// conversion reads no further, so the string need not be terminated).
#[no_mangle]
pub extern "C" fn vmsrs__probe_cstr_n(p: *const u8, max: usize) -> isize {
    match vmsrs_hv::uaccess::strnlen(p, max) {
        Ok(n) => n as isize,
        Err(b) => {
            fault::note_bad_pointer(b.0);
            -1
        }
    }
}

/// Internal to output.c: `p` is not what the call needs (a `FILE *` that is no stream): the
/// calling user's bad pointer, as if an access through it had faulted. Returns `VMSRS_EFAULT`.
#[no_mangle]
pub extern "C" fn vmsrs__bad_pointer(p: *const u8) -> i32 {
    fault::note_bad_pointer(p as usize).code()
}

/// Internal to output.c: 0 if `n` bytes at `p` can be read, else -1 (noted as for
/// `vmsrs__probe_cstr`).
#[no_mangle]
pub extern "C" fn vmsrs__probe(p: *const u8, n: usize) -> i32 {
    let mut buf = [0u8; 64];
    let mut done = 0;
    while done < n {
        let k = (n - done).min(buf.len());
        // SAFETY: our own buffer; `p` is guarded.
        if let Err(b) = unsafe { vmsrs_hv::uaccess::copy(buf.as_mut_ptr(), p.wrapping_add(done), k) } {
            fault::note_bad_pointer(b.0);
            return -1;
        }
        done += k;
    }
    0
}

/// Internal to output.c: the call is inside libvmsrs from here to [`vmsrs__leave`]
/// (asynchronous signals are deferred, see `thread.rs`).
#[no_mangle]
pub extern "C" fn vmsrs__enter() {
    crate::thread::with(crate::thread::enter_in);
}

/// Internal to output.c: the end of [`vmsrs__enter`].
#[no_mangle]
pub extern "C" fn vmsrs__leave() {
    crate::thread::with(crate::thread::leave_in);
}

/// Internal to output.c: the last step of an output call, with no lock held (see
/// `fault::settle`): a noted bad pointer is contained as the user's fault.
#[no_mangle]
pub extern "C" fn vmsrs__settle(status: i32) -> i32 {
    fault::settle(status)
}

/// Internal to output.c: count one marked output line.
#[no_mangle]
pub extern "C" fn vmsrs__count_suppressed_output() {
    runtime::bump(&runtime::COUNTERS.suppressed_outputs);
}
