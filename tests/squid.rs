//! Squid 5 without libvmsrs: one request that faults in an eCAP adapter
//! (`c-examples/servers/ecap_vmsrs_fault.cpp`, a REQMOD service on every request) kills the
//! process that serves it, and with it every request it had in flight. The drop-in
//! counterpart, where squid survives, is tests/squid_dropin.rs.
//!
//! What squid does (5.7): its SIGSEGV handler `death()` logs "FATAL: Received Segment
//! Violation...dying." and aborts (SIGABRT); it has no SIGILL handler, so a trap kills it by
//! SIGILL. With `-N` that process is squid; with `--foreground` it is the worker kid, and the
//! master starts a new kid (squid's own recovery: a restart, with the requests lost).

mod common;
mod servers;

use servers::{pid_alive, Squid, SquidMode};
use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::{Duration, Instant};

/// Wait (≤ 10 s) until the origin sleeps on `n` `/slow` requests (they are in flight in squid).
fn wait_slow(s: &Squid, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.origin.slow_inflight() != n {
        assert!(Instant::now() < deadline, "{n} /slow requests never reached the origin");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Send `path` while 3 `/slow` requests are in flight; every one of them must fail.
fn fault_with_requests_in_flight(s: &Squid, path: &str) {
    assert_eq!(s.get("/ok").map(|r| (r.status, r.body)), Ok((200, "origin /ok".to_string())));
    thread::scope(|sc| {
        let slow: Vec<_> = (0..3).map(|_| sc.spawn(|| s.get("/slow?ms=3000"))).collect();
        wait_slow(s, 3);
        let fault = s.get(path);
        assert!(fault.is_err(), "GET {path} gets no response: {fault:?}");
        for h in slow {
            let r = h.join().expect("slow request thread");
            assert!(r.is_err(), "a request in flight in the dead squid must fail: {r:?}");
        }
    });
}

fn faulting_request_kills_squid(path: &str, signal: i32) -> String {
    let mut s = Squid::start(None);
    fault_with_requests_in_flight(&s, path);
    let st = s.server.wait_exit(Duration::from_secs(10)).expect("squid still running 10 s after the fault");
    assert_eq!(st.signal(), Some(signal), "squid ended with {st}\n{}", s.cache_log());
    assert!(s.get("/ok").is_err(), "nothing serves any more");
    s.cache_log()
}

#[test]
fn without_libvmsrs_a_faulting_request_kills_squid_and_in_flight_requests_fail() {
    let log = faulting_request_kills_squid("/fault", libc::SIGABRT);
    assert!(log.contains("FATAL: Received Segment Violation...dying."), "cache.log:\n{log}");
}

#[test]
fn without_libvmsrs_a_trapping_request_kills_squid_by_sigill() {
    faulting_request_kills_squid("/trap", libc::SIGILL);
}

/// `--foreground`: the kid dies with its requests; the master lives and starts another kid.
#[test]
fn without_libvmsrs_foreground_a_faulting_request_kills_the_kid_and_the_master_starts_another() {
    let mut s = Squid::start_mode(None, SquidMode::MasterKid);
    let kid = s.worker().expect("one kid");
    fault_with_requests_in_flight(&s, "/fault");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(kid) {
        assert!(Instant::now() < deadline, "kid {kid} still alive 10 s after the fault");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(s.server.alive(), "the master survives its kid");
    let deadline = Instant::now() + Duration::from_secs(30);
    let new = loop {
        if let (Some(k), Ok(r)) = (s.worker(), s.get_timeout("/ok", Duration::from_secs(2))) {
            if k != kid && r.status == 200 {
                break k;
            }
        }
        assert!(Instant::now() < deadline, "no new kid serves 30 s after the fault\n{}", s.cache_log());
        thread::sleep(Duration::from_millis(100));
    };
    // The master reports the kid's end to syslog only; the kid's own last words are in cache.log.
    let log = s.cache_log();
    assert!(log.contains("FATAL: Received Segment Violation...dying."), "cache.log:\n{log}");
    eprintln!("kid {kid} died; the master started kid {new}");
}
