//! Matching each receive to its send, whichever the tracer delivered first.
//!
//! Messages are keyed by receiver and a hash of their content. A send waits in
//! the receiver's queue until a receive with the same content arrives (FIFO, as
//! the VM delivers between one pair of processes); a receive that arrives before
//! its send (trace messages of different processes can reach the tracer out of
//! order) waits briefly for it. A pair must be causal: the send happened no
//! later than the receive, so a receive with no traced send (a timer message,
//! a port message) is never paired with a later send of the same content.
//! Queues are bounded so an untraced or stuck receiver cannot make the
//! collector grow without limit.

use elixirscope_store::{DictId, EventId};
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;

const MAX_PENDING_PER_PROCESS: usize = 10_000;
const MAX_EARLY_RECEIVES: usize = 256;

#[derive(Debug, Clone, Copy)]
struct PendingSend {
    hash: u64,
    id: EventId,
    sender: DictId,
    ts: i64,
}

#[derive(Debug, Clone, Copy)]
struct EarlyReceive {
    hash: u64,
    id: EventId,
    ts: i64,
}

/// Send/receive pairing state.
#[derive(Default)]
pub struct Matcher {
    sends: HashMap<DictId, VecDeque<PendingSend>>,
    early: HashMap<DictId, VecDeque<EarlyReceive>>,
}

impl Matcher {
    /// A send to `receiver`: returns the id of an already stored matching receive.
    pub fn send(
        &mut self,
        receiver: DictId,
        hash: u64,
        id: EventId,
        sender: DictId,
        ts: i64,
    ) -> Option<EventId> {
        if let Some(q) = self.early.get_mut(&receiver) {
            if let Some(i) = q.iter().position(|r| r.hash == hash && ts <= r.ts) {
                return q.remove(i).map(|r| r.id);
            }
        }
        let q = self.sends.entry(receiver).or_default();
        if q.len() >= MAX_PENDING_PER_PROCESS {
            q.pop_front();
        }
        q.push_back(PendingSend {
            hash,
            id,
            sender,
            ts,
        });
        None
    }

    /// A receive by `receiver`: returns the matching send's id and sender, if stored.
    pub fn receive(
        &mut self,
        receiver: DictId,
        hash: u64,
        id: EventId,
        ts: i64,
    ) -> Option<(EventId, DictId)> {
        if let Some(q) = self.sends.get_mut(&receiver) {
            if let Some(i) = q.iter().position(|s| s.hash == hash && s.ts <= ts) {
                return q.remove(i).map(|s| (s.id, s.sender));
            }
        }
        let q = self.early.entry(receiver).or_default();
        if q.len() >= MAX_EARLY_RECEIVES {
            q.pop_front();
        }
        q.push_back(EarlyReceive { hash, id, ts });
        None
    }

    /// Forgets a process that exited.
    pub fn exited(&mut self, pid: DictId) {
        self.sends.remove(&pid);
        self.early.remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_in_either_order_and_fifo() {
        let mut m = Matcher::default();
        assert_eq!(m.send(2, 7, 10, 1, 100), None);
        assert_eq!(m.send(2, 7, 11, 1, 101), None);
        assert_eq!(m.receive(2, 7, 12, 102), Some((10, 1)));
        assert_eq!(m.receive(2, 7, 13, 103), Some((11, 1)));
        // Receive stored first (tracer order), then its earlier send.
        assert_eq!(m.receive(3, 9, 20, 205), None);
        assert_eq!(m.send(3, 9, 21, 1, 200), Some(20));
        // A receive with no traced send (a timer message) is never paired with a later send.
        assert_eq!(m.receive(4, 5, 30, 300), None);
        assert_eq!(m.send(4, 5, 31, 1, 400), None);
        assert_eq!(m.receive(4, 5, 32, 401), Some((31, 1)));
    }
}
