//! Fault reports: the last-fault record (`vmsrs_last_fault`) and an ASan-style block on
//! stderr, formatted into a stack buffer and written with one `write(2)` (no allocation).

use super::vmsrs_fault_action;
use core::sync::atomic::{AtomicU64, Ordering};

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
    let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    let tid = crate::thread::tid();
    // Seqlock write: odd while fields change.
    LAST.seq.fetch_add(1, Ordering::AcqRel);
    let vals = [sig as u32 as u64, code as u32 as u64, user, addr, pc, tid, action as u64 | len << 32, n];
    for (f, v) in LAST.f.iter().zip(vals) {
        f.store(v, Ordering::Relaxed);
    }
    LAST.seq.fetch_add(1, Ordering::Release);
    print(sig, addr, pc, tid, user, action, len);
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

fn print(sig: i32, addr: u64, pc: u64, tid: u64, user: u64, action: vmsrs_fault_action, len: u64) {
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
    if pc != 0 {
        let mut l = Line::prefixed();
        l.s("    #0 ").hex(pc).s("\n");
        l.write_stderr();
    }
    let mut l = Line::prefixed();
    l.s("SUMMARY: vmsrs: ").s(signal_name(sig)).s(" contained; user ").dec(user);
    l.s(" suppressed; other users unaffected\n");
    l.write_stderr();
}

/// The main thread faulted with no recovery point under a policy that must leave the faulting
/// code: ending the main thread alone would let the process exit 0 with its work lost, so the
/// fault goes to the program's own handler or the default action instead. Async-signal-safe.
pub fn main_thread_lost(sig: i32, addr: u64, pc: u64, user: u64) {
    let mut l = Line::prefixed();
    l.s("NOT contained: ").s(signal_name(sig)).s(" on address ").hex(addr).s(" pc ").hex(pc);
    l.s(" user ").dec(user).s(" on the main thread, which has no recovery point\n");
    l.write_stderr();
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
