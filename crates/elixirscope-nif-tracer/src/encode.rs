//! Encoding trace terms to external term format on the scheduler, redacting as
//! it goes.
//!
//! The walk reads terms through the NIF API and writes ETF directly into the
//! thread's scratch buffer. Atoms and local pids, the most frequent terms in
//! trace events, are encoded once per thread and then copied from a small
//! direct-mapped cache keyed by their term word (both are immediates, so the
//! word identifies them for as long as the capture lasts). Terms the walk does
//! not take apart itself (references, funs, ports, big integers, bit strings)
//! go through `enif_term_to_binary`.

use crate::etf;
use crate::redact::{looks_like_card, Rule, Rules, MARK, MAX_DEPTH};
use rustler::sys::{
    enif_get_double, enif_get_int64, enif_get_list_cell, enif_get_local_pid, enif_get_map_size,
    enif_get_map_value, enif_get_tuple, enif_inspect_binary, enif_is_empty_list,
    enif_map_iterator_create, enif_map_iterator_destroy, enif_map_iterator_get_pair,
    enif_map_iterator_next, enif_release_binary, enif_term_to_binary, enif_term_type, ErlNifBinary,
    ErlNifEnv, ErlNifMapIterator, ErlNifMapIteratorEntry, ErlNifPid, ErlNifTermType, ERL_NIF_TERM,
};
use std::mem::MaybeUninit;

const CACHE_SLOTS: usize = 1024;

struct Slot {
    word: ERL_NIF_TERM,
    bytes: Vec<u8>,
    secret: bool,
}

/// A direct-mapped cache from term word to encoded bytes.
struct Table {
    slots: Vec<Option<Slot>>,
}

impl Table {
    fn new() -> Table {
        Table { slots: Vec::new() }
    }

    fn index(word: ERL_NIF_TERM) -> usize {
        ((word as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % CACHE_SLOTS
    }

    fn get(&self, word: ERL_NIF_TERM) -> Option<&Slot> {
        match self.slots.get(Self::index(word)) {
            Some(Some(s)) if s.word == word => Some(s),
            _ => None,
        }
    }

    fn put(&mut self, word: ERL_NIF_TERM, bytes: Vec<u8>, secret: bool) {
        if self.slots.is_empty() {
            self.slots.resize_with(CACHE_SLOTS, || None);
        }
        self.slots[Self::index(word)] = Some(Slot {
            word,
            bytes,
            secret,
        });
    }
}

/// Per-thread caches of encoded atoms and pids.
pub struct Caches {
    atoms: Table,
    pids: Table,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            atoms: Table::new(),
            pids: Table::new(),
        }
    }
}

/// How the elements of a list are encoded.
#[derive(Clone, Copy)]
enum ListMode<'r> {
    /// Every element walked at `depth + 1`.
    Walk { depth: u32, redact: bool },
    /// Call arguments: listed positions replaced, the rest walked at depth 1.
    Args(&'r [usize]),
}

/// One encoding pass over one event.
pub struct Walker<'a> {
    pub env: *mut ErlNifEnv,
    pub out: &'a mut Vec<u8>,
    pub caches: &'a mut Caches,
    pub rules: &'a Rules,
    /// Values redacted in this event, per [`Rule`].
    pub redacted: [u64; 6],
    /// The `__struct__` atom.
    pub struct_key: ERL_NIF_TERM,
    /// Encoding stops growing past this many bytes (the event is then dropped).
    pub limit: usize,
}

impl Walker<'_> {
    /// Whether the encoding outgrew the limit.
    pub fn overflowed(&self) -> bool {
        self.out.len() > self.limit
    }

    /// A term as it is.
    pub fn raw(&mut self, t: ERL_NIF_TERM) {
        self.walk(t, 0, false);
    }

    /// A term through the redaction rules, at nesting depth `depth`.
    pub fn redacted(&mut self, t: ERL_NIF_TERM, depth: u32) {
        let on = self.rules.enabled;
        self.walk(t, depth, on);
    }

    /// A binary literal (e.g. `"[not captured]"`).
    pub fn literal(&mut self, bytes: &[u8]) {
        etf::binary(self.out, bytes);
    }

    fn mark(&mut self, rule: Rule) {
        self.redacted[rule as usize] += 1;
        etf::binary(self.out, MARK);
    }

    fn ty(&self, t: ERL_NIF_TERM) -> ErlNifTermType {
        // SAFETY: env is the callback's environment and t one of its terms.
        unsafe { enif_term_type(self.env, t) }
    }

    fn walk(&mut self, t: ERL_NIF_TERM, depth: u32, redact: bool) {
        if self.overflowed() {
            return;
        }
        if redact && depth > MAX_DEPTH {
            return self.mark(Rule::Depth);
        }
        match self.ty(t) {
            ErlNifTermType::ERL_NIF_TERM_TYPE_ATOM => self.atom(t),
            ErlNifTermType::ERL_NIF_TERM_TYPE_INTEGER => {
                let mut n = 0i64;
                // SAFETY: valid env and term; n is writable.
                if unsafe { enif_get_int64(self.env, t, &mut n) } != 0 {
                    etf::integer(self.out, n);
                } else {
                    self.fallback(t);
                }
            }
            ErlNifTermType::ERL_NIF_TERM_TYPE_FLOAT => {
                let mut f = 0f64;
                // SAFETY: valid env and term; f is writable.
                if unsafe { enif_get_double(self.env, t, &mut f) } != 0 {
                    etf::float(self.out, f);
                } else {
                    self.fallback(t);
                }
            }
            ErlNifTermType::ERL_NIF_TERM_TYPE_PID => self.pid(t),
            ErlNifTermType::ERL_NIF_TERM_TYPE_BITSTRING => match self.bytes_of(t) {
                Some(bytes) => {
                    if bytes.len() > self.limit {
                        self.out.resize(self.limit + 1, 0);
                    } else if redact && self.rules.cards && looks_like_card(bytes) {
                        self.mark(Rule::Card);
                    } else {
                        etf::binary(self.out, bytes);
                    }
                }
                None => self.fallback(t),
            },
            ErlNifTermType::ERL_NIF_TERM_TYPE_LIST => {
                self.list(t, ListMode::Walk { depth, redact })
            }
            ErlNifTermType::ERL_NIF_TERM_TYPE_TUPLE => self.tuple(t, depth, redact),
            ErlNifTermType::ERL_NIF_TERM_TYPE_MAP => self.map(t, depth, redact),
            _ => self.fallback(t),
        }
    }

    /// The bytes of a binary (None for bit strings that are not whole bytes).
    fn bytes_of(&self, t: ERL_NIF_TERM) -> Option<&'static [u8]> {
        let mut bin = MaybeUninit::<ErlNifBinary>::uninit();
        // SAFETY: on success enif_inspect_binary fills `bin` with a view of the
        // binary, valid while the callback's environment lives (the whole walk;
        // the 'static lifetime never escapes `walk`).
        unsafe {
            if enif_inspect_binary(self.env, t, bin.as_mut_ptr()) == 0 {
                return None;
            }
            let bin = bin.assume_init();
            if bin.size == 0 {
                return Some(&[]);
            }
            Some(std::slice::from_raw_parts(bin.data, bin.size))
        }
    }

    /// `term_to_binary` for anything the walk does not take apart.
    fn fallback(&mut self, t: ERL_NIF_TERM) {
        let mut bin = MaybeUninit::<ErlNifBinary>::uninit();
        // SAFETY: on success the binary is ours until released, which happens
        // right after copying its bytes (minus the version byte).
        unsafe {
            if enif_term_to_binary(self.env, t, bin.as_mut_ptr()) == 0 {
                etf::atom(self.out, "undefined");
                return;
            }
            let mut bin = bin.assume_init();
            if bin.size > 1 {
                let bytes = std::slice::from_raw_parts(bin.data, bin.size);
                if bytes.len() > self.limit {
                    self.out.resize(self.limit + 1, 0);
                } else {
                    self.out.extend_from_slice(&bytes[1..]);
                }
            }
            enif_release_binary(&mut bin);
        }
    }

    fn encoded(&mut self, t: ERL_NIF_TERM) -> Vec<u8> {
        let at = self.out.len();
        self.fallback(t);
        self.out.split_off(at)
    }

    pub fn atom(&mut self, t: ERL_NIF_TERM) {
        if let Some(slot) = self.caches.atoms.get(t) {
            self.out.extend_from_slice(&slot.bytes);
            return;
        }
        let bytes = self.encoded(t);
        let secret = etf::atom_text(&bytes).is_some_and(|text| self.rules.secret_text(text));
        self.out.extend_from_slice(&bytes);
        self.caches.atoms.put(t, bytes, secret);
    }

    pub fn pid(&mut self, t: ERL_NIF_TERM) {
        if let Some(slot) = self.caches.pids.get(t) {
            self.out.extend_from_slice(&slot.bytes);
            return;
        }
        let mut pid = MaybeUninit::<ErlNifPid>::uninit();
        // SAFETY: valid env and term; pid is writable.
        let local = unsafe { enif_get_local_pid(self.env, t, pid.as_mut_ptr()) } != 0;
        let bytes = self.encoded(t);
        self.out.extend_from_slice(&bytes);
        if local {
            self.caches.pids.put(t, bytes, false);
        }
    }

    fn is_atom(&self, t: ERL_NIF_TERM) -> bool {
        matches!(self.ty(t), ErlNifTermType::ERL_NIF_TERM_TYPE_ATOM)
    }

    fn is_list(&self, t: ERL_NIF_TERM) -> bool {
        matches!(self.ty(t), ErlNifTermType::ERL_NIF_TERM_TYPE_LIST)
    }

    /// Whether `k` names a secret (atom, or binary of at most 128 bytes).
    fn secret_key(&mut self, k: ERL_NIF_TERM) -> bool {
        if self.rules.keys.is_empty() {
            return false;
        }
        match self.ty(k) {
            ErlNifTermType::ERL_NIF_TERM_TYPE_ATOM => {
                if self.caches.atoms.get(k).is_none() {
                    let at = self.out.len();
                    self.atom(k);
                    self.out.truncate(at);
                }
                self.caches.atoms.get(k).is_some_and(|s| s.secret)
            }
            ErlNifTermType::ERL_NIF_TERM_TYPE_BITSTRING => self
                .bytes_of(k)
                .is_some_and(|b| b.len() <= 128 && self.rules.secret_text(b)),
            _ => false,
        }
    }

    fn elements(&self, t: ERL_NIF_TERM) -> &'static [ERL_NIF_TERM] {
        let mut arity = 0;
        let mut array: *const ERL_NIF_TERM = std::ptr::null();
        // SAFETY: t is a tuple of this env; on success `array` points at its
        // `arity` elements, valid while the env lives (the whole walk).
        unsafe {
            if enif_get_tuple(self.env, t, &mut arity, &mut array) == 0 || arity == 0 {
                return &[];
            }
            std::slice::from_raw_parts(array, arity as usize)
        }
    }

    fn tuple(&mut self, t: ERL_NIF_TERM, depth: u32, redact: bool) {
        let elems = self.elements(t);
        if redact && elems.len() == 2 && self.secret_key(elems[0]) {
            etf::tuple_header(self.out, 2);
            self.raw(elems[0]);
            return self.mark(Rule::Key);
        }
        if redact
            && elems.len() == 4
            && self.is_atom(elems[0])
            && self.is_atom(elems[1])
            && self.is_list(elems[2])
        {
            // A stacktrace entry with arguments: argument rules apply here too.
            etf::tuple_header(self.out, 4);
            self.atom(elems[0]);
            self.atom(elems[1]);
            self.args(elems[0], elems[1], elems[2]);
            return self.walk(elems[3], depth + 1, true);
        }
        etf::tuple_header(self.out, elems.len());
        for &e in elems {
            self.walk(e, depth + 1, redact);
        }
    }

    /// Call arguments of `m:f`: listed positions replaced, the rest redacted
    /// at depth 1 (as the process tracer does).
    pub fn args(&mut self, m: ERL_NIF_TERM, f: ERL_NIF_TERM, args: ERL_NIF_TERM) {
        if !self.rules.enabled {
            return self.raw(args);
        }
        let rules = self.rules;
        let positions = if rules.args.is_empty() {
            &[][..]
        } else {
            rules.positions(m as u64, f as u64, self.list_length(args))
        };
        self.list(args, ListMode::Args(positions));
    }

    fn list_length(&self, mut t: ERL_NIF_TERM) -> usize {
        let mut n = 0;
        let (mut head, mut tail) = (0, 0);
        // SAFETY: valid env and terms; head and tail are writable.
        while unsafe { enif_get_list_cell(self.env, t, &mut head, &mut tail) } != 0 {
            n += 1;
            t = tail;
        }
        n
    }

    fn list(&mut self, t: ERL_NIF_TERM, mode: ListMode<'_>) {
        // SAFETY: valid env and term.
        if unsafe { enif_is_empty_list(self.env, t) } != 0 {
            self.out.push(etf::NIL);
            return;
        }
        let start = self.out.len();
        self.out.extend_from_slice(&[etf::LIST, 0, 0, 0, 0]);
        let mut count = 0usize;
        let mut all_bytes = true;
        let mut cur = t;
        let (mut head, mut tail) = (0, 0);
        // SAFETY: valid env and terms; head and tail are writable.
        while unsafe { enif_get_list_cell(self.env, cur, &mut head, &mut tail) } != 0 {
            count += 1;
            let at = self.out.len();
            match mode {
                ListMode::Walk { depth, redact } => self.walk(head, depth + 1, redact),
                ListMode::Args(positions) if positions.contains(&count) => {
                    self.mark(Rule::Argument)
                }
                ListMode::Args(_) => self.walk(head, 1, true),
            }
            all_bytes &= self.out.len() == at + 2 && self.out[at] == etf::SMALL_INTEGER;
            cur = tail;
            if self.overflowed() {
                return;
            }
        }
        self.out[start + 1..start + 5].copy_from_slice(&(count as u32).to_be_bytes());
        // SAFETY: valid env and term.
        if unsafe { enif_is_empty_list(self.env, cur) } != 0 {
            self.out.push(etf::NIL);
            if all_bytes {
                etf::compact_string(self.out, start, count);
            }
        } else {
            match mode {
                ListMode::Walk { depth, redact } => self.walk(cur, depth + 1, redact),
                ListMode::Args(_) => self.walk(cur, 1, true),
            }
        }
    }

    fn map(&mut self, t: ERL_NIF_TERM, depth: u32, redact: bool) {
        let mut size = 0;
        // SAFETY: valid env and map term; size is writable.
        unsafe { enif_get_map_size(self.env, t, &mut size) };
        self.out.push(etf::MAP);
        self.out.extend_from_slice(&(size as u32).to_be_bytes());
        let whole_struct = redact && !self.rules.structs.is_empty() && {
            let mut module = 0;
            // SAFETY: valid env, map and key; module is writable.
            let found = unsafe { enif_get_map_value(self.env, t, self.struct_key, &mut module) };
            found != 0 && self.rules.is_struct(module as u64)
        };
        let mut iter = MaybeUninit::<ErlNifMapIterator>::uninit();
        // SAFETY: the iterator is created over a map of this env, used only
        // within this function and destroyed before it returns.
        unsafe {
            if enif_map_iterator_create(
                self.env,
                t,
                iter.as_mut_ptr(),
                ErlNifMapIteratorEntry::ERL_NIF_MAP_ITERATOR_HEAD,
            ) == 0
            {
                // Not expected for a map; keep the encoding well formed.
                let at = self.out.len() - 5;
                self.out.truncate(at);
                return self.fallback(t);
            }
            let (mut k, mut v) = (0, 0);
            while enif_map_iterator_get_pair(self.env, iter.as_mut_ptr(), &mut k, &mut v) != 0 {
                self.raw(k);
                if !redact {
                    self.walk(v, depth + 1, false);
                } else if whole_struct {
                    if k == self.struct_key {
                        self.raw(v);
                    } else {
                        self.mark(Rule::Struct);
                    }
                } else if self.secret_key(k) {
                    self.mark(Rule::Key);
                } else {
                    self.walk(v, depth + 1, true);
                }
                enif_map_iterator_next(self.env, iter.as_mut_ptr());
            }
            enif_map_iterator_destroy(self.env, iter.as_mut_ptr());
        }
    }
}
