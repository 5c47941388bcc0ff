//! Sending OTLP requests: gRPC (tonic) or HTTP/protobuf (`POST /v1/traces`,
//! `/v1/metrics`), with the endpoint's headers, retries with exponential
//! backoff on answers that say "try again", and a one-line error otherwise.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig};

/// How requests travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "grpc" => Some(Protocol::Grpc),
            "http" | "http/protobuf" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }
}

/// Where spans and metrics go.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// gRPC: `http(s)://host:port`; HTTP: the full URL spans are posted to.
    pub url: String,
    /// HTTP: the full URL metrics are posted to (gRPC: unused).
    pub metrics_url: String,
    /// HTTP: the full URL log records are posted to; None where the
    /// endpoint takes no logs (gRPC: always some).
    pub logs_url: Option<String>,
    pub protocol: Protocol,
    /// Extra headers (API keys), lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Endpoint {
    /// An endpoint from its base URL: for HTTP, `/v1/traces` and `/v1/metrics`
    /// are added (unless the URL already ends with `/v1/traces`).
    pub fn new(base: &str, protocol: Protocol, headers: Vec<(String, String)>) -> Endpoint {
        let base = base.trim_end_matches('/');
        let (url, root) = match protocol {
            Protocol::Grpc => (base.to_owned(), base.to_owned()),
            Protocol::HttpProtobuf => match base.strip_suffix("/v1/traces") {
                Some(root) => (base.to_owned(), root.to_owned()),
                None => (format!("{base}/v1/traces"), base.to_owned()),
            },
        };
        let signal = |s: &str| match protocol {
            Protocol::Grpc => root.clone(),
            Protocol::HttpProtobuf => format!("{root}/v1/{s}"),
        };
        Endpoint {
            url,
            metrics_url: signal("metrics"),
            logs_url: Some(signal("logs")),
            protocol,
            headers,
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid OTLP endpoint '{0}': {1}")]
    BadEndpoint(String, String),
    #[error("invalid header '{0}': {1}")]
    BadHeader(String, String),
    #[error("OTLP endpoint {url} refused the export: {reason}")]
    Refused { url: String, reason: String },
    #[error("OTLP endpoint {url} did not accept the export after {tries} tries: {reason}")]
    GaveUp {
        url: String,
        tries: u32,
        reason: String,
    },
}

/// Attempts per request before giving up.
pub const TRIES: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

enum Transport {
    Grpc(Channel),
    Http(Box<HttpClient>),
}

/// A connection to one endpoint.
pub struct Exporter {
    endpoint: Endpoint,
    transport: Transport,
    retries: AtomicU64,
}

/// One failed attempt: may it be retried, and why it failed.
struct Failure {
    retry: bool,
    reason: String,
}

impl Exporter {
    pub async fn connect(endpoint: Endpoint) -> Result<Exporter, ExportError> {
        let bad = |why: String| ExportError::BadEndpoint(endpoint.url.clone(), why);
        if !(endpoint.url.starts_with("http://") || endpoint.url.starts_with("https://")) {
            return Err(bad("it must start with http:// or https://".into()));
        }
        for (k, v) in &endpoint.headers {
            MetadataKey::<tonic::metadata::Ascii>::from_bytes(k.as_bytes())
                .map_err(|e| ExportError::BadHeader(k.clone(), e.to_string()))?;
            MetadataValue::<tonic::metadata::Ascii>::try_from(v.as_str())
                .map_err(|e| ExportError::BadHeader(k.clone(), e.to_string()))?;
        }
        let transport = match endpoint.protocol {
            Protocol::Grpc => {
                let mut ch = Channel::from_shared(endpoint.url.clone())
                    .map_err(|e| bad(e.to_string()))?
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(10));
                if endpoint.url.starts_with("https://") {
                    ch = ch
                        .tls_config(ClientTlsConfig::new().with_webpki_roots())
                        .map_err(|e| bad(e.to_string()))?;
                }
                // Connect lazily: the first export reports an unreachable endpoint.
                Transport::Grpc(ch.connect_lazy())
            }
            Protocol::HttpProtobuf => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_webpki_roots()
                    .https_or_http()
                    .enable_http1()
                    .build();
                Transport::Http(Box::new(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build(https),
                ))
            }
        };
        Ok(Exporter {
            endpoint,
            transport,
            retries: AtomicU64::new(0),
        })
    }

    async fn post(&self, url: &str, body: Vec<u8>) -> Result<(), Failure> {
        let Transport::Http(client) = &self.transport else {
            unreachable!("HTTP transport")
        };
        let mut req = hyper::Request::post(url).header("content-type", "application/x-protobuf");
        for (k, v) in &self.endpoint.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure {
                retry: false,
                reason: e.to_string(),
            })?;
        let answer = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await;
        let resp = match answer {
            Err(_) => {
                return Err(Failure {
                    retry: true,
                    reason: "no answer within 10 s".into(),
                })
            }
            Ok(Err(e)) => {
                return Err(Failure {
                    retry: true,
                    reason: e.to_string(),
                })
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        let text = body
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
            .unwrap_or_default();
        Err(Failure {
            retry: matches!(status.as_u16(), 429 | 502 | 503 | 504),
            reason: format!("HTTP {status} {}", text.trim()),
        })
    }

    fn grpc_request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        for (k, v) in &self.endpoint.headers {
            if let (Ok(k), Ok(v)) = (
                MetadataKey::from_bytes(k.as_bytes()),
                MetadataValue::try_from(v.as_str()),
            ) {
                req.metadata_mut().insert(k, v);
            }
        }
        req
    }

    fn grpc_failure(s: tonic::Status) -> Failure {
        use tonic::Code::*;
        Failure {
            retry: matches!(
                s.code(),
                Unavailable | ResourceExhausted | DeadlineExceeded | Aborted
            ),
            reason: format!("{:?}: {}", s.code(), s.message()),
        }
    }

    async fn try_traces(&self, req: &ExportTraceServiceRequest) -> Result<(), Failure> {
        match &self.transport {
            Transport::Grpc(ch) => TraceServiceClient::new(ch.clone())
                .export(self.grpc_request(req.clone()))
                .await
                .map(|_| ())
                .map_err(Self::grpc_failure),
            Transport::Http(_) => self.post(&self.endpoint.url, req.encode_to_vec()).await,
        }
    }

    async fn try_metrics(&self, req: &ExportMetricsServiceRequest) -> Result<(), Failure> {
        match &self.transport {
            Transport::Grpc(ch) => MetricsServiceClient::new(ch.clone())
                .export(self.grpc_request(req.clone()))
                .await
                .map(|_| ())
                .map_err(Self::grpc_failure),
            Transport::Http(_) => {
                self.post(&self.endpoint.metrics_url, req.encode_to_vec())
                    .await
            }
        }
    }

    async fn try_logs(&self, req: &ExportLogsServiceRequest) -> Result<(), Failure> {
        match &self.transport {
            Transport::Grpc(ch) => LogsServiceClient::new(ch.clone())
                .export(self.grpc_request(req.clone()))
                .await
                .map(|_| ())
                .map_err(Self::grpc_failure),
            Transport::Http(_) => {
                let url = self.endpoint.logs_url.clone().unwrap_or_default();
                self.post(&url, req.encode_to_vec()).await
            }
        }
    }

    /// Whether the endpoint takes log records.
    pub fn takes_logs(&self) -> bool {
        self.endpoint.logs_url.is_some()
    }

    /// Runs `attempt` until it succeeds, fails for good, or [`TRIES`] are used.
    async fn with_retries<F, Fut>(&self, attempt: F) -> Result<(), ExportError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), Failure>>,
    {
        let mut wait = FIRST_BACKOFF;
        let mut last = String::new();
        for n in 1..=TRIES {
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(f) if !f.retry => {
                    return Err(ExportError::Refused {
                        url: self.endpoint.url.clone(),
                        reason: f.reason,
                    })
                }
                Err(f) => last = f.reason,
            }
            if n < TRIES {
                self.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Err(ExportError::GaveUp {
            url: self.endpoint.url.clone(),
            tries: TRIES,
            reason: last,
        })
    }

    pub async fn export_traces(&self, req: &ExportTraceServiceRequest) -> Result<(), ExportError> {
        self.with_retries(|| self.try_traces(req)).await
    }

    pub async fn export_metrics(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Result<(), ExportError> {
        self.with_retries(|| self.try_metrics(req)).await
    }

    pub async fn export_logs(&self, req: &ExportLogsServiceRequest) -> Result<(), ExportError> {
        self.with_retries(|| self.try_logs(req)).await
    }

    /// Retries made so far (after failures worth retrying).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}
