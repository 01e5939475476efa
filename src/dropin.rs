//! Start-up in an unmodified program (drop-in mode: `LD_PRELOAD=libvmsrs.so`).
//!
//! The constructor of libvmsrs.so calls [`start`]. When this object was preloaded (it is named
//! in `LD_PRELOAD`), it starts libvmsrs from `VMSRS_ENV_FILE`, the `VMSRS_*` variables and
//! `VMSRS_OPTIONS` (`profile::start`), before `main`, on the one thread the process has. A
//! program that links libvmsrs instead calls `vmsrs_init_profile` itself, as before.
//!
//! A configuration that cannot be used is printed, and the program runs without libvmsrs
//! (said loudly: faults are not contained), or, under `VMSRS_STRICT=1`, is not started at all.
//!
//! What the loader never lets us see cannot be reported from here: a static binary, or a
//! setuid one (the loader ignores preload paths with a `/`), never loads this object.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

const PRELOAD: &str = "LD_PRELOAD";

/// The constructor's start-up (see the module comment).
pub fn start() {
    crate::on_load();
    if !preloaded() {
        return;
    }
    if let Err(e) = crate::profile::start(None) {
        let pid = std::process::id();
        // SAFETY: vmsrs_strerror returns a static NUL-terminated string.
        let why = unsafe { core::ffi::CStr::from_ptr(crate::error::vmsrs_strerror(e.code())) };
        eprintln!(
            "=={pid}==vmsrs: libvmsrs is NOT active in this process ({}): faults are not contained",
            why.to_string_lossy()
        );
        if strict_requested() {
            eprintln!("=={pid}==vmsrs: VMSRS_STRICT=1: refusing to start the program");
            // SAFETY: ends the process before main; nothing of the program has run.
            unsafe { libc::_exit(1) };
        }
    }
}

/// The file this object was loaded from.
fn own_path() -> Option<OsString> {
    // SAFETY: zeroed Dl_info is a valid out-value; dladdr on an address of this object.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::dladdr(start as *const libc::c_void, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: the loader's NUL-terminated file name.
    let name = unsafe { core::ffi::CStr::from_ptr(info.dli_fname) };
    Some(OsString::from_vec(name.to_bytes().to_vec()))
}

fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|&b| b == b'/').next().unwrap_or(p)
}

/// Does this `LD_PRELOAD` entry name the object at `own` (the same path, or a name of
/// libvmsrs: `libvmsrs.so`, `libvmsrs.so.0`, ...)?
fn names_us(entry: &[u8], own: &[u8]) -> bool {
    let ours = |p: &[u8]| basename(p).starts_with(b"libvmsrs.so");
    !entry.is_empty() && (entry == own || (ours(entry) && ours(own)))
}

/// `LD_PRELOAD` entries (separated by spaces or colons, as ld.so reads them).
fn entries(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b':' || b == b' ').filter(|e| !e.is_empty())
}

/// Was this object loaded because `LD_PRELOAD` names it? Decided once, the first time it is
/// asked (by the first constructor of libvmsrs that asks, before `VMSRS_CHILDREN=drop` takes
/// the object out of the variable), so every part of libvmsrs gets the same answer whatever
/// order the loader runs their constructors in.
pub fn preloaded() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let (Some(own), Some(value)) = (own_path(), std::env::var_os(PRELOAD)) else { return false };
        let own = own.as_bytes();
        let found = entries(value.as_bytes()).any(|e| names_us(e, own));
        found
    })
}

/// Was strict mode asked for, when the configuration itself could not be read?
fn strict_requested() -> bool {
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on");
    if std::env::var("VMSRS_STRICT").is_ok_and(|v| truthy(&v)) {
        return true;
    }
    std::env::var("VMSRS_OPTIONS").is_ok_and(|o| {
        o.split(':').any(|kv| {
            kv.split_once('=').is_some_and(|(k, v)| {
                let k = k.trim().to_ascii_uppercase();
                (k == "STRICT" || k == "VMSRS_STRICT") && truthy(v.trim())
            })
        })
    })
}

/// `VMSRS_CHILDREN=drop`: take this object out of `LD_PRELOAD`, so programs this process
/// execs run without it. Runs at start-up (before other threads exist in drop-in mode).
pub fn drop_preload_for_children() {
    preloaded(); // decided before the variable changes
    let (Some(own), Some(value)) = (own_path(), std::env::var_os(PRELOAD)) else { return };
    let own = own.as_bytes();
    if !entries(value.as_bytes()).any(|e| names_us(e, own)) {
        return;
    }
    let kept: Vec<&[u8]> = entries(value.as_bytes()).filter(|e| !names_us(e, own)).collect();
    if kept.is_empty() {
        std::env::remove_var(PRELOAD);
    } else {
        std::env::set_var(PRELOAD, std::ffi::OsStr::from_bytes(&kept.join(&b' ')));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_entries_are_matched_by_path_or_name() {
        let own = b"/opt/vmsrs/lib/libvmsrs.so.0";
        assert!(names_us(b"/opt/vmsrs/lib/libvmsrs.so.0", own));
        assert!(names_us(b"libvmsrs.so.0", own));
        assert!(names_us(b"/usr/lib/libvmsrs.so", own));
        assert!(!names_us(b"libother.so", own));
        let v = b"libfoo.so:/opt/vmsrs/lib/libvmsrs.so.0 libbar.so";
        assert_eq!(entries(v).collect::<Vec<_>>(), vec![&b"libfoo.so"[..], own, b"libbar.so"]);
    }
}
