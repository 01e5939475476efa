//! The pitfalls of interposition (`ECOSYSTEM.md`, "Pitfalls of interposition"), one test per
//! applicable item, on unmodified C programs (`c-examples/pitfall_*.c`) run with
//! `LD_PRELOAD=libvmsrs.so`; and the paper's classes 2 and 3 in drop-in mode (DESIGN §5:
//! after its fault a user's `free` is withheld and its output marked).
//!
//! Covered elsewhere: 10 (children inherit LD_PRELOAD per VMSRS_CHILDREN: tests/dropin.rs),
//! 13 (repeated faults at one pc escalate: tests/containment.rs; drop-in does not differ),
//! 21 (thread caches: the reused worker threads of c-examples/dropin_server.c in
//! tests/dropin.rs). 16 (inlined builtins bypass the PLT) is a documented limit, shown in
//! linked mode below.

mod common;

use common::{build_libvmsrs, c_example, env_refs, preload, root, run, target_dir, Build, Spawned};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Compile `c-examples/<src>.c` with `flags` into `target/c-examples/pitfalls/<out>` (once per
/// test binary and output name).
fn gcc(src: &str, out: &str, flags: &[&str]) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut cache =
        CACHE.get_or_init(|| Mutex::new(HashMap::new())).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cache.get(out) {
        return p.clone();
    }
    let dir = target_dir().join("c-examples/pitfalls");
    std::fs::create_dir_all(&dir).expect("create target/c-examples/pitfalls");
    let exe = dir.join(out);
    let tmp = dir.join(format!(".{out}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"]);
    cmd.arg(format!("-I{}", root().join("include").display()));
    cmd.args(flags);
    cmd.arg(root().join("c-examples").join(format!("{src}.c"))).arg("-o").arg(&tmp).arg("-ldl");
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run gcc (apt-get install gcc): {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    std::fs::rename(&tmp, &exe).expect("rename into place");
    cache.insert(out.to_string(), exe.clone());
    exe
}

fn unmodified(name: &str) -> PathBuf {
    c_example(name, Build::Unmodified)
}

fn preloaded(bin: &Path, args: &[&str], extra: &[(&str, &str)]) -> common::RunOutput {
    let env = preload(extra);
    run(bin, args, &env_refs(&env), TIMEOUT)
}

fn plain(bin: &Path, args: &[&str]) -> common::RunOutput {
    run(bin, args, &[], TIMEOUT)
}

// ----- 1 and 17: early allocation recursion, a constructor before ours -------------------

#[test]
fn a_library_constructor_that_allocates_locks_prints_and_calls_dlsym_before_libvmsrs_init_works() {
    let lib = gcc("pitfall_early_lib", "libpitfall_early.so", &["-shared", "-fPIC"]);
    let main = unmodified("pitfall_early_main");
    let so = build_libvmsrs();
    // ld.so runs preloaded constructors in reverse order: the early library's runs first.
    let list = format!("{} {}", so.display(), lib.display());
    let out = run(&main, &[], &[("LD_PRELOAD", &list), ("LD_DEBUG", "libs")], TIMEOUT);
    out.assert_success();
    let inits: Vec<&str> = out.stderr.lines().filter(|l| l.contains("calling init:")).collect();
    let pos = |needle: &str| inits.iter().position(|l| l.contains(needle));
    let (early, ours) = (pos("libpitfall_early.so"), pos("libvmsrs.so"));
    assert!(early.is_some() && ours.is_some() && early < ours, "init order: {inits:#?}\n{}", out.describe());
    assert!(
        out.has_line("early ctor: len 40 posix_memalign 0 aligned 1 realloc ok dlsym null dlerror set"),
        "{}",
        out.describe()
    );
    assert!(out.has_line("early ctor: puts") && out.has_line("main ok"), "{}", out.describe());
}

// ----- 2 and 3: Rust allocations and TLS never recurse into the interposed malloc ---------

#[test]
fn allocation_heavy_threads_and_faults_inside_allocation_heavy_code_never_recurse_or_corrupt() {
    let bin = unmodified("pitfall_alloc_storm");
    let out = preloaded(&bin, &[], &[]);
    out.assert_success();
    for i in 0..4 {
        assert!(out.has_line(&format!("churn ok {i}")), "{}", out.describe());
    }
    for i in 0..8 {
        let marked = out.lines().iter().any(|l| {
            l.starts_with("[vmsrs: suppressed user ") && l.ends_with(&format!("] faulty done {i} 0"))
        });
        assert!(marked, "faulty thread {i}'s line is missing or unmarked:\n{}", out.describe());
    }
    assert_eq!(out.stderr.matches("SUMMARY: vmsrs: SIGSEGV contained").count(), 8, "{}", out.describe());
    assert_eq!(
        out.stderr.matches("is withheld (a leak, never a double free").count(),
        8,
        "{}",
        out.describe()
    );
}

// ----- 4: the whole allocator family -----------------------------------------------------

#[test]
fn the_whole_allocator_family_gives_glibcs_results_when_interposed() {
    let bin = unmodified("pitfall_alloc_family");
    let without = plain(&bin, &[]);
    without.assert_success();
    let with = preloaded(&bin, &[], &[]);
    with.assert_success();
    assert!(with.has_line("ALL OK"), "{}", with.describe());
    assert_eq!(
        with.stdout,
        without.stdout,
        "with libvmsrs:\n{}\nwithout:\n{}",
        with.describe(),
        without.describe()
    );
    assert!(with.stdout.lines().count() > 30, "{}", with.describe());
}

// ----- 5: programs that bring their own allocator ----------------------------------------

#[test]
fn a_program_with_its_own_allocator_runs_unchanged_and_is_reported_once() {
    let bin = unmodified("pitfall_own_allocator");
    let without = plain(&bin, &[]);
    without.assert_success();
    let with = preloaded(&bin, &[], &[]);
    with.assert_success();
    assert!(with.has_line("own allocator ok (9 frees)"), "{}", with.describe());
    assert_eq!(with.stdout, without.stdout, "{}", with.describe());
    assert_eq!(
        with.stderr.matches("==vmsrs: this program brings its own allocator (malloc in ").count(),
        1,
        "{}",
        with.describe()
    );
    assert!(with.stderr.contains("stands back"), "{}", with.describe());
}

// ----- 6: RTLD_DEEPBIND ------------------------------------------------------------------

#[test]
fn blocks_cross_an_rtld_deepbind_library_in_both_directions_without_a_crash() {
    let lib = gcc("pitfall_deepbind_lib", "libpitfall_deepbind.so", &["-shared", "-fPIC"]);
    let bin = unmodified("pitfall_deepbind_main");
    let lib = lib.display().to_string();
    let out = preloaded(&bin, &[&lib], &[]);
    out.assert_success();
    assert!(out.has_line("deepbind ok"), "{}", out.describe());
}

// ----- 7: fork -----------------------------------------------------------------------------

#[test]
fn children_forked_while_threads_allocate_print_and_hold_fault_state_never_deadlock() {
    let bin = unmodified("pitfall_fork");
    let out = preloaded(&bin, &[], &[]);
    out.assert_success();
    assert!(out.has_line("forks ok 200"), "{}", out.describe());
}

// ----- 8: vfork and posix_spawn ------------------------------------------------------------

#[test]
fn vfork_and_posix_spawn_children_run_while_threads_allocate() {
    let bin = unmodified("pitfall_vfork_spawn");
    let out = preloaded(&bin, &["/bin/true"], &[]);
    out.assert_success();
    assert!(out.has_line("vfork ok 50") && out.has_line("posix_spawn ok 50"), "{}", out.describe());
}

// ----- 9: static and setuid programs, own allocators: scripts/vmsrs-check ------------------

fn vmsrs_check(prog: &Path) -> common::RunOutput {
    run(&root().join("scripts/vmsrs-check"), &[prog.to_str().unwrap()], &[], TIMEOUT)
}

#[test]
fn vmsrs_check_says_when_ld_preload_cannot_work() {
    let normal = unmodified("pitfall_early_main");
    let ok = vmsrs_check(&normal);
    assert_eq!(ok.code(), Some(0), "{}", ok.describe());
    assert!(ok.stdout.contains("LD_PRELOAD=libvmsrs.so can work"), "{}", ok.describe());
    assert!(!ok.stdout.contains("statically") && !ok.stdout.contains("setuid"), "{}", ok.describe());

    let stat = gcc("pitfall_early_main", "pitfall_early_main-static", &["-static"]);
    let s = vmsrs_check(&stat);
    assert_eq!(s.code(), Some(1), "{}", s.describe());
    assert!(s.stdout.contains("is statically linked (no PT_INTERP)"), "{}", s.describe());
    // And indeed: the static program never loads libvmsrs.
    let r = preloaded(&stat, &[], &[("VMSRS_VERBOSE", "1")]);
    r.assert_success();
    assert!(!r.stderr.contains("vmsrs"), "{}", r.describe());

    let dir = target_dir().join("c-examples/pitfalls");
    let suid = dir.join("pitfall_early_main-setuid");
    std::fs::copy(&normal, &suid).expect("copy");
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    let u = vmsrs_check(&suid);
    assert_eq!(u.code(), Some(1), "{}", u.describe());
    assert!(u.stdout.contains("is setuid/setgid"), "{}", u.describe());
    assert!(u.stdout.contains("not through /etc/ld.so.preload"), "{}", u.describe());

    let own = unmodified("pitfall_own_allocator");
    let o = vmsrs_check(&own);
    assert_eq!(o.code(), Some(0), "{}", o.describe());
    assert!(
        o.stdout.contains("brings its own allocator (defines: calloc free malloc realloc)"),
        "{}",
        o.describe()
    );

    let missing = vmsrs_check(Path::new("/nonexistent/program"));
    assert_eq!(missing.code(), Some(2), "{}", missing.describe());
}

// ----- 11 and 19: the program's own fatal-signal handler (mariadbd's flags) -----------------

#[test]
fn a_resethand_nodefer_handler_installed_in_main_gets_an_uncontained_fault_once_and_its_reraise_kills() {
    let bin = unmodified("pitfall_fatal_handler");
    let out = preloaded(&bin, &[], &[("VMSRS_CONTAIN_IMPLICIT", "0")]);
    assert_eq!(out.signal(), Some(libc::SIGSEGV), "{}", out.describe());
    assert!(out.has_line("installed"), "{}", out.describe());
    assert_eq!(out.stdout.matches("handle_fatal_signal: got signal 11").count(), 1, "{}", out.describe());
    // Without libvmsrs: the same.
    let without = plain(&bin, &[]);
    assert_eq!(without.signal(), Some(libc::SIGSEGV), "{}", without.describe());
    assert_eq!(without.stdout, out.stdout);
}

// ----- 12: SA_ONSTACK and a per-thread alternate stack ---------------------------------------

#[test]
fn program_threads_get_an_alternate_stack_and_a_stack_overflow_in_one_is_contained() {
    let bin = unmodified("pitfall_altstack");
    let out = preloaded(&bin, &[], &[]);
    out.assert_success();
    assert_eq!(out.stdout.matches("altstack ok SIZE-OK").count(), 2, "{}", out.describe());
    assert!(out.has_line("overflow thread joined") && out.has_line("survived"), "{}", out.describe());
    assert!(out.stderr.contains("SIGSEGV contained"), "{}", out.describe());
    // Without libvmsrs, the overflow kills the process.
    let without = plain(&bin, &[]);
    assert_eq!(without.signal(), Some(libc::SIGSEGV), "{}", without.describe());
}

// ----- 14: symbol versions, dlsym(RTLD_NEXT) in the program ----------------------------------

#[test]
fn threads_start_through_dlvsym_and_the_programs_own_rtld_next_lookups_work() {
    let bin = unmodified("pitfall_dlsym_next");
    let out = preloaded(&bin, &[], &[]);
    out.assert_success();
    for l in ["threads 4", "next malloc ok", "next printf 7", "dlvsym memcpy ok 14"] {
        assert!(out.has_line(l), "missing {l:?}:\n{}", out.describe());
    }
}

// ----- 15: printf that never reaches printf -------------------------------------------------

#[test]
fn every_form_compilers_emit_for_printf_is_marked_for_a_suppressed_user_and_checked_before_libc_locks() {
    let bin = gcc("pitfall_printf_forms", "pitfall_printf_forms-fortify", &["-D_FORTIFY_SOURCE=2"]);
    // The compiler did emit the forms this test is about.
    let nm = Command::new("nm").arg("-D").arg(&bin).output().expect("nm (binutils)");
    let syms = String::from_utf8_lossy(&nm.stdout);
    for s in ["puts", "putchar", "fwrite", "__printf_chk", "__fprintf_chk", "__vfprintf_chk", "__dprintf_chk"]
    {
        assert!(
            syms.lines().any(|l| l.split_whitespace().nth(1).is_some_and(|n| n.split('@').next() == Some(s))),
            "{s} not emitted:\n{syms}"
        );
    }
    let out = preloaded(&bin, &[], &[]);
    out.assert_success();
    let mark = "[vmsrs: suppressed user ";
    for form in [
        "puts",
        "putchar",
        "fputs",
        "printf_chk 0",
        "fprintf_chk 0",
        "vprintf_chk 0",
        "vfprintf_chk 0",
        "dprintf_chk 0",
    ] {
        let line = out.lines().into_iter().find(|l| l.ends_with(&format!("form {form}")));
        assert!(line.is_some_and(|l| l.starts_with(mark)), "form {form} not marked:\n{}", out.describe());
    }
    assert!(
        out.stdout.contains("] P[vmsrs: suppressed user "),
        "putchar('P') not marked:\n{}",
        out.describe()
    );
    let bad = out.lines().into_iter().find(|l| l.contains("bad pointer rc"));
    assert!(
        bad.is_some_and(|l| l.starts_with(mark) && l.ends_with("bad pointer rc -1 errno EFAULT")),
        "{}",
        out.describe()
    );
    // The main thread's lines are its own, unmarked; it could still print after the bad call.
    for l in ["main before", "main after 1", "main puts"] {
        assert!(out.has_line(l), "{l:?} missing or marked:\n{}", out.describe());
    }
    assert!(!out.stdout.contains("bad (null)"), "{}", out.describe());
}

// ----- 16 and 18: linked rather than preloaded ------------------------------------------------

#[test]
fn linked_programs_reach_glibcs_functions_and_plain_memcpy_memset_on_profiled_memory_are_recorded() {
    let bin = c_example("pitfall_linked", Build::Libvmsrs);
    let out = run(&bin, &[], &[], TIMEOUT);
    out.assert_success();
    for l in ["user 1 end 0", "user 2 end 1", "memset/memmove restored yes", "plain memcpy reads A"] {
        assert!(out.has_line(l), "missing {l:?}:\n{}", out.describe());
    }
    // Pitfall 16, a documented limit: an inlined __builtin_memset never reaches a symbol.
    assert!(out.has_line("inlined memset restored no"), "{}", out.describe());
}

// ----- 20: threads a preload starts block async signals ---------------------------------------
// Generic: every thread whose name starts with "vmsrs" (today the reporter, started here by a
// metrics path) must block every asynchronous signal.

/// Signals that must be blocked in a libvmsrs thread: every asynchronous one (not the
/// synchronous faults, not SIGKILL/SIGSTOP, which cannot be blocked).
const ASYNC: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGURG,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
];

#[test]
fn every_thread_libvmsrs_starts_blocks_every_asynchronous_signal() {
    let bin = unmodified("pitfall_idle");
    // A metrics path starts libvmsrs's reporter thread ("vmsrs-report").
    let dir = target_dir().join("c-examples/pitfalls");
    std::fs::create_dir_all(&dir).expect("create target/c-examples/pitfalls");
    let metrics = dir.join(format!("idle-{}.prom", std::process::id()));
    let metrics = metrics.display().to_string();
    let env = preload(&[("VMSRS_METRICS_PATH", &metrics)]);
    let mut p = Spawned::start(&bin, &[], &env_refs(&env), true);
    p.wait_line(TIMEOUT, |l| l.starts_with("ready "));
    let tasks = std::fs::read_dir(format!("/proc/{}/task", p.pid())).expect("/proc/PID/task");
    let mut seen = 0;
    let mut ours = 0;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        seen += 1;
        if !comm.trim().starts_with("vmsrs") {
            continue;
        }
        ours += 1;
        let blk = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .expect("SigBlk");
        for &s in ASYNC {
            assert!(
                blk & (1u64 << (s - 1)) != 0,
                "thread {} ({}) does not block signal {s}: SigBlk {blk:#x}",
                t.file_name().to_string_lossy(),
                comm.trim()
            );
        }
    }
    assert!(
        seen >= 2 && ours >= 1,
        "{seen} tasks, {ours} of libvmsrs: the reporter thread did not start:\n{}",
        p.describe()
    );
    p.close_stdin();
    let st = p.wait_timeout(TIMEOUT).expect("the program ends");
    assert!(st.success(), "{}", p.describe());
    let _ = std::fs::remove_file(&metrics);
}

// ----- DESIGN §5, class 3 in drop-in mode: withheld free -------------------------------------

#[test]
fn a_suppressed_users_free_and_realloc_never_free_what_others_still_use() {
    let bin = unmodified("pitfall_withheld_free");
    let out = preloaded(&bin, &[], &[]);
    out.assert_success();
    assert!(out.has_line("shared: still mine") && out.has_line("resized: resized"), "{}", out.describe());
    assert!(out.has_line("frees_withheld 2"), "{}", out.describe());
    assert!(out.stdout.contains("] realloc copied yes 0"), "{}", out.describe());
    assert_eq!(
        out.stderr.matches("is withheld (a leak, never a double free").count(),
        1,
        "{}",
        out.describe()
    );
    // Without libvmsrs the wild read kills the process before anything is freed twice.
    let without = plain(&bin, &[]);
    assert_eq!(without.signal(), Some(libc::SIGSEGV), "{}", without.describe());
}
