//! The call stack of a process at a moment: the traced calls it had entered
//! and not yet left.
//!
//! Read backwards from the moment: a return or exception closes the call it
//! links to, and a call that nothing closed is an open frame. The walk stops
//! at the outermost frame (depth 0) or after a bounded number of blocks, so
//! the answer costs the same wherever the moment is in a long session.

use crate::render::duration;
use crate::{Cursor, Session};
use elixirscope_store::{DictId, EventId, EventKind};
use rustc_hash::FxHashSet;
use serde::Serialize;

/// Blocks read backwards before giving up on finding the outermost frame.
const MAX_BLOCKS: usize = 256;

/// One frame of a call stack.
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    pub call_event: EventId,
    pub mfa: String,
    /// When the call was entered, from the session start.
    pub at: String,
    pub ts_ns: i64,
    /// How long the call had been running at the moment.
    pub running_for: String,
    pub depth: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// The stack of a process at a moment, outermost frame first.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    pub frames: Vec<Frame>,
    /// True when the walk stopped before reaching the outermost frame.
    pub partial: bool,
}

impl Session {
    /// The traced calls `pid` was inside at `at`.
    pub fn stack_at(&self, pid: DictId, at: &Cursor) -> Stack {
        let kinds = [EventKind::Call, EventKind::Return, EventKind::Exception];
        let mut closed: FxHashSet<EventId> = FxHashSet::default();
        let mut frames = Vec::new();
        let mut done = false;
        let complete = self.scan_back(at, Some(pid), &kinds, MAX_BLOCKS, |e| {
            if e.pid != pid {
                return true;
            }
            match e.kind {
                EventKind::Return | EventKind::Exception => {
                    if let Some(call) = e.link {
                        closed.insert(call);
                    }
                }
                _ if closed.remove(&e.id) => {}
                _ => {
                    let now = if at.ts == i64::MAX {
                        self.end_ns()
                    } else {
                        at.ts
                    };
                    frames.push(Frame {
                        call_event: e.id,
                        mfa: self.mfa_text(e.mfa),
                        at: self.relative(e.ts),
                        ts_ns: e.ts,
                        running_for: duration(now.saturating_sub(e.ts).max(0) as u64),
                        depth: e.aux,
                        arguments: e.term.map(|t| self.inspect_bytes(t)),
                    });
                    if e.aux == 0 {
                        done = true;
                        return false;
                    }
                }
            }
            true
        });
        frames.reverse();
        Stack {
            partial: !done && !complete,
            frames,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Rec, T0, US};

    #[test]
    fn open_frames_are_the_calls_not_yet_returned() {
        let mut r = Rec::new();
        // a [0, 100) calls b [10, 20) then c [30, 90), which calls d [40, 50).
        let a = r.call_at_depth(0, 1, "a", 0);
        let b = r.call_at_depth(10, 1, "b", 1);
        r.ret(20, 1, "b", b);
        let c = r.call_at_depth(30, 1, "c", 1);
        let d = r.call_at_depth(40, 1, "d", 2);
        r.ret(50, 1, "d", d);
        r.ret(90, 1, "c", c);
        r.ret(100, 1, "a", a);
        let pid = r.pid(1);
        let (s, _home) = r.open();
        let at = |us: i64| Cursor {
            ts: T0 + us * US,
            id: None,
        };
        let names = |us: i64| -> Vec<String> {
            s.stack_at(pid, &at(us))
                .frames
                .iter()
                .map(|f| f.mfa.clone())
                .collect()
        };
        assert_eq!(names(15), ["T.a/0", "T.b/0"]);
        assert_eq!(names(25), ["T.a/0"]);
        assert_eq!(names(45), ["T.a/0", "T.c/0", "T.d/0"]);
        assert_eq!(names(60), ["T.a/0", "T.c/0"]);
        assert!(names(100).is_empty());
        let st = s.stack_at(pid, &at(45));
        assert_eq!(st.frames[2].running_for, "5.0µs");
        assert!(!st.partial);
    }
}
