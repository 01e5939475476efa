//! `vmsrs-hv`: the hypervisor component of VMSRS (SHI Yi et al., 2015).
//!
//! The paper keeps recovery data and its metadata inside an SVM hypervisor, out of the faulty
//! program's reach, and reaches it by `VMMCALL`. This crate is that component:
//!
//! | paper                         | here                                   |
//! |-------------------------------|----------------------------------------|
//! | `svm_exit_handler`            | [`svm_exit_handler`] ([`exit`])        |
//! | `vm_frame`, `genrl_regs`      | [`VmFrame`], [`genrl_regs`] ([`abi`])  |
//! | recovery data + metadata      | [`store`], [`history`], [`ranges`]     |
//! | `Init_profile`, `profile`     | [`Hv::profile`] ([`ranges`])           |
//! | crash suppression module      | [`Hv::crash_suppression`]              |
//! | demand-driven restoration     | restore-on-load in [`store`]           |
//! | GC at the faulty user's end   | [`Hv::user_end`] (G7)                  |
//!
//! Hosts: [`host::inproc`] (default: a direct call; the store lives in guarded mappings with
//! keyed checksums).

pub mod abi;
pub mod arena;
pub mod exit;
pub mod exposure;
pub mod grace;
pub mod grow;
pub mod history;
pub mod host;
pub mod oracle;
pub mod ranges;
pub mod store;
pub mod sync;
pub mod uaccess;
pub mod users;

pub use abi::{genrl_regs, HvResult, Hypercall, VmFrame, VmsrsError, READER_NEEDED};
pub use exit::svm_exit_handler;
pub use exposure::Exposure;
pub use store::{EndKind, Hv, HvBox, HvConfig, HvStats, Reading};
pub use users::{UserId, WriterState};
