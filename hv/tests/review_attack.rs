//! Regression tests from the hostile review of the store's hot path (fast path,
//! DIRTY/materialize, sole-head commit, per-slot pools, hot/cold metadata split). The `d*`
//! tests each failed against the store before the fix their comment names; the rest are
//! randomised searches against the oracle and a thread stress that found nothing. Each test
//! states the guarantee it checks.
#![cfg(not(loom))]

use core::mem::size_of;
use vmsrs_hv::oracle::{OState, Oracle};
use vmsrs_hv::ranges::{ColdMeta, GranuleMeta};
use vmsrs_hv::{EndKind, Hv, HvConfig, UserId};

/// Monitored memory reached by address only.
struct Memory {
    p: *mut u64,
    words: usize,
}

impl Memory {
    fn new(words: usize, init: u64) -> Self {
        let b: Box<[u64]> = vec![init; words].into_boxed_slice();
        Memory { p: Box::into_raw(b) as *mut u64, words }
    }
    fn addr(&self) -> usize {
        self.p as usize
    }
    fn raw(&self, off: usize) -> u8 {
        assert!(off < self.words * 8);
        // SAFETY: inside the allocation.
        unsafe { core::ptr::read_volatile((self.addr() + off) as *const u8) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: from Box::into_raw in `new`, freed once.
        drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(self.p, self.words)) });
    }
}

fn load8(hv: &Hv, u: UserId, a: usize) -> u64 {
    let mut v = [0u8; 8];
    hv.load(u, a, &mut v).unwrap();
    u64::from_le_bytes(v)
}

/// The cold metadata record of granule `g` (must be called while `g` has no history, so that
/// `recovery_area_of` returns it; its address never changes afterwards).
fn cold_of(hv: &Hv, g: usize) -> *mut ColdMeta {
    let (p, len) = hv.recovery_area_of(g).unwrap();
    assert_eq!(len, size_of::<ColdMeta>(), "granule without history");
    p as *mut ColdMeta
}

/// The hot record (flags word, hwriter word) of the granule whose cold record is `cold`.
fn hot_of(cold: *mut ColdMeta) -> *mut u32 {
    let c = cold as usize;
    (c - size_of::<GranuleMeta>()) as *mut u32
}

/// Index of the newest entry of granule `g` (from the entry's address: the test needs an
/// index to plant; entries are 32 bytes, indices are 1-based within 256-entry chunks, and the
/// two granules used below get entries from the same fresh chunk of the same user slot).
fn entry_ptr(hv: &Hv, g: usize) -> usize {
    let (p, len) = hv.recovery_area_of(g).unwrap();
    assert_eq!(len, 32, "granule with history: its newest entry");
    p as usize
}

// ---------------------------------------------------------------------------------------
// D1: `materialize` follows the cold `head` link without checking the metadata seal first,
// and reseals whatever entry it finds there with this granule's raw bytes. A wild write
// into granule A's cold `head` that points it at user u's (intact) entry in granule B makes
// the next locked operation on A copy A's raw bytes into B's entry and reseal it: B's
// recovery data is laundered, and B is later *restored from it* (G6, and G3 at B).
// ---------------------------------------------------------------------------------------
#[test]
fn d1_materialize_through_a_forged_head_launders_another_granules_entry() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let m = Memory::new(4, 0x1111_1111_1111_1111);
    let (a, b) = (m.addr(), m.addr() + 8);
    hv.profile(m.addr(), 32, b"t").unwrap();
    let cold_a = cold_of(&hv, a);
    let u = hv.user_begin().unwrap();
    let f = hv.user_begin().unwrap();
    let n = hv.user_begin().unwrap();
    // B: u's entry (0xBB), then F's entry on top.
    hv.store(u, b, &[0xBB; 8]).unwrap();
    let eu_ptr = entry_ptr(&hv, b);
    hv.store(f, b, &[0xFF; 8]).unwrap();
    // A: u's entry, then a fast-path store (DIRTY).
    hv.store(u, a, &[0xA0; 8]).unwrap();
    let ea_ptr = entry_ptr(&hv, a);
    hv.store(u, a, &[0xAA; 8]).unwrap();
    // The wild write: A's head now names u's entry in B (same pool chunk: index by distance).
    // SAFETY: the test plays a wild writer on the store's metadata.
    unsafe {
        let head_a = core::ptr::addr_of_mut!((*cold_a).head) as *mut u32;
        let idx_a = head_a.read_volatile();
        let delta = (eu_ptr as isize - ea_ptr as isize) / 32;
        head_a.write_volatile((idx_a as isize + delta) as u32);
    }
    // Any locked operation on A: here an anonymous store of one byte.
    hv.store(0, a, &[0x01]).unwrap();
    // F faults: B is restored from its history; u's store (0xBB) is the G3 value of B.
    hv.crash_suppression(f).unwrap();
    let got = load8(&hv, n, b);
    let st = hv.stats();
    eprintln!(
        "corruptions={} last_corruption={:#x} (A={a:#x}, B={b:#x})",
        st.corruptions, st.last_corruption
    );
    assert_eq!(
        got, 0xBBBB_BBBB_BBBB_BBBB,
        "B must be restored to u's store, not to bytes laundered in from A"
    );
}

/// The D2 setup: user u writes whole granules A then B (u's log order: A first), then a wild
/// write points A's cold `head` at u's entry of B.
struct ForgedHead {
    hv: vmsrs_hv::HvBox,
    m: Memory,
    a: usize,
    b: usize,
    u: UserId,
}

fn forge_head_of_a_to_bs_entry() -> ForgedHead {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let m = Memory::new(4, 0x1111_1111_1111_1111);
    let (a, b) = (m.addr(), m.addr() + 8);
    hv.profile(m.addr(), 32, b"t").unwrap();
    let cold_a = cold_of(&hv, a);
    let u = hv.user_begin().unwrap();
    hv.store(u, a, &[0xAA; 8]).unwrap();
    let ea_ptr = entry_ptr(&hv, a);
    hv.store(u, b, &[0xBB; 8]).unwrap();
    let eb_ptr = entry_ptr(&hv, b);
    // SAFETY: the test plays a wild writer on A's cold metadata (its head index).
    unsafe {
        let head_a = core::ptr::addr_of_mut!((*cold_a).head) as *mut u32;
        let idx_a = head_a.read_volatile();
        let delta = (eb_ptr as isize - ea_ptr as isize) / 32;
        head_a.write_volatile((idx_a as isize + delta) as u32);
    }
    ForgedHead { hv, m, a, b, u }
}

// ---------------------------------------------------------------------------------------
// D2: `fold_sole_head` (commit shortcut) skips the metadata seal when the entry covers the
// whole granule and never checks the entry's own seal. A wild write into A's cold `head`
// pointing at u's sole entry of B is then resealed into A (laundered, never reported at A),
// B's live entry is released while B still links it, and A's own entry leaks.
// ---------------------------------------------------------------------------------------
#[test]
fn d2_sole_head_commit_launders_a_forged_head_and_leaks_the_real_entry() {
    let ForgedHead { hv, m: _m, a, b, u } = forge_head_of_a_to_bs_entry();
    assert_eq!(hv.user_end(u).unwrap(), EndKind::Committed);
    let st = hv.stats();
    eprintln!("{st:?}");
    assert!(
        st.corruptions >= 1 && st.last_corruption == a as u64,
        "the damage is in A's metadata and must be reported at A (got corruptions={}, last={:#x}, A={a:#x}, B={b:#x})",
        st.corruptions,
        st.last_corruption
    );
}

#[test]
fn d2b_a_forged_head_at_commit_is_reported_and_frees_nothing_else() {
    let ForgedHead { hv, m: _m, a, b: _, u } = forge_head_of_a_to_bs_entry();
    assert_eq!(hv.user_end(u).unwrap(), EndKind::Committed);
    let st = hv.stats();
    // A's own entry is reachable only through A's damaged head: it is kept, never freed
    // through a damaged link (which could free another granule's live entry, see d2c), and
    // the damage is reported at A. Every other entry is back in its pool.
    assert!(st.corruptions >= 1 && st.last_corruption == a as u64, "{st:?}");
    assert!(st.history_entries <= 1, "only the damaged granule's entry may stay: {st:?}");
}

// ---------------------------------------------------------------------------------------
// D3: the commit shortcut takes the bytes from raw memory "without reading or verifying the
// entry": a wild write into the sole head entry is silently dropped, never reported (G6:
// corruption is detected and reported). The same damage is reported if the user faults
// instead (integrity.rs), so whether G6 reports it depends on how the user ends.
// ---------------------------------------------------------------------------------------
#[test]
fn d3_wild_write_into_a_sole_entry_is_not_reported_at_commit() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let m = Memory::new(4, 0x1111_1111_1111_1111);
    let a = m.addr();
    hv.profile(a, 32, b"t").unwrap();
    let u = hv.user_begin().unwrap();
    hv.store(u, a, &[0x22; 8]).unwrap();
    let (area, _) = hv.recovery_area_of(a).unwrap();
    // SAFETY: wild write into the entry's bytes word.
    unsafe { (area as *mut u64).add(1).write_volatile(0xDEAD_DEAD_DEAD_DEAD) };
    assert_eq!(hv.user_end(u).unwrap(), EndKind::Committed);
    assert_eq!(hv.stats().corruptions, 1, "the damaged entry is used (folded) without being checked");
}

// ---------------------------------------------------------------------------------------
// D4: the hot hint is unsealed and the fast path trusts it without looking at the head
// entry: a wild write into `hwriter` (+ head-mask bits) naming user n makes n's stores to a
// granule n never recorded go straight to raw memory, unlogged. When n faults, nothing marks
// that granule, and every other user keeps loading n's bytes (G1), with no corruption ever
// reported (G6) because no locked operation runs on the granule.
// ---------------------------------------------------------------------------------------
#[test]
fn d4_forged_hint_lets_a_faulting_users_store_escape_containment() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let m = Memory::new(4, 0x1111_1111_1111_1111);
    let a = m.addr();
    hv.profile(a, 32, b"t").unwrap();
    let cold_a = cold_of(&hv, a);
    let hot_a = hot_of(cold_a);
    let n = hv.user_begin().unwrap();
    let r = hv.user_begin().unwrap();
    // SAFETY: wild write into A's hot record (head-mask bits of flags, and hwriter).
    unsafe {
        hot_a.write_volatile(hot_a.read_volatile() | 0xFF << 8);
        hot_a.add(1).write_volatile(n as u32);
    }
    hv.store(n, a, &[0x55; 8]).unwrap();
    hv.crash_suppression(n).unwrap();
    let got = load8(&hv, r, a);
    let st = hv.stats();
    assert!(
        got == 0x1111_1111_1111_1111 || st.corruptions > 0,
        "G1: user r loads faulted n's bytes {got:#x} and nothing was reported ({st:?})"
    );
}

// ---------------------------------------------------------------------------------------
// Randomised single-thread schedules against the oracle, covering what oracle_prop does not:
// anonymous stores (u = 0), user_begin_after (slot reuse with a warm pool), two ranges
// sharing a granule, many users. Checks every load (G3/G4), raw memory at quiescence, and
// history_entries / users_live at rest.
// ---------------------------------------------------------------------------------------
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ANON: u64 = u64::MAX - 7;

fn fuzz_one(seed: u64, split: Option<usize>, start: usize, reprofile: bool) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let hv = Hv::create(HvConfig::default()).unwrap();
    let m = Memory::new(8, 0);
    let len = 40usize;
    let base = m.addr() + start;
    let init: Vec<u8> = (0..len).map(|i| m.raw(start + i)).collect();
    match split {
        Some(k) => {
            hv.profile(base, k, b"a").unwrap();
            hv.profile(base + k, len - k, b"b").unwrap();
        }
        None => {
            hv.profile(base, len, b"a").unwrap();
        }
    }
    let mut or = Oracle::new(&init);
    let nslots = 4;
    let mut slots: Vec<Option<UserId>> = vec![None; nslots];
    let mut last: Vec<UserId> = vec![0; nslots];
    let mut trace = Vec::new();
    let steps = 80;
    for _ in 0..steps {
        let op = rng.below(12);
        let i = rng.below(nslots as u64) as usize;
        let mut user = |slots: &mut Vec<Option<UserId>>, or: &mut Oracle, trace: &mut Vec<String>| {
            if let Some(u) = slots[i] {
                return u;
            }
            let u =
                if last[i] != 0 { hv.user_begin_after(last[i]).unwrap() } else { hv.user_begin().unwrap() };
            last[i] = u;
            or.begin(u);
            slots[i] = Some(u);
            trace.push(format!("begin {i} -> {u:#x}"));
            u
        };
        match op {
            0..=3 => {
                let anon = rng.below(5) == 0;
                let u = if anon { 0 } else { user(&mut slots, &mut or, &mut trace) };
                let w = [1usize, 2, 3, 4, 8, 5][rng.below(6) as usize];
                let off = rng.below((len - w + 1) as u64) as usize;
                let bytes: Vec<u8> = (0..w).map(|_| rng.next() as u8).collect();
                let scalar = matches!(w, 1 | 2 | 4 | 8) && rng.below(2) == 0;
                trace.push(format!("store {u:#x} off={off} {bytes:02x?} scalar={scalar}"));
                if scalar {
                    let mut word = [0u8; 8];
                    word[..w].copy_from_slice(&bytes);
                    hv.store_scalar(u, base + off, u64::from_le_bytes(word), w).unwrap();
                } else {
                    hv.store(u, base + off, &bytes).unwrap();
                }
                or.store(if anon { ANON } else { u }, off, &bytes);
            }
            4 | 5 => {
                let u = if rng.below(4) == 0 { 0 } else { user(&mut slots, &mut or, &mut trace) };
                let w = 1 + rng.below(12) as usize;
                let off = rng.below((len - w + 1) as u64) as usize;
                let mut got = vec![0u8; w];
                hv.load(u, base + off, &mut got).unwrap();
                let want = or.load(if u == 0 { ANON } else { u }, off, w);
                trace.push(format!("load {u:#x} off={off} -> {got:02x?}"));
                if got != want {
                    return Err(format!(
                        "load mismatch: got {got:02x?} want {want:02x?}\n{}",
                        trace.join("\n")
                    ));
                }
            }
            6 => {
                let u = user(&mut slots, &mut or, &mut trace);
                trace.push(format!("fault {u:#x}"));
                hv.crash_suppression(u).unwrap();
                or.fault(u);
            }
            7 | 8 => {
                if let Some(u) = slots[i] {
                    trace.push(format!("end {u:#x}"));
                    hv.user_end(u).unwrap();
                    or.end(u);
                    slots[i] = None;
                }
            }
            9 => {
                let f = rng.below(4) as u8;
                let w = 1 + rng.below(16) as usize;
                let off = rng.below((len - w + 1) as u64) as usize;
                let u = if rng.below(3) == 0 { 0 } else { user(&mut slots, &mut or, &mut trace) };
                trace.push(format!("fill {u:#x} off={off} w={w} byte={f}"));
                hv.fill(u, base + off, f, w).unwrap();
                or.store(if u == 0 { ANON } else { u }, off, &vec![f; w]);
            }
            10 if reprofile && hv.faulted_now() == 0 && rng.below(3) == 0 => {
                // Unprofile while history exists, then profile again: the old stores are
                // final (raw memory holds their G3 value); a fresh oracle starts from there.
                trace.push("unprofile+profile".into());
                match split {
                    Some(k) => {
                        hv.unprofile(base).unwrap();
                        hv.unprofile(base + k).unwrap();
                        hv.profile(base, k, b"a").unwrap();
                        hv.profile(base + k, len - k, b"b").unwrap();
                    }
                    None => {
                        hv.unprofile(base).unwrap();
                        hv.profile(base, len, b"a").unwrap();
                    }
                }
                let raw: Vec<u8> = (0..len).map(|o| m.raw(start + o)).collect();
                if raw != or.expected_raw() {
                    return Err(format!(
                        "unprofile: raw {raw:02x?} != {:02x?}\n{}",
                        or.expected_raw(),
                        trace.join("\n")
                    ));
                }
                or = Oracle::new(&raw);
                for u in slots.iter().flatten() {
                    or.begin(*u);
                }
            }
            _ => {
                let w = 1 + rng.below(16) as usize;
                let off = rng.below((len - w + 1) as u64) as usize;
                hv.restore_range(base + off, w);
            }
        }
        if hv.faulted_now() == 0 {
            let raw: Vec<u8> = (0..len).map(|o| m.raw(start + o)).collect();
            if raw != or.expected_raw() {
                return Err(format!(
                    "raw {raw:02x?} != oracle {:02x?}\n{}",
                    or.expected_raw(),
                    trace.join("\n")
                ));
            }
        }
    }
    for s in slots.iter_mut() {
        if let Some(u) = s.take() {
            hv.user_end(u).unwrap();
            or.end(u);
        }
    }
    let st = hv.stats();
    let raw: Vec<u8> = (0..len).map(|o| m.raw(start + o)).collect();
    if raw != or.expected_raw() {
        return Err(format!(
            "at rest raw {raw:02x?} != oracle {:02x?}\n{}",
            or.expected_raw(),
            trace.join("\n")
        ));
    }
    // No wild write happens here: a corruption report is a false alarm (it once came from
    // unprofile's second pass checking a seal its first pass had left stale).
    if st.history_entries != 0 || st.users_live != 0 || st.faulted_now != 0 || st.corruptions != 0 {
        return Err(format!("at rest: {st:?}\n{}", trace.join("\n")));
    }
    let _ = OState::Active;
    Ok(())
}

#[test]
fn fuzz_anonymous_stores_slot_reuse_and_shared_granules() {
    let n: u64 = std::env::var("REVIEW_FUZZ").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    for seed in 1..=n {
        let split = match seed % 3 {
            0 => None,
            1 => Some(13),
            _ => Some(8 + (seed as usize % 20)),
        };
        let start = (seed as usize / 3) % 8;
        if let Err(e) = fuzz_one(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), split, start, seed % 2 == 0) {
            panic!("seed {seed} split {split:?} start {start}: {e}");
        }
    }
}

/// D2 continued: the entry `fold_sole_head` released while B still linked it is released a
/// second time when B's range is unprofiled (retire walks the stale link, and with it the
/// slot's whole free list), so the slot's pool later hands the same entry out twice: two
/// live granules share one history entry. (`history_entries` meanwhile reads 0.)
#[test]
fn d2c_forged_head_at_commit_ends_in_a_double_allocated_entry() {
    let ForgedHead { hv, m, a: _, b: _, u } = forge_head_of_a_to_bs_entry();
    assert_eq!(hv.user_end(u).unwrap(), EndKind::Committed);
    hv.unprofile(m.addr()).unwrap();
    eprintln!("after unprofile: {:?}", hv.stats());
    // The next user of the same slot allocates history for 600 granules.
    let big = Memory::new(600, 0);
    hv.profile(big.addr(), 600 * 8, b"big").unwrap();
    let w = hv.user_begin_after(u).unwrap();
    let mut seen = std::collections::HashMap::new();
    for i in 0..600 {
        let g = big.addr() + 8 * i;
        hv.store(w, g, &(i as u64).to_le_bytes()).unwrap();
        let (p, _) = hv.recovery_area_of(g).unwrap();
        if let Some(j) = seen.insert(p as usize, i) {
            panic!("entry {p:?} handed out twice: granule {j} and granule {i} share it");
        }
    }
}

/// Threads: users storing whole granules (the fast path after the first store), faulting or
/// committing at random, beside an anonymous writer and restoring readers. G1: no load ever
/// returns the id-tagged value of a user that had faulted before the load began; at rest
/// every entry is back and no user is live.
#[test]
fn threads_fast_path_vs_anonymous_stores_faults_and_restorations() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
    use std::sync::Mutex;
    let hv = Hv::create(HvConfig::default()).unwrap();
    const G: usize = 4;
    let m = Memory::new(G, 0);
    hv.profile(m.addr(), G * 8, b"s").unwrap();
    let faulted: Mutex<std::collections::HashSet<u64>> = Mutex::new(Default::default());
    let stop = AtomicBool::new(false);
    let anon_seq = AtomicU64::new(0);
    let base = m.addr();
    let hv: &Hv = &hv;
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let faulted = &faulted;
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678 + t * 77);
                let mut last = 0;
                for _ in 0..4000 {
                    let u =
                        if last == 0 { hv.user_begin().unwrap() } else { hv.user_begin_after(last).unwrap() };
                    last = u;
                    let n = 1 + rng.below(20);
                    for _ in 0..n {
                        let g = base + 8 * rng.below(G as u64) as usize;
                        if rng.below(2) == 0 {
                            hv.store_scalar(u, g, u, 8).unwrap();
                        } else {
                            hv.store(u, g, &u.to_le_bytes()).unwrap();
                        }
                    }
                    if rng.below(3) == 0 {
                        hv.crash_suppression(u).unwrap();
                        faulted.lock().unwrap().insert(u);
                        // the suppressed user keeps storing into its shadow
                        hv.store(u, base, &u.to_le_bytes()).unwrap();
                        assert_eq!(hv.user_end(u).unwrap(), EndKind::Faulted);
                    } else {
                        assert_eq!(hv.user_end(u).unwrap(), EndKind::Committed);
                    }
                }
            });
        }
        {
            let stop = &stop;
            let anon_seq = &anon_seq;
            s.spawn(move || {
                let mut rng = Rng(99);
                while !stop.load(Relaxed) {
                    let g = base + 8 * rng.below(G as u64) as usize;
                    // Full anonymous stores carry all-ones low bits, which no user id of this
                    // test has, so only a partial store (high half) can leave a user's low
                    // half beside the 0xA tag.
                    let v = 0xA000_0000_FFFF_FFFF | (anon_seq.fetch_add(1, Relaxed) & 0x0FFF_FFFF) << 32;
                    if rng.below(2) == 0 {
                        hv.store(0, g, &v.to_le_bytes()).unwrap();
                    } else {
                        // a partial anonymous store of the high half keeps the tag recognisable
                        hv.store(0, g + 4, &((v >> 32) as u32).to_le_bytes()).unwrap();
                    }
                }
            });
        }
        for r in 0..2u64 {
            let faulted = &faulted;
            let stop = &stop;
            s.spawn(move || {
                let mut rng = Rng(7 + r);
                while !stop.load(Relaxed) {
                    let g = base + 8 * rng.below(G as u64) as usize;
                    let before: std::collections::HashSet<u64> = faulted.lock().unwrap().clone();
                    let v =
                        if rng.below(2) == 0 { load8(hv, 0, g) } else { hv.load_scalar(0, g, 8).unwrap() };
                    let lo = v & 0xFFFF_FFFF;
                    for &f in &before {
                        assert!(
                            v != f && !(v >> 60 == 0xA && lo == f & 0xFFFF_FFFF && f >> 32 == 0),
                            "G1: a load returned {v:#x}, bytes of user {f:#x}, faulted before the load"
                        );
                    }
                    if rng.below(8) == 0 {
                        hv.restore_range(g, 8);
                    }
                }
            });
        }
        // let the user threads finish, then stop the others
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let st = hv.stats();
            if st.users_begun >= 3 * 4000 && st.users_live == 0 {
                break;
            }
        }
        stop.store(true, Relaxed);
    });
    let st = hv.stats();
    assert_eq!((st.history_entries, st.users_live, st.faulted_now), (0, 0, 0), "{st:?}");
    for i in 0..G {
        let v = u64::from_le_bytes(core::array::from_fn(|k| m.raw(8 * i + k)));
        assert!(!faulted.lock().unwrap().contains(&v), "G1/G7: granule {i} holds faulted {v:#x} at rest");
    }
}

/// D3 variant: with a whole-granule sole entry, the commit shortcut skips the metadata seal,
/// so a wild write into the granule's cold record (here its `sum`) is resealed unreported.
#[test]
fn d3b_wild_write_into_cold_meta_is_resealed_unreported_at_commit() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let m = Memory::new(4, 0x1111_1111_1111_1111);
    let a = m.addr();
    hv.profile(a, 32, b"t").unwrap();
    let cold = cold_of(&hv, a);
    let u = hv.user_begin().unwrap();
    hv.store(u, a, &[0x22; 8]).unwrap();
    // SAFETY: wild write into A's cold metadata (base and sum).
    unsafe {
        (core::ptr::addr_of_mut!((*cold).base) as *mut u64).write_volatile(0xDEAD_BEEF);
        (core::ptr::addr_of_mut!((*cold).sum) as *mut u64).write_volatile(0x0BAD_5EA1);
    }
    assert_eq!(hv.user_end(u).unwrap(), EndKind::Committed);
    assert_eq!(hv.stats().corruptions, 1, "the damaged metadata is resealed without being reported");
}
