//! What to capture: profiles, budgets, sampling, and the agent's configuration.
//!
//! A profile gives safe defaults; command-line options override single fields.
//! Every capture has a budget (total events, events per second, duration, tracer
//! backlog and memory) enforced on the node: hitting any limit trips the capture
//! for good and the session records why.

use elixirscope_term::CallPattern;
use elixirscope_term::Term;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits enforced by the agent on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Events captured in total.
    pub max_events: u64,
    /// Events captured within any one second.
    pub max_rate: u64,
    /// Capture duration (`None` = until stopped).
    pub max_duration_ms: Option<u64>,
    /// Trace messages waiting in the tracer's mailbox.
    pub max_backlog: u64,
    /// Memory of the tracer process, in bytes.
    pub max_tracer_memory: u64,
    /// Encoded batches waiting for a busy collector, in bytes (beyond it, drop and count).
    pub max_buffer_bytes: u64,
    /// Encoded event bytes within any one second.
    pub max_bytes_rate: u64,
    /// Node stress: total run-queue length sustained for 300 ms.
    pub max_run_queue: u64,
    /// Node stress: growth of the node's total memory since capture started, in bytes.
    pub max_node_memory_growth: u64,
    /// Node stress: share of scheduler time spent working, sustained for 3 s
    /// (`None`: not watched; watching needs the scheduler_wall_time flag).
    #[serde(default)]
    pub max_scheduler_use: Option<f64>,
    /// Bytes the session may take on disk.
    pub max_session_bytes: u64,
    /// The tracer's own share of all schedulers' time, over each second
    /// (`None`: not watched). Over it, the costliest state captures are
    /// degraded step by step, then the capture trips.
    #[serde(default)]
    pub max_tracer_cpu: Option<f64>,
    /// Heap of a process, in bytes, above which the process tracer stops
    /// tracing its state callbacks (the VM would copy the state whole).
    #[serde(default = "default_state_heap")]
    pub max_state_heap: u64,
}

fn default_state_heap() -> u64 {
    4 << 20
}

/// What each payload term keeps; the walk stops at these, so an event's cost
/// follows them and not the size of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermLimits {
    /// Containers nested deeper keep no elements.
    pub depth: u32,
    /// Elements kept per list, tuple or map.
    pub elements: u32,
    /// Bytes kept per binary (and elements per string written as a list of bytes).
    pub bytes: u32,
    /// Encoded bytes per event.
    pub event_bytes: u32,
}

impl Default for TermLimits {
    fn default() -> Self {
        TermLimits {
            depth: 12,
            elements: 64,
            bytes: 1024,
            event_bytes: 64 << 10,
        }
    }
}

/// A complete capture request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureSpec {
    pub profile: String,
    /// Process lifecycle (spawn, exit, link, register ...).
    pub procs: bool,
    /// Message send and receive.
    pub messages: bool,
    /// Monitor and demonitor calls.
    pub monitors: bool,
    /// Keep 1 in `sample` messages and processes' calls (lifecycle, exits and
    /// exceptions are always kept).
    pub sample: u32,
    pub calls: Vec<CallPattern>,
    /// Record argument and result values of traced calls (off: arities only).
    pub call_values: bool,
    /// Modules or registered names whose behaviour state is recorded.
    pub state: Vec<String>,
    /// Registered processes left untraced (code loading traffic is noise for most debugging).
    pub quiet: Vec<String>,
    /// Dead-man lease: the agent stops and unloads itself after this long without
    /// hearing from the collector.
    pub lease_ms: u64,
    pub redact: Redaction,
    /// What each payload term keeps.
    #[serde(default)]
    pub limits: TermLimits,
    pub budget: Budget,
    /// Which tracer to run on the node.
    #[serde(default)]
    pub tracer: TracerChoice,
}

/// Which tracer records the events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TracerChoice {
    /// The NIF tracer when the node can load it, else the process tracer.
    #[default]
    Auto,
    /// The NIF tracer or nothing.
    Nif,
    /// The process tracer (an Erlang process receiving trace messages).
    Process,
}

impl TracerChoice {
    pub fn parse(text: &str) -> Option<TracerChoice> {
        match text {
            "auto" => Some(TracerChoice::Auto),
            "nif" => Some(TracerChoice::Nif),
            "process" => Some(TracerChoice::Process),
            _ => None,
        }
    }
}

/// What the agent redacts on the node before anything leaves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redaction {
    /// Off only when whoever configures the capture says so (recorded in the session).
    pub enabled: bool,
    /// Values under keys containing one of these names (case-insensitive).
    pub keys: Vec<String>,
    /// Structs (module atoms) whose fields are all redacted.
    pub structs: Vec<String>,
    /// Argument positions (1-based) of specific functions.
    pub args: Vec<(CallPattern, Vec<u8>)>,
    /// Card-number-like strings (13-19 digits passing the Luhn check).
    pub cards: bool,
    /// Strings matching these regular expressions (Erlang `re` syntax).
    pub values: Vec<String>,
}

/// Keys whose values are redacted by default.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "private_key",
    "credential",
    "passphrase",
];

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            enabled: true,
            keys: SECRET_KEYS.iter().map(|k| k.to_string()).collect(),
            structs: Vec::new(),
            args: Vec::new(),
            cards: true,
            values: Vec::new(),
        }
    }
}

impl Redaction {
    /// A value pattern (`--redact-value`) must compile before anything is
    /// traced, as the NIF tracer compiles it (on bytes, no Unicode classes);
    /// the agent checks it with Erlang's `re` on the node too. The error is
    /// one line naming the pattern.
    pub fn check_value(pattern: &str) -> Result<(), String> {
        regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .size_limit(1 << 20)
            .build()
            .map(|_| ())
            .map_err(|e| {
                let text = e.to_string();
                let why = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("not a regular expression")
                    .trim()
                    .trim_start_matches("error: ");
                format!(
                    "invalid --redact-value '{pattern}': {why}; write a regular expression such as 'sk_live_[0-9a-zA-Z]+'"
                )
            })
    }

    /// The agent's `redact` config: a map, or `false` when disabled.
    fn to_term(&self) -> Term {
        if !self.enabled {
            return Term::atom("false");
        }
        let args = self
            .args
            .iter()
            .filter_map(|(p, positions)| {
                Some(Term::Tuple(vec![
                    Term::atom(&p.module),
                    Term::atom(p.function.as_deref()?),
                    Term::Integer(p.arity? as i64),
                    Term::list(positions.iter().map(|i| Term::Integer(*i as i64)).collect()),
                ]))
            })
            .collect();
        Term::Map(vec![
            (
                Term::atom("keys"),
                Term::list(self.keys.iter().map(|k| Term::string(k)).collect()),
            ),
            (
                Term::atom("structs"),
                Term::list(self.structs.iter().map(Term::atom).collect()),
            ),
            (Term::atom("args"), Term::list(args)),
            (
                Term::atom("cards"),
                Term::atom(if self.cards { "true" } else { "false" }),
            ),
            (
                Term::atom("values"),
                Term::list(self.values.iter().map(|v| Term::string(v)).collect()),
            ),
        ])
    }
}

/// Processes left untraced unless asked for: the code server and the primitive
/// loader exchange whole `.beam` files as messages while modules load.
pub const QUIET_BY_DEFAULT: &[&str] = &["code_server", "erl_prim_loader"];

/// Names accepted by `--profile`.
pub const PROFILES: &[(&str, &str)] = &[
    (
        "light",
        "lifecycle + 1 in 10 messages and calls; small budget; safe for production",
    ),
    (
        "always-on",
        "lifecycle and crashes of every process, chosen calls for 1 in 100 processes, states, node counters; no messages; for leaving attached in production",
    ),
    (
        "default",
        "lifecycle, every message, chosen calls and states; moderate budget",
    ),
    (
        "deep-dive",
        "everything including monitors; large budget; for development",
    ),
];

impl CaptureSpec {
    /// The spec of a named profile (`production-light` is an alias of `light`).
    pub fn profile(name: &str) -> Option<CaptureSpec> {
        const MB: u64 = 1 << 20;
        let default = CaptureSpec {
            profile: "default".into(),
            procs: true,
            messages: true,
            monitors: false,
            sample: 1,
            calls: Vec::new(),
            call_values: true,
            state: Vec::new(),
            quiet: QUIET_BY_DEFAULT.iter().map(|s| s.to_string()).collect(),
            lease_ms: 15_000,
            redact: Redaction::default(),
            limits: TermLimits::default(),
            tracer: TracerChoice::Auto,
            budget: Budget {
                max_events: 5_000_000,
                max_rate: 300_000,
                max_duration_ms: Some(60 * 60_000),
                max_backlog: 200_000,
                max_tracer_memory: 256 * MB,
                max_session_bytes: 4 << 30,
                max_buffer_bytes: 16 * MB,
                max_bytes_rate: 64 * MB,
                max_run_queue: 1_000,
                max_node_memory_growth: 512 * MB,
                max_scheduler_use: None,
                max_tracer_cpu: Some(0.10),
                max_state_heap: 4 * MB,
            },
        };
        let light = CaptureSpec {
            profile: "light".into(),
            sample: 10,
            budget: Budget {
                max_events: 500_000,
                max_rate: 20_000,
                max_duration_ms: Some(10 * 60_000),
                max_backlog: 20_000,
                max_tracer_memory: 64 * MB,
                max_buffer_bytes: 4 * MB,
                max_bytes_rate: 8 * MB,
                max_run_queue: 200,
                max_node_memory_growth: 128 * MB,
                max_tracer_cpu: Some(0.05),
                max_state_heap: MB,
                ..default.budget
            },
            limits: TermLimits {
                depth: 8,
                elements: 32,
                bytes: 256,
                event_bytes: 8 << 10,
            },
            ..default.clone()
        };
        Some(match name {
            "default" => default,
            // Every message passes the tracer's enabled check, which alone
            // costs a busy GenServer tens of percent; this profile sets no
            // message flags at all. Light's budgets, but no end in time.
            "always-on" => CaptureSpec {
                profile: "always-on".into(),
                messages: false,
                sample: 100,
                budget: Budget {
                    max_events: 100_000_000,
                    max_duration_ms: None,
                    max_tracer_cpu: Some(0.03),
                    ..light.budget
                },
                ..light
            },
            "light" | "production-light" => light,
            "deep-dive" => CaptureSpec {
                profile: "deep-dive".into(),
                monitors: true,
                budget: Budget {
                    max_events: 50_000_000,
                    max_rate: 2_000_000,
                    max_duration_ms: Some(120 * 60_000),
                    max_backlog: 1_000_000,
                    max_buffer_bytes: 64 * MB,
                    max_bytes_rate: 256 * MB,
                    max_run_queue: 10_000,
                    max_node_memory_growth: 2048 * MB,
                    max_tracer_cpu: Some(0.25),
                    max_state_heap: 16 * MB,
                    ..default.budget
                },
                limits: TermLimits {
                    depth: 32,
                    elements: 1_000,
                    bytes: 16 << 10,
                    event_bytes: 1 << 20,
                },
                ..default
            },
            _ => return None,
        })
    }

    /// The agent's configuration map.
    /// `tls` is the collector's certificate (DER) for the agent to pin, or `None`
    /// for plain TCP (loopback only).
    pub fn agent_config(
        &self,
        collector_host: &str,
        collector_port: u16,
        token: &str,
        run_mode: bool,
        tls: Option<&[u8]>,
    ) -> Term {
        let atom = Term::atom;
        let int = |v: u64| Term::Integer(v.min(i64::MAX as u64) as i64);
        let b = &self.budget;
        let mut budget = vec![
            (atom("max_events"), int(b.max_events)),
            (atom("max_rate"), int(b.max_rate)),
            (atom("max_backlog"), int(b.max_backlog)),
            (atom("max_memory"), int(b.max_tracer_memory)),
            (atom("max_buffer_bytes"), int(b.max_buffer_bytes)),
            (atom("max_bytes_rate"), int(b.max_bytes_rate)),
            (atom("max_run_queue"), int(b.max_run_queue)),
            (
                atom("max_node_memory_growth"),
                int(b.max_node_memory_growth),
            ),
        ];
        if let Some(ms) = b.max_duration_ms {
            budget.push((atom("max_duration_ms"), int(ms)));
        }
        if let Some(u) = b.max_scheduler_use {
            budget.push((atom("max_scheduler_use"), Term::Float(u.clamp(0.0, 1.0))));
        }
        if let Some(u) = b.max_tracer_cpu {
            budget.push((atom("max_tracer_cpu"), Term::Float(u.clamp(0.0, 1.0))));
        }
        budget.push((atom("max_state_heap"), int(b.max_state_heap)));
        let l = &self.limits;
        let limits = Term::Map(vec![
            (atom("depth"), int(l.depth as u64)),
            (atom("elements"), int(l.elements as u64)),
            (atom("bytes"), int(l.bytes as u64)),
            (atom("event_bytes"), int(l.event_bytes as u64)),
        ]);
        let charlist = |s: &str| Term::list(s.chars().map(|c| Term::Integer(c as i64)).collect());
        Term::Map(vec![
            (
                atom("collector"),
                Term::Tuple(vec![charlist(collector_host), int(collector_port as u64)]),
            ),
            (atom("token"), Term::string(token)),
            (atom("procs"), Term::atom(bool_atom(self.procs))),
            (atom("messages"), Term::atom(bool_atom(self.messages))),
            (atom("monitors"), Term::atom(bool_atom(self.monitors))),
            (atom("sample"), int(self.sample.max(1) as u64)),
            (
                atom("calls"),
                Term::list(self.calls.iter().map(CallPattern::to_term).collect()),
            ),
            (
                atom("state"),
                Term::list(self.state.iter().map(Term::atom).collect()),
            ),
            (
                atom("quiet"),
                Term::list(self.quiet.iter().map(Term::atom).collect()),
            ),
            (atom("budget"), Term::Map(budget)),
            (atom("run_mode"), Term::atom(bool_atom(run_mode))),
            (atom("lease_ms"), int(self.lease_ms)),
            (atom("call_values"), Term::atom(bool_atom(self.call_values))),
            (
                atom("tls"),
                match tls {
                    Some(der) => Term::Binary(der.to_vec()),
                    None => Term::atom("false"),
                },
            ),
            (atom("redact"), self.redact.to_term()),
            (atom("limits"), limits),
            (
                atom("modules"),
                Term::list(
                    crate::agent::MODULES
                        .iter()
                        .map(|(m, _)| Term::atom(*m))
                        .collect(),
                ),
            ),
        ])
    }

    /// The capture duration limit, if any.
    pub fn max_duration(&self) -> Option<Duration> {
        self.budget.max_duration_ms.map(Duration::from_millis)
    }
}

fn bool_atom(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_patterns_are_checked_before_capture() {
        assert!(Redaction::check_value("sk_live_[0-9a-z]+").is_ok());
        let e = Redaction::check_value("(unclosed").unwrap_err();
        assert!(e.starts_with("invalid --redact-value '(unclosed'"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn every_listed_profile_exists_and_light_samples() {
        for (name, _) in PROFILES {
            assert!(CaptureSpec::profile(name).is_some(), "{name}");
        }
        let light = CaptureSpec::profile("production-light").unwrap();
        assert!(light.sample > 1);
        assert!(light.budget.max_rate < CaptureSpec::profile("deep-dive").unwrap().budget.max_rate);
        assert!(CaptureSpec::profile("nope").is_none());
    }
}
