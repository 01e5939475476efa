//! Exposure tracking (G8): which normal users loaded bytes written by a then-active user.
//!
//! A load that returns a byte last written by another user still active records a candidate
//! `(reader, writer, granule)`. When the writer commits its candidates are dropped; when it
//! faults they become reported exposures (and, under `cascade`, the readers are doomed to
//! fault too). Tables are fixed-size and live in the hv's region; overflow is counted, never
//! silent.
//!
//! Candidates are nodes on two chains: a hash bucket of the triple (a load that reads the
//! same bytes again finds its candidate in O(1)) and its writer's list, headed per user slot
//! (a commit or fault walks only its own candidates). A candidate is recorded while its writer
//! is seen active or entering its fault, which may be after the writer's list was drained (a
//! fault entry in progress, or a granule its end did not reach): each slot remembers the last
//! writer drained from it and how, and a late candidate of that writer is reported on the spot
//! (it faulted) or dropped (it committed).

use crate::sync::StripeLock;
use crate::users::{slot_index, UserId, MAX_USERS};
use core::cell::UnsafeCell;

pub const CANDIDATES: usize = 8192;
pub const REPORTED: usize = 4096;
/// Hash buckets of the candidates (a power of two).
const BUCKETS: usize = 8192;

/// One exposure, as reported to C (`struct vmsrs_exposure`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exposure {
    /// The normal user that loaded the byte.
    pub reader: u64,
    /// The user that wrote it and later faulted.
    pub writer: u64,
    /// The granule address (8-aligned) that was read.
    pub addr: u64,
}

/// A candidate and its two links: node numbers are 1-based, 0 ends a chain (so the all-zero
/// table of a fresh hv is empty).
#[derive(Clone, Copy)]
struct Node {
    e: Exposure,
    next_in_bucket: u32,
    next_of_writer: u32,
}

struct Tables {
    nodes: [Node; CANDIDATES],
    /// Nodes ever handed out (the first `used` are either live or on the free list).
    used: u32,
    /// Free nodes, linked through `next_of_writer`.
    free: u32,
    buckets: [u32; BUCKETS],
    by_writer: [u32; MAX_USERS],
    /// Per slot: the last writer whose list was drained, and whether it had faulted.
    drained: [u64; MAX_USERS],
    drained_faulted: [bool; MAX_USERS],
    reported: [Exposure; REPORTED],
    nrep: usize,
}

impl Tables {
    fn node(&mut self, n: u32) -> &mut Node {
        &mut self.nodes[n as usize - 1]
    }

    fn bucket(e: &Exposure) -> usize {
        let h = e.reader ^ e.writer.rotate_left(21) ^ e.addr.rotate_left(42);
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 51) as usize & (BUCKETS - 1)
    }

    /// Take node `n` off its bucket's chain.
    fn unlink_from_bucket(&mut self, n: u32) {
        let b = Self::bucket(&self.node(n).e);
        let next = self.node(n).next_in_bucket;
        if self.buckets[b] == n {
            self.buckets[b] = next;
            return;
        }
        let mut p = self.buckets[b];
        while p != 0 {
            let pn = self.node(p).next_in_bucket;
            if pn == n {
                self.node(p).next_in_bucket = next;
                return;
            }
            p = pn;
        }
    }

    /// Remove every candidate of `writer`'s slot, calling `f` with each of `writer`'s, and
    /// remember that `writer` was drained (`faulted`: reported, else dropped).
    fn drain_writer(&mut self, writer: UserId, faulted: bool, f: &mut dyn FnMut(&mut Self, Exposure)) {
        let w = slot_index(writer);
        self.drained[w] = writer;
        self.drained_faulted[w] = faulted;
        let mut n = core::mem::replace(&mut self.by_writer[w], 0);
        while n != 0 {
            let next = self.node(n).next_of_writer;
            self.unlink_from_bucket(n);
            let e = self.node(n).e;
            self.node(n).next_of_writer = self.free;
            self.free = n;
            if e.writer == writer {
                f(self, e);
            }
            n = next;
        }
    }

    /// Add `e` to the reported exposures (false when that table is full).
    fn report(&mut self, e: Exposure) -> bool {
        if self.nrep < REPORTED {
            self.reported[self.nrep] = e;
            self.nrep += 1;
            true
        } else {
            false
        }
    }
}

pub struct Exposures {
    lock: StripeLock,
    t: UnsafeCell<Tables>,
    /// Candidates and exposures that found their table full (read without the lock: the
    /// runtime warns when it grows).
    dropped: core::sync::atomic::AtomicU64,
}

// SAFETY: `t` is only accessed with `lock` held.
unsafe impl Sync for Exposures {}

impl Exposures {
    /// # Safety
    /// `this` must be valid for writes of `Exposures`.
    pub unsafe fn init(this: *mut Exposures) {
        // SAFETY: field initialisation of caller-owned memory; all-zero Tables is valid.
        unsafe {
            core::ptr::addr_of_mut!((*this).lock).write(StripeLock::new());
            core::ptr::addr_of_mut!((*this).t).cast::<u8>().write_bytes(0, core::mem::size_of::<Tables>());
            core::ptr::addr_of_mut!((*this).dropped).write(core::sync::atomic::AtomicU64::new(0));
        }
    }

    /// The table's lock, for `Hv::before_fork`/`Hv::after_fork`.
    pub fn fork_lock(&self) -> &StripeLock {
        &self.lock
    }

    fn with<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> R {
        let _g = self.lock.lock();
        // SAFETY: the lock is held for the whole closure.
        f(unsafe { &mut *self.t.get() })
    }

    /// Record that `reader` loaded bytes of granule `addr` whose latest store is `writer`'s, an
    /// active user or one entering its fault. Returns true when `writer` had already faulted
    /// (its list drained): the exposure is reported at once, and the caller must treat the
    /// reader as a fault's readers are treated (`cascade`).
    pub fn candidate(&self, reader: UserId, writer: UserId, addr: u64) -> bool {
        let e = Exposure { reader, writer, addr };
        self.with(|t| {
            let w = slot_index(writer);
            if t.drained[w] == writer {
                if !t.drained_faulted[w] {
                    return false;
                }
                if !t.reported[..t.nrep].contains(&e) && !t.report(e) {
                    self.note_dropped();
                }
                return true;
            }
            let b = Tables::bucket(&e);
            let mut n = t.buckets[b];
            while n != 0 {
                if t.node(n).e == e {
                    return false;
                }
                n = t.node(n).next_in_bucket;
            }
            let n = if t.free != 0 {
                let n = t.free;
                t.free = t.node(n).next_of_writer;
                n
            } else if (t.used as usize) < CANDIDATES {
                t.used += 1;
                t.used
            } else {
                self.note_dropped();
                return false;
            };
            *t.node(n) = Node { e, next_in_bucket: t.buckets[b], next_of_writer: t.by_writer[w] };
            t.buckets[b] = n;
            t.by_writer[w] = n;
            false
        })
    }

    /// The writer committed: its candidates can never become exposures. (Its candidates as a
    /// reader stay: G8 reports a reader that committed before its writer faulted.)
    pub fn on_commit(&self, writer: UserId) {
        self.with(|t| t.drain_writer(writer, false, &mut |_, _| {}));
    }

    /// The writer faulted: report its candidates; `doom` is called for each reader. (Its
    /// candidates as a reader stay: it loaded that data while normal.)
    pub fn on_fault(&self, writer: UserId, doom: &mut dyn FnMut(UserId)) {
        self.with(|t| {
            t.drain_writer(writer, true, &mut |t, e| {
                if !t.report(e) {
                    self.note_dropped();
                }
                doom(e.reader);
            })
        });
    }

    /// Copy reported exposures from index `from` into `out`; returns (copied, total).
    pub fn reported(&self, from: usize, out: &mut [Exposure]) -> (usize, usize) {
        self.with(|t| {
            let avail = &t.reported[from.min(t.nrep)..t.nrep];
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            (n, t.nrep)
        })
    }

    /// Count one record that could not be kept.
    pub fn note_dropped(&self) {
        self.dropped.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    /// Candidates and exposures dropped so far (the tables were full, or a reader had no name).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(core::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn table() -> &'static Exposures {
        let layout = std::alloc::Layout::new::<Exposures>();
        // SAFETY: a fresh zeroed allocation of the right layout, initialised by `init`, then
        // leaked for the test's lifetime.
        unsafe {
            let p = std::alloc::alloc_zeroed(layout) as *mut Exposures;
            assert!(!p.is_null());
            Exposures::init(p);
            &*p
        }
    }

    fn reported(x: &Exposures) -> BTreeSet<(u64, u64, u64)> {
        let mut out = vec![Exposure::default(); REPORTED];
        let (n, total) = x.reported(0, &mut out);
        assert_eq!(n, total);
        out[..n].iter().map(|e| (e.reader, e.writer, e.addr)).collect()
    }

    /// Against a model (a set per writer): candidates of many writers, deduplicated, dropped
    /// at commit, reported at fault, readers doomed once per candidate; writers reuse slots
    /// (ids that differ above the slot bits); the table fills and empties again.
    #[test]
    fn candidates_follow_a_model_of_sets_per_writer() {
        let x = table();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut model: std::collections::BTreeMap<u64, BTreeSet<(u64, u64)>> = Default::default();
        let mut want: BTreeSet<(u64, u64, u64)> = BTreeSet::new();
        let mut gen = 1u64;
        let mut drops = 0u64;
        let mut writers: Vec<u64> = (0..20).map(|i| (1 << 12) | (i * 7 + 1)).collect();
        let rounds = if cfg!(miri) { 300 } else { 80_000 };
        let mut full_hits = 0;
        for round in 0..rounds {
            let k = (next() % 20) as usize;
            let w = writers[k];
            // A third of the way in, a stretch of candidates only: the table fills.
            let op = if (rounds / 3..rounds / 3 + 20_000.min(rounds)).contains(&round) {
                99
            } else {
                next() % 100
            };
            match op {
                0 | 1 => {
                    x.on_commit(w);
                    model.remove(&w);
                    gen += 1;
                    writers[k] = (gen << 12) | (w & 0xFFF);
                }
                2 => {
                    let mut doomed = Vec::new();
                    x.on_fault(w, &mut |r| doomed.push(r));
                    let set = model.remove(&w).unwrap_or_default();
                    let mut readers: Vec<u64> = set.iter().map(|&(r, _)| r).collect();
                    readers.sort();
                    doomed.sort();
                    assert_eq!(doomed, readers);
                    want.extend(set.into_iter().map(|(r, a)| (r, w, a)));
                    gen += 1;
                    writers[k] = (gen << 12) | (w & 0xFFF);
                }
                _ => {
                    let (r, a) = (next() % 50 + 1, (next() % 64) * 8);
                    let live: usize = model.values().map(|s| s.len()).sum();
                    let fresh = !model.get(&w).is_some_and(|s| s.contains(&(r, a)));
                    if fresh && live == CANDIDATES {
                        drops += 1;
                        full_hits += 1;
                        x.candidate(r, w, a);
                    } else {
                        x.candidate(r, w, a);
                        model.entry(w).or_default().insert((r, a));
                    }
                }
            }
        }
        // Past REPORTED, exposures are counted as dropped (which ones depends on the order
        // within a fault's report, which the model leaves open).
        let got = reported(x);
        assert!(got.is_subset(&want));
        assert_eq!(got.len(), want.len().min(REPORTED));
        drops += want.len().saturating_sub(REPORTED) as u64;
        assert_eq!(x.dropped(), drops);
        assert!(full_hits > 0 || cfg!(miri), "the candidates never filled their table");
        assert!(want.len() > REPORTED || cfg!(miri), "the reports never filled their table: {}", want.len());
    }

    /// A candidate recorded after its writer's list was drained (a reader that saw it entering
    /// its fault, or through a granule its end did not reach): reported at once, once, with
    /// its reader to be doomed, if the writer faulted; dropped if it committed.
    #[test]
    fn a_candidate_after_its_writer_was_drained_is_reported_or_dropped_as_the_writer_ended() {
        let x = table();
        let (faulted, committed) = ((7 << 12) | 5, (9 << 12) | 6);
        x.candidate(1, faulted, 0);
        x.on_fault(faulted, &mut |_| {});
        assert!(x.candidate(2, faulted, 8), "late: reported, reader to be doomed");
        assert!(x.candidate(2, faulted, 8), "again: the reader is still exposed");
        x.candidate(1, committed, 0);
        x.on_commit(committed);
        assert!(!x.candidate(2, committed, 8), "late for a committed writer: nothing");
        let want: BTreeSet<_> = [(1, faulted, 0), (2, faulted, 8)].into_iter().collect();
        assert_eq!(reported(x), want);
        // The slot's next writer starts afresh.
        let next = (8 << 12) | 5;
        assert!(!x.candidate(3, next, 16));
        x.on_fault(next, &mut |_| {});
        assert!(reported(x).contains(&(3, next, 16)));
        assert_eq!(x.dropped(), 0);
    }
}
