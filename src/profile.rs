//! Class 5 (profile half): `vmsrs_init_profile`, `vmsrs_profile`, `vmsrs_unprofile` — the
//! paper's `Init_profile` and `profile`.

use crate::error::VmsrsError::{self, *};
use crate::ffi::{boundary, non_null, non_zero};
use crate::runtime::{self, sigbit, Policy, Settings};
use crate::thread;
use libc::c_char;
use std::os::unix::ffi::OsStrExt;
use vmsrs_config::config;
use vmsrs_hv::{host::inproc::vmmcall, uaccess, Hypercall};

/// Turn the loaded configuration into the settings the runtime acts on.
pub fn settings_from(cfg: &config::Config) -> Result<Settings, VmsrsError> {
    let refuse = |what: std::fmt::Arguments| {
        eprintln!("=={}==vmsrs: {what}; refusing to start", std::process::id());
        Err(VMSRS_ENOTSUP)
    };
    if cfg.host != config::Host::InProc {
        return refuse(format_args!("VMSRS_HOST={} is not available in this build (only inproc)", cfg.host));
    }
    if let Err(why) = crate::reporter::validate(&report_options(cfg)) {
        eprintln!("=={}==vmsrs: configuration error: {why}; refusing to start", std::process::id());
        return Err(VMSRS_ECONFIG);
    }
    let mut signals = 0u64;
    for s in cfg.signals.iter() {
        signals |= sigbit(s.number());
    }
    Ok(Settings {
        policy: match cfg.policy {
            config::Policy::Oblivious => Policy::Oblivious,
            config::Policy::Unwind => Policy::Unwind,
            config::Policy::Abort => Policy::Abort,
        },
        signals,
        fault_budget: cfg.fault_budget,
        same_pc_limit: cfg.same_pc_limit,
        time_budget_ns: cfg.time_budget_ms.saturating_mul(1_000_000),
        exposure: cfg.exposure,
        cascade: cfg.exposure_policy == config::ExposurePolicy::Cascade,
        contain_implicit: cfg.contain_implicit,
        verbose: cfg.verbose,
    })
}

/// Where fault events and metrics go.
pub fn report_options(cfg: &config::Config) -> crate::reporter::Options {
    crate::reporter::Options {
        log_path: cfg.log_path.clone(),
        metrics_path: cfg.metrics_path.clone(),
        metrics_interval_ms: cfg.metrics_interval_ms,
    }
}

fn init(env_file: *const c_char) -> Result<i32, VmsrsError> {
    if runtime::get().is_some() {
        return Err(VMSRS_EALREADY);
    }
    let mut buf = [0u8; libc::PATH_MAX as usize];
    let path = if env_file.is_null() {
        None
    } else {
        // No fault handler is installed yet: a guarded copy could not recover.
        let s = uaccess::read_cstr_before_handlers(env_file as *const u8, &mut buf).map_err(|e| match e {
            Some(_) => VMSRS_EFAULT,
            None => VMSRS_EINVAL,
        })?;
        Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(s)))
    };
    start(path.as_deref()).map(|_| 0)
}

/// Bring libvmsrs up from its configuration (linked mode's `vmsrs_init_profile`, and the
/// drop-in constructor): load and validate it, hook the user calls, start the hypervisor
/// component and the fault handlers, apply the children policy, and log the effective
/// configuration when verbose. Every problem is printed; `Err` means libvmsrs is not active.
pub fn start(path: Option<&std::path::Path>) -> Result<config::Config, VmsrsError> {
    let pid = std::process::id();
    let environ = config::environ_snapshot();
    let loaded = config::load(path, &environ).map_err(|e| {
        eprintln!("=={pid}==vmsrs: configuration error: {e}");
        VmsrsError::from_code(e.code()).unwrap_or(VMSRS_ECONFIG)
    })?;
    for w in &loaded.warnings {
        eprintln!("=={pid}==vmsrs: warning: {w}");
    }
    let cfg = loaded.config;
    let settings = settings_from(&cfg)?;
    // Monitored ranges are resolved before anything starts: a range that cannot be watched
    // refuses the configuration, never quietly turns its recovery off.
    let (ranges, pending) =
        crate::watch::resolve::resolve_all(cfg.all_watched_ranges(), crate::watch::resolve::own_object())
            .map_err(|why| {
                eprintln!("=={pid}==vmsrs: configuration error: {why}; refusing to start");
                VMSRS_ECONFIG
            })?;
    for p in &pending {
        eprintln!(
            "=={pid}==vmsrs: {}range {}: {}; it is watched when a library that has it is loaded",
            severity(cfg.strict),
            p.spec,
            p.why
        );
    }
    if !pending.is_empty() && cfg.strict {
        eprintln!("=={pid}==vmsrs: VMSRS_STRICT=1: refusing to start with ranges not found");
        return Err(VMSRS_ECONFIG);
    }
    // Exposure tracking (G8) sees monitored loads, which watched ranges do not have: the
    // program loads them with its own instructions. Said, never left to look tracked.
    if cfg.exposure && !(ranges.is_empty() && pending.is_empty()) {
        eprintln!(
            "=={pid}==vmsrs: {}VMSRS_EXPOSURE=1: the program's loads of watched ranges are plain \
             loads libvmsrs does not see, so exposures there are not reported (nor cascaded); \
             only monitored loads (vmsrs_load, VMSRS_GET) of ranges the program profiles itself \
             (vmsrs_profile) are tracked",
            severity(cfg.strict),
        );
        if cfg.strict {
            eprintln!("=={pid}==vmsrs: VMSRS_STRICT=1: refusing to start with exposures untracked");
            return Err(VMSRS_ECONFIG);
        }
    }
    let mut hook_errors = 0;
    for call in &cfg.user_calls {
        if let Err(why) = crate::rescue::install(&call.symbol, call.on_fault) {
            hook_errors += 1;
            eprintln!(
                "=={pid}==vmsrs: {}VMSRS_USER_CALL: cannot hook {}: {why}; its calls are not users",
                severity(cfg.strict),
                call.symbol
            );
        }
    }
    if hook_errors > 0 && cfg.strict {
        eprintln!("=={pid}==vmsrs: VMSRS_STRICT=1: refusing to start with unhooked user calls");
        return Err(VMSRS_ECONFIG);
    }
    let rt = runtime::start(settings)?;
    if !ranges.is_empty() || !pending.is_empty() {
        // Before any range is armed, on the thread that starts the program (the threads it
        // creates inherit the key's rights).
        crate::watch::pkey::init();
    }
    crate::watch::set_pending(pending);
    if !ranges.is_empty() {
        crate::watch::patch::enable(cfg.watch_patch);
        if let Err(why) = crate::watch::arm(rt.hv, &ranges) {
            eprintln!(
                "=={pid}==vmsrs: error: {why}: the monitored ranges are NOT watched (faults are still contained)"
            );
            if cfg.strict {
                eprintln!("=={pid}==vmsrs: VMSRS_STRICT=1: refusing to run without the monitored ranges");
                // SAFETY: ends the process during start-up, before the program relies on it.
                unsafe { libc::_exit(1) };
            }
        } else if rt.settings.verbose > 0 {
            for r in &ranges {
                eprintln!("=={pid}==vmsrs: watching {} at {:#x}+{}", r.name, r.addr, r.len);
            }
        }
    }
    crate::reporter::start(report_options(&cfg));
    if cfg.children == config::Children::Drop {
        crate::dropin::drop_preload_for_children();
    }
    if rt.settings.verbose > 0 {
        for line in cfg.describe().lines() {
            eprintln!("=={pid}==vmsrs: config {line}");
        }
    }
    Ok(cfg)
}

/// How start-up labels a problem that `VMSRS_STRICT=1` turns into a refusal to start.
fn severity(strict: bool) -> &'static str {
    if strict {
        "error: "
    } else {
        "warning: "
    }
}

/// Initialise libvmsrs: read the configuration, start the hypervisor component, install
/// the fault handlers. `env_file` names an environment file (systemd `EnvironmentFile=`
/// subset) or is NULL to use `VMSRS_ENV_FILE` / the process environment only.
///
/// Returns 0, or `VMSRS_EALREADY` (already initialised; the first configuration stays),
/// `VMSRS_EIO` (file unreadable), `VMSRS_ECONFIG` (invalid key value; the reason is printed
/// on stderr), `VMSRS_ENOTSUP` (host not built), `VMSRS_ENOMEM`, `VMSRS_EFAULT` (`env_file`
/// unreadable), `VMSRS_EINVAL` (`env_file` longer than PATH_MAX).
///
/// # Safety
/// `env_file` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_init_profile(env_file: *const c_char) -> i32 {
    boundary(|| init(env_file))
}

/// Monitor `len` bytes at `addr` (the paper's `profile`). `name` (may be NULL) labels the
/// range in reports; at most 31 bytes are kept. The memory must stay mapped until
/// `vmsrs_unprofile`; its current contents are the values restored when no normal user has
/// stored to a byte (G3).
///
/// Returns 0, or `VMSRS_EUNINIT`, `VMSRS_ENULL` (addr NULL), `VMSRS_EZEROLEN`,
/// `VMSRS_EOVERLAP` (overlaps or duplicates a profiled range, or shares a page with a range
/// watched from `VMSRS_RANGES`), `VMSRS_EBADRANGE` (not
/// mapped readable and writable: libvmsrs writes monitored memory itself; it must stay so
/// until unprofiled), `VMSRS_EINVAL` (wraps around, or lies in libvmsrs's own state),
/// `VMSRS_ETOOMANY` (256 ranges), `VMSRS_ENOMEM`, `VMSRS_EFAULT` (`name` unreadable).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vmsrs_profile(addr: *mut libc::c_void, len: usize, name: *const c_char) -> i32 {
    boundary(|| {
        let rt = runtime::require()?;
        non_null(addr)?;
        non_zero(len)?;
        // Names are kept to 31 bytes; longer ones are cut, unreadable ones refused.
        let mut buf = [0u8; 32];
        let name: &[u8] = if name.is_null() {
            b""
        } else {
            let n = uaccess::strnlen(name as *const u8, buf.len()).map_err(|_| VMSRS_EFAULT)?;
            // SAFETY: `n` bytes were just found readable; `buf` holds at least `n`.
            unsafe { uaccess::copy(buf.as_mut_ptr(), name as *const u8, n) }.map_err(|_| VMSRS_EFAULT)?;
            &buf[..n]
        };
        if crate::watch::overlaps(addr as usize, len) {
            // Watched pages are read-only: the hv could not write them.
            return Err(VMSRS_EOVERLAP);
        }
        crate::symbols::refresh();
        let _e = thread::HvEntry::enter();
        // SAFETY: `name` is a live slice for the duration of the call.
        let r = unsafe {
            vmmcall(
                rt.hv,
                Hypercall::Profile,
                [addr as u64, len as u64, name.as_ptr() as u64, name.len() as u64, 0, 0],
            )
        };
        status(r)
    })
}

/// Stop monitoring the range that starts at `addr`. Polluted bytes are restored first, so
/// the memory is left holding the values normal users should see.
///
/// Returns 0, or `VMSRS_EUNINIT`, `VMSRS_ENULL`, `VMSRS_ENOTPROFILED` (no range starts at
/// `addr`).
#[no_mangle]
pub extern "C" fn vmsrs_unprofile(addr: *mut libc::c_void) -> i32 {
    boundary(|| {
        let rt = runtime::require()?;
        non_null(addr)?;
        let _e = thread::HvEntry::enter();
        // SAFETY: Unprofile takes no buffers.
        status(unsafe { vmmcall(rt.hv, Hypercall::Unprofile, [addr as u64, 0, 0, 0, 0, 0]) })
    })
}

/// Map a hypercall status to the C result.
pub fn status(r: i64) -> Result<i32, VmsrsError> {
    if r < 0 {
        Err(VmsrsError::from_code(r as i32).unwrap_or(VMSRS_EINTERNAL))
    } else {
        Ok(0)
    }
}
