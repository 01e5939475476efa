//! Regression tests for the hostile audit of the recovery core (c-examples/audit.c): each
//! case once killed the process, hung it, or silently lost a store. Every case runs under a
//! timeout, so a hang fails; the cases that depend on the policy run under both.

mod common;

use common::{c_example, run, Build, RunOutput};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn case(name: &str, env: &[(&str, &str)]) -> RunOutput {
    let exe = c_example("audit", Build::Libvmsrs);
    run(&exe, &[name], env, TIMEOUT)
}

fn passes(name: &str, env: &[(&str, &str)]) -> RunOutput {
    let out = case(name, env);
    out.assert_success();
    assert!(out.has_line(&format!("audit {name}: PASS")), "{}", out.describe());
    out
}

fn under_both_policies(name: &str) {
    for policy in ["oblivious", "unwind"] {
        passes(name, &[("VMSRS_POLICY", policy)]);
    }
}

#[test]
fn an_unreadable_store_source_is_the_users_contained_fault_not_a_crash() {
    under_both_policies("store-bad-src");
}

#[test]
fn an_unwritable_load_destination_is_the_users_contained_fault_while_another_user_is_suppressed() {
    under_both_policies("load-bad-dst");
}

#[test]
fn a_signal_handler_reentering_monitored_stores_never_deadlocks() {
    passes("signal-reentry", &[]);
}

#[test]
fn the_first_contained_fault_inside_malloc_never_allocates_in_the_handler() {
    passes("fault-in-malloc", &[]);
}

#[test]
fn a_fork_while_other_threads_take_their_first_faults_never_leaves_the_child_stuck() {
    passes("fork-first-fault", &[]);
}

#[test]
fn metadata_is_paid_for_written_granules_and_given_back_at_unprofile() {
    passes("unprofile-memory", &[]);
}

#[test]
fn stores_of_a_thread_without_a_user_are_never_dropped_when_the_user_table_is_full() {
    let out = passes("table-full", &[]);
    assert!(
        out.stderr.contains("user table is full"),
        "the full table must be reported once:\n{}",
        out.describe()
    );
}

#[test]
fn a_wild_printf_string_is_refused_before_any_stream_lock_is_taken() {
    under_both_policies("printf-wild");
}

#[test]
fn sigsegv_sent_to_a_thread_inside_monitored_stores_is_contained() {
    under_both_policies("kill-in-store");
}

#[test]
fn sigsegv_sent_without_pause_at_threads_being_ended_never_ends_one_twice() {
    passes("kill-while-ending", &[("VMSRS_POLICY", "unwind")]);
}

#[test]
fn a_program_handler_installed_after_init_is_chained_not_put_first() {
    passes("handler-after-init", &[("VMSRS_CONTAIN_IMPLICIT", "0")]);
}

#[test]
fn a_fault_on_the_main_thread_without_recovery_point_ends_the_process_with_the_signal() {
    let out = case("main-no-recovery", &[("VMSRS_POLICY", "unwind")]);
    assert_eq!(out.signal(), Some(libc::SIGSEGV), "{}", out.describe());
    assert!(out.stderr.contains("main thread"), "the report must say why:\n{}", out.describe());
    assert!(!out.stdout.contains("went on"), "{}", out.describe());
}
