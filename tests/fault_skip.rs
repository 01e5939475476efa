//! The oblivious skip engine against real faults: this test installs its own
//! SIGSEGV/SIGBUS/SIGFPE/SIGILL handler (SA_SIGINFO, on a per-thread
//! alternate stack) that copies the bytes at RIP, calls
//! `vmsrs_runtime::fault::decode::plan` and `vmsrs_runtime::fault::context::apply`, and
//! returns. Inline-asm snippets then fault on address 8 (the never-mapped
//! NULL page), divide by zero and execute `ud2`, with each destination seeded
//! with a non-zero pattern, and the exact post-state is asserted.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::arch::asm;
use std::cell::Cell;
use std::sync::Once;

use libc::{c_int, c_void, siginfo_t};
use vmsrs_runtime::fault::context;
use vmsrs_runtime::fault::decode::{self, AccessKind, GprWidth, Reg, SkipPlan, MAX_INSN_LEN};

/// Never mapped: inside the NULL page (below `vm.mmap_min_addr`).
const BAD: usize = 8;
const SEED: u64 = 0xAAAA_BBBB_CCCC_DDDD;

thread_local! {
    /// The last signal this thread handled and the plan applied for it.
    static LAST: Cell<Option<(c_int, SkipPlan)>> = const { Cell::new(None) };
    static HAS_ALTSTACK: Cell<bool> = const { Cell::new(false) };
}

/// Copy the instruction bytes at `pc`, stopping at an unmapped page.
fn copy_code(pc: usize, out: &mut [u8; MAX_INSN_LEN]) -> usize {
    let page_end = (pc | 4095) + 1;
    let mut n = (page_end - pc).min(MAX_INSN_LEN);
    if n < MAX_INSN_LEN {
        let mut vec = 0u8;
        // SAFETY: mincore only inspects the mapping of the next page (async-signal-safe).
        if unsafe { libc::mincore(page_end as *mut c_void, 1, &mut vec) } == 0 {
            n = MAX_INSN_LEN;
        }
    }
    // SAFETY: the CPU fetched an instruction at pc, so pc's page is mapped and readable
    // (x86-64 executable pages are readable); the next page is read only if mapped.
    unsafe { std::ptr::copy_nonoverlapping(pc as *const u8, out.as_mut_ptr(), n) };
    n
}

extern "C" fn on_signal(sig: c_int, _info: *mut siginfo_t, ctx: *mut c_void) {
    let uc = ctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid ucontext.
    let rip = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] } as usize;
    let mut code = [0u8; MAX_INSN_LEN];
    let n = copy_code(rip, &mut code);
    match decode::plan(&code[..n], rip as u64) {
        Some(p) => {
            LAST.with(|c| c.set(Some((sig, p))));
            // SAFETY: `uc` is this signal's context; its fpregs point into the frame.
            unsafe { context::apply(&p, uc) };
        }
        None => {
            let msg = b"fault_skip: undecodable faulting instruction\n";
            // SAFETY: write(2) and abort(3) are async-signal-safe.
            unsafe {
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::abort();
            }
        }
    }
}

/// Install the handlers (once per process) and an alternate signal stack
/// (once per test thread).
fn setup() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        context::init();
        for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL] {
            // SAFETY: sigaction is plain data; all-zero is a valid starting value.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: sa_mask is a valid sigset_t inside `sa`; `sa` outlives the call.
            let rc = unsafe {
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            assert_eq!(rc, 0, "sigaction({sig})");
        }
    });
    HAS_ALTSTACK.with(|done| {
        if done.get() {
            return;
        }
        let size = 256 * 1024;
        // SAFETY: an anonymous private mapping; leaked on purpose (the thread may
        // take a signal until it exits).
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(mem, libc::MAP_FAILED);
        let ss = libc::stack_t { ss_sp: mem, ss_flags: 0, ss_size: size };
        // SAFETY: `ss` describes the mapping just made.
        assert_eq!(unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) }, 0);
        done.set(true);
    });
    LAST.with(|c| c.set(None));
}

/// The signal and plan of the fault just taken (and forget it).
fn last() -> (c_int, SkipPlan) {
    LAST.with(|c| c.take()).expect("a signal was handled")
}

fn gpr(num: u8, width: GprWidth) -> Reg {
    Reg::gpr(num, width)
}

#[test]
fn gpr_loads_zero_the_destination_with_x86_width_rules() {
    setup();
    let run = |f: &dyn Fn() -> u64| {
        let v = f();
        (v, last())
    };
    // mov rax, [8]
    let (v, (sig, p)) = run(&|| {
        let mut v = SEED;
        // SAFETY: faults on the NULL page; the handler skips it and zeroes rax.
        unsafe { asm!("mov rax, qword ptr [rcx]", inout("rax") v, in("rcx") BAD, options(nostack)) };
        v
    });
    assert_eq!(v, 0);
    assert_eq!(sig, libc::SIGSEGV);
    assert_eq!(p, SkipPlan { len: 3, zero: [gpr(0, GprWidth::W64), Reg::None], kind: AccessKind::Load });

    // mov eax, [8]: 32-bit write zero-extends
    let (v, (_, p)) = run(&|| {
        let mut v = SEED;
        // SAFETY: as above.
        unsafe { asm!("mov eax, dword ptr [rcx]", inout("rax") v, in("rcx") BAD, options(nostack)) };
        v
    });
    assert_eq!(v, 0);
    assert_eq!(p.zero[0], gpr(0, GprWidth::W32));

    // mov ax, [8]: bits 16..63 kept
    let (v, _) = run(&|| {
        let mut v = SEED;
        // SAFETY: as above.
        unsafe { asm!("mov ax, word ptr [rcx]", inout("rax") v, in("rcx") BAD, options(nostack)) };
        v
    });
    assert_eq!(v, 0xAAAA_BBBB_CCCC_0000);

    // mov al, [8]
    let (v, _) = run(&|| {
        let mut v = SEED;
        // SAFETY: as above.
        unsafe { asm!("mov al, byte ptr [rcx]", inout("rax") v, in("rcx") BAD, options(nostack)) };
        v
    });
    assert_eq!(v, 0xAAAA_BBBB_CCCC_DD00);

    // mov ah, [8]
    let (v, _) = run(&|| {
        let mut v = SEED;
        // SAFETY: as above.
        unsafe { asm!("mov ah, byte ptr [rcx]", inout("rax") v, in("rcx") BAD, options(nostack)) };
        v
    });
    assert_eq!(v, 0xAAAA_BBBB_CCCC_00DD);

    // movzx r11d, byte [8]; movsx r12, word [8]; movsxd r13, dword [8]
    let mut r11 = SEED;
    let mut r12 = SEED;
    let mut r13 = SEED;
    // SAFETY: three faulting loads, each skipped.
    unsafe {
        asm!(
            "movzx r11d, byte ptr [rcx]",
            "movsx r12, word ptr [rcx]",
            "movsxd r13, dword ptr [rcx]",
            inout("r11") r11, inout("r12") r12, inout("r13") r13, in("rcx") BAD,
            options(nostack),
        )
    };
    assert_eq!((r11, r12, r13), (0, 0, 0));

    // add eax, [8] → eax + 0, upper half cleared; and rdx, [8] → 0; add r8, [8] → unchanged
    let mut a = SEED;
    let mut d = SEED;
    let mut b = SEED;
    // SAFETY: three faulting loads, each skipped.
    unsafe {
        asm!(
            "add eax, dword ptr [rcx]",
            "and rdx, qword ptr [rcx]",
            "add r8, qword ptr [rcx]",
            inout("rax") a, inout("rdx") d, inout("r8") b, in("rcx") BAD,
            options(nostack),
        )
    };
    assert_eq!((a, d, b), (0xCCCC_DDDD, 0, SEED));

    // cmp rax, [8] → just skipped
    let mut a = SEED;
    // SAFETY: faulting compare, skipped.
    unsafe { asm!("cmp rax, qword ptr [rcx]", inout("rax") a, in("rcx") BAD, options(nostack)) };
    assert_eq!(a, SEED);
    assert_eq!(last().1.kind, AccessKind::Load);
}

#[test]
fn stores_are_dropped_and_execution_continues() {
    setup();
    let mut after = 0u64;
    // SAFETY: a faulting store, skipped; the next instruction runs.
    unsafe {
        asm!(
            "mov qword ptr [rcx], rax",
            "mov {after}, 1",
            after = inout(reg) after, in("rax") SEED, in("rcx") BAD,
            options(nostack),
        )
    };
    assert_eq!(after, 1);
    let (sig, p) = last();
    assert_eq!(sig, libc::SIGSEGV);
    assert_eq!(p, SkipPlan { len: 3, zero: [Reg::None; 2], kind: AccessKind::Store });

    // mov byte [8], imm
    let mut after = 0u64;
    // SAFETY: as above.
    unsafe {
        asm!("mov byte ptr [rcx], 7", "mov {a}, 2", a = inout(reg) after, in("rcx") BAD, options(nostack))
    };
    assert_eq!(after, 2);
    assert_eq!(last().1.kind, AccessKind::Store);
}

#[test]
fn read_modify_write_is_skipped() {
    setup();
    let mut a = SEED;
    // SAFETY: faulting RMW, skipped.
    unsafe { asm!("add qword ptr [rcx], rax", inout("rax") a, in("rcx") BAD, options(nostack)) };
    assert_eq!(a, SEED);
    assert_eq!(last().1, SkipPlan { len: 3, zero: [Reg::None; 2], kind: AccessKind::ReadModifyWrite });

    // lock xadd [8], rdx → rdx receives the loaded 0
    let mut d = SEED;
    // SAFETY: faulting RMW, skipped.
    unsafe { asm!("lock xadd qword ptr [rcx], rdx", inout("rdx") d, in("rcx") BAD, options(nostack)) };
    assert_eq!(d, 0);
    assert_eq!(last().1.kind, AccessKind::ReadModifyWrite);
}

#[test]
fn string_ops_are_skipped_whole() {
    setup();
    let mut dst = [0x5Au8; 16];
    let mut rcx = 16usize;
    let mut rsi = BAD;
    let mut rdi = dst.as_mut_ptr() as usize;
    let rdi0 = rdi;
    // SAFETY: rep movsb from the NULL page faults on its first byte; skipped whole.
    unsafe {
        asm!(
            "cld",
            "rep movsb",
            inout("rcx") rcx, inout("rsi") rsi, inout("rdi") rdi,
            options(nostack),
        )
    };
    assert_eq!(dst, [0x5A; 16]);
    assert_eq!((rcx, rsi, rdi), (16, BAD, rdi0));
    assert_eq!(last().1, SkipPlan { len: 2, zero: [Reg::None; 2], kind: AccessKind::Store });

    // lodsq → rax = 0
    let mut a = SEED;
    // SAFETY: faulting lods, skipped.
    unsafe { asm!("lodsq", inout("rax") a, inout("rsi") BAD => _, options(nostack)) };
    assert_eq!(a, 0);
    assert_eq!(last().1.zero[0], gpr(0, GprWidth::W64));
}

#[test]
fn divide_by_zero_zeroes_quotient_and_remainder() {
    setup();
    let mut a = SEED;
    let mut d = 1u64;
    // SAFETY: #DE → SIGFPE, skipped.
    unsafe { asm!("div rcx", inout("rax") a, inout("rdx") d, in("rcx") 0u64, options(nostack)) };
    assert_eq!((a, d), (0, 0));
    let (sig, p) = last();
    assert_eq!(sig, libc::SIGFPE);
    assert_eq!(
        p,
        SkipPlan { len: 3, zero: [gpr(0, GprWidth::W64), gpr(2, GprWidth::W64)], kind: AccessKind::Other }
    );

    // idiv ecx: 32-bit results zero-extend
    let mut a = SEED;
    let mut d = SEED;
    // SAFETY: #DE → SIGFPE, skipped.
    unsafe { asm!("idiv ecx", inout("rax") a, inout("rdx") d, in("rcx") 0u64, options(nostack)) };
    assert_eq!((a, d), (0, 0));
    assert_eq!(last().0, libc::SIGFPE);
}

#[test]
fn ud2_is_planned_as_a_trap_the_policy_never_skips() {
    setup();
    let mut x = 0u64;
    // SAFETY: ud2 → SIGILL; this test's own handler applies the plan (2 bytes), so the
    // following mov runs. libvmsrs's handler refuses to skip a `Trap` (see tests/audit.rs).
    unsafe { asm!("mov {x}, 1", "ud2", "mov {x}, 2", x = inout(reg) x, options(nostack)) };
    assert_eq!(x, 2);
    assert_eq!(last(), (libc::SIGILL, SkipPlan { len: 2, zero: [Reg::None; 2], kind: AccessKind::Trap }));
}

#[test]
fn sse_load_keeps_upper_vector_bits() {
    setup();
    let seed: [u8; 32] = core::array::from_fn(|i| 0x80 | i as u8);
    if !std::is_x86_feature_detected!("avx") {
        // Without AVX there are no upper bits: check the 128-bit result only.
        let mut out = [0xFFu8; 16];
        // SAFETY: a faulting SSE load, skipped; xmm0 is declared clobbered.
        unsafe {
            asm!(
                "movdqu xmm0, xmmword ptr [{s}]",
                "movdqu xmm0, xmmword ptr [rcx]",
                "movdqu xmmword ptr [{o}], xmm0",
                s = in(reg) seed.as_ptr(), o = in(reg) out.as_mut_ptr(), in("rcx") BAD,
                out("xmm0") _, options(nostack),
            )
        };
        assert_eq!(out, [0; 16]);
        println!("sse_load_keeps_upper_vector_bits: CPU lacks AVX, checked xmm0 only");
        return;
    }
    let mut out = [0xFFu8; 32];
    // SAFETY: AVX is present (checked above).
    unsafe { movdqu_xmm0_after_ymm_seed(&seed, &mut out) };
    assert_eq!(&out[..16], &[0u8; 16]);
    assert_eq!(&out[16..], &seed[16..]);
    assert_eq!(last().1, SkipPlan { len: 4, zero: [Reg::xmm(0), Reg::None], kind: AccessKind::Load });
}

/// # Safety
/// The CPU and OS must support AVX.
#[target_feature(enable = "avx")]
unsafe fn movdqu_xmm0_after_ymm_seed(seed: &[u8; 32], out: &mut [u8; 32]) {
    // SAFETY: a faulting legacy-SSE load between two valid AVX accesses.
    unsafe {
        asm!(
            "vmovdqu ymm0, ymmword ptr [{s}]",
            "movdqu xmm0, xmmword ptr [rcx]",
            "vmovdqu ymmword ptr [{o}], ymm0",
            s = in(reg) seed.as_ptr(), o = in(reg) out.as_mut_ptr(), in("rcx") BAD,
            out("ymm0") _, options(nostack),
        )
    };
}

#[test]
fn vex_load_zeroes_the_whole_register() {
    setup();
    if !std::is_x86_feature_detected!("avx") {
        println!("vex_load_zeroes_the_whole_register: skipped, CPU lacks AVX");
        return;
    }
    let seed = [0x77u8; 32];
    let mut out = [0xFFu8; 32];
    // SAFETY: AVX is present.
    unsafe { vmovdqu_ymm1(&seed, &mut out) };
    assert_eq!(out, [0; 32]);
    assert_eq!(last().1, SkipPlan { len: 4, zero: [Reg::zmm(1), Reg::None], kind: AccessKind::Load });
}

/// # Safety
/// The CPU and OS must support AVX.
#[target_feature(enable = "avx")]
unsafe fn vmovdqu_ymm1(seed: &[u8; 32], out: &mut [u8; 32]) {
    // SAFETY: a faulting VEX load between two valid AVX accesses.
    unsafe {
        asm!(
            "vmovdqu ymm1, ymmword ptr [{s}]",
            "vmovdqu ymm1, ymmword ptr [rcx]",
            "vmovdqu ymmword ptr [{o}], ymm1",
            s = in(reg) seed.as_ptr(), o = in(reg) out.as_mut_ptr(), in("rcx") BAD,
            out("ymm1") _, options(nostack),
        )
    };
}

fn have_avx512f() -> bool {
    if std::is_x86_feature_detected!("avx512f") {
        true
    } else {
        println!("AVX-512 checks skipped: this CPU (or OS) lacks avx512f");
        false
    }
}

#[test]
fn evex_load_zeroes_zmm() {
    setup();
    if !have_avx512f() {
        return;
    }
    let seed = [0x3Cu8; 64];
    let mut out = [[0xFFu8; 64]; 3];
    // SAFETY: AVX-512F is present.
    unsafe { zmm_loads(&seed, &mut out) };
    assert_eq!(out[0], [0; 64], "vmovdqu64 zmm2");
    assert_eq!(out[1], [0; 64], "vmovdqu64 zmm17 (Hi16_ZMM)");
    assert_eq!(out[2], [0; 64], "VEX vmovdqu xmm3 clears up to bit 511");
}

/// # Safety
/// The CPU and OS must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn zmm_loads(seed: &[u8; 64], out: &mut [[u8; 64]; 3]) {
    // SAFETY: three faulting loads between valid AVX-512 accesses.
    unsafe {
        asm!(
            "vmovdqu64 zmm2, zmmword ptr [{s}]",
            "vmovdqu64 zmm17, zmmword ptr [{s}]",
            "vmovdqu64 zmm3, zmmword ptr [{s}]",
            "vmovdqu64 zmm2, zmmword ptr [rcx]",
            "vmovdqu64 zmm17, zmmword ptr [rcx]",
            "vmovdqu xmm3, xmmword ptr [rcx]",
            "vmovdqu64 zmmword ptr [{o}], zmm2",
            "vmovdqu64 zmmword ptr [{o} + 64], zmm17",
            "vmovdqu64 zmmword ptr [{o} + 128], zmm3",
            s = in(reg) seed.as_ptr(), o = in(reg) out.as_mut_ptr(), in("rcx") BAD,
            out("zmm2") _, out("zmm3") _, out("zmm17") _, options(nostack),
        )
    };
}

#[test]
fn opmask_load_is_zeroed() {
    setup();
    if !have_avx512f() {
        return;
    }
    // SAFETY: AVX-512F is present.
    let k = unsafe { kmov_k1() };
    assert_eq!(k, 0);
    assert_eq!(last().1.zero[0], Reg::K(1));
}

/// # Safety
/// The CPU and OS must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn kmov_k1() -> u32 {
    let k: u32;
    // SAFETY: seed k1 with all ones, fault loading it, read it back.
    unsafe {
        asm!(
            "kxnorw k1, k1, k1",
            "kmovw k1, word ptr [rcx]",
            "kmovw {k:e}, k1",
            k = out(reg) k, in("rcx") BAD, out("k1") _, options(nostack),
        )
    };
    k
}

#[test]
fn misaligned_sse_load_is_skipped_too() {
    setup();
    #[repr(align(16))]
    struct A([u8; 48]);
    let src = A([0x11; 48]);
    let mut out = [0xFFu8; 16];
    // SAFETY: movaps from a misaligned (but mapped) address raises #GP → SIGSEGV; skipped,
    // xmm0's low 128 bits are zeroed.
    unsafe {
        asm!(
            "movdqu xmm0, xmmword ptr [{s}]",
            "movaps xmm0, xmmword ptr [{s} + 1]",
            "movdqu xmmword ptr [{o}], xmm0",
            s = in(reg) src.0.as_ptr(), o = in(reg) out.as_mut_ptr(),
            out("xmm0") _, options(nostack),
        )
    };
    assert_eq!(out, [0; 16]);
    assert_eq!(last().0, libc::SIGSEGV);
}

#[test]
fn x87_load_pushes_zero_and_store_still_pops() {
    setup();
    let mut out = 1.5f64;
    let (sw0, sw1, sw2): (u16, u16, u16);
    // SAFETY: fld from the NULL page pushes +0.0 (skipped load), fstp stores it;
    // then fld1 / fstp to the NULL page pops (store dropped). TOP is compared via fnstsw.
    unsafe {
        asm!(
            "fnstsw ax",
            "mov {w0:x}, ax",
            "fld qword ptr [rcx]",
            "fstp qword ptr [{o}]",
            "fnstsw ax",
            "mov {w1:x}, ax",
            "fld1",
            "fstp qword ptr [rcx]",
            "fnstsw ax",
            "mov {w2:x}, ax",
            o = in(reg) &mut out as *mut f64, in("rcx") BAD,
            w0 = out(reg) sw0, w1 = out(reg) sw1, w2 = out(reg) sw2, out("ax") _,
            options(nostack),
        )
    };
    assert_eq!(out.to_bits(), 0f64.to_bits());
    let top = |sw: u16| (sw >> 11) & 7;
    assert_eq!(top(sw1), top(sw0), "fld/fstp balanced");
    assert_eq!(top(sw2), top(sw0), "fstp to bad memory still pops");
    assert_eq!(last().1, SkipPlan { len: 2, zero: [Reg::X87Pop, Reg::None], kind: AccessKind::Store });
}

#[test]
fn mmx_load_is_zeroed() {
    setup();
    let mut out = u64::MAX;
    let seed = SEED;
    // SAFETY: faulting MMX load, skipped; emms restores x87 usability.
    unsafe {
        asm!(
            "movq mm0, qword ptr [{s}]",
            "movq mm0, qword ptr [rcx]",
            "movq qword ptr [{o}], mm0",
            "emms",
            s = in(reg) &seed as *const u64, o = in(reg) &mut out as *mut u64, in("rcx") BAD,
            out("mm0") _, options(nostack),
        )
    };
    assert_eq!(out, 0);
    assert_eq!(last().1.zero[0], Reg::Mm(0));
}
