//! Structural differences between two terms (used for GenServer state changes).
//!
//! [`diff`] walks both terms together: maps and structs are compared key by key
//! (changed, added and removed keys), tuples of the same size element by
//! element, and proper lists of the same length index by index. Anything else
//! that differs (other types, a tuple that grew, a struct of another module, a
//! list whose length changed) is reported as one change at that path. Map
//! entries are matched by key, so two maps holding the same entries in a
//! different order have no differences.
//!
//! Changes come out depth-first in the order of the `after` term; within a map,
//! keys that were removed follow the changed and added ones, in their `before`
//! order. [`path_to_string`] renders a path for people to read.

use std::collections::HashMap;

use crate::inspect::{inspect, is_identifier_atom, InspectOptions};
use crate::Term;

/// One difference between two terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Where the change is, from the root.
    pub path: Vec<PathSegment>,
    /// The value before (`None` if it was added).
    pub before: Option<Term>,
    /// The value after (`None` if it was removed).
    pub after: Option<Term>,
}

/// One step into a term.
#[derive(Debug, Clone, PartialEq)]
pub enum PathSegment {
    /// A map or struct key.
    Key(Term),
    /// A tuple element (0-based).
    Element(usize),
    /// A list element (0-based).
    Index(usize),
}

/// Differences between `before` and `after`, outermost first.
pub fn diff(before: &Term, after: &Term) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut path = Vec::new();
    walk(before, after, &mut path, &mut changes);
    for c in &mut changes {
        // A map cut by the capture limits: its count of entries left out
        // changed; show the counts as the markers they are.
        if matches!(c.path.last(), Some(PathSegment::Key(Term::Atom(a))) if a == crate::cut::MORE) {
            let marker = |t: &mut Option<Term>| {
                if let Some(Term::Integer(n)) = t {
                    *t = Some(Term::Tuple(vec![
                        Term::atom(crate::cut::MORE),
                        Term::Integer(*n),
                    ]));
                }
            };
            marker(&mut c.before);
            marker(&mut c.after);
        }
    }
    changes
}

/// Renders a path in Elixir-like access syntax, appended to nothing (the root
/// is the empty string):
/// - an atom key that is a plain identifier: `.count`;
/// - any other key, inspected: `["key"]`, `[42]`, `[:"odd key"]`, `[{1, 2}]`;
/// - a tuple element: `|> elem(1)`;
/// - a list element: `|> Enum.at(2)`.
///
/// So `state.users["alice"] |> elem(1)` reads as
/// `.users["alice"] |> elem(1)`. Keys are inspected with Elixir's default
/// limits so a huge key cannot produce a huge path.
pub fn path_to_string(path: &[PathSegment]) -> String {
    let opts = InspectOptions::elixir_defaults();
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSegment::Key(Term::Atom(a)) if a == crate::cut::MORE => {
                out.push_str(" (entries past the capture limits)");
            }
            PathSegment::Key(Term::Atom(a)) if is_identifier_atom(a) => {
                out.push('.');
                out.push_str(a);
            }
            PathSegment::Key(k) => {
                out.push('[');
                out.push_str(&inspect(k, &opts));
                out.push(']');
            }
            PathSegment::Element(i) => {
                out.push_str(&format!(" |> elem({i})"));
            }
            PathSegment::Index(i) => {
                out.push_str(&format!(" |> Enum.at({i})"));
            }
        }
    }
    // A path that starts with a pipe reads better without the leading space.
    match out.strip_prefix(' ') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

fn walk(before: &Term, after: &Term, path: &mut Vec<PathSegment>, out: &mut Vec<Change>) {
    if before == after {
        return;
    }
    match (before, after) {
        (Term::Map(b), Term::Map(a)) if struct_name(b) == struct_name(a) => {
            walk_map(b, a, path, out);
        }
        (Term::Tuple(b), Term::Tuple(a)) if b.len() == a.len() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                path.push(PathSegment::Element(i));
                walk(x, y, path, out);
                path.pop();
            }
        }
        (
            Term::List {
                items: b,
                tail: None,
            },
            Term::List {
                items: a,
                tail: None,
            },
        ) if b.len() == a.len() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                path.push(PathSegment::Index(i));
                walk(x, y, path, out);
                path.pop();
            }
        }
        _ => out.push(Change {
            path: path.clone(),
            before: Some(before.clone()),
            after: Some(after.clone()),
        }),
    }
}

fn walk_map(
    before: &[(Term, Term)],
    after: &[(Term, Term)],
    path: &mut Vec<PathSegment>,
    out: &mut Vec<Change>,
) {
    let before_index = KeyIndex::new(before);
    let after_index = KeyIndex::new(after);
    for (k, v) in after {
        match before_index.get(before, k) {
            Some(old) => {
                path.push(PathSegment::Key(k.clone()));
                walk(old, v, path, out);
                path.pop();
            }
            None => {
                path.push(PathSegment::Key(k.clone()));
                out.push(Change {
                    path: path.clone(),
                    before: None,
                    after: Some(v.clone()),
                });
                path.pop();
            }
        }
    }
    for (k, v) in before {
        if after_index.get(after, k).is_none() {
            path.push(PathSegment::Key(k.clone()));
            out.push(Change {
                path: path.clone(),
                before: Some(v.clone()),
                after: None,
            });
            path.pop();
        }
    }
}

/// The module of a struct (`None` for a plain map).
fn struct_name(entries: &[(Term, Term)]) -> Option<&str> {
    entries.iter().find_map(|(k, v)| match (k, v) {
        (Term::Atom(k), Term::Atom(m)) if k == "__struct__" => Some(m.as_str()),
        _ => None,
    })
}

/// Maps with more entries than this are indexed by their encoded keys
/// instead of scanned.
const SCAN_LIMIT: usize = 16;

/// Key lookup into a map's entries: a linear scan for small maps, a hash of
/// the keys' external-format encoding for larger ones.
struct KeyIndex {
    by_encoding: Option<HashMap<Vec<u8>, usize>>,
}

impl KeyIndex {
    fn new(entries: &[(Term, Term)]) -> KeyIndex {
        if entries.len() <= SCAN_LIMIT {
            return KeyIndex { by_encoding: None };
        }
        let mut map = HashMap::with_capacity(entries.len());
        for (i, (k, _)) in entries.iter().enumerate() {
            map.entry(crate::encode_body(k)).or_insert(i);
        }
        KeyIndex {
            by_encoding: Some(map),
        }
    }

    fn get<'t>(&self, entries: &'t [(Term, Term)], key: &Term) -> Option<&'t Term> {
        match &self.by_encoding {
            None => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Some(map) => map.get(&crate::encode_body(key)).map(|&i| &entries[i].1),
        }
    }
}

#[cfg(test)]
mod cut_tests {
    use super::*;

    #[test]
    fn a_cut_map_that_grew_past_the_limits_says_so() {
        let m = |n| {
            Term::Map(vec![
                (Term::atom("a"), Term::Integer(1)),
                (Term::atom("$es_more"), Term::Integer(n)),
            ])
        };
        let s = |m| Term::Map(vec![(Term::atom("entries"), m)]);
        let changes = diff(&s(m(5)), &s(m(6)));
        assert_eq!(changes.len(), 1);
        assert_eq!(
            path_to_string(&changes[0].path),
            ".entries (entries past the capture limits)"
        );
        let show = |t: &Option<Term>| inspect(t.as_ref().unwrap(), &InspectOptions::default());
        assert_eq!(show(&changes[0].before), "… 5 more");
        assert_eq!(show(&changes[0].after), "… 6 more");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Term {
        Term::atom(s)
    }

    fn int(i: i64) -> Term {
        Term::Integer(i)
    }

    fn map(entries: Vec<(Term, Term)>) -> Term {
        Term::Map(entries)
    }

    #[test]
    fn equal_terms_have_no_changes() {
        let t = map(vec![(a("a"), int(1))]);
        assert!(diff(&t, &t).is_empty());
    }

    #[test]
    fn maps_compare_by_key_regardless_of_order() {
        let before = map(vec![(a("a"), int(1)), (a("b"), int(2))]);
        let after = map(vec![(a("b"), int(2)), (a("a"), int(1))]);
        assert!(diff(&before, &after).is_empty());
    }

    #[test]
    fn map_changes_in_after_order_with_removals_last() {
        let before = map(vec![
            (a("gone"), int(0)),
            (a("count"), int(1)),
            (Term::string("key"), int(5)),
        ]);
        let after = map(vec![
            (Term::string("key"), int(6)),
            (a("new"), int(9)),
            (a("count"), int(2)),
        ]);
        let changes = diff(&before, &after);
        let rendered: Vec<_> = changes
            .iter()
            .map(|c| (path_to_string(&c.path), c.before.clone(), c.after.clone()))
            .collect();
        assert_eq!(
            rendered,
            vec![
                ("[\"key\"]".to_string(), Some(int(5)), Some(int(6))),
                (".new".to_string(), None, Some(int(9))),
                (".count".to_string(), Some(int(1)), Some(int(2))),
                (".gone".to_string(), Some(int(0)), None),
            ]
        );
    }

    #[test]
    fn recurses_into_structs_tuples_and_lists() {
        let s = |n: i64, l: Vec<Term>| {
            map(vec![
                (a("__struct__"), a("Elixir.State")),
                (a("items"), Term::list(l)),
                (a("pair"), Term::Tuple(vec![int(n), a("x")])),
            ])
        };
        let before = s(1, vec![int(1), int(2)]);
        let after = s(2, vec![int(1), int(3)]);
        let changes = diff(&before, &after);
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0].path,
            vec![PathSegment::Key(a("items")), PathSegment::Index(1)]
        );
        assert_eq!(path_to_string(&changes[0].path), ".items |> Enum.at(1)");
        assert_eq!(changes[0].before, Some(int(2)));
        assert_eq!(changes[0].after, Some(int(3)));
        assert_eq!(path_to_string(&changes[1].path), ".pair |> elem(0)");
    }

    #[test]
    fn different_shapes_are_one_change() {
        let cases = [
            (Term::Tuple(vec![int(1)]), Term::Tuple(vec![int(1), int(2)])),
            (Term::list(vec![int(1)]), Term::list(vec![int(1), int(2)])),
            (int(1), Term::Float(1.0)),
            (
                map(vec![(a("__struct__"), a("Elixir.A")), (a("x"), int(1))]),
                map(vec![(a("__struct__"), a("Elixir.B")), (a("x"), int(1))]),
            ),
            (
                map(vec![(a("x"), int(1))]),
                map(vec![(a("__struct__"), a("Elixir.B")), (a("x"), int(1))]),
            ),
            (
                Term::List {
                    items: vec![int(1)],
                    tail: Some(Box::new(int(2))),
                },
                Term::List {
                    items: vec![int(1)],
                    tail: Some(Box::new(int(3))),
                },
            ),
        ];
        for (before, after) in cases {
            let changes = diff(&before, &after);
            assert_eq!(
                changes,
                vec![Change {
                    path: vec![],
                    before: Some(before.clone()),
                    after: Some(after.clone()),
                }]
            );
        }
    }

    #[test]
    fn large_maps_use_the_index() {
        let before = map((0..100).map(|i| (int(i), int(i))).collect());
        let mut entries: Vec<_> = (0..100).rev().map(|i| (int(i), int(i))).collect();
        entries[10].1 = int(-1); // key 89
        entries.pop(); // key 0 removed
        entries.push((int(1000), int(0)));
        let after = map(entries);
        let changes = diff(&before, &after);
        let paths: Vec<_> = changes.iter().map(|c| path_to_string(&c.path)).collect();
        assert_eq!(paths, vec!["[89]", "[1000]", "[0]"]);
    }

    #[test]
    fn path_rendering() {
        let path = vec![
            PathSegment::Element(1),
            PathSegment::Key(a("users")),
            PathSegment::Key(a("odd key")),
            PathSegment::Key(a("Elixir.Foo")),
            PathSegment::Key(Term::Tuple(vec![int(1), int(2)])),
            PathSegment::Index(0),
        ];
        assert_eq!(
            path_to_string(&path),
            "|> elem(1).users[:\"odd key\"][Foo][{1, 2}] |> Enum.at(0)"
        );
        assert_eq!(path_to_string(&[]), "");
    }
}
