//! BEAM terms as ElixirScope sees them.
//!
//! This crate owns three things:
//! - [`Term`], an owned model of an Erlang term that keeps map order exactly as it
//!   arrived (Elixir's `inspect` output depends on it);
//! - decoding and encoding of the Erlang external term format ([`etf`]), with hard
//!   limits on nesting and sizes so hostile bytes give an error, never a panic or an
//!   unbounded allocation, plus a zero-copy [`view`] used on the ingest hot path;
//! - printing terms the way Elixir's `inspect` prints them ([`inspect`]) and a
//!   structural [`diff`] between two terms;
//! - module/function/arity patterns in Elixir or Erlang syntax ([`mfa_pattern`]);
//! - the markers the capture limits leave in payload terms ([`cut`]).

pub mod cut;
pub mod diff;
pub mod etf;
pub mod inspect;
pub mod mfa_pattern;
pub mod view;

pub use etf::{decode, decode_body, encode, encode_body, DecodeError};
pub use inspect::{inspect, InspectOptions};
pub use mfa_pattern::{CallPattern, PatternError};

/// An Erlang term.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    Atom(String),
    Integer(i64),
    /// An integer that does not fit in `i64`.
    BigInteger(BigInt),
    Float(f64),
    Pid(Pid),
    Port(Port),
    Reference(Reference),
    Fun(Fun),
    Binary(Vec<u8>),
    /// A bitstring whose last byte holds only `bits` (1..=7) significant bits.
    BitBinary {
        bytes: Vec<u8>,
        bits: u8,
    },
    /// A list; `tail` is `None` for a proper list and the improper tail otherwise.
    List {
        items: Vec<Term>,
        tail: Option<Box<Term>>,
    },
    Tuple(Vec<Term>),
    /// Map entries in the order they were encoded.
    Map(Vec<(Term, Term)>),
}

/// An arbitrary-precision integer: sign and little-endian magnitude bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    pub negative: bool,
    pub magnitude_le: Vec<u8>,
}

/// A process identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    pub node: String,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

/// A port identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Port {
    pub node: String,
    pub id: u64,
    pub creation: u32,
}

/// A reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub node: String,
    pub creation: u32,
    pub ids: Vec<u32>,
}

/// A fun (closure or external function reference).
#[derive(Debug, Clone, PartialEq)]
pub enum Fun {
    /// `fun M:F/A` (Elixir `&M.f/a`).
    External {
        module: String,
        function: String,
        arity: u8,
    },
    /// A closure defined in `module`.
    Local {
        module: String,
        arity: u8,
        index: u32,
        uniq: [u8; 16],
        old_index: i64,
        old_uniq: i64,
        pid: Pid,
        free_vars: Vec<Term>,
    },
}

impl Term {
    /// An atom term.
    pub fn atom(name: impl Into<String>) -> Term {
        Term::Atom(name.into())
    }

    /// A proper list.
    pub fn list(items: Vec<Term>) -> Term {
        Term::List { items, tail: None }
    }

    /// A binary holding UTF-8 text (an Elixir string).
    pub fn string(text: &str) -> Term {
        Term::Binary(text.as_bytes().to_vec())
    }

    /// The atom's name, if this is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// The integer value, if this is a small integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Term::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements, if this is a tuple.
    pub fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(t) => Some(t),
            _ => None,
        }
    }

    /// The elements, if this is a proper list.
    pub fn as_list(&self) -> Option<&[Term]> {
        match self {
            Term::List { items, tail: None } => Some(items),
            _ => None,
        }
    }

    /// Looks up a key in a map term.
    pub fn map_get(&self, key: &Term) -> Option<&Term> {
        match self {
            Term::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}
