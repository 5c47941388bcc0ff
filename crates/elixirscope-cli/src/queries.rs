//! The query commands: sessions, show, events, state, mailbox, tree, snapshot, step,
//! flame.
//!
//! Each command opens the session through the query interface, prints either one
//! JSON document (`--json`) or text, and reports damage found in the session on
//! stderr with exit status 3 (the output still shows everything readable).

use crate::{flame_text, summary, Failure, OutputOpts};
use clap::Args;
use elixirscope_query::filter::parse_kinds;
use elixirscope_query::flame::FlameQuery;
use elixirscope_query::search::FilterSpec;
use elixirscope_query::Session;
use elixirscope_store::session::list_sessions;
use serde::Serialize;
use std::path::Path;

/// Exit status when results were printed but the session is damaged.
const DAMAGED: u8 = 3;

#[derive(Args)]
pub struct EventsArgs {
    /// Session name, unique prefix, or `last`
    pub session: String,
    /// Only events at or after T (+1.5s, RFC 3339, event id, start, end)
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Only events at or before T
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Only events involving this process: pid (<0.123.0>) or registered name (every
    /// process that held the name); repeatable
    #[arg(long = "pid", value_name = "PROC")]
    pub pids: Vec<String>,
    /// Only these kinds, comma separated (spawn,exit,send,receive,call,return,state,...;
    /// groups: messages, calls, lifecycle)
    #[arg(long, value_name = "KINDS")]
    pub kind: Option<String>,
    /// Only calls/returns/spawns of functions matching PATTERN (MyApp.Repo._/_, lists:reverse/1)
    #[arg(long, value_name = "PATTERN")]
    pub mfa: Option<String>,
    /// Only events whose terms (as Elixir prints them) contain TEXT
    #[arg(long = "match", value_name = "TEXT")]
    pub text: Option<String>,
    /// Show at most N events
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub limit: usize,
    /// Show the last N matching events instead of the first
    #[arg(long)]
    pub last: bool,
    /// Print terms in full instead of shortening long ones
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub out: OutputOpts,
}

#[derive(Args)]
pub struct ProcAtArgs {
    /// Session name, unique prefix, or `last`
    pub session: String,
    /// Process: pid (<0.123.0>, #PID<0.123.0>) or registered name (MyApp.Counter, :my_server)
    pub proc: String,
    /// The moment: +1.5s from the start, an RFC 3339 time, an event id, or end
    #[arg(long, value_name = "T")]
    pub at: String,
    #[command(flatten)]
    pub out: OutputOpts,
}

#[derive(Args)]
pub struct AtArgs {
    /// Session name, unique prefix, or `last`
    pub session: String,
    /// The moment: +1.5s from the start, an RFC 3339 time, an event id, or end
    #[arg(long, value_name = "T")]
    pub at: String,
    #[command(flatten)]
    pub out: OutputOpts,
}

#[derive(Args)]
pub struct TreeArgs {
    #[command(flatten)]
    pub at: AtArgs,
    /// Show only the subtree under this process
    #[arg(long, value_name = "PROC")]
    pub root: Option<String>,
}

#[derive(Args)]
pub struct StepArgs {
    /// Session name, unique prefix, or `last`
    pub session: String,
    /// Process: pid or registered name
    pub proc: String,
    /// Step from this moment
    #[arg(long, value_name = "T")]
    pub at: String,
    /// Step backwards (previous events)
    #[arg(long)]
    pub back: bool,
    /// How many events
    #[arg(long, short = 'n', default_value_t = 1, value_name = "N")]
    pub count: usize,
    /// Only these kinds (e.g. state: the next change of this process's state)
    #[arg(long, value_name = "KINDS")]
    pub kind: Option<String>,
    #[command(flatten)]
    pub out: OutputOpts,
}

#[derive(Args)]
pub struct FlameArgs {
    /// Session name, unique prefix, or `last`
    pub session: String,
    /// Only calls of this process: pid (<0.123.0>) or registered name (every process that
    /// held the name)
    #[arg(long, value_name = "PROC")]
    pub pid: Option<String>,
    /// Only time at or after T (+1.5s, RFC 3339, event id, start, end)
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Only time before T
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Print folded stacks instead (one `a;b;c SELF_NS` line per call path, self time in
    /// ns) for flamegraph.pl or speedscope
    #[arg(long, conflicts_with = "json")]
    pub folded: bool,
    /// Hide calls that took less than P percent of the total time (text output)
    #[arg(long, default_value_t = 0.5, value_name = "P", value_parser = flame_text::parse_percent)]
    pub min_percent: f64,
    #[command(flatten)]
    pub out: OutputOpts,
}

/// Opens a session for a query, recording the view in the audit log.
fn open(home: &Path, name: &str, query: &str) -> Result<Session, Failure> {
    let session = Session::open(home, name)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    elixirscope_store::audit::record(
        home,
        "view",
        session.name(),
        serde_json::json!({ "query": query, "args": args }),
    )?;
    Ok(session)
}

/// Prints `value` as JSON or `text`, then any damage; returns the exit status.
fn emit<T: Serialize>(
    session: &Session,
    json: bool,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<u8, Failure> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(report_damage(session))
}

fn report_damage(session: &Session) -> u8 {
    let problems = session.problems();
    for p in &problems {
        eprintln!("warning: session {} is damaged: {p}", session.name());
    }
    if problems.is_empty() {
        0
    } else {
        DAMAGED
    }
}

pub fn sessions(home: &Path, json: bool) -> Result<u8, Failure> {
    #[derive(Serialize)]
    struct Row {
        name: String,
        status: String,
        mode: String,
        target: String,
        created: String,
        events: u64,
        disk_bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    }
    let rows: Vec<Row> = list_sessions(home)?
        .into_iter()
        .map(|s| match &s.meta {
            Ok(m) => Row {
                name: s.name.clone(),
                status: m.effective_status().name().into(),
                mode: m.mode.clone(),
                target: m.target.clone(),
                created: m.created.clone(),
                events: m.events,
                disk_bytes: s.disk_bytes,
                error: None,
            },
            Err(e) => Row {
                name: s.name.clone(),
                status: "unreadable".into(),
                mode: String::new(),
                target: String::new(),
                created: String::new(),
                events: 0,
                disk_bytes: s.disk_bytes,
                error: Some(e.clone()),
            },
        })
        .collect();
    if json {
        #[derive(Serialize)]
        struct Doc<'a> {
            home: String,
            sessions: &'a [Row],
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Doc {
                home: home.display().to_string(),
                sessions: &rows
            })?
        );
        return Ok(0);
    }
    if rows.is_empty() {
        println!(
            "no sessions yet in {} (record one with `elixirscope run` or `elixirscope record`)",
            home.display()
        );
        return Ok(0);
    }
    println!(
        "{:<40} {:<11} {:<6} {:>10} {:>10}  {:<20}  target",
        "session", "status", "mode", "events", "size", "created"
    );
    for r in rows {
        println!(
            "{:<40} {:<11} {:<6} {:>10} {:>10}  {:<20}  {}",
            r.name,
            r.status,
            r.mode,
            r.events,
            summary::bytes(r.disk_bytes),
            r.created,
            r.error.unwrap_or(r.target)
        );
    }
    Ok(0)
}

pub fn show(home: &Path, name: &str, json: bool) -> Result<u8, Failure> {
    let s = open(home, name, "show")?;
    let o = s.overview(10);
    emit(&s, json, &o, || summary::overview_text(&o))
}

pub fn events(home: &Path, a: &EventsArgs) -> Result<u8, Failure> {
    let s = open(home, &a.session, "events")?;
    let spec = FilterSpec {
        from: a.from.clone(),
        to: a.to.clone(),
        pids: a.pids.clone(),
        kind: a.kind.clone(),
        mfa: a.mfa.clone(),
        text: a.text.clone(),
    };
    let f = s.filter(&spec, a.limit, a.last)?;
    let page = s.events(
        &f,
        if a.full || a.out.json {
            None
        } else {
            Some(160)
        },
    );
    emit(&s, a.out.json, &page, || {
        let mut out = String::new();
        for e in &page.events {
            out.push_str(&e.line());
            out.push('\n');
        }
        if page.truncated {
            out.push_str(&format!(
                "… {} of {}{} matching events shown; narrow the filters or raise --limit\n",
                page.events.len(),
                if page.matched > (a.limit as u64 + 10_000) {
                    "more than "
                } else {
                    ""
                },
                page.matched
            ));
        } else if page.events.is_empty() {
            out.push_str("no matching events\n");
        }
        out
    })
}

pub fn state(home: &Path, a: &ProcAtArgs) -> Result<u8, Failure> {
    let s = open(home, &a.session, "state")?;
    let at = s.parse_time(&a.at)?;
    let p = s.resolve_proc(&a.proc, &at)?;
    let st = s.state_at(p.pid, &at);
    emit(&s, a.out.json, &st, || summary::state_text(&st))
}

pub fn mailbox(home: &Path, a: &ProcAtArgs) -> Result<u8, Failure> {
    let s = open(home, &a.session, "mailbox")?;
    let at = s.parse_time(&a.at)?;
    let p = s.resolve_proc(&a.proc, &at)?;
    let m = s.mailbox_at(p.pid, &at);
    emit(&s, a.out.json, &m, || summary::mailbox_text(&m))
}

pub fn tree(home: &Path, a: &TreeArgs) -> Result<u8, Failure> {
    let s = open(home, &a.at.session, "tree")?;
    let at = s.parse_time(&a.at.at)?;
    let root = match &a.root {
        Some(r) => Some(s.resolve_proc(r, &at)?.pid),
        None => None,
    };
    let t = s.tree_at(&at, root);
    emit(&s, a.at.out.json, &t, || t.text())
}

pub fn snapshot(home: &Path, a: &AtArgs) -> Result<u8, Failure> {
    let s = open(home, &a.session, "snapshot")?;
    let at = s.parse_time(&a.at)?;
    let snap = s.snapshot_at(&at);
    emit(&s, a.out.json, &snap, || summary::snapshot_text(&snap))
}

pub fn step(home: &Path, a: &StepArgs) -> Result<u8, Failure> {
    let s = open(home, &a.session, "step")?;
    let at = s.parse_time(&a.at)?;
    let p = s.resolve_proc(&a.proc, &at)?;
    let kinds = match &a.kind {
        Some(k) => parse_kinds(k)?,
        None => Vec::new(),
    };
    let events = s.step(p.pid, &at, !a.back, &kinds, a.count);
    #[derive(Serialize)]
    struct Doc<'a> {
        session: &'a str,
        pid: String,
        direction: &'a str,
        events: &'a [elixirscope_query::render::EventInfo],
    }
    let doc = Doc {
        session: s.name(),
        pid: s.pid_text(p.pid),
        direction: if a.back { "back" } else { "forward" },
        events: &events,
    };
    emit(&s, a.out.json, &doc, || {
        if events.is_empty() {
            return format!(
                "no {} events for {}\n",
                if a.back { "earlier" } else { "later" },
                s.proc_label(p.pid)
            );
        }
        events.iter().map(|e| format!("{}\n", e.line())).collect()
    })
}

pub fn flame(home: &Path, a: &FlameArgs) -> Result<u8, Failure> {
    let s = open(home, &a.session, "flame")?;
    let mut q = FlameQuery::default();
    if let Some(t) = &a.from {
        q.from = Some(s.parse_time(t)?);
    }
    if let Some(t) = &a.to {
        q.to = Some(s.parse_time(t)?);
    }
    if let Some(p) = &a.pid {
        q.pids = s.resolve_all(p)?;
    }
    let g = s.flame(&q)?;
    if a.folded {
        print!("{}", g.folded());
        return Ok(report_damage(&s));
    }
    emit(&s, a.out.json, &g, || flame_text::text(&g, a.min_percent))
}

pub fn audit_verify(home: &Path, json: bool) -> Result<u8, Failure> {
    let v = elixirscope_store::audit::verify(home)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    match &v.problem {
        None => {
            if !json {
                println!("audit log intact: {} entries", v.entries);
            }
            Ok(0)
        }
        Some(p) => Err(Failure {
            message: format!("audit log tampered: {p}"),
            code: 1,
        }),
    }
}

pub fn audit_show(home: &Path, last: Option<usize>, json: bool) -> Result<u8, Failure> {
    let all = elixirscope_store::audit::entries(home)?;
    let shown = &all[all.len().saturating_sub(last.unwrap_or(all.len()))..];
    if json {
        println!("{}", serde_json::to_string_pretty(shown)?);
        return Ok(0);
    }
    for e in shown {
        println!(
            "#{:<5} {}  {:<16} {:<30} by {} ({})",
            e.seq, e.time, e.action, e.subject, e.actor, e.from
        );
    }
    Ok(0)
}
