//! Stdlib structs with their own `Inspect` implementation other than the
//! calendar types: `Range`, `MapSet`, `Regex`, `Version.Requirement` and
//! `Stream`.

use super::collections::flatten_list;
use super::escape::{escape, regex_escape};
use super::numbers::compare_integers;
use super::printer::{decrement, Ctx, Printer};
use super::structs::field_value;
use crate::Term;

impl Printer<'_> {
    pub(super) fn range(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let (Some(first), Some(last)) =
            (field_value(entries, "first"), field_value(entries, "last"))
        else {
            return false;
        };
        let step = match field_value(entries, "step") {
            Some(step) => step.clone(),
            // Ranges from before steps existed: the step follows the direction.
            None => match compare_integers(first, last) {
                Some(std::cmp::Ordering::Greater) => Term::Integer(-1),
                Some(_) => Term::Integer(1),
                None => return false,
            },
        };
        self.term(first, ctx);
        self.out.push_str("..");
        self.term(last, ctx);
        let ascending = matches!(
            compare_integers(last, first),
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        );
        if !(step == Term::Integer(1) && ascending) {
            self.out.push_str("//");
            self.term(&step, ctx);
        }
        true
    }

    pub(super) fn map_set(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let Some(Term::Map(set)) = field_value(entries, "map") else {
            return false;
        };
        let items: Vec<&Term> = set.iter().map(|(k, _)| k).collect();
        self.out.push_str("MapSet.new(");
        self.list(
            &items,
            None,
            Ctx {
                as_lists: true,
                ..ctx
            },
        );
        self.out.push(')');
        true
    }

    pub(super) fn regex(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let Some(Term::Binary(source)) = field_value(entries, "source") else {
            return false;
        };
        match field_value(entries, "opts") {
            Some(Term::Binary(flags)) => {
                let normalized = normalize_regex_source(source);
                self.out.push_str("~r/");
                escape(&normalized, b'/', None, regex_escape, &mut self.out);
                self.out.push('/');
                self.out.push_str(&String::from_utf8_lossy(flags));
                true
            }
            Some(opts @ Term::List { .. }) => {
                self.out.push_str("Regex.compile!(");
                self.binary(source, ctx);
                self.out.push_str(", ");
                let (items, tail) = flatten_list(opts);
                self.list(&items, tail, ctx);
                self.out.push(')');
                true
            }
            _ => false,
        }
    }

    pub(super) fn version_requirement(&mut self, entries: &[(Term, Term)]) -> bool {
        let Some(Term::Binary(source)) = field_value(entries, "source") else {
            return false;
        };
        self.out.push_str("Version.parse_requirement!(\"");
        self.out.push_str(&String::from_utf8_lossy(source));
        self.out.push_str("\")");
        true
    }

    pub(super) fn stream(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let (Some(enumerable), Some(funs)) =
            (field_value(entries, "enum"), field_value(entries, "funs"))
        else {
            return false;
        };
        let Some(funs) = funs.as_list() else {
            return false;
        };
        // Prints `#Stream<[enum: enum, funs: reversed_funs]>`: a keyword list of
        // two entries, built here without copying the enumerable.
        let reversed: Vec<&Term> = funs.iter().rev().collect();
        self.out.push_str("#Stream<[");
        let mut limit = ctx.limit;
        for (i, key) in ["enum", "funs"].into_iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            if limit == Some(0) {
                self.out.push_str("...");
                break;
            }
            limit = decrement(limit);
            self.out.push_str(key);
            self.out.push_str(": ");
            if i == 0 {
                self.term(enumerable, ctx.with_limit(limit));
            } else {
                self.list(&reversed, None, ctx.with_limit(limit));
            }
        }
        self.out.push_str("]>");
        true
    }
}

/// `Inspect.Regex`: `\\` stays, `\/` becomes `/` (it is escaped again later).
fn normalize_regex_source(source: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(source.len());
    let mut i = 0;
    while i < source.len() {
        match (source[i], source.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.extend_from_slice(b"\\\\");
                i += 2;
            }
            (b'\\', Some(b'/')) => {
                out.push(b'/');
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}
