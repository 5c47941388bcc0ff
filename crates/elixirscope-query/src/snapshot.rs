//! The whole system at a moment: every live process of the traced nodes with
//! its state and pending message counts, and the process tree.

use crate::procs::{ProcessInfo, ProcessTree};
use crate::{Cursor, Session};
use elixirscope_store::{DictId, EventKind};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// One live process in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessSnapshot {
    #[serde(flatten)]
    pub process: ProcessInfo,
    /// Behaviour state, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Messages sent to it and not yet received.
    pub in_flight: usize,
    /// For a process whose behaviour callbacks are traced: messages in its
    /// mailbox that no callback has handled yet (as `mailbox` lists them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhandled: Option<usize>,
}

/// The system at a moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub session: String,
    pub at: String,
    pub time: String,
    pub live_processes: usize,
    pub processes: Vec<ProcessSnapshot>,
    pub tree: ProcessTree,
}

impl Session {
    /// Everything alive at `at` on the traced nodes (processes of other
    /// nodes that appear as peers are not theirs to list).
    pub fn snapshot_at(&self, at: &Cursor) -> Snapshot {
        let mut states: HashMap<DictId, Vec<u8>> = HashMap::new();
        self.scan_until(
            at,
            None,
            &[EventKind::State, EventKind::StateSnapshot],
            |e| {
                if let Some(t) = e.term {
                    states.insert(e.pid, t.to_vec());
                }
                true
            },
        );
        let mut pending: HashMap<u64, DictId> = HashMap::new();
        let mut late_receives: HashSet<u64> = HashSet::new();
        self.scan_until(at, None, &[EventKind::Send, EventKind::Receive], |e| {
            match e.kind {
                EventKind::Send
                    if e.peer != 0 && !e.link.is_some_and(|r| late_receives.contains(&r)) =>
                {
                    pending.insert(e.id, e.peer);
                }
                EventKind::Receive => match e.link {
                    Some(s) => {
                        pending.remove(&s);
                    }
                    None => {
                        late_receives.insert(e.id);
                    }
                },
                _ => {}
            }
            true
        });
        let mut in_flight: HashMap<DictId, usize> = HashMap::new();
        for to in pending.values() {
            *in_flight.entry(*to).or_default() += 1;
        }
        let processes: Vec<ProcessSnapshot> = self
            .process_list(at)
            .into_iter()
            .filter(|p| p.alive && self.on_traced_node(p.id))
            .map(|p| {
                let state = states.get(&p.id).map(|s| self.inspect_bytes(s));
                // Only servers with recorded state have traced callbacks.
                let unhandled = state.as_ref().and_then(|_| {
                    let mb = self.mailbox_at(p.id, at);
                    mb.callbacks_traced.then_some(mb.unhandled.len())
                });
                ProcessSnapshot {
                    state,
                    in_flight: in_flight.get(&p.id).copied().unwrap_or(0),
                    unhandled,
                    process: p,
                }
            })
            .collect();
        Snapshot {
            session: self.name().to_owned(),
            at: self.relative(at.ts.min(self.end_ns())),
            time: self.wall(at.ts.min(self.end_ns())),
            live_processes: processes.len(),
            tree: self.tree_at(at, None),
            processes,
        }
    }
}
