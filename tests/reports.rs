//! Reports an operator can use (c-examples/reports.c): symbolized frames in the stderr block,
//! the JSON Lines fault log (`VMSRS_LOG_PATH`, one file per process, forked children
//! included), the Prometheus textfile (`VMSRS_METRICS_PATH`, replaced atomically, matching
//! `vmsrs_stats`), the reporter thread's signal mask, and start-up refusal of bad paths.

mod common;

use common::{c_example_flags, run, Build, Spawned, POLICIES};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

/// reports.c with frame pointers and every function a dynamic symbol.
fn reports_fp() -> PathBuf {
    c_example_flags("reports", Build::Libvmsrs, "fp", &["-rdynamic", "-fno-omit-frame-pointer"])
}

/// reports.c as most -O2 code is built: no frame pointers.
fn reports_nofp() -> PathBuf {
    c_example_flags("reports", Build::Libvmsrs, "nofp", &["-rdynamic", "-fomit-frame-pointer"])
}

/// A fresh directory under target/tmp.
fn scratch(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = common::target_dir().join("tmp").join(format!(
        "reports-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A parsed frame line `#N 0xPC [module+0xOFF [(symbol+0xOFF)]]`.
#[derive(Debug, Clone)]
struct Frame {
    n: usize,
    pc: u64,
    module: Option<(String, u64)>,
    symbol: Option<(String, u64)>,
}

fn hex(t: &str) -> Option<u64> {
    u64::from_str_radix(t.strip_prefix("0x")?, 16).ok()
}

/// Parse a frame line (the `==PID==vmsrs: ` prefix removed); `Err` says why it is malformed.
fn parse_frame(line: &str) -> Result<Frame, String> {
    let rest = line.strip_prefix("    #").ok_or("no '    #'")?;
    let mut parts = rest.split(' ');
    let n = parts.next().and_then(|t| t.parse().ok()).ok_or("bad frame number")?;
    let pc = parts.next().and_then(hex).ok_or("bad pc")?;
    let module = match parts.next() {
        None => None,
        Some(m) => {
            let (name, off) = m.rsplit_once('+').ok_or("module without +")?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("bad module name".into());
            }
            Some((name.to_string(), hex(off).ok_or("bad module offset")?))
        }
    };
    let symbol = match parts.next() {
        None => None,
        Some(sym) => {
            let inner = sym.strip_prefix('(').and_then(|x| x.strip_suffix(')')).ok_or("symbol not in ()")?;
            let (name, off) = inner.rsplit_once('+').ok_or("symbol without +")?;
            if name.is_empty() {
                return Err("empty symbol".into());
            }
            Some((name.to_string(), hex(off).ok_or("bad symbol offset")?))
        }
    };
    if parts.next().is_some() {
        return Err("trailing text".into());
    }
    if symbol.is_some() && module.is_none() {
        return Err("symbol without module".into());
    }
    Ok(Frame { n, pc, module, symbol })
}

/// The fault blocks on stderr: each "contained ..." line with its frames.
fn blocks(stderr: &str, pid: u32) -> Vec<(String, Vec<Frame>)> {
    let mut out: Vec<(String, Vec<Frame>)> = Vec::new();
    for l in common::vmsrs_report_lines(stderr, pid) {
        if l.starts_with("contained ") {
            out.push((l, Vec::new()));
        } else if l.starts_with("    #") {
            let f = parse_frame(&l).unwrap_or_else(|e| panic!("malformed frame line {l:?}: {e}\n{stderr}"));
            out.last_mut().expect("frame before any block").1.push(f);
        }
    }
    out
}

/// Checks every frame of every block must pass, whatever the build: numbered 0.., at most
/// 16, only #0 may lack a module, one module base per module name.
fn check_frames_sane(all: &[(String, Vec<Frame>)], context: &str) {
    let mut bases: HashMap<String, u64> = HashMap::new();
    for (head, frames) in all {
        assert!(frames.len() <= 16, "{head}: too many frames\n{context}");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.n, i, "{head}: frames out of order\n{context}");
            if i > 0 {
                assert!(f.module.is_some(), "{head}: frame #{i} outside every module\n{context}");
            }
            if let Some((m, off)) = &f.module {
                let base = f.pc - off;
                assert_eq!(
                    *bases.entry(m.clone()).or_insert(base),
                    base,
                    "{head}: module {m} base\n{context}"
                );
            }
            if let Some((sym, off)) = &f.symbol {
                assert!(*off < 1 << 20, "{head}: implausible offset {sym}+{off:#x}\n{context}");
            }
        }
    }
}

fn symbol_of(f: &Frame) -> Option<&str> {
    f.symbol.as_ref().map(|(s, _)| s.as_str())
}

#[test]
fn stderr_frames_are_symbolized_module_offsets_under_both_policies() {
    let bin = reports_fp();
    for policy in POLICIES {
        let out = run(&bin, &["faults"], &[("VMSRS_POLICY", policy)], TIMEOUT);
        out.assert_success();
        let ctx = out.describe();
        let all = blocks(&out.stderr, out.pid);
        assert_eq!(all.len(), 4, "four fault blocks\n{ctx}");
        check_frames_sane(&all, &ctx);
        // The NULL load in the exported function, called through reports_middle.
        let (head, fr) = &all[0];
        assert!(head.starts_with("contained SIGSEGV on address 0x0 "), "{head}\n{ctx}");
        assert_eq!(fr[0].module.as_ref().map(|m| m.0.as_str()), Some("reports-fp"), "{ctx}");
        assert_eq!(symbol_of(&fr[0]), Some("reports_null_load"), "{ctx}");
        assert!(fr.len() >= 3, "frames #1 and #2 with frame pointers\n{ctx}");
        assert_eq!(symbol_of(&fr[1]), Some("reports_middle"), "{ctx}");
        assert_eq!(fr[2].module.as_ref().map(|m| m.0.as_str()), Some("reports-fp"), "{ctx}");
        assert_eq!(symbol_of(&all[1].1[0]), Some("reports_wild_store"), "{ctx}");
        assert!(all[2].0.starts_with("contained SIGFPE"), "{ctx}");
        assert_eq!(symbol_of(&all[2].1[0]), Some("reports_divide"), "{ctx}");
        // The explicit entry has no pc, hence no frames.
        assert!(all[3].1.is_empty(), "{ctx}");
        // The frame lines sit between the policy line and the SUMMARY line.
        let lines = common::vmsrs_report_lines(&out.stderr, out.pid);
        let first = lines.iter().position(|l| l.starts_with("    #0 ")).unwrap();
        assert!(lines[first - 1].starts_with("policy applied: "), "{ctx}");
    }
}

#[test]
fn frames_without_frame_pointers_are_never_bogus() {
    let bin = reports_nofp();
    for policy in POLICIES {
        let out = run(&bin, &["faults"], &[("VMSRS_POLICY", policy)], TIMEOUT);
        out.assert_success();
        let ctx = out.describe();
        let all = blocks(&out.stderr, out.pid);
        assert_eq!(all.len(), 4, "{ctx}");
        check_frames_sane(&all, &ctx);
        assert_eq!(symbol_of(&all[0].1[0]), Some("reports_null_load"), "{ctx}");
        // Whatever follows #0 must be the real caller chain, never a guess.
        let expected_callers: [&[&str]; 3] = [&["reports_middle"], &[], &[]];
        for (k, callers) in expected_callers.iter().enumerate() {
            for f in &all[k].1[1..] {
                if let Some(sym) = symbol_of(f) {
                    assert!(
                        callers.contains(&sym) || !sym.starts_with("reports_"),
                        "block {k}: frame #{} names {sym}\n{ctx}",
                        f.n
                    );
                }
            }
        }
    }
}

fn read_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(text.ends_with('\n'), "log ends with a newline: {text:?}");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn is_hex(v: &Value) -> bool {
    v.as_str().is_some_and(|t| hex(t).is_some())
}

fn is_rfc3339_ms(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && t[..4].parse::<u32>().is_ok_and(|y| y >= 2024)
}

#[test]
fn json_log_has_one_event_per_fault_with_the_right_fields() {
    let bin = reports_fp();
    for policy in POLICIES {
        let dir = scratch("json");
        let prefix = dir.join("events");
        let out =
            run(&bin, &["faults"], &[("VMSRS_POLICY", policy), ("VMSRS_LOG_PATH", s(&prefix))], TIMEOUT);
        out.assert_success();
        let ctx = out.describe();
        let file = dir.join(format!("events.reports-fp.{}", out.pid));
        assert!(
            file.is_file(),
            "{} missing; dir has {:?}\n{ctx}",
            file.display(),
            std::fs::read_dir(&dir).unwrap().collect::<Vec<_>>()
        );
        let events = read_events(&file);
        assert_eq!(events.len(), 4, "one event per fault: {events:#?}");
        let skipped = if policy == "oblivious" { "skipped" } else { "unwound" };
        let expect = [
            ("SIGSEGV", "0x0", Some(("reports_null_load", "mov")), skipped),
            ("SIGSEGV", "0x10", Some(("reports_wild_store", "mov")), skipped),
            ("SIGFPE", "", Some(("reports_divide", "idiv")), skipped),
            ("explicit", "0x1234", None, "explicit"),
        ];
        let mut tids = HashSet::new();
        for (i, (e, (sig, addr, at, action))) in events.iter().zip(expect).enumerate() {
            let ctx = format!("event {i}: {e}\n{ctx}");
            assert_eq!(e["event"], "fault", "{ctx}");
            assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "{ctx}");
            assert!(e["time"].as_str().is_some_and(is_rfc3339_ms), "{ctx}");
            assert_eq!(e["pid"].as_u64(), Some(out.pid as u64), "{ctx}");
            let tid = e["tid"].as_u64().expect("tid");
            assert!(tid != 0 && tid != out.pid as u64 && tids.insert(tid), "{ctx}");
            assert!(e["user"].as_u64().is_some_and(|u| u > 0), "{ctx}");
            assert_eq!(e["signal"], sig, "{ctx}");
            assert!(e["code"].is_i64(), "{ctx}");
            assert!(is_hex(&e["address"]) && is_hex(&e["pc"]), "{ctx}");
            if !addr.is_empty() {
                assert_eq!(e["address"], addr, "{ctx}");
            }
            assert_eq!(e["policy"], policy, "{ctx}");
            assert_eq!(e["action"], action, "{ctx}");
            assert_eq!(e["locks_released"], Value::Array(vec![]), "{ctx}");
            match at {
                Some((symbol, mnemonic)) => {
                    assert_eq!(e["module"], "reports-fp", "{ctx}");
                    assert!(is_hex(&e["module_offset"]), "{ctx}");
                    assert_eq!(e["symbol"], symbol, "{ctx}");
                    assert!(is_hex(&e["symbol_offset"]), "{ctx}");
                    assert_eq!(e["instruction"]["mnemonic"], mnemonic, "{ctx}");
                    let len = e["instruction"]["length"].as_u64().expect("length");
                    assert!((1..=15).contains(&len), "{ctx}");
                    assert_eq!(
                        e["instruction"]["bytes"].as_str().map(str::len),
                        Some(2 * len as usize),
                        "{ctx}"
                    );
                    if policy == "oblivious" {
                        assert_eq!(e["skipped_len"].as_u64(), Some(len), "{ctx}");
                    }
                    let frames = e["frames"].as_array().expect("frames");
                    assert!(!frames.is_empty() && frames[0]["pc"] == e["pc"], "{ctx}");
                    assert_eq!(frames[0]["symbol"], symbol, "{ctx}");
                    if i == 0 {
                        assert_eq!(frames[1]["symbol"], "reports_middle", "{ctx}");
                    }
                }
                None => {
                    assert_eq!(e["pc"], "0x0", "{ctx}");
                    assert!(
                        e["module"].is_null() && e["symbol"].is_null() && e["instruction"].is_null(),
                        "{ctx}"
                    );
                    assert_eq!(e["frames"], Value::Array(vec![]), "{ctx}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_forked_child_writes_its_own_log() {
    let bin = reports_fp();
    let dir = scratch("fork");
    let prefix = dir.join("ev");
    let out = run(&bin, &["fork"], &[("VMSRS_LOG_PATH", s(&prefix))], TIMEOUT);
    out.assert_success();
    let ctx = out.describe();
    let child: u32 = out
        .lines()
        .iter()
        .find_map(|l| l.strip_prefix("child "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no child pid\n{ctx}"));
    let parent_events = read_events(&dir.join(format!("ev.reports-fp.{}", out.pid)));
    let child_events = read_events(&dir.join(format!("ev.reports-fp.{child}")));
    assert_eq!(parent_events.len(), 1, "{parent_events:#?}\n{ctx}");
    assert_eq!(child_events.len(), 2, "{child_events:#?}\n{ctx}");
    assert!(parent_events.iter().all(|e| e["pid"].as_u64() == Some(out.pid as u64)));
    assert!(child_events.iter().all(|e| e["pid"].as_u64() == Some(child as u64)));
    assert_eq!(child_events[0]["symbol"], "reports_null_load");
    assert_eq!(child_events[1]["symbol"], "reports_wild_store");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Parse a Prometheus text-format file: `(name, labels, value)` per sample; panics on any line
/// that is neither a comment nor a valid sample.
type Sample = (String, Vec<(String, String)>, f64);

fn parse_prom(text: &str) -> Vec<Sample> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.as_bytes()[0].is_ascii_digit()
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    };
    assert!(text.ends_with('\n'), "file ends with a newline: {text:?}");
    let mut samples = Vec::new();
    let mut typed = HashSet::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            let mut w = c.splitn(3, ' ');
            let (kw, name) = (w.next().unwrap(), w.next().unwrap_or(""));
            assert!(matches!(kw, "HELP" | "TYPE"), "comment {line:?}");
            assert!(valid_name(name) && name.starts_with("vmsrs_"), "{line:?}");
            if kw == "TYPE" {
                let t = w.next().unwrap_or("");
                assert!(matches!(t, "counter" | "gauge"), "{line:?}");
                assert_eq!(name.ends_with("_total"), t == "counter", "{line:?}");
                typed.insert(name.to_string());
            }
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match head.split_once('{') {
            None => (head, Vec::new()),
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("labels in {line:?}"));
                let labels = inner
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("label {kv:?}"));
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).expect("quoted");
                        assert!(valid_name(k) && !v.contains('"') && !v.contains('\\'), "{line:?}");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (n, labels)
            }
        };
        assert!(valid_name(name) && typed.contains(name), "sample of an undeclared family: {line:?}");
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn sample(samples: &[Sample], name: &str) -> u64 {
    let v: f64 = samples.iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| v).sum();
    assert!(samples.iter().any(|(n, _, _)| n == name), "no sample {name}");
    v as u64
}

#[test]
fn metrics_textfile_is_valid_atomic_and_matches_vmsrs_stats() {
    let bin = reports_fp();
    let dir = scratch("metrics");
    let prom = dir.join("vmsrs.prom");
    let log = dir.join("ev");
    let env = [
        ("VMSRS_METRICS_PATH", s(&prom)),
        ("VMSRS_METRICS_INTERVAL_MS", "10"),
        ("VMSRS_LOG_PATH", s(&log)),
        ("VMSRS_POLICY", "unwind"),
    ];
    let mut p = Spawned::start(&bin, &["loop", "2500"], &env, false);
    let start = Instant::now();
    let (mut reads, mut missing) = (0, 0);
    while p.try_status().is_none() {
        assert!(start.elapsed() < TIMEOUT, "still running\n{}", p.describe());
        match std::fs::read_to_string(&prom) {
            Ok(text) => {
                let samples = parse_prom(&text);
                // The last family is always there: the file is never seen half written.
                sample(&samples, "vmsrs_report_write_errors_total");
                reads += 1;
            }
            Err(_) => missing += 1,
        }
    }
    let status = p.wait_timeout(TIMEOUT).expect("exited");
    assert!(status.success(), "{}", p.describe());
    assert!(reads >= 20, "read the metrics file {reads} times ({missing} before it existed)");
    let stats: HashMap<String, u64> = p
        .stdout()
        .lines()
        .filter_map(|l| l.strip_prefix("stat "))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    let samples = parse_prom(&std::fs::read_to_string(&prom).unwrap());
    let pairs = [
        ("vmsrs_faults_contained_total", "faults_contained"),
        ("vmsrs_faults_chained_total", "faults_chained"),
        ("vmsrs_instructions_skipped_total", "instructions_skipped"),
        ("vmsrs_unwinds_total", "unwinds"),
        ("vmsrs_threads_ended_total", "threads_ended"),
        ("vmsrs_users_begun_total", "users_begun"),
        ("vmsrs_users_committed_total", "users_committed"),
        ("vmsrs_users_faulted_total", "users_faulted"),
        ("vmsrs_users_collected_total", "users_collected"),
        ("vmsrs_users_live", "users_live"),
        ("vmsrs_restorations_total", "restorations"),
        ("vmsrs_history_entries", "history_entries"),
        ("vmsrs_recovery_data_corruptions_total", "corruptions"),
        ("vmsrs_unrecorded_stores_total", "unrecorded_stores"),
        ("vmsrs_shadow_stores_total", "shadow_stores"),
        ("vmsrs_frees_withheld_total", "frees_withheld"),
        ("vmsrs_bounds_faults_total", "bounds_faults"),
        ("vmsrs_ranges", "ranges"),
        ("vmsrs_exposures_total", "exposures"),
    ];
    for (metric, stat) in pairs {
        assert_eq!(sample(&samples, metric), stats[stat], "{metric} vs vmsrs_stats.{stat}\n{}", p.describe());
    }
    assert!(stats["faults_contained"] >= 8, "{}", p.describe());
    // Labels are low-cardinality: only signal and action, from fixed sets.
    for (name, labels, _) in &samples {
        for (k, v) in labels {
            assert_eq!(name, "vmsrs_faults_contained_total");
            match k.as_str() {
                "signal" => {
                    assert!(["SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "explicit"]
                        .contains(&v.as_str()))
                }
                "action" => {
                    assert!(["skipped", "unwound", "thread_ended", "explicit", "suppressed", "refused"]
                        .contains(&v.as_str()))
                }
                other => panic!("label {other}"),
            }
        }
    }
    let unwound: u64 = samples
        .iter()
        .filter(|(n, l, _)| {
            n == "vmsrs_faults_contained_total" && l.contains(&("action".into(), "unwound".into()))
        })
        .map(|(_, _, v)| *v as u64)
        .sum();
    assert_eq!(unwound, stats["unwinds"]);
    // Every event made it to the log, none lost.
    assert_eq!(sample(&samples, "vmsrs_report_events_lost_total"), 0);
    assert_eq!(sample(&samples, "vmsrs_report_events_written_total"), stats["faults_contained"]);
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp.")), "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_process_directed_sigterm_never_reaches_the_reporter_thread() {
    let bin = reports_fp();
    let dir = scratch("sigterm");
    let mut p = Spawned::start(&bin, &["sigterm"], &[("VMSRS_LOG_PATH", s(&dir.join("ev")))], false);
    let line = p.wait_line(TIMEOUT, |l| l.starts_with("reporter "));
    let tid: u32 = line["reporter ".len()..].parse().unwrap();
    p.wait_line(TIMEOUT, |l| l == "ready");
    let status = std::fs::read_to_string(format!("/proc/{}/task/{tid}/status", p.pid())).unwrap();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    let name = std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", p.pid())).unwrap();
    assert_eq!(name.trim(), "vmsrs-report");
    // Every standard signal that can be blocked is (SIGKILL 9 and SIGSTOP 19 cannot).
    for sig in (1..=31).filter(|&s| s != 9 && s != 19) {
        assert!(
            blocked & (1 << (sig - 1)) != 0,
            "signal {sig} not blocked in the reporter: SigBlk {blocked:x}"
        );
    }
    for _ in 0..3 {
        // SAFETY: signalling the child we started.
        assert_eq!(unsafe { libc::kill(p.pid() as i32, libc::SIGTERM) }, 0);
        std::thread::sleep(Duration::from_millis(20));
    }
    p.wait_line(TIMEOUT, |l| l.starts_with("sigwait got SIGTERM"));
    let st = p.wait_timeout(TIMEOUT).expect("exits");
    assert!(st.success(), "{}", p.describe());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_report_paths_are_refused_at_start_up() {
    let bin = reports_fp();
    let cases = [
        ("VMSRS_LOG_PATH", "/nonexistent-vmsrs-dir/events", "does not exist"),
        ("VMSRS_LOG_PATH", "relative/events", "absolute"),
        ("VMSRS_LOG_PATH", "/tmp/", "directory"),
        ("VMSRS_METRICS_PATH", "/nonexistent-vmsrs-dir/vmsrs.prom", "does not exist"),
        ("VMSRS_METRICS_INTERVAL_MS", "5", "between"),
    ];
    for (key, value, why) in cases {
        let out = run(&bin, &["init"], &[(key, value)], TIMEOUT);
        out.assert_success();
        assert!(out.has_line("init rc=-11"), "VMSRS_ECONFIG expected\n{}", out.describe());
        assert!(out.stderr.contains(key) && out.stderr.contains(why), "{}", out.describe());
    }
}
