//! Rescue points: user boundaries in unmodified code (`VMSRS_USER_CALL=SYMBOL:RETVAL`, after
//! ASSURE's rescue points).
//!
//! Each call of SYMBOL runs as one user: begun at entry, ended at return. A fault below it
//! that must unwind (policy `unwind`, an escalated budget, a trap-only instruction) makes the
//! call return RETVAL to its caller, with the caller's registers and stack as they were at the
//! call, and the user collected (G7). Under `oblivious` a faulted call runs on suppressed to
//! its return, and then returns RETVAL too: its caller always learns that it failed.
//! With `throw` in place of RETVAL the call instead throws a C++ `std::runtime_error` into its
//! caller, for C++ servers that fail one request by an exception (squid's job dialer).
//! Nested calls run inside the outer user.
//!
//! Mechanism (an inline hook of the unmodified binary):
//! - SYMBOL's first instructions (at least 5 bytes) are decoded with iced-x86 and relocated
//!   into a trampoline (RIP-relative operands and branches fixed up by its block encoder),
//!   followed by a jump back; prologues that cannot be relocated safely are refused with a
//!   message (too short, a branch into the patched bytes, an undecodable instruction).
//! - The trampoline and a per-hook thunk (`push INDEX; jmp entry`) live in a page mapped
//!   within ±2 GiB of SYMBOL.
//! - The first 5 bytes of SYMBOL become `jmp thunk`. Text is patched under W^X: the page is
//!   made writable and not executable, written, then executable and not writable again.
//!   Hooks are installed by the constructor, before `main`, while the process has one thread.
//! - `vmsrs__rescue_entry` (assembly below) saves every register, asks
//!   [`vmsrs__rescue_enter`] to begin the user and keep the registers of the call in the
//!   thread's rescue frame, replaces the return address with `vmsrs__rescue_exit`, and
//!   continues in the trampoline. The exit stub ends the user and returns to the real caller.
//!   No stub changes a register the hooked function would not have changed. The stubs align
//!   the stack before calling into libvmsrs: a compiler may call a function it knows needs
//!   no alignment with the stack 8 bytes off (gcc does, within one file).
//! - To unwind, the fault handler rewrites the interrupted context (or, outside a handler,
//!   [`resume`] jumps) to `vmsrs__rescue_landing` with the stack as at the call; the landing
//!   ends the user, restores every register of the call but rax, and returns RETVAL.
//! - A `throw` hook leaves both stubs with the stack as just before the `ret` to the caller,
//!   the caller's callee-saved registers restored, and jumps to `vmsrs__rescue_throw`
//!   (src/rescue.c): to the unwinder it was called from the call site of SYMBOL, so the
//!   exception goes where one thrown by SYMBOL would (its caller's handler or cleanups).

use crate::{runtime, thread, user};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicUsize, Ordering};
use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Decoder, DecoderOptions, FlowControl, Instruction,
    InstructionBlock,
};
use vmsrs_config::config::OnFault;

/// Hooks one process can have.
pub const MAX_HOOKS: usize = 16;

#[allow(clippy::declare_interior_mutable_const)]
const ZERO_USIZE: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_I64: AtomicI64 = AtomicI64::new(0);

/// Per hook: where the relocated prologue continues, and the value an unwound call returns.
static TRAMPOLINE: [AtomicUsize; MAX_HOOKS] = [ZERO_USIZE; MAX_HOOKS];
static RETVAL: [AtomicI64; MAX_HOOKS] = [ZERO_I64; MAX_HOOKS];
/// Per hook: does a faulted call throw (`throw`) instead of returning RETVAL, and the
/// exception's message (NUL-terminated, made once at install and never freed).
static THROWS: [AtomicBool; MAX_HOOKS] = [const { AtomicBool::new(false) }; MAX_HOOKS];
/// Per hook: the hooked function's address and the bytes of its prologue that moved to the
/// trampoline (the function's own code goes on at `HOOKED + MOVED`).
static HOOKED: [AtomicUsize; MAX_HOOKS] = [ZERO_USIZE; MAX_HOOKS];
static MOVED: [AtomicUsize; MAX_HOOKS] = [ZERO_USIZE; MAX_HOOKS];
static MESSAGE: [AtomicPtr<libc::c_char>; MAX_HOOKS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_HOOKS];

/// Internal to src/rescue.c: the what() of the exception hook `hook - 1` throws.
#[no_mangle]
extern "C" fn vmsrs__rescue_message(hook: usize) -> *const libc::c_char {
    let m = MESSAGE[hook.wrapping_sub(1) % MAX_HOOKS].load(Ordering::Acquire);
    if m.is_null() {
        c"vmsrs: a contained fault ended this call".as_ptr()
    } else {
        m
    }
}
static NHOOKS: AtomicUsize = AtomicUsize::new(0);

/// The thread's frame of a rescue call: every register at the call (as the entry stub pushed
/// them: r15 down to rax, then rflags), xmm0-15, the caller's return address, the value
/// an unwound call returns, and whether it throws instead. Compilers may keep values in caller-saved registers across a call
/// when they know the callee leaves them alone, so the stubs preserve everything, and an
/// unwound call gives the caller back every register but rax.
pub const FRAME_WORDS: usize = 16 + 32 + 3;
const F_RET: usize = 48;
const F_VALUE: usize = 49;
const F_THROW: usize = 50;

/// The general registers and flags as the stubs keep them: pushed flags first, then rax down
/// to r15, so that r15 is lowest (word 0 of the saved block, as in the frame).
macro_rules! push_registers {
    () => {
        "pushfq\n push rax\n push rcx\n push rdx\n push rbx\n push rbp\n push rsi\n push rdi\n \
         push r8\n push r9\n push r10\n push r11\n push r12\n push r13\n push r14\n push r15"
    };
}

/// Undo [`push_registers`].
macro_rules! pop_registers {
    () => {
        "pop r15\n pop r14\n pop r13\n pop r12\n pop r11\n pop r10\n pop r9\n pop r8\n \
         pop rdi\n pop rsi\n pop rbp\n pop rbx\n pop rdx\n pop rcx\n pop rax\n popfq"
    };
}

/// xmm0-15 to the 256 bytes at `[BASE]` (xmm*i* at `BASE + 16*i`).
#[rustfmt::skip]
macro_rules! store_xmm {
    ($base:literal) => {
        concat!(
            "movdqu [", $base, "], xmm0\n movdqu [", $base, " + 16], xmm1\n",
            "movdqu [", $base, " + 32], xmm2\n movdqu [", $base, " + 48], xmm3\n",
            "movdqu [", $base, " + 64], xmm4\n movdqu [", $base, " + 80], xmm5\n",
            "movdqu [", $base, " + 96], xmm6\n movdqu [", $base, " + 112], xmm7\n",
            "movdqu [", $base, " + 128], xmm8\n movdqu [", $base, " + 144], xmm9\n",
            "movdqu [", $base, " + 160], xmm10\n movdqu [", $base, " + 176], xmm11\n",
            "movdqu [", $base, " + 192], xmm12\n movdqu [", $base, " + 208], xmm13\n",
            "movdqu [", $base, " + 224], xmm14\n movdqu [", $base, " + 240], xmm15",
        )
    };
}

/// xmm0-15 from the 256 bytes at `[BASE]` (see [`store_xmm`]).
#[rustfmt::skip]
macro_rules! load_xmm {
    ($base:literal) => {
        concat!(
            "movdqu xmm0, [", $base, "]\n movdqu xmm1, [", $base, " + 16]\n",
            "movdqu xmm2, [", $base, " + 32]\n movdqu xmm3, [", $base, " + 48]\n",
            "movdqu xmm4, [", $base, " + 64]\n movdqu xmm5, [", $base, " + 80]\n",
            "movdqu xmm6, [", $base, " + 96]\n movdqu xmm7, [", $base, " + 112]\n",
            "movdqu xmm8, [", $base, " + 128]\n movdqu xmm9, [", $base, " + 144]\n",
            "movdqu xmm10, [", $base, " + 160]\n movdqu xmm11, [", $base, " + 176]\n",
            "movdqu xmm12, [", $base, " + 192]\n movdqu xmm13, [", $base, " + 208]\n",
            "movdqu xmm14, [", $base, " + 224]\n movdqu xmm15, [", $base, " + 240]",
        )
    };
}

core::arch::global_asm!(
    ".pushsection .text.vmsrs_rescue,\"ax\",@progbits",
    ".p2align 4",
    ".globl vmsrs__rescue_entry",
    ".hidden vmsrs__rescue_entry",
    // [rsp] = hook index (pushed by the thunk), [rsp + 8] = the caller's return address.
    "vmsrs__rescue_entry:",
    push_registers!(),
    "lea rsp, [rsp - 256]",
    store_xmm!("rsp"),
    "mov rdi, [rsp + 384]",
    "lea rsi, [rsp + 392]",
    "mov rdx, rsp",
    "mov rbx, rsp",
    "and rsp, -16",
    "call {enter}",
    "mov rsp, rbx",
    // Continue in the relocated prologue once every register is back, by an indirect jump
    // through the word the thunk pushed (left below rsp, where no signal frame goes: the red
    // zone). Not `ret`: a return that was never called takes the caller's entry off the CPU's
    // return-stack predictor, and every return above it is then mispredicted.
    "mov [rsp + 384], rdx",
    "test rax, rax",
    "jz 2f",
    // (A user began: enter kept every register of the call in the frame and made the call
    // return through the exit stub.)
    "2:",
    load_xmm!("rsp"),
    "lea rsp, [rsp + 256]",
    pop_registers!(),
    "lea rsp, [rsp + 8]",
    "jmp qword ptr [rsp - 8]",
    // The hooked function returned here: end the user, return to the caller, every register
    // as the function left it.
    ".globl vmsrs__rescue_exit",
    ".hidden vmsrs__rescue_exit",
    "vmsrs__rescue_exit:",
    "lea rsp, [rsp - 8]",
    push_registers!(),
    "lea rsp, [rsp - 264]",
    store_xmm!("rsp"),
    "lea rdi, [rsp + 264]",
    "mov rbx, rsp",
    "and rsp, -16",
    "call {leave}",
    "mov rsp, rbx",
    "mov [rsp + 392], rax",
    "test rdx, rdx",
    "jnz 3f",
    load_xmm!("rsp"),
    "lea rsp, [rsp + 264]",
    pop_registers!(),
    // To the caller as the entry stub goes on (the function's own `ret` to this stub already
    // took the caller's entry off the return-stack predictor: its returns stay predicted).
    "lea rsp, [rsp + 8]",
    "jmp qword ptr [rsp - 8]",
    // A `throw` hook whose user faulted: the callee-saved registers as the function left
    // them (the unwinder restores the caller's from them), then throw from the return site.
    "3:",
    "mov rdi, rdx",
    "lea rsp, [rsp + 264]",
    "pop r15", "pop r14", "pop r13", "pop r12",
    "lea rsp, [rsp + 48]",
    "pop rbp", "pop rbx",
    "lea rsp, [rsp + 32]",
    "jmp {throw}",
    // Unwound: rsp is the caller's (just after the call). End the user, then give the caller
    // back every register of the call but rax, which holds the value the call returns.
    ".globl vmsrs__rescue_landing",
    ".hidden vmsrs__rescue_landing",
    "vmsrs__rescue_landing:",
    "mov rbx, rsp",
    "and rsp, -16",
    "call {unwound}",
    "mov rsp, rbx",
    "push qword ptr [rax + 384]",
    load_xmm!("rax + 128"),
    "mov r15, [rax]", "mov r14, [rax + 8]", "mov r13, [rax + 16]", "mov r12, [rax + 24]",
    "mov r11, [rax + 32]", "mov r10, [rax + 40]", "mov r9, [rax + 48]", "mov r8, [rax + 56]",
    "mov rdi, [rax + 64]", "mov rsi, [rax + 72]", "mov rbp, [rax + 80]", "mov rbx, [rax + 88]",
    "mov rdx, [rax + 96]", "mov rcx, [rax + 104]",
    "cmp qword ptr [rax + 400], 0",
    "jne 5f",
    "mov rax, [rax + 392]",
    "ret",
    "5:",
    "mov rdi, [rax + 400]",
    "jmp {throw}",
    // resume(rsp = rdi): the landing, from normal (non-handler) context.
    ".globl vmsrs__rescue_resume",
    ".hidden vmsrs__rescue_resume",
    "vmsrs__rescue_resume:",
    "mov rsp, rdi",
    "jmp vmsrs__rescue_landing",
    ".popsection",
    enter = sym vmsrs__rescue_enter,
    leave = sym vmsrs__rescue_leave,
    unwound = sym vmsrs__rescue_unwound,
    throw = sym vmsrs__rescue_throw,
);

extern "C" {
    static vmsrs__rescue_entry: u8;
    static vmsrs__rescue_exit: u8;
    static vmsrs__rescue_landing: u8;
    fn vmsrs__rescue_resume(rsp: usize) -> !;
    /// src/rescue.c: throw the C++ exception of a faulted call of hook `hook - 1`. Entered by a
    /// jump with the caller's return address on top of the stack, as if called from the call
    /// site.
    fn vmsrs__rescue_throw(hook: usize) -> !;
    /// src/rescue.c: find the C++ runtime's exception functions; 0 when they are all there.
    fn vmsrs__rescue_throw_init() -> libc::c_int;
}

/// What `vmsrs__rescue_entry` gets back: whether a user began (nonzero: return through the
/// exit stub; 0: run the call plainly), and where the relocated prologue is.
#[repr(C)]
pub struct Enter {
    began: usize,
    cont: usize,
}

/// The exit stub's address: what a live rescue call's return-address slot holds.
fn exit_stub() -> usize {
    // SAFETY: only the address of the stub is taken.
    unsafe { &vmsrs__rescue_exit as *const u8 as usize }
}

/// Words of the entry stub's save area: xmm0-15 (32 words), then r15 ... rax and rflags (16).
const STUB_XMM_WORDS: usize = 32;
const STUB_GPR_WORDS: usize = 16;

/// Internal to the entry stub: begin the user of one call of hook `index`, whose return
/// address is at `ret_slot`, and keep the registers of the call (`regs`: the stub's save area)
/// in the thread's frame.
#[no_mangle]
extern "C" fn vmsrs__rescue_enter(index: usize, ret_slot: *const usize, regs: *const u64) -> Enter {
    let cont = TRAMPOLINE[index % MAX_HOOKS].load(Ordering::Acquire);
    let plain = Enter { began: 0, cont };
    let Some(rt) = runtime::get() else { return plain };
    thread::with(|t| {
        if t.handler_depth.get() == 0 {
            // A monitored range of a library loaded since (a module, a UDF).
            crate::watch::arm_pending();
        }
        thread::enter_in(t);
        // A call at or above the frame of the one this thread is in means that one was left
        // without returning (longjmp, an exception): it is over.
        if t.rescue.get() != 0 && (ret_slot as usize >= t.rescue_rsp.get() || !slot_intact(t)) {
            abandon(t);
        }
        // Nested calls, and threads that run a linked-mode user, run plainly.
        if t.rescue.get() != 0 || (t.explicit.get() && t.user.get() != 0) {
            thread::leave_in(t);
            return plain;
        }
        let began = user::begin_for_rescue(rt.hv, t);
        if began {
            // SAFETY: the stub passes the address of the caller's return address on its stack.
            let ret = unsafe { *ret_slot };
            // The frame first: from the moment `rescue` is set a fault (even in a handler of
            // a signal that arrives then) may unwind to it.
            let frame = t.rescue_frame.get() as *mut u64;
            // SAFETY: `regs` is the stub's save area on this thread's stack (STUB_XMM_WORDS +
            // STUB_GPR_WORDS words); the frame is this thread's, FRAME_WORDS long: general
            // registers first, then xmm0-15.
            unsafe {
                core::ptr::copy_nonoverlapping(regs.add(STUB_XMM_WORDS), frame, STUB_GPR_WORDS);
                core::ptr::copy_nonoverlapping(regs, frame.add(STUB_GPR_WORDS), STUB_XMM_WORDS);
            }
            t.rescue_ret.set(ret);
            t.rescue_rsp.set(ret_slot as usize);
            t.rescue_in_flight.set(false);
            t.rescue_handler_depth.set(t.handler_depth.get());
            // SAFETY: as above; the call now returns through the exit stub. Before `rescue` is
            // set: from then on the slot holding the stub's address is how a live call is told
            // from one left by longjmp (`active`).
            unsafe { *(ret_slot as *mut usize) = exit_stub() };
            t.rescue.set(index as u32 + 1);
            crate::locks::arm();
        }
        thread::leave_in(t);
        Enter { began: began as usize, cont }
    })
}

/// Where the exit stub keeps rax among the registers it saved (r15 first ... rax, rflags).
const SAVED_RAX: usize = 14;

/// What the exit stub gets back (in rax:rdx): the caller's return address, and whether the
/// call throws instead of returning (0: it returns; else the hook's index + 1).
#[repr(C)]
pub struct Leave {
    ret: usize,
    throw: usize,
}

/// Internal to the exit stub: the call returned (`regs`: the registers the stub saved); end
/// its user and give back the caller's return address. A user that faulted and ran on in
/// suppression mode (oblivious) reaches its end point here: the call returns RETVAL (or
/// throws), so its caller is told it failed (G4), as when it is unwound.
#[no_mangle]
extern "C" fn vmsrs__rescue_leave(regs: *mut u64) -> Leave {
    thread::with(|t| {
        thread::enter_in(t);
        let ret = t.rescue_ret.get();
        let index = (t.rescue.get() as usize).saturating_sub(1) % MAX_HOOKS;
        let mut throw = 0;
        if user::end_for_rescue(t) {
            throw = if THROWS[index].load(Ordering::Acquire) { index + 1 } else { 0 };
            // SAFETY: `regs` is the exit stub's save area on this thread's stack.
            unsafe { *regs.add(SAVED_RAX) = RETVAL[index].load(Ordering::Acquire) as u64 };
        }
        t.rescue.set(0);
        thread::leave_in(t);
        Leave { ret, throw }
    })
}

/// Internal to the landing: the call was unwound; end (collect) its user, put the caller's
/// return address and the call's value in the frame, and give the frame back.
// (It also releases the locks the call took: `locks::release_armed`.)
#[no_mangle]
extern "C" fn vmsrs__rescue_unwound() -> *const u64 {
    thread::with(|t| {
        thread::enter_in(t);
        let index = (t.rescue.get() as usize).saturating_sub(1) % MAX_HOOKS;
        user::end_for_rescue(t);
        t.rescue.set(0);
        let frame = t.rescue_frame.get();
        // SAFETY: the thread's own frame; nothing else touches it now.
        unsafe {
            (*frame)[F_RET] = t.rescue_ret.get() as u64;
            (*frame)[F_VALUE] = RETVAL[index].load(Ordering::Acquire) as u64;
            (*frame)[F_THROW] = if THROWS[index].load(Ordering::Acquire) { index as u64 + 1 } else { 0 };
        }
        thread::leave_in(t);
        crate::locks::release_armed();
        frame as *const u64
    })
}

/// The rescue call this thread was in was left without returning through the exit stub
/// (longjmp, an exception): end its user (as it ended: committed, or collected if it had
/// faulted) and forget the frame.
fn abandon(t: &thread::ThreadState) {
    user::end_for_rescue(t);
    t.rescue.set(0);
}

/// Is this thread inside a rescue call it could be unwound to, from code running at stack
/// pointer `sp`? (Code of the call runs at or below the slot of its return address; a frame
/// whose slot is below `sp` was left without returning, see [`abandon`]. So was one whose slot
/// no longer holds the exit stub's address while no exception is in flight: the call was left
/// by longjmp and later frames reused its stack, even if the fault is deeper down.)
pub fn active(sp: usize) -> bool {
    thread::with(|t| {
        if t.rescue.get() != 0 && (sp > t.rescue_rsp.get() || !slot_intact(t)) {
            thread::enter_in(t);
            abandon(t);
            thread::leave_in(t);
        }
        t.rescue.get() != 0
    })
}

/// Does the rescue call's return-address slot still hold the exit stub's address (or the
/// caller's, while an exception is unwound through it)? Async-signal-safe.
fn slot_intact(t: &thread::ThreadState) -> bool {
    // SAFETY: the slot is a word of this thread's stack, above the current frame (callers
    // check `sp <= rescue_rsp` first or are on the call's own stack).
    let held = unsafe { *(t.rescue_rsp.get() as *const usize) };
    held == exit_stub() || (t.rescue_in_flight.get() && held == t.rescue_ret.get())
}

/// An exception is about to unwind this thread's stack (the interposed
/// `_Unwind_RaiseException` and `_Unwind_Resume_or_Rethrow`): the unwinder cannot step
/// through the exit stub, so the call gets its real return address back while the exception
/// is in flight. Its user goes on: [`handler_found`] decides, once the search phase has found
/// the catching frame, whether the call goes on (re-armed) or is left (its user ends).
pub fn before_exception() {
    thread::with(|t| {
        if t.rescue.get() == 0 {
            return;
        }
        thread::enter_in(t);
        if t.rescue_rsp.get() <= current_sp() || !slot_intact(t) {
            // A frame left earlier (longjmp): nothing to restore into dead stack.
            abandon(t);
        } else {
            // SAFETY: the call is on the stack and its slot holds the exit stub's address.
            unsafe { *(t.rescue_rsp.get() as *mut usize) = t.rescue_ret.get() };
            t.rescue_in_flight.set(true);
        }
        thread::leave_in(t);
    })
}

/// The stack pointer of code running now on this thread (an address in the current frame).
#[inline(always)]
fn current_sp() -> usize {
    let here = 0u8;
    &here as *const u8 as usize
}

/// The search phase of an exception in flight found the frame that catches it (the
/// interposed `__gxx_personality_v0`); `sp` is that frame's stack pointer at its call site
/// (libgcc's `_Unwind_GetCFA` of the context handed to the personality routine). Below the
/// call's return-address slot (the hooked function or a frame it called): the exception stays
/// inside, and the call goes on; the exit stub goes back in its slot at once, since neither
/// phase of this exception's unwinding goes past the catching frame. Above (the caller, whose
/// stack pointer at the call is just above the slot, or further up): the exception leaves the
/// call, whose user ends now as if it had returned (its slot keeps the caller's address for
/// the unwinder).
pub fn handler_found(sp: usize) {
    thread::with(|t| {
        if t.rescue.get() == 0 || !t.rescue_in_flight.get() {
            return;
        }
        thread::enter_in(t);
        t.rescue_in_flight.set(false);
        if sp <= t.rescue_rsp.get() {
            // SAFETY: the call is on the stack (the catching frame is inside it).
            unsafe { *(t.rescue_rsp.get() as *mut usize) = exit_stub() };
        } else {
            abandon(t);
        }
        thread::leave_in(t);
    })
}

/// A `longjmp` to `env` is about to be taken (the interposed longjmp family). A rescue call
/// whose frame lies below where it lands is left: its user ends (as if it had returned), and
/// the program signal handlers running below that point are left too.
///
/// # Safety
/// `env` is a glibc `jmp_buf` filled by `setjmp`.
pub unsafe fn before_longjmp(env: *const u64) {
    // SAFETY: the contract; see `jmp_buf_sp`.
    let target = unsafe { jmp_buf_sp(env) };
    thread::with(|t| {
        thread::enter_in(t);
        if t.rescue.get() != 0 && target > t.rescue_rsp.get() {
            t.rescue_in_flight.set(false);
            abandon(t);
        }
        let marks = t.handler_frames.get();
        let depth = t.handler_depth.get();
        if let Some(i) = (0..(depth as usize).min(thread::HANDLER_MARKS)).find(|&i| marks[i] < target) {
            t.handler_depth.set(i as u32);
        }
        thread::leave_in(t);
    })
}

/// The stack pointer a glibc `jmp_buf` resumes at. glibc keeps it (word 6 of the buffer)
/// mangled with the thread's pointer guard (`PTR_MANGLE` on x86-64: xor with the guard at
/// `%fs:0x30`, then rotate left by 17).
///
/// # Safety
/// `env` is a `jmp_buf` filled by glibc's `setjmp` on this thread's process.
unsafe fn jmp_buf_sp(env: *const u64) -> usize {
    let guard: u64;
    // SAFETY: reads the pointer guard from the thread control block (glibc's tcbhead_t).
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0x30]", out(reg) guard, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: the buffer holds 8 words of registers (the contract).
    let mangled = unsafe { *env.add(6) };
    (mangled.rotate_right(17) ^ guard) as usize
}

/// A forced unwind (the interposed `pthread_exit`) is about to unwind this thread's stack to
/// its end: the call gets its real return address
/// back, so the destructors and cleanups of its caller's frames run, and its user ends now.
pub fn before_forced_unwind() {
    thread::with(|t| {
        if t.rescue.get() == 0 {
            return;
        }
        thread::enter_in(t);
        if slot_intact(t) && t.rescue_rsp.get() > current_sp() {
            // SAFETY: the call is on the stack and its slot holds the exit stub's address.
            unsafe { *(t.rescue_rsp.get() as *mut usize) = t.rescue_ret.get() };
        }
        t.rescue_in_flight.set(false);
        abandon(t);
        thread::leave_in(t);
    })
}

/// Make the interrupted context of a signal continue at the rescue landing, as if the
/// hooked call had returned. Async-signal-safe.
///
/// # Safety
/// `uc` is the context of the current signal, delivered to this thread, and [`active`].
pub unsafe fn unwind_context(uc: *mut libc::ucontext_t) {
    let (rsp, mask) = unwound_handlers();
    // SAFETY: the context belongs to this signal; the landing restores the other registers.
    unsafe {
        let g = &mut (*uc).uc_mcontext.gregs;
        g[libc::REG_RSP as usize] = rsp as i64;
        g[libc::REG_RIP as usize] = &vmsrs__rescue_landing as *const u8 as i64;
        if let Some(bits) = mask {
            (*uc).uc_sigmask = crate::fault::chain::bits_to_mask(bits);
        }
    }
}

/// The landing's stack pointer, and the signal mask to restore: program signal handlers that
/// began inside the call are unwound with it, so the mask goes back to the one of the code the
/// outermost of them interrupted (None: no handler is unwound, the mask stays).
fn unwound_handlers() -> (usize, Option<u64>) {
    thread::with(|t| {
        let (inside, now) = (t.rescue_handler_depth.get(), t.handler_depth.get());
        let mask = (now > inside && (inside as usize) < thread::HANDLER_MARKS)
            .then(|| t.handler_masks.get()[inside as usize]);
        t.handler_depth.set(inside.min(now));
        (t.rescue_rsp.get() + 8, mask)
    })
}

/// Unwind to the rescue landing from normal context (no signal frame). Never returns.
///
/// # Safety
/// [`active`], and no frame between here and the hooked call holds a value with a destructor
/// or a lock.
pub unsafe fn resume() -> ! {
    let (rsp, mask) = unwound_handlers();
    if let Some(bits) = mask {
        let set = crate::fault::chain::bits_to_mask(bits);
        // SAFETY: a local set; pthread_sigmask is async-signal-safe.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, core::ptr::null_mut()) };
    }
    // SAFETY: continues at the landing on the caller's stack at the hooked call (contract).
    unsafe { vmsrs__rescue_resume(rsp) }
}

// ----- installing hooks ----------------------------------------------------------------------

const PAGE: usize = 4096;
const RTLD_DL_SYMENT: libc::c_int = 1;
/// Bytes of the patch: `jmp rel32`.
const PATCH: usize = 5;

/// If a rescue point hooks the function at `start`: (where its own code goes on after the
/// moved prologue, where the relocated prologue is). Its first bytes are the hook's jump
/// now, and what follows up to the resume point is never run. Async-signal-safe.
pub fn hooked_prologue(start: usize) -> Option<(usize, usize)> {
    let n = NHOOKS.load(Ordering::Acquire).min(MAX_HOOKS);
    (0..n)
        .find(|&i| HOOKED[i].load(Ordering::Acquire) == start)
        .map(|i| (start + MOVED[i].load(Ordering::Relaxed), TRAMPOLINE[i].load(Ordering::Relaxed)))
}

/// Install a rescue point on `symbol` (a dynamic symbol of the executable or a loaded
/// library), whose faulted calls end as `on_fault` says. Call only while the process has one
/// thread (the constructor). The error says why the symbol cannot be hooked.
pub fn install(symbol: &str, on_fault: OnFault) -> Result<(), String> {
    let index = NHOOKS.load(Ordering::Relaxed);
    if index == MAX_HOOKS {
        return Err(format!("at most {MAX_HOOKS} user calls can be hooked"));
    }
    let (retval, throws) = match on_fault {
        OnFault::Return(v) => (v, false),
        OnFault::Throw => (0, true),
    };
    // SAFETY: looks symbols up with dlsym; no other thread runs yet.
    if throws && unsafe { vmsrs__rescue_throw_init() } != 0 {
        return Err("`throw` needs the C++ runtime (libstdc++: __cxa_throw, std::runtime_error), \
                    which this process has not loaded"
            .to_owned());
    }
    let cname = std::ffi::CString::new(symbol).map_err(|_| "the name contains a NUL byte".to_owned())?;
    // SAFETY: dlsym on a NUL-terminated name; RTLD_DEFAULT searches the global scope.
    let target = unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) } as usize;
    if target == 0 {
        return Err("no loaded object defines it in its dynamic symbol table".to_owned());
    }
    let size = symbol_size(target).ok_or("its dynamic symbol has no size, so the patch cannot be checked")?;
    // SAFETY: `size` bytes of the function's text are mapped (it is a defined function).
    let body = unsafe { core::slice::from_raw_parts(target as *const u8, size) };
    let prologue = relocatable_prologue(body, target as u64)?;
    let len = prologue.iter().map(|i| i.len()).sum::<usize>();
    let page = near_page(target).ok_or("no free page within ±2 GiB of it for the trampoline")?;

    // Page layout: thunk (push index; jmp [rip]; address) at 0, trampoline at 64. The thunk
    // touches no register: compilers may rely on what the hooked function leaves alone.
    let thunk = page;
    let tramp = page + 64;
    let mut block: Vec<Instruction> = prologue.clone();
    block.push(
        Instruction::with_branch(Code::Jmp_rel32_64, target as u64 + len as u64)
            .map_err(|e| e.to_string())?,
    );
    let encoded =
        BlockEncoder::encode(64, InstructionBlock::new(&block, tramp as u64), BlockEncoderOptions::NONE)
            .map_err(|e| format!("its prologue cannot be relocated: {e}"))?;
    if 64 + encoded.code_buffer.len() > PAGE {
        return Err("its relocated prologue does not fit the trampoline page".to_owned());
    }
    let mut code = [0xCCu8; 64];
    code[0] = 0x68; // push imm32
    code[1..5].copy_from_slice(&(index as u32).to_le_bytes());
    code[5] = 0xFF; // jmp qword ptr [rip + 0]
    code[6] = 0x25;
    code[7..11].copy_from_slice(&0u32.to_le_bytes());
    // SAFETY: the address of our own entry stub.
    let entry = unsafe { &vmsrs__rescue_entry as *const u8 as u64 };
    code[11..19].copy_from_slice(&entry.to_le_bytes());
    // SAFETY: `page` is a fresh private RW mapping of one page that we own.
    unsafe {
        core::ptr::copy_nonoverlapping(code.as_ptr(), thunk as *mut u8, 64);
        core::ptr::copy_nonoverlapping(
            encoded.code_buffer.as_ptr(),
            tramp as *mut u8,
            encoded.code_buffer.len(),
        );
        if libc::mprotect(page as *mut libc::c_void, PAGE, libc::PROT_READ | libc::PROT_EXEC) != 0 {
            return Err("the trampoline page cannot be made executable".to_owned());
        }
    }
    TRAMPOLINE[index].store(tramp, Ordering::Release);
    HOOKED[index].store(target, Ordering::Release);
    MOVED[index].store(len, Ordering::Release);
    RETVAL[index].store(retval, Ordering::Release);
    THROWS[index].store(throws, Ordering::Release);
    if throws {
        let what = format!("vmsrs: {symbol} faulted; libvmsrs contained the fault and ended the call");
        let what = std::ffi::CString::new(what).map_err(|_| "the name contains a NUL byte".to_owned())?;
        MESSAGE[index].store(what.into_raw(), Ordering::Release);
    }
    NHOOKS.store(index + 1, Ordering::Release);

    let rel = thunk as i64 - (target as i64 + PATCH as i64);
    let rel = i32::try_from(rel).map_err(|_| "the trampoline is out of jump range".to_owned())?;
    let mut patch = [0x90u8; 16];
    patch[0] = 0xE9;
    patch[1..5].copy_from_slice(&rel.to_le_bytes());
    // The rest of the relocated instructions' bytes become int3 (never executed).
    for b in patch.iter_mut().take(len).skip(PATCH) {
        *b = 0xCC;
    }
    write_text(target, &patch[..len])
}

/// The size of the dynamic symbol defined at `addr`.
fn symbol_size(addr: usize) -> Option<usize> {
    // SAFETY: zeroed Dl_info is a valid out-value.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let mut sym: *const libc::Elf64_Sym = core::ptr::null();
    // SAFETY: dladdr1 writes the info and a pointer to the symbol's table entry.
    let ok = unsafe {
        libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            &mut sym as *mut *const libc::Elf64_Sym as *mut *mut libc::c_void,
            RTLD_DL_SYMENT,
        )
    } != 0;
    if !ok || sym.is_null() || info.dli_saddr as usize != addr {
        return None;
    }
    // SAFETY: the loader's symbol table entry for this symbol.
    let size = unsafe { (*sym).st_size } as usize;
    (size > 0).then_some(size)
}

/// The instructions covering the first `PATCH` bytes of the function `body` (at `ip`), if
/// they can be moved: nothing in them ends the function, and no branch of the function
/// targets the bytes the patch overwrites.
fn relocatable_prologue(body: &[u8], ip: u64) -> Result<Vec<Instruction>, String> {
    let mut decoder = Decoder::with_ip(64, body, ip, DecoderOptions::NONE);
    let mut prologue = Vec::new();
    let mut len = 0usize;
    while len < PATCH {
        if !decoder.can_decode() {
            return Err(format!("the function is shorter than the {PATCH}-byte patch"));
        }
        let ins = decoder.decode();
        if ins.is_invalid() {
            return Err(format!("undecodable bytes at offset {len} of its prologue"));
        }
        match ins.flow_control() {
            FlowControl::Next | FlowControl::Call | FlowControl::ConditionalBranch => {}
            _ if len + ins.len() >= PATCH && ins.flow_control() == FlowControl::UnconditionalBranch => {}
            other => return Err(format!("its prologue ends or leaves the function early ({other:?})")),
        }
        len += ins.len();
        prologue.push(ins);
    }
    // Every branch in the function must land outside the overwritten bytes (ip, ip + len).
    let mut ins = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.is_invalid() {
            continue;
        }
        if matches!(
            ins.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch | FlowControl::Call
        ) {
            let t = ins.near_branch_target();
            if t > ip && t < ip + len as u64 {
                return Err(format!("a branch at {:#x} targets the bytes the patch overwrites", ins.ip()));
            }
        }
    }
    Ok(prologue)
}

/// A fresh RW page within ±1.5 GiB of `near`, below it first (above an executable its heap
/// grows): room for a trampoline that a `jmp rel32` at `near` reaches (rescue points,
/// `watch::patch`).
pub(crate) fn near_page(near: usize) -> Option<usize> {
    let step = 1usize << 20;
    let span = 3usize << 29;
    let base = near & !(PAGE - 1);
    let mut off = step;
    while off < span {
        for cand in [base.checked_sub(off), base.checked_add(off)].into_iter().flatten() {
            // SAFETY: a hinted private anonymous mapping that must not replace anything.
            let p = unsafe {
                libc::mmap(
                    cand as *mut libc::c_void,
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p as usize == cand {
                return Some(cand);
            }
            if p != libc::MAP_FAILED {
                // A kernel before 4.17 took the address as a hint only.
                // SAFETY: the mapping just made.
                unsafe { libc::munmap(p, PAGE) };
            }
        }
        off += step;
    }
    None
}

/// Write `bytes` over text at `addr` under W^X: each page is made writable and not
/// executable, written, and made executable and not writable again.
fn write_text(addr: usize, bytes: &[u8]) -> Result<(), String> {
    let first = addr & !(PAGE - 1);
    let last = (addr + bytes.len() - 1) & !(PAGE - 1);
    let span = last + PAGE - first;
    // SAFETY: the pages hold the function's text (mapped); only their protection changes.
    if unsafe { libc::mprotect(first as *mut libc::c_void, span, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
        return Err(format!("its text cannot be made writable: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the bytes lie in the pages just made writable; no other thread runs yet.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
    // SAFETY: as above.
    if unsafe { libc::mprotect(first as *mut libc::c_void, span, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
        return Err(format!("its text cannot be made executable again: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
