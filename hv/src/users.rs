//! The user table: lifecycle `Active → Committed` or `Active → Faulting → Faulted → Collected`.
//!
//! A user id is `(generation << SLOT_BITS) | slot`. History entries carry the writer's id;
//! every entry of a user is folded (commit) or removed (collection) before its slot is freed,
//! so under a granule lock every writer found in a history is a live occupant of its slot.
//!
//! Owner-only data (write log, shadow) is touched only by the thread running the user: its
//! stores, its fault entry and its end point. That is the contract of [`UserSlot::owned`].

use crate::grow::{Log, Shadow};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
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
    /// The id of the occupant doomed by another user's fault under the `cascade` exposure
    /// policy (0: none); it faults itself at its next monitored operation. An id, not a flag:
    /// a doom meant for an occupant that has just ended never reaches the slot's next one.
    pub doomed: AtomicU64,
    /// Users this slot has held, how many of them ended committed, and how many ended at
    /// all. Written only by the slot's occupant (at its claim and at its end, both ordered by
    /// the claim's acquire and the free's release), so each is a plain load and store, no
    /// locked read-modify-write on a process-wide line; `stats` sums them over the table.
    begun: AtomicU64,
    committed: AtomicU64,
    ended: AtomicU64,
    owned: UnsafeCell<Owned>,
    /// The history entries this slot's users allocate (crate::history).
    pub pool: crate::history::LocalPool,
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
            doomed: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            owned: UnsafeCell::new(Owned { log: Log::new(), shadow: Shadow::new() }),
            pool: crate::history::LocalPool::new(),
        }
    }

    pub fn id(&self) -> UserId {
        self.id.load(Ordering::Acquire)
    }

    #[inline(always)]
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// Fault entry's transitions (`FAULTING`, `FAULTED`): sequentially consistent with the
    /// faulted count and the granules' `POLLUTED` marks (see `Hv::crash_suppression`).
    pub fn set_state(&self, s: u32) {
        self.state.store(s, Ordering::SeqCst);
    }

    /// Must occupant `u` enter its fault now (a cascade doomed it while it was active)?
    #[inline(always)]
    pub fn doomed_now(&self, u: UserId) -> bool {
        self.doomed.load(Ordering::Acquire) == u && self.state() == ACTIVE
    }

    /// `ACTIVE → COMMITTED`, by the occupant at its end point. A plain release store: to a
    /// reader under a granule lock, a committing writer is as visible as an active one, so no
    /// reader's decision depends on ordering this store against any other location.
    pub fn set_committed(&self) {
        self.state.store(COMMITTED, Ordering::Release);
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
    /// Indexed directly by the store (`Hv::release`) rather than through a method: under
    /// Miri every call taking `&UserTable` retags the whole table.
    pub(crate) slots: [UserSlot; MAX_USERS],
    hint: AtomicU32,
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
        unsafe { core::ptr::addr_of_mut!((*this).hint).write(AtomicU32::new(0)) };
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

    /// Make slot `i` the next one [`UserTable::alloc`] tries: a thread that exits offers its
    /// slot, warm, with its log already mapped, to the next new thread, rather than new threads
    /// walking every slot in turn (and mapping every slot's log) while another user holds the
    /// slot they would have found first.
    pub fn offer(&self, i: usize) {
        self.hint.store((i % MAX_USERS) as u32, Ordering::Relaxed);
    }

    /// Claim slot `i` if it is free, with a fresh id.
    fn claim(&self, i: usize) -> Option<(UserId, &UserSlot)> {
        let s = &self.slots[i];
        if s.state.load(Ordering::Relaxed) != FREE
            || s.state.compare_exchange(FREE, ACTIVE, Ordering::AcqRel, Ordering::Relaxed).is_err()
        {
            return None;
        }
        bump(&s.begun);
        let gen = next_generation(s.id.load(Ordering::Relaxed));
        let id = (gen << SLOT_BITS) | i as u64;
        s.doomed.store(0, Ordering::Relaxed);
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
        bump(&slot.ended);
        slot.state.store(FREE, Ordering::Release);
    }

    /// The slot of a live user, or `None` if `id` no longer occupies it.
    #[inline(always)]
    pub fn get(&self, id: UserId) -> Option<&UserSlot> {
        let s = &self.slots[slot_index(id)];
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

    /// Users begun, committed and live, and history entries in use, summed slot by slot in
    /// one pass (one call: under Miri every call retags the whole table) (no begin or end touches a
    /// process-wide line). Each slot's `ended` and `committed` are read before its `begun`,
    /// and each end was published (release) after that user's begin, so per slot begun ≥
    /// ended ≥ committed and every figure is consistent with the others. Exact when no user
    /// begins or ends during the read; otherwise `live` may count a user that moved from one
    /// slot to a later one during the read twice (at most once per begin that overlapped it).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.slots {
            let committed = s.committed.load(Ordering::Acquire);
            let ended = s.ended.load(Ordering::Acquire);
            let begun = s.begun.load(Ordering::Acquire);
            t.begun += begun;
            t.committed += committed;
            t.live += begun - ended;
            t.entries += s.pool.live();
        }
        t
    }

    /// Every slot's grace-period reader.
    pub fn readers(&self) -> impl Iterator<Item = &crate::grace::Reader> {
        self.slots.iter().map(|s| &s.reader)
    }
}

/// What [`UserTable::totals`] returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub begun: u64,
    pub committed: u64,
    pub live: u64,
    /// History entries in use, over every slot's pool.
    pub entries: u64,
}

/// The slot a user id occupies.
#[inline(always)]
pub fn slot_index(id: UserId) -> usize {
    (id as usize) & (MAX_USERS - 1)
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
