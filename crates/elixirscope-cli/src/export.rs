//! `elixirscope export otlp`: a session's traced calls as OpenTelemetry spans
//! and its counters as metrics, to any OTLP endpoint or a vendor preset.

use crate::{Failure, OutputOpts};
use clap::Args;
use elixirscope_export::otlp::client::{Endpoint, Protocol};
use elixirscope_export::otlp::export::{export_session, ExportOptions};
use elixirscope_export::otlp::spans::SpanFilter;
use elixirscope_export::presets;
use elixirscope_query::Session;
use std::path::Path;

#[derive(Args)]
pub struct OtlpArgs {
    /// Session name, unique prefix, or `last`
    pub session: String,
    /// OTLP endpoint: gRPC `http(s)://HOST:4317`, or for HTTP the base `http(s)://HOST:4318` (`/v1/traces` and `/v1/metrics` are added)
    #[arg(long, value_name = "URL", required_unless_present = "preset")]
    pub endpoint: Option<String>,
    /// `grpc`, or `http` for HTTP/protobuf
    #[arg(long, default_value = "grpc", value_name = "PROTOCOL")]
    pub protocol: String,
    /// A vendor's endpoint and key headers: datadog, newrelic, honeycomb, grafana-cloud (keys are read from environment variables, e.g. DD_API_KEY, NEW_RELIC_LICENSE_KEY, HONEYCOMB_API_KEY)
    #[arg(long, value_name = "NAME", conflicts_with = "endpoint")]
    pub preset: Option<String>,
    /// Extra header NAME=VALUE (repeatable); write VALUE as env:VAR to read it from the environment
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// service.name of the exported resource [default: the node's short name]
    #[arg(long, value_name = "NAME")]
    pub service_name: Option<String>,
    /// Only the calls of this process (pid or registered name; repeatable)
    #[arg(long = "pid", value_name = "PROC")]
    pub pids: Vec<String>,
    /// Only from this moment
    #[arg(long, value_name = "T")]
    pub from: Option<String>,
    /// Only up to this moment
    #[arg(long, value_name = "T")]
    pub to: Option<String>,
    /// Spans only, no metrics
    #[arg(long)]
    pub no_metrics: bool,
    #[command(flatten)]
    pub out: OutputOpts,
}

fn header(text: &str) -> Result<(String, String), Failure> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        Failure::from(format!(
            "invalid --header '{text}': write NAME=VALUE (or NAME=env:VAR)"
        ))
    })?;
    let value = match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| {
            Failure::from(format!(
                "--header {name}: environment variable {var} is not set"
            ))
        })?,
        None => value.to_owned(),
    };
    Ok((name.trim().to_ascii_lowercase(), value))
}

/// The endpoint from `--endpoint`/`--protocol` or `--preset`, with `--header`s;
/// and whether metrics must go as deltas.
pub fn endpoint(
    url: Option<&str>,
    protocol: &str,
    preset: Option<&str>,
    headers: &[String],
) -> Result<(Endpoint, bool), Failure> {
    let mut extra = headers
        .iter()
        .map(|h| header(h))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut endpoint, delta_metrics) = match preset {
        Some(name) => {
            let p = presets::resolve(name, |v| std::env::var(v).ok())?;
            (p.endpoint, p.delta_metrics)
        }
        None => {
            let protocol = Protocol::parse(protocol).ok_or_else(|| {
                Failure::from(format!("unknown --protocol '{protocol}': use grpc or http"))
            })?;
            (
                Endpoint::new(url.unwrap_or_default(), protocol, Vec::new()),
                false,
            )
        }
    };
    endpoint.headers.append(&mut extra);
    Ok((endpoint, delta_metrics))
}

pub fn otlp(home: &Path, a: &OtlpArgs) -> Result<u8, Failure> {
    let s = Session::open(home, &a.session)?;
    elixirscope_store::audit::record(
        home,
        "export",
        s.name(),
        serde_json::json!({ "to": "otlp", "endpoint": a.endpoint, "preset": a.preset }),
    )?;
    let (endpoint, delta_metrics) = endpoint(
        a.endpoint.as_deref(),
        &a.protocol,
        a.preset.as_deref(),
        &a.headers,
    )?;
    let mut filter = SpanFilter::default();
    if let Some(t) = &a.from {
        filter.from = Some(s.parse_time(t)?);
    }
    if let Some(t) = &a.to {
        filter.to = Some(s.parse_time(t)?);
    }
    for p in &a.pids {
        filter.pids.extend(s.resolve_all(p)?);
    }
    let summary = export_session(
        &s,
        endpoint,
        &ExportOptions {
            service_name: a.service_name.clone(),
            filter,
            metrics: !a.no_metrics,
            delta_metrics,
        },
    )?;
    if a.out.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "exported {} spans in {} batches, {} metrics and {} log records from {} to {} ({} retries, {} spans dropped)",
            summary.spans,
            summary.batches,
            summary.metrics,
            summary.logs,
            summary.session,
            summary.endpoint,
            summary.retries,
            summary.dropped_spans
        );
    }
    // Spans that did not arrive, or an export that stopped early, fail it:
    // the summary above says what was sent, this line what was not.
    let total = summary.spans + summary.dropped_spans;
    match &summary.error {
        Some(e) if summary.dropped_spans > 0 => Err(Failure::from(format!(
            "{} of {total} spans dropped: {e}",
            summary.dropped_spans
        ))),
        Some(e) => Err(Failure::from(e)),
        None => Ok(0),
    }
}
