//! The timeline: which processes did what, when, at any zoom level.
//!
//! [`Activity`] is a compact in-memory index of every event's time and class
//! per process, built in one pass over the session and extended block by
//! block while a live session grows. [`Session::lanes`] orders the processes
//! as their supervision trees nest. [`Session::timeline`] answers one window
//! of time: when few enough events fall in it, the events themselves and the
//! messages between lanes (read from the blocks); otherwise counts per time
//! bucket per lane, from the index. Either way the answer is bounded by the
//! window's width in buckets or marks, never by the session's size.

use crate::{Cursor, Session};
use elixirscope_store::{DictId, Event, EventId, EventKind};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::collections::BTreeMap;

/// Coarse classes of events, for colouring marks and buckets; a bucket shows
/// the highest class among its events.
pub mod class {
    pub const MESSAGE: u8 = 0;
    pub const CALL: u8 = 1;
    pub const CAPTURE: u8 = 2;
    pub const STATE: u8 = 3;
    pub const LIFECYCLE: u8 = 4;
    pub const CRASH: u8 = 5;
    /// Names, by class number, for the UI's legend.
    pub const NAMES: [&str; 6] = ["message", "call", "capture", "state", "lifecycle", "crash"];
}

/// Lane of events that belong to no process (capture start/stop, drops, trips).
pub const NODE_LANE: DictId = 0;

#[derive(Debug, Default, Clone)]
struct LaneEvents {
    ts: Vec<i64>,
    class: Vec<u8>,
    sorted: bool,
}

/// Time and class of every event, per process.
#[derive(Debug, Default, Clone)]
pub struct Activity {
    lanes: FxHashMap<DictId, LaneEvents>,
    blocks_done: usize,
    events: u64,
}

impl Activity {
    /// Events indexed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events of `lane` with `from <= ts <= to`, as a range into its arrays.
    fn range(&self, lane: DictId, from: i64, to: i64) -> Option<(&LaneEvents, usize, usize)> {
        let l = self.lanes.get(&lane)?;
        let a = l.ts.partition_point(|&t| t < from);
        let b = l.ts.partition_point(|&t| t <= to);
        Some((l, a, b))
    }

    /// Events of every lane (or of `only`) within the window.
    pub fn count(&self, from: i64, to: i64, only: Option<&[DictId]>) -> u64 {
        let one = |lane: DictId| {
            self.range(lane, from, to)
                .map_or(0, |(_, a, b)| (b - a) as u64)
        };
        match only {
            Some(lanes) => lanes.iter().map(|&l| one(l)).sum(),
            None => self.lanes.keys().map(|&l| one(l)).sum(),
        }
    }
}

/// One process (or the node lane) on the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Lane {
    pub id: DictId,
    pub pid: String,
    /// Registered name, else initial call, else the pid.
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<DictId>,
    /// Nesting below its supervision tree's root.
    pub depth: u32,
    pub supervisor: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawned_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited_ns: Option<i64>,
    pub crashed: bool,
    pub events: u64,
}

/// A window of the timeline to draw.
#[derive(Debug, Clone)]
pub struct TimelineQuery {
    pub from_ns: i64,
    pub to_ns: i64,
    /// Time buckets across the window when aggregated (the drawing's width).
    pub buckets: usize,
    /// Above this many events in the window, buckets replace marks.
    pub max_marks: usize,
    /// Only these lanes (None: all).
    pub lanes: Option<Vec<DictId>>,
}

/// One event drawn as a mark.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub id: EventId,
    pub ts_ns: i64,
    pub lane: DictId,
    pub kind: &'static str,
    pub class: u8,
}

/// A message from the sending lane to the receiving one.
#[derive(Debug, Clone, Serialize)]
pub struct Arrow {
    pub send: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive: Option<EventId>,
    pub from_lane: DictId,
    pub to_lane: DictId,
    pub from_ns: i64,
    /// When received; the send time when the receive is not in view.
    pub to_ns: i64,
}

/// Counts per bucket for one lane: `[bucket, count, class, …]` flattened.
#[derive(Debug, Clone, Serialize)]
pub struct LaneDensity {
    pub lane: DictId,
    pub cells: Vec<u32>,
}

/// What a window of the timeline holds.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub from_ns: i64,
    pub to_ns: i64,
    /// Events in the window (in the lanes asked for).
    pub events: u64,
    /// True when `marks` and `arrows` are given; false for `density`.
    pub detail: bool,
    pub marks: Vec<Mark>,
    pub arrows: Vec<Arrow>,
    pub buckets: usize,
    pub density: Vec<LaneDensity>,
}

impl Session {
    fn class_of(&self, e: &Event<'_>) -> u8 {
        use EventKind::*;
        match e.kind {
            Send | SendToDead | Receive => class::MESSAGE,
            Call | Return => class::CALL,
            Exception | Trip | Dropped => class::CRASH,
            State | StateSnapshot => class::STATE,
            Exit => {
                let abnormal = e
                    .term
                    .and_then(|t| self.term(t))
                    .is_some_and(|r| !crate::overview::is_normal_exit(&r));
                if abnormal {
                    class::CRASH
                } else {
                    class::LIFECYCLE
                }
            }
            Spawn | Link | Unlink | Register | Unregister | Monitor | Demonitor | ProcessInfo => {
                class::LIFECYCLE
            }
            CaptureStart | CaptureStop | ModuleLoad | Degrade => class::CAPTURE,
        }
    }

    /// Indexes the blocks `a` has not seen yet (all of them the first time).
    pub fn index_activity(&self, a: &mut Activity) {
        let blocks = self.reader().blocks();
        for i in a.blocks_done..blocks.len() {
            let block = self.reader().block(i);
            for e in block.iter() {
                let lane = a.lanes.entry(e.pid).or_insert_with(|| LaneEvents {
                    sorted: true,
                    ..Default::default()
                });
                if lane.ts.last().is_some_and(|&t| t > e.ts) {
                    lane.sorted = false;
                }
                lane.ts.push(e.ts);
                lane.class.push(self.class_of(&e));
                a.events += 1;
            }
        }
        a.blocks_done = blocks.len();
        for lane in a.lanes.values_mut().filter(|l| !l.sorted) {
            let mut pairs: Vec<(i64, u8)> = lane
                .ts
                .iter()
                .copied()
                .zip(lane.class.iter().copied())
                .collect();
            pairs.sort_by_key(|p| p.0);
            (lane.ts, lane.class) = pairs.into_iter().unzip();
            lane.sorted = true;
        }
    }

    /// A lane known only by its pid and name (no lifecycle events).
    fn bare_lane(&self, id: DictId, events: u64) -> Lane {
        let name = self.any_name(id);
        Lane {
            id,
            pid: self.pid_text(id),
            label: name.clone().unwrap_or_else(|| self.pid_text(id)),
            name,
            parent: None,
            depth: 0,
            supervisor: false,
            spawned_ns: None,
            exited_ns: None,
            crashed: false,
            events,
        }
    }

    /// Every process of the session as a timeline lane, supervision trees
    /// nested (parents before children, in spawn order), then processes seen
    /// only in other events, then the node lane if it has events.
    pub fn lanes(&self, a: &Activity) -> Vec<Lane> {
        let table = self.processes_at(&Cursor::END);
        let procs = &table.procs;
        let mut children: BTreeMap<DictId, Vec<DictId>> = BTreeMap::new();
        let mut roots = Vec::new();
        let mut ordered: Vec<DictId> = procs.keys().copied().filter(|&id| id != 0).collect();
        ordered.sort_by_key(|id| (procs[id].order, *id));
        for &id in &ordered {
            match procs[&id]
                .parent
                .filter(|p| procs.contains_key(p) && *p != id)
            {
                Some(parent) => children.entry(parent).or_default().push(id),
                None => roots.push(id),
            }
        }
        let events = |id: DictId| a.lanes.get(&id).map_or(0, |l| l.ts.len() as u64);
        let mut out = Vec::new();
        let mut seen = FxHashSet::default();
        // Depth-first, iteratively (trees can be deep).
        let mut stack: Vec<(DictId, u32)> = roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((id, depth)) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let p = &procs[&id];
            let mut lane = self.bare_lane(id, events(id));
            if lane.name.is_none() {
                lane.label = p.initial.clone().unwrap_or(lane.label);
            }
            out.push(Lane {
                parent: p.parent,
                depth,
                supervisor: p.supervisor,
                spawned_ns: p.spawned,
                exited_ns: p.exited.as_ref().map(|(ts, _)| *ts),
                crashed: p.crashed,
                ..lane
            });
            if let Some(kids) = children.get(&id) {
                stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
            }
        }
        let mut others: Vec<(i64, DictId)> = a
            .lanes
            .iter()
            .filter(|(id, _)| **id != NODE_LANE && !seen.contains(*id))
            .map(|(id, l)| (l.ts.first().copied().unwrap_or(0), *id))
            .collect();
        others.sort();
        for (_, id) in others {
            out.push(self.bare_lane(id, events(id)));
        }
        if events(NODE_LANE) > 0 {
            out.push(Lane {
                pid: String::new(),
                label: "node events".into(),
                ..self.bare_lane(NODE_LANE, events(NODE_LANE))
            });
        }
        out
    }

    /// One window of the timeline.
    pub fn timeline(&self, a: &Activity, q: &TimelineQuery) -> Timeline {
        let (from, to) = (q.from_ns, q.to_ns.max(q.from_ns));
        let lanes: Vec<DictId> = match &q.lanes {
            Some(l) => l.clone(),
            None => a.lanes.keys().copied().collect(),
        };
        let events = a.count(from, to, Some(&lanes));
        let buckets = q.buckets.clamp(1, 8192);
        let mut t = Timeline {
            from_ns: from,
            to_ns: to,
            events,
            detail: events <= q.max_marks as u64,
            marks: Vec::new(),
            arrows: Vec::new(),
            buckets,
            density: Vec::new(),
        };
        if t.detail {
            self.detail(&mut t, &lanes);
            return t;
        }
        let span = (to - from).max(1) as f64;
        for &lane in &lanes {
            let Some((l, i, j)) = a.range(lane, from, to) else {
                continue;
            };
            if i == j {
                continue;
            }
            let mut cells: Vec<u32> = Vec::new();
            for k in i..j {
                let b = (((l.ts[k] - from) as f64 / span) * buckets as f64) as u32;
                let b = b.min(buckets as u32 - 1);
                let c = l.class[k] as u32;
                let n = cells.len();
                if n >= 3 && cells[n - 3] == b {
                    cells[n - 2] += 1;
                    cells[n - 1] = cells[n - 1].max(c);
                } else {
                    cells.extend([b, 1, c]);
                }
            }
            t.density.push(LaneDensity { lane, cells });
        }
        t
    }

    /// Marks and message arrows for a window with few events.
    fn detail(&self, t: &mut Timeline, lanes: &[DictId]) {
        let wanted: FxHashSet<DictId> = lanes.iter().copied().collect();
        let blocks = self.reader().blocks();
        let mut sends: FxHashMap<EventId, usize> = FxHashMap::default();
        // Blocks after the window still read for the receives of its sends.
        let mut after_window = 0;
        for (i, b) in blocks.iter().enumerate() {
            if b.max_ts < t.from_ns {
                continue;
            }
            if b.min_ts > t.to_ns {
                if sends.is_empty() || after_window >= 2 {
                    // Nearly time-ordered blocks: one could still overlap.
                    continue;
                }
                after_window += 1;
            }
            let block = self.reader().block(i);
            for e in block.iter() {
                let inside = e.ts >= t.from_ns && e.ts <= t.to_ns;
                match e.kind {
                    EventKind::Receive => {
                        if let Some(k) = e.link.and_then(|s| sends.get(&s)) {
                            let arrow = &mut t.arrows[*k];
                            arrow.receive = Some(e.id);
                            arrow.to_ns = e.ts;
                            arrow.to_lane = e.pid;
                        }
                    }
                    EventKind::Send | EventKind::SendToDead
                        if inside
                            && e.peer != 0
                            && (wanted.contains(&e.pid) || wanted.contains(&e.peer)) =>
                    {
                        sends.insert(e.id, t.arrows.len());
                        t.arrows.push(Arrow {
                            send: e.id,
                            receive: None,
                            from_lane: e.pid,
                            to_lane: e.peer,
                            from_ns: e.ts,
                            to_ns: e.ts,
                        });
                    }
                    _ => {}
                }
                if inside && wanted.contains(&e.pid) {
                    t.marks.push(Mark {
                        id: e.id,
                        ts_ns: e.ts,
                        lane: e.pid,
                        kind: e.kind.name(),
                        class: self.class_of(&e),
                    });
                }
            }
        }
        t.marks.sort_by_key(|m| (m.ts_ns, m.id));
    }
}

#[cfg(test)]
mod tests;
