//! One session being recorded: its directory, ingestor and ingest listener.

use crate::{Actor, Observer, Progress, RecordError, TlsChoice};
use elixirscope_capture::nif;
use elixirscope_capture::CaptureSpec;
use elixirscope_ingest::Ingestor;
use elixirscope_store::audit;
use elixirscope_store::session::{create_session, prune, Retention, SessionMeta, SessionStatus};
use elixirscope_store::SessionWriter;
use elixirscope_term::Term;
use elixirscope_transport::server::{AgentHandle, ServerEvent};
use elixirscope_transport::tls::needs_tls;
use elixirscope_transport::{CaptureTls, IngestServer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session being recorded and its ingest listener.
pub(crate) struct Recording {
    home: PathBuf,
    actor: Actor,
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
    pub(crate) ingestor: Arc<Mutex<Ingestor>>,
    pub(crate) events: Receiver<ServerEvent>,
    pub(crate) agents: Arc<Mutex<HashMap<String, AgentHandle>>>,
    addr: SocketAddr,
    token: String,
    /// The collector certificate the agent pins (TLS), if any.
    cert: Option<Vec<u8>>,
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64
}

impl Recording {
    /// Creates the session (audited), and listens for the agent on `bind`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        home: &Path,
        actor: &Actor,
        name: &str,
        mode: &str,
        target: &str,
        spec: &CaptureSpec,
        bind: IpAddr,
        tls: TlsChoice,
        obs: &dyn Observer,
    ) -> Result<Recording, RecordError> {
        // TLS on anything but loopback, unless plaintext is explicitly forced.
        let mut tls_wanted = tls.force || needs_tls(bind);
        if needs_tls(bind) && tls.insecure_plaintext {
            obs.notice(&format!(
                "WARNING: the agent's events will cross the network to {bind} in PLAINTEXT \
                 (--insecure-plaintext); anyone on the path can read them"
            ));
            tls_wanted = tls.force;
        }
        let tls = if tls_wanted {
            Some(CaptureTls::generate(&bind.to_string())?)
        } else {
            None
        };
        let pruned = prune(home, Retention::default(), name)?;
        if !pruned.is_empty() {
            obs.notice(&format!(
                "removed {} old session(s) to stay within retention limits",
                pruned.len()
            ));
        }
        let meta = SessionMeta::new(
            name,
            mode,
            target,
            serde_json::to_value(spec).unwrap_or_default(),
        );
        let dir = create_session(home, &meta)?;
        // Every capture is audited before it starts; no audit entry, no capture.
        actor.audit(
            home,
            "capture_start",
            name,
            serde_json::json!({
                "mode": mode, "target": target, "capture": meta.capture,
                "transport": if tls.is_some() { "tls" } else { "plaintext" },
                "listen": bind.to_string(),
            }),
        )?;
        if !spec.redact.enabled {
            actor.audit(
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
        .map_err(|e| RecordError(format!("cannot listen for the agent on {bind}: {e}")))?;
        let addr = server.local_addr()?;
        let agents = server.agents();
        server.spawn();
        Ok(Recording {
            home: home.to_owned(),
            actor: actor.clone(),
            dir,
            name: name.to_owned(),
            ingestor,
            events,
            agents,
            addr,
            token,
            cert: tls.map(|t| t.cert_der),
        })
    }

    /// The agent's configuration for this recording, with the tracer chosen
    /// for the node.
    pub(crate) fn config(&self, spec: &CaptureSpec, run_mode: bool, tracer: &nif::Choice) -> Term {
        let mut config = spec.agent_config(
            &self.addr.ip().to_string(),
            self.addr.port(),
            &self.token,
            run_mode,
            self.cert.as_deref(),
        );
        if let Term::Map(entries) = &mut config {
            match tracer {
                nif::Choice::Nif(path) => entries.push((Term::atom("nif"), Term::string(path))),
                nif::Choice::Process(why) => {
                    entries.push((Term::atom("nif_note"), Term::string(why)))
                }
            }
        }
        config
    }

    /// Marks the session failed with `reason` and returns the error.
    pub(crate) fn fail(&self, reason: String) -> RecordError {
        let mut ing = self.ingestor.lock().expect("ingestor");
        ing.meta_mut().stop_reason = Some(reason.clone());
        let _ = ing.finish(SessionStatus::Failed, now_ns());
        let _ = self.actor.audit(
            &self.home,
            "capture_failed",
            &self.name,
            serde_json::json!({ "reason": reason }),
        );
        RecordError(reason)
    }

    /// Renews the agents' lease and reports progress.
    pub(crate) fn tick(&self, started: Instant, obs: &dyn Observer) {
        for a in self.agents.lock().expect("agents").values() {
            // Silence would make the agent stop tracing and unload itself.
            let _ = a.lease();
        }
        let ing = self.ingestor.lock().expect("ingestor");
        let m = ing.meta();
        let agents = ing
            .statuses()
            .values()
            .map(|status| {
                let get = |k: &str| {
                    status
                        .map_get(&Term::atom(k))
                        .and_then(Term::as_i64)
                        .unwrap_or(0)
                };
                crate::AgentStatus {
                    backlog: get("backlog"),
                    tracer_memory: get("tracer_memory"),
                    node_memory: get("node_memory"),
                    run_queue: get("run_queue"),
                }
            })
            .collect();
        obs.progress(&Progress {
            session: m.name.clone(),
            events: ing.total_events(),
            dropped: m.dropped,
            elapsed: started.elapsed(),
            agents,
        });
    }

    /// The reason of the newest trip, if the capture tripped.
    pub(crate) fn trip(&self) -> Option<String> {
        let ing = self.ingestor.lock().expect("ingestor");
        ing.meta()
            .trips
            .last()
            .map(|t| format!("{}: {}", t.reason, t.detail))
    }

    /// Asks every connected agent to stop tracing.
    pub(crate) fn stop_agents(&self) {
        for a in self.agents.lock().expect("agents").values() {
            let _ = a.stop();
        }
    }

    /// Waits for the agent's goodbye (or its connection closing) after a stop.
    pub(crate) fn wait_disconnected(&self, timeout: Duration) {
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

    /// Writes the final metadata and audits the end of the capture.
    pub(crate) fn finish(
        &self,
        status: SessionStatus,
        reason: &str,
    ) -> Result<SessionStatus, RecordError> {
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
        self.actor.audit(
            &self.home,
            action,
            &m.name,
            serde_json::json!({
                "reason": m.stop_reason, "trips": m.trips, "events": m.events,
                "dropped": m.dropped, "redactions": m.redactions,
            }),
        )?;
        Ok(status)
    }
}

impl Actor {
    /// Appends an audit entry as this actor.
    pub(crate) fn audit(
        &self,
        home: &Path,
        action: &str,
        subject: &str,
        details: serde_json::Value,
    ) -> Result<(), RecordError> {
        match self {
            Actor::Local => audit::record(home, action, subject, details)?,
            Actor::Remote { who, from } => {
                audit::append(home, who, from, action, subject, details)?
            }
        };
        Ok(())
    }
}
