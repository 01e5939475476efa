//! libvmsrs: forward self-recovery for multi-user servers, after VMSRS (SHI Yi et al.,
//! *Multi-User Server Program Self-Recovery System*, Journal of Software, 2015).
//!
//! When one user's thread hits a memory error, that user is contained in suppression mode,
//! every other user keeps running, and the values the faulty user wrote into monitored shared
//! memory are restored on demand, from recovery data held by the hypervisor component
//! (crate `vmsrs-hv`), when a normal user next touches them.
//!
//! Where the paper's modules are:
//!
//! | paper                                    | module                              |
//! |------------------------------------------|-------------------------------------|
//! | guest function library, class 1 (access) | [`access`]                         |
//! | class 2 (output)                          | [`output`] (+ `output.c`)          |
//! | class 3 (memory)                          | [`memory`]                         |
//! | class 4 (pointers)                        | [`pointer`]                        |
//! | class 5 (`Init_profile`, `profile`, hv)   | [`profile`], [`hypervisor`]        |
//! | crash suppression module                  | [`fault`]                          |
//! | users (sessions of work)                  | [`user`], [`thread`]               |
//! | demand restoration, GC, recovery data     | `vmsrs_hv::store`                  |
//!
//! The C interface is `include/vmsrs.h`, generated from the `#[no_mangle]` items here.

#[global_allocator]
static ALLOC: alloc::LibcAlloc = alloc::LibcAlloc;

/// What `libvmsrs.so`'s constructor runs (preload/): resolve the real lock functions
/// ([`locks::resolve_all`]), build everything the fault handler needs, so the handler never
/// allocates or waits on a table another thread is building (`fault::prepare`), and register
/// the fork hooks ([`fork`]). Idempotent.
pub fn on_load() {
    locks::resolve_all();
    watch::resolve_real();
    fault::prepare();
    static ONCE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if ONCE.swap(true, core::sync::atomic::Ordering::AcqRel) {
        return;
    }
    // SAFETY: registering plain extern "C" functions as fork hooks (ECOSYSTEM pitfall 7).
    unsafe { libc::pthread_atfork(Some(fork::prepare), Some(fork::parent), Some(fork::child)) };
}

pub mod access;
mod alloc;
pub mod dropin;
pub mod error;
pub mod fault;
mod ffi;
pub mod fork;
pub mod hypervisor;
pub mod interposed;
pub mod locks;
pub mod memory;
pub mod output;
pub mod pointer;
pub mod profile;
pub mod reporter;
pub mod rescue;
pub mod runtime;
pub mod symbols;
pub mod thread;
pub mod user;
pub mod watch;
