//! Apache httpd (event MPM) with libvmsrs preloaded (drop-in mode):
//! `LD_PRELOAD=libvmsrs.so VMSRS_ENV_FILE=preload/apache2.env apache2`, unmodified. A request
//! that faults in a module (`c-examples/servers/mod_vmsrs_fault.c`) is contained: it gets a 500
//! or a closed connection, the child that served it lives on (same pid), and the requests it
//! had in flight, and every later one, are served. tests/apache.rs is the same server without
//! libvmsrs, where the child dies with its requests.

mod common;
mod servers;

use servers::{Apache, Response};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Start httpd under libvmsrs with the shipped env file plus `extra` variables.
fn start(extra: &[(&str, &str)]) -> Apache {
    let lib = servers::libvmsrs();
    let env_file = servers::env_file("apache2").display().to_string();
    let mut env = vec![("VMSRS_ENV_FILE", env_file.as_str())];
    env.extend_from_slice(extra);
    Apache::start(Some((&lib, &env)))
}

/// The faulting request gets a 500, or its connection is closed without a response; never
/// a success.
fn assert_fault_answered(path: &str, r: &Result<Response, String>, a: &Apache) {
    if let Ok(resp) = r {
        assert_eq!(
            resp.status,
            500,
            "GET {path} must get a 500 or a closed connection: {resp:?}\n{}",
            a.error_log()
        );
    }
}

/// The child `child` still serves (a new request is answered by that pid: a replacement child
/// would have another), it is still the only child, and no child died.
fn assert_same_child(a: &mut Apache, child: u32, what: &str) {
    assert!(a.server.alive(), "the parent died ({what})");
    assert_eq!(
        a.get("/pid").map(|r| (r.status, r.body)),
        Ok((200, child.to_string())),
        "a new request must be served by the same child ({what})\n{}",
        a.error_log()
    );
    assert_eq!(a.children(), vec![child], "the child must live on ({what})\n{}", a.error_log());
    let log = a.error_log();
    assert!(!log.contains("AH00052"), "a child died ({what}):\n{log}");
}

fn faulting_request_is_contained(path: &str) {
    let mut a = start(&[]);
    let child = a.child(Duration::from_secs(10));
    thread::scope(|s| {
        let slow: Vec<_> = (0..5).map(|_| s.spawn(|| a.get("/slow?ms=2000"))).collect();
        a.wait_inflight(5);
        let fault = a.get(path);
        eprintln!("GET {path}: {:?}", fault.as_ref().map(|r| r.status));
        assert_fault_answered(path, &fault, &a);
        for h in slow {
            let r = h.join().expect("slow request thread");
            assert_eq!(
                r.map(|r| (r.status, r.body)),
                Ok((200, "slow 2000".to_string())),
                "a request in flight during the fault is served"
            );
        }
    });
    assert_same_child(&mut a, child, "after the fault");
    for _ in 0..20 {
        assert_eq!(
            a.get("/ok").map(|r| (r.status, r.body)),
            Ok((200, "ok".to_string())),
            "later requests are served"
        );
    }
    assert_same_child(&mut a, child, "after later requests");
}

#[test]
fn with_libvmsrs_a_faulting_request_gets_500_and_the_child_keeps_serving() {
    faulting_request_is_contained("/fault");
}

#[test]
fn with_libvmsrs_a_trapping_request_gets_500_and_the_child_keeps_serving() {
    faulting_request_is_contained("/trap");
}

fn ab_field(out: &str, name: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `ab -n 2000 -c 8 /ok` while requests fault (/fault and /trap in turn, from the moment ab's
/// first request is served until it ends) in the same child: ab sees 2000 complete 200
/// responses and no failure; the child lives on.
#[test]
fn with_libvmsrs_ab_sees_no_failed_request_while_requests_fault() {
    let mut a = start(&[]);
    let child = a.child(Duration::from_secs(10));
    let served = |a: &Apache| a.get("/served").ok().and_then(|r| r.body.parse::<u64>().ok()).unwrap_or(0);
    let before = served(&a);
    let done = AtomicBool::new(false);
    let (ab, faults, faults_during_ab) = thread::scope(|s| {
        let bench = s.spawn(|| {
            let out = a.ab(2000, 8, "/ok", Duration::from_secs(60));
            done.store(true, Ordering::SeqCst);
            out
        });
        // Wait (≤ 10 s) until ab is being served.
        let deadline = Instant::now() + Duration::from_secs(10);
        while served(&a) == before && !done.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        let mut faults = Vec::new();
        let mut during = 0;
        for i in 0..200 {
            if done.load(Ordering::SeqCst) {
                break;
            }
            let path = if i % 2 == 0 { "/fault" } else { "/trap" };
            let r = a.get(path);
            if !done.load(Ordering::SeqCst) {
                during += 1;
            }
            faults.push((path, r));
            thread::sleep(Duration::from_millis(5));
        }
        (bench.join().expect("ab thread"), faults, during)
    });
    for (path, r) in &faults {
        assert_fault_answered(path, r, &a);
    }
    let out = String::from_utf8_lossy(&ab.stdout).into_owned();
    let err = String::from_utf8_lossy(&ab.stderr).into_owned();
    assert!(ab.status.success(), "ab failed ({}):\n{out}\n{err}\n{}", ab.status, a.error_log());
    assert_eq!(ab_field(&out, "Complete requests:"), Some(2000), "ab:\n{out}");
    assert_eq!(ab_field(&out, "Failed requests:"), Some(0), "ab:\n{out}");
    assert!(!out.contains("Non-2xx responses"), "ab got non-2xx responses:\n{out}");
    assert!(faults_during_ab >= 3, "only {faults_during_ab} faults while ab ran:\n{out}");
    eprintln!("{faults_during_ab} faults while ab ran");
    assert_same_child(&mut a, child, "after ab");
}

/// 100 faulting requests in one child's life: each contained, the child keeps serving, and
/// its RSS and thread count stay bounded (measured after the first 10 and after all 100).
#[test]
fn with_libvmsrs_100_faults_keep_the_child_serving_with_bounded_memory_and_threads() {
    let mut a = start(&[]);
    let child = a.child(Duration::from_secs(10));
    let mut after10 = (0, 0);
    for i in 1..=100u32 {
        let path = if i % 5 == 0 { "/trap" } else { "/fault" };
        let r = a.get(path);
        assert_fault_answered(path, &r, &a);
        if i == 10 {
            assert_same_child(&mut a, child, "after 10 faults");
            after10 = servers::rss_and_threads(child);
        }
    }
    assert_same_child(&mut a, child, "after 100 faults");
    assert_eq!(a.get("/ok").map(|r| r.status), Ok(200));
    let after100 = servers::rss_and_threads(child);
    eprintln!("httpd child RSS/threads after 10 faults: {after10:?} KiB/threads, after 100: {after100:?}");
    assert!(
        after100.0 <= after10.0 + 32 * 1024,
        "RSS grew from {} to {} KiB over 90 faults",
        after10.0,
        after100.0
    );
    assert!(
        after100.1 <= after10.1 + 2,
        "threads grew from {} to {} over 90 faults (the child has {} workers)",
        after10.1,
        after100.1,
        servers::APACHE_THREADS
    );
}

/// `/lock-fault` takes a pthread mutex and faults while holding it; `/lock` needs that mutex.
/// The fault must not leave the lock held: the next `/lock` is served (≤ 5 s).
#[test]
fn with_libvmsrs_a_lock_held_by_the_faulting_request_does_not_block_later_requests() {
    let mut a = start(&[]);
    let child = a.child(Duration::from_secs(10));
    let r = a.get("/lock-fault");
    assert_fault_answered("/lock-fault", &r, &a);
    assert_eq!(
        a.get_timeout("/lock", Duration::from_secs(5)).map(|r| (r.status, r.body)),
        Ok((200, "locked".to_string())),
        "a later request takes the lock the faulting one held"
    );
    assert_same_child(&mut a, child, "after the lock fault");
}

/// Restoration on demand in a module loaded after start-up: `/fault` and `/trap` increment
/// the module global `vmsrs_fault_counter` (a monitored range, resolved when httpd loads the
/// module and watched in each child), then fault. Every later request of the child reads the
/// value from before those requests: 0.
#[test]
fn with_libvmsrs_a_module_global_written_by_a_faulting_request_is_restored() {
    let mut a = start(&[("VMSRS_RANGES", "symbol:vmsrs_fault_counter"), ("VMSRS_VERBOSE", "1")]);
    let child = a.child(Duration::from_secs(10));
    let global = |a: &Apache| a.get("/global").map(|r| (r.status, r.body));
    assert_eq!(global(&a), Ok((200, "0".to_string())));
    for path in ["/fault", "/trap", "/fault"] {
        let r = a.get(path);
        assert_fault_answered(path, &r, &a);
        assert_eq!(global(&a), Ok((200, "0".to_string())), "after GET {path}\n{}", a.error_log());
    }
    assert_same_child(&mut a, child, "after the restorations");
    let log = a.error_log();
    assert!(log.contains("watching symbol:vmsrs_fault_counter at 0x"), "{log}");
    assert!(log.contains("(its object was loaded)"), "{log}");
    assert!(!log.contains("cannot emulate"), "{log}");
}
