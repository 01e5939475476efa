//! Real servers for the drop-in tests: a private MariaDB (`mariadbd`) and a private Apache
//! httpd (event MPM), each started from its Debian package's binary in a fresh temporary
//! directory, listening on a free loopback port, optionally with `LD_PRELOAD=libvmsrs.so`.
//!
//! Test files use it as `mod common; mod servers;` (it uses `crate::common`).
//!
//! Safety of the machine: nothing here touches system state. The servers run as root (httpd's
//! children as www-data) with every path in their temporary directory (`/etc/apache2` and
//! `/var/lib/mysql` are never read), on `127.0.0.1` only, with core dumps off. Each server is
//! the leader of its own process group; dropping its handle (also while a test panics) sends
//! SIGTERM to the group, then SIGKILL after a timeout, reaps it, and removes the directory.
//! A server whose test process dies without unwinding gets SIGKILL from the kernel
//! (`PR_SET_PDEATHSIG`). Every wait here is bounded.
//!
//! Nothing skips: a missing package is a panic that says to run `scripts/setup.sh`.
//! `SERVERS_KEEP_DIRS=1` keeps the temporary directories (their paths are printed).

#![allow(dead_code)]

use crate::common;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How a server is preloaded: the `libvmsrs.so` to put in `LD_PRELOAD` and extra environment
/// (e.g. `VMSRS_ENV_FILE`). `None` starts the unmodified server.
pub type Preload<'a> = Option<(&'a Path, &'a [(&'a str, &'a str)])>;

/// Panic, naming the package, unless `path` is an executable file.
pub fn require(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    let ok = fs::metadata(&p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    assert!(ok, "{path} is missing: install the Debian package {package} (run scripts/setup.sh as root)");
    p
}

/// Panic, naming the package, unless `path` is a file.
pub fn require_file(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} is missing: install the Debian package {package} (run scripts/setup.sh as root)"
    );
    p
}

/// Panic, naming the package, unless `tool` is on PATH; returns its path.
pub fn require_on_path(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(tool);
        if fs::metadata(&p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false) {
            return p;
        }
    }
    panic!("`{tool}` is not on PATH: install the Debian package {package} (run scripts/setup.sh as root)");
}

/// `libvmsrs.so` (release), built once per test binary.
pub fn libvmsrs() -> PathBuf {
    common::build_libvmsrs()
}

/// `preload/<name>.env`, the shipped drop-in configuration for a server.
pub fn env_file(name: &str) -> PathBuf {
    let p = common::root().join("preload").join(format!("{name}.env"));
    assert!(p.is_file(), "{} is missing (the drop-in configuration shipped for this server)", p.display());
    p
}

/// Where built server plug-ins and the MariaDB template live: `target/servers/`.
pub fn build_dir() -> PathBuf {
    let d = common::target_dir().join("servers");
    fs::create_dir_all(&d).expect("create target/servers");
    d
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// A name no other process or thread uses at the same time.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos:x}", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Build `out` from `src` unless it is already newer; `build` writes to the private path it is
/// given, which is then renamed into place (concurrent test processes never see half a file).
fn build_once(out: &Path, src: &Path, build: impl FnOnce(&Path) -> Result<(), String>) -> PathBuf {
    assert!(src.is_file(), "{} does not exist", src.display());
    if let (Some(o), Some(s)) = (mtime(out), mtime(src)) {
        if o > s {
            return out.to_path_buf();
        }
    }
    let tmp = out.with_file_name(format!(".{}", unique(&out.file_name().unwrap().to_string_lossy())));
    if let Err(e) = build(&tmp) {
        let _ = fs::remove_file(&tmp);
        panic!("building {} from {} failed:\n{e}", out.display(), src.display());
    }
    fs::rename(&tmp, out).expect("rename the built plug-in into place");
    out.to_path_buf()
}

fn output_of(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released; servers retry on a lost race).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A private temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(&format!("vmsrs-{prefix}")));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        // httpd's children (www-data) must be able to reach their directory.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SERVERS_KEEP_DIRS").is_some() {
            eprintln!("servers: kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Run a command with a timeout; Err on timeout (the command is killed) or spawn failure.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let ro = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let re = thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= timeout => break None,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("wait for {what}: {e}")),
        }
    };
    match status {
        Some(status) => Ok(Output {
            status,
            stdout: ro.join().unwrap_or_default(),
            stderr: re.join().unwrap_or_default(),
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&ro.join().unwrap_or_default()).into_owned();
            let err = String::from_utf8_lossy(&re.join().unwrap_or_default()).into_owned();
            Err(format!("{what} did not finish within {timeout:?} (killed)\n{out}{err}"))
        }
    }
}

/// Resident set size (KiB) and thread count of a live process, from /proc/PID/status.
pub fn rss_and_threads(pid: u32) -> (u64, u64) {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("Threads:"))
}

/// The pids whose parent is `ppid` (from /proc/*/stat), sorted.
pub fn children_of(ppid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return v };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses; split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut f = rest.split_whitespace();
        let state = f.next();
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(ppid) && state != Some("Z") {
            v.push(pid);
        }
    }
    v.sort_unstable();
    v
}

/// Is `pid` a live (not zombie) process?
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').map(|i| !stat[i + 1..].trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

/// One server process: the leader of its own process group, stdout and stderr in `log`.
pub struct ServerProcess {
    pub name: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
    reaped: bool,
}

impl ServerProcess {
    /// Spawn `cmd` (its environment already set) with stdout/stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> ServerProcess {
        let f = fs::OpenOptions::new().create(true).append(true).open(log).expect("open server log");
        cmd.stdin(Stdio::null()).stdout(f.try_clone().expect("dup log")).stderr(f).process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, setrlimit).
        unsafe {
            cmd.pre_exec(|| {
                // The server dies with the test thread that started it, even on SIGKILL.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
                // No core dumps (mariadbd and httpd would write them into the temp dir).
                let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::setrlimit(libc::RLIMIT_CORE, &zero);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        ServerProcess { name: name.to_string(), child, log: log.to_path_buf(), status: None, reaped: false }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (the process is not reaped, so its pid and
    /// process group stay reserved until drop).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        // SAFETY: zeroed siginfo_t is a valid out-value; waitid with WNOWAIT only observes.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above, on our own child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid/si_status are valid for SIGCHLD-type siginfo filled by waitid.
        let (pid, code, st) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if r != 0 || pid == 0 {
            return None;
        }
        // Re-encode as a wait(2) status.
        let raw = match code {
            libc::CLD_EXITED => (st & 0xff) << 8,
            libc::CLD_KILLED => st & 0x7f,
            libc::CLD_DUMPED => (st & 0x7f) | 0x80,
            _ => return None,
        };
        self.status = Some(ExitStatus::from_raw(raw));
        self.status
    }

    pub fn alive(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Wait at most `timeout` for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal_group(&self, sig: i32) {
        // SAFETY: kill(2) on our own process group (the child is its leader and not reaped).
        unsafe { libc::kill(-(self.pid() as i32), sig) };
    }

    /// SIGTERM to the group, wait at most `grace`, then SIGKILL the group; reap the leader.
    /// Returns how the leader ended (its own status if it ended within the grace time).
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        if self.reaped {
            return self.status.expect("reaped with a status");
        }
        if self.try_status().is_none() {
            self.signal_group(libc::SIGTERM);
            self.wait_exit(grace);
        }
        // Whatever is left in the group (httpd children whose parent died, ...).
        self.signal_group(libc::SIGKILL);
        let st = self.child.wait().expect("reap the server");
        self.status.get_or_insert(st);
        self.reaped = true;
        self.status.unwrap()
    }

    /// The server's stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
        if thread::panicking() {
            eprintln!(
                "--- {} (pid {}) ended with {:?}; last lines of {} ---\n{}",
                self.name,
                self.pid(),
                self.status,
                self.log.display(),
                self.log_tail(60)
            );
        }
    }
}

fn server_env(cmd: &mut Command, preload: Preload) {
    for (k, _) in std::env::vars_os() {
        let ks = k.to_string_lossy();
        if ks.starts_with("VMSRS_") || ks == "LD_PRELOAD" || ks == "LD_LIBRARY_PATH" {
            cmd.env_remove(&k);
        }
    }
    if let Some((lib, env)) = preload {
        assert!(lib.is_file(), "{} does not exist", lib.display());
        cmd.env("LD_PRELOAD", lib);
        for (k, v) in env {
            cmd.env(k, v);
        }
    }
}

fn describe_preload(preload: Preload) -> String {
    match preload {
        None => "without libvmsrs".into(),
        Some((lib, env)) => {
            let mut s = format!("LD_PRELOAD={}", lib.display());
            for (k, v) in env {
                s.push_str(&format!(" {k}={v}"));
            }
            s
        }
    }
}

// ---------------------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------------------

pub const MARIADBD: &str = "/usr/sbin/mariadbd";
/// `max_connections` as every test server starts with it.
pub const MAX_CONNECTIONS: u64 = 151;

/// Server options shared by the template installation and every server.
const MARIADB_COMMON: &[&str] = &["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=64M"];

/// `target/servers/plugin/udf_fault.so`, built from `c-examples/servers/udf_fault.c`.
pub fn udf_plugin_dir() -> PathBuf {
    let dir = build_dir().join("plugin");
    fs::create_dir_all(&dir).expect("create target/servers/plugin");
    let src = common::root().join("c-examples/servers/udf_fault.c");
    build_once(&dir.join("udf_fault.so"), &src, |tmp| {
        output_of(
            Command::new("gcc")
                .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-pthread"])
                .arg(&src)
                .arg("-o")
                .arg(tmp),
        )
        .map(drop)
    });
    dir
}

/// A data directory made by `mariadb-install-db` once (per mariadbd binary) and copied for
/// each server: installing takes seconds, copying ~30 MB does not.
fn mariadb_template() -> PathBuf {
    let install = require_on_path("mariadb-install-db", "mariadb-server");
    let md = fs::metadata(MARIADBD).expect("stat mariadbd");
    let stamp =
        md.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()).unwrap_or(0);
    // Keyed by the server binary and the options the datadir is made with.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(md.len(), stamp, MARIADB_COMMON), &mut h);
    let tmpl = build_dir().join(format!("mariadb-template-{:016x}", std::hash::Hasher::finish(&h)));
    if tmpl.join("mysql").is_dir() {
        return tmpl;
    }
    let work = build_dir().join(format!(".{}", unique("mariadb-template")));
    // The bootstrap server's temporary tables go to a private directory: in the shared /tmp,
    // a CI run once lost one mid-install ("Could not remove temporary table ... error: 2").
    let tmp = build_dir().join(format!(".{}", unique("mariadb-template-tmp")));
    fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    let mut cmd = Command::new(&install);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", work.display()))
        .args(["--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
        .arg(format!("--tmpdir={}", tmp.display()))
        .args(MARIADB_COMMON);
    server_env(&mut cmd, None);
    let result = run_bounded(&mut cmd, Duration::from_secs(120)).and_then(|o| {
        if o.status.success() {
            Ok(())
        } else {
            Err(format!("{} {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        }
    });
    let _ = fs::remove_dir_all(&tmp);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&work);
        panic!("mariadb-install-db failed: {e}");
    }
    // Another test process may have won the race: keep its template.
    if fs::rename(&work, &tmpl).is_err() {
        let _ = fs::remove_dir_all(&work);
    }
    assert!(tmpl.join("mysql").is_dir(), "no MariaDB template at {}", tmpl.display());
    tmpl
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for e in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let e = e.expect("dir entry");
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|err| panic!("copy {}: {err}", src.display()));
        }
    }
}

/// A private `mariadbd`: its own datadir, socket and loopback port.
pub struct Mariadb {
    // Field order: the server stops before its directory is removed.
    pub server: ServerProcess,
    pub port: u16,
    pub socket: PathBuf,
    client: PathBuf,
    dir: TempDir,
}

impl Mariadb {
    /// Wait (≤ 10 s) until a session's `SELECT vmsrs_fault(5, ...)` is executing.
    pub fn wait_slow_query_running(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let sql =
            "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT vmsrs_fault(5,%'";
        loop {
            if self.query(sql).as_deref() == Ok("1") {
                return;
            }
            assert!(Instant::now() < deadline, "the slow query never showed up in the processlist");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start a server (`preload` as given) and wait until it accepts connections (≤ 60 s).
    pub fn start(preload: Preload) -> Mariadb {
        require(MARIADBD, "mariadb-server");
        let client = require_on_path("mariadb", "mariadb-client");
        let plugins = udf_plugin_dir();
        let template = mariadb_template();
        let mut dir = TempDir::new("mariadb");
        let data = dir.path().join("data");
        copy_tree(&template, &data);
        let socket = dir.path().join("mysqld.sock");
        assert!(socket.as_os_str().len() < 100, "socket path too long: {}", socket.display());
        for attempt in 1.. {
            let log = dir.path().join("mariadbd.log");
            let port = free_port();
            let mut cmd = Command::new(MARIADBD);
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--user=root")
                .arg(format!("--plugin-dir={}", plugins.display()))
                .arg(format!("--pid-file={}", dir.path().join("mariadbd.pid").display()))
                .arg(format!("--tmpdir={}", dir.path().display()))
                .args(MARIADB_COMMON)
                .args([
                    "--skip-log-bin",
                    "--skip-name-resolve",
                    "--innodb-flush-log-at-trx-commit=2",
                    &format!("--max-connections={MAX_CONNECTIONS}"),
                ]);
            server_env(&mut cmd, preload);
            let server = ServerProcess::spawn(&format!("mariadbd {}", describe_preload(preload)), cmd, &log);
            let mut m = Mariadb { server, port, socket: socket.clone(), client: client.clone(), dir };
            let Err(e) = m.wait_ready(Duration::from_secs(60)) else { return m };
            let text = m.server.log();
            m.server.stop(Duration::from_secs(10));
            let port_lost = text.contains("Address already in use") || text.contains("Bind on TCP/IP port");
            if !port_lost || attempt == 3 {
                panic!("mariadbd {} did not start: {e}\n--- log ---\n{text}", describe_preload(preload));
            }
            // Lost the port to another process: again on another, keeping this log aside.
            let _ = fs::rename(&log, log.with_extension(format!("log.{attempt}")));
            let Mariadb { server, dir: d, .. } = m;
            drop(server);
            dir = d;
        }
        unreachable!()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.server.try_status() {
                return Err(format!("mariadbd exited during start-up: {st}"));
            }
            if self.socket.exists() && self.query("SELECT 1").as_deref() == Ok("1") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not accepting connections after {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `mariadb` client command for this server (socket, root, batch mode, no headers).
    pub fn client(&self) -> Command {
        let mut cmd = Command::new(&self.client);
        cmd.arg("--no-defaults").arg(format!("--socket={}", self.socket.display())).args([
            "--user=root",
            "--batch",
            "--skip-column-names",
            "--connect-timeout=10",
            "--skip-reconnect",
        ]);
        server_env(&mut cmd, None);
        cmd
    }

    /// Run `sql` in a new session (≤ 30 s). Ok: stdout, trimmed; Err: the client's message
    /// (e.g. `ERROR 2013 (HY000) ... Lost connection to server during query`).
    pub fn query(&self, sql: &str) -> Result<String, String> {
        self.query_timeout(sql, Duration::from_secs(30))
    }

    pub fn query_timeout(&self, sql: &str, timeout: Duration) -> Result<String, String> {
        let out = run_bounded(self.client().arg("-e").arg(sql), timeout)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!("{} ({})", String::from_utf8_lossy(&out.stderr).trim(), out.status))
        }
    }

    /// `CREATE FUNCTION vmsrs_fault` from `udf_fault.so` (see c-examples/servers/udf_fault.c).
    pub fn create_udf(&self) {
        self.query("CREATE FUNCTION IF NOT EXISTS vmsrs_fault RETURNS INTEGER SONAME 'udf_fault.so'")
            .unwrap_or_else(|e| {
                panic!("CREATE FUNCTION vmsrs_fault failed: {e}\n{}", self.server.log_tail(30))
            });
    }

    pub fn alive(&mut self) -> bool {
        self.server.alive()
    }

    /// How mariadbd ended, waiting at most `timeout` (None: still running).
    pub fn exit_status(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.server.wait_exit(timeout)
    }

    /// SIGTERM (mariadbd's normal shutdown), SIGKILL after `grace`; how it ended.
    pub fn shutdown(&mut self, grace: Duration) -> ExitStatus {
        self.server.stop(grace)
    }

    /// `sysbench --db-driver=mysql ... <args>` against this server (≤ `timeout`).
    pub fn sysbench(&self, args: &[&str], timeout: Duration) -> Output {
        let sb = require_on_path("sysbench", "sysbench");
        let mut cmd = Command::new(sb);
        cmd.args(["--db-driver=mysql", "--mysql-user=root", "--mysql-db=sbtest"])
            .arg(format!("--mysql-socket={}", self.socket.display()))
            .args(args);
        server_env(&mut cmd, None);
        run_bounded(&mut cmd, timeout).unwrap_or_else(|e| panic!("sysbench: {e}"))
    }
}

// ---------------------------------------------------------------------------------------
// Apache httpd
// ---------------------------------------------------------------------------------------

pub const APACHE2: &str = "/usr/sbin/apache2";
pub const APACHE_MODULES: &str = "/usr/lib/apache2/modules";
/// Worker threads of the one child.
pub const APACHE_THREADS: u32 = 25;

/// `target/servers/mod_vmsrs_fault.so`, built with `apxs -c` from
/// `c-examples/servers/mod_vmsrs_fault.c`.
pub fn apache_module() -> PathBuf {
    let apxs = require_on_path("apxs", "apache2-dev");
    let src = common::root().join("c-examples/servers/mod_vmsrs_fault.c");
    build_once(&build_dir().join("mod_vmsrs_fault.so"), &src, |tmp| {
        // apxs builds beside its source (.libs/): use a private copy.
        let work = build_dir().join(format!(".{}", unique("apxs")));
        fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let r = (|| {
            fs::copy(&src, work.join("mod_vmsrs_fault.c")).map_err(|e| e.to_string())?;
            output_of(Command::new(&apxs).current_dir(&work).args([
                "-Wc,-Wall",
                "-Wc,-Wextra",
                "-Wc,-Werror",
                "-c",
                "mod_vmsrs_fault.c",
            ]))?;
            fs::rename(work.join(".libs/mod_vmsrs_fault.so"), tmp).map_err(|e| e.to_string())
        })();
        let _ = fs::remove_dir_all(&work);
        r
    })
}

/// An HTTP response read to the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// A private httpd (event MPM, one child of 25 threads) serving mod_vmsrs_fault on every URL.
pub struct Apache {
    pub server: ServerProcess,
    pub port: u16,
    dir: TempDir,
}

impl Apache {
    /// Start httpd (`preload` as given) and wait until its child serves `/ok` (≤ 30 s).
    pub fn start(preload: Preload) -> Apache {
        require(APACHE2, "apache2");
        require_file(&format!("{APACHE_MODULES}/mod_mpm_event.so"), "apache2");
        require_file(&format!("{APACHE_MODULES}/mod_authz_core.so"), "apache2");
        let module = apache_module();
        let dir = TempDir::new("apache");
        let mut dir = Some(dir);
        for attempt in 0..3 {
            let d = dir.take().expect("dir");
            let port = free_port();
            let conf = d.path().join("httpd.conf");
            fs::write(&conf, apache_conf(d.path(), port, &module)).expect("write httpd.conf");
            let _ = fs::remove_file(d.path().join("error.log"));
            let mut cmd = Command::new(APACHE2);
            cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
            server_env(&mut cmd, preload);
            let server = ServerProcess::spawn(
                &format!("apache2 {}", describe_preload(preload)),
                cmd,
                &d.path().join("apache2.out"),
            );
            let mut a = Apache { server, port, dir: d };
            match a.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return a,
                Err(e) => {
                    let log = format!("{}\n{}", a.server.log(), a.error_log());
                    let port_lost = log.contains("Address already in use");
                    a.server.stop(Duration::from_secs(10));
                    if !port_lost || attempt == 2 {
                        panic!(
                            "apache2 {} did not start: {e}\n--- output and error log ---\n{log}",
                            describe_preload(preload)
                        );
                    }
                    let Apache { dir: d, server, .. } = a;
                    drop(server);
                    dir = Some(d);
                }
            }
        }
        unreachable!()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.server.try_status() {
                return Err(format!("apache2 exited during start-up: {st}"));
            }
            let last = match self.get_timeout("/ok", Duration::from_secs(2)) {
                Ok(r) if r.status == 200 && !self.children().is_empty() => return Ok(()),
                Ok(r) => format!("{r:?}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!("/ok not served after {timeout:?}: {last}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The parent (the process started).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The parent's live children (the serving processes).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// The one serving child, waiting (≤ `timeout`) until there is exactly one.
    pub fn child(&self, timeout: Duration) -> u32 {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.children();
            if c.len() == 1 {
                return c[0];
            }
            assert!(
                Instant::now() < deadline,
                "apache2 has children {c:?}, not exactly one, after {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn error_log(&self) -> String {
        fs::read(self.dir.path().join("error.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Wait (≤ 10 s) until `n` `/slow` requests are sleeping in the child.
    pub fn wait_inflight(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get("/inflight");
            if matches!(&r, Ok(r) if r.body == n.to_string()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} /slow requests never were in flight (last /inflight: {r:?})"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` over a new connection (HTTP/1.0, read to EOF, 10 s timeouts). Err when the
    /// connection fails, is reset, or ends before a complete response (headers and exactly
    /// Content-Length bytes of body).
    pub fn get(&self, path: &str) -> Result<Response, String> {
        self.get_timeout(path, Duration::from_secs(10))
    }

    pub fn get_timeout(&self, path: &str, timeout: Duration) -> Result<Response, String> {
        http_get(self.port, path, timeout)
    }

    /// `ab -n N -c C -s 10 <url>` (≤ `timeout`).
    pub fn ab(&self, requests: u32, concurrency: u32, path: &str, timeout: Duration) -> Output {
        let ab = require_on_path("ab", "apache2-utils");
        let mut cmd = Command::new(ab);
        cmd.args(["-n", &requests.to_string(), "-c", &concurrency.to_string(), "-s", "10"])
            .arg(self.url(path));
        server_env(&mut cmd, None);
        run_bounded(&mut cmd, timeout).unwrap_or_else(|e| panic!("ab: {e}"))
    }
}

/// One HTTP/1.0 GET to 127.0.0.1:port; see [`Apache::get`].
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<Response, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e} (after {} bytes)", buf.len()))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(format!("no complete response ({} bytes): {text:?}", buf.len()));
    };
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    });
    match len {
        Some(n) if n != body.len() => {
            Err(format!("truncated body: {} of {n} bytes (status {status})", body.len()))
        }
        _ => Ok(Response { status, body: body.to_string() }),
    }
}

fn apache_conf(dir: &Path, port: u16, module: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# Generated by tests/servers/mod.rs: a private httpd, nothing from /etc/apache2.
ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{d}/httpd.pid"
ErrorLog "{d}/error.log"
LogLevel info
DefaultRuntimeDir "{d}"
CoreDumpDirectory "{d}"
LoadModule mpm_event_module {APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {APACHE_MODULES}/mod_authz_core.so
LoadModule vmsrs_fault_module {module}
User www-data
Group www-data
# One child with {APACHE_THREADS} threads serves everything, and is never replaced unless it dies.
StartServers 1
ServerLimit 1
ThreadLimit {APACHE_THREADS}
ThreadsPerChild {APACHE_THREADS}
MaxRequestWorkers {APACHE_THREADS}
MinSpareThreads 1
MaxSpareThreads {max_spare}
MaxConnectionsPerChild 0
Timeout 10
KeepAlive Off
DocumentRoot "{d}"
<Location "/">
    SetHandler vmsrs-fault
    Require all granted
</Location>
"#,
        module = module.display(),
        max_spare = APACHE_THREADS * 2,
    )
}

// ---------------------------------------------------------------------------------------
// Squid
// ---------------------------------------------------------------------------------------

pub const SQUID: &str = "/usr/sbin/squid";
/// The user squid switches to (`cache_effective_user`): it refuses to serve as root.
pub const SQUID_USER: &str = "proxy";

/// `target/servers/ecap_vmsrs_fault.so`, built with g++ from
/// `c-examples/servers/ecap_vmsrs_fault.cpp` against libecap3-dev.
pub fn ecap_adapter() -> PathBuf {
    require_file("/usr/include/libecap/adapter/service.h", "libecap3-dev");
    let src = common::root().join("c-examples/servers/ecap_vmsrs_fault.cpp");
    build_once(&build_dir().join("ecap_vmsrs_fault.so"), &src, |tmp| {
        output_of(
            Command::new("g++")
                .args(["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"])
                .arg(&src)
                .arg("-o")
                .arg(tmp)
                .arg("-lecap"),
        )
        .map(drop)
    })
}

/// The uid and gid of a user, from the passwd database.
fn user_ids(name: &str) -> (u32, u32) {
    let c = std::ffi::CString::new(name).expect("user name");
    // SAFETY: getpwnam with a valid C string; the fields are read before any other call.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    assert!(!pw.is_null(), "no user {name}: install the Debian package squid (run scripts/setup.sh as root)");
    // SAFETY: pw is a valid passwd record (checked above).
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

/// The origin server squid proxies to: a thread answering every `GET /path` over HTTP/1.0
/// with `200 "origin /path"` (Content-Length set), after sleeping N ms for `/slow?ms=N`.
/// Each connection is served by its own thread; dropping it stops accepting and joins.
pub struct Origin {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    slow_inflight: std::sync::Arc<AtomicU32>,
    served: std::sync::Arc<AtomicU32>,
    accept: Option<thread::JoinHandle<()>>,
}

impl Origin {
    pub fn start() -> Origin {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the origin on 127.0.0.1:0");
        let port = l.local_addr().expect("origin address").port();
        l.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let slow_inflight = Arc::new(AtomicU32::new(0));
        let served = Arc::new(AtomicU32::new(0));
        let (st, sl, sv) = (stop.clone(), slow_inflight.clone(), served.clone());
        let accept = thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        let (sl, sv) = (sl.clone(), sv.clone());
                        conns.push(thread::spawn(move || Origin::serve(s, &sl, &sv)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
                conns.retain(|h: &thread::JoinHandle<()>| !h.is_finished());
            }
            for h in conns {
                let _ = h.join();
            }
        });
        Origin { port, stop, slow_inflight, served, accept: Some(accept) }
    }

    fn serve(mut s: TcpStream, slow_inflight: &AtomicU32, served: &AtomicU32) {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let target = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("/").to_string();
        if let Some(ms) = target.strip_prefix("/slow?ms=").and_then(|v| v.parse::<u64>().ok()) {
            slow_inflight.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(ms.min(30_000)));
            slow_inflight.fetch_sub(1, Ordering::SeqCst);
        }
        let body = format!("origin {target}");
        let _ = write!(
            s,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        served.fetch_add(1, Ordering::SeqCst);
    }

    /// `/slow` requests the origin is sleeping on now.
    pub fn slow_inflight(&self) -> u32 {
        self.slow_inflight.load(Ordering::SeqCst)
    }

    /// Responses the origin has sent.
    pub fn served(&self) -> u32 {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// How squid runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SquidMode {
    /// `squid -N`: one process, master and worker at once ("Process Roles: master worker").
    NoDaemon,
    /// `squid --foreground` (as Debian's systemd unit runs it), started as root: a master
    /// that forks and execs one worker kid, and starts a new kid when it dies.
    MasterKid,
    /// `squid --foreground` started as [`SQUID_USER`] itself (as a unit with `User=proxy`
    /// would): master and kid as above, never root.
    MasterKidAsUser,
}

/// A private squid 5 (`-N` or `--foreground`, `-f` its own squid.conf): `http_port` on a free
/// loopback port, no cache, logs and pid file in its temporary directory (owned by
/// [`SQUID_USER`]), a unique service name (`-n`, which also names its shared-memory segments
/// in /dev/shm, removed on drop), and `ecap_vmsrs_fault.so` as a REQMOD service on every
/// request, proxying to its own [`Origin`].
///
/// squid starts as root (except [`SquidMode::MasterKidAsUser`]) and switches to `proxy`; that
/// change of credentials clears `PR_SET_PDEATHSIG`, so a squid whose test process is
/// SIGKILLed is not killed by the kernel (every other ending of the test stops it).
pub struct Squid {
    // Field order: the server stops before the origin and the directory go.
    pub server: ServerProcess,
    pub port: u16,
    pub mode: SquidMode,
    pub origin: Origin,
    service: String,
    dir: TempDir,
}

impl Squid {
    /// `squid -N` (`preload` as given), serving once a request through it is answered (≤ 60 s).
    pub fn start(preload: Preload) -> Squid {
        Squid::start_mode(preload, SquidMode::NoDaemon)
    }

    pub fn start_mode(preload: Preload, mode: SquidMode) -> Squid {
        require(SQUID, "squid");
        let adapter = ecap_adapter();
        let (uid, gid) = user_ids(SQUID_USER);
        for attempt in 0..3 {
            let d = TempDir::new("squid");
            std::os::unix::fs::chown(d.path(), Some(uid), Some(gid)).expect("chown the squid directory");
            // Letters and digits only; unique among the squids of all test processes.
            let service = format!("vmsrs{}x{}", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed));
            let port = free_port();
            let conf = d.path().join("squid.conf");
            fs::write(&conf, squid_conf(d.path(), port, &adapter)).expect("write squid.conf");
            let mut cmd = Command::new(SQUID);
            cmd.arg(match mode {
                SquidMode::NoDaemon => "-N",
                SquidMode::MasterKid | SquidMode::MasterKidAsUser => "--foreground",
            });
            if mode == SquidMode::MasterKidAsUser {
                cmd.uid(uid).gid(gid);
            }
            cmd.arg("-n").arg(&service).arg("-f").arg(&conf).current_dir(d.path());
            server_env(&mut cmd, preload);
            let server = ServerProcess::spawn(
                &format!("squid {mode:?} {}", describe_preload(preload)),
                cmd,
                &d.path().join("squid.out"),
            );
            let mut s = Squid { server, port, mode, origin: Origin::start(), service, dir: d };
            let Err(e) = s.wait_ready(Duration::from_secs(60)) else { return s };
            let log = format!("{}\n{}", s.server.log(), s.cache_log());
            if !log.contains("Address already in use") || attempt == 2 {
                s.server.stop(Duration::from_secs(10));
                panic!(
                    "squid {} did not start: {e}\n--- output and cache.log ---\n{log}",
                    describe_preload(preload)
                );
            }
            // Lost the port to another process: again on another (drop stops it, cleans up).
        }
        unreachable!()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.server.try_status() {
                return Err(format!("squid exited during start-up: {st}"));
            }
            let last = match self.get_timeout("/ready", Duration::from_secs(2)) {
                Ok(r) if r.status == 200 && r.body == "origin /ready" && self.worker().is_some() => {
                    return Ok(())
                }
                Ok(r) => format!("{r:?}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!("/ready not served after {timeout:?}: {last}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process started (with `-N` the one that serves; with `--foreground` the master).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The process that serves requests: the squid itself (`-N`), or the master's one live kid
    /// (`--foreground`; None while there is none, or more than one).
    pub fn worker(&self) -> Option<u32> {
        match self.mode {
            SquidMode::NoDaemon => pid_alive(self.pid()).then(|| self.pid()),
            SquidMode::MasterKid | SquidMode::MasterKidAsUser => match children_of(self.pid())[..] {
                [kid] => Some(kid),
                _ => None,
            },
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache_log(&self) -> String {
        fs::read(self.dir.path().join("cache.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        fs::read(self.dir.path().join("access.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The origin's URL for `path`.
    pub fn origin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.origin.port)
    }

    /// `GET path` of the origin through the proxy (10 s timeouts; see [`Squid::get_via_proxy`]).
    pub fn get(&self, path: &str) -> Result<Response, String> {
        self.get_via_proxy(&self.origin_url(path))
    }

    pub fn get_timeout(&self, path: &str, timeout: Duration) -> Result<Response, String> {
        http_get(self.port, &self.origin_url(path), timeout)
    }

    /// `GET url` through the proxy over a new connection (HTTP/1.0, read to EOF, 10 s timeouts).
    /// Err when the connection fails, is reset, times out, or ends before a complete response.
    pub fn get_via_proxy(&self, url: &str) -> Result<Response, String> {
        http_get(self.port, url, Duration::from_secs(10))
    }

    fn remove_shm(&self) {
        let prefix = format!("{}-", self.service);
        if let Ok(d) = fs::read_dir("/dev/shm") {
            for e in d.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        self.server.stop(Duration::from_secs(10));
        // A squid that died leaves its segments behind (one that stops removes them).
        self.remove_shm();
    }
}

fn squid_conf(dir: &Path, port: u16, adapter: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# Generated by tests/servers/mod.rs: a private squid, nothing from /etc/squid.
http_port 127.0.0.1:{port}
visible_hostname vmsrs-test
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log stdio:{d}/access.log
cache_store_log none
coredump_dir {d}
netdb_filename none
# It serves as this user (the temporary directory is its own); it refuses to serve as root.
cache_effective_user {user}
# No cache: every request goes to the origin, through the adapter.
cache deny all
cache_mem 4 MB
# Loopback only: origins are named by address; nothing is resolved, no ICMP pinger helper.
dns_nameservers 127.0.0.1
pinger_enable off
http_access allow localhost
http_access deny all
shutdown_lifetime 1 seconds
# The fault adapter, a REQMOD service on every request; no bypass: its failure fails the request.
loadable_modules {adapter}
ecap_enable on
ecap_service vmsrsFault reqmod_precache uri=ecap://vmsrs.invalid/fault bypass=off
adaptation_access vmsrsFault allow all
"#,
        user = SQUID_USER,
        adapter = adapter.display(),
    )
}
