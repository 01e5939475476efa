//! The printf family, interposed (the paper's class 2 for programs that do not call
//! `vmsrs_printf`). The work is in `preload/output.c` (it consumes a `va_list`); each libc name
//! is exported here as a naked trampoline that jumps there with every argument register
//! untouched (rustc's export list only exports Rust items, and variadic calls must keep their
//! ABI). See output.c for what is checked and marked, and when.
//!
//! Only in drop-in mode (this object named in `LD_PRELOAD`): a program linked with `-lvmsrs`
//! chose class 2 explicitly (`vmsrs_printf` marks and checks), and its plain printf stays
//! plain.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use vmsrs_runtime::interposed;

/// This object was preloaded (see the module comment); set once at load.
static PRELOADED: AtomicBool = AtomicBool::new(false);

extern "C" {
    fn vmsrs_i_resolve();
    fn vmsrs_i_printf();
    fn vmsrs_i_fprintf();
    fn vmsrs_i_vprintf();
    fn vmsrs_i_vfprintf();
    fn vmsrs_i_dprintf();
    fn vmsrs_i_vdprintf();
    fn vmsrs_i_puts();
    fn vmsrs_i_fputs();
    fn vmsrs_i_putchar();
    fn vmsrs_i_fwrite();
    fn vmsrs_i_fputc();
    fn vmsrs_i___printf_chk();
    fn vmsrs_i___fprintf_chk();
    fn vmsrs_i___vprintf_chk();
    fn vmsrs_i___vfprintf_chk();
    fn vmsrs_i___dprintf_chk();
    fn vmsrs_i___vdprintf_chk();
}

macro_rules! trampoline {
    ($($name:ident => $target:ident),* $(,)?) => {$(
        /// The libc function of this name, interposed (see `preload/output.c`).
        ///
        /// # Safety
        /// Called from C with the signature glibc declares for this name.
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            naked_asm!("jmp {t}", t = sym $target)
        }
    )*};
}

trampoline! {
    printf => vmsrs_i_printf,
    fprintf => vmsrs_i_fprintf,
    vprintf => vmsrs_i_vprintf,
    vfprintf => vmsrs_i_vfprintf,
    dprintf => vmsrs_i_dprintf,
    vdprintf => vmsrs_i_vdprintf,
    puts => vmsrs_i_puts,
    fputs => vmsrs_i_fputs,
    putchar => vmsrs_i_putchar,
    fwrite => vmsrs_i_fwrite,
    fputc => vmsrs_i_fputc,
    __printf_chk => vmsrs_i___printf_chk,
    __fprintf_chk => vmsrs_i___fprintf_chk,
    __vprintf_chk => vmsrs_i___vprintf_chk,
    __vfprintf_chk => vmsrs_i___vfprintf_chk,
    __dprintf_chk => vmsrs_i___dprintf_chk,
    __vdprintf_chk => vmsrs_i___vdprintf_chk,
}

/// Internal to output.c: 0 when this thread runs no user (the plain call), 1 when the call's
/// pointers must be checked first, 2 when its output must also be marked (the user is
/// suppressed).
#[no_mangle]
pub extern "C" fn vmsrs__output_mode() -> i32 {
    if !PRELOADED.load(Relaxed) {
        return 0;
    }
    interposed::output_mode()
}

/// Internal to output.c: count one marked output call.
#[no_mangle]
pub extern "C" fn vmsrs__output_marked() {
    interposed::count_marked_output();
}

#[used]
#[link_section = ".init_array"]
static RESOLVE: extern "C" fn() = resolve;

/// At load: find glibc's printf family once (a call before this resolves on first use).
extern "C" fn resolve() {
    // SAFETY: a plain C function taking no arguments.
    unsafe { vmsrs_i_resolve() };
    // The same answer as the runtime's, however the constructors are ordered.
    PRELOADED.store(vmsrs_runtime::dropin::preloaded(), Relaxed);
}
