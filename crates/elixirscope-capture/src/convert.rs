//! Converting between ElixirScope's [`Term`] and `eetf` terms used by `erl_dist`.
//!
//! Both sides speak the external term format, so conversion is an encode on one
//! side and a decode on the other; it only happens on the control path (RPC).

use elixirscope_term::{self as term, Term};

/// Our term as an `eetf` term, for sending.
pub fn to_eetf(t: &Term) -> eetf::Term {
    let bytes = term::encode(t);
    eetf::Term::decode(&bytes[..]).expect("a term we encoded decodes")
}

/// An `eetf` term as ours, for reading replies.
pub fn from_eetf(t: &eetf::Term) -> Result<Term, term::DecodeError> {
    let mut bytes = Vec::new();
    t.encode(&mut bytes)
        .map_err(|_| term::DecodeError::Invalid {
            what: "term from the node",
            offset: 0,
        })?;
    term::decode(&bytes)
}
