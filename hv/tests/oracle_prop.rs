//! Property tests of the recovery store against the reference oracle of DESIGN §2.4.
//!
//! Random programs over 3–6 users drive one `Hv` on the test thread (the contract is about
//! which thread runs a user at a time, so interleaving different users' operations on one
//! thread is a legal schedule). Monitored memory is 26–40 bytes (4–6 granules) profiled at a
//! possibly unaligned start, sometimes as two ranges that share a granule or are separated by
//! a few plain bytes; operations also reach plain bytes just before and after. Each operation
//! goes through `Hv::store`/`load`/… directly, through the scalar fast paths, or as a
//! hypercall through `svm_exit_handler`.
//!
//! Checked after every operation:
//! - every load, by a normal user, a faulted user or a non-user, equals the oracle (G3, G4);
//! - after a faulted user's end point, and whenever no user is faulted, raw memory equals
//!   the oracle's normal view (G7, I2); after `restore_range`, so does the restored span;
//! - the history is bounded: no more entries than, summed over bytes, the live writers that
//!   stored the byte since its last committed store ("committed writes are final");
//! - the user counters and the guest gate word (`HvConfig::gate`) agree with the model;
//! - with exposure tracking on, the reported exposures are exactly the (reader, writer,
//!   granule) triples the model derives from G8.

// Under `--cfg loom` the store's atomics are loom's, usable only inside `loom::model`.
#![cfg(not(loom))]

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::sync::atomic::{AtomicUsize, Ordering};
use vmsrs_hv::oracle::{OState, Oracle};
use vmsrs_hv::{
    svm_exit_handler, EndKind, Exposure, Hv, HvBox, HvConfig, Hypercall, Reading, UserId, VmFrame,
};

/// Heap memory the test owns and the store reads and writes through raw pointers only.
struct Mem {
    ptr: *mut [u64; 8],
}

impl Mem {
    fn new() -> Self {
        Mem { ptr: Box::into_raw(Box::new([0u64; 8])) }
    }

    fn addr(&self) -> usize {
        self.ptr as usize
    }

    fn read(&self, off: usize) -> u8 {
        assert!(off < 64);
        // SAFETY: `off` lies inside the 64-byte allocation, which lives as long as self.
        unsafe { core::ptr::read_volatile((self.addr() + off) as *const u8) }
    }

    fn write(&self, off: usize, b: u8) {
        assert!(off < 64);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.addr() + off) as *mut u8, b) }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from Box::into_raw in `new` and is freed once.
        drop(unsafe { Box::from_raw(self.ptr) });
    }
}

#[derive(Clone, Debug)]
struct Layout {
    /// Offset of the first monitored byte in the 8-aligned buffer (0..8: possibly unaligned).
    start: usize,
    /// Monitored bytes.
    len: usize,
    /// Profile as two ranges, the first of this many bytes …
    split: Option<usize>,
    /// … separated by this many unmonitored bytes (0: adjacent, possibly sharing a granule).
    gap: usize,
    /// Unmonitored bytes just before and after the monitored ones, which operations also
    /// reach (they are plain memory).
    pre: usize,
    post: usize,
}

#[derive(Clone, Debug)]
enum Op {
    Begin {
        user: u8,
    },
    /// A scalar store of `1 << width` bytes at any alignment.
    Store {
        user: u8,
        off: u8,
        width: u8,
        val: u64,
    },
    /// A memcpy-like range store.
    StoreRange {
        user: u8,
        off: u8,
        bytes: Vec<u8>,
    },
    Fill {
        user: u8,
        off: u8,
        len: u8,
        byte: u8,
    },
    /// `reader: None` loads as a non-user (u = 0).
    Load {
        reader: Option<u8>,
        off: u8,
        width: u8,
    },
    LoadRange {
        reader: Option<u8>,
        off: u8,
        len: u8,
    },
    Fault {
        user: u8,
    },
    End {
        user: u8,
    },
    Restore {
        off: u8,
        len: u8,
    },
    /// Unprofile one of the ranges and profile it again at once.
    Reprofile {
        range: u8,
    },
}

fn layout() -> impl Strategy<Value = Layout> {
    let edges = prop_oneof![3 => Just(0usize), 1 => 1usize..=2];
    (0usize..8, 26usize..=40, prop::option::of(any::<u16>()), edges.clone(), edges.clone(), edges).prop_map(
        |(start, len, split, gap, pre, post)| Layout {
            start,
            len,
            split: split.map(|k| 1 + k as usize % (len - 1)),
            gap: if split.is_some() { gap } else { 0 },
            pre,
            post,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let reader = || prop::option::weighted(0.85, any::<u8>());
    prop_oneof![
        1 => any::<u8>().prop_map(|user| Op::Begin { user }),
        6 => (any::<u8>(), any::<u8>(), 0u8..4, any::<u64>())
            .prop_map(|(user, off, width, val)| Op::Store { user, off, width, val }),
        2 => (any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 1..=20))
            .prop_map(|(user, off, bytes)| Op::StoreRange { user, off, bytes }),
        1 => (any::<u8>(), any::<u8>(), 1u8..=20, any::<u8>())
            .prop_map(|(user, off, len, byte)| Op::Fill { user, off, len, byte }),
        5 => (reader(), any::<u8>(), 0u8..4).prop_map(|(reader, off, width)| Op::Load { reader, off, width }),
        2 => (reader(), any::<u8>(), 1u8..=20).prop_map(|(reader, off, len)| Op::LoadRange { reader, off, len }),
        2 => any::<u8>().prop_map(|user| Op::Fault { user }),
        3 => any::<u8>().prop_map(|user| Op::End { user }),
        1 => (any::<u8>(), 1u8..=20).prop_map(|(off, len)| Op::Restore { off, len }),
        1 => any::<u8>().prop_map(|range| Op::Reprofile { range }),
    ]
}

/// How an operation reaches the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `Hv::store`, `Hv::load`, … called directly.
    Direct,
    /// The scalar fast paths `Hv::store_scalar` / `Hv::load_scalar` (for 1 to 8 bytes).
    Scalar,
    /// A hypercall through `svm_exit_handler` (the ABI every host speaks).
    Abi,
    /// The scalar hypercalls `StoreScalar` / `LoadScalar` (else as `Abi`).
    AbiScalar,
    /// A store inside one granule of one range is done as a hardware watchpoint sees it: the
    /// bytes land in memory first, then `Hv::store_landed` journals them (and a suppressed
    /// user's are put back, as watch/hw.rs does); else as `Direct`.
    Landed,
}

fn path() -> impl Strategy<Value = Path> {
    prop_oneof![
        3 => Just(Path::Direct),
        2 => Just(Path::Scalar),
        1 => Just(Path::Abi),
        1 => Just(Path::AbiScalar),
        1 => Just(Path::Landed),
    ]
}

type Program = (Layout, Vec<u8>, usize, Vec<(Op, Path)>);

fn program() -> impl Strategy<Value = Program> {
    (
        layout(),
        prop::collection::vec(any::<u8>(), 40),
        3usize..=6,
        prop::collection::vec((op(), path()), 1..=60),
    )
}

type Triple = (u64, u64, u64);

/// The store under test, the oracle, and the test's own model of what the store must report.
struct Harness {
    hv: HvBox,
    /// The guest-readable gate word (`HvConfig::gate`).
    gate: &'static AtomicUsize,
    mem: Mem,
    /// Offset of model byte 0 in `mem`.
    start: usize,
    /// Model bytes (monitored and plain).
    len: usize,
    /// Which model bytes are monitored.
    monitored: Vec<bool>,
    /// The value of each unmonitored byte: the last store by anyone, suppressed or not.
    plain: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    oracle: Oracle,
    /// The user each test slot currently runs.
    slots: Vec<Option<UserId>>,
    /// Per monitored byte, the writers of its recorded (non-shadow) stores, oldest first.
    hist: Vec<Vec<UserId>>,
    exposure: bool,
    cascade: bool,
    /// G8 candidates: a normal reader loaded a byte whose latest visible store is by an
    /// active other user.
    cands: HashSet<Triple>,
    expected_exposures: BTreeSet<Triple>,
    doomed: HashSet<UserId>,
    /// How the current operation reaches the store.
    path: Path,
    trace: Vec<String>,
}

impl Harness {
    fn new(lay: &Layout, initial: &[u8], nusers: usize, exposure: bool, cascade: bool) -> Self {
        let gate: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let hv = Hv::create(HvConfig { exposure, cascade, gate: Some(gate) }).expect("Hv::create");
        let mem = Mem::new();
        for (i, &b) in initial.iter().enumerate().take(64) {
            mem.write(i, b);
        }
        // Model offsets 0..total cover `pre` plain bytes, the ranges (and the gap between
        // them), and `post` plain bytes.
        let total = lay.pre + lay.len + lay.gap + lay.post;
        let base = mem.addr() + lay.start;
        let first = base + lay.pre;
        let ranges = match lay.split {
            None => vec![(first, lay.len)],
            Some(k) => vec![(first, k), (first + k + lay.gap, lay.len - k)],
        };
        for (i, &(a, n)) in ranges.iter().enumerate() {
            hv.profile(a, n, if i == 0 { b"prop-a" } else { b"prop-b" }).expect("profile");
        }
        let monitored: Vec<bool> =
            (0..total).map(|o| ranges.iter().any(|&(a, n)| (a..a + n).contains(&(base + o)))).collect();
        let init: Vec<u8> = (0..total).map(|o| mem.read(lay.start + o)).collect();
        Harness {
            hv,
            gate,
            mem,
            start: lay.start,
            len: total,
            ranges,
            plain: init.clone(),
            monitored,
            oracle: Oracle::new(&init),
            slots: vec![None; nusers],
            hist: vec![Vec::new(); total],
            exposure,
            cascade,
            cands: HashSet::new(),
            expected_exposures: BTreeSet::new(),
            doomed: HashSet::new(),
            path: Path::Direct,
            trace: Vec::new(),
        }
    }

    fn addr(&self, off: usize) -> usize {
        self.mem.addr() + self.start + off
    }

    fn granule(&self, off: usize) -> u64 {
        (self.addr(off) & !7) as u64
    }

    fn raw(&self) -> Vec<u8> {
        (0..self.len).map(|o| self.mem.read(self.start + o)).collect()
    }

    /// What user `u` must load: the oracle for monitored bytes, the plain value for the rest.
    fn expect_load(&self, u: UserId, off: usize, n: usize) -> Vec<u8> {
        let mut v = self.oracle.load(u, off, n);
        for (k, b) in v.iter_mut().enumerate() {
            if !self.monitored[off + k] {
                *b = self.plain[off + k];
            }
        }
        v
    }

    /// What raw memory must hold once restored: the normal view, plain bytes as stored.
    fn expected_raw(&self) -> Vec<u8> {
        let mut v = self.oracle.expected_raw();
        for (o, b) in v.iter_mut().enumerate() {
            if !self.monitored[o] {
                *b = self.plain[o];
            }
        }
        v
    }

    fn fail(&self, what: String) -> TestCaseError {
        TestCaseError::fail(format!("{what}\ntrace:\n  {}", self.trace.join("\n  ")))
    }

    fn faulted(&self, u: UserId) -> bool {
        matches!(self.oracle.state(u), OState::Faulted | OState::Collected)
    }

    /// The user running test slot `i`, begun on demand.
    fn user(&mut self, i: u8) -> Result<UserId, TestCaseError> {
        let i = i as usize % self.slots.len();
        if let Some(u) = self.slots[i] {
            return Ok(u);
        }
        let u = match self.path {
            Path::Abi | Path::AbiScalar => {
                let (rax, _) = self.hypercall(Hypercall::UserBegin, [0; 4]);
                if rax <= 0 {
                    return Err(self.fail(format!("UserBegin hypercall: {rax}")));
                }
                rax as UserId
            }
            _ => self.hv.user_begin().map_err(|e| self.fail(format!("user_begin: {e:?}")))?,
        };
        self.oracle.begin(u);
        self.slots[i] = Some(u);
        self.trace.push(format!("  begin slot {i} -> user {u:#x}"));
        Ok(u)
    }

    /// Under `cascade`, a doomed active user faults at its next monitored operation.
    fn apply_doom(&mut self, u: UserId) {
        if self.doomed.contains(&u) && self.oracle.state(u) == OState::Active {
            self.model_fault(u);
        }
    }

    fn model_fault(&mut self, u: UserId) {
        if self.oracle.state(u) != OState::Active {
            return;
        }
        self.oracle.fault(u);
        let mine: Vec<Triple> = self.cands.iter().filter(|c| c.1 == u).copied().collect();
        for c in mine {
            self.cands.remove(&c);
            self.expected_exposures.insert(c);
            if self.cascade && self.slots.contains(&Some(c.0)) {
                self.doomed.insert(c.0);
            }
        }
    }

    fn model_store(&mut self, u: UserId, off: usize, bytes: &[u8]) {
        for (k, &b) in bytes.iter().enumerate() {
            if !self.monitored[off + k] {
                // Plain memory: every store lands, whoever makes it.
                self.plain[off + k] = b;
            } else if self.oracle.state(u) == OState::Active {
                self.hist[off + k].push(u);
            }
        }
        self.oracle.store(u, off, bytes);
    }

    /// The writer of the latest store to `off` visible to a normal user, if any.
    fn visible_writer(&self, off: usize) -> Option<UserId> {
        self.hist[off].iter().rev().copied().find(|&w| !self.faulted(w))
    }

    fn do_store(&mut self, user: u8, off: usize, bytes: &[u8]) -> Result<(), TestCaseError> {
        let u = self.user(user)?;
        self.apply_doom(u);
        self.trace.push(format!("store u={u:#x} off={off} bytes={bytes:02x?}"));
        let addr = self.addr(off);
        let n = bytes.len();
        let mut word = [0u8; 8];
        word[..n.min(8)].copy_from_slice(&bytes[..n.min(8)]);
        let word = u64::from_le_bytes(word);
        // Any 1 to 8 bytes (the library's small assignments store 3, 5, 6 or 7 bytes too).
        let scalar = (1..=8).contains(&n);
        let one_granule = n > 0 && (addr & !7) == ((addr + n - 1) & !7);
        let in_one_range = self.ranges.iter().any(|&(a, len)| a <= addr && addr + n <= a + len);
        let mut landed_before = None;
        let res = match self.path {
            Path::Landed if one_granule && in_one_range => {
                let before: Vec<u8> = (0..n).map(|i| self.mem.read(self.start + off + i)).collect();
                landed_before = Some(before.clone());
                for (i, &b) in bytes.iter().enumerate() {
                    self.mem.write(self.start + off + i, b);
                }
                let r = self.hv.store_landed(u, addr, &before, bytes).map_err(|e| format!("{e:?}"));
                if self.hv.suppressed(u) {
                    for (i, &b) in before.iter().enumerate() {
                        self.mem.write(self.start + off + i, b);
                    }
                }
                r
            }
            Path::Scalar if scalar => self.hv.store_scalar(u, addr, word, n).map_err(|e| format!("{e:?}")),
            Path::AbiScalar if scalar => {
                self.status(Hypercall::StoreScalar, [u, addr as u64, word, n as u64]).map(|_| ())
            }
            Path::Abi | Path::AbiScalar => {
                self.status(Hypercall::Store, [u, addr as u64, bytes.as_ptr() as u64, n as u64]).map(|_| ())
            }
            _ => self.hv.store(u, addr, bytes).map_err(|e| format!("{e:?}")),
        };
        res.map_err(|e| self.fail(format!("store ({:?}): {e}", self.path)))?;
        match landed_before {
            // A landed store is the bytes it changed (a watchpoint cannot see the others).
            Some(before) => {
                for (i, &b) in bytes.iter().enumerate().filter(|&(i, &b)| before[i] != b) {
                    self.model_store(u, off + i, &[b]);
                }
            }
            None => self.model_store(u, off, bytes),
        }
        Ok(())
    }

    fn do_fill(&mut self, user: u8, off: usize, len: usize, byte: u8) -> Result<(), TestCaseError> {
        let u = self.user(user)?;
        self.apply_doom(u);
        self.trace.push(format!("fill u={u:#x} off={off} len={len} byte={byte:#04x}"));
        let addr = self.addr(off);
        let res = match self.path {
            Path::Abi | Path::AbiScalar => {
                self.status(Hypercall::Fill, [addr as u64, byte as u64, len as u64, u]).map(|_| ())
            }
            _ => self.hv.fill(u, addr, byte, len).map_err(|e| format!("{e:?}")),
        };
        res.map_err(|e| self.fail(format!("fill ({:?}): {e}", self.path)))?;
        self.model_store(u, off, &vec![byte; len]);
        Ok(())
    }

    fn do_load(&mut self, reader: Option<u8>, off: usize, n: usize) -> Result<(), TestCaseError> {
        let u = match reader {
            Some(i) => self.user(i)?,
            None => 0,
        };
        if u != 0 {
            self.apply_doom(u);
        }
        let mut got = vec![0u8; n];
        let addr = self.addr(off);
        // Any 1 to 8 bytes, as the scalar stores take them.
        let scalar = (1..=8).contains(&n);
        let res = match self.path {
            Path::Scalar if scalar => {
                self.hv.load_scalar(u, addr, n).map_err(|e| format!("{e:?}")).inspect(|v| {
                    got.copy_from_slice(&v.to_le_bytes()[..n]);
                })
            }
            Path::AbiScalar if scalar => {
                let mut f = VmFrame::call(Hypercall::LoadScalar, [u, addr as u64, 0, n as u64, 0, 0]);
                // SAFETY: the call takes no pointer arguments.
                unsafe { svm_exit_handler(&mut f, &self.hv) };
                let v = f.genrl_regs.rdx;
                got.copy_from_slice(&v.to_le_bytes()[..n]);
                if f.ret() == 0 {
                    Ok(v)
                } else {
                    Err(format!("status {}", f.ret()))
                }
            }
            Path::Abi | Path::AbiScalar => {
                self.status(Hypercall::Load, [u, addr as u64, got.as_mut_ptr() as u64, n as u64]).map(|_| 0)
            }
            _ => self.hv.load(u, addr, &mut got).map(|_| 0).map_err(|e| format!("{e:?}")),
        };
        let v = res.map_err(|e| self.fail(format!("load ({:?}): {e}", self.path)))?;
        if scalar && matches!(self.path, Path::Scalar | Path::AbiScalar) && n < 8 && v >> (8 * n) != 0 {
            return Err(self.fail(format!("scalar load of {n} bytes returned {v:#x}: high bytes not zero")));
        }
        let want = self.expect_load(u, off, n);
        self.trace.push(format!("load u={u:#x} off={off} n={n} ({:?}) -> {got:02x?}", self.path));
        if got != want {
            return Err(self.fail(format!(
                "load by {u:#x} ({:?}) of {n} bytes at offset {off}: store returned {got:02x?}, oracle {want:02x?}",
                self.oracle.state(u)
            )));
        }
        if u != 0 {
            let sup = match self.path {
                Path::Abi | Path::AbiScalar => self.status(Hypercall::UserState, [u, 0, 0, 0]) == Ok(1),
                _ => self.hv.suppressed(u),
            };
            if sup != (self.oracle.state(u) == OState::Faulted) {
                return Err(
                    self.fail(format!("suppressed({u:#x}) = {sup}, oracle {:?}", self.oracle.state(u)))
                );
            }
        }
        if self.exposure && u != 0 && self.oracle.state(u) == OState::Active {
            for o in (off..off + n).filter(|&o| self.monitored[o]) {
                if let Some(w) = self.visible_writer(o) {
                    if w != u && self.oracle.state(w) == OState::Active {
                        self.cands.insert((u, w, self.granule(o)));
                    }
                }
            }
        }
        Ok(())
    }

    fn do_fault(&mut self, user: u8) -> Result<(), TestCaseError> {
        let u = self.user(user)?;
        self.trace.push(format!("fault u={u:#x}"));
        let res = match self.path {
            Path::Abi | Path::AbiScalar => {
                self.status(Hypercall::CrashSuppression, [u, 11, self.addr(0) as u64, 0]).map(|_| ())
            }
            _ => self.hv.crash_suppression(u).map_err(|e| format!("{e:?}")),
        };
        res.map_err(|e| self.fail(format!("crash_suppression ({:?}): {e}", self.path)))?;
        self.model_fault(u);
        Ok(())
    }

    fn do_end(&mut self, i: usize) -> Result<(), TestCaseError> {
        let Some(u) = self.slots[i] else { return Ok(()) };
        self.apply_doom(u);
        self.trace.push(format!("end u={u:#x} ({:?})", self.oracle.state(u)));
        let kind = match self.path {
            Path::Abi | Path::AbiScalar => match self.status(Hypercall::UserEnd, [u, 0, 0, 0]) {
                Ok(0) => Ok(EndKind::Committed),
                Ok(1) => Ok(EndKind::Faulted),
                other => Err(format!("{other:?}")),
            },
            _ => self.hv.user_end(u).map_err(|e| format!("{e:?}")),
        };
        let kind = kind.map_err(|e| self.fail(format!("user_end ({:?}): {e}", self.path)))?;
        let was_faulted = self.oracle.state(u) == OState::Faulted;
        let want = if was_faulted { EndKind::Faulted } else { EndKind::Committed };
        if kind != want {
            return Err(self.fail(format!("user_end({u:#x}) = {kind:?}, expected {want:?}")));
        }
        self.oracle.end(u);
        self.slots[i] = None;
        if !was_faulted {
            // The writer committed: its candidates can never become exposures.
            self.cands.retain(|c| c.1 != u);
        }
        if was_faulted {
            // G7: every byte whose latest store is u's holds its G3 value again (bytes of
            // other, still faulted users are restored on demand or at their own end).
            let (raw, want) = (self.raw(), self.expected_raw());
            for o in (0..self.len).filter(|&o| self.oracle.latest_writer(o) == Some(u)) {
                if raw[o] != want[o] {
                    return Err(self.fail(format!(
                        "G7: after collecting {u:#x}, its byte at offset {o} is {:#04x} in raw memory, oracle {:#04x}",
                        raw[o], want[o]
                    )));
                }
            }
        }
        Ok(())
    }

    fn do_restore(&mut self, off: usize, n: usize) -> Result<(), TestCaseError> {
        self.trace.push(format!("restore off={off} n={n}"));
        match self.path {
            Path::Abi | Path::AbiScalar => {
                let r = self.status(Hypercall::Restore, [self.addr(off) as u64, n as u64, 0, 0]);
                if r != Ok(0) {
                    return Err(self.fail(format!("Restore hypercall: {r:?}")));
                }
            }
            _ => self.hv.restore_range(self.addr(off), n),
        }
        let raw = self.raw();
        let want = self.expected_raw();
        if raw[off..off + n] != want[off..off + n] {
            return Err(self.fail(format!(
                "raw memory after restore_range({off}, {n}) is {:02x?}, oracle {:02x?}",
                &raw[off..off + n],
                &want[off..off + n]
            )));
        }
        Ok(())
    }

    /// Unprofile range `i` and profile it again: raw memory keeps the normal view (G3), and
    /// nothing recorded or shadowed there before is seen again, by any user.
    fn do_reprofile(&mut self, i: usize) -> Result<(), TestCaseError> {
        let (a, n) = self.ranges[i];
        self.trace.push(format!("reprofile range {i} ({n} bytes)"));
        let name = b"prop-re";
        let r = match self.path {
            Path::Abi | Path::AbiScalar => {
                self.status(Hypercall::Unprofile, [a as u64, 0, 0, 0]).and_then(|_| {
                    self.status(
                        Hypercall::Profile,
                        [a as u64, n as u64, name.as_ptr() as u64, name.len() as u64],
                    )
                    .map(drop)
                })
            }
            _ => self
                .hv
                .unprofile(a)
                .and_then(|_| self.hv.profile(a, n, name).map(drop))
                .map_err(|e| format!("{e:?}")),
        };
        if let Err(e) = r {
            return Err(self.fail(format!("unprofile + profile of range {i}: {e}")));
        }
        let lo = a - self.addr(0);
        let want = self.expected_raw();
        let raw = self.raw();
        if raw[lo..lo + n] != want[lo..lo + n] {
            return Err(self.fail(format!(
                "raw memory after unprofile of range {i} is {:02x?}, oracle {:02x?}",
                &raw[lo..lo + n],
                &want[lo..lo + n]
            )));
        }
        self.oracle.reprofile(lo, lo + n);
        for h in &mut self.hist[lo..lo + n] {
            h.clear();
        }
        Ok(())
    }

    /// One hypercall through the exit handler: the status in `rax` (negative: an error).
    fn hypercall(&self, nr: Hypercall, args: [u64; 4]) -> (i64, u64) {
        let mut f = VmFrame::call(nr, [args[0], args[1], args[2], args[3], 0, 0]);
        // SAFETY: every pointer argument the callers pass names a live buffer of the length
        // given, and user ids belong to this (the only) thread.
        unsafe { svm_exit_handler(&mut f, &self.hv) };
        (f.ret(), f.genrl_regs.rdx)
    }

    fn status(&self, nr: Hypercall, args: [u64; 4]) -> Result<i64, String> {
        match self.hypercall(nr, args).0 {
            r if r < 0 => Err(format!("{nr:?} hypercall status {r}")),
            r => Ok(r),
        }
    }

    fn apply(&mut self, op: &Op, path: Path) -> Result<(), TestCaseError> {
        self.path = path;
        let len = self.len;
        let at = |off: u8, n: usize| off as usize % (len - n + 1);
        match *op {
            Op::Begin { user } => {
                self.user(user)?;
            }
            Op::Store { user, off, width, val } => {
                let n = 1usize << width;
                let bytes = val.to_le_bytes();
                self.do_store(user, at(off, n), &bytes[..n])?;
            }
            Op::StoreRange { user, off, ref bytes } => {
                let n = bytes.len().min(len);
                self.do_store(user, at(off, n), &bytes[..n])?;
            }
            Op::Fill { user, off, len: n, byte } => {
                let n = (n as usize).min(len);
                self.do_fill(user, at(off, n), n, byte)?;
            }
            Op::Load { reader, off, width } => {
                let n = 1usize << width;
                self.do_load(reader, at(off, n), n)?;
            }
            Op::LoadRange { reader, off, len: n } => {
                let n = (n as usize).min(len);
                self.do_load(reader, at(off, n), n)?;
            }
            Op::Fault { user } => self.do_fault(user)?,
            Op::End { user } => self.do_end(user as usize % self.slots.len())?,
            Op::Restore { off, len: n } => {
                let n = (n as usize).min(len);
                self.do_restore(at(off, n), n)?;
            }
            Op::Reprofile { range } => self.do_reprofile(range as usize % self.ranges.len())?,
        }
        self.check_invariants()
    }

    /// Per byte, the live writers whose recorded store follows the byte's last committed
    /// store: a history entry can only speak for such (writer, byte) pairs.
    fn live_writers(&self, off: usize) -> BTreeSet<UserId> {
        let h = &self.hist[off];
        let from = h.iter().rposition(|&w| self.oracle.state(w) == OState::Committed).map_or(0, |i| i + 1);
        h[from..]
            .iter()
            .copied()
            .filter(|&w| matches!(self.oracle.state(w), OState::Active | OState::Faulted))
            .collect()
    }

    fn check_invariants(&mut self) -> Result<(), TestCaseError> {
        let st = self.hv.stats();
        let live = self.slots.iter().flatten().count() as u64;
        let faulted =
            self.slots.iter().flatten().filter(|&&u| self.oracle.state(u) == OState::Faulted).count();
        if st.users_live != live || st.faulted_now != faulted as u64 {
            return Err(self.fail(format!(
                "stats: users_live {} faulted_now {}, model {live} {faulted}",
                st.users_live, st.faulted_now
            )));
        }
        let gate = self.gate.load(Ordering::SeqCst);
        if gate != faulted + self.exposure as usize {
            return Err(self.fail(format!("gate word is {gate} with {faulted} faulted users")));
        }
        let bound: usize = (0..self.len).map(|o| self.live_writers(o).len()).sum();
        if st.history_entries as usize > bound {
            return Err(self.fail(format!(
                "history not bounded: {} entries, but only {bound} (writer, byte) pairs are live",
                st.history_entries
            )));
        }
        if faulted == 0 {
            let (raw, want) = (self.raw(), self.expected_raw());
            if raw != want {
                return Err(
                    self.fail(format!("no user is faulted, yet raw {raw:02x?} != oracle {want:02x?}"))
                );
            }
        }
        if st.corruptions != 0 || st.unrecorded != 0 {
            return Err(self.fail(format!("unexpected corruption/unrecorded counters: {st:?}")));
        }
        if self.exposure {
            self.check_exposures()?;
        }
        Ok(())
    }

    fn check_exposures(&self) -> Result<(), TestCaseError> {
        let mut buf = [Exposure::default(); 256];
        let (n, total) = self.hv.exposures(0, &mut buf);
        let got: Vec<Triple> = buf[..n].iter().map(|e| (e.reader, e.writer, e.addr)).collect();
        let set: BTreeSet<Triple> = got.iter().copied().collect();
        if n != total || set.len() != got.len() || set != self.expected_exposures {
            let missing: Vec<_> = self.expected_exposures.difference(&set).collect();
            let extra: Vec<_> = set.difference(&self.expected_exposures).collect();
            return Err(self.fail(format!(
                "G8: reported {total} exposures {got:x?}; missing {missing:x?}, unjustified {extra:x?}"
            )));
        }
        Ok(())
    }

    /// End every remaining user; afterwards nothing of the history may remain.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.path = Path::Direct;
        for i in 0..self.slots.len() {
            self.do_end(i)?;
            self.check_invariants()?;
        }
        let st = self.hv.stats();
        if st.history_entries != 0 || st.users_live != 0 || st.faulted_now != 0 {
            return Err(self.fail(format!("after every user ended: {st:?}")));
        }
        let want = self.expected_raw();
        for &(a, _) in &self.ranges {
            self.hv.unprofile(a).map_err(|e| self.fail(format!("unprofile: {e:?}")))?;
        }
        if self.raw() != want {
            return Err(self.fail("unprofile changed raw memory".into()));
        }
        Ok(())
    }
}

fn run(
    lay: &Layout,
    initial: &[u8],
    nusers: usize,
    ops: &[(Op, Path)],
    exposure: bool,
    cascade: bool,
) -> Result<(), TestCaseError> {
    let mut h = Harness::new(lay, initial, nusers, exposure, cascade);
    h.trace.push(format!("layout {lay:?}, ranges {:x?}, users {nusers}", h.ranges));
    for &(ref op, path) in ops {
        h.apply(op, path)?;
    }
    h.finish()
}

fn config(default_cases: u32) -> ProptestConfig {
    // Miri interprets every step: a few cases by default, and no regression file (its
    // isolation has no file system; the persisted seeds run in the normal suite).
    let default_cases = if cfg!(miri) { MIRI_CASES } else { default_cases };
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default_cases);
    let mut c = ProptestConfig { cases, max_shrink_iters: 20_000, ..ProptestConfig::default() };
    if cfg!(miri) {
        c.failure_persistence = None;
    }
    c
}

/// Cases per property under Miri (`PROPTEST_CASES` overrides it when forwarded to Miri).
const MIRI_CASES: u32 = 2;

proptest! {
    #![proptest_config(config(640))]

    /// G3/G4/G7, history bound: every load (normal, faulted and non-user readers) matches the
    /// oracle, raw memory is clean after every cleanup, and the history stays bounded.
    #[test]
    fn every_load_matches_the_reference_oracle((lay, initial, nusers, ops) in program()) {
        run(&lay, &initial, nusers, &ops, false, false)?;
    }

    /// G8: with exposure tracking on (and `cascade` sometimes), the reported exposures are
    /// exactly those the model derives, and loads still match the oracle.
    #[test]
    fn every_exposure_to_a_later_faulted_writer_is_reported(
        (lay, initial, nusers, ops) in program(),
        cascade in any::<bool>(),
    ) {
        run(&lay, &initial, nusers, &ops, true, cascade)?;
    }
}

// ----- deterministic regressions (minimised counterexamples and the guarantees they name) ---

fn single(len: usize, start: usize, split: Option<usize>) -> Layout {
    Layout { start, len, split, gap: 0, pre: 0, post: 0 }
}

fn direct(ops: &[Op]) -> Vec<(Op, Path)> {
    ops.iter().map(|op| (op.clone(), Path::Direct)).collect()
}

fn init_bytes() -> Vec<u8> {
    (0..40u8).map(|i| 0xA0 ^ i).collect()
}

/// G7 with raw checks after every step, on the simplest program: one faulted writer.
#[test]
fn raw_memory_holds_no_faulted_byte_after_cleanup() {
    let ops = [
        Op::Store { user: 0, off: 3, width: 3, val: 0x1111_1111_1111_1111 },
        Op::Store { user: 1, off: 5, width: 2, val: 0x2222_2222 },
        Op::Fault { user: 0 },
        Op::Load { reader: Some(1), off: 0, width: 3 },
        Op::End { user: 0 },
        Op::Load { reader: None, off: 0, width: 3 },
    ];
    run(&single(32, 0, None), &init_bytes(), 3, &direct(&ops), false, false).unwrap();
}

/// Two ranges that share a granule have separate metadata; a user's fault, commit and
/// collection must reach both.
#[test]
fn faults_and_commits_reach_both_ranges_of_a_shared_granule() {
    let lay = single(32, 0, Some(12)); // ranges [0,12) and [12,32): granule 8..16 is shared
    let ops = [
        Op::Store { user: 0, off: 13, width: 1, val: 0x5555 },
        Op::Fault { user: 0 },
        Op::Load { reader: Some(1), off: 12, width: 2 },
        Op::End { user: 0 },
        Op::Load { reader: None, off: 12, width: 2 },
    ];
    run(&lay, &init_bytes(), 3, &direct(&ops), false, false).unwrap();
    let ops = [
        Op::Store { user: 0, off: 13, width: 1, val: 0x5555 },
        Op::End { user: 0 },
        Op::Store { user: 1, off: 13, width: 0, val: 0x66 },
        Op::Fault { user: 1 },
        Op::Load { reader: Some(2), off: 12, width: 2 },
    ];
    run(&lay, &init_bytes(), 3, &direct(&ops), false, false).unwrap();
}

/// "History length per granule is bounded by the number of active users that wrote it":
/// two long-lived users alternately storing to one byte must not grow the history.
#[test]
fn history_stays_bounded_when_two_active_users_alternate() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let mem = Mem::new();
    hv.profile(mem.addr(), 16, b"alt").unwrap();
    let a = hv.user_begin().unwrap();
    let b = hv.user_begin().unwrap();
    const N: u32 = if cfg!(miri) { 64 } else { 1000 };
    for i in 0..N {
        let u = if i % 2 == 0 { a } else { b };
        hv.store(u, mem.addr() + 3, &[i as u8]).unwrap();
        let n = hv.stats().history_entries;
        assert!(n <= 2, "after {} alternating stores the history holds {n} entries", i + 1);
    }
    hv.crash_suppression(a).unwrap();
    let mut v = [0u8; 1];
    hv.load(0, mem.addr() + 3, &mut v).unwrap();
    assert_eq!(v[0], (N - 1) as u8, "b's last store is the visible value after a faults");
    assert_eq!(hv.user_end(a).unwrap(), EndKind::Faulted);
    assert_eq!(hv.user_end(b).unwrap(), EndKind::Committed);
    assert_eq!(hv.stats().history_entries, 0);
    assert_eq!(mem.read(3), (N - 1) as u8);
}

/// G8 for a reader that committed before the writer faulted: it loaded dirty data and acted
/// on it, so it must be reported even though cascade can no longer fault it.
#[test]
fn exposure_of_a_reader_that_already_committed_is_reported() {
    let ops = [
        Op::Store { user: 0, off: 0, width: 3, val: 0x7777_7777_7777_7777 },
        Op::Load { reader: Some(1), off: 0, width: 3 },
        Op::End { user: 1 },
        Op::Fault { user: 0 },
    ];
    run(&single(32, 0, None), &init_bytes(), 3, &direct(&ops), true, false).unwrap();
}

/// G8 for a reader that is no user: a load that asks says `ReaderNeeded` exactly when it read
/// bytes whose latest store is an active user's (then it recorded nothing); the same load by
/// the user the reader becomes is then reported when the writer faults. Without exposure
/// tracking, or at rest, or on committed bytes, a load never asks for a reader.
#[test]
fn a_load_by_no_user_asks_for_a_reader_only_when_it_read_an_active_users_bytes() {
    for exposure in [false, true] {
        let hv = Hv::create(HvConfig { exposure, ..HvConfig::default() }).unwrap();
        let mem = Mem::new();
        let a = mem.addr();
        hv.profile(a, 64, b"ask").unwrap();
        let mut b = [0u8; 4];
        let reads = |hv: &Hv, off: usize, b: &mut [u8; 4]| hv.load_asking(0, a + off, b, true).unwrap();
        assert_eq!(reads(&hv, 0, &mut b), Reading::Done, "at rest");
        let c = hv.user_begin().unwrap();
        hv.store(c, a + 8, &[5; 4]).unwrap();
        assert_eq!(hv.user_end(c).unwrap(), EndKind::Committed);
        let w = hv.user_begin().unwrap();
        hv.store(w, a + 2, &[7]).unwrap();
        assert_eq!(reads(&hv, 8, &mut b), Reading::Done, "committed bytes");
        assert_eq!(reads(&hv, 3, &mut b), Reading::Done, "beside the active user's byte");
        let want = if exposure { Reading::ReaderNeeded } else { Reading::Done };
        assert_eq!(reads(&hv, 0, &mut b), want, "the active user's byte (exposure {exposure})");
        assert_eq!(b, [0, 0, 7, 0], "the load's bytes are right either way");
        assert_eq!(hv.load_asking(0, a, &mut b, false).unwrap(), Reading::Done, "not asking");
        let (_, r) = hv.load_scalar_asking(0, a + 2, 1, true).unwrap();
        assert_eq!(r, want, "scalar");
        let reader = hv.user_begin().unwrap();
        assert_eq!(hv.load_asking(reader, a, &mut b, true).unwrap(), Reading::Done, "a user never asks");
        hv.crash_suppression(w).unwrap();
        let mut out = [Exposure::default(); 8];
        let (n, _) = hv.exposures(0, &mut out);
        let expect: &[Exposure] =
            if exposure { &[Exposure { reader, writer: w, addr: a as u64 }] } else { &[] };
        assert_eq!(&out[..n], expect, "only the reader that is a user is reported");
        hv.user_end(reader).unwrap();
        hv.user_end(w).unwrap();
    }
}

/// G3 under `cascade` with a store that already landed (a hardware watchpoint's): the storing
/// user is doomed, so `store_landed` enters its fault, whose materialisation of its granules
/// read raw memory holding the landed byte and gave it to another user's head entry; every
/// later load returned it. Found by a review (oracle_prop at 100000 cases), minimised.
#[test]
fn a_doomed_users_landed_store_never_lands_in_another_users_history() {
    let hv = Hv::create(HvConfig { exposure: true, cascade: true, ..HvConfig::default() }).unwrap();
    let mem = Mem::new();
    let base = mem.addr() + 5;
    hv.profile(base, 26, b"landed").unwrap();
    let raw = |o: usize| mem.read(5 + o);
    // SAFETY: inside the 64-byte allocation of `mem`.
    let set_raw = |o: usize, b: u8| unsafe { core::ptr::write_volatile((base + o) as *mut u8, b) };
    let _u0 = hv.user_begin().unwrap();
    let u1 = hv.user_begin().unwrap();
    hv.fill(u1, base, 0, 14).unwrap();
    let u2 = hv.user_begin().unwrap();
    let mut b = [0u8; 2];
    hv.load(u2, base, &mut b).unwrap(); // u2 reads u1's bytes: doomed when u1 faults
    hv.store(u2, base, &[0; 8]).unwrap();
    let u3 = hv.user_begin().unwrap();
    hv.fill(u3, base, 0, 13).unwrap();
    hv.crash_suppression(u1).unwrap();
    hv.fill(u1, base, 0, 1).unwrap();
    hv.store(u3, base, &[0; 4]).unwrap();
    // u2's store of [1, 0, 0, 0] at offset 3 lands, then is journaled.
    let before: Vec<u8> = (3..7).map(raw).collect();
    set_raw(3, 1);
    hv.store_landed(u2, base + 3, &before, &[1, 0, 0, 0]).unwrap();
    assert!(hv.suppressed(u2), "the doom was carried out");
    // Suppressed: its bytes go to its shadow, and memory is put back (as the watch path does).
    for (i, &x) in before.iter().enumerate() {
        set_raw(3 + i, x);
    }
    let mut b = [0u8; 2];
    hv.load(0, base + 2, &mut b).unwrap();
    assert_eq!(b, [0, 0], "a normal load sees u3's zeros, never the doomed u2's byte");
}

/// Reused user slots get fresh ids: an op by a stale id is refused, never applied to the
/// slot's new occupant.
#[test]
fn stale_user_ids_are_refused() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let mem = Mem::new();
    hv.profile(mem.addr(), 16, b"stale").unwrap();
    let mut old = Vec::new();
    // Enough to reuse slots many times over (fewer under Miri, which interprets each one).
    for _ in 0..if cfg!(miri) { 300 } else { 5000 } {
        let u = hv.user_begin().unwrap();
        hv.store(u, mem.addr(), &[1]).unwrap();
        assert_eq!(hv.user_end(u).unwrap(), EndKind::Committed);
        old.push(u);
    }
    let live = hv.user_begin().unwrap();
    for &u in old.iter().step_by(97) {
        assert!(hv.store(u, mem.addr(), &[9]).is_err());
        assert!(hv.user_end(u).is_err());
        assert!(hv.crash_suppression(u).is_err());
    }
    assert_eq!(mem.read(0), 1);
    assert_eq!(hv.user_end(live).unwrap(), EndKind::Committed);
}

/// G4 over a large shadow: a suppressed user's stores to hundreds of granules all come back
/// to it (the shadow grows several times), and none leak to other readers. Runs on a helper
/// thread with a deadline: a broken shadow table used to loop forever here.
#[test]
fn suppressed_user_sees_its_shadow_over_many_granules() {
    const G: usize = if cfg!(miri) { 300 } else { 700 };
    let (tx, rx) = std::sync::mpsc::channel();
    let helper = std::thread::spawn(move || {
        let hv = Hv::create(HvConfig::default()).unwrap();
        let mem: Box<[u64]> = (0..G as u64).collect();
        let base = Box::into_raw(mem) as *mut u64 as usize;
        hv.profile(base, G * 8, b"shadow").unwrap();
        let f = hv.user_begin().unwrap();
        hv.crash_suppression(f).unwrap();
        for g in 0..G {
            let v = 0xF000_0000 + g as u64;
            // Half of them as partial stores, so shadow byte masks merge.
            if g % 2 == 0 {
                hv.store(f, base + 8 * g, &v.to_le_bytes()).unwrap();
            } else {
                hv.store(f, base + 8 * g, &v.to_le_bytes()[..4]).unwrap();
                hv.store(f, base + 8 * g + 4, &v.to_le_bytes()[4..]).unwrap();
            }
        }
        for g in 0..G {
            let mut b = [0u8; 8];
            hv.load(f, base + 8 * g, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), 0xF000_0000 + g as u64, "G4: shadow of granule {g}");
            hv.load(0, base + 8 * g, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), g as u64, "G1: shadow leaked at granule {g}");
        }
        assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
        hv.unprofile(base).unwrap();
        // SAFETY: from Box::into_raw above; the store no longer monitors it.
        drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(base as *mut u64, G)) });
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("shadow stores/loads did not finish (hang?)");
    helper.join().unwrap();
}

/// G6 (in-process host): a wild write into a granule's recovery base, followed by another
/// user's store that creates a history entry (and so reseals the metadata), is detected and
/// reported, never silently restored from.
#[test]
fn a_wild_write_into_the_base_is_reported_not_laundered() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let mem = Mem::new();
    for i in 0..16 {
        mem.write(i, 0x11);
    }
    hv.profile(mem.addr(), 16, b"g6").unwrap();
    // With no history yet, the recovery area is the granule's metadata, `base` first.
    let (meta, _) = hv.recovery_area_of(mem.addr()).unwrap();
    let a = hv.user_begin().unwrap();
    let b = hv.user_begin().unwrap();
    hv.store(a, mem.addr(), &[0xAA; 4]).unwrap();
    // SAFETY: the test plays the paper's Fig. 10 wild writer on the store's own metadata.
    unsafe { core::ptr::write_volatile(meta as *mut u64, 0xDEAD_DEAD_DEAD_DEAD) };
    hv.store(b, mem.addr() + 6, &[0xBB; 2]).unwrap();
    hv.crash_suppression(a).unwrap();
    let mut v = [0u8; 8];
    hv.load(0, mem.addr(), &mut v).unwrap();
    assert!(!v.contains(&0xAD) && !v.contains(&0xDE), "restored from the corrupted base: {v:02x?}");
    assert!(hv.stats().corruptions > 0, "the corruption went unreported");
    assert_eq!(hv.user_end(a).unwrap(), EndKind::Faulted);
    assert_eq!(hv.user_end(b).unwrap(), EndKind::Committed);
}
