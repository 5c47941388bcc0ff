//! Text rendering of query results for people (JSON output needs none).

use crate::Failure;
use elixirscope_query::mailbox::{Mailbox, PendingMessage};
use elixirscope_query::overview::Overview;
use elixirscope_query::snapshot::Snapshot;
use elixirscope_query::state::StateAt;
use elixirscope_query::Session;
use std::path::Path;

/// `12.3 KB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KB", n as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GB", n as f64 / 1_073_741_824.0),
    }
}

/// The summary printed when a recording ends, with how to explore it.
pub fn print_after_recording(dir: &Path) -> Result<(), Failure> {
    let s = Session::open_dir(dir)?;
    let o = s.overview(5);
    print!("{}", overview_text(&o));
    println!("\nExplore it:");
    let n = &o.session;
    // Pids need quoting in a shell (`<` and `>` are redirections).
    let shell = |p: &str| {
        if p.starts_with('<') {
            format!("'{p}'")
        } else {
            p.to_owned()
        }
    };
    let busy = o
        .stateful
        .first()
        .cloned()
        .or_else(|| o.top_processes.iter().find_map(|p| p.name.clone()))
        .or_else(|| o.top_processes.first().map(|p| p.pid.clone()))
        .map(|p| shell(&p))
        .unwrap_or_else(|| "PROC".into());
    println!("  elixirscope events {n} --pid {busy} --kind messages");
    println!("  elixirscope tree {n} --at end");
    println!(
        "  elixirscope snapshot {n} --at +{:.3}s",
        o.duration_s / 2.0
    );
    match o.stateful.first() {
        Some(s) => {
            let s = shell(s);
            println!("  elixirscope events {n} --kind state --pid {s}");
            println!("  elixirscope state {n} {s} --at end");
        }
        None => println!("  (record GenServer state with --state MODULE_OR_NAME)"),
    }
    if let Some(c) = o.crashes.first() {
        let who = c.name.clone().unwrap_or_else(|| shell(&c.pid));
        println!(
            "  elixirscope step {n} {who} --at {} --back -n 5   # what led to the crash",
            c.event
        );
    }
    println!("Watch it in the browser (timeline, playback, state at any moment):");
    println!("  elixirscope ui {n}");
    Ok(())
}

pub fn overview_text(o: &Overview) -> String {
    let mut out = format!(
        "session {} ({}): {} of `{}`, {:.3}s, {} events, {} on disk ({:.1} bytes/event)\n",
        o.session,
        o.status,
        o.mode,
        o.target,
        o.duration_s,
        o.events,
        bytes(o.disk_bytes),
        o.bytes_per_event
    );
    for t in &o.tracers {
        let tracer = match t.tracer.as_str() {
            "nif" => "NIF tracer".to_owned(),
            "process" => "process tracer".to_owned(),
            other => other.to_owned(),
        };
        match &t.note {
            Some(why) => out.push_str(&format!("  tracer on {}: {tracer} ({why})\n", t.node)),
            None => out.push_str(&format!("  tracer on {}: {tracer}\n", t.node)),
        }
    }
    let counts: Vec<String> = o.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    out.push_str(&format!(
        "  events by kind: {}\n",
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    ));
    out.push_str(&format!("  processes seen: {}\n", o.processes_seen));
    if !o.top_processes.is_empty() {
        out.push_str("  busiest processes:\n");
        for p in &o.top_processes {
            let what = match (&p.name, &p.initial_call) {
                (Some(n), _) => n.clone(),
                (None, Some(ic)) => format!("[{ic}]"),
                (None, None) => String::new(),
            };
            out.push_str(&format!("    {} {what} — {} events\n", p.pid, p.events));
        }
    }
    if o.crashes.is_empty() {
        out.push_str("  crashes: none\n");
    } else {
        out.push_str(&format!("  crashes: {}\n", o.crashes.len()));
        for c in o.crashes.iter().take(10) {
            let reason: String = c.reason.chars().take(200).collect();
            out.push_str(&format!(
                "    #{} {} {} {} exited: {}\n",
                c.event,
                c.at,
                c.pid,
                c.name.as_deref().unwrap_or(""),
                reason
            ));
        }
    }
    out.push_str(&format!("  dropped by the agent: {}\n", o.dropped));
    if !o.redaction {
        out.push_str("  redaction: OFF (values left the node as they were)\n");
    } else if o.redactions.is_empty() {
        out.push_str("  redacted on the node: nothing matched\n");
    } else {
        let r: Vec<String> = o
            .redactions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push_str(&format!("  redacted on the node: {}\n", r.join(", ")));
    }
    if o.cut_events > 0 {
        out.push_str(&format!(
            "  cut by the capture limits: {} events (their terms say \"… N more\" where)\n",
            o.cut_events
        ));
    }
    for d in &o.degraded {
        out.push_str(&format!(
            "  state capture degraded at {} (event #{}): {} {} to level {}: {}\n",
            d.at,
            d.event,
            d.pid,
            d.name.as_deref().unwrap_or(""),
            d.level,
            d.why
        ));
    }
    if o.trips.is_empty() {
        out.push_str("  trips: none\n");
    }
    for t in &o.trips {
        out.push_str(&format!(
            "  TRIPPED on {}: {} ({})\n",
            t.node, t.reason, t.detail
        ));
    }
    for p in &o.problems {
        out.push_str(&format!("  damage: {p}\n"));
    }
    out
}

pub fn state_text(s: &StateAt) -> String {
    let who = match &s.name {
        Some(n) => format!("{} {n}", s.pid),
        None => s.pid.clone(),
    };
    let Some(state) = &s.state else {
        return format!(
            "no recorded state for {who} at {} (record it with --state MODULE_OR_NAME)\n",
            s.at
        );
    };
    let mut out = format!("state of {who} at {}:\n  {state}\n", s.at);
    if let Some(c) = &s.changed {
        out.push_str(&format!("set at {} (event #{}) by {}", c.at, c.event, c.by));
        if let Some(a) = &c.arguments {
            out.push_str(&format!(" with {a}"));
        }
        out.push('\n');
        if let Some(m) = &c.message {
            out.push_str(&format!(
                "  handling message {m}{}\n",
                c.message_from
                    .as_ref()
                    .map(|f| format!(" from {f}"))
                    .unwrap_or_default()
            ));
        }
    }
    match &s.previous_state {
        Some(prev) if s.diff.is_empty() => {
            out.push_str(&format!("same as the state before it: {prev}\n"))
        }
        Some(_) => {
            out.push_str(if s.truncated {
                "what it changed (in the part the capture limits kept):\n"
            } else {
                "what it changed:\n"
            });
            for d in &s.diff {
                let path = if d.path.is_empty() {
                    "(whole state)"
                } else {
                    &d.path
                };
                out.push_str(&format!(
                    "  {path}: {} -> {}\n",
                    d.before.as_deref().unwrap_or("(absent)"),
                    d.after.as_deref().unwrap_or("(absent)")
                ));
            }
        }
        None => out.push_str("(first recorded state)\n"),
    }
    if let Some(note) = &s.change_note {
        out.push_str(&format!("  note: {note}\n"));
    }
    if s.truncated {
        out.push_str("  (cut by the capture limits where it says \"… N more\"; raise --max-term-elements, --max-term-depth, --max-term-bytes or --max-event-bytes to keep more)\n");
    }
    if let Some(d) = &s.degraded {
        out.push_str(&format!("  {d}\n"));
    }
    if let Some(last) = s.unchanged_since.first() {
        out.push_str(&format!(
            "since then {} callback(s) left it unchanged, the last at {} (event #{}) by {}{}\n",
            s.unchanged_callbacks,
            last.at,
            last.event,
            last.by,
            last.arguments
                .as_ref()
                .map(|a| format!(" with {a}"))
                .unwrap_or_default()
        ));
    }
    out
}

pub fn mailbox_text(m: &Mailbox) -> String {
    let who = match &m.name {
        Some(n) => format!("{} {n}", m.pid),
        None => m.pid.clone(),
    };
    let mut out = format!("mailbox of {who} at {}:\n", m.at);
    let mut section = |title: &str, list: &[PendingMessage]| {
        out.push_str(&format!("  {title}: {}\n", list.len()));
        for p in list {
            let from = p.from.as_deref().unwrap_or("?");
            out.push_str(&format!(
                "    #{} {} from {from}: {}\n",
                p.event, p.at, p.message
            ));
        }
    };
    section("in flight (sent, not yet received)", &m.in_flight);
    if m.callbacks_traced {
        section("delivered, not yet handled by a callback", &m.unhandled);
    }
    out
}

pub fn snapshot_text(s: &Snapshot) -> String {
    let mut out = format!(
        "snapshot of {} at {} ({}): {} live processes\n",
        s.session, s.at, s.time, s.live_processes
    );
    for p in &s.processes {
        let pr = &p.process;
        out.push_str(&format!(
            "  {} {} [{}]{}{}{}\n",
            pr.pid,
            pr.name.as_deref().unwrap_or(""),
            pr.initial_call.as_deref().unwrap_or("?"),
            if p.in_flight > 0 {
                format!(" in flight: {}", p.in_flight)
            } else {
                String::new()
            },
            match p.unhandled {
                Some(n) if n > 0 => format!(" not yet handled: {n}"),
                _ => String::new(),
            },
            p.state
                .as_ref()
                .map(|st| format!(" state: {}", clip(st, 120)))
                .unwrap_or_default()
        ));
    }
    out.push('\n');
    out.push_str(&s.tree.text());
    out
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_owned()
    }
}
