//! Guarded access to memory a caller named (the kernel's `copy_from_user` idea).
//!
//! libvmsrs never dereferences a pointer it was handed except through these routines. Each
//! one is a few instructions of hand-written assembly in its own text range; when one of
//! them faults, the fault handler (`src/fault`) sees the pc inside [`fixup`]'s table, makes the
//! routine return "failed" with the faulting address, and resumes. The library then treats
//! the bad pointer as a memory error of the calling user, at a point where it holds no lock,
//! instead of dying in its own code (or unwinding out of it with a lock held).
//!
//! Invariant: no other code of libvmsrs touches caller-supplied buffers; monitored memory
//! itself is read and written directly, because a profiled range is declared mapped.

/// The first byte that could not be accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddress(pub usize);

/// What a guarded routine returns in `rax:rdx`.
#[repr(C)]
struct Outcome {
    /// Bytes not copied (0: done), or `usize::MAX` for a failed string scan.
    rest: usize,
    /// With `rest != 0`: the faulting address, written by the fault handler.
    addr: usize,
}

#[cfg(not(miri))]
core::arch::global_asm!(
    ".pushsection .text.vmsrs_uaccess,\"ax\",@progbits",
    ".p2align 4",
    // copy(dst = rdi, src = rsi, n = rdx, guest = rcx) -> (rest, addr). Each step moves the
    // largest naturally aligned piece of `guest` (the side in guest memory) that fits: 8, 4, 2
    // or 1 bytes, with one access, so an aligned guest word, int or short is never torn.
    ".globl vmsrs__uaccess_copy",
    ".hidden vmsrs__uaccess_copy",
    ".type vmsrs__uaccess_copy,@function",
    "vmsrs__uaccess_copy:",
    "mov r8, rcx",
    "mov rcx, rdx",
    "2:",
    "test rcx, rcx",
    "jz 4f",
    "test r8, 7",
    "jnz 7f",
    "cmp rcx, 8",
    "jb 7f",
    "mov rax, [rsi]",
    "mov [rdi], rax",
    "add rsi, 8",
    "add rdi, 8",
    "add r8, 8",
    "sub rcx, 8",
    "jmp 2b",
    "7:",
    "test r8, 3",
    "jnz 8f",
    "cmp rcx, 4",
    "jb 8f",
    "mov eax, [rsi]",
    "mov [rdi], eax",
    "add rsi, 4",
    "add rdi, 4",
    "add r8, 4",
    "sub rcx, 4",
    "jmp 2b",
    "8:",
    "test r8, 1",
    "jnz 3f",
    "cmp rcx, 2",
    "jb 3f",
    "mov ax, [rsi]",
    "mov [rdi], ax",
    "add rsi, 2",
    "add rdi, 2",
    "add r8, 2",
    "sub rcx, 2",
    "jmp 2b",
    "3:",
    "mov al, [rsi]",
    "mov [rdi], al",
    "inc rsi",
    "inc rdi",
    "inc r8",
    "dec rcx",
    "jmp 2b",
    "4:",
    "xor eax, eax",
    "ret",
    ".globl vmsrs__uaccess_copy_fault",
    ".hidden vmsrs__uaccess_copy_fault",
    "vmsrs__uaccess_copy_fault:",
    "mov rax, rcx",
    "ret",
    ".size vmsrs__uaccess_copy, .-vmsrs__uaccess_copy",
    ".p2align 4",
    // strnlen(p = rdi, max = rsi) -> (len, _) or (usize::MAX, addr)
    ".globl vmsrs__uaccess_strnlen",
    ".hidden vmsrs__uaccess_strnlen",
    ".type vmsrs__uaccess_strnlen,@function",
    "vmsrs__uaccess_strnlen:",
    "xor eax, eax",
    "5:",
    "cmp rax, rsi",
    "jae 6f",
    "cmp byte ptr [rdi + rax], 0",
    "je 6f",
    "inc rax",
    "jmp 5b",
    "6:",
    "ret",
    ".globl vmsrs__uaccess_strnlen_fault",
    ".hidden vmsrs__uaccess_strnlen_fault",
    "vmsrs__uaccess_strnlen_fault:",
    "mov rax, -1",
    "ret",
    ".size vmsrs__uaccess_strnlen, .-vmsrs__uaccess_strnlen",
    ".popsection",
);

#[cfg(not(miri))]
extern "C" {
    fn vmsrs__uaccess_copy(dst: *mut u8, src: *const u8, n: usize, guest: *const u8) -> Outcome;
    fn vmsrs__uaccess_strnlen(p: *const u8, max: usize) -> Outcome;
    static vmsrs__uaccess_copy_fault: u8;
    static vmsrs__uaccess_strnlen_fault: u8;
}

/// Where to resume after a fault at `pc`, if `pc` is inside one of the guarded routines.
/// The handler must also put the faulting address into `rdx`. Async-signal-safe.
#[cfg(not(miri))]
pub fn fixup(pc: usize) -> Option<usize> {
    let at = |s: &u8| s as *const u8 as usize;
    // SAFETY: taking the addresses of labels in our own text; nothing is read.
    unsafe {
        let copy = vmsrs__uaccess_copy as *const () as usize;
        if (copy..at(&vmsrs__uaccess_copy_fault)).contains(&pc) {
            Some(at(&vmsrs__uaccess_copy_fault))
        } else if (vmsrs__uaccess_strnlen as *const () as usize..at(&vmsrs__uaccess_strnlen_fault))
            .contains(&pc)
        {
            Some(at(&vmsrs__uaccess_strnlen_fault))
        } else {
            None
        }
    }
}

#[cfg(miri)]
pub fn fixup(_pc: usize) -> Option<usize> {
    None
}

/// Copy `n` bytes from `src` to `dst`, either of which may be a caller's bad pointer;
/// aligned words of `dst` are written whole.
///
/// # Safety
/// The ranges must not overlap memory whose Rust-level invariants a byte copy would break
/// (libvmsrs passes its own bounce buffers on one side, a caller's address on the other).
#[inline]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) -> Result<(), BadAddress> {
    // SAFETY: forwarded contract.
    unsafe { copy_aligned_on(dst, src, n, dst) }
}

/// Copy guest memory at `src` into our buffer `out`: aligned guest words are read whole
/// (never torn, G5). Safe for any `src`.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn copy_from_guest(out: &mut [u8], src: *const u8) -> Result<(), BadAddress> {
    // SAFETY: `out` is our own buffer; `src` is only read, by the guarded routine.
    unsafe { copy_aligned_on(out.as_mut_ptr(), src, out.len(), src) }
}

/// Copy our `bytes` to guest memory at `dst`: aligned guest words are written whole.
///
/// # Safety
/// `dst` may be invalid (that is reported) but must not be memory Rust code holds a
/// reference to.
pub unsafe fn copy_to_guest(dst: *mut u8, bytes: &[u8]) -> Result<(), BadAddress> {
    // SAFETY: forwarded contract; our own buffer on the other side.
    unsafe { copy_aligned_on(dst, bytes.as_ptr(), bytes.len(), dst) }
}

/// # Safety
/// As for [`copy`]; `guest` is `dst` or `src`.
#[inline]
unsafe fn copy_aligned_on(
    dst: *mut u8,
    src: *const u8,
    n: usize,
    guest: *const u8,
) -> Result<(), BadAddress> {
    if n == 0 {
        return Ok(());
    }
    #[cfg(not(miri))]
    {
        // SAFETY: the routine only touches `dst..dst+n` and `src..src+n`; a fault there is
        // turned into a return by the fault handler.
        let o = unsafe { vmsrs__uaccess_copy(dst, src, n, guest) };
        if o.rest == 0 {
            Ok(())
        } else {
            Err(BadAddress(o.addr))
        }
    }
    #[cfg(miri)]
    {
        let _ = guest;
        // SAFETY: under Miri callers pass valid buffers (forwarded contract).
        unsafe { core::ptr::copy(src, dst, n) };
        Ok(())
    }
}

/// Read a `T` from a caller's pointer.
pub fn read<T: Copy>(p: *const T) -> Result<T, BadAddress> {
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the destination is our own local of the right size; T: Copy is plain data as
    // far as C callers are concerned (only C structs and integers are read this way).
    unsafe {
        copy(v.as_mut_ptr() as *mut u8, p as *const u8, core::mem::size_of::<T>())?;
        Ok(v.assume_init())
    }
}

/// Write `v` through a caller's pointer.
///
/// # Safety
/// `p` may be invalid (that is reported), but must not point into memory Rust code holds a
/// reference to.
pub unsafe fn write<T: Copy>(p: *mut T, v: T) -> Result<(), BadAddress> {
    // SAFETY: the source is our own local; the destination is the caller's (contract).
    unsafe { copy(p as *mut u8, &v as *const T as *const u8, core::mem::size_of::<T>()) }
}

/// The length of the NUL-terminated string at `p`, scanning at most `max` bytes
/// (`Ok(max)` when no NUL was found within them). Safe for any `p`: the bytes are read by
/// the guarded routine only.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn strnlen(p: *const u8, max: usize) -> Result<usize, BadAddress> {
    #[cfg(not(miri))]
    {
        // SAFETY: the routine only reads `p..p+max`; a fault is turned into a return.
        let o = unsafe { vmsrs__uaccess_strnlen(p, max) };
        if o.rest == usize::MAX {
            Err(BadAddress(o.addr))
        } else {
            Ok(o.rest)
        }
    }
    #[cfg(miri)]
    {
        let mut n = 0;
        // SAFETY: under Miri callers pass valid strings.
        while n < max && unsafe { *p.add(n) } != 0 {
            n += 1;
        }
        Ok(n)
    }
}

/// Copy the NUL-terminated string at `p` into `out` (without its NUL), failing with
/// `Err(None)` when it does not fit. Safe for any `p`, as [`strnlen`].
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn read_cstr(p: *const u8, out: &mut [u8]) -> Result<&[u8], Option<BadAddress>> {
    let n = strnlen(p, out.len()).map_err(Some)?;
    if n == out.len() {
        return Err(None);
    }
    // SAFETY: `n` bytes at `p` were just found readable; `out` holds more than `n`.
    unsafe { copy(out.as_mut_ptr(), p, n) }.map_err(Some)?;
    Ok(&out[..n])
}

/// [`read_cstr`] for when no fault handler may be installed yet (before
/// `vmsrs_init_profile` has run): the bytes are read with `process_vm_readv` on this very
/// process, which reports an unreadable address as an error instead of faulting.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn read_cstr_before_handlers(p: *const u8, out: &mut [u8]) -> Result<&[u8], Option<BadAddress>> {
    let mut n = 0usize;
    while n < out.len() {
        let at = p as usize + n;
        // Never cross a page in one read: a string may end just before an unmapped page.
        let k = (out.len() - n).min(4096 - at % 4096);
        let local = libc::iovec { iov_base: out[n..].as_mut_ptr() as *mut libc::c_void, iov_len: k };
        let remote = libc::iovec { iov_base: at as *mut libc::c_void, iov_len: k };
        // SAFETY: reads at most `k` bytes into our own buffer; the kernel checks the source.
        let got = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if got <= 0 {
            return Err(Some(BadAddress(at)));
        }
        let got = got as usize;
        if let Some(z) = out[n..n + got].iter().position(|&b| b == 0) {
            return Ok(&out[..n + z]);
        }
        n += got;
    }
    Err(None)
}
