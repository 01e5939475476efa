//! The fault-injection soak of DESIGN §9 through `c-examples/soak.c`: 64 threads run
//! transactions on a bank of accounts in monitored memory (8-byte-aligned records and packed
//! records whose 3/5/6-byte fields straddle granules) under strict two-phase locking, and
//! 10,000 faults of every kind (NULL load, NULL store, wild store, SIGFPE, ud2, SIGBUS,
//! explicit suppression, bounds, and bad pointers handed to vmsrs_store/load/memcpy/assign/
//! memset) are injected into transactions that first write poison. The
//! program checks every monitored read against an exact truth table, the final bank (monitored
//! and raw) against every thread's ledger of committed effects, the total balance, the counters
//! of `vmsrs_stats` and the number of fault reports, and that RSS stays bounded.
//!
//! The `-DVMSRS_DISABLE` build runs the same workload without the faults (they cannot be
//! contained there); its time is printed beside the libvmsrs runs as a ratio, not asserted
//! (a benchmark is not a timed test).

mod common;

use common::{c_example, run, Build, RunOutput};
use std::sync::OnceLock;
use std::time::Duration;

/// Generous: a run takes 15–20 s on an idle 2-vCPU machine, and CI shares the machine.
const TIMEOUT: Duration = Duration::from_secs(600);

fn field(out: &RunOutput, key: &str) -> Option<f64> {
    let line = out.lines().into_iter().find(|l| l.starts_with("soak: summary "))?;
    line.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// The disabled build's time for the same workload, measured once per test binary.
fn baseline_ms() -> Option<f64> {
    static MS: OnceLock<Option<f64>> = OnceLock::new();
    *MS.get_or_init(|| {
        let exe = c_example("soak", Build::Disabled);
        let out = run(&exe, &["--quiet"], &[], TIMEOUT);
        out.assert_success();
        assert!(out.has_line("soak: PASS"), "{}", out.describe());
        field(&out, "elapsed_ms")
    })
}

fn soak(policy: &str) {
    let exe = c_example("soak", Build::Libvmsrs);
    let out = run(&exe, &["--quiet", "--kinds", "all"], &[("VMSRS_POLICY", policy)], TIMEOUT);
    assert!(
        out.code() == Some(0) && out.has_line("soak: PASS"),
        "the soak under VMSRS_POLICY={policy} failed:\n{}",
        out.describe()
    );
    for line in out.lines() {
        if line.starts_with("soak: faults ") || line.starts_with("soak: summary ") {
            println!("{line}");
        }
    }
    let faults = field(&out, "faults").unwrap_or(0.0);
    assert!(faults >= 150_000.0, "expected >= 10,000 faults of each of 15 kinds:\n{}", out.describe());
    let ms = field(&out, "elapsed_ms");
    match (ms, baseline_ms()) {
        (Some(ms), Some(base)) if base > 0.0 => println!(
            "soak {policy}: {:.1} s with libvmsrs, {:.1} s for the same workload without it \
             (-DVMSRS_DISABLE, no faults injected): {:.2}x; rss {} -> {} KiB",
            ms / 1000.0,
            base / 1000.0,
            ms / base,
            field(&out, "rss_start_kib").unwrap_or(0.0),
            field(&out, "rss_end_kib").unwrap_or(0.0),
        ),
        _ => println!("soak {policy}: no timing figures in the output"),
    }
}

#[test]
fn soak_64_threads_10000_faults_of_each_kind_oblivious_no_lost_update_no_poison_bounded_rss() {
    soak("oblivious");
}

#[test]
fn soak_64_threads_10000_faults_of_each_kind_unwind_no_lost_update_no_poison_bounded_rss() {
    soak("unwind");
}
