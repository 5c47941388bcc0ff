//! `elixirscope export otlp` received by an OTLP receiver built from the
//! official protobuf definitions (opentelemetry-proto): gRPC through tonic,
//! HTTP/protobuf through axum. The spans of a known app must match its
//! recorded calls: count, names, parents across processes, attributes; and an
//! export of planted secrets must hold none of them.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
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
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver got: decoded requests and the raw bodies.
#[derive(Default)]
struct Received {
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    raw: Mutex<Vec<u8>>,
    headers: Mutex<Vec<(String, String)>>,
}

#[derive(Clone)]
struct Receiver(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for kv in req.metadata().iter() {
            if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv {
                let pair = (k.to_string(), v.to_str().unwrap_or("").to_owned());
                self.0.headers.lock().unwrap().push(pair);
            }
        }
        let r = req.into_inner();
        self.0.raw.lock().unwrap().extend(r.encode_to_vec());
        self.0.traces.lock().unwrap().push(r);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.metrics.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let r = req.into_inner();
        self.0.raw.lock().unwrap().extend(r.encode_to_vec());
        self.0.logs.lock().unwrap().push(r);
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// gRPC and HTTP receivers on free loopback ports, served on their own thread.
struct Receivers {
    grpc: String,
    http: String,
    grpc_got: Arc<Received>,
    http_got: Arc<Received>,
}

fn start_receivers() -> Receivers {
    let grpc_got = Arc::new(Received::default());
    let http_got = Arc::new(Received::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let (g, h) = (grpc_got.clone(), http_got.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
                    .unwrap();
            let grpc_addr = incoming.local_addr().unwrap();
            let recv = Receiver(g);
            let grpc = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(recv.clone()))
                .add_service(MetricsServiceServer::new(recv.clone()))
                .add_service(LogsServiceServer::new(recv))
                .serve_with_incoming(incoming);
            let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let http_addr = http_listener.local_addr().unwrap();
            let app = axum::Router::new()
                .route(
                    "/v1/traces",
                    axum::routing::post({
                        let h = h.clone();
                        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                            assert_eq!(headers["content-type"], "application/x-protobuf");
                            for (k, v) in headers.iter() {
                                let pair = (k.to_string(), v.to_str().unwrap_or("").to_owned());
                                h.headers.lock().unwrap().push(pair);
                            }
                            h.raw.lock().unwrap().extend_from_slice(&body);
                            let r = ExportTraceServiceRequest::decode(body).expect("protobuf");
                            h.traces.lock().unwrap().push(r);
                            ExportTraceServiceResponse::default().encode_to_vec()
                        }
                    }),
                )
                .route(
                    "/v1/logs",
                    axum::routing::post({
                        let h = h.clone();
                        move |body: axum::body::Bytes| async move {
                            h.raw.lock().unwrap().extend_from_slice(&body);
                            let r = ExportLogsServiceRequest::decode(body).expect("protobuf");
                            h.logs.lock().unwrap().push(r);
                            ExportLogsServiceResponse::default().encode_to_vec()
                        }
                    }),
                )
                .route(
                    "/v1/metrics",
                    axum::routing::post(move |body: axum::body::Bytes| async move {
                        let r = ExportMetricsServiceRequest::decode(body).expect("protobuf");
                        h.metrics.lock().unwrap().push(r);
                        ExportMetricsServiceResponse::default().encode_to_vec()
                    }),
                );
            tx.send((grpc_addr, http_addr)).unwrap();
            let http = axum::serve(http_listener, app);
            let _ = tokio::join!(grpc, http);
        });
    });
    let (grpc, http) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Receivers {
        grpc: format!("http://{grpc}"),
        http: format!("http://{http}"),
        grpc_got,
        http_got,
    }
}

fn spans(got: &Received) -> Vec<Span> {
    got.traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|rs| rs.scope_spans.iter())
        .flat_map(|ss| ss.spans.iter().cloned())
        .collect()
}

fn attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_str(kvs: &[KeyValue], key: &str) -> String {
    match attr(kvs, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("attribute {key}: {other:?}"),
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn export(home: &Home, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["export", "otlp"];
    a.extend_from_slice(args);
    home.json(&a)
}

#[test]
fn spans_of_a_known_app_reach_grpc_and_http_receivers_as_recorded() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("otlp", &[fixture("test_app.ex")], "TestApp.start()");
    let (rec, rx) = start_recording(
        &home,
        &node,
        "app",
        &[
            "--state",
            "TestApp.Counter",
            "--state",
            "TestApp.Crashy",
            "--trace",
            "TestApp.Math._/_",
            "--trace",
            "logger:macro_log/4",
        ],
    );
    node.call_elixir("TestApp.increments(3)");
    node.call_elixir("TestApp.calls()");
    node.call_elixir("TestApp.crash()");
    node.call_elixir(r#"require Logger; Logger.warning("door left open")"#);
    stop_recording(rec, rx);

    let r = start_receivers();
    let sent = export(
        &home,
        &["app", "--endpoint", &r.grpc, "--header", "x-team=blue"],
    );
    let got = spans(&r.grpc_got);
    assert_eq!(sent["spans"].as_u64().unwrap(), got.len() as u64, "{sent}");
    assert_eq!(sent["dropped_spans"], 0);
    assert!(r
        .grpc_got
        .headers
        .lock()
        .unwrap()
        .contains(&("x-team".into(), "blue".into())));

    // One span per recorded call (returned, raised or still running), plus one
    // client span per GenServer.call and one per abnormal exit outside a call.
    let calls = home.json(&["events", "app", "--kind", "call", "--limit", "1"])["matched"]
        .as_u64()
        .unwrap();
    let kind = |s: &Span| SpanKind::try_from(s.kind).unwrap();
    let call_spans = got
        .iter()
        .filter(|s| kind(s) != SpanKind::Client && !s.name.starts_with("exit "))
        .count() as u64;
    assert_eq!(call_spans, calls, "a span per recorded call");

    // Pure functions: names, code attributes, arguments and results.
    let squares: Vec<&Span> = got
        .iter()
        .filter(|s| s.name == "TestApp.Math.square/1")
        .collect();
    assert_eq!(squares.len(), 3);
    let mut results: Vec<String> = squares
        .iter()
        .map(|s| attr_str(&s.attributes, "erlang.result"))
        .collect();
    results.sort();
    assert_eq!(results, ["1", "4", "9"]);
    for s in &squares {
        assert_eq!(attr_str(&s.attributes, "code.namespace"), "TestApp.Math");
        assert_eq!(attr_str(&s.attributes, "code.function"), "square");
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id.len(), 8);
    }
    let fail = got
        .iter()
        .find(|s| s.name == "TestApp.Math.fail/1")
        .expect("fail/1 span");
    assert_eq!(fail.status.as_ref().unwrap().code, 2, "status error");
    let ev = &fail.events[0];
    assert_eq!(ev.name, "exception");
    assert!(
        attr_str(&ev.attributes, "exception.message").contains("bad 7"),
        "{ev:?}"
    );

    // GenServer.call: a client span in the caller parents the server's span.
    let by_id: HashMap<&[u8], &Span> = got.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let handled: Vec<&Span> = got
        .iter()
        .filter(|s| s.name == "TestApp.Counter.handle_call/3")
        .collect();
    assert_eq!(handled.len(), 3);
    for server in &handled {
        assert_eq!(kind(server), SpanKind::Server);
        let client = by_id[server.parent_span_id.as_slice()];
        assert_eq!(kind(client), SpanKind::Client, "{client:?}");
        assert!(client.name.contains("TestApp.Counter"), "{}", client.name);
        assert_eq!(client.trace_id, server.trace_id);
        assert_ne!(
            attr_str(&client.attributes, "erlang.pid"),
            attr_str(&server.attributes, "erlang.pid")
        );
        assert!(client.start_time_unix_nano <= server.start_time_unix_nano);
        assert!(client.end_time_unix_nano >= server.end_time_unix_nano);
        assert_eq!(
            attr_str(&server.attributes, "erlang.process.name"),
            "TestApp.Counter"
        );
    }
    // The crash: the raising callback and the abnormal exit are errors.
    let crash = got
        .iter()
        .find(|s| s.name == "TestApp.Crashy.handle_cast/2")
        .expect("the crashing callback");
    assert_eq!(crash.status.as_ref().unwrap().code, 2);
    assert!(got
        .iter()
        .any(|s| s.name.starts_with("exit ") && s.status.as_ref().is_some_and(|st| st.code == 2)));

    // Resource: the node.
    let traces = r.grpc_got.traces.lock().unwrap();
    let res = traces[0].resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(
        attr_str(&res.attributes, "service.name"),
        node.name.split('@').next().unwrap()
    );
    assert_eq!(attr_str(&res.attributes, "service.instance.id"), node.name);
    drop(traces);

    // Metrics: the session's counts.
    let metrics = r.grpc_got.metrics.lock().unwrap();
    let events = metrics[0].resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == "elixirscope.events")
        .expect("events metric");
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) = &events.data else {
        panic!("a sum")
    };
    let call_point = sum
        .data_points
        .iter()
        .find(|p| attr_str(&p.attributes, "event.kind") == "call")
        .unwrap();
    assert_eq!(
        call_point.value,
        Some(
            opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(calls as i64)
        )
    );
    drop(metrics);

    // Logger calls: log records with severity, body and the caller.
    let logs = r.grpc_got.logs.lock().unwrap();
    let records: Vec<_> = logs
        .iter()
        .flat_map(|l| l.resource_logs.iter())
        .flat_map(|rl| rl.scope_logs.iter())
        .flat_map(|sl| sl.log_records.iter())
        .collect();
    let door = records
        .iter()
        .find(|l| {
            matches!(l.body.as_ref().and_then(|b| b.value.as_ref()),
                Some(any_value::Value::StringValue(t)) if t == "door left open")
        })
        .unwrap_or_else(|| panic!("the warning as a log record: {records:?}"));
    assert_eq!(door.severity_number, 13);
    assert_eq!(door.severity_text, "WARN");
    assert!(attr_str(&door.attributes, "erlang.pid").starts_with('<'));
    assert_eq!(sent["logs"].as_u64(), Some(records.len() as u64));
    drop(logs);

    // The same over HTTP/protobuf.
    let sent = export(&home, &["app", "--protocol", "http", "--endpoint", &r.http]);
    let over_http = spans(&r.http_got);
    assert_eq!(over_http.len(), got.len(), "{sent}");
    let names = |v: &[Span]| {
        let mut n: Vec<String> = v.iter().map(|s| s.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&over_http), names(&got));
    assert_eq!(r.http_got.metrics.lock().unwrap().len(), 1);
    assert_eq!(r.http_got.logs.lock().unwrap().len(), 1);
}

#[test]
fn exports_hold_no_planted_secret_and_bad_endpoints_fail_in_one_line() {
    require_beam();
    let home = Home::new();
    record_secrets(&home, "sec", &[]);
    record_secrets(&home, "open", &["--no-redact"]);
    let r = start_receivers();
    export(&home, &["sec", "--protocol", "http", "--endpoint", &r.http]);
    let raw = r.http_got.raw.lock().unwrap().clone();
    assert!(!raw.is_empty());
    for secret in PLANTED {
        assert!(
            !contains(&raw, secret),
            "{secret} reached the OTLP receiver"
        );
    }
    // Without redaction at capture the same export carries them: the check above can fail.
    export(&home, &["open", "--endpoint", &r.grpc]);
    let raw = r.grpc_got.raw.lock().unwrap().clone();
    assert!(contains(&raw, "PLANTED-ARG-XYZZY"));

    // Nothing listening: one line, after retries; a bad URL or preset: one line.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for args in [
        vec![
            "sec",
            "--protocol",
            "http",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
        ],
        vec!["sec", "--endpoint", "127.0.0.1:4317"],
        vec!["sec", "--preset", "honeycomb"],
        vec![
            "sec",
            "--endpoint",
            "http://x",
            "--protocol",
            "carrier-pigeon",
        ],
    ] {
        let mut a = vec!["export", "otlp"];
        a.extend(args.iter().map(|s| &**s));
        let out = home
            .cmd(&a)
            .env_remove("HONEYCOMB_API_KEY")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{a:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{a:?}: {err}");
    }
}

#[test]
fn record_streams_spans_live_and_they_match_a_later_export() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("otlplive", &[fixture("test_app.ex")], "TestApp.start()");
    let r = start_receivers();
    let (rec, rx) = start_recording(
        &home,
        &node,
        "live",
        &[
            "--state",
            "TestApp.Counter",
            "--trace",
            "TestApp.Math._/_",
            "--otlp-endpoint",
            &r.grpc,
        ],
    );
    node.call_elixir("TestApp.increments(3)");
    // The spans arrive while the capture still runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let handled = || {
        spans(&r.grpc_got)
            .iter()
            .filter(|s| s.name == "TestApp.Counter.handle_call/3")
            .count()
    };
    while handled() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no live spans: {}",
            spans(&r.grpc_got).len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    node.call_elixir("TestApp.calls()");
    let said = stop_recording(rec, rx);
    assert!(said.lines().any(|l| l.starts_with("streamed ")), "{said}");
    let live = spans(&r.grpc_got);
    assert_eq!(
        r.grpc_got.metrics.lock().unwrap().len(),
        1,
        "metrics at the end"
    );

    // The stored session exported afterwards gives the same spans.
    export(
        &home,
        &["live", "--protocol", "http", "--endpoint", &r.http],
    );
    let later = spans(&r.http_got);
    let key = |v: &[Span]| {
        let mut k: Vec<(String, Vec<u8>, Vec<u8>)> = v
            .iter()
            .map(|s| (s.name.clone(), s.span_id.clone(), s.parent_span_id.clone()))
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&live), key(&later));
}
