//! The ElixirScope session store: durable, append-only, queryable while recording.
//!
//! A session is a directory (see [`session`]) holding metadata, one or more
//! segment files of blocks ([`block`]) and a block index. One [`SessionWriter`]
//! appends; any number of [`SessionReader`]s read, even during recording.
//! The event model shared by every later stage lives in [`model`].

pub mod audit;
pub mod block;
pub mod dict;
pub mod model;
pub mod reader;
pub mod session;
mod varint;
pub mod writer;

pub use dict::Dictionary;
pub use model::{DictId, Event, EventId, EventKind, MfaEntry, NewEvent, PidEntry};
pub use reader::SessionReader;
pub use session::{SessionMeta, SessionStatus};
pub use writer::SessionWriter;

use std::path::{Path, PathBuf};

/// Errors of the session store, each saying what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("no session named '{name}'{}", known_hint(known))]
    NotFound { name: String, known: Vec<String> },
    #[error("'{name}' matches several sessions ({}); give more of the name", candidates.join(", "))]
    Ambiguous {
        name: String,
        candidates: Vec<String>,
    },
    #[error("a session named '{0}' already exists; choose another --session name")]
    Exists(String),
    #[error("invalid session name '{0}': use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error("{} is not an ElixirScope session (no session.json)", .0.display())]
    NotASession(PathBuf),
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        "; there are no recorded sessions yet (see `elixirscope sessions`)".into()
    } else {
        format!(
            "; recent sessions: {} (see `elixirscope sessions`)",
            known.join(", ")
        )
    }
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
