//! `record` and `run` on the command line: options in, a recording via
//! `elixirscope-recorder`, progress on stderr, a summary at the end.

use crate::capture_opts::CaptureOpts;
use crate::summary;
use crate::Failure;
use elixirscope_capture::agent::CleanReport;
use elixirscope_capture::cookie;
use elixirscope_export::otlp::client::Endpoint;
use elixirscope_export::otlp::export::ExportOptions;
use elixirscope_export::otlp::live::LiveExport;
use elixirscope_recorder::{Actor, Observer, Progress, Request, Target, TlsChoice};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Prints what happens while recording to stderr, and starts the OTLP
/// stream, when asked for, as soon as the session exists.
struct Terminal {
    home: std::path::PathBuf,
    otlp: Option<(Endpoint, ExportOptions)>,
    stream: Mutex<Option<LiveExport>>,
}

impl Observer for Terminal {
    fn started(&self, session: &str, target: &str) {
        eprintln!("recording `{target}` into session {session} (Ctrl-C to stop)");
        if let Some((endpoint, opts)) = &self.otlp {
            eprintln!("streaming spans to {}", endpoint.url);
            let dir = elixirscope_store::session::sessions_dir(&self.home).join(session);
            let live = LiveExport::start(dir, endpoint.clone(), opts.clone());
            *self.stream.lock().unwrap_or_else(|p| p.into_inner()) = Some(live);
        }
    }

    fn progress(&self, p: &Progress) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let mut line = format!(
            "\rrecording {}: {} events stored, {} dropped, {:.0}s",
            p.session,
            p.events,
            p.dropped,
            p.elapsed.as_secs_f64()
        );
        for a in &p.agents {
            line.push_str(&format!(
                " | backlog {}, tracer {} KB, node {} MB, run queue {}",
                a.backlog,
                a.tracer_memory / 1024,
                a.node_memory >> 20,
                a.run_queue
            ));
        }
        eprint!("{line} (Ctrl-C to stop)   ");
    }

    fn notice(&self, text: &str) {
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        eprintln!("{text}");
    }

    fn node_checked(&self, node: &str, report: Result<&CleanReport, String>) {
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        match report {
            Ok(r) if r.is_clean() => {
                eprintln!(
                    "node {node} left as found: no trace flags, no trace patterns, agent unloaded"
                )
            }
            Ok(r) => eprintln!("warning: node {node} still has tracing state: {r:?}"),
            Err(e) => eprintln!("warning: could not check node {node} after detaching: {e}"),
        }
    }
}

fn request(opts: &CaptureOpts, target: Target) -> Result<Request, Failure> {
    Ok(Request {
        target,
        spec: opts.spec()?,
        session: opts.session.clone(),
        duration: opts.for_duration()?,
        tls: TlsChoice {
            force: opts.tls,
            insecure_plaintext: opts.insecure_plaintext,
        },
        actor: Actor::Local,
        stop_reason: "stopped by Ctrl-C".into(),
    })
}

fn go(
    home: &Path,
    req: &Request,
    opts: &CaptureOpts,
) -> Result<elixirscope_recorder::Outcome, Failure> {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    let metrics_stop = Arc::new(AtomicBool::new(false));
    if let Some(addr) = opts.metrics_listen {
        elixirscope_metrics::set_function_limit(opts.metrics_functions);
        let bound = elixirscope_metrics::serve::spawn(addr, metrics_stop.clone())?;
        eprintln!("metrics for Prometheus on http://{bound}/metrics");
    }
    let otlp = match (&opts.otlp_endpoint, &opts.otlp_preset) {
        (None, None) => None,
        (url, preset) => {
            let (endpoint, delta_metrics) = crate::export::endpoint(
                url.as_deref(),
                &opts.otlp_protocol,
                preset.as_deref(),
                &opts.otlp_headers,
            )?;
            let options = ExportOptions {
                metrics: true,
                delta_metrics,
                ..Default::default()
            };
            Some((endpoint, options))
        }
    };
    let terminal = Terminal {
        home: home.to_owned(),
        otlp,
        stream: Mutex::new(None),
    };
    let outcome = elixirscope_recorder::record(home, req, &INTERRUPTED, &terminal);
    metrics_stop.store(true, Ordering::SeqCst);
    let stream = terminal
        .stream
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(live) = stream {
        match live.finish() {
            Ok(s) => eprintln!(
                "streamed {} spans in {} batches, {} metrics and {} log records to {} ({} retries, {} spans dropped)",
                s.spans, s.batches, s.metrics, s.logs, s.endpoint, s.retries, s.dropped_spans
            ),
            Err(e) => eprintln!("warning: the OTLP stream failed: {e}"),
        }
    }
    let outcome = outcome?;
    summary::print_after_recording(&outcome.dir)?;
    Ok(outcome)
}

/// `elixirscope record NODE`.
pub fn record(
    home: &Path,
    node: &str,
    opts: &CaptureOpts,
    cookie_flag: Option<&str>,
) -> Result<u8, Failure> {
    let mut req = request(opts, Target::Command(Vec::new()))?;
    req.target = Target::Node {
        name: node.to_owned(),
        cookie: cookie::resolve(cookie_flag)?,
    };
    go(home, &req, opts)?;
    Ok(0)
}

/// `elixirscope run -- COMMAND...`.
pub fn run(home: &Path, opts: &CaptureOpts, command: &[String]) -> Result<u8, Failure> {
    let req = request(opts, Target::Command(command.to_vec()))?;
    let outcome = go(home, &req, opts)?;
    let code = outcome.exit_code.unwrap_or(0);
    if code != 0 {
        eprintln!("the program exited with status {code}");
    }
    Ok(code.clamp(0, 255) as u8)
}
