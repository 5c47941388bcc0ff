//! Behaviour state of a process at any moment: the state, what changed it, and how.
//!
//! The state at T is the newest state event of the process at or before T (a
//! callback's result, or the state read when capture started). Its previous
//! state gives the structural diff; the callback that produced it links to the
//! message it handled. The store's state index lists every state event per
//! process, so finding them is a binary search and reading one or two blocks,
//! whatever the session size.

use crate::{Cursor, Session};
use elixirscope_store::model::state_flags;
use elixirscope_store::{DictId, EventId, EventKind};
use elixirscope_term::diff::{diff, path_to_string};
use elixirscope_term::{inspect, Term};
use serde::Serialize;

/// One difference between the previous and the current state.
#[derive(Debug, Clone, Serialize)]
pub struct DiffEntry {
    /// Where, e.g. `.count`, `["key"]`, `|> elem(1)`; empty for the whole state.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The callback run that produced the state.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The state event.
    pub event: EventId,
    pub at: String,
    /// `Demo.Counter.handle_call/3`, or `state read at capture start`.
    pub by: String,
    /// The callback's call event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_event: Option<EventId>,
    /// The callback's arguments (without the state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// The message that triggered the callback, as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_event: Option<EventId>,
    /// Who sent that message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_from: Option<String>,
}

/// State of a process at a moment.
#[derive(Debug, Clone, Serialize)]
pub struct StateAt {
    pub session: String,
    pub pid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub at: String,
    /// The state as Elixir's `inspect` prints it (`null` if unknown at that moment).
    pub state: Option<String>,
    /// The callback run (or start-of-capture read) that last changed the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Change>,
    /// The state before that change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
    /// What that change did, path by path.
    pub diff: Vec<DiffEntry>,
    /// How many callbacks ran after the change without altering the state
    /// (counted up to 256).
    pub unchanged_callbacks: usize,
    /// The newest of those (at most five), newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchanged_since: Vec<Change>,
    /// The capture limits cut the state shown (it says where, as `… N more`);
    /// the diff covers what was kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// How sure the change is, when it is not certain: the kept parts are
    /// equal but the cut part may have changed, or the state before was not
    /// recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_note: Option<String>,
    /// The capture of this process's state was degraded before this moment
    /// (to protect the node): what the newest step said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// How far back to look for the change behind a run of unchanged callbacks.
const MAX_UNCHANGED: usize = 256;

struct Found {
    id: EventId,
    ts: i64,
    kind: EventKind,
    mfa: DictId,
    link: Option<EventId>,
    /// The callback left the state as it was.
    unchanged: bool,
    flags: u64,
    term: Vec<u8>,
}

impl Session {
    /// The newest state events of `pid` at or before `at`, newest first,
    /// found through the state index (no scanning): read one by one until the
    /// change behind the current state and the state before it are found, or
    /// `n` events were read.
    fn last_states(&self, pid: DictId, at: &Cursor, n: usize) -> Vec<Found> {
        let entries = self.reader().state_index().of(pid);
        // Entries are in time order; events stored slightly out of time order
        // are covered by looking a second past the moment.
        let horizon = at.ts.saturating_add(1_000_000_000);
        let end = entries.partition_point(|(ts, _)| *ts <= horizon);
        let mut picked: Vec<(i64, EventId)> = entries[..end]
            .iter()
            .rev()
            .filter(|(ts, id)| at.includes(*ts, *id))
            .take(n + 4)
            .copied()
            .collect();
        picked.sort_by(|a, b| b.cmp(a));
        let mut found = Vec::new();
        let mut changes = 0;
        for (_, id) in picked.into_iter().take(n) {
            let Some(f) = self.reader().with_event(id, |e| Found {
                id: e.id,
                ts: e.ts,
                kind: e.kind,
                mfa: e.mfa,
                link: e.link,
                unchanged: e.kind == EventKind::State && e.aux & state_flags::UNCHANGED != 0,
                flags: if e.kind == EventKind::State { e.aux } else { 0 },
                term: e.term.unwrap_or_default().to_vec(),
            }) else {
                continue;
            };
            changes += usize::from(!f.unchanged);
            found.push(f);
            if changes == 2 {
                break;
            }
        }
        found
    }

    /// The state of `pid` at `at`.
    pub fn state_at(&self, pid: DictId, at: &Cursor) -> StateAt {
        let found = self.last_states(pid, at, MAX_UNCHANGED + 2);
        let opts = self.inspect_options();
        let current = found.first();
        // The newest event that changed the state, and the one before it.
        let change_at = found.iter().position(|f| !f.unchanged).unwrap_or(0);
        let change = found.get(change_at);
        let previous = found.get(change_at + 1);
        let cur_term = current.and_then(|f| self.term(&f.term));
        let change_term = change.and_then(|f| self.term(&f.term));
        let prev_term = previous.and_then(|f| self.term(&f.term));
        let diff_entries = match (&prev_term, &change_term) {
            (Some(p), Some(c)) => diff(p, c)
                .into_iter()
                .map(|ch| DiffEntry {
                    path: path_to_string(&ch.path),
                    before: ch.before.as_ref().map(|t| inspect(t, &opts)),
                    after: ch.after.as_ref().map(|t| inspect(t, &opts)),
                })
                .collect(),
            _ => Vec::new(),
        };
        StateAt {
            session: self.name().to_owned(),
            pid: self.pid_text(pid),
            name: self.name_at(pid, at).or_else(|| self.any_name(pid)),
            at: self.relative(at.ts.min(self.end_ns())),
            state: cur_term.as_ref().map(|t| inspect(t, &opts)),
            changed: change.map(|f| self.change(f)),
            previous_state: prev_term.as_ref().map(|t| inspect(t, &opts)),
            diff: diff_entries,
            unchanged_callbacks: change_at,
            unchanged_since: found[..change_at.min(found.len())]
                .iter()
                .take(5)
                .map(|f| self.change(f))
                .collect(),
            truncated: current.is_some_and(|f| {
                f.flags & state_flags::TRUNCATED != 0 || elixirscope_term::cut::is_cut_bytes(&f.term)
            }),
            change_note: change.and_then(|f| {
                if f.flags & state_flags::UNSURE != 0 {
                    Some("equal to the state before as far as both were kept; the part the capture limits cut may have changed".into())
                } else if f.flags & state_flags::BEFORE_UNKNOWN != 0 {
                    Some("the state before this callback was not recorded (events were dropped), so what changed is not known".into())
                } else {
                    None
                }
            }),
            degraded: self.degraded_before(pid, at),
        }
    }

    /// What the newest degradation of `pid`'s state capture at or before
    /// `at` said.
    fn degraded_before(&self, pid: DictId, at: &Cursor) -> Option<String> {
        let mut newest = None;
        self.scan_kinds(&[EventKind::Degrade], |e| {
            if e.pid == pid && at.includes(e.ts, e.id) {
                newest = Some(self.describe(e, None).summary);
            }
        });
        newest
    }

    fn change(&self, f: &Found) -> Change {
        let mut c = Change {
            event: f.id,
            at: self.relative(f.ts),
            by: if f.kind == EventKind::StateSnapshot {
                "state read at capture start".into()
            } else {
                self.mfa_text(f.mfa)
            },
            call_event: f.link,
            arguments: None,
            message: None,
            message_event: None,
            message_from: None,
        };
        let Some(call) = f.link else { return c };
        let call_info = self
            .reader()
            .with_event(call, |e| (e.term.map(|t| t.to_vec()), e.link));
        let Some((args, receive)) = call_info else {
            return c;
        };
        if let Some(Term::List { items, .. }) = args.and_then(|a| self.term(&a)) {
            // Everything but the state/data argument.
            let shown: Vec<Term> = items
                .iter()
                .take(items.len().saturating_sub(1))
                .cloned()
                .collect();
            let opts = self.inspect_options();
            c.arguments = Some(
                shown
                    .iter()
                    .map(|t| inspect(t, &opts))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        if let Some(r) = receive {
            c.message_event = Some(r);
            self.reader().with_event(r, |e| {
                c.message = e.term.map(|t| self.inspect_bytes(t));
                c.message_from = (e.peer != 0).then(|| self.proc_label(e.peer));
            });
        }
        c
    }
}
