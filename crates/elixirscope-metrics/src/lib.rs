//! The collector's own metrics, for Prometheus: what was ingested and
//! dropped, trips by reason, each session's budgets and use, the latency of
//! traced calls per function (with exemplars naming the session event), and
//! the node metrics the agent samples (memory by type, processes, run queue,
//! the longest message queue, scheduler utilisation when measured).
//!
//! One process-wide registry ([`metrics`]) is updated by ingest and rendered
//! as OpenMetrics text ([`render`]) by whatever serves `/metrics`: `serve`,
//! `ui`, and `record`/`run` with `--metrics-listen` ([`serve`]). Per-function
//! series are bounded ([`set_function_limit`]): past the limit, a session's
//! further functions share the series `function="(other)"`.

pub mod serve;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Default bound on distinct functions with their own latency series, per session.
pub const DEFAULT_FUNCTION_LIMIT: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabel {
    pub session: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub session: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub session: String,
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub session: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub session: String,
    pub budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub session: String,
    pub module: String,
    pub function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemoryLabels {
    pub node: String,
    /// `total`, `processes`, `binary`, `ets`, `atom`, `code`, `system` ...
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchedulerLabels {
    pub node: String,
    pub scheduler: String,
}

/// The session event an observation came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventExemplar {
    pub session: String,
    pub event_id: String,
}

type Latency = HistogramWithExemplars<EventExemplar>;

/// Every metric the collector exports.
pub struct Metrics {
    registry: Registry,
    pub events: Family<KindLabels, Counter>,
    pub dropped: Family<NodeLabels, Counter>,
    pub trips: Family<ReasonLabels, Counter>,
    pub budget: Family<BudgetLabels, Gauge>,
    pub usage: Family<BudgetLabels, Gauge>,
    pub recording: Family<SessionLabel, Gauge>,
    pub call_duration: Family<FunctionLabels, Latency, fn() -> Latency>,
    pub node_memory: Family<MemoryLabels, Gauge>,
    pub node_processes: Family<NodeLabel, Gauge>,
    pub node_run_queue: Family<NodeLabel, Gauge>,
    pub node_scheduler_run_queue: Family<SchedulerLabels, Gauge>,
    pub node_message_queue_max: Family<NodeLabel, Gauge>,
    pub node_scheduler_utilisation: Family<NodeLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    functions: Mutex<HashMap<String, HashSet<(String, String)>>>,
    function_limit: AtomicUsize,
}

fn latency() -> Latency {
    // 1 µs to 10 s.
    HistogramWithExemplars::new(exponential_buckets(1e-6, 10.0, 8))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("elixirscope");
        let m = Metrics {
            events: Family::default(),
            dropped: Family::default(),
            trips: Family::default(),
            budget: Family::default(),
            usage: Family::default(),
            recording: Family::default(),
            call_duration: Family::new_with_constructor(latency as fn() -> Latency),
            node_memory: Family::default(),
            node_processes: Family::default(),
            node_run_queue: Family::default(),
            node_scheduler_run_queue: Family::default(),
            node_message_queue_max: Family::default(),
            node_scheduler_utilisation: Family::default(),
            functions: Mutex::new(HashMap::new()),
            function_limit: AtomicUsize::new(DEFAULT_FUNCTION_LIMIT),
            registry: Registry::default(),
        };
        registry.register(
            "events",
            "Events stored, by session and kind",
            m.events.clone(),
        );
        registry.register(
            "dropped_events",
            "Events the agent dropped (counted, never silent), by session and node",
            m.dropped.clone(),
        );
        registry.register(
            "trips",
            "Captures that stopped themselves, by reason",
            m.trips.clone(),
        );
        registry.register(
            "session_budget",
            "A session's budget limits (max_events, max_session_bytes, max_duration_ms)",
            m.budget.clone(),
        );
        registry.register(
            "session_usage",
            "How much of each budget a session has used (events, session_bytes)",
            m.usage.clone(),
        );
        registry.register(
            "session_recording",
            "1 while a session records",
            m.recording.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Duration of traced calls, by function (bounded; the rest is function=\"(other)\")",
            m.call_duration.clone(),
        );
        registry.register(
            "node_memory_bytes",
            "Node memory by type (erlang:memory/0), sampled by the agent",
            m.node_memory.clone(),
        );
        registry.register(
            "node_processes",
            "Processes on the node, sampled by the agent",
            m.node_processes.clone(),
        );
        registry.register(
            "node_run_queue",
            "Processes waiting to run on the node's schedulers, sampled by the agent",
            m.node_run_queue.clone(),
        );
        registry.register(
            "node_scheduler_run_queue",
            "Processes waiting in each normal scheduler's run queue, sampled by the agent",
            m.node_scheduler_run_queue.clone(),
        );
        registry.register(
            "node_message_queue_max",
            "The longest message queue on the node, sampled by the agent",
            m.node_message_queue_max.clone(),
        );
        registry.register(
            "node_scheduler_utilisation",
            "Share of wall time the normal schedulers worked (0-1), when the node's scheduler_wall_time flag is on",
            m.node_scheduler_utilisation.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records one traced call's duration, in its function's series when the
    /// session is within the function limit, else in `(other)`.
    pub fn observe_call(
        &self,
        session: &str,
        module: &str,
        function: &str,
        seconds: f64,
        event: u64,
    ) {
        let limit = self.function_limit.load(Ordering::Relaxed);
        let key = (module.to_owned(), function.to_owned());
        let own = {
            let mut f = self.functions.lock().unwrap_or_else(|p| p.into_inner());
            let seen = f.entry(session.to_owned()).or_default();
            seen.contains(&key) || (seen.len() < limit && seen.insert(key.clone()))
        };
        let labels = if own {
            FunctionLabels {
                session: session.to_owned(),
                module: key.0,
                function: key.1,
            }
        } else {
            FunctionLabels {
                session: session.to_owned(),
                module: String::new(),
                function: "(other)".into(),
            }
        };
        self.call_duration.get_or_create(&labels).observe(
            seconds,
            Some(EventExemplar {
                session: session.to_owned(),
                event_id: event.to_string(),
            }),
            None,
        );
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether anything serves the metrics: ingest skips per-call work otherwise.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Says the metrics are served (per-call latencies are then kept).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Sets how many functions per session get their own latency series.
pub fn set_function_limit(n: usize) {
    metrics().function_limit.store(n, Ordering::Relaxed);
}

/// Content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric as OpenMetrics text.
pub fn render() -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &metrics().registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_past_the_limit_share_one_series_and_exemplars_name_the_event() {
        set_function_limit(2);
        let m = metrics();
        for (i, f) in ["a", "b", "c", "d"].iter().enumerate() {
            m.observe_call("t1", "Elixir.M", f, 0.001, i as u64);
        }
        m.observe_call("t1", "Elixir.M", "a", 0.002, 9);
        let text = render();
        assert!(text.contains(r#"elixirscope_call_duration_seconds_count{session="t1",module="Elixir.M",function="a"} 2"#), "{text}");
        assert!(text.contains(r#"function="(other)"} 2"#), "{text}");
        assert!(!text.contains(r#"function="c""#), "{text}");
        assert!(text.contains(r#"event_id="9""#), "{text}");
        assert!(text.ends_with("# EOF\n"));
        set_function_limit(DEFAULT_FUNCTION_LIMIT);
    }
}
