//! Locks held by an unwound user are released (DESIGN §5, `src/locks.rs`): the interposed
//! pthread mutex/rwlock/spinlock functions keep each thread's record of the locks it holds,
//! and where an unwound user resumes (its `VMSRS_USER_BEGIN()`, a rescue point, or its ended
//! thread) exactly the locks it took and still holds are unlocked and reported.
//!
//! `c-examples/locks.c` (linked mode) and `c-examples/locks_dropin.c` (an unmodified program
//! under `LD_PRELOAD`, the user being a rescue point): in each case another thread waits for
//! the lock the faulting user holds and must get it; without the release it times out and
//! the program prints FAIL. Each case also checks the report: one `released KIND ADDRESS held
//! by ...` line per lock the user held, and none for any other lock.

mod common;

use common::{c_example, env_refs, preload, run, vmsrs_report_lines, Build, RunOutput};
use std::collections::HashMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The `lock NAME ADDRESS` lines of the program's stdout.
fn addresses(out: &RunOutput) -> HashMap<String, String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("lock "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect()
}

/// Assert that the run passed and that the report released exactly `expected` (kind, lock
/// name) pairs (as a multiset), each "held by `whose`", and reported nothing else about locks.
fn check(out: &RunOutput, pass: &str, expected: &[(&str, &str)], whose: &str) {
    out.assert_success();
    assert!(out.has_line(pass), "no `{pass}` line:\n{}", out.describe());
    let addr = addresses(out);
    let mut want: Vec<String> = expected
        .iter()
        .map(|(kind, name)| {
            let a = addr.get(*name).unwrap_or_else(|| panic!("no address for {name}:\n{}", out.describe()));
            format!("released {kind} {a} held by {whose}")
        })
        .collect();
    let mut got: Vec<String> = vmsrs_report_lines(&out.stderr, out.pid)
        .into_iter()
        .filter(|l| l.contains("released") || l.contains("release "))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "released locks in the report\n{}", out.describe());
}

fn linked(case: &str) -> RunOutput {
    let exe = c_example("locks", Build::Libvmsrs);
    run(&exe, &[case], &[("VMSRS_POLICY", "unwind")], TIMEOUT)
}

fn dropin(case: &str) -> RunOutput {
    let exe = c_example("locks_dropin", Build::Unmodified);
    let env = preload(&[("VMSRS_POLICY", "unwind"), ("VMSRS_USER_CALL", "handle_request:-1")]);
    run(&exe, &[case], &env_refs(&env), TIMEOUT)
}

const UNWOUND: &str = "the unwound user";

#[test]
fn a_mutex_held_by_an_unwound_user_is_released_for_the_thread_waiting_on_it() {
    check(&linked("mutex"), "locks mutex: PASS", &[("pthread_mutex", "user")], UNWOUND);
}

#[test]
fn an_rwlock_write_lock_held_by_an_unwound_user_is_released() {
    check(&linked("rwlock"), "locks rwlock: PASS", &[("pthread_rwlock (write)", "user")], UNWOUND);
}

#[test]
fn an_rwlock_read_lock_held_by_an_unwound_user_is_released_for_a_writer() {
    check(&linked("rwlock-read"), "locks rwlock-read: PASS", &[("pthread_rwlock (read)", "user")], UNWOUND);
}

#[test]
fn a_spinlock_held_by_an_unwound_user_is_released() {
    check(&linked("spin"), "locks spin: PASS", &[("pthread_spinlock", "user")], UNWOUND);
}

#[test]
fn a_lock_taken_before_the_recovery_point_stays_held_by_its_thread() {
    check(&linked("before"), "locks before: PASS", &[("pthread_mutex", "inner")], UNWOUND);
}

#[test]
fn recursive_locks_failed_attempts_out_of_order_unlocks_and_overflow_keep_the_record_exact() {
    let expected = [
        ("pthread_mutex", "rec"),
        ("pthread_mutex", "rec"),
        ("pthread_mutex", "b"),
        ("pthread_mutex", "e"),
        ("pthread_rwlock (read)", "rw2"),
        ("pthread_rwlock (read)", "rw2"),
    ];
    check(&linked("nested"), "locks nested: PASS", &expected, UNWOUND);
}

#[test]
fn a_thread_ended_for_lack_of_a_recovery_point_releases_its_locks() {
    check(&linked("ended"), "locks ended: PASS", &[("pthread_mutex", "user")], "the ended thread");
}

#[test]
fn dropin_a_mutex_held_by_an_unwound_rescue_call_is_released() {
    check(&dropin("mutex"), "locks_dropin mutex: PASS", &[("pthread_mutex", "user")], UNWOUND);
}

#[test]
fn dropin_an_rwlock_held_by_an_unwound_rescue_call_is_released() {
    check(&dropin("rwlock"), "locks_dropin rwlock: PASS", &[("pthread_rwlock (write)", "user")], UNWOUND);
}

#[test]
fn dropin_a_spinlock_held_by_an_unwound_rescue_call_is_released() {
    check(&dropin("spin"), "locks_dropin spin: PASS", &[("pthread_spinlock", "user")], UNWOUND);
}

#[test]
fn dropin_a_lock_taken_before_the_rescue_call_stays_held_by_its_thread() {
    check(&dropin("before"), "locks_dropin before: PASS", &[("pthread_mutex", "user")], UNWOUND);
}

#[test]
fn the_json_fault_event_lists_the_locks_the_unwind_releases() {
    let dir = std::env::temp_dir().join(format!("vmsrs-locks-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("events");
    let exe = c_example("locks_dropin", Build::Unmodified);
    let env = preload(&[
        ("VMSRS_POLICY", "unwind"),
        ("VMSRS_USER_CALL", "handle_request:-1"),
        ("VMSRS_LOG_PATH", prefix.to_str().unwrap()),
    ]);
    let out = run(&exe, &["mutex"], &env_refs(&env), TIMEOUT);
    out.assert_success();
    let addr = addresses(&out);
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("events."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap_or_else(|| panic!("no JSON log in {}:\n{}", dir.display(), out.describe()));
    std::fs::remove_dir_all(&dir).ok();
    let fault: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .find(|e| e["event"] == "fault")
        .unwrap_or_else(|| panic!("no fault event in\n{log}"));
    let released = fault["locks_released"].as_array().expect("an array");
    let want = addr.values().next().expect("the program prints its lock's address");
    assert!(
        released.iter().any(|l| l["kind"] == "pthread_mutex" && l["address"].as_str() == Some(want.as_str())),
        "{fault}\n{}",
        out.describe()
    );
}
