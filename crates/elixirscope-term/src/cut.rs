//! The markers the capture limits leave in payload terms, and how to find them.
//!
//! Both tracers cut payload terms at the capture's limits and say what they
//! left out with ordinary terms (see the agent's `elixirscope_payload.erl` and
//! the NIF tracer's `limits.rs`):
//!
//! - `{'$es_more', N}` as the last element of a list or tuple: `N` more
//!   elements were left out (`{'$es_more', N, at_least}`: at least `N`, the
//!   rest was not counted); in a map the entry `'$es_more' => N`;
//! - `{'$es_bin', Prefix, Total}`: a binary of `Total` bytes, of which `Prefix`
//!   was kept;
//! - `'$es_cut'`: a term too large for what was left of the event's budget.
//!
//! and, in a GenServer callback's arguments or result, where its state was not
//! written out: `'$es_state'` (the state as last recorded: the very same term)
//! and `'$es_not_captured'` (left out on purpose, the capture was degraded).
//!
//! The printer shows them as `… N more`, `"abc" <> … N more bytes`, `…`,
//! `#State<as before>` and `#State<not captured>`.

use crate::Term;

pub const MORE: &str = "$es_more";
pub const BIN: &str = "$es_bin";
pub const CUT: &str = "$es_cut";
pub const AT_LEAST: &str = "at_least";
pub const SAME_STATE: &str = "$es_state";
pub const NOT_CAPTURED: &str = "$es_not_captured";

/// `{'$es_more', N}` → `(N, true)`, `{'$es_more', N, at_least}` → `(N, false)`.
pub fn more(t: &Term) -> Option<(u64, bool)> {
    match t {
        Term::Tuple(items) => match items.as_slice() {
            [Term::Atom(a), Term::Integer(n)] if a == MORE => Some(((*n).max(0) as u64, true)),
            [Term::Atom(a), Term::Integer(n), Term::Atom(l)] if a == MORE && l == AT_LEAST => {
                Some(((*n).max(0) as u64, false))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `{'$es_bin', Prefix, Total}` → `(Prefix, Total)`.
pub fn cut_binary(t: &Term) -> Option<(&[u8], u64)> {
    match t {
        Term::Tuple(items) => match items.as_slice() {
            [Term::Atom(a), Term::Binary(prefix), Term::Integer(total)] if a == BIN => {
                Some((prefix.as_slice(), (*total).max(0) as u64))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The count of a map's `'$es_more' => N` entry.
pub fn map_more(entries: &[(Term, Term)]) -> Option<u64> {
    entries.iter().find_map(|(k, v)| match (k, v) {
        (Term::Atom(a), Term::Integer(n)) if a == MORE => Some((*n).max(0) as u64),
        _ => None,
    })
}

/// Whether an encoded term holds a marker of the capture limits (a scan of
/// its bytes for the markers' atom names; bounded by the term's size, which
/// the limits bound).
pub fn is_cut_bytes(bytes: &[u8]) -> bool {
    // One pass: every marker's name starts with `$es_`.
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'$') {
        let tail = &rest[at..];
        if [MORE, BIN, CUT]
            .iter()
            .any(|m| tail.starts_with(m.as_bytes()))
        {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}

/// Whether a term holds a marker of the capture limits.
pub fn is_cut(t: &Term) -> bool {
    if more(t).is_some() || cut_binary(t).is_some() {
        return true;
    }
    match t {
        Term::Atom(a) => a == CUT,
        Term::List { items, tail } => {
            items.iter().any(is_cut) || tail.as_deref().is_some_and(is_cut)
        }
        Term::Tuple(items) => items.iter().any(is_cut),
        Term::Map(entries) => entries
            .iter()
            .any(|(k, v)| matches!(k, Term::Atom(a) if a == MORE) || is_cut(k) || is_cut(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_recognised_and_nothing_else() {
        let m = Term::Tuple(vec![Term::atom(MORE), Term::Integer(5)]);
        assert_eq!(more(&m), Some((5, true)));
        let m = Term::Tuple(vec![
            Term::atom(MORE),
            Term::Integer(5),
            Term::atom(AT_LEAST),
        ]);
        assert_eq!(more(&m), Some((5, false)));
        assert_eq!(
            more(&Term::Tuple(vec![Term::atom("ok"), Term::Integer(5)])),
            None
        );
        let b = Term::Tuple(vec![
            Term::atom(BIN),
            Term::Binary(b"ab".to_vec()),
            Term::Integer(9),
        ]);
        assert_eq!(cut_binary(&b), Some((&b"ab"[..], 9)));
        let nested = Term::list(vec![Term::Integer(1), m.clone()]);
        assert!(is_cut(&nested));
        assert!(!is_cut(&Term::list(vec![Term::Integer(1)])));
        assert!(is_cut_bytes(&crate::encode_body(&nested)));
        assert!(!is_cut_bytes(&crate::encode_body(&Term::atom("ok"))));
    }
}
