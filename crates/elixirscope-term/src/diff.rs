//! Structural differences between two terms (used for GenServer state changes).

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
    if before == after {
        return Vec::new();
    }
    vec![Change {
        path: Vec::new(),
        before: Some(before.clone()),
        after: Some(after.clone()),
    }]
}
