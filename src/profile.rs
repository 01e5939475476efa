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
    if cfg.host != config::Host::InProc {
        eprintln!(
            "=={}==vmsrs: VMSRS_HOST={} is not available in this build (only inproc); refusing to start",
            std::process::id(),
            cfg.host
        );
        return Err(VMSRS_ENOTSUP);
    }
    let mut signals = 0u64;
    for s in cfg.signals.iter() {
        signals |= sigbit(s.number());
    }
    Ok(Settings {
        policy: match cfg.policy {
            config::Policy::Oblivious => Policy::Oblivious,
            config::Policy::Unwind => Policy::Unwind,
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

fn init(env_file: *const c_char) -> Result<i32, VmsrsError> {
    if runtime::get().is_some() {
        return Err(VMSRS_EALREADY);
    }
    let mut buf = [0u8; libc::PATH_MAX as usize];
    let path = if env_file.is_null() {
        None
    } else {
        let s = uaccess::read_cstr(env_file as *const u8, &mut buf).map_err(|e| match e {
            Some(_) => VMSRS_EFAULT,
            None => VMSRS_EINVAL,
        })?;
        Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(s)))
    };
    let environ = config::environ_snapshot();
    let loaded = config::load(path.as_deref(), &environ).map_err(|e| {
        eprintln!("=={}==vmsrs: configuration error: {e}", std::process::id());
        VmsrsError::from_code(e.code()).unwrap_or(VMSRS_ECONFIG)
    })?;
    for w in &loaded.warnings {
        eprintln!("=={}==vmsrs: warning: {w}", std::process::id());
    }
    let settings = settings_from(&loaded.config)?;
    let rt = runtime::start(settings)?;
    if rt.settings.verbose > 0 {
        for line in loaded.config.describe().lines() {
            eprintln!("=={}==vmsrs: config {line}", std::process::id());
        }
    }
    Ok(0)
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
/// `VMSRS_EOVERLAP` (overlaps or duplicates a profiled range), `VMSRS_EBADRANGE` (not
/// mapped), `VMSRS_EINVAL` (wraps around, or lies in libvmsrs's own state),
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
