//! MariaDB's own regression suite (`mariadb-test-run` from Debian's mariadb-test package)
//! against the packaged `mariadbd`, once without libvmsrs and once with
//! `LD_PRELOAD=libvmsrs.so` + `VMSRS_ENV_FILE=preload/mariadb.env` (passed to the servers the
//! suite starts with `--mysqld-env`): the drop-in mode must change no test's outcome. Every
//! test's result (pass, fail or skipped, per test and combination) must be the same in both
//! runs; at least 50 tests run, most of them pass without libvmsrs, and every `mariadbd` the
//! preloaded run starts really has libvmsrs.so mapped (none of the baseline's does).
//!
//! The default list, [`TESTS`], is a fixed selection of `main.*` tests that need no special
//! server build (no debug, binlog or replication) and run in a few minutes. Override:
//!
//! - `MTR_TESTS="main.select main.join ..."` (spaces or commas): run these tests instead;
//! - `MTR_SUITE=main` (or `main,innodb`): run whole suites (`--suite=...`, hours for `main`);
//! - `MTR_PARALLEL=N` (default 1), `MTR_RUN_TIMEOUT_MIN=M` (default 30, per run).
//!
//! Each run has its own `--vardir` in a temporary directory (kept with `SERVERS_KEEP_DIRS=1`);
//! ports come from mtr's own allocator (build thread `auto`: MTR_* variables are cleared; lock files in
//! `/tmp/mysql-unique-ids`). mtr is the leader of its own process group, killed with its
//! servers if it overruns.

mod common;
mod servers;

use servers::{ServerProcess, TempDir};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const MTR_DIR: &str = "/usr/share/mysql/mysql-test";
const MTR: &str = "/usr/share/mysql/mysql-test/mariadb-test-run";

/// The default selection (170 tests, about 1.5 to 2.5 minutes a run on the 2-CPU development
/// machines): `main.*` tests without `.opt`/`.cnf` files (few server restarts), none needing a
/// debug build, the binary log or replication, and none taking more than 2 s alone; SQL
/// syntax, functions, types, character sets, stored programs, subqueries, joins, window
/// functions, InnoDB transactions and foreign keys, partitions, full-text, GIS, XML, prepared
/// statements. Four are skipped on Linux or as root (`*_windows`, `*_win`, `winservice_basic`,
/// `information_schema_chmod`): skips must match too.
const TESTS: &[&str] = &[
    "main.1st",
    "main.alias",
    "main.analyze_stmt",
    "main.ansi",
    "main.auto_increment",
    "main.bigint",
    "main.binary",
    "main.bool",
    "main.case",
    "main.cast",
    "main.change_user",
    "main.check_constraint",
    "main.comments",
    "main.commit",
    "main.compare",
    "main.constraints",
    "main.count_distinct",
    "main.create_drop_db",
    "main.create_drop_index",
    "main.create_drop_procedure",
    "main.create_drop_trigger",
    "main.create_drop_view",
    "main.create_windows",
    "main.cte_cycle",
    "main.cte_nonrecursive",
    "main.ctype_ascii",
    "main.ctype_binary",
    "main.ctype_collate",
    "main.ctype_many",
    "main.ctype_ucs",
    "main.ctype_utf16",
    "main.ctype_utf8mb4_uca",
    "main.delete_returning",
    "main.derived",
    "main.distinct",
    "main.dyncol",
    "main.empty_table",
    "main.errors",
    "main.except",
    "main.except_all",
    "main.explain",
    "main.explain_json",
    "main.features",
    "main.fetch_first",
    "main.foreign_key",
    "main.fulltext",
    "main.fulltext2",
    "main.fulltext_left_join",
    "main.func_bit",
    "main.func_compress",
    "main.func_concat",
    "main.func_crypt",
    "main.func_date_add",
    "main.func_default",
    "main.func_equal",
    "main.func_extract",
    "main.func_gconcat",
    "main.func_if",
    "main.func_isnull",
    "main.func_like",
    "main.func_math",
    "main.func_op",
    "main.func_regexp",
    "main.func_regexp_pcre",
    "main.func_replace",
    "main.func_set",
    "main.func_sformat",
    "main.func_str",
    "main.func_system",
    "main.func_test",
    "main.func_time_hires",
    "main.func_weight_string",
    "main.get_diagnostics",
    "main.gis-json",
    "main.gis-rtree",
    "main.having",
    "main.help",
    "main.information_schema_chmod",
    "main.information_schema_routines",
    "main.insert",
    "main.insert_innodb",
    "main.insert_returning",
    "main.insert_select",
    "main.intersect",
    "main.invisible_field",
    "main.join",
    "main.join_outer_innodb",
    "main.json_equals",
    "main.json_normalize",
    "main.key",
    "main.keywords",
    "main.limit",
    "main.locking_clause",
    "main.multi_update_innodb",
    "main.mysql_install_db_win",
    "main.null",
    "main.null_key",
    "main.olap",
    "main.outfile_loaddata",
    "main.parser",
    "main.partition_hash",
    "main.partition_list",
    "main.partition_range",
    "main.prepare",
    "main.ps_11bugs",
    "main.ps_ddl",
    "main.ps_innodb",
    "main.range",
    "main.repair",
    "main.replace",
    "main.replace_returning",
    "main.rollback",
    "main.round",
    "main.row",
    "main.select_found",
    "main.select_safe",
    "main.set_operation",
    "main.show",
    "main.signal",
    "main.signal_demo1",
    "main.single_delete_update",
    "main.sp-anchor-type",
    "main.sp-bugs",
    "main.sp-cursor",
    "main.sp-dynamic",
    "main.sp-error",
    "main.sp-for-loop",
    "main.sp-inout",
    "main.sp-row",
    "main.sp-vars",
    "main.sql_mode",
    "main.subselect2",
    "main.subselect_extra",
    "main.subselect_mat",
    "main.subselect_nulls",
    "main.sum_distinct",
    "main.table_value_constr",
    "main.tablelock",
    "main.temporal_literal",
    "main.timezone2",
    "main.trigger_null",
    "main.truncate",
    "main.type_bit",
    "main.type_blob",
    "main.type_date",
    "main.type_decimal",
    "main.type_enum",
    "main.type_float",
    "main.type_int",
    "main.type_newdecimal",
    "main.type_set",
    "main.type_time",
    "main.type_timestamp",
    "main.type_year",
    "main.union_innodb",
    "main.unique",
    "main.update",
    "main.user_var",
    "main.view_alias",
    "main.win_avg",
    "main.win_first_last_value",
    "main.win_lead_lag",
    "main.win_min_max",
    "main.win_nth_value",
    "main.win_ntile",
    "main.win_percentile",
    "main.win_rank",
    "main.win_sum",
    "main.winservice_basic",
    "main.xml",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    Skipped,
}

/// One run of mariadb-test-run.
struct MtrRun {
    /// Test (with its combination, e.g. `main.select 'innodb'`) -> outcome.
    results: BTreeMap<String, Outcome>,
    elapsed: Duration,
    output: String,
    /// mariadbd processes of this run seen while it ran, and how many had libvmsrs.so mapped.
    servers_seen: usize,
    servers_with_libvmsrs: usize,
    /// Lines of the servers' error logs written by libvmsrs (`==PID==vmsrs: ...`).
    vmsrs_log_lines: Vec<String>,
}

impl MtrRun {
    fn count(&self, o: Outcome) -> usize {
        self.results.values().filter(|&&v| v == o).count()
    }

    fn summary(&self) -> String {
        format!(
            "{} tests: {} passed, {} failed, {} skipped, in {:.0} s",
            self.results.len(),
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skipped),
            self.elapsed.as_secs_f64()
        )
    }
}

/// `main.select 'innodb'    [ pass ]   1586` -> ("main.select 'innodb'", Pass). Lines that are
/// not a test's result (worker messages, failure details) give None.
fn parse_result_line(line: &str) -> Option<(String, Outcome)> {
    let open = line.find(" [ ")?;
    let rest = &line[open + 3..];
    let close = rest.find(" ]")?;
    let word = &rest[..close];
    let name = line[..open].trim();
    let first = name.split_whitespace().next()?;
    // A test name is suite.test, nothing before it (worker prefixes come without --parallel).
    if !first.contains('.') || first.contains('[') || first.contains(':') || first.contains('/') {
        return None;
    }
    let outcome = match word {
        "pass" | "retry-pass" => Outcome::Pass,
        "fail" | "retry-fail" => Outcome::Fail,
        "skipped" | "disabled" => Outcome::Skipped,
        _ => return None,
    };
    // With --parallel=N the worker (`w1`) stands before the bracket.
    let mut words: Vec<&str> = name.split_whitespace().collect();
    if words.len() > 1
        && words
            .last()
            .is_some_and(|w| w.len() > 1 && w.starts_with('w') && w[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        words.pop();
    }
    Some((words.join(" "), outcome))
}

fn parse_results(output: &str) -> BTreeMap<String, Outcome> {
    let mut m = BTreeMap::new();
    for line in output.lines() {
        if let Some((name, o)) = parse_result_line(line) {
            // A retried test reports more than once: the last word is its result.
            m.insert(name, o);
        }
    }
    m
}

/// The test servers of one mtr run, by /proc: every `mariadbd` started with
/// `--defaults-file=<vardir>/my.cnf` (mtr's bootstrap and `--help` probes are not servers and
/// get no `--mysqld-env`), once its loader has mapped libc (preloaded objects are mapped
/// before it). Returns (pid, libvmsrs.so is mapped).
fn mtr_servers(vardir: &str, lib: &Path) -> Vec<(u32, bool)> {
    let mut v = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return v };
    let cnf = format!("--defaults-file={vardir}/my.cnf");
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else { continue };
        if exe != Path::new(servers::MARIADBD) {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> =
            cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if !args.contains(&cnf) || args.iter().any(|a| a == "--bootstrap") {
            continue;
        }
        let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) else { continue };
        if !maps.contains("/libc.so") {
            continue;
        }
        v.push((pid, maps.contains(&*lib.to_string_lossy())));
    }
    v
}

/// What to run: explicit tests, or whole suites.
enum Selection {
    Tests(Vec<String>),
    Suites(String),
}

fn selection() -> Selection {
    if let Ok(s) = std::env::var("MTR_SUITE") {
        if !s.trim().is_empty() {
            return Selection::Suites(s.trim().to_string());
        }
    }
    if let Ok(t) = std::env::var("MTR_TESTS") {
        let v: Vec<String> = t
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if !v.is_empty() {
            return Selection::Tests(v);
        }
    }
    Selection::Tests(TESTS.iter().map(|s| s.to_string()).collect())
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Run mariadb-test-run on `sel` in a fresh vardir; `preload` = (libvmsrs.so, env file).
fn run_mtr(sel: &Selection, preload: Option<(&Path, &Path)>, lib: &Path) -> MtrRun {
    let label = if preload.is_some() { "with libvmsrs" } else { "without libvmsrs" };
    let dir = TempDir::new("mtr");
    let vardir = dir.path().join("var");
    let vardir_s = vardir.display().to_string();
    let mut cmd = Command::new(MTR);
    cmd.current_dir(MTR_DIR)
        .arg(format!("--vardir={vardir_s}"))
        .args(["--force", "--max-test-fail=0", "--retry=0"])
        .arg(format!("--parallel={}", env_number("MTR_PARALLEL", 1)))
        // mtr's own per-test limit, in minutes; the whole run is bounded below.
        .arg("--testcase-timeout=10");
    // mtr and its clients never run with libvmsrs: only the servers get it, by --mysqld-env.
    for (k, _) in std::env::vars_os() {
        let ks = k.to_string_lossy();
        if ks.starts_with("VMSRS_") || ks == "LD_PRELOAD" || ks.starts_with("MTR_") || ks.starts_with("MYSQL")
        {
            cmd.env_remove(&k);
        }
    }
    if let Some((so, env_file)) = preload {
        cmd.arg(format!("--mysqld-env=LD_PRELOAD={}", so.display()));
        cmd.arg(format!("--mysqld-env=VMSRS_ENV_FILE={}", env_file.display()));
    }
    match sel {
        Selection::Tests(t) => {
            cmd.args(t);
        }
        Selection::Suites(s) => {
            cmd.arg(format!("--suite={s}"));
        }
    }
    let log = dir.path().join("mtr.out");
    let timeout = Duration::from_secs(60 * env_number("MTR_RUN_TIMEOUT_MIN", 30));
    eprintln!("mtr ({label}): {cmd:?}");
    let start = Instant::now();
    let mut mtr = ServerProcess::spawn(&format!("mariadb-test-run {label}"), cmd, &log);

    // Watch the servers this run starts (by their --defaults-file in our vardir).
    let stop = AtomicBool::new(false);
    let seen: Mutex<BTreeMap<u32, bool>> = Mutex::new(BTreeMap::new());
    let status = thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for (pid, mapped) in mtr_servers(&vardir_s, lib) {
                    let mut m = seen.lock().unwrap();
                    let e = m.entry(pid).or_insert(false);
                    *e |= mapped;
                }
                thread::sleep(Duration::from_millis(200));
            }
        });
        let st = mtr.wait_exit(timeout);
        stop.store(true, Ordering::Relaxed);
        st
    });
    let elapsed = start.elapsed();
    let output = mtr.log();
    let Some(status) = status else {
        mtr.stop(Duration::from_secs(10));
        panic!(
            "mariadb-test-run ({label}) did not finish within {timeout:?} (killed with its servers); last output:\n{}",
            mtr.log_tail(60)
        );
    };
    drop(mtr);
    let results = parse_results(&output);
    eprintln!("mtr ({label}) exited with {status}");
    assert!(
        !results.is_empty(),
        "mariadb-test-run ({label}) reported no test result ({status}); its output:\n{output}"
    );
    let seen = seen.into_inner().unwrap();
    let mut vmsrs_log_lines = Vec::new();
    if let Ok(logs) = fs::read_dir(vardir.join("log")) {
        for e in logs.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "err") {
                let text = fs::read(&p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                vmsrs_log_lines.extend(
                    text.lines()
                        .filter(|l| l.contains("==vmsrs:") || l.contains("libvmsrs"))
                        .map(String::from),
                );
            }
        }
    }
    MtrRun {
        results,
        elapsed,
        output,
        servers_seen: seen.len(),
        servers_with_libvmsrs: seen.values().filter(|&&m| m).count(),
        vmsrs_log_lines,
    }
}

/// The lines of mtr's output about `test` (its result line and the failure details after it).
fn details(output: &str, test: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let Some(i) = lines.iter().position(|l| parse_result_line(l).is_some_and(|(n, _)| n == test)) else {
        return String::new();
    };
    let end = (i + 1..lines.len()).find(|&j| parse_result_line(lines[j]).is_some()).unwrap_or(lines.len());
    lines[i..end.min(i + 40)].join("\n")
}

#[test]
fn mariadb_test_suite_gives_the_same_results_with_libvmsrs_as_without() {
    servers::require(MTR, "mariadb-test");
    servers::require(servers::MARIADBD, "mariadb-server");
    let lib = servers::libvmsrs();
    let env_file = servers::env_file("mariadb");
    let sel = selection();
    let default = matches!(&sel, Selection::Tests(t) if t.len() == TESTS.len() && t.iter().zip(TESTS).all(|(a, b)| a == b));

    let base = run_mtr(&sel, None, &lib);
    eprintln!("without libvmsrs: {}", base.summary());
    let pre = run_mtr(&sel, Some((&lib, &env_file)), &lib);
    eprintln!("with libvmsrs:    {}", pre.summary());
    eprintln!(
        "test servers seen: {} without libvmsrs ({} with it mapped), {} with libvmsrs ({} with it mapped)",
        base.servers_seen, base.servers_with_libvmsrs, pre.servers_seen, pre.servers_with_libvmsrs
    );
    for l in &pre.vmsrs_log_lines {
        eprintln!("server log: {l}");
    }

    // The runs are what they claim to be.
    assert!(base.servers_seen >= 1, "no mariadbd of the baseline run was seen in /proc");
    assert_eq!(base.servers_with_libvmsrs, 0, "a baseline mariadbd had libvmsrs.so mapped");
    assert!(pre.servers_seen >= 1, "no mariadbd of the preloaded run was seen in /proc");
    assert_eq!(
        pre.servers_with_libvmsrs,
        pre.servers_seen,
        "{} of the {} mariadbd processes of the preloaded run had {} mapped",
        pre.servers_with_libvmsrs,
        pre.servers_seen,
        lib.display()
    );
    assert!(
        !pre.vmsrs_log_lines.iter().any(|l| l.contains("NOT active") || l.contains("configuration error")),
        "libvmsrs refused its configuration in mariadbd:\n{}",
        pre.vmsrs_log_lines.join("\n")
    );

    // Enough of the suite ran, and it is healthy without libvmsrs.
    let ran = base.results.len();
    if default {
        assert!(ran >= 50, "only {ran} tests ran:\n{}", base.summary());
        let passed = base.count(Outcome::Pass);
        assert!(
            passed * 10 >= ran * 9,
            "only {passed} of {ran} tests pass without libvmsrs (the selection or the machine is broken):\n{:#?}",
            base.results.iter().filter(|(_, &o)| o != Outcome::Pass).collect::<Vec<_>>()
        );
    }

    // The guarantee: the same outcome for every test.
    let mut diffs = Vec::new();
    for name in base.results.keys().chain(pre.results.keys().filter(|k| !base.results.contains_key(*k))) {
        let (a, b) = (base.results.get(name), pre.results.get(name));
        if a != b {
            diffs.push(format!(
                "{name}: without libvmsrs {a:?}, with libvmsrs {b:?}\n--- without ---\n{}\n--- with ---\n{}",
                details(&base.output, name),
                details(&pre.output, name)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {ran} tests changed outcome under libvmsrs:\n{}",
        diffs.len(),
        diffs.join("\n\n")
    );
}

#[test]
fn mtr_result_lines_are_parsed() {
    let out = "\
worker[01] Using MTR_BUILD_THREAD 300, with reserved ports 19000..19029
main.1st                                 [ pass ]      4
main.select 'nm'                         [ pass ]   1586
main.x 'innodb,row'                      [ skipped ]  Need binlog
main.y                                   [ fail ]
        Test ended at 2025-01-01 00:00:00
main.y                                   [ disabled ]  MDEV-1
main.w 'mix'                          w2 [ pass ]    12
main.z                                   [ fail ]  Found warnings/errors in server log file!
--------------------------------------------------------------------------
Completed: Failed 1/3 tests, 66.67% were successful.
";
    let m = parse_results(out);
    let want: BTreeMap<String, Outcome> = [
        ("main.1st", Outcome::Pass),
        ("main.select 'nm'", Outcome::Pass),
        ("main.x 'innodb,row'", Outcome::Skipped),
        ("main.y", Outcome::Skipped),
        ("main.z", Outcome::Fail),
        ("main.w 'mix'", Outcome::Pass),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(m, want);
    assert!(details(out, "main.1st").starts_with("main.1st"));
}
