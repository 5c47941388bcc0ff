//! Collections: the comma-separated layout with `limit` truncation shared by
//! tuples, lists, maps and structs; proper, improper and keyword lists; maps
//! (a map with an Elixir alias as `__struct__` goes to the struct printer).

use super::atoms::atom_key;
use super::printer::{decrement, Ctx, Printer};
use super::structs::struct_module;
use crate::Term;

impl Printer<'_> {
    /// Elixir's `container_doc/6` on one line: items joined by `", "`, and
    /// `...` once the limit is used up. Each item is printed with the limit
    /// left after counting it.
    pub(super) fn container<T>(
        &mut self,
        open: &str,
        items: &[T],
        close: &str,
        ctx: Ctx,
        mut each: impl FnMut(&mut Self, &T, Ctx),
    ) {
        self.out.push_str(open);
        let mut limit = ctx.limit;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            if limit == Some(0) {
                self.out.push_str("...");
                break;
            }
            limit = decrement(limit);
            each(self, item, ctx.with_limit(limit));
        }
        self.out.push_str(close);
    }

    pub(super) fn list(&mut self, items: &[&Term], tail: Option<&Term>, ctx: Ctx) {
        if items.is_empty() {
            match tail {
                // Not producible by the BEAM; a list cell with no items is its tail.
                Some(t) => self.term(t, ctx),
                None => self.out.push_str("[]"),
            }
            return;
        }
        if !ctx.as_lists && self.charlist(items, tail) {
            return;
        }
        if tail.is_none() && is_keyword(items) {
            self.container("[", items, "]", ctx, |p, item, c| {
                if let Term::Tuple(kv) = item {
                    p.keyword_pair(&kv[0], &kv[1], c);
                }
            });
            return;
        }
        self.out.push('[');
        let mut limit = ctx.limit;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            if limit == Some(0) {
                self.out.push_str("...");
                break;
            }
            limit = decrement(limit);
            self.term(item, ctx.with_limit(limit));
            if i + 1 == items.len() {
                if let Some(t) = tail {
                    self.out.push_str(" | ");
                    self.term(t, ctx.with_limit(limit));
                }
            }
        }
        self.out.push(']');
    }

    fn keyword_pair(&mut self, key: &Term, value: &Term, ctx: Ctx) {
        if let Term::Atom(k) = key {
            atom_key(k, &mut self.out);
        }
        self.out.push(' ');
        self.term(value, ctx);
    }

    pub(super) fn map(&mut self, entries: &[(Term, Term)], ctx: Ctx) {
        match struct_module(entries) {
            Some(module) if module.starts_with("Elixir.") => self.structure(module, entries, ctx),
            _ => self.plain_map(entries, ctx),
        }
    }

    pub(super) fn plain_map(&mut self, entries: &[(Term, Term)], ctx: Ctx) {
        let keyword = entries
            .iter()
            .all(|(k, _)| matches!(k, Term::Atom(a) if !a.starts_with("Elixir.")));
        self.container("%{", entries, "}", ctx, |p, (k, v), c| {
            if keyword {
                p.keyword_pair(k, v, c);
            } else {
                p.term(k, c);
                p.out.push_str(" => ");
                p.term(v, c);
            }
        });
    }
}

/// Items and improper tail of a list, following nested list tails (which the
/// BEAM never produces, but a hand-built [`Term`] may hold).
pub(super) fn flatten_list(t: &Term) -> (Vec<&Term>, Option<&Term>) {
    let mut items = Vec::new();
    let mut cur = t;
    loop {
        match cur {
            Term::List { items: xs, tail } => {
                items.extend(xs.iter());
                match tail {
                    None => return (items, None),
                    Some(next) => cur = next,
                }
            }
            other => return (items, Some(other)),
        }
    }
}

fn is_keyword(items: &[&Term]) -> bool {
    items.iter().all(|item| match item {
        Term::Tuple(kv) if kv.len() == 2 => {
            matches!(&kv[0], Term::Atom(a) if !a.starts_with("Elixir."))
        }
        _ => false,
    })
}
