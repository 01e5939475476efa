//! G6 in the in-process host: a wild write into recovery data is detected and reported, and
//! recovery never restores from the damaged data, whichever path touches it first.
#![cfg(not(loom))]

use core::mem::size_of;
use vmsrs_hv::ranges::{ColdMeta, GranuleMeta, RECORD};
use vmsrs_hv::{EndKind, Hv, HvConfig};

/// Monitored memory that outlives the store's use of it, reached by address only (a pointer
/// derived from a shared borrow would let the store only read it; Miri checks this).
struct Memory(*mut [u64; 4]);

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: the pointer came from Box::into_raw in `memory` and is freed once.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

fn memory() -> (Memory, usize) {
    let p = Box::into_raw(Box::new([0x1111_1111_1111_1111u64; 4]));
    (Memory(p), p as usize)
}

/// Damage the `bytes` word (offset 8) of the newest history entry of the granule at `addr`.
fn wild_write_into_entry(hv: &Hv, addr: usize) {
    let (area, len) = hv.recovery_area_of(addr).expect("monitored");
    assert_eq!(len, 32, "the recovery area of a written granule is its newest entry");
    // SAFETY: `area` is a live history entry of this store; the test plays a wild writer.
    unsafe { (area as *mut u64).add(1).write(0xDEAD_DEAD_DEAD_DEAD) };
}

/// The same user stores again after the damage: that store takes the fast path (its head
/// entry is brought up to date later, from raw memory), and the damage must be found when
/// the entry is next used — here the fault entry moving the newest bytes into it — and never
/// resealed (laundered) or restored from.
#[test]
fn a_wild_write_into_an_entry_is_reported_before_its_next_use_not_laundered() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let (_m, a) = memory();
    hv.profile(a, 32, b"t").unwrap();
    let f = hv.user_begin().unwrap();
    hv.store(f, a, &[0x22; 8]).unwrap();
    wild_write_into_entry(&hv, a);
    hv.store(f, a, &[0x33; 8]).unwrap();
    hv.crash_suppression(f).unwrap();
    assert_eq!(hv.stats().corruptions, 1, "the damage is reported when the entry is used");
    let n = hv.user_begin().unwrap();
    let mut v = [0u8; 8];
    hv.load(n, a, &mut v).unwrap();
    assert_ne!(u64::from_le_bytes(v), 0xDEAD_DEAD_DEAD_DEAD, "garbage is never restored");
    assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
    assert_eq!(hv.user_end(n).unwrap(), EndKind::Committed);
    assert!(hv.stats().corruptions >= 1);
}

/// A wild write into the hint (the head's writer and mask, kept beside the lock word) that
/// names a normal user as the head of a faulty user's entry. Were it trusted, the normal
/// user's store would take the fast path unrecorded and F's collection would undo it. The
/// hint is a keyed tag, so the forged one is not taken: the store is recorded, and survives.
#[test]
fn a_wild_write_into_the_hint_is_never_trusted() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let (_m, a) = memory();
    hv.profile(a, 32, b"t").unwrap();
    let f = hv.user_begin().unwrap();
    let n = hv.user_begin().unwrap();
    hv.store(f, a, &[0x22; 8]).unwrap();
    hv.store(n, a + 8, &[0x44; 8]).unwrap();
    // Granule 2 has no history, so its recovery area is its cold metadata record; granule
    // 0's hot record (lock word and hint) lies two metadata records below its own.
    let (cold2, len) = hv.recovery_area_of(a + 16).unwrap();
    assert_eq!(len, size_of::<ColdMeta>(), "a granule without history: its cold metadata");
    let hot0 = (cold2 as usize - size_of::<GranuleMeta>() - 2 * RECORD) as *mut u32;
    // SAFETY: the test plays a wild writer on granule 0's hot metadata (its flags' head-mask
    // byte and its `hwriter` word), which lives in the store's own metadata mapping.
    unsafe {
        hot0.write_volatile(hot0.read_volatile() | 0xFF << 8);
        hot0.add(1).write_volatile(n as u32);
    }
    hv.store(n, a, &[0x55; 8]).unwrap();
    hv.crash_suppression(f).unwrap();
    let mut v = [0u8; 8];
    hv.load(n, a, &mut v).unwrap();
    assert_eq!(v, [0x55; 8], "the normal user's store stays (G2) after F's fault");
    assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
    hv.load(0, a, &mut v).unwrap();
    assert_eq!(v, [0x55; 8], "the normal user's store stays (G2) after F's collection");
    assert_eq!(hv.user_end(n).unwrap(), EndKind::Committed);
    hv.load(0, a, &mut v).unwrap();
    assert_eq!(v, [0x55; 8]);
}

#[test]
fn a_wild_write_into_an_entry_is_reported_by_restoration_not_restored_from() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let (_m, a) = memory();
    hv.profile(a, 32, b"t").unwrap();
    let f = hv.user_begin().unwrap();
    hv.store(f, a, &[0x22; 8]).unwrap();
    wild_write_into_entry(&hv, a);
    hv.crash_suppression(f).unwrap();
    let n = hv.user_begin().unwrap();
    let mut v = [0u8; 8];
    hv.load(n, a, &mut v).unwrap();
    assert_eq!(hv.stats().corruptions, 1);
    assert_ne!(u64::from_le_bytes(v), 0xDEAD_DEAD_DEAD_DEAD, "garbage is never restored");
    // Cleanup walks the same damaged history: it must not relink (and reseal) around it.
    assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
    let mut w = [0u8; 8];
    hv.load(n, a, &mut w).unwrap();
    assert_ne!(u64::from_le_bytes(w), 0xDEAD_DEAD_DEAD_DEAD);
    assert_eq!(hv.user_end(n).unwrap(), EndKind::Committed);
}
