//! Regressions from a hostile review of drop-in monitored ranges (src/watch/). Each program is
//! unmodified (no vmsrs.h) and failed before its fix; the review's own reproducers.

mod common;

use common::{c_example, env_refs, preload, run, Build};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn run_watched(name: &str, args: &[&str], extra: &[(&str, &str)]) -> common::RunOutput {
    let env = preload(extra);
    run(&c_example(name, Build::Unmodified), args, &env_refs(&env), TIMEOUT)
}

const USERS: [(&str, &str); 2] = [("VMSRS_USER_CALL", "request:-1"), ("VMSRS_POLICY", "unwind")];

/// A pthread mutex shares the page of a watched counter; one thread's requests fault while
/// holding it. Pages fenced PROT_NONE at the fault made the futex system call fail with EFAULT
/// and glibc abort ("The futex facility returned an unexpected error code"); now no normal
/// increment is lost and no faulted one survives.
#[test]
fn a_mutex_sharing_a_watched_page_survives_faults_of_its_holders() {
    for _ in 0..3 {
        let out = run_watched(
            "watch_hostile_mutex",
            &[],
            &[USERS[0], USERS[1], ("VMSRS_RANGE_0", "symbol:counter")],
        );
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        assert!(out.stdout.contains(" OK"), "{}", out.describe());
        assert!(!out.stderr.contains("futex facility"), "{}", out.describe());
    }
}

/// A failed compare-exchange by a normal user on a word a faulting user wrote was journaled
/// as the normal user's store of that value, so the faulted user's value survived its
/// withdrawal (and a CAS spinlock it held stayed locked for ever).
#[test]
fn a_failed_compare_exchange_is_a_load_and_the_faulted_value_is_withdrawn() {
    let out = run_watched("watch_hostile_cas", &[], &[USERS[0], USERS[1], ("VMSRS_RANGE_0", "symbol:X")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("X=0 (OK: restored)"), "{}", out.describe());
}

/// A store to a watched page is a SIGSEGV: a program handler installed with every signal in
/// its mask, or a section run with every signal blocked, made the kernel kill the process at
/// its first watched store.
#[test]
fn blocking_every_signal_never_blocks_the_trap_of_a_watched_store() {
    for (args, want) in [
        (&[][..], "v1: handler store survived, flag=1 X=1"),
        (&["v2"][..], "X=2"),
        (&["v3"][..], "v3: store after unblocking SIGSEGV survived, X=3"),
    ] {
        let out = run_watched("watch_hostile_sigmask", args, &[("VMSRS_RANGE_0", "symbol:X")]);
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.describe());
        assert!(out.stdout.contains(want), "{args:?}: {}", out.describe());
    }
}

/// The program made its watched page writable itself (mprotect): the faulting request's store
/// then went to memory unjournaled and survived its fault. The page now stays read-only to the
/// trap (said once on stderr).
#[test]
fn a_watched_page_the_program_makes_writable_stays_watched() {
    let out =
        run_watched("watch_hostile_mprotect", &[], &[USERS[0], USERS[1], ("VMSRS_RANGE_0", "symbol:X")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("rc=-1, X=0 (OK: restored)"), "{}", out.describe());
    assert!(out.stderr.contains("made watched pages at"), "{}", out.describe());
}
