//! Matching each receive to its send, whichever the tracer delivered first.
//!
//! Messages are keyed by receiver and a hash of their content. A send waits in
//! the receiver's queue until a receive with the same content arrives (FIFO, as
//! the VM delivers between one pair of processes); a receive that arrives before
//! its send (trace messages of different processes can reach the tracer out of
//! order) waits briefly for it. Queues are bounded so an untraced or stuck
//! receiver cannot make the collector grow without limit.

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
}

#[derive(Debug, Clone, Copy)]
struct EarlyReceive {
    hash: u64,
    id: EventId,
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
    ) -> Option<EventId> {
        if let Some(q) = self.early.get_mut(&receiver) {
            if let Some(i) = q.iter().position(|r| r.hash == hash) {
                return q.remove(i).map(|r| r.id);
            }
        }
        let q = self.sends.entry(receiver).or_default();
        if q.len() >= MAX_PENDING_PER_PROCESS {
            q.pop_front();
        }
        q.push_back(PendingSend { hash, id, sender });
        None
    }

    /// A receive by `receiver`: returns the matching send's id and sender, if stored.
    pub fn receive(
        &mut self,
        receiver: DictId,
        hash: u64,
        id: EventId,
    ) -> Option<(EventId, DictId)> {
        if let Some(q) = self.sends.get_mut(&receiver) {
            if let Some(i) = q.iter().position(|s| s.hash == hash) {
                return q.remove(i).map(|s| (s.id, s.sender));
            }
        }
        let q = self.early.entry(receiver).or_default();
        if q.len() >= MAX_EARLY_RECEIVES {
            q.pop_front();
        }
        q.push_back(EarlyReceive { hash, id });
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
        assert_eq!(m.send(2, 7, 10, 1), None);
        assert_eq!(m.send(2, 7, 11, 1), None);
        assert_eq!(m.receive(2, 7, 12), Some((10, 1)));
        assert_eq!(m.receive(2, 7, 13), Some((11, 1)));
        // Receive first, then send.
        assert_eq!(m.receive(3, 9, 20), None);
        assert_eq!(m.send(3, 9, 21, 1), Some(20));
    }
}
