//! What ingest tells the collector's metrics (`elixirscope-metrics`): events
//! stored per kind, drops, trips, budgets and their use, traced call
//! latencies (only while the metrics are served), and the node metrics in the
//! agent's status reports.

use elixirscope_metrics::{
    metrics, BudgetLabels, KindLabels, MemoryLabels, NodeLabel, NodeLabels, ReasonLabels,
    SchedulerLabels, SessionLabel,
};
use elixirscope_store::session::SessionMeta;
use elixirscope_store::{DictId, EventId, EventKind, SessionWriter};
use elixirscope_term::Term;

fn budget(session: &str, name: &str) -> BudgetLabels {
    BudgetLabels {
        session: session.to_owned(),
        budget: name.to_owned(),
    }
}

/// Why captures trip (the agent's budgets and breakers, the collector's
/// session cap): each gets a zero series when a session starts, so
/// dashboards and alerts see the counters before the first trip.
pub const TRIP_REASONS: &[&str] = &[
    "max_events",
    "max_rate",
    "max_bytes_rate",
    "max_backlog",
    "max_memory",
    "max_duration",
    "node_memory",
    "run_queue",
    "scheduler_use",
    "max_session_bytes",
];

/// A session starts recording: its budgets, zero trip counters, and the
/// recording flag.
pub fn started(meta: &SessionMeta) {
    let m = metrics();
    for reason in TRIP_REASONS {
        m.trips
            .get_or_create(&ReasonLabels {
                session: meta.name.clone(),
                reason: (*reason).to_owned(),
            })
            .inc_by(0);
    }
    for (name, pointer) in [
        ("max_events", "/budget/max_events"),
        ("max_session_bytes", "/budget/max_session_bytes"),
        ("max_duration_ms", "/budget/max_duration_ms"),
    ] {
        if let Some(v) = meta.capture.pointer(pointer).and_then(|v| v.as_u64()) {
            m.budget
                .get_or_create(&budget(&meta.name, name))
                .set(v as i64);
        }
    }
    m.recording
        .get_or_create(&SessionLabel {
            session: meta.name.clone(),
        })
        .set(1);
}

/// The session stopped recording.
pub fn finished(session: &str) {
    metrics()
        .recording
        .get_or_create(&SessionLabel {
            session: session.to_owned(),
        })
        .set(0);
}

/// Adds the events stored since the last call (`reported` keeps the counts).
pub fn events(session: &str, w: &SessionWriter, reported: &mut [u64; 32]) {
    let m = metrics();
    for k in EventKind::ALL {
        let (now, slot) = (w.count(*k), &mut reported[*k as usize % 32]);
        if now > *slot {
            m.events
                .get_or_create(&KindLabels {
                    session: session.to_owned(),
                    kind: k.name().to_owned(),
                })
                .inc_by(now - *slot);
            *slot = now;
        }
    }
    m.usage
        .get_or_create(&budget(session, "events"))
        .set(w.total() as i64);
    m.usage
        .get_or_create(&budget(session, "session_bytes"))
        .set(w.bytes_on_disk() as i64);
}

/// A node joined the session: its drop counter starts at zero.
pub fn node_joined(session: &str, node: &str) {
    dropped(session, node, 0);
}

pub fn dropped(session: &str, node: &str, n: u64) {
    metrics()
        .dropped
        .get_or_create(&NodeLabels {
            session: session.to_owned(),
            node: node.to_owned(),
        })
        .inc_by(n);
}

pub fn trip(session: &str, reason: &str) {
    metrics()
        .trips
        .get_or_create(&ReasonLabels {
            session: session.to_owned(),
            reason: reason.to_owned(),
        })
        .inc();
}

/// Call latencies of the calls that returned in the last batch.
pub fn returns(session: &str, w: &SessionWriter, returns: &mut Vec<(DictId, u64, EventId)>) {
    let m = metrics();
    let dict = w.dict();
    for (mfa, ns, id) in returns.drain(..) {
        let Some(e) = dict.mfa(mfa) else { continue };
        let module = dict.atom(e.module).unwrap_or("?");
        let module = module.strip_prefix("Elixir.").unwrap_or(module);
        let function = format!("{}/{}", dict.atom(e.function).unwrap_or("?"), e.arity);
        m.observe_call(session, module, &function, ns as f64 / 1e9, id);
    }
}

/// Node metrics from an agent's status report.
pub fn status(node: &str, status: &Term) {
    let m = metrics();
    let label = NodeLabel {
        node: node.to_owned(),
    };
    let int = |t: Option<&Term>| t.and_then(Term::as_i64);
    if let Some(q) = int(status.map_get(&Term::atom("run_queue"))) {
        m.node_run_queue.get_or_create(&label).set(q);
    }
    let Some(stats) = status.map_get(&Term::atom("node")) else {
        return;
    };
    if let Some(n) = int(stats.map_get(&Term::atom("processes"))) {
        m.node_processes.get_or_create(&label).set(n);
    }
    if let Some(n) = int(stats.map_get(&Term::atom("message_queue_max"))) {
        m.node_message_queue_max.get_or_create(&label).set(n);
    }
    if let Some(queues) = stats
        .map_get(&Term::atom("run_queues"))
        .and_then(Term::as_list)
    {
        for (i, q) in queues.iter().enumerate() {
            if let Some(q) = q.as_i64() {
                m.node_scheduler_run_queue
                    .get_or_create(&SchedulerLabels {
                        node: node.to_owned(),
                        scheduler: (i + 1).to_string(),
                    })
                    .set(q);
            }
        }
    }
    if let Some(Term::Float(u)) = stats.map_get(&Term::atom("scheduler_utilisation")) {
        m.node_scheduler_utilisation.get_or_create(&label).set(*u);
    }
    if let Some(Term::Map(kinds)) = stats.map_get(&Term::atom("memory")) {
        for (kind, bytes) in kinds {
            if let (Some(kind), Some(bytes)) = (kind.as_atom(), bytes.as_i64()) {
                m.node_memory
                    .get_or_create(&MemoryLabels {
                        node: node.to_owned(),
                        kind: kind.to_owned(),
                    })
                    .set(bytes);
            }
        }
    }
}
