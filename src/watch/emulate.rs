//! Emulation of a store that trapped on a watched page (DESIGN §6): the instruction is decoded
//! with iced-x86, its effect on memory is computed from the interrupted registers and handed
//! to [`Memory::write`] (which records it and writes it through the writable alias), and its
//! effect on registers and flags is applied to the interrupted context.
//!
//! Emulated: `mov`/`movbe`/`movnti` stores; the read-modify-write forms of `add`, `adc`,
//! `sub`, `sbb`, `and`, `or`, `xor`, `inc`, `dec`, `neg`, `not`; `xchg`, `xadd`, `cmpxchg`,
//! `bts`/`btr`/`btc`, `cmpxchg8b`/`cmpxchg16b`, each with or without `lock` (the caller
//! serialises emulated stores, and every other store to the page traps too, so they are
//! atomic with respect to each other); `shl`/`sal`/`shr`/`sar`/`rol`/`ror`; `setcc`; the SSE/AVX register-to-memory moves of up to 32 bytes (`movups`, `movdqa`,
//! `vmovdqu`, `movq`, `movss`, `movhps`, ...); `stos` and `movs`, with or without `rep`.
//! Anything else is [`Outcome::Unsupported`], named by mnemonic, and never emulated: the
//! caller handles it safely (a contained fault of the user).
//!
//! Flags follow the Intel SDM for each instruction; where the SDM leaves a flag undefined
//! (AF after a logical operation) it is cleared, as current CPUs do.
//!
//! Async-signal-safe: no allocation, no locks, no panics on any input.

use iced_x86::{ConditionCode, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Longest x86 instruction.
pub const MAX_INSN_LEN: usize = 15;

const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const DF: u64 = 1 << 10;
const OF: u64 = 1 << 11;
const ARITH: u64 = CF | PF | AF | ZF | SF | OF;

/// Memory as the emulated instruction sees it.
pub trait Memory {
    /// Read `out.len()` bytes at `addr` as the storing user sees them; `false`: bad address.
    fn read(&mut self, addr: u64, out: &mut [u8]) -> bool;
    /// Store `bytes` at `addr` for the storing user (recorded where watched); `false`: bad
    /// address, nothing written.
    fn write(&mut self, addr: u64, bytes: &[u8]) -> bool;
    /// The watched run of pages holding `addr` (start, end), or `None` when it is not watched.
    fn watched(&self, addr: u64) -> Option<(u64, u64)>;
}

/// The interrupted thread's registers.
pub trait Cpu {
    /// General-purpose register by iced number (rax 0, rcx 1, ... r15 15).
    fn gpr(&self, n: usize) -> u64;
    fn set_gpr(&mut self, n: usize, v: u64);
    fn rip(&self) -> u64;
    fn set_rip(&mut self, v: u64);
    fn flags(&self) -> u64;
    fn set_flags(&mut self, v: u64);
    /// The 64 bytes of zmm`n` (0..32; xmm and ymm are its low 16 and 32); `false` when
    /// unavailable.
    fn vector(&self, n: usize, out: &mut [u8; 64]) -> bool;
    /// Opmask register k`n` (0..8).
    fn opmask(&self, n: usize) -> Option<u64>;
    /// Load `bytes` (at most 32) into vector register `n` (0..16) from its byte 0 and zero its
    /// bytes `bytes.len()..zero_to`; `false` when unavailable (nothing changed).
    fn set_vector(&mut self, n: usize, bytes: &[u8], zero_to: usize) -> bool;
}

/// What became of the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Emulated: memory, registers and flags changed, RIP past the instruction.
    Done,
    /// A string instruction reached the end of the watched memory: the registers say how far
    /// it got and RIP still points at it, so the CPU runs the rest on unwatched memory.
    Partial,
    /// Not emulated (nothing changed): the instruction's mnemonic.
    Unsupported(Mnemonic),
    /// An access outside the watched memory failed (nothing changed): the bad address.
    Fault(u64),
}

/// Decode the instruction at `code` (fetched at `cpu.rip()`) and emulate it, given that it
/// trapped writing `fault_addr`.
pub fn emulate(code: &[u8], fault_addr: u64, cpu: &mut dyn Cpu, mem: &mut dyn Memory) -> Outcome {
    let ins = match decode(code, cpu.rip()) {
        Ok(ins) => ins,
        Err(unsupported) => return unsupported,
    };
    let m = ins.mnemonic();
    let unsupported = Outcome::Unsupported(m);
    if ins.op_count() == 0 {
        return unsupported;
    }
    match ins.op0_kind() {
        OpKind::MemoryESRDI => return string_op(&ins, cpu, mem),
        OpKind::Memory => {}
        _ => return unsupported,
    }
    if ins.segment_prefix() == Register::FS || ins.segment_prefix() == Register::GS {
        return unsupported;
    }
    let size = ins.memory_size().size();
    if !(1..=64).contains(&size) || (ins.op_mask() != Register::None && !vector_store(m)) {
        return unsupported;
    }
    let Some(ea) = ins.virtual_address(0, 0, |r, _, _| reg_value(cpu, r)) else { return unsupported };
    // The trap must be this instruction's own store: at `ea`, or for a bit instruction with a
    // register offset, at the unit holding the bit, which may lie far from `ea`.
    let store = bit_unit(&ins, ea, size, cpu).map_or(ea, |(unit, _)| unit);
    if fault_addr < store || fault_addr >= store.wrapping_add(size as u64) {
        return unsupported;
    }
    let next = ins.next_ip();
    let r = if vector_store(m) || (size > 8 && m != Mnemonic::Cmpxchg16b) {
        vector(&ins, m, ea, size, cpu, mem)
    } else {
        scalar(&ins, m, ea, size, cpu, mem)
    };
    if r == Outcome::Done {
        cpu.set_rip(next);
    }
    r
}

/// Decode the instruction at `code` (fetched at `cpu.rip()`) and emulate it, given that it
/// trapped *loading* `fault_addr`: a faulted user's load of a page keyed for it
/// (`super::pkey`). Its memory operand is read through [`Memory::read`], which gives that
/// user's view (G4); only registers, flags and RIP change. Emulated: `mov`, `movzx`, `movsx`
/// and `movsxd` into a general-purpose register; `add`, `adc`, `sub`, `sbb`, `and`, `or`,
/// `xor` and `cmp` with a memory source; `cmp` and `test` with a memory first operand;
/// `cmovcc`; `bt` with an immediate offset; the SSE and VEX whole-register vector loads of up
/// to 32 bytes (`movdqu`, `movaps`, `movq`, `movss`, `vmovdqu`, `vlddqu`, ...). Anything else
/// is [`Outcome::Unsupported`] and changes nothing.
pub fn emulate_load(code: &[u8], fault_addr: u64, cpu: &mut dyn Cpu, mem: &mut dyn Memory) -> Outcome {
    use Mnemonic::*;
    let ins = match decode(code, cpu.rip()) {
        Ok(ins) => ins,
        Err(unsupported) => return unsupported,
    };
    let m = ins.mnemonic();
    let unsupported = Outcome::Unsupported(m);
    let Some(mi) = (0..ins.op_count()).find(|&i| ins.op_kind(i) == OpKind::Memory) else {
        return unsupported;
    };
    if ins.op_count() != 2
        || ins.has_lock_prefix()
        || ins.segment_prefix() == Register::FS
        || ins.segment_prefix() == Register::GS
    {
        return unsupported;
    }
    let size = ins.memory_size().size();
    let Some(ea) = ins.virtual_address(mi, 0, |r, _, _| reg_value(cpu, r)) else { return unsupported };
    if size == 0 || fault_addr < ea || fault_addr >= ea.wrapping_add(size as u64) {
        return unsupported;
    }
    if let Some(zero_to) = vector_load(&ins, m, size) {
        let mut b = [0u8; 32];
        if !mem.read(ea, &mut b[..size]) {
            return Outcome::Fault(ea);
        }
        if !cpu.set_vector(ins.op_register(0).number(), &b[..size], zero_to) {
            return unsupported;
        }
        cpu.set_rip(ins.next_ip());
        return Outcome::Done;
    }
    if size > 8 {
        return unsupported;
    }
    // The other operand: a general-purpose register to write, or a register or immediate to
    // combine with the memory value.
    let other = 1 - mi;
    let dest = (ins.op_kind(other) == OpKind::Register && ins.op_register(other).is_gpr())
        .then(|| ins.op_register(other));
    let flags = cpu.flags();
    let Some(val) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
    match (m, mi, dest) {
        (Mov | Movzx, 1, Some(r)) => set_reg(cpu, r, val),
        (Movsx | Movsxd, 1, Some(r)) => {
            let shift = 64 - 8 * size as u32;
            set_reg(cpu, r, (((val << shift) as i64) >> shift) as u64);
        }
        (Add | Adc | Sub | Sbb | And | Or | Xor | Cmp, 1, Some(r)) if r.size() == size => {
            let Some(a) = reg_value(cpu, r) else { return unsupported };
            let c = flags & CF;
            let (res, f) = match m {
                Add => add_flags(a, val, 0, size),
                Adc => add_flags(a, val, c, size),
                Sub | Cmp => sub_flags(a, val, 0, size),
                Sbb => sub_flags(a, val, c, size),
                And => (a & val, szp(a & val, size)),
                Or => (a | val, szp(a | val, size)),
                _ => (a ^ val, szp(a ^ val, size)),
            };
            if m != Cmp {
                set_reg(cpu, r, res);
            }
            cpu.set_flags((flags & !ARITH) | f);
        }
        (Cmp, 0, _) => {
            let Some(b) = operand(&ins, 1, cpu) else { return unsupported };
            let (_, f) = sub_flags(val, b, 0, size);
            cpu.set_flags((flags & !ARITH) | f);
        }
        (Test, _, _) => {
            let Some(b) = operand(&ins, other, cpu) else { return unsupported };
            cpu.set_flags((flags & !ARITH) | szp(val & b, size));
        }
        (_, 1, Some(r)) if ins.condition_code() != ConditionCode::None && m_is_cmov(m) => {
            match condition(ins.condition_code(), flags) {
                Some(true) => set_reg(cpu, r, val),
                // A 32-bit cmov clears the upper half even when it does not move.
                Some(false) => match reg_value(cpu, r) {
                    Some(old) => set_reg(cpu, r, old),
                    None => return unsupported,
                },
                None => return unsupported,
            }
        }
        (Bt, 0, None) if ins.op_kind(1) != OpKind::Register => {
            let Some(off) = operand(&ins, 1, cpu) else { return unsupported };
            let bit = off % (size as u64 * 8);
            cpu.set_flags((flags & !CF) | ((val >> bit) & 1));
        }
        _ => return unsupported,
    }
    cpu.set_rip(ins.next_ip());
    Outcome::Done
}

/// A whole-register load of vector register xmm/ymm 0..15 from memory, as a load emulates it:
/// how far the register is written or zeroed (16: a legacy SSE load, which keeps the upper
/// half of the ymm; 64: a VEX one, which clears the rest of the zmm). `None`: not one (EVEX
/// forms, masked or merging loads such as `movlps`, and every other instruction).
fn vector_load(ins: &Instruction, m: Mnemonic, size: usize) -> Option<usize> {
    use Mnemonic::*;
    let r = ins.op_register(0);
    if ins.op_kind(0) != OpKind::Register || ins.op_kind(1) != OpKind::Memory || r.number() >= 16 {
        return None;
    }
    let legacy = matches!(
        m,
        Movups | Movaps | Movupd | Movapd | Movdqu | Movdqa | Lddqu | Movq | Movd | Movss | Movsd
    );
    let vex = matches!(
        m,
        Vmovups | Vmovaps | Vmovupd | Vmovapd | Vmovdqu | Vmovdqa | Vlddqu | Vmovq | Vmovd | Vmovss | Vmovsd
    );
    if legacy && r.is_xmm() && ins.encoding() == iced_x86::EncodingKind::Legacy && size <= 16 {
        Some(16)
    } else if vex && (r.is_xmm() || r.is_ymm()) && ins.encoding() == iced_x86::EncodingKind::VEX && size <= 32
    {
        Some(64)
    } else {
        None
    }
}

fn m_is_cmov(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmovo
            | Cmovno
            | Cmovb
            | Cmovae
            | Cmove
            | Cmovne
            | Cmovbe
            | Cmova
            | Cmovs
            | Cmovns
            | Cmovp
            | Cmovnp
            | Cmovl
            | Cmovge
            | Cmovle
            | Cmovg
    )
}

/// The instruction at `code`, fetched at `rip`; an undecodable one is unsupported.
fn decode(code: &[u8], rip: u64) -> Result<Instruction, Outcome> {
    let code = &code[..code.len().min(MAX_INSN_LEN)];
    let invalid = Outcome::Unsupported(Mnemonic::INVALID);
    let mut decoder = Decoder::try_with_ip(64, code, rip, DecoderOptions::NONE).map_err(|_| invalid)?;
    let mut ins = Instruction::default();
    decoder.decode_out(&mut ins);
    if ins.is_invalid() || ins.len() == 0 {
        return Err(invalid);
    }
    Ok(ins)
}

/// Register-to-memory vector moves: the bytes stored are the source register's, from `offset`.
fn vector_store(m: Mnemonic) -> bool {
    vector_offset(m).is_some()
}

/// `movsd` here is the SSE2 store: the string instruction of that name has an ES:[RDI]
/// destination and is emulated by [`string_op`] before this is asked.
fn vector_offset(m: Mnemonic) -> Option<usize> {
    use Mnemonic::*;
    Some(match m {
        Movups | Movaps | Movupd | Movapd | Movdqu | Movdqa | Movntps | Movntpd | Movntdq | Movq | Movd
        | Movss | Movsd | Movlps | Movlpd | Vmovups | Vmovaps | Vmovupd | Vmovapd | Vmovdqu | Vmovdqa
        | Vmovntps | Vmovntpd | Vmovntdq | Vmovq | Vmovd | Vmovss | Vmovsd | Vmovlps | Vmovlpd | Vmovdqu8
        | Vmovdqu16 | Vmovdqu32 | Vmovdqu64 | Vmovdqa32 | Vmovdqa64 => 0,
        Movhps | Movhpd | Vmovhps | Vmovhpd => 8,
        _ => return None,
    })
}

fn vector(
    ins: &Instruction,
    m: Mnemonic,
    ea: u64,
    size: usize,
    cpu: &mut dyn Cpu,
    mem: &mut dyn Memory,
) -> Outcome {
    let Some(offset) = vector_offset(m) else { return Outcome::Unsupported(m) };
    let src = ins.op_register(ins.op_count() - 1);
    let mut bytes = [0u8; 64];
    if ins.op_kind(ins.op_count() - 1) != OpKind::Register || offset + size > 64 {
        return Outcome::Unsupported(m);
    }
    if src.is_xmm() || src.is_ymm() || src.is_zmm() {
        let n = src.number();
        let mut v = [0u8; 64];
        if n >= 32 || !cpu.vector(n, &mut v) {
            return Outcome::Unsupported(m);
        }
        bytes[..size].copy_from_slice(&v[offset..offset + size]);
    } else if src.is_gpr() && size <= 8 {
        // movq/movd from a general-purpose register.
        let v = reg_value(cpu, src).unwrap_or(0);
        bytes[..8].copy_from_slice(&v.to_le_bytes());
    } else {
        return Outcome::Unsupported(m);
    }
    let k = ins.op_mask();
    if k == Register::None {
        return if mem.write(ea, &bytes[..size]) { Outcome::Done } else { Outcome::Fault(ea) };
    }
    // A masked (AVX-512) store writes the elements whose mask bit is set, nothing else; k0 is
    // not encodable as a mask. Runs of selected elements are stored whole.
    let elem = ins.memory_size().element_size().max(1);
    let Some(bits) = cpu.opmask(k.number().wrapping_sub(Register::K0.number())) else {
        return Outcome::Unsupported(m);
    };
    let n = size / elem;
    let mut i = 0;
    while i < n {
        if bits >> i & 1 == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && bits >> i & 1 != 0 {
            i += 1;
        }
        let at = ea + (start * elem) as u64;
        if !mem.write(at, &bytes[start * elem..i * elem]) {
            return Outcome::Fault(at);
        }
    }
    Outcome::Done
}

fn mask(size: usize) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

/// SF, ZF, PF of a `size`-byte result.
fn szp(r: u64, size: usize) -> u64 {
    let r = r & mask(size);
    let mut f = 0;
    if r == 0 {
        f |= ZF;
    }
    if (r >> (size * 8 - 1)) & 1 != 0 {
        f |= SF;
    }
    if (r as u8).count_ones().is_multiple_of(2) {
        f |= PF;
    }
    f
}

/// `a + b + c` in `size` bytes: (result, flags).
fn add_flags(a: u64, b: u64, c: u64, size: usize) -> (u64, u64) {
    let m = mask(size);
    let wide = (a & m) as u128 + (b & m) as u128 + c as u128;
    let r = wide as u64 & m;
    let mut f = szp(r, size);
    if wide > m as u128 {
        f |= CF;
    }
    if ((a ^ r) & (b ^ r)) >> (size * 8 - 1) & 1 != 0 {
        f |= OF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    (r, f)
}

/// `a - b - c` in `size` bytes: (result, flags).
fn sub_flags(a: u64, b: u64, c: u64, size: usize) -> (u64, u64) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let r = a.wrapping_sub(b).wrapping_sub(c) & m;
    let mut f = szp(r, size);
    if (a as u128) < b as u128 + c as u128 {
        f |= CF;
    }
    if ((a ^ b) & (a ^ r)) >> (size * 8 - 1) & 1 != 0 {
        f |= OF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= AF;
    }
    (r, f)
}

fn condition(cc: ConditionCode, fl: u64) -> Option<bool> {
    let (cf, zf, sf, of, pf) = (fl & CF != 0, fl & ZF != 0, fl & SF != 0, fl & OF != 0, fl & PF != 0);
    Some(match cc {
        ConditionCode::o => of,
        ConditionCode::no => !of,
        ConditionCode::b => cf,
        ConditionCode::ae => !cf,
        ConditionCode::e => zf,
        ConditionCode::ne => !zf,
        ConditionCode::be => cf || zf,
        ConditionCode::a => !cf && !zf,
        ConditionCode::s => sf,
        ConditionCode::ns => !sf,
        ConditionCode::p => pf,
        ConditionCode::np => !pf,
        ConditionCode::l => sf != of,
        ConditionCode::ge => sf == of,
        ConditionCode::le => zf || sf != of,
        ConditionCode::g => !zf && sf == of,
        ConditionCode::None => return None,
    })
}

/// The value of operand `i` (register or immediate), or `None` for other kinds.
fn operand(ins: &Instruction, i: u32, cpu: &dyn Cpu) -> Option<u64> {
    match ins.op_kind(i) {
        OpKind::Register => reg_value(cpu, ins.op_register(i)),
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => Some(ins.immediate(i)),
        _ => None,
    }
}

/// A general-purpose register's value as the instruction reads it (segment bases of CS, DS,
/// ES and SS are 0; FS and GS are refused).
/// The address memory operand `op` of `ins` accesses, from the registers of `cpu`.
pub(crate) fn effective_address(ins: &Instruction, op: u32, cpu: &dyn Cpu) -> Option<u64> {
    ins.virtual_address(op, 0, |r, _, _| reg_value(cpu, r))
}

fn reg_value(cpu: &dyn Cpu, r: Register) -> Option<u64> {
    match r {
        Register::ES | Register::CS | Register::SS | Register::DS => return Some(0),
        _ => {}
    }
    if !r.is_gpr() {
        return None;
    }
    let v = cpu.gpr(r.full_register().number());
    Some(match r {
        Register::AH | Register::CH | Register::DH | Register::BH => (v >> 8) & 0xff,
        _ => v & mask(r.size()),
    })
}

/// Write a general-purpose register as the CPU would (8/16-bit merge, 32-bit zero-extends).
fn set_reg(cpu: &mut dyn Cpu, r: Register, v: u64) {
    let n = r.full_register().number();
    let old = cpu.gpr(n);
    let new = match r {
        Register::AH | Register::CH | Register::DH | Register::BH => (old & !0xff00) | ((v & 0xff) << 8),
        _ => match r.size() {
            1 => (old & !0xff) | (v & 0xff),
            2 => (old & !0xffff) | (v & 0xffff),
            4 => v & 0xffff_ffff,
            _ => v,
        },
    };
    cpu.set_gpr(n, new);
}

/// The accumulator of a `size`-byte operation (al, ax, eax, rax).
fn accumulator(size: usize) -> Register {
    match size {
        1 => Register::AL,
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    }
}

fn read_n(mem: &mut dyn Memory, ea: u64, size: usize) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read(ea, &mut b[..size]).then(|| u64::from_le_bytes(b))
}

fn scalar(
    ins: &Instruction,
    m: Mnemonic,
    ea: u64,
    size: usize,
    cpu: &mut dyn Cpu,
    mem: &mut dyn Memory,
) -> Outcome {
    use Mnemonic::*;
    let unsupported = Outcome::Unsupported(m);
    let flags = cpu.flags();
    // (value to store, new flags, register write-back)
    let mut reg_back: Option<(Register, u64)> = None;
    let mut store_addr = ea;
    let (value, new_flags) = match m {
        Mov | Movnti => match operand(ins, 1, cpu) {
            Some(v) if ins.op_count() == 2 => (v, flags),
            _ => return unsupported,
        },
        Movbe => match operand(ins, 1, cpu) {
            Some(v) => ((v & mask(size)).swap_bytes() >> (64 - size * 8), flags),
            None => return unsupported,
        },
        Add | Adc | Sub | Sbb | And | Or | Xor => {
            let Some(b) = operand(ins, 1, cpu) else { return unsupported };
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            let c = flags & CF;
            let (r, f) = match m {
                Add => add_flags(a, b, 0, size),
                Adc => add_flags(a, b, c, size),
                Sub => sub_flags(a, b, 0, size),
                Sbb => sub_flags(a, b, c, size),
                And => (a & b, szp(a & b, size)),
                Or => (a | b, szp(a | b, size)),
                _ => (a ^ b, szp(a ^ b, size)),
            };
            (r, (flags & !ARITH) | f)
        }
        Inc | Dec => {
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            let (r, f) = if m == Inc { add_flags(a, 1, 0, size) } else { sub_flags(a, 1, 0, size) };
            // CF is left as it was.
            (r, (flags & !(ARITH & !CF)) | (f & !CF))
        }
        Neg => {
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            let (r, f) = sub_flags(0, a, 0, size);
            (r, (flags & !ARITH) | f)
        }
        Not => {
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            (!a, flags)
        }
        Xchg => {
            let Some(b) = operand(ins, 1, cpu) else { return unsupported };
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            reg_back = Some((ins.op_register(1), a));
            (b, flags)
        }
        Xadd => {
            let Some(b) = operand(ins, 1, cpu) else { return unsupported };
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            let (r, f) = add_flags(a, b, 0, size);
            reg_back = Some((ins.op_register(1), a));
            (r, (flags & !ARITH) | f)
        }
        Cmpxchg => {
            let Some(src) = operand(ins, 1, cpu) else { return unsupported };
            let acc = accumulator(size);
            let Some(expect) = reg_value(cpu, acc) else { return unsupported };
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            let (_, f) = sub_flags(expect, a, 0, size);
            let new_flags = (flags & !ARITH) | f;
            if expect == a {
                (src, new_flags)
            } else {
                // A failed compare-exchange is a load (C11/C++ memory model): the processor's
                // locked write-back of the same value is not a store of this user. Recording
                // it would make the value this user read its own store, so a faulted user's
                // value it read could never be withdrawn (the watch lock keeps this atomic).
                set_reg(cpu, acc, a);
                cpu.set_flags(new_flags);
                return Outcome::Done;
            }
        }
        Bts | Btr | Btc => {
            let Some(off) = operand(ins, 1, cpu) else { return unsupported };
            let bit = match bit_unit(ins, ea, size, cpu) {
                Some((unit, bit)) => {
                    store_addr = unit;
                    bit
                }
                // An immediate offset is taken modulo the operand size.
                None => off % (size as u64 * 8),
            };
            let Some(a) = read_n(mem, store_addr, size) else { return Outcome::Fault(store_addr) };
            let was = (a >> bit) & 1;
            let r = match m {
                Bts => a | (1 << bit),
                Btr => a & !(1 << bit),
                _ => a ^ (1 << bit),
            };
            (r, (flags & !CF) | was)
        }
        Shl | Sal | Shr | Sar | Rol | Ror => {
            let count = match ins.op_count() {
                1 => 1,
                _ => match operand(ins, 1, cpu) {
                    Some(c) => c,
                    None => return unsupported,
                },
            };
            let Some(a) = read_n(mem, ea, size) else { return Outcome::Fault(ea) };
            let (r, f) = shift(m, a, count, size, flags);
            (r, f)
        }
        Cmpxchg8b | Cmpxchg16b => {
            // edx:eax against memory; equal: ecx:ebx stored, ZF = 1; else loaded into edx:eax.
            let half = size / 2;
            let (lo, hi) = (cpu.gpr(0) & mask(half), cpu.gpr(2) & mask(half));
            let mut old = [0u8; 16];
            if !mem.read(ea, &mut old[..size]) {
                return Outcome::Fault(ea);
            }
            let old_lo = u64::from_le_bytes(old[..8].try_into().unwrap_or([0; 8])) & mask(half);
            let old_hi = u64::from_le_bytes(old[half..half + 8].try_into().unwrap_or([0; 8])) & mask(half);
            let mut new = old;
            let equal = old_lo == lo && old_hi == hi;
            if equal {
                let (b, c) = (cpu.gpr(3) & mask(half), cpu.gpr(1) & mask(half));
                new[..half].copy_from_slice(&b.to_le_bytes()[..half]);
                new[half..size].copy_from_slice(&c.to_le_bytes()[..half]);
            }
            // Only a successful exchange is a store (a failed one is a load; see cmpxchg).
            if equal && !mem.write(ea, &new[..size]) {
                return Outcome::Fault(ea);
            }
            if !equal {
                let (ra, rd) =
                    if half == 4 { (Register::EAX, Register::EDX) } else { (Register::RAX, Register::RDX) };
                set_reg(cpu, ra, old_lo);
                set_reg(cpu, rd, old_hi);
            }
            cpu.set_flags((flags & !ZF) | if equal { ZF } else { 0 });
            return Outcome::Done;
        }
        _ if ins.condition_code() != ConditionCode::None && size == 1 && m_is_setcc(m) => {
            match condition(ins.condition_code(), flags) {
                Some(c) => (c as u64, flags),
                None => return unsupported,
            }
        }
        _ => return unsupported,
    };
    let bytes = value.to_le_bytes();
    if !mem.write(store_addr, &bytes[..size]) {
        return Outcome::Fault(store_addr);
    }
    if let Some((r, v)) = reg_back {
        set_reg(cpu, r, v);
    }
    cpu.set_flags(new_flags);
    Outcome::Done
}

/// A shift or rotate of the `size`-byte `a` by `count` (masked as the CPU masks it):
/// (result, flags). A masked count of 0 changes nothing. OF is defined for a count of 1 only;
/// for larger counts it is computed as for 1 (the SDM leaves it undefined).
fn shift(m: Mnemonic, a: u64, count: u64, size: usize, flags: u64) -> (u64, u64) {
    use Mnemonic::*;
    let bits = size as u32 * 8;
    let count = (count & if size == 8 { 63 } else { 31 }) as u32;
    let a = a & mask(size);
    let msb = |v: u64| (v >> (bits - 1)) & 1;
    match m {
        Rol | Ror => {
            let n = count % bits;
            if count == 0 {
                return (a, flags);
            }
            let r = if m == Rol {
                ((a << n) | if n == 0 { 0 } else { a >> (bits - n) }) & mask(size)
            } else {
                ((a >> n) | if n == 0 { 0 } else { a << (bits - n) }) & mask(size)
            };
            let (cf, of) =
                if m == Rol { (r & 1, msb(r) ^ (r & 1)) } else { (msb(r), msb(r) ^ ((r >> (bits - 2)) & 1)) };
            let f = (flags & !(CF | OF)) | (cf * CF) | (of * OF);
            (r, f)
        }
        _ => {
            if count == 0 {
                return (a, flags);
            }
            let (r, cf, of) = match m {
                Shr => {
                    let r = if count >= bits { 0 } else { a >> count };
                    let cf = if count > bits { 0 } else { (a >> (count - 1)) & 1 };
                    (r, cf, msb(a))
                }
                Sar => {
                    let signed = ((a << (64 - bits)) as i64) >> (64 - bits);
                    let r = (signed >> count.min(63)) as u64 & mask(size);
                    let cf = ((signed >> (count - 1).min(63)) & 1) as u64;
                    (r, cf, 0)
                }
                _ => {
                    let r = if count >= bits { 0 } else { (a << count) & mask(size) };
                    let cf = if count > bits { 0 } else { (a >> (bits - count)) & 1 };
                    (r, cf, msb(r) ^ cf)
                }
            };
            let f = (flags & !ARITH) | szp(r, size) | (cf * CF) | (of * OF);
            (r, f)
        }
    }
}

/// `bts`/`btr`/`btc` with a register offset: the offset is signed and reaches outside the
/// operand, so the instruction accesses the operand-sized unit holding the bit. (unit
/// address, bit in it); `None` for other instructions and immediate offsets.
fn bit_unit(ins: &Instruction, ea: u64, size: usize, cpu: &dyn Cpu) -> Option<(u64, u64)> {
    if !matches!(ins.mnemonic(), Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc)
        || ins.op_count() != 2
        || ins.op_kind(1) != OpKind::Register
    {
        return None;
    }
    let off = reg_value(cpu, ins.op_register(1))?;
    let bits = size as i64 * 8;
    let signed = match size {
        2 => off as u16 as i16 as i64,
        4 => off as u32 as i32 as i64,
        _ => off as i64,
    };
    let unit = ea.wrapping_add((signed.div_euclid(bits) * size as i64) as u64);
    Some((unit, signed.rem_euclid(bits) as u64))
}

fn m_is_setcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Seto | Setno
            | Setb
            | Setae
            | Sete
            | Setne
            | Setbe
            | Seta
            | Sets
            | Setns
            | Setp
            | Setnp
            | Setl
            | Setge
            | Setle
            | Setg
    )
}

/// `stos` and `movs` (64-bit addressing), with or without `rep`: elements are stored while
/// they land in watched memory; the CPU runs the rest.
fn string_op(ins: &Instruction, cpu: &mut dyn Cpu, mem: &mut dyn Memory) -> Outcome {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let size = match m {
        Stosb | Movsb => 1,
        Stosw | Movsw => 2,
        Stosd | Movsd => 4,
        Stosq | Movsq => 8,
        _ => return Outcome::Unsupported(m),
    };
    let movs = matches!(m, Movsb | Movsw | Movsd | Movsq);
    if movs && ins.op1_kind() != OpKind::MemorySegRSI
        || ins.segment_prefix() == Register::FS
        || ins.segment_prefix() == Register::GS
    {
        return Outcome::Unsupported(m);
    }
    let rep = ins.has_rep_prefix() || ins.has_repe_prefix() || ins.has_repne_prefix();
    let back = cpu.flags() & DF != 0;
    let step = if back { (size as u64).wrapping_neg() } else { size as u64 };
    let (rcx, rsi, rdi) = (1usize, 6usize, 7usize);
    let fill = cpu.gpr(0) & mask(size);
    let mut done_any = false;
    loop {
        if rep && cpu.gpr(rcx) == 0 {
            break;
        }
        let dst = cpu.gpr(rdi);
        // Stop where the destination leaves the watched memory: the CPU does the rest. An
        // element with any byte in it is ours, also one straddling its end (`mem.write` splits
        // it): the CPU would trap on it again.
        let last = dst.wrapping_add(size as u64 - 1);
        if mem.watched(dst).is_none() && mem.watched(last).is_none() {
            return if done_any { Outcome::Partial } else { Outcome::Unsupported(m) };
        }
        let mut buf = [0u8; 8];
        if movs {
            let src = cpu.gpr(rsi);
            if !mem.read(src, &mut buf[..size]) {
                return if done_any { Outcome::Partial } else { Outcome::Fault(src) };
            }
            cpu.set_gpr(rsi, src.wrapping_add(step));
        } else {
            buf = fill.to_le_bytes();
        }
        if !mem.write(dst, &buf[..size]) {
            return if done_any { Outcome::Partial } else { Outcome::Fault(dst) };
        }
        done_any = true;
        cpu.set_gpr(rdi, dst.wrapping_add(step));
        if !rep {
            break;
        }
        cpu.set_gpr(rcx, cpu.gpr(rcx) - 1);
    }
    cpu.set_rip(ins.next_ip());
    Outcome::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers and memory as plain arrays; memory at 0x1000..0x2000 is watched.
    struct Fake {
        gpr: [u64; 16],
        rip: u64,
        flags: u64,
        ymm: [[u8; 32]; 16],
        zmm_hi: [[u8; 64]; 16],
        k: [u64; 8],
        mem: [u8; 0x1000],
        writes: usize,
    }

    impl Cpu for Fake {
        fn gpr(&self, n: usize) -> u64 {
            self.gpr[n]
        }
        fn set_gpr(&mut self, n: usize, v: u64) {
            self.gpr[n] = v
        }
        fn rip(&self) -> u64 {
            self.rip
        }
        fn set_rip(&mut self, v: u64) {
            self.rip = v
        }
        fn flags(&self) -> u64 {
            self.flags
        }
        fn set_flags(&mut self, v: u64) {
            self.flags = v
        }
        fn vector(&self, n: usize, out: &mut [u8; 64]) -> bool {
            *out = [0; 64];
            match n {
                0..16 => out[..32].copy_from_slice(&self.ymm[n]),
                _ => *out = self.zmm_hi[n - 16],
            }
            true
        }
        fn opmask(&self, n: usize) -> Option<u64> {
            self.k.get(n).copied()
        }
        fn set_vector(&mut self, n: usize, bytes: &[u8], zero_to: usize) -> bool {
            let mut z = [0u8; 64];
            z[..32].copy_from_slice(&self.ymm[n]);
            z[32..].copy_from_slice(&self.zmm_hi[n][32..]);
            z[..bytes.len()].copy_from_slice(bytes);
            z[bytes.len()..zero_to.max(bytes.len())].fill(0);
            self.ymm[n].copy_from_slice(&z[..32]);
            self.zmm_hi[n][32..].copy_from_slice(&z[32..]);
            true
        }
    }

    /// Memory at 0x1000..0x2000, watched up to the third field.
    struct Mem<'a>(&'a mut [u8; 0x1000], &'a mut usize, u64);
    impl Memory for Mem<'_> {
        fn read(&mut self, a: u64, out: &mut [u8]) -> bool {
            let Some(a) = a.checked_sub(0x1000).map(|a| a as usize) else { return false };
            match self.0.get(a..a + out.len()) {
                Some(s) => {
                    out.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
        fn write(&mut self, a: u64, b: &[u8]) -> bool {
            let Some(a) = a.checked_sub(0x1000).map(|a| a as usize) else { return false };
            match self.0.get_mut(a..a + b.len()) {
                Some(s) => {
                    s.copy_from_slice(b);
                    *self.1 += 1;
                    true
                }
                None => false,
            }
        }
        fn watched(&self, a: u64) -> Option<(u64, u64)> {
            (0x1000..self.2).contains(&a).then_some((0x1000, self.2))
        }
    }

    fn run(f: &mut Fake, code: &[u8], fault: u64) -> Outcome {
        run_watching(f, code, fault, 0x2000)
    }

    /// `run` with only 0x1000..`end` watched.
    fn run_watching(f: &mut Fake, code: &[u8], fault: u64, end: u64) -> Outcome {
        let mut mem = [0u8; 0x1000];
        mem.copy_from_slice(&f.mem);
        let mut w = 0;
        let r = emulate(code, fault, f, &mut Mem(&mut mem, &mut w, end));
        f.mem = mem;
        f.writes += w;
        r
    }

    fn fake() -> Fake {
        Fake {
            gpr: [0; 16],
            rip: 0x40_0000,
            flags: 0x202,
            ymm: [[0; 32]; 16],
            zmm_hi: [[0; 64]; 16],
            k: [0; 8],
            mem: [0; 0x1000],
            writes: 0,
        }
    }

    #[test]
    fn mov_add_lock_xadd_cmpxchg_and_flags() {
        let mut f = fake();
        f.gpr[3] = 0x1010; // rbx
        f.gpr[0] = 0x1122_3344_5566_7788; // rax
                                          // mov [rbx], rax
        assert_eq!(run(&mut f, &[0x48, 0x89, 0x03], 0x1010), Outcome::Done);
        assert_eq!(&f.mem[0x10..0x18], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(f.rip, 0x40_0003);
        // add dword [rbx], 0xffffffff → carry out, low dword 0x55667787.
        assert_eq!(run(&mut f, &[0x83, 0x03, 0xff], 0x1010), Outcome::Done);
        assert_eq!(&f.mem[0x10..0x14], &0x5566_7787u32.to_le_bytes());
        assert_eq!(f.flags & (CF | ZF | SF | OF), CF);
        // lock xadd [rbx], ecx with ecx = 1: ecx gets the old value (zero-extended).
        f.gpr[1] = 0xdead_0000_0000_0001;
        assert_eq!(run(&mut f, &[0xf0, 0x0f, 0xc1, 0x0b], 0x1010), Outcome::Done);
        assert_eq!(f.gpr[1], 0x5566_7787);
        assert_eq!(&f.mem[0x10..0x14], &0x5566_7788u32.to_le_bytes());
        // lock cmpxchg [rbx], ecx with eax ≠ memory: eax is loaded, memory unchanged, ZF = 0.
        f.gpr[0] = 7;
        assert_eq!(run(&mut f, &[0xf0, 0x0f, 0xb1, 0x0b], 0x1010), Outcome::Done);
        assert_eq!((f.gpr[0], f.flags & ZF), (0x5566_7788, 0));
        // ... and equal: memory gets ecx, ZF = 1.
        assert_eq!(run(&mut f, &[0xf0, 0x0f, 0xb1, 0x0b], 0x1010), Outcome::Done);
        assert_eq!((&f.mem[0x10..0x14], f.flags & ZF), (&0x5566_7787u32.to_le_bytes()[..], ZF));
        // dec byte [rbx] keeps CF.
        f.flags |= CF;
        f.mem[0x10] = 0x80;
        assert_eq!(run(&mut f, &[0xfe, 0x0b], 0x1010), Outcome::Done);
        assert_eq!((f.mem[0x10], f.flags & (CF | OF | AF)), (0x7f, CF | OF | AF));
    }

    fn run_load(f: &mut Fake, code: &[u8], fault: u64) -> Outcome {
        let mut mem = [0u8; 0x1000];
        mem.copy_from_slice(&f.mem);
        let mut w = 0;
        let r = emulate_load(code, fault, f, &mut Mem(&mut mem, &mut w, 0x2000));
        assert_eq!((w, mem), (0, f.mem), "a load never writes memory");
        r
    }

    #[test]
    fn loads_into_registers_and_flags_of_every_form() {
        let mut f = fake();
        f.mem[0x10..0x18].copy_from_slice(&0x8081_8283_f4f5_f6f7u64.to_le_bytes());
        f.gpr[3] = 0x1010; // rbx
        let load = |f: &mut Fake, code: &[u8]| {
            f.rip = 0x40_0000;
            assert_eq!(run_load(f, code, 0x1010), Outcome::Done, "{code:x?}");
            assert_eq!(f.rip, 0x40_0000 + code.len() as u64, "{code:x?}");
        };
        let rax = |f: &mut Fake, v: u64| {
            f.gpr[0] = v;
        };
        // mov of each width: 64, 32 (zero-extends), 16 and 8 (merge), ah.
        for (code, before, after) in [
            (&[0x48, 0x8b, 0x03][..], 0, 0x8081_8283_f4f5_f6f7),
            (&[0x8b, 0x03], u64::MAX, 0xf4f5_f6f7),
            (&[0x66, 0x8b, 0x03], 0x1111_1111_1111_1111, 0x1111_1111_1111_f6f7),
            (&[0x8a, 0x03], 0x1111_1111_1111_1111, 0x1111_1111_1111_11f7),
            (&[0x8a, 0x23], 0x1111_1111_1111_1111, 0x1111_1111_1111_f711),
            // movzx eax, byte; movsx rax, byte; movsxd rax, dword; movsx eax, word.
            (&[0x0f, 0xb6, 0x03], u64::MAX, 0xf7),
            (&[0x48, 0x0f, 0xbe, 0x03], 0, 0xffff_ffff_ffff_fff7),
            (&[0x48, 0x63, 0x03], 0, 0xffff_ffff_f4f5_f6f7),
            (&[0x0f, 0xbf, 0x03], u64::MAX, 0xffff_f6f7),
        ] {
            rax(&mut f, before);
            load(&mut f, code);
            assert_eq!(f.gpr[0], after, "{code:x?}");
        }
        // add eax, [rbx]: carry out of 32 bits, zero result, upper half cleared.
        rax(&mut f, 0xffff_ffff_0b0a_0909);
        load(&mut f, &[0x03, 0x03]);
        assert_eq!((f.gpr[0], f.flags & (CF | ZF | SF)), (0, CF | ZF));
        // cmp dword [rbx], 0: negative, not zero, no borrow; no register changes.
        rax(&mut f, 5);
        load(&mut f, &[0x83, 0x3b, 0x00]);
        assert_eq!((f.gpr[0], f.flags & (CF | ZF | SF)), (5, SF));
        // cmp rax, [rbx] with rax equal: ZF.
        rax(&mut f, 0x8081_8283_f4f5_f6f7);
        load(&mut f, &[0x48, 0x3b, 0x03]);
        assert_eq!(f.flags & (CF | ZF), ZF);
        // test byte [rbx], 8: 0xf7 & 8 = 0.
        load(&mut f, &[0xf6, 0x03, 0x08]);
        assert_eq!(f.flags & (ZF | CF | OF), ZF);
        // cmove rcx, [rbx] taken (ZF set); cmovne ecx, [rbx] not taken still clears the upper half.
        f.gpr[1] = 1;
        load(&mut f, &[0x48, 0x0f, 0x44, 0x0b]);
        assert_eq!(f.gpr[1], 0x8081_8283_f4f5_f6f7);
        load(&mut f, &[0x0f, 0x45, 0x0b]);
        assert_eq!(f.gpr[1], 0xf4f5_f6f7);
        // bt dword [rbx], 3: bit 3 of 0xf7 is 0; bit 0 is 1.
        load(&mut f, &[0x0f, 0xba, 0x23, 0x03]);
        assert_eq!(f.flags & CF, 0);
        load(&mut f, &[0x0f, 0xba, 0x23, 0x00]);
        assert_eq!(f.flags & CF, CF);
        // sub rdx, [rbx] then sbb, and, or, xor through r8 (REX.R).
        f.gpr[8] = 0;
        load(&mut f, &[0x4c, 0x2b, 0x03]);
        assert_eq!((f.gpr[8], f.flags & CF), (0u64.wrapping_sub(0x8081_8283_f4f5_f6f7), CF));
        load(&mut f, &[0x4c, 0x33, 0x03]);
        assert_eq!(f.gpr[8], 0u64.wrapping_sub(0x8081_8283_f4f5_f6f7) ^ 0x8081_8283_f4f5_f6f7);
    }

    #[test]
    fn vector_loads_write_their_register_and_clear_what_their_encoding_clears() {
        let mut f = fake();
        f.gpr[3] = 0x1010;
        for i in 0..32 {
            f.mem[0x10 + i] = 0xa0 + i as u8;
        }
        let want: Vec<u8> = (0..32).map(|i| 0xa0 + i as u8).collect();
        f.ymm = [[0xee; 32]; 16];
        // movdqu xmm1, [rbx]: 16 bytes; the upper ymm half is kept (legacy SSE).
        assert_eq!(run_load(&mut f, &[0xf3, 0x0f, 0x6f, 0x0b], 0x1010), Outcome::Done);
        assert_eq!((&f.ymm[1][..16], &f.ymm[1][16..]), (&want[..16], &[0xee; 16][..]));
        // movq xmm4, [rbx]: 8 bytes, the rest of the xmm zeroed, the upper half kept.
        assert_eq!(run_load(&mut f, &[0xf3, 0x0f, 0x7e, 0x23], 0x1010), Outcome::Done);
        assert_eq!(
            (&f.ymm[4][..8], &f.ymm[4][8..16], &f.ymm[4][16..]),
            (&want[..8], &[0; 8][..], &[0xee; 16][..])
        );
        // vmovdqu ymm2, [rbx]: 32 bytes.
        assert_eq!(run_load(&mut f, &[0xc5, 0xfe, 0x6f, 0x13], 0x1010), Outcome::Done);
        assert_eq!(&f.ymm[2][..], &want[..]);
        // vmovq xmm3, [rbx]: 8 bytes, everything above zeroed (VEX).
        assert_eq!(run_load(&mut f, &[0xc5, 0xfa, 0x7e, 0x1b], 0x1010), Outcome::Done);
        assert_eq!((&f.ymm[3][..8], &f.ymm[3][8..]), (&want[..8], &[0; 24][..]));
        assert_eq!(f.rip, 0x40_0010);
    }

    #[test]
    fn loads_that_are_not_emulated_change_nothing() {
        let mut f = fake();
        f.gpr[3] = 0x1010;
        f.gpr[0] = 42;
        let before = (f.gpr, f.rip, f.flags);
        for code in [
            &[0xc5, 0xf5, 0x74, 0x03][..],         // vpcmpeqb ymm0, ymm1, [rbx]
            &[0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x03], // vmovdqu64 zmm0, [rbx] (EVEX)
            &[0x0f, 0x12, 0x03],                   // movlps xmm0, [rbx]: merges
            &[0xff, 0x33],                         // push qword [rbx]
            &[0x89, 0x03],                         // mov [rbx], eax: a store
            &[0xf0, 0x0f, 0xc1, 0x03],             // lock xadd: a store
            &[0x64, 0x8b, 0x03],                   // mov eax, fs:[rbx]
            &[0x0f, 0xa3, 0x03],                   // bt [rbx], eax: the bit may lie far from rbx
        ] {
            assert!(matches!(run_load(&mut f, code, 0x1010), Outcome::Unsupported(_)), "{code:x?}");
            assert_eq!((f.gpr, f.rip, f.flags), before, "{code:x?}");
        }
        // The trap was not this instruction's load.
        assert!(matches!(run_load(&mut f, &[0x8b, 0x03], 0x1800), Outcome::Unsupported(_)));
        // Its load fails outside memory: the address is reported, nothing changes.
        f.gpr[3] = 0x1ffe;
        assert_eq!(run_load(&mut f, &[0x8b, 0x03], 0x1ffe), Outcome::Fault(0x1ffe));
        assert_eq!(f.gpr[0], 42);
    }

    #[test]
    fn rep_stos_stops_at_the_end_of_watched_memory() {
        let mut f = fake();
        f.gpr[7] = 0x1ff8; // rdi
        f.gpr[1] = 4; // rcx
        f.gpr[0] = 0xab;
        // rep stosq: one element fits, the rest is the CPU's.
        assert_eq!(run(&mut f, &[0xf3, 0x48, 0xab], 0x1ff8), Outcome::Partial);
        assert_eq!((f.gpr[7], f.gpr[1], f.rip), (0x2000, 3, 0x40_0000));
        assert_eq!(&f.mem[0xff8..], &0xabu64.to_le_bytes());
    }

    #[test]
    fn string_elements_straddling_the_end_of_watched_memory_are_emulated() {
        let mut f = fake();
        f.gpr[0] = 0x1122_3344_5566_7788;
        // stosq at rdi = 0x17fc, watched up to 0x1800: half in, half past it, all stored.
        f.gpr[7] = 0x17fc;
        assert_eq!(run_watching(&mut f, &[0x48, 0xab], 0x17fc, 0x1800), Outcome::Done);
        assert_eq!(&f.mem[0x7fc..0x804], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!((f.gpr[7], f.rip), (0x1804, 0x40_0002));
        // rep stosq from 0x17f4, 4 elements: the second straddles, the rest is the CPU's.
        (f.gpr[7], f.gpr[1], f.rip) = (0x17f4, 4, 0x40_0000);
        assert_eq!(run_watching(&mut f, &[0xf3, 0x48, 0xab], 0x17f4, 0x1800), Outcome::Partial);
        assert_eq!((f.gpr[7], f.gpr[1], f.rip), (0x1804, 2, 0x40_0000));
    }

    #[test]
    fn bit_instructions_with_a_register_offset_trap_at_the_unit_holding_the_bit() {
        let mut f = fake();
        // lock bts dword [rbx], ecx with rbx = 0x1100, ecx = -33: bit 31 of the dword at
        // rbx - 8, where it traps, not at rbx.
        f.gpr[3] = 0x1100;
        f.gpr[1] = -33i64 as u64;
        assert_eq!(run(&mut f, &[0xf0, 0x0f, 0xab, 0x0b], 0x10f8), Outcome::Done);
        assert_eq!((&f.mem[0xf8..0x100], f.flags & CF), (&[0, 0, 0, 0x80, 0, 0, 0, 0][..], 0));
        assert_eq!(run(&mut f, &[0xf0, 0x0f, 0xab, 0x0b], 0x10f8), Outcome::Done);
        assert_eq!(f.flags & CF, CF);
        // A trap at rbx is not this instruction's store.
        assert_eq!(run(&mut f, &[0xf0, 0x0f, 0xab, 0x0b], 0x1100), Outcome::Unsupported(Mnemonic::Bts));
    }

    #[test]
    fn vector_stores_take_the_register_bytes() {
        let mut f = fake();
        f.gpr[3] = 0x1100;
        f.ymm[1] = core::array::from_fn(|i| i as u8 + 1);
        // vmovdqu [rbx], ymm1
        assert_eq!(run(&mut f, &[0xc5, 0xfe, 0x7f, 0x0b], 0x1100), Outcome::Done);
        assert_eq!(&f.mem[0x100..0x120], &f.ymm[1][..]);
        // movhps [rbx], xmm1 stores bytes 8..16.
        assert_eq!(run(&mut f, &[0x0f, 0x17, 0x0b], 0x1100), Outcome::Done);
        assert_eq!(&f.mem[0x100..0x108], &f.ymm[1][8..16]);
        // movsd [rbx], xmm1 (the SSE2 store, not the string instruction) stores bytes 0..8.
        assert_eq!(run(&mut f, &[0xf2, 0x0f, 0x11, 0x0b], 0x1100), Outcome::Done);
        assert_eq!(&f.mem[0x100..0x108], &f.ymm[1][..8]);
    }

    #[test]
    fn shifts_rotates_movsd_and_cmpxchg16b() {
        let mut f = fake();
        f.gpr[3] = 0x1100;
        f.mem[0x100..0x104].copy_from_slice(&0x8000_0001u32.to_le_bytes());
        // shl dword [rbx], 1: CF = the bit shifted out, OF = MSB(result) ^ CF.
        assert_eq!(run(&mut f, &[0xd1, 0x23], 0x1100), Outcome::Done);
        assert_eq!((&f.mem[0x100..0x104], f.flags & (CF | OF)), (&2u32.to_le_bytes()[..], CF | OF));
        // ror byte [rbx], 1
        assert_eq!(run(&mut f, &[0xd0, 0x0b], 0x1100), Outcome::Done);
        assert_eq!(f.mem[0x100], 1);
        // movsd [rbx], xmm2
        f.ymm[2][..8].copy_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(run(&mut f, &[0xf2, 0x0f, 0x11, 0x13], 0x1100), Outcome::Done);
        assert_eq!(&f.mem[0x100..0x108], &1.5f64.to_le_bytes());
        // lock cmpxchg16b [rbx]: rdx:rax = memory → rcx:rbx stored.
        f.gpr[0] = u64::from_le_bytes(f.mem[0x100..0x108].try_into().unwrap());
        f.gpr[2] = 0;
        f.gpr[1] = 0x77;
        assert_eq!(run(&mut f, &[0xf0, 0x48, 0x0f, 0xc7, 0x0b], 0x1100), Outcome::Done);
        assert_eq!(
            (u64::from_le_bytes(f.mem[0x100..0x108].try_into().unwrap()), f.mem[0x108]),
            (0x1100, 0x77)
        );
        assert_eq!(f.flags & ZF, ZF);
    }

    #[test]
    fn avx512_stores_from_ymm16_and_masked_stores_write_the_selected_elements() {
        let mut f = fake();
        f.gpr[7] = 0x1200; // rdi
        f.zmm_hi[1] = core::array::from_fn(|i| 0x80 + i as u8); // zmm17
                                                                // vmovdqu64 [rdi], ymm17 (EVEX.256, as glibc's evex memmove/memset use)
        assert_eq!(run(&mut f, &[0x62, 0xe1, 0xfe, 0x28, 0x7f, 0x0f], 0x1200), Outcome::Done);
        assert_eq!(&f.mem[0x200..0x220], &f.zmm_hi[1][..32]);
        // vmovdqu8 [rdi]{k1}, ymm16 with k1 = 0b1010_0101: bytes 0, 2, 5, 7 only.
        f.mem[0x200..0x220].fill(0xee);
        f.zmm_hi[0] = [0x11; 64];
        f.k[1] = 0b1010_0101;
        assert_eq!(run(&mut f, &[0x62, 0xe1, 0x7f, 0x29, 0x7f, 0x07], 0x1200), Outcome::Done);
        let want: Vec<u8> = (0..32).map(|i| if [0, 2, 5, 7].contains(&i) { 0x11 } else { 0xee }).collect();
        assert_eq!(&f.mem[0x200..0x220], &want[..]);
    }

    #[test]
    fn other_instructions_are_refused_by_mnemonic_and_change_nothing() {
        let mut f = fake();
        f.gpr[3] = 0x1100;
        // rcl dword [rbx], 1
        assert_eq!(run(&mut f, &[0xd1, 0x13], 0x1100), Outcome::Unsupported(Mnemonic::Rcl));
        // a store whose address is not the trap's
        assert_eq!(run(&mut f, &[0x89, 0x03], 0x1500), Outcome::Unsupported(Mnemonic::Mov));
        assert_eq!((f.writes, f.rip), (0, 0x40_0000));
    }
}
