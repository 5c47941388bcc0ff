//! Per-thread caches of encoded atoms and local pids.
//!
//! Atoms and local pids are the most frequent terms in trace events and both
//! are immediates, so their term word identifies them for as long as the
//! capture lasts: each is encoded once per thread and then copied from a small
//! direct-mapped table keyed by the word. An atom's slot also remembers what
//! the redaction rules think of its text (a secret-looking key, a value
//! matching `--redact-value`), so the rules run once per atom, not per use.

use rustler::sys::ERL_NIF_TERM;

const CACHE_SLOTS: usize = 1024;

pub struct Slot {
    pub word: ERL_NIF_TERM,
    pub bytes: Vec<u8>,
    /// The atom's text names a secret (its values are redacted).
    pub secret_key: bool,
    /// The atom's text matches a value rule (the atom itself is redacted).
    pub secret_value: bool,
}

/// A direct-mapped cache from term word to encoded bytes.
pub struct Table {
    slots: Vec<Option<Slot>>,
}

impl Table {
    fn new() -> Table {
        Table { slots: Vec::new() }
    }

    fn index(word: ERL_NIF_TERM) -> usize {
        ((word as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % CACHE_SLOTS
    }

    pub fn get(&self, word: ERL_NIF_TERM) -> Option<&Slot> {
        match self.slots.get(Self::index(word)) {
            Some(Some(s)) if s.word == word => Some(s),
            _ => None,
        }
    }

    pub fn put(&mut self, slot: Slot) {
        if self.slots.is_empty() {
            self.slots.resize_with(CACHE_SLOTS, || None);
        }
        let i = Self::index(slot.word);
        self.slots[i] = Some(slot);
    }
}

/// Per-thread caches of encoded atoms and pids.
pub struct Caches {
    pub atoms: Table,
    pub pids: Table,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            atoms: Table::new(),
            pids: Table::new(),
        }
    }
}
