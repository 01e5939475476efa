//! The process-wide runtime: an explicit init state machine, the effective settings, the
//! handle to the hypervisor component, and the runtime's counters.
//!
//! Init is lazy-safe and idempotent (ECOSYSTEM pitfall 17): every entry point reads the
//! published handle with one atomic load; `vmsrs_init_profile` is the only writer.

use crate::error::VmsrsError;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use vmsrs_hv::Hv;

/// Fault policy (DESIGN §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Skip the faulting instruction; loads yield 0, stores are dropped.
    Oblivious,
    /// Unwind to the user's recovery point.
    Unwind,
    /// Contain nothing (the plain crash, for comparison); every fault is chained.
    Abort,
}

/// The settings the runtime acts on, derived once from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub policy: Policy,
    /// Bit per signal number that is contained.
    pub signals: u64,
    pub fault_budget: u32,
    pub same_pc_limit: u32,
    pub time_budget_ns: u64,
    pub exposure: bool,
    pub cascade: bool,
    pub contain_implicit: bool,
    pub verbose: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::Oblivious,
            signals: sigbit(libc::SIGSEGV)
                | sigbit(libc::SIGBUS)
                | sigbit(libc::SIGFPE)
                | sigbit(libc::SIGILL),
            fault_budget: 64,
            same_pc_limit: 4,
            time_budget_ns: 2_000_000_000,
            exposure: false,
            cascade: false,
            contain_implicit: true,
            verbose: 0,
        }
    }
}

pub const fn sigbit(sig: i32) -> u64 {
    1u64 << sig
}

pub struct Runtime {
    pub hv: &'static Hv,
    pub settings: Settings,
}

const UNINIT: u8 = 0;
const INITING: u8 = 1;
const READY: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(core::ptr::null_mut());
static HV: AtomicPtr<Hv> = AtomicPtr::new(core::ptr::null_mut());

/// The load gate (see `vmsrs.h`): 0 while no user is faulted and exposure tracking is off,
/// so a monitored load may be the plain load. Maintained by the hypervisor component, which
/// raises it before and lowers it after its own fault count. Read inline by C callers.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static vmsrs__gate: AtomicUsize = AtomicUsize::new(0);

/// May a monitored load be the plain load right now?
#[inline(always)]
pub fn loads_are_plain() -> bool {
    vmsrs__gate.load(Ordering::Acquire) == 0
}
static RT_STORAGE: spin::Once<Runtime> = spin::Once::new();

/// The runtime, once `vmsrs_init_profile` succeeded.
#[inline(always)]
pub fn get() -> Option<&'static Runtime> {
    let p = RUNTIME.load(Ordering::Acquire);
    // SAFETY: RUNTIME is only ever set to the address of RT_STORAGE's value, which is never
    // dropped or moved.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The hypervisor component, once initialised.
#[inline(always)]
pub fn hv() -> Option<&'static Hv> {
    let p = HV.load(Ordering::Acquire);
    // SAFETY: HV is only ever set to the in-process host's Hv, which lives for the process.
    (!p.is_null()).then(|| unsafe { &*p })
}

pub fn require() -> Result<&'static Runtime, VmsrsError> {
    get().ok_or(VmsrsError::VMSRS_EUNINIT)
}

/// Bring the runtime up once. `Err(VMSRS_EALREADY)` if it already is.
pub fn start(settings: Settings) -> Result<&'static Runtime, VmsrsError> {
    if STATE.compare_exchange(UNINIT, INITING, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return Err(VmsrsError::VMSRS_EALREADY);
    }
    let cfg = vmsrs_hv::HvConfig {
        exposure: settings.exposure,
        cascade: settings.cascade,
        gate: Some(&vmsrs__gate),
    };
    let hv = match vmsrs_hv::host::inproc::start(cfg) {
        Ok(hv) => hv,
        Err(e) => {
            STATE.store(UNINIT, Ordering::Release);
            return Err(e);
        }
    };
    let rt = RT_STORAGE.call_once(|| Runtime { hv, settings });
    crate::fault::install(rt.settings.signals)?;
    RUNTIME.store(rt as *const Runtime as *mut Runtime, Ordering::Release);
    HV.store(rt.hv as *const Hv as *mut Hv, Ordering::Release);
    STATE.store(READY, Ordering::Release);
    Ok(rt)
}

/// Counters kept by the runtime (the hv keeps its own).
#[derive(Default)]
pub struct Counters {
    pub faults_contained: AtomicU64,
    pub faults_chained: AtomicU64,
    pub instructions_skipped: AtomicU64,
    pub unwinds: AtomicU64,
    pub threads_ended: AtomicU64,
    pub frees_withheld: AtomicU64,
    pub suppressed_outputs: AtomicU64,
    pub bounds_faults: AtomicU64,
    /// Locks an unwound user (or an ended thread) held, unlocked by libvmsrs (`locks`).
    pub locks_released: AtomicU64,
    /// Lock acquisitions not recorded because a thread's record was full (`locks`).
    pub locks_untracked: AtomicU64,
}

pub static COUNTERS: Counters = Counters {
    faults_contained: AtomicU64::new(0),
    faults_chained: AtomicU64::new(0),
    instructions_skipped: AtomicU64::new(0),
    unwinds: AtomicU64::new(0),
    threads_ended: AtomicU64::new(0),
    frees_withheld: AtomicU64::new(0),
    suppressed_outputs: AtomicU64::new(0),
    bounds_faults: AtomicU64::new(0),
    locks_released: AtomicU64::new(0),
    locks_untracked: AtomicU64::new(0),
};

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
