//! Hot stores beside a monitored range patched out of the trap (`VMSRS_PATCH_STORES`,
//! src/watch/patch.rs): c-examples/watch_patch.c, an unmodified program whose counters share a
//! page with a monitored word, stored to 300,000 times by four threads and the main thread.

mod common;

use common::{c_example, env_refs, preload, run, Build, RunOutput};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);
const PATCHED: &str = "it now stores through a writable view of the page, without a trap";

/// Run watch_patch with `extra`; (output, trapped stores emulated, patched sites at exit).
fn watch_patch(tag: &str, extra: &[(&str, &str)]) -> (RunOutput, u64, u64) {
    let metrics = common::metrics_file("watch_patch", tag);
    let m = metrics.to_str().expect("utf-8 path").to_owned();
    let mut env = vec![
        ("VMSRS_RANGE_0", "symbol:g:8"),
        ("VMSRS_USER_CALL", "request:-1"),
        ("VMSRS_POLICY", "unwind"),
        ("VMSRS_METRICS_PATH", &m),
    ];
    env.extend_from_slice(extra);
    let env = preload(&env);
    let out = run(&c_example("watch_patch", Build::Unmodified), &[], &env_refs(&env), TIMEOUT);
    let text = std::fs::read_to_string(&metrics)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", metrics.display(), out.describe()));
    let _ = std::fs::remove_file(&metrics);
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} not in the metrics:\n{text}"))
    };
    (out, value("vmsrs_watch_stores_emulated_total"), value("vmsrs_watch_patched_sites"))
}

fn assert_all_ok(out: &RunOutput) {
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("ALL OK"), "{}", out.describe());
    // One crashing request in 500 of 50000 on one thread, and 100 of the 1100 adds to the
    // monitored word.
    assert_eq!(out.stderr.matches("contained SIGSEGV").count(), 200, "{}", out.describe());
}

/// G1/G2 for the monitored word and nothing lost beside it: a locked add and a plain add to
/// counters on the monitored word's page, 300,000 times on five threads while requests fault
/// (their store to the word withdrawn), are patched out of the trap after 256 traps each, and
/// every increment lands; the patched locked add, given the monitored word's address, still
/// traps (1000 normal adds stay, the 100 of faulting requests are withdrawn); a forked child's
/// stores through its patched instructions stay in the child.
#[test]
fn hot_stores_beside_a_monitored_word_stop_trapping_and_nothing_is_lost() {
    for round in 0..3 {
        let (out, emulated, sites) = watch_patch(&format!("on{round}"), &[]);
        assert_all_ok(&out);
        assert_eq!(out.stderr.matches(PATCHED).count(), 2, "{}", out.describe());
        assert_eq!(sites, 2, "{}", out.describe());
        // 2 x 256 before the patches, what was in flight, the faulting requests' own stores and
        // the 1100 adds to the monitored word (which must trap).
        assert!((1100..20_000).contains(&emulated), "{emulated} trapped stores:\n{}", out.describe());
    }
}

/// `VMSRS_PATCH_STORES=0`: the same program, every store trapped and emulated, the same
/// results (so the patched run's figures are the patch's doing).
#[test]
fn patching_off_traps_every_store() {
    let (out, emulated, sites) = watch_patch("off", &[("VMSRS_PATCH_STORES", "0")]);
    assert_all_ok(&out);
    assert!(!out.stderr.contains(PATCHED), "{}", out.describe());
    assert_eq!(sites, 0, "{}", out.describe());
    assert!(emulated >= 300_000, "{emulated} trapped stores:\n{}", out.describe());
}

/// A bad value is a configuration error, never a silent default.
#[test]
fn a_bad_patch_setting_is_refused() {
    let env = preload(&[("VMSRS_PATCH_STORES", "sometimes"), ("VMSRS_RANGE_0", "symbol:g:8")]);
    let out = run(&c_example("watch_patch", Build::Unmodified), &[], &env_refs(&env), TIMEOUT);
    assert!(out.stderr.contains("VMSRS_PATCH_STORES"), "{}", out.describe());
    assert!(out.stderr.contains("configuration error"), "{}", out.describe());
}

/// Regressions from a hostile review of the patching (c-examples/regress_patch_*.c, each
/// failed before its fix), run with the monitored word `g` as above.
fn regress(name: &str, args: &[&str], extra: &[(&str, &str)]) -> RunOutput {
    let mut env =
        vec![("VMSRS_RANGE_0", "symbol:g:8"), ("VMSRS_USER_CALL", "request:-1"), ("VMSRS_POLICY", "unwind")];
    env.extend_from_slice(extra);
    let env = preload(&env);
    run(&c_example(name, Build::Unmodified), args, &env_refs(&env), TIMEOUT)
}

/// A thread with every signal blocked runs the instruction while it is rewritten: the stop
/// byte was an `int3`, and the kernel killed the process with SIGTRAP (it cannot be blocked
/// for a forced one); now it is `hlt` (a SIGSEGV, which no thread may block while ranges are
/// watched).
#[test]
fn a_thread_with_every_signal_blocked_survives_the_rewrite() {
    for _ in 0..3 {
        let out = regress("regress_patch_sigtrap_blocked", &[], &[]);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        assert!(
            out.stdout.contains("hits=2000 (want 2000)") && out.stdout.contains(" OK"),
            "{}",
            out.describe()
        );
        assert!(out.stderr.contains(PATCHED), "{}", out.describe());
    }
}

/// SIGTRAPs the program sends itself: one that landed after a patched instruction sent the
/// thread back to it (the increment ran twice), and one that reached the patching thread could
/// stop it on its own stop byte for ever. Every increment exact now.
#[test]
fn the_programs_own_sigtraps_never_rerun_a_patched_store() {
    for _ in 0..3 {
        let out = regress("regress_patch_async_sigtrap", &[], &[]);
        assert_eq!(out.code(), Some(0), "{}", out.describe());
        assert!(out.stdout.contains("(+0)") && out.stdout.contains(" OK"), "{}", out.describe());
    }
}

/// `je 0f; lock; 0: cmpxchg` jumps past the lock prefix into the instruction: patched, it
/// landed in the jump's displacement (SIGILL). Such an instruction is refused now.
#[test]
fn an_instruction_that_a_jump_lands_inside_is_never_patched() {
    let out = regress("regress_patch_jump_past_lock", &[], &[]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("word=1301 (want 1301) OK"), "{}", out.describe());
    assert!(out.stderr.contains("a jump of its function lands inside it"), "{}", out.describe());
    assert!(!out.stderr.contains("SIGILL"), "{}", out.describe());
}

/// Six instructions turn hot before one safe point: four were queued, the other two trapped
/// for ever. All six are patched now.
#[test]
fn every_hot_instruction_is_patched_not_only_the_first_four() {
    let metrics = common::metrics_file("watch_patch", "many");
    let m = metrics.to_str().expect("utf-8 path").to_owned();
    let out = regress("regress_patch_many_hot", &[], &[("VMSRS_METRICS_PATH", &m)]);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(out.stdout.contains("counts OK"), "{}", out.describe());
    assert_eq!(out.stderr.matches(PATCHED).count(), 6, "{}", out.describe());
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    let _ = std::fs::remove_file(&metrics);
    assert!(text.contains("\nvmsrs_watch_patched_sites 6\n"), "{text}");
}

/// A patched instruction whose address is sometimes the monitored word (that store still traps
/// and is withdrawn with its faulting request), sometimes a bad one (a fault in the trampoline):
/// the fault is reported at the instruction and its callers, not at a nameless trampoline pc.
#[test]
fn a_fault_in_a_trampoline_is_reported_at_the_patched_instruction() {
    for args in [&[][..], &["null"][..]] {
        let out = regress("regress_patch_g1_regbased", args, &[]);
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.describe());
        assert!(
            out.stdout.contains("limit=0 (want 0)") && out.stdout.contains(" OK"),
            "{args:?}: {}",
            out.describe()
        );
    }
    let out = regress("regress_patch_g1_regbased", &["null"], &[]);
    assert!(out.stderr.contains("(bump+0x0)"), "{}", out.describe());
    assert!(out.stderr.contains("(request+"), "{}", out.describe());
}
