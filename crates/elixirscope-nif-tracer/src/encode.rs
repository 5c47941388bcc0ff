//! Encoding trace terms to external term format on the scheduler, within the
//! capture limits and redacting as it goes.
//!
//! The walk reads terms through the NIF API and writes ETF directly into the
//! thread's scratch buffer. It keeps at most the limits ([`Limits`]): past the
//! element limit of a list, tuple or map, past the depth limit or past the
//! event's byte budget it writes a marker saying how much was left out and
//! stops — what is not kept is never visited (the length of a cut list is
//! counted only up to a per-event budget). Atoms and pids come from the
//! thread's [`Caches`]. Terms the walk does not take apart itself
//! (references, funs, ports, big integers, bit strings) go through
//! `enif_term_to_binary`.

use crate::cache::{Caches, Slot};
use crate::etf;
use crate::limits::{self, Limits, CLOSE_RESERVE};
use crate::redact::{looks_like_card, Rule, Rules, MARK, MAX_DEPTH};
use rustler::sys::{
    enif_get_double, enif_get_int64, enif_get_list_cell, enif_get_local_pid, enif_get_map_size,
    enif_get_map_value, enif_get_tuple, enif_inspect_binary, enif_is_empty_list,
    enif_map_iterator_create, enif_map_iterator_destroy, enif_map_iterator_get_pair,
    enif_map_iterator_next, enif_release_binary, enif_term_to_binary, enif_term_type, ErlNifBinary,
    ErlNifEnv, ErlNifMapIterator, ErlNifMapIteratorEntry, ErlNifPid, ErlNifTermType, ERL_NIF_TERM,
};
use std::mem::MaybeUninit;

/// The atom that stands for "the state this process already recorded": in a
/// gen_server callback's arguments (the state it was called with is the one
/// the previous callback returned) and in its result (it returned the very
/// term it was given).
pub const SAME_STATE: &str = "$es_state";
/// A term too large for what is left of the event's byte budget.
pub const CUT: &str = "$es_cut";
/// Bytes past a cut that the value rules still read, so a secret straddling
/// the cut is caught whole.
const LOOKAHEAD: usize = 256;

/// How the elements of a list are encoded.
#[derive(Clone, Copy)]
enum ListMode<'r> {
    /// Every element walked at `depth + 1`.
    Walk { depth: u32, redact: bool },
    /// Call arguments: listed positions replaced, the rest walked at depth 1.
    Args {
        positions: &'r [usize],
        redact: bool,
    },
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
    /// Hard ceiling of the ring: past it the event is dropped (the limits keep
    /// an event far below it).
    pub limit: usize,
    /// What payload terms keep.
    pub limits: Limits,
    /// List cells this event may still count past cuts.
    pub count_left: usize,
    /// Something in this event was cut.
    pub cut: bool,
    /// In call arguments, the 1-based position written as `same_state_atom`.
    pub same_state_arg: Option<usize>,
    /// [`SAME_STATE`], or the atom of a state not captured.
    pub same_state_atom: &'static str,
}

impl<'a> Walker<'a> {
    pub fn new(
        env: *mut ErlNifEnv,
        out: &'a mut Vec<u8>,
        caches: &'a mut Caches,
        rules: &'a Rules,
        struct_key: ERL_NIF_TERM,
        limit: usize,
        limits: Limits,
    ) -> Walker<'a> {
        Walker {
            env,
            out,
            caches,
            rules,
            redacted: [0; 6],
            struct_key,
            limit,
            limits,
            count_left: limits.count_budget(),
            cut: false,
            same_state_arg: None,
            same_state_atom: SAME_STATE,
        }
    }

    /// Whether the encoding outgrew the ring's ceiling.
    pub fn overflowed(&self) -> bool {
        self.out.len() > self.limit
    }

    /// Bytes left of the event's budget.
    fn room(&self) -> usize {
        self.limits.event_bytes.saturating_sub(self.out.len())
    }

    /// The event's budget is spent: containers close now.
    fn spent(&self) -> bool {
        self.room() <= CLOSE_RESERVE
    }

    /// A term as it is (limits apply, redaction does not).
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

    /// An atom given as text (markers).
    pub fn atom_text(&mut self, text: &str) {
        etf::atom(self.out, text);
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
            ErlNifTermType::ERL_NIF_TERM_TYPE_ATOM => {
                if redact {
                    self.atom_redacted(t)
                } else {
                    self.atom(t)
                }
            }
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
            ErlNifTermType::ERL_NIF_TERM_TYPE_BITSTRING => self.binary(t, redact),
            ErlNifTermType::ERL_NIF_TERM_TYPE_LIST => {
                self.list(t, ListMode::Walk { depth, redact })
            }
            ErlNifTermType::ERL_NIF_TERM_TYPE_TUPLE => self.tuple(t, depth, redact),
            ErlNifTermType::ERL_NIF_TERM_TYPE_MAP => self.map(t, depth, redact),
            _ => self.fallback(t),
        }
    }

    fn binary(&mut self, t: ERL_NIF_TERM, redact: bool) {
        let Some(bytes) = self.bytes_of(t) else {
            return self.fallback(t);
        };
        let keep = self
            .limits
            .bytes
            .min(self.room().saturating_sub(CLOSE_RESERVE));
        if redact {
            if self.rules.cards && looks_like_card(bytes) {
                return self.mark(Rule::Card);
            }
            let window = &bytes[..bytes.len().min(keep + LOOKAHEAD)];
            if self.rules.secret_value(window) {
                return self.mark(Rule::Value);
            }
        }
        if bytes.len() <= keep {
            etf::binary(self.out, bytes);
        } else {
            self.cut = true;
            limits::cut_binary(self.out, &bytes[..keep], bytes.len());
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

    /// `term_to_binary` for anything the walk does not take apart; a result
    /// larger than what is left of the event's budget becomes [`CUT`].
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
                if bytes.len() > self.room() {
                    self.cut = true;
                    etf::atom(self.out, CUT);
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

    /// Caches an atom on first sight; returns what the rules think of its
    /// text: (names a secret key, matches a value rule).
    fn atom_flags(&mut self, t: ERL_NIF_TERM) -> (bool, bool) {
        if let Some(slot) = self.caches.atoms.get(t) {
            return (slot.secret_key, slot.secret_value);
        }
        let bytes = self.encoded(t);
        let text = etf::atom_text(&bytes);
        let secret_key = text.is_some_and(|x| self.rules.secret_text(x));
        let secret_value = text.is_some_and(|x| self.rules.secret_value(x));
        self.caches.atoms.put(Slot {
            word: t,
            bytes,
            secret_key,
            secret_value,
        });
        (secret_key, secret_value)
    }

    pub fn atom(&mut self, t: ERL_NIF_TERM) {
        if self.caches.atoms.get(t).is_none() {
            self.atom_flags(t);
        }
        match self.caches.atoms.get(t) {
            Some(slot) => self.out.extend_from_slice(&slot.bytes),
            None => self.fallback(t),
        }
    }

    /// An atom in a payload: replaced when its text matches a value rule.
    fn atom_redacted(&mut self, t: ERL_NIF_TERM) {
        if !self.rules.values.is_empty() && self.atom_flags(t).1 {
            return self.mark(Rule::Value);
        }
        self.atom(t);
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
            self.caches.pids.put(Slot {
                word: t,
                bytes,
                secret_key: false,
                secret_value: false,
            });
        }
    }

    fn is_atom(&self, t: ERL_NIF_TERM) -> bool {
        matches!(self.ty(t), ErlNifTermType::ERL_NIF_TERM_TYPE_ATOM)
    }

    fn is_list(&self, t: ERL_NIF_TERM) -> bool {
        matches!(self.ty(t), ErlNifTermType::ERL_NIF_TERM_TYPE_LIST)
    }

    fn is_byte(&self, t: ERL_NIF_TERM) -> bool {
        let mut n = 0i64;
        // SAFETY: valid env and term; n is writable.
        matches!(self.ty(t), ErlNifTermType::ERL_NIF_TERM_TYPE_INTEGER)
            && unsafe { enif_get_int64(self.env, t, &mut n) } != 0
            && (0..=255).contains(&n)
    }

    /// Whether `k` names a secret (atom, or binary of at most 128 bytes).
    fn secret_key(&mut self, k: ERL_NIF_TERM) -> bool {
        if self.rules.keys.is_empty() {
            return false;
        }
        match self.ty(k) {
            ErlNifTermType::ERL_NIF_TERM_TYPE_ATOM => self.atom_flags(k).0,
            ErlNifTermType::ERL_NIF_TERM_TYPE_BITSTRING => self
                .bytes_of(k)
                .is_some_and(|b| b.len() <= 128 && self.rules.secret_text(b)),
            _ => false,
        }
    }

    pub fn elements(&self, t: ERL_NIF_TERM) -> &'static [ERL_NIF_TERM] {
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
            self.walk(elems[0], depth + 1, false);
            return self.mark(Rule::Key);
        }
        if redact
            && elems.len() == 4
            && self.is_atom(elems[0])
            && self.is_atom(elems[1])
            && self.is_list(elems[2])
            && depth < self.limits.depth
        {
            // A stacktrace entry with arguments: argument rules apply here too.
            etf::tuple_header(self.out, 4);
            self.atom(elems[0]);
            self.atom(elems[1]);
            self.args(elems[0], elems[1], elems[2]);
            return self.walk(elems[3], depth + 1, true);
        }
        self.elements_within_limits(elems, depth, redact);
    }

    /// A tuple's elements (or a return value's, see [`Walker::result_tuple`]),
    /// up to the element limit and the event's budget.
    fn elements_within_limits(&mut self, elems: &[ERL_NIF_TERM], depth: u32, redact: bool) {
        if elems.is_empty() {
            return etf::tuple_header(self.out, 0);
        }
        if depth >= self.limits.depth {
            self.cut = true;
            etf::tuple_header(self.out, 1);
            return limits::more(self.out, elems.len() as u64, true);
        }
        let header = self.out.len();
        etf::tuple_header(self.out, elems.len());
        for (i, &e) in elems.iter().enumerate() {
            if i >= self.limits.elements || self.spent() {
                self.cut = true;
                limits::more(self.out, (elems.len() - i) as u64, true);
                set_tuple_arity(self.out, header, i + 1);
                return;
            }
            self.walk(e, depth + 1, redact);
            if self.overflowed() {
                return;
            }
        }
    }

    /// A callback's return tuple whose element `state` is written as the atom
    /// `instead` ([`SAME_STATE`] for the very state the callback was given).
    pub fn result_tuple(&mut self, elems: &[ERL_NIF_TERM], state: usize, instead: &str) {
        etf::tuple_header(self.out, elems.len());
        for (i, &e) in elems.iter().enumerate() {
            if i == state {
                self.atom_text(instead);
            } else {
                self.redacted(e, 1);
            }
        }
    }

    /// Call arguments of `m:f`: listed positions replaced, the rest redacted
    /// at depth 1 (as the process tracer does).
    pub fn args(&mut self, m: ERL_NIF_TERM, f: ERL_NIF_TERM, args: ERL_NIF_TERM) {
        let rules = self.rules;
        let positions = if !rules.enabled || rules.args.is_empty() {
            &[][..]
        } else {
            rules.positions(m as u64, f as u64, self.list_length(args))
        };
        self.list(
            args,
            ListMode::Args {
                positions,
                redact: rules.enabled,
            },
        );
    }

    fn list_length(&self, mut t: ERL_NIF_TERM) -> usize {
        let mut n = 0;
        let (mut head, mut tail) = (0, 0);
        // SAFETY: valid env and terms; head and tail are writable.
        while n < 256 && unsafe { enif_get_list_cell(self.env, t, &mut head, &mut tail) } != 0 {
            n += 1;
            t = tail;
        }
        n
    }

    /// Cells of the list from `t` on, counted within this event's budget:
    /// `(n, exact)`.
    fn count_rest(&mut self, mut t: ERL_NIF_TERM) -> (u64, bool) {
        let mut n = 0u64;
        let (mut head, mut tail) = (0, 0);
        // SAFETY: valid env and terms; head and tail are writable.
        while unsafe { enif_get_list_cell(self.env, t, &mut head, &mut tail) } != 0 {
            if self.count_left == 0 {
                return (n, false);
            }
            self.count_left -= 1;
            n += 1;
            t = tail;
        }
        (n, true)
    }

    fn list(&mut self, t: ERL_NIF_TERM, mode: ListMode<'_>) {
        // SAFETY: valid env and term.
        if unsafe { enif_is_empty_list(self.env, t) } != 0 {
            self.out.push(etf::NIL);
            return;
        }
        let walk_depth = match mode {
            ListMode::Walk { depth, .. } => Some(depth),
            ListMode::Args { .. } => None,
        };
        if walk_depth.is_some_and(|d| d >= self.limits.depth) {
            self.cut = true;
            let (n, exact) = self.count_rest(t);
            self.out.extend_from_slice(&[etf::LIST, 0, 0, 0, 1]);
            limits::more(self.out, n, exact);
            self.out.push(etf::NIL);
            return;
        }
        let start = self.out.len();
        self.out.extend_from_slice(&[etf::LIST, 0, 0, 0, 0]);
        let mut count = 0usize;
        let mut all_bytes = true;
        let mut cur = t;
        let (mut head, mut tail) = (0, 0);
        let mut cut_at_cell = false;
        // SAFETY: valid env and terms; head and tail are writable.
        while unsafe { enif_get_list_cell(self.env, cur, &mut head, &mut tail) } != 0 {
            // A string (a list of bytes) keeps as many elements as a binary
            // keeps bytes; any other list the element limit.
            let over = if count < self.limits.elements {
                false
            } else {
                !all_bytes || count >= self.limits.bytes || !self.is_byte(head)
            };
            if over || self.spent() {
                cut_at_cell = true;
                break;
            }
            count += 1;
            let at = self.out.len();
            match mode {
                ListMode::Walk { depth, redact } => self.walk(head, depth + 1, redact),
                ListMode::Args { positions, .. } if positions.contains(&count) => {
                    self.mark(Rule::Argument)
                }
                ListMode::Args { .. } if self.same_state_arg == Some(count) => {
                    self.atom_text(self.same_state_atom)
                }
                ListMode::Args { redact, .. } => self.walk(head, 1, redact),
            }
            all_bytes &= self.out.len() == at + 2 && self.out[at] == etf::SMALL_INTEGER;
            cur = tail;
            if self.overflowed() {
                return;
            }
        }
        if let ListMode::Walk { redact: true, .. } = mode {
            if all_bytes && count > 0 && !self.rules.values.is_empty() {
                let mut text: Vec<u8> = self.out[start + 5..]
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .copied()
                    .collect();
                if cut_at_cell {
                    self.lookahead_bytes(cur, &mut text);
                }
                if self.rules.secret_value(&text) {
                    self.out.truncate(start);
                    return self.mark(Rule::Value);
                }
            }
        }
        if cut_at_cell {
            self.cut = true;
            let (n, exact) = self.count_rest(cur);
            limits::more(self.out, n, exact);
            self.out.push(etf::NIL);
            let kept = (count + 1) as u32;
            self.out[start + 1..start + 5].copy_from_slice(&kept.to_be_bytes());
            return;
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
                ListMode::Args { redact, .. } => self.walk(cur, 1, redact),
            }
        }
    }

    /// Appends the bytes of up to [`LOOKAHEAD`] further cells of a string.
    fn lookahead_bytes(&self, mut t: ERL_NIF_TERM, text: &mut Vec<u8>) {
        let (mut head, mut tail) = (0, 0);
        for _ in 0..LOOKAHEAD {
            // SAFETY: valid env and terms; head and tail are writable.
            if unsafe { enif_get_list_cell(self.env, t, &mut head, &mut tail) } == 0 {
                return;
            }
            let mut n = 0i64;
            // SAFETY: valid env and term; n is writable.
            if unsafe { enif_get_int64(self.env, head, &mut n) } == 0 || !(0..=255).contains(&n) {
                return;
            }
            text.push(n as u8);
            t = tail;
        }
    }

    fn map(&mut self, t: ERL_NIF_TERM, depth: u32, redact: bool) {
        let mut size = 0;
        // SAFETY: valid env and map term; size is writable.
        unsafe { enif_get_map_size(self.env, t, &mut size) };
        let mut module = 0;
        // SAFETY: valid env, map and key; module is writable.
        let is_struct =
            unsafe { enif_get_map_value(self.env, t, self.struct_key, &mut module) } != 0;
        if size > 0 && depth >= self.limits.depth {
            // Nothing kept but the struct's name and how many fields there were.
            self.cut = true;
            self.out.push(etf::MAP);
            self.out
                .extend_from_slice(&(1 + u32::from(is_struct)).to_be_bytes());
            if is_struct {
                self.atom(self.struct_key);
                self.walk(module, depth + 1, false);
            }
            limits::more_key(self.out);
            etf::integer(self.out, size as i64 - i64::from(is_struct));
            return;
        }
        let header = self.out.len();
        self.out.push(etf::MAP);
        self.out.extend_from_slice(&(size as u32).to_be_bytes());
        let whole_struct = redact
            && is_struct
            && !self.rules.structs.is_empty()
            && self.rules.is_struct(module as u64);
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
                self.out.truncate(header);
                return self.fallback(t);
            }
            let (mut k, mut v) = (0, 0);
            let mut kept = 0usize;
            while enif_map_iterator_get_pair(self.env, iter.as_mut_ptr(), &mut k, &mut v) != 0 {
                if kept >= self.limits.elements || self.spent() {
                    self.cut = true;
                    limits::more_key(self.out);
                    etf::integer(self.out, (size - kept) as i64);
                    let n = (kept + 1) as u32;
                    self.out[header + 1..header + 5].copy_from_slice(&n.to_be_bytes());
                    break;
                }
                kept += 1;
                self.walk(k, depth + 1, redact && k != self.struct_key);
                if !redact {
                    self.walk(v, depth + 1, false);
                } else if whole_struct {
                    if k == self.struct_key {
                        self.walk(v, depth + 1, false);
                    } else {
                        self.mark(Rule::Struct);
                    }
                } else if k == self.struct_key {
                    self.walk(v, depth + 1, false);
                } else if self.secret_key(k) {
                    self.mark(Rule::Key);
                } else {
                    self.walk(v, depth + 1, true);
                }
                if self.overflowed() {
                    break;
                }
                enif_map_iterator_next(self.env, iter.as_mut_ptr());
            }
            enif_map_iterator_destroy(self.env, iter.as_mut_ptr());
        }
    }
}

/// Rewrites the arity of the tuple whose header starts at `at` (a smaller
/// arity: the header keeps its size).
fn set_tuple_arity(out: &mut [u8], at: usize, arity: usize) {
    match out[at] {
        etf::SMALL_TUPLE => out[at + 1] = arity as u8,
        _ => out[at + 1..at + 5].copy_from_slice(&(arity as u32).to_be_bytes()),
    }
}
