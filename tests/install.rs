//! `scripts/install.sh` gives a C or C++ developer what they expect: `libvmsrs.so.X.Y.Z` with
//! the `libvmsrs.so.X` (SONAME) and `libvmsrs.so` symlinks, `vmsrs.h`, and a `vmsrs.pc` with
//! which `pkg-config --cflags --libs vmsrs` alone builds a program (no path into the source
//! tree). Installed programs find the library through `LD_LIBRARY_PATH` or an rpath taken from
//! `pkg-config --variable=libdir vmsrs`; the .pc file itself adds no rpath (a system prefix
//! needs none).
//!
//! Also: the library exports only its API (`vmsrs_*`, `vmsrs__*`), plus, once the drop-in mode
//! lands, the libc functions it interposes.
//!
//! Nothing skips: pkg-config, readelf, nm and ldd are required (`scripts/setup.sh`).

mod common;

use common::{build_libvmsrs, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh, empty directory under the target directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = common::target_dir().join("install-test").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the scratch directory");
    d
}

/// Run a tool to completion; panic with what to install when it is missing.
fn tool(cmd: &mut Command, what: &str) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {what} ({e}): install it (Debian: scripts/setup.sh installs pkg-config and binutils)"
        )
    })
}

fn ok_stdout(cmd: &mut Command, what: &str) -> String {
    let out = tool(cmd, what);
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/install.sh args`, with no PREFIX/LIBDIR/INCLUDEDIR/DESTDIR from the test's own
/// environment, plus `env`.
fn install(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(root().join("scripts/install.sh"));
    cmd.args(args).current_dir(root());
    for k in ["PREFIX", "LIBDIR", "INCLUDEDIR", "DESTDIR"] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    ok_stdout(&mut cmd, "scripts/install.sh")
}

/// `pkg-config args` seeing only the .pc files in `pc_dir`.
fn pkg_config(pc_dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("pkg-config");
    cmd.args(args).env("PKG_CONFIG_PATH", pc_dir).env("PKG_CONFIG_LIBDIR", pc_dir);
    ok_stdout(&mut cmd, "pkg-config").trim().to_string()
}

/// The dynamic-section entries of `kind` (NEEDED, SONAME, RUNPATH) of an ELF file.
fn dynamic(file: &Path, kind: &str) -> Vec<String> {
    let text = ok_stdout(Command::new("readelf").arg("-d").arg(file), "readelf");
    text.lines()
        .filter(|l| l.contains(&format!("({kind})")))
        .filter_map(|l| Some(l[l.find('[')? + 1..l.rfind(']')?].to_string()))
        .collect()
}

/// Run `exe` with `VMSRS_POLICY=unwind`, no inherited `VMSRS_*`/`LD_*` variables, and
/// `LD_LIBRARY_PATH=ld_path` if given; at most 60 s.
fn run_program(exe: &Path, ld_path: Option<&Path>) -> Output {
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars_os() {
        let ks = k.to_string_lossy();
        if ks.starts_with("VMSRS_") || ks.starts_with("LD_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("VMSRS_POLICY", "unwind");
    if let Some(p) = ld_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let start = Instant::now();
    while child.try_wait().expect("wait for the program").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect the program's output")
}

fn assert_pass(out: &Output, what: &str, lang: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l.starts_with(&format!("header_modes: PASS {lang} "))),
        "{what}: expected exit 0 and a PASS line, got {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The installed tree under a prefix: files, symlinks, SONAME, and a program built and run
/// with nothing but what `pkg-config --cflags --libs vmsrs` says.
#[test]
fn install_into_a_prefix_builds_programs_with_pkg_config_alone() {
    let dir = scratch("prefix");
    let prefix = dir.join("prefix");
    let report = install(&["--prefix", prefix.to_str().expect("utf-8 path")], &[]);
    let lib = prefix.join("lib");
    let inc = prefix.join("include");

    // The library, its SONAME and the two symlinks.
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let real = lib.join(format!("libvmsrs.so.{version}"));
    let soname = format!("libvmsrs.so.{major}");
    let meta = std::fs::symlink_metadata(&real).expect("the real library file is installed");
    assert!(meta.file_type().is_file(), "{} must be a regular file\n{report}", real.display());
    assert_eq!(
        std::fs::read_link(lib.join(&soname)).ok(),
        Some(PathBuf::from(format!("libvmsrs.so.{version}"))),
        "{soname} must be a symlink to libvmsrs.so.{version}\n{report}"
    );
    assert_eq!(
        std::fs::read_link(lib.join("libvmsrs.so")).ok(),
        Some(PathBuf::from(&soname)),
        "libvmsrs.so must be a symlink to {soname}\n{report}"
    );
    assert_eq!(dynamic(&real, "SONAME"), vec![soname.clone()], "SONAME of {}", real.display());
    let header = std::fs::read(inc.join("vmsrs.h")).expect("vmsrs.h is installed");
    assert_eq!(header, std::fs::read(root().join("include/vmsrs.h")).unwrap(), "installed vmsrs.h differs");

    // pkg-config sees the installed tree only.
    let pc_dir = lib.join("pkgconfig");
    let flags = pkg_config(&pc_dir, &["--cflags", "--libs", "vmsrs"]);
    let root_s = root().to_string_lossy().into_owned();
    let prefix_s = prefix.to_string_lossy().into_owned();
    assert!(
        flags.contains(&format!("-I{prefix_s}/include")) && flags.contains(&format!("-L{prefix_s}/lib")),
        "pkg-config --cflags --libs vmsrs gave {flags:?}, expected -I/-L under {prefix_s}"
    );
    assert_eq!(pkg_config(&pc_dir, &["--modversion", "vmsrs"]), version);
    let libdir = pkg_config(&pc_dir, &["--variable=libdir", "vmsrs"]);
    assert_eq!(Path::new(&libdir), lib, "pkg-config --variable=libdir vmsrs");

    // A C and a C++ program, built from a copy of the source outside the source tree.
    let src_dir = dir.join("src");
    std::fs::create_dir_all(&src_dir).unwrap();
    for f in ["header_modes.c", "header_modes.cpp"] {
        std::fs::copy(root().join("c-examples").join(f), src_dir.join(f)).expect("copy the example");
    }
    for (cc, std, src, lang) in
        [("gcc", "c11", "header_modes.c", "c"), ("g++", "c++17", "header_modes.cpp", "c++")]
    {
        for rpath in [false, true] {
            let exe = dir.join(format!("{lang}-{}", if rpath { "rpath" } else { "ldpath" }));
            let mut cmd = Command::new(cc);
            cmd.current_dir(&src_dir)
                .args([&format!("-std={std}"), "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", src, "-o"])
                .arg(&exe)
                .args(flags.split_whitespace());
            if rpath {
                cmd.arg(format!("-Wl,-rpath,{libdir}"));
            }
            let what = format!("{cc} with only `pkg-config --cflags --libs vmsrs`");
            let cmdline = format!("{cmd:?}");
            assert!(
                !cmdline.contains(&format!("{root_s}/include")),
                "the build must not use the source tree"
            );
            ok_stdout(&mut cmd, &what);

            let needed = dynamic(&exe, "NEEDED");
            assert!(
                needed.contains(&soname) && !needed.iter().any(|n| n == "libvmsrs.so"),
                "{} must need {soname} (the SONAME), not libvmsrs.so: NEEDED {needed:?}",
                exe.display()
            );
            let (out, how) = if rpath {
                (run_program(&exe, None), "with the rpath from pkg-config --variable=libdir")
            } else {
                (run_program(&exe, Some(&lib)), "with LD_LIBRARY_PATH=<prefix>/lib")
            };
            assert_pass(&out, &format!("{lang} program {how}"), lang);

            // The loader resolved the installed library, not one from the source tree.
            let mut ldd = Command::new("ldd");
            ldd.arg(&exe).env_remove("LD_LIBRARY_PATH");
            if !rpath {
                ldd.env("LD_LIBRARY_PATH", &lib);
            }
            let resolved = ok_stdout(&mut ldd, "ldd");
            let expect = format!("{soname} => {}", lib.join(&soname).display());
            assert!(
                resolved.contains(&expect),
                "ldd {} {how}: expected {expect:?} in\n{resolved}",
                exe.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Packaging layout: DESTDIR stages the files, LIBDIR and PREFIX (from the environment) are
/// honoured, and the .pc file names the final paths, not the staging directory.
#[test]
fn install_honours_destdir_prefix_and_libdir() {
    build_libvmsrs();
    let dir = scratch("destdir");
    let stage = dir.join("stage");
    let stage_s = stage.to_str().expect("utf-8 path");
    install(
        &["--no-build"],
        &[("DESTDIR", stage_s), ("PREFIX", "/opt/vmsrs"), ("LIBDIR", "/opt/vmsrs/lib64")],
    );
    let lib = stage.join("opt/vmsrs/lib64");
    let version = env!("CARGO_PKG_VERSION");
    for f in [format!("libvmsrs.so.{version}"), format!("libvmsrs.so.{}", env!("CARGO_PKG_VERSION_MAJOR"))] {
        assert!(lib.join(&f).is_file(), "{} missing under the staging directory", f);
    }
    assert!(std::fs::symlink_metadata(lib.join("libvmsrs.so")).is_ok(), "libvmsrs.so symlink missing");
    assert!(stage.join("opt/vmsrs/include/vmsrs.h").is_file(), "vmsrs.h missing under the staging directory");
    let pc_dir = lib.join("pkgconfig");
    let pc = std::fs::read_to_string(pc_dir.join("vmsrs.pc")).expect("vmsrs.pc is installed");
    assert!(!pc.contains(stage_s), "vmsrs.pc must not name the staging directory:\n{pc}");
    assert_eq!(pkg_config(&pc_dir, &["--variable=libdir", "vmsrs"]), "/opt/vmsrs/lib64", "vmsrs.pc:\n{pc}");
    assert_eq!(
        pkg_config(&pc_dir, &["--variable=includedir", "vmsrs"]),
        "/opt/vmsrs/include",
        "vmsrs.pc:\n{pc}"
    );
    assert_eq!(
        pkg_config(&pc_dir, &["--cflags", "--libs", "vmsrs"]),
        "-I/opt/vmsrs/include -L/opt/vmsrs/lib64 -lvmsrs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// libc functions the drop-in mode will interpose (exported from libvmsrs.so under their
/// own names). Add a name here when its interposer lands.
const INTERPOSED: &[&str] = &[
    "sigaction",
    "signal",
    "__sysv_signal",
    "bsd_signal",
    "sysv_signal",
    "ssignal",
    "pthread_create",
    // Drop-in monitored ranges (preload/src/interpose.rs): kernel stores into watched buffers,
    // watched ranges unmapped, moved or mapped over, signal masks that must not block a watched store's trap.
    "read",
    "pread",
    "pread64",
    "readv",
    "preadv",
    "recv",
    "recvfrom",
    "munmap",
    "mprotect",
    "pkey_mprotect",
    "mmap",
    "mmap64",
    "mremap",
    "shmat",
    "dlclose",
    "close",
    "dup2",
    "dup3",
    "close_range",
    "closefrom",
    "sigprocmask",
    "pthread_sigmask",
    // The allocator family and mem* (preload/src/memory.rs).
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "memcpy",
    "memmove",
    "memset",
    "__memcpy_chk",
    "__memmove_chk",
    "__memset_chk",
    // The printf family (preload/src/output.rs).
    "printf",
    "fprintf",
    "vprintf",
    "vfprintf",
    "dprintf",
    "vdprintf",
    "puts",
    "fputs",
    "putchar",
    "fwrite",
    "fputc",
    "__printf_chk",
    "__fprintf_chk",
    "__vprintf_chk",
    "__vfprintf_chk",
    "__dprintf_chk",
    "__vdprintf_chk",
    // C++ exceptions, pthread_exit and longjmp leaving a rescue call (preload/src/interpose.rs).
    "_Unwind_RaiseException",
    "_Unwind_Resume_or_Rethrow",
    "__gxx_personality_v0",
    "pthread_exit",
    "longjmp",
    "_longjmp",
    "siglongjmp",
    "__longjmp_chk",
    // Lock tracking (src/locks.rs).
    "pthread_mutex_lock",
    "pthread_mutex_trylock",
    "pthread_mutex_timedlock",
    "pthread_mutex_clocklock",
    "pthread_mutex_unlock",
    "pthread_rwlock_rdlock",
    "pthread_rwlock_wrlock",
    "pthread_rwlock_tryrdlock",
    "pthread_rwlock_trywrlock",
    "pthread_rwlock_timedrdlock",
    "pthread_rwlock_timedwrlock",
    "pthread_rwlock_clockrdlock",
    "pthread_rwlock_clockwrlock",
    "pthread_rwlock_unlock",
    "pthread_spin_lock",
    "pthread_spin_trylock",
    "pthread_spin_unlock",
    "pthread_cond_wait",
    "pthread_cond_timedwait",
    "pthread_cond_clockwait",
    "sem_wait",
    "sem_timedwait",
    "sem_clockwait",
    "pthread_barrier_wait",
];

/// libvmsrs.so exports its API and nothing else (rustc's export list keeps Rust internals
/// and dependencies local), and it exports everything the header's macros use.
#[test]
fn libvmsrs_exports_only_its_api() {
    let so = build_libvmsrs();
    let text = ok_stdout(Command::new("nm").args(["-D", "--defined-only"]).arg(&so), "nm");
    let names: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let stray: Vec<&&str> =
        names.iter().filter(|n| !n.starts_with("vmsrs_") && !INTERPOSED.contains(n)).collect();
    assert!(stray.is_empty(), "libvmsrs.so exports symbols outside its API: {stray:?}");
    for needed in [
        "vmsrs__gate",
        "vmsrs__recovery_point",
        "vmsrs__user_begin_rp",
        "vmsrs__user_unwound",
        "vmsrs_printf",
        "vmsrs_load32",
    ] {
        assert!(names.contains(&needed), "libvmsrs.so does not export {needed} (vmsrs.h uses it)");
    }
}
