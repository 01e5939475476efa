//! Apache httpd (event MPM) without libvmsrs: one request that faults in a module
//! (`c-examples/servers/mod_vmsrs_fault.c`) kills the child serving it, and with it every
//! request that child had in flight. httpd's parent then forks a new child (the restart that
//! VMSRS's forward recovery is compared against). The drop-in counterpart, where the child
//! survives, is tests/apache_dropin.rs.
//!
//! What httpd does (2.4): the child inherits the parent's `sig_coredump` handler, which
//! restores SIG_DFL and re-raises; the parent logs
//! "AH00052: child pid N exit signal Segmentation fault (11)" and forks a replacement.

mod common;
mod servers;

use servers::{pid_alive, Apache};
use std::thread;
use std::time::{Duration, Instant};

fn faulting_request_kills_the_child(path: &str, signal_text: &str) {
    let a = Apache::start(None);
    let child = a.child(Duration::from_secs(10));
    assert_eq!(a.get("/ok").map(|r| (r.status, r.body)), Ok((200, "ok".to_string())));

    thread::scope(|s| {
        let slow: Vec<_> = (0..5).map(|_| s.spawn(|| a.get("/slow?ms=5000"))).collect();
        a.wait_inflight(5);
        let fault = a.get(path);
        assert!(fault.is_err(), "the faulting request gets no response: {fault:?}");
        for h in slow {
            let r = h.join().expect("slow request thread");
            assert!(r.is_err(), "an in-flight request of the dead child must fail: {r:?}");
        }
    });

    // The child is gone, killed by the signal (the parent says so), and the parent lives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(child) {
        assert!(Instant::now() < deadline, "child {child} still alive 10 s after the fault");
        thread::sleep(Duration::from_millis(20));
    }
    let line = format!("AH00052: child pid {child} exit signal {signal_text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.error_log().contains(&line) {
        assert!(Instant::now() < deadline, "no \"{line}\" in the error log:\n{}", a.error_log());
        thread::sleep(Duration::from_millis(20));
    }
    let mut a = a;
    assert!(a.server.alive(), "the parent survives its child");
    // The parent's replacement child serves again (httpd's own recovery: a restart).
    let new = a.child(Duration::from_secs(10));
    assert_ne!(new, child, "a new child");
    assert_eq!(a.get("/ok").map(|r| r.status), Ok(200));
}

#[test]
fn without_libvmsrs_a_faulting_request_kills_the_child_and_in_flight_requests_fail() {
    faulting_request_kills_the_child("/fault", "Segmentation fault (11)");
}

#[test]
fn without_libvmsrs_a_trapping_request_kills_the_child_and_in_flight_requests_fail() {
    faulting_request_kills_the_child("/trap", "Illegal instruction (4)");
}
