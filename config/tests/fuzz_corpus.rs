//! Replays the committed fuzz corpora of the configuration layer (`fuzz/seeds/<target>` and
//! `fuzz/corpus/<target>`) through the same property checks the fuzz targets run
//! (`fuzz/checks/config.rs`), without libFuzzer, so every test run guards them.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks/config.rs"]
mod checks;

/// Every file of the target's seed and fuzzer-grown corpora, by path.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files: Vec<PathBuf> = ["seeds", "corpus"]
        .iter()
        .filter_map(|kind| fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flatten()
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files for {target} under {}", fuzz.display());
    files.into_iter().map(|path| (path.clone(), fs::read(&path).expect("corpus file"))).collect()
}

/// Run `check` on every corpus file of `target`; fail naming every file that failed.
fn replay(target: &str, check: fn(&[u8])) {
    let failed: Vec<String> = corpus(target)
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| check(bytes))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: properties fail on {failed:#?}");
}

#[test]
fn envfile_reader_never_panics_and_agrees_with_systemd_on_corpus() {
    replay("envfile", checks::check_envfile);
}

#[test]
fn config_loader_never_panics_and_describe_loads_back_on_corpus() {
    replay("config_load", checks::check_load);
}

#[test]
fn range_specs_never_panic_and_round_trip_through_display_on_corpus() {
    replay("range_spec", checks::check_range_spec);
}
