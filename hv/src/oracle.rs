//! The reference oracle of DESIGN §2.4, for property tests: the whole store history per
//! byte, kept naively. It is the specification the recovery store is checked against.

use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OState {
    Active,
    Committed,
    Faulted,
    Collected,
}

/// Per byte, every store `(writer, value)` in order, plus each user's state and shadow.
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    initial: Vec<u8>,
    stores: Vec<Vec<(u64, u8)>>,
    state: HashMap<u64, OState>,
    shadow: HashMap<u64, HashMap<usize, u8>>,
}

impl Oracle {
    /// Monitored memory of `initial.len()` bytes, profiled with these values.
    pub fn new(initial: &[u8]) -> Self {
        Oracle { initial: initial.to_vec(), stores: vec![Vec::new(); initial.len()], ..Default::default() }
    }

    pub fn begin(&mut self, u: u64) {
        self.state.insert(u, OState::Active);
    }

    pub fn state(&self, u: u64) -> OState {
        self.state.get(&u).copied().unwrap_or(OState::Committed)
    }

    fn faulted(&self, u: u64) -> bool {
        matches!(self.state(u), OState::Faulted | OState::Collected)
    }

    pub fn store(&mut self, u: u64, off: usize, bytes: &[u8]) {
        if self.state(u) == OState::Faulted {
            let sh = self.shadow.entry(u).or_default();
            for (k, &b) in bytes.iter().enumerate() {
                sh.insert(off + k, b);
            }
            return;
        }
        for (k, &b) in bytes.iter().enumerate() {
            self.stores[off + k].push((u, b));
        }
    }

    /// The value user `u` must see at `off` (G3 for a normal user, G4 for a faulted one).
    pub fn byte(&self, u: u64, off: usize) -> u8 {
        if self.state(u) == OState::Faulted {
            if let Some(&b) = self.shadow.get(&u).and_then(|s| s.get(&off)) {
                return b;
            }
            return self.stores[off]
                .iter()
                .rev()
                .find(|(w, _)| *w == u || !self.faulted(*w))
                .map_or(self.initial[off], |&(_, b)| b);
        }
        self.normal_byte(off)
    }

    fn normal_byte(&self, off: usize) -> u8 {
        self.stores[off].iter().rev().find(|(w, _)| !self.faulted(*w)).map_or(self.initial[off], |&(_, b)| b)
    }

    pub fn load(&self, u: u64, off: usize, n: usize) -> Vec<u8> {
        (off..off + n).map(|o| self.byte(u, o)).collect()
    }

    pub fn fault(&mut self, u: u64) {
        if self.state(u) == OState::Active {
            self.state.insert(u, OState::Faulted);
        }
    }

    /// End point: commit an active user, collect a faulted one.
    pub fn end(&mut self, u: u64) {
        let s = match self.state(u) {
            OState::Faulted => OState::Collected,
            _ => OState::Committed,
        };
        self.state.insert(u, s);
        self.shadow.remove(&u);
    }

    /// The bytes `lo..hi` (a range) are unprofiled and profiled again: each keeps its normal
    /// view as its new profiled value, and every store and shadow byte there is forgotten.
    pub fn reprofile(&mut self, lo: usize, hi: usize) {
        for o in lo..hi {
            self.initial[o] = self.normal_byte(o);
            self.stores[o].clear();
        }
        for sh in self.shadow.values_mut() {
            sh.retain(|&o, _| !(lo..hi).contains(&o));
        }
    }

    /// What raw memory must hold after a faulted user's end point (G7): every byte at its
    /// normal-view value.
    pub fn expected_raw(&self) -> Vec<u8> {
        (0..self.initial.len()).map(|o| self.normal_byte(o)).collect()
    }

    /// Bytes whose latest store is by `u` (G7 says none may remain in raw memory after u's
    /// collection unless a later store rewrote them).
    pub fn latest_writer(&self, off: usize) -> Option<u64> {
        self.stores[off].last().map(|&(w, _)| w)
    }
}
