//! Monitored ranges of an unmodified program, from their configured form to addresses:
//! `symbol:NAME[:LEN]` (the dynamic or static symbol table of the executable or a loaded
//! library), `module:NAME+OFFSET:LEN` and `ADDR+LEN`, then checked against the process's
//! mappings. Runs at start-up (normal context: it reads ELF files and `/proc/self/maps`).

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use vmsrs_config::config::{RangeSpec, Watch};

/// A range ready to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub addr: usize,
    pub len: usize,
    /// How the configuration named it (for messages and the hv's range name).
    pub name: String,
    /// How it is to be watched (`VMSRS_WATCH`, `VMSRS_WATCH_<N>`).
    pub watch: Watch,
}

/// A loaded object: its file, load base and the extent of its loadable segments.
#[derive(Debug, Clone)]
struct Module {
    /// The file name without directories (the executable's included).
    name: String,
    path: PathBuf,
    base: usize,
    lo: usize,
    hi: usize,
}

fn modules() -> Vec<Module> {
    unsafe extern "C" fn cb(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> i32 {
        // SAFETY: `data` is the Vec handed to dl_iterate_phdr below; `info` is the loader's,
        // valid during the callback.
        let (out, info) = unsafe { (&mut *(data as *mut Vec<Module>), &*info) };
        let base = info.dlpi_addr as usize;
        let (mut lo, mut hi) = (usize::MAX, 0usize);
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr holds dlpi_phnum headers.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type == libc::PT_LOAD {
                lo = lo.min(base.wrapping_add(ph.p_vaddr as usize));
                hi = hi.max(base.wrapping_add((ph.p_vaddr + ph.p_memsz) as usize));
            }
        }
        let named = if info.dlpi_name.is_null() {
            None
        } else {
            // SAFETY: the loader's NUL-terminated name.
            let s = unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes();
            (!s.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(s)))
        };
        // The first object without a name is the executable; the vDSO has a name but no file.
        let (name, path) = match named {
            Some(p) => (p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), p),
            // The executable is read through /proc/self/exe, which opens even when its file was
            // replaced or removed since it started (its link then ends in " (deleted)").
            None if out.is_empty() => {
                let link = std::fs::read_link("/proc/self/exe").unwrap_or_default();
                let name = link.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (
                    name.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(name),
                    PathBuf::from("/proc/self/exe"),
                )
            }
            None => return 0,
        };
        if hi > lo {
            out.push(Module { name, path, base, lo, hi });
        }
        0
    }
    let mut out: Vec<Module> = Vec::new();
    // SAFETY: the callback only reads the loader's headers and pushes to `out`.
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut out as *mut Vec<Module> as *mut libc::c_void) };
    out
}

/// A data symbol of an ELF file: (value, size) of the first defined object named `name` in
/// `.symtab`, else `.dynsym`.
fn elf_object(file: &[u8], name: &str) -> Option<(usize, usize)> {
    let u16_at = |o: usize| file.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| file.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    let u64_at = |o: usize| file.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    if file.get(..5) != Some(b"\x7fELF\x02") {
        return None;
    }
    let (shoff, shentsize, shnum) = (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?);
    let section = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    // SHT_SYMTAB = 2, SHT_DYNSYM = 11: the full table first.
    for want in [2usize, 11] {
        for i in 0..shnum {
            let sh = section(i)?;
            if u32_at(sh + 4)? != want {
                continue;
            }
            let (off, size, link) = (u64_at(sh + 0x18)?, u64_at(sh + 0x20)?, u32_at(sh + 0x28)?);
            let strsh = section(link)?;
            let (stroff, strsize) = (u64_at(strsh + 0x18)?, u64_at(strsh + 0x20)?);
            let strtab = file.get(stroff..stroff.checked_add(strsize)?)?;
            for s in (off..off.checked_add(size)?).step_by(24) {
                let (st_name, info, shndx) = (u32_at(s)?, *file.get(s + 4)?, u16_at(s + 6)?);
                // STT_OBJECT = 1, STT_COMMON = 5; defined (st_shndx not SHN_UNDEF).
                if !matches!(info & 0xf, 1 | 5) || shndx == 0 {
                    continue;
                }
                let n = strtab.get(st_name..)?;
                let n = &n[..n.iter().position(|&b| b == 0)?];
                if n == name.as_bytes() {
                    return Some((u64_at(s + 8)?, u64_at(s + 16)?));
                }
            }
        }
    }
    None
}

/// Where a range spec lies in this process (not yet checked against the mappings).
enum Located {
    At(usize, usize),
    /// Its object is not loaded (yet): why, for the message.
    NotLoaded(String),
    Bad(String),
}

/// The ELF files of `mods`, each read at most once per resolution (a server's executable is
/// tens of megabytes, and several ranges name its symbols).
struct Files(Vec<Option<Option<Vec<u8>>>>);

impl Files {
    fn new(mods: &[Module]) -> Files {
        Files(vec![None; mods.len()])
    }

    fn get(&mut self, mods: &[Module], i: usize) -> Option<&[u8]> {
        self.0[i].get_or_insert_with(|| std::fs::read(&mods[i].path).ok()).as_deref()
    }
}

fn locate(spec: &RangeSpec, mods: &[Module], files: &mut Files) -> Located {
    match spec {
        RangeSpec::Addr { addr, len } => Located::At(*addr, *len),
        RangeSpec::Module { name, offset, len } => {
            let Some(m) = mods.iter().find(|m| &m.name == name) else {
                let loaded: Vec<&str> = mods.iter().map(|m| m.name.as_str()).collect();
                return Located::NotLoaded(format!(
                    "no loaded object is named {name:?} (loaded: {})",
                    loaded.join(", ")
                ));
            };
            match m.base.checked_add(*offset).filter(|a| a.checked_add(*len).is_some_and(|e| e <= m.hi)) {
                Some(a) => Located::At(a, *len),
                None => Located::Bad(format!(
                    "{offset:#x}+{len} is past the end of {name} ({:#x} bytes)",
                    m.hi - m.base
                )),
            }
        }
        RangeSpec::Symbol { name, len } => {
            for (i, m) in mods.iter().enumerate() {
                let Some(file) = files.get(mods, i) else { continue };
                if let Some((value, size)) = elf_object(file, name) {
                    let addr = m.base.wrapping_add(value);
                    if addr < m.lo || addr >= m.hi {
                        continue;
                    }
                    return match len.unwrap_or(size) {
                        0 => Located::Bad(format!("symbol {name} in {} has size 0: give its length", m.name)),
                        n => Located::At(addr, n),
                    };
                }
            }
            Located::NotLoaded(format!(
                "no data symbol {name:?} in any loaded object (executable or library)"
            ))
        }
    }
}

/// One line of `/proc/self/maps`: start, end, permissions, path.
#[derive(Debug)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    private: bool,
    path: String,
}

fn mappings() -> Vec<Mapping> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let (a, b) = range.split_once('-')?;
            let path = f.nth(3).unwrap_or("").to_owned();
            Some(Mapping {
                start: usize::from_str_radix(a, 16).ok()?,
                end: usize::from_str_radix(b, 16).ok()?,
                writable: perms.as_bytes().get(1) == Some(&b'w'),
                private: perms.as_bytes().get(3) == Some(&b'p'),
                path,
            })
        })
        .collect()
}

/// libvmsrs's own object in memory (start, end of its loadable segments).
pub fn own_object() -> (usize, usize) {
    // SAFETY: zeroed Dl_info is a valid out-value; dladdr on an address of this object.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::dladdr(own_object as *const libc::c_void, &mut info) } == 0 {
        return (0, 0);
    }
    let base = info.dli_fbase as usize;
    modules().iter().find(|m| m.base == base).map_or((0, 0), |m| (m.lo, m.hi))
}

/// The first page and one past the last page of `addr..addr+len`.
pub fn pages(addr: usize, len: usize) -> (usize, usize) {
    let p = page_size();
    (addr & !(p - 1), (addr + len + p - 1) & !(p - 1))
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A range whose object is not loaded yet (a symbol of a library the program will `dlopen`,
/// a module not loaded yet): it is watched when it appears.
#[derive(Debug, Clone)]
pub struct Pending {
    pub spec: RangeSpec,
    pub watch: Watch,
    /// Why it could not be found at start-up.
    pub why: String,
}

/// Resolve and check every configured range. `own` is libvmsrs's own object (start, end).
///
/// Refused, each with a message naming the range: an offset past the end of its module, a
/// symbol of size 0 without a length, a range not wholly inside private writable mappings
/// (unmapped, read-only, a shared mapping), a range on the heap, inside libvmsrs's own object
/// or on a thread stack, and two ranges that overlap. A symbol found in no loaded object, and
/// a module that is not loaded, are [`Pending`].
pub fn resolve_all<'a>(
    specs: impl Iterator<Item = (&'a RangeSpec, Watch)>,
    own: (usize, usize),
) -> Result<(Vec<Resolved>, Vec<Pending>), String> {
    let mods = modules();
    let maps = mappings();
    let mut files = Files::new(&mods);
    let (mut out, mut later) = (Vec::new(), Vec::new());
    for (spec, watch) in specs {
        match locate(spec, &mods, &mut files) {
            Located::At(addr, len) => out.push(check(spec.to_string(), watch, addr, len, own, &maps, &out)?),
            Located::NotLoaded(why) => later.push(Pending { spec: spec.clone(), watch, why }),
            Located::Bad(why) => return Err(format!("range {spec}: {why}")),
        }
    }
    Ok((out, later))
}

/// Resolve pending ranges whose object is now loaded: (resolved, still pending, refused with
/// their reason). `watched` are the ranges watched already (for overlaps).
pub fn resolve_pending(
    pending: Vec<Pending>,
    own: (usize, usize),
    watched: &[Resolved],
) -> (Vec<Resolved>, Vec<Pending>, Vec<String>) {
    let mods = modules();
    let maps = mappings();
    let mut files = Files::new(&mods);
    let (mut now, mut later, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for p in pending {
        match locate(&p.spec, &mods, &mut files) {
            Located::At(addr, len) => {
                let all: Vec<Resolved> = watched.iter().chain(&now).cloned().collect();
                match check(p.spec.to_string(), p.watch, addr, len, own, &maps, &all) {
                    Ok(r) => now.push(r),
                    Err(e) => refused.push(e),
                }
            }
            Located::NotLoaded(_) => later.push(p),
            Located::Bad(why) => refused.push(format!("range {}: {why}", p.spec)),
        }
    }
    (now, later, refused)
}

/// Check one located range against the mappings, libvmsrs's object, the stack and `others`.
fn check(
    name: String,
    watch: Watch,
    addr: usize,
    len: usize,
    own: (usize, usize),
    maps: &[Mapping],
    others: &[Resolved],
) -> Result<Resolved, String> {
    if len == 0 || addr.checked_add(len).is_none() {
        return Err(format!("range {name}: empty or wrapping"));
    }
    let end = addr + len;
    let (p0, p1) = pages(addr, len);
    if p0 < own.1 && own.0 < p1 {
        return Err(format!(
            "range {name} ({addr:#x}+{len}) shares a page with libvmsrs's own memory; pick another range"
        ));
    }
    let stack = this_stack();
    if p0 < stack.1 && stack.0 < p1 {
        return Err(format!("range {name} ({addr:#x}+{len}) is on the stack; stacks cannot be watched"));
    }
    // Every byte of the range in one or more private writable mappings, none a stack.
    let mut at = addr;
    while at < end {
        let m = maps.iter().find(|m| m.start <= at && at < m.end).ok_or_else(|| {
            format!("range {name} ({addr:#x}+{len}): {at:#x} is not mapped in this process")
        })?;
        if m.path.starts_with("[stack") {
            return Err(format!("range {name} ({addr:#x}+{len}) is on the stack; stacks cannot be watched"));
        }
        if m.path == "[heap]" {
            return Err(format!(
                "range {name} ({addr:#x}+{len}) is on the heap, whose pages libvmsrs's own allocations \
                 share; watch globals (.data, .bss), or profile heap tables with vmsrs_profile()"
            ));
        }
        if !m.writable || !m.private {
            return Err(format!(
                "range {name} ({addr:#x}+{len}): {at:#x} is in a {} mapping ({}); only private writable \
                 data (.data, .bss) can be watched",
                if m.writable { "shared" } else { "read-only" },
                if m.path.is_empty() { "anonymous" } else { m.path.as_str() }
            ));
        }
        at = m.end;
    }
    if let Some(o) = others.iter().find(|o| o.addr < end && addr < o.addr + o.len) {
        return Err(format!(
            "range {name} ({addr:#x}+{len}) overlaps range {} ({:#x}+{})",
            o.name, o.addr, o.len
        ));
    }
    if watch == Watch::Hw && !super::hw::fits(addr, len) {
        return Err(format!(
            "range {name} ({addr:#x}+{len}) cannot have a hardware watchpoint (watch=hw): it must be 1, 2, 4 \
             or 8 bytes aligned to its length; use watch=page or watch=auto"
        ));
    }
    Ok(Resolved { addr, len, name, watch })
}

/// The calling thread's stack (start, end); the main thread's is also `[stack]` in the maps.
fn this_stack() -> (usize, usize) {
    // SAFETY: a zeroed attribute object filled by pthread_getattr_np, read, then destroyed.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return (0, 0);
        }
        let (mut addr, mut size) = (core::ptr::null_mut(), 0usize);
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            (addr as usize, addr as usize + size)
        } else {
            (0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[no_mangle]
    #[used]
    static mut VMSRS_RESOLVE_TEST_OBJECT: [u64; 5] = [0; 5];

    #[test]
    fn a_symbol_of_the_executable_resolves_to_its_address_and_size() {
        let spec = RangeSpec::Symbol { name: "VMSRS_RESOLVE_TEST_OBJECT".into(), len: None };
        let r = resolve_all([(&spec, Watch::Page)].into_iter(), (0, 0)).unwrap().0;
        let want = core::ptr::addr_of!(VMSRS_RESOLVE_TEST_OBJECT) as usize;
        assert_eq!((r[0].addr, r[0].len), (want, 40));
    }

    #[test]
    fn bad_ranges_are_refused_with_a_reason() {
        let obj = core::ptr::addr_of!(VMSRS_RESOLVE_TEST_OBJECT) as usize;
        // Objects not loaded (yet) are pending, with the reason.
        for (spec, why) in [
            (RangeSpec::Symbol { name: "no_such_symbol_anywhere".into(), len: None }, "no data symbol"),
            (RangeSpec::Module { name: "no-such.so".into(), offset: 0, len: 8 }, "no loaded object"),
        ] {
            let (now, later) = resolve_all([(&spec, Watch::Page)].into_iter(), (0, 0)).unwrap();
            assert!(now.is_empty() && later.len() == 1 && later[0].why.contains(why), "{spec}: {later:?}");
        }
        let cases: [(RangeSpec, &str); 4] = [
            (RangeSpec::Addr { addr: 4096, len: 8 }, "not mapped"),
            (RangeSpec::Addr { addr: a_text_address(), len: 8 }, "read-only"),
            (RangeSpec::Addr { addr: obj, len: 8 }, "shares a page with libvmsrs"),
            (RangeSpec::Addr { addr: &obj as *const usize as usize, len: 8 }, "stack"),
        ];
        for (spec, why) in cases {
            let own = if why.contains("libvmsrs") { pages(obj, 8) } else { (0, 0) };
            let e = resolve_all([(&spec, Watch::Page)].into_iter(), own).unwrap_err();
            assert!(e.contains(why), "{spec}: {e}");
        }
        let a = RangeSpec::Addr { addr: obj, len: 16 };
        let b = RangeSpec::Addr { addr: obj + 8, len: 16 };
        assert!(resolve_all([(&a, Watch::Page), (&b, Watch::Page)].into_iter(), (0, 0))
            .unwrap_err()
            .contains("overlaps"));
    }

    fn a_text_address() -> usize {
        a_text_address as fn() -> usize as usize
    }
}
