//! The printer: the output buffer with the options and remote-node numbering
//! state, the item budget carried down into collections, and the dispatch from
//! each kind of term to its rendering rule.

use std::fmt::Write as _;

use super::atoms::atom_literal;
use super::collections::flatten_list;
use super::numbers::{bigint_to_decimal, format_float};
use super::InspectOptions;
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
            Term::Atom(a) => atom_literal(a, &mut self.out),
            Term::Integer(i) => {
                let _ = write!(self.out, "{i}");
            }
            Term::BigInteger(b) => self.out.push_str(&bigint_to_decimal(b)),
            Term::Float(f) => self.out.push_str(&format_float(*f)),
            Term::Binary(b) => self.binary(b, ctx),
            Term::BitBinary { bytes, bits } => self.bitstring(bytes, Some(*bits), ctx),
            Term::List { .. } => {
                let (items, tail) = flatten_list(t);
                self.list(&items, tail, ctx);
            }
            Term::Tuple(items) => {
                self.container("{", items, "}", ctx, |p, item, c| p.term(item, c));
            }
            Term::Map(entries) => self.map(entries, ctx),
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
