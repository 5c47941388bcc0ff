//! Agent-to-collector transport: framed TCP carrying Erlang terms.
//!
//! - [`frame`]: 4-byte big-endian length prefix (what `gen_tcp`'s `{packet, 4}`
//!   speaks), with a size cap so a hostile peer cannot make us allocate freely;
//! - [`protocol`]: the frames of the contract (`es_hello`, `es_batch`, `es_bye` from
//!   the agent; `es_welcome`, `es_ack`, `es_stop` to it), decoded zero-copy;
//! - [`server`]: the ingest listener; each agent connection is served by a thread
//!   that checks the token and sequence numbers, hands batches to a [`Sink`], and
//!   acknowledges a batch only after the sink has stored it;
//! - [`tls`]: a per-capture self-signed identity the agent pins; TLS is required
//!   on anything but loopback.

pub mod frame;
pub mod protocol;
pub mod server;
pub mod tls;

pub use protocol::{AgentFrame, Hello};
pub use server::{AgentHandle, IngestServer, Sink, SinkError};
pub use tls::CaptureTls;
