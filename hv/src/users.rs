//! The user table: lifecycle `Active → Committed` or `Active → Faulting → Faulted → Collected`.
//!
//! A user id is `(generation << SLOT_BITS) | slot`. History entries carry the writer's id;
//! every entry of a user is folded (commit) or removed (collection) before its slot is freed,
//! so under a granule lock every writer found in a history is a live occupant of its slot.
//!
//! Owner-only data (write log, shadow) is touched only by the thread running the user: its
//! stores, its fault entry and its end point. That is the contract of [`UserSlot::owned`].

use crate::grow::{Log, Shadow};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use core::cell::UnsafeCell;

pub const SLOT_BITS: u32 = 12;
/// Users that can be live at once.
pub const MAX_USERS: usize = 1 << SLOT_BITS;

/// A user id; 0 is never a user.
pub type UserId = u64;

pub const FREE: u32 = 0;
pub const ACTIVE: u32 = 1;
/// Fault entry in progress: still visible to readers, but restorations keep the granule
/// marked polluted until the state becomes `FAULTED`.
pub const FAULTING: u32 = 2;
pub const FAULTED: u32 = 3;
/// Ended normally; its entries are being folded into the granules' base values.
pub const COMMITTED: u32 = 4;

/// What the store knows of a writer at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterState {
    Active,
    Faulting,
    Faulted,
    Committed,
    /// Not in the table: its entries are all gone.
    Gone,
}

pub struct Owned {
    pub log: Log,
    pub shadow: Shadow,
}

pub struct UserSlot {
    id: AtomicU64,
    state: AtomicU32,
    /// The grace-period reader of operations by this slot's user (crate::grace).
    pub reader: crate::grace::Reader,
    /// Set by another user's fault under the `cascade` exposure policy; the user faults itself
    /// at its next monitored operation.
    pub doomed: AtomicBool,
    /// Users this slot has held, and how many of them ended committed. Written only by the
    /// slot's occupant (at its claim and at its end, both ordered by the claim's acquire and
    /// the free's release), so each is a plain load and store, no locked read-modify-write on
    /// a process-wide line; `stats` sums them over the table.
    begun: AtomicU64,
    committed: AtomicU64,
    owned: UnsafeCell<Owned>,
}

// SAFETY: `owned` is only reached through `owned()`, whose contract confines it to the one
// thread running the user; all other fields are atomics.
unsafe impl Sync for UserSlot {}

impl UserSlot {
    fn new() -> Self {
        UserSlot {
            id: AtomicU64::new(0),
            state: AtomicU32::new(FREE),
            reader: crate::grace::Reader::new(),
            doomed: AtomicBool::new(false),
            begun: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            owned: UnsafeCell::new(Owned { log: Log::new(), shadow: Shadow::new() }),
        }
    }

    pub fn id(&self) -> UserId {
        self.id.load(Ordering::Acquire)
    }

    #[inline(always)]
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    pub fn set_state(&self, s: u32) {
        self.state.store(s, Ordering::SeqCst);
    }

    /// Count the occupant's user as committed. Only the occupant calls this (see `begun`).
    pub fn note_committed(&self) {
        bump(&self.committed);
    }

    /// The user's private log and shadow.
    ///
    /// # Safety
    /// Only the thread currently running this user may call this, and it must not hold two
    /// such references at once.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn owned(&self) -> &mut Owned {
        // SAFETY: exclusivity is the caller's contract (one thread per user, no aliasing).
        unsafe { &mut *self.owned.get() }
    }
}

pub struct UserTable {
    slots: [UserSlot; MAX_USERS],
    hint: AtomicU32,
    /// Slots claimed now (exact at every instant, unlike a scan of the slots).
    live: AtomicU32,
}

impl UserTable {
    /// Build in place (the table is large and lives in the hv's guarded region).
    ///
    /// # Safety
    /// `this` must be valid for writes of a `UserTable`.
    pub unsafe fn init(this: *mut UserTable) {
        for i in 0..MAX_USERS {
            // SAFETY: `this` is valid for writes; each slot is written once.
            unsafe { core::ptr::addr_of_mut!((*this).slots[i]).write(UserSlot::new()) };
        }
        // SAFETY: as above.
        unsafe {
            core::ptr::addr_of_mut!((*this).hint).write(AtomicU32::new(0));
            core::ptr::addr_of_mut!((*this).live).write(AtomicU32::new(0));
        }
    }

    /// Claim a free slot and give it a fresh id.
    pub fn alloc(&self) -> Option<(UserId, &UserSlot)> {
        let start = self.hint.fetch_add(1, Ordering::Relaxed) as usize;
        (0..MAX_USERS).find_map(|k| self.claim((start + k) % MAX_USERS))
    }

    /// [`UserTable::alloc`], trying slot `near` first: a thread that begins a user where its
    /// last one was finds the slot (and its log) warm in its cache, and touches no shared
    /// line to pick it.
    pub fn alloc_near(&self, near: usize) -> Option<(UserId, &UserSlot)> {
        self.claim(near % MAX_USERS).or_else(|| self.alloc())
    }

    /// Claim slot `i` if it is free, with a fresh id.
    fn claim(&self, i: usize) -> Option<(UserId, &UserSlot)> {
        let s = &self.slots[i];
        if s.state.load(Ordering::Relaxed) != FREE
            || s.state.compare_exchange(FREE, ACTIVE, Ordering::AcqRel, Ordering::Relaxed).is_err()
        {
            return None;
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        bump(&s.begun);
        let gen = next_generation(s.id.load(Ordering::Relaxed));
        let id = (gen << SLOT_BITS) | i as u64;
        s.doomed.store(false, Ordering::Relaxed);
        s.id.store(id, Ordering::Release);
        Some((id, s))
    }

    /// Release a slot whose entries are all gone.
    pub fn free(&self, slot: &UserSlot) {
        // Keep the generation in the id word so the next occupant gets a new one.
        let gen = (slot.id.load(Ordering::Relaxed) >> SLOT_BITS) & GEN_MASK;
        let i = slot as *const UserSlot as usize - self.slots.as_ptr() as usize;
        let i = (i / core::mem::size_of::<UserSlot>()) as u64;
        // Mark the id retired (generation kept, top bit set) so lookups by the old id fail.
        slot.id.store((1u64 << 63) | (gen << SLOT_BITS) | i, Ordering::Release);
        self.live.fetch_sub(1, Ordering::Relaxed);
        slot.state.store(FREE, Ordering::Release);
    }

    /// The slot of a live user, or `None` if `id` no longer occupies it.
    #[inline(always)]
    pub fn get(&self, id: UserId) -> Option<&UserSlot> {
        let s = &self.slots[(id as usize) & (MAX_USERS - 1)];
        (id != 0 && s.id.load(Ordering::Acquire) == id).then_some(s)
    }

    #[inline]
    pub fn writer_state(&self, id: UserId) -> WriterState {
        match self.get(id).map(|s| s.state()) {
            Some(ACTIVE) => WriterState::Active,
            Some(FAULTING) => WriterState::Faulting,
            Some(FAULTED) => WriterState::Faulted,
            Some(COMMITTED) => WriterState::Committed,
            _ => WriterState::Gone,
        }
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed) as usize
    }

    /// Users begun and users committed, over the life of the table. Each figure only grows
    /// (every slot's counters do). Committed is summed first, and each count it includes was
    /// published (release) after that user's begin, so begun is never below committed.
    pub fn totals(&self) -> (u64, u64) {
        let committed = self.slots.iter().map(|s| s.committed.load(Ordering::Acquire)).sum();
        let begun = self.slots.iter().map(|s| s.begun.load(Ordering::Acquire)).sum();
        (begun, committed)
    }

    /// Every slot's grace-period reader.
    pub fn readers(&self) -> impl Iterator<Item = &crate::grace::Reader> {
        self.slots.iter().map(|s| &s.reader)
    }
}

const GEN_MASK: u64 = (1u64 << (63 - SLOT_BITS)) - 1;

/// The generation after the one in `prev_id` (live or retired); never 0, so no id is 0.
fn next_generation(prev_id: u64) -> u64 {
    let n = ((prev_id >> SLOT_BITS) & GEN_MASK).wrapping_add(1) & GEN_MASK;
    n.max(1)
}

/// Add one to a counter only its slot's occupant writes (no other writer can race it).
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
}
