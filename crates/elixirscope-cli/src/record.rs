//! Recording: `record` attaches to a running node, `run` starts a program first.
//!
//! Both create a session, start the ingest listener (agents connect back to it),
//! load the agent over the distribution connection, start capture, wait for a
//! reason to stop (Ctrl-C, `--for`, a budget trip, the program or node ending),
//! stop capture so every traced event is flushed, unload the agent, check the
//! node was left clean, and print a summary.

use crate::capture_opts::CaptureOpts;
use crate::summary;
use crate::Failure;
use elixirscope_capture::{agent, cookie, run as launcher, CaptureSpec, Cookie, NodeConnection};
use elixirscope_ingest::Ingestor;
use elixirscope_store::audit;
use elixirscope_store::session::{
    self, create_session, prune, Retention, SessionMeta, SessionStatus,
};
use elixirscope_store::SessionWriter;
use elixirscope_term::Term;
use elixirscope_transport::server::{AgentHandle, ServerEvent};
use elixirscope_transport::tls::needs_tls;
use elixirscope_transport::{CaptureTls, IngestServer};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn install_ctrl_c() {
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
}

/// A session being recorded and its ingest listener.
struct Recording {
    home: PathBuf,
    dir: PathBuf,
    ingestor: Arc<Mutex<Ingestor>>,
    events: Receiver<ServerEvent>,
    agents: Arc<Mutex<HashMap<String, AgentHandle>>>,
    addr: SocketAddr,
    token: String,
    /// The collector certificate the agent pins (TLS), if any.
    cert: Option<Vec<u8>>,
}

fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    session::rfc3339_from_unix(now)
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_owned()
}

fn session_name(home: &Path, requested: Option<&str>, base: &str) -> String {
    if let Some(n) = requested {
        return n.to_owned();
    }
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = format!("{}-{}", clean.trim_matches('-'), timestamp());
    let mut name = stem.clone();
    let mut n = 2;
    while session::sessions_dir(home).join(&name).exists() {
        name = format!("{stem}-{n}");
        n += 1;
    }
    name
}

fn start_recording(
    home: &Path,
    name: &str,
    mode: &str,
    target: &str,
    spec: &CaptureSpec,
    bind: IpAddr,
    opts: &CaptureOpts,
) -> Result<Recording, Failure> {
    // TLS on anything but loopback, unless plaintext is explicitly forced.
    let mut tls_wanted = opts.tls || needs_tls(bind);
    if needs_tls(bind) && opts.insecure_plaintext {
        eprintln!(
            "WARNING: the agent's events will cross the network to {bind} in PLAINTEXT \
             (--insecure-plaintext); anyone on the path can read them"
        );
        tls_wanted = opts.tls;
    }
    let tls = if tls_wanted {
        Some(CaptureTls::generate(&bind.to_string()).map_err(|e| Failure::from(e.to_string()))?)
    } else {
        None
    };
    let pruned = prune(home, Retention::default(), name)?;
    if !pruned.is_empty() {
        eprintln!(
            "removed {} old session(s) to stay within retention limits",
            pruned.len()
        );
    }
    let meta = SessionMeta::new(
        name,
        mode,
        target,
        serde_json::to_value(spec).unwrap_or_default(),
    );
    let dir = create_session(home, &meta)?;
    // Every capture is audited before it starts; no audit entry, no capture.
    audit::record(
        home,
        "capture_start",
        name,
        serde_json::json!({
            "mode": mode, "target": target, "capture": meta.capture,
            "transport": if tls.is_some() { "tls" } else { "plaintext" }, "listen": bind.to_string(),
        }),
    )?;
    if !spec.redact.enabled {
        audit::record(
            home,
            "redaction_off",
            name,
            serde_json::json!({ "target": target }),
        )?;
    }
    let writer = SessionWriter::create(&dir)?;
    let ingestor = Arc::new(Mutex::new(Ingestor::new(dir.clone(), meta, writer)));
    let token: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tls_config = tls.as_ref().map(|t| t.config.clone());
    let (server, events) = IngestServer::bind(
        SocketAddr::new(bind, 0),
        &token,
        tls_config,
        ingestor.clone(),
    )
    .map_err(|e| Failure::from(format!("cannot listen for the agent on {bind}: {e}")))?;
    let addr = server.local_addr()?;
    let agents = server.agents();
    server.spawn();
    Ok(Recording {
        home: home.to_owned(),
        dir,
        ingestor,
        events,
        agents,
        addr,
        token,
        cert: tls.map(|t| t.cert_der),
    })
}

impl Recording {
    fn config(&self, spec: &CaptureSpec, run_mode: bool) -> Term {
        spec.agent_config(
            &self.addr.ip().to_string(),
            self.addr.port(),
            &self.token,
            run_mode,
            self.cert.as_deref(),
        )
    }

    /// Marks the session failed with `reason` and returns the failure.
    fn fail(&self, reason: String) -> Failure {
        let mut ing = self.ingestor.lock().expect("ingestor");
        ing.meta_mut().stop_reason = Some(reason.clone());
        let now = now_ns();
        let _ = ing.finish(SessionStatus::Failed, now);
        let _ = audit::record(
            &self.home,
            "capture_failed",
            &ing.meta().name,
            serde_json::json!({ "reason": reason }),
        );
        Failure::from(reason)
    }

    fn progress(&self, started: Instant) {
        let ing = self.ingestor.lock().expect("ingestor");
        // Renew the agents' lease: silence would make them stop and unload.
        for a in self.agents.lock().expect("agents").values() {
            let _ = a.lease();
        }
        if !std::io::stderr().is_terminal() {
            return;
        }
        let m = ing.meta();
        let mut line = format!(
            "\rrecording {}: {} events stored, {} dropped, {:.0}s",
            m.name,
            ing.total_events(),
            m.dropped,
            started.elapsed().as_secs_f64()
        );
        for status in ing.statuses().values() {
            let get = |k: &str| {
                status
                    .map_get(&Term::atom(k))
                    .and_then(Term::as_i64)
                    .unwrap_or(0)
            };
            line.push_str(&format!(
                " | backlog {}, tracer {} KB, node {} MB, run queue {}",
                get("backlog"),
                get("tracer_memory") / 1024,
                get("node_memory") >> 20,
                get("run_queue")
            ));
        }
        eprint!("{line} (Ctrl-C to stop)   ");
    }

    /// Waits for the agent's goodbye (or its connection closing) after a stop.
    fn wait_disconnected(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.events.recv_timeout(Duration::from_millis(50)) {
                Ok(ServerEvent::Disconnected { .. }) => return,
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                Err(_) => {
                    if self.agents.lock().expect("agents").is_empty() {
                        return;
                    }
                }
            }
        }
    }

    fn finish(&self, status: SessionStatus, reason: &str) -> Result<(), Failure> {
        let mut ing = self.ingestor.lock().expect("ingestor");
        ing.meta_mut()
            .stop_reason
            .get_or_insert_with(|| reason.to_owned());
        let status = if ing.tripped() {
            SessionStatus::Tripped
        } else {
            status
        };
        ing.finish(status, now_ns())?;
        let m = ing.meta();
        let action = if status == SessionStatus::Tripped {
            "capture_trip"
        } else {
            "capture_stop"
        };
        audit::record(
            &self.home,
            action,
            &m.name,
            serde_json::json!({
                "reason": m.stop_reason, "trips": m.trips, "events": m.events,
                "dropped": m.dropped, "redactions": m.redactions,
            }),
        )?;
        Ok(())
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64
}

/// Why a recording loop ended.
enum Stop {
    Interrupted,
    Duration,
    Tripped(String),
    AgentGone(String),
    NodeGone,
    ProgramExited(std::process::ExitStatus),
}

impl Stop {
    fn reason(&self) -> String {
        match self {
            Stop::Interrupted => "stopped by Ctrl-C".into(),
            Stop::Duration => "--for duration reached".into(),
            Stop::Tripped(r) => format!("capture tripped: {r}"),
            Stop::AgentGone(r) => format!("agent connection ended: {r}"),
            Stop::NodeGone => "lost the connection to the node".into(),
            Stop::ProgramExited(s) => format!("program exited ({s})"),
        }
    }
}

fn wait_loop(
    rec: &Recording,
    conn: &NodeConnection,
    until: Option<Duration>,
    mut child: Option<&mut std::process::Child>,
) -> Stop {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut trip_noted = false;
    loop {
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return Stop::ProgramExited(status);
            }
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Stop::Interrupted;
        }
        if until.is_some_and(|d| started.elapsed() >= d) {
            return Stop::Duration;
        }
        let trip = {
            let ing = rec.ingestor.lock().expect("ingestor");
            ing.meta()
                .trips
                .last()
                .map(|t| format!("{}: {}", t.reason, t.detail))
        };
        if let Some(t) = trip {
            if child.is_none() {
                return Stop::Tripped(t);
            }
            if !trip_noted {
                eprintln!("\ncapture tripped ({t}); the program keeps running untraced");
                // Make sure the agent stops tracing even if the collector tripped it.
                for a in rec.agents.lock().expect("agents").values() {
                    let _ = a.stop();
                }
                trip_noted = true;
            }
        }
        match rec.events.recv_timeout(Duration::from_millis(100)) {
            Ok(ServerEvent::Disconnected { reason, .. }) if child.is_none() => {
                return Stop::AgentGone(reason)
            }
            Ok(ServerEvent::Rejected { reason, .. }) => {
                eprintln!("\nrejected a connection: {reason}")
            }
            _ => {}
        }
        if child.is_none() && conn.is_closed() {
            return Stop::NodeGone;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            rec.progress(started);
            last_progress = Instant::now();
        }
    }
}

fn report_clean(conn: &NodeConnection) {
    match agent::clean_report(conn) {
        Ok(r) if r.is_clean() => eprintln!(
            "node {} left as found: no trace flags, no trace patterns, agent unloaded",
            conn.peer()
        ),
        Ok(r) => eprintln!(
            "warning: node {} still has tracing state: {r:?}",
            conn.peer()
        ),
        Err(e) => eprintln!(
            "warning: could not check node {} after detaching: {e}",
            conn.peer()
        ),
    }
}

/// `elixirscope record NODE`.
pub fn record(
    home: &Path,
    node: &str,
    opts: &CaptureOpts,
    cookie_flag: Option<&str>,
) -> Result<u8, Failure> {
    let spec = opts.spec()?;
    let until = opts.for_duration()?;
    let cookie = cookie::resolve(cookie_flag)?;
    let conn = NodeConnection::connect(node, &cookie)?;
    agent::check_node(&conn)?;
    let peer = conn.peer().to_owned();
    audit::record(
        home,
        "attach",
        &peer,
        serde_json::json!({ "cookie_from": cookie.source, "as": conn.local_name() }),
    )?;
    let name = session_name(
        home,
        opts.session.as_deref(),
        peer.split('@').next().unwrap_or("node"),
    );
    let bind = conn.local_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let rec = start_recording(home, &name, "record", &peer, &spec, bind, opts)?;
    install_ctrl_c();
    if let Err(e) = agent::load(&conn) {
        return Err(rec.fail(e.to_string()));
    }
    if let Err(e) = agent::start(&conn, rec.config(&spec, false)) {
        let _ = agent::unload(&conn);
        return Err(rec.fail(e.to_string()));
    }
    eprintln!("recording {peer} into session {name} (Ctrl-C to stop)");
    let stop = wait_loop(&rec, &conn, until, None);
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    if !matches!(stop, Stop::NodeGone | Stop::AgentGone(_)) {
        if let Err(e) = agent::stop(&conn, Duration::from_secs(10)) {
            eprintln!("warning: stopping the agent: {e}");
        }
        rec.wait_disconnected(Duration::from_secs(5));
        report_clean(&conn);
    }
    let status = match stop {
        Stop::NodeGone | Stop::AgentGone(_) => SessionStatus::Interrupted,
        _ => SessionStatus::Complete,
    };
    rec.finish(status, &stop.reason())?;
    summary::print_after_recording(&rec.dir)?;
    Ok(0)
}

fn run_base_name(command: &[String]) -> String {
    let file = command
        .iter()
        .skip(1)
        .find(|a| a.ends_with(".exs") || a.ends_with(".erl") || a.ends_with(".ex"))
        .or(command.first())
        .cloned()
        .unwrap_or_else(|| "run".into());
    Path::new(&file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or(file)
}

/// `elixirscope run -- COMMAND...`.
pub fn run(home: &Path, opts: &CaptureOpts, command: &[String]) -> Result<u8, Failure> {
    let spec = opts.spec()?;
    let until = opts.for_duration()?;
    let cookie: Cookie = cookie::random();
    let name = session_name(home, opts.session.as_deref(), &run_base_name(command));
    let rec = start_recording(
        home,
        &name,
        "run",
        &command.join(" "),
        &spec,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        opts,
    )?;
    install_ctrl_c();
    let mut launched = launcher::launch(command, &cookie).map_err(|e| rec.fail(e.to_string()))?;
    let attach = |launched: &mut launcher::Launched| -> Result<NodeConnection, Failure> {
        launcher::wait_for_node(launched, Duration::from_secs(30))?;
        let conn = NodeConnection::connect(&launched.node, &cookie)?;
        agent::check_node(&conn)?;
        agent::load(&conn)?;
        agent::start(&conn, rec.config(&spec, true))?;
        Ok(conn)
    };
    let conn = match attach(&mut launched) {
        Ok(c) => c,
        Err(f) => {
            let _ = launched.child.kill();
            let _ = launched.child.wait();
            return Err(rec.fail(f.message));
        }
    };
    // Release the program's boot hook: capture is running.
    conn.send_to_name(launcher::BOOT_NAME, &Term::Tuple(vec![Term::atom("es_go")]))?;
    eprintln!("recording `{}` into session {name}", command.join(" "));
    let stop = wait_loop(&rec, &conn, until, Some(&mut launched.child));
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let exit_code = match &stop {
        Stop::ProgramExited(status) => {
            rec.wait_disconnected(Duration::from_secs(3));
            status.code().unwrap_or(1)
        }
        _ => {
            // Stop capture first so everything is flushed, then end the program.
            if let Err(e) = agent::stop(&conn, Duration::from_secs(10)) {
                eprintln!("warning: stopping the agent: {e}");
            }
            rec.wait_disconnected(Duration::from_secs(5));
            let _ = conn.rpc("init", "stop", vec![], Duration::from_secs(5));
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Ok(Some(s)) = launched.child.try_wait() {
                    break Some(s);
                }
                if Instant::now() > deadline {
                    let _ = launched.child.kill();
                    break launched.child.wait().ok();
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            status.and_then(|s| s.code()).unwrap_or(1)
        }
    };
    rec.finish(SessionStatus::Complete, &stop.reason())?;
    summary::print_after_recording(&rec.dir)?;
    if exit_code != 0 {
        eprintln!("the program exited with status {exit_code}");
    }
    Ok(exit_code.clamp(0, 255) as u8)
}
