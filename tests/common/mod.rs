//! Harness shared by the tests that drive the C examples (`c-examples/`): build libvmsrs once,
//! compile a C example against `include/vmsrs.h` + `libvmsrs.so` (or with `-DVMSRS_DISABLE`,
//! without the library), and run programs with a timeout, capturing stdout, stderr and the
//! exit status (including death by signal).
//!
//! Nothing here skips: a missing tool or a failed build is a panic that says what to do.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The workspace root (where `c-examples/`, `include/` and `Cargo.toml` are).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory (`CARGO_TARGET_DIR` if set, else `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                root().join(d)
            }
        }
        None => root().join("target"),
    }
}

/// A fresh path for a run's exit-time metrics (`VMSRS_METRICS_PATH`): `target/<dir>/<tag>.<pid>.prom`,
/// its directory made and any old file removed.
pub fn metrics_file(dir: &str, tag: &str) -> PathBuf {
    let dir = target_dir().join(dir);
    std::fs::create_dir_all(&dir).expect("create the metrics directory");
    let path = dir.join(format!("{tag}.{}.prom", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// The directory holding `libvmsrs.so` after a release build.
pub fn release_dir() -> PathBuf {
    target_dir().join("release")
}

/// Build `libvmsrs.so` (release) once per test binary; panics with cargo's output on failure.
pub fn build_libvmsrs() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .args(["build", "--release", "-p", "vmsrs", "--lib"])
            .current_dir(root())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {cargo:?} to build libvmsrs: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`cargo build --release -p vmsrs --lib` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let so = release_dir().join("libvmsrs.so");
        if !so.is_file() {
            return Err(format!("the release build did not produce {}", so.display()));
        }
        Ok(so)
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// How a C example is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Build {
    /// Against `include/vmsrs.h`, linked with `libvmsrs.so`.
    Libvmsrs,
    /// With `-DVMSRS_DISABLE`: every API call is the plain operation, no library linked.
    Disabled,
    /// An unmodified program (it does not use vmsrs.h): no library linked, its functions
    /// exported (`-rdynamic`) so an environment file can name them; run it with [`preload`].
    Unmodified,
}

/// The environment that runs a program under `LD_PRELOAD=libvmsrs.so` (built first), plus
/// `extra`.
pub fn preload(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let so = build_libvmsrs();
    let mut env = vec![("LD_PRELOAD".to_string(), so.display().to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// `preload(..)` as the `&[(&str, &str)]` that [`run`] and [`Spawned::start`] take.
pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn gcc_version_check() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECKED.get_or_init(|| match Command::new("gcc").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`gcc --version` failed: {}", o.status)),
        Err(e) => Err(format!(
            "gcc is required to build the C examples but cannot be run ({e}); install it (Debian: apt-get install gcc)"
        )),
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// Compile `c-examples/<name>.c` once per test binary and return the executable's path:
/// `target/c-examples/<name>` (Libvmsrs) or `target/c-examples/<name>-disabled` (Disabled).
pub fn c_example(name: &str, build: Build) -> PathBuf {
    c_example_flags(name, build, "", &[])
}

/// Like [`c_example`], with extra gcc flags; a non-empty `tag` names the executable
/// `target/c-examples/<name>-<tag>` (with `-disabled` / `-unmodified` appended as usual).
pub fn c_example_flags(name: &str, build: Build, tag: &str, flags: &[&str]) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<(String, Build), PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    let stem = if tag.is_empty() { name.to_string() } else { format!("{name}-{tag}") };
    if let Some(p) = cache.get(&(stem.clone(), build)) {
        return p.clone();
    }
    gcc_version_check();
    let root = root();
    let src = root.join("c-examples").join(format!("{name}.c"));
    assert!(src.is_file(), "C example {} does not exist", src.display());
    let header = root.join("include/vmsrs.h");
    assert!(
        header.is_file(),
        "{} is missing: generate it with `VMSRS_BLESS=1 cargo test --test header`",
        header.display()
    );
    let out_dir = target_dir().join("c-examples");
    std::fs::create_dir_all(&out_dir).expect("create target/c-examples");
    let exe = out_dir.join(match build {
        Build::Libvmsrs => stem.clone(),
        Build::Disabled => format!("{stem}-disabled"),
        Build::Unmodified => format!("{stem}-unmodified"),
    });
    // Compile to a private name, then rename: concurrent test binaries never see half a file.
    let tmp =
        out_dir.join(format!(".{}.{}.tmp", exe.file_name().unwrap().to_string_lossy(), std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"]);
    cmd.arg(format!("-I{}", root.join("include").display()));
    if build == Build::Disabled {
        cmd.arg("-DVMSRS_DISABLE");
    }
    if build == Build::Unmodified {
        cmd.arg("-rdynamic");
    }
    cmd.args(flags);
    cmd.arg(&src).arg("-o").arg(&tmp);
    if build == Build::Libvmsrs {
        build_libvmsrs();
        let lib = release_dir();
        cmd.arg(format!("-L{}", lib.display()));
        cmd.arg("-lvmsrs");
        cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run gcc: {e}"));
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "compiling {} ({build:?}) failed: {:?}\n{}",
            src.display(),
            cmd,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&tmp, &exe).expect("rename the compiled example into place");
    cache.insert((stem, build), exe.clone());
    exe
}

/// A finished program run.
#[derive(Debug)]
pub struct RunOutput {
    pub what: String,
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl RunOutput {
    /// Exit code, if the program exited.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed the program, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (pid {}) ended with {} after {:.2?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.pid, self.status, self.elapsed, self.stdout, self.stderr
        )
    }

    /// Assert a clean exit with status 0.
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code(), Some(0), "expected exit status 0:\n{}", self.describe());
        self
    }

    /// Stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Does stdout contain this exact line?
    pub fn has_line(&self, line: &str) -> bool {
        self.stdout.lines().any(|l| l == line)
    }
}

/// A command with the VMSRS_* configuration of the test environment removed, so only what a
/// test passes explicitly configures libvmsrs.
fn command(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        let ks = k.to_string_lossy();
        if ks.starts_with("VMSRS_") || ks == "LD_PRELOAD" {
            cmd.env_remove(&k);
        }
    }
    // cargo test puts target/debug on LD_LIBRARY_PATH, which outranks the examples' RUNPATH
    // and would load the (possibly stale) debug libvmsrs.so instead of the release one.
    cmd.env("LD_LIBRARY_PATH", release_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn describe_cmd(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in env {
        s.push_str(&format!("{k}={v} "));
    }
    s.push_str(&bin.file_name().unwrap_or(OsStr::new("?")).to_string_lossy());
    for a in args {
        s.push_str(&format!(" {a:?}"));
    }
    s
}

fn collect<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Run `bin args` with extra environment `env`, stdin closed, and wait at most `timeout`. A
/// program still running at the timeout is killed and the test panics with its output.
pub fn run(bin: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> RunOutput {
    let what = describe_cmd(bin, args, env);
    let start = Instant::now();
    let mut child = command(bin, args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id();
    let out = collect(child.stdout.take().expect("piped stdout"));
    let err = collect(child.stderr.take().expect("piped stderr"));
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(s) => break Some(s),
            None if start.elapsed() >= timeout => break None,
            None => thread::sleep(Duration::from_millis(5)),
        }
    };
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let s = child.wait().expect("wait for killed child");
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {timeout:?} (killed: {s})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            );
        }
    };
    RunOutput {
        what,
        pid,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// A long-running child (a server, an interactive client): stdout is delivered line by line,
/// everything is also kept for the final report, and the process is killed on drop.
pub struct Spawned {
    pub what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout_all: Arc<Mutex<String>>,
    stderr_all: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Spawned {
    /// Start `bin args` with extra environment `env`; with `stdin` true its stdin is a pipe
    /// (see [`Spawned::send_line`]), else closed.
    pub fn start(bin: &Path, args: &[&str], env: &[(&str, &str)], stdin: bool) -> Spawned {
        let what = describe_cmd(bin, args, env);
        let mut child = command(bin, args, env)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, rx) = mpsc::channel();
        let stdout_all = Arc::new(Mutex::new(String::new()));
        let stderr_all = Arc::new(Mutex::new(String::new()));
        let so = child.stdout.take().expect("piped stdout");
        let se = child.stderr.take().expect("piped stderr");
        let (a, b) = (stdout_all.clone(), stderr_all.clone());
        let r1 = thread::spawn(move || {
            for line in BufReader::new(so).lines() {
                let Ok(line) = line else { break };
                a.lock().unwrap_or_else(|e| e.into_inner()).push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let r2 = thread::spawn(move || {
            let mut buf = Vec::new();
            let mut se = se;
            let mut chunk = [0u8; 4096];
            loop {
                match se.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        *b.lock().unwrap_or_else(|e| e.into_inner()) =
                            String::from_utf8_lossy(&buf).into_owned();
                    }
                }
            }
        });
        let stdin = child.stdin.take();
        Spawned { what, child, stdin, lines: rx, stdout_all, stderr_all, readers: vec![r1, r2], status: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// All stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout_all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// All stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr_all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything about this process, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (pid {}), status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.child.id(),
            self.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// The next stdout line matching `pred`, waiting at most `timeout` in all; panics with
    /// the transcript if none comes.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no expected line within {timeout:?} from {}", self.describe())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(50));
                    panic!("stdout closed before the expected line: {}", self.describe())
                }
            }
        }
    }

    /// Write one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("started with a stdin pipe");
        writeln!(w, "{line}").expect("write to child's stdin");
        w.flush().expect("flush child's stdin");
    }

    /// Close the child's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Wait at most `timeout` for the process to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                // Let the readers drain what the process wrote last.
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kill the process (if it still runs) and reap it.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stdin = None;
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Lines of libvmsrs's fault report on stderr for process `pid`: `==PID==vmsrs: ...` with the
/// prefix removed.
pub fn vmsrs_report_lines(stderr: &str, pid: u32) -> Vec<String> {
    let prefix = format!("=={pid}==vmsrs: ");
    stderr.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

/// Assert that stderr holds a complete fault report for a contained SIGSEGV of `user`: the
/// "contained SIGSEGV ... user U" line, the policy line, and the SUMMARY line, all with the
/// `==PID==vmsrs:` prefix.
pub fn assert_fault_report(stderr: &str, pid: u32, user: u64, context: &str) {
    let lines = vmsrs_report_lines(stderr, pid);
    let contained = lines
        .iter()
        .any(|l| l.starts_with("contained SIGSEGV on address ") && l.ends_with(&format!(" user {user}")));
    let policy = lines.iter().any(|l| l.starts_with("policy applied: "));
    let summary =
        format!("SUMMARY: vmsrs: SIGSEGV contained; user {user} suppressed; other users unaffected");
    assert!(
        contained && policy && lines.contains(&summary),
        "no complete fault report (=={pid}==vmsrs: contained SIGSEGV ... user {user} / policy applied / {summary}) on stderr\n{context}"
    );
}

/// Whitespace-normalised form of a line ("Jim Green 24 2 2 50000").
pub fn squash(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The policies every containment test runs under.
pub const POLICIES: [&str; 2] = ["oblivious", "unwind"];
