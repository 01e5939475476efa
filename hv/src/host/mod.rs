//! Hosts of the hypervisor component. Each one turns its kind of exit into a [`VmFrame`]
//! and calls [`svm_exit_handler`](crate::svm_exit_handler).
//!
//! [`VmFrame`]: crate::VmFrame

pub mod inproc;
