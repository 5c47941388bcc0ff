//! Recording a session end to end, for the command line and the HTTP API alike.
//!
//! [`record`] attaches to a running node, or starts a program with distribution
//! on; creates the session (audited); listens for the agent (TLS beyond
//! loopback); loads and starts the agent; waits for a reason to stop (the stop
//! flag, a duration, a trip, the program or node ending); stops capture so
//! every traced event is flushed; unloads the agent; checks the node was left
//! clean; and writes the final metadata. What happens along the way is told to
//! an [`Observer`].

mod recording;

use elixirscope_capture::agent::{self, CleanReport};
use elixirscope_capture::nif;
use elixirscope_capture::{cookie, run as launcher, CaptureSpec, Cookie, NodeConnection};
use elixirscope_store::session::{self, SessionStatus};
use elixirscope_term::Term;
use elixirscope_transport::server::ServerEvent;
use recording::Recording;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why recording failed, in one line that says what to do.
#[derive(Debug)]
pub struct RecordError(pub String);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

macro_rules! from_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for RecordError {
            fn from(e: $t) -> RecordError {
                RecordError(e.to_string())
            }
        }
    )*};
}

from_errors!(
    elixirscope_capture::CaptureError,
    elixirscope_store::StoreError,
    elixirscope_transport::tls::TlsError,
    std::io::Error
);

/// What to record.
#[derive(Debug, Clone)]
pub enum Target {
    /// A running node, attached to as a hidden node.
    Node { name: String, cookie: Cookie },
    /// A program to start with distribution on.
    Command(Vec<String>),
}

/// TLS between agent and recorder: always beyond loopback unless plaintext is forced.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsChoice {
    pub force: bool,
    pub insecure_plaintext: bool,
}

/// Who asked for the recording, for the audit log.
#[derive(Debug, Clone, Default)]
pub enum Actor {
    /// The local user running the command.
    #[default]
    Local,
    /// A remote caller (an API token's name and its address).
    Remote { who: String, from: String },
}

/// A recording request.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    pub spec: CaptureSpec,
    /// Session name; derived from the target and time when `None`.
    pub session: Option<String>,
    pub duration: Option<Duration>,
    pub tls: TlsChoice,
    pub actor: Actor,
    /// How the session explains a stop requested through the stop flag.
    pub stop_reason: String,
}

/// Budget use reported by one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStatus {
    pub backlog: i64,
    pub tracer_memory: i64,
    pub node_memory: i64,
    pub run_queue: i64,
}

/// Progress of a recording, about once a second.
#[derive(Debug, Clone)]
pub struct Progress {
    pub session: String,
    pub events: u64,
    pub dropped: u64,
    pub elapsed: Duration,
    pub agents: Vec<AgentStatus>,
}

/// Told what happens while recording. Every method has a do-nothing default.
pub trait Observer: Sync {
    /// Capture is running.
    fn started(&self, _session: &str, _target: &str) {}
    fn progress(&self, _progress: &Progress) {}
    /// Something worth a line of its own (a warning, a trip while a program runs on).
    fn notice(&self, _text: &str) {}
    /// What the node looks like after the agent left.
    fn node_checked(&self, _node: &str, _report: Result<&CleanReport, String>) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// How a recording ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub session: String,
    pub dir: PathBuf,
    pub status: SessionStatus,
    pub reason: String,
    /// The program's exit status, for a started program.
    pub exit_code: Option<i32>,
}

/// Records `req` until `stop` is set or another reason to stop comes up.
pub fn record(
    home: &Path,
    req: &Request,
    stop: &AtomicBool,
    obs: &dyn Observer,
) -> Result<Outcome, RecordError> {
    match &req.target {
        Target::Node { name, cookie } => attach(home, req, name, cookie, stop, obs),
        Target::Command(cmd) => run(home, req, cmd, stop, obs),
    }
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

/// A free session name from `base` and the time (or the requested one).
pub fn session_name(home: &Path, requested: Option<&str>, base: &str) -> String {
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

/// A short name for a command's session: the script's name, else the program's.
pub fn run_base_name(command: &[String]) -> String {
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

/// Why the waiting ended.
enum Stop {
    Requested,
    Duration,
    Tripped(String),
    AgentGone(String),
    NodeGone,
    ProgramExited(std::process::ExitStatus),
}

impl Stop {
    fn reason(&self, requested: &str) -> String {
        match self {
            Stop::Requested => requested.to_owned(),
            Stop::Duration => "duration reached".into(),
            Stop::Tripped(r) => format!("capture tripped: {r}"),
            Stop::AgentGone(r) => format!("agent connection ended: {r}"),
            Stop::NodeGone => "lost the connection to the node".into(),
            Stop::ProgramExited(s) => format!("program exited ({s})"),
        }
    }
}

fn wait(
    rec: &Recording,
    conn: &NodeConnection,
    req: &Request,
    stop: &AtomicBool,
    mut child: Option<&mut std::process::Child>,
    obs: &dyn Observer,
) -> Stop {
    let started = Instant::now();
    let mut last_tick = Instant::now();
    let mut trip_noted = false;
    loop {
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return Stop::ProgramExited(status);
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Stop::Requested;
        }
        if req.duration.is_some_and(|d| started.elapsed() >= d) {
            return Stop::Duration;
        }
        if let Some(t) = rec.trip() {
            if child.is_none() {
                return Stop::Tripped(t);
            }
            if !trip_noted {
                obs.notice(&format!(
                    "capture tripped ({t}); the program keeps running untraced"
                ));
                // Make sure the agent stops tracing even if the collector tripped it.
                rec.stop_agents();
                trip_noted = true;
            }
        }
        match rec.events.recv_timeout(Duration::from_millis(100)) {
            Ok(ServerEvent::Disconnected { reason, .. }) if child.is_none() => {
                return Stop::AgentGone(reason)
            }
            Ok(ServerEvent::Rejected { reason, .. }) => {
                obs.notice(&format!("rejected a connection: {reason}"))
            }
            _ => {}
        }
        if child.is_none() && conn.is_closed() {
            return Stop::NodeGone;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            rec.tick(started, obs);
            last_tick = Instant::now();
        }
    }
}

fn check_clean(conn: &NodeConnection, obs: &dyn Observer) {
    let report = agent::clean_report(conn);
    obs.node_checked(conn.peer(), report.as_ref().map_err(|e| e.to_string()));
}

fn attach(
    home: &Path,
    req: &Request,
    node: &str,
    cookie: &Cookie,
    stop: &AtomicBool,
    obs: &dyn Observer,
) -> Result<Outcome, RecordError> {
    let conn = NodeConnection::connect(node, cookie)?;
    agent::check_node(&conn)?;
    let peer = conn.peer().to_owned();
    req.actor.audit(
        home,
        "attach",
        &peer,
        serde_json::json!({ "cookie_from": cookie.source, "as": conn.local_name() }),
    )?;
    let name = session_name(
        home,
        req.session.as_deref(),
        peer.split('@').next().unwrap_or("node"),
    );
    let bind = conn.local_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let rec = Recording::start(
        home, &req.actor, &name, "record", &peer, &req.spec, bind, req.tls, obs,
    )?;
    if let Err(e) = agent::load(&conn) {
        return Err(rec.fail(e.to_string()));
    }
    let tracer = match nif::choose(&conn, req.spec.tracer) {
        Ok(t) => t,
        Err(e) => return Err(rec.fail(e.to_string())),
    };
    if let Err(e) = agent::start(&conn, rec.config(&req.spec, false, &tracer)) {
        let _ = agent::unload(&conn);
        return Err(rec.fail(e.to_string()));
    }
    obs.started(&name, &peer);
    let why = wait(&rec, &conn, req, stop, None, obs);
    if !matches!(why, Stop::NodeGone | Stop::AgentGone(_)) {
        if let Err(e) = agent::stop(&conn, Duration::from_secs(10)) {
            obs.notice(&format!("warning: stopping the agent: {e}"));
        }
        rec.wait_disconnected(Duration::from_secs(5));
        check_clean(&conn, obs);
    }
    let status = match why {
        Stop::NodeGone | Stop::AgentGone(_) => SessionStatus::Interrupted,
        _ => SessionStatus::Complete,
    };
    let reason = why.reason(&req.stop_reason);
    let status = rec.finish(status, &reason)?;
    Ok(Outcome {
        session: name,
        dir: rec.dir.clone(),
        status,
        reason,
        exit_code: None,
    })
}

fn run(
    home: &Path,
    req: &Request,
    command: &[String],
    stop: &AtomicBool,
    obs: &dyn Observer,
) -> Result<Outcome, RecordError> {
    let cookie = cookie::random();
    let name = session_name(home, req.session.as_deref(), &run_base_name(command));
    let target = command.join(" ");
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let rec = Recording::start(
        home, &req.actor, &name, "run", &target, &req.spec, localhost, req.tls, obs,
    )?;
    let mut launched = launcher::launch(command, &cookie).map_err(|e| rec.fail(e.to_string()))?;
    let attach = |launched: &mut launcher::Launched| -> Result<NodeConnection, RecordError> {
        launcher::wait_for_node(launched, Duration::from_secs(30))?;
        let conn = NodeConnection::connect(&launched.node, &cookie)?;
        agent::check_node(&conn)?;
        agent::load(&conn)?;
        let tracer = nif::choose(&conn, req.spec.tracer)?;
        agent::start(&conn, rec.config(&req.spec, true, &tracer))?;
        Ok(conn)
    };
    let conn = match attach(&mut launched) {
        Ok(c) => c,
        Err(e) => {
            let _ = launched.child.kill();
            let _ = launched.child.wait();
            return Err(rec.fail(e.0));
        }
    };
    // Release the program's boot hook: capture is running.
    conn.send_to_name(launcher::BOOT_NAME, &Term::Tuple(vec![Term::atom("es_go")]))?;
    obs.started(&name, &target);
    let why = wait(&rec, &conn, req, stop, Some(&mut launched.child), obs);
    let exit_code = match &why {
        Stop::ProgramExited(status) => {
            rec.wait_disconnected(Duration::from_secs(3));
            status.code().unwrap_or(1)
        }
        _ => {
            // Stop capture first so everything is flushed, then end the program.
            if let Err(e) = agent::stop(&conn, Duration::from_secs(10)) {
                obs.notice(&format!("warning: stopping the agent: {e}"));
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
    let reason = why.reason(&req.stop_reason);
    let status = rec.finish(SessionStatus::Complete, &reason)?;
    Ok(Outcome {
        session: name,
        dir: rec.dir.clone(),
        status,
        reason,
        exit_code: Some(exit_code),
    })
}
