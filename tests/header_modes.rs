//! `include/vmsrs.h` works, unchanged, in every language mode a C or C++ server is built in:
//! C99, C11 and C17 (strict `-std=cNN -pedantic` and GNU `-std=gnuNN`) and C++11 to C++20, with
//! GCC and clang, warnings-clean under `-Wall -Wextra -Werror` (plus `-Wshadow -Wconversion
//! -Wcast-qual`), linked with libvmsrs and with `-DVMSRS_DISABLE`.
//!
//! Each test compiles `c-examples/header_modes.c` (C) or `c-examples/header_modes.cpp` (C++,
//! the same checks) and runs it: VMSRS_USER_BEGIN (begin, and the return after a real fault
//! under `VMSRS_POLICY=unwind`), VMSRS_GET/VMSRS_SET on profiled globals, the inline
//! `vmsrs_load*` fast path (the program refuses to compile if it is off) and its call path
//! while another user is faulted. The program prints `header_modes: PASS <lang> <version>
//! <build>`; the version proves the mode was really in force.
//!
//! Nothing skips: gcc, g++, clang and clang++ are required (`scripts/setup.sh` installs them).

mod common;

use common::{build_libvmsrs, release_dir, root, run, target_dir};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// A language mode: compiler, `-std=` value, and extra flags.
struct Mode {
    compiler: &'static str,
    std: &'static str,
    extra: &'static [&'static str],
}

impl Mode {
    fn is_cxx(&self) -> bool {
        self.std.contains("++")
    }

    /// Strict ISO modes are also compiled with `-pedantic`.
    fn pedantic(&self) -> bool {
        !self.std.starts_with("gnu")
    }

    /// What `__STDC_VERSION__` / `__cplusplus` must be in this mode.
    fn version(&self) -> &'static str {
        match self.std.trim_start_matches("gnu").trim_start_matches('c') {
            "99" => "199901",
            "11" => "201112",
            "17" => "201710",
            "++11" => "201103",
            "++14" => "201402",
            "++17" => "201703",
            "++20" => "202002",
            other => panic!("no expected version for -std={other}"),
        }
    }

    fn describe(&self, disabled: bool) -> String {
        let mut s = format!("{} -std={}", self.compiler, self.std);
        if self.pedantic() {
            s.push_str(" -pedantic");
        }
        for e in self.extra {
            s.push(' ');
            s.push_str(e);
        }
        if disabled {
            s.push_str(" -DVMSRS_DISABLE");
        }
        s
    }
}

/// Panic with what to install when a compiler cannot be run.
fn require_compiler(cc: &str) {
    static CHECKED: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let seen = CHECKED.get_or_init(Default::default);
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.iter().any(|c| c == cc) {
        return;
    }
    let package = if cc.starts_with("clang") { "clang" } else { cc };
    match Command::new(cc).arg("--version").stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => seen.push(cc.to_string()),
        Ok(o) => {
            panic!("`{cc} --version` failed ({}); reinstall it (Debian: apt-get install {package})", o.status)
        }
        Err(e) => panic!(
            "{cc} is required to check vmsrs.h in every language mode but cannot be run ({e}); \
             install it (Debian: apt-get install {package}, or run scripts/setup.sh)"
        ),
    }
}

/// The command line shared by every build of the test program in `mode`.
fn compile_command(mode: &Mode, disabled: bool) -> Command {
    require_compiler(mode.compiler);
    let root = root();
    let src = root.join("c-examples").join(if mode.is_cxx() { "header_modes.cpp" } else { "header_modes.c" });
    assert!(src.is_file(), "{} does not exist", src.display());
    let mut cmd = Command::new(mode.compiler);
    cmd.arg(format!("-std={}", mode.std));
    if mode.pedantic() {
        cmd.arg("-pedantic");
    }
    cmd.args([
        "-O2",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wshadow",
        "-Wconversion",
        "-Wcast-qual",
        "-pthread",
    ]);
    cmd.args(mode.extra);
    cmd.arg(format!("-I{}", root.join("include").display()));
    if disabled {
        cmd.arg("-DVMSRS_DISABLE");
    }
    cmd.arg(src);
    cmd
}

/// Compile the test program in `mode` and return the executable.
fn build(mode: &Mode, disabled: bool) -> PathBuf {
    let out_dir = target_dir().join("header-modes");
    std::fs::create_dir_all(&out_dir).expect("create target/header-modes");
    let name: String = mode
        .describe(disabled)
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => c,
            '+' => 'x',
            _ => '-',
        })
        .collect();
    let exe = out_dir.join(&name);
    let tmp = out_dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut cmd = compile_command(mode, disabled);
    cmd.arg("-o").arg(&tmp);
    if !disabled {
        build_libvmsrs();
        let lib = release_dir();
        cmd.arg(format!("-L{}", lib.display())).arg("-lvmsrs").arg(format!("-Wl,-rpath,{}", lib.display()));
    }
    let out =
        cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", mode.compiler));
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "vmsrs.h does not compile warnings-clean in `{}`:\n{cmd:?}\n{}",
            mode.describe(disabled),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&tmp, &exe).expect("rename the compiled program into place");
    exe
}

/// Build and run the test program in `mode`, with libvmsrs and with `-DVMSRS_DISABLE`.
fn check_mode(mode: Mode) {
    for disabled in [false, true] {
        let what = mode.describe(disabled);
        let exe = build(&mode, disabled);
        let out = run(&exe, &[], &[("VMSRS_POLICY", "unwind")], Duration::from_secs(60));
        let lang = if mode.is_cxx() { "c++" } else { "c" };
        let build = if disabled { "disabled" } else { "libvmsrs" };
        let pass = format!("header_modes: PASS {lang} {} {build}", mode.version());
        assert!(
            out.code() == Some(0) && out.has_line(&pass),
            "the header_modes program built with `{what}` did not pass (expected exit 0 and the line {pass:?}):\n{}",
            out.describe()
        );
    }
}

macro_rules! mode_tests {
    ($($name:ident: $cc:literal, $std:literal $(, $extra:literal)*;)*) => {$(
        #[test]
        fn $name() {
            check_mode(Mode { compiler: $cc, std: $std, extra: &[$($extra),*] });
        }
    )*};
}

mode_tests! {
    header_compiles_and_runs_in_strict_c99_with_gcc: "gcc", "c99";
    header_compiles_and_runs_in_strict_c11_with_gcc: "gcc", "c11";
    header_compiles_and_runs_in_strict_c17_with_gcc: "gcc", "c17";
    header_compiles_and_runs_in_gnu99_with_gcc: "gcc", "gnu99";
    header_compiles_and_runs_in_gnu11_with_gcc: "gcc", "gnu11";
    header_compiles_and_runs_in_gnu17_with_gcc: "gcc", "gnu17";
    header_compiles_and_runs_in_strict_c99_with_clang: "clang", "c99";
    header_compiles_and_runs_in_strict_c11_with_clang: "clang", "c11";
    header_compiles_and_runs_in_strict_c17_with_clang: "clang", "c17";
    header_compiles_and_runs_in_gnu99_with_clang: "clang", "gnu99";
    header_compiles_and_runs_in_gnu11_with_clang: "clang", "gnu11";
    header_compiles_and_runs_in_gnu17_with_clang: "clang", "gnu17";
    header_compiles_and_runs_in_cxx11_with_gxx: "g++", "c++11";
    header_compiles_and_runs_in_cxx14_with_gxx: "g++", "c++14";
    header_compiles_and_runs_in_cxx17_with_gxx: "g++", "c++17";
    header_compiles_and_runs_in_cxx20_with_gxx: "g++", "c++20";
    header_compiles_and_runs_in_cxx11_with_clangxx: "clang++", "c++11";
    header_compiles_and_runs_in_cxx14_with_clangxx: "clang++", "c++14";
    header_compiles_and_runs_in_cxx17_with_clangxx: "clang++", "c++17";
    header_compiles_and_runs_in_cxx20_with_clangxx: "clang++", "c++20";
    // The user's own <setjmp.h> first, under strict C99: the POSIX declarations stay hidden.
    header_works_after_setjmp_h_in_strict_c99_with_gcc: "gcc", "c99", "-DHEADER_MODES_SETJMP_FIRST";
    header_works_after_setjmp_h_in_strict_c99_with_clang: "clang", "c99", "-DHEADER_MODES_SETJMP_FIRST";
    // POSIX declarations visible in strict C99: the public sigsetjmp macro is used.
    header_works_with_posix_declarations_in_strict_c99: "gcc", "c99", "-D_POSIX_C_SOURCE=200809L";
    // Every load a call.
    header_works_without_the_inline_fast_path: "gcc", "c11", "-DVMSRS_NO_INLINE";
}

/// Compile `src` (C or C++ per `mode`) to an object; Ok(()) or Err(compiler output).
fn compile_snippet(mode: &Mode, src: &str) -> Result<(), String> {
    require_compiler(mode.compiler);
    let mut cmd = Command::new(mode.compiler);
    cmd.arg(format!("-std={}", mode.std)).args(["-Wall", "-Wextra", "-Werror", "-fsyntax-only"]);
    cmd.arg(format!("-I{}", root().join("include").display()));
    cmd.args(["-x", if mode.is_cxx() { "c++" } else { "c" }, "-"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", mode.compiler));
    use std::io::Write;
    child.stdin.take().expect("piped stdin").write_all(src.as_bytes()).expect("write the snippet");
    let out = child.wait_with_output().expect("wait for the compiler");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// VMSRS_SET on a const lvalue is refused at compile time (in C as the usual discarded
/// qualifier error under -Werror, in C++ as an error), while the same code on a non-const
/// lvalue compiles; VMSRS_GET of an array is refused too (it would copy past a pointer).
#[test]
fn header_refuses_set_on_const_and_get_of_array() {
    let ok =
        "#include <vmsrs.h>\nint g;\nvoid f(void);\nvoid f(void) { VMSRS_SET(g, 1); (void)VMSRS_GET(g); }\n";
    let set_const =
        "#include <vmsrs.h>\nconst int g = 0;\nvoid f(void);\nvoid f(void) { VMSRS_SET(g, 1); }\n";
    let get_array = "#include <vmsrs.h>\nint a[4];\nvoid f(void);\nvoid f(void) { (void)VMSRS_GET(a); }\n";
    for (cc, std) in [("gcc", "c99"), ("clang", "c11"), ("g++", "c++11"), ("clang++", "c++17")] {
        let mode = Mode { compiler: cc, std, extra: &[] };
        if let Err(e) = compile_snippet(&mode, ok) {
            panic!("VMSRS_GET/VMSRS_SET on a plain int do not compile with {cc} -std={std}:\n{e}");
        }
        assert!(
            compile_snippet(&mode, set_const).is_err(),
            "VMSRS_SET on a const lvalue compiles with {cc} -std={std}"
        );
        assert!(
            compile_snippet(&mode, get_array).is_err(),
            "VMSRS_GET of an array compiles with {cc} -std={std}"
        );
    }
}
