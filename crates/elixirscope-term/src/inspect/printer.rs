//! The printer: the output buffer with the options and remote-node numbering
//! state, the item budget carried down into collections, and the dispatch from
//! each kind of term to its rendering rule.

use std::fmt::Write as _;

use super::atoms::atom_literal;
use super::collections::flatten_list;
use super::cut::{marker_atom, trailing_more};
use super::numbers::{bigint_to_decimal, format_float};
use super::InspectOptions;
use crate::cut;
use crate::Term;

#[derive(Clone, Copy)]
pub(super) struct Ctx {
    /// Remaining item budget for collections (`None` = infinity).
    pub(super) limit: Option<usize>,
    /// Set inside `MapSet.new(...)`: lists never print as charlists.
    pub(super) as_lists: bool,
}

impl Ctx {
    pub(super) fn with_limit(self, limit: Option<usize>) -> Ctx {
        Ctx { limit, ..self }
    }
}

pub(super) fn decrement(limit: Option<usize>) -> Option<usize> {
    limit.map(|l| l.saturating_sub(1))
}

pub(super) struct Printer<'a> {
    pub(super) opts: &'a InspectOptions,
    /// Nodes not in `opts.other_nodes`, numbered after them on first sight.
    pub(super) extra_nodes: Vec<String>,
    pub(super) out: String,
}

impl Printer<'_> {
    pub(super) fn term(&mut self, t: &Term, ctx: Ctx) {
        match t {
            Term::Atom(a) => match marker_atom(a) {
                Some(text) => self.out.push_str(text),
                None => atom_literal(a, &mut self.out),
            },
            Term::Integer(i) => {
                let _ = write!(self.out, "{i}");
            }
            Term::BigInteger(b) => self.out.push_str(&bigint_to_decimal(b)),
            Term::Float(f) => self.out.push_str(&format_float(*f)),
            Term::Binary(b) => self.binary(b, ctx),
            Term::BitBinary { bytes, bits } => self.bitstring(bytes, Some(*bits), ctx),
            Term::List { .. } => {
                let (items, tail) = flatten_list(t);
                match (tail, trailing_more(&items)) {
                    (None, Some((n, exact))) => {
                        self.cut_list(&items[..items.len() - 1], n, exact, ctx)
                    }
                    _ => self.list(&items, tail, ctx),
                }
            }
            Term::Tuple(items) => {
                if let Some((n, exact)) = cut::more(t) {
                    self.more(n, exact);
                } else if let Some((prefix, total)) = cut::cut_binary(t) {
                    self.cut_binary(prefix, total, ctx);
                } else {
                    self.container("{", items, "}", ctx, |p, item, c| p.term(item, c));
                }
            }
            Term::Map(entries) => match cut::map_more(entries) {
                Some(n) => self.cut_map(entries, n, ctx),
                None => self.map(entries, ctx),
            },
            Term::Pid(pid) => self.pid(pid),
            Term::Port(port) => self.port(port),
            Term::Reference(r) => self.reference(r),
            Term::Fun(f) => self.fun(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inspect::{inspect, InspectOptions};
    use crate::Term;

    fn show(t: &Term) -> String {
        inspect(t, &InspectOptions::default())
    }

    #[test]
    fn deep_nesting_prints() {
        let mut t = Term::Integer(1);
        for i in 0..crate::etf::MAX_DEPTH {
            t = if i % 2 == 0 {
                Term::list(vec![t])
            } else {
                Term::Tuple(vec![t])
            };
        }
        // Test threads get 2 MiB of stack by default; ask for no more.
        let s = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || show(&t))
            .unwrap()
            .join()
            .unwrap();
        assert!(s.starts_with("{[{["));
    }
}
