//! Capture: reaching a BEAM node and making it trace itself.
//!
//! - [`dist`]: hidden-node connection (EPMD, handshake, RPC through `rex`, ticks);
//! - [`agent`]: the Erlang agent (source kept in `agent/`, compiled on the node at
//!   attach), starting and stopping it, unloading it, and checking the node is clean;
//! - [`nif`]: whether the NIF tracer can run on the node (else the process tracer);
//! - [`spec`]: what to capture (profiles, budgets, sampling) and the agent's config;
//! - [`run`]: starting a program with distribution enabled and the agent hook;
//! - [`cookie`]: finding the cookie.

pub mod agent;
pub mod convert;
pub mod cookie;
pub mod dist;
pub mod nif;
pub mod run;
pub mod spec;
mod stream;

pub use dist::{Cookie, NodeConnection};
pub use elixirscope_term::CallPattern;
pub use spec::{Budget, CaptureSpec};

/// Why reaching or capturing a node failed; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("invalid node name '{0}': use name@host (e.g. my_app@localhost)")]
    BadNodeName(String),
    #[error("cannot reach EPMD on {host} ({detail}); is the node running with distribution enabled (--sname/--name)?")]
    EpmdUnreachable { host: String, detail: String },
    #[error(
        "no node '{node}' is registered with EPMD on {host}{}",
        known_nodes(known)
    )]
    UnknownNode {
        node: String,
        host: String,
        known: Vec<String>,
    },
    #[error("cannot connect to node {node}: {detail}")]
    NodeUnreachable { node: String, detail: String },
    #[error("node {node} rejected the connection: wrong cookie? (cookie from {cookie_source}; pass the node's cookie with --cookie or $ELIXIRSCOPE_COOKIE)")]
    CookieRejected { node: String, cookie_source: String },
    #[error("distribution handshake with {node} failed: {detail}")]
    Handshake { node: String, detail: String },
    #[error("lost the connection to {node}: {detail}")]
    ConnectionLost { node: String, detail: String },
    #[error("call {call} on the node failed: {detail}")]
    Rpc { call: String, detail: String },
    #[error("node {node} runs Erlang/OTP {release}; ElixirScope needs OTP 25 or newer")]
    OtpTooOld { node: String, release: String },
    #[error("cannot load the agent on {node}: {detail}")]
    AgentLoad { node: String, detail: String },
    #[error("capture could not start on {node}: {detail}")]
    StartFailed { node: String, detail: String },
    #[error("no cookie: {0}")]
    NoCookie(String),
    #[error(transparent)]
    BadPattern(#[from] elixirscope_term::PatternError),
    #[error("cannot start '{command}': {detail}")]
    Launch { command: String, detail: String },
}

fn known_nodes(known: &[String]) -> String {
    if known.is_empty() {
        " (no nodes are registered there)".into()
    } else {
        format!(" (registered: {})", known.join(", "))
    }
}
