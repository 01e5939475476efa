//! Fidelity of the watch emulator (`src/watch/emulate.rs`) against the CPU, end to end.
//! `c-examples/watch_forms.c`, an unmodified program, runs each store form once on an
//! unwatched mirror and once on its `watched` page, from identical memory, registers and
//! RFLAGS, and compares all three afterwards. Under `LD_PRELOAD=libvmsrs.so` with that page
//! watched, every store to it traps and is emulated, so a form the emulator gets wrong shows
//! as a MISMATCH line. A form it cannot emulate becomes a contained fault (the store is not
//! performed) and shows up the same way.

mod common;

use common::{c_example, env_refs, preload, run, Build, RunOutput};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The `FORM <name> <verdict>` lines: (name, verdict). After a contained fault libvmsrs
/// prefixes the program's output with `[vmsrs: suppressed user N] `: those lines count too.
fn forms(out: &RunOutput) -> Vec<(&str, &str)> {
    out.stdout.lines().filter_map(|l| l.split_once("FORM ")?.1.split_once(' ')).collect()
}

/// The forms whose verdict is not `ok`, one per line.
fn not_ok(forms: &[(&str, &str)]) -> String {
    forms.iter().filter(|(_, v)| *v != "ok").map(|(n, v)| format!("{n} {v}\n")).collect()
}

#[test]
fn every_store_form_emulated_on_a_watched_page_gives_what_the_cpu_gives() {
    let exe = c_example("watch_forms", Build::Unmodified);

    // Alone, both areas are plain memory: this checks the program's own comparison.
    let plain = run(&exe, &[], &[], TIMEOUT);
    let plain_forms = forms(&plain);
    assert_eq!(not_ok(&plain_forms), "", "without libvmsrs:\n{}", plain.describe());
    plain.assert_success();
    assert!(plain.has_line("watched page: rw-p"), "{}", plain.describe());

    let env = preload(&[("VMSRS_RANGE_0", "symbol:watched:4096"), ("VMSRS_VERBOSE", "1")]);
    let watched = run(&exe, &[], &env_refs(&env), TIMEOUT);
    let watched_forms = forms(&watched);
    let bad = not_ok(&watched_forms);
    assert_eq!(bad, "", "forms whose emulation differs from the CPU:\n{bad}\n{}", watched.describe());
    watched.assert_success();

    // The same forms ran (a SKIP for a missing CPU feature is the same in both runs).
    let names = |f: &[(&str, &str)]| f.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&plain_forms), names(&watched_forms), "{}", watched.describe());
    assert!(!watched_forms.is_empty(), "{}", watched.describe());
    let summary = format!("forms: {} ok", watched_forms.len());
    assert!(
        plain.has_line(&summary) && watched.has_line(&summary),
        "no `{summary}`:\n{}",
        watched.describe()
    );

    // The stores really trapped: the page was watched, read-only with its alias (a shared
    // memfd mapping) from the first form to the last, and nothing was refused or contained.
    let err = &watched.stderr;
    assert!(err.contains("watching symbol:watched:4096 at 0x"), "{}", watched.describe());
    let read_only = watched.lines().iter().filter(|l| **l == "watched page: r--s").count();
    assert_eq!(
        read_only,
        2,
        "the watched page is not read-only at the start and the end:\n{}",
        watched.describe()
    );
    assert!(!err.contains("cannot emulate"), "{}", watched.describe());
    assert!(!err.contains("contained SIG"), "{}", watched.describe());
}
