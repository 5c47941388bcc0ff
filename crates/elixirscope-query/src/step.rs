//! Stepping through one process's history from a moment.

use crate::filter::EventFilter;
use crate::render::EventInfo;
use crate::{Cursor, Session};
use elixirscope_store::{DictId, Event, EventKind};

impl Session {
    /// The next (or, going back, previous) `count` events involving `pid`
    /// strictly after (before) `at`, optionally only of `kinds`.
    pub fn step(
        &self,
        pid: DictId,
        at: &Cursor,
        forward: bool,
        kinds: &[EventKind],
        count: usize,
    ) -> Vec<EventInfo> {
        let mut f = EventFilter {
            pids: vec![pid],
            kinds: kinds.to_vec(),
            limit: count.max(1),
            ..Default::default()
        };
        if forward {
            f.from = Some(at.after());
        } else {
            // Newest first from just before `at`: cost follows the distance
            // stepped back, not the session's length.
            let before = match at.id {
                Some(_) => match at.before() {
                    Some(b) => b,
                    None => return Vec::new(),
                },
                None => *at,
            };
            let mut out = Vec::new();
            let want = count.max(1);
            self.scan_back(&before, Some(pid), kinds, usize::MAX, |e| {
                out.push(self.describe(e, Some(300)));
                out.len() < want
            });
            out.reverse();
            return out;
        }
        self.events(&f, Some(300)).events
    }
}

impl Session {
    /// The next (or previous) event strictly after (before) `at` where the
    /// behaviour state of `pid` changed.
    pub fn step_to_change(&self, pid: DictId, at: &Cursor, forward: bool) -> Option<EventInfo> {
        let changed = |e: &Event<'_>| {
            e.pid == pid && e.aux & elixirscope_store::model::state_flags::UNCHANGED == 0
        };
        let mut found = None;
        if forward {
            let f = EventFilter {
                pids: vec![pid],
                kinds: vec![EventKind::State],
                from: Some(at.after()),
                ..Default::default()
            };
            self.scan_filtered(&f, |e| {
                if changed(e) {
                    found = Some(self.describe(e, Some(300)));
                    return false;
                }
                true
            });
        } else {
            let before = at.before()?;
            self.scan_back(&before, Some(pid), &[EventKind::State], usize::MAX, |e| {
                if changed(e) {
                    found = Some(self.describe(e, Some(300)));
                    return false;
                }
                true
            });
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Rec, T0, US};
    use elixirscope_store::NewEvent;

    #[test]
    fn stepping_back_finds_the_previous_events_and_changes() {
        let mut r = Rec::new();
        let pid = r.pid(1);
        let other = r.pid(2);
        // States of process 1 at 10, 20 (unchanged), 30 µs; process 2 in between.
        let mut ids = Vec::new();
        for (t, p, unchanged) in [(10, pid, 0), (15, other, 0), (20, pid, 1), (30, pid, 0)] {
            let mut e = NewEvent::new(T0 + t * US, EventKind::State, r.node, p);
            e.aux = unchanged;
            ids.push(r.w.append(&e).unwrap());
        }
        let (s, _home) = r.open();
        let at = |id: u64| Cursor {
            ts: T0,
            id: Some(id),
        };
        let back: Vec<u64> = s
            .step(pid, &at(ids[3]), false, &[], 2)
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            back,
            [ids[0], ids[2]],
            "the two before, oldest first, not the other process's"
        );
        let change = s.step_to_change(pid, &at(ids[3]), false).unwrap();
        assert_eq!(change.id, ids[0], "the unchanged state is skipped");
        assert!(s.step_to_change(pid, &at(ids[0]), false).is_none());
        let next = s.step_to_change(pid, &at(ids[0]), true).unwrap();
        assert_eq!(next.id, ids[3]);
        // By time: strictly before 30 µs.
        let by_time = Cursor {
            ts: T0 + 30 * US,
            id: None,
        };
        assert_eq!(s.step_to_change(pid, &by_time, false).unwrap().id, ids[0]);
    }
}
