//! The process table at any moment, and the supervision/process tree built from it.
//!
//! Replays lifecycle events (the start snapshot, spawns, exits, links, names) up
//! to the moment. A process's parent is its spawner (for OTP processes, the
//! supervisor that started it); its initial call is what `proc_lib` reports
//! (`Demo.Counter.init/1`, `supervisor Demo.Supervisor`) rather than
//! `:proc_lib.init_p/5`. A live process spawned by the same parent with the
//! same initial call shortly after a sibling crashed is marked as its restart
//! (each crash explains at most one restart).

use crate::{Cursor, Session};
use elixirscope_store::{DictId, Event, EventKind};
use elixirscope_term::Term;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A process as known at some moment.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    pub pid: String,
    #[serde(skip)]
    pub id: DictId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_call: Option<String>,
    pub supervisor: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(skip)]
    pub parent_id: Option<DictId>,
    pub alive: bool,
    /// Offset of the spawn, or `None` if it existed when capture started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawned_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_reason: Option<String>,
    pub links: Vec<String>,
    /// The dead process this one replaced (same parent and initial call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_of: Option<Restart>,
}

/// What a restarted process replaced.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub pid: String,
    pub exited_at: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Proc {
    pub(crate) parent: Option<DictId>,
    pub(crate) initial: Option<String>,
    pub(crate) supervisor: bool,
    pub(crate) alive: bool,
    pub(crate) spawned: Option<i64>,
    pub(crate) exited: Option<(i64, String)>,
    /// Exited with a reason other than normal/shutdown.
    pub(crate) crashed: bool,
    pub(crate) links: BTreeSet<DictId>,
    pub(crate) order: u64,
}

/// All processes known at a moment.
pub struct ProcessTable {
    pub(crate) procs: BTreeMap<DictId, Proc>,
    /// Live process → the crashed process it replaced.
    restarts: BTreeMap<DictId, DictId>,
}

/// A supervisor restarts a child within moments of its crash.
const RESTART_WINDOW_NS: i64 = 5_000_000_000;

/// Pairs each live process with at most one crashed sibling (same parent and
/// initial call) that exited shortly before it was spawned, nearest first.
fn find_restarts(procs: &BTreeMap<DictId, Proc>) -> BTreeMap<DictId, DictId> {
    let mut crashed: Vec<(DictId, &Proc, i64)> = procs
        .iter()
        .filter(|(_, p)| p.crashed && p.parent.is_some())
        .filter_map(|(id, p)| p.exited.as_ref().map(|(ts, _)| (*id, p, *ts)))
        .collect();
    crashed.sort_by_key(|(_, _, ts)| std::cmp::Reverse(*ts));
    let mut live: Vec<(DictId, &Proc, i64)> = procs
        .iter()
        .filter(|(_, p)| p.parent.is_some())
        .filter_map(|(id, p)| p.spawned.map(|s| (*id, p, s)))
        .collect();
    live.sort_by_key(|(_, _, s)| *s);
    let mut used = BTreeSet::new();
    let mut out = BTreeMap::new();
    for (lid, l, spawned) in live {
        let found = crashed.iter().find(|(did, d, exited)| {
            !used.contains(did)
                && d.parent == l.parent
                && d.initial == l.initial
                && *exited <= spawned
                && spawned - *exited <= RESTART_WINDOW_NS
        });
        if let Some((did, _, _)) = found {
            used.insert(*did);
            out.insert(lid, *did);
        }
    }
    out
}

impl Session {
    /// `initial_call` text and whether it is a supervisor, from a spawn's MFA and args.
    pub fn initial_call(&self, mfa: DictId, args: Option<&[u8]>) -> (Option<String>, bool) {
        let Some(m) = self.reader().dict().mfa(mfa) else {
            return (None, false);
        };
        let (module, function) = (self.atom(m.module), self.atom(m.function));
        if module == "supervisor" && m.arity == 1 && function != "init" {
            return (Some(format!("supervisor {}", short_module(function))), true);
        }
        if module == "proc_lib" && function == "init_p" {
            if let Some(Term::List { items, .. }) = args.and_then(|a| self.term(a)) {
                if let [_, _, Term::Atom(m2), Term::Atom(f2), a2] = items.as_slice() {
                    if m2 == "gen" && f2 == "init_it" {
                        if let Some(gen_args) = a2.as_list() {
                            // [GenMod, Starter, Parent, Name, Mod, Args, Opts] or without Name.
                            let (cb, cb_args) = match gen_args {
                                [_, _, _, _, Term::Atom(cb), a, _] => (cb.as_str(), a),
                                [_, _, _, Term::Atom(cb), a, _] => (cb.as_str(), a),
                                _ => ("", &Term::Integer(0)),
                            };
                            if cb == "supervisor" {
                                if let Some([_, Term::Atom(sup), _]) = cb_args.as_tuple() {
                                    return (
                                        Some(format!("supervisor {}", short_module(sup))),
                                        true,
                                    );
                                }
                            }
                            if !cb.is_empty() {
                                return (Some(format!("{}.init/1", short_module(cb))), false);
                            }
                        }
                    }
                    let arity = a2.as_list().map(|l| l.len()).unwrap_or(0);
                    return (Some(format!("{}.{f2}/{arity}", short_module(m2))), false);
                }
            }
        }
        (Some(self.mfa_text(mfa)), false)
    }

    /// Replays lifecycle events up to `at`.
    pub fn processes_at(&self, at: &Cursor) -> ProcessTable {
        let mut procs: BTreeMap<DictId, Proc> = BTreeMap::new();
        let mut order = 0u64;
        let kinds = [
            EventKind::Spawn,
            EventKind::Exit,
            EventKind::Link,
            EventKind::Unlink,
            EventKind::ProcessInfo,
        ];
        self.scan_until(at, None, &kinds, |e: &Event<'_>| {
            order += 1;
            match e.kind {
                EventKind::Spawn => {
                    let (initial, supervisor) = self.initial_call(e.mfa, e.term);
                    let p = procs.entry(e.peer).or_default();
                    p.parent = Some(e.pid);
                    p.initial = initial;
                    p.supervisor = supervisor;
                    p.alive = p.exited.is_none();
                    p.spawned = Some(e.ts);
                    p.order = order;
                    procs.entry(e.pid).or_insert_with(|| Proc {
                        alive: true,
                        order,
                        ..Default::default()
                    });
                }
                EventKind::ProcessInfo => {
                    let (initial, supervisor) = self.initial_call(e.mfa, None);
                    let p = procs.entry(e.pid).or_default();
                    if p.spawned.is_none() {
                        p.parent = (e.peer != 0).then_some(e.peer);
                        p.initial = initial;
                        p.supervisor = supervisor;
                        p.order = order;
                    }
                    p.alive = p.exited.is_none();
                    if let Some(Term::Map(facts)) = e.term.and_then(|t| self.term(t)) {
                        for (k, v) in facts {
                            if k.as_atom() == Some("links") {
                                for l in v.as_list().unwrap_or(&[]) {
                                    if let Some(id) = self.pid_id(l) {
                                        p.links.insert(id);
                                    }
                                }
                            }
                        }
                    }
                }
                EventKind::Exit => {
                    let reason = e.term.map(|t| self.inspect_bytes(t)).unwrap_or_default();
                    let crashed = e
                        .term
                        .and_then(|t| self.term(t))
                        .is_some_and(|r| !crate::overview::is_normal_exit(&r));
                    let p = procs.entry(e.pid).or_default();
                    p.alive = false;
                    p.exited = Some((e.ts, reason));
                    p.crashed = crashed;
                    let links: Vec<DictId> = std::mem::take(&mut p.links).into_iter().collect();
                    for l in links {
                        if let Some(o) = procs.get_mut(&l) {
                            o.links.remove(&e.pid);
                        }
                    }
                }
                EventKind::Link if e.peer != 0 => {
                    procs.entry(e.pid).or_default().links.insert(e.peer);
                    procs.entry(e.peer).or_default().links.insert(e.pid);
                }
                EventKind::Unlink if e.peer != 0 => {
                    if let Some(p) = procs.get_mut(&e.pid) {
                        p.links.remove(&e.peer);
                    }
                    if let Some(p) = procs.get_mut(&e.peer) {
                        p.links.remove(&e.pid);
                    }
                }
                _ => {}
            }
            true
        });
        let restarts = find_restarts(&procs);
        ProcessTable { procs, restarts }
    }

    fn describe_proc(&self, t: &ProcessTable, id: DictId, at: &Cursor) -> ProcessInfo {
        let p = &t.procs[&id];
        let restart_of = t.restarts.get(&id).filter(|_| p.alive).map(|oid| {
            let (ts, reason) = t.procs[oid].exited.clone().unwrap_or_default();
            Restart {
                pid: self.pid_text(*oid),
                exited_at: self.relative(ts),
                reason,
            }
        });
        ProcessInfo {
            pid: self.pid_text(id),
            id,
            name: self
                .name_at(id, at)
                .or_else(|| (!p.alive).then(|| self.any_name(id)).flatten()),
            initial_call: p.initial.clone(),
            supervisor: p.supervisor,
            parent: p.parent.map(|pp| self.pid_text(pp)),
            parent_id: p.parent,
            alive: p.alive,
            spawned_at: p.spawned.map(|ts| self.relative(ts)),
            exited_at: p.exited.as_ref().map(|(ts, _)| self.relative(*ts)),
            exit_reason: p.exited.as_ref().map(|(_, r)| r.clone()),
            links: p.links.iter().map(|l| self.pid_text(*l)).collect(),
            restart_of,
        }
    }

    /// Every process known at `at` (alive or not), in spawn order.
    pub fn process_list(&self, at: &Cursor) -> Vec<ProcessInfo> {
        let t = self.processes_at(at);
        let mut ids: Vec<DictId> = t.procs.keys().copied().collect();
        ids.sort_by_key(|id| (t.procs[id].order, *id));
        ids.into_iter()
            .map(|id| self.describe_proc(&t, id, at))
            .collect()
    }

    /// One process as known at `at` (alive or not), if it is known.
    pub fn process_at(&self, pid: DictId, at: &Cursor) -> Option<ProcessInfo> {
        let t = self.processes_at(at);
        t.procs
            .contains_key(&pid)
            .then(|| self.describe_proc(&t, pid, at))
    }

    /// The tree of processes alive at `at`, optionally below `root` only.
    pub fn tree_at(&self, at: &Cursor, root: Option<DictId>) -> ProcessTree {
        let t = self.processes_at(at);
        let alive: BTreeSet<DictId> = t
            .procs
            .iter()
            .filter(|(_, p)| p.alive)
            .map(|(id, _)| *id)
            .collect();
        let mut children: BTreeMap<DictId, Vec<DictId>> = BTreeMap::new();
        let mut roots = Vec::new();
        let mut ordered: Vec<DictId> = alive.iter().copied().collect();
        ordered.sort_by_key(|id| (t.procs[id].order, *id));
        for id in ordered {
            match t.procs[&id]
                .parent
                .filter(|p| alive.contains(p) && *p != id)
            {
                Some(parent) => children.entry(parent).or_default().push(id),
                None => roots.push(id),
            }
        }
        let starts = match root {
            Some(r) if alive.contains(&r) => vec![r],
            Some(_) => Vec::new(),
            None => roots,
        };
        let mut count = 0;
        let nodes = starts
            .into_iter()
            .map(|id| self.build_tree(&t, &children, id, at, &mut count, 0))
            .collect();
        ProcessTree {
            session: self.name().to_owned(),
            at: self.relative(at.ts.min(self.end_ns())),
            processes: count,
            roots: nodes,
        }
    }

    fn build_tree(
        &self,
        t: &ProcessTable,
        children: &BTreeMap<DictId, Vec<DictId>>,
        id: DictId,
        at: &Cursor,
        count: &mut usize,
        depth: usize,
    ) -> TreeNode {
        *count += 1;
        let kids = if depth < 200 {
            children
                .get(&id)
                .map(|c| {
                    c.iter()
                        .map(|k| self.build_tree(t, children, *k, at, count, depth + 1))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        TreeNode {
            process: self.describe_proc(t, id, at),
            children: kids,
        }
    }
}

fn short_module(m: &str) -> String {
    match m.strip_prefix("Elixir.") {
        Some(a) => a.to_owned(),
        None => format!(":{m}"),
    }
}

/// One process and the processes it started that are alive.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    #[serde(flatten)]
    pub process: ProcessInfo,
    pub children: Vec<TreeNode>,
}

/// The process tree at a moment.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessTree {
    pub session: String,
    pub at: String,
    pub processes: usize,
    pub roots: Vec<TreeNode>,
}

impl ProcessTree {
    /// Renders the tree with box-drawing characters.
    pub fn text(&self) -> String {
        let mut out = format!(
            "process tree of {} at {} ({} processes)\n",
            self.session, self.at, self.processes
        );
        for r in &self.roots {
            render(r, "", true, true, &mut out);
        }
        out
    }
}

fn render(n: &TreeNode, prefix: &str, last: bool, root: bool, out: &mut String) {
    let p = &n.process;
    let mut line = p.pid.clone();
    if let Some(name) = &p.name {
        line.push(' ');
        line.push_str(name);
    }
    if let Some(ic) = &p.initial_call {
        line.push_str(&format!("  [{ic}]"));
    }
    if let Some(r) = &p.restart_of {
        line.push_str(&format!(
            "  (restarted: {} exited at {}: {})",
            r.pid, r.exited_at, r.reason
        ));
    }
    let (branch, next) = if root {
        ("", "")
    } else if last {
        ("└── ", "    ")
    } else {
        ("├── ", "│   ")
    };
    out.push_str(&format!("{prefix}{branch}{line}\n"));
    let child_prefix = format!("{prefix}{next}");
    for (i, c) in n.children.iter().enumerate() {
        render(c, &child_prefix, i + 1 == n.children.len(), false, out);
    }
}

/// A monitor a process had set up, as far as the recorded calls show.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorInfo {
    /// The monitored process, or the name or port as given.
    pub target: String,
    pub since: String,
    pub event: u64,
}

impl Session {
    /// Monitors `pid` set up (traced `erlang:monitor/2` calls) before `at` on
    /// processes still alive at `at`. A `demonitor` names only a reference,
    /// which the trace does not tie to its monitor, so those are not subtracted.
    pub fn monitors_at(&self, pid: DictId, at: &Cursor) -> Vec<MonitorInfo> {
        let mut out: Vec<(DictId, MonitorInfo)> = Vec::new();
        let mut exited: BTreeSet<DictId> = BTreeSet::new();
        self.scan_until(at, None, &[EventKind::Monitor, EventKind::Exit], |e| {
            match e.kind {
                EventKind::Exit => {
                    exited.insert(e.pid);
                }
                _ if e.pid == pid => out.push((
                    e.peer,
                    MonitorInfo {
                        target: if e.peer != 0 {
                            self.proc_label(e.peer)
                        } else {
                            e.term2.map(|t| self.inspect_bytes(t)).unwrap_or_default()
                        },
                        since: self.relative(e.ts),
                        event: e.id,
                    },
                )),
                _ => {}
            }
            true
        });
        out.into_iter()
            .filter(|(peer, _)| *peer == 0 || !exited.contains(peer))
            .map(|(_, m)| m)
            .collect()
    }
}
