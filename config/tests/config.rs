//! Behaviour of the configuration layer through its public API: every key with good and bad
//! values, the precedence of the layers, unknown keys, strict mode and environment-file errors.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use vmsrs_config::config::{
    self, environ_snapshot, keys, load, Children, Config, ConfigError, ExposurePolicy, Host, Loaded, OnFault,
    Policy, RangeSpec, Signal, SignalSet, Source, UserCall, Watch, VMSRS_ECONFIG, VMSRS_EIO,
};
use vmsrs_config::envfile::{ErrorKind, Reason};

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: impl AsRef<[u8]>) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name =
            format!("vmsrs-config-test-{}-{}.env", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        fs::write(&path, contents).expect("write temporary env file");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn load_env(pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    load(None, &env(pairs))
}

fn loaded(pairs: &[(&str, &str)]) -> Loaded {
    load_env(pairs).unwrap_or_else(|e| panic!("{pairs:?} rejected: {e}"))
}

fn config_with(key: &str, value: &str) -> Config {
    let loaded = loaded(&[(key, value)]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.config
}

fn accepted_values(key: &str) -> &'static str {
    keys().iter().find(|s| s.name == key).unwrap_or_else(|| panic!("{key} in KEYS")).accepted
}

/// `key=value` in the process environment is a BadValue naming key, value, source and the
/// accepted values, with code VMSRS_ECONFIG.
fn assert_bad_value(key: &str, value: &str) {
    let err = load_env(&[(key, value)]).expect_err(&format!("{key}={value:?} must be rejected"));
    assert_eq!(err.code(), VMSRS_ECONFIG);
    let spec_name = if key.starts_with("VMSRS_RANGE_") { "VMSRS_RANGE_<N>" } else { key };
    match &err {
        ConfigError::BadValue { key: k, value: v, source, accepted, .. } => {
            assert_eq!((k.as_str(), v.as_str(), source), (key, value, &Source::Environment));
            assert_eq!(*accepted, accepted_values(spec_name));
        }
        other => panic!("{key}={value:?}: expected BadValue, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.starts_with("environment: "), "{text}");
    assert!(text.contains(key) && text.contains(accepted_values(spec_name)), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Defaults and the key table.

#[test]
fn defaults_are_the_documented_values() {
    let expected = Config {
        policy: Policy::Oblivious,
        signals: [Signal::Segv, Signal::Bus, Signal::Fpe, Signal::Ill].into_iter().collect(),
        fault_budget: 64,
        same_pc_limit: 4,
        time_budget_ms: 2000,
        exposure: false,
        exposure_policy: ExposurePolicy::Report,
        host: Host::InProc,
        contain_implicit: true,
        verbose: 0,
        strict: false,
        log_path: None,
        metrics_path: None,
        metrics_interval_ms: 5000,
        user_calls: Vec::new(),
        children: Children::Drop,
        range_slots: BTreeMap::new(),
        ranges: Vec::new(),
        watch: Watch::Page,
        watch_slots: BTreeMap::new(),
        watch_patch: true,
        env_file: None,
    };
    assert_eq!(Config::default(), expected);
    assert_eq!(loaded(&[]), Loaded { config: expected, warnings: vec![] });
}

#[test]
fn every_table_default_is_accepted_as_a_value() {
    for spec in keys().iter().filter(|s| !s.environment_only()) {
        let name = spec.name.replace("<N>", "0");
        assert_eq!(config_with(&name, spec.default), Config::default(), "{name}={:?}", spec.default);
    }
}

#[test]
fn every_key_has_a_description_and_accepted_values() {
    for spec in keys() {
        assert!(spec.name.starts_with("VMSRS_"), "{}", spec.name);
        assert!(!spec.description.is_empty() && !spec.accepted.is_empty(), "{}", spec.name);
    }
}

#[test]
fn reference_documents_every_key() {
    let reference = config::reference();
    for spec in keys() {
        assert!(reference.contains(spec.name) && reference.contains(spec.description), "{}", spec.name);
    }
}

#[test]
fn example_env_file_uncommented_loads_to_the_defaults() {
    let example = config::example_env_file();
    let uncommented: String = example
        .lines()
        .map(|l| if l.starts_with("#VMSRS_") { &l[1..] } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let file = TempFile::new(uncommented);
    let loaded = load(Some(file.path()), &[]).expect("example loads");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    assert_eq!(loaded.config, Config { env_file: Some(file.path().to_path_buf()), ..Config::default() });
}

#[test]
fn describe_lists_every_setting_once_in_table_order() {
    let text = Config::default().describe();
    let names: Vec<&str> = text.lines().map(|l| l.split_once('=').expect("key=value").0).collect();
    let expected: Vec<&str> =
        keys().iter().map(|s| s.name).filter(|n| !n.contains('<') && *n != "VMSRS_OPTIONS").collect();
    assert_eq!(names, expected);
    assert!(text.contains("VMSRS_POLICY=oblivious\n"));
    assert!(text.contains("VMSRS_SIGNALS=SEGV,BUS,FPE,ILL\n"));
    assert!(text.contains("VMSRS_CONTAIN_IMPLICIT=1\n"));
}

#[test]
fn describe_output_loads_back_to_the_same_config() {
    let config = loaded(&[
        ("VMSRS_POLICY", "unwind"),
        ("VMSRS_SIGNALS", "abrt,segv"),
        ("VMSRS_FAULT_BUDGET", "7"),
        ("VMSRS_SAME_PC_LIMIT", "9"),
        ("VMSRS_TIME_BUDGET_MS", "0"),
        ("VMSRS_EXPOSURE", "yes"),
        ("VMSRS_EXPOSURE_POLICY", "cascade"),
        ("VMSRS_HOST", "trap"),
        ("VMSRS_CONTAIN_IMPLICIT", "off"),
        ("VMSRS_VERBOSE", "2"),
        ("VMSRS_LOG_PATH", "/var/log/vmsrs/mysqld"),
        ("VMSRS_METRICS_PATH", "/var/lib/node_exporter/vmsrs.prom"),
        ("VMSRS_METRICS_INTERVAL_MS", "250"),
        ("VMSRS_USER_CALL", "do_command:1, _ZN3foo3barEv:-0x10"),
        ("VMSRS_CHILDREN", "keep"),
        ("VMSRS_RANGE_3", "symbol:max_connections:8"),
        ("VMSRS_RANGE_200", "4096+0x20"),
        ("VMSRS_RANGES", "symbol:table, 0x7f0000001000+4096"),
    ])
    .config;
    let text = config.describe();
    assert!(text.contains("VMSRS_RANGE_3=symbol:max_connections:8\n"), "{text}");
    assert!(text.contains("VMSRS_RANGE_200=0x1000+32\n"), "{text}");
    let pairs: Vec<(String, String)> = text
        .lines()
        .map(|l| l.split_once('=').unwrap())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| k != "VMSRS_ENV_FILE")
        .collect();
    assert_eq!(load(None, &pairs).unwrap().config, config);
}

// ---------------------------------------------------------------------------------------------
// Every key, good and bad values.

#[test]
fn policy_accepts_its_names_in_any_case() {
    assert_eq!(config_with("VMSRS_POLICY", "unwind").policy, Policy::Unwind);
    assert_eq!(config_with("VMSRS_POLICY", "Oblivious").policy, Policy::Oblivious);
    assert_eq!(config_with("VMSRS_POLICY", "UNWIND").policy, Policy::Unwind);
}

#[test]
fn bad_policy_value_is_rejected_with_accepted_values() {
    for bad in ["crash", "", " unwind", "unwind ", "un wind"] {
        assert_bad_value("VMSRS_POLICY", bad);
    }
    let err = load_env(&[("VMSRS_POLICY", "crash")]).unwrap_err();
    assert!(err.to_string().contains("(accepted: oblivious | unwind | abort)"), "{err}");
    assert_eq!(config_with("VMSRS_POLICY", "abort").policy, Policy::Abort);
}

#[test]
fn signals_accept_names_with_or_without_sig_prefix() {
    let set = |v| config_with("VMSRS_SIGNALS", v).signals;
    let expect = |s: &[Signal]| s.iter().copied().collect::<SignalSet>();
    assert_eq!(set("SEGV"), expect(&[Signal::Segv]));
    assert_eq!(set("sigabrt,SIGBUS"), expect(&[Signal::Abrt, Signal::Bus]));
    assert_eq!(set(" SEGV , ill "), expect(&[Signal::Segv, Signal::Ill]));
    assert_eq!(set("SEGV,SIGSEGV"), expect(&[Signal::Segv]));
    assert_eq!(set("SEGV,BUS,FPE,ILL,ABRT").iter().count(), 5);
}

#[test]
fn signal_numbers_are_the_platform_ones() {
    assert_eq!(Signal::Segv.number(), libc::SIGSEGV);
    assert_eq!(Signal::Abrt.number(), libc::SIGABRT);
    assert_eq!(Signal::parse("SigFpe"), Some(Signal::Fpe));
    assert_eq!(Signal::parse("SIG"), None);
}

#[test]
fn empty_signal_list_is_rejected_because_it_turns_recovery_off() {
    assert_bad_value("VMSRS_SIGNALS", "");
    assert_bad_value("VMSRS_SIGNALS", "  ");
    let err = load_env(&[("VMSRS_SIGNALS", "")]).unwrap_err();
    assert!(err.to_string().contains("turn fault containment off"), "{err}");
}

#[test]
fn bad_signal_values_are_rejected() {
    for bad in ["SEGV,,BUS", "SEGV,", "KILL", "SIGHUP", "11", "SIG", "SEGV BUS"] {
        assert_bad_value("VMSRS_SIGNALS", bad);
    }
}

#[test]
fn fault_budget_accepts_the_u32_range() {
    assert_eq!(config_with("VMSRS_FAULT_BUDGET", "0").fault_budget, 0);
    assert_eq!(config_with("VMSRS_FAULT_BUDGET", "4294967295").fault_budget, u32::MAX);
    assert_eq!(config_with("VMSRS_FAULT_BUDGET", "007").fault_budget, 7);
}

#[test]
fn bad_fault_budget_values_are_rejected() {
    for bad in ["", "-1", "+3", "4294967296", "3.0", "0x10", " 3", "1_000", "ten"] {
        assert_bad_value("VMSRS_FAULT_BUDGET", bad);
    }
}

#[test]
fn same_pc_limit_must_be_at_least_one() {
    assert_eq!(config_with("VMSRS_SAME_PC_LIMIT", "1").same_pc_limit, 1);
    assert_eq!(config_with("VMSRS_SAME_PC_LIMIT", "4294967295").same_pc_limit, u32::MAX);
    for bad in ["0", "", "-1", "4294967296"] {
        assert_bad_value("VMSRS_SAME_PC_LIMIT", bad);
    }
}

#[test]
fn time_budget_accepts_the_u64_range() {
    assert_eq!(config_with("VMSRS_TIME_BUDGET_MS", "0").time_budget_ms, 0);
    assert_eq!(config_with("VMSRS_TIME_BUDGET_MS", "18446744073709551615").time_budget_ms, u64::MAX);
    for bad in ["18446744073709551616", "1s", "", "2e3"] {
        assert_bad_value("VMSRS_TIME_BUDGET_MS", bad);
    }
}

#[test]
fn booleans_accept_every_documented_spelling_in_any_case() {
    for key in ["VMSRS_EXPOSURE", "VMSRS_CONTAIN_IMPLICIT", "VMSRS_STRICT", "VMSRS_PATCH_STORES"] {
        let get = |v| {
            let c = config_with(key, v);
            match key {
                "VMSRS_EXPOSURE" => c.exposure,
                "VMSRS_CONTAIN_IMPLICIT" => c.contain_implicit,
                "VMSRS_PATCH_STORES" => c.watch_patch,
                _ => c.strict,
            }
        };
        for yes in ["1", "true", "yes", "on", "TRUE", "Yes", "ON"] {
            assert!(get(yes), "{key}={yes}");
        }
        for no in ["0", "false", "no", "off", "FALSE", "No", "Off"] {
            assert!(!get(no), "{key}={no}");
        }
    }
}

#[test]
fn bad_boolean_values_are_rejected() {
    for key in ["VMSRS_EXPOSURE", "VMSRS_CONTAIN_IMPLICIT", "VMSRS_STRICT", "VMSRS_PATCH_STORES"] {
        for bad in ["", "2", "y", "n", "enabled", " 1", "-1"] {
            assert_bad_value(key, bad);
        }
    }
}

#[test]
fn exposure_policy_accepts_report_and_cascade() {
    assert_eq!(config_with("VMSRS_EXPOSURE_POLICY", "cascade").exposure_policy, ExposurePolicy::Cascade);
    assert_eq!(config_with("VMSRS_EXPOSURE_POLICY", "REPORT").exposure_policy, ExposurePolicy::Report);
    for bad in ["", "ignore", "fault"] {
        assert_bad_value("VMSRS_EXPOSURE_POLICY", bad);
    }
}

#[test]
fn host_accepts_all_three_hosts() {
    assert_eq!(config_with("VMSRS_HOST", "inproc").host, Host::InProc);
    assert_eq!(config_with("VMSRS_HOST", "process").host, Host::Process);
    assert_eq!(config_with("VMSRS_HOST", "Trap").host, Host::Trap);
    for bad in ["", "in-proc", "svm", "kvm"] {
        assert_bad_value("VMSRS_HOST", bad);
    }
}

#[test]
fn verbose_accepts_levels_zero_to_two() {
    for (text, level) in [("0", 0), ("1", 1), ("2", 2)] {
        assert_eq!(config_with("VMSRS_VERBOSE", text).verbose, level);
    }
    for bad in ["3", "-1", "", "256", "high"] {
        assert_bad_value("VMSRS_VERBOSE", bad);
    }
}

#[test]
fn log_path_is_optional_and_taken_verbatim() {
    assert_eq!(config_with("VMSRS_LOG_PATH", "/var/log/a b").log_path, Some(PathBuf::from("/var/log/a b")));
    assert_eq!(config_with("VMSRS_LOG_PATH", "").log_path, None);
}

#[test]
fn report_paths_must_be_absolute_file_names() {
    for key in ["VMSRS_LOG_PATH", "VMSRS_METRICS_PATH"] {
        for bad in ["relative/x", "x", "/var/log/", "/var/log/.", "/var/log/.."] {
            assert_bad_value(key, bad);
        }
    }
    assert_eq!(
        config_with("VMSRS_METRICS_PATH", "/var/lib/node_exporter/vmsrs.prom").metrics_path,
        Some(PathBuf::from("/var/lib/node_exporter/vmsrs.prom"))
    );
    assert_eq!(config_with("VMSRS_METRICS_PATH", "").metrics_path, None);
}

#[test]
fn metrics_interval_is_bounded() {
    assert_eq!(config_with("VMSRS_METRICS_INTERVAL_MS", "10").metrics_interval_ms, 10);
    assert_eq!(config_with("VMSRS_METRICS_INTERVAL_MS", "86400000").metrics_interval_ms, 86_400_000);
    for bad in ["0", "9", "86400001", "-1", "1s", ""] {
        assert_bad_value("VMSRS_METRICS_INTERVAL_MS", bad);
    }
}

#[test]
fn user_call_accepts_symbol_retval_lists_and_empty() {
    let call = |s: &str, r: i64| UserCall { symbol: s.to_owned(), on_fault: OnFault::Return(r) };
    assert_eq!(config_with("VMSRS_USER_CALL", "do_command:1").user_calls, vec![call("do_command", 1)]);
    let throws = config_with("VMSRS_USER_CALL", "_ZN10Adaptation4Ecap10XactionRep5startEv:throw");
    assert_eq!(
        throws.user_calls,
        vec![UserCall {
            symbol: "_ZN10Adaptation4Ecap10XactionRep5startEv".to_owned(),
            on_fault: OnFault::Throw
        }]
    );
    assert_eq!(throws.user_calls[0].to_string(), "_ZN10Adaptation4Ecap10XactionRep5startEv:throw");
    assert_eq!(
        config_with("VMSRS_USER_CALL", "f : throw , g: -2").user_calls,
        vec![UserCall { symbol: "f".to_owned(), on_fault: OnFault::Throw }, call("g", -2)]
    );
    assert_eq!(
        config_with("VMSRS_USER_CALL", "_ZN3foo6rescueEv:-1, ap_invoke_handler:0x1f4").user_calls,
        vec![call("_ZN3foo6rescueEv", -1), call("ap_invoke_handler", 500)]
    );
    assert_eq!(config_with("VMSRS_USER_CALL", "").user_calls, vec![]);
    for bad in [
        "has space:1",
        "1abc:0",
        "f",
        "f:",
        "f:x",
        "f()",
        "f:1,f:2",
        "f:99999999999999999999",
        ":1",
        "f:Throw",
        "f:throw:1",
    ] {
        assert_bad_value("VMSRS_USER_CALL", bad);
    }
}

#[test]
fn children_is_drop_or_keep() {
    assert_eq!(config_with("VMSRS_CHILDREN", "keep").children, Children::Keep);
    assert_eq!(config_with("VMSRS_CHILDREN", "DROP").children, Children::Drop);
    assert_bad_value("VMSRS_CHILDREN", "sometimes");
}

#[test]
fn the_old_rescue_key_is_unknown_and_warned_about() {
    let l = loaded(&[("VMSRS_RESCUE", "f")]);
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
}

fn slot(value: &str) -> RangeSpec {
    config_with("VMSRS_RANGE_0", value).range_slots[&0].clone()
}

#[test]
fn range_accepts_symbol_forms() {
    let sym = |name: &str, len| RangeSpec::Symbol { name: name.to_owned(), len };
    assert_eq!(slot("symbol:max_connections"), sym("max_connections", None));
    assert_eq!(slot("symbol:buf:4096"), sym("buf", Some(4096)));
    assert_eq!(slot("symbol:buf:0x1000"), sym("buf", Some(4096)));
    assert_eq!(slot("symbol:table.lto_priv.0"), sym("table.lto_priv.0", None));
}

#[test]
fn range_accepts_address_forms() {
    assert_eq!(slot("0x601040+64"), RangeSpec::Addr { addr: 0x601040, len: 64 });
    assert_eq!(slot("4096+0x10"), RangeSpec::Addr { addr: 4096, len: 16 });
    assert_eq!(slot("0XFF+1"), RangeSpec::Addr { addr: 255, len: 1 });
    let top = format!("{:#x}+1", usize::MAX - 1);
    assert_eq!(slot(&top), RangeSpec::Addr { addr: usize::MAX - 1, len: 1 });
}

#[test]
fn range_accepts_module_forms() {
    let module = |name: &str, offset, len| RangeSpec::Module { name: name.to_owned(), offset, len };
    assert_eq!(slot("module:mariadbd+0x1a2b40:8"), module("mariadbd", 0x1a2b40, 8));
    assert_eq!(slot("module:mod_x.so+0:0x10"), module("mod_x.so", 0, 16));
    assert_eq!(slot("module:libc-2.36.so+64:1"), module("libc-2.36.so", 64, 1));
    // Displayed as parsed back.
    assert_eq!(slot(&module("a_b", 4096, 3).to_string()), module("a_b", 4096, 3));
}

#[test]
fn bad_range_values_are_rejected() {
    let overflow = format!("{:#x}+2", usize::MAX - 1);
    let module_overflow = format!("module:a+{:#x}:2", usize::MAX - 1);
    for bad in [
        "module:",
        "module:a",
        "module:a+8",
        "module:a+8:0",
        "module:+8:1",
        "module:a/b+8:1",
        "module:a b+8:1",
        "module:a+x:1",
        "module:a+8:1:2",
        module_overflow.as_str(),
        "symbol:",
        "symbol:a:0",
        "symbol:a:b",
        "symbol:a:1:2",
        "symbol:a b",
        "symbol:9lives",
        "Symbol:a",
        "0x10",
        "0x10+0",
        "0+8",
        "0x+8",
        "0xzz+1",
        "-4+4",
        "16+-1",
        "99999999999999999999999+1",
        overflow.as_str(),
        "foo",
        " 0x10+4",
    ] {
        assert_bad_value("VMSRS_RANGE_0", bad);
    }
}

#[test]
fn range_slots_cover_indices_zero_to_255() {
    let config = loaded(&[("VMSRS_RANGE_0", "1+1"), ("VMSRS_RANGE_255", "2+1")]).config;
    assert_eq!(config.range_slots.keys().copied().collect::<Vec<_>>(), [0, 255]);
}

#[test]
fn bad_range_index_is_an_error_not_a_silent_drop() {
    for key in ["VMSRS_RANGE_256", "VMSRS_RANGE_007", "VMSRS_RANGE_", "VMSRS_RANGE_x", "VMSRS_RANGE_-1"] {
        let err = load_env(&[(key, "1+1")]).expect_err(key);
        assert!(matches!(&err, ConfigError::BadKey { key: k, .. } if k == key), "{key}: {err:?}");
        assert_eq!(err.code(), VMSRS_ECONFIG);
        assert!(err.to_string().contains("0..=255"), "{err}");
    }
}

#[test]
fn watch_modes_apply_per_range_slot_with_a_default_for_the_rest() {
    let l = loaded(&[
        ("VMSRS_WATCH", "auto"),
        ("VMSRS_RANGE_1", "symbol:a"),
        ("VMSRS_RANGE_2", "symbol:b"),
        ("VMSRS_WATCH_2", "hw"),
        ("VMSRS_RANGES", "symbol:c"),
    ]);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let modes: Vec<(String, Watch)> =
        l.config.all_watched_ranges().map(|(r, w)| (r.to_string(), w)).collect();
    assert_eq!(
        modes,
        [("symbol:a".into(), Watch::Auto), ("symbol:b".into(), Watch::Hw), ("symbol:c".into(), Watch::Auto)]
    );
    assert!(l.config.describe().contains("VMSRS_WATCH_2=hw\n"), "{}", l.config.describe());
    assert_eq!(Config::default().watch, Watch::Page);
}

#[test]
fn a_bad_watch_mode_is_an_error_and_a_watch_slot_without_range_is_a_warning() {
    for (key, value) in [("VMSRS_WATCH", "hardware"), ("VMSRS_WATCH_4", "HW "), ("VMSRS_WATCH", "")] {
        let err = load_env(&[(key, value)]).expect_err(key);
        assert_eq!(err.code(), VMSRS_ECONFIG, "{key}={value}: {err}");
        assert!(err.to_string().contains(key), "{err}");
    }
    let err = load_env(&[("VMSRS_WATCH_256", "hw")]).expect_err("index");
    assert!(err.to_string().contains("0..=255"), "{err}");
    let l = loaded(&[("VMSRS_WATCH_7", "hw")]);
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].contains("VMSRS_RANGE_7 is not"), "{:?}", l.warnings);
    let strict = load_env(&[("VMSRS_WATCH_7", "hw"), ("VMSRS_STRICT", "1")]).expect_err("strict");
    assert_eq!(strict.code(), VMSRS_ECONFIG);
}

#[test]
fn ranges_list_accepts_mixed_items_and_empty() {
    let config = config_with("VMSRS_RANGES", "symbol:a, 0x1000+8 ,symbol:b:2");
    assert_eq!(
        config.ranges,
        [
            RangeSpec::Symbol { name: "a".into(), len: None },
            RangeSpec::Addr { addr: 0x1000, len: 8 },
            RangeSpec::Symbol { name: "b".into(), len: Some(2) },
        ]
    );
    assert!(config_with("VMSRS_RANGES", "").ranges.is_empty());
    for bad in ["symbol:a,,0x10+1", "symbol:a,", ",symbol:a", "symbol:a;symbol:b"] {
        assert_bad_value("VMSRS_RANGES", bad);
    }
}

#[test]
fn all_ranges_lists_slots_by_index_then_the_list() {
    let config =
        loaded(&[("VMSRS_RANGES", "0x30+1"), ("VMSRS_RANGE_10", "0x20+1"), ("VMSRS_RANGE_2", "0x10+1")])
            .config;
    let addrs: Vec<usize> = config
        .all_ranges()
        .map(|r| match r {
            RangeSpec::Addr { addr, .. } => *addr,
            RangeSpec::Symbol { .. } | RangeSpec::Module { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(addrs, [0x10, 0x20, 0x30]);
}

// ---------------------------------------------------------------------------------------------
// Layers and precedence.

#[test]
fn env_file_overrides_defaults() {
    let file = TempFile::new("VMSRS_POLICY=unwind\nVMSRS_FAULT_BUDGET='3'\n");
    let config = load(Some(file.path()), &[]).unwrap().config;
    assert_eq!((config.policy, config.fault_budget), (Policy::Unwind, 3));
    assert_eq!(config.env_file.as_deref(), Some(file.path()));
}

#[test]
fn environment_overrides_env_file() {
    let file = TempFile::new("VMSRS_POLICY=unwind\nVMSRS_VERBOSE=1\n");
    let config = load(Some(file.path()), &env(&[("VMSRS_POLICY", "oblivious")])).unwrap().config;
    assert_eq!((config.policy, config.verbose), (Policy::Oblivious, 1));
}

#[test]
fn options_override_environment_and_env_file() {
    let file = TempFile::new("VMSRS_POLICY=unwind\nVMSRS_FAULT_BUDGET=1\nVMSRS_HOST=trap\n");
    let environ = env(&[
        ("VMSRS_FAULT_BUDGET", "2"),
        ("VMSRS_VERBOSE", "2"),
        ("VMSRS_OPTIONS", "fault_budget=3:host=process"),
    ]);
    let config = load(Some(file.path()), &environ).unwrap().config;
    assert_eq!(config.policy, Policy::Unwind, "file value kept");
    assert_eq!(config.verbose, 2, "environment value kept");
    assert_eq!(config.fault_budget, 3, "options beat environment and file");
    assert_eq!(config.host, Host::Process, "options beat file");
}

#[test]
fn later_duplicate_in_env_file_wins_with_a_warning() {
    let file = TempFile::new("VMSRS_VERBOSE=1\nVMSRS_VERBOSE=2\n");
    let loaded = load(Some(file.path()), &[]).unwrap();
    assert_eq!(loaded.config.verbose, 2);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains(":2: VMSRS_VERBOSE is also set on line 1"), "{:?}", loaded.warnings);
}

#[test]
fn empty_range_slot_in_environment_unsets_the_file_slot() {
    let file = TempFile::new("VMSRS_RANGE_1=symbol:a\nVMSRS_RANGE_2=symbol:b\n");
    let config = load(Some(file.path()), &env(&[("VMSRS_RANGE_1", "")])).unwrap().config;
    assert_eq!(config.range_slots.keys().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn explicit_env_file_argument_beats_vmsrs_env_file() {
    let chosen = TempFile::new("VMSRS_VERBOSE=1\n");
    let other = TempFile::new("VMSRS_VERBOSE=2\n");
    let environ = env(&[("VMSRS_ENV_FILE", other.path().to_str().unwrap())]);
    let config = load(Some(chosen.path()), &environ).unwrap().config;
    assert_eq!((config.verbose, config.env_file.as_deref()), (1, Some(chosen.path())));
}

#[test]
fn vmsrs_env_file_is_used_without_an_argument() {
    let file = TempFile::new("VMSRS_VERBOSE=2\n");
    let config = loaded(&[("VMSRS_ENV_FILE", file.path().to_str().unwrap())]).config;
    assert_eq!((config.verbose, config.env_file.as_deref()), (2, Some(file.path())));
}

#[test]
fn empty_vmsrs_env_file_means_no_file() {
    let loaded = loaded(&[("VMSRS_ENV_FILE", "")]);
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty());
}

#[test]
fn options_keys_are_case_insensitive_with_or_without_prefix() {
    let config =
        loaded(&[("VMSRS_OPTIONS", "policy=unwind:VMSRS_FAULT_BUDGET=5:Vmsrs_Verbose=1:HOST=trap")]).config;
    assert_eq!(
        (config.policy, config.fault_budget, config.verbose, config.host),
        (Policy::Unwind, 5, 1, Host::Trap)
    );
}

#[test]
fn options_values_may_contain_colons() {
    let config =
        loaded(&[("VMSRS_OPTIONS", "range_0=symbol:buf:64:ranges=symbol:a,symbol:b:2:policy=unwind")]).config;
    assert_eq!(config.range_slots[&0], RangeSpec::Symbol { name: "buf".into(), len: Some(64) });
    assert_eq!(config.ranges.len(), 2);
    assert_eq!(config.policy, Policy::Unwind);
}

#[test]
fn options_skip_empty_items_and_trim_blanks() {
    let config = loaded(&[("VMSRS_OPTIONS", ":: policy = unwind ::verbose=2:")]).config;
    assert_eq!((config.policy, config.verbose), (Policy::Unwind, 2));
}

#[test]
fn options_item_without_equals_is_a_warning() {
    let loaded = loaded(&[("VMSRS_OPTIONS", "unwind:verbose=1")]);
    assert_eq!(loaded.config.verbose, 1);
    assert_eq!(loaded.warnings, ["VMSRS_OPTIONS: item \"unwind\" has no '='; ignored"]);
}

#[test]
fn bad_value_in_options_names_vmsrs_options_as_source() {
    let err = load_env(&[("VMSRS_OPTIONS", "fault_budget=lots")]).unwrap_err();
    assert!(
        matches!(&err, ConfigError::BadValue { key, source: Source::Options, .. } if key == "VMSRS_FAULT_BUDGET")
    );
    assert!(err.to_string().starts_with("VMSRS_OPTIONS: VMSRS_FAULT_BUDGET=\"lots\" is invalid"), "{err}");
}

#[test]
fn bad_value_in_env_file_names_file_and_line() {
    let file = TempFile::new("# policy\n\nVMSRS_POLICY=crash\n");
    let err = load(Some(file.path()), &[]).unwrap_err();
    let at = Source::File { path: file.path().to_path_buf(), line: 3 };
    assert!(matches!(&err, ConfigError::BadValue { source, .. } if *source == at), "{err:?}");
    assert!(err.to_string().starts_with(&format!("{}:3: VMSRS_POLICY=\"crash\"", file.path().display())));
}

#[test]
fn bad_value_is_an_error_even_without_strict() {
    let file = TempFile::new("VMSRS_STRICT=0\nVMSRS_SAME_PC_LIMIT=0\n");
    assert_eq!(load(Some(file.path()), &[]).unwrap_err().code(), VMSRS_ECONFIG);
}

#[test]
fn bad_value_in_a_lower_layer_is_an_error_even_if_overridden() {
    let file = TempFile::new("VMSRS_POLICY=crash\n");
    assert!(load(Some(file.path()), &env(&[("VMSRS_POLICY", "unwind")])).is_err());
}

// ---------------------------------------------------------------------------------------------
// Unknown keys and strict mode.

#[test]
fn unknown_vmsrs_key_gives_one_warning_and_the_run_continues() {
    let file = TempFile::new("VMSRS_POLCY=unwind\n");
    let environ = env(&[("VMSRS_POLCY", "unwind"), ("VMSRS_OPTIONS", "polcy=unwind")]);
    let loaded = load(Some(file.path()), &environ).unwrap();
    assert_eq!(loaded.config.policy, Policy::Oblivious);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("unknown key VMSRS_POLCY ignored (did you mean VMSRS_POLICY?)"));
}

#[test]
fn each_unknown_key_gets_its_own_warning() {
    let loaded = loaded(&[("VMSRS_FOO", "1"), ("VMSRS_BAR", "2")]);
    assert_eq!(
        loaded.warnings,
        ["environment: unknown key VMSRS_FOO ignored", "environment: unknown key VMSRS_BAR ignored"]
    );
}

#[test]
fn non_vmsrs_process_environment_is_ignored_silently() {
    let loaded = loaded(&[("PATH", "/bin"), ("POLICY", "unwind"), ("vmsrs_policy", "unwind")]);
    assert_eq!(loaded, Loaded { config: Config::default(), warnings: vec![] });
}

#[test]
fn non_vmsrs_key_in_env_file_is_warned_about() {
    let file = TempFile::new("MYSQL_HOME=/etc/mysql\nVMSRS_VERBOSE=1\n");
    let loaded = load(Some(file.path()), &[]).unwrap();
    assert_eq!(loaded.config.verbose, 1);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].ends_with(":1: MYSQL_HOME is not a libvmsrs key (VMSRS_*); ignored"));
}

#[test]
fn environment_only_keys_in_env_file_or_options_are_ignored_with_a_warning() {
    let file = TempFile::new("VMSRS_ENV_FILE=/elsewhere.env\nVMSRS_OPTIONS=policy=unwind\n");
    let loaded = load(Some(file.path()), &env(&[("VMSRS_OPTIONS", "options=x")])).unwrap();
    assert_eq!(loaded.config.policy, Policy::Oblivious);
    assert_eq!(loaded.config.env_file.as_deref(), Some(file.path()));
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(loaded.warnings.iter().all(|w| w.contains("read only from the process environment")));
}

#[test]
fn strict_mode_turns_warnings_into_an_error() {
    let err = load_env(&[("VMSRS_STRICT", "1"), ("VMSRS_FOO", "1")]).unwrap_err();
    assert_eq!(err.code(), VMSRS_ECONFIG);
    match &err {
        ConfigError::Strict { warnings } => {
            assert_eq!(warnings, &["environment: unknown key VMSRS_FOO ignored"])
        }
        other => panic!("expected Strict, got {other:?}"),
    }
    assert!(err.to_string().contains("VMSRS_STRICT"), "{err}");
}

#[test]
fn strict_mode_without_warnings_loads() {
    let loaded = loaded(&[("VMSRS_STRICT", "1")]);
    assert!(loaded.config.strict && loaded.warnings.is_empty());
}

#[test]
fn strict_mode_is_decided_by_the_final_value() {
    let file = TempFile::new("VMSRS_STRICT=1\nVMSRS_FOO=1\n");
    let loaded = load(Some(file.path()), &env(&[("VMSRS_STRICT", "0")])).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    let file = TempFile::new("VMSRS_FOO=1\n");
    let err = load(Some(file.path()), &env(&[("VMSRS_OPTIONS", "strict=yes")])).unwrap_err();
    assert!(matches!(err, ConfigError::Strict { .. }));
}

// ---------------------------------------------------------------------------------------------
// Environment-file errors.

#[test]
fn missing_env_file_is_an_io_error_with_code_eio() {
    let path = std::env::temp_dir().join("vmsrs-config-test-does-not-exist.env");
    let err = load(Some(&path), &[]).unwrap_err();
    assert_eq!(err.code(), VMSRS_EIO);
    assert!(matches!(&err, ConfigError::EnvFile(e) if e.is_io()));
    assert!(err.to_string().starts_with(&format!("{}: cannot read", path.display())), "{err}");
}

#[test]
fn missing_file_named_by_vmsrs_env_file_is_an_io_error() {
    let err = load_env(&[("VMSRS_ENV_FILE", "/nonexistent/vmsrs/x.env")]).unwrap_err();
    assert_eq!(err.code(), VMSRS_EIO);
}

#[test]
fn directory_as_env_file_is_an_io_error() {
    let err = load(Some(&std::env::temp_dir()), &[]).unwrap_err();
    assert_eq!(err.code(), VMSRS_EIO);
}

#[test]
fn env_file_syntax_error_has_code_econfig_and_path_line_reason() {
    let file = TempFile::new("VMSRS_VERBOSE=1\nexport VMSRS_POLICY=unwind\n");
    let err = load(Some(file.path()), &[]).unwrap_err();
    assert_eq!(err.code(), VMSRS_ECONFIG);
    match &err {
        ConfigError::EnvFile(e) => {
            assert_eq!((e.line(), e.reason()), (Some(2), Some(&Reason::ExportPrefix)));
            assert_eq!(e.path(), Some(file.path()));
        }
        other => panic!("expected EnvFile, got {other:?}"),
    }
    assert!(err.to_string().starts_with(&format!("{}:2: `export` prefix", file.path().display())), "{err}");
}

#[test]
fn env_file_with_invalid_utf8_is_rejected_with_its_line() {
    let file = TempFile::new(b"VMSRS_VERBOSE=1\nVMSRS_USER_CALL=caf\xe9\n");
    let err = load(Some(file.path()), &[]).unwrap_err();
    assert!(err.to_string().contains(":2: invalid UTF-8"), "{err}");
    assert_eq!(err.code(), VMSRS_ECONFIG);
}

#[test]
fn oversized_env_file_is_rejected_as_a_configuration_error() {
    let big = "# padding\n".repeat((vmsrs_config::envfile::MAX_FILE_BYTES as usize) / 10 + 1);
    let file = TempFile::new(big);
    let err = load(Some(file.path()), &[]).unwrap_err();
    assert!(matches!(&err, ConfigError::EnvFile(e) if matches!(e.kind(), ErrorKind::TooLarge { .. })));
    assert_eq!(err.code(), VMSRS_ECONFIG);
}

#[test]
fn error_codes_match_the_c_abi() {
    assert_eq!((VMSRS_ECONFIG, VMSRS_EIO), (-11, -15));
}

// ---------------------------------------------------------------------------------------------
// Process environment.

#[test]
fn environ_snapshot_keeps_only_vmsrs_keys() {
    std::env::set_var("VMSRS_TEST_SNAPSHOT_KEY", "snap");
    std::env::set_var("NOT_VMSRS_TEST_SNAPSHOT_KEY", "x");
    let snapshot = environ_snapshot();
    assert!(snapshot.contains(&("VMSRS_TEST_SNAPSHOT_KEY".to_owned(), "snap".to_owned())));
    assert!(snapshot.iter().all(|(k, _)| k.starts_with("VMSRS_")));
}
