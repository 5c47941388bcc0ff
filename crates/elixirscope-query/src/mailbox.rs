//! Messages waiting for a process at any moment.
//!
//! `in_flight`: sent to the process at or before T and not yet in its mailbox
//! (no matching receive by T). `unhandled`: for processes whose behaviour
//! callbacks are traced, messages delivered by T that no callback has handled
//! yet (system messages, exit signals and call replies, which OTP consumes
//! itself, are left out, and so is a `receive ... after` that timed out: the
//! VM traces it as receiving `timeout` from nobody, with no message behind it).

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

/// The atom `timeout` (body encoding).
fn is_timeout(term: &[u8]) -> bool {
    let name = b"timeout";
    match term {
        [118, 0, 7, rest @ ..] | [100, 0, 7, rest @ ..] => rest == name,
        [119, 7, rest @ ..] | [115, 7, rest @ ..] => rest == name,
        _ => false,
    }
}

impl Session {
    /// Messages pending for `pid` at `at`.
    pub fn mailbox_at(&self, pid: DictId, at: &Cursor) -> Mailbox {
        let mut sends: BTreeMap<EventId, (i64, DictId, Vec<u8>, Option<EventId>)> = BTreeMap::new();
        let mut received: HashSet<EventId> = HashSet::new();
        let mut delivered: BTreeMap<EventId, (i64, DictId, Vec<u8>)> = BTreeMap::new();
        let mut timeouts: HashSet<EventId> = HashSet::new();
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
                    let msg = e.term.unwrap_or_default();
                    if e.link.is_none() && e.peer == 0 && is_timeout(msg) {
                        timeouts.insert(e.id);
                    }
                    delivered.insert(e.id, (e.ts, e.peer, msg.to_vec()));
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
                .filter(|(id, _)| !handled.contains(id) && !timeouts.contains(id))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Rec, T0, US};
    use elixirscope_store::NewEvent;

    #[allow(clippy::too_many_arguments)]
    fn ev(
        r: &mut Rec,
        us: i64,
        kind: EventKind,
        pid: DictId,
        peer: DictId,
        term: &[u8],
        link: Option<EventId>,
        mfa: DictId,
    ) -> EventId {
        let mut e = NewEvent::new(T0 + us * US, kind, r.node, pid);
        e.peer = peer;
        e.term = Some(term);
        e.link = link;
        e.mfa = mfa;
        r.w.append(&e).unwrap()
    }

    #[test]
    fn a_receive_that_timed_out_is_not_a_message_waiting() {
        // A server handles two casts whose callback sleeps (receive ... after):
        // while it handles the first, the second waits; after the second
        // nothing waits, whatever the two timeouts.
        let mut r = Rec::new();
        let (server, client) = (r.pid(1), r.pid(2));
        let handle = r.mfa("handle_cast");
        let cast = [
            104, 2, 119, 9, b'$', b'g', b'e', b'n', b'_', b'c', b'a', b's', b't', 97, 1,
        ];
        let timeout = [119, 7, b't', b'i', b'm', b'e', b'o', b'u', b't'];
        use EventKind::*;
        let s1 = ev(&mut r, 10, Send, client, server, &cast, None, 0);
        let s2 = ev(&mut r, 20, Send, client, server, &cast, None, 0);
        let r1 = ev(&mut r, 30, Receive, server, client, &cast, Some(s1), 0);
        let r2 = ev(&mut r, 40, Receive, server, client, &cast, Some(s2), 0);
        let c1 = ev(&mut r, 50, Call, server, 0, &cast, Some(r1), handle);
        // Process.sleep in the callback: traced as receiving `timeout`.
        ev(&mut r, 60, Receive, server, 0, &timeout, None, 0);
        ev(&mut r, 70, Return, server, 0, &cast, Some(c1), handle);
        ev(&mut r, 80, Call, server, 0, &cast, Some(r2), handle);
        ev(&mut r, 90, Receive, server, 0, &timeout, None, 0);
        let (s, _home) = r.open();
        let at = |us: i64| Cursor {
            ts: T0 + us * US,
            id: None,
        };
        let mid = s.mailbox_at(server, &at(65));
        assert!(mid.callbacks_traced);
        assert_eq!(mid.unhandled.len(), 1, "the second cast waits: {mid:?}");
        assert_eq!(mid.unhandled[0].event, r2);
        let end = s.mailbox_at(server, &at(100));
        assert!(end.unhandled.is_empty(), "{end:?}");
        assert!(end.in_flight.is_empty());
        assert!(is_timeout(&timeout) && !is_timeout(&cast));
    }
}
