//! Property checks of the configuration layer (`vmsrs-config`), shared by the fuzz targets
//! `envfile`, `config_load` and `range_spec` and by the corpus replay test
//! `config/tests/fuzz_corpus.rs`, which include this file by path. Each check takes raw bytes,
//! returns normally when every property holds and panics, naming the input, when one fails.
//!
//! - [`check_envfile`]: the environment-file reader never panics; an error names a line of the
//!   file; an accepted file is read identically by the model of systemd's reader, and its pairs
//!   round-trip through [`envfile::serialize`].
//! - [`check_load`]: [`config::load`] layering a file, `VMSRS_*` variables and `VMSRS_OPTIONS`
//!   never panics; an accepted configuration keeps its invariants and loads back from its own
//!   [`config::Config::describe`] output.
//! - [`check_range_spec`]: [`config::parse_range`] and [`config::parse_ranges`] never panic,
//!   accepted specs keep their invariants and round-trip through `Display`.

// Each includer uses only some of the checks.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use vmsrs_config::config::{self, ConfigError, RangeSpec, VMSRS_ECONFIG};
use vmsrs_config::envfile;

#[path = "../../config/tests/support/systemd_model.rs"]
mod model;

/// Environment file: reader properties (see the module documentation).
pub fn check_envfile(bytes: &[u8]) {
    let line_count = bytes.split(|&b| b == b'\n').count();
    let entries = match envfile::parse_entries(bytes) {
        Ok(entries) => entries,
        Err(e) => {
            let line = e.line().unwrap_or_else(|| panic!("{bytes:?}: error without a line: {e}"));
            assert!((1..=line_count).contains(&line), "{bytes:?}: error on line {line} of {line_count}");
            assert!(e.reason().is_some() && !e.to_string().is_empty(), "{bytes:?}: {e:?}");
            return;
        }
    };
    let text = std::str::from_utf8(bytes).unwrap_or_else(|_| panic!("{bytes:?}: accepted but not UTF-8"));
    let lines: Vec<&str> = text.split('\n').collect();
    let mut previous = 0;
    for entry in &entries {
        assert!(entry.line > previous && entry.line <= lines.len(), "{text:?}: line of {entry:?}");
        previous = entry.line;
        assert!(envfile::is_valid_key(&entry.key), "{text:?}: invalid key in {entry:?}");
        let assignment = lines[entry.line - 1].trim_start_matches([' ', '\t']);
        assert!(assignment.starts_with(&format!("{}=", entry.key)), "{text:?}: {entry:?} is not on its line");
    }
    let pairs: Vec<(String, String)> = entries.into_iter().map(envfile::Entry::into_pair).collect();
    assert_eq!(envfile::parse_bytes(bytes).ok().as_ref(), Some(&pairs), "{text:?}: parse_bytes differs");
    assert_eq!(model::systemd_model(text), pairs, "{text:?}: systemd would read this file differently");
    let quoted =
        envfile::serialize(&pairs).unwrap_or_else(|| panic!("{text:?}: accepted pairs do not quote"));
    match envfile::parse(&quoted) {
        Ok(again) => assert_eq!(again, pairs, "{text:?}: quoted as {quoted:?}, reads back differently"),
        Err(e) => panic!("{text:?}: quoted as {quoted:?}, which is rejected: {e}"),
    }
    assert_eq!(
        model::systemd_model(&quoted),
        pairs,
        "{quoted:?}: systemd would read the quoting differently"
    );
}

/// Range specs: parser properties (see the module documentation). Invalid UTF-8 is replaced
/// (lossily), so every input reaches the parsers.
pub fn check_range_spec(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(spec) = config::parse_range(&text) {
        check_range_invariants(&spec, &text);
        let shown = spec.to_string();
        assert_eq!(config::parse_range(&shown), Ok(spec.clone()), "{text:?} displays as {shown:?}");
        assert_eq!(config::parse_ranges(&text), Ok(vec![spec]), "{text:?}: one spec, read as a list");
    }
    if let Ok(list) = config::parse_ranges(&text) {
        list.iter().for_each(|spec| check_range_invariants(spec, &text));
        let shown = list.iter().map(RangeSpec::to_string).collect::<Vec<_>>().join(",");
        assert_eq!(config::parse_ranges(&shown), Ok(list), "{text:?} displays as {shown:?}");
    }
}

/// What every accepted [`RangeSpec`] guarantees.
pub fn check_range_invariants(spec: &RangeSpec, input: &str) {
    match spec {
        RangeSpec::Addr { addr, len } => {
            assert!(*addr != 0 && *len != 0, "{input:?}: accepted {spec:?}");
            assert!(addr.checked_add(*len).is_some(), "{input:?}: {spec:?} wraps around");
        }
        RangeSpec::Module { name, offset, len } => {
            let bad_char = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            assert!(!name.is_empty() && !name.contains(bad_char), "{input:?}: module name in {spec:?}");
            assert!(*len != 0 && offset.checked_add(*len).is_some(), "{input:?}: accepted {spec:?}");
        }
        RangeSpec::Symbol { name, len } => {
            let bad_char = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | '@'));
            assert!(!name.is_empty() && !name.contains(bad_char), "{input:?}: symbol name in {spec:?}");
            assert!(!name.starts_with(|c: char| c.is_ascii_digit()), "{input:?}: symbol name in {spec:?}");
            assert_ne!(*len, Some(0), "{input:?}: accepted {spec:?}");
        }
    }
}

/// The separator line between the file part and the environment part of a
/// [`check_load`] input.
pub const LOAD_SEPARATOR: &[u8] = b"%%\n";

/// Split a [`check_load`] input into the environment file and the environment lines.
fn split_load_input(bytes: &[u8]) -> (&[u8], &[u8]) {
    if let Some(environ) = bytes.strip_prefix(LOAD_SEPARATOR) {
        return (b"", environ);
    }
    let at = bytes.windows(LOAD_SEPARATOR.len() + 1).position(|w| w[0] == b'\n' && &w[1..] == LOAD_SEPARATOR);
    match at {
        Some(at) => (&bytes[..=at], &bytes[at + 1 + LOAD_SEPARATOR.len()..]),
        None => (bytes, b""),
    }
}

/// A scratch environment-file path unique to this process and call.
fn scratch_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("vmsrs-fuzz-{}-{n}.env", std::process::id()))
}

/// The whole loader. Input: the environment file's bytes, then optionally a line `%%` and
/// environment lines `KEY=VALUE` (split at the first `=`; lines without one are dropped;
/// converted lossily to UTF-8). The file is written to a scratch path and passed as `load`'s
/// argument, unless the environment names `VMSRS_ENV_FILE`: a non-empty value is replaced by
/// the scratch path (so the fuzzer reads no other file) and an empty one means no file at all.
pub fn check_load(bytes: &[u8]) {
    let (file, environ_text) = split_load_input(bytes);
    let mut environ: Vec<(String, String)> = environ_text
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let eq = line.iter().position(|&b| b == b'=')?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            Some((text(&line[..eq]), text(&line[eq + 1..])))
        })
        .collect();
    let path = scratch_path();
    for (_, value) in environ.iter_mut().filter(|(k, _)| k == config::ENV_FILE_KEY) {
        if !value.is_empty() {
            *value = path.display().to_string();
        }
    }
    // load() takes the last VMSRS_ENV_FILE and ignores it when empty.
    let named = environ.iter().rev().find(|(k, _)| k == config::ENV_FILE_KEY);
    let by_environment = named.is_some();
    let reads_file = named.is_none_or(|(_, v)| !v.is_empty());
    if reads_file {
        fs::write(&path, file).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    let argument = (!by_environment).then_some(path.as_path());
    let result = config::load(argument, &environ);
    if reads_file {
        let _ = fs::remove_file(&path);
    }
    check_loaded(result, reads_file.then_some(path.as_path()), bytes);
}

fn check_loaded(result: Result<config::Loaded, ConfigError>, file: Option<&Path>, input: &[u8]) {
    let loaded = match result {
        Ok(loaded) => loaded,
        Err(e) => {
            // The scratch file always exists, so this is never VMSRS_EIO.
            assert_eq!(e.code(), VMSRS_ECONFIG, "{input:?}: {e}");
            assert!(!e.to_string().is_empty(), "{input:?}: {e:?}");
            if let ConfigError::Strict { warnings } = &e {
                assert!(!warnings.is_empty(), "{input:?}: strict error without warnings");
            }
            return;
        }
    };
    let config = &loaded.config;
    assert_eq!(config.env_file.as_deref(), file, "{input:?}: env_file");
    assert!(!config.strict || loaded.warnings.is_empty(), "{input:?}: strict but {:?}", loaded.warnings);
    assert!(!config.signals.is_empty() && config.same_pc_limit >= 1 && config.verbose <= 2, "{config:?}");
    let display = |spec: &RangeSpec| spec.to_string();
    config.all_ranges().for_each(|spec| check_range_invariants(spec, &display(spec)));
    let text = config.describe();
    let pairs: Vec<(String, String)> = text
        .split_terminator('\n')
        .map(|line| line.split_once('=').unwrap_or_else(|| panic!("describe line {line:?}")))
        .filter(|(key, _)| *key != config::ENV_FILE_KEY)
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    match config::load(None, &pairs) {
        Ok(again) => {
            assert!(again.warnings.is_empty(), "{input:?}: describe output warns {:?}", again.warnings);
            let want = config::Config { env_file: None, ..config.clone() };
            assert_eq!(again.config, want, "{input:?}: describe output {text:?} loads differently");
        }
        Err(e) => panic!("{input:?}: describe output {text:?} is rejected: {e}"),
    }
}
