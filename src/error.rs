//! Error codes at the C boundary: the numbered enum is defined once, in the hv's ABI
//! ([`vmsrs_hv::VmsrsError`]); this module gives C its message function and a per-thread
//! last error for the functions that return pointers.

use core::cell::Cell;
use libc::c_char;
pub use vmsrs_hv::VmsrsError;

thread_local! {
    static LAST: Cell<i32> = const { Cell::new(0) };
}

/// Record `e` as this thread's last error and return its code.
pub fn set_last(e: VmsrsError) -> i32 {
    LAST.with(|c| c.set(e.code()));
    e.code()
}

/// A static, NUL-terminated description of a status code. Never NULL; unknown codes get
/// "unknown libvmsrs status". The string is owned by the library and must not be freed.
#[no_mangle]
pub extern "C" fn vmsrs_strerror(code: i32) -> *const c_char {
    match VmsrsError::from_code(code) {
        Some(e) => e.message().as_ptr() as *const c_char,
        None => c"unknown libvmsrs status".as_ptr(),
    }
}

/// The status of the last failed call on this thread among the functions that report
/// failure by returning NULL (`vmsrs_ptr_add`, `vmsrs_memcpy`, ...); 0 if none failed.
#[no_mangle]
pub extern "C" fn vmsrs_last_error() -> i32 {
    LAST.with(|c| c.get())
}
