//! Messages waiting for a process at any moment.
//!
//! `in_flight`: sent to the process at or before T and not yet in its mailbox
//! (no matching receive by T). `unhandled`: for processes whose behaviour
//! callbacks are traced, messages delivered by T that no callback has handled
//! yet (system messages, exit signals and call replies, which OTP consumes
//! itself, are left out).

use crate::{Cursor, Session};
use elixirscope_store::{DictId, EventId, EventKind};
use elixirscope_term::Term;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// A message waiting for the process.
#[derive(Debug, Clone, Serialize)]
pub struct PendingMessage {
    /// The send event (for in-flight) or the receive event (for unhandled).
    pub event: EventId,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub message: String,
}

/// The mailbox of a process at a moment.
#[derive(Debug, Clone, Serialize)]
pub struct Mailbox {
    pub session: String,
    pub pid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub at: String,
    pub in_flight: Vec<PendingMessage>,
    pub unhandled: Vec<PendingMessage>,
    /// Whether the process's callbacks are traced (so `unhandled` is meaningful).
    pub callbacks_traced: bool,
}

fn consumed_by_otp(t: &Term) -> bool {
    match t {
        Term::Tuple(items) => match items.first() {
            Some(Term::Atom(a)) => a == "system" || a == "EXIT" || a == "DOWN" || a == "io_reply",
            Some(Term::Reference(_)) => true,
            Some(Term::List { items, .. }) => {
                matches!(items.first(), Some(Term::Atom(a)) if a == "alias")
            }
            _ => false,
        },
        _ => false,
    }
}

impl Session {
    /// Messages pending for `pid` at `at`.
    pub fn mailbox_at(&self, pid: DictId, at: &Cursor) -> Mailbox {
        let mut sends: BTreeMap<EventId, (i64, DictId, Vec<u8>, Option<EventId>)> = BTreeMap::new();
        let mut received: HashSet<EventId> = HashSet::new();
        let mut delivered: BTreeMap<EventId, (i64, DictId, Vec<u8>)> = BTreeMap::new();
        let mut handled: HashSet<EventId> = HashSet::new();
        let mut callbacks = false;
        let kinds = [
            EventKind::Send,
            EventKind::Receive,
            EventKind::Call,
            EventKind::State,
        ];
        self.scan_until(at, Some(pid), &kinds, |e| {
            match e.kind {
                EventKind::Send if e.peer == pid => {
                    sends.insert(
                        e.id,
                        (e.ts, e.pid, e.term.unwrap_or_default().to_vec(), e.link),
                    );
                }
                EventKind::Receive if e.pid == pid => {
                    received.insert(e.id);
                    if let Some(s) = e.link {
                        sends.remove(&s);
                    }
                    delivered.insert(e.id, (e.ts, e.peer, e.term.unwrap_or_default().to_vec()));
                }
                EventKind::Call if e.pid == pid => {
                    // Only behaviour callbacks are linked to the message they handle.
                    if let Some(r) = e.link {
                        handled.insert(r);
                        callbacks = true;
                    }
                }
                EventKind::State | EventKind::StateSnapshot if e.pid == pid => callbacks = true,
                _ => {}
            }
            true
        });
        let pending = |id: EventId, ts: i64, from: DictId, msg: &[u8]| PendingMessage {
            event: id,
            at: self.relative(ts),
            from: (from != 0).then(|| self.proc_label(from)),
            message: self.inspect_bytes(msg),
        };
        let in_flight = sends
            .iter()
            .filter(|(_, (_, _, _, link))| !link.is_some_and(|r| received.contains(&r)))
            .map(|(id, (ts, from, msg, _))| pending(*id, *ts, *from, msg))
            .collect();
        let unhandled = if callbacks {
            delivered
                .iter()
                .filter(|(id, _)| !handled.contains(id))
                .filter(|(_, (_, _, msg))| !self.term(msg).is_some_and(|t| consumed_by_otp(&t)))
                .map(|(id, (ts, from, msg))| pending(*id, *ts, *from, msg))
                .collect()
        } else {
            Vec::new()
        };
        Mailbox {
            session: self.name().to_owned(),
            pid: self.pid_text(pid),
            name: self.name_at(pid, at).or_else(|| self.any_name(pid)),
            at: self.relative(at.ts.min(self.end_ns())),
            in_flight,
            unhandled,
            callbacks_traced: callbacks,
        }
    }
}
