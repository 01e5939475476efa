//! Replays the committed fuzz corpus of the instruction-skip planner (`fuzz/seeds/skip_planner`
//! and `fuzz/corpus/skip_planner`) through the checks the `skip_planner` fuzz target runs
//! (`fuzz/checks/planner.rs`), without libFuzzer, so every test run guards them: no panic,
//! skips of exactly one iced-decoded instruction, plausible registers, no allocation.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/planner.rs"]
mod checks;

/// Every file of the planner's seed and fuzzer-grown corpora, by path.
fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["seeds", "corpus"]
        .iter()
        .filter_map(|kind| fs::read_dir(fuzz.join(kind).join("skip_planner")).ok())
        .flatten()
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no skip_planner corpus under {}", fuzz.display());
    files.into_iter().map(|path| (path.clone(), fs::read(&path).expect("corpus file"))).collect()
}

#[test]
fn planner_never_panics_and_skips_whole_instructions_on_corpus() {
    let failed: Vec<String> = corpus()
        .iter()
        .filter(|(_, code)| catch_unwind(AssertUnwindSafe(|| checks::check_plan(code))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "planner properties fail on {failed:#?}");
}

#[test]
fn allocation_counter_sees_allocations_so_the_no_allocation_check_is_real() {
    let (boxed, calls) = checks::count_allocations(|| std::hint::black_box(Box::new([1u8; 32])));
    drop(boxed);
    assert!(calls >= 1, "a Box allocation was not counted");
}

#[test]
fn planner_does_not_allocate_once_warmed_up() {
    checks::warm_up();
    for code in [&[0x8b, 0x00][..], &[0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x00], &[0x0f, 0x0b], &[0xff, 0xff]] {
        let (_, calls) = checks::count_allocations(|| vmsrs_runtime::fault::decode::plan(code, 0x1000));
        assert_eq!(calls, 0, "plan({code:02x?}) called the allocator after warm-up");
    }
}
