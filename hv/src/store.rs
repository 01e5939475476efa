//! The recovery store: byte-precise multi-version history per granule, the user lifecycle,
//! demand restoration, the faulty user's shadow, eager cleanup, exposure tracking.
//!
//! Invariants (each granule, under its lock — the `LOCKED` bit of its flags word):
//! - I1 raw memory holds, per byte, the latest store by any user that was not suppressed when
//!   it stored, until a restoration rewrites it with the G3 value;
//! - I2 `POLLUTED` is clear ⇒ raw memory equals the G3 value (the latest store whose writer is
//!   not `FAULTED`, else `base`), so lock-free readers may use raw memory;
//! - I3 every writer named by an entry occupies its user slot; a user's entries are folded
//!   (commit) or removed (collection) before its slot is freed;
//! - I4 `base`+`head` and every entry are sealed with a keyed checksum; recovery data that
//!   fails it is reported and never restored from (G6). The metadata seal is offset so that
//!   an all-zero metadata (a fresh granule on an untouched page) is intact: no history, and
//!   `base` unused until the first entry sets it from raw memory.
//!
//! A fault of user F linearizes when F's state becomes `FAULTED`; before that F is counted in
//! `faulted` (all loads take the checked path) and each granule F wrote is marked polluted.

use crate::arena::Region;
use crate::exposure::{Exposure, Exposures};
use crate::grace::Section;
use crate::history::{mix, Entries, Entry, NIL};
use crate::ranges::{
    for_touched_granules, release_meta, ColdMeta, GranuleGuard, GranuleMeta, RangeRef, RangeTable, CORRUPT,
    DEAD, DIRTY, GRANULE, POLLUTED,
};
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering, StripeLock};
use crate::users::{self, UserId, UserSlot, UserTable, WriterState};
use crate::{HvResult, VmsrsError::*};

pub const NSTRIPES: usize = 256;

/// Bytes selected by a granule byte mask, as a u64 bit mask.
#[inline(always)]
pub fn byte_mask(mask: u8) -> u64 {
    // Spread each bit of `mask` to a whole byte.
    let m = mask as u64;
    let spread = (m & 0x0F) | ((m & 0xF0) << 28);
    let spread = (spread | (spread << 14)) & 0x0003_0003_0003_0003;
    let spread = (spread | (spread << 7)) & 0x0101_0101_0101_0101;
    spread * 0xFF
}

/// Configuration of the hypervisor component.
#[derive(Clone, Copy, Debug, Default)]
pub struct HvConfig {
    /// Track exposures (G8). Makes every normal load take the locked path.
    pub exposure: bool,
    /// Under exposure tracking, fault the exposed readers too.
    pub cascade: bool,
    /// A word the guest may read to skip the checked load path: kept ≥ the number of faulted
    /// users (+1 while exposure tracking is on), raised before and lowered after the store's
    /// own count, so `*gate == 0` implies [`Hv::quiescent`].
    pub gate: Option<&'static AtomicUsize>,
}

/// What a load that may ask for its reader learnt (G8; see [`Hv::load_asking`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The loaded bytes are the load's answer.
    Done,
    /// A load by no user read bytes of an active user while exposures are tracked: the
    /// reader must become a user and load again; this load recorded nothing.
    ReaderNeeded,
}

/// What a normal load does for G8, granule by granule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Track {
    /// Nothing: exposures are not tracked, or the reader is no user and does not ask.
    Off,
    /// Record the reader (a user) as a candidate of every active writer it reads.
    Record,
    /// The reader is no user and asks whether it read an active user's bytes.
    Ask,
    /// It did: the load ends in [`Reading::ReaderNeeded`].
    Needed,
}

/// How a user ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndKind {
    Committed,
    /// Faulted, suppressed, and now collected (G7 done).
    Faulted,
}

/// Counters of the store (`struct vmsrs_stats` adds the runtime's own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvStats {
    pub ranges: u64,
    pub users_begun: u64,
    pub users_committed: u64,
    pub users_faulted: u64,
    pub users_collected: u64,
    pub users_live: u64,
    pub faulted_now: u64,
    pub restorations: u64,
    pub history_entries: u64,
    pub corruptions: u64,
    /// Granule address of the last corruption detected (0: none).
    pub last_corruption: u64,
    pub unrecorded: u64,
    pub shadow_stores: u64,
    pub exposures: u64,
    pub exposures_dropped: u64,
    /// Metadata mappings of unprofiled ranges that could not be given back (a thread stayed
    /// inside the hv past the grace period's limit).
    pub meta_kept: u64,
}

/// Restoration counters, spread over lines by granule address.
#[repr(C, align(128))]
struct Stripe {
    restorations: AtomicU64,
}

#[derive(Default)]
struct Counters {
    faulted: AtomicU64,
    collected: AtomicU64,
    corruptions: AtomicU64,
    unrecorded: AtomicU64,
    shadow_stores: AtomicU64,
    last_corrupt: AtomicUsize,
    /// Metadata mappings of unprofiled ranges kept because a reader stayed in the hv.
    meta_kept: AtomicU64,
}

/// The hypervisor component's state. Lives in its own guarded region ([`HvBox`]).
pub struct Hv {
    cfg: HvConfig,
    key: u64,
    faulted: AtomicUsize,
    exposure_on: AtomicBool,
    profile_lock: StripeLock,
    ranges: RangeTable,
    users: UserTable,
    stripes: [Stripe; NSTRIPES],
    entries: Entries,
    counters: Counters,
    exposures: Exposures,
}

// SAFETY: every UnsafeCell inside is reached only under its stripe/profile lock or by the
// owning user's thread (see users.rs); the rest is atomic.
unsafe impl Sync for Hv {}
// SAFETY: as above; the Hv holds no thread-affine resources.
unsafe impl Send for Hv {}

/// Owner of the guarded region holding an [`Hv`].
pub struct HvBox {
    region: Region,
}

impl core::ops::Deref for HvBox {
    type Target = Hv;
    fn deref(&self) -> &Hv {
        // SAFETY: `region` was initialised with an Hv in `Hv::create` and lives as long as self.
        unsafe { &*(self.region.as_ptr() as *const Hv) }
    }
}

impl Drop for HvBox {
    fn drop(&mut self) {
        // Entry chunks and range metadata are leaked mappings while the store lives (late
        // readers may still hold them); with the store gone, unmap them. User logs and shadows
        // unmap themselves when the Hv is dropped.
        let hv: &Hv = self;
        // SAFETY: the Hv is initialised, no reference into it outlives self, and nothing
        // reads its ranges or entries after this point.
        unsafe {
            hv.ranges.unmap_all();
            hv.entries.unmap_all();
            core::ptr::drop_in_place(self.region.as_ptr() as *mut Hv);
        }
    }
}

// Raw monitored memory is shared with lock-free readers (and with the program's own plain
// accesses), so every access the store makes to it is a relaxed atomic of the access's width:
// races are then defined under Rust's memory model (and clean under ThreadSanitizer), and on
// x86-64 a relaxed atomic load or store of 1/2/4/8 bytes is the same single `mov` a volatile
// access was. These are always `core` atomics, never loom's (`crate::sync`): loom cannot wrap
// memory it does not own, and raw memory is not part of the protocols the loom models check.

/// The whole granule at `gaddr`, in one access (granules of a profiled range lie in memory
/// the program declared mapped; an 8-aligned granule never straddles a page).
#[inline(always)]
fn read_raw(gaddr: usize) -> u64 {
    u64::load_relaxed(gaddr)
}

/// Write the bytes of `val` selected by `mask` into granule `g` as ONE memory access, so a
/// concurrent lock-free reader never sees a torn value (G5): a naturally aligned run of
/// 1/2/4/8 bytes is one plain store; any other mask is a compare-and-swap of the whole
/// granule, which also never loses a concurrent plain store to the granule's other bytes
/// (which may belong to an unmonitored neighbour).
#[inline(always)]
fn write_raw(gaddr: usize, mask: u8, val: u64) {
    if mask == 0xFF {
        // The common case, a whole granule, before any mask arithmetic.
        return put(gaddr, val);
    }
    let lo = mask.trailing_zeros();
    let n = mask.count_ones();
    let contiguous = mask != 0 && (mask >> lo) as u16 == (1u16 << n) - 1;
    let v = val >> (8 * (lo % 8));
    let at = gaddr + lo as usize;
    match (contiguous, n) {
        (_, 0) => {}
        (true, 8) => put(gaddr, val),
        (true, 4) if lo.is_multiple_of(4) => put(at, v as u32),
        (true, 2) if lo.is_multiple_of(2) => put(at, v as u16),
        (true, 1) => put(at, v as u8),
        _ => {
            // SAFETY: the granule is 8-aligned, mapped and writable; AtomicU64 has the
            // layout of u64, and every other access the store makes to it is atomic.
            let word = unsafe { core::sync::atomic::AtomicU64::from_ptr(gaddr as *mut u64) };
            let bm = byte_mask(mask);
            let mut cur = word.load(core::sync::atomic::Ordering::Relaxed);
            loop {
                let new = (cur & !bm) | (val & bm);
                match word.compare_exchange_weak(
                    cur,
                    new,
                    core::sync::atomic::Ordering::Release,
                    core::sync::atomic::Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
    }
}

/// One store of `v` at `addr` as a single relaxed atomic store of `T`'s width.
///
/// Contract of every [`RawWord`] access: `addr` is aligned to `T` and lies in guest memory
/// the program vouches for (a granule of a profiled range, which the program declared
/// mapped, or a span it passed to a monitored copy, as it would to `memcpy`); a store's
/// bytes are ones the store means to write (inside the granule's mask, or the span).
#[inline(always)]
fn put<T: RawWord>(addr: usize, v: T) {
    T::store_relaxed(addr, v)
}

/// How long `unprofile` waits for threads still inside the hv before keeping the metadata.
const GRACE_LIMIT_MS: u64 = 1000;

/// Who a store is by.
enum Writer<'a> {
    User {
        u: UserId,
        slot: &'a UserSlot,
        suppressed: bool,
    },
    /// No user: a thread for which none could be created (the table is full). Its stores
    /// are made final at once (never withdrawn), so none is lost (G2).
    Anonymous,
}

/// A width the store reads and writes raw guest memory in: one relaxed atomic access each.
trait RawWord: Copy {
    fn store_relaxed(addr: usize, v: Self);
    fn load_relaxed(addr: usize) -> Self;
}

macro_rules! raw_word {
    ($t:ty, $atomic:ty) => {
        impl RawWord for $t {
            #[inline(always)]
            fn store_relaxed(addr: usize, v: $t) {
                // SAFETY: per the contract (see `put`) `addr` is mapped, writable and aligned
                // to the type, whose atomic twin has the same size and alignment.
                unsafe { <$atomic>::from_ptr(addr as *mut $t) }
                    .store(v, core::sync::atomic::Ordering::Relaxed)
            }

            #[inline(always)]
            fn load_relaxed(addr: usize) -> $t {
                // SAFETY: as in `store_relaxed`, for a readable address.
                unsafe { <$atomic>::from_ptr(addr as *mut $t) }.load(core::sync::atomic::Ordering::Relaxed)
            }
        }
    };
}
raw_word!(u8, core::sync::atomic::AtomicU8);
raw_word!(u16, core::sync::atomic::AtomicU16);
raw_word!(u32, core::sync::atomic::AtomicU32);
raw_word!(u64, core::sync::atomic::AtomicU64);

/// Whose view a resolution computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    /// A normal user (G3).
    Normal,
    /// A faulted user, which also sees its own earlier stores (G4).
    Suppressed(UserId),
}

struct Resolved {
    value: u64,
    covered: u8,
    faulting: bool,
}

impl Hv {
    /// Map a fresh hypervisor component.
    pub fn create(cfg: HvConfig) -> HvResult<HvBox> {
        let region = Region::map(core::mem::size_of::<Hv>()).ok_or(VMSRS_ENOMEM)?;
        let p = region.as_ptr() as *mut Hv;
        // SAFETY: the region is large enough and page-aligned; each field is written once
        // before any reference to the Hv is formed.
        unsafe {
            use core::ptr::addr_of_mut;
            addr_of_mut!((*p).cfg).write(cfg);
            addr_of_mut!((*p).key).write(process_key());
            addr_of_mut!((*p).faulted).write(AtomicUsize::new(0));
            addr_of_mut!((*p).exposure_on).write(AtomicBool::new(cfg.exposure));
            addr_of_mut!((*p).profile_lock).write(StripeLock::new());
            RangeTable::init(addr_of_mut!((*p).ranges));
            UserTable::init(addr_of_mut!((*p).users));
            for i in 0..NSTRIPES {
                let s = addr_of_mut!((*p).stripes[i]);
                addr_of_mut!((*s).restorations).write(AtomicU64::new(0));
            }
            Entries::init(addr_of_mut!((*p).entries));
            addr_of_mut!((*p).counters).write(Counters::default());
            Exposures::init(addr_of_mut!((*p).exposures));
        }
        let hv = HvBox { region };
        if cfg.exposure {
            hv.raise_gate();
        }
        // Every user's begin and end opens a grace-period section: registered for membarrier,
        // a section opens with a plain store instead of a locked exchange (one system call,
        // now, rather than at the first profile: a drop-in process that only contains faults
        // profiles nothing and paid the exchange on every rescue call).
        crate::grace::init();
        Ok(hv)
    }

    // ----- published, read-only state --------------------------------------------------

    fn raise_gate(&self) {
        if let Some(g) = self.cfg.gate {
            g.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn lower_gate(&self) {
        if let Some(g) = self.cfg.gate {
            g.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// No user is faulted: raw memory is the G3 value everywhere (the load fast path).
    #[inline(always)]
    pub fn quiescent(&self) -> bool {
        self.faulted.load(Ordering::Acquire) == 0 && !self.exposure_on.load(Ordering::Relaxed)
    }

    /// Can `addr..addr+len` touch monitored memory at all?
    #[inline(always)]
    pub fn may_touch(&self, addr: usize, len: usize) -> bool {
        self.ranges.may_touch(addr, len)
    }

    /// Is any byte of `addr..addr+len` monitored?
    pub fn is_monitored(&self, addr: usize, len: usize) -> bool {
        self.may_touch(addr, len) && self.ranges.next_from(addr).is_some_and(|r| r.start < addr + len)
    }

    /// The range containing `addr`, as (start, len, id).
    pub fn range_of(&self, addr: usize) -> Option<(usize, usize, u64)> {
        self.ranges.find(addr).map(|r| (r.start, r.len, r.id))
    }

    pub fn user_state(&self, u: UserId) -> WriterState {
        self.users.writer_state(u)
    }

    pub fn faulted_now(&self) -> usize {
        self.faulted.load(Ordering::Acquire)
    }

    // ----- profile ---------------------------------------------------------------------

    /// Monitor `addr..addr+len` (the paper's `profile`).
    pub fn profile(&self, addr: usize, len: usize, name: &[u8]) -> HvResult<u64> {
        if addr == 0 {
            return Err(VMSRS_ENULL);
        }
        if len == 0 {
            return Err(VMSRS_EZEROLEN);
        }
        addr.checked_add(len).ok_or(VMSRS_EINVAL)?;
        if !is_mapped(addr, len) {
            return Err(VMSRS_EBADRANGE);
        }
        if crate::arena::owned(addr, len) {
            return Err(VMSRS_EINVAL);
        }
        let _g = self.profile_lock.lock();
        self.ranges.insert(addr, len, name).map(|r| r.id)
    }

    /// Stop monitoring the range that starts at `addr`; raw memory is left at its G3 value.
    /// Its metadata is unmapped once no thread can still be using it (a grace period).
    pub fn unprofile(&self, addr: usize) -> HvResult<()> {
        if addr == 0 {
            return Err(VMSRS_ENULL);
        }
        // Held to the end: `fork` takes it too, so it never copies a granule mid-retirement.
        let _g = self.profile_lock.lock();
        let r = self.ranges.remove(addr)?;
        // Restore and retire every granule that ever had state; late readers that looked the
        // range up before it went see DEAD and store plainly.
        for_touched_granules(&r, &mut |g| self.retire_granule(&r, g));
        if crate::grace::synchronize(self.users.readers(), None, GRACE_LIMIT_MS) {
            // No thread can reach the range now. A reader that stored into a still-fresh
            // granule after the first pass left history there: release it too.
            for_touched_granules(&r, &mut |g| self.retire_granule(&r, g));
            // SAFETY: unpublished, and the grace period has passed.
            unsafe { release_meta(&r) };
        } else {
            self.counters.meta_kept.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Unprofile one granule: restore it if polluted, free its history, mark it dead.
    fn retire_granule(&self, r: &RangeRef, g: usize) {
        // SAFETY: g is a granule of r, whose metadata is still mapped (owned by the caller).
        let meta = unsafe { r.meta(g) };
        let mut gl = meta.lock();
        if gl.flags() & DEAD != 0 {
            return; // retired by the first pass: nothing was recorded here since
        }
        if gl.flags() & POLLUTED != 0 {
            self.restore_locked(&mut gl, g);
        }
        gl.set_quiet(DIRTY, false);
        gl.set_hint(0, 0);
        let pool = &self.entries;
        let mut idx = if self.meta_intact(meta, g) {
            // SAFETY: granule lock held.
            unsafe { *meta.cold().head.get() }
        } else {
            // A damaged head may lead anywhere: free nothing from it.
            self.corrupt(&mut gl, g);
            NIL
        };
        while idx != NIL && pool_valid(pool, idx) {
            // A damaged link may lead into another granule's live entry: stop there (the
            // entries beyond stay allocated) rather than free what someone else uses.
            if !pool.get(idx).intact(idx, self.key) {
                self.corrupt(&mut gl, g);
                break;
            }
            let next = pool.get(idx).next;
            self.release(idx, 0);
            idx = next;
        }
        // SAFETY: granule lock held.
        unsafe { *meta.cold().head.get() = NIL };
        if gl.flags() & CORRUPT == 0 {
            self.seal_meta(meta, g);
        }
        gl.clear(POLLUTED);
        gl.set(DEAD);
    }

    // ----- users -----------------------------------------------------------------------

    pub fn user_begin(&self) -> HvResult<UserId> {
        let (id, _) = self.users.alloc().ok_or(VMSRS_ETOOMANY)?;
        Ok(id)
    }

    /// [`Hv::user_begin`] in the slot of `previous` (the calling thread's last user) if it is
    /// free: a request begins where the last one on its thread ended, warm in cache.
    pub fn user_begin_after(&self, previous: UserId) -> HvResult<UserId> {
        let (id, _) = self.users.alloc_near(previous as usize).ok_or(VMSRS_ETOOMANY)?;
        Ok(id)
    }

    /// The thread that ran `last` (its last user, ended) exits: the next new thread begins
    /// its first user in that slot, if it is still free.
    pub fn offer_slot(&self, last: UserId) {
        if last != 0 {
            self.users.offer(users::slot_index(last));
        }
    }

    /// End a user at its end point: commit it, or (if it faulted) collect it (G7).
    ///
    /// Must run on the thread that runs `u`.
    pub fn user_end(&self, u: UserId) -> HvResult<EndKind> {
        let slot = self.users.get(u).ok_or(VMSRS_ENOUSER)?;
        let section = slot.reader.enter();
        self.slot_suppressed(u, slot); // a doomed user ends faulted
        match slot.state() {
            users::ACTIVE => {
                slot.set_committed();
                // SAFETY: called on the user's own thread (contract of user_end).
                let owned = unsafe { slot.owned() };
                for &g in owned.log.as_slice() {
                    self.with_granule(g as usize, |gl| self.fold_locked(gl, g as usize, u));
                }
                owned.log.clear();
                if self.exposure_on.load(Ordering::Relaxed) {
                    self.exposures.on_commit(u);
                }
                slot.note_committed();
                drop(section); // before the slot can pass to another thread
                self.users.free(slot);
                Ok(EndKind::Committed)
            }
            users::FAULTED => {
                // SAFETY: called on the user's own thread (contract of user_end).
                let owned = unsafe { slot.owned() };
                for &g in owned.log.as_slice() {
                    self.with_granule(g as usize, |gl| {
                        if gl.flags() & POLLUTED != 0 {
                            self.restore_locked(gl, g as usize);
                        }
                        self.remove_entries_locked(gl, g as usize, u);
                    });
                }
                owned.log.clear();
                owned.shadow.clear();
                self.faulted.fetch_sub(1, Ordering::SeqCst);
                self.lower_gate();
                drop(section); // before the slot can pass to another thread
                self.users.free(slot);
                self.counters.collected.fetch_add(1, Ordering::Relaxed);
                Ok(EndKind::Faulted)
            }
            _ => Err(VMSRS_EINVAL),
        }
    }

    /// Enter suppression mode for `u` (the crash suppression module). Idempotent.
    ///
    /// Async-signal-safe; must run on the thread that runs `u`.
    pub fn crash_suppression(&self, u: UserId) -> HvResult<()> {
        let slot = self.users.get(u).ok_or(VMSRS_ENOUSER)?;
        let _s = slot.reader.enter();
        if slot.state() != users::ACTIVE {
            return Ok(());
        }
        // Every load from here on takes the checked path …
        self.raise_gate();
        self.faulted.fetch_add(1, Ordering::SeqCst);
        // … while restorations keep u's granules marked …
        slot.set_state(users::FAULTING);
        // SAFETY: called on the user's own thread (contract of crash_suppression).
        let owned = unsafe { slot.owned() };
        for &g in owned.log.as_slice() {
            // Marked unconditionally: even if a wild write broke F's entry (so it no longer
            // names F), the restoration that follows must run and find the damage (G6).
            // The head's newest bytes may still be only in raw memory, which restorations are
            // about to rewrite: move them into the entry first (F's suppressed view reads it).
            self.with_granule(g as usize, |gl| {
                self.materialize(gl, g as usize);
                gl.set(POLLUTED)
            });
        }
        // … and this store is the fault's linearization point.
        slot.set_state(users::FAULTED);
        self.counters.faulted.fetch_add(1, Ordering::Relaxed);
        if self.exposure_on.load(Ordering::Relaxed) {
            self.exposures.on_fault(u, &mut |reader| self.exposed(reader));
        }
        Ok(())
    }

    /// `reader` is reported exposed to a faulted writer: under `cascade`, doom it to fault too.
    fn exposed(&self, reader: UserId) {
        if self.cfg.cascade {
            if let Some(s) = self.users.get(reader) {
                s.doomed.store(reader, Ordering::Release);
            }
        }
    }

    /// Is `u` suppressed (faulted, not yet collected)? Enters suppression first if `u` was
    /// doomed by a cascade.
    pub fn suppressed(&self, u: UserId) -> bool {
        self.users.get(u).is_some_and(|s| self.slot_suppressed(u, s))
    }

    /// Is `u` doomed by a cascade (another user's fault exposed it) and not yet in its fault?
    /// It enters the fault itself at its next monitored operation; a caller that must do
    /// more at a fault entry than the hv does (the runtime's watched ranges) enters it first.
    #[inline(always)]
    pub fn doomed(&self, u: UserId) -> bool {
        self.cfg.cascade && self.users.get(u).is_some_and(|s| s.doomed_now(u))
    }

    /// [`Hv::suppressed`] for a slot already looked up.
    fn slot_suppressed(&self, u: UserId, s: &UserSlot) -> bool {
        if s.doomed_now(u) {
            let _ = self.crash_suppression(u);
        }
        matches!(s.state(), users::FAULTING | users::FAULTED)
    }

    // ----- monitored access --------------------------------------------------------------

    /// Monitored store of `src` to `dst` by user `u` (class 1 / class 3), or by no user
    /// (`u == 0`: a thread for which no user could be created; see [`Writer::Anonymous`]).
    /// Bytes outside every range are written plainly; `Err(VMSRS_EFAULT)` when some of them
    /// are not writable (the spans before it were written, as by `memcpy`). Must run on the
    /// thread that runs `u`.
    pub fn store(&self, u: UserId, dst: usize, src: &[u8]) -> HvResult<()> {
        let w = self.writer(u)?;
        let _s = match w {
            Writer::User { slot, .. } => slot.reader.enter(),
            Writer::Anonymous => Section::shared(),
        };
        // The common case: every byte in one range (no plain span to write first).
        if let Some(r) = self.ranges.find(dst) {
            if dst + src.len() <= r.end() {
                self.store_in_range(&w, &r, dst, src);
                return Ok(());
            }
        }
        // The plain (unmonitored) spans first: if one of them is not writable the store
        // fails before any monitored byte changed, as the plain access would have faulted.
        let mut result = Ok(());
        self.for_spans(dst, src.len(), &mut |span, r| {
            if result.is_ok() && r.is_none() {
                let off = span.0 - dst;
                result = plain_write(span.0, &src[off..off + (span.1 - span.0)]);
            }
        });
        result?;
        self.for_spans(dst, src.len(), &mut |span, r| {
            if let Some(r) = r {
                let off = span.0 - dst;
                self.store_in_range(&w, &r, span.0, &src[off..off + (span.1 - span.0)]);
            }
        });
        Ok(())
    }

    /// The grace-period section of an operation by `u` (by no user if `u` is not live).
    #[inline]
    fn section(&self, u: UserId) -> Section<'_> {
        match self.users.get(u) {
            Some(slot) => slot.reader.enter(),
            None => Section::shared(),
        }
    }

    /// Before `fork` (pthread_atfork prepare): let every hv operation in progress finish and
    /// hold new ones back (so no granule lock is held mid-operation), then take the store's
    /// table-wide locks (profile, exposures, every entry pool), so the child never inherits one
    /// held by a thread that does not come along. Released by [`Hv::after_fork`].
    pub fn before_fork(&self) {
        // No hv operation may be mid-way at the fork: it could hold a granule lock. (A thread
        // stopped inside one past the limit keeps its lock in the child; nothing can help it.)
        let _ = crate::grace::quiesce_for_fork(self.users.readers(), GRACE_LIMIT_MS);
        self.profile_lock.lock_raw();
        self.exposures.fork_lock().lock_raw();
        self.entries.fork_lock().lock_raw();
    }

    /// After `fork`, in the parent and in the child: release what [`Hv::before_fork`] took.
    /// In the child also drop the grace-period sections of the threads that did not come
    /// along (the forking thread was inside none), so `unprofile` never waits for them. A
    /// granule lock another thread held at the fork stays held in the child: servers fork
    /// from threads that run no user.
    pub fn after_fork(&self, child: bool) {
        self.entries.fork_lock().unlock_raw();
        self.exposures.fork_lock().unlock_raw();
        self.profile_lock.unlock_raw();
        if child {
            self.users.readers().for_each(|r| r.reset_after_fork());
            crate::grace::reset_shared_after_fork();
        }
        crate::grace::fork_done();
    }

    /// Who stores: a live user (suppressed or not), or nobody.
    fn writer(&self, u: UserId) -> HvResult<Writer<'_>> {
        if u == 0 {
            return Ok(Writer::Anonymous);
        }
        let slot = self.users.get(u).ok_or(VMSRS_ENOUSER)?;
        Ok(Writer::User { u, slot, suppressed: self.slot_suppressed(u, slot) })
    }

    /// Monitored store of the low `n` bytes of `val` (1 ≤ n ≤ 8) at `addr`: the scalar
    /// fast path of [`Hv::store`], same semantics. Must run on the thread that runs `u`.
    #[inline]
    pub fn store_scalar(&self, u: UserId, addr: usize, val: u64, n: usize) -> HvResult<()> {
        let off = addr & (GRANULE - 1);
        let Some(slot) = self.users.get(u) else {
            return self.store(u, addr, &val.to_le_bytes()[..n]);
        };
        let _s = slot.reader.enter();
        match self.ranges.find(addr) {
            Some(r)
                if off + n <= GRANULE
                    && addr + n <= r.end()
                    && slot.state() == users::ACTIVE
                    && slot.doomed.load(Ordering::Relaxed) != u =>
            {
                let g = addr - off;
                let mask = (((1u16 << n) - 1) << off) as u8;
                // SAFETY: g is a granule of r (addr lies in r).
                let meta = unsafe { r.meta(g) };
                self.store_granule(u, slot, meta, g, mask, val << (8 * off));
                Ok(())
            }
            _ => self.store(u, addr, &val.to_le_bytes()[..n]),
        }
    }

    /// Journal a store by `u` (0: no user) that has already landed in memory (a hardware
    /// watchpoint traps after the store): `before` and `after` are the bytes at `addr` as last
    /// journaled and as now; the store is the bytes that differ. The same record as
    /// [`Hv::store`] with `before` as the memory it overwrote, and memory is never written
    /// (another thread may have stored there since). A suppressed user's bytes go to its
    /// shadow; putting memory back is the caller's. Within one granule of one range, else
    /// `Err(VMSRS_EINVAL)`. Must run on the thread that runs `u`.
    pub fn store_landed(&self, u: UserId, addr: usize, before: &[u8], after: &[u8]) -> HvResult<()> {
        let n = after.len();
        let g = addr & !(GRANULE - 1);
        if n == 0 || before.len() != n || (addr + n - 1) & !(GRANULE - 1) != g {
            return Err(VMSRS_EINVAL);
        }
        let _s = self.section(u);
        let r = self.ranges.find(addr).filter(|r| addr + n <= r.end()).ok_or(VMSRS_EINVAL)?;
        let (seen, val) = pack(g, addr, after);
        let (_, old) = pack(g, addr, before);
        // SAFETY: g is a granule of r (addr lies in r).
        let meta = unsafe { r.meta(g) };
        // Raw memory at `g` already holds this store's bytes, which are no head's: settle `g` as
        // it was before them first, before anything materialises it from raw memory (the fault
        // entry a doomed user makes in `writer` does, for each of its granules: another user's
        // entry took the bytes, and every later load saw them).
        {
            let mut gl = meta.lock();
            if gl.flags() & DEAD == 0 {
                self.materialize_seen(&mut gl, g, seen_raw(g, Some((seen, old))));
            }
        }
        let w = self.writer(u)?;
        let mask = (0..n).filter(|&i| before[i] != after[i]).fold(0u8, |m, i| m | 1 << (addr - g + i));
        if mask == 0 {
            return Ok(());
        }
        match w {
            // SAFETY: runs on the user's own thread (the contract).
            Writer::User { slot, suppressed: true, .. } => unsafe {
                self.shadow_store(slot, &r, g, mask, val)
            },
            Writer::User { u, slot, suppressed: false } => {
                let mut gl = meta.lock();
                self.store_granule_slow(u, slot, &mut gl, g, mask, val, Some((seen, old)));
            }
            Writer::Anonymous => {
                let mut gl = meta.lock();
                self.store_final_locked(&mut gl, g, mask, val, Some((seen, old)));
            }
        }
        Ok(())
    }

    /// Monitored load of `n` bytes (1 ≤ n ≤ 8) at `addr` as seen by `u` (0: no user):
    /// the scalar fast path of [`Hv::load`], same semantics. Bytes above `n` are zero.
    #[inline]
    pub fn load_scalar(&self, u: UserId, addr: usize, n: usize) -> HvResult<u64> {
        self.load_scalar_asking(u, addr, n, false).map(|(v, _)| v)
    }

    /// [`Hv::load_scalar`], asking for a reader as [`Hv::load_asking`] does.
    #[inline]
    pub fn load_scalar_asking(
        &self,
        u: UserId,
        addr: usize,
        n: usize,
        ask: bool,
    ) -> HvResult<(u64, Reading)> {
        let _s = self.section(u);
        let off = addr & (GRANULE - 1);
        let keep = if n == 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
        if off + n <= GRANULE && !self.exposure_on.load(Ordering::Relaxed) {
            if let Some(r) = self.ranges.find(addr) {
                let normal = u == 0 || self.users.get(u).is_some_and(|s| s.state() == users::ACTIVE);
                if addr + n <= r.end() && normal {
                    let g = addr - off;
                    // SAFETY: g is a granule of r (addr lies in r).
                    let meta = unsafe { r.meta(g) };
                    let v = self.load_normal(u, &mut Track::Off, meta, g, 0xFF);
                    return Ok(((v >> (8 * off)) & keep, Reading::Done));
                }
            }
        }
        let mut b = [0u8; 8];
        let reading = self.load_asking(u, addr, &mut b[..n], ask)?;
        Ok((u64::from_le_bytes(b), reading))
    }

    /// Monitored `memset`.
    pub fn fill(&self, u: UserId, dst: usize, byte: u8, len: usize) -> HvResult<()> {
        let chunk = [byte; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            self.store(u, dst + done, &chunk[..n])?;
            done += n;
        }
        Ok(())
    }

    /// Monitored load into `dst` of the bytes at `src`, as seen by user `u` (G3 / G4).
    /// `u` may be 0 for a reader that is no user (sees the G3 view; never recorded as exposed).
    pub fn load(&self, u: UserId, src: usize, dst: &mut [u8]) -> HvResult<()> {
        self.load_asking(u, src, dst, false).map(drop)
    }

    /// [`Hv::load`]; and when `ask`, `u` is 0 and exposures are tracked, a load that read
    /// bytes of an active user says [`Reading::ReaderNeeded`] (G8 must be able to name its
    /// reader): the caller becomes a user and loads again.
    pub fn load_asking(&self, u: UserId, src: usize, dst: &mut [u8], ask: bool) -> HvResult<Reading> {
        if self.quiescent() {
            return plain_read(src, dst).map(|_| Reading::Done);
        }
        let _s = self.section(u);
        let suppressed = u != 0 && self.suppressed(u);
        let mut track = match (self.exposure_on.load(Ordering::Relaxed), u, ask) {
            (false, _, _) | (true, 0, false) => Track::Off,
            (true, 0, true) => Track::Ask,
            (true, _, _) => Track::Record,
        };
        let mut result = Ok(());
        self.for_spans(src, dst.len(), &mut |span, r| {
            if result.is_err() {
                return;
            }
            let off = span.0 - src;
            let out = &mut dst[off..off + (span.1 - span.0)];
            match r {
                None => result = plain_read(span.0, out),
                Some(r) => self.load_in_range(u, suppressed, &mut track, &r, span.0, out),
            }
        });
        result.map(|_| if track == Track::Needed { Reading::ReaderNeeded } else { Reading::Done })
    }

    /// Demand-restore every polluted granule of `addr..addr+len` (for output of monitored
    /// strings by a normal user). After it, raw memory holds the G3 value of those bytes.
    pub fn restore_range(&self, addr: usize, len: usize) {
        if self.faulted.load(Ordering::Acquire) == 0 {
            return;
        }
        let _s = Section::shared();
        self.for_spans(addr, len, &mut |span, r| {
            if let Some(r) = r {
                let mut g = span.0 & !(GRANULE - 1);
                while g < span.1 {
                    // SAFETY: g is a granule of r.
                    let meta = unsafe { r.meta(g) };
                    if meta.flags.load(Ordering::Acquire) & POLLUTED != 0 {
                        let mut gl = meta.lock();
                        if gl.flags() & (POLLUTED | DEAD) == POLLUTED {
                            self.restore_locked(&mut gl, g);
                        }
                    }
                    g += GRANULE;
                }
            }
        });
    }

    /// Whether some granule of `addr..addr+len` is polluted: its raw bytes hold a store of a
    /// faulted user that a normal user's load must not see (drop-in mode fences such pages).
    /// Lock-free: reads each granule's published flags.
    pub fn polluted(&self, addr: usize, len: usize) -> bool {
        if self.faulted.load(Ordering::Acquire) == 0 {
            return false;
        }
        let _s = Section::shared();
        let mut found = false;
        self.for_spans(addr, len, &mut |span, r| {
            if let (Some(r), false) = (r, found) {
                let mut g = span.0 & !(GRANULE - 1);
                while g < span.1 && !found {
                    // SAFETY: g is a granule of r.
                    let flags = unsafe { r.meta(g) }.flags.load(Ordering::Acquire);
                    found = flags & (POLLUTED | DEAD) == POLLUTED;
                    g += GRANULE;
                }
            }
        });
        found
    }

    /// Split `addr..addr+len` into spans inside one range or outside all ranges.
    #[inline]
    fn for_spans(&self, addr: usize, len: usize, f: &mut dyn FnMut((usize, usize), Option<RangeRef>)) {
        let end = addr.saturating_add(len);
        if !self.may_touch(addr, len) {
            f((addr, end), None);
            return;
        }
        let mut p = addr;
        while p < end {
            match self.ranges.find(p) {
                Some(r) => {
                    let q = r.end().min(end);
                    f((p, q), Some(r));
                    p = q;
                }
                None => {
                    let q = self.ranges.next_from(p).map_or(end, |r| r.start.clamp(p + 1, end));
                    f((p, q), None);
                    p = q;
                }
            }
        }
    }

    #[inline]
    fn store_in_range(&self, w: &Writer<'_>, r: &RangeRef, p: usize, bytes: &[u8]) {
        let end = p + bytes.len();
        let mut g = p & !(GRANULE - 1);
        while g < end {
            let lo = p.max(g);
            let hi = end.min(g + GRANULE);
            let (mask, val) = pack(g, lo, &bytes[lo - p..hi - p]);
            // SAFETY: g is a granule of r.
            let meta = unsafe { r.meta(g) };
            match *w {
                // SAFETY: store() runs on the user's own thread.
                Writer::User { slot, suppressed: true, .. } => unsafe {
                    self.shadow_store(slot, r, g, mask, val)
                },
                Writer::User { u, slot, suppressed: false } => {
                    self.store_granule(u, slot, meta, g, mask, val)
                }
                Writer::Anonymous => {
                    let mut gl = meta.lock();
                    self.store_final_locked(&mut gl, g, mask, val, None);
                }
            }
            g += GRANULE;
        }
    }

    /// A suppressed user's store of the bytes of `mask` of granule `g` of range `r`: to its
    /// shadow (G4).
    ///
    /// # Safety
    /// Runs on the thread that runs the user of `slot` (which owns its shadow).
    unsafe fn shadow_store(&self, slot: &UserSlot, r: &RangeRef, g: usize, mask: u8, val: u64) {
        // SAFETY: the contract.
        let owned = unsafe { slot.owned() };
        if !owned.shadow.put(g as u64, r.id, mask, val) {
            self.counters.unrecorded.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.shadow_stores.fetch_add(1, Ordering::Relaxed);
    }

    /// A store that can never be withdrawn (its writer has no user, or its record could not
    /// be made): it is final at once, like a committed store — the bytes of `mask` leave every
    /// older entry and become `base` — so G3 stays exact for every other byte and user. Needs
    /// no memory. Counted in `unrecorded`.
    fn store_final_locked(
        &self,
        gl: &mut GranuleGuard,
        g: usize,
        mask: u8,
        val: u64,
        landed: Option<(u8, u64)>,
    ) {
        self.counters.unrecorded.fetch_add(1, Ordering::Relaxed);
        self.materialize_seen(gl, g, seen_raw(g, landed));
        let meta = gl.meta;
        // SAFETY: granule lock held.
        let head = unsafe { *meta.cold().head.get() };
        if gl.flags() & DEAD != 0 || head == NIL {
            // No history: raw memory is the G3 value (I2) and `base` is unused.
            put_raw(g, mask, val, landed);
            return;
        }
        if gl.flags() & CORRUPT != 0 || !self.meta_intact(meta, g) {
            self.corrupt(gl, g);
            put_raw(g, mask, val, landed);
            return;
        }
        let pool = &self.entries;
        let mut prev = NIL;
        let mut idx = head;
        while idx != NIL {
            if !pool_valid(pool, idx) || !pool.get(idx).intact(idx, self.key) {
                // Stop at damage: relinking around it would reseal it (G6).
                self.corrupt(gl, g);
                put_raw(g, mask, val, landed);
                return;
            }
            let next = pool.get(idx).next;
            let e = pool.get_mut(idx);
            e.mask &= !mask;
            if e.mask == 0 {
                self.unlink(pool, meta, prev, next);
                self.release(idx, 0);
            } else {
                e.seal(idx, self.key);
                prev = idx;
            }
            idx = next;
        }
        // SAFETY: granule lock held.
        unsafe {
            let b = &mut *meta.cold().base.get();
            let bm = byte_mask(mask);
            *b = (*b & !bm) | (val & bm);
        }
        self.seal_meta(meta, g);
        self.refresh_hint(gl, g);
        put_raw(g, mask, val, landed);
    }

    /// A store by the normal user `u`. The fast path — `u` heads the granule's history with
    /// every byte of `mask` (the hint says so) — writes raw memory and marks the head `DIRTY`:
    /// the lock word and the granule are all it touches, and the entry is brought up to date
    /// by whichever locked operation next needs it ([`Hv::materialize`]).
    #[inline]
    fn store_granule(&self, u: UserId, slot: &UserSlot, meta: &GranuleMeta, g: usize, mask: u8, val: u64) {
        let mut gl = meta.lock();
        let (hw, hmask) = gl.hint();
        if hw != 0
            && hmask & mask == mask
            && hw == self.hint_tag(g, u, hmask)
            && gl.flags() & (DEAD | CORRUPT) == 0
        {
            write_raw(g, mask, val);
            gl.set_quiet(DIRTY, true);
            return;
        }
        self.store_granule_slow(u, slot, &mut gl, g, mask, val, None);
    }

    #[inline(never)]
    #[allow(clippy::too_many_arguments)] // the fast path's arguments, and what a landed store saw
    fn store_granule_slow(
        &self,
        u: UserId,
        slot: &UserSlot,
        gl: &mut GranuleGuard,
        g: usize,
        mask: u8,
        val: u64,
        landed: Option<(u8, u64)>,
    ) {
        let meta = gl.meta;
        if gl.flags() & DEAD != 0 {
            put_raw(g, mask, val, landed);
            return;
        }
        self.materialize_seen(gl, g, seen_raw(g, landed));
        let pool = &self.entries;
        // SAFETY: granule lock held for all metadata accesses below.
        let head = unsafe { *meta.cold().head.get() };
        if head != NIL && pool_valid(pool, head) {
            let e = pool.get_mut(head);
            if e.writer == u {
                // Resealing a damaged entry would launder a wild write into it (G6).
                if !e.intact(head, self.key) {
                    self.corrupt(gl, g);
                    self.counters.unrecorded.fetch_add(1, Ordering::Relaxed);
                    put_raw(g, mask, val, landed);
                    return;
                }
                let bm = byte_mask(mask);
                let added = mask & !e.mask;
                e.bytes = (e.bytes & !bm) | (val & bm);
                e.mask |= mask;
                e.seal(head, self.key);
                let hmask = e.mask;
                if added != 0 && e.next != NIL {
                    // Bytes new to the head may still sit in u's older entries.
                    self.prune_own_locked(gl, pool, head, u, added);
                }
                if gl.flags() & CORRUPT == 0 {
                    self.set_hint(gl, g, u, hmask);
                }
                put_raw(g, mask, val, landed);
                return;
            }
        }
        // This path reseals `base`+`head`: check them first, so a wild write into them is
        // reported (and the granule never restored from) instead of laundered (G6).
        if !self.meta_intact(meta, g) {
            self.corrupt(gl, g);
        }
        // This store supersedes the bytes of `mask` in u's older entries for every view:
        // drop them (before allocating, so the entry count never overshoots its bound), so
        // the history stays bounded however often users alternate. If u already has an
        // entry here, g is already in its log.
        let logged = self.prune_own_locked(gl, pool, NIL, u, mask);
        // SAFETY: store() runs on the user's own thread, which owns its slot's pool.
        let Some(idx) = (unsafe { slot.pool.alloc(pool, users::slot_index(u)) }) else {
            return self.store_final_locked(gl, g, mask, val, landed);
        };
        // SAFETY: granule lock held (pruning never unlinks the head, which is not u's).
        let head = unsafe { *meta.cold().head.get() };
        // SAFETY: store() runs on the user's own thread.
        let owned = unsafe { slot.owned() };
        // The log drops, when it fills, granules logged twice (u's entry there went with
        // another user's commit and u stored again) and granules no range holds any more.
        if !logged && !owned.log.push_keeping(g as u64, |x| self.granule_monitored(x as usize)) {
            self.release(idx, u);
            return self.store_final_locked(gl, g, mask, val, landed);
        }
        if head == NIL {
            // SAFETY: granule lock held. With no history, raw memory is the G3 value (I2)
            // (as it was before a store that already landed).
            unsafe { *meta.cold().base.get() = seen_raw(g, landed) };
        }
        let e = pool.get_mut(idx);
        *e = Entry { writer: u, bytes: val, next: head, mask, ..Entry::default() };
        e.seal(idx, self.key);
        // SAFETY: granule lock held.
        unsafe { *meta.cold().head.get() = idx };
        self.seal_meta(meta, g);
        if gl.flags() & CORRUPT == 0 {
            self.set_hint(gl, g, u, mask);
        }
        put_raw(g, mask, val, landed);
    }

    #[inline]
    fn load_in_range(
        &self,
        u: UserId,
        suppressed: bool,
        track: &mut Track,
        r: &RangeRef,
        p: usize,
        out: &mut [u8],
    ) {
        let end = p + out.len();
        let mut g = p & !(GRANULE - 1);
        while g < end {
            let lo = p.max(g);
            let hi = end.min(g + GRANULE);
            // SAFETY: g is a granule of r.
            let meta = unsafe { r.meta(g) };
            let want = span_mask(g, lo, hi);
            let v = if suppressed {
                self.load_suppressed(u, r, meta, g, want)
            } else {
                self.load_normal(u, track, meta, g, want)
            };
            for (k, b) in out[lo - p..hi - p].iter_mut().enumerate() {
                *b = (v >> (8 * (lo - g + k))) as u8;
            }
            g += GRANULE;
        }
    }

    /// The G3 view of granule `g`'s `want` bytes, restoring it first if polluted; and what
    /// `track` says for G8.
    #[inline]
    fn load_normal(&self, u: UserId, track: &mut Track, meta: &GranuleMeta, g: usize, want: u8) -> u64 {
        if *track == Track::Off && meta.flags.load(Ordering::Acquire) & POLLUTED == 0 {
            return read_raw(g);
        }
        let mut gl = meta.lock();
        if gl.flags() & DEAD != 0 {
            return read_raw(g);
        }
        if gl.flags() & POLLUTED != 0 {
            self.restore_locked(&mut gl, g);
        }
        match *track {
            Track::Record => {
                self.record_exposures_locked(&gl, g, u, want);
            }
            Track::Ask if self.record_exposures_locked(&gl, g, 0, want) => *track = Track::Needed,
            _ => {}
        }
        read_raw(g)
    }

    fn load_suppressed(&self, u: UserId, r: &RangeRef, meta: &GranuleMeta, g: usize, want: u8) -> u64 {
        let slot = self.users.get(u);
        // SAFETY: load() runs on the user's own thread.
        let (smask, sbytes) = slot.map_or((0, 0), |s| unsafe { s.owned() }.shadow.get(g as u64, r.id));
        let need = want & !smask;
        let mut v = sbytes & byte_mask(smask);
        if need != 0 {
            let mut gl = meta.lock();
            let other = if gl.flags() & DEAD != 0 {
                read_raw(g)
            } else {
                match self.resolve_locked(&mut gl, g, View::Suppressed(u)) {
                    Some(res) => {
                        (res.value & byte_mask(res.covered)) | (read_raw(g) & !byte_mask(res.covered))
                    }
                    None => read_raw(g),
                }
            };
            v |= other & byte_mask(need);
        }
        v
    }

    // ----- locked granule operations -------------------------------------------------

    #[inline(always)]
    fn stripe(&self, g: usize) -> &Stripe {
        &self.stripes[((g as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize]
    }

    /// Give back entry `idx`, just unlinked under its granule's lock, on the thread running
    /// user `by` (0: no user): into that user's own pool when the entry came from it, else
    /// onto its owner slot's remote list.
    fn release(&self, idx: u32, by: UserId) {
        let owner = self.entries.owner(idx);
        let pool = &self.users.slots[owner & (users::MAX_USERS - 1)].pool;
        if by != 0 && users::slot_index(by) == owner {
            // SAFETY: `by` runs on this thread (every caller passes its own user or 0), and
            // the thread running a slot's user is the one that owns its pool.
            unsafe { pool.release_own(&self.entries, idx) }
        } else {
            pool.release_remote(&self.entries, idx)
        }
    }

    /// Does some range hold a byte of granule `g`?
    fn granule_monitored(&self, g: usize) -> bool {
        self.ranges.find(g).is_some() || self.ranges.next_from(g).is_some_and(|r| r.start < g + GRANULE)
    }

    /// Run `f` under the lock of granule `g` in every monitored range with bytes in `g`:
    /// adjacent ranges may share a granule, each with its own metadata (and lock).
    fn with_granule(&self, g: usize, mut f: impl FnMut(&mut GranuleGuard<'_>)) {
        let mut p = g;
        while p < g + GRANULE {
            let Some(r) = self.ranges.find(p).or_else(|| self.ranges.next_from(p)) else { return };
            if r.start >= g + GRANULE {
                return;
            }
            // SAFETY: r has a byte in g (r.start < g + 8 and r.end() > p >= g), so g is a granule of r.
            let meta = unsafe { r.meta(g) };
            let mut gl = meta.lock();
            if gl.flags() & DEAD == 0 {
                f(&mut gl);
            }
            p = r.end();
        }
    }

    /// The metadata seal, offset so that all-zero metadata (a fresh granule) is intact.
    #[inline(always)]
    fn meta_seal(&self, base: u64, head: u32, g: usize) -> u64 {
        mix(base, head as u64, g as u64, self.key) ^ mix(0, NIL as u64, g as u64, self.key)
    }

    fn seal_meta(&self, meta: &GranuleMeta, g: usize) {
        // SAFETY: granule lock held by every caller.
        unsafe {
            *meta.cold().sum.get() = self.meta_seal(*meta.cold().base.get(), *meta.cold().head.get(), g)
        };
    }

    fn meta_intact(&self, meta: &GranuleMeta, g: usize) -> bool {
        // SAFETY: granule lock held by every caller.
        unsafe {
            *meta.cold().sum.get() == self.meta_seal(*meta.cold().base.get(), *meta.cold().head.get(), g)
        }
    }

    /// Report granule `g`'s recovery data as damaged (once per granule) and never use it again.
    fn corrupt(&self, gl: &mut GranuleGuard, g: usize) {
        gl.set_hint(0, 0);
        gl.set_quiet(DIRTY, false);
        if gl.flags() & CORRUPT != 0 {
            return;
        }
        gl.set(CORRUPT);
        self.counters.corruptions.fetch_add(1, Ordering::Relaxed);
        self.counters.last_corrupt.store(g, Ordering::Relaxed);
    }

    /// Bring the head entry up to date when the fast path left its newest bytes in raw memory
    /// only (`DIRTY`): every locked operation that reads, moves or rewrites recorded bytes
    /// calls this first. The hint must match the entry, and the entry its seal; otherwise the
    /// damage is reported and nothing is resealed (G6).
    #[inline]
    fn materialize(&self, gl: &mut GranuleGuard, g: usize) {
        if gl.flags() & DIRTY != 0 {
            self.materialize_seen(gl, g, read_raw(g));
        }
    }

    /// [`Hv::materialize`] with `raw` as the granule's memory (a store that already landed
    /// is not the head's: [`Hv::store_landed`]).
    fn materialize_seen(&self, gl: &mut GranuleGuard, g: usize, raw: u64) {
        if gl.flags() & DIRTY == 0 {
            return;
        }
        gl.set_quiet(DIRTY, false);
        let (tag, mask) = gl.hint();
        let pool = &self.entries;
        // The head index is sealed with `base`: check it before following it, so a damaged
        // link can never lead into (and reseal) another granule's entry.
        if !self.meta_intact(gl.meta, g) {
            return self.corrupt(gl, g);
        }
        // SAFETY: granule lock held.
        let head = unsafe { *gl.meta.cold().head.get() };
        if head == NIL || !pool_valid(pool, head) {
            return self.corrupt(gl, g);
        }
        let e = pool.get_mut(head);
        if !e.intact(head, self.key) || e.mask != mask || tag != self.hint_tag(g, e.writer, mask) {
            return self.corrupt(gl, g);
        }
        let bm = byte_mask(mask);
        e.bytes = (e.bytes & !bm) | (raw & bm);
        e.seal(head, self.key);
    }

    /// Set the hint from the head entry after an operation that may have changed it.
    fn refresh_hint(&self, gl: &mut GranuleGuard, g: usize) {
        let pool = &self.entries;
        // SAFETY: granule lock held.
        let head = unsafe { *gl.meta.cold().head.get() };
        if head != NIL && gl.flags() & (CORRUPT | DEAD) == 0 && pool_valid(pool, head) {
            let e = pool.get(head);
            if e.intact(head, self.key) {
                return self.set_hint(gl, g, e.writer, e.mask);
            }
        }
        gl.set_hint(0, 0);
    }

    /// The hint's keyed tag for writer `u` heading granule `g` with `mask`: the id's low 32
    /// bits (distinct for live users, whose slot bits differ) xored with a keyed pad of the
    /// granule and the mask. For a given granule and mask, two live users never share a tag;
    /// a wild write names a live user only by chance (2^-32). 0 is never set as a hint.
    #[inline(always)]
    fn hint_tag(&self, g: usize, u: UserId, mask: u8) -> u32 {
        let pad =
            ((g as u64 ^ (mask as u64) << 56 ^ self.key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
        u as u32 ^ pad
    }

    fn set_hint(&self, gl: &mut GranuleGuard, g: usize, u: UserId, mask: u8) {
        gl.set_hint(self.hint_tag(g, u, mask), mask);
    }

    /// The value of granule `g` in `view`, or `None` if its recovery data is corrupt (then
    /// reported). `covered` marks the bytes some history entry speaks for.
    fn resolve_locked(&self, gl: &mut GranuleGuard, g: usize, view: View) -> Option<Resolved> {
        let meta = gl.meta;
        self.materialize(gl, g);
        if gl.flags() & CORRUPT != 0 {
            return None;
        }
        if !self.meta_intact(meta, g) {
            self.corrupt(gl, g);
            return None;
        }
        let pool = &self.entries;
        let (mut value, mut have, mut covered, mut faulting) = (0u64, 0u8, 0u8, false);
        // SAFETY: granule lock held.
        let mut idx = unsafe { *meta.cold().head.get() };
        while idx != NIL {
            if !pool_valid(pool, idx) || !pool.get(idx).intact(idx, self.key) {
                self.corrupt(gl, g);
                return None;
            }
            let e = pool.get(idx);
            let state = self.users.writer_state(e.writer);
            faulting |= state == WriterState::Faulting;
            let visible = match view {
                View::Normal => state != WriterState::Faulted,
                View::Suppressed(f) => e.writer == f || state != WriterState::Faulted,
            };
            if visible {
                let take = e.mask & !have;
                value |= e.bytes & byte_mask(take);
                have |= take;
            }
            covered |= e.mask;
            idx = e.next;
        }
        // SAFETY: granule lock held.
        value |= unsafe { *meta.cold().base.get() } & !byte_mask(have);
        Some(Resolved { value, covered, faulting })
    }

    /// Demand restoration: rewrite raw memory with the G3 value.
    fn restore_locked(&self, gl: &mut GranuleGuard, g: usize) {
        match self.resolve_locked(gl, g, View::Normal) {
            Some(res) => {
                write_raw(g, res.covered, res.value);
                if !res.faulting {
                    gl.clear(POLLUTED);
                }
                self.stripe(g).restorations.fetch_add(1, Ordering::Relaxed);
            }
            // Never restore from corrupt data (G6); stop retrying it.
            None => gl.clear(POLLUTED),
        }
    }

    /// Commit: fold `u`'s entries into `base` and drop what they shadow ("committed writes
    /// are final"). Walks newest → oldest, accumulating the bytes `u` has spoken for.
    fn fold_locked(&self, gl: &mut GranuleGuard, g: usize, u: UserId) {
        if self.fold_sole_head(gl, g, u) {
            return;
        }
        let meta = gl.meta;
        self.materialize(gl, g);
        if !self.meta_intact(meta, g) {
            self.corrupt(gl, g);
            return;
        }
        let pool = &self.entries;
        let mut cleared = 0u8;
        let mut prev = NIL;
        // SAFETY: granule lock held.
        let mut idx = unsafe { *meta.cold().head.get() };
        let mut base_mask = 0u8;
        let mut base_val = 0u64;
        while idx != NIL {
            if !pool_valid(pool, idx) || !pool.get(idx).intact(idx, self.key) {
                self.corrupt(gl, g);
                return;
            }
            let next = pool.get(idx).next;
            let e = pool.get_mut(idx);
            let remove = if e.writer == u {
                let take = e.mask & !cleared;
                base_val |= e.bytes & byte_mask(take);
                base_mask |= take;
                cleared |= e.mask;
                true
            } else {
                e.mask &= !cleared;
                e.mask == 0
            };
            if remove {
                self.unlink(pool, meta, prev, next);
                self.release(idx, u);
            } else {
                e.seal(idx, self.key);
                prev = idx;
            }
            idx = next;
        }
        // SAFETY: granule lock held.
        unsafe {
            let b = &mut *meta.cold().base.get();
            *b = (*b & !byte_mask(base_mask)) | base_val;
        }
        self.seal_meta(meta, g);
        self.refresh_hint(gl, g);
    }

    /// The common commit: `u`'s entry is the granule's only one, and heads it. Raw memory
    /// holds its bytes (I1: `u` is not suppressed, and a restoration writes the same G3
    /// value), so they go into `base` from there, with no materializing of a `DIRTY` entry
    /// and no walk. The metadata and the entry are still checked against their seals, so
    /// damage is reported here as on the full fold (which takes over when any check fails).
    /// Returns `false` (nothing changed) when the granule is not in that shape.
    #[inline]
    fn fold_sole_head(&self, gl: &mut GranuleGuard, g: usize, u: UserId) -> bool {
        let (hw, mask) = gl.hint();
        if hw == 0 || hw != self.hint_tag(g, u, mask) || gl.flags() & (CORRUPT | DEAD) != 0 {
            return false;
        }
        let meta = gl.meta;
        let pool = &self.entries;
        // SAFETY: granule lock held.
        let head = unsafe { *meta.cold().head.get() };
        if head == NIL || !pool_valid(pool, head) {
            return false;
        }
        let e = pool.get(head);
        if e.writer != u
            || e.mask != mask
            || e.next != NIL
            || !self.meta_intact(meta, g)
            || !e.intact(head, self.key)
        {
            return false;
        }
        let bm = byte_mask(mask);
        // SAFETY: granule lock held.
        unsafe {
            let b = &mut *meta.cold().base.get();
            *b = (*b & !bm) | (read_raw(g) & bm);
            *meta.cold().head.get() = NIL;
        }
        self.seal_meta(meta, g);
        gl.set_quiet(DIRTY, false);
        gl.set_hint(0, 0);
        self.release(head, u);
        true
    }

    /// Clear `mask` from `u`'s entries of the granule older than `after` (all of them if
    /// `after` is NIL), unlinking emptied ones; returns whether `u` has such an entry. Keeps
    /// at most one entry per (writer, byte). Stops at a damaged entry (`resolve_locked`
    /// reports it).
    fn prune_own_locked(&self, gl: &GranuleGuard, pool: &Entries, after: u32, u: UserId, mask: u8) -> bool {
        let meta = gl.meta;
        let mut found = false;
        let mut prev = after;
        let mut idx = if after == NIL {
            // SAFETY: granule lock held by the caller.
            unsafe { *meta.cold().head.get() }
        } else {
            pool.get(after).next
        };
        while idx != NIL && pool_valid(pool, idx) && pool.get(idx).intact(idx, self.key) {
            let next = pool.get(idx).next;
            let e = pool.get_mut(idx);
            if e.writer == u {
                found = true;
                e.mask &= !mask;
                if e.mask == 0 {
                    self.unlink(pool, meta, prev, next);
                    self.release(idx, u);
                    idx = next;
                    continue;
                }
                e.seal(idx, self.key);
            }
            prev = idx;
            idx = next;
        }
        found
    }

    /// Collection: drop every entry of the faulted user `u`.
    fn remove_entries_locked(&self, gl: &mut GranuleGuard, g: usize, u: UserId) {
        let meta = gl.meta;
        self.materialize(gl, g);
        let pool = &self.entries;
        let mut prev = NIL;
        // SAFETY: granule lock held.
        let mut idx = unsafe { *meta.cold().head.get() };
        while idx != NIL && pool_valid(pool, idx) {
            if !pool.get(idx).intact(idx, self.key) {
                // Stop at damage: relinking around it would reseal it (G6).
                self.corrupt(gl, g);
                return;
            }
            let next = pool.get(idx).next;
            if pool.get(idx).writer == u {
                self.unlink(pool, meta, prev, next);
                self.release(idx, u);
            } else {
                prev = idx;
            }
            idx = next;
        }
        if gl.flags() & CORRUPT == 0 {
            self.seal_meta(meta, g);
        }
        self.refresh_hint(gl, g);
    }

    fn unlink(&self, pool: &Entries, meta: &GranuleMeta, prev: u32, next: u32) {
        if prev == NIL {
            // SAFETY: granule lock held by the caller.
            unsafe { *meta.cold().head.get() = next };
        } else {
            let p = pool.get_mut(prev);
            p.next = next;
            p.seal(prev, self.key);
        }
    }

    /// Did the reader read, among granule `g`'s `want` bytes, bytes whose latest store is by
    /// another user not yet faulted (active, or entering its fault: its bytes are still read
    /// until the fault's linearization point)? Each such (reader, writer, granule) is a
    /// candidate exposure (G8), recorded unless the reader is no user (0).
    fn record_exposures_locked(&self, gl: &GranuleGuard, g: usize, reader: UserId, want: u8) -> bool {
        let meta = gl.meta;
        let pool = &self.entries;
        let mut have = 0u8;
        let mut exposed = false;
        // SAFETY: granule lock held.
        let mut idx = unsafe { *meta.cold().head.get() };
        while idx != NIL && pool_valid(pool, idx) && have & want != want {
            let e = pool.get(idx);
            let state = self.users.writer_state(e.writer);
            if state != WriterState::Faulted {
                let take = e.mask & want & !have;
                let live = matches!(state, WriterState::Active | WriterState::Faulting);
                if take != 0 && e.writer != reader && live {
                    exposed = true;
                    if reader != 0 && self.exposures.candidate(reader, e.writer, g as u64) {
                        self.exposed(reader);
                    }
                }
                have |= e.mask;
            }
            idx = e.next;
        }
        exposed
    }

    // ----- reports ----------------------------------------------------------------------

    pub fn stats(&self) -> HvStats {
        let mut restorations = 0;
        for st in &self.stripes {
            restorations += st.restorations.load(Ordering::Relaxed);
        }

        let c = &self.counters;
        let (_, nexp) = self.exposures.reported(0, &mut []);
        let totals = self.users.totals();
        HvStats {
            ranges: self.ranges.count() as u64,
            users_begun: totals.begun,
            users_committed: totals.committed,
            users_faulted: c.faulted.load(Ordering::Relaxed),
            users_collected: c.collected.load(Ordering::Relaxed),
            users_live: totals.live,
            faulted_now: self.faulted.load(Ordering::Relaxed) as u64,
            restorations,
            history_entries: totals.entries,
            corruptions: c.corruptions.load(Ordering::Relaxed),
            last_corruption: c.last_corrupt.load(Ordering::Relaxed) as u64,
            unrecorded: c.unrecorded.load(Ordering::Relaxed),
            shadow_stores: c.shadow_stores.load(Ordering::Relaxed),
            exposures: nexp as u64,
            exposures_dropped: self.exposures.dropped(),
            meta_kept: c.meta_kept.load(Ordering::Relaxed),
        }
    }

    /// Exposure candidates and exposures dropped because their tables were full, or because
    /// a reader could not be named (one load).
    pub fn exposures_dropped(&self) -> u64 {
        self.exposures.dropped()
    }

    /// A load by no user read an active user's bytes ([`Reading::ReaderNeeded`]) and its
    /// thread could not be made a user (the user table is full): G8 cannot name that reader.
    /// Counted with the dropped exposure records, never silent.
    pub fn note_unnamed_reader(&self) {
        self.exposures.note_dropped();
    }

    /// Reported exposures from index `from`; returns (copied, total reported).
    pub fn exposures(&self, from: usize, out: &mut [Exposure]) -> (usize, usize) {
        self.exposures.reported(from, out)
    }

    /// Where the recovery data of the granule holding `addr` lives: the metadata and the
    /// newest history entry. Exists so tests can play the paper's Fig. 10 wild writer.
    pub fn recovery_area_of(&self, addr: usize) -> Option<(*mut u8, usize)> {
        let _s = Section::shared();
        let r = self.ranges.find(addr)?;
        let g = addr & !(GRANULE - 1);
        // SAFETY: g is a granule of r.
        let meta = unsafe { r.meta(g) };
        let _gl = meta.lock();
        // SAFETY: granule lock held.
        let head = unsafe { *meta.cold().head.get() };
        let pool = &self.entries;
        if head != NIL && pool_valid(pool, head) {
            Some((pool.chunk_of(head) as *mut u8, core::mem::size_of::<Entry>()))
        } else {
            let cold = meta.cold();
            Some((cold as *const ColdMeta as *mut u8, core::mem::size_of::<ColdMeta>()))
        }
    }
}

#[inline(always)]
fn pool_valid(pool: &Entries, idx: u32) -> bool {
    pool.valid(idx)
}

/// The mask of bytes `lo..hi` of granule `g`.
#[inline(always)]
fn span_mask(g: usize, lo: usize, hi: usize) -> u8 {
    (((1u16 << (hi - lo)) - 1) << (lo - g)) as u8
}

/// The granule's memory as a store that already landed found it (`landed`: the bytes, by
/// mask, that it and stores not yet journaled may have changed, as they were before); plain
/// memory otherwise.
#[inline]
fn seen_raw(g: usize, landed: Option<(u8, u64)>) -> u64 {
    match landed {
        Some((seen, old)) => (read_raw(g) & !byte_mask(seen)) | (old & byte_mask(seen)),
        None => read_raw(g),
    }
}

/// Write the bytes of `mask` unless the store already landed.
#[inline]
fn put_raw(g: usize, mask: u8, val: u64, landed: Option<(u8, u64)>) {
    if landed.is_none() {
        write_raw(g, mask, val);
    }
}

/// Place `bytes` (which start at `lo`) at their positions in granule `g`.
#[inline(always)]
fn pack(g: usize, lo: usize, bytes: &[u8]) -> (u8, u64) {
    let shift = lo - g;
    if bytes.len() == 8 {
        let v = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
        return (0xFF, v);
    }
    let mut v = 0u64;
    for (k, &b) in bytes.iter().enumerate() {
        v |= (b as u64) << (8 * (shift + k));
    }
    (span_mask(g, lo, lo + bytes.len()), v)
}

/// An unmonitored store: the program's own plain store, to an address the caller named,
/// through a guarded copy (a bad destination is reported, not a crash) that writes whole
/// aligned guest words with one access each: memory near a range may share a granule with
/// it, so it is never written in a way that could tear a concurrent store (G5).
#[inline]
fn plain_write(dst: usize, bytes: &[u8]) -> HvResult<()> {
    // SAFETY: a guest address the program names as it would to memcpy; never our memory
    // (profiled ranges cannot cover libvmsrs's mappings).
    unsafe { crate::uaccess::copy_to_guest(dst as *mut u8, bytes) }.map_err(|_| VMSRS_EFAULT)
}

/// An unmonitored load (or a monitored one on the quiescent path), as in `plain_write`:
/// an aligned guest word is read whole, so a granule is never seen torn (G5).
#[inline]
fn plain_read(src: usize, out: &mut [u8]) -> HvResult<()> {
    crate::uaccess::copy_from_guest(out, src as *const u8).map_err(|_| VMSRS_EFAULT)
}

/// Is every page of `addr..addr+len` mapped, readable and writable? (The store writes
/// monitored memory itself: a read-only table, such as `.rodata`, cannot be profiled.)
#[cfg(not(miri))]
fn is_mapped(addr: usize, len: usize) -> bool {
    let page = 4096;
    let start = addr & !(page - 1);
    let Some(end) = addr.checked_add(len).and_then(|e| e.checked_next_multiple_of(page)) else {
        return false;
    };
    // SAFETY: msync only inspects the mapping; it fails with ENOMEM on unmapped pages.
    if unsafe { libc::msync(start as *mut libc::c_void, end - start, libc::MS_ASYNC) } != 0 {
        return false;
    }
    writable(start, end)
}

/// Do the mappings of `/proc/self/maps` cover `start..end` with read and write permission?
#[cfg(not(miri))]
fn writable(start: usize, end: usize) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return false };
    let mut covered = start;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
        let Some((lo, hi)) = range.split_once('-') else { continue };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) else {
            continue;
        };
        if lo <= covered && covered < hi {
            if !perms.starts_with("rw") {
                return false;
            }
            covered = hi;
            if covered >= end {
                return true;
            }
        }
    }
    covered >= end
}

/// Miri has no `msync`; it checks every access against its allocations itself, so a range
/// that is not memory is reported there at the first access.
#[cfg(miri)]
fn is_mapped(addr: usize, len: usize) -> bool {
    addr.checked_add(len).is_some()
}

/// A per-process key for checksums, from the kernel's random source.
fn process_key() -> u64 {
    let mut k = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `k`.
    let n = unsafe { libc::getrandom(&mut k as *mut u64 as *mut libc::c_void, 8, libc::GRND_NONBLOCK) };
    if n != 8 {
        k = (&k as *const u64 as u64).rotate_left(17) ^ 0xA076_1D64_78BD_642F;
    }
    k | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_len(hv: &Hv, u: UserId) -> usize {
        // SAFETY: the test's one thread runs `u`.
        unsafe { hv.users.get(u).unwrap().owned() }.log.len()
    }

    /// A user that lives long (a thread's implicit user) logs a granule again at each store
    /// after another user's commit took its entry there, and logged the granules of ranges
    /// that went away: its log must stay bounded by what it can still hold entries on. (It
    /// grew by 8 bytes per request: 81 MiB over 4 million, for one granule.)
    #[test]
    fn a_long_lived_users_log_stays_bounded() {
        let hv = Hv::create(HvConfig::default()).unwrap();
        let mut counter = Box::new([0u64; 1]);
        let a = counter.as_mut_ptr() as usize;
        hv.profile(a, 8, b"counter").unwrap();
        let u = hv.user_begin().unwrap();
        for i in 0..20_000u64 {
            hv.store(u, a, &i.to_le_bytes()).unwrap();
            let v = hv.user_begin().unwrap();
            hv.store(v, a, &(i + 1).to_le_bytes()).unwrap();
            assert_eq!(hv.user_end(v).unwrap(), EndKind::Committed);
        }
        assert!(log_len(&hv, u) <= 1024, "one granule, logged {} times", log_len(&hv, u));
        // A scratch range profiled, written and unprofiled again and again (each unprofile
        // waits for a grace period: a few of them).
        let w = hv.user_begin().unwrap();
        let mut scratch = Box::new([0u64; 4]);
        let s = scratch.as_mut_ptr() as usize;
        for i in 0..1_200u64 {
            hv.profile(s, 32, b"scratch").unwrap();
            hv.store(w, s + 8 * (i as usize % 4), &i.to_le_bytes()).unwrap();
            hv.unprofile(s).unwrap();
        }
        assert!(log_len(&hv, w) <= 1024, "a range gone 1,200 times, logged {} times", log_len(&hv, w));
        assert_eq!(hv.user_end(w).unwrap(), EndKind::Committed);
        // What the log keeps is still enough: u's fault withdraws its store on the counter.
        hv.store(u, a, &7u64.to_le_bytes()).unwrap();
        hv.crash_suppression(u).unwrap();
        let mut got = [0u8; 8];
        hv.load(0, a, &mut got).unwrap();
        assert_eq!(u64::from_le_bytes(got), 20_000, "the last committed value, not u's");
        assert_eq!(hv.user_end(u).unwrap(), EndKind::Faulted);
        assert_eq!(counter[0], 20_000);
        assert_eq!(hv.stats().history_entries, 0);
        let _ = scratch[0];
    }
}
