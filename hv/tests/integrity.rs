//! G6 in the in-process host: a wild write into recovery data is detected and reported, and
//! recovery never restores from the damaged data, whichever path touches it first.
#![cfg(not(loom))]

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

#[test]
fn a_wild_write_into_an_entry_is_reported_by_the_next_store_not_laundered() {
    let hv = Hv::create(HvConfig::default()).unwrap();
    let (_m, a) = memory();
    hv.profile(a, 32, b"t").unwrap();
    let f = hv.user_begin().unwrap();
    hv.store(f, a, &[0x22; 8]).unwrap();
    wild_write_into_entry(&hv, a);
    // The same user stores again: the merge path must not reseal the damaged entry.
    hv.store(f, a, &[0x33; 8]).unwrap();
    assert_eq!(hv.stats().corruptions, 1, "the damage is reported at once");
    hv.crash_suppression(f).unwrap();
    let n = hv.user_begin().unwrap();
    let mut v = [0u8; 8];
    hv.load(n, a, &mut v).unwrap();
    assert_ne!(u64::from_le_bytes(v), 0xDEAD_DEAD_DEAD_DEAD, "garbage is never restored");
    assert_eq!(hv.user_end(f).unwrap(), EndKind::Faulted);
    assert_eq!(hv.user_end(n).unwrap(), EndKind::Committed);
    assert!(hv.stats().corruptions >= 1);
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
