//! Printing terms exactly as Elixir's `inspect/2` prints them.
//!
//! This module owns the Elixir 1.14 rendering rules for every kind of [`Term`]:
//! atoms (with Elixir's quoting rules), integers of any size, floats (shortest
//! round-trip digits, switching between decimal and scientific notation at the
//! same points as the BEAM), strings and their escapes, bitstrings, charlists,
//! keyword lists, improper lists, tuples, maps, structs (including the stdlib
//! structs whose `Inspect` implementation differs from the default), pids, ports,
//! references and funs. Output is always a single line, as with
//! `inspect(term, limit: ..., printable_limit: ...)` (no pretty printing).
//!
//! Where the term alone does not carry what Elixir would consult at run time the
//! output is the closest faithful form:
//! - struct field order comes from the struct module (`__info__(:struct)`); it is
//!   taken from [`InspectOptions::struct_fields`], then from a built-in table of
//!   stdlib structs, and otherwise the fields print in the order they appear in
//!   the map (for maps of up to 32 keys that is alphabetical, which matches every
//!   struct whose fields are declared alphabetically). A map whose `__struct__`
//!   is an Elixir alias always prints as `%Mod{...}`, even where Elixir would fall
//!   back to `%{__struct__: Mod, ...}` because the module is not loaded; a map
//!   whose `__struct__` is any other atom prints as a plain map. Custom
//!   `Inspect` implementations of non-stdlib structs are not known;
//! - a local closure prints as `#Function<Index.Uniq/Arity in Mod>`: Elixir
//!   appends `.name/arity` of the enclosing function, which is not part of the
//!   external term format, and prints closures compiled for a script
//!   (`elixir_compiler_*` modules) as `in file:...`;
//! - a pid, port or reference on another node is numbered by its position in
//!   [`InspectOptions::other_nodes`] (1-based); nodes not listed there are
//!   numbered after them in the order they are first printed. The BEAM numbers
//!   them by an internal table slot instead;
//! - atoms containing non-ASCII characters are classified with approximations of
//!   the Unicode identifier tables Elixir uses (letters via the Unicode
//!   `Alphabetic`/`Uppercase` properties less the common compatibility
//!   characters, a coarse script check by Unicode block, and an NFC check that
//!   knows the precomposed forms of ASCII, Greek and Cyrillic letters); rare
//!   characters outside those can be quoted differently;
//! - where Elixir would raise (a list that passes the charlist check only
//!   because `printable_limit` stopped it early but is not valid chardata, a
//!   stdlib struct with invalid fields) the output is the plain list or the
//!   plain struct respectively.
//!
//! The rules live in one submodule per kind of term; `printer` holds the
//! printing state and hands each term to the rule for its kind.

mod atoms;
mod binaries;
mod calendar;
mod collections;
mod cut;
mod escape;
mod identifiers;
mod numbers;
mod printer;
mod stdlib_fields;
mod stdlib_structs;
mod structs;
mod unicode_ident;

use std::collections::BTreeMap;

use self::atoms::{atom_literal, inner_classify, AtomKind};
use self::printer::{Ctx, Printer};
use crate::Term;

/// How to print terms.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// The node whose pids, ports and references print with node index 0.
    pub local_node: Option<String>,
    /// Other nodes, in the order they should be numbered (1, 2, ...).
    pub other_nodes: Vec<String>,
    /// Maximum number of collection items printed (`None` = unlimited).
    pub limit: Option<usize>,
    /// Maximum characters of a string/charlist printed (`None` = unlimited).
    ///
    /// As in Elixir, the count is in characters, not bytes (an escaped `#{`
    /// counts once).
    pub printable_limit: Option<usize>,
    /// Declared field order of structs, keyed by the module atom as it appears in
    /// `__struct__` (e.g. `"Elixir.MyApp.User"`), without `__struct__` and
    /// `__exception__`. A struct whose keys do not match its entry prints as a
    /// plain map, as Elixir does. Entries here take precedence over the built-in
    /// stdlib table.
    pub struct_fields: BTreeMap<String, Vec<String>>,
}

impl InspectOptions {
    /// Elixir's default limits (`limit: 50`, `printable_limit: 4096`).
    pub fn elixir_defaults() -> InspectOptions {
        InspectOptions {
            limit: Some(50),
            printable_limit: Some(4096),
            ..InspectOptions::default()
        }
    }
}

/// Prints `term` as Elixir's `inspect(term)` would.
pub fn inspect(term: &Term, opts: &InspectOptions) -> String {
    let mut p = Printer {
        opts,
        extra_nodes: Vec::new(),
        out: String::new(),
    };
    p.term(
        term,
        Ctx {
            limit: opts.limit,
            as_lists: false,
        },
    );
    p.out
}

/// Prints an atom the way Elixir writes it as a literal (`:foo`, `Foo.Bar`,
/// `:"foo bar"`, `nil`).
pub fn inspect_atom(name: &str) -> String {
    let mut out = String::new();
    atom_literal(name, &mut out);
    out
}

/// Whether `name` is a plain identifier atom (usable as `map.name`).
pub(crate) fn is_identifier_atom(name: &str) -> bool {
    inner_classify(name) == AtomKind::Identifier
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_capture_limits_cut_is_said_where_it_was() {
        let more = |n| Term::Tuple(vec![Term::atom("$es_more"), Term::Integer(n)]);
        let show = |t: &Term| inspect(t, &InspectOptions::default());
        let l = Term::list(vec![Term::Integer(1), Term::Integer(2), more(87530)]);
        assert_eq!(show(&l), "[1, 2, … 87530 more]");
        let kw = Term::list(vec![
            Term::Tuple(vec![Term::atom("a"), Term::Integer(1)]),
            more(3),
        ]);
        assert_eq!(show(&kw), "[a: 1, … 3 more]");
        let m = Term::Map(vec![
            (Term::atom("$es_more"), Term::Integer(5)),
            (Term::atom("a"), Term::Integer(1)),
        ]);
        assert_eq!(show(&m), "%{a: 1, … 5 more}");
        let only = Term::Map(vec![(Term::atom("$es_more"), Term::Integer(5))]);
        assert_eq!(show(&only), "%{… 5 more}");
        let t = Term::Tuple(vec![Term::Integer(1), more(2)]);
        assert_eq!(show(&t), "{1, … 2 more}");
        let rest = Term::list(vec![Term::Tuple(vec![
            Term::atom("$es_more"),
            Term::Integer(1000),
            Term::atom("at_least"),
        ])]);
        assert_eq!(show(&rest), "[… 1000+ more]");
        let b = Term::Tuple(vec![
            Term::atom("$es_bin"),
            Term::Binary("ab\u{e9}".as_bytes()[..3].to_vec()),
            Term::Integer(1000),
        ]);
        assert_eq!(show(&b), "\"ab\" <> … 998 more bytes");
        let s = Term::Map(vec![
            (Term::atom("__struct__"), Term::atom("Elixir.MyApp.User")),
            (Term::atom("$es_more"), Term::Integer(4)),
        ]);
        assert_eq!(show(&s), "%MyApp.User{… 4 more}");
        assert_eq!(show(&Term::atom("$es_state")), "#State<as before>");
        assert_eq!(show(&Term::atom("$es_cut")), "…");
        let chars = Term::list(vec![Term::Integer(104), Term::Integer(105), more(7)]);
        assert_eq!(show(&chars), "'hi' ++ [… 7 more]");
    }

    #[test]
    fn limits() {
        let l = Term::list((1..=5).map(Term::Integer).collect());
        let opts = InspectOptions {
            limit: Some(2),
            ..InspectOptions::default()
        };
        assert_eq!(inspect(&l, &opts), "[1, 2, ...]");
        let s = Term::string("abcdef");
        let opts = InspectOptions {
            printable_limit: Some(3),
            ..InspectOptions::default()
        };
        assert_eq!(inspect(&s, &opts), "\"abc\" <> ...");
    }
}
