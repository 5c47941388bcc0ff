//! Capture options shared by `run` and `record`, turned into a capture spec.

use crate::Failure;
use clap::Args;
use elixirscope_capture::spec::{Redaction, TracerChoice, PROFILES};
use elixirscope_capture::CaptureSpec;
use elixirscope_term::mfa_pattern::parse_atom_target;
use elixirscope_term::CallPattern;
use std::time::Duration;

#[derive(Args, Clone, Debug)]
pub struct CaptureOpts {
    /// Name of the session to create [default: derived from the target and time]
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// Serve the collector's metrics for Prometheus (OpenMetrics) at http://ADDR/metrics while recording
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Functions per session with their own latency series in the metrics (the rest share one)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub metrics_functions: usize,
    /// Stream spans to this OTLP endpoint while recording (see `elixirscope export otlp --help`)
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// `grpc`, or `http` for HTTP/protobuf, for --otlp-endpoint
    #[arg(long, default_value = "grpc", value_name = "PROTOCOL")]
    pub otlp_protocol: String,
    /// Stream spans to a vendor while recording: datadog, newrelic, honeycomb, grafana-cloud (keys from environment variables)
    #[arg(long, value_name = "NAME", conflicts_with = "otlp_endpoint")]
    pub otlp_preset: Option<String>,
    /// Extra header NAME=VALUE (or NAME=env:VAR) for the OTLP stream; repeatable
    #[arg(long = "otlp-header", value_name = "NAME=VALUE")]
    pub otlp_headers: Vec<String>,
    /// Record calls matching PATTERN with arguments, results and durations
    /// (MyApp.Repo.insert/2, MyApp.Repo._/_, lists:reverse/1); repeatable
    #[arg(long = "trace", value_name = "PATTERN")]
    pub trace: Vec<String>,
    /// Record the state of a GenServer/gen_statem before and after every callback,
    /// by module (MyApp.Counter) or registered name (:my_server); repeatable
    #[arg(long = "state", value_name = "MODULE_OR_NAME")]
    pub state: Vec<String>,
    /// Capture profile: light (alias production-light), always-on, default,
    /// deep-dive
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub profile: String,
    /// Tracer: auto (the NIF tracer when the node can load it, else the process
    /// tracer), nif, or process
    #[arg(long, default_value = "auto", value_name = "KIND")]
    pub tracer: String,
    /// Keep 1 in RATE messages and processes' calls (10, 1/10, 0.1 or 10%); spawns,
    /// exits and exceptions are always kept
    #[arg(long, value_name = "RATE")]
    pub sample: Option<String>,
    /// Stop capture after N events
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Stop capture if more than N events arrive within one second
    #[arg(long, value_name = "N")]
    pub max_rate: Option<u64>,
    /// Stop capture if more than N trace messages wait in the tracer's mailbox
    #[arg(long, value_name = "N")]
    pub max_backlog: Option<u64>,
    /// Stop capture if the tracer process uses more than SIZE of memory
    #[arg(long, value_name = "SIZE")]
    pub max_tracer_memory: Option<String>,
    /// Stop capture if more than SIZE of events are produced within one second
    #[arg(long, value_name = "SIZE")]
    pub max_bytes_rate: Option<String>,
    /// Stop capture if the node's run queue stays above N processes for 300 ms
    #[arg(long, value_name = "N")]
    pub max_run_queue: Option<u64>,
    /// Stop capture if the schedulers stay busier than PERCENT for 3 s (e.g. 90%)
    #[arg(long, value_name = "PERCENT")]
    pub max_scheduler_use: Option<String>,
    /// Stop capture if the node's memory grows by more than SIZE while capturing
    #[arg(long, value_name = "SIZE")]
    pub max_node_memory: Option<String>,
    /// Stop capture when the session takes SIZE on disk (500KB, 100MB, 2GB)
    #[arg(long, value_name = "SIZE")]
    pub max_bytes: Option<String>,
    /// Budget for the tracer's own share of scheduler time (e.g. 5%); over it the
    /// costliest state captures are degraded step by step, then capture stops
    #[arg(long, value_name = "PERCENT")]
    pub max_tracer_cpu: Option<String>,
    /// Process tracer: stop tracing the state callbacks of a process whose heap
    /// grows beyond SIZE (the VM would copy its whole state into every event)
    #[arg(long, value_name = "SIZE")]
    pub max_state_heap: Option<String>,
    /// Payload terms (messages, arguments, results, states) keep containers
    /// nested at most N deep
    #[arg(long, value_name = "N")]
    pub max_term_depth: Option<u32>,
    /// Payload terms keep at most N elements per list, tuple or map
    #[arg(long, value_name = "N")]
    pub max_term_elements: Option<u32>,
    /// Payload terms keep at most SIZE of each binary or string
    #[arg(long, value_name = "SIZE")]
    pub max_term_bytes: Option<String>,
    /// Each event keeps at most SIZE of payload in all
    #[arg(long, value_name = "SIZE")]
    pub max_event_bytes: Option<String>,
    /// Dead-man lease: the agent stops tracing and unloads itself if it hears
    /// nothing from the recorder for DURATION [default: 15s]
    #[arg(long, value_name = "DURATION")]
    pub lease: Option<String>,
    /// Stop recording after DURATION (30s, 5m, 1h)
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Record traced calls without argument and result values (arities only)
    #[arg(long)]
    pub no_values: bool,
    /// Do not record messages (lifecycle, calls and states only)
    #[arg(long)]
    pub no_messages: bool,
    /// Also redact values under keys containing NAME (besides password, secret,
    /// token, authorization, cookie, session, api_key, private_key ...); repeatable
    #[arg(long = "redact-key", value_name = "NAME")]
    pub redact_key: Vec<String>,
    /// Redact every field of this struct (MyApp.User); repeatable
    #[arg(long = "redact-struct", value_name = "MODULE")]
    pub redact_struct: Vec<String>,
    /// Redact arguments of a function by position, e.g. MyApp.Auth.login/2=2; repeatable
    #[arg(long = "redact-arg", value_name = "MFA=POS")]
    pub redact_arg: Vec<String>,
    /// Redact binaries, strings and atoms matching this regular expression
    /// (no look-around or back-references); repeatable
    #[arg(long = "redact-value", value_name = "REGEX")]
    pub redact_value: Vec<String>,
    /// Turn redaction off: secrets leave the node as they are (recorded in the session)
    #[arg(long)]
    pub no_redact: bool,
    /// Use TLS between agent and recorder even on loopback (always used otherwise)
    #[arg(long)]
    pub tls: bool,
    /// Allow plaintext between agent and recorder across the network (not advised)
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Also trace the code server and loader (left out by default: they pass whole
    /// .beam files around while modules load)
    #[arg(long)]
    pub include_system: bool,
}

/// Parses `10`, `1/10`, `0.1`, `10%` into "keep 1 in N".
pub fn parse_sample(text: &str) -> Result<u32, Failure> {
    let bad = || {
        Failure::from(format!(
            "invalid --sample '{text}': use 10 (1 in 10), 1/10, 0.1 or 10%"
        ))
    };
    let t = text.trim();
    let n = if let Some(p) = t.strip_suffix('%') {
        let pct: f64 = p.trim().parse().map_err(|_| bad())?;
        if pct <= 0.0 || pct > 100.0 {
            return Err(bad());
        }
        (100.0 / pct).round()
    } else if let Some(d) = t.strip_prefix("1/") {
        d.trim().parse::<f64>().map_err(|_| bad())?
    } else {
        let v: f64 = t.parse().map_err(|_| bad())?;
        if v <= 0.0 {
            return Err(bad());
        }
        if v < 1.0 {
            (1.0 / v).round()
        } else {
            v
        }
    };
    if !(1.0..=1e9).contains(&n) || n.fract() != 0.0 {
        return Err(bad());
    }
    Ok(n as u32)
}

/// Parses `500KB`, `100MB`, `2GB` (powers of 1024) or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, Failure> {
    let bad = || Failure::from(format!("invalid size '{text}': use e.g. 500KB, 100MB, 2GB"));
    let t = text.trim().to_ascii_uppercase();
    let t = t.trim_end_matches("IB").trim_end_matches('B');
    let (num, scale) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(n > 0.0 && n * (scale as f64) < 1e18) {
        return Err(bad());
    }
    Ok((n * scale as f64) as u64)
}

/// Parses `90%` (or `90`, `0.5%`) into a fraction of 1.
pub fn parse_percent(flag: &str, text: &str) -> Result<f64, Failure> {
    text.trim()
        .trim_end_matches('%')
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .map(|p| p / 100.0)
        .ok_or_else(|| {
            Failure::from(format!(
                "invalid {flag} '{text}': use a percentage above 0 and at most 100, e.g. 90%"
            ))
        })
}

fn positive(flag: &str, n: u32) -> Result<u32, Failure> {
    if n == 0 {
        return Err(Failure::from(format!("invalid {flag} 0: use at least 1")));
    }
    Ok(n)
}

/// Parses `MyApp.Auth.login/2=2` or `auth:login/2=1,2` into a pattern and positions.
pub fn parse_redact_arg(text: &str) -> Result<(CallPattern, Vec<u8>), Failure> {
    let bad = || {
        Failure::from(format!(
        "invalid --redact-arg '{text}': write Module.function/arity=POSITIONS, e.g. MyApp.Auth.login/2=2"
    ))
    };
    let (pattern, positions) = text.rsplit_once('=').ok_or_else(bad)?;
    let pattern = CallPattern::parse(pattern)?;
    let arity = match (&pattern.function, pattern.arity) {
        (Some(_), Some(a)) => a,
        _ => return Err(bad()),
    };
    let positions: Vec<u8> = positions
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p >= 1 && *p <= arity)
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    Ok((pattern, positions))
}

/// Parses `30s`, `5m`, `1h`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, Failure> {
    elixirscope_query::time::parse_duration_ns(text)
        .filter(|ns| *ns > 0)
        .map(|ns| Duration::from_nanos(ns as u64))
        .ok_or_else(|| {
            Failure::from(format!(
                "invalid duration '{text}': use e.g. 30s, 500ms, 5m, 1h"
            ))
        })
}

impl CaptureOpts {
    /// The capture spec these options ask for.
    pub fn spec(&self) -> Result<CaptureSpec, Failure> {
        let mut spec = CaptureSpec::profile(&self.profile).ok_or_else(|| {
            let names: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
            Failure::from(format!(
                "unknown profile '{}': choose one of {}",
                self.profile,
                names.join(", ")
            ))
        })?;
        spec.tracer = TracerChoice::parse(&self.tracer).ok_or_else(|| {
            Failure::from(format!(
                "invalid --tracer '{}': use auto, nif or process",
                self.tracer
            ))
        })?;
        for p in &self.trace {
            spec.calls.push(CallPattern::parse(p)?);
        }
        for s in &self.state {
            spec.state.push(parse_atom_target(s)?);
        }
        if let Some(s) = &self.sample {
            spec.sample = parse_sample(s)?;
        }
        if let Some(n) = self.max_events {
            spec.budget.max_events = n;
        }
        if let Some(n) = self.max_rate {
            spec.budget.max_rate = n;
        }
        let b = &mut spec.budget;
        if let Some(v) = &self.max_bytes {
            b.max_session_bytes = parse_size(v)?;
        }
        if let Some(n) = self.max_backlog {
            b.max_backlog = n;
        }
        if let Some(v) = &self.max_tracer_memory {
            b.max_tracer_memory = parse_size(v)?;
        }
        if let Some(v) = &self.max_bytes_rate {
            b.max_bytes_rate = parse_size(v)?;
        }
        if let Some(n) = self.max_run_queue {
            b.max_run_queue = n;
        }
        if let Some(v) = &self.max_scheduler_use {
            b.max_scheduler_use = Some(parse_percent("--max-scheduler-use", v)?);
        } else if self.metrics_listen.is_some() {
            // Served metrics include scheduler utilisation: a limit that never
            // trips makes the agent measure it (and restore the flag after).
            b.max_scheduler_use = Some(1.0);
        }
        if let Some(v) = &self.max_node_memory {
            b.max_node_memory_growth = parse_size(v)?;
        }
        if let Some(v) = &self.max_tracer_cpu {
            b.max_tracer_cpu = Some(parse_percent("--max-tracer-cpu", v)?);
        }
        if let Some(v) = &self.max_state_heap {
            b.max_state_heap = parse_size(v)?;
        }
        let l = &mut spec.limits;
        if let Some(n) = self.max_term_depth {
            l.depth = positive("--max-term-depth", n)?;
        }
        if let Some(n) = self.max_term_elements {
            l.elements = positive("--max-term-elements", n)?;
        }
        if let Some(v) = &self.max_term_bytes {
            l.bytes = parse_size(v)?.min(u32::MAX as u64) as u32;
        }
        if let Some(v) = &self.max_event_bytes {
            l.event_bytes = parse_size(v)?.clamp(256, u32::MAX as u64) as u32;
        }
        let r = &mut spec.redact;
        r.enabled = !self.no_redact;
        r.keys
            .extend(self.redact_key.iter().map(|k| k.to_lowercase()));
        for m in &self.redact_struct {
            r.structs.push(parse_atom_target(m)?);
        }
        for a in &self.redact_arg {
            r.args.push(parse_redact_arg(a)?);
        }
        for v in &self.redact_value {
            Redaction::check_value(v).map_err(Failure::from)?;
            r.values.push(v.clone());
        }
        if let Some(l) = &self.lease {
            spec.lease_ms = parse_duration(l)?.as_millis().max(1_000) as u64;
        }
        if self.no_messages {
            spec.messages = false;
        }
        if self.no_values {
            if !spec.state.is_empty() {
                return Err(Failure::from(
                    "--state needs call values (states come from callback arguments and results); drop --no-values",
                ));
            }
            spec.call_values = false;
        }
        if self.include_system {
            spec.quiet.clear();
        }
        if let Some(d) = self.for_duration()? {
            // The recorder stops at --for; the agent's own limit is a safety net behind it.
            let ms = d.as_millis() as u64 + 10_000;
            spec.budget.max_duration_ms =
                Some(spec.budget.max_duration_ms.map_or(ms, |m| m.max(ms)));
        }
        Ok(spec)
    }

    /// The `--for` duration, if given.
    pub fn for_duration(&self) -> Result<Option<Duration>, Failure> {
        self.duration.as_deref().map(parse_duration).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_args() {
        let (p, pos) = parse_redact_arg("MyApp.Auth.login/2=2").ok().unwrap();
        assert_eq!((p.module.as_str(), pos), ("Elixir.MyApp.Auth", vec![2]));
        assert!(parse_redact_arg("auth:login/2=1,2").is_ok());
        for bad in [
            "MyApp.Auth.login/2",
            "MyApp.Auth.login/2=3",
            "MyApp.Auth._/_=1",
            "x=1",
        ] {
            assert!(parse_redact_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_patterns_are_checked_before_capture() {
        assert!(parse_percent("--max-tracer-cpu", "5%").ok() == Some(0.05));
        assert!(parse_percent("--max-tracer-cpu", "0%").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500KB").ok(), Some(500 << 10));
        assert_eq!(parse_size("2GiB").ok(), Some(2 << 30));
        assert_eq!(parse_size("1.5M").ok(), Some(3 << 19));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert!(parse_size("lots").is_err() && parse_size("0MB").is_err());
    }

    #[test]
    fn sample_rates() {
        for (t, n) in [
            ("10", 10),
            ("1/10", 10),
            ("0.1", 10),
            ("10%", 10),
            ("1", 1),
            ("100%", 1),
        ] {
            assert_eq!(parse_sample(t).ok(), Some(n), "{t}");
        }
        for t in ["0", "-1", "abc", "0%", "1/0", "2.5"] {
            assert!(parse_sample(t).is_err(), "{t}");
        }
    }
}
