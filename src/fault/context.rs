//! Applying a [`SkipPlan`] to the interrupted context of a signal (x86-64
//! Linux, glibc `ucontext_t`).
//!
//! * RIP advances by the instruction length.
//! * General-purpose registers live in `uc_mcontext.gregs`; partial writes
//!   keep the bits the CPU would keep (8/16-bit merge, 32-bit zero-extends).
//! * Vector, opmask and x87/MMX state live in the FPU area `uc_mcontext.fpregs`
//!   points to: the 512-byte FXSAVE legacy area (x87/MMX registers, xmm0–15),
//!   then — when the kernel saved with XSAVE, which it says with
//!   `FP_XSTATE_MAGIC1` in the software-reserved bytes at offset 464 — the
//!   64-byte XSAVE header and the extended components in the standard
//!   (non-compacted) layout: YMM_Hi128 (upper halves of ymm0–15), opmask
//!   (k0–7), ZMM_Hi256 (upper 256 bits of zmm0–15) and Hi16_ZMM (zmm16–31).
//!   Component offsets come from CPUID leaf 0xD, cached by [`init`].
//!
//! A component whose XSTATE_BV bit is clear in the frame's header is in its
//! initial (all-zero) configuration, and `sigreturn`'s XRSTOR will load it as
//! such whatever the bytes say; zeroing a register there needs no write, so
//! such components are left as they are. The one exception is x87 state,
//! which the x87/MMX effects must modify: it is materialised in its initial
//! configuration first and its bit set. (Linux always sets the x87 and SSE
//! bits in signal frames, so this is defensive.)
//!
//! [`apply`] is async-signal-safe: no allocation, no locks, no system calls.

use super::decode::{GprWidth, Reg, SkipPlan};
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// `_fpx_sw_bytes.magic1` when the frame holds an XSAVE area.
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
/// The word that ends the XSAVE area in the frame.
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;

/// Size of the FXSAVE legacy area.
const FXSAVE_SIZE: usize = 512;
/// Size of the XSAVE header following it.
const XSAVE_HDR_SIZE: usize = 64;
/// Offset of `_fpx_sw_bytes` (the software-reserved bytes) in the legacy area.
const SW_BYTES: usize = 464;

// FXSAVE legacy-area layout.
const FX_FCW: usize = 0;
const FX_FSW: usize = 2;
const FX_FTW: usize = 4;
const FX_ST0: usize = 32;
const FX_XMM0: usize = 160;

// XSAVE state components.
const X87: usize = 0;
const SSE: usize = 1;
const YMM_HI128: usize = 2;
const OPMASK: usize = 5;
const ZMM_HI256: usize = 6;
const HI16_ZMM: usize = 7;
const PKRU: usize = 9;
const NCOMP: usize = 10;

/// Expected size of each component we touch (for validation against CPUID).
const COMP_SIZE: [u32; NCOMP] = [0, 0, 256, 0, 0, 64, 512, 1024, 0, 8];

const PROBE_NONE: u8 = 0;
const PROBE_DONE: u8 = 1;

static PROBED: AtomicU8 = AtomicU8::new(PROBE_NONE);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO32: AtomicU32 = AtomicU32::new(0);
/// Standard-format offset of each XSAVE component (0 = not available).
static COMP_OFFSET: [AtomicU32; NCOMP] = [ZERO32; NCOMP];

/// Probe and cache the XSAVE component layout (CPUID leaf 0xD). Call once at
/// library initialisation, outside signal context; [`apply`] probes lazily if
/// it was not called (CPUID is an unprivileged instruction, safe in a handler).
pub fn init() {
    if PROBED.load(Ordering::Acquire) == PROBE_DONE {
        return;
    }
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU and has no side effects (the
    // intrinsic is `unsafe fn` on older toolchains, safe on newer ones).
    let max_leaf = unsafe { core::arch::x86_64::__cpuid(0) }.eax;
    if max_leaf >= 0xD {
        for (i, slot) in COMP_OFFSET.iter().enumerate().skip(YMM_HI128) {
            if COMP_SIZE[i] == 0 {
                continue;
            }
            #[allow(unused_unsafe)]
            // SAFETY: as above; sub-leaf i ≥ 2 of leaf 0xD reports component i's
            // size (EAX) and standard-format offset (EBX), 0 when unsupported.
            let r = unsafe { core::arch::x86_64::__cpuid_count(0xD, i as u32) };
            if r.eax == COMP_SIZE[i] && r.ebx as usize >= FXSAVE_SIZE + XSAVE_HDR_SIZE {
                slot.store(r.ebx, Ordering::Relaxed);
            }
        }
    }
    PROBED.store(PROBE_DONE, Ordering::Release);
}

/// Standard-format offset of XSAVE component `i` on this CPU, if known.
pub fn component_offset(i: usize) -> Option<usize> {
    init();
    match COMP_OFFSET.get(i)?.load(Ordering::Relaxed) {
        0 => None,
        off => Some(off as usize),
    }
}

/// The 64 bytes of vector register `num` (0..32: zmm, whose low 16 and 32 bytes are xmm and
/// ymm) in the interrupted context; a component in its initial configuration, or absent on
/// this CPU, reads as zeros. `false` when the frame has no FPU area. Async-signal-safe.
///
/// # Safety
/// `uc` is the `ucontext_t` of a signal delivered to the calling thread.
pub unsafe fn read_vector(uc: *const libc::ucontext_t, num: usize, out: &mut [u8; 64]) -> bool {
    // SAFETY: per the contract `fpregs` is null or the frame's FPU area.
    let Some(fp) = (unsafe { FpArea::new((*uc).uc_mcontext.fpregs.cast::<u8>()) }) else { return false };
    if num >= 32 {
        return false;
    }
    *out = [0; 64];
    if num >= 16 {
        if let Some(base) = fp.component(HI16_ZMM) {
            // SAFETY: zmm16-31 are 64 bytes each in a 1024-byte component.
            unsafe { ptr::copy_nonoverlapping(base.add((num - 16) * 64), out.as_mut_ptr(), 64) };
        }
        return true;
    }
    if fp.legacy_live(SSE) {
        // SAFETY: xmm0-15 are 16 bytes each at 160 in the 512-byte legacy area.
        unsafe { ptr::copy_nonoverlapping(fp.fx.add(FX_XMM0 + num * 16), out.as_mut_ptr(), 16) };
    }
    if let Some(base) = fp.component(YMM_HI128) {
        // SAFETY: 16 bytes per register in a 256-byte component.
        unsafe { ptr::copy_nonoverlapping(base.add(num * 16), out.as_mut_ptr().add(16), 16) };
    }
    if let Some(base) = fp.component(ZMM_HI256) {
        // SAFETY: 32 bytes per register in a 512-byte component.
        unsafe { ptr::copy_nonoverlapping(base.add(num * 32), out.as_mut_ptr().add(32), 32) };
    }
    true
}

/// Opmask register k`n` (0..8) in the interrupted context (0 in its initial configuration);
/// `None` when the frame has no FPU area or `n` is out of range. Async-signal-safe.
///
/// # Safety
/// As for [`read_vector`].
pub unsafe fn read_opmask(uc: *const libc::ucontext_t, n: usize) -> Option<u64> {
    // SAFETY: per the contract `fpregs` is null or the frame's FPU area.
    let fp = unsafe { FpArea::new((*uc).uc_mcontext.fpregs.cast::<u8>()) }?;
    if n >= 8 {
        return None;
    }
    Some(match fp.component(OPMASK) {
        // SAFETY: k0-7 are 8 bytes each in a 64-byte component.
        Some(base) => unsafe { rd64(base.add(n * 8)) },
        None => 0,
    })
}

/// Load `bytes` (at most 32) into vector register `num` (0..16) of the interrupted context
/// from its byte 0, then zero its bytes `bytes.len()..zero_to` (16 for a legacy SSE load,
/// which keeps the upper ymm half; 64 for a VEX one, which clears the rest of the zmm).
/// `false` (nothing changed) when the frame cannot hold it. Async-signal-safe.
///
/// # Safety
/// As for [`apply`].
pub unsafe fn write_vector(uc: *mut libc::ucontext_t, num: usize, bytes: &[u8], zero_to: usize) -> bool {
    // SAFETY: per the contract `fpregs` is null or the frame's FPU area.
    let Some(fp) = (unsafe { FpArea::new((*uc).uc_mcontext.fpregs.cast::<u8>()) }) else { return false };
    let n = bytes.len();
    if num >= 16 || n > 32 || zero_to > 64 || !fp.legacy_live(SSE) {
        return false;
    }
    let upper = if n > 16 {
        let Some(base) = fp.slot(YMM_HI128) else { return false };
        if fp.xstate_bv() & (1 << YMM_HI128) == 0 {
            // The component in its initial configuration: every upper half is zero.
            // SAFETY: the 256-byte component lies inside the frame (checked by `slot`).
            unsafe { zero(base, COMP_SIZE[YMM_HI128] as usize) };
            fp.set_xstate_bv(fp.xstate_bv() | (1 << YMM_HI128));
        }
        Some(base)
    } else {
        None
    };
    // SAFETY: xmm`num` is 16 bytes at 160 + 16 * num in the legacy area.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), fp.fx.add(FX_XMM0 + num * 16), n.min(16)) };
    if let Some(base) = upper {
        // SAFETY: 16 bytes per register in the 256-byte YMM_Hi128 component.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr().add(16), base.add(num * 16), n - 16) };
    }
    fp.zero_vec(num as u8, n as u8, zero_to as u8);
    true
}

/// The protection-key rights register (PKRU) of the interrupted context: the value
/// `sigreturn` gives the thread back. `None` when the frame has no PKRU slot (no XSAVE area, or
/// a CPU without protection keys). Async-signal-safe.
///
/// # Safety
/// As for [`read_vector`].
pub unsafe fn read_pkru(uc: *const libc::ucontext_t) -> Option<u32> {
    // SAFETY: per the contract `fpregs` is null or the frame's FPU area.
    let fp = unsafe { FpArea::new((*uc).uc_mcontext.fpregs.cast::<u8>()) }?;
    let slot = fp.slot(PKRU)?;
    // In its initial configuration (XSTATE_BV bit clear) PKRU is 0.
    // SAFETY: the 8-byte PKRU component lies inside the frame (checked by `slot`).
    Some(if fp.xstate_bv() & (1 << PKRU) == 0 { 0 } else { unsafe { rd32(slot) } })
}

/// Set the PKRU the interrupted context resumes with (a `wrpkru` inside a handler is undone
/// by `sigreturn`); `false` when the frame has no PKRU slot. The component's XSTATE_BV bit is
/// set too: with it clear, `sigreturn` would load PKRU's initial value, 0, whatever the slot
/// says. Async-signal-safe.
///
/// # Safety
/// As for [`apply`].
pub unsafe fn write_pkru(uc: *mut libc::ucontext_t, v: u32) -> bool {
    // SAFETY: per the contract `fpregs` is null or the frame's FPU area.
    let Some(fp) = (unsafe { FpArea::new((*uc).uc_mcontext.fpregs.cast::<u8>()) }) else { return false };
    let Some(slot) = fp.slot(PKRU) else { return false };
    // SAFETY: as in read_pkru; the frame is this handler's own, resumed when it returns.
    unsafe { ptr::write_unaligned(slot.cast::<u32>(), v) };
    fp.set_xstate_bv(fp.xstate_bv() | (1 << PKRU));
    true
}

/// Skip the faulting instruction in `uc` as `plan` says: advance RIP, then
/// apply each register effect.
///
/// # Safety
/// `uc` must point to the writable `ucontext_t` of a signal delivered to the
/// calling thread (the third argument of an `SA_SIGINFO` handler), whose
/// `fpregs` pointer is null or points to the kernel-built FPU area of that
/// same signal frame.
pub unsafe fn apply(plan: &SkipPlan, uc: *mut libc::ucontext_t) {
    if uc.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `uc` is this signal's valid, writable context.
    let mc = unsafe { &mut (*uc).uc_mcontext };
    let rip = &mut mc.gregs[libc::REG_RIP as usize];
    *rip = rip.wrapping_add(i64::from(plan.len));

    // SAFETY: per the contract `fpregs` is null or the frame's FPU area.
    let fp = unsafe { FpArea::new(mc.fpregs.cast::<u8>()) };
    for r in plan.zero {
        match r {
            Reg::None => {}
            Reg::Gpr { num, width } => zero_gpr(&mut mc.gregs, num, width),
            Reg::Vec { num, from, to } => {
                if let Some(fp) = &fp {
                    fp.zero_vec(num, from, to);
                }
            }
            Reg::K(n) => {
                if let Some(fp) = &fp {
                    fp.zero_k(n);
                }
            }
            Reg::Mm(n) => {
                if let Some(fp) = &fp {
                    fp.mmx_write_zero(n);
                }
            }
            Reg::X87Push => {
                if let Some(fp) = &fp {
                    fp.x87_push_zero();
                }
            }
            Reg::X87Pop => {
                if let Some(fp) = &fp {
                    fp.x87_pop();
                }
            }
        }
    }
}

/// `gregs` index of each GPR by hardware number (rax, rcx, rdx, rbx, rsp,
/// rbp, rsi, rdi, r8..r15).
pub const GREG_INDEX: [libc::c_int; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];

fn zero_gpr(gregs: &mut [libc::greg_t; 23], num: u8, width: GprWidth) {
    let Some(&idx) = GREG_INDEX.get(num as usize) else { return };
    let v = &mut gregs[idx as usize];
    let keep: u64 = match width {
        GprWidth::Low8 => !0xff,
        GprWidth::High8 => !0xff00,
        GprWidth::W16 => !0xffff,
        GprWidth::W32 | GprWidth::W64 => 0,
        GprWidth::Upper32 => 0xffff_ffff,
    };
    *v = ((*v as u64) & keep) as i64;
}

/// The FPU area of a signal frame.
struct FpArea {
    fx: *mut u8,
    /// XSAVE area: (`xfeatures` from the software bytes, `xstate_size`).
    xsave: Option<(u64, usize)>,
}

impl FpArea {
    /// # Safety
    /// `fx` is null or points to a kernel-built FPU area of a live signal frame.
    unsafe fn new(fx: *mut u8) -> Option<FpArea> {
        if fx.is_null() {
            return None;
        }
        // SAFETY: the legacy area is 512 bytes; the software bytes lie inside it.
        let (magic1, ext_size, xfeatures, xstate_size) = unsafe {
            (
                rd32(fx.add(SW_BYTES)),
                rd32(fx.add(SW_BYTES + 4)) as usize,
                rd64(fx.add(SW_BYTES + 8)),
                rd32(fx.add(SW_BYTES + 16)) as usize,
            )
        };
        let mut xsave = None;
        if magic1 == FP_XSTATE_MAGIC1
            && xstate_size >= FXSAVE_SIZE + XSAVE_HDR_SIZE
            && ext_size == xstate_size + 4
            && xstate_size <= 1 << 20
        {
            // SAFETY: with magic1 present the kernel laid out `extended_size`
            // bytes, the last 4 of which hold magic2.
            if unsafe { rd32(fx.add(xstate_size)) } == FP_XSTATE_MAGIC2 {
                xsave = Some((xfeatures, xstate_size));
            }
        }
        Some(FpArea { fx, xsave })
    }

    /// XSTATE_BV of the frame's XSAVE header.
    fn xstate_bv(&self) -> u64 {
        // SAFETY: only called with an XSAVE area present, header at 512.
        unsafe { rd64(self.fx.add(FXSAVE_SIZE)) }
    }

    fn set_xstate_bv(&self, v: u64) {
        // SAFETY: as for xstate_bv.
        unsafe { wr64(self.fx.add(FXSAVE_SIZE), v) }
    }

    /// Whether a legacy-area component (x87 or SSE) holds live state; when
    /// its XSTATE_BV bit is clear the registers are architecturally zero.
    fn legacy_live(&self, comp: usize) -> bool {
        match self.xsave {
            None => true,
            Some(_) => self.xstate_bv() & (1 << comp) != 0,
        }
    }

    /// Pointer to extended component `comp` when the frame holds it with
    /// live (non-init) state; `None` when absent or already all-zero.
    fn component(&self, comp: usize) -> Option<*mut u8> {
        self.slot(comp).filter(|_| self.xstate_bv() & (1 << comp) != 0)
    }

    /// Pointer to extended component `comp`'s slot when the frame has room for it, whatever
    /// its XSTATE_BV bit says.
    fn slot(&self, comp: usize) -> Option<*mut u8> {
        let (xfeatures, size) = self.xsave?;
        if xfeatures & (1 << comp) == 0 {
            return None;
        }
        let off = component_offset(comp)?;
        if off + COMP_SIZE[comp] as usize > size {
            return None;
        }
        // SAFETY: off + size lies inside the frame's XSAVE area (checked).
        Some(unsafe { self.fx.add(off) })
    }

    /// Zero bytes `from..to` of vector register `num` seen as a 64-byte ZMM.
    fn zero_vec(&self, num: u8, from: u8, to: u8) {
        let (num, from, to) = (num as usize, from as usize, (to as usize).min(64));
        if num >= 32 || from >= to {
            return;
        }
        if num >= 16 {
            if let Some(base) = self.component(HI16_ZMM) {
                // SAFETY: zmm16-31 are 64 bytes each in a 1024-byte component.
                unsafe { zero(base.add((num - 16) * 64 + from), to - from) };
            }
            return;
        }
        // Bytes 0..16: xmm in the legacy area.
        if from < 16 && self.legacy_live(SSE) {
            let end = to.min(16);
            // SAFETY: xmm0-15 are 16 bytes each at 160 in the 512-byte legacy area.
            unsafe { zero(self.fx.add(FX_XMM0 + num * 16 + from), end - from) };
        }
        // Bytes 16..32: YMM_Hi128.
        if from < 32 && to > 16 {
            if let Some(base) = self.component(YMM_HI128) {
                let (a, b) = (from.max(16) - 16, to.min(32) - 16);
                // SAFETY: 16 bytes per register in a 256-byte component.
                unsafe { zero(base.add(num * 16 + a), b - a) };
            }
        }
        // Bytes 32..64: ZMM_Hi256.
        if to > 32 {
            if let Some(base) = self.component(ZMM_HI256) {
                let (a, b) = (from.max(32) - 32, to - 32);
                // SAFETY: 32 bytes per register in a 512-byte component.
                unsafe { zero(base.add(num * 32 + a), b - a) };
            }
        }
    }

    fn zero_k(&self, n: u8) {
        if n < 8 {
            if let Some(base) = self.component(OPMASK) {
                // SAFETY: k0-7 are 8 bytes each in a 64-byte component.
                unsafe { zero(base.add(n as usize * 8), 8) };
            }
        }
    }

    /// Make sure the legacy x87 bytes hold the live x87 state, so that it can
    /// be edited.
    fn x87_materialise(&self) {
        if self.legacy_live(X87) {
            return;
        }
        // x87 in its initial configuration: FCW 0x37F, everything else 0.
        // SAFETY: bytes 0..24 (control/status/tag/opcode/pointers) and the 8
        // 16-byte ST slots at 32..160 are inside the legacy area.
        unsafe {
            zero(self.fx, 24);
            wr16(self.fx.add(FX_FCW), 0x037f);
            zero(self.fx.add(FX_ST0), 8 * 16);
        }
        self.set_xstate_bv(self.xstate_bv() | (1 << X87));
    }

    fn top(&self) -> usize {
        // SAFETY: FSW is inside the legacy area.
        (unsafe { rd16(self.fx.add(FX_FSW)) } as usize >> 11) & 7
    }

    fn set_top(&self, top: usize) {
        let p = self.fx.wrapping_add(FX_FSW);
        // SAFETY: FSW is inside the legacy area.
        unsafe { wr16(p, (rd16(p) & !(7 << 11)) | ((top as u16 & 7) << 11)) };
    }

    fn ftw(&self) -> u8 {
        // SAFETY: the abridged tag byte is inside the legacy area.
        unsafe { *self.fx.add(FX_FTW) }
    }

    fn set_ftw(&self, v: u8) {
        // SAFETY: the abridged tag byte is inside the legacy area.
        unsafe { *self.fx.add(FX_FTW) = v }
    }

    /// The ST slots (stored in stack order ST(0)..ST(7)), rotated so that new
    /// slot `s` holds old slot `(s + by) & 7`.
    fn rotate_st(&self, by: usize) {
        if by & 7 == 0 {
            return;
        }
        let mut old = [[0u8; 16]; 8];
        let st = self.fx.wrapping_add(FX_ST0);
        // SAFETY: the 8 ST slots (128 bytes) are inside the legacy area and do
        // not overlap the local copy.
        unsafe {
            ptr::copy_nonoverlapping(st, old.as_mut_ptr().cast::<u8>(), 128);
            for (s, _) in old.iter().enumerate() {
                ptr::copy_nonoverlapping(old[(s + by) & 7].as_ptr(), st.add(s * 16), 16);
            }
        }
    }

    /// Push +0.0 onto the x87 stack (the skipped `fld`'s load yields 0).
    fn x87_push_zero(&self) {
        self.x87_materialise();
        let top = self.top();
        let new_top = (top + 7) & 7;
        // New ST(s) = old ST(s-1); new ST(0) is the physical register at new_top.
        self.rotate_st(7);
        // SAFETY: ST(0)'s slot is inside the legacy area.
        unsafe { zero(self.fx.add(FX_ST0), 16) };
        self.set_top(new_top);
        self.set_ftw(self.ftw() | (1 << new_top));
    }

    /// Pop the x87 stack (a skipped `fstp`/`fcomp` still pops).
    fn x87_pop(&self) {
        self.x87_materialise();
        let top = self.top();
        self.set_ftw(self.ftw() & !(1 << top));
        // New ST(s) = old ST(s+1); the popped register becomes ST(7).
        self.rotate_st(1);
        self.set_top((top + 1) & 7);
    }

    /// An MMX write of 0 to mm`n`: like every MMX instruction it sets TOP to 0
    /// and marks all tags valid; the register's significand becomes 0 and its
    /// exponent/sign bits all 1s.
    fn mmx_write_zero(&self, n: u8) {
        if n >= 8 {
            return;
        }
        self.x87_materialise();
        let top = self.top();
        // Physical R(i) sits in slot (i - top) & 7; with TOP = 0 slot s = R(s).
        self.rotate_st((8 - top) & 7);
        self.set_top(0);
        self.set_ftw(0xff);
        let slot = self.fx.wrapping_add(FX_ST0 + n as usize * 16);
        // SAFETY: the slot (10 meaningful bytes) is inside the legacy area.
        unsafe {
            zero(slot, 8);
            wr16(slot.add(8), 0xffff);
        }
    }
}

/// # Safety
/// `p..p+n` must be writable.
unsafe fn zero(p: *mut u8, n: usize) {
    // SAFETY: forwarded contract.
    unsafe { ptr::write_bytes(p, 0, n) }
}

/// # Safety
/// `p` must be readable for 2 bytes.
unsafe fn rd16(p: *const u8) -> u16 {
    // SAFETY: forwarded contract; unaligned read.
    unsafe { ptr::read_unaligned(p.cast::<u16>()) }
}

/// # Safety
/// `p` must be writable for 2 bytes.
unsafe fn wr16(p: *mut u8, v: u16) {
    // SAFETY: forwarded contract; unaligned write.
    unsafe { ptr::write_unaligned(p.cast::<u16>(), v) }
}

/// # Safety
/// `p` must be readable for 4 bytes.
unsafe fn rd32(p: *const u8) -> u32 {
    // SAFETY: forwarded contract; unaligned read.
    unsafe { ptr::read_unaligned(p.cast::<u32>()) }
}

/// # Safety
/// `p` must be readable for 8 bytes.
unsafe fn rd64(p: *const u8) -> u64 {
    // SAFETY: forwarded contract; unaligned read.
    unsafe { ptr::read_unaligned(p.cast::<u64>()) }
}

/// # Safety
/// `p` must be writable for 8 bytes.
unsafe fn wr64(p: *mut u8, v: u64) {
    // SAFETY: forwarded contract; unaligned write.
    unsafe { ptr::write_unaligned(p.cast::<u64>(), v) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::decode::plan;

    /// A fake signal frame: ucontext plus a 64-byte-aligned FPU area laid out
    /// as the kernel does (legacy area, XSAVE header, components, magic2).
    #[repr(C, align(64))]
    struct Area([u8; 4096]);

    struct Frame {
        uc: Box<libc::ucontext_t>,
        fp: Box<Area>,
    }

    impl Frame {
        fn new(xsave: bool) -> Frame {
            init();
            // SAFETY: ucontext_t is plain data; all-zero is a valid value.
            let mut uc: Box<libc::ucontext_t> = Box::new(unsafe { core::mem::zeroed() });
            let mut fp = Box::new(Area([0; 4096]));
            let fx = fp.0.as_mut_ptr();
            if xsave {
                let size = 2688usize;
                // SAFETY: all offsets are inside the 4096-byte area.
                unsafe {
                    ptr::write_unaligned(fx.add(SW_BYTES).cast::<u32>(), FP_XSTATE_MAGIC1);
                    ptr::write_unaligned(fx.add(SW_BYTES + 4).cast::<u32>(), size as u32 + 4);
                    ptr::write_unaligned(fx.add(SW_BYTES + 8).cast::<u64>(), 0xe7);
                    ptr::write_unaligned(fx.add(SW_BYTES + 16).cast::<u32>(), size as u32);
                    ptr::write_unaligned(fx.add(size).cast::<u32>(), FP_XSTATE_MAGIC2);
                    ptr::write_unaligned(fx.add(FXSAVE_SIZE).cast::<u64>(), 0xe7);
                }
            }
            uc.uc_mcontext.fpregs = fx.cast();
            Frame { uc, fp }
        }
        fn fx(&mut self) -> *mut u8 {
            self.fp.0.as_mut_ptr()
        }
        fn apply(&mut self, code: &[u8]) {
            let p = plan(code, 0x1000).expect("decodes");
            // SAFETY: the frame is a valid, writable fake context.
            unsafe { apply(&p, &mut *self.uc) };
        }
        fn greg(&self, r: libc::c_int) -> u64 {
            self.uc.uc_mcontext.gregs[r as usize] as u64
        }
        fn set_greg(&mut self, r: libc::c_int, v: u64) {
            self.uc.uc_mcontext.gregs[r as usize] = v as i64;
        }
    }

    #[test]
    fn gpr_widths_and_rip() {
        let mut f = Frame::new(false);
        let seed = 0x1122_3344_5566_7788u64;
        let cases: [(&[u8], u64); 6] = [
            (&[0x48, 0x8b, 0x01], 0),                     // mov rax, [rcx]
            (&[0x8b, 0x01], 0),                           // mov eax, [rcx]
            (&[0x66, 0x8b, 0x01], 0x1122_3344_5566_0000), // mov ax, [rcx]
            (&[0x8a, 0x01], 0x1122_3344_5566_7700),       // mov al, [rcx]
            (&[0x8a, 0x21], 0x1122_3344_5566_0088),       // mov ah, [rcx]
            (&[0x03, 0x01], 0x5566_7788),                 // add eax, [rcx]
        ];
        for (code, want) in cases {
            f.set_greg(libc::REG_RAX, seed);
            f.set_greg(libc::REG_RIP, 0x1000);
            f.apply(code);
            assert_eq!(f.greg(libc::REG_RAX), want, "{code:02x?}");
            assert_eq!(f.greg(libc::REG_RIP), 0x1000 + code.len() as u64);
        }
        // div rcx → rax, rdx zero; r9 untouched
        f.set_greg(libc::REG_RAX, seed);
        f.set_greg(libc::REG_RDX, seed);
        f.set_greg(libc::REG_R9, seed);
        f.apply(&[0x48, 0xf7, 0xf1]);
        assert_eq!((f.greg(libc::REG_RAX), f.greg(libc::REG_RDX)), (0, 0));
        assert_eq!(f.greg(libc::REG_R9), seed);
        // mov r15, [rax]
        f.set_greg(libc::REG_R15, seed);
        f.apply(&[0x4c, 0x8b, 0x38]);
        assert_eq!(f.greg(libc::REG_R15), 0);
    }

    fn fill(p: *mut u8, n: usize) {
        // SAFETY: test areas are large enough for the ranges used.
        unsafe { ptr::write_bytes(p, 0xAB, n) }
    }

    fn all(p: *const u8, n: usize, v: u8) -> bool {
        // SAFETY: test areas are large enough for the ranges used.
        unsafe { core::slice::from_raw_parts(p, n) }.iter().all(|&b| b == v)
    }

    #[test]
    fn vector_state() {
        let Some(ymm) = component_offset(YMM_HI128) else {
            return; // no AVX: nothing to check beyond the legacy area
        };
        let mut f = Frame::new(true);
        let fx = f.fx();
        fill(fx.wrapping_add(FX_XMM0), 256);
        fill(fx.wrapping_add(ymm), 256);
        // movdqu xmm0, [rax]: legacy → upper half kept
        f.apply(&[0xf3, 0x0f, 0x6f, 0x00]);
        assert!(all(fx.wrapping_add(FX_XMM0), 16, 0));
        assert!(all(fx.wrapping_add(ymm), 16, 0xAB));
        // vmovdqu ymm1, [rax]: both halves
        f.apply(&[0xc5, 0xfe, 0x6f, 0x08]);
        assert!(all(fx.wrapping_add(FX_XMM0 + 16), 16, 0));
        assert!(all(fx.wrapping_add(ymm + 16), 16, 0));
        assert!(all(fx.wrapping_add(FX_XMM0 + 32), 16, 0xAB));
        // movhps xmm2, [rax]: bytes 8..16 only
        f.apply(&[0x0f, 0x16, 0x10]);
        assert!(all(fx.wrapping_add(FX_XMM0 + 32), 8, 0xAB));
        assert!(all(fx.wrapping_add(FX_XMM0 + 40), 8, 0));
        // Component in init state (bit clear): left alone.
        let bv = fx.wrapping_add(FXSAVE_SIZE);
        // SAFETY: header inside the area.
        unsafe { ptr::write_unaligned(bv.cast::<u64>(), 0x3) };
        fill(fx.wrapping_add(ymm), 256);
        f.apply(&[0xc5, 0xfe, 0x6f, 0x18]); // vmovdqu ymm3, [rax]
        assert!(all(fx.wrapping_add(FX_XMM0 + 48), 16, 0));
        assert!(all(fx.wrapping_add(ymm + 48), 16, 0xAB));

        if let (Some(z), Some(h), Some(k)) =
            (component_offset(ZMM_HI256), component_offset(HI16_ZMM), component_offset(OPMASK))
        {
            let mut f = Frame::new(true);
            let fx = f.fx();
            fill(fx.wrapping_add(FX_XMM0), 256);
            fill(fx.wrapping_add(ymm), 256);
            fill(fx.wrapping_add(z), 512);
            fill(fx.wrapping_add(h), 1024);
            fill(fx.wrapping_add(k), 64);
            // vmovdqu64 zmm2, [rax]
            f.apply(&[0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x10]);
            assert!(all(fx.wrapping_add(FX_XMM0 + 32), 16, 0));
            assert!(all(fx.wrapping_add(ymm + 32), 16, 0));
            assert!(all(fx.wrapping_add(z + 64), 32, 0));
            assert!(all(fx.wrapping_add(z + 96), 32, 0xAB));
            // vmovdqu8 zmm17, [rax]
            f.apply(&[0x62, 0xe1, 0x7f, 0x48, 0x6f, 0x08]);
            assert!(all(fx.wrapping_add(h + 64), 64, 0));
            assert!(all(fx.wrapping_add(h), 64, 0xAB));
            // kmovw k1, [rax]
            f.apply(&[0xc5, 0xf8, 0x90, 0x08]);
            assert!(all(fx.wrapping_add(k + 8), 8, 0));
            assert!(all(fx.wrapping_add(k), 8, 0xAB));
            assert!(all(fx.wrapping_add(k + 16), 8, 0xAB));
        }
    }

    #[test]
    fn legacy_only_frame() {
        // No XSAVE magic: only the FXSAVE area is written.
        let mut f = Frame::new(false);
        let fx = f.fx();
        fill(fx.wrapping_add(FX_XMM0), 256);
        f.apply(&[0xc5, 0xfe, 0x6f, 0x08]); // vmovdqu ymm1, [rax]
        assert!(all(fx.wrapping_add(FX_XMM0 + 16), 16, 0));
        assert!(all(fx.wrapping_add(FX_XMM0), 16, 0xAB));
        // Null fpregs: GPR part still applied.
        f.uc.uc_mcontext.fpregs = ptr::null_mut();
        f.set_greg(libc::REG_RAX, 5);
        f.apply(&[0xc5, 0xfe, 0x6f, 0x08]);
        f.apply(&[0x48, 0x8b, 0x01]);
        assert_eq!(f.greg(libc::REG_RAX), 0);
    }

    #[test]
    fn x87_and_mmx() {
        let mut f = Frame::new(true);
        let fx = f.fx();
        // Stack with one value 1.0 (ST0) at physical R7: TOP = 7, tag bit 7.
        let one: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f];
        // SAFETY: inside the legacy area.
        unsafe {
            ptr::copy_nonoverlapping(one.as_ptr(), fx.add(FX_ST0), 10);
            wr16(fx.add(FX_FSW), 7 << 11);
            *fx.add(FX_FTW) = 0x80;
        }
        // fld qword [rax] → push 0.0: TOP 6, ST0 = 0, ST1 = 1.0
        f.apply(&[0xdd, 0x00]);
        // SAFETY: inside the legacy area.
        unsafe {
            assert_eq!((rd16(fx.add(FX_FSW)) >> 11) & 7, 6);
            assert_eq!(*fx.add(FX_FTW), 0xc0);
            assert!(all(fx.add(FX_ST0), 10, 0));
            assert_eq!(core::slice::from_raw_parts(fx.add(FX_ST0 + 16), 10), &one);
        }
        // fstp qword [rax] → pop: back to TOP 7 with 1.0 on top
        f.apply(&[0xdd, 0x18]);
        // SAFETY: inside the legacy area.
        unsafe {
            assert_eq!((rd16(fx.add(FX_FSW)) >> 11) & 7, 7);
            assert_eq!(*fx.add(FX_FTW), 0x80);
            assert_eq!(core::slice::from_raw_parts(fx.add(FX_ST0), 10), &one);
        }
        // movq mm3, [rax] → TOP 0, all valid, R3 = 0 with exponent 0xffff; R7 (1.0) kept
        f.apply(&[0x0f, 0x6f, 0x18]);
        // SAFETY: inside the legacy area.
        unsafe {
            assert_eq!((rd16(fx.add(FX_FSW)) >> 11) & 7, 0);
            assert_eq!(*fx.add(FX_FTW), 0xff);
            assert!(all(fx.add(FX_ST0 + 3 * 16), 8, 0));
            assert_eq!(rd16(fx.add(FX_ST0 + 3 * 16 + 8)), 0xffff);
            assert_eq!(core::slice::from_raw_parts(fx.add(FX_ST0 + 7 * 16), 10), &one);
        }
        // x87 bit clear (init state): materialised, then pushed.
        let mut f = Frame::new(true);
        let fx = f.fx();
        // SAFETY: inside the area.
        unsafe {
            wr64(fx.add(FXSAVE_SIZE), 0xe6);
            ptr::write_bytes(fx, 0x5a, 24);
        }
        f.apply(&[0xdd, 0x00]);
        // SAFETY: inside the area.
        unsafe {
            assert_eq!(rd64(fx.add(FXSAVE_SIZE)) & 1, 1);
            assert_eq!(rd16(fx.add(FX_FCW)), 0x37f);
            assert_eq!((rd16(fx.add(FX_FSW)) >> 11) & 7, 7);
            assert_eq!(*fx.add(FX_FTW), 0x80);
        }
    }
}
