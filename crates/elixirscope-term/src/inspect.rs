//! Printing terms exactly as Elixir's `inspect/2` prints them.

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
    /// Maximum bytes of a string/charlist printed (`None` = unlimited).
    pub printable_limit: Option<usize>,
}

/// Prints `term` as Elixir's `inspect(term)` would.
pub fn inspect(term: &Term, opts: &InspectOptions) -> String {
    let _ = opts;
    format!("{term:?}")
}
