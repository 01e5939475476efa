//! Hot store sites patched out of the trap: the stores that make a watched page hot although
//! they never touch a monitored range (false sharing: MariaDB's `global_query_id`, written by
//! every statement, shares its page with `max_connections` and `global_system_variables`).
//!
//! A hypervisor does the same with a guest instruction that exits too often for a page it must
//! watch (KVM patched guests' hot TPR accesses so that they stop exiting). An instruction of
//! the main executable that traps [`HOT`] times, every time storing to the same address
//! outside every monitored range ([`note`], in the trap), is patched at the next safe point
//! ([`apply_wanted`], normal context): it is copied into a *trampoline* near the executable
//! and replaced by a jump to it. The trampoline computes the address the instruction stores
//! to this time; if it is that address, the instruction runs on the region's writable alias
//! (the same memfd as the watched pages, so a locked read-modify-write stays atomic against
//! other threads' emulated stores, and a fork child, whose alias is remapped private at the
//! same address, stores to its own); otherwise the original instruction runs, and traps as
//! before. A monitored byte is never stored
//! without its trap: only the page's other data goes through.
//!
//! Rewriting code other threads may be executing follows the cross-modifying-code protocol of
//! Linux's `text_poke_bp`, with `hlt` (0xF4) where Linux puts `int3`: a stop byte over the
//! first byte, every CPU running the process serialised (`membarrier` `SYNC_CORE`), the rest of
//! the bytes, serialised, the first byte, serialised. `hlt` faults in user mode with a
//! SIGSEGV, which no thread may block while ranges are watched (a SIGTRAP could be blocked,
//! and the kernel kills a thread that meets `int3` with it blocked); a thread that meets it
//! is sent back to the start of the instruction ([`at_stop`]), and one that trapped on the
//! old instruction and waited for the watch lock finds the jump and retries ([`covers`]). The
//! patching thread runs with every signal blocked meanwhile. Only the main executable's code
//! is patched (it is never unloaded), only where no direct jump of its function lands inside
//! the instruction (`je 0f; lock; 0: cmpxchg` jumps past a prefix), and a trampoline is never
//! unmapped (a thread may be inside one). A fault in a trampoline is
//! reported at the instruction it stands for ([`original_pc`]).
//!
//! `VMSRS_PATCH_STORES=off` turns it off. A patched instruction whose region stops being
//! watched gets its bytes back.

use super::{lock, region_of, sys_mprotect, BlockAsync, REGIONS};
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Decoder, DecoderOptions, InstructionBlock,
    InstructionInfoFactory, Mnemonic, OpKind, Register,
};

/// Trapped executions of one instruction before it is patched.
const HOT: u64 = 256;
/// Instructions counted, and patched, at most.
const CANDIDATES: usize = 64;
const MAX_SITES: usize = 16;
const PAGE: usize = 4096;

/// An instruction that trapped storing outside every monitored range.
struct Candidate {
    pc: AtomicUsize,
    traps: AtomicU64,
    /// The address it stored to at its first trap; `usize::MAX` once it stored elsewhere
    /// (then it is never patched).
    target: AtomicUsize,
    /// Patching was tried (at most once per instruction).
    tried: core::sync::atomic::AtomicBool,
}
static CANDS: [Candidate; CANDIDATES] = [const {
    Candidate {
        pc: AtomicUsize::new(0),
        traps: AtomicU64::new(0),
        target: AtomicUsize::new(0),
        tried: core::sync::atomic::AtomicBool::new(false),
    }
}; CANDIDATES];

const FREE: u8 = 0;
/// Its bytes are being rewritten (an `int3` may be at `pc`).
const PATCHING: u8 = 1;
const PATCHED: u8 = 2;
/// Given up (not patchable, or patched and restored): never tried again.
const REFUSED: u8 = 3;

struct Site {
    state: AtomicU8,
    pc: AtomicUsize,
    len: AtomicUsize,
    /// The instruction's original bytes (at most 15).
    orig: [AtomicU8; 16],
    /// The region its store goes to (index in `REGIONS`).
    region: AtomicUsize,
    /// Its trampoline's page.
    tramp: AtomicUsize,
}
static SITES: [Site; MAX_SITES] = [const {
    Site {
        state: AtomicU8::new(FREE),
        pc: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        orig: [const { AtomicU8::new(0) }; 16],
        region: AtomicUsize::new(0),
        tramp: AtomicUsize::new(0),
    }
}; MAX_SITES];

/// Some candidate reached [`HOT`] and waits for [`apply_wanted`].
static ANY_WANTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Whether patching is allowed (`VMSRS_PATCH_STORES`), and whether it failed for good.
static ENABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Sites patched, for the metrics.
pub static PATCHED_SITES: AtomicU64 = AtomicU64::new(0);

/// The main executable's code and image extents: (code lo, code hi, image lo, image hi).
static EXE: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

/// Turn patching on (`VMSRS_PATCH_STORES=on`); called when ranges are armed.
pub fn enable(on: bool) {
    if on && EXE[1].load(Ordering::Relaxed) == 0 {
        find_executable();
    }
    ENABLED.store(on && EXE[1].load(Ordering::Relaxed) != 0, Ordering::Release);
}

fn find_executable() {
    unsafe extern "C" fn first(info: *mut libc::dl_phdr_info, _size: usize, _data: *mut libc::c_void) -> i32 {
        // SAFETY: the loader's info for the callback, valid during it.
        let info = unsafe { &*info };
        let (mut code, mut image) = ((usize::MAX, 0usize), (usize::MAX, 0usize));
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr has dlpi_phnum entries.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type != libc::PT_LOAD {
                continue;
            }
            let lo = info.dlpi_addr as usize + ph.p_vaddr as usize;
            let hi = lo + ph.p_memsz as usize;
            image = (image.0.min(lo), image.1.max(hi));
            if ph.p_flags & libc::PF_X != 0 {
                code = (code.0.min(lo), code.1.max(hi));
            }
        }
        if code.1 > code.0 && image.1 > image.0 {
            for (slot, v) in EXE.iter().zip([code.0, code.1, image.0, image.1]) {
                slot.store(v, Ordering::Relaxed);
            }
        }
        1 // the first object is the main program
    }
    // SAFETY: the callback only reads the loader's info.
    unsafe { libc::dl_iterate_phdr(Some(first), core::ptr::null_mut()) };
}

fn in_code(pc: usize, len: usize) -> bool {
    pc >= EXE[0].load(Ordering::Relaxed) && pc + len <= EXE[1].load(Ordering::Relaxed)
}

fn in_image(addr: usize, len: usize) -> bool {
    addr >= EXE[2].load(Ordering::Relaxed) && addr + len <= EXE[3].load(Ordering::Relaxed)
}

/// In the trap, under the watch lock: the instruction at `pc` just stored at `addr`, outside
/// every monitored range. Counts it; at [`HOT`] traps, all at `addr`, it is queued for
/// [`apply_wanted`]. Async-signal-safe.
pub fn note(pc: usize, addr: usize) {
    if !ENABLED.load(Ordering::Relaxed) || !in_code(pc, 1) {
        return;
    }
    // Callers hold the watch lock: one thread at a time here. Of eight slots: this
    // instruction's, else an empty one, else the one that trapped least (start-up code fills
    // the table with instructions that trap a few times and never again).
    let h = (pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) % CANDIDATES;
    let slot = (0..8)
        .map(|k| (h + k) % CANDIDATES)
        .min_by_key(|&i| match CANDS[i].pc.load(Ordering::Relaxed) {
            p if p == pc => 0,
            0 => 1,
            _ => 2 + CANDS[i].traps.load(Ordering::Relaxed),
        })
        .unwrap_or(h);
    let c = &CANDS[slot];
    if c.pc.load(Ordering::Relaxed) != pc {
        c.pc.store(pc, Ordering::Relaxed);
        c.target.store(addr, Ordering::Relaxed);
        c.traps.store(0, Ordering::Relaxed);
        c.tried.store(false, Ordering::Relaxed);
    }
    if c.target.load(Ordering::Relaxed) != addr {
        c.target.store(usize::MAX, Ordering::Relaxed);
        return;
    }
    if c.traps.fetch_add(1, Ordering::Relaxed) + 1 >= HOT && !c.tried.load(Ordering::Relaxed) {
        ANY_WANTED.store(true, Ordering::Release);
    }
}

/// Sites ever taken (one load guards the lookups below).
static ANY_SITE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The site whose bytes hold `pc` (being patched, or patched).
fn site_at(pc: usize) -> Option<&'static Site> {
    SITES.iter().find(|s| {
        matches!(s.state.load(Ordering::Acquire), PATCHING | PATCHED) && {
            let (p, n) = (s.pc.load(Ordering::Relaxed), s.len.load(Ordering::Relaxed));
            p <= pc && pc < p + n
        }
    })
}

/// Does `pc` start an instruction that is being, or has been, patched? A thread that trapped
/// on its old bytes and waited for the watch lock then retries from `pc` (the jump).
/// Async-signal-safe.
pub fn covers(pc: usize) -> bool {
    ANY_SITE.load(Ordering::Acquire) && site_at(pc).is_some_and(|s| s.pc.load(Ordering::Relaxed) == pc)
}

/// A SIGSEGV from the kernel (`SI_KERNEL`) at `rip`: the `hlt` that stands over the first byte
/// of an instruction being rewritten. The thread runs the instruction again from its start
/// (the stop byte, until its new bytes are in place); `true` if so. Async-signal-safe.
///
/// # Safety
/// `uc` is the context of the SIGSEGV being handled on this thread.
pub unsafe fn at_stop(code: i32, uc: *mut libc::ucontext_t) -> bool {
    if code != libc::SI_KERNEL || !ANY_SITE.load(Ordering::Acquire) {
        return false;
    }
    // SAFETY: the signal's context (contract).
    let rip = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] } as usize;
    SITES.iter().any(|s| {
        s.state.load(Ordering::Acquire) == PATCHING
            && s.pc.load(Ordering::Relaxed) == rip
            // SAFETY: the instruction's first byte, in the executable's code (readable).
            && unsafe { core::ptr::read_volatile(rip as *const u8) } == STOP
    })
}

/// The instruction a trampoline stands for, if `pc` is in one: a fault there (its original
/// instruction, run when the address is not the patched one) is the program's at that
/// instruction, with the same registers. For reports. Async-signal-safe.
pub fn original_pc(pc: usize) -> Option<usize> {
    if !ANY_SITE.load(Ordering::Acquire) {
        return None;
    }
    SITES.iter().find_map(|s| {
        let t = s.tramp.load(Ordering::Relaxed);
        (t != 0 && t <= pc && pc < t + PAGE).then(|| s.pc.load(Ordering::Relaxed))
    })
}

/// The stop byte: `hlt`, a SIGSEGV in user mode.
const STOP: u8 = 0xF4;

/// At a safe point (normal context, no libvmsrs lock held): patch the instructions that
/// turned hot. One load while none waits.
#[inline]
pub fn apply_wanted() {
    if ANY_WANTED.load(Ordering::Acquire) {
        apply_wanted_slow();
    }
}

#[cold]
fn apply_wanted_slow() {
    let _quiet = BlockAsync::new();
    let _g = lock();
    if !ANY_WANTED.swap(false, Ordering::AcqRel) {
        return;
    }
    for c in &CANDS {
        let pc = c.pc.load(Ordering::Relaxed);
        if pc == 0 || c.traps.load(Ordering::Relaxed) < HOT || c.tried.swap(true, Ordering::Relaxed) {
            continue;
        }
        if let Err(why) = patch(pc, c.target.load(Ordering::Relaxed)) {
            let mut l = crate::fault::report::Line::prefixed();
            l.s("watch: the hot store at pc ").hex(pc as u64).s(" stays trapped: ").s(why).s("\n");
            l.write_stderr();
        }
    }
}

/// Patch the instruction at `pc`, which stored to `target` every time it trapped
/// (`usize::MAX`: not always the same address), under the watch lock.
fn patch(pc: usize, target: usize) -> Result<(), &'static str> {
    if SITES.iter().any(|s| s.state.load(Ordering::Relaxed) != FREE && s.pc.load(Ordering::Relaxed) == pc) {
        return Ok(());
    }
    let Some(site) = SITES.iter().find(|s| s.state.load(Ordering::Relaxed) == FREE) else {
        return Err("no site left");
    };
    if target == usize::MAX {
        return Err("it stored to more than one address");
    }
    let mut code = [0u8; 16];
    // SAFETY: pc is in the main executable's code (checked by note).
    let n = unsafe { crate::fault::readable_code(pc, &mut code) };
    let mut dec = Decoder::with_ip(64, &code[..n], pc as u64, DecoderOptions::NONE);
    let ins = dec.decode();
    let len = ins.len();
    if ins.is_invalid() || !in_code(pc, len) {
        return Err("not a whole instruction of the executable");
    }
    if len < 5 {
        return Err("it is shorter than the 5-byte jump");
    }
    let size = ins.memory_size().size();
    let (ri, s, e, a) = region_of(target).ok_or("its target is not watched")?;
    let hv = crate::runtime::hv().ok_or("no hv")?;
    if size == 0
        || target + size > e
        || REGIONS[ri].hw.load(Ordering::Relaxed)
        || !in_image(target, size)
        || hv.is_monitored(a + (target - s), size)
    {
        return Err("its target is monitored, straddles, or is not the executable's");
    }
    let scratch = scratch_registers(&ins)?;
    jumps_past(pc, len)?;
    let tramp = crate::rescue::near_page(pc).ok_or("no room near the executable")?;
    let body = match trampoline(&ins, pc, target, a + (target - s), tramp, scratch) {
        Ok(b) if b.len() <= PAGE => b,
        _ => {
            // SAFETY: our own page, never used.
            unsafe { super::sys_munmap(tramp as *mut libc::c_void, PAGE) };
            return Err("cannot build its trampoline");
        }
    };
    // SAFETY: our new private page, writable until the mprotect below.
    unsafe {
        core::ptr::copy_nonoverlapping(body.as_ptr(), tramp as *mut u8, body.len());
        if sys_mprotect(tramp as *mut libc::c_void, PAGE, libc::PROT_READ | libc::PROT_EXEC) != 0 {
            return Err("cannot make the trampoline executable");
        }
    }
    let rel = i32::try_from(tramp as i64 - (pc as i64 + 5)).map_err(|_| "trampoline out of reach")?;
    if !sync_core_ready() {
        return Err("membarrier SYNC_CORE is not available");
    }
    // Bytes after the jump are never run; `hlt` if something does.
    let mut new = [STOP; 16];
    new[0] = 0xE9;
    new[1..5].copy_from_slice(&rel.to_le_bytes());
    site.pc.store(pc, Ordering::Relaxed);
    site.len.store(len, Ordering::Relaxed);
    site.region.store(ri, Ordering::Relaxed);
    site.tramp.store(tramp, Ordering::Relaxed);
    for (o, b) in site.orig.iter().zip(&code[..len]) {
        o.store(*b, Ordering::Relaxed);
    }
    site.state.store(PATCHING, Ordering::Release);
    ANY_SITE.store(true, Ordering::Release);
    if let Err(why) = rewrite(pc, &new[..len]) {
        site.state.store(REFUSED, Ordering::Release);
        return Err(why);
    }
    site.state.store(PATCHED, Ordering::Release);
    PATCHED_SITES.fetch_add(1, Ordering::Relaxed);
    let mut l = crate::fault::report::Line::prefixed();
    l.s("watch: the store at pc ").hex(pc as u64).s(" to ").hex(target as u64);
    l.s(", outside the monitored ranges on a watched page, trapped ").dec(HOT);
    l.s(" times: it now stores through a writable view of the page, without a trap\n");
    l.write_stderr();
    Ok(())
}

/// Two general registers `ins` neither reads nor writes (explicitly or implicitly), for the
/// trampoline's address check. A store whose address involves the stack pointer, or a
/// segment base (fs, gs), is refused: the check computes the address after moving the stack
/// pointer, and without the segment.
fn scratch_registers(ins: &iced_x86::Instruction) -> Result<[Register; 2], &'static str> {
    let stores = matches!(
        ins.mnemonic(),
        Mnemonic::Mov
            | Mnemonic::Add
            | Mnemonic::Adc
            | Mnemonic::Sub
            | Mnemonic::Sbb
            | Mnemonic::Inc
            | Mnemonic::Dec
            | Mnemonic::And
            | Mnemonic::Or
            | Mnemonic::Xor
            | Mnemonic::Neg
            | Mnemonic::Not
            | Mnemonic::Xchg
            | Mnemonic::Xadd
            | Mnemonic::Cmpxchg
    );
    if !stores || ins.op0_kind() != OpKind::Memory || ins.op_count() > 2 {
        return Err("not a plain store or read-modify-write");
    }
    if matches!(ins.memory_base(), Register::RSP | Register::ESP)
        || matches!(ins.memory_index(), Register::RSP | Register::ESP)
        || matches!(ins.segment_prefix(), Register::FS | Register::GS)
    {
        return Err("its address involves the stack pointer or a segment base");
    }
    let mut factory = InstructionInfoFactory::new();
    let used: Vec<Register> =
        factory.info(ins).used_registers().iter().map(|u| u.register().full_register()).collect();
    let mut free = [
        Register::R11,
        Register::R10,
        Register::R9,
        Register::R8,
        Register::RCX,
        Register::RSI,
        Register::RDI,
    ]
    .into_iter()
    .filter(|r| !used.contains(r));
    match (free.next(), free.next()) {
        (Some(x), Some(y)) => Ok([x, y]),
        _ => Err("no scratch register"),
    }
}

/// The trampoline of `ins` (at `pc`, storing to `target`, which its region's alias has at
/// `alias`), to be placed at `at`:
///
/// ```text
///     lea  -128(%rsp), %rsp        ; the red zone of the interrupted function stays intact
///     push %x ; push %y ; pushfq
///     lea  MEM, %x                 ; the address the instruction stores to this time
///     movabs $target, %y ; cmp %y, %x ; jne slow
///     movabs $alias, %x ; popfq
///     INS with MEM = (%x)          ; the store, through the alias
///     pop %y ; pop %x ; lea 128(%rsp), %rsp ; jmp pc+len
/// slow:                            ; another address: the instruction as it was (it traps if
///     popfq ; pop %y ; pop %x      ; it stores to a watched page, and is emulated there)
///     lea 128(%rsp), %rsp ; INS ; jmp pc+len
/// ```
fn trampoline(
    ins: &iced_x86::Instruction,
    pc: usize,
    target: usize,
    alias: usize,
    at: usize,
    [x, y]: [Register; 2],
) -> Result<Vec<u8>, iced_x86::IcedError> {
    use iced_x86::{Instruction as I, MemoryOperand};
    let rsp_by =
        |d: i64| I::with2(Code::Lea_r64_m, Register::RSP, MemoryOperand::with_base_displ(Register::RSP, d));
    let back = (pc + ins.len()) as u64;
    let mem = MemoryOperand::new(
        ins.memory_base(),
        ins.memory_index(),
        ins.memory_index_scale(),
        ins.memory_displacement64() as i64,
        ins.memory_displ_size(),
        false,
        Register::None,
    );
    let mut fast = *ins;
    fast.set_memory_base(x);
    fast.set_memory_index(Register::None);
    fast.set_memory_index_scale(1);
    fast.set_memory_displacement64(0);
    fast.set_memory_displ_size(0);
    fast.set_segment_prefix(Register::None);
    let mut list = vec![
        rsp_by(-128)?,
        I::with1(Code::Push_r64, x)?,
        I::with1(Code::Push_r64, y)?,
        I::with(Code::Pushfq),
        I::with2(Code::Lea_r64_m, x, mem)?,
        I::with2(Code::Mov_r64_imm64, y, target as u64)?,
        I::with2(Code::Cmp_rm64_r64, x, y)?,
        I::with_branch(Code::Jne_rel32_64, SLOW)?,
        I::with2(Code::Mov_r64_imm64, x, alias as u64)?,
        I::with(Code::Popfq),
        fast,
        I::with1(Code::Pop_r64, y)?,
        I::with1(Code::Pop_r64, x)?,
        rsp_by(128)?,
        I::with_branch(Code::Jmp_rel32_64, back)?,
    ];
    let mut slow = vec![
        I::with(Code::Popfq),
        I::with1(Code::Pop_r64, y)?,
        I::with1(Code::Pop_r64, x)?,
        rsp_by(128)?,
        *ins,
        I::with_branch(Code::Jmp_rel32_64, back)?,
    ];
    // Labels: the block's own instructions get small distinct ips; the slow path starts at SLOW.
    for (k, i) in list.iter_mut().enumerate() {
        i.set_ip(LABELS + k as u64);
    }
    for (k, i) in slow.iter_mut().enumerate() {
        i.set_ip(SLOW + k as u64);
    }
    list.extend(slow);
    let block = InstructionBlock::new(&list, at as u64);
    Ok(BlockEncoder::encode(64, block, BlockEncoderOptions::NONE)?.code_buffer)
}

/// Label ips of the trampoline's instructions (never real addresses: the low page).
const LABELS: u64 = 0x100;
const SLOW: u64 = 0x200;

/// Replace the instruction at `pc` by `new` (its length) while other threads may run it: the
/// stop byte first, the tail, then the head, each step serialised on every CPU.
fn rewrite(pc: usize, new: &[u8]) -> Result<(), &'static str> {
    let lo = pc & !(PAGE - 1);
    let hi = (pc + new.len() + PAGE - 1) & !(PAGE - 1);
    // SAFETY: the main executable's own code pages, made writable for the rewrite only.
    if unsafe {
        sys_mprotect(lo as *mut libc::c_void, hi - lo, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)
    } != 0
    {
        return Err("cannot make the code writable");
    }
    let put = |i: usize, b: u8| {
        // SAFETY: a byte of the instruction, writable now; volatile so each step is a store.
        unsafe { core::ptr::write_volatile((pc + i) as *mut u8, b) }
    };
    // No signal handler of the program may run here: one that ran this instruction would
    // stop at its first byte for ever (this thread finishes the rewrite).
    let all = AllBlocked::new();
    put(0, STOP);
    sync_core();
    for (i, &b) in new.iter().enumerate().skip(1) {
        put(i, b);
    }
    sync_core();
    put(0, new[0]);
    sync_core();
    drop(all);
    // SAFETY: as above, back to what the loader gave them.
    unsafe { sys_mprotect(lo as *mut libc::c_void, hi - lo, libc::PROT_READ | libc::PROT_EXEC) };
    Ok(())
}

/// Every signal blocked on this thread while it lives (the raw system call: the interposed
/// `sigprocmask` would keep SIGSEGV deliverable).
struct AllBlocked(libc::sigset_t);

impl AllBlocked {
    fn new() -> AllBlocked {
        // SAFETY: sigset_t is plain data, for which all zeros is a valid (empty) set.
        let (mut all, mut old): (libc::sigset_t, libc::sigset_t) = unsafe { core::mem::zeroed() };
        // SAFETY: valid sigset pointers; rt_sigprocmask takes the kernel's 8-byte set size.
        unsafe {
            libc::sigfillset(&mut all);
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &all as *const _,
                &mut old as *mut _,
                8,
            );
        }
        AllBlocked(old)
    }
}

impl Drop for AllBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by new().
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &self.0 as *const _,
                core::ptr::null_mut::<libc::sigset_t>(),
                8,
            )
        };
    }
}

/// `Ok` when no direct jump or call of the function holding `pc` lands inside the instruction
/// at `pc` (past its first byte), decoded linearly from the function's dynamic symbol; an error
/// when one does, or when the function's extent is not known. Compilers never jump into an
/// instruction, but hand-written idioms do (`je 0f; lock; 0: cmpxchg`).
fn jumps_past(pc: usize, len: usize) -> Result<(), &'static str> {
    let (start, size) = crate::symbols::function_extent(pc)
        .filter(|&(start, size)| size != 0 && size <= 1 << 20 && in_code(start, size))
        .ok_or("its function has no dynamic symbol, so the jumps into it cannot be checked")?;
    match jumped_into(pc, len, start, size) {
        true => Err("a jump of its function lands inside it"),
        false => Ok(()),
    }
}

/// See [`jumps_past`]: the function is `start..start + size`.
fn jumped_into(pc: usize, len: usize, start: usize, size: usize) -> bool {
    let inside = (pc as u64 + 1)..(pc + len) as u64;
    let lands = |ins: &iced_x86::Instruction| {
        let t = ins.near_branch_target();
        t != 0 && inside.contains(&t)
    };
    let mut from = start;
    if let Some((resume, moved)) = crate::rescue::hooked_prologue(start) {
        // A rescue point's jump stands over the first instructions, which run relocated at
        // `moved` (up to its jump back to `resume`): their branches count, the bytes left
        // behind them do not (they would decode out of step).
        // SAFETY: the hook's own trampoline page (mapped, readable), up to its jump back.
        let copy = unsafe { core::slice::from_raw_parts(moved as *const u8, 64) };
        let mut dec = Decoder::with_ip(64, copy, moved as u64, DecoderOptions::NONE);
        for _ in 0..16 {
            let ins = dec.decode();
            if ins.is_invalid() || ins.near_branch_target() == resume as u64 {
                break;
            }
            if lands(&ins) {
                return true;
            }
        }
        from = resume;
    }
    if from >= start + size {
        return false;
    }
    // SAFETY: the function's bytes, in the executable's mapped code (checked above).
    let code = unsafe { core::slice::from_raw_parts(from as *const u8, start + size - from) };
    let mut dec = Decoder::with_ip(64, code, from as u64, DecoderOptions::NONE);
    let mut ins = iced_x86::Instruction::default();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if lands(&ins) {
            return true;
        }
    }
    false
}

const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 5;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 6;

fn sync_core_ready() -> bool {
    static READY: AtomicU8 = AtomicU8::new(0);
    match READY.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            // SAFETY: membarrier registration takes no pointers.
            let ok = unsafe {
                libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0)
            } == 0;
            READY.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
            ok
        }
    }
}

/// Every CPU running a thread of this process executes a serialising instruction before it
/// returns to user space.
fn sync_core() {
    // SAFETY: membarrier takes no pointers; registered by sync_core_ready.
    unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) };
}

/// Put back the original bytes of the sites whose region `gone` selects (under the watch
/// lock, or single-threaded).
pub fn unpatch(gone: impl Fn(usize) -> bool) {
    for site in &SITES {
        if site.state.load(Ordering::Acquire) != PATCHED || !gone(site.region.load(Ordering::Relaxed)) {
            continue;
        }
        let (pc, len) = (site.pc.load(Ordering::Relaxed), site.len.load(Ordering::Relaxed));
        let mut orig = [0u8; 16];
        for (o, b) in orig.iter_mut().zip(&site.orig) {
            *o = b.load(Ordering::Relaxed);
        }
        site.state.store(PATCHING, Ordering::Release);
        let _ = rewrite(pc, &orig[..len]);
        site.state.store(REFUSED, Ordering::Release);
        PATCHED_SITES.fetch_sub(1, Ordering::Relaxed);
    }
}
