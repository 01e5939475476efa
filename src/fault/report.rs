//! Fault reports: the last-fault record (`vmsrs_last_fault`), an ASan-style block on stderr
//! (formatted into stack buffers, each line one `write(2)`, no allocation) with symbolized
//! frames (`crate::symbols`), per-signal/per-action counters for the metrics, and the event
//! handed to the reporter thread (`crate::reporter`) for the JSON log.

use super::vmsrs_fault_action;
use crate::symbols::{self, Symbolized, MAX_FRAMES};
use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// The interrupted context's (rsp, rbp) while this thread runs the fault handler; (0, 0)
    /// in normal context. Const-initialised, no destructor: safe to touch in the handler.
    static CONTEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The fault handler starts deciding about the fault interrupted at `uc` (frames are walked
/// from there). Async-signal-safe.
///
/// # Safety
/// `uc` is null or the context the kernel handed to the running signal handler.
pub unsafe fn enter_handler(uc: *const libc::ucontext_t) {
    if uc.is_null() {
        return;
    }
    // SAFETY: the kernel's ucontext for the running handler (caller's contract).
    let g = unsafe { &(*uc).uc_mcontext.gregs };
    let ctx = (g[libc::REG_RSP as usize] as u64, g[libc::REG_RBP as usize] as u64);
    CONTEXT.with(|c| c.set(ctx));
}

/// The handler is done with the fault (before it returns or unwinds). Async-signal-safe.
pub fn leave_handler() {
    CONTEXT.with(|c| c.set((0, 0)));
}

/// Signals as the metrics label them, and the index of each in [`BY_KIND`].
const SIGNALS: [i32; 6] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGABRT, 0];
const ACTIONS: [vmsrs_fault_action; 6] = [
    vmsrs_fault_action::VMSRS_ACTION_SKIPPED,
    vmsrs_fault_action::VMSRS_ACTION_UNWOUND,
    vmsrs_fault_action::VMSRS_ACTION_THREAD_ENDED,
    vmsrs_fault_action::VMSRS_ACTION_EXPLICIT,
    vmsrs_fault_action::VMSRS_ACTION_SUPPRESSED,
    vmsrs_fault_action::VMSRS_ACTION_REFUSED,
];
/// Contained faults by signal (row; the last row is every other kind) and action (column).
static BY_KIND: [[AtomicU64; 6]; 6] = [const { [const { AtomicU64::new(0) }; 6] }; 6];

fn kind_index(sig: i32) -> usize {
    SIGNALS[..5].iter().position(|&s| s == sig).unwrap_or(5)
}

/// Non-zero counts of contained faults: (signal, action, count).
pub fn fault_counts() -> Vec<(i32, vmsrs_fault_action, u64)> {
    let mut v = Vec::new();
    for (i, row) in BY_KIND.iter().enumerate() {
        for (j, c) in row.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                v.push((SIGNALS[i], ACTIONS[j], n));
            }
        }
    }
    v
}

/// The last contained fault (`struct vmsrs_fault_info`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vmsrs_fault_info {
    /// Signal number (SIGSEGV, ...), or the kind given to `vmsrs_crash_suppression`.
    pub signal: i32,
    /// `si_code` of the signal (0 for explicit entries).
    pub code: i32,
    /// The user that faulted.
    pub user: u64,
    /// The faulting address (`si_addr`), or the address given to an explicit entry.
    pub addr: u64,
    /// The faulting instruction (0 for explicit entries).
    pub pc: u64,
    /// Kernel thread id.
    pub tid: u64,
    /// A `vmsrs_fault_action` value.
    pub action: i32,
    /// Length of the skipped instruction (oblivious policy), else 0.
    pub skipped_len: i32,
    /// Number of faults recorded so far, this one included.
    pub sequence: u64,
}

struct Record {
    seq: AtomicU64,
    f: [AtomicU64; 8],
}

static LAST: Record = Record {
    seq: AtomicU64::new(0),
    f: [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
};
static COUNT: AtomicU64 = AtomicU64::new(0);

/// Record and print one fault. Async-signal-safe.
pub fn fault(sig: i32, code: i32, addr: u64, pc: u64, user: u64, action: vmsrs_fault_action, len: u64) {
    // A fault in a trampoline (watch::patch) is the program's at the instruction it stands for.
    let pc = crate::watch::patch::original_pc(pc as usize).map_or(pc, |p| p as u64);
    let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    let tid = crate::thread::tid();
    BY_KIND[kind_index(sig)][action as usize - 1].fetch_add(1, Ordering::Relaxed);
    let mut frames = [0u64; MAX_FRAMES];
    let nframes = match CONTEXT.with(|c| c.get()) {
        _ if pc == 0 => 0,
        (0, _) => {
            frames[0] = pc;
            1
        }
        (rsp, rbp) => symbols::walk(pc, rsp, rbp, &mut frames),
    };
    hand_off(n, sig, code, addr, pc, user, action, len, tid, &frames[..nframes]);
    // Seqlock write: odd while fields change.
    LAST.seq.fetch_add(1, Ordering::AcqRel);
    let vals = [sig as u32 as u64, code as u32 as u64, user, addr, pc, tid, action as u64 | len << 32, n];
    for (f, v) in LAST.f.iter().zip(vals) {
        f.store(v, Ordering::Relaxed);
    }
    LAST.seq.fetch_add(1, Ordering::Release);
    print(sig, addr, pc, tid, user, action, len, &frames[..nframes]);
}

/// Give the event to the reporter thread (JSON log). Async-signal-safe.
#[allow(clippy::too_many_arguments)]
fn hand_off(
    seq: u64,
    sig: i32,
    code: i32,
    addr: u64,
    pc: u64,
    user: u64,
    action: vmsrs_fault_action,
    len: u64,
    tid: u64,
    frames: &[u64],
) {
    if !crate::reporter::wants_events() {
        return;
    }
    let mut ev = crate::reporter::Event {
        seq,
        time_ns: crate::reporter::now_realtime_ns(),
        tid,
        user,
        sig,
        code,
        addr,
        pc,
        action,
        skipped_len: len.min(255) as u8,
        policy: crate::runtime::get().map_or(0, |rt| crate::reporter::policy_code(rt.settings.policy)),
        insn_len: 0,
        insn: [0; crate::reporter::INSN_MAX],
        nframes: frames.len() as u8,
        frames: [0; MAX_FRAMES],
        nlocks: 0,
        locks: [0; crate::reporter::MAX_LOCKS],
    };
    ev.frames[..frames.len()].copy_from_slice(frames);
    // An unwind releases the locks taken since the recovery point; an ended thread, all.
    let since = match action {
        vmsrs_fault_action::VMSRS_ACTION_UNWOUND => Some(crate::locks::armed_mark()),
        vmsrs_fault_action::VMSRS_ACTION_THREAD_ENDED => Some(0),
        _ => None,
    };
    if let Some(mark) = since {
        for l in crate::locks::held_since(mark).take(crate::reporter::MAX_LOCKS) {
            ev.locks[ev.nlocks as usize] = l.addr as u64 | l.kind as u64;
            ev.nlocks += 1;
        }
    }
    if pc != 0 {
        // As many instruction bytes as are readable (an instruction may end a mapping).
        let mut n = crate::reporter::INSN_MAX;
        while n > 0 && !symbols::safe_read(pc as usize, &mut ev.insn[..n]) {
            n -= 1;
        }
        ev.insn_len = n as u8;
    }
    crate::reporter::record(&ev);
}

/// A consistent copy of the last record, if any fault was recorded.
pub fn last() -> Option<vmsrs_fault_info> {
    loop {
        let s1 = LAST.seq.load(Ordering::Acquire);
        if s1 == 0 {
            return None;
        }
        if s1 & 1 == 1 {
            core::hint::spin_loop();
            continue;
        }
        let v: [u64; 8] = core::array::from_fn(|i| LAST.f[i].load(Ordering::Relaxed));
        if LAST.seq.load(Ordering::Acquire) == s1 {
            return Some(vmsrs_fault_info {
                signal: v[0] as u32 as i32,
                code: v[1] as u32 as i32,
                user: v[2],
                addr: v[3],
                pc: v[4],
                tid: v[5],
                action: (v[6] & 0xFFFF_FFFF) as i32,
                skipped_len: (v[6] >> 32) as i32,
                sequence: v[7],
            });
        }
    }
}

/// A fixed buffer with just enough formatting for a report line.
pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    pub fn new() -> Self {
        Line { buf: [0; 512], len: 0 }
    }

    pub fn s(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        self
    }

    pub fn dec(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        // SAFETY: ASCII digits are valid UTF-8.
        self.s(unsafe { core::str::from_utf8_unchecked(&tmp[i..]) });
        self
    }

    pub fn hex(&mut self, v: u64) -> &mut Self {
        self.s("0x");
        let mut started = false;
        for k in (0..16).rev() {
            let d = ((v >> (4 * k)) & 0xF) as u8;
            if d != 0 || started || k == 0 {
                started = true;
                let c = [b"0123456789abcdef"[d as usize]];
                // SAFETY: ASCII hex digits are valid UTF-8.
                self.s(unsafe { core::str::from_utf8_unchecked(&c) });
            }
        }
        self
    }

    /// Start a line with the `==PID==vmsrs: ` prefix.
    pub fn prefixed() -> Self {
        let mut l = Line::new();
        // SAFETY: getpid is async-signal-safe.
        l.s("==").dec(unsafe { libc::getpid() } as u64).s("==vmsrs: ");
        l
    }

    /// Append bytes, keeping printable ASCII only (symbol names come from mapped tables).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        for &c in b {
            if self.len < self.buf.len() {
                self.buf[self.len] = if c.is_ascii_graphic() { c } else { b'?' };
                self.len += 1;
            }
        }
        self
    }

    pub fn write_stderr(&self) {
        // SAFETY: write(2) of an initialised stack buffer; async-signal-safe.
        unsafe { libc::write(2, self.buf.as_ptr() as *const libc::c_void, self.len) };
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        _ => "explicit",
    }
}

/// The action's name in the JSON log and the metrics labels.
pub fn action_name(a: vmsrs_fault_action) -> &'static str {
    match a {
        vmsrs_fault_action::VMSRS_ACTION_SKIPPED => "skipped",
        vmsrs_fault_action::VMSRS_ACTION_UNWOUND => "unwound",
        vmsrs_fault_action::VMSRS_ACTION_THREAD_ENDED => "thread_ended",
        vmsrs_fault_action::VMSRS_ACTION_EXPLICIT => "explicit",
        vmsrs_fault_action::VMSRS_ACTION_SUPPRESSED => "suppressed",
        vmsrs_fault_action::VMSRS_ACTION_REFUSED => "refused",
    }
}

fn action_text(a: vmsrs_fault_action) -> &'static str {
    match a {
        vmsrs_fault_action::VMSRS_ACTION_SKIPPED => "oblivious: faulting instruction skipped",
        vmsrs_fault_action::VMSRS_ACTION_UNWOUND => "unwind: returned to the recovery point",
        vmsrs_fault_action::VMSRS_ACTION_THREAD_ENDED => "no recovery point: thread ended",
        vmsrs_fault_action::VMSRS_ACTION_EXPLICIT => "explicit suppression",
        vmsrs_fault_action::VMSRS_ACTION_SUPPRESSED => "signal sent to the thread: suppressed",
        vmsrs_fault_action::VMSRS_ACTION_REFUSED => {
            "bad pointer passed to libvmsrs: the call failed with VMSRS_EFAULT"
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn print(
    sig: i32,
    addr: u64,
    pc: u64,
    tid: u64,
    user: u64,
    action: vmsrs_fault_action,
    len: u64,
    frames: &[u64],
) {
    let mut l = Line::prefixed();
    l.s("contained ").s(signal_name(sig)).s(" on address ").hex(addr).s(" pc ").hex(pc);
    l.s(" tid ").dec(tid).s(" user ").dec(user).s("\n");
    l.write_stderr();
    let mut l = Line::prefixed();
    l.s("policy applied: ").s(action_text(action));
    if len > 0 {
        l.s(" (").dec(len).s(" bytes)");
    }
    l.s("\n");
    l.write_stderr();
    let mut sym = Symbolized::new();
    for (i, &f) in frames.iter().enumerate() {
        // A return address is looked up one byte back: the call may end its function.
        symbols::symbolize(f as usize, if i == 0 { f } else { f - 1 } as usize, &mut sym);
        frame_line(i, f, &sym);
    }
    let mut l = Line::prefixed();
    l.s("SUMMARY: vmsrs: ").s(signal_name(sig)).s(" contained; user ").dec(user);
    l.s(" suppressed; other users unaffected\n");
    l.write_stderr();
}

/// `    #N 0xPC module+0xOFFSET (symbol+0xOFF)`; just `#N 0xPC` outside every known module.
fn frame_line(i: usize, pc: u64, sym: &Symbolized) {
    let mut l = Line::prefixed();
    l.s("    #").dec(i as u64).s(" ").hex(pc);
    if sym.found {
        l.s(" ").bytes(sym.module_name()).s("+").hex(sym.offset);
        if sym.symbol_len > 0 {
            l.s(" (").bytes(sym.symbol_name()).s("+").hex(sym.symbol_offset).s(")");
        }
    }
    l.s("\n");
    l.write_stderr();
}

/// The main thread faulted with no recovery point under a policy that must leave the faulting
/// code: ending the main thread alone would let the process exit 0 with its work lost, so the
/// fault goes to the program's own handler or the default action instead. Async-signal-safe.
pub fn main_thread_lost(sig: i32, addr: u64, pc: u64, user: u64) {
    let pc = crate::watch::patch::original_pc(pc as usize).map_or(pc, |p| p as u64);
    let mut l = Line::prefixed();
    l.s("NOT contained: ").s(signal_name(sig)).s(" on address ").hex(addr).s(" pc ").hex(pc);
    l.s(" user ").dec(user).s(" on the main thread, which has no recovery point\n");
    l.write_stderr();
    if pc != 0 {
        let mut frames = [0u64; MAX_FRAMES];
        let n = match CONTEXT.with(|c| c.get()) {
            (0, _) => {
                frames[0] = pc;
                1
            }
            (rsp, rbp) => symbols::walk(pc, rsp, rbp, &mut frames),
        };
        let mut sym = Symbolized::new();
        for (i, &f) in frames[..n].iter().enumerate() {
            symbols::symbolize(f as usize, if i == 0 { f } else { f - 1 } as usize, &mut sym);
            frame_line(i, f, &sym);
        }
    }
    let mut l = Line::prefixed();
    l.s("the main thread cannot be ended alone (the process would exit 0 without it); ");
    l.s("passing the fault to the program's handler or the default action\n");
    l.write_stderr();
    let mut l = Line::prefixed();
    l.s("SUMMARY: vmsrs: ")
        .s(signal_name(sig))
        .s(" on the main thread without a recovery point: not contained\n");
    l.write_stderr();
}
