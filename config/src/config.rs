//! libvmsrs configuration: every setting, its default, and how the layers combine.
//!
//! Role: produce one validated [`Config`] from, lowest precedence first,
//! 1. the built-in defaults,
//! 2. the environment file (argument of `vmsrs_init_profile`, else `VMSRS_ENV_FILE`),
//! 3. the `VMSRS_*` variables of the process environment,
//! 4. `VMSRS_OPTIONS=k=v:k=v` (keys with or without `VMSRS_`, any case). A `:`-separated piece
//!    without `=` continues the previous value, so `range_0=symbol:buf:64` works.
//!
//! Invariants:
//! - [`KEYS`] is the only place a setting is named: its default, accepted values, description,
//!   parser and printer live in one row. [`Config::default`], validation, [`Config::describe`],
//!   [`reference()`] and [`example_env_file()`] are all derived from it.
//! - A bad *value* is always an error ([`ConfigError::BadValue`]); it is never replaced by a
//!   default. An unknown key is one warning (per key name), which `VMSRS_STRICT=1` turns into an
//!   error. Every message names where the setting came from (`file:line`, `environment`,
//!   `VMSRS_OPTIONS`).
//! - [`ConfigError::code`] is stable: `VMSRS_EIO` (-15) when the environment file could not be
//!   read, `VMSRS_ECONFIG` (-11) for everything else.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::envfile::{self, EnvFileError};

/// Status returned to C when the configuration is invalid (same value as `vmsrs-hv`'s ABI).
pub const VMSRS_ECONFIG: i32 = -11;
/// Status returned to C when the environment file could not be read.
pub const VMSRS_EIO: i32 = -15;

/// Every setting's name starts with this.
pub const PREFIX: &str = "VMSRS_";
/// Names the environment file; read from the process environment only.
pub const ENV_FILE_KEY: &str = "VMSRS_ENV_FILE";
/// Quick overrides, ASan style; read from the process environment only.
pub const OPTIONS_KEY: &str = "VMSRS_OPTIONS";
/// Indexed range keys are this prefix plus a decimal index below [`RANGE_SLOTS`].
pub const RANGE_SLOT_PREFIX: &str = "VMSRS_RANGE_";
/// Number of indexed range keys (`VMSRS_RANGE_0` ..= `VMSRS_RANGE_255`).
pub const RANGE_SLOTS: usize = 256;

/// An enum whose variants are spelled by fixed names in the configuration (case-insensitive).
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in the order the accepted values are listed.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The canonical spelling.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant spelled `text`, ignoring ASCII case.
            pub fn from_name(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(text))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum! {
    /// What a contained fault does to the faulting user's thread (`VMSRS_POLICY`).
    pub enum Policy {
        /// Skip the faulting instruction and run on in suppression mode to the user's end.
        Oblivious = "oblivious",
        /// Unwind to the user's recovery point.
        Unwind = "unwind",
        /// Contain nothing: the plain crash, kept for comparison (handlers stay chained).
        Abort = "abort",
    }
}

named_enum! {
    /// How a monitored range is watched in drop-in mode (`VMSRS_WATCH`, `VMSRS_WATCH_<N>`).
    pub enum Watch {
        /// Page protection with a writable alias: every store to the range's pages traps.
        Page = "page",
        /// A hardware data watchpoint: only stores to the range's own bytes trap (1, 2, 4 or 8
        /// aligned bytes; at most four such ranges).
        Hw = "hw",
        /// Page protection until stores to other data make the range's page hot, then `hw` if
        /// every range on the page is `auto` and fits a watchpoint, and enough are free.
        Auto = "auto",
    }
}

named_enum! {
    /// Whether programs a drop-in process execs keep `LD_PRELOAD=libvmsrs.so` (`VMSRS_CHILDREN`).
    pub enum Children {
        /// Remove libvmsrs from `LD_PRELOAD` at start-up, so exec'd programs run without it.
        Drop = "drop",
        /// Leave `LD_PRELOAD` as it is: exec'd programs load libvmsrs (and this configuration).
        Keep = "keep",
    }
}

/// One user boundary in an unmodified program (`VMSRS_USER_CALL`): each call of `symbol`
/// runs as one user; a call whose user faulted ends as `on_fault` says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserCall {
    pub symbol: String,
    pub on_fault: OnFault,
}

/// How a rescue call whose user faulted tells its caller (the part after `SYMBOL:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnFault {
    /// The call returns this integer or pointer (in rax).
    Return(i64),
    /// The call throws a C++ `std::runtime_error` into its caller (`throw`), for C++ servers
    /// that fail one request by an exception their caller catches.
    Throw,
}

impl fmt::Display for OnFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnFault::Return(v) => write!(f, "{v}"),
            OnFault::Throw => f.write_str("throw"),
        }
    }
}

impl fmt::Display for UserCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.symbol, self.on_fault)
    }
}

named_enum! {
    /// What happens to a normal user that read data of a user that later faulted.
    pub enum ExposurePolicy {
        /// Report the exposure only.
        Report = "report",
        /// Report it and fault the exposed user too.
        Cascade = "cascade",
    }
}

named_enum! {
    /// Where the hypervisor component (the recovery store) runs (`VMSRS_HOST`).
    pub enum Host {
        /// In the server's own process (default, fastest).
        InProc = "inproc",
        /// In a separate `vmsrs-hv` process (isolated).
        Process = "process",
        /// Control operations through the `vmmcall` instruction, caught by a tracer.
        Trap = "trap",
    }
}

named_enum! {
    /// A signal libvmsrs can contain (`VMSRS_SIGNALS`).
    pub enum Signal {
        Segv = "SEGV",
        Bus = "BUS",
        Fpe = "FPE",
        Ill = "ILL",
        Abrt = "ABRT",
    }
}

impl Signal {
    /// The signal number on this platform.
    pub fn number(self) -> i32 {
        match self {
            Self::Segv => libc::SIGSEGV,
            Self::Bus => libc::SIGBUS,
            Self::Fpe => libc::SIGFPE,
            Self::Ill => libc::SIGILL,
            Self::Abrt => libc::SIGABRT,
        }
    }

    /// Parse `SEGV` or `SIGSEGV`, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        let bare = match text.get(..3) {
            Some(sig) if sig.eq_ignore_ascii_case("SIG") => &text[3..],
            _ => text,
        };
        Self::from_name(bare)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Signal`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SignalSet(u8);

impl SignalSet {
    pub const EMPTY: SignalSet = SignalSet(0);

    pub fn contains(self, signal: Signal) -> bool {
        self.0 & signal.bit() != 0
    }

    pub fn insert(&mut self, signal: Signal) {
        self.0 |= signal.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in [`Signal::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL.iter().copied().filter(move |&s| self.contains(s))
    }
}

impl FromIterator<Signal> for SignalSet {
    fn from_iter<I: IntoIterator<Item = Signal>>(iter: I) -> Self {
        let mut set = Self::EMPTY;
        iter.into_iter().for_each(|s| set.insert(s));
        set
    }
}

impl fmt::Display for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iter().map(Signal::name).collect::<Vec<_>>().join(","))
    }
}

/// A monitored range as configured; resolved to addresses by the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RangeSpec {
    /// `symbol:NAME[:LEN]`: the object `NAME`; `len` `None` means the symbol's own size.
    Symbol { name: String, len: Option<usize> },
    /// `module:NAME+OFFSET:LEN`: `len > 0` bytes at `offset` from the load base of the loaded
    /// object whose file name (without directories) is `name` (the executable's included).
    Module { name: String, offset: usize, len: usize },
    /// `ADDR+LEN`: `len > 0` bytes from `addr`; `addr + len` does not overflow.
    Addr { addr: usize, len: usize },
}

impl fmt::Display for RangeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Symbol { name, len: None } => write!(f, "symbol:{name}"),
            Self::Symbol { name, len: Some(len) } => write!(f, "symbol:{name}:{len}"),
            Self::Module { name, offset, len } => write!(f, "module:{name}+{offset:#x}:{len}"),
            Self::Addr { addr, len } => write!(f, "{addr:#x}+{len}"),
        }
    }
}

/// The effective configuration. Built only from [`KEYS`]; see [`Config::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `VMSRS_POLICY`.
    pub policy: Policy,
    /// `VMSRS_SIGNALS`; never empty.
    pub signals: SignalSet,
    /// `VMSRS_FAULT_BUDGET`: skipped faults per user before oblivious escalates to unwind.
    pub fault_budget: u32,
    /// `VMSRS_SAME_PC_LIMIT`: faults at one pc before escalation; at least 1.
    pub same_pc_limit: u32,
    /// `VMSRS_TIME_BUDGET_MS`: after this long since a user's first fault, its faults unwind.
    pub time_budget_ms: u64,
    /// `VMSRS_EXPOSURE`: track and report exposures.
    pub exposure: bool,
    /// `VMSRS_EXPOSURE_POLICY`.
    pub exposure_policy: ExposurePolicy,
    /// `VMSRS_HOST`.
    pub host: Host,
    /// `VMSRS_CONTAIN_IMPLICIT`: contain faults in threads that never began a user.
    pub contain_implicit: bool,
    /// `VMSRS_VERBOSE`: 0 ..= 2.
    pub verbose: u8,
    /// `VMSRS_STRICT`: warnings are fatal.
    pub strict: bool,
    /// `VMSRS_LOG_PATH`: JSON Lines log prefix (absolute).
    pub log_path: Option<PathBuf>,
    /// `VMSRS_METRICS_PATH`: Prometheus textfile (absolute).
    pub metrics_path: Option<PathBuf>,
    /// `VMSRS_METRICS_INTERVAL_MS`: how often the metrics file is rewritten.
    pub metrics_interval_ms: u64,
    /// `VMSRS_USER_CALL`: functions whose calls are users (rescue points).
    pub user_calls: Vec<UserCall>,
    /// `VMSRS_CHILDREN`.
    pub children: Children,
    /// `VMSRS_RANGE_<N>`, by index.
    pub range_slots: BTreeMap<u8, RangeSpec>,
    /// `VMSRS_RANGES`.
    pub ranges: Vec<RangeSpec>,
    /// `VMSRS_WATCH`: how ranges are watched unless their `VMSRS_WATCH_<N>` says.
    pub watch: Watch,
    /// `VMSRS_WATCH_<N>`, by index: how `VMSRS_RANGE_<N>` is watched.
    pub watch_slots: BTreeMap<u8, Watch>,
    /// `VMSRS_PATCH_STORES`: patch hot stores that only share a watched page out of the trap.
    pub watch_patch: bool,
    /// The environment file that was read, if any.
    pub env_file: Option<PathBuf>,
}

impl Config {
    /// Every configured range: the indexed ones by index, then the `VMSRS_RANGES` list.
    pub fn all_ranges(&self) -> impl Iterator<Item = &RangeSpec> {
        self.range_slots.values().chain(&self.ranges)
    }

    /// Every configured range with how it is watched, in [`Config::all_ranges`] order.
    pub fn all_watched_ranges(&self) -> impl Iterator<Item = (&RangeSpec, Watch)> {
        let slots =
            self.range_slots.iter().map(|(i, r)| (r, *self.watch_slots.get(i).unwrap_or(&self.watch)));
        slots.chain(self.ranges.iter().map(|r| (r, self.watch)))
    }

    /// The effective configuration, one `KEY=value` line per setting in [`KEYS`] order (indexed
    /// ranges only when set). Feeding these lines back as environment variables reproduces
    /// `self`.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for spec in KEYS {
            for (key, value) in spec.current(self) {
                text.push_str(&key);
                text.push('=');
                text.push_str(&value);
                text.push('\n');
            }
        }
        text
    }

    /// Starting point that every [`KEYS`] default then overwrites.
    fn unset() -> Self {
        Self {
            policy: Policy::Oblivious,
            signals: SignalSet::EMPTY,
            fault_budget: 0,
            same_pc_limit: 0,
            time_budget_ms: 0,
            exposure: false,
            exposure_policy: ExposurePolicy::Report,
            host: Host::InProc,
            contain_implicit: false,
            verbose: 0,
            strict: false,
            log_path: None,
            metrics_path: None,
            metrics_interval_ms: 0,
            user_calls: Vec::new(),
            children: Children::Drop,
            range_slots: BTreeMap::new(),
            ranges: Vec::new(),
            watch: Watch::Page,
            watch_slots: BTreeMap::new(),
            watch_patch: true,
            env_file: None,
        }
    }
}

impl Default for Config {
    /// The built-in defaults, taken from the `default` column of [`KEYS`].
    fn default() -> Self {
        let mut config = Self::unset();
        for spec in KEYS {
            if let KeyKind::Setting { set, .. } = spec.kind {
                set(&mut config, spec.default).expect("every KEYS default parses (tested)");
            }
        }
        config
    }
}

type Setter = fn(&mut Config, &str) -> Result<(), String>;
type SlotSetter = fn(&mut Config, u8, &str) -> Result<(), String>;

/// How a key is stored and printed.
#[derive(Clone, Copy)]
enum KeyKind {
    /// One value in [`Config`].
    Setting { set: Setter, show: fn(&Config) -> String },
    /// A family `PREFIX<N>`, `N` in `0..RANGE_SLOTS`.
    Slot { set: SlotSetter, show: fn(&Config, u8) -> Option<String> },
    /// Read by [`load`] itself, from the process environment only.
    EnvironmentOnly { show: Option<fn(&Config) -> String> },
}

/// One row of the key table.
pub struct KeySpec {
    /// The key (`VMSRS_RANGE_<N>` for the indexed family).
    pub name: &'static str,
    /// The built-in default, spelled as in a configuration file.
    pub default: &'static str,
    /// The accepted values, for documentation and error messages.
    pub accepted: &'static str,
    pub description: &'static str,
    kind: KeyKind,
}

impl KeySpec {
    /// True for keys read only from the process environment (`VMSRS_ENV_FILE`, `VMSRS_OPTIONS`).
    pub fn environment_only(&self) -> bool {
        matches!(self.kind, KeyKind::EnvironmentOnly { .. })
    }

    /// `VMSRS_RANGE_` for the family `VMSRS_RANGE_<N>`.
    fn slot_prefix(&self) -> &'static str {
        self.name.strip_suffix("<N>").unwrap_or(self.name)
    }

    /// The `(key, value)` lines this row contributes to [`Config::describe`].
    fn current(&self, config: &Config) -> Vec<(String, String)> {
        match self.kind {
            KeyKind::Setting { show, .. } => vec![(self.name.to_owned(), show(config))],
            KeyKind::Slot { show, .. } => (0..=u8::MAX)
                .filter_map(|i| show(config, i).map(|v| (format!("{}{i}", self.slot_prefix()), v)))
                .collect(),
            KeyKind::EnvironmentOnly { show: Some(show) } => vec![(self.name.to_owned(), show(config))],
            KeyKind::EnvironmentOnly { show: None } => Vec::new(),
        }
    }
}

const BOOL_VALUES: &str = "0 | 1 | true | false | yes | no | on | off";

/// The key table: the single definition of every setting.
pub static KEYS: &[KeySpec] = &[
    KeySpec {
        name: "VMSRS_POLICY",
        default: "oblivious",
        accepted: "oblivious | unwind | abort",
        description: "What a contained fault does: oblivious skips the faulting instruction and runs \
                      on in suppression mode; unwind returns to the user's recovery point; abort \
                      contains nothing (the plain crash, for comparison).",
        kind: KeyKind::Setting {
            set: |c, v| parse_named(v, Policy::from_name).map(|x| c.policy = x),
            show: |c| c.policy.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_SIGNALS",
        default: "SEGV,BUS,FPE,ILL",
        accepted: "non-empty comma list of SEGV, BUS, FPE, ILL, ABRT (SIG prefix optional)",
        description: "Signals contained as faults of the current user.",
        kind: KeyKind::Setting {
            set: |c, v| parse_signals(v).map(|x| c.signals = x),
            show: |c| c.signals.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_FAULT_BUDGET",
        default: "64",
        accepted: "decimal integer 0 ..= 4294967295",
        description: "Faults skipped per user under the oblivious policy before it escalates to unwind.",
        kind: KeyKind::Setting {
            set: |c, v| parse_u32(v).map(|x| c.fault_budget = x),
            show: |c| c.fault_budget.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_SAME_PC_LIMIT",
        default: "4",
        accepted: "decimal integer 1 ..= 4294967295",
        description: "Faults at one instruction address before the oblivious policy escalates to unwind.",
        kind: KeyKind::Setting {
            set: |c, v| parse_positive_u32(v).map(|x| c.same_pc_limit = x),
            show: |c| c.same_pc_limit.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_TIME_BUDGET_MS",
        default: "2000",
        accepted: "decimal integer (milliseconds)",
        description: "Milliseconds after a user's first fault after which its further faults unwind.",
        kind: KeyKind::Setting {
            set: |c, v| parse_decimal(v).map(|x| c.time_budget_ms = x),
            show: |c| c.time_budget_ms.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_EXPOSURE",
        default: "0",
        accepted: BOOL_VALUES,
        description: "Track which normal users read data written by a user that later faulted.",
        kind: KeyKind::Setting {
            set: |c, v| parse_bool(v).map(|x| c.exposure = x),
            show: |c| show_bool(c.exposure),
        },
    },
    KeySpec {
        name: "VMSRS_EXPOSURE_POLICY",
        default: "report",
        accepted: "report | cascade",
        description: "What an exposure does: report it, or also fault the exposed user (cascade).",
        kind: KeyKind::Setting {
            set: |c, v| parse_named(v, ExposurePolicy::from_name).map(|x| c.exposure_policy = x),
            show: |c| c.exposure_policy.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_HOST",
        default: "inproc",
        accepted: "inproc | process | trap",
        description: "Where the recovery store runs: in process, in a separate vmsrs-hv process, or \
                      behind vmmcall traps.",
        kind: KeyKind::Setting {
            set: |c, v| parse_named(v, Host::from_name).map(|x| c.host = x),
            show: |c| c.host.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_CONTAIN_IMPLICIT",
        default: "1",
        accepted: BOOL_VALUES,
        description:
            "Contain faults in threads that never began a user (each runs as its own implicit user).",
        kind: KeyKind::Setting {
            set: |c, v| parse_bool(v).map(|x| c.contain_implicit = x),
            show: |c| show_bool(c.contain_implicit),
        },
    },
    KeySpec {
        name: "VMSRS_VERBOSE",
        default: "0",
        accepted: "0 | 1 | 2",
        description: "Amount of diagnostics on stderr, 0 (quiet) to 2 (most); from 1 on, the effective \
                      configuration is logged once at start-up.",
        kind: KeyKind::Setting {
            set: |c, v| parse_verbose(v).map(|x| c.verbose = x),
            show: |c| c.verbose.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_STRICT",
        default: "0",
        accepted: BOOL_VALUES,
        description: "Make every configuration warning (such as an unknown key) fatal at start-up.",
        kind: KeyKind::Setting {
            set: |c, v| parse_bool(v).map(|x| c.strict = x),
            show: |c| show_bool(c.strict),
        },
    },
    KeySpec {
        name: "VMSRS_LOG_PATH",
        default: "",
        accepted: "absolute file path prefix, or empty for none",
        description: "Write one JSON Lines event per contained fault to PATH.<exe>.<pid> (each forked \
                      child writes its own file). The directory must exist and be writable at start-up.",
        kind: KeyKind::Setting {
            set: |c, v| parse_file_path(v).map(|x| c.log_path = x),
            show: |c| c.log_path.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        },
    },
    KeySpec {
        name: "VMSRS_METRICS_PATH",
        default: "",
        accepted: "absolute file path, or empty for none",
        description: "Write libvmsrs's counters to this file in the Prometheus text format (for \
                      node_exporter's textfile collector: name it *.prom in its directory), replaced \
                      atomically every VMSRS_METRICS_INTERVAL_MS and at exit, by the process that \
                      started libvmsrs. The directory must exist and be writable at start-up.",
        kind: KeyKind::Setting {
            set: |c, v| parse_file_path(v).map(|x| c.metrics_path = x),
            show: |c| c.metrics_path.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
        },
    },
    KeySpec {
        name: "VMSRS_METRICS_INTERVAL_MS",
        default: "5000",
        accepted: "decimal integer 10 ..= 86400000 (milliseconds)",
        description: "How often the VMSRS_METRICS_PATH file is rewritten.",
        kind: KeyKind::Setting {
            set: |c, v| parse_interval_ms(v).map(|x| c.metrics_interval_ms = x),
            show: |c| c.metrics_interval_ms.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_USER_CALL",
        default: "",
        accepted:
            "comma list of SYMBOL:RETVAL (RETVAL a decimal or 0x integer, may be negative: the integer \
                   or pointer the function returns in rax; functions returning floating-point values or \
                   structs in registers cannot be rescue points; or `throw`: the call throws a C++ \
                   std::runtime_error into its caller, which must catch it), or empty",
        description:
            "User boundaries in an unmodified program: each call of SYMBOL (a dynamic symbol of the \
                      executable or a library; C++ mangled names accepted) runs as one user, begun at entry \
                      and ended at return; a fault below it that must unwind makes it return RETVAL \
                      (or throw).",
        kind: KeyKind::Setting {
            set: |c, v| parse_user_calls(v).map(|x| c.user_calls = x),
            show: |c| c.user_calls.iter().map(UserCall::to_string).collect::<Vec<_>>().join(","),
        },
    },
    KeySpec {
        name: "VMSRS_CHILDREN",
        default: "drop",
        accepted: "drop | keep",
        description:
            "Drop-in mode: whether programs this process execs keep LD_PRELOAD=libvmsrs.so (keep) or \
                      run without it (drop: libvmsrs is removed from LD_PRELOAD at start-up).",
        kind: KeyKind::Setting {
            set: |c, v| parse_named(v, Children::from_name).map(|x| c.children = x),
            show: |c| c.children.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_RANGE_<N>",
        default: "",
        accepted: "symbol:NAME[:LEN], module:NAME+OFFSET:LEN or ADDR+LEN (N = 0..255; empty unsets)",
        description: "One monitored range, watched by page protection in drop-in mode. ADDR, OFFSET \
                      and LEN are decimal or 0x hex; LEN > 0; LEN of a symbol defaults to its size.",
        kind: KeyKind::Slot {
            set: |c, i, v| {
                match v {
                    "" => c.range_slots.remove(&i),
                    _ => c.range_slots.insert(i, parse_range(v)?),
                };
                Ok(())
            },
            show: |c, i| c.range_slots.get(&i).map(RangeSpec::to_string),
        },
    },
    KeySpec {
        name: "VMSRS_RANGES",
        default: "",
        accepted: "comma list of symbol:NAME[:LEN], module:NAME+OFFSET:LEN or ADDR+LEN (may be empty)",
        description: "Monitored ranges, in addition to the VMSRS_RANGE_<N> keys.",
        kind: KeyKind::Setting {
            set: |c, v| parse_ranges(v).map(|x| c.ranges = x),
            show: |c| c.ranges.iter().map(RangeSpec::to_string).collect::<Vec<_>>().join(","),
        },
    },
    KeySpec {
        name: "VMSRS_WATCH",
        default: "page",
        accepted: "page | hw | auto",
        description: "How monitored ranges are watched in drop-in mode unless their VMSRS_WATCH_<N> \
                      says: page protection (every store to the range's pages traps), a hardware \
                      data watchpoint (only stores to the range's own 1, 2, 4 or 8 aligned bytes \
                      trap; at most four), or auto (page protection until stores to other data \
                      make the page hot, then hw where every range on the page is auto and fits).",
        kind: KeyKind::Setting {
            set: |c, v| parse_named(v, Watch::from_name).map(|x| c.watch = x),
            show: |c| c.watch.to_string(),
        },
    },
    KeySpec {
        name: "VMSRS_WATCH_<N>",
        default: "",
        accepted: "page | hw | auto (N = 0..255; empty unsets)",
        description: "How VMSRS_RANGE_<N> is watched (see VMSRS_WATCH).",
        kind: KeyKind::Slot {
            set: |c, i, v| {
                match v {
                    "" => c.watch_slots.remove(&i),
                    _ => c.watch_slots.insert(i, parse_named(v, Watch::from_name)?),
                };
                Ok(())
            },
            show: |c, i| c.watch_slots.get(&i).map(Watch::to_string),
        },
    },
    KeySpec {
        name: "VMSRS_PATCH_STORES",
        default: "1",
        accepted: BOOL_VALUES,
        description: "Let an instruction of the executable that stores to one fixed address outside \
                      the monitored ranges, on a page watched by page protection, store through a \
                      writable view of the page once it has trapped 256 times (its code is patched \
                      to jump to a copy of it): the monitored ranges stay exactly as watched, and \
                      the page's unrelated hot data stops trapping.",
        kind: KeyKind::Setting {
            set: |c, v| parse_bool(v).map(|x| c.watch_patch = x),
            show: |c| show_bool(c.watch_patch),
        },
    },
    KeySpec {
        name: ENV_FILE_KEY,
        default: "",
        accepted: "file path (process environment only)",
        description: "Environment file read in drop-in mode, or by vmsrs_init_profile(NULL).",
        kind: KeyKind::EnvironmentOnly {
            show: Some(|c| c.env_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default()),
        },
    },
    KeySpec {
        name: OPTIONS_KEY,
        default: "",
        accepted: "key=value pairs separated by ':' (process environment only)",
        description: "Quick overrides with the highest precedence, e.g. policy=unwind:fault_budget=3; \
                      keys may omit VMSRS_ and are case-insensitive.",
        kind: KeyKind::EnvironmentOnly { show: None },
    },
];

/// The key table.
pub fn keys() -> &'static [KeySpec] {
    KEYS
}

/// Human-readable reference of every key, derived from [`KEYS`].
pub fn reference() -> String {
    let mut text = String::new();
    for spec in KEYS {
        let default = if spec.default.is_empty() { "(none)" } else { spec.default };
        text.push_str(&format!(
            "{}\n    {}\n    accepted: {}\n    default: {}\n",
            spec.name, spec.description, spec.accepted, default
        ));
    }
    text
}

/// A commented environment file listing every file-settable key at its default.
pub fn example_env_file() -> String {
    let mut text = String::from("# libvmsrs environment file (systemd EnvironmentFile= subset)\n");
    for spec in KEYS.iter().filter(|s| !s.environment_only()) {
        let name = spec.name.replace("<N>", "0");
        text.push_str(&format!(
            "\n# {}\n# accepted: {}\n#{}={}\n",
            spec.description, spec.accepted, name, spec.default
        ));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Value parsers. Each returns the reason a value is refused; the caller adds key, value, source
// and the accepted values.

fn parse_named<T>(value: &str, from_name: fn(&str) -> Option<T>) -> Result<T, String> {
    from_name(value).ok_or_else(|| "not one of the accepted names".to_owned())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    const TRUE: [&str; 4] = ["1", "true", "yes", "on"];
    const FALSE: [&str; 4] = ["0", "false", "no", "off"];
    let is = |names: [&str; 4]| names.iter().any(|n| n.eq_ignore_ascii_case(value));
    match (is(TRUE), is(FALSE)) {
        (true, _) => Ok(true),
        (_, true) => Ok(false),
        _ => Err("not a boolean".to_owned()),
    }
}

fn show_bool(value: bool) -> String {
    u8::from(value).to_string()
}

/// Plain decimal digits only: no sign, blanks, underscores or radix prefix.
fn parse_decimal<T: TryFrom<u64>>(value: &str) -> Result<T, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a decimal integer".to_owned());
    }
    let wide: u64 = value.parse().map_err(|_| "too large".to_owned())?;
    T::try_from(wide).map_err(|_| "too large".to_owned())
}

fn parse_u32(value: &str) -> Result<u32, String> {
    parse_decimal(value)
}

fn parse_positive_u32(value: &str) -> Result<u32, String> {
    match parse_u32(value)? {
        0 => Err("must be at least 1".to_owned()),
        n => Ok(n),
    }
}

/// Empty (none), or an absolute path that names a file (does not end in `/`). Whether its
/// directory exists is checked by the runtime at start-up.
fn parse_file_path(value: &str) -> Result<Option<PathBuf>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if !value.starts_with('/') {
        return Err("not an absolute path".to_owned());
    }
    if value.ends_with('/') || value.ends_with("/.") || value.ends_with("/..") {
        return Err("names a directory, not a file".to_owned());
    }
    Ok(Some(PathBuf::from(value)))
}

fn parse_interval_ms(value: &str) -> Result<u64, String> {
    match parse_decimal::<u64>(value)? {
        n @ 10..=86_400_000 => Ok(n),
        _ => Err("must be between 10 and 86400000".to_owned()),
    }
}

fn parse_verbose(value: &str) -> Result<u8, String> {
    match parse_decimal::<u8>(value) {
        Ok(level @ 0..=2) => Ok(level),
        _ => Err("not a level 0, 1 or 2".to_owned()),
    }
}

/// `0x`-prefixed hexadecimal or plain decimal, fitting a `usize`.
fn parse_number(value: &str) -> Result<usize, String> {
    let (digits, radix) = match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (value, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("{value:?} is not a decimal or 0x-hex number"));
    }
    usize::from_str_radix(digits, radix).map_err(|_| format!("{value:?} does not fit in an address"))
}

fn parse_signals(value: &str) -> Result<SignalSet, String> {
    if value.trim().is_empty() {
        return Err("the list is empty (it would turn fault containment off)".to_owned());
    }
    value
        .split(',')
        .map(|item| {
            let item = item.trim();
            Signal::parse(item).ok_or_else(|| format!("{item:?} is not a containable signal"))
        })
        .collect()
}

/// A symbol name as it appears in an ELF symbol table (`foo`, `_ZN3fooE`, `foo.cold`,
/// `foo@@VER`). Excludes `:`, `,`, `+` and blanks, which separate range fields.
fn is_symbol_name(name: &str) -> bool {
    let symbol_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | '@');
    name.chars().next().is_some_and(|c| !c.is_ascii_digit()) && name.chars().all(symbol_char)
}

fn parse_symbol(name: &str) -> Result<String, String> {
    if is_symbol_name(name) {
        Ok(name.to_owned())
    } else {
        Err(format!("{name:?} is not a symbol name"))
    }
}

/// A signed decimal or `0x` hex integer (a function's return value).
fn parse_retval(text: &str) -> Result<i64, String> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = parse_number(digits)? as i128;
    let v = if neg { -magnitude } else { magnitude };
    i64::try_from(v).map_err(|_| format!("{text:?} does not fit a 64-bit return value"))
}

fn parse_user_calls(value: &str) -> Result<Vec<UserCall>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut calls: Vec<UserCall> = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        let (symbol, retval) =
            item.rsplit_once(':').ok_or_else(|| format!("{item:?} is not SYMBOL:RETVAL"))?;
        let (symbol, retval) = (symbol.trim(), retval.trim());
        let on_fault = match retval {
            "throw" => OnFault::Throw,
            value => OnFault::Return(
                parse_retval(value).map_err(|e| format!("{e} (RETVAL is an integer or `throw`)"))?,
            ),
        };
        let call = UserCall { symbol: parse_symbol(symbol)?, on_fault };
        if calls.iter().any(|c| c.symbol == call.symbol) {
            return Err(format!("{symbol:?} is named twice"));
        }
        calls.push(call);
    }
    Ok(calls)
}

fn parse_length(text: &str) -> Result<usize, String> {
    match parse_number(text)? {
        0 => Err("length must be greater than 0".to_owned()),
        len => Ok(len),
    }
}

/// Parse one `VMSRS_RANGE_<N>` value (`symbol:NAME[:LEN]`, `module:NAME+OFFSET:LEN` or
/// `ADDR+LEN`). Public, though hidden, only for the fuzz targets and the corpus replay tests
/// (`fuzz/`).
#[doc(hidden)]
pub fn parse_range(value: &str) -> Result<RangeSpec, String> {
    if let Some(rest) = value.strip_prefix("symbol:") {
        return parse_symbol_range(rest);
    }
    if let Some(rest) = value.strip_prefix("module:") {
        return parse_module_range(rest);
    }
    let (addr, len) = value
        .split_once('+')
        .ok_or_else(|| format!("{value:?} is none of symbol:NAME[:LEN], module:NAME+OFFSET:LEN, ADDR+LEN"))?;
    let (addr, len) = (parse_number(addr)?, parse_length(len)?);
    if addr == 0 {
        return Err("address 0 is the NULL page".to_owned());
    }
    if addr.checked_add(len).is_none() {
        return Err(format!("{value:?} runs past the end of the address space"));
    }
    Ok(RangeSpec::Addr { addr, len })
}

/// A loaded object's file name: letters, digits, `.`, `_`, `-`.
fn is_module_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn parse_module_range(rest: &str) -> Result<RangeSpec, String> {
    let bad = || format!("module:{rest:?} is not module:NAME+OFFSET:LEN");
    let (name, place) = rest.split_once('+').ok_or_else(bad)?;
    let (offset, len) = place.split_once(':').ok_or_else(bad)?;
    if !is_module_name(name) {
        return Err(format!("{name:?} is not a file name (letters, digits, '.', '_', '-')"));
    }
    let (offset, len) = (parse_number(offset)?, parse_length(len)?);
    if offset.checked_add(len).is_none() {
        return Err(format!("module:{rest} runs past the end of the address space"));
    }
    Ok(RangeSpec::Module { name: name.to_owned(), offset, len })
}

fn parse_symbol_range(rest: &str) -> Result<RangeSpec, String> {
    let (name, len) = match rest.split_once(':') {
        Some((name, len)) => (name, Some(parse_length(len)?)),
        None => (rest, None),
    };
    Ok(RangeSpec::Symbol { name: parse_symbol(name)?, len })
}

/// Parse a `VMSRS_RANGES` comma list. Public, though hidden, only for the fuzz targets and the
/// corpus replay tests (`fuzz/`).
#[doc(hidden)]
pub fn parse_ranges(value: &str) -> Result<Vec<RangeSpec>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|item| match item.trim() {
            "" => Err("empty item in the list".to_owned()),
            item => parse_range(item),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A line of the environment file.
    File { path: PathBuf, line: usize },
    /// A `VMSRS_*` process environment variable.
    Environment,
    /// An item of `VMSRS_OPTIONS`.
    Options,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Environment => f.write_str("environment"),
            Self::Options => f.write_str(OPTIONS_KEY),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The environment file could not be read, or is not in the accepted syntax.
    EnvFile(EnvFileError),
    /// A known key with a value it does not accept.
    BadValue { key: String, value: String, source: Source, reason: String, accepted: &'static str },
    /// A key of the `VMSRS_RANGE_<N>` family with an index that is not 0..=255.
    BadKey { key: String, source: Source, reason: String },
    /// `VMSRS_STRICT` is on and warnings were raised.
    Strict { warnings: Vec<String> },
}

impl ConfigError {
    /// The C status: `VMSRS_EIO` when the environment file could not be read, else
    /// `VMSRS_ECONFIG`.
    pub fn code(&self) -> i32 {
        match self {
            Self::EnvFile(e) if e.is_io() => VMSRS_EIO,
            _ => VMSRS_ECONFIG,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnvFile(e) => e.fmt(f),
            Self::BadValue { key, value, source, reason, accepted } => {
                write!(f, "{source}: {key}={value:?} is invalid: {reason} (accepted: {accepted})")
            }
            Self::BadKey { key, source, reason } => write!(f, "{source}: {key}: {reason}"),
            Self::Strict { warnings } => {
                write!(f, "VMSRS_STRICT is set and {} warning(s) were raised: ", warnings.len())?;
                f.write_str(&warnings.join("; "))
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::EnvFile(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EnvFileError> for ConfigError {
    fn from(e: EnvFileError) -> Self {
        Self::EnvFile(e)
    }
}

/// The result of [`load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    /// Non-fatal findings (unknown keys, ignored keys, duplicates), each a full sentence with
    /// its source. Empty when `config.strict` is on (they are errors then).
    pub warnings: Vec<String>,
}

/// Build the configuration from the defaults, the environment file (`env_file`, else
/// `VMSRS_ENV_FILE` from `environ`), the `VMSRS_*` pairs of `environ` and `VMSRS_OPTIONS`.
pub fn load(env_file: Option<&Path>, environ: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let mut loader = Loader::default();
    let file = env_file.map(Path::to_path_buf).or_else(|| env_file_from(environ));
    if let Some(path) = &file {
        loader.apply_file(path)?;
    }
    loader.config.env_file = file;
    loader.apply_environment(environ)?;
    if let Some(options) = lookup(environ, OPTIONS_KEY) {
        loader.apply_options(options)?;
    }
    loader.finish()
}

/// The `VMSRS_*` variables of this process's environment (keys and values converted lossily).
pub fn environ_snapshot() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(key, value)| {
            let key = key.to_string_lossy();
            key.starts_with(PREFIX).then(|| (key.into_owned(), value.to_string_lossy().into_owned()))
        })
        .collect()
}

fn lookup<'a>(environ: &'a [(String, String)], key: &str) -> Option<&'a str> {
    environ.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn env_file_from(environ: &[(String, String)]) -> Option<PathBuf> {
    lookup(environ, ENV_FILE_KEY).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// What a key name refers to.
enum Target {
    Setting(&'static KeySpec, Setter),
    Slot(&'static KeySpec, u8, SlotSetter),
    EnvironmentOnly,
    BadSlot(String),
    Unknown,
}

fn resolve(key: &str) -> Target {
    for spec in KEYS {
        match spec.kind {
            KeyKind::Setting { set, .. } if spec.name == key => return Target::Setting(spec, set),
            KeyKind::EnvironmentOnly { .. } if spec.name == key => return Target::EnvironmentOnly,
            KeyKind::Slot { set, .. } => {
                if let Some(index) = key.strip_prefix(spec.slot_prefix()) {
                    return match parse_slot_index(index) {
                        Some(i) => Target::Slot(spec, i, set),
                        None => Target::BadSlot(format!(
                            "the index must be a decimal number 0..={} without leading zeros",
                            RANGE_SLOTS - 1
                        )),
                    };
                }
            }
            _ => {}
        }
    }
    Target::Unknown
}

fn parse_slot_index(index: &str) -> Option<u8> {
    let canonical = index == "0" || !index.starts_with('0');
    canonical.then(|| parse_decimal::<u8>(index).ok()).flatten()
}

/// The known key closest to `key`, if it is a plausible typo.
fn suggestion(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|s| s.name)
        .filter(|name| !name.contains('<'))
        .map(|name| (edit_distance(key, name), name))
        .filter(|&(d, _)| d <= 2)
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Applies layers in precedence order onto one [`Config`] (starting at the defaults), collecting
/// warnings.
#[derive(Default)]
struct Loader {
    config: Config,
    warnings: Vec<String>,
    /// Keys already warned about as unknown or ignored: one warning per key.
    warned: HashSet<String>,
}

impl Loader {
    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for entry in envfile::read_entries(path)? {
            let source = Source::File { path: path.to_path_buf(), line: entry.line };
            if let Some(previous) = first_line.insert(entry.key.clone(), entry.line) {
                self.warnings.push(format!(
                    "{source}: {} is also set on line {previous}; the later value wins",
                    entry.key
                ));
            }
            if entry.key.starts_with(PREFIX) {
                self.apply(&entry.key, &entry.value, &source)?;
            } else {
                self.warn_once(
                    &entry.key,
                    format!("{source}: {} is not a libvmsrs key (VMSRS_*); ignored", entry.key),
                );
            }
        }
        Ok(())
    }

    fn apply_environment(&mut self, environ: &[(String, String)]) -> Result<(), ConfigError> {
        for (key, value) in environ.iter().filter(|(k, _)| k.starts_with(PREFIX)) {
            if key != ENV_FILE_KEY && key != OPTIONS_KEY {
                self.apply(key, value, &Source::Environment)?;
            }
        }
        Ok(())
    }

    fn apply_options(&mut self, options: &str) -> Result<(), ConfigError> {
        for item in split_options(options) {
            match item.split_once('=') {
                Some((key, value)) => {
                    self.apply(&normalize_option_key(key), value.trim(), &Source::Options)?
                }
                None => self.warnings.push(format!("{OPTIONS_KEY}: item {item:?} has no '='; ignored")),
            }
        }
        Ok(())
    }

    /// Apply one setting from a layer.
    fn apply(&mut self, key: &str, value: &str, source: &Source) -> Result<(), ConfigError> {
        let bad_value = |spec: &KeySpec, reason| ConfigError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            source: source.clone(),
            reason,
            accepted: spec.accepted,
        };
        match resolve(key) {
            Target::Setting(spec, set) => set(&mut self.config, value).map_err(|r| bad_value(spec, r)),
            Target::Slot(spec, index, set) => {
                set(&mut self.config, index, value).map_err(|r| bad_value(spec, r))
            }
            Target::BadSlot(reason) => {
                Err(ConfigError::BadKey { key: key.to_owned(), source: source.clone(), reason })
            }
            Target::EnvironmentOnly => {
                let message =
                    format!("{source}: {key} is read only from the process environment; ignored here");
                self.warn_once(key, message);
                Ok(())
            }
            Target::Unknown => {
                let hint = suggestion(key).map(|s| format!(" (did you mean {s}?)")).unwrap_or_default();
                self.warn_once(key, format!("{source}: unknown key {key} ignored{hint}"));
                Ok(())
            }
        }
    }

    fn warn_once(&mut self, key: &str, message: String) {
        if self.warned.insert(key.to_owned()) {
            self.warnings.push(message);
        }
    }

    fn finish(mut self) -> Result<Loaded, ConfigError> {
        let orphans: Vec<u8> = self
            .config
            .watch_slots
            .keys()
            .filter(|i| !self.config.range_slots.contains_key(i))
            .copied()
            .collect();
        for i in orphans {
            let key = format!("VMSRS_WATCH_{i}");
            let message = format!("{key} is set but VMSRS_RANGE_{i} is not: it watches nothing");
            self.warn_once(&key, message);
        }
        if self.config.strict && !self.warnings.is_empty() {
            return Err(ConfigError::Strict { warnings: self.warnings });
        }
        Ok(Loaded { config: self.config, warnings: self.warnings })
    }
}

/// Split `VMSRS_OPTIONS` at `:`. A piece without `=` continues the previous item, so values
/// that contain `:` (such as `ranges=symbol:foo:64`) survive; empty pieces are skipped.
fn split_options(options: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for piece in options.split(':').filter(|p| !p.trim().is_empty()) {
        match items.last_mut() {
            Some(last) if !piece.contains('=') => {
                last.push(':');
                last.push_str(piece);
            }
            _ => items.push(piece.to_owned()),
        }
    }
    items
}

/// `policy`, `Policy`, `vmsrs_policy` → `VMSRS_POLICY`.
fn normalize_option_key(key: &str) -> String {
    let upper = key.trim().to_ascii_uppercase();
    if upper.starts_with(PREFIX) {
        upper
    } else {
        format!("{PREFIX}{upper}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_at_colons_and_rejoin_pieces_without_equals() {
        assert_eq!(split_options("a=1:b=2"), ["a=1", "b=2"]);
        assert_eq!(split_options("r=symbol:x:8:p=u"), ["r=symbol:x:8", "p=u"]);
        assert_eq!(split_options("::a=1::"), ["a=1"]);
        assert_eq!(split_options("lone:a=1"), ["lone", "a=1"]);
        assert!(split_options("").is_empty());
    }

    #[test]
    fn option_keys_normalize_to_prefixed_upper_case() {
        assert_eq!(normalize_option_key("policy"), "VMSRS_POLICY");
        assert_eq!(normalize_option_key(" vmsrs_Fault_Budget "), "VMSRS_FAULT_BUDGET");
        assert_eq!(normalize_option_key("range_3"), "VMSRS_RANGE_3");
    }

    #[test]
    fn slot_index_is_canonical_decimal_below_256() {
        assert_eq!(parse_slot_index("0"), Some(0));
        assert_eq!(parse_slot_index("255"), Some(255));
        for bad in ["", "00", "01", "256", "+1", "x"] {
            assert_eq!(parse_slot_index(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("VMSRS_POLCY", "VMSRS_POLICY"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestion_only_for_near_misses() {
        assert_eq!(suggestion("VMSRS_HOTS"), Some("VMSRS_HOST"));
        assert_eq!(suggestion("VMSRS_RANGE"), Some("VMSRS_RANGES"));
        assert_eq!(suggestion("VMSRS_SOMETHING_ELSE"), None);
    }

    #[test]
    fn every_key_name_resolves_to_its_row() {
        for spec in KEYS.iter().filter(|s| !s.name.contains('<')) {
            assert!(!matches!(resolve(spec.name), Target::Unknown | Target::BadSlot(_)), "{}", spec.name);
        }
        assert!(matches!(resolve("VMSRS_RANGE_17"), Target::Slot(_, 17, _)));
    }

    #[test]
    fn range_display_parses_back() {
        for text in ["symbol:a", "symbol:a:5", "0x10+5"] {
            assert_eq!(parse_range(text).unwrap().to_string(), text);
        }
    }
}
