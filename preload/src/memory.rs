//! The allocator family and `memset`/`memcpy`/`memmove` (with their `_FORTIFY_SOURCE` forms),
//! interposed: the paper's class 3 for programs that do not call `vmsrs_malloc` & co.
//!
//! - Allocation goes to glibc's own entry points (`__libc_malloc`, ...), never through a
//!   symbol lookup, so an allocation made by `dlsym`, by Rust code inside libvmsrs or by
//!   another library's constructor before ours ran never recurses (ECOSYSTEM pitfalls 1, 2,
//!   17). The whole family is covered (pitfall 4): `malloc`, `calloc`, `realloc`,
//!   `reallocarray`, `free`, `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`,
//!   `pvalloc`, `malloc_usable_size`.
//! - After its fault a user's `free` is not performed (DESIGN §5): a counted
//!   (`frees_withheld`), reported leak, never a double free; a suppressed user's `realloc`
//!   never frees the old block. The no-fault path of `free` is one load (the load gate) before
//!   glibc's `free`.
//! - A program that brings its own allocator (its `malloc` is found before ours, or an
//!   allocator is preloaded after us) is said so once at start-up, and the whole family then
//!   stands back: every call forwards to the next definition, with no withheld free
//!   (pitfall 5).
//! - `memset`/`memcpy`/`memmove` on monitored memory are range stores of the calling user
//!   (and read monitored sources through its view while a user is faulted), as
//!   `vmsrs_memset`/`vmsrs_memcpy`; elsewhere they cost the hv handle and the two range
//!   bounds (three loads), then glibc's function. glibc's are found once at load
//!   (`dlvsym(RTLD_NEXT)`, else libc's handle: pitfalls 14, 18); a call that arrives before
//!   (another library's constructor) uses a plain `rep movsb`/`rep stosb`.
//!
//! Not covered (pitfall 16): calls the compiler inlines (`__builtin_memset` of a known small
//! size, struct copies) and libc's internal calls (`strdup` allocating inside libc) never
//! reach a symbol; they are plain.

use core::arch::asm;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use libc::{c_int, c_void, size_t};
use vmsrs_runtime::interposed;

extern "C" {
    fn __libc_malloc(n: size_t) -> *mut c_void;
    fn __libc_calloc(n: size_t, size: size_t) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, n: size_t) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
    fn __libc_memalign(align: size_t, n: size_t) -> *mut c_void;
    fn __libc_valloc(n: size_t) -> *mut c_void;
    fn __libc_pvalloc(n: size_t) -> *mut c_void;
    fn __chk_fail() -> !;
}

// ----- the allocator family ---------------------------------------------------------------

/// Indices into [`NEXT`], and the names looked up for them.
const MALLOC: usize = 0;
const CALLOC: usize = 1;
const REALLOC: usize = 2;
const FREE: usize = 3;
const MEMALIGN: usize = 4;
const POSIX_MEMALIGN: usize = 5;
const ALIGNED_ALLOC: usize = 6;
const VALLOC: usize = 7;
const PVALLOC: usize = 8;
const USABLE_SIZE: usize = 9;
const REALLOCARRAY: usize = 10;
const FAMILY: [&CStr; 11] = [
    c"malloc",
    c"calloc",
    c"realloc",
    c"free",
    c"memalign",
    c"posix_memalign",
    c"aligned_alloc",
    c"valloc",
    c"pvalloc",
    c"malloc_usable_size",
    c"reallocarray",
];

/// The next definition of each family member after this object (glibc's, unless another
/// allocator is preloaded after us), found once at load.
static NEXT: [AtomicUsize; 11] = [const { AtomicUsize::new(0) }; 11];

/// The program brings its own allocator: every family member forwards to [`NEXT`].
static STAND_BACK: AtomicBool = AtomicBool::new(false);

/// The next definition of family member `i`, as a function of type `T`, when standing back.
///
/// # Safety
/// `T` is the C signature of family member `i`.
#[inline(always)]
unsafe fn standing_back<T: Copy>(i: usize) -> Option<T> {
    if !STAND_BACK.load(Relaxed) {
        return None;
    }
    let f = NEXT[i].load(Relaxed);
    // SAFETY: a non-zero entry is the address of the C function named FAMILY[i], whose
    // signature `T` is (caller's contract); usize and fn pointers have the same size.
    (f != 0).then(|| unsafe { core::mem::transmute_copy::<usize, T>(&f) })
}

/// The next definition of family member `i` (glibc's, or the program's allocator when
/// standing back), once found.
///
/// # Safety
/// `T` is the C signature of family member `i`.
#[inline(always)]
unsafe fn next_fn<T: Copy>(i: usize) -> Option<T> {
    let f = NEXT[i].load(Relaxed);
    // SAFETY: as in `standing_back`.
    (f != 0).then(|| unsafe { core::mem::transmute_copy::<usize, T>(&f) })
}

type Alloc1 = unsafe extern "C" fn(size_t) -> *mut c_void;
type Alloc2 = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
type Realloc = unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void;
type Reallocarray = unsafe extern "C" fn(*mut c_void, size_t, size_t) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);
type PosixMemalign = unsafe extern "C" fn(*mut *mut c_void, size_t, size_t) -> c_int;
type UsableSize = unsafe extern "C" fn(*mut c_void) -> size_t;

/// `malloc(3)`: glibc's.
#[no_mangle]
pub extern "C" fn malloc(n: size_t) -> *mut c_void {
    // SAFETY: MALLOC's signature; then glibc's malloc, which has no preconditions.
    unsafe {
        if let Some(f) = standing_back::<Alloc1>(MALLOC) {
            return f(n);
        }
        __libc_malloc(n)
    }
}

/// `calloc(3)`: glibc's.
#[no_mangle]
pub extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    // SAFETY: CALLOC's signature; then glibc's calloc (it checks the overflow).
    unsafe {
        if let Some(f) = standing_back::<Alloc2>(CALLOC) {
            return f(n, size);
        }
        __libc_calloc(n, size)
    }
}

/// `realloc(3)`: glibc's; for a suppressed user the old block is never freed.
///
/// # Safety
/// realloc's contract.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: size_t) -> *mut c_void {
    // SAFETY: REALLOC's signature; forwarded contract.
    if let Some(f) = unsafe { standing_back::<Realloc>(REALLOC) } {
        // SAFETY: forwarded contract.
        return unsafe { f(p, n) };
    }
    if !p.is_null() && interposed::any_fault() {
        if let Some(q) = interposed::suppressed_realloc(p as usize, n) {
            return q;
        }
    }
    // SAFETY: forwarded contract.
    unsafe { __libc_realloc(p, n) }
}

/// `reallocarray(3)`: `realloc(p, n * size)`, NULL with `ENOMEM` when that overflows.
///
/// # Safety
/// realloc's contract.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: size_t, size: size_t) -> *mut c_void {
    // SAFETY: REALLOCARRAY's signature; forwarded contract.
    if let Some(f) = unsafe { standing_back::<Reallocarray>(REALLOCARRAY) } {
        // SAFETY: forwarded contract.
        return unsafe { f(p, n, size) };
    }
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// `free(3)`: glibc's; withheld (counted, reported once per user) when the calling user is
/// suppressed. The no-fault path is one load before glibc's free.
///
/// # Safety
/// free's contract.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: FREE's signature; forwarded contract.
    if let Some(f) = unsafe { standing_back::<Free>(FREE) } {
        // SAFETY: forwarded contract.
        return unsafe { f(p) };
    }
    if !p.is_null() && interposed::any_fault() && interposed::withhold_free(p as usize, "free") {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { __libc_free(p) }
}

/// `memalign(3)`: glibc's.
#[no_mangle]
pub extern "C" fn memalign(align: size_t, n: size_t) -> *mut c_void {
    // SAFETY: MEMALIGN's signature; then glibc's memalign (it rounds a bad alignment up).
    unsafe {
        if let Some(f) = standing_back::<Alloc2>(MEMALIGN) {
            return f(align, n);
        }
        __libc_memalign(align, n)
    }
}

/// `aligned_alloc(3)`: glibc's (found at load; its alignment rules are those of the glibc
/// in use). A call before that: `memalign`, NULL with `EINVAL` unless `align` is a power of
/// two.
#[no_mangle]
pub extern "C" fn aligned_alloc(align: size_t, n: size_t) -> *mut c_void {
    // SAFETY: ALIGNED_ALLOC's signature.
    if let Some(f) = unsafe { next_fn::<Alloc2>(ALIGNED_ALLOC) } {
        // SAFETY: forwarded call.
        return unsafe { f(align, n) };
    }
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: glibc's memalign with a valid alignment.
    unsafe { __libc_memalign(align, n) }
}

/// `posix_memalign(3)`: glibc's (found at load). A call before that: `EINVAL` unless
/// `align` is a power of two multiple of `sizeof(void *)`, `ENOMEM` when out of memory;
/// `*out` is set only on success.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: size_t, n: size_t) -> c_int {
    // SAFETY: POSIX_MEMALIGN's signature.
    if let Some(f) = unsafe { next_fn::<PosixMemalign>(POSIX_MEMALIGN) } {
        // SAFETY: forwarded contract.
        return unsafe { f(out, align, n) };
    }
    let word = core::mem::size_of::<*mut c_void>();
    if !align.is_multiple_of(word) || !(align / word).is_power_of_two() {
        return libc::EINVAL;
    }
    // SAFETY: glibc's memalign with a valid alignment.
    let p = unsafe { __libc_memalign(align, n) };
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: `out` is writable (contract).
    unsafe { out.write(p) };
    0
}

/// `valloc(3)`: glibc's.
#[no_mangle]
pub extern "C" fn valloc(n: size_t) -> *mut c_void {
    // SAFETY: VALLOC's signature; then glibc's valloc.
    unsafe {
        if let Some(f) = standing_back::<Alloc1>(VALLOC) {
            return f(n);
        }
        __libc_valloc(n)
    }
}

/// `pvalloc(3)`: glibc's.
#[no_mangle]
pub extern "C" fn pvalloc(n: size_t) -> *mut c_void {
    // SAFETY: PVALLOC's signature; then glibc's pvalloc.
    unsafe {
        if let Some(f) = standing_back::<Alloc1>(PVALLOC) {
            return f(n);
        }
        __libc_pvalloc(n)
    }
}

/// `malloc_usable_size(3)`: the next definition's (glibc's), found at load or, for a call
/// before that, on first use.
///
/// # Safety
/// `p` is NULL or a live block of this allocator.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> size_t {
    let mut f = NEXT[USABLE_SIZE].load(Relaxed);
    if f == 0 {
        f = resolve_next(FAMILY[USABLE_SIZE], None);
        NEXT[USABLE_SIZE].store(f, Relaxed);
    }
    if f == 0 {
        return 0;
    }
    // SAFETY: the next `malloc_usable_size`; forwarded contract.
    unsafe { core::mem::transmute::<usize, UsableSize>(f)(p) }
}

fn set_errno(e: c_int) {
    // SAFETY: this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

// ----- memset / memcpy / memmove ----------------------------------------------------------

type CopyFn = unsafe extern "C" fn(*mut c_void, *const c_void, size_t) -> *mut c_void;
type SetFn = unsafe extern "C" fn(*mut c_void, c_int, size_t) -> *mut c_void;

/// glibc's `memcpy`, `memmove`, `memset` (0 until found).
static REAL_MEMCPY: AtomicUsize = AtomicUsize::new(0);
static REAL_MEMMOVE: AtomicUsize = AtomicUsize::new(0);
static REAL_MEMSET: AtomicUsize = AtomicUsize::new(0);

/// `memcpy(3)`: on monitored memory a range store of the calling user (see the module
/// comment); else glibc's.
///
/// # Safety
/// memcpy's contract.
#[no_mangle]
pub unsafe extern "C" fn memcpy(d: *mut c_void, s: *const c_void, n: size_t) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { copy_via(&REAL_MEMCPY, d, s, n) }
}

/// `memmove(3)`: as `memcpy`, overlap allowed.
///
/// # Safety
/// memmove's contract.
#[no_mangle]
pub unsafe extern "C" fn memmove(d: *mut c_void, s: *const c_void, n: size_t) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { copy_via(&REAL_MEMMOVE, d, s, n) }
}

/// `memcpy`/`memmove` through `real` (glibc's, once resolved): the range store on monitored
/// memory, else the real function, else (before resolution) a plain byte move.
///
/// # Safety
/// memmove's contract.
#[inline(always)]
unsafe fn copy_via(real: &AtomicUsize, d: *mut c_void, s: *const c_void, n: size_t) -> *mut c_void {
    if interposed::may_be_monitored(d as usize, s as usize, n) {
        // SAFETY: forwarded contract.
        return unsafe { copy_slow(d, s, n, real) };
    }
    let f = real.load(Relaxed);
    if f != 0 {
        // SAFETY: glibc's function of this signature; forwarded contract.
        return unsafe { core::mem::transmute::<usize, CopyFn>(f)(d, s, n) };
    }
    // SAFETY: forwarded contract.
    unsafe { early_move(d, s, n) }
}

/// `memset(3)`: on monitored memory a range store of the calling user; else glibc's.
///
/// # Safety
/// memset's contract.
#[no_mangle]
pub unsafe extern "C" fn memset(d: *mut c_void, c: c_int, n: size_t) -> *mut c_void {
    if interposed::may_be_monitored(d as usize, 0, n) {
        // SAFETY: forwarded contract.
        return unsafe { set_slow(d, c, n) };
    }
    let f = REAL_MEMSET.load(Relaxed);
    if f != 0 {
        // SAFETY: glibc's memset; forwarded contract.
        return unsafe { core::mem::transmute::<usize, SetFn>(f)(d, c, n) };
    }
    // SAFETY: forwarded contract.
    unsafe { early_set(d, c, n) }
}

/// `memcpy`/`memmove` whose buffers may be monitored: a range store of the calling user, or
/// (inside libvmsrs) the plain copy. Out of line, so the no-fault path saves no registers.
///
/// # Safety
/// memmove's contract.
#[cold]
#[inline(never)]
unsafe fn copy_slow(d: *mut c_void, s: *const c_void, n: size_t, real: &AtomicUsize) -> *mut c_void {
    if interposed::monitored_copy(d as usize, s as usize, n) {
        return d;
    }
    let f = real.load(Relaxed);
    if f != 0 {
        // SAFETY: glibc's memcpy or memmove; forwarded contract.
        return unsafe { core::mem::transmute::<usize, CopyFn>(f)(d, s, n) };
    }
    // SAFETY: forwarded contract.
    unsafe { early_move(d, s, n) }
}

/// `memset` whose buffer may be monitored (see [`copy_slow`]).
///
/// # Safety
/// memset's contract.
#[cold]
#[inline(never)]
unsafe fn set_slow(d: *mut c_void, c: c_int, n: size_t) -> *mut c_void {
    if interposed::monitored_fill(d as usize, c as u8, n) {
        return d;
    }
    let f = REAL_MEMSET.load(Relaxed);
    if f != 0 {
        // SAFETY: glibc's memset; forwarded contract.
        return unsafe { core::mem::transmute::<usize, SetFn>(f)(d, c, n) };
    }
    // SAFETY: forwarded contract.
    unsafe { early_set(d, c, n) }
}

/// A fill before glibc's memset was found (a call from another library's constructor):
/// `rep stosb`.
///
/// # Safety
/// `d` is writable for `n` bytes.
#[cold]
unsafe fn early_set(d: *mut c_void, c: c_int, n: size_t) -> *mut c_void {
    // SAFETY: `d` is writable for `n` bytes (contract); rep stosb stores exactly those.
    unsafe {
        asm!("rep stosb", inout("rdi") d => _, inout("rcx") n => _, in("al") c as u8, options(nostack, preserves_flags));
    }
    d
}

/// A copy before glibc's functions were found (a call from another library's constructor):
/// `rep movsb`, backwards when the destination overlaps the source's tail.
///
/// # Safety
/// `d` writable and `s` readable for `n` bytes.
#[cold]
unsafe fn early_move(d: *mut c_void, s: *const c_void, n: size_t) -> *mut c_void {
    if n == 0 {
        return d;
    }
    let (du, su) = (d as usize, s as usize);
    if du > su && du < su + n {
        // SAFETY: both ranges are valid (contract); copying from the last byte down is a
        // correct overlapping move; the direction flag is cleared again, as the ABI requires.
        unsafe {
            asm!("std", "rep movsb", "cld",
                inout("rdi") du + n - 1 => _, inout("rsi") su + n - 1 => _, inout("rcx") n => _,
                options(nostack));
        }
    } else {
        // SAFETY: both ranges are valid (contract); a forward copy is correct here.
        unsafe {
            asm!("rep movsb", inout("rdi") du => _, inout("rsi") su => _, inout("rcx") n => _,
                options(nostack, preserves_flags));
        }
    }
    d
}

/// `__memcpy_chk` (`_FORTIFY_SOURCE`): `memcpy`, after glibc's overflow check.
///
/// # Safety
/// memcpy's contract, or `n > dstlen` (then the process aborts, as glibc's).
#[no_mangle]
pub unsafe extern "C" fn __memcpy_chk(
    d: *mut c_void,
    s: *const c_void,
    n: size_t,
    dstlen: size_t,
) -> *mut c_void {
    if n > dstlen {
        // SAFETY: glibc's buffer-overflow abort.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded contract.
    unsafe { memcpy(d, s, n) }
}

/// `__memmove_chk` (`_FORTIFY_SOURCE`).
///
/// # Safety
/// As `__memcpy_chk`.
#[no_mangle]
pub unsafe extern "C" fn __memmove_chk(
    d: *mut c_void,
    s: *const c_void,
    n: size_t,
    dstlen: size_t,
) -> *mut c_void {
    if n > dstlen {
        // SAFETY: glibc's buffer-overflow abort.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded contract.
    unsafe { memmove(d, s, n) }
}

/// `__memset_chk` (`_FORTIFY_SOURCE`).
///
/// # Safety
/// memset's contract, or `n > dstlen` (then the process aborts, as glibc's).
#[no_mangle]
pub unsafe extern "C" fn __memset_chk(d: *mut c_void, c: c_int, n: size_t, dstlen: size_t) -> *mut c_void {
    if n > dstlen {
        // SAFETY: glibc's buffer-overflow abort.
        unsafe { __chk_fail() }
    }
    // SAFETY: forwarded contract.
    unsafe { memset(d, c, n) }
}

// ----- resolution at load -------------------------------------------------------------------

/// The definition of `name` after this object (`dlvsym` when a version matters: pitfall 14),
/// else libc's own (`RTLD_NEXT` can fail when libvmsrs is linked rather than preloaded:
/// pitfall 18). 0 if neither is found, or if the answer is this object's own symbol.
pub(crate) fn resolve_next(name: &CStr, version: Option<&CStr>) -> usize {
    let mut f = 0usize;
    if let Some(v) = version {
        // SAFETY: NUL-terminated names.
        f = unsafe { libc::dlvsym(libc::RTLD_NEXT, name.as_ptr(), v.as_ptr()) } as usize;
    }
    if f == 0 {
        // SAFETY: NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    }
    if f == 0 || is_ours(f) {
        // SAFETY: a handle to the already-loaded libc (RTLD_NOLOAD loads nothing).
        let h = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if !h.is_null() {
            // SAFETY: a valid handle and NUL-terminated names.
            f = unsafe {
                match version {
                    Some(v) => libc::dlvsym(h, name.as_ptr(), v.as_ptr()),
                    None => libc::dlsym(h, name.as_ptr()),
                }
            } as usize;
            // SAFETY: drops the reference dlopen took; libc stays loaded.
            unsafe { libc::dlclose(h) };
        }
    }
    if is_ours(f) {
        0
    } else {
        f
    }
}

/// The base address of the object holding `addr` (0: none).
fn object_of(addr: usize) -> (usize, *const libc::c_char) {
    // SAFETY: zeroed Dl_info is a valid out-value.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables.
    if addr == 0 || unsafe { libc::dladdr(addr as *const c_void, &mut info) } == 0 {
        return (0, core::ptr::null());
    }
    (info.dli_fbase as usize, info.dli_fname)
}

/// Is `addr` inside libvmsrs.so?
fn is_ours(addr: usize) -> bool {
    addr != 0 && object_of(addr).0 == object_of(resolve as *const () as usize).0
}

#[used]
#[link_section = ".init_array"]
static RESOLVE: extern "C" fn() = resolve;

/// At load (before `main`, when linked or preloaded): find glibc's `memcpy`, `memmove`,
/// `memset` and the next allocator family, then see whether the program brings its own
/// allocator.
extern "C" fn resolve() {
    REAL_MEMCPY.store(resolve_next(c"memcpy", Some(c"GLIBC_2.14")), Relaxed);
    REAL_MEMMOVE.store(resolve_next(c"memmove", Some(c"GLIBC_2.2.5")), Relaxed);
    REAL_MEMSET.store(resolve_next(c"memset", Some(c"GLIBC_2.2.5")), Relaxed);
    for (slot, name) in NEXT.iter().zip(FAMILY) {
        slot.store(resolve_next(name, None), Relaxed);
    }
    detect_own_allocator();
}

/// Pitfall 5: the program's `malloc` is found before ours (defined by the executable or a
/// library ahead of us), or an allocator follows us (its `malloc` is the next one and is not
/// glibc's). Then say so once and stand back.
fn detect_own_allocator() {
    // SAFETY: NUL-terminated name; RTLD_DEFAULT is the global lookup order.
    let first = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) } as usize;
    let next = NEXT[MALLOC].load(Relaxed);
    let glibc = resolve_next(c"__libc_malloc", None);
    let foreign = if first != 0 && !is_ours(first) {
        Some((first, "is found before libvmsrs's"))
    } else if next != 0 && glibc != 0 && object_of(next).0 != object_of(glibc).0 {
        Some((next, "follows libvmsrs in LD_PRELOAD"))
    } else {
        None
    };
    let Some((f, how)) = foreign else { return };
    STAND_BACK.store(true, Relaxed);
    let (_, name) = object_of(f);
    let obj = if name.is_null() {
        String::new()
    } else {
        // SAFETY: the loader's NUL-terminated file name.
        unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
    };
    let obj = if obj.is_empty() { "the program".to_string() } else { obj };
    eprintln!(
        "=={}==vmsrs: this program brings its own allocator (malloc in {obj} {how}): libvmsrs's malloc family \
         stands back (a suppressed user's free is performed as usual)",
        std::process::id()
    );
}
