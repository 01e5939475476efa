//! `vmsrs-preload`: the drop-in layer of libvmsrs.
//!
//! libvmsrs can be reached two ways: *linked* (a server calls `vmsrs_init_profile` and the
//! monitored-access API) and *drop-in* (`LD_PRELOAD=libvmsrs.so` on an unmodified binary). This
//! crate holds what the drop-in path needs that has nothing to do with the recovery store:
//!
//! - today, the configuration: [`envfile`] reads the environment file (a strict subset of
//!   systemd `EnvironmentFile=` syntax) and [`config`] layers built-in defaults, that file, the
//!   `VMSRS_*` process environment and `VMSRS_OPTIONS` into one validated [`config::Config`];
//! - later, the interposed libc symbols (`malloc` family, `mem*`, `printf` family, `sigaction`,
//!   `pthread_create`).
//!
//! Dependency direction: the runtime crate `vmsrs` depends on this crate, never the reverse, so
//! nothing here may name a `vmsrs` item. The configuration layer is plain Rust (it allocates
//! through the runtime's global allocator, which never recurses into the interposed `malloc`)
//! and runs once, at start-up, outside any signal handler.

pub mod config;
pub mod envfile;
