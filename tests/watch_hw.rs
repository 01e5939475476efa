//! Monitored ranges watched by hardware data watchpoints (`VMSRS_WATCH=hw`, src/watch/hw.rs):
//! c-examples/watch_hw.c, an unmodified program, with two small globals that share their page
//! with a counter the program writes 20000 times.

mod common;

use common::{c_example, c_example_flags, env_refs, preload, run, Build, RunOutput};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

const HOT_PAGE: &str = "traps over 1000 times a second";

fn watch_hw(extra: &[(&str, &str)]) -> RunOutput {
    let mut env = vec![
        ("VMSRS_RANGE_0", "symbol:limit"),
        ("VMSRS_RANGE_1", "symbol:small"),
        ("VMSRS_USER_CALL", "request:-1"),
        ("VMSRS_POLICY", "unwind"),
    ];
    env.extend_from_slice(extra);
    let env = preload(&env);
    run(&c_example("watch_hw", Build::Unmodified), &[], &env_refs(&env), TIMEOUT)
}

/// G2, G3 and byte precision with overlapping users, a locked add, a thread with every
/// signal blocked, and fork, all through watchpoints: and the 20000 stores to the neighbour
/// never trap (the page-protection run below shows they would).
#[test]
fn small_ranges_watched_by_hardware_are_restored_byte_precisely_and_their_neighbour_never_traps() {
    for mode in ["hw", "auto"] {
        let out = watch_hw(&[("VMSRS_WATCH", mode)]);
        assert_eq!(out.code(), Some(0), "{mode}: {}", out.describe());
        assert!(out.stdout.contains("watch_hw: OK"), "{mode}: {}", out.describe());
        assert!(!out.stdout.contains("FAIL"), "{mode}: {}", out.describe());
        assert!(
            !out.stderr.contains(HOT_PAGE),
            "{mode}: the neighbour's stores trapped:\n{}",
            out.describe()
        );
        assert_eq!(out.stderr.matches("contained SIGSEGV").count(), 5, "{mode}: {}", out.describe());
    }
}

/// The same program with the same ranges watched by page protection: the same results, and
/// the neighbour's stores make the page hot (what watch=hw is for).
#[test]
fn page_protection_of_the_same_ranges_gives_the_same_results_and_traps_for_the_neighbour() {
    let out = watch_hw(&[("VMSRS_WATCH", "page")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("watch_hw: OK"), "{}", out.describe());
    assert!(out.stderr.contains(HOT_PAGE), "{}", out.describe());
}

/// Without libvmsrs the faulting requests kill the program: the checks above are not vacuous.
#[test]
fn without_libvmsrs_the_first_faulting_request_kills_the_program() {
    let out = run(&c_example("watch_hw", Build::Unmodified), &[], &[], TIMEOUT);
    assert_eq!(out.signal(), Some(libc::SIGSEGV), "{}", out.describe());
}

/// A per-range mode (VMSRS_WATCH_<N>) overrides VMSRS_WATCH.
#[test]
fn a_per_range_mode_overrides_the_default() {
    let out = watch_hw(&[("VMSRS_WATCH", "page"), ("VMSRS_WATCH_0", "hw"), ("VMSRS_WATCH_1", "hw")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("watch_hw: OK"), "{}", out.describe());
    assert!(!out.stderr.contains(HOT_PAGE), "{}", out.describe());
}

/// `watch=hw` where it cannot be is refused with the reason; `auto` falls back to pages.
#[test]
fn hardware_watching_that_cannot_be_is_refused_with_the_reason() {
    // Too big for a debug register: refused at resolution (the whole configuration).
    let out = watch_hw(&[("VMSRS_RANGE_0", "symbol:page"), ("VMSRS_RANGE_1", ""), ("VMSRS_WATCH_0", "hw")]);
    assert!(out.stderr.contains("cannot have a hardware watchpoint"), "{}", out.describe());
    assert!(out.stderr.contains("refusing to start"), "{}", out.describe());
    // Five ranges, four debug registers.
    let five = "symbol:pad,symbol:hotword,symbol:spare";
    let out = watch_hw(&[("VMSRS_RANGES", five), ("VMSRS_WATCH", "hw")]);
    assert!(out.stderr.contains("no hardware watchpoint left (at most 4"), "{}", out.describe());
    assert!(out.stderr.contains("NOT watched"), "{}", out.describe());
    // A hw range on a page another range is page-watched on.
    let out = watch_hw(&[("VMSRS_WATCH_0", "hw"), ("VMSRS_WATCH_1", "page")]);
    assert!(out.stderr.contains("shares a page with range symbol:small"), "{}", out.describe());
    assert!(out.stderr.contains("NOT watched"), "{}", out.describe());
    // Strict: not watched is not running.
    let out = watch_hw(&[("VMSRS_WATCH_0", "hw"), ("VMSRS_WATCH_1", "page"), ("VMSRS_STRICT", "1")]);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    // auto with a range too big for a watchpoint: page protection, same results.
    let out = watch_hw(&[("VMSRS_RANGE_1", "symbol:small:12"), ("VMSRS_WATCH", "auto")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stderr.contains(HOT_PAGE), "{}", out.describe());
}

/// A range of a library loaded later is armed while other threads run: their watchpoints come
/// from arming's scan of the process's threads (perf events opened for another thread).
#[test]
fn a_library_global_armed_while_threads_run_is_watched_on_those_threads() {
    let lib = c_example_flags("watch_hw_lib", Build::Unmodified, "so", &["-shared", "-fPIC"]);
    let env = preload(&[
        ("VMSRS_RANGE_2", "symbol:lib_limit"),
        ("VMSRS_WATCH", "hw"),
        ("VMSRS_USER_CALL", "request:-1"),
        ("VMSRS_POLICY", "unwind"),
    ]);
    let lib = lib.to_str().expect("utf-8 path");
    let out = run(&c_example("watch_hw", Build::Unmodified), &["dlopen", lib], &env_refs(&env), TIMEOUT);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("watch_hw: OK"), "{}", out.describe());
    assert!(out.stderr.contains("watching symbol:lib_limit"), "{}", out.describe());
}
