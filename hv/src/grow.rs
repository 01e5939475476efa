//! Owner-only growable containers on guarded mappings: a user's write log and its shadow.
//!
//! Both belong to exactly one user and are touched only by the thread that runs that user
//! (its stores, its fault entry, its end point), so they need no lock. They grow by mapping a
//! larger region and copying, which is async-signal-safe.

use crate::arena::Region;

/// An append-only vector of `u64` (granule addresses a user created history entries on).
pub struct Log {
    region: Option<Region>,
    len: usize,
}

impl Log {
    pub const fn new() -> Self {
        Log { region: None, len: 0 }
    }

    fn cap(&self) -> usize {
        self.region.as_ref().map_or(0, |r| r.len() / 8)
    }

    /// Append; `false` when memory could not be mapped.
    pub fn push(&mut self, v: u64) -> bool {
        self.push_keeping(v, |_| true)
    }

    /// Append `v`. When the log is full it is first compacted — sorted, duplicates dropped,
    /// and values `keep` rejects dropped — and grows only if that freed less than half of it,
    /// so it stays within twice the distinct values it must keep. In place (no allocation:
    /// async-signal-safe). `false` when memory could not be mapped.
    pub fn push_keeping(&mut self, v: u64, keep: impl Fn(u64) -> bool) -> bool {
        if self.len == self.cap() {
            if self.len > 0 {
                self.compact(keep);
            }
            if (self.cap() == 0 || self.len * 2 > self.cap()) && self.grow().is_none() {
                return false;
            }
        }
        self.append(v)
    }

    /// Map a region twice as large and move the log there; `None` when it cannot be mapped.
    fn grow(&mut self) -> Option<()> {
        let r = Region::map((self.cap() * 2).max(512) * 8)?;
        if let Some(old) = &self.region {
            // SAFETY: both regions are valid for `len` u64s and do not overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(old.as_ptr() as *const u64, r.as_ptr() as *mut u64, self.len)
            };
        }
        self.region = Some(r);
        Some(())
    }

    /// Append into room the log has.
    fn append(&mut self, v: u64) -> bool {
        let base = self.region.as_ref().map(|r| r.as_ptr() as *mut u64);
        let Some(base) = base else { return false };
        if self.len >= self.cap() {
            return false;
        }
        // SAFETY: len < cap, so the slot lies inside the region.
        unsafe { base.add(self.len).write(v) };
        self.len += 1;
        true
    }

    fn compact(&mut self, keep: impl Fn(u64) -> bool) {
        let Some(r) = &self.region else { return };
        // SAFETY: the first `len` u64s of the region were written by `push`, and `&mut self`
        // makes this the only reference to them.
        let all = unsafe { core::slice::from_raw_parts_mut(r.as_ptr() as *mut u64, self.len) };
        all.sort_unstable();
        let mut n = 0;
        for i in 0..all.len() {
            let v = all[i];
            if (n == 0 || all[n - 1] != v) && keep(v) {
                all[n] = v;
                n += 1;
            }
        }
        self.len = n;
    }

    pub fn as_slice(&self) -> &[u64] {
        match &self.region {
            // SAFETY: the first `len` u64s of the region were written by `push`.
            Some(r) => unsafe { core::slice::from_raw_parts(r.as_ptr() as *const u64, self.len) },
            None => &[],
        }
    }

    /// Forget the contents; keep a modest mapping for the next user of the slot.
    pub fn clear(&mut self) {
        if self.cap() > 1 << 16 {
            self.region = None;
        }
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Log {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
struct ShadowSlot {
    gaddr: u64,
    /// The id of the range the bytes were stored in: a granule of a range unprofiled and
    /// profiled again (a new id) starts with no shadow, and two ranges sharing a granule
    /// keep theirs apart.
    range: u64,
    bytes: u64,
    mask: u64,
}

/// A faulted user's private shadow: (granule address, range id) → (byte mask, bytes), open addressing.
pub struct Shadow {
    region: Option<Region>,
    len: usize,
}

impl Shadow {
    pub const fn new() -> Self {
        Shadow { region: None, len: 0 }
    }

    /// Slots in use: a power of two, since probing masks with `cap - 1` (the page-rounded
    /// mapping may hold more).
    fn cap(&self) -> usize {
        let n = self.region.as_ref().map_or(0, |r| r.len() / core::mem::size_of::<ShadowSlot>());
        if n == 0 {
            0
        } else {
            1 << n.ilog2()
        }
    }

    fn slots(&self) -> &[ShadowSlot] {
        match &self.region {
            // SAFETY: the region holds `cap` zero-initialised or written ShadowSlots.
            Some(r) => unsafe { core::slice::from_raw_parts(r.as_ptr() as *const ShadowSlot, self.cap()) },
            None => &[],
        }
    }

    fn slots_mut(&mut self) -> &mut [ShadowSlot] {
        let cap = self.cap();
        match &mut self.region {
            // SAFETY: as in `slots`; `&mut self` makes the access exclusive.
            Some(r) => unsafe { core::slice::from_raw_parts_mut(r.as_ptr() as *mut ShadowSlot, cap) },
            None => &mut [],
        }
    }

    fn hash(gaddr: u64) -> usize {
        ((gaddr >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize
    }

    /// The shadow bytes of one granule of range `range` (its id): (mask, bytes).
    pub fn get(&self, gaddr: u64, range: u64) -> (u8, u64) {
        let slots = self.slots();
        if slots.is_empty() {
            return (0, 0);
        }
        let m = slots.len() - 1;
        let mut i = Self::hash(gaddr) & m;
        loop {
            let s = slots[i];
            if s.gaddr == gaddr && s.range == range {
                return (s.mask as u8, s.bytes);
            }
            if s.gaddr == 0 {
                return (0, 0);
            }
            i = (i + 1) & m;
        }
    }

    /// Merge `bytes` under `mask` into the shadow of granule `gaddr` of range `range` (its
    /// id); `false` when out of memory.
    pub fn put(&mut self, gaddr: u64, range: u64, mask: u8, bytes: u64) -> bool {
        if (self.len + 1) * 2 > self.cap() && !self.grow() {
            return false;
        }
        let mut added = false;
        let slots = self.slots_mut();
        let m = slots.len() - 1;
        let mut i = Self::hash(gaddr) & m;
        loop {
            let s = &mut slots[i];
            if (s.gaddr == gaddr && s.range == range) || s.gaddr == 0 {
                if s.gaddr == 0 {
                    s.gaddr = gaddr;
                    s.range = range;
                    added = true;
                }
                let bm = crate::store::byte_mask(mask);
                s.bytes = (s.bytes & !bm) | (bytes & bm);
                s.mask |= mask as u64;
                self.len += added as usize;
                return true;
            }
            i = (i + 1) & m;
        }
    }

    fn grow(&mut self) -> bool {
        let new_cap = (self.cap() * 2).max(256);
        let Some(r) = Region::map(new_cap * core::mem::size_of::<ShadowSlot>()) else { return false };
        let old = self.region.replace(r);
        self.len = 0;
        if let Some(old) = old {
            let n = old.len() / core::mem::size_of::<ShadowSlot>();
            // SAFETY: the old region holds `n` ShadowSlots written by this owner.
            let olds = unsafe { core::slice::from_raw_parts(old.as_ptr() as *const ShadowSlot, n) };
            for s in olds.iter().filter(|s| s.gaddr != 0) {
                self.put(s.gaddr, s.range, s.mask as u8, s.bytes);
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free the shadow (G7: at the faulty user's end point).
    pub fn clear(&mut self) {
        self.region = None;
        self.len = 0;
    }
}

impl Default for Shadow {
    fn default() -> Self {
        Self::new()
    }
}
