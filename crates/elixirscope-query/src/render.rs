//! Events described for people and for JSON: pids, names, MFAs, Elixir terms.

use crate::{Cursor, Session};
use elixirscope_store::model::state_flags;
use elixirscope_store::{Event, EventKind};
use serde::Serialize;

/// One event, fully described.
#[derive(Debug, Clone, Serialize)]
pub struct EventInfo {
    pub id: u64,
    /// Offset from the session start, e.g. `+1.234567s`.
    pub at: String,
    /// RFC 3339 wall-clock time.
    pub time: String,
    pub ts_ns: i64,
    pub node: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa: Option<String>,
    /// The main term (message, arguments, result, reason, state), as Elixir prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    /// The secondary term (destination as given, port ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term2: Option<String>,
    /// The related event (matching send/receive, call of a return, callback of a state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The capture limits cut a term of this event (its text says where and
    /// how much, as `… N more`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// One-line description.
    pub summary: String,
}

fn clip(s: String, max: Option<usize>) -> String {
    match max {
        Some(m) if s.chars().count() > m => {
            let mut out: String = s.chars().take(m).collect();
            out.push('…');
            out
        }
        _ => s,
    }
}

/// Human duration: `850ns`, `12.3µs`, `4.56ms`, `1.234s`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.1}µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

impl Session {
    /// Label of a process: `<0.123.0> Demo.Counter` or just the pid.
    pub fn proc_label(&self, pid: u32) -> String {
        match self.any_name(pid) {
            Some(n) => format!("{} {n}", self.pid_text(pid)),
            None => self.pid_text(pid),
        }
    }

    /// Describes an event; terms longer than `clip` characters are shortened.
    pub fn describe(&self, e: &Event<'_>, clip_terms: Option<usize>) -> EventInfo {
        let term = e.term.map(|t| clip(self.inspect_bytes(t), clip_terms));
        let term2 = e.term2.map(|t| clip(self.inspect_bytes(t), clip_terms));
        let pid = (e.pid != 0).then(|| self.pid_text(e.pid));
        let peer = (e.peer != 0).then(|| self.pid_text(e.peer));
        let peer_name = (e.peer != 0).then(|| self.any_name(e.peer)).flatten();
        let mfa = (e.mfa != 0).then(|| self.mfa_text(e.mfa));
        let peer_label = || match (&peer, &peer_name, &term2) {
            (Some(p), Some(n), _) => format!("{p} {n}"),
            (Some(p), None, _) => p.clone(),
            (None, _, Some(t)) => t.clone(),
            _ => "?".into(),
        };
        let t = || term.clone().unwrap_or_default();
        let m = || mfa.clone().unwrap_or_default();
        let mut duration_ns = None;
        let mut depth = None;
        let mut count = None;
        let summary = match e.kind {
            EventKind::Spawn => {
                let (initial, _) = self.initial_call(e.mfa, e.term);
                format!(
                    "spawned {} running {}",
                    peer_label(),
                    initial.unwrap_or_else(m)
                )
            }
            EventKind::Exit => format!("exited: {}", t()),
            EventKind::Link => format!(
                "{} {}",
                if e.aux == 1 {
                    "got linked by"
                } else {
                    "linked to"
                },
                peer_label()
            ),
            EventKind::Unlink => format!(
                "{} {}",
                if e.aux == 1 {
                    "got unlinked by"
                } else {
                    "unlinked from"
                },
                peer_label()
            ),
            EventKind::Register => format!("registered as {}", t()),
            EventKind::Unregister => format!("unregistered {}", t()),
            EventKind::Send => format!("sent to {}: {}", peer_label(), t()),
            EventKind::SendToDead => format!("sent to dead {}: {}", peer_label(), t()),
            EventKind::Receive => match &peer {
                Some(_) => format!("received from {}: {}", peer_label(), t()),
                None => format!("received: {}", t()),
            },
            EventKind::Call => {
                depth = Some(e.aux);
                let indent = "  ".repeat(e.aux.min(20) as usize);
                match term.as_deref() {
                    None => format!("{indent}{} (arguments not captured)", m()),
                    Some(args) => {
                        let inner = args
                            .strip_prefix('[')
                            .and_then(|a| a.strip_suffix(']'))
                            .unwrap_or(args);
                        let name = m();
                        let base = name
                            .rsplit_once('/')
                            .map(|(b, _)| b.to_owned())
                            .unwrap_or(name);
                        format!("{indent}{base}({inner})")
                    }
                }
            }
            EventKind::Return => {
                duration_ns = e.link.map(|_| e.aux);
                format!("{} returned {} in {}", m(), t(), duration(e.aux))
            }
            EventKind::Exception => {
                duration_ns = e.link.map(|_| e.aux);
                format!("{} raised {} after {}", m(), t(), duration(e.aux))
            }
            EventKind::State => {
                if e.aux & state_flags::UNCHANGED != 0 {
                    format!("state unchanged by {}: {}", m(), t())
                } else if e.aux & state_flags::UNSURE != 0 {
                    format!("state after {} (unchanged as far as kept): {}", m(), t())
                } else if e.aux & state_flags::BEFORE_UNKNOWN != 0 {
                    format!(
                        "state after {} (the state before was not recorded): {}",
                        m(),
                        t()
                    )
                } else {
                    format!("state after {}: {}", m(), t())
                }
            }
            EventKind::Monitor => format!("monitors {}", peer_label()),
            EventKind::Demonitor => format!("demonitor {}", t()),
            EventKind::ProcessInfo => format!("existed at start, running {}: {}", m(), t()),
            EventKind::StateSnapshot => format!("state read at start: {}", t()),
            EventKind::Dropped => {
                count = Some(e.aux);
                format!(
                    "agent dropped {} events (collector could not keep up)",
                    e.aux
                )
            }
            EventKind::Trip => format!("capture tripped: {}", t()),
            EventKind::CaptureStart => format!("capture started: {}", t()),
            EventKind::CaptureStop => format!("capture stopped: {}", t()),
            EventKind::ModuleLoad => format!("module loaded: {}", t()),
            EventKind::Degrade => format!(
                "state capture degraded to level {}: {}",
                e.aux,
                e.term
                    .and_then(|b| self.term(b))
                    .and_then(|t| match t {
                        elixirscope_term::Term::Binary(b) => {
                            Some(String::from_utf8_lossy(&b).into_owned())
                        }
                        _ => None,
                    })
                    .unwrap_or_else(t)
            ),
        };
        let truncated = [e.term, e.term2]
            .iter()
            .flatten()
            .any(|b| elixirscope_term::cut::is_cut_bytes(b));
        EventInfo {
            id: e.id,
            at: self.relative(e.ts),
            time: self.wall(e.ts),
            ts_ns: e.ts,
            node: self.atom(e.node).to_owned(),
            kind: e.kind.name(),
            name: (e.pid != 0)
                .then(|| {
                    self.name_at(
                        e.pid,
                        &Cursor {
                            ts: e.ts,
                            id: Some(e.id),
                        },
                    )
                })
                .flatten(),
            pid,
            peer,
            peer_name,
            mfa,
            term,
            term2,
            link: e.link,
            duration_ns,
            depth,
            count,
            truncated,
            summary,
        }
    }
}

impl EventInfo {
    /// `#42  +0.001234s  <0.85.0> Demo.Counter  call  Demo.Counter.handle_call(...)`.
    pub fn line(&self) -> String {
        let who = match (&self.pid, &self.name) {
            (Some(p), Some(n)) => format!("{p} {n}"),
            (Some(p), None) => p.clone(),
            _ => self.node.clone(),
        };
        format!(
            "#{:<6} {:>12}  {:<28} {:<13} {}",
            self.id, self.at, who, self.kind, self.summary
        )
    }
}
