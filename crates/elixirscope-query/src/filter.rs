//! Event filters: time range, processes, kinds, MFA pattern, term content.

use crate::render::EventInfo;
use crate::{Cursor, QueryError, Session};
use elixirscope_store::{DictId, Event, EventKind};
use elixirscope_term::CallPattern;
use serde::Serialize;
use std::collections::VecDeque;

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events at or after this moment.
    pub from: Option<Cursor>,
    /// Only events at or before this moment.
    pub to: Option<Cursor>,
    /// Only events involving one of these processes (as subject or peer).
    pub pids: Vec<DictId>,
    pub kinds: Vec<EventKind>,
    /// Only events whose MFA (call, return, spawn's initial call) matches.
    pub mfa: Option<CallPattern>,
    /// Only events whose terms, as Elixir prints them, contain this text.
    pub text: Option<String>,
    /// At most this many events.
    pub limit: usize,
    /// Keep the last `limit` matches instead of the first.
    pub last: bool,
}

/// Parses `spawn,exit,send` into kinds.
pub fn parse_kinds(text: &str) -> Result<Vec<EventKind>, QueryError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|k| {
            let k = match k {
                "message" | "messages" => return Ok(vec![EventKind::Send, EventKind::Receive]),
                "calls" => {
                    return Ok(vec![
                        EventKind::Call,
                        EventKind::Return,
                        EventKind::Exception,
                    ])
                }
                "lifecycle" => {
                    return Ok(vec![
                        EventKind::Spawn,
                        EventKind::Exit,
                        EventKind::Link,
                        EventKind::Unlink,
                        EventKind::Register,
                        EventKind::Unregister,
                    ])
                }
                other => other,
            };
            EventKind::parse(k).map(|k| vec![k]).ok_or_else(|| {
                let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                QueryError::BadKind(
                    k.to_owned(),
                    format!(
                        "{}, and the groups messages, calls, lifecycle",
                        all.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().flatten().collect())
}

/// A page of matching events.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    pub session: String,
    pub events: Vec<EventInfo>,
    /// How many events matched in total.
    pub matched: u64,
    /// True when more events matched than were returned.
    pub truncated: bool,
}

impl Session {
    fn mfa_matches(&self, e: &Event<'_>, p: &CallPattern) -> bool {
        let Some(m) = self.reader().dict().mfa(e.mfa) else {
            return false;
        };
        p.matches(self.atom(m.module), self.atom(m.function), m.arity)
    }

    /// Calls `visit` for every event matching `f` (its `limit` and `last`
    /// aside), in id order; returning `false` stops the scan.
    pub fn scan_filtered(&self, f: &EventFilter, mut visit: impl FnMut(&Event<'_>) -> bool) {
        let mask: u32 = if f.kinds.is_empty() {
            u32::MAX
        } else {
            f.kinds.iter().map(|k| k.bit()).fold(0, |a, b| a | b)
        };
        for (i, b) in self.reader().blocks().iter().enumerate() {
            if b.kinds & mask == 0 {
                continue;
            }
            if let Some(from) = &f.from {
                if from.id.is_none() && b.max_ts < from.ts {
                    continue;
                }
                if from.id.is_some_and(|id| b.end_id() <= id) {
                    continue;
                }
            }
            if let Some(to) = &f.to {
                if to.id.is_some_and(|id| b.first_id > id) {
                    break;
                }
                // Blocks are nearly in time order: past a second beyond the
                // range none can hold a match; before that, skip those that don't.
                if to.id.is_none() && b.min_ts > to.ts {
                    if b.min_ts > to.ts.saturating_add(1_000_000_000) {
                        break;
                    }
                    continue;
                }
            }
            if !f.pids.is_empty() && !f.pids.iter().any(|p| b.may_involve(*p)) {
                continue;
            }
            let block = self.reader().block(i);
            for e in block.iter() {
                if !f.kinds.is_empty() && !f.kinds.contains(&e.kind) {
                    continue;
                }
                if let Some(from) = &f.from {
                    let before = match from.id {
                        Some(id) => e.id < id,
                        None => e.ts < from.ts,
                    };
                    if before {
                        continue;
                    }
                }
                if f.to.as_ref().is_some_and(|to| !to.includes(e.ts, e.id)) {
                    continue;
                }
                if !f.pids.is_empty() && !f.pids.iter().any(|p| e.involves(*p)) {
                    continue;
                }
                if f.mfa.as_ref().is_some_and(|p| !self.mfa_matches(&e, p)) {
                    continue;
                }
                if let Some(text) = &f.text {
                    let hit = [e.term, e.term2]
                        .iter()
                        .flatten()
                        .any(|t| self.inspect_bytes(t).contains(text.as_str()));
                    if !hit {
                        continue;
                    }
                }
                if !visit(&e) {
                    return;
                }
            }
        }
    }

    /// Lists events matching `f`; terms longer than `clip` characters are shortened.
    pub fn events(&self, f: &EventFilter, clip: Option<usize>) -> EventPage {
        let mut kept: VecDeque<EventInfo> = VecDeque::new();
        let mut matched = 0u64;
        let limit = f.limit.max(1);
        self.scan_filtered(f, |e| {
            matched += 1;
            if f.last {
                if kept.len() == limit {
                    kept.pop_front();
                }
                kept.push_back(self.describe(e, clip));
            } else if kept.len() < limit {
                kept.push_back(self.describe(e, clip));
            } else if matched > limit as u64 + 10_000 {
                // Enough to say there are more; stop counting.
                return false;
            }
            true
        });
        EventPage {
            session: self.name().to_owned(),
            truncated: matched > kept.len() as u64,
            events: kept.into(),
            matched,
        }
    }
}
