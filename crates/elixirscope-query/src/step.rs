//! Stepping through one process's history from a moment.

use crate::filter::EventFilter;
use crate::render::EventInfo;
use crate::{Cursor, Session};
use elixirscope_store::{DictId, EventKind};

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
            f.from = Some(match at.id {
                Some(id) => Cursor {
                    ts: at.ts,
                    id: Some(id + 1),
                },
                None => Cursor {
                    ts: at.ts.saturating_add(1),
                    id: None,
                },
            });
        } else {
            f.last = true;
            f.to = Some(match at.id {
                Some(0) => return Vec::new(),
                Some(id) => Cursor {
                    ts: at.ts,
                    id: Some(id - 1),
                },
                None => *at,
            });
        }
        self.events(&f, Some(300)).events
    }
}

impl Session {
    /// The next (or previous) event strictly after (before) `at` where the
    /// behaviour state of `pid` changed.
    pub fn step_to_change(&self, pid: DictId, at: &Cursor, forward: bool) -> Option<EventInfo> {
        let mut f = EventFilter {
            pids: vec![pid],
            kinds: vec![EventKind::State],
            ..Default::default()
        };
        let after = |ts: i64, id: u64| match at.id {
            Some(a) => id > a,
            None => ts > at.ts,
        };
        if !forward {
            f.to = Some(*at);
        }
        let mut found = None;
        self.scan_filtered(&f, |e| {
            if e.pid != pid || e.aux == 1 {
                return true;
            }
            if forward {
                if after(e.ts, e.id) {
                    found = Some(self.describe(e, Some(300)));
                    return false;
                }
            } else if match at.id {
                Some(a) => e.id < a,
                None => e.ts < at.ts,
            } {
                found = Some(self.describe(e, Some(300)));
            }
            true
        });
        found
    }
}
