//! Streaming a session's spans to an OTLP endpoint while it records: every
//! second the session is read on from where the last read stopped (what
//! ingest flushed), spans that ended are sent in batches, and when recording
//! ends the calls still open are closed and the metrics sent. The backlog
//! waits on disk, not in memory; a batch the endpoint refuses after its
//! retries is counted as dropped and streaming goes on.

use super::client::{Endpoint, ExportError, Exporter};
use super::export::{
    logs_request, metrics_request, node_name, resource, traces_request, ExportOptions,
    ExportSummary, BATCH_SPANS,
};
use super::spans::{SpanBuilder, SpanState};
use elixirscope_query::Session;
use elixirscope_store::DictId;
use opentelemetry_proto::tonic::trace::v1::Span;
use rustc_hash::FxHashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the session is read on.
pub const EVERY: Duration = Duration::from_secs(1);

/// A running stream.
pub struct LiveExport {
    done: Arc<AtomicBool>,
    thread: JoinHandle<Result<ExportSummary, ExportError>>,
}

impl LiveExport {
    /// Starts streaming the session in `dir`.
    pub fn start(dir: PathBuf, endpoint: Endpoint, opts: ExportOptions) -> LiveExport {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-live".into())
            .spawn(move || stream(dir, endpoint, opts, flag))
            .expect("spawn the OTLP stream");
        LiveExport { done, thread }
    }

    /// Recording ended: sends the rest and says what was sent.
    pub fn finish(self) -> Result<ExportSummary, ExportError> {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|_| {
            Err(ExportError::Refused {
                url: String::new(),
                reason: "the OTLP stream stopped unexpectedly".into(),
            })
        })
    }
}

struct Sender<'a> {
    rt: &'a tokio::runtime::Runtime,
    exporter: &'a Exporter,
    summary: &'a mut ExportSummary,
    opts: &'a ExportOptions,
    last_error: Option<ExportError>,
}

impl Sender<'_> {
    fn send(&mut self, s: &Session, node: DictId, spans: Vec<Span>) {
        let n = spans.len() as u64;
        let resource = resource(s, &node_name(s, node), self.opts.service_name.as_deref());
        let req = traces_request(resource, spans);
        match self.rt.block_on(self.exporter.export_traces(&req)) {
            Ok(()) => {
                self.summary.spans += n;
                self.summary.batches += 1;
            }
            Err(e) => {
                self.summary.dropped_spans += n;
                self.last_error = Some(e);
            }
        }
    }
}

fn stream(
    dir: PathBuf,
    endpoint: Endpoint,
    opts: ExportOptions,
    done: Arc<AtomicBool>,
) -> Result<ExportSummary, ExportError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut summary = ExportSummary {
        endpoint: endpoint.url.clone(),
        ..Default::default()
    };
    let exporter = rt.block_on(Exporter::connect(endpoint))?;
    let mut state = SpanState::default();
    let mut sender = Sender {
        rt: &rt,
        exporter: &exporter,
        summary: &mut summary,
        opts: &opts,
        last_error: None,
    };
    loop {
        let last_round = done.load(Ordering::SeqCst);
        if let Ok(s) = Session::open_dir(&dir) {
            let mut pending: FxHashMap<DictId, Vec<Span>> = FxHashMap::default();
            let mut full: Vec<(DictId, Vec<Span>)> = Vec::new();
            {
                let mut b = SpanBuilder::new(&s, &mut state, |node, span| {
                    let batch = pending.entry(node).or_default();
                    batch.push(span);
                    if batch.len() >= BATCH_SPANS {
                        full.push((node, std::mem::take(batch)));
                    }
                });
                b.feed(&opts.filter);
                if last_round {
                    b.close_open(s.end_ns());
                }
            }
            for (node, spans) in full.into_iter().chain(pending) {
                if !spans.is_empty() {
                    sender.send(&s, node, spans);
                }
            }
            let logs = std::mem::take(&mut state.logs);
            if !logs.is_empty() && exporter.takes_logs() {
                let n = logs.len() as u64;
                let req = logs_request(&s, opts.service_name.as_deref(), logs);
                match rt.block_on(exporter.export_logs(&req)) {
                    Ok(()) => sender.summary.logs += n,
                    Err(e) => sender.last_error = Some(e),
                }
            }
            if last_round {
                sender.summary.session = s.name().to_owned();
                if opts.metrics {
                    let (n, req) = metrics_request(&s, &opts);
                    sender.summary.metrics = n;
                    if let Err(e) = rt.block_on(exporter.export_metrics(&req)) {
                        sender.last_error = Some(e);
                    }
                }
                break;
            }
        } else if last_round {
            break;
        }
        for _ in 0..10 {
            if done.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(EVERY / 10);
        }
    }
    let failure = sender.last_error.take();
    summary.retries = exporter.retries();
    match failure {
        Some(e) if summary.spans == 0 => Err(e),
        _ => Ok(summary),
    }
}
