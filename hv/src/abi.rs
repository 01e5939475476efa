//! The hypercall ABI: the one place where hypercall numbers, the register frame and the
//! status codes are defined. Every host (in-process, process, trap) speaks this ABI, and the
//! C error codes of `vmsrs.h` are generated from [`VmsrsError`].
//!
//! Calling convention (as for a `vmmcall` under an SVM hypervisor): the hypercall number is in
//! `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`; the status comes back in `rax`.

/// Stable, numbered status codes. Zero is success; negative values are errors; the only
/// positive value is `VMSRS_FAULTED`, which reports a user that faulted.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmsrsError {
    /// Success.
    VMSRS_OK = 0,
    /// The user faulted: it was suppressed and its writes were withdrawn.
    VMSRS_FAULTED = 1,
    /// A required pointer argument was NULL.
    VMSRS_ENULL = -1,
    /// A length argument was zero where a range is required.
    VMSRS_EZEROLEN = -2,
    /// The library was used before `vmsrs_init_profile`.
    VMSRS_EUNINIT = -3,
    /// `vmsrs_init_profile` was called a second time; the first configuration stays.
    VMSRS_EALREADY = -4,
    /// The range overlaps (or duplicates) a profiled range.
    VMSRS_EOVERLAP = -5,
    /// The address is not the start of a profiled range.
    VMSRS_ENOTPROFILED = -6,
    /// `vmsrs_user_end` without a matching `vmsrs_user_begin` on this thread.
    VMSRS_ENOUSER = -7,
    /// `vmsrs_user_begin` while this thread already runs an explicit user.
    VMSRS_EINUSER = -8,
    /// A fixed table (users, ranges, exposures) is full.
    VMSRS_ETOOMANY = -9,
    /// The recovery store could not map memory.
    VMSRS_ENOMEM = -10,
    /// The configuration (environment file, variables, or `VMSRS_OPTIONS`) is invalid.
    VMSRS_ECONFIG = -11,
    /// An argument is out of its documented domain.
    VMSRS_EINVAL = -12,
    /// A pointer left its allocation or profiled range; the current user is now faulted.
    VMSRS_ERANGE = -13,
    /// Recovery data failed its integrity check; it was reported and not restored from.
    VMSRS_ECORRUPT = -14,
    /// The environment file could not be read.
    VMSRS_EIO = -15,
    /// An internal error (a caught panic); no recovery data was changed.
    VMSRS_EINTERNAL = -16,
    /// The requested feature or host is not available in this build.
    VMSRS_ENOTSUP = -17,
    /// No fault has been recorded yet.
    VMSRS_ENOFAULT = -18,
    /// The range is not mapped, readable and writable memory.
    VMSRS_EBADRANGE = -19,
    /// A pointer argument could not be accessed. For the monitored-access, memory and output
    /// functions that is a memory error of the calling user, which is now faulted
    /// (suppressed) as if it had made the access itself; elsewhere nothing happened.
    VMSRS_EFAULT = -20,
}

impl VmsrsError {
    /// The code as it crosses the C boundary.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// Every code, for tables and tests.
    pub fn all() -> &'static [VmsrsError] {
        &ALL_CODES
    }

    /// Decode a status; unknown values are `None`.
    pub fn from_code(code: i32) -> Option<Self> {
        ALL_CODES.iter().copied().find(|e| e.code() == code)
    }

    /// A static, NUL-terminated description (for `vmsrs_strerror`).
    pub const fn message(self) -> &'static str {
        match self {
            Self::VMSRS_OK => "success\0",
            Self::VMSRS_FAULTED => "the user faulted and was suppressed; its writes were withdrawn\0",
            Self::VMSRS_ENULL => "a required pointer argument is NULL\0",
            Self::VMSRS_EZEROLEN => "a length argument is zero\0",
            Self::VMSRS_EUNINIT => "libvmsrs is not initialised: call vmsrs_init_profile first\0",
            Self::VMSRS_EALREADY => "vmsrs_init_profile was already called; the first configuration stays\0",
            Self::VMSRS_EOVERLAP => "the range overlaps a profiled range\0",
            Self::VMSRS_ENOTPROFILED => "the address is not the start of a profiled range\0",
            Self::VMSRS_ENOUSER => "no user was begun on this thread\0",
            Self::VMSRS_EINUSER => "this thread already runs a user\0",
            Self::VMSRS_ETOOMANY => "a fixed table (users, ranges or exposures) is full\0",
            Self::VMSRS_ENOMEM => "the recovery store could not map memory\0",
            Self::VMSRS_ECONFIG => "invalid libvmsrs configuration\0",
            Self::VMSRS_EINVAL => "an argument is out of its documented domain\0",
            Self::VMSRS_ERANGE => "a pointer left its allocation or profiled range; the user is faulted\0",
            Self::VMSRS_ECORRUPT => "recovery data failed its integrity check and was not restored from\0",
            Self::VMSRS_EIO => "the environment file could not be read\0",
            Self::VMSRS_EINTERNAL => "internal error in libvmsrs (no recovery data was changed)\0",
            Self::VMSRS_ENOTSUP => "not supported by this build or host\0",
            Self::VMSRS_ENOFAULT => "no fault has been recorded\0",
            Self::VMSRS_EBADRANGE => "the range is not mapped, readable and writable memory\0",
            Self::VMSRS_EFAULT => "a pointer argument could not be accessed (for access, memory and output calls, the calling user is now faulted)\0",
        }
    }
}

const ALL_CODES: [VmsrsError; 22] = [
    VmsrsError::VMSRS_OK,
    VmsrsError::VMSRS_FAULTED,
    VmsrsError::VMSRS_ENULL,
    VmsrsError::VMSRS_EZEROLEN,
    VmsrsError::VMSRS_EUNINIT,
    VmsrsError::VMSRS_EALREADY,
    VmsrsError::VMSRS_EOVERLAP,
    VmsrsError::VMSRS_ENOTPROFILED,
    VmsrsError::VMSRS_ENOUSER,
    VmsrsError::VMSRS_EINUSER,
    VmsrsError::VMSRS_ETOOMANY,
    VmsrsError::VMSRS_ENOMEM,
    VmsrsError::VMSRS_ECONFIG,
    VmsrsError::VMSRS_EINVAL,
    VmsrsError::VMSRS_ERANGE,
    VmsrsError::VMSRS_ECORRUPT,
    VmsrsError::VMSRS_EIO,
    VmsrsError::VMSRS_EINTERNAL,
    VmsrsError::VMSRS_ENOTSUP,
    VmsrsError::VMSRS_ENOFAULT,
    VmsrsError::VMSRS_EBADRANGE,
    VmsrsError::VMSRS_EFAULT,
];

/// The one positive status besides `VMSRS_FAULTED`, internal to the hypercall ABI (never a
/// C return value): a load by no user (`rdi`=0) that asked (`r8`=1) read bytes of an active
/// user while exposures are tracked. G8 must report that reader if the writer faults, so the
/// caller becomes its thread's implicit user and makes the load again; the first load's
/// bytes are not used and it recorded nothing.
pub const READER_NEEDED: u64 = 2;

/// Result type of the recovery store.
pub type HvResult<T> = Result<T, VmsrsError>;

/// Hypercall numbers (in `rax`). Numbers are stable; new calls get new numbers.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypercall {
    /// `rdi`=addr, `rsi`=len, `rdx`=name ptr (or 0), `r10`=name len → range id.
    Profile = 1,
    /// `rdi`=addr.
    Unprofile = 2,
    /// → user id.
    UserBegin = 3,
    /// `rdi`=user → 0 (committed) or `VMSRS_FAULTED` (faulted, cleaned up).
    UserEnd = 4,
    /// `rdi`=user, `rsi`=dst, `rdx`=src buffer, `r10`=len: monitored store.
    Store = 5,
    /// `rdi`=user, `rsi`=src, `rdx`=dst buffer, `r10`=len, `r8`=ask: monitored load. With
    /// `rdi`=0 and `r8`=1, under exposure tracking, a load that read an active user's bytes
    /// answers [`READER_NEEDED`] instead of going unrecorded.
    Load = 6,
    /// `rdi`=user, `rsi`=signal or kind, `rdx`=fault address, `r10`=pc: enter suppression.
    CrashSuppression = 7,
    /// `rdi`=addr, `rsi`=len: restore polluted granules (demand restoration of a range).
    Restore = 8,
    /// `rdi`=user → 1 if the user is faulted, 0 if active.
    UserState = 9,
    /// `rdi`=dst, `rsi`=byte, `rdx`=len, `r10`=user: monitored memset.
    Fill = 10,
    /// `rdi`=user, `rsi`=addr, `rdx`=value, `r10`=size (1 to 8): monitored scalar store.
    StoreScalar = 11,
    /// `rdi`=user, `rsi`=addr, `r10`=size (1 to 8), `r8`=ask: monitored scalar load; the
    /// value comes back in `rdx`. `r8` as for [`Hypercall::Load`].
    LoadScalar = 12,
}

impl Hypercall {
    /// Decode `rax`; the raw exit is decoded in exactly this one place.
    pub fn decode(nr: u64) -> Option<Self> {
        Some(match nr {
            1 => Self::Profile,
            2 => Self::Unprofile,
            3 => Self::UserBegin,
            4 => Self::UserEnd,
            5 => Self::Store,
            6 => Self::Load,
            7 => Self::CrashSuppression,
            8 => Self::Restore,
            9 => Self::UserState,
            10 => Self::Fill,
            11 => Self::StoreScalar,
            12 => Self::LoadScalar,
            _ => return None,
        })
    }
}

/// General registers saved at a `#VMEXIT` (the paper's `genrl_regs`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct genrl_regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
}

/// The register frame of one exit (the paper's `vm_frame`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmFrame {
    pub genrl_regs: genrl_regs,
}

impl VmFrame {
    /// A frame for hypercall `nr` with up to six arguments.
    pub fn call(nr: Hypercall, args: [u64; 6]) -> Self {
        VmFrame {
            genrl_regs: genrl_regs {
                rax: nr as u64,
                rdi: args[0],
                rsi: args[1],
                rdx: args[2],
                r10: args[3],
                r8: args[4],
                r9: args[5],
                ..Default::default()
            },
        }
    }

    /// Argument `i` (0-based) by the calling convention.
    pub fn arg(&self, i: usize) -> u64 {
        let r = &self.genrl_regs;
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9][i]
    }

    /// The status the handler left in `rax`, as a signed value.
    pub fn ret(&self) -> i64 {
        self.genrl_regs.rax as i64
    }
}
