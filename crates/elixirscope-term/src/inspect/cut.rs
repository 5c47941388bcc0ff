//! Printing the markers the capture limits leave in payload terms (see
//! [`crate::cut`]): what was left out is said where it was, as `… N more`,
//! `"abc" <> … N more bytes` or `…`, and a GenServer state that was not
//! written out as `#State<as before>` or `#State<not captured>`.

use super::printer::{Ctx, Printer};
use crate::cut::{self, CUT, MORE, NOT_CAPTURED, SAME_STATE};
use crate::Term;

/// What a marker atom prints as, if it is one.
pub(super) fn marker_atom(a: &str) -> Option<&'static str> {
    match a {
        CUT => Some("…"),
        SAME_STATE => Some("#State<as before>"),
        NOT_CAPTURED => Some("#State<not captured>"),
        _ => None,
    }
}

impl Printer<'_> {
    /// `… N more` (`… N+ more` when the rest was not all counted).
    pub(super) fn more(&mut self, n: u64, exact: bool) {
        self.out.push_str("… ");
        self.out.push_str(&n.to_string());
        if !exact {
            self.out.push('+');
        }
        self.out.push_str(" more");
    }

    /// A cut binary: the kept prefix (up to its last whole UTF-8 character
    /// when it reads as text), then how many bytes were left out.
    pub(super) fn cut_binary(&mut self, prefix: &[u8], total: u64, ctx: Ctx) {
        let shown = match std::str::from_utf8(prefix) {
            Ok(_) => prefix,
            Err(e) if e.error_len().is_none() => &prefix[..e.valid_up_to()],
            Err(_) => prefix,
        };
        self.binary(shown, ctx);
        self.out.push_str(" <> … ");
        self.out
            .push_str(&total.saturating_sub(shown.len() as u64).to_string());
        self.out.push_str(" more bytes");
    }

    /// Puts `… N more` inside the closing bracket of what was just printed
    /// from `start` (or after it, for forms without one).
    pub(super) fn close_with_more(&mut self, start: usize, close: char, n: u64, exact: bool) {
        if self.out.len() > start && self.out.ends_with(close) {
            self.out.pop();
            let empty = self.out[start..].ends_with('{') || self.out[start..].ends_with('[');
            if !empty {
                self.out.push_str(", ");
            }
            self.more(n, exact);
            self.out.push(close);
        } else {
            self.out.push_str(" ++ [");
            self.more(n, exact);
            self.out.push(']');
        }
    }

    /// A list whose last item is a `'$es_more'` marker: the rest as a list
    /// (keyword list, charlist ...) with the marker said at its end.
    pub(super) fn cut_list(&mut self, items: &[&Term], n: u64, exact: bool, ctx: Ctx) {
        let start = self.out.len();
        if items.is_empty() {
            self.out.push('[');
            self.more(n, exact);
            self.out.push(']');
            return;
        }
        self.list(items, None, ctx);
        self.close_with_more(start, ']', n, exact);
    }

    /// A map with a `'$es_more' => N` entry: the other entries as the map
    /// (or struct) would print, then `… N more`.
    pub(super) fn cut_map(&mut self, entries: &[(Term, Term)], n: u64, ctx: Ctx) {
        let kept: Vec<(Term, Term)> = entries
            .iter()
            .filter(|(k, _)| !matches!(k, Term::Atom(a) if a == MORE))
            .cloned()
            .collect();
        let start = self.out.len();
        if kept.is_empty() {
            self.out.push_str("%{");
            self.more(n, true);
            self.out.push('}');
            return;
        }
        self.map(&kept, ctx);
        self.close_with_more(start, '}', n, true);
    }
}

/// A trailing `'$es_more'` marker of a list's items.
pub(super) fn trailing_more(items: &[&Term]) -> Option<(u64, bool)> {
    items.last().and_then(|t| cut::more(t))
}
