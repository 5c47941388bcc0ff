//! Logger calls as OpenTelemetry log records. When a session traced the
//! logger (`--trace logger:macro_log/4`, which Elixir's `Logger` and Erlang's
//! `?LOG_*` macros call, or `logger:log/2..4`), each call becomes a log record
//! with the level as severity, the message as body, the caller's pid and
//! source location as attributes, and the span the process was in as context.

use super::spans::{kv_int, kv_str, MAX_TERM_CHARS};
use elixirscope_query::Session;
use elixirscope_term::Term;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

/// Whether a call to `module:function/arity` is a logger call.
pub fn is_logger_call(module: &str, function: &str, arity: u8) -> bool {
    module == "logger"
        && ((function == "macro_log" && arity == 4)
            || (function == "log" && (2..=4).contains(&arity)))
}

/// OpenTelemetry severity number and text of a logger level.
fn severity(level: &str) -> (i32, &'static str) {
    match level {
        "debug" => (5, "DEBUG"),
        "info" => (9, "INFO"),
        "notice" => (10, "INFO2"),
        "warning" | "warn" => (13, "WARN"),
        "error" => (17, "ERROR"),
        "critical" => (19, "ERROR3"),
        "alert" => (21, "FATAL"),
        "emergency" => (22, "FATAL2"),
        _ => (0, "UNSPECIFIED"),
    }
}

fn text(t: &Term) -> Option<String> {
    match t {
        Term::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Term::List { items, .. }
            if items
                .iter()
                .all(|i| i.as_i64().is_some_and(|c| (0..=0x10ffff).contains(&c))) =>
        {
            Some(
                items
                    .iter()
                    .filter_map(|i| char::from_u32(i.as_i64()? as u32))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// The log record of a logger call with these arguments, if it is one.
pub fn record(s: &Session, function: &str, args: &Term, ts: i64, pid: &str) -> Option<LogRecord> {
    let items = args.as_list()?;
    // macro_log(Location, Level, StringOrReport, Meta); log(Level, StringOrReport[, Args|Meta][, Meta]).
    let (location, level, message) = match (function, items) {
        ("macro_log", [loc, level, msg, ..]) => (Some(loc), level, msg),
        ("log", [level, msg, ..]) => (None, level, msg),
        _ => return None,
    };
    let level = level.as_atom()?;
    let (number, sev_text) = severity(level);
    let inspect = |t: &Term| s.inspect_bytes(&elixirscope_term::encode_body(t));
    let body = match message {
        Term::Tuple(parts) if parts.len() == 2 && parts[0].as_atom() == Some("string") => {
            text(&parts[1]).unwrap_or_else(|| inspect(&parts[1]))
        }
        other => text(other).unwrap_or_else(|| inspect(other)),
    };
    let mut body = body;
    if body.chars().count() > 4 * MAX_TERM_CHARS {
        body = body.chars().take(4 * MAX_TERM_CHARS).collect::<String>() + "…";
    }
    let mut attributes = vec![kv_str("erlang.pid", pid), kv_str("log.level", level)];
    if let Some(loc) = location {
        if let Some(Term::Tuple(mfa)) = loc.map_get(&Term::atom("mfa")) {
            if let [m, f, a] = mfa.as_slice() {
                attributes.push(kv_str("code.namespace", inspect(m)));
                attributes.push(kv_str(
                    "code.function",
                    f.as_atom().unwrap_or("").to_owned(),
                ));
                if let Some(a) = a.as_i64() {
                    attributes.push(kv_int("erlang.arity", a));
                }
            }
        }
        if let Some(file) = loc.map_get(&Term::atom("file")).and_then(text) {
            attributes.push(kv_str("code.filepath", file));
        }
        if let Some(line) = loc.map_get(&Term::atom("line")).and_then(Term::as_i64) {
            attributes.push(kv_int("code.lineno", line));
        }
    }
    Some(LogRecord {
        time_unix_nano: ts.max(0) as u64,
        observed_time_unix_nano: ts.max(0) as u64,
        severity_number: number,
        severity_text: sev_text.into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes,
        ..Default::default()
    })
}
