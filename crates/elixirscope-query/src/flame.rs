//! Call trees and flame graphs: where the time of the recorded calls went.
//!
//! [`Session::flame`] replays the `call`, `return` and `exception` events (and
//! `exit`, which ends whatever a process was running) process by process,
//! keeping each process's call stack, and adds every call to a tree keyed by
//! its path of MFAs from the outermost recorded call (root → caller → callee),
//! all processes merged. Each node holds the calls made at that path, their
//! total (inclusive) time and their self time (total minus the total of the
//! recorded callees). [`FlameGraph::folded`] prints the tree as folded stacks
//! for flamegraph.pl, speedscope and the like, each path weighted by its self
//! time in ns.
//!
//! How the gaps of a recording are treated:
//! - Stacks are rebuilt from the start of the session whatever the range, so a
//!   call made before `from` that is still running keeps its place (and its
//!   callers) in the tree. Only time inside `[from, to)` is counted, and only
//!   calls made inside it count as calls.
//! - A return or exception whose call was not recorded (made before capture
//!   started, or by a process whose calls sampling left out: its exceptions are
//!   always kept) adds nothing; it is counted in `unmatched_returns`.
//! - A return closes its call and whatever the process called inside it that
//!   never returned in the trace (tail calls, lost events). An exception that
//!   unwinds several frames closes each of them the same way.
//! - A call that never returns ends when its process exits, if the exit was
//!   recorded (a process killed in the middle of a call). One still running at
//!   the end of the range counts as a call, its time runs to the end of the
//!   range (the session's end when `to` is not given), and it is counted in
//!   `open_calls`.
//! - In a sampled session the tree covers the processes whose calls were kept
//!   (`sample` says one in how many).
//!
//! Only blocks holding those kinds are read (from their summaries), terms are
//! never decoded, and blocks are decoded on other threads while this one
//! replays them in order.

use crate::{Cursor, QueryError, Session};
use elixirscope_store::block::EventsBlock;
use elixirscope_store::{DictId, Event, EventId, EventKind};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// What to build a flame graph of.
#[derive(Debug, Clone, Default)]
pub struct FlameQuery {
    /// Only calls of these processes (empty: every process).
    pub pids: Vec<DictId>,
    /// Only time at or after this moment (default: the session's start).
    pub from: Option<Cursor>,
    /// Only time before this moment (default: the session's end).
    pub to: Option<Cursor>,
}

/// One node of the call tree: every call of one MFA reached by one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlameNode {
    /// `Demo.Counter.handle_call/3`.
    pub mfa: String,
    /// The MFA's dictionary id.
    pub mfa_id: DictId,
    /// Index of the caller's node in [`FlameGraph::nodes`] (none for a root).
    pub parent: Option<u32>,
    /// 0 for a root.
    pub depth: u32,
    /// Calls made inside the range.
    pub calls: u64,
    /// Time inside the range, callees included (ns).
    pub total_ns: u64,
    /// `total_ns` minus the callees' `total_ns`.
    pub self_ns: u64,
    /// Indexes of the callees' nodes, largest total first.
    pub children: Vec<u32>,
}

/// A call tree. `nodes` are in depth-first order (a parent before its
/// children, siblings largest total first), so `nodes[roots[0]]` is the root
/// that took the most time.
#[derive(Debug, Clone, Serialize)]
pub struct FlameGraph {
    pub session: String,
    /// The processes asked for (empty: all).
    pub pids: Vec<String>,
    /// The range, relative to the session start.
    pub from: String,
    pub to: String,
    /// Sum of the roots' total time (processes running side by side add up).
    pub total_ns: u64,
    /// Calls made inside the range.
    pub calls: u64,
    /// Returns and exceptions inside the range whose call was not recorded.
    pub unmatched_returns: u64,
    /// Calls still running when the range ended (timed to its end).
    pub open_calls: u64,
    /// The capture kept the calls of one process in `sample` (1: all).
    pub sample: u64,
    pub roots: Vec<u32>,
    pub nodes: Vec<FlameNode>,
}

impl FlameGraph {
    /// Folded stacks, one line per path with self time: `a/0;b/1 1234`
    /// (frames from the root, then the self time in ns). Paths without self time are left out.
    pub fn folded(&self) -> String {
        let mut paths: Vec<String> = Vec::with_capacity(self.nodes.len());
        let mut out = String::new();
        for n in &self.nodes {
            let frame = n.mfa.replace(';', ",");
            let path = match n.parent {
                Some(p) => format!("{};{frame}", paths[p as usize]),
                None => frame,
            };
            if n.self_ns > 0 {
                out.push_str(&format!("{path} {}\n", n.self_ns));
            }
            paths.push(path);
        }
        out
    }

    /// The MFAs from the root to node `i`.
    pub fn path(&self, i: u32) -> Vec<&str> {
        let mut out = Vec::new();
        let mut at = Some(i);
        while let Some(n) = at.and_then(|i| self.nodes.get(i as usize)) {
            out.push(n.mfa.as_str());
            at = n.parent;
        }
        out.reverse();
        out
    }
}

/// The synthetic root every outermost call hangs from.
const ROOT: u32 = 0;
/// Decoded blocks a decoding thread may have ready ahead of the replay.
const AHEAD: usize = 4;
/// Most threads decoding blocks.
const MAX_DECODERS: usize = 4;

struct Frame {
    call: EventId,
    start: i64,
    node: u32,
    /// Made inside the range (added to its node's calls when it ends).
    counted: bool,
}

struct RawNode {
    mfa: DictId,
    parent: u32,
    calls: u64,
    total: u64,
    /// The callee found last, which a caller most often calls again.
    last_mfa: DictId,
    last_child: u32,
}

impl RawNode {
    fn new(mfa: DictId, parent: u32) -> RawNode {
        RawNode {
            mfa,
            parent,
            calls: 0,
            total: 0,
            last_mfa: 0,
            last_child: ROOT,
        }
    }
}

/// The replay state: per-process stacks and the tree being grown.
struct Replay {
    /// Time counted is clipped to `[lo, hi)`.
    lo: i64,
    hi: i64,
    from: Option<Cursor>,
    to: Option<Cursor>,
    /// Indexed by pid; empty when every process is wanted.
    wanted: Vec<bool>,
    stacks: Vec<Vec<Frame>>,
    nodes: Vec<RawNode>,
    /// `(parent << 32 | mfa)` → node.
    index: FxHashMap<u64, u32>,
    unmatched: u64,
}

fn before(c: &Cursor, e: &Event<'_>) -> bool {
    match c.id {
        Some(id) => e.id < id,
        None => e.ts < c.ts,
    }
}

impl Replay {
    /// The node of `mfa` called from `parent`, created on first use.
    fn child(&mut self, parent: u32, mfa: DictId) -> u32 {
        let p = &self.nodes[parent as usize];
        if p.last_mfa == mfa && p.last_child != ROOT {
            return p.last_child;
        }
        let next = self.nodes.len() as u32;
        let node = *self
            .index
            .entry((parent as u64) << 32 | mfa as u64)
            .or_insert(next);
        if node == next {
            self.nodes.push(RawNode::new(mfa, parent));
        }
        let p = &mut self.nodes[parent as usize];
        p.last_mfa = mfa;
        p.last_child = node;
        node
    }

    /// Ends frame `f` at `end`: its call and its time inside the range go to its node.
    fn close(&mut self, f: &Frame, end: i64) {
        let (s, t) = (f.start.max(self.lo), end.min(self.hi));
        let node = &mut self.nodes[f.node as usize];
        node.calls += u64::from(f.counted);
        node.total += (t - s).max(0) as u64;
    }

    fn event(&mut self, e: &Event<'_>) {
        let pid = e.pid as usize;
        if !self.wanted.is_empty() && !self.wanted.get(pid).copied().unwrap_or(false) {
            return;
        }
        if self.to.as_ref().is_some_and(|to| !before(to, e)) {
            return;
        }
        let in_range = !self.from.as_ref().is_some_and(|from| before(from, e));
        if pid >= self.stacks.len() {
            self.stacks.resize_with(pid + 1, Vec::new);
        }
        match e.kind {
            EventKind::Call => {
                let parent = self.stacks[pid].last().map_or(ROOT, |f| f.node);
                let node = self.child(parent, e.mfa);
                self.stacks[pid].push(Frame {
                    call: e.id,
                    start: e.ts,
                    node,
                    counted: in_range,
                });
            }
            EventKind::Return | EventKind::Exception => {
                let stack = &self.stacks[pid];
                let found = e.link.and_then(|call| match stack.last() {
                    Some(f) if f.call == call => Some(stack.len() - 1),
                    _ => stack.iter().rposition(|f| f.call == call),
                });
                match found {
                    Some(i) => {
                        let mut closed = std::mem::take(&mut self.stacks[pid]);
                        for f in closed.drain(i..) {
                            self.close(&f, e.ts);
                        }
                        self.stacks[pid] = closed;
                    }
                    None if in_range => self.unmatched += 1,
                    None => {}
                }
            }
            EventKind::Exit => {
                let closed = std::mem::take(&mut self.stacks[pid]);
                for f in &closed {
                    self.close(f, e.ts);
                }
            }
            _ => {}
        }
    }
}

impl Session {
    /// The call tree of `q`'s processes over `q`'s range (see the module docs).
    pub fn flame(&self, q: &FlameQuery) -> Result<FlameGraph, QueryError> {
        if let (Some(from), Some(to)) = (&q.from, &q.to) {
            let empty = match (from.id, to.id) {
                (Some(a), Some(b)) => a >= b,
                _ => from.ts >= to.ts,
            };
            if empty {
                return Err(QueryError::EmptyRange {
                    from: self.relative(from.ts),
                    to: self.relative(to.ts),
                });
            }
        }
        let range_end = q.to.map_or(i64::MAX, |t| t.ts).min(self.end_ns());
        let mut wanted = Vec::new();
        if !q.pids.is_empty() {
            wanted = vec![false; self.reader().dict().pid_count() + 1];
            for &p in &q.pids {
                if let Some(w) = wanted.get_mut(p as usize) {
                    *w = true;
                }
            }
        }
        let mut r = Replay {
            lo: q.from.map_or(i64::MIN, |f| f.ts),
            hi: range_end,
            from: q.from,
            to: q.to,
            wanted,
            stacks: Vec::new(),
            nodes: vec![RawNode::new(0, ROOT)],
            index: FxHashMap::default(),
            unmatched: 0,
        };
        let blocks = self.flame_blocks(q);
        self.replay_blocks(&blocks, |b| {
            for e in b.iter() {
                if matches!(
                    e.kind,
                    EventKind::Call | EventKind::Return | EventKind::Exception | EventKind::Exit
                ) {
                    r.event(&e);
                }
            }
        });
        let mut open = 0u64;
        for stack in std::mem::take(&mut r.stacks) {
            open += stack.len() as u64;
            for f in &stack {
                r.close(f, range_end);
            }
        }
        let mut g = self.finish(r);
        g.open_calls = open;
        g.pids = q.pids.iter().map(|&p| self.pid_text(p)).collect();
        let end = range_end.max(self.start_ns());
        g.from = self.relative(q.from.map_or(self.start_ns(), |f| f.ts).min(end));
        g.to = self.relative(end);
        Ok(g)
    }

    /// Indexes of the blocks that may hold the events of `q`.
    fn flame_blocks(&self, q: &FlameQuery) -> Vec<usize> {
        let mask = [
            EventKind::Call,
            EventKind::Return,
            EventKind::Exception,
            EventKind::Exit,
        ]
        .iter()
        .fold(0, |m, k| m | k.bit());
        let mut out = Vec::new();
        for (i, b) in self.reader().blocks().iter().enumerate() {
            // Blocks are in id order and nearly in time order; allow a second of disorder.
            let past = match q.to {
                Some(Cursor { id: Some(id), .. }) => b.first_id >= id,
                Some(Cursor { ts, id: None }) => b.min_ts > ts.saturating_add(1_000_000_000),
                None => false,
            };
            if past {
                break;
            }
            if b.kinds & mask == 0
                || (!q.pids.is_empty() && !q.pids.iter().any(|&p| b.may_involve(p)))
            {
                continue;
            }
            out.push(i);
        }
        out
    }

    /// Calls `f` with each of `blocks` in order, decoding them ahead on other threads.
    fn replay_blocks(&self, blocks: &[usize], mut f: impl FnMut(&EventsBlock)) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decoders = threads.clamp(1, MAX_DECODERS);
        if blocks.len() < 2 * decoders {
            for &i in blocks {
                f(&self.reader().block(i));
            }
            return;
        }
        std::thread::scope(|s| {
            let ready: Vec<Receiver<Arc<EventsBlock>>> = (0..decoders)
                .map(|k| {
                    let (tx, rx) = sync_channel(AHEAD);
                    s.spawn(move || {
                        for &i in blocks.iter().skip(k).step_by(decoders) {
                            if tx.send(self.reader().block(i)).is_err() {
                                return;
                            }
                        }
                    });
                    rx
                })
                .collect();
            for j in 0..blocks.len() {
                let b = ready[j % decoders].recv().expect("block decoding thread");
                f(&b);
            }
        });
    }

    /// Self times, pruning of empty nodes, sorting and depth-first numbering.
    fn finish(&self, r: Replay) -> FlameGraph {
        let raw = r.nodes;
        let n = raw.len();
        // Children are always created after their parent: one backward pass sums them up.
        let mut below = vec![0u64; n];
        let mut keep = vec![false; n];
        for i in (1..n).rev() {
            let x = &raw[i];
            keep[i] |= x.calls > 0 || x.total > 0;
            below[x.parent as usize] += x.total;
            if keep[i] {
                keep[x.parent as usize] = true;
            }
        }
        // MFA ids are dense: their texts in a table, made once each.
        let mut texts: Vec<Option<String>> = Vec::new();
        // Children of every kept node, grouped by parent (`first[p]..first[p + 1]` in `kids`).
        let mut first = vec![0usize; n + 1];
        for i in 1..n {
            if keep[i] {
                first[raw[i].parent as usize + 1] += 1;
                let m = raw[i].mfa as usize;
                if m >= texts.len() {
                    texts.resize(m + 1, None);
                }
                if texts[m].is_none() {
                    texts[m] = Some(self.mfa_text(raw[i].mfa));
                }
            }
        }
        for p in 0..n {
            first[p + 1] += first[p];
        }
        let mut kids = vec![0u32; first[n]];
        let mut fill = first.clone();
        for i in 1..n {
            if keep[i] {
                let p = raw[i].parent as usize;
                kids[fill[p]] = i as u32;
                fill[p] += 1;
            }
        }
        let text = |i: u32| {
            texts[raw[i as usize].mfa as usize]
                .as_deref()
                .unwrap_or("?")
        };
        for p in 0..n {
            let k = &mut kids[first[p]..first[p + 1]];
            if k.len() > 1 {
                k.sort_by(|&a, &b| {
                    raw[b as usize]
                        .total
                        .cmp(&raw[a as usize].total)
                        .then_with(|| text(a).cmp(text(b)))
                });
            }
        }
        let children = |i: u32| &kids[first[i as usize]..first[i as usize + 1]];
        let mut nodes: Vec<FlameNode> = Vec::with_capacity(first[n]);
        let mut roots = Vec::new();
        // (raw index, parent's new index, depth), popped in depth-first order.
        let mut todo: Vec<(u32, Option<u32>, u32)> =
            children(ROOT).iter().rev().map(|&c| (c, None, 0)).collect();
        while let Some((i, parent, depth)) = todo.pop() {
            let x = &raw[i as usize];
            let at = nodes.len() as u32;
            match parent {
                Some(p) => nodes[p as usize].children.push(at),
                None => roots.push(at),
            }
            let callees = children(i);
            nodes.push(FlameNode {
                mfa: text(i).to_owned(),
                mfa_id: x.mfa,
                parent,
                depth,
                calls: x.calls,
                total_ns: x.total,
                self_ns: x.total.saturating_sub(below[i as usize]),
                children: Vec::with_capacity(callees.len()),
            });
            todo.extend(callees.iter().rev().map(|&c| (c, Some(at), depth + 1)));
        }
        let sample = self
            .meta()
            .capture
            .get("sample")
            .and_then(|s| s.as_u64())
            .unwrap_or(1)
            .max(1);
        FlameGraph {
            session: self.name().to_owned(),
            pids: Vec::new(),
            from: String::new(),
            to: String::new(),
            total_ns: roots.iter().map(|&i| nodes[i as usize].total_ns).sum(),
            calls: nodes.iter().map(|n| n.calls).sum(),
            unmatched_returns: r.unmatched,
            open_calls: 0,
            sample,
            roots,
            nodes,
        }
    }
}

#[cfg(test)]
mod tests;
