//! Property checks of the instruction-skip planner [`decode::plan`], shared by the fuzz target
//! `skip_planner` and the corpus replay test `tests/skip_planner_corpus.rs`, which include this
//! file by path. [`check_plan`] returns normally when every property holds and panics, naming
//! the bytes, when one fails:
//!
//! - `plan` never panics, and gives the same plan wherever the bytes sit (three `rip`s);
//! - it plans a skip exactly when iced-x86, decoding the same bytes on its own in 64-bit mode,
//!   finds a valid instruction, and the skip is that instruction's length (1..=15, within the
//!   bytes): the thread never resumes in the middle of an instruction;
//! - the registers it zeroes are plausible: GPR number < 16 and never RSP (4), `ah`..`bh`
//!   only as numbers 0..=3, vector number < 32 with `from < to <= 64`, mm/k number < 8, and
//!   the unused slot last;
//! - after one warm-up call, `plan` performs no allocation (it runs in a signal handler).
//!
//! Allocation counting: the `vmsrs` crate's global allocator calls glibc's `__libc_malloc`
//! family by name. This file defines those symbols in the including executable (which the
//! static linker prefers to libc.so's), counts calls made while [`count_allocations`] runs on
//! the calling thread, and forwards to `malloc`/`calloc`/`realloc`/`memalign`/`free`, a
//! consistent allocator (glibc's, or the sanitizer's in a fuzz build).

// Each includer uses only some of the checks.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use iced_x86::{Decoder, DecoderOptions};
use vmsrs_runtime::fault::decode::{self, GprWidth, Reg, MAX_INSN_LEN};

/// Where the bytes are taken to sit: a typical text address, 0 and the top of the address space.
pub const RIPS: [u64; 3] = [0x5555_5555_9000, 0, u64::MAX - 3];

/// The planner properties for `code` at the faulting pc (see the module documentation).
pub fn check_plan(code: &[u8]) {
    warm_up();
    let (plan, allocations) = count_allocations(|| decode::plan(code, RIPS[0]));
    assert_eq!(
        allocations, 0,
        "{code:02x?}: plan() called the allocator {allocations} time(s) after warm-up"
    );
    for rip in &RIPS[1..] {
        assert_eq!(decode::plan(code, *rip), plan, "{code:02x?}: the plan at {rip:#x} differs");
    }
    let mut decoder = Decoder::try_with_ip(64, code, RIPS[0], DecoderOptions::NONE).expect("64-bit decoder");
    let ins = decoder.decode();
    let Some(plan) = plan else {
        assert!(
            ins.is_invalid(),
            "{code:02x?}: iced decodes {:?} ({} bytes), no plan",
            ins.code(),
            ins.len()
        );
        return;
    };
    assert!(!ins.is_invalid(), "{code:02x?}: iced finds no instruction, but {plan:?}");
    assert_eq!(usize::from(plan.len), ins.len(), "{code:02x?}: {:?}, but {plan:?}", ins.code());
    assert!((1..=MAX_INSN_LEN).contains(&usize::from(plan.len)), "{code:02x?}: {plan:?}");
    assert!(usize::from(plan.len) <= code.len(), "{code:02x?}: {plan:?} skips past the bytes");
    for reg in plan.zero {
        assert!(plausible(reg), "{code:02x?}: {:?} gives {plan:?}, which zeroes {reg:?}", ins.code());
    }
    assert!(plan.zero[0] != Reg::None || plan.zero[1] == Reg::None, "{code:02x?}: {plan:?}");
}

/// A register effect the signal-frame editor can apply without harm.
fn plausible(reg: Reg) -> bool {
    match reg {
        Reg::Gpr { num, width: GprWidth::High8 } => num < 4,
        Reg::Gpr { num, .. } => num < 16 && num != 4,
        Reg::Vec { num, from, to } => num < 32 && from < to && to <= 64,
        Reg::Mm(num) | Reg::K(num) => num < 8,
        Reg::None | Reg::X87Push | Reg::X87Pop => true,
    }
}

/// Allocator calls the first `plan` call made (iced-x86 builds its decoder tables lazily).
pub fn warm_up() -> usize {
    static WARM: Once = Once::new();
    static FIRST_CALL: AtomicUsize = AtomicUsize::new(0);
    WARM.call_once(|| {
        let (_, seen) = count_allocations(|| std::hint::black_box(Box::new(7u8)));
        assert!(
            seen > 0,
            "the allocation counter misses allocations: the no-allocation check would be vacuous"
        );
        let (_, first) = count_allocations(|| decode::plan(&[0x90], RIPS[0]));
        eprintln!("skip planner: the first plan() call made {first} allocator call(s)");
        FIRST_CALL.store(first, Ordering::Relaxed);
    });
    FIRST_CALL.load(Ordering::Relaxed)
}

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATOR_CALLS: Cell<usize> = const { Cell::new(0) };
}

/// Run `f`, counting the allocator calls (allocation, reallocation, free) it makes on this
/// thread.
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATOR_CALLS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    (result, ALLOCATOR_CALLS.with(Cell::get))
}

fn note_allocator_call() {
    // try_with: never panics inside the allocator, even while the thread is being torn down.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATOR_CALLS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

#[no_mangle]
extern "C" fn __libc_malloc(size: libc::size_t) -> *mut libc::c_void {
    note_allocator_call();
    // SAFETY: plain call into the process's allocator.
    unsafe { libc::malloc(size) }
}

#[no_mangle]
extern "C" fn __libc_calloc(n: libc::size_t, size: libc::size_t) -> *mut libc::c_void {
    note_allocator_call();
    // SAFETY: plain call into the process's allocator.
    unsafe { libc::calloc(n, size) }
}

#[no_mangle]
extern "C" fn __libc_memalign(align: libc::size_t, size: libc::size_t) -> *mut libc::c_void {
    note_allocator_call();
    // SAFETY: plain call into the process's allocator.
    unsafe { libc::memalign(align, size) }
}

#[no_mangle]
extern "C" fn __libc_realloc(ptr: *mut libc::c_void, size: libc::size_t) -> *mut libc::c_void {
    note_allocator_call();
    // SAFETY: every `__libc_*` allocation in this executable comes from the forwards here, so
    // `ptr` is null or came from this allocator, as realloc requires.
    unsafe { libc::realloc(ptr, size) }
}

#[no_mangle]
extern "C" fn __libc_free(ptr: *mut libc::c_void) {
    note_allocator_call();
    // SAFETY: as for `__libc_realloc`, `ptr` is null or came from this allocator.
    unsafe { libc::free(ptr) }
}
