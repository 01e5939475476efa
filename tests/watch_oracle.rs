//! The property test of DESIGN §2.4 for drop-in monitored ranges: an unmodified program
//! (`c-examples/watch_oracle.c`) stores into a watched global with real instructions (mov of
//! every size at any alignment, read-modify-writes, locked ones, `rep stos`, `rep movs`,
//! `movdqu`, and glibc's `memset`/`memcpy`, whatever vector or string instructions they pick on
//! this CPU), each trapped and emulated by libvmsrs, and with `read(2)` (the kernel's store,
//! which libvmsrs takes through a bounce buffer), from four users on four threads whose
//! sessions overlap and fault in random interleavings. Every load by a normal user, and the
//! whole range after every end point, is compared with the reference oracle
//! (`vmsrs_hv::oracle`).

mod common;

use common::{c_example, env_refs, preload, Build, Spawned};
use std::time::Duration;
use vmsrs_hv::oracle::Oracle;

const REGION: usize = 8192;
const WORKERS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(30);

/// xorshift64*: reproducible cases from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Program(Spawned);

impl Program {
    fn start() -> Program {
        let env = preload(&[
            ("VMSRS_RANGE_0", "symbol:region"),
            ("VMSRS_USER_CALL", "session:-1"),
            ("VMSRS_POLICY", "oblivious"),
            ("VMSRS_VERBOSE", "1"),
        ]);
        Program(Spawned::start(&c_example("watch_oracle", Build::Unmodified), &[], &env_refs(&env), true))
    }

    fn ask(&mut self, cmd: &str) -> String {
        self.0.send_line(cmd);
        let line = self.0.wait_line(TIMEOUT, |_| true);
        assert!(!line.starts_with("ERR"), "{cmd}: {line}\n{}", self.0.describe());
        line
    }

    fn load(&mut self, cmd: &str) -> Vec<u8> {
        let line = self.ask(cmd);
        let hex = line.strip_prefix("V ").unwrap_or_else(|| panic!("{cmd}: {line}"));
        (0..hex.len() / 2).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
    }
}

/// The bytes form `form` stores at `off`, given what the storing user sees there.
fn stored(o: &Oracle, u: u64, form: u64, off: usize, size: usize, val: u64) -> Vec<u8> {
    let view = |n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&o.load(u, off, n));
        u64::from_le_bytes(b)
    };
    match form {
        0 => val.to_le_bytes()[..size].to_vec(),
        1 => (view(4) as u32).wrapping_add(val as u32).to_le_bytes().to_vec(),
        2 => (view(8) ^ val).to_le_bytes().to_vec(),
        3 => (view(4) as u32).wrapping_add(val as u32).to_le_bytes().to_vec(),
        4 | 10 => vec![val as u8; size],
        5 => [val.to_le_bytes(), val.to_le_bytes()].concat(),
        6 | 9 => val.to_le_bytes().to_vec(),
        7 | 11 | 12 | 13 => (0..size).map(|i| (val >> (8 * (i % 8))) as u8).collect(),
        8 => (view(2) as u16).wrapping_add(1).to_le_bytes().to_vec(),
        _ => unreachable!(),
    }
}

/// (form, size, alignment) for a random store.
fn pick_form(r: &mut Rng) -> (u64, usize, usize) {
    match r.below(14) {
        0 => (0, [1, 2, 4, 8][r.below(4) as usize], 1),
        f @ (1 | 3) => (f, 4, if f == 3 { 4 } else { 1 }),
        f @ (2 | 6 | 9) => (f, 8, if f == 2 { 1 } else { 8 }),
        f @ (4 | 7) => (f, 1 + r.below(64) as usize, 1),
        5 => (5, 16, 1),
        f @ (10..=13) => (f, 1 + r.below(200) as usize, 1),
        _ => (8, 2, 1),
    }
}

fn one_case(seed: u64, ops: usize) {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut p = Program::start();
    let initial: Vec<u8> = (0..REGION).map(|i| (i * 7 + 3) as u8).collect();
    let mut o = Oracle::new(&initial);
    // The main thread: never faults, so it always has the normal view.
    const MAIN: u64 = u64::MAX;
    assert_eq!(p.load(&format!("R 0 {REGION}")), initial, "seed {seed}: the initial contents");
    let mut users: [Option<(u64, bool)>; WORKERS] = [None; WORKERS];
    let mut log = Vec::new();
    for step in 0..ops {
        let t = r.below(WORKERS as u64) as usize;
        let Some((u, faulted)) = users[t] else {
            // Users are numbered by the step that began them.
            let id = step as u64 + 1;
            p.ask(&format!("B {t}"));
            o.begin(id);
            users[t] = Some((id, false));
            log.push(format!("B {t} (user {id})"));
            continue;
        };
        let what = r.below(100);
        let ctx = |log: &Vec<String>| {
            format!("seed {seed} step {step}; last ops: {:?}", &log[log.len().saturating_sub(12)..])
        };
        if what < 55 {
            // Stores concentrate on a few granules near a page boundary and spread elsewhere,
            // so users overlap byte by byte.
            let (form, size, align) = pick_form(&mut r);
            let base = if r.below(2) == 0 {
                4096 - 24 + r.below(48) as usize
            } else {
                r.below(REGION as u64) as usize
            };
            let off = (base.min(REGION - size)) / align * align;
            let val = r.next();
            p.ask(&format!("S {t} {form} {off} {size} {val:x}"));
            let bytes = stored(&o, u, form, off, size, val);
            o.store(u, off, &bytes);
            log.push(format!("S {t} form {form} off {off} size {size} val {val:x}"));
        } else if what < 70 {
            let off = r.below(REGION as u64 - 64) as usize;
            let n = 1 + r.below(64) as usize;
            // A faulted user's loads too (G4: its shadow, else its own earlier stores and
            // normal users' stores), through the keyed pages (`watch::pkey`).
            let got = p.load(&format!("L {t} {off} {n}"));
            let who = if faulted { "faulted user" } else { "user" };
            assert_eq!(got, o.load(u, off, n), "load by {who} {u} at {off}+{n}: {}", ctx(&log));
        } else if what < 80 {
            let off = r.below(REGION as u64 - 256) as usize;
            let n = 1 + r.below(256) as usize;
            assert_eq!(
                p.load(&format!("R {off} {n}")),
                o.load(MAIN, off, n),
                "main load at {off}+{n}: {}",
                ctx(&log)
            );
        } else if what < 88 {
            if !faulted {
                p.ask(&format!("F {t}"));
                o.fault(u);
                users[t] = Some((u, true));
                log.push(format!("F {t} (user {u})"));
            }
        } else {
            p.ask(&format!("E {t}"));
            o.end(u);
            users[t] = None;
            log.push(format!("E {t} (user {u}{})", if faulted { ", faulted" } else { "" }));
            if faulted {
                // G7, and G3 for every byte: the whole range as a normal user sees it.
                let got = p.load(&format!("R 0 {REGION}"));
                let want = o.expected_raw();
                if let Some(i) = (0..REGION).find(|&i| got[i] != want[i]) {
                    panic!(
                        "byte {i} after the end of user {u}: {:#x}, want {:#x}: {}",
                        got[i],
                        want[i],
                        ctx(&log)
                    );
                }
            }
        }
    }
    assert_eq!(p.load(&format!("R 0 {REGION}")), o.expected_raw(), "seed {seed}: at the end");
    p.0.send_line("Q");
    let st = p.0.wait_timeout(TIMEOUT).expect("the program quits");
    assert!(st.success(), "seed {seed}: {}", p.0.describe());
    let err = p.0.stderr();
    assert!(err.contains("watching symbol:region at 0x"), "seed {seed}: {err}");
    assert!(!err.contains("cannot emulate"), "seed {seed}: {err}");
}

#[test]
fn trapped_stores_of_overlapping_faulting_users_match_the_oracle() {
    let cases: u64 = std::env::var("WATCH_ORACLE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    for seed in 1..=cases {
        one_case(seed, 400);
    }
}
