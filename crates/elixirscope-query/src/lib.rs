//! The one query interface over ElixirScope sessions.
//!
//! The command line, and later the HTTP API, UI, analyses and exporters, read
//! sessions only through this crate. A [`Session`] wraps the store's reader with
//! the domain's vocabulary: processes by pid or registered name, moments in time
//! ([`time`]), event filters ([`filter`]), the process table and supervision
//! tree at any moment ([`procs`]), behaviour state at any moment ([`state`]),
//! messages pending at any moment ([`mailbox`]), stepping through a process's
//! history ([`step`]), whole-system snapshots ([`snapshot`]), session
//! overviews ([`overview`]), call trees / flame graphs of where the time of
//! recorded calls went ([`flame`]), the call stack of a process at any moment
//! ([`stack`]), the timeline of processes and messages at any zoom level
//! ([`timeline`]) and the filter language the CLI and the UI share
//! ([`search`]). Every result is a serializable value; rendering events for
//! people lives in [`render`].

pub mod filter;
pub mod flame;
pub mod mailbox;
pub mod overview;
pub mod procs;
pub mod render;
pub mod search;
pub mod sequence;
mod session;
pub mod snapshot;
pub mod stack;
pub mod state;
pub mod step;
#[cfg(test)]
mod testkit;
pub mod time;
pub mod timeline;

pub use session::{ProcRef, Session};
pub use time::Cursor;

/// Why a query failed; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Store(#[from] elixirscope_store::StoreError),
    #[error("invalid time '{0}': use an offset from the session start (+1.5s, +250ms, +2m), an RFC 3339 time (2026-11-26T10:00:00Z), an event id (12345), 'start' or 'end'")]
    BadTime(String),
    #[error("event {id} is not in this session (it has {total} events)")]
    NoSuchEvent { id: u64, total: u64 },
    #[error("invalid process '{0}': use a pid (<0.123.0> or #PID<0.123.0>) or a registered name (MyApp.Counter, :my_server)")]
    BadProc(String),
    #[error("empty time range: {from} is not before {to}; --from must come before --to")]
    EmptyRange { from: String, to: String },
    #[error("no process {0} in this session")]
    UnknownProc(String),
    #[error("unknown event kind '{0}'; kinds are: {1}")]
    BadKind(String, String),
    #[error(transparent)]
    BadPattern(#[from] elixirscope_term::PatternError),
    #[error("invalid filter: {0}")]
    BadFilter(String),
}
