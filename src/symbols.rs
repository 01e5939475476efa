//! Symbolized frames for fault reports, async-signal-safely.
//!
//! The fault handler may not call `dladdr` or `dl_iterate_phdr` (they take the loader's lock),
//! so everything it needs is prepared in normal context: a *snapshot* of the loaded modules
//! (base, executable ranges, path, and where each module's dynamic symbol table lies in memory,
//! with its symbol count bounded by `DT_GNU_HASH` or `DT_HASH`). The handler only reads that
//! snapshot and the mapped ELF tables.
//!
//! - **Refresh.** [`refresh`] runs `dl_iterate_phdr` from normal context and rebuilds the
//!   snapshot only when the loader's `dlpi_adds`/`dlpi_subs` counters moved. It is called at
//!   start-up, by every libvmsrs API call's boundary (cheaply: at most once per
//!   [`REFRESH_EVERY_NS`]), and by the reporter thread before it formats events and on each
//!   tick. A module `dlopen`ed after the last refresh that faults before the next one is shown
//!   as `#0 0xPC` without a module (never a wrong one).
//! - **Never a fault in the handler.** Every read of module memory (symbol and string tables,
//!   frame records on the stack, the bytes before a return address) goes through
//!   [`safe_read`], which is `process_vm_readv` on the process itself: an unmapped or
//!   protected address is an error return, never a signal. (The guarded copy of
//!   `vmsrs_hv::uaccess` cannot be used here: the handler runs with SIGSEGV blocked, and a
//!   fault on a blocked SIGSEGV kills the process.) A module `dlclose`d after the snapshot
//!   therefore costs at worst a missing symbol. If `process_vm_readv` is unavailable (seccomp),
//!   symbols and frames beyond `#0` are left out.
//! - **Snapshots are freed safely.** The handler counts itself in [`READERS`] while it uses a
//!   snapshot; a replaced snapshot is freed only when no handler is reading.
//! - **Frames.** `#0` is the faulting pc. Further frames follow the frame-pointer chain, and
//!   only while each frame record lies above the previous one within [`MAX_STACK_SPAN`] of the
//!   interrupted stack pointer, each return address falls in a known module's text, and the
//!   bytes before it decode as a `call` ending exactly there. Code built without frame
//!   pointers (most `-O2` code) usually stops the walk at `#0`: no frame is guessed.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use libc::{c_int, c_void};

/// At most this many frames are reported.
pub(crate) const MAX_FRAMES: usize = 16;
/// A frame record further than this above the interrupted stack pointer ends the walk.
const MAX_STACK_SPAN: usize = 64 << 20;
/// The boundary-driven refresh check runs at most this often.
const REFRESH_EVERY_NS: u64 = 200_000_000;

const NAME_MAX: usize = 64;
const SYM_MAX: usize = 128;
const MAX_TEXT: usize = 4;

/// One loaded module, as the handler needs it.
struct Module {
    base: usize,
    text: [(usize, usize); MAX_TEXT],
    ntext: usize,
    symtab: usize,
    strtab: usize,
    strsz: usize,
    nsyms: usize,
    /// Basename of the path (the executable's comes from /proc/self/exe).
    name: [u8; NAME_MAX],
    name_len: usize,
    /// Its function symbols (address, size, name offset), sorted by address: built with the
    /// snapshot, in normal context, so the handler only binary-searches (mariadbd exports
    /// some 30,000 symbols: a scan per frame cost milliseconds).
    funcs: Vec<(usize, usize, u32)>,
}

struct Snapshot {
    adds: u64,
    subs: u64,
    modules: Vec<Module>,
}

/// The current snapshot (a leaked `Box`), or null before the first refresh.
static CURRENT: AtomicPtr<Snapshot> = AtomicPtr::new(core::ptr::null_mut());
/// Fault handlers reading a snapshot now.
static READERS: AtomicUsize = AtomicUsize::new(0);
/// Held (normal context only) while a refresh runs; reset in a fork child.
static REFRESHING: AtomicBool = AtomicBool::new(false);
/// Replaced snapshots waiting for `READERS` to drop to 0 (guarded by `REFRESHING`).
static RETIRED: AtomicPtr<Vec<*mut Snapshot>> = AtomicPtr::new(core::ptr::null_mut());
/// 0 unknown, 1 `process_vm_readv` works, 2 it does not.
static SAFE_READ: AtomicU8 = AtomicU8::new(0);
static LAST_CHECK_NS: AtomicU64 = AtomicU64::new(0);

/// Copy `out.len()` bytes at `addr` of this process into `out`; `false` if any byte is not
/// readable. Never raises a signal. Async-signal-safe.
pub fn safe_read(addr: usize, out: &mut [u8]) -> bool {
    if out.is_empty() {
        return true;
    }
    if SAFE_READ.load(Ordering::Relaxed) != 1 || addr == 0 {
        return false;
    }
    let local = libc::iovec { iov_base: out.as_mut_ptr() as *mut c_void, iov_len: out.len() };
    let remote = libc::iovec { iov_base: addr as *mut c_void, iov_len: out.len() };
    // SAFETY: process_vm_readv on our own pid writes at most `out.len()` bytes into `out` and
    // reports unreadable source memory as an error; it is a plain system call.
    let n = unsafe {
        libc::syscall(
            libc::SYS_process_vm_readv,
            libc::getpid() as libc::c_long,
            &local as *const libc::iovec,
            1 as libc::c_ulong,
            &remote as *const libc::iovec,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    n == out.len() as libc::c_long
}

fn read_u64(addr: usize) -> Option<u64> {
    let mut b = [0u8; 8];
    safe_read(addr, &mut b).then(|| u64::from_ne_bytes(b))
}

fn read_u32(addr: usize) -> Option<u32> {
    let mut b = [0u8; 4];
    safe_read(addr, &mut b).then(|| u32::from_ne_bytes(b))
}

fn probe_safe_read() {
    if SAFE_READ.load(Ordering::Relaxed) != 0 {
        return;
    }
    SAFE_READ.store(1, Ordering::Relaxed);
    static PROBE: u64 = 0x5eed_f00d_1234_5678;
    let ok = read_u64(&PROBE as *const u64 as usize) == Some(PROBE);
    SAFE_READ.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// [`refresh`], at most once per [`REFRESH_EVERY_NS`] (for hot normal-context paths).
#[inline]
pub fn refresh_now_and_then() {
    let now = now_ns();
    let last = LAST_CHECK_NS.load(Ordering::Relaxed);
    if now.wrapping_sub(last) >= REFRESH_EVERY_NS
        && LAST_CHECK_NS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        refresh();
    }
}

/// Bring the module snapshot up to date (normal context only: takes the loader's lock). A
/// no-op when no module was loaded or unloaded since the last snapshot, or when another
/// thread is refreshing.
pub fn refresh() {
    probe_safe_read();
    if REFRESHING.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        return;
    }
    let mut build = Build { exe: exe_basename(), snapshot: None, current: CURRENT.load(Ordering::Acquire) };
    // SAFETY: the callback only reads what the loader hands it (and module memory through
    // safe_read); `build` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(collect), &mut build as *mut Build as *mut c_void) };
    if let Some(new) = build.snapshot {
        let old = CURRENT.swap(Box::into_raw(Box::new(new)), Ordering::SeqCst);
        let mut retired = take_retired();
        if !old.is_null() {
            retired.push(old);
        }
        if READERS.load(Ordering::SeqCst) == 0 {
            for p in retired.drain(..) {
                // SAFETY: `p` came from Box::into_raw and is no longer published; no handler
                // reads a snapshot now, and later ones load the new pointer.
                drop(unsafe { Box::from_raw(p) });
            }
        }
        if !retired.is_empty() {
            RETIRED.store(Box::into_raw(Box::new(retired)), Ordering::Relaxed);
        }
    }
    REFRESHING.store(false, Ordering::Release);
}

fn take_retired() -> Vec<*mut Snapshot> {
    let p = RETIRED.swap(core::ptr::null_mut(), Ordering::Relaxed);
    if p.is_null() {
        Vec::new()
    } else {
        // SAFETY: stored by `refresh` from Box::into_raw; only touched under REFRESHING.
        *unsafe { Box::from_raw(p) }
    }
}

/// In a fork child: the refresh lock may have been held by a thread that did not come along.
pub fn after_fork_child() {
    REFRESHING.store(false, Ordering::Relaxed);
}

struct Build {
    exe: ([u8; NAME_MAX], usize),
    snapshot: Option<Snapshot>,
    current: *mut Snapshot,
}

fn exe_basename() -> ([u8; NAME_MAX], usize) {
    let mut out = [0u8; NAME_MAX];
    let n = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => copy_basename(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()), &mut out),
        Err(_) => 0,
    };
    (out, n)
}

fn copy_basename(path: &[u8], out: &mut [u8; NAME_MAX]) -> usize {
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let n = base.len().min(NAME_MAX);
    out[..n].copy_from_slice(&base[..n]);
    n
}

// ELF constants (the generic ABI).
const DT_NULL: i64 = 0;
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_STRSZ: i64 = 10;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const SYM_SIZE: usize = 24;
const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;

unsafe extern "C" fn collect(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `Build` handed to dl_iterate_phdr by `refresh`.
    let b = unsafe { &mut *(data as *mut Build) };
    // SAFETY: the loader passes a valid dl_phdr_info for the duration of the callback.
    let info = unsafe { &*info };
    if b.snapshot.is_none() {
        // The first module: is the current snapshot still right?
        if !b.current.is_null() {
            // SAFETY: published snapshots live until replaced, which only `refresh` does, and
            // we hold REFRESHING.
            let cur = unsafe { &*b.current };
            if cur.adds == info.dlpi_adds && cur.subs == info.dlpi_subs {
                return 1;
            }
        }
        b.snapshot = Some(Snapshot { adds: info.dlpi_adds, subs: info.dlpi_subs, modules: Vec::new() });
    }
    // SAFETY: as above.
    let m = unsafe { module_of(info, &b.exe) };
    if let (Some(m), Some(s)) = (m, b.snapshot.as_mut()) {
        s.modules.push(m);
    }
    0
}

/// Describe one module from its program headers and dynamic section.
///
/// # Safety
/// `info` is the loader's, valid for the duration of a `dl_iterate_phdr` callback.
unsafe fn module_of(info: &libc::dl_phdr_info, exe: &([u8; NAME_MAX], usize)) -> Option<Module> {
    let base = info.dlpi_addr as usize;
    let mut m = Module {
        base,
        text: [(0, 0); MAX_TEXT],
        ntext: 0,
        symtab: 0,
        strtab: 0,
        strsz: 0,
        nsyms: 0,
        name: [0; NAME_MAX],
        name_len: 0,
        funcs: Vec::new(),
    };
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    let mut dynamic = 0usize;
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr holds dlpi_phnum headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        let start = base.wrapping_add(ph.p_vaddr as usize);
        let end = start.wrapping_add(ph.p_memsz as usize);
        if ph.p_type == libc::PT_LOAD {
            lo = lo.min(start);
            hi = hi.max(end);
            if ph.p_flags & libc::PF_X != 0 && m.ntext < MAX_TEXT {
                m.text[m.ntext] = (start, end);
                m.ntext += 1;
            }
        } else if ph.p_type == libc::PT_DYNAMIC {
            dynamic = start;
        }
    }
    if m.ntext == 0 {
        return None;
    }
    let name = if info.dlpi_name.is_null() {
        &[][..]
    } else {
        // SAFETY: the loader's NUL-terminated module name.
        unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    if name.is_empty() {
        m.name = exe.0;
        m.name_len = exe.1;
    } else {
        m.name_len = copy_basename(name, &mut m.name);
    }
    // Dynamic entries are relocated in place by the loader, except where the section is
    // read-only (the vDSO): accept a pointer as is, or plus the base, if it lands in the module.
    let inside = |p: usize| p >= lo && p < hi;
    let fix = |p: u64| {
        let p = p as usize;
        if inside(p) {
            Some(p)
        } else if inside(p.wrapping_add(base)) {
            Some(p.wrapping_add(base))
        } else {
            None
        }
    };
    if dynamic == 0 {
        return Some(m);
    }
    let (mut hash, mut gnu_hash) = (None, None);
    for i in 0..4096 {
        let at = dynamic + i * 16;
        let (Some(tag), Some(val)) = (read_u64(at), read_u64(at + 8)) else { break };
        match tag as i64 {
            DT_NULL => break,
            DT_SYMTAB => m.symtab = fix(val).unwrap_or(0),
            DT_STRTAB => m.strtab = fix(val).unwrap_or(0),
            DT_STRSZ => m.strsz = val as usize,
            DT_HASH => hash = fix(val),
            DT_GNU_HASH => gnu_hash = fix(val),
            _ => {}
        }
    }
    if m.symtab == 0 || m.strtab == 0 {
        return Some(m);
    }
    m.nsyms = match (gnu_hash, hash) {
        (Some(g), _) => gnu_hash_count(g).unwrap_or(0),
        (None, Some(h)) => read_u32(h + 4).unwrap_or(0) as usize,
        _ => 0,
    };
    // A corrupt count must not make the scan run past the module.
    if m.symtab.saturating_add(m.nsyms.saturating_mul(SYM_SIZE)) > hi {
        m.nsyms = (hi.saturating_sub(m.symtab)) / SYM_SIZE;
    }
    m.funcs = function_index(&m);
    Some(m)
}

/// The module's function symbols, sorted by address (normal context: it allocates).
fn function_index(m: &Module) -> Vec<(usize, usize, u32)> {
    let mut funcs = Vec::new();
    let mut chunk = [0u8; SYM_SIZE * 64];
    let mut i = 0;
    while i < m.nsyms {
        let n = (m.nsyms - i).min(64);
        if !safe_read(m.symtab + i * SYM_SIZE, &mut chunk[..n * SYM_SIZE]) {
            break;
        }
        for k in 0..n {
            let e = &chunk[k * SYM_SIZE..(k + 1) * SYM_SIZE];
            let name = u32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
            let kind = e[4] & 0xf;
            let shndx = u16::from_ne_bytes([e[6], e[7]]);
            let value = u64::from_ne_bytes([e[8], e[9], e[10], e[11], e[12], e[13], e[14], e[15]]) as usize;
            let size = u64::from_ne_bytes([e[16], e[17], e[18], e[19], e[20], e[21], e[22], e[23]]) as usize;
            if matches!(kind, STT_FUNC | STT_GNU_IFUNC | STT_NOTYPE) && shndx != 0 && value != 0 && size != 0
            {
                funcs.push((m.base.wrapping_add(value), size, name));
            }
        }
        i += n;
    }
    funcs.sort_unstable_by_key(|f| f.0);
    funcs
}

/// The number of symbols a `DT_GNU_HASH` table covers: one past the last chain entry of the
/// highest bucket.
fn gnu_hash_count(table: usize) -> Option<usize> {
    let nbuckets = read_u32(table)? as usize;
    let symoffset = read_u32(table + 4)? as usize;
    let bloom_size = read_u32(table + 8)? as usize;
    let buckets = table + 16 + bloom_size * 8;
    let mut last = 0usize;
    let mut chunk = [0u8; 1024];
    let mut i = 0;
    while i < nbuckets {
        let n = (nbuckets - i).min(chunk.len() / 4);
        if !safe_read(buckets + i * 4, &mut chunk[..n * 4]) {
            return None;
        }
        for k in 0..n {
            let v = u32::from_ne_bytes(chunk[k * 4..k * 4 + 4].try_into().ok()?) as usize;
            last = last.max(v);
        }
        i += n;
    }
    if last < symoffset {
        return Some(symoffset);
    }
    let chains = buckets + nbuckets * 4;
    (last..last + (1 << 24)).find_map(|idx| match read_u32(chains + (idx - symoffset) * 4) {
        Some(h) if h & 1 == 1 => Some(Some(idx + 1)),
        Some(_) => None,
        None => Some(None),
    })?
}

/// A pc resolved to its module and nearest dynamic symbol (fixed buffers: no allocation).
pub struct Symbolized {
    /// Whether the pc is in a known module's text (else the other fields are empty).
    pub found: bool,
    pub module: [u8; NAME_MAX],
    pub module_len: usize,
    /// pc minus the module's load base.
    pub offset: u64,
    pub symbol: [u8; SYM_MAX],
    /// 0: no symbol contains the pc.
    pub symbol_len: usize,
    pub symbol_offset: u64,
}

impl Symbolized {
    pub const fn new() -> Self {
        Symbolized {
            found: false,
            module: [0; NAME_MAX],
            module_len: 0,
            offset: 0,
            symbol: [0; SYM_MAX],
            symbol_len: 0,
            symbol_offset: 0,
        }
    }

    pub fn module_name(&self) -> &[u8] {
        &self.module[..self.module_len]
    }

    pub fn symbol_name(&self) -> &[u8] {
        &self.symbol[..self.symbol_len]
    }
}

impl Default for Symbolized {
    fn default() -> Self {
        Self::new()
    }
}

/// Hold the current snapshot for the duration of `f` (async-signal-safe).
fn with_snapshot<R>(f: impl FnOnce(Option<&Snapshot>) -> R) -> R {
    READERS.fetch_add(1, Ordering::SeqCst);
    let p = CURRENT.load(Ordering::SeqCst);
    // SAFETY: a published snapshot is freed only when READERS is 0 after it was replaced;
    // we counted ourselves in READERS before loading the pointer.
    let r = f(unsafe { p.as_ref() });
    READERS.fetch_sub(1, Ordering::SeqCst);
    r
}

impl Module {
    fn contains(&self, pc: usize) -> bool {
        self.text[..self.ntext].iter().any(|&(lo, hi)| pc >= lo && pc < hi)
    }
}

fn find(s: &Snapshot, pc: usize) -> Option<&Module> {
    s.modules.iter().find(|m| m.contains(pc))
}

/// Is `pc` in the text of a module of the current snapshot? Async-signal-safe.
pub fn in_known_text(pc: usize) -> bool {
    with_snapshot(|s| s.is_some_and(|s| find(s, pc).is_some()))
}

/// Resolve `pc` (`lookup_pc` is the address used to pick the symbol: `pc - 1` for return
/// addresses, so a call that ends a function is attributed to it). Async-signal-safe.
pub fn symbolize(pc: usize, lookup_pc: usize, out: &mut Symbolized) {
    *out = Symbolized::new();
    with_snapshot(|s| {
        let Some(m) = s.and_then(|s| find(s, lookup_pc)) else { return };
        out.found = true;
        out.module = m.name;
        out.module_len = m.name_len;
        out.offset = pc.wrapping_sub(m.base) as u64;
        if let Some((addr, name)) = nearest_symbol(m, lookup_pc) {
            out.symbol_offset = pc.wrapping_sub(addr) as u64;
            out.symbol_len = read_name(m, name, &mut out.symbol);
        }
    })
}

/// The extent (start, size) of the function symbol that contains `pc`, if a module of the
/// current snapshot has one. Async-signal-safe.
pub fn function_extent(pc: usize) -> Option<(usize, usize)> {
    with_snapshot(|s| s.and_then(|s| find(s, pc)).and_then(|m| covering(m, pc)).map(|&(a, n, _)| (a, n)))
}

/// The function symbol whose extent contains `pc`: (its address, its name's string offset).
fn nearest_symbol(m: &Module, pc: usize) -> Option<(usize, u32)> {
    covering(m, pc).map(|&(addr, _, name)| (addr, name))
}

/// The index entry (address, size, name) of the function whose extent contains `pc`. A binary
/// search of the module's index; async-signal-safe (no allocation, no system call).
fn covering(m: &Module, pc: usize) -> Option<&(usize, usize, u32)> {
    let end = m.funcs.partition_point(|f| f.0 <= pc);
    // The closest start at or below pc that covers it (aliases share a start; a few look-backs
    // cover a function nested in another's extent).
    m.funcs[..end].iter().rev().take(16).find(|&&(addr, size, _)| pc - addr < size)
}

fn read_name(m: &Module, name: u32, out: &mut [u8; SYM_MAX]) -> usize {
    let off = name as usize;
    if off >= m.strsz {
        return 0;
    }
    let n = (m.strsz - off).min(SYM_MAX);
    let mut len = 0;
    // Read in small pieces so a string near the end of a mapping is still found.
    while len < n {
        let step = (n - len).min(32);
        if !safe_read(m.strtab + off + len, &mut out[len..len + step]) {
            break;
        }
        if let Some(z) = out[len..len + step].iter().position(|&b| b == 0) {
            return len + z;
        }
        len += step;
    }
    // Unterminated within SYM_MAX: keep it cut, but only if it is printable.
    if out[..len].iter().all(|b| b.is_ascii_graphic()) {
        len
    } else {
        0
    }
}

/// Does the instruction ending at `ret` decode as a call? Async-signal-safe.
fn follows_call(ret: usize) -> bool {
    let mut buf = [0u8; 8];
    if ret < 8 || !safe_read(ret - 8, &mut buf) {
        return false;
    }
    (2..=7).any(|k| {
        let ip = (ret - k) as u64;
        let Ok(mut d) = iced_x86::Decoder::try_with_ip(64, &buf[8 - k..], ip, iced_x86::DecoderOptions::NONE)
        else {
            return false;
        };
        let insn = d.decode();
        !insn.is_invalid()
            && insn.len() == k
            && matches!(
                insn.flow_control(),
                iced_x86::FlowControl::Call | iced_x86::FlowControl::IndirectCall
            )
    })
}

/// The start of the dynamic function symbol containing `pc`. Async-signal-safe.
fn function_start(pc: usize) -> Option<usize> {
    with_snapshot(|s| {
        let m = s.and_then(|s| find(s, pc))?;
        nearest_symbol(m, pc).map(|(addr, _)| addr)
    })
}

/// The target of a `call rel32` that ends at `ret`. Async-signal-safe.
fn direct_call_target(ret: usize) -> Option<usize> {
    let mut b = [0u8; 5];
    if ret < 5 || !safe_read(ret - 5, &mut b) || b[0] != 0xe8 {
        return None;
    }
    let rel = i32::from_le_bytes([b[1], b[2], b[3], b[4]]) as isize;
    Some(ret.wrapping_add_signed(rel))
}

/// Walk the frame-pointer chain from an interrupted context: `out[0] = pc`, then return
/// addresses that pass every check in the module comment. Returns the number of frames.
/// Async-signal-safe.
pub fn walk(pc: u64, rsp: u64, rbp: u64, out: &mut [u64; MAX_FRAMES]) -> usize {
    out[0] = pc;
    let mut n = 1;
    if SAFE_READ.load(Ordering::Relaxed) != 1 {
        return n;
    }
    let floor = rsp as usize;
    let ceiling = floor.saturating_add(MAX_STACK_SPAN);
    let mut lo = floor;
    let mut fp = rbp as usize;
    // A frameless function (a leaf at -O2, even with -fno-omit-frame-pointer) leaves its
    // return address at [rsp] and rbp pointing at its caller's frame. Take [rsp] only when it
    // provably is that return address: a direct call ends there whose target is the start of
    // the function containing pc.
    if let (Some(start), Some(ret)) = (function_start(pc as usize), read_u64(floor)) {
        let ret = ret as usize;
        if direct_call_target(ret) == Some(start) && in_known_text(ret.wrapping_sub(1)) {
            out[n] = ret as u64;
            n += 1;
            lo = floor + 8;
        }
    }
    while n < MAX_FRAMES {
        if fp < lo || fp >= ceiling || fp & 7 != 0 {
            break;
        }
        let (Some(next), Some(ret)) = (read_u64(fp), read_u64(fp + 8)) else { break };
        let ret = ret as usize;
        if !in_known_text(ret.wrapping_sub(1)) || !follows_call(ret) {
            break;
        }
        out[n] = ret as u64;
        n += 1;
        lo = fp + 16;
        fp = next as usize;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    extern "C" fn probe_target() -> usize {
        core::hint::black_box(7)
    }

    #[test]
    fn safe_read_reads_mapped_memory_and_refuses_unmapped() {
        refresh();
        let v: u64 = 42;
        assert_eq!(read_u64(&v as *const u64 as usize), Some(42));
        assert_eq!(read_u64(8), None);
        assert_eq!(read_u64(usize::MAX - 16), None);
    }

    #[test]
    fn own_text_is_a_known_module() {
        refresh();
        let pc = probe_target as *const () as usize;
        assert!(in_known_text(pc));
        let mut s = Symbolized::new();
        symbolize(pc, pc, &mut s);
        assert!(s.found);
        assert!(s.module_len > 0);
    }

    #[test]
    fn libc_symbols_resolve() {
        refresh();
        let pc = libc::getpid as *const () as usize;
        let mut s = Symbolized::new();
        symbolize(pc + 1, pc + 1, &mut s);
        assert!(s.found, "getpid's module is known");
        let name = core::str::from_utf8(s.symbol_name()).unwrap();
        assert!(name.contains("getpid"), "{name:?}");
        assert_eq!(s.symbol_offset, 1);
    }

    #[test]
    fn walking_garbage_stops_at_frame_zero() {
        refresh();
        let mut out = [0u64; MAX_FRAMES];
        assert_eq!(walk(0x1234, 0x1000, 0xdead_beef_0000, &mut out), 1);
        let local = [0u64; 4];
        let sp = local.as_ptr() as u64;
        assert_eq!(walk(0x1234, sp, sp, &mut out), 1);
    }
}
