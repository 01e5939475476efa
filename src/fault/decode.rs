//! Instruction-skip planning for the *oblivious* fault policy (DESIGN §5).
//!
//! When a user's thread takes SIGSEGV/SIGBUS/SIGFPE/SIGILL, the handler copies
//! up to [`MAX_INSN_LEN`] bytes from the faulting RIP and calls [`plan`]. The
//! returned [`SkipPlan`] says how far to advance RIP and which register
//! destinations must be given the value the instruction would have produced if
//! the faulting load had yielded 0. [`super::context::apply`] then edits the
//! signal frame accordingly.
//!
//! Everything here is async-signal-safe: no allocation, no locks, no panics on
//! any input (iced-x86's decoder reports bad input as an invalid instruction).
//! Only `Instruction` accessors are used; `InstructionInfoFactory` is avoided
//! because it allocates.
//!
//! # The rule: "an invalid load yields 0, an invalid store is dropped"
//!
//! * **Overwriting loads** — `mov`, `movzx`, `movsx`, `movsxd`, `movbe`,
//!   `movd`/`movq`, `movss`/`movsd` (load form), `movaps`/`movups`/`movapd`/
//!   `movupd`/`movdqa`/`movdqu`, `lddqu`, `movntdqa`, VEX/EVEX `vmov*`,
//!   `vbroadcast*`, `vpbroadcast*`, `vmovdqu8/16/32/64`, `pmovzx`/`pmovsx`,
//!   `kmov k, [m]`, `lods`, `xlat`, `pop r`, `cmovcc` … — the destination
//!   becomes 0.
//! * **Combining ops whose result with a 0 operand is the old destination** —
//!   legacy `add`/`sub`/`or`/`xor`/`bsf`/`bsr` with a GPR destination and legacy
//!   (non-VEX) MMX/SSE `padd*`/`psub*`/`por`/`pxor`/`orps`/`orpd`/`xorps`/
//!   `xorpd` and the shift-by-memory-count forms `psll*`/`psrl*`/`psra*` — the
//!   destination is left unchanged, except that a 32-bit GPR destination has
//!   bits 32..63 cleared as the CPU's zero-extending write would
//!   ([`GprWidth::Upper32`]).
//! * **Every other register-destination op with a memory source** (`and`,
//!   `adc`, `sbb`, `imul`, `crc32`, `andn`, `shlx`, SSE/AVX arithmetic, VEX
//!   3-operand forms, `vinsert*`, …) — the destination is zeroed. This is exact
//!   for `and`/`imul`/`mulx`/shifts of 0 and an approximation elsewhere.
//!   Legacy SSE scalar ops (`addss`, `sqrtsd`, `cvtsi2sd`, `cvtss2sd`, …) zero
//!   only the scalar element they write; `movlps`/`movhps`/`movlpd`/`movhpd`/
//!   `pinsr*` zero only the lane they write.
//! * **Compares and tests** (`cmp`, `test`, `bt`, `(u)comis*`, `ptest`,
//!   `vtestp*`, `scas`, `cmps`) — just skipped; flags are not modelled.
//! * **Stores** (`mov [m], r/imm`, `setcc`, `stos`, `movs`, vector stores,
//!   `movnti`, scatters, x87 stores, …) — dropped (skipped).
//! * **Read-modify-write** (`add [m], r`, `inc [m]`, `lock xadd`, `xchg`,
//!   `cmpxchg`, `bts [m]`, …) — skipped; `xchg`/`xadd` registers receive the
//!   0 that was "loaded"; `cmpxchg` zeroes the accumulator (if the accumulator
//!   was 0 the compare would have succeeded and left it 0, otherwise it would
//!   have been loaded with 0 — either way it ends up 0); `cmpxchg8b/16b` zero
//!   `edx:eax` / `rdx:rax` likewise.
//! * **`div`/`idiv`/`mul`/`imul` (one operand)** — skipped, quotient and
//!   remainder (or product) registers are zeroed: `ax` for 8-bit forms,
//!   `dx`/`ax`, `edx`/`eax`, `rdx`/`rax` otherwise (SIGFPE #DE and faulting
//!   memory operands alike).
//! * **x87** — `fld`/`fild`/`fbld` from bad memory push +0.0; `fstp`/`fistp`/
//!   `fisttp`/`fbstp`/`fcomp`/`ficomp` still pop (the store is dropped, the
//!   stack stays balanced). x87 arithmetic with a memory source leaves ST(0)
//!   unchanged.
//! * **Branches** (`jmp [m]`, `call [m]`, `ret`, `call rel` with a bad stack,
//!   …) — skipped, execution falls through ([`AccessKind::Branch`]).
//! * **Stack ops** (`push`, `pop`, `enter`, `leave`, `pushf`, `popf`) — skipped
//!   without adjusting RSP ([`AccessKind::Other`]); `pop r` zeroes `r`.
//! * **String ops** (with or without `rep`) — the whole instruction is skipped
//!   (RCX/RSI/RDI keep whatever values they had at the fault); `lods` zeroes
//!   al/ax/eax/rax.
//! * **`ud2`, `ud0`, `ud1`, `int3`, `int n`, `into`** — instructions whose only purpose is to
//!   trap ([`AccessKind::Trap`]): planned, but the fault handler never skips them (compilers
//!   emit `ud2` after a provably bad access, so the code after it is not meant to run); it
//!   unwinds or ends the thread instead. Other decodable instructions raising SIGILL are
//!   skipped.
//!   Bytes that do not decode give `None`.
//!
//! RSP is never zeroed (a load into the stack pointer is dropped instead), nor
//! are segment, control, debug, bound or AMX tile registers.
//!
//! # Limits (approximations of "the load yields 0")
//!
//! * Flags are never modelled (`cmp`/`test`/`add` leave RFLAGS as they were).
//! * EVEX merge-masked loads (`vmovdqu32 zmm0{k1}, [m]`) and gathers zero the
//!   whole destination; lanes the mask would have preserved are not kept.
//! * VEX/EVEX 3-operand forms (`vaddps ymm0, ymm1, [m]`, `vmovlps xmm0, xmm1,
//!   [m]`, `vinserti128`) zero the destination rather than computing
//!   `src1 op 0`; `cmovcc r, [m]` zeroes `r` whatever the condition; `adc`/
//!   `sbb`/`crc32`/`tzcnt`/`lzcnt` zero their destination; `insertps` zeroes
//!   the whole xmm.
//! * Stack ops do not move RSP; string ops leave RCX/RSI/RDI mid-way.
//! * A skipped `ret`, `call` or `jmp` falls through to the next instruction.

use iced_x86::{
    Code, Decoder, DecoderOptions, EncodingKind, FlowControl, Instruction, Mnemonic, OpKind, Register,
};

/// The longest x86 instruction; callers copy up to this many bytes from RIP.
pub const MAX_INSN_LEN: usize = 15;

/// Which part of a general-purpose register a write touches, with x86-64
/// semantics (8/16-bit writes merge, 32-bit writes zero-extend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GprWidth {
    /// Bits 0..7 (al, cl, …, sil, dil, r8b…); bits 8..63 kept.
    Low8,
    /// Bits 8..15 (ah, ch, dh, bh); the rest kept.
    High8,
    /// Bits 0..15; bits 16..63 kept.
    W16,
    /// Bits 0..31, zero-extended: the whole 64-bit register becomes 0.
    W32,
    /// All 64 bits.
    W64,
    /// Only bits 32..63: a 32-bit write whose value equals the old low half
    /// (e.g. `add eax, [bad]` ⇒ eax + 0), which still zero-extends.
    Upper32,
}

/// A register effect of a skipped instruction (what gets zeroed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reg {
    /// Unused slot.
    #[default]
    None,
    /// General-purpose register by hardware number: 0 rax, 1 rcx, 2 rdx,
    /// 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi, 8..=15 r8..r15.
    Gpr {
        /// Hardware register number, 0..=15.
        num: u8,
        /// Which bits are zeroed.
        width: GprWidth,
    },
    /// Vector register `num` (0..=31) seen as its 64-byte ZMM: bytes
    /// `from..to` are zeroed, the rest kept. A legacy-SSE XMM write is
    /// `0..16` (upper YMM/ZMM bits preserved); any VEX/EVEX write is `0..64`
    /// (VEX/EVEX zero the register up to the maximum vector length).
    Vec {
        /// Register number, 0..=31.
        num: u8,
        /// First zeroed byte.
        from: u8,
        /// One past the last zeroed byte (at most 64).
        to: u8,
    },
    /// MMX register mm0..mm7 (an MMX write also sets x87 TOP = 0 and marks
    /// all x87 tags valid; the 64-bit value is zeroed, bits 64..79 set to 1s).
    Mm(u8),
    /// AVX-512 opmask register k0..k7 (all 64 bits zeroed).
    K(u8),
    /// Push +0.0 on the x87 stack (skipped `fld`/`fild`/`fbld`).
    X87Push,
    /// Pop the x87 stack (skipped `fstp`, `fistp`, `fcomp`, …).
    X87Pop,
}

impl Reg {
    /// Legacy-SSE write of xmm`n`: low 128 bits zeroed, upper bits kept.
    pub const fn xmm(num: u8) -> Reg {
        Reg::Vec { num, from: 0, to: 16 }
    }
    /// Low 256 bits of vector register `n` zeroed, bits 256..511 kept.
    pub const fn ymm(num: u8) -> Reg {
        Reg::Vec { num, from: 0, to: 32 }
    }
    /// The whole vector register `n` zeroed (any VEX/EVEX destination).
    pub const fn zmm(num: u8) -> Reg {
        Reg::Vec { num, from: 0, to: 64 }
    }
    /// General-purpose register `num` (hardware numbering), `width`.
    pub const fn gpr(num: u8, width: GprWidth) -> Reg {
        Reg::Gpr { num, width }
    }
}

/// What kind of memory access the skipped instruction was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// Reads memory only (including compares, `div [m]`, x87 loads).
    Load,
    /// Writes memory (possibly also reading another location, as `movs`).
    Store,
    /// Reads and writes the same memory operand (`add [m], r`, `xchg`, …).
    ReadModifyWrite,
    /// Control transfer (`jmp [m]`, `call`, `ret`, `jcc`, …).
    Branch,
    /// No explicit data access: stack ops, `div r`, privileged ops.
    Other,
    /// An instruction that exists to trap (`ud0/1/2`, `int3`, `int n`, `into`): never skipped.
    Trap,
}

/// How to skip one faulting instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkipPlan {
    /// Instruction length: RIP advances by this much (1..=15).
    pub len: u8,
    /// Register effects, [`Reg::None`] when unused.
    pub zero: [Reg; 2],
    /// The access kind, for accounting and policy.
    pub kind: AccessKind,
}

/// Decodes the instruction at the start of `code` (64-bit mode, located at
/// `rip`) and plans how to skip it. `None` when the bytes do not decode to a
/// valid instruction (including when `code` is shorter than the instruction).
///
/// Async-signal-safe: no allocation, no locks.
pub fn plan(code: &[u8], rip: u64) -> Option<SkipPlan> {
    let code = if code.len() > MAX_INSN_LEN { &code[..MAX_INSN_LEN] } else { code };
    let mut decoder = Decoder::try_with_ip(64, code, rip, DecoderOptions::NONE).ok()?;
    let mut ins = Instruction::default();
    decoder.decode_out(&mut ins);
    if ins.is_invalid() || ins.len() == 0 || ins.len() > MAX_INSN_LEN {
        return None;
    }
    let mut z = Zeros::default();
    let kind = classify(&ins, &mut z);
    Some(SkipPlan {
        // len is 1..=15 (checked above).
        len: ins.len() as u8,
        zero: z.regs,
        kind,
    })
}

/// Up to two register effects.
#[derive(Default)]
struct Zeros {
    regs: [Reg; 2],
    n: usize,
}

impl Zeros {
    fn push(&mut self, r: Option<Reg>) {
        if let Some(r) = r {
            if r != Reg::None && self.n < self.regs.len() {
                self.regs[self.n] = r;
                self.n += 1;
            }
        }
    }
}

fn is_mem_kind(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Memory
            | OpKind::MemorySegSI
            | OpKind::MemorySegESI
            | OpKind::MemorySegRSI
            | OpKind::MemorySegDI
            | OpKind::MemorySegEDI
            | OpKind::MemorySegRDI
            | OpKind::MemoryESDI
            | OpKind::MemoryESEDI
            | OpKind::MemoryESRDI
    )
}

/// Index of the first memory operand (explicit or implicit string operand).
fn mem_operand(ins: &Instruction) -> Option<u32> {
    (0..ins.op_count()).find(|&i| is_mem_kind(ins.op_kind(i)))
}

fn gpr_num(r: Register) -> u8 {
    // full_register() maps al/ah/ax/eax/rax → rax; number() is 0..=15.
    r.full_register().number() as u8
}

/// The effect of a full write of register `r` (x86-64 semantics).
/// `vex` says whether the instruction is VEX/EVEX/XOP encoded (vector writes
/// then clear the register up to MAXVL).
fn write_of(r: Register, vex: bool) -> Option<Reg> {
    if r.is_gpr() {
        let num = gpr_num(r);
        if num == 4 {
            // Never zero the stack pointer: the load is dropped instead.
            return None;
        }
        let width = if r.is_gpr64() {
            GprWidth::W64
        } else if r.is_gpr32() {
            GprWidth::W32
        } else if r.is_gpr16() {
            GprWidth::W16
        } else if matches!(r, Register::AH | Register::CH | Register::DH | Register::BH) {
            GprWidth::High8
        } else {
            GprWidth::Low8
        };
        Some(Reg::Gpr { num, width })
    } else if r.is_vector_register() {
        let num = r.number() as u8;
        if vex || !r.is_xmm() {
            Some(Reg::zmm(num))
        } else {
            Some(Reg::xmm(num))
        }
    } else if r.is_mm() {
        Some(Reg::Mm(r.number() as u8))
    } else if r.is_k() {
        Some(Reg::K(r.number() as u8))
    } else {
        // Segment, control, debug, bound, tile, x87 ST(i): not modelled.
        None
    }
}

/// Width-`w` write of rax (num 0) or rdx (num 2).
fn acc(num: u8, bytes: u32) -> Reg {
    let width = match bytes {
        1 => GprWidth::Low8,
        2 => GprWidth::W16,
        4 => GprWidth::W32,
        _ => GprWidth::W64,
    };
    Reg::Gpr { num, width }
}

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;

/// Operand size of one-operand `mul`/`imul`/`div`/`idiv`, if it is one.
fn muldiv_size(code: Code) -> Option<u32> {
    use Code::*;
    match code {
        Mul_rm8 | Imul_rm8 | Div_rm8 | Idiv_rm8 => Some(1),
        Mul_rm16 | Imul_rm16 | Div_rm16 | Idiv_rm16 => Some(2),
        Mul_rm32 | Imul_rm32 | Div_rm32 | Idiv_rm32 => Some(4),
        Mul_rm64 | Imul_rm64 | Div_rm64 | Idiv_rm64 => Some(8),
        _ => None,
    }
}

/// Memory operands that are never accessed (address arithmetic and hints).
fn no_access(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Lea | Nop
            | Prefetch
            | Prefetchnta
            | Prefetcht0
            | Prefetcht1
            | Prefetcht2
            | Prefetchw
            | Prefetchwt1
            | Bndmk
            | Bndcl
            | Bndcu
            | Bndcn
            | Clflush
            | Clflushopt
            | Clwb
            | Cldemote
            | Vgatherpf0dps
            | Vgatherpf0dpd
            | Vgatherpf0qps
            | Vgatherpf0qpd
            | Vgatherpf1dps
            | Vgatherpf1dpd
            | Vgatherpf1qps
            | Vgatherpf1qpd
            | Vscatterpf0dps
            | Vscatterpf0dpd
            | Vscatterpf0qps
            | Vscatterpf0qpd
            | Vscatterpf1dps
            | Vscatterpf1dpd
            | Vscatterpf1qps
            | Vscatterpf1qpd
    )
}

/// Memory-destination-position operand that is only read.
fn mem_op0_read_only(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmp | Test
            | Bt
            | Cmpsb
            | Cmpsw
            | Cmpsd
            | Cmpsq
            | Verr
            | Verw
            | Ldmxcsr
            | Vldmxcsr
            | Fldcw
            | Fldenv
            | Frstor
            | Fxrstor
            | Fxrstor64
            | Xrstor
            | Xrstor64
            | Xrstors
            | Xrstors64
            | Lgdt
            | Lidt
            | Lldt
            | Ltr
            | Lmsw
            | Fld
            | Fild
            | Fbld
            | Fadd
            | Fiadd
            | Fsub
            | Fisub
            | Fsubr
            | Fisubr
            | Fmul
            | Fimul
            | Fdiv
            | Fidiv
            | Fdivr
            | Fidivr
            | Fcom
            | Fcomp
            | Ficom
            | Ficomp
            | Ptwrite
            | Xlatb
            | Vmptrld
    )
}

/// CMPccXADD: the register operand 1 receives the old memory value.
fn cmpccxadd(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmpbexadd
            | Cmpbxadd
            | Cmplexadd
            | Cmplxadd
            | Cmpnbexadd
            | Cmpnbxadd
            | Cmpnlexadd
            | Cmpnlxadd
            | Cmpnoxadd
            | Cmpnpxadd
            | Cmpnsxadd
            | Cmpnzxadd
            | Cmpoxadd
            | Cmppxadd
            | Cmpsxadd
            | Cmpzxadd
    )
}

/// Memory destination that is read and written.
fn mem_op0_rmw(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Add | Adc
            | Sub
            | Sbb
            | And
            | Or
            | Xor
            | Inc
            | Dec
            | Neg
            | Not
            | Shl
            | Sal
            | Shr
            | Sar
            | Rol
            | Ror
            | Rcl
            | Rcr
            | Shld
            | Shrd
            | Xadd
            | Xchg
            | Cmpxchg
            | Cmpxchg8b
            | Cmpxchg16b
            | Bts
            | Btr
            | Btc
    )
}

/// Register-first instructions with a memory source that write no register.
fn compare_like(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmp | Test
            | Bt
            | Comiss
            | Comisd
            | Ucomiss
            | Ucomisd
            | Vcomiss
            | Vcomisd
            | Vucomiss
            | Vucomisd
            | Vcomish
            | Vucomish
            | Ptest
            | Vptest
            | Vtestps
            | Vtestpd
            | Scasb
            | Scasw
            | Scasd
            | Scasq
            | Outsb
            | Outsw
            | Outsd
            | Movdir64b
            | Enqcmd
            | Enqcmds
            | Invpcid
            | Invept
            | Invvpid
            | Vmwrite
            | Bound
    )
}

/// Combining ops for which `dst op 0 == dst` (legacy encodings only).
fn unchanged_with_zero(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Add | Sub
            | Or
            | Xor
            | Bsf
            | Bsr
            | Paddb
            | Paddw
            | Paddd
            | Paddq
            | Paddsb
            | Paddsw
            | Paddusb
            | Paddusw
            | Psubb
            | Psubw
            | Psubd
            | Psubq
            | Psubsb
            | Psubsw
            | Psubusb
            | Psubusw
            | Por
            | Pxor
            | Orps
            | Orpd
            | Xorps
            | Xorpd
            | Psllw
            | Pslld
            | Psllq
            | Psrlw
            | Psrld
            | Psrlq
            | Psraw
            | Psrad
    )
}

/// Bytes of the XMM destination written by a legacy-SSE instruction with a
/// memory source, when it is not the whole low 128 bits.
fn legacy_xmm_part(ins: &Instruction) -> Option<(u8, u8)> {
    use Mnemonic::*;
    let imm = || ins.immediate8();
    Some(match ins.mnemonic() {
        Movlps | Movlpd => (0, 8),
        Movhps | Movhpd => (8, 16),
        Pinsrb => {
            let b = imm() & 15;
            (b, b + 1)
        }
        Pinsrw => {
            let b = (imm() & 7) * 2;
            (b, b + 2)
        }
        Pinsrd => {
            let b = (imm() & 3) * 4;
            (b, b + 4)
        }
        Pinsrq => {
            let b = (imm() & 1) * 8;
            (b, b + 8)
        }
        Addss | Subss | Mulss | Divss | Minss | Maxss | Sqrtss | Rcpss | Rsqrtss | Roundss | Cmpss
        | Cvtsi2ss | Cvtsd2ss => (0, 4),
        Addsd | Subsd | Mulsd | Divsd | Minsd | Maxsd | Sqrtsd | Roundsd | Cmpsd | Cvtsi2sd | Cvtss2sd
        | Cvtpi2ps => (0, 8),
        _ => return None,
    })
}

fn classify(ins: &Instruction, z: &mut Zeros) -> AccessKind {
    let m = ins.mnemonic();
    let vex = ins.encoding() != EncodingKind::Legacy;
    let mem = mem_operand(ins);

    if no_access(m) {
        return AccessKind::Other;
    }

    // x87 stack effects survive the skip so that the stack stays balanced.
    let fpu = ins.fpu_stack_increment_info();
    if fpu.writes_top() && !fpu.conditional() {
        match fpu.increment() {
            -1 => z.push(Some(Reg::X87Push)),
            1 => z.push(Some(Reg::X87Pop)),
            2 => {
                z.push(Some(Reg::X87Pop));
                z.push(Some(Reg::X87Pop));
            }
            _ => {}
        }
    }

    match ins.flow_control() {
        FlowControl::UnconditionalBranch
        | FlowControl::IndirectBranch
        | FlowControl::ConditionalBranch
        | FlowControl::Call
        | FlowControl::IndirectCall
        | FlowControl::Return => return AccessKind::Branch,
        // ud0/ud1/ud2, int3, int n, into: they exist to trap.
        FlowControl::Exception | FlowControl::Interrupt => return AccessKind::Trap,
        _ => {}
    }

    if let Some(size) = muldiv_size(ins.code()) {
        if size == 1 {
            // ax = quotient:remainder (div) or product (mul).
            z.push(Some(acc(RAX, 2)));
        } else {
            z.push(Some(acc(RAX, size)));
            z.push(Some(acc(RDX, size)));
        }
        return if mem.is_some() { AccessKind::Load } else { AccessKind::Other };
    }

    if ins.is_stack_instruction() {
        if m == Mnemonic::Pop && ins.op0_kind() == OpKind::Register {
            z.push(write_of(ins.op0_register(), false));
        }
        return AccessKind::Other;
    }

    let Some(mi) = mem else {
        if m == Mnemonic::In && ins.op0_kind() == OpKind::Register {
            // A port read (#GP without I/O permission) yields 0 too.
            z.push(write_of(ins.op0_register(), false));
        }
        return AccessKind::Other;
    };

    if mi == 0 {
        return match m {
            _ if matches!(m, Mnemonic::Xchg | Mnemonic::Xadd) || cmpccxadd(m) => {
                if ins.op1_kind() == OpKind::Register {
                    z.push(write_of(ins.op1_register(), false));
                }
                AccessKind::ReadModifyWrite
            }
            Mnemonic::Cmpxchg => {
                let r = ins.op1_register();
                if r.is_gpr8() {
                    z.push(Some(acc(RAX, 1)));
                } else {
                    z.push(Some(acc(RAX, r.size() as u32)));
                }
                AccessKind::ReadModifyWrite
            }
            Mnemonic::Cmpxchg8b => {
                z.push(Some(acc(RAX, 4)));
                z.push(Some(acc(RDX, 4)));
                AccessKind::ReadModifyWrite
            }
            Mnemonic::Cmpxchg16b => {
                z.push(Some(acc(RAX, 8)));
                z.push(Some(acc(RDX, 8)));
                AccessKind::ReadModifyWrite
            }
            Mnemonic::Xlatb => {
                z.push(Some(acc(RAX, 1)));
                AccessKind::Load
            }
            _ if mem_op0_rmw(m) => AccessKind::ReadModifyWrite,
            _ if mem_op0_read_only(m) => AccessKind::Load,
            _ => AccessKind::Store,
        };
    }

    // Memory source, operand 0 is (normally) a register destination.
    if ins.op0_kind() != OpKind::Register || compare_like(m) {
        return AccessKind::Load;
    }
    let dst = ins.op0_register();

    match m {
        Mnemonic::Pcmpestri
        | Mnemonic::Pcmpistri
        | Mnemonic::Vpcmpestri
        | Mnemonic::Vpcmpistri
        | Mnemonic::Pcmpestri64
        | Mnemonic::Vpcmpestri64 => {
            // Implicit ecx result; operand 0 is only read.
            z.push(Some(acc(RCX, 4)));
            return AccessKind::Load;
        }
        Mnemonic::Pcmpestrm
        | Mnemonic::Pcmpistrm
        | Mnemonic::Vpcmpestrm
        | Mnemonic::Vpcmpistrm
        | Mnemonic::Pcmpestrm64
        | Mnemonic::Vpcmpestrm64 => {
            // Implicit xmm0 result; operand 0 is only read.
            z.push(write_of(Register::XMM0, vex));
            return AccessKind::Load;
        }
        _ => {}
    }

    if !vex && unchanged_with_zero(m) {
        if dst.is_gpr32() && gpr_num(dst) != 4 {
            z.push(Some(Reg::Gpr { num: gpr_num(dst), width: GprWidth::Upper32 }));
        }
        return AccessKind::Load;
    }

    if !vex && dst.is_xmm() {
        if let Some((from, to)) = legacy_xmm_part(ins) {
            z.push(Some(Reg::Vec { num: dst.number() as u8, from, to }));
            return AccessKind::Load;
        }
    }

    z.push(write_of(dst, vex));

    if ins.is_vsib() {
        // Gathers clear their completion mask.
        if ins.encoding() == EncodingKind::EVEX {
            let k = ins.op_mask();
            if k != Register::None {
                z.push(write_of(k, true));
            }
        } else if ins.op_count() > 2 && ins.op2_kind() == OpKind::Register {
            z.push(write_of(ins.op2_register(), vex));
        }
    } else if m == Mnemonic::Mulx && ins.op1_kind() == OpKind::Register {
        // rdx * 0: both halves 0.
        z.push(write_of(ins.op1_register(), vex));
    }
    AccessKind::Load
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate alloc;

    fn p(bytes: &[u8]) -> SkipPlan {
        plan(bytes, 0x1000).expect("decodes")
    }

    fn g(num: u8, width: GprWidth) -> Reg {
        Reg::gpr(num, width)
    }

    const N: Reg = Reg::None;

    #[test]
    fn gpr_loads() {
        use GprWidth::*;
        // mov rax, [rcx]
        assert_eq!(p(&[0x48, 0x8b, 0x01]), SkipPlan { len: 3, zero: [g(0, W64), N], kind: AccessKind::Load });
        // mov eax, [rcx]
        assert_eq!(p(&[0x8b, 0x01]).zero, [g(0, W32), N]);
        // mov ax, [rcx]
        assert_eq!(p(&[0x66, 0x8b, 0x01]).zero, [g(0, W16), N]);
        // mov al, [rcx]
        assert_eq!(p(&[0x8a, 0x01]).zero, [g(0, Low8), N]);
        // mov ah, [rcx]
        assert_eq!(p(&[0x8a, 0x21]).zero, [g(0, High8), N]);
        // mov sil, [rcx]
        assert_eq!(p(&[0x40, 0x8a, 0x31]).zero, [g(6, Low8), N]);
        // mov r13d, [rip+0x10]
        assert_eq!(
            p(&[0x44, 0x8b, 0x2d, 0x10, 0, 0, 0]),
            SkipPlan { len: 7, zero: [g(13, W32), N], kind: AccessKind::Load }
        );
        // movzx eax, byte [rcx]
        assert_eq!(p(&[0x0f, 0xb6, 0x01]).zero, [g(0, W32), N]);
        // movsx rdx, word [rcx]
        assert_eq!(p(&[0x48, 0x0f, 0xbf, 0x11]).zero, [g(2, W64), N]);
        // movsxd r9, dword [rax+rbx*8+0x12345678]
        assert_eq!(
            p(&[0x4c, 0x63, 0x8c, 0xd8, 0x78, 0x56, 0x34, 0x12]),
            SkipPlan { len: 8, zero: [g(9, W64), N], kind: AccessKind::Load }
        );
        // movbe eax, [rcx]
        assert_eq!(p(&[0x0f, 0x38, 0xf0, 0x01]).zero, [g(0, W32), N]);
        // cmovz rbx, [rcx]
        assert_eq!(p(&[0x48, 0x0f, 0x44, 0x19]).zero, [g(3, W64), N]);
        // mov rsp, [rcx]: the stack pointer is never zeroed
        assert_eq!(p(&[0x48, 0x8b, 0x21]).zero, [N, N]);
        // xlatb
        assert_eq!(p(&[0xd7]), SkipPlan { len: 1, zero: [g(0, Low8), N], kind: AccessKind::Load });
    }

    #[test]
    fn alu_with_memory_source() {
        use GprWidth::*;
        // add rax, [rcx] → rax + 0 = rax
        assert_eq!(p(&[0x48, 0x03, 0x01]).zero, [N, N]);
        // add eax, [rcx] → zero-extension clears the upper half only
        assert_eq!(p(&[0x03, 0x01]).zero, [g(0, Upper32), N]);
        // sub cx, [rcx] → unchanged
        assert_eq!(p(&[0x66, 0x2b, 0x09]).zero, [N, N]);
        // xor r8, [rcx] → unchanged
        assert_eq!(p(&[0x4c, 0x33, 0x01]).zero, [N, N]);
        // or dl, [rcx] → unchanged
        assert_eq!(p(&[0x0a, 0x11]).zero, [N, N]);
        // and rax, [rcx] → rax & 0 = 0
        assert_eq!(p(&[0x48, 0x23, 0x01]).zero, [g(0, W64), N]);
        // imul ecx, [rax] → 0
        assert_eq!(p(&[0x0f, 0xaf, 0x08]).zero, [g(1, W32), N]);
        // adc rax, [rcx] → zeroed (not trivially unchanged)
        assert_eq!(p(&[0x48, 0x13, 0x01]).zero, [g(0, W64), N]);
        // cmp rax, [rcx] / test [rcx], eax / bt [rcx], eax → skip only
        for b in [&[0x48u8, 0x3b, 0x01][..], &[0x85, 0x01], &[0x0f, 0xa3, 0x01]] {
            let pl = p(b);
            assert_eq!(pl.zero, [N, N]);
            assert_eq!(pl.kind, AccessKind::Load);
        }
        // lea rax, [rax+8] — no access
        assert_eq!(p(&[0x48, 0x8d, 0x40, 0x08]), SkipPlan { len: 4, zero: [N, N], kind: AccessKind::Other });
        // mulx rax, rcx, [rdx] → both zero
        assert_eq!(p(&[0xc4, 0xe2, 0xf3, 0xf6, 0x02]).zero, [g(0, W64), g(1, W64)]);
        // andn eax, ebx, [rcx] → 0
        assert_eq!(p(&[0xc4, 0xe2, 0x60, 0xf2, 0x01]).zero, [g(0, W32), N]);
    }

    #[test]
    fn stores_and_rmw() {
        use GprWidth::*;
        let store = |b: &[u8], len| {
            assert_eq!(p(b), SkipPlan { len, zero: [N, N], kind: AccessKind::Store }, "{b:02x?}")
        };
        // mov [rax], rcx
        store(&[0x48, 0x89, 0x08], 3);
        // mov dword [rax], 0x12345678
        store(&[0xc7, 0x00, 0x78, 0x56, 0x34, 0x12], 6);
        // mov byte [8], 1  (absolute address, SIB no base)
        store(&[0xc6, 0x04, 0x25, 0x08, 0, 0, 0, 0x01], 8);
        // sete [rax]
        store(&[0x0f, 0x94, 0x00], 3);
        // movnti [rax], rcx
        store(&[0x48, 0x0f, 0xc3, 0x08], 4);
        // movdqu [rax], xmm0
        store(&[0xf3, 0x0f, 0x7f, 0x00], 4);
        // vmovdqu [rax], ymm1
        store(&[0xc5, 0xfe, 0x7f, 0x08], 4);
        // rep stosq
        store(&[0xf3, 0x48, 0xab], 3);
        // rep movsb
        store(&[0xf3, 0xa4], 2);
        // fst dword [rax]
        store(&[0xd9, 0x10], 2);

        let rmw = |b: &[u8], zero| {
            assert_eq!(
                p(b),
                SkipPlan { len: b.len() as u8, zero, kind: AccessKind::ReadModifyWrite },
                "{b:02x?}"
            )
        };
        // add [rax], rcx
        rmw(&[0x48, 0x01, 0x08], [N, N]);
        // inc dword [rax]
        rmw(&[0xff, 0x00], [N, N]);
        // lock or byte [rax], 1
        rmw(&[0xf0, 0x80, 0x08, 0x01], [N, N]);
        // lock xadd [rax], ecx → ecx gets the loaded 0
        rmw(&[0xf0, 0x0f, 0xc1, 0x08], [g(1, W32), N]);
        // xchg [rax], rcx
        rmw(&[0x48, 0x87, 0x08], [g(1, W64), N]);
        // lock cmpxchg [rax], ecx → eax 0
        rmw(&[0xf0, 0x0f, 0xb1, 0x08], [g(0, W32), N]);
        // lock cmpxchg [rax], cl → al 0
        rmw(&[0xf0, 0x0f, 0xb0, 0x08], [g(0, Low8), N]);
        // lock cmpxchg16b [rax]
        rmw(&[0xf0, 0x48, 0x0f, 0xc7, 0x08], [g(0, W64), g(2, W64)]);
        // bts [rax], rcx
        rmw(&[0x48, 0x0f, 0xab, 0x08], [N, N]);
    }

    #[test]
    fn vector_loads() {
        // movdqu xmm0, [rax]  (legacy SSE: upper bits kept)
        assert_eq!(
            p(&[0xf3, 0x0f, 0x6f, 0x00]),
            SkipPlan { len: 4, zero: [Reg::xmm(0), N], kind: AccessKind::Load }
        );
        // movaps xmm9, [rax]
        assert_eq!(p(&[0x44, 0x0f, 0x28, 0x08]).zero, [Reg::xmm(9), N]);
        // movss xmm1, [rax] (load form clears 32..127 too)
        assert_eq!(p(&[0xf3, 0x0f, 0x10, 0x08]).zero, [Reg::xmm(1), N]);
        // movq xmm2, [rax]
        assert_eq!(p(&[0xf3, 0x0f, 0x7e, 0x10]).zero, [Reg::xmm(2), N]);
        // movd xmm3, [rax]
        assert_eq!(p(&[0x66, 0x0f, 0x6e, 0x18]).zero, [Reg::xmm(3), N]);
        // lddqu xmm4, [rax]
        assert_eq!(p(&[0xf2, 0x0f, 0xf0, 0x20]).zero, [Reg::xmm(4), N]);
        // vmovdqu xmm0, [rax] (VEX: whole register)
        assert_eq!(p(&[0xc5, 0xfa, 0x6f, 0x00]).zero, [Reg::zmm(0), N]);
        // vmovdqu ymm1, [rax]
        assert_eq!(p(&[0xc5, 0xfe, 0x6f, 0x08]).zero, [Reg::zmm(1), N]);
        // vmovdqu64 zmm2, [rax]
        assert_eq!(p(&[0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x10]).zero, [Reg::zmm(2), N]);
        // vmovdqu8 zmm17, [rax]
        assert_eq!(p(&[0x62, 0xe1, 0x7f, 0x48, 0x6f, 0x08]).zero, [Reg::zmm(17), N]);
        // vbroadcastss ymm5, [rax]
        assert_eq!(p(&[0xc4, 0xe2, 0x7d, 0x18, 0x28]).zero, [Reg::zmm(5), N]);
        // vpbroadcastd zmm30, [rax]
        assert_eq!(p(&[0x62, 0x62, 0x7d, 0x48, 0x58, 0x30]).zero, [Reg::zmm(30), N]);
        // movhps xmm0, [rax] → high qword only
        assert_eq!(p(&[0x0f, 0x16, 0x00]).zero, [Reg::Vec { num: 0, from: 8, to: 16 }, N]);
        // movlpd xmm1, [rax] → low qword only
        assert_eq!(p(&[0x66, 0x0f, 0x12, 0x08]).zero, [Reg::Vec { num: 1, from: 0, to: 8 }, N]);
        // pinsrw xmm0, [rax], 3 → word 3
        assert_eq!(p(&[0x66, 0x0f, 0xc4, 0x00, 0x03]).zero, [Reg::Vec { num: 0, from: 6, to: 8 }, N]);
        // addsd xmm0, [rax] → low double only
        assert_eq!(p(&[0xf2, 0x0f, 0x58, 0x00]).zero, [Reg::Vec { num: 0, from: 0, to: 8 }, N]);
        // cvtsi2ss xmm1, dword [rax]
        assert_eq!(p(&[0xf3, 0x0f, 0x2a, 0x08]).zero, [Reg::Vec { num: 1, from: 0, to: 4 }, N]);
        // addps xmm0, [rax] → zeroed (approximation)
        assert_eq!(p(&[0x0f, 0x58, 0x00]).zero, [Reg::xmm(0), N]);
        // paddd xmm0, [rax] / pxor xmm0, [rax] → unchanged
        assert_eq!(p(&[0x66, 0x0f, 0xfe, 0x00]).zero, [N, N]);
        assert_eq!(p(&[0x66, 0x0f, 0xef, 0x00]).zero, [N, N]);
        // vpxor xmm0, xmm0, [rax] → zeroed (VEX)
        assert_eq!(p(&[0xc5, 0xf9, 0xef, 0x00]).zero, [Reg::zmm(0), N]);
        // ucomisd xmm0, [rax] → compare only
        assert_eq!(p(&[0x66, 0x0f, 0x2e, 0x00]).zero, [N, N]);
        // movq mm0, [rax]
        assert_eq!(p(&[0x0f, 0x6f, 0x00]).zero, [Reg::Mm(0), N]);
        // kmovw k1, [rax]
        assert_eq!(p(&[0xc5, 0xf8, 0x90, 0x08]).zero, [Reg::K(1), N]);
        // vpcmpeqd k1, zmm0, [rax]
        assert_eq!(p(&[0x62, 0xf1, 0x7d, 0x48, 0x76, 0x08]).zero, [Reg::K(1), N]);
        // vpgatherdd xmm0, [rax+xmm1*4], xmm2 → dest and mask
        assert_eq!(p(&[0xc4, 0xe2, 0x69, 0x90, 0x04, 0x88]).zero, [Reg::zmm(0), Reg::zmm(2)]);
        // vpgatherdd zmm0{k1}, [rax+zmm1*4] → dest and k1
        assert_eq!(p(&[0x62, 0xf2, 0x7d, 0x49, 0x90, 0x04, 0x88]).zero, [Reg::zmm(0), Reg::K(1)]);
        // pcmpistri xmm0, [rax], 0 → ecx
        assert_eq!(p(&[0x66, 0x0f, 0x3a, 0x63, 0x00, 0x00]).zero, [g(1, GprWidth::W32), N]);
        // vmovdqu [rax], ymm0 is a store (covered above); vmaskmovps ymm0, ymm1, [rax]
        assert_eq!(p(&[0xc4, 0xe2, 0x75, 0x2c, 0x00]).zero, [Reg::zmm(0), N]);
    }

    #[test]
    fn strings_stack_branches() {
        use GprWidth::*;
        // lodsb / lodsd / rep lodsq
        assert_eq!(p(&[0xac]).zero, [g(0, Low8), N]);
        assert_eq!(p(&[0xad]).zero, [g(0, W32), N]);
        assert_eq!(p(&[0xf3, 0x48, 0xad]), SkipPlan { len: 3, zero: [g(0, W64), N], kind: AccessKind::Load });
        // repne scasb / cmpsb
        assert_eq!(p(&[0xf2, 0xae]), SkipPlan { len: 2, zero: [N, N], kind: AccessKind::Load });
        assert_eq!(p(&[0xa6]), SkipPlan { len: 1, zero: [N, N], kind: AccessKind::Load });
        // push qword [rax] / push rax / enter / leave
        for b in [&[0xffu8, 0x30][..], &[0x50], &[0xc8, 0x10, 0, 0], &[0xc9]] {
            assert_eq!(p(b).kind, AccessKind::Other, "{b:02x?}");
            assert_eq!(p(b).zero, [N, N]);
        }
        // pop rbx → rbx = 0 ; pop rsp → nothing
        assert_eq!(p(&[0x5b]), SkipPlan { len: 1, zero: [g(3, W64), N], kind: AccessKind::Other });
        assert_eq!(p(&[0x5c]).zero, [N, N]);
        // call [rax] / jmp [rax] / ret / call rel32
        for b in [&[0xffu8, 0x10][..], &[0xff, 0x20], &[0xc3], &[0xe8, 0, 0, 0, 0]] {
            assert_eq!(p(b), SkipPlan { len: b.len() as u8, zero: [N, N], kind: AccessKind::Branch });
        }
    }

    #[test]
    fn div_mul_ud2_x87() {
        use GprWidth::*;
        // div rcx
        assert_eq!(
            p(&[0x48, 0xf7, 0xf1]),
            SkipPlan { len: 3, zero: [g(0, W64), g(2, W64)], kind: AccessKind::Other }
        );
        // idiv ecx
        assert_eq!(p(&[0xf7, 0xf9]).zero, [g(0, W32), g(2, W32)]);
        // div cx
        assert_eq!(p(&[0x66, 0xf7, 0xf1]).zero, [g(0, W16), g(2, W16)]);
        // div byte [rax] → ax
        assert_eq!(p(&[0xf6, 0x30]), SkipPlan { len: 2, zero: [g(0, W16), N], kind: AccessKind::Load });
        // mul qword [rax]
        assert_eq!(p(&[0x48, 0xf7, 0x20]).zero, [g(0, W64), g(2, W64)]);
        // ud2
        assert_eq!(p(&[0x0f, 0x0b, 0xcc]), SkipPlan { len: 2, zero: [N, N], kind: AccessKind::Trap });
        // int3, int 0x80
        assert_eq!(p(&[0xcc]), SkipPlan { len: 1, zero: [N, N], kind: AccessKind::Trap });
        assert_eq!(p(&[0xcd, 0x80]), SkipPlan { len: 2, zero: [N, N], kind: AccessKind::Trap });
        // fld qword [rax] → push 0.0
        assert_eq!(p(&[0xdd, 0x00]), SkipPlan { len: 2, zero: [Reg::X87Push, N], kind: AccessKind::Load });
        // fstp qword [rax] → pop
        assert_eq!(p(&[0xdd, 0x18]), SkipPlan { len: 2, zero: [Reg::X87Pop, N], kind: AccessKind::Store });
        // fadd dword [rax] → ST0 unchanged
        assert_eq!(p(&[0xd8, 0x00]), SkipPlan { len: 2, zero: [N, N], kind: AccessKind::Load });
    }

    #[test]
    fn undecodable() {
        // empty, truncated, invalid opcode (0x06 = push es is invalid in 64-bit mode)
        assert_eq!(plan(&[], 0), None);
        assert_eq!(plan(&[0x48, 0x8b], 0), None);
        assert_eq!(plan(&[0x06], 0), None);
        // more than 15 bytes supplied is fine: only the first instruction matters
        let mut long = [0x90u8; 32];
        long[0] = 0x48;
        long[1] = 0x8b;
        long[2] = 0x01;
        assert_eq!(p(&long).len, 3);
    }

    /// Soundness sweep: over many pseudo-random byte strings, every register
    /// the plan zeroes must be one iced-x86's instruction info says the
    /// instruction writes (test-only: the info factory allocates).
    #[test]
    fn zeroed_registers_are_written_by_the_instruction() {
        use iced_x86::{InstructionInfoFactory, OpAccess};
        let mut factory = InstructionInfoFactory::new();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Opcode-map prefixes so that 0F/0F38/0F3A, VEX, EVEX and x87 are all well covered.
        let prefixes: [&[u8]; 14] = [
            &[],
            &[0x0f],
            &[0x66, 0x0f],
            &[0xf3, 0x0f],
            &[0xf2, 0x0f],
            &[0x0f, 0x38],
            &[0x66, 0x0f, 0x38],
            &[0x66, 0x0f, 0x3a],
            &[0xc4],
            &[0xc5],
            &[0x62],
            &[0x48],
            &[0x48, 0x0f],
            &[0xdd],
        ];
        let mut checked = 0u32;
        let mut bad = alloc::collections::BTreeMap::new();
        for i in 0..400_000 {
            let mut buf = [0u8; 16];
            for chunk in buf.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes()[..chunk.len()]);
            }
            let pre = prefixes[i % prefixes.len()];
            buf[..pre.len()].copy_from_slice(pre);
            let Some(pl) = plan(&buf, 0x1000) else { continue };
            let mut d = Decoder::new(64, &buf, DecoderOptions::NONE);
            let ins = d.decode();
            let info = factory.info(&ins);
            let written = |want: Register| {
                info.used_registers().iter().any(|u| {
                    u.register().full_register() == want
                        && matches!(
                            u.access(),
                            OpAccess::Write
                                | OpAccess::CondWrite
                                | OpAccess::ReadWrite
                                | OpAccess::ReadCondWrite
                        )
                }) || (0..ins.op_count()).any(|i| {
                    ins.op_kind(i) == OpKind::Register
                        && ins.op_register(i).full_register() == want
                        && matches!(
                            info.op_access(i),
                            OpAccess::Write
                                | OpAccess::CondWrite
                                | OpAccess::ReadWrite
                                | OpAccess::ReadCondWrite
                        )
                })
            };
            for r in pl.zero {
                let full = match r {
                    Reg::None | Reg::X87Push | Reg::X87Pop => continue,
                    Reg::Gpr { num, .. } => Register::RAX as usize + num as usize,
                    Reg::Vec { num, .. } => Register::ZMM0 as usize + num as usize,
                    Reg::Mm(n) => Register::MM0 as usize + n as usize,
                    Reg::K(n) => Register::K0 as usize + n as usize,
                };
                let full = Register::values().nth(full).expect("register");
                checked += 1;
                if !written(full) {
                    bad.entry(ins.code() as u32).or_insert_with(|| {
                        alloc::format!(
                            "{:?} ({:?}) does not write {:?}; plan {:?}; bytes {:02x?}",
                            ins.code(),
                            ins.mnemonic(),
                            full,
                            pl,
                            &buf[..ins.len()]
                        )
                    });
                }
            }
        }
        let listing: alloc::vec::Vec<_> = bad.values().cloned().collect();
        assert!(bad.is_empty(), "{} unsound plans:\n{}", bad.len(), listing.join("\n"));
        assert!(checked > 10_000, "only {checked} zeroed registers checked");
    }
}
