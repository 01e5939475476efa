//! Loom model checks of the store's critical sections (hv/src/sync.rs swaps in loom's atomics
//! and makes `StripeLock` yield under `--cfg loom`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p vmsrs-hv --test loom_model --release
//! ```
//!
//! Each model creates its own `Hv` inside `loom::model` (its atomics must be loom objects of
//! that execution) and runs two threads of a few operations each. Monitored memory is plain
//! heap memory outside loom's view; loom runs one thread at a time, so raw accesses behave
//! sequentially consistently and the models check the store's protocol (locks, flags, user
//! states), not the hardware memory model of raw bytes.
//!
//! Models never call `Hv::stats` (it walks all 4096 user slots: too many loom branches).
//!
//! Preemptions are bounded to 3 unless `LOOM_MAX_PREEMPTIONS` says otherwise. Higher bounds
//! multiply the executions, and every execution's `Hv` leaks its entry chunks and range
//! metadata (`HvBox::drop` unmaps only the `Hv` itself): past ~7,000 executions in one
//! process the kernel's map count (vm.max_map_count) runs out, `mmap` fails, a store goes
//! unrecorded and loom reports the model as non-deterministic. To explore deeper, run one
//! model per process, e.g. `LOOM_MAX_PREEMPTIONS=4 … -- --exact load_racing_commit_…`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use vmsrs_hv::{EndKind, Hv, HvBox, HvConfig};

const INIT: u64 = 0x1111_1111_1111_1111;
const X: u64 = 0xAAAA_AAAA_AAAA_AAAA;
const Y: u64 = 0x5555_5555_5555_5555;
const Z: u64 = 0x7777_7777_7777_7777;

/// Monitored memory: two granules of plain heap memory, freed at the end of the execution.
struct Mem(*mut [u64; 2]);

// SAFETY: the memory is only reached by address, through the store or volatile reads.
unsafe impl Send for Mem {}
// SAFETY: as above.
unsafe impl Sync for Mem {}

impl Mem {
    fn addr(&self) -> usize {
        self.0 as usize
    }

    fn raw(&self, g: usize) -> u64 {
        // SAFETY: g < 2 indexes the live allocation.
        unsafe { core::ptr::read_volatile((self.addr() + 8 * g) as *const u64) }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: from Box::into_raw in `setup`, freed once.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

fn setup() -> (Arc<HvBox>, Arc<Mem>) {
    let hv = Hv::create(HvConfig::default()).expect("Hv::create");
    let mem = Mem(Box::into_raw(Box::new([INIT; 2])));
    hv.profile(mem.addr(), 16, b"loom").expect("profile");
    (Arc::new(hv), Arc::new(mem))
}

fn load64(hv: &Hv, u: u64, addr: usize) -> u64 {
    let mut b = [0u8; 8];
    hv.load(u, addr, &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn store64(hv: &Hv, u: u64, addr: usize, v: u64) {
    hv.store(u, addr, &v.to_le_bytes()).unwrap();
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(3, f)
}

/// As [`model`], with a default preemption bound of `bound` (LOOM_MAX_PREEMPTIONS overrides).
fn model_bounded(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(bound);
    }
    // Collection walks a faulty user's log taking a granule lock and, per entry, the pool
    // lock: one execution takes more than loom's default 1000 scheduling points.
    b.max_branches = b.max_branches.max(20_000);
    b.check(f);
}

/// (i) Store + fault by A against a normal user's load of the same granule. B sees A's value
/// only if its load linearizes before A's fault: once B has observed that the fault returned,
/// it must see the initial value. After A's end point raw memory is initial again (G1, G5,
/// G7).
#[test]
fn load_racing_store_and_fault_sees_the_faulty_value_only_before_the_fault() {
    model(|| {
        let (hv, mem) = setup();
        let faulted = Arc::new(AtomicBool::new(false));
        let a = hv.user_begin().unwrap();
        let ta = {
            let (hv, mem, faulted) = (hv.clone(), mem.clone(), faulted.clone());
            thread::spawn(move || {
                store64(&hv, a, mem.addr(), X);
                hv.crash_suppression(a).unwrap();
                faulted.store(true, SeqCst);
            })
        };
        let tb = {
            let (hv, mem, faulted) = (hv.clone(), mem.clone(), faulted.clone());
            thread::spawn(move || {
                let b = hv.user_begin().unwrap();
                let after_fault = faulted.load(SeqCst);
                let v = load64(&hv, b, mem.addr());
                assert!(v == INIT || v == X, "G5: torn or foreign value {v:#x}");
                if after_fault {
                    assert_eq!(v, INIT, "G1: load after the fault returned the faulty user's value");
                }
                assert_eq!(hv.user_end(b).unwrap(), EndKind::Committed);
            })
        };
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(load64(&hv, 0, mem.addr()), INIT);
        assert_eq!(hv.user_end(a).unwrap(), EndKind::Faulted);
        assert_eq!(mem.raw(0), INIT, "G7: raw memory after A's end point");
        assert_eq!(hv.faulted_now(), 0);
    });
}

/// (ii) Fault entry of A against a concurrent store by a normal user B to the same granule
/// (B overwrites part of A's bytes): afterwards B's bytes are visible, A's are not, and B's
/// store survives A's collection (G1, G2, byte masks).
#[test]
fn store_racing_fault_entry_survives_and_hides_the_faulty_bytes() {
    model(|| {
        let (hv, mem) = setup();
        let a = hv.user_begin().unwrap();
        store64(&hv, a, mem.addr(), X);
        let ta = {
            let hv = hv.clone();
            thread::spawn(move || hv.crash_suppression(a).unwrap())
        };
        let tb = {
            let (hv, mem) = (hv.clone(), mem.clone());
            thread::spawn(move || {
                let b = hv.user_begin().unwrap();
                hv.store(b, mem.addr() + 2, &[0x55, 0x55]).unwrap();
                let v = load64(&hv, b, mem.addr()).to_le_bytes();
                assert_eq!(&v[2..4], &[0x55, 0x55], "B does not see its own store");
                assert!(v[..2] == [0xAA, 0xAA] || v[..2] == [0x11, 0x11], "{v:02x?}");
                assert_eq!(hv.user_end(b).unwrap(), EndKind::Committed);
            })
        };
        ta.join().unwrap();
        tb.join().unwrap();
        let want = u64::from_le_bytes([0x11, 0x11, 0x55, 0x55, 0x11, 0x11, 0x11, 0x11]);
        assert_eq!(load64(&hv, 0, mem.addr()), want, "after A's fault");
        assert_eq!(hv.user_end(a).unwrap(), EndKind::Faulted);
        assert_eq!(mem.raw(0), want, "after A's end point");
    });
}

/// (iii) A commit fold against a concurrent load of the granule it folds, while another user
/// F (faulted) has a newer entry there, so the load takes the restoring path: the reader
/// always sees the committing user's value, before and after the fold (G2, G3, G5).
#[test]
fn load_racing_commit_fold_always_sees_the_committed_value() {
    model(|| {
        let (hv, mem) = setup();
        let c = hv.user_begin().unwrap();
        let f = hv.user_begin().unwrap();
        store64(&hv, c, mem.addr(), X);
        store64(&hv, f, mem.addr(), Y);
        hv.crash_suppression(f).unwrap();
        let tc = {
            let hv = hv.clone();
            thread::spawn(move || assert_eq!(hv.user_end(c).unwrap(), EndKind::Committed))
        };
        let tb = {
            let (hv, mem) = (hv.clone(), mem.clone());
            thread::spawn(move || {
                let b = hv.user_begin().unwrap();
                assert_eq!(load64(&hv, b, mem.addr()), X, "load during the fold");
                assert_eq!(load64(&hv, 0, mem.addr()), X, "second load");
                assert_eq!(hv.user_end(b).unwrap(), EndKind::Committed);
            })
        };
        tc.join().unwrap();
        tb.join().unwrap();
        assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
        assert_eq!(mem.raw(0), X);
    });
}

/// (iv) The faulty user's end point (eager restoration + removal of its entries) against a
/// normal user's store to the same granule: the normal store is never undone (G2, G7).
#[test]
fn store_racing_collection_is_never_undone() {
    // Collection takes a granule lock and a pool lock per entry: at 3 preemptions the
    // exploration takes over ten minutes; 2 covers every ordering of the two critical
    // sections against each other.
    model_bounded(2, || {
        let (hv, mem) = setup();
        let f = hv.user_begin().unwrap();
        store64(&hv, f, mem.addr(), X);
        store64(&hv, f, mem.addr() + 8, X);
        hv.crash_suppression(f).unwrap();
        let tf = {
            let hv = hv.clone();
            thread::spawn(move || assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted))
        };
        let tb = {
            let (hv, mem) = (hv.clone(), mem.clone());
            thread::spawn(move || {
                let b = hv.user_begin().unwrap();
                hv.store(b, mem.addr() + 4, &[0x55; 8]).unwrap();
                let mut v = [0u8; 16];
                hv.load(b, mem.addr(), &mut v).unwrap();
                assert_eq!(
                    v,
                    [
                        0x11, 0x11, 0x11, 0x11, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x11, 0x11,
                        0x11, 0x11
                    ]
                );
                assert_eq!(hv.user_end(b).unwrap(), EndKind::Committed);
            })
        };
        tf.join().unwrap();
        tb.join().unwrap();
        assert_eq!(mem.raw(0), u64::from_le_bytes([0x11, 0x11, 0x11, 0x11, 0x55, 0x55, 0x55, 0x55]));
        assert_eq!(mem.raw(1), u64::from_le_bytes([0x55, 0x55, 0x55, 0x55, 0x11, 0x11, 0x11, 0x11]));
    });
}

/// (v) The store fast path (a user re-storing a granule it heads writes raw memory and marks
/// the entry stale, `DIRTY`) against another user's fault entry and a restoring load of the
/// same granule: the restoration brings the head up to date from raw memory first, so the
/// normal user's newest value is what everyone sees, never the faulty user's (G1, G2, G3).
#[test]
fn fast_path_store_racing_fault_and_restoration_keeps_the_newest_normal_value() {
    // Two preemptions order each critical section against the other both ways; three
    // triples the run for no new interleaving of them.
    model_bounded(2, || {
        let (hv, mem) = setup();
        let f = hv.user_begin().unwrap();
        let n = hv.user_begin().unwrap();
        store64(&hv, f, mem.addr(), X);
        store64(&hv, n, mem.addr(), Y);
        let tn = {
            let (hv, mem) = (hv.clone(), mem.clone());
            thread::spawn(move || {
                store64(&hv, n, mem.addr(), Z);
                assert_eq!(load64(&hv, n, mem.addr()), Z, "n sees its own newest store");
            })
        };
        let tf = {
            let (hv, mem) = (hv.clone(), mem.clone());
            thread::spawn(move || {
                hv.crash_suppression(f).unwrap();
                let v = load64(&hv, 0, mem.addr());
                assert!(v == Y || v == Z, "G1/G3: {v:#x} after F's fault");
            })
        };
        tn.join().unwrap();
        tf.join().unwrap();
        assert_eq!(load64(&hv, 0, mem.addr()), Z);
        assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
        assert_eq!(mem.raw(0), Z, "G2: F's collection keeps n's newest store");
        assert_eq!(hv.user_end(n).unwrap(), EndKind::Committed);
        assert_eq!(mem.raw(0), Z);
    });
}

/// (vi) The short commit (the committing user's entry is the granule's only one: its bytes
/// go into `base` from raw memory) against another user that stores to the same granule and
/// faults: readers see the committing user's value whichever runs first (G2, G3, G7).
#[test]
fn sole_entry_commit_racing_a_store_and_fault_keeps_the_committed_value() {
    // Two preemptions order each critical section against the other both ways; three
    // triples the run for no new interleaving of them.
    model_bounded(2, || {
        let (hv, mem) = setup();
        let c = hv.user_begin().unwrap();
        store64(&hv, c, mem.addr(), X);
        store64(&hv, c, mem.addr(), Y);
        let tc = {
            let hv = hv.clone();
            thread::spawn(move || assert_eq!(hv.user_end(c).unwrap(), EndKind::Committed))
        };
        let tf = {
            let (hv, mem) = (hv.clone(), mem.clone());
            thread::spawn(move || {
                let f = hv.user_begin().unwrap();
                store64(&hv, f, mem.addr(), Z);
                hv.crash_suppression(f).unwrap();
                assert_eq!(load64(&hv, 0, mem.addr()), Y, "after F's fault");
                assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
            })
        };
        tc.join().unwrap();
        tf.join().unwrap();
        assert_eq!(load64(&hv, 0, mem.addr()), Y);
        assert_eq!(mem.raw(0), Y);
    });
}

/// (vii) A user slot's entry pool: an entry released by another thread (onto the slot's
/// remote list) against the owner allocating past its own free list. No entry is handed out
/// twice, and the released one is never lost: the owner gets it back.
#[test]
fn remote_release_racing_owner_allocation_never_loses_or_duplicates_an_entry() {
    use vmsrs_hv::history::{Entries, LocalPool};
    struct Space(*mut Entries);
    // SAFETY: the pointer is to a zeroed, initialised Entries shared like any Sync value.
    unsafe impl Send for Space {}
    // SAFETY: as above.
    unsafe impl Sync for Space {}
    impl Drop for Space {
        fn drop(&mut self) {
            // SAFETY: allocated below with this layout; no entry is used after.
            unsafe {
                (*self.0).unmap_all();
                std::alloc::dealloc(self.0 as *mut u8, std::alloc::Layout::new::<Entries>());
            }
        }
    }
    /// The owner's allocation: this test's main thread and then `ta` are the pool's only
    /// owner, one after the other (ordered by spawn and join).
    fn alloc(space: &Space, pool: &LocalPool) -> u32 {
        // SAFETY: see above; the Entries outlives the call.
        unsafe { pool.alloc(&*space.0, 0) }.unwrap()
    }
    model(|| {
        // SAFETY: Entries::init needs zeroed memory of its size, which alloc_zeroed gives.
        let space = unsafe {
            let p = std::alloc::alloc_zeroed(std::alloc::Layout::new::<Entries>()) as *mut Entries;
            Entries::init(p);
            Arc::new(Space(p))
        };
        let pool = Arc::new(LocalPool::new());
        let first = alloc(&space, &pool);
        let mut held = vec![first];
        while held.len() < 256 {
            held.push(alloc(&space, &pool));
        }
        let tb = {
            let (space, pool) = (space.clone(), pool.clone());
            // SAFETY: the Entries outlives every thread (the Arc).
            thread::spawn(move || pool.release_remote(unsafe { &*space.0 }, first))
        };
        let ta = {
            let (space, pool) = (space.clone(), pool.clone());
            let held = held.clone();
            thread::spawn(move || {
                let x = alloc(&space, &pool);
                assert!(x == first || !held.contains(&x), "entry {x} handed out twice");
                x
            })
        };
        tb.join().unwrap();
        let x = ta.join().unwrap();
        if x != first {
            // Not taken yet: it waits on the remote list, and comes back once the owner's
            // own list (the rest of the new chunk) runs dry.
            let mut got = false;
            for _ in 0..256 {
                if alloc(&space, &pool) == first {
                    got = true;
                    break;
                }
            }
            assert!(got, "the remotely released entry was lost");
        }
    });
}
