//! Squid 5 with libvmsrs preloaded (drop-in mode):
//! `LD_PRELOAD=libvmsrs.so VMSRS_ENV_FILE=preload/squid.env squid -N`, unmodified. A request
//! that faults in an eCAP adapter (`c-examples/servers/ecap_vmsrs_fault.cpp`) is contained in
//! its transaction (one user per `Adaptation::Ecap::XactionRep::start()` call): squid, the
//! same process, keeps serving the requests it had in flight and every later one.
//! tests/squid.rs is the same squid without libvmsrs, where it dies with its requests.
//!
//! What the faulting request itself gets (`VMSRS_POLICY=unwind`, the user call `:throw`):
//! `/fault` (a NULL store) and `/trap` (ud2) alike unwind the adapter to XactionRep::start's
//! return, which throws std::runtime_error into squid's job dialer: squid stops that
//! transaction and answers its client at once with its adaptation error page (500,
//! ERR_ICAP_FAILURE). The request never reaches the origin.

mod common;
mod servers;

use servers::{Squid, SquidMode, TempDir};
use std::thread;
use std::time::{Duration, Instant};

/// Start `squid -N` under libvmsrs with `env_file` plus `extra` variables.
fn start_with(env_file: &str, extra: &[(&str, &str)], mode: SquidMode) -> Squid {
    let lib = servers::libvmsrs();
    let mut env = vec![("VMSRS_ENV_FILE", env_file)];
    env.extend_from_slice(extra);
    Squid::start_mode(Some((&lib, &env)), mode)
}

/// Start `squid -N` under libvmsrs with the shipped preload/squid.env.
fn start() -> Squid {
    let env_file = servers::env_file("squid").display().to_string();
    start_with(&env_file, &[], SquidMode::NoDaemon)
}

/// Wait (≤ 10 s) until the origin sleeps on `n` `/slow` requests (they are in flight in squid).
fn wait_slow(s: &Squid, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.origin.slow_inflight() != n {
        assert!(Instant::now() < deadline, "{n} /slow requests never reached the origin");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The documented outcome of one faulting request (see the module comment): squid's error
/// page for a failed adaptation, at once, and one failed transaction in access.log.
fn assert_fault_outcome(s: &Squid, path: &str) {
    let t = Instant::now();
    let r =
        s.get(path).unwrap_or_else(|e| panic!("GET {path}: no response ({e})\n{}", s.server.log_tail(20)));
    eprintln!("GET {path}: {} in {:?}", r.status, t.elapsed());
    assert_eq!(r.status, 500, "GET {path}: {}\n{}", r.body, s.server.log_tail(20));
    assert!(r.body.contains("ERR_ICAP_FAILURE"), "GET {path}: squid's adaptation error page:\n{}", r.body);
    assert!(!r.body.contains("origin "), "GET {path} never reaches the origin:\n{}", r.body);
    let line = "/500 ";
    let log = s.access_log();
    assert!(
        log.lines().any(|l| l.contains(line) && l.contains(&s.origin_url(path))),
        "no 500 for {path} in access.log:\n{log}"
    );
}

/// squid is the same live process, serving.
fn assert_same_squid(s: &mut Squid, pid: u32, what: &str) {
    assert!(s.server.alive(), "squid died ({what})\n{}", s.server.log_tail(30));
    assert_eq!(s.worker(), Some(pid), "the same squid serves ({what})");
    assert_eq!(s.get("/ok").map(|r| (r.status, r.body)), Ok((200, "origin /ok".to_string())), "{what}");
}

/// The count of libvmsrs reports "contained SIG..." in squid's stderr.
fn contained(s: &Squid, sig: &str) -> usize {
    s.server.log().lines().filter(|l| l.contains(&format!("vmsrs: contained {sig} "))).count()
}

fn faulting_request_is_contained(path: &str, sig: &str) {
    let mut s = start();
    let pid = s.pid();
    thread::scope(|sc| {
        let slow: Vec<_> = (0..3).map(|_| sc.spawn(|| s.get("/slow?ms=3000"))).collect();
        wait_slow(&s, 3);
        assert_fault_outcome(&s, path);
        for h in slow {
            assert_eq!(
                h.join().expect("slow request thread").map(|r| (r.status, r.body)),
                Ok((200, "origin /slow?ms=3000".to_string())),
                "a request in flight during the fault is served"
            );
        }
    });
    assert_eq!(contained(&s, sig), 1, "one contained {sig}:\n{}", s.server.log());
    assert_same_squid(&mut s, pid, "after the fault");
    for i in 0..20 {
        let p = format!("/later/{i}");
        assert_eq!(s.get(&p).map(|r| (r.status, r.body)), Ok((200, format!("origin {p}"))), "later requests");
    }
    assert_same_squid(&mut s, pid, "after later requests");
}

#[test]
fn with_libvmsrs_a_faulting_request_fails_with_500_and_squid_keeps_serving() {
    faulting_request_is_contained("/fault", "SIGSEGV");
}

#[test]
fn with_libvmsrs_a_trapping_request_fails_with_500_and_squid_keeps_serving() {
    faulting_request_is_contained("/trap", "SIGILL");
}

/// 50 faulting requests (every 10th a trap) in one squid's life: each contained, squid (same
/// pid) serves throughout, its RSS stays bounded (after 10 and after 50 faults).
#[test]
fn with_libvmsrs_50_faults_in_one_life_leave_squid_serving() {
    let mut s = start();
    let pid = s.pid();
    let mut after10 = 0;
    for i in 1..=50u32 {
        let path = if i % 10 == 0 { format!("/trap/{i}") } else { format!("/fault/{i}") };
        assert_fault_outcome(&s, &path);
        if i % 10 == 5 {
            assert_same_squid(&mut s, pid, &format!("after {i} faults"));
        }
        if i == 10 {
            after10 = servers::rss_and_threads(pid).0;
        }
    }
    assert_same_squid(&mut s, pid, "after 50 faults");
    assert_eq!((contained(&s, "SIGSEGV"), contained(&s, "SIGILL")), (45, 5), "{}", s.server.log_tail(40));
    let after50 = servers::rss_and_threads(pid).0;
    eprintln!("squid RSS after 10 faults: {after10} KiB, after 50: {after50} KiB");
    assert!(after50 <= after10 + 16 * 1024, "RSS grew from {after10} to {after50} KiB over 40 faults");
}

/// Why squid.env names a rescue point: with oblivious and implicit users only, squid's one
/// thread is one implicit user; a second fault after the 2 s time budget must unwind, finds
/// no recovery point on the main thread, and goes to squid's own handler: squid dies.
#[test]
fn with_libvmsrs_but_no_rescue_point_a_fault_after_the_time_budget_kills_squid() {
    let dir = TempDir::new("squid-env");
    let env_file = dir.path().join("implicit.env");
    std::fs::write(&env_file, "VMSRS_POLICY=oblivious\nVMSRS_CHILDREN=drop\n").expect("write env file");
    let mut s = start_with(&env_file.display().to_string(), &[], SquidMode::NoDaemon);
    assert_eq!(
        s.get("/fault/1").map(|r| (r.status, r.body)),
        Ok((200, "origin /fault/1".to_string())),
        "oblivious skips the first bad store and the adapter answers"
    );
    assert!(s.server.alive(), "the first fault is skipped");
    thread::sleep(Duration::from_millis(2500));
    assert!(s.get("/fault/2").is_err(), "the second fault kills squid");
    assert!(s.server.wait_exit(Duration::from_secs(10)).is_some(), "squid still running");
    let log = s.server.log();
    assert!(log.contains("on the main thread, which has no recovery point"), "{log}");
}

/// The deployment squid.env rules out: `--foreground` started as root. The master runs with
/// real uid proxy and effective uid root, so the kid it execs starts in the loader's secure
/// mode, which ignores an LD_PRELOAD path with a `/`: the kid has no libvmsrs and dies on the
/// fault (even with VMSRS_CHILDREN=keep), and the master starts another.
#[test]
fn with_libvmsrs_foreground_the_kid_runs_without_libvmsrs() {
    let env_file = servers::env_file("squid").display().to_string();
    let s = start_with(&env_file, &[("VMSRS_CHILDREN", "keep")], SquidMode::MasterKid);
    let kid = s.worker().expect("one kid");
    let maps = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    assert!(maps(s.pid()).contains("libvmsrs.so"), "the master has libvmsrs");
    assert!(!maps(kid).contains("libvmsrs.so"), "the kid has no libvmsrs");
    let environ = std::fs::read(format!("/proc/{kid}/environ")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&environ).contains("LD_PRELOAD="),
        "the kid was given LD_PRELOAD, and the loader ignored it"
    );
    assert!(s.get("/fault").is_err(), "the kid dies on the fault");
    let deadline = Instant::now() + Duration::from_secs(10);
    while servers::pid_alive(kid) {
        assert!(Instant::now() < deadline, "kid {kid} still alive 10 s after the fault");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The deployment that keeps the kid: `--foreground` started as squid's own user (never
/// root), with VMSRS_CHILDREN=keep. The kid execs without secure mode and loads libvmsrs; a
/// faulting request is contained in the same kid, which keeps serving. (The kid's stderr,
/// where libvmsrs reports, is squid's /dev/null.)
#[test]
fn with_libvmsrs_foreground_as_the_squid_user_with_children_kept_the_kid_survives() {
    let env_file = servers::env_file("squid").display().to_string();
    let mut s = start_with(&env_file, &[("VMSRS_CHILDREN", "keep")], SquidMode::MasterKidAsUser);
    let kid = s.worker().expect("one kid");
    let maps = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    assert!(maps(kid).contains("libvmsrs.so"), "the kid has libvmsrs");
    let stderr = std::fs::read_link(format!("/proc/{kid}/fd/2")).map(|p| p.display().to_string());
    eprintln!("the kid's stderr: {stderr:?}");
    thread::scope(|sc| {
        let slow = sc.spawn(|| s.get("/slow?ms=2000"));
        wait_slow(&s, 1);
        assert_fault_outcome(&s, "/fault");
        assert_eq!(slow.join().expect("slow").map(|r| r.status), Ok(200), "in flight: served");
    });
    assert_fault_outcome(&s, "/trap");
    assert_same_squid(&mut s, kid, "after /fault and /trap");
}
