//! Message sequence diagrams: the messages between chosen processes in a
//! time range, each send paired with its receive.

use crate::filter::EventFilter;
use crate::{Cursor, Session};
use elixirscope_store::{DictId, EventId, EventKind};
use rustc_hash::FxHashMap;
use serde::Serialize;

/// One message between two participants.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceMessage {
    pub send: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive: Option<EventId>,
    pub from: String,
    pub to: String,
    pub sent_ns: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_ns: Option<i64>,
    /// The message as Elixir prints it, shortened.
    pub message: String,
}

/// A participant (a lifeline of the diagram).
#[derive(Debug, Clone, Serialize)]
pub struct Participant {
    pub pid: String,
    pub label: String,
}

/// The diagram: participants in the order asked for, then messages in send order.
#[derive(Debug, Clone, Serialize)]
pub struct Sequence {
    pub participants: Vec<Participant>,
    pub messages: Vec<SequenceMessage>,
    /// True when more messages matched than `limit`.
    pub truncated: bool,
}

impl Session {
    /// Messages sent between any two of `pids` (or by/to them, when only one
    /// is given) within the range, at most `limit`.
    pub fn sequence(
        &self,
        pids: &[DictId],
        from: Option<Cursor>,
        to: Option<Cursor>,
        limit: usize,
    ) -> Sequence {
        let f = EventFilter {
            from,
            to,
            pids: pids.to_vec(),
            kinds: vec![EventKind::Send, EventKind::SendToDead, EventKind::Receive],
            limit: usize::MAX,
            ..Default::default()
        };
        let between =
            |a: DictId, b: DictId| pids.len() < 2 || (pids.contains(&a) && pids.contains(&b));
        let mut messages: Vec<SequenceMessage> = Vec::new();
        let mut by_send: FxHashMap<EventId, usize> = FxHashMap::default();
        let mut truncated = false;
        self.scan_filtered(&f, |e| {
            match e.kind {
                EventKind::Receive => {
                    if let Some(&i) = e.link.and_then(|s| by_send.get(&s)) {
                        messages[i].receive = Some(e.id);
                        messages[i].received_ns = Some(e.ts);
                    }
                }
                _ if e.peer != 0 && between(e.pid, e.peer) => {
                    if messages.len() >= limit {
                        truncated = true;
                        return false;
                    }
                    by_send.insert(e.id, messages.len());
                    let mut message = e.term.map(|t| self.inspect_bytes(t)).unwrap_or_default();
                    if message.chars().count() > 120 {
                        message = message.chars().take(120).collect::<String>() + "…";
                    }
                    messages.push(SequenceMessage {
                        send: e.id,
                        receive: None,
                        from: self.pid_text(e.pid),
                        to: self.pid_text(e.peer),
                        sent_ns: e.ts,
                        received_ns: None,
                        message,
                    });
                }
                _ => {}
            }
            true
        });
        let mut order: Vec<DictId> = pids.to_vec();
        if order.len() < 2 {
            for m in &messages {
                for p in [&m.from, &m.to] {
                    if let Ok(Some(id)) = self.find_pid(p) {
                        if !order.contains(&id) {
                            order.push(id);
                        }
                    }
                }
            }
        }
        Sequence {
            participants: order
                .iter()
                .map(|&id| Participant {
                    pid: self.pid_text(id),
                    label: self.proc_label(id),
                })
                .collect(),
            messages,
            truncated,
        }
    }
}
