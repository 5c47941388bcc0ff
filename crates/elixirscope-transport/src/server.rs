//! The ingest listener: accepts agent connections and feeds their batches to a sink.
//!
//! One thread per agent connection. A connection must open with a hello carrying
//! the capture's token; then each batch is checked for its sequence number, given
//! to the [`Sink`] (which stores it), and acknowledged. Anything malformed ends
//! the connection with a reason reported as a [`ServerEvent`]; it never panics.

use crate::frame::{read_frame, read_frame_limited, write_frame, MAX_HELLO};
use crate::protocol::{self, decode_agent_frame, AgentFrame, Hello};
use elixirscope_term::view::Elements;
use elixirscope_term::Term;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A failure of the sink; the connection is ended and the agent told to stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where batches go. Implementations must have stored a batch durably (written
/// to the OS) before `batch` returns: the agent is acknowledged right after.
pub trait Sink: Send {
    fn hello(&mut self, hello: &Hello, peer: SocketAddr) -> Result<(), SinkError>;
    fn batch(
        &mut self,
        node: &str,
        seq: u64,
        dropped_total: u64,
        events: Elements<'_>,
    ) -> Result<(), SinkError>;
    fn bye(&mut self, node: &str, stats: &Term);
    /// A protocol problem worth recording (sequence gap, malformed frame ...).
    fn problem(&mut self, node: &str, what: &str);
    /// The agent's budget use (events, backlog, memory ...); not stored.
    fn status(&mut self, _node: &str, _status: &Term) {}
}

/// What happened to agent connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    Connected {
        node: String,
    },
    /// `clean` is true when the agent said goodbye before closing.
    Disconnected {
        node: String,
        reason: String,
        clean: bool,
    },
    Rejected {
        peer: String,
        reason: String,
    },
}

/// A way to talk back to a connected agent.
#[derive(Clone)]
pub struct AgentHandle {
    stream: Arc<Mutex<TcpStream>>,
}

impl AgentHandle {
    /// Renews the agent's lease (it stops itself when the collector goes silent).
    pub fn lease(&self) -> io::Result<()> {
        self.send(&protocol::lease())
    }

    /// Asks the agent to stop tracing, flush and say goodbye.
    pub fn stop(&self) -> io::Result<()> {
        let mut s = self.stream.lock().expect("agent stream");
        write_frame(&mut *s, &protocol::stop())
    }

    fn send(&self, payload: &[u8]) -> io::Result<()> {
        let mut s = self.stream.lock().expect("agent stream");
        write_frame(&mut *s, payload)
    }
}

/// The ingest listener.
pub struct IngestServer<S: Sink + 'static> {
    listener: TcpListener,
    token: Vec<u8>,
    sink: Arc<Mutex<S>>,
    agents: Arc<Mutex<HashMap<String, AgentHandle>>>,
    events: mpsc::Sender<ServerEvent>,
}

impl<S: Sink + 'static> IngestServer<S> {
    /// Binds the listener; `addr` port 0 picks a free port.
    pub fn bind(
        addr: SocketAddr,
        token: &str,
        sink: Arc<Mutex<S>>,
    ) -> io::Result<(IngestServer<S>, mpsc::Receiver<ServerEvent>)> {
        let listener = TcpListener::bind(addr)?;
        let (tx, rx) = mpsc::channel();
        Ok((
            IngestServer {
                listener,
                token: token.as_bytes().to_vec(),
                sink,
                agents: Arc::new(Mutex::new(HashMap::new())),
                events: tx,
            },
            rx,
        ))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Handles to connected agents, by node name.
    pub fn agents(&self) -> Arc<Mutex<HashMap<String, AgentHandle>>> {
        self.agents.clone()
    }

    /// Accepts connections on a background thread.
    pub fn spawn(self) {
        std::thread::Builder::new()
            .name("ingest-accept".into())
            .spawn(move || {
                for conn in self.listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    let sink = self.sink.clone();
                    let agents = self.agents.clone();
                    let events = self.events.clone();
                    let token = self.token.clone();
                    let _ = std::thread::Builder::new()
                        .name("ingest-conn".into())
                        .spawn(move || serve(stream, &token, &sink, &agents, &events));
                }
            })
            .expect("spawn ingest accept thread");
    }
}

fn serve<S: Sink>(
    stream: TcpStream,
    token: &[u8],
    sink: &Arc<Mutex<S>>,
    agents: &Arc<Mutex<HashMap<String, AgentHandle>>>,
    events: &mpsc::Sender<ServerEvent>,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let handle = AgentHandle {
        stream: Arc::new(Mutex::new(write_half)),
    };
    // A peer must say hello, small and soon, before it may send anything big.
    let _ = stream.set_read_timeout(Some(HELLO_TIMEOUT));
    let mut reader = io::BufReader::with_capacity(1 << 20, stream);
    let mut buf = Vec::new();

    // Hello first.
    let hello = match read_frame_limited(&mut reader, &mut buf, MAX_HELLO) {
        Ok(true) => match decode_agent_frame(&buf) {
            Ok(AgentFrame::Hello(h)) => h,
            Ok(_) => return reject(&handle, events, &peer, "the first frame must be a hello"),
            Err(e) => return reject(&handle, events, &peer, &format!("malformed hello: {e}")),
        },
        Ok(false) => return,
        Err(e) => return reject(&handle, events, &peer, &format!("bad frame: {e}")),
    };
    if hello.version != protocol::VERSION {
        return reject(
            &handle,
            events,
            &peer,
            &format!("unsupported protocol version {}", hello.version),
        );
    }
    if hello.token != token {
        return reject(&handle, events, &peer, "wrong capture token");
    }
    let node = hello.node.clone();
    let addr = reader
        .get_ref()
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    if let Err(e) = sink.lock().expect("sink").hello(&hello, addr) {
        return reject(&handle, events, &peer, &e.0);
    }
    if handle.send(&protocol::welcome()).is_err() {
        return;
    }
    let _ = reader.get_ref().set_read_timeout(None);
    agents
        .lock()
        .expect("agents")
        .insert(node.clone(), handle.clone());
    let _ = events.send(ServerEvent::Connected { node: node.clone() });

    let mut expected_seq = 1u64;
    let mut clean = false;
    let reason = loop {
        match read_frame(&mut reader, &mut buf) {
            Ok(true) => {}
            Ok(false) => break "connection closed".to_owned(),
            Err(e) => break format!("connection error: {e}"),
        }
        let frame = match decode_agent_frame(&buf) {
            Ok(f) => f,
            Err(e) => {
                let what = format!("malformed frame from the agent: {e}");
                sink.lock().expect("sink").problem(&node, &what);
                let _ = handle.stop();
                break what;
            }
        };
        match frame {
            AgentFrame::Batch {
                seq,
                dropped_total,
                events: evs,
            } => {
                if seq != expected_seq {
                    sink.lock().expect("sink").problem(
                        &node,
                        &format!(
                            "batch sequence jumped from {} to {seq}",
                            expected_seq.saturating_sub(1)
                        ),
                    );
                }
                expected_seq = seq + 1;
                let stored = sink
                    .lock()
                    .expect("sink")
                    .batch(&node, seq, dropped_total, evs);
                if let Err(e) = stored {
                    let _ = handle.stop();
                    break format!("could not store events: {e}");
                }
                if handle.send(&protocol::ack(seq)).is_err() {
                    break "could not acknowledge".to_owned();
                }
            }
            AgentFrame::Bye { seq, stats } => {
                sink.lock().expect("sink").bye(&node, &stats);
                clean = true;
                let _ = handle.send(&protocol::ack(seq));
            }
            AgentFrame::Status(status) => sink.lock().expect("sink").status(&node, &status),
            AgentFrame::Hello(_) => {
                sink.lock()
                    .expect("sink")
                    .problem(&node, "second hello on one connection");
            }
        }
    };
    agents.lock().expect("agents").remove(&node);
    let _ = events.send(ServerEvent::Disconnected {
        node,
        reason,
        clean,
    });
}

fn reject(handle: &AgentHandle, events: &mpsc::Sender<ServerEvent>, peer: &str, reason: &str) {
    let _ = handle.send(&protocol::reject(reason));
    let _ = events.send(ServerEvent::Rejected {
        peer: peer.to_owned(),
        reason: reason.to_owned(),
    });
}
