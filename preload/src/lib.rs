//! `libvmsrs.so`: the shared object, built on top of the runtime (crate `vmsrs-runtime`,
//! src/), plus the drop-in layer that an unmodified server meets through `LD_PRELOAD`.
//!
//! - [`interpose`]: every libc symbol libvmsrs interposes (`sigaction`, `signal`, ...), each a
//!   thin forwarder into the runtime.
//! - The constructor below: runs when the object is loaded, before `main` when it is linked
//!   or preloaded.
//!
//! Dependencies point one way: this crate calls the runtime, the runtime never names it.
//! Rust programs that link the runtime directly (its test binaries) get neither the
//! interposed symbols nor the constructor.

pub mod interpose;
pub mod memory;
pub mod output;

// Every C entry point (`vmsrs_*`) lives in the runtime; linking it here exports them.
pub use vmsrs_runtime;

/// Runs when libvmsrs.so is loaded (before `main` when it is linked or preloaded, so on one
/// thread): builds everything the fault handler needs, so it never allocates or waits on a
/// table another thread is building, registers the fork hook, and, when the object was
/// preloaded into an unmodified program, starts libvmsrs from its configuration.
#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    vmsrs_runtime::dropin::start();
}
