//! Fault events to a JSON Lines log (`VMSRS_LOG_PATH`) and counters to a Prometheus textfile
//! (`VMSRS_METRICS_PATH`), written by a helper thread, `vmsrs-report`.
//!
//! - **Hand-off.** The fault handler only [`record`]s a fixed-size [`Event`] into a bounded
//!   lock-free ring ([`RING`] slots, allocated nothing) and wakes the reporter with `write(2)`
//!   to an eventfd. An event that finds the ring full is counted ([`lost`]) and reported in the
//!   log (an `"event":"lost"` line) and the metrics.
//! - **Reporter thread.** Started from normal context at start-up when a log or metrics path
//!   is configured, never from the handler. It is created with every signal blocked (ECOSYSTEM
//!   pitfall 20: a process-directed SIGTERM must reach the program's own threads), and named
//!   `vmsrs-report`. It formats events (module, symbol and the instruction's mnemonic, decoded
//!   by iced-x86, are resolved here, in normal context), appends them to `P.<exe>.<pid>`, and
//!   rewrites the metrics file every `VMSRS_METRICS_INTERVAL_MS` (temporary file + rename).
//! - **Exit.** An `atexit` handler drains the ring into the log and writes the metrics once
//!   more, so nothing recorded before `exit` is lost.
//! - **fork.** A child has no reporter thread. The fork hook (child side) resets the ring,
//!   replaces the eventfd, closes the parent's log file and marks the reporter absent; the
//!   child's next normal-context libvmsrs call ([`poll`], from every API entry point) starts
//!   its own reporter, which names its log after the child's pid. Until then the child's events
//!   wait in the ring, and its `atexit` drain writes them at the latest. Only the process that
//!   started libvmsrs writes the metrics file (children would overwrite each other's).

use crate::fault::report::{action_name, signal_name};
use crate::fault::vmsrs_fault_action;
use crate::symbols::{self, Symbolized, MAX_FRAMES};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Ring capacity (events).
pub(crate) const RING: usize = 256;
/// Longest x86-64 instruction.
pub(crate) const INSN_MAX: usize = 15;

/// One fault, as recorded by the handler (plain data, no pointers).
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub seq: u64,
    /// CLOCK_REALTIME, nanoseconds.
    pub time_ns: u64,
    pub tid: u64,
    pub user: u64,
    pub sig: i32,
    pub code: i32,
    pub addr: u64,
    pub pc: u64,
    pub action: vmsrs_fault_action,
    pub skipped_len: u8,
    /// The configured policy (`crate::runtime::Policy` as 0 oblivious, 1 unwind, 2 abort).
    pub policy: u8,
    pub insn_len: u8,
    pub insn: [u8; INSN_MAX],
    pub nframes: u8,
    pub frames: [u64; MAX_FRAMES],
    /// The locks the unwind releases (address | kind in the low 2 bits), when it unwinds.
    pub nlocks: u8,
    pub locks: [u64; MAX_LOCKS],
}

/// Locks listed per event (more are released, and counted, but not listed).
pub const MAX_LOCKS: usize = 8;

struct Slot {
    /// `2 * lap` free for the producer of that lap, `2 * lap + 1` holds that lap's event.
    turn: AtomicU64,
    ev: UnsafeCell<MaybeUninit<Event>>,
}

// SAFETY: `ev` is written only by the producer that won the slot for its lap (turn even) and
// read only by the single consumer after the producer's release store made the turn odd.
unsafe impl Sync for Slot {}

static SLOTS: [Slot; RING] =
    [const { Slot { turn: AtomicU64::new(0), ev: UnsafeCell::new(MaybeUninit::uninit()) } }; RING];
static HEAD: AtomicU64 = AtomicU64::new(0);
static LOST: AtomicU64 = AtomicU64::new(0);
static WRITTEN: AtomicU64 = AtomicU64::new(0);
static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);
/// The eventfd that wakes the reporter (-1: none).
static EVENT_FD: AtomicI32 = AtomicI32::new(-1);
/// Set in a fork child: the reporter must be started again ([`poll`]).
static ATTENTION: AtomicBool = AtomicBool::new(false);
/// The pid whose reporter thread runs (0: none).
static RUNNING_PID: AtomicI32 = AtomicI32::new(0);
/// Kernel tid of the reporter thread (for diagnostics and tests).
static REPORTER_TID: AtomicI32 = AtomicI32::new(0);

/// Where reports go (set once, at start-up).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub log_path: Option<PathBuf>,
    pub metrics_path: Option<PathBuf>,
    pub metrics_interval_ms: u64,
}

static OPTIONS: spin::Once<Options> = spin::Once::new();
/// The process that started libvmsrs: the only writer of the metrics file.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);

/// Is a log configured (the only thing a fork child needs its own reporter for)?
fn logging() -> bool {
    OPTIONS.get().is_some_and(|o| o.log_path.is_some())
}

/// Check the report destinations at start-up: each must be absolute, name a file (not end in
/// `/`), and lie in an existing directory this process can write. The reason is returned.
pub fn validate(o: &Options) -> Result<(), String> {
    for (key, path) in [("VMSRS_LOG_PATH", &o.log_path), ("VMSRS_METRICS_PATH", &o.metrics_path)] {
        let Some(path) = path else { continue };
        let bytes = path.as_os_str().as_bytes();
        if !path.is_absolute() {
            return Err(format!("{key}={}: not an absolute path", path.display()));
        }
        if bytes.ends_with(b"/") || path.file_name().is_none() {
            return Err(format!("{key}={}: names a directory, not a file", path.display()));
        }
        if path.is_dir() {
            return Err(format!("{key}={}: is a directory", path.display()));
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        if !dir.is_dir() {
            return Err(format!("{key}={}: directory {} does not exist", path.display(), dir.display()));
        }
        let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return Err(format!("{key}: path contains a NUL byte"));
        };
        // SAFETY: access(2) on a NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            return Err(format!(
                "{key}={}: directory {} is not writable ({})",
                path.display(),
                dir.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Start reporting (normal context, once, after the runtime started): remember the options,
/// register the exit drain and the fork hook, and start the reporter thread when a log or
/// metrics path is set.
pub fn start(o: Options) {
    let o = OPTIONS.call_once(|| o);
    symbols::refresh();
    // SAFETY: registering a plain extern "C" function (the symbols' refresh lock must be
    // reset in a child even when nothing is reported).
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
    if o.log_path.is_none() && o.metrics_path.is_none() {
        return;
    }
    // SAFETY: getpid has no preconditions.
    OWNER_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    // SAFETY: registering a plain extern "C" function.
    unsafe { libc::atexit(at_exit) };
    new_eventfd();
    spawn();
}

fn new_eventfd() {
    // SAFETY: eventfd(2) has no memory arguments; async-signal-safe (used in the fork child).
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    let old = EVENT_FD.swap(fd, Ordering::AcqRel);
    if old >= 0 {
        // SAFETY: closing our own descriptor, which nothing else uses any more.
        unsafe { libc::close(old) };
    }
}

/// Cheap check for normal-context entry points: start the reporter if a fork left this
/// process without one.
#[inline]
pub fn poll() {
    if ATTENTION.load(Ordering::Relaxed) {
        restart();
    }
}

#[cold]
fn restart() {
    if ATTENTION.swap(false, Ordering::AcqRel) {
        spawn();
    }
}

/// Fork hook, child side (async-signal-safe only): forget the parent's reporter, events and
/// log file.
extern "C" fn after_fork_child() {
    symbols::after_fork_child();
    RUNNING_PID.store(0, Ordering::Relaxed);
    REPORTER_TID.store(0, Ordering::Relaxed);
    for s in SLOTS.iter() {
        s.turn.store(0, Ordering::Relaxed);
    }
    HEAD.store(0, Ordering::Relaxed);
    LOST.store(0, Ordering::Relaxed);
    WRITTEN.store(0, Ordering::Relaxed);
    CONSUMER.reset_after_fork();
    if logging() {
        new_eventfd();
        ATTENTION.store(true, Ordering::Release);
    }
}

fn spawn() {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if RUNNING_PID.swap(pid, Ordering::AcqRel) == pid {
        return;
    }
    // SAFETY: sets on the stack; the new thread inherits the all-blocked mask, then ours is
    // restored.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut t: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut t, core::ptr::null(), thread_main, core::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        if rc == 0 {
            // Named here too, so the name is there as soon as start-up returns.
            libc::pthread_setname_np(t, c"vmsrs-report".as_ptr());
            libc::pthread_detach(t);
        } else {
            RUNNING_PID.store(0, Ordering::Release);
            eprintln!(
                "=={pid}==vmsrs: cannot start the reporter thread (error {rc}); events are written at exit"
            );
        }
    }
}

extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: block everything again (in case the creator's mask was changed under us) and
    // name the thread; both act on the calling thread only.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, core::ptr::null_mut());
        libc::pthread_setname_np(libc::pthread_self(), c"vmsrs-report".as_ptr());
    }
    REPORTER_TID.store(crate::thread::tid() as i32, Ordering::Relaxed);
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let interval = OPTIONS.get().map_or(5000, |o| o.metrics_interval_ms.max(1));
    let mut next_metrics = 0u64;
    loop {
        if RUNNING_PID.load(Ordering::Acquire) != me {
            // A stale reporter (cannot happen after fork: threads do not come along).
            return core::ptr::null_mut();
        }
        let now = mono_ms();
        let tick = if metrics_owner() { next_metrics.saturating_sub(now).min(1000) } else { 1000 };
        let fd = EVENT_FD.load(Ordering::Acquire);
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one descriptor described by a local; reading the eventfd counter
        // into a local resets it.
        unsafe {
            libc::poll(&mut pfd, 1, tick as i32);
            let mut v = 0u64;
            libc::read(fd, &mut v as *mut u64 as *mut libc::c_void, 8);
        }
        symbols::refresh();
        drain();
        if metrics_owner() && mono_ms() >= next_metrics {
            write_metrics();
            next_metrics = mono_ms() + interval;
        }
    }
}

fn mono_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn metrics_owner() -> bool {
    // SAFETY: getpid has no preconditions.
    OPTIONS.get().is_some_and(|o| o.metrics_path.is_some())
        && OWNER_PID.load(Ordering::Relaxed) == unsafe { libc::getpid() }
}

extern "C" fn at_exit() {
    drain();
    if metrics_owner() {
        write_metrics();
    }
}

/// Does anything consume fault events (a log is configured)? Async-signal-safe.
pub fn wants_events() -> bool {
    logging()
}

/// Record one event and wake the reporter. Async-signal-safe (atomics and `write(2)`).
/// `false` if the ring was full (the event is counted as lost).
pub fn record(ev: &Event) -> bool {
    if OPTIONS.get().is_none_or(|o| o.log_path.is_none()) {
        return true;
    }
    loop {
        let pos = HEAD.load(Ordering::Relaxed);
        let slot = &SLOTS[pos as usize % RING];
        let lap = pos / RING as u64;
        let turn = slot.turn.load(Ordering::Acquire);
        if turn == 2 * lap {
            if HEAD.compare_exchange_weak(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                // SAFETY: this producer owns the slot for this lap (see `Slot`).
                unsafe { (*slot.ev.get()).write(*ev) };
                slot.turn.store(2 * lap + 1, Ordering::Release);
                break;
            }
        } else if turn < 2 * lap {
            LOST.fetch_add(1, Ordering::Relaxed);
            wake();
            return false;
        }
        core::hint::spin_loop();
    }
    wake();
    true
}

fn wake() {
    let fd = EVENT_FD.load(Ordering::Acquire);
    if fd >= 0 {
        let one = 1u64;
        // SAFETY: write(2) of 8 bytes from a local to our eventfd; async-signal-safe.
        unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
    }
}

/// Events lost to a full ring since start-up (or since fork, in a child).
pub fn lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// The reporter thread's kernel tid, 0 when none runs in this process.
pub fn reporter_tid() -> i32 {
    REPORTER_TID.load(Ordering::Relaxed)
}

/// The consumer side: one drainer at a time (the reporter thread or the exit drain).
struct Consumer {
    lock: AtomicBool,
    st: UnsafeCell<ConsumerState>,
}

struct ConsumerState {
    tail: u64,
    /// The log file of `log_pid` (-1: not open).
    log_fd: i32,
    log_pid: i32,
    lost_reported: u64,
    warned: bool,
}

// SAFETY: `st` is only accessed by the holder of `lock` (or by the fork child hook, when the
// child has a single thread).
unsafe impl Sync for Consumer {}

static CONSUMER: Consumer = Consumer {
    lock: AtomicBool::new(false),
    st: UnsafeCell::new(ConsumerState { tail: 0, log_fd: -1, log_pid: 0, lost_reported: 0, warned: false }),
};

impl Consumer {
    /// Run `f` with the state; waits at most about two seconds for another drainer.
    fn with<R>(&self, f: impl FnOnce(&mut ConsumerState) -> R) -> Option<R> {
        let deadline = mono_ms() + 2000;
        while self.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            if mono_ms() > deadline {
                return None;
            }
            std::thread::yield_now();
        }
        // SAFETY: we hold the lock.
        let r = f(unsafe { &mut *self.st.get() });
        self.lock.store(false, Ordering::Release);
        Some(r)
    }

    /// Fork child hook: the lock holder may not exist here; the log file is the parent's.
    fn reset_after_fork(&self) {
        // SAFETY: the child runs one thread, in the fork hook; nobody else touches `st`.
        let st = unsafe { &mut *self.st.get() };
        if st.log_fd >= 0 {
            // SAFETY: our own descriptor; close is async-signal-safe.
            unsafe { libc::close(st.log_fd) };
        }
        *st = ConsumerState { tail: 0, log_fd: -1, log_pid: 0, lost_reported: 0, warned: false };
        self.lock.store(false, Ordering::Release);
    }
}

/// Write every recorded event (and a note of lost ones) to the log. Normal context.
pub fn drain() {
    let Some(prefix) = OPTIONS.get().and_then(|o| o.log_path.clone()) else { return };
    CONSUMER.with(|st| {
        let mut out = String::new();
        loop {
            let slot = &SLOTS[st.tail as usize % RING];
            let lap = st.tail / RING as u64;
            if slot.turn.load(Ordering::Acquire) != 2 * lap + 1 {
                break;
            }
            // SAFETY: the producer published this slot's event for this lap (odd turn).
            let ev = unsafe { (*slot.ev.get()).assume_init() };
            slot.turn.store(2 * lap + 2, Ordering::Release);
            st.tail += 1;
            out.push_str(&event_json(&ev));
            out.push('\n');
        }
        let lost = LOST.load(Ordering::Relaxed);
        if lost > st.lost_reported {
            let _ = writeln!(
                out,
                "{{\"event\":\"lost\",\"time\":\"{}\",\"pid\":{},\"lost\":{},\"lost_total\":{}}}",
                rfc3339(realtime_ns()),
                std::process::id(),
                lost - st.lost_reported,
                lost
            );
            st.lost_reported = lost;
        }
        if out.is_empty() {
            return;
        }
        let n = out.matches('\n').count() as u64;
        if append(st, &prefix, out.as_bytes()) {
            WRITTEN.fetch_add(n, Ordering::Relaxed);
        } else {
            WRITE_ERRORS.fetch_add(n, Ordering::Relaxed);
        }
    });
}

/// `PREFIX.<exe>.<pid>`.
pub fn log_file_name(prefix: &Path, pid: u32) -> PathBuf {
    let exe = std::fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".to_owned());
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!(".{exe}.{pid}"));
    PathBuf::from(name)
}

fn append(st: &mut ConsumerState, prefix: &Path, bytes: &[u8]) -> bool {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if st.log_fd >= 0 && st.log_pid != pid {
        // SAFETY: our own descriptor (a parent's, in a child that skipped the fork hook).
        unsafe { libc::close(st.log_fd) };
        st.log_fd = -1;
    }
    if st.log_fd < 0 {
        let path = log_file_name(prefix, pid as u32);
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
        // SAFETY: open(2) on a NUL-terminated path.
        let fd = unsafe {
            libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC, 0o640)
        };
        if fd < 0 {
            if !st.warned {
                st.warned = true;
                eprintln!(
                    "=={pid}==vmsrs: cannot open the fault log {}: {}; events are counted as not written",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            return false;
        }
        st.log_fd = fd;
        st.log_pid = pid;
    }
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: write(2) from a live slice.
        let n = unsafe {
            libc::write(st.log_fd, bytes[done..].as_ptr() as *const libc::c_void, bytes.len() - done)
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into a local; async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The event's wall-clock time, for the handler.
pub fn now_realtime_ns() -> u64 {
    realtime_ns()
}

/// RFC 3339 UTC with milliseconds: `2024-05-01T12:34:56.789Z`.
pub fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let (mut days, rem) = (secs / 86_400, secs % 86_400);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let months = [31, if leap(year) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        month + 1,
        days + 1,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn json_str(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for ch in String::from_utf8_lossy(bytes).chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn policy_name(p: u8) -> &'static str {
    match p {
        0 => "oblivious",
        1 => "unwind",
        _ => "abort",
    }
}

/// The policy code stored in an [`Event`].
pub fn policy_code(p: crate::runtime::Policy) -> u8 {
    match p {
        crate::runtime::Policy::Oblivious => 0,
        crate::runtime::Policy::Unwind => 1,
        crate::runtime::Policy::Abort => 2,
    }
}

/// `"module":...,"offset":...,"symbol":...,"symbol_offset":...` for one address.
fn json_location(out: &mut String, pc: u64, lookup: u64, offset_key: &str) {
    let mut s = Symbolized::new();
    symbols::symbolize(pc as usize, lookup as usize, &mut s);
    if s.found {
        out.push_str("\"module\":");
        json_str(out, s.module_name());
        let _ = write!(out, ",\"{offset_key}\":\"{:#x}\"", s.offset);
    } else {
        let _ = write!(out, "\"module\":null,\"{offset_key}\":null");
    }
    if s.symbol_len > 0 {
        out.push_str(",\"symbol\":");
        json_str(out, s.symbol_name());
        let _ = write!(out, ",\"symbol_offset\":\"{:#x}\"", s.symbol_offset);
    } else {
        out.push_str(",\"symbol\":null,\"symbol_offset\":null");
    }
}

/// One fault as a JSON object (one line, no newline).
pub fn event_json(ev: &Event) -> String {
    let mut o = String::with_capacity(1024);
    let _ = write!(
        o,
        "{{\"event\":\"fault\",\"seq\":{},\"time\":\"{}\",\"pid\":{},\"tid\":{},\"user\":{},\"signal\":\"{}\",\"signo\":{},\"code\":{},\"address\":\"{:#x}\",\"pc\":\"{:#x}\",",
        ev.seq,
        rfc3339(ev.time_ns),
        std::process::id(),
        ev.tid,
        ev.user,
        signal_name(ev.sig),
        ev.sig,
        ev.code,
        ev.addr,
        ev.pc
    );
    if ev.pc != 0 {
        json_location(&mut o, ev.pc, ev.pc, "module_offset");
    } else {
        o.push_str("\"module\":null,\"module_offset\":null,\"symbol\":null,\"symbol_offset\":null");
    }
    o.push_str(",\"instruction\":");
    match decode(ev) {
        Some((mnemonic, len)) => {
            let bytes: String = ev.insn[..len].iter().map(|b| format!("{b:02x}")).collect();
            let _ = write!(o, "{{\"mnemonic\":\"{mnemonic}\",\"length\":{len},\"bytes\":\"{bytes}\"}}");
        }
        None => o.push_str("null"),
    }
    let _ = write!(
        o,
        ",\"policy\":\"{}\",\"action\":\"{}\",\"skipped_len\":{},\"frames\":[",
        policy_name(ev.policy),
        action_name(ev.action),
        ev.skipped_len
    );
    for i in 0..ev.nframes as usize {
        let pc = ev.frames[i];
        if i > 0 {
            o.push(',');
        }
        let _ = write!(o, "{{\"n\":{i},\"pc\":\"{pc:#x}\",");
        json_location(&mut o, pc, if i == 0 { pc } else { pc - 1 }, "offset");
        o.push('}');
    }
    o.push_str("],\"locks_released\":[");
    for (i, &w) in ev.locks[..ev.nlocks as usize].iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let kind = crate::locks::kind_name(w as usize & 3);
        let _ = write!(o, "{{\"kind\":\"{kind}\",\"address\":\"{:#x}\"}}", w & !3);
    }
    o.push_str("]}");
    o
}

/// The faulting instruction's mnemonic (lower case) and length, when its bytes were captured.
fn decode(ev: &Event) -> Option<(String, usize)> {
    let n = ev.insn_len as usize;
    if n == 0 {
        return None;
    }
    let mut d =
        iced_x86::Decoder::try_with_ip(64, &ev.insn[..n], ev.pc, iced_x86::DecoderOptions::NONE).ok()?;
    let insn = d.decode();
    if insn.is_invalid() {
        return None;
    }
    Some((format!("{:?}", insn.mnemonic()).to_ascii_lowercase(), insn.len()))
}

// ---------------------------------------------------------------------------------------------
// Metrics.

/// The metrics file's contents (Prometheus text exposition format).
pub fn metrics_text() -> String {
    const COUNTER: &str = "counter";
    const GAUGE: &str = "gauge";
    let mut m = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(m, "# HELP {name} {help}");
        let _ = writeln!(m, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(m, "{name}{labels} {v}");
        }
    };
    let by: Vec<(String, u64)> = crate::fault::report::fault_counts()
        .into_iter()
        .map(|(sig, action, n)| {
            (format!("{{signal=\"{}\",action=\"{}\"}}", signal_name(sig), action_name(action)), n)
        })
        .collect();
    family(
        "vmsrs_faults_contained_total",
        COUNTER,
        "Faults contained, by signal and by the action applied.",
        &by,
    );
    let c = &crate::runtime::COUNTERS;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    // The families of one unlabelled sample: name, type, help, value. The hv's exist once the
    // runtime does.
    let mut single = vec![
        (
            "vmsrs_faults_chained_total",
            COUNTER,
            "Faults passed on to the program's own handler.",
            l(&c.faults_chained),
        ),
        (
            "vmsrs_instructions_skipped_total",
            COUNTER,
            "Faulting instructions skipped (oblivious policy).",
            l(&c.instructions_skipped),
        ),
        ("vmsrs_unwinds_total", COUNTER, "Users unwound to their recovery point.", l(&c.unwinds)),
        (
            "vmsrs_threads_ended_total",
            COUNTER,
            "Threads ended for lack of a recovery point.",
            l(&c.threads_ended),
        ),
        (
            "vmsrs_frees_withheld_total",
            COUNTER,
            "free() calls of suppressed users not performed.",
            l(&c.frees_withheld),
        ),
        (
            "vmsrs_suppressed_outputs_total",
            COUNTER,
            "Output calls marked as a suppressed user's.",
            l(&c.suppressed_outputs),
        ),
        ("vmsrs_bounds_faults_total", COUNTER, "Pointer bounds faults.", l(&c.bounds_faults)),
    ];
    if let Some(rt) = crate::runtime::get() {
        let h = rt.hv.stats();
        single.extend([
            ("vmsrs_users_begun_total", COUNTER, "Users begun.", h.users_begun),
            ("vmsrs_users_committed_total", COUNTER, "Users ended without a fault.", h.users_committed),
            ("vmsrs_users_faulted_total", COUNTER, "Users that entered suppression mode.", h.users_faulted),
            (
                "vmsrs_users_collected_total",
                COUNTER,
                "Faulted users whose end point ran (cleanup done).",
                h.users_collected,
            ),
            ("vmsrs_users_live", GAUGE, "Users live now.", h.users_live),
            ("vmsrs_users_suppressed", GAUGE, "Users in suppression mode now.", h.faulted_now),
            ("vmsrs_ranges", GAUGE, "Profiled ranges now.", h.ranges),
            ("vmsrs_history_entries", GAUGE, "Recovery history entries held now.", h.history_entries),
            ("vmsrs_restorations_total", COUNTER, "Granules restored.", h.restorations),
            (
                "vmsrs_recovery_data_corruptions_total",
                COUNTER,
                "Recovery data found corrupt (never restored from).",
                h.corruptions,
            ),
            (
                "vmsrs_unrecorded_stores_total",
                COUNTER,
                "Monitored stores that could not be recorded.",
                h.unrecorded,
            ),
            (
                "vmsrs_shadow_stores_total",
                COUNTER,
                "Stores that went to a suppressed user's shadow.",
                h.shadow_stores,
            ),
            ("vmsrs_exposures_total", COUNTER, "Exposures reported.", h.exposures),
            (
                "vmsrs_exposures_dropped_total",
                COUNTER,
                "Exposures lost to a full table.",
                h.exposures_dropped,
            ),
        ]);
    }
    single.extend([
        ("vmsrs_report_events_written_total", COUNTER, "Fault events written to the log.", l(&WRITTEN)),
        ("vmsrs_report_events_lost_total", COUNTER, "Fault events lost to a full ring.", l(&LOST)),
        (
            "vmsrs_report_write_errors_total",
            COUNTER,
            "Fault events that could not be written to the log.",
            l(&WRITE_ERRORS),
        ),
    ]);
    let w = &crate::watch::COUNTERS;
    single.extend([
        (
            "vmsrs_watch_stores_emulated_total",
            COUNTER,
            "Trapped stores to watched pages, emulated.",
            l(&w.stores_emulated),
        ),
        (
            "vmsrs_watch_restorations_total",
            COUNTER,
            "Watched ranges restored at a user's fault entry.",
            l(&w.restorations),
        ),
        (
            "vmsrs_watch_unsupported_total",
            COUNTER,
            "Trapped stores that could not be emulated (faults of their users).",
            l(&w.unsupported),
        ),
        (
            "vmsrs_watch_faulted_loads_emulated_total",
            COUNTER,
            "Loads of keyed watched pages by faulted users, emulated from their own view (G4).",
            l(&w.loads_emulated),
        ),
        (
            "vmsrs_watch_faulted_loads_unsupported_total",
            COUNTER,
            "Loads by faulted users that could not be emulated (their loads then read memory).",
            l(&w.loads_unsupported),
        ),
        (
            "vmsrs_watch_hw_traps_total",
            COUNTER,
            "Hardware watchpoint traps (stores to watch=hw ranges).",
            l(&crate::watch::hw::TRAPS),
        ),
        (
            "vmsrs_watch_hw_unchanged_total",
            COUNTER,
            "Watchpoint traps that found the range unchanged (the same bytes stored again, or a store \
             journaled by another thread's trap).",
            l(&crate::watch::hw::UNCHANGED),
        ),
        (
            "vmsrs_watch_patched_sites",
            GAUGE,
            "Instructions storing outside the monitored ranges to a watched page, patched to store \
             without a trap (VMSRS_PATCH_STORES).",
            l(&crate::watch::patch::PATCHED_SITES),
        ),
        (
            "vmsrs_watch_hw_unwatched_threads_total",
            COUNTER,
            "Threads that started without their hardware watchpoints (no descriptor or debug register left).",
            l(&crate::watch::hw::UNWATCHED_THREADS),
        ),
    ]);
    for (name, kind, help, v) in single {
        family(name, kind, help, &[(String::new(), v)]);
    }
    let (mut traps, mut outside) = (Vec::new(), Vec::new());
    crate::watch::page_traps(&mut |page, t, o| {
        traps.push((format!("{{page=\"{page:#x}\"}}"), t));
        outside.push((format!("{{page=\"{page:#x}\"}}"), o));
    });
    if !traps.is_empty() {
        family("vmsrs_watch_page_traps_total", COUNTER, "Traps taken on each watched page.", &traps);
        family(
            "vmsrs_watch_page_traps_outside_total",
            COUNTER,
            "Traps on each watched page that stored outside the monitored ranges (data sharing the page).",
            &outside,
        );
    }
    m
}

/// Write the metrics file atomically: `FILE.tmp.<pid>`, then rename over `FILE`.
pub fn write_metrics() {
    let Some(path) = OPTIONS.get().and_then(|o| o.metrics_path.clone()) else { return };
    // One writer at a time (the reporter thread and the exit hook share the temporary name).
    static LOCK: AtomicBool = AtomicBool::new(false);
    let deadline = mono_ms() + 2000;
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        if mono_ms() > deadline {
            return;
        }
        std::thread::yield_now();
    }
    write_metrics_to(&path);
    LOCK.store(false, Ordering::Release);
}

fn write_metrics_to(path: &Path) {
    let text = metrics_text();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let ok = std::fs::write(&tmp, text.as_bytes()).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = ok {
        let _ = std::fs::remove_file(&tmp);
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            eprintln!(
                "=={}==vmsrs: cannot write the metrics file {}: {e}",
                std::process::id(),
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_709_251_199_999_999_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(1_735_689_600_000_000_000), "2025-01-01T00:00:00.000Z");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, b"a\"b\\c\n\x01");
        assert_eq!(s, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    }

    #[test]
    fn validation_refuses_bad_destinations() {
        let o = |p: &str| Options { log_path: Some(PathBuf::from(p)), ..Options::default() };
        assert!(validate(&o("relative/log")).is_err());
        assert!(validate(&o("/tmp/")).is_err());
        assert!(validate(&o("/tmp")).is_err());
        assert!(validate(&o("/nonexistent-vmsrs-dir/x")).unwrap_err().contains("does not exist"));
        assert!(validate(&o("/tmp/vmsrs-log")).is_ok());
    }
}
