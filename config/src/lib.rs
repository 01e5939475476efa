//! `vmsrs-config`: every setting of libvmsrs, and how the layers combine.
//!
//! [`envfile`] reads the environment file (a strict subset of systemd `EnvironmentFile=`
//! syntax) and [`config`] layers built-in defaults, that file, the `VMSRS_*` process
//! environment and `VMSRS_OPTIONS` into one validated [`config::Config`]. Both the linked mode
//! (`vmsrs_init_profile`) and the drop-in mode (the constructor of `libvmsrs.so`, in
//! preload/) read it through the runtime.
//!
//! Plain Rust, no dependency on the rest of libvmsrs. It allocates through the runtime's
//! global allocator (which never recurses into an interposed `malloc`) and runs once, at
//! start-up, outside any signal handler.

pub mod config;
pub mod envfile;
