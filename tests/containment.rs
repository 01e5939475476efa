//! Fault containment policies (DESIGN §5) driven through `c-examples/containment.c`: the
//! fault budget, repeats at one pc, threads without a recovery point, chaining to the
//! program's own handler or the default action, implicit users, SIGFPE.

mod common;

use common::{c_example, run, Build};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn case(name: &str, env: &[(&str, &str)]) -> common::RunOutput {
    let exe = c_example("containment", Build::Libvmsrs);
    run(&exe, &[name], env, TIMEOUT)
}

fn passes(name: &str, env: &[(&str, &str)]) {
    let out = case(name, env);
    out.assert_success();
    assert!(out.has_line(&format!("containment {name}: PASS")), "{}", out.describe());
}

#[test]
fn a_fault_repeating_at_one_pc_escalates_to_unwind_after_the_limit() {
    passes("same-pc", &[("VMSRS_SAME_PC_LIMIT", "3")]);
}

#[test]
fn skipped_faults_beyond_the_budget_escalate_to_unwind() {
    passes("budget", &[("VMSRS_FAULT_BUDGET", "5")]);
}

#[test]
fn a_user_without_recovery_point_ends_its_thread_and_the_process_goes_on() {
    passes("no-recovery", &[("VMSRS_POLICY", "unwind")]);
}

#[test]
fn faults_libvmsrs_does_not_own_go_to_the_programs_own_handler() {
    passes("chain", &[("VMSRS_CONTAIN_IMPLICIT", "0")]);
}

#[test]
fn faults_libvmsrs_does_not_own_take_the_default_action_without_a_program_handler() {
    let out = case("chain-default", &[("VMSRS_CONTAIN_IMPLICIT", "0")]);
    assert_eq!(out.signal(), Some(libc::SIGSEGV), "{}", out.describe());
}

#[test]
fn a_thread_that_never_began_a_user_is_contained_as_its_implicit_user() {
    passes("implicit", &[]);
}

#[test]
fn integer_division_by_zero_in_a_user_is_contained() {
    passes("sigfpe", &[("VMSRS_POLICY", "oblivious")]);
}

#[test]
fn abort_in_a_user_is_contained_by_unwinding_when_sigabrt_is_configured() {
    passes("abort", &[("VMSRS_SIGNALS", "SEGV,BUS,FPE,ILL,ABRT"), ("VMSRS_POLICY", "oblivious")]);
}
