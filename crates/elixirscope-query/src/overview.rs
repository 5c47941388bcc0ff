//! A session at a glance: counts per kind, busiest processes, crashes, drops, trips.

use crate::Session;
use elixirscope_store::session::Trip;
use elixirscope_store::{DictId, EventKind};
use elixirscope_term::Term;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A process and how many events involve it.
#[derive(Debug, Clone, Serialize)]
pub struct BusyProcess {
    pub pid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it runs (`Demo.Counter.init/1`, `supervisor Demo.Supervisor` ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_call: Option<String>,
    pub events: u64,
}

/// A process that exited abnormally.
#[derive(Debug, Clone, Serialize)]
pub struct Crash {
    pub event: u64,
    pub at: String,
    pub pid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub reason: String,
}

/// The tracer that captured on one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeTracer {
    pub node: String,
    /// `nif` or `process`.
    pub tracer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A session summary.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub session: String,
    pub status: String,
    pub mode: String,
    pub target: String,
    pub nodes: Vec<String>,
    /// Which tracer ran on each node, and why not the NIF tracer if not.
    pub tracers: Vec<NodeTracer>,
    pub started: String,
    pub duration_s: f64,
    pub events: u64,
    pub disk_bytes: u64,
    pub bytes_per_event: f64,
    pub counts: BTreeMap<String, u64>,
    pub processes_seen: usize,
    pub top_processes: Vec<BusyProcess>,
    /// Processes with recorded behaviour state, busiest first (names or pids).
    pub stateful: Vec<String>,
    pub crashes: Vec<Crash>,
    pub dropped: u64,
    /// Whether the agent redacted secrets on the node.
    pub redaction: bool,
    /// Values redacted per rule.
    pub redactions: BTreeMap<String, u64>,
    /// Events in which the capture limits cut a term.
    pub cut_events: u64,
    /// Steps that degraded the capture of a process's state, oldest first.
    pub degraded: Vec<Degradation>,
    pub trips: Vec<Trip>,
    pub problems: Vec<String>,
}

/// One step that degraded the capture of a process's state.
#[derive(Debug, Clone, Serialize)]
pub struct Degradation {
    pub event: u64,
    pub at: String,
    pub pid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1 shallower limits, 2 one callback in 16, 3 not captured.
    pub level: u64,
    pub why: String,
}

impl Session {
    /// Every degradation step of the session, oldest first.
    pub fn degradations(&self) -> Vec<Degradation> {
        let mut out = Vec::new();
        self.scan_kinds(&[EventKind::Degrade], |e| {
            let why = e
                .term
                .and_then(|t| self.term(t))
                .map(|t| match t {
                    elixirscope_term::Term::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                    other => elixirscope_term::inspect(&other, &self.inspect_options()),
                })
                .unwrap_or_default();
            out.push(Degradation {
                event: e.id,
                at: self.relative(e.ts),
                pid: self.pid_text(e.pid),
                name: self.any_name(e.pid),
                level: e.aux,
                why,
            });
        });
        out
    }
}

/// Whether an exit reason is not a crash: `normal`, `shutdown`, `{shutdown, _}`,
/// or a process used as a future returning its result through its exit reason
/// (`{ok, Result}`, erpc's `{Ref, return, Result}`).
pub fn is_normal_exit(reason: &Term) -> bool {
    match reason {
        Term::Atom(a) => a == "normal" || a == "shutdown",
        Term::Tuple(t) => match t.as_slice() {
            [tag, _] => matches!(tag.as_atom(), Some("shutdown") | Some("ok")),
            [Term::Reference(_), tag, _] => tag.as_atom() == Some("return"),
            _ => false,
        },
        _ => false,
    }
}

impl Session {
    /// Summarises the session.
    pub fn overview(&self, top: usize) -> Overview {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_pid: HashMap<DictId, u64> = HashMap::new();
        let mut states: HashMap<DictId, u64> = HashMap::new();
        let mut crashes = Vec::new();
        for i in 0..self.reader().blocks().len() {
            let block = self.reader().block(i);
            for e in block.iter() {
                *counts.entry(e.kind.name().to_owned()).or_default() += 1;
                if e.pid != 0 {
                    *per_pid.entry(e.pid).or_default() += 1;
                }
                if e.kind == EventKind::State {
                    *states.entry(e.pid).or_default() += 1;
                }
                if e.kind == EventKind::Exit {
                    let reason = e.term.and_then(|t| self.term(t));
                    if reason.as_ref().is_some_and(|r| !is_normal_exit(r)) {
                        crashes.push(Crash {
                            event: e.id,
                            at: self.relative(e.ts),
                            pid: self.pid_text(e.pid),
                            name: self.any_name(e.pid),
                            reason: e.term.map(|t| self.inspect_bytes(t)).unwrap_or_default(),
                        });
                    }
                }
            }
        }
        let mut busy: Vec<(DictId, u64)> = per_pid.into_iter().collect();
        busy.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let processes_seen = busy.len();
        let initial: HashMap<DictId, Option<String>> = self
            .process_list(&crate::Cursor::END)
            .into_iter()
            .map(|p| (p.id, p.initial_call))
            .collect();
        let top_processes = busy
            .into_iter()
            .take(top)
            .map(|(pid, events)| BusyProcess {
                pid: self.pid_text(pid),
                name: self.any_name(pid),
                initial_call: initial.get(&pid).cloned().flatten(),
                events,
            })
            .collect();
        let mut stateful: Vec<(DictId, u64)> = states.into_iter().collect();
        stateful.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let stateful = stateful
            .into_iter()
            .take(top)
            .map(|(pid, _)| self.any_name(pid).unwrap_or_else(|| self.pid_text(pid)))
            .collect();
        let events = self.reader().total_events();
        let disk_bytes = std::fs::read_dir(self.reader().dir())
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let meta = self.meta();
        Overview {
            session: self.name().to_owned(),
            status: meta.effective_status().name().to_owned(),
            mode: meta.mode.clone(),
            target: meta.target.clone(),
            nodes: meta.nodes.iter().map(|n| n.name.clone()).collect(),
            tracers: meta
                .nodes
                .iter()
                .map(|n| NodeTracer {
                    node: n.name.clone(),
                    tracer: n.tracer.clone(),
                    note: n.tracer_note.clone(),
                })
                .collect(),
            started: self.wall(self.start_ns()),
            duration_s: (self.end_ns() - self.start_ns()).max(0) as f64 / 1e9,
            events,
            disk_bytes,
            bytes_per_event: if events > 0 {
                disk_bytes as f64 / events as f64
            } else {
                0.0
            },
            counts,
            processes_seen,
            top_processes,
            stateful,
            crashes,
            dropped: meta.dropped,
            redaction: meta
                .capture
                .pointer("/redact/enabled")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            redactions: meta.redactions.clone(),
            cut_events: meta.cut_events,
            degraded: self.degradations(),
            trips: meta.trips.clone(),
            problems: self.problems(),
        }
    }
}
