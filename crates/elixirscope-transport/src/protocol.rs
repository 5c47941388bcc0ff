//! The frames exchanged with the agent, as terms.
//!
//! Agent to collector:
//! - `{es_hello, Version, Token, Node, Info}`: first frame; `Info` is a map
//!   (OTP release, monotonic clock and time offset in ns, scheduler count ...);
//! - `{es_batch, Seq, DroppedSoFar, Events}`: `Seq` counts up from 1 without gaps,
//!   `DroppedSoFar` is the agent's running total of events it had to drop;
//! - `{es_bye, Seq, Stats}`: last frame after a stop;
//! - `{es_status, Map}`: budget use once a second (not stored).
//!
//! Collector to agent: `{es_welcome}`, `{es_reject, Reason}`, `{es_ack, Seq}`,
//! `{es_stop}`, and `{es_lease}` once a second (silence for the lease time makes
//! the agent stop tracing and unload itself).

use elixirscope_term::view::{Elements, View};
use elixirscope_term::{encode, DecodeError, Term};

/// Protocol version spoken by this collector.
pub const VERSION: i64 = 1;

/// The first frame of a connection.
#[derive(Debug, Clone)]
pub struct Hello {
    pub version: i64,
    pub token: Vec<u8>,
    pub node: String,
    pub info: Term,
}

/// A decoded agent frame (events stay as zero-copy views).
#[derive(Debug)]
pub enum AgentFrame<'a> {
    Hello(Hello),
    Batch {
        seq: u64,
        dropped_total: u64,
        events: Elements<'a>,
    },
    Bye {
        seq: u64,
        stats: Term,
    },
    Status(Term),
}

/// Why a frame is not a valid agent frame.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame is not a valid term: {0}")]
    Term(#[from] DecodeError),
    #[error("unexpected frame: {0}")]
    Shape(&'static str),
}

/// Decodes one frame payload.
pub fn decode_agent_frame(payload: &[u8]) -> Result<AgentFrame<'_>, ProtocolError> {
    let v = View::from_external(payload)?;
    let mut items = v.tuple().ok_or(ProtocolError::Shape("not a tuple"))?;
    let tag = items.next().ok_or(ProtocolError::Shape("empty tuple"))?;
    let uint = |v: Option<View<'_>>, what: &'static str| {
        v.and_then(|x| x.int())
            .filter(|&n| n >= 0)
            .map(|n| n as u64)
            .ok_or(ProtocolError::Shape(what))
    };
    if tag.is_atom("es_batch") && items.len() == 3 {
        let seq = uint(items.next(), "batch sequence number")?;
        let dropped_total = uint(items.next(), "batch drop count")?;
        let events = items
            .next()
            .and_then(|e| e.list())
            .ok_or(ProtocolError::Shape("batch events are not a list"))?;
        return Ok(AgentFrame::Batch {
            seq,
            dropped_total,
            events,
        });
    }
    if tag.is_atom("es_hello") && items.len() == 4 {
        let version = items
            .next()
            .and_then(|x| x.int())
            .ok_or(ProtocolError::Shape("hello version"))?;
        let token = items
            .next()
            .and_then(|x| x.binary())
            .ok_or(ProtocolError::Shape("hello token"))?
            .to_vec();
        let node = items
            .next()
            .and_then(|x| x.atom())
            .ok_or(ProtocolError::Shape("hello node"))?
            .into_owned();
        let info = items
            .next()
            .ok_or(ProtocolError::Shape("hello info"))?
            .to_term()?;
        return Ok(AgentFrame::Hello(Hello {
            version,
            token,
            node,
            info,
        }));
    }
    if tag.is_atom("es_bye") && items.len() == 2 {
        let seq = uint(items.next(), "bye sequence number")?;
        let stats = items
            .next()
            .ok_or(ProtocolError::Shape("bye stats"))?
            .to_term()?;
        return Ok(AgentFrame::Bye { seq, stats });
    }
    if tag.is_atom("es_status") && items.len() == 1 {
        let status = items
            .next()
            .ok_or(ProtocolError::Shape("status"))?
            .to_term()?;
        return Ok(AgentFrame::Status(status));
    }
    Err(ProtocolError::Shape("unknown frame tag"))
}

/// `{es_welcome}`.
pub fn welcome() -> Vec<u8> {
    encode(&Term::Tuple(vec![Term::atom("es_welcome")]))
}

/// `{es_reject, Reason}`.
pub fn reject(reason: &str) -> Vec<u8> {
    encode(&Term::Tuple(vec![
        Term::atom("es_reject"),
        Term::string(reason),
    ]))
}

/// `{es_ack, Seq}`.
pub fn ack(seq: u64) -> Vec<u8> {
    encode(&Term::Tuple(vec![
        Term::atom("es_ack"),
        Term::Integer(seq as i64),
    ]))
}

/// `{es_lease}`.
pub fn lease() -> Vec<u8> {
    encode(&Term::Tuple(vec![Term::atom("es_lease")]))
}

/// `{es_stop}`.
pub fn stop() -> Vec<u8> {
    encode(&Term::Tuple(vec![Term::atom("es_stop")]))
}
