//! Monitored ranges watched by hardware data watchpoints (`VMSRS_WATCH=hw|auto`,
//! src/watch/hw.rs): c-examples/watch_hw.c, an unmodified program, with two small globals that
//! share their page with a counter the program writes 2 x 20000 times.

mod common;

use common::{c_example, c_example_flags, env_refs, preload, run, Build, RunOutput};
use std::path::Path;
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

/// Sums of the exit-time metrics: (page traps of every watched page, watchpoint traps).
fn traps(metrics: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(metrics).unwrap_or_else(|e| panic!("{}: {e}", metrics.display()));
    let value = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let page = text.lines().filter(|l| l.starts_with("vmsrs_watch_page_traps_total{")).map(value).sum();
    let hw = text.lines().filter(|l| l.starts_with("vmsrs_watch_hw_traps_total ")).map(value).sum();
    (page, hw)
}

/// Run watch_hw in `mode` with exit-time metrics: (output, page traps, watchpoint traps).
fn watch_hw_counted(mode: &str) -> (RunOutput, u64, u64) {
    let metrics = common::metrics_file("watch_hw", mode);
    let m = metrics.to_str().expect("utf-8 path").to_owned();
    let out = watch_hw(&[("VMSRS_WATCH", mode), ("VMSRS_METRICS_PATH", &m)]);
    assert_eq!(out.code(), Some(0), "{mode}: {}", out.describe());
    assert!(out.stdout.contains("watch_hw: OK"), "{mode}: {}", out.describe());
    assert!(!out.stdout.contains("FAIL"), "{mode}: {}", out.describe());
    assert_eq!(out.stderr.matches("contained SIGSEGV").count(), 6, "{mode}: {}", out.describe());
    let (page, hw) = traps(&metrics);
    let _ = std::fs::remove_file(&metrics);
    (out, page, hw)
}

/// G2, G3 and byte precision with overlapping users, a locked add, a thread with every
/// signal blocked, and fork, all through watchpoints: and the 40000 stores to the neighbour
/// never trap (the page-protection run below shows they would).
#[test]
fn small_ranges_watched_by_hardware_are_restored_byte_precisely_and_their_neighbour_never_traps() {
    let (out, page, hw) = watch_hw_counted("hw");
    assert!(!out.stderr.contains(HOT_PAGE), "the neighbour's stores trapped:\n{}", out.describe());
    assert_eq!(page, 0, "no page trap under watch=hw:\n{}", out.describe());
    // One per store of the checks in the parent (the child's are its own).
    assert!(hw >= 7, "{hw} watchpoint traps:\n{}", out.describe());
}

/// The same program with the same ranges watched by page protection: the same results, and
/// every store to the neighbour traps (what watch=hw is for).
#[test]
fn page_protection_of_the_same_ranges_gives_the_same_results_and_traps_for_the_neighbour() {
    let (out, page, hw) = watch_hw_counted("page");
    assert!(out.stderr.contains(HOT_PAGE), "{}", out.describe());
    assert!(page >= 40_000, "{page} page traps:\n{}", out.describe());
    assert_eq!(hw, 0, "{}", out.describe());
}

/// watch=auto starts with page protection and moves to watchpoints at the first request
/// boundary after the neighbour made the page hot: the second 20000 neighbour stores never
/// trap.
#[test]
fn auto_moves_a_page_made_hot_by_other_data_to_watchpoints_at_the_next_request() {
    let (out, page, hw) = watch_hw_counted("auto");
    assert!(out.stderr.contains(HOT_PAGE), "{}", out.describe());
    assert!(out.stderr.contains("now watched by hardware watchpoints (watch=auto)"), "{}", out.describe());
    assert!(
        (20_000..30_000).contains(&page),
        "{page} page traps, want the first loop's only:\n{}",
        out.describe()
    );
    assert!(hw >= 1, "{hw} watchpoint traps:\n{}", out.describe());
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
    // auto with a range too big for a watchpoint: page protection for good, same results.
    let out = watch_hw(&[("VMSRS_RANGE_1", "symbol:small:12"), ("VMSRS_WATCH", "auto")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stderr.contains(HOT_PAGE), "{}", out.describe());
    assert!(!out.stderr.contains("now watched by hardware"), "{}", out.describe());
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

fn hw_lib() -> String {
    let lib = c_example_flags("watch_hw_lib", Build::Unmodified, "so", &["-shared", "-fPIC"]);
    lib.to_str().expect("utf-8 path").to_owned()
}

fn watch_hw_case(args: &[&str], extra: &[(&str, &str)]) -> RunOutput {
    let mut env = vec![("VMSRS_WATCH", "hw"), ("VMSRS_USER_CALL", "request:-1"), ("VMSRS_POLICY", "unwind")];
    env.extend_from_slice(extra);
    let env = preload(&env);
    let out = run(&c_example("watch_hw", Build::Unmodified), args, &env_refs(&env), TIMEOUT);
    assert_eq!(out.code(), Some(0), "{args:?}: {}", out.describe());
    assert!(out.stdout.contains("watch_hw: OK"), "{args:?}: {}", out.describe());
    out
}

/// Review regression: concurrent atomic increments of a hw-watched word, no fault at all. The
/// trap put the before-image back into memory to journal the store, and lost the increments
/// other threads made meanwhile.
#[test]
fn concurrent_atomic_increments_of_a_hw_watched_word_are_never_lost() {
    watch_hw_case(&["atomic"], &[("VMSRS_RANGE_0", "symbol:limit")]);
}

/// Review regression: a worker that blocked every signal (SIGTRAP too) before the library's
/// global was armed; its stores' traps stayed pending, the normal store was lost and the
/// faulty one kept. Its first rescue call now unblocks SIGTRAP.
#[test]
fn a_thread_that_blocked_sigtrap_before_arming_is_watched_from_its_next_request() {
    watch_hw_case(&["masked", &hw_lib()], &[("VMSRS_RANGE_2", "symbol:lib_limit")]);
}

/// Review regression: a library loaded and unloaded six times; its freed watchpoint was never
/// reused, and the fifth load was not watched.
#[test]
fn a_watchpoint_freed_by_dlclose_is_reused_by_the_next_load() {
    let out = watch_hw_case(&["cycles", &hw_lib()], &[("VMSRS_RANGE_2", "symbol:lib_limit")]);
    assert!(!out.stderr.contains("no hardware watchpoint left"), "{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// SIGTRAPs that are not a perf watchpoint's. This nested guest sometimes loses a watchpoint
// hit's DR6 bits, and the kernel then sends a plain TRAP_BRKPT SIGTRAP (about 1 run in 5 of
// 4 x 50000 watched atomic adds died so, CI included). libvmsrs forwarded it to the program's
// SIG_DFL, which left SIGTRAP at SIG_DFL without killing, and the next watchpoint killed the
// process with nothing on stderr.

/// Regression: a TRAP_BRKPT SIGTRAP while a range is watched by hardware (as the kernel sends
/// it for a hit with lost DR6 bits) is a watchpoint hit: the program survives it, and a later
/// faulting request's store is still withdrawn.
#[test]
fn a_watchpoint_hit_that_lost_its_dr6_bits_never_kills_the_program() {
    watch_hw_case(&["lostdr6"], &[("VMSRS_RANGE_0", "symbol:limit")]);
}

/// The program's own `int1` and `int3` still reach its own SIGTRAP handler while ranges are
/// watched by hardware.
#[test]
fn the_programs_own_breakpoints_still_reach_its_sigtrap_handler() {
    watch_hw_case(&["icebp"], &[("VMSRS_RANGE_0", "symbol:limit")]);
}

/// Regression: with SIGTRAP at SIG_DFL, the program's own `int3` kills it at once, as without
/// libvmsrs (it went on, with SIGTRAP left at SIG_DFL for the next watchpoint).
#[test]
fn a_programs_own_int3_at_sig_dfl_kills_it_at_once() {
    let env = preload(&[
        ("VMSRS_WATCH", "hw"),
        ("VMSRS_RANGE_0", "symbol:limit"),
        ("VMSRS_USER_CALL", "request:-1"),
        ("VMSRS_POLICY", "unwind"),
    ]);
    let out = run(&c_example("watch_hw", Build::Unmodified), &["int3"], &env_refs(&env), TIMEOUT);
    assert_eq!(out.signal(), Some(libc::SIGTRAP), "{}", out.describe());
    assert!(!out.stdout.contains("FAIL"), "{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// Regressions from the second hostile review (c-examples/watch_hw_review_*.c): each left a
// faulting request's store in place, or crashed a correct program, before its fix.

fn review(name: &str, args: &[&str], extra: &[(&str, &str)]) -> RunOutput {
    let mut env = vec![("VMSRS_USER_CALL", "request:-1"), ("VMSRS_POLICY", "unwind")];
    env.extend_from_slice(extra);
    let env = preload(&env);
    run(&c_example(name, Build::Unmodified), args, &env_refs(&env), TIMEOUT)
}

/// A page-mode trap on another page refreshed the watchpoint's copy from memory, hiding a
/// store to the hw range whose trap had not run yet.
#[test]
fn a_page_trap_never_hides_a_store_to_a_hw_range_not_yet_trapped() {
    let out = review(
        "watch_hw_review_refresh",
        &["1000", "2"],
        &[
            ("VMSRS_RANGE_0", "symbol:hwv"),
            ("VMSRS_WATCH_0", "hw"),
            ("VMSRS_RANGE_1", "symbol:pg"),
            ("VMSRS_WATCH_1", "page"),
        ],
    );
    assert!(out.stdout.contains("0/1000 faulting stores survived ok"), "{}", out.describe());
}

/// Another user's fault journaled a store to the hw range whose trap had not run yet as a
/// final store of no user, so the storing request's fault could not withdraw it.
#[test]
fn another_users_fault_never_makes_a_pending_hw_store_final() {
    let out = review(
        "watch_hw_review_absorb",
        &["1000", "1"],
        &[("VMSRS_RANGE_0", "symbol:hwv"), ("VMSRS_WATCH", "hw")],
    );
    assert!(out.stdout.contains("0/1000 faulting stores survived ok"), "{}", out.describe());
}

/// Another thread's mprotect(RW) of a page-watched page left it writable for a moment, and
/// faulting stores in that window went unjournaled.
#[test]
fn mprotect_racing_faulting_stores_never_opens_a_watched_page() {
    let out = review(
        "watch_hw_review_mprace",
        &["1000"],
        &[("VMSRS_RANGE_0", "symbol:limit"), ("VMSRS_WATCH", "page")],
    );
    assert!(out.stdout.contains("0/1000 faulting stores survived ok"), "{}", out.describe());
}

/// mprotect(PROT_WRITE) of a page-watched page made it PROT_NONE: the next read crashed.
#[test]
fn a_write_only_mprotect_keeps_a_watched_page_readable() {
    for arg in ["w", "x"] {
        let out = review(
            "watch_hw_review_mpwo",
            &[arg],
            &[("VMSRS_RANGE_0", "symbol:limit"), ("VMSRS_WATCH", "page")],
        );
        assert_eq!(out.code(), Some(0), "{arg}: {}", out.describe());
        assert!(out.stdout.contains("request r=0 limit=7"), "{arg}: {}", out.describe());
    }
}

/// A faulting request in a program key destructor stored unwatched: the watchpoints closed in
/// the second round, later in the fourth before the program's own destructor of that round,
/// and earlier still when a destructor called pthread_exit (glibc starts the rounds again).
/// They stay open until the thread is gone now.
#[test]
fn a_request_in_any_key_destructor_round_is_still_watched() {
    for args in [&["3"][..], &["4"], &["4", "pexit"], &["5", "pexit"]] {
        let out = review(
            "watch_hw_review_keyround",
            args,
            &[("VMSRS_RANGE_0", "symbol:limit"), ("VMSRS_WATCH", "hw")],
        );
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.describe());
        assert!(out.stdout.contains("r=-1 limit=100: ok"), "{args:?}: {}", out.describe());
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions from the third hostile review (c-examples/watch_hw_review_sigtrap.c).

/// A SIGTRAP the kernel drops while SIGTRAP is ignored (the program's own perf event's, one it
/// queued itself) was re-raised at SIG_DFL and killed the program.
#[test]
fn an_ignored_sigtrap_the_kernel_would_drop_is_dropped() {
    for mode in ["ign-perf", "ign-queue"] {
        let out = review(
            "watch_hw_review_sigtrap",
            &[mode],
            &[("VMSRS_RANGE_0", "symbol:limit"), ("VMSRS_WATCH", "hw")],
        );
        assert_eq!(out.code(), Some(0), "{mode}: {}", out.describe());
        assert!(
            out.stdout.contains("went on after an ignored SIGTRAP (limit=8)"),
            "{mode}: {}",
            out.describe()
        );
    }
}

/// G4: a suppressed user's store whose watchpoint hit came as a plain TRAP_BRKPT SIGTRAP (a hit
/// with lost DR6 bits) was journaled but stayed in memory.
#[test]
fn a_suppressed_users_store_seen_by_a_stray_trap_goes_to_its_shadow_only() {
    let out = review(
        "watch_hw_review_sigtrap",
        &["supp-stray"],
        &[("VMSRS_RANGE_0", "symbol:limit"), ("VMSRS_WATCH", "hw"), ("VMSRS_POLICY", "oblivious")],
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("(limit=100)"), "{}", out.describe());
}

/// Fourth review: a program's dup2 onto the number of a worker's watchpoint descriptor, then
/// more threads: libvmsrs later closed that number (the program's file by then) when it closed
/// the worker's events. It forgets a descriptor the program closes or replaces now (interposed
/// close, dup2, dup3, close_range, closefrom), and the worker is watched again.
#[test]
fn a_descriptor_the_program_takes_over_is_never_closed_by_libvmsrs() {
    let out = review("watch_hw_review_fds", &[], &[("VMSRS_RANGE_0", "symbol:limit"), ("VMSRS_WATCH", "hw")]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("write -> 1, worker's faulting request -> -1, limit=100: ok"),
        "{}",
        out.describe()
    );
}

/// Review regression: a library with a watched global, loaded and unloaded 100 times, each
/// time a normal request and a faulty one storing there. A run that went with its library
/// kept its slot in the region table, so from the 64th load on the global was not watched
/// (said once on stderr) and the faulty request's value stayed (G1/G3). Both watch kinds.
#[test]
fn a_library_loaded_and_unloaded_a_hundred_times_stays_watched() {
    for kind in ["page", "hw"] {
        let env = preload(&[
            ("VMSRS_RANGE_0", "symbol:lib_limit"),
            ("VMSRS_WATCH", kind),
            ("VMSRS_USER_CALL", "request:-1"),
            ("VMSRS_POLICY", "unwind"),
        ]);
        let out = run(
            &c_example("regress_watch_dl_cycles", Build::Unmodified),
            &[&hw_lib(), "100"],
            &env_refs(&env),
            TIMEOUT,
        );
        assert_eq!(out.code(), Some(0), "watch={kind}: {}", out.describe());
        assert!(out.stdout.contains("dl_cycles: OK"), "watch={kind}: {}", out.describe());
        assert!(!out.stderr.contains("too many watched pages"), "watch={kind}: {}", out.describe());
    }
}
