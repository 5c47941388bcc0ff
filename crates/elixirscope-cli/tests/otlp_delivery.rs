//! How `elixirscope export otlp` delivers to an endpoint that refuses: answers
//! that say "try again" (HTTP 503, gRPC UNAVAILABLE) are retried with growing
//! backoff until the endpoint accepts, and refused batches are counted as
//! dropped, reported in the summary and in the exit status.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Traced calls in the recorded session (`spans.exs`).
const CALLS: u64 = 1200;

/// Records `spans.exs` and returns how many spans its export holds, as an
/// endpoint that accepts everything receives them (a span per call, and one
/// per abnormal exit of the program's processes at its end).
fn record(home: &Home) -> u64 {
    let script = fixture("spans.exs");
    let out = home.run(&[
        "run",
        "--session",
        "spans",
        "--trace",
        "Spans.square/1",
        "--",
        "elixir",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = home.json(&["events", "spans", "--kind", "call", "--limit", "1"]);
    assert_eq!(calls["matched"], CALLS, "{calls}");
    let (url, log) = http_receiver(Box::new(|_| None));
    let (out, summary) = export(home, &["--protocol", "http", "--endpoint", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spans = summary["spans"].as_u64().unwrap();
    assert_eq!(log.accepted_spans(), spans);
    assert!(spans >= CALLS, "{summary}");
    // More than two batches' worth, so the tests below see several batches.
    assert!(spans > 2 * 512 && spans <= 3 * 512, "{summary}");
    spans
}

/// What a receiver answers to its n-th trace request (from 0): None accepts.
type Policy = Box<dyn Fn(usize) -> Option<u16> + Send + Sync>;

/// Trace requests as they arrived: when, how many spans, and the answer.
#[derive(Default)]
struct Log {
    requests: Mutex<Vec<(Instant, usize, Option<u16>)>>,
    metrics: Mutex<usize>,
}

impl Log {
    fn answer(&self, policy: &Policy, spans: usize) -> Option<u16> {
        let mut r = self.requests.lock().unwrap();
        let a = policy(r.len());
        r.push((Instant::now(), spans, a));
        a
    }
    fn accepted_spans(&self) -> u64 {
        let r = self.requests.lock().unwrap();
        r.iter().filter(|q| q.2.is_none()).map(|q| q.1 as u64).sum()
    }
}

fn span_count(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// An OTLP HTTP/protobuf receiver on a free loopback port answering trace
/// requests by `policy` (metrics and logs are always accepted).
fn http_receiver(policy: Policy) -> (String, Arc<Log>) {
    let log = Arc::new(Log::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let l = log.clone();
    let policy = Arc::new(policy);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let traces = {
                let l = l.clone();
                move |body: axum::body::Bytes| async move {
                    let req = ExportTraceServiceRequest::decode(body).expect("protobuf");
                    match l.answer(&policy, span_count(&req)) {
                        None => (
                            axum::http::StatusCode::OK,
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        ),
                        Some(code) => (
                            axum::http::StatusCode::from_u16(code).unwrap(),
                            b"not now".to_vec(),
                        ),
                    }
                }
            };
            let app = axum::Router::new()
                .route("/v1/traces", axum::routing::post(traces))
                .route(
                    "/v1/metrics",
                    axum::routing::post(move |_: axum::body::Bytes| async move {
                        *l.metrics.lock().unwrap() += 1;
                        ExportMetricsServiceResponse::default().encode_to_vec()
                    }),
                );
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (format!("http://{addr}"), log)
}

#[derive(Clone)]
struct Grpc(Arc<Log>, Arc<Policy>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        match self.0.answer(&self.1, span_count(req.get_ref())) {
            None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Some(_) => Err(tonic::Status::unavailable("not now")),
        }
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        _: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        *self.0.metrics.lock().unwrap() += 1;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// An OTLP gRPC receiver answering trace requests UNAVAILABLE when `policy`
/// says so.
fn grpc_receiver(policy: Policy) -> (String, Arc<Log>) {
    let log = Arc::new(Log::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let g = Grpc(log.clone(), Arc::new(policy));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                    .unwrap();
            tx.send(incoming.local_addr().unwrap()).unwrap();
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(g.clone()))
                .add_service(MetricsServiceServer::new(g))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (format!("http://{addr}"), log)
}

fn export(home: &Home, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut a = vec!["export", "otlp", "spans", "--json"];
    a.extend_from_slice(args);
    let out = home.run(&a);
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}): {} {}", stdout(&out), stderr(&out)));
    (out, summary)
}

/// The waits before each retry of the first batch (its failed attempts are
/// the first requests, all of `BATCH` spans).
fn backoffs(log: &Log) -> Vec<Duration> {
    let r = log.requests.lock().unwrap();
    let first: Vec<Instant> = r
        .iter()
        .take_while(|q| q.2.is_some())
        .chain(r.iter().find(|q| q.2.is_none()))
        .map(|q| q.0)
        .collect();
    first.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn retried_until_accepted_with_growing_backoff_over_http_and_grpc() {
    require_beam();
    let home = Home::new();
    let spans = record(&home);
    // Three refusals, then every request is accepted.
    let (http, http_log) = http_receiver(Box::new(|n| (n < 3).then_some(503)));
    let (grpc, grpc_log) = grpc_receiver(Box::new(|n| (n < 3).then_some(14)));
    for (args, log) in [
        (vec!["--protocol", "http", "--endpoint", &http], &http_log),
        (vec!["--endpoint", &grpc], &grpc_log),
    ] {
        let (out, summary) = export(&home, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(summary["spans"], spans, "{summary}");
        assert_eq!(summary["dropped_spans"], 0, "{summary}");
        assert_eq!(summary["retries"], 3, "{summary}");
        assert!(summary.get("error").is_none(), "{summary}");
        // What the receiver accepted is every span, once.
        assert_eq!(log.accepted_spans(), spans);
        assert_eq!(*log.metrics.lock().unwrap(), 1);
        // The same batch was offered again after waits of at least 100, 200
        // and 400 ms (the client's backoff doubles from 100 ms).
        let waits = backoffs(log);
        assert_eq!(waits.len(), 3, "{waits:?}");
        for (wait, least) in waits.iter().zip([100, 200, 400]) {
            assert!(
                *wait >= Duration::from_millis(least),
                "{args:?}: waits {waits:?}"
            );
        }
        let r = log.requests.lock().unwrap();
        assert!(r[..4].iter().all(|q| q.1 == r[0].1), "one batch retried");
    }
}

#[test]
fn refused_batches_are_counted_as_dropped_and_fail_the_export() {
    require_beam();
    let home = Home::new();
    let spans = record(&home);

    // The second batch is refused for good (HTTP 400, not worth retrying):
    // the others arrive, its spans are dropped, and the export says so.
    let (url, log) = http_receiver(Box::new(|n| (n == 1).then_some(400)));
    let (out, summary) = export(&home, &["--protocol", "http", "--endpoint", &url]);
    let refused = log.requests.lock().unwrap()[1].1 as u64;
    assert!(refused > 0);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert_eq!(summary["dropped_spans"], refused, "{summary}");
    assert_eq!(summary["spans"], spans - refused, "{summary}");
    assert_eq!(log.accepted_spans(), spans - refused);
    assert_eq!(summary["retries"], 0, "a 400 is not retried: {summary}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {refused} of {spans} spans dropped: "))
            && err.contains("refused the export: HTTP 400"),
        "{err}"
    );

    // An endpoint that always says "try again": every batch is retried until
    // the client gives up, nothing arrives, everything is dropped.
    let (url, log) = http_receiver(Box::new(|_| Some(503)));
    let (out, summary) = export(&home, &["--protocol", "http", "--endpoint", &url]);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert_eq!(summary["spans"], 0, "{summary}");
    assert_eq!(summary["dropped_spans"], spans, "{summary}");
    assert_eq!(log.accepted_spans(), 0);
    let tries = log.requests.lock().unwrap().len() as u64;
    assert_eq!(
        summary["retries"],
        tries - 3,
        "each of 3 batches: its first try and retries"
    );
    assert_eq!(
        tries,
        3 * 5,
        "3 batches refused 5 times each, then the export stops"
    );
    assert_eq!(
        *log.metrics.lock().unwrap(),
        0,
        "no metrics after the export stopped"
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {spans} of {spans} spans dropped: "))
            && err.contains("did not accept the export after 5 tries: HTTP 503"),
        "{err}"
    );
}
