//! Exporting a stored session: spans are built on one thread and handed, in
//! batches of [`BATCH_SPANS`], through a bounded queue to the sender, so a
//! slow endpoint slows the reading down instead of filling memory. A batch
//! the endpoint refuses for good is counted as dropped; after
//! [`MAX_FAILED_BATCHES`] in a row the export stops with the endpoint's reason
//! (and every span not sent by then is dropped too). Either way the summary
//! says how many spans were sent and how many dropped.

use super::client::{Endpoint, ExportError, Exporter};
use super::metrics::session_metrics;
use super::spans::{kv_str, SpanBuilder, SpanFilter, SpanState};
use elixirscope_query::Session;
use elixirscope_store::DictId;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rustc_hash::FxHashMap;
use serde::Serialize;

/// Spans per request.
pub const BATCH_SPANS: usize = 512;
/// Batches waiting to be sent (the bounded queue).
pub const QUEUE_BATCHES: usize = 8;
/// Consecutive refused batches after which the export stops.
pub const MAX_FAILED_BATCHES: u32 = 3;

/// What to export and how to name it.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// `service.name` (default: the node's short name).
    pub service_name: Option<String>,
    pub filter: SpanFilter,
    pub metrics: bool,
    /// Send metrics as deltas (see [`session_metrics`]).
    pub delta_metrics: bool,
}

/// What an export did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    pub session: String,
    pub endpoint: String,
    pub spans: u64,
    pub batches: u64,
    pub dropped_spans: u64,
    pub retries: u64,
    pub metrics: usize,
    /// Log records of traced logger calls.
    pub logs: u64,
    /// Why spans were dropped or the export stopped early (the endpoint's
    /// last refusal), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn instrumentation_scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "elixirscope".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The OpenTelemetry resource of a node of the session.
pub fn resource(s: &Session, node: &str, service_name: Option<&str>) -> Resource {
    let (short, host) = node.split_once('@').unwrap_or((node, ""));
    let otp = s
        .meta()
        .nodes
        .iter()
        .find(|n| n.name == node)
        .map(|n| n.otp_release.clone())
        .unwrap_or_default();
    let mut attributes = vec![
        kv_str("service.name", service_name.unwrap_or(short)),
        kv_str("service.instance.id", node),
        kv_str("process.runtime.name", "BEAM"),
        kv_str("telemetry.sdk.name", "elixirscope"),
        kv_str("telemetry.sdk.language", "rust"),
        kv_str("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
        kv_str("elixirscope.session", s.name()),
    ];
    if !host.is_empty() {
        attributes.push(kv_str("host.name", host));
    }
    if !otp.is_empty() {
        attributes.push(kv_str("process.runtime.version", format!("OTP {otp}")));
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

/// One batch of spans of one node, as a request.
pub fn traces_request(resource: Resource, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(instrumentation_scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The session's metrics (see [`session_metrics`]) as one request, and how many.
pub fn metrics_request(s: &Session, opts: &ExportOptions) -> (usize, ExportMetricsServiceRequest) {
    let metrics = session_metrics(s, opts.delta_metrics);
    let n = metrics.len();
    let node = s.nodes().first().cloned().unwrap_or_default();
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(s, &node, opts.service_name.as_deref())),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(instrumentation_scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (n, req)
}

/// Log records grouped by node, as one request.
pub fn logs_request(
    s: &Session,
    service_name: Option<&str>,
    logs: Vec<(DictId, LogRecord)>,
) -> ExportLogsServiceRequest {
    let mut by_node: FxHashMap<DictId, Vec<LogRecord>> = FxHashMap::default();
    for (node, r) in logs {
        by_node.entry(node).or_default().push(r);
    }
    ExportLogsServiceRequest {
        resource_logs: by_node
            .into_iter()
            .map(|(node, log_records)| ResourceLogs {
                resource: Some(resource(s, &node_name(s, node), service_name)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(instrumentation_scope()),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

pub fn node_name(s: &Session, node: DictId) -> String {
    if node == 0 {
        return s.nodes().first().cloned().unwrap_or_default();
    }
    s.atom(node).to_owned()
}

/// Exports the spans (and metrics) of a session to `endpoint`. An endpoint
/// that cannot be used at all is an error; one that refuses what is sent is
/// reported in the summary (`dropped_spans`, `error`).
pub fn export_session(
    s: &Session,
    endpoint: Endpoint,
    opts: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let url = endpoint.url.clone();
    let exporter = runtime.block_on(Exporter::connect(endpoint))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(DictId, Vec<Span>)>(QUEUE_BATCHES);
    let mut summary = ExportSummary {
        session: s.name().to_owned(),
        endpoint: url,
        ..Default::default()
    };
    let resources: std::cell::RefCell<FxHashMap<DictId, Resource>> = Default::default();
    let resource_of = |node: DictId| {
        resources
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| resource(s, &node_name(s, node), opts.service_name.as_deref()))
            .clone()
    };
    let (sent, logs, built) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut pending: FxHashMap<DictId, Vec<Span>> = FxHashMap::default();
            let mut open = true;
            let mut built = 0u64;
            let mut state = SpanState::default();
            SpanBuilder::new(s, &mut state, |node, span| {
                built += 1;
                let batch = pending.entry(node).or_default();
                batch.push(span);
                if batch.len() >= BATCH_SPANS && open {
                    // A closed queue means the sender gave up: stop queueing.
                    open = tx.blocking_send((node, std::mem::take(batch))).is_ok();
                } else if !open {
                    batch.clear();
                }
            })
            .run(&opts.filter);
            for (node, batch) in pending {
                if !batch.is_empty() && open {
                    open = tx.blocking_send((node, batch)).is_ok();
                }
            }
            (state.logs, built)
        });
        let sent = runtime.block_on(async {
            let mut failed_in_a_row = 0;
            let mut refused = None;
            while let Some((node, spans)) = rx.recv().await {
                let n = spans.len() as u64;
                let req = traces_request(resource_of(node), spans);
                match exporter.export_traces(&req).await {
                    Ok(()) => {
                        summary.spans += n;
                        summary.batches += 1;
                        failed_in_a_row = 0;
                    }
                    Err(e) => {
                        failed_in_a_row += 1;
                        let stop = failed_in_a_row >= MAX_FAILED_BATCHES;
                        refused = Some((e, stop));
                        if stop {
                            break;
                        }
                    }
                }
            }
            refused
        });
        drop(rx);
        let (logs, built) = reader.join().unwrap_or_default();
        (sent, logs, built)
    });
    summary.retries = exporter.retries();
    // Whatever was built and not accepted is dropped: refused batches, and
    // after the export stopped, the rest.
    summary.dropped_spans = built - summary.spans;
    if let Some((e, stopped)) = sent {
        summary.error = Some(e.to_string());
        if stopped {
            return Ok(summary);
        }
    }
    if !logs.is_empty() && exporter.takes_logs() {
        let n = logs.len() as u64;
        let req = logs_request(s, opts.service_name.as_deref(), logs);
        match runtime.block_on(exporter.export_logs(&req)) {
            Ok(()) => summary.logs = n,
            Err(e) => {
                summary.error = Some(e.to_string());
                summary.retries = exporter.retries();
                return Ok(summary);
            }
        }
    }
    if opts.metrics {
        let (n, req) = metrics_request(s, opts);
        match runtime.block_on(exporter.export_metrics(&req)) {
            Ok(()) => summary.metrics = n,
            Err(e) => summary.error = Some(e.to_string()),
        }
        summary.retries = exporter.retries();
    }
    Ok(summary)
}
