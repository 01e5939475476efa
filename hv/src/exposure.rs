//! Exposure tracking (G8): which normal users loaded bytes written by a then-active user.
//!
//! A load that returns a byte last written by another user still active records a candidate
//! `(reader, writer, granule)`. When the writer commits its candidates are dropped; when it
//! faults they become reported exposures (and, under `cascade`, the readers are doomed to
//! fault too). Tables are fixed-size and live in the hv's region; overflow is counted, never
//! silent.

use crate::sync::StripeLock;
use crate::users::UserId;
use core::cell::UnsafeCell;

pub const CANDIDATES: usize = 8192;
pub const REPORTED: usize = 4096;

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

struct Tables {
    cand: [Exposure; CANDIDATES],
    ncand: usize,
    reported: [Exposure; REPORTED],
    nrep: usize,
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

    pub fn candidate(&self, reader: UserId, writer: UserId, addr: u64) {
        let e = Exposure { reader, writer, addr };
        self.with(|t| {
            if t.cand[..t.ncand].contains(&e) {
                return;
            }
            if t.ncand == CANDIDATES {
                self.dropped.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                return;
            }
            t.cand[t.ncand] = e;
            t.ncand += 1;
        });
    }

    /// The writer committed: its candidates can never become exposures. (Its candidates as a
    /// reader stay: G8 reports a reader that committed before its writer faulted.)
    pub fn on_commit(&self, writer: UserId) {
        self.with(|t| {
            let mut k = 0;
            for i in 0..t.ncand {
                if t.cand[i].writer != writer {
                    t.cand[k] = t.cand[i];
                    k += 1;
                }
            }
            t.ncand = k;
        });
    }

    /// The writer faulted: report its candidates; `doom` is called for each reader.
    pub fn on_fault(&self, writer: UserId, doom: &mut dyn FnMut(UserId)) {
        self.with(|t| {
            let mut k = 0;
            for i in 0..t.ncand {
                let e = t.cand[i];
                if e.writer == writer {
                    if t.nrep < REPORTED {
                        t.reported[t.nrep] = e;
                        t.nrep += 1;
                    } else {
                        self.dropped.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                    }
                    doom(e.reader);
                } else {
                    // Also when `writer` is the reader: it loaded the data while normal.
                    t.cand[k] = e;
                    k += 1;
                }
            }
            t.ncand = k;
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
