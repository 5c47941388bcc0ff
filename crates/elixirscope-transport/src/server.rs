//! The ingest listener: accepts agent connections and feeds their batches to a sink.
//!
//! One thread per agent connection, doing all of that connection's I/O: with
//! TLS (required beyond loopback) or plain TCP on loopback. A connection must
//! open with a hello carrying the capture's token; then each batch is checked
//! for its sequence number, given to the [`Sink`] (which stores it), and
//! acknowledged. Frames for the agent (leases, stop) are queued on its
//! [`AgentHandle`] and written between reads. Anything malformed ends the
//! connection with a reason reported as a [`ServerEvent`]; it never panics.

use crate::frame::{write_frame, FrameReader, MAX_FRAME, MAX_HELLO};
use crate::protocol::{self, decode_agent_frame, AgentFrame, Hello};
use elixirscope_term::view::Elements;
use elixirscope_term::Term;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the connection thread looks for frames to send to the agent.
const POLL: Duration = Duration::from_millis(20);

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
    outbox: mpsc::Sender<Vec<u8>>,
}

impl AgentHandle {
    /// Renews the agent's lease (it stops itself when the collector goes silent).
    pub fn lease(&self) -> io::Result<()> {
        self.send(protocol::lease())
    }

    /// Asks the agent to stop tracing, flush and say goodbye.
    pub fn stop(&self) -> io::Result<()> {
        self.send(protocol::stop())
    }

    fn send(&self, payload: Vec<u8>) -> io::Result<()> {
        self.outbox
            .send(payload)
            .map_err(|_| io::Error::new(io::ErrorKind::NotConnected, "agent connection is closed"))
    }
}

/// An agent connection, plain (loopback only) or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// The ingest listener.
pub struct IngestServer<S: Sink + 'static> {
    listener: TcpListener,
    token: Vec<u8>,
    tls: Option<Arc<ServerConfig>>,
    sink: Arc<Mutex<S>>,
    agents: Arc<Mutex<HashMap<String, AgentHandle>>>,
    events: mpsc::Sender<ServerEvent>,
}

impl<S: Sink + 'static> IngestServer<S> {
    /// Binds the listener; `addr` port 0 picks a free port. With `tls`, every
    /// connection must speak TLS with that configuration.
    pub fn bind(
        addr: SocketAddr,
        token: &str,
        tls: Option<Arc<ServerConfig>>,
        sink: Arc<Mutex<S>>,
    ) -> io::Result<(IngestServer<S>, mpsc::Receiver<ServerEvent>)> {
        let listener = TcpListener::bind(addr)?;
        let (tx, rx) = mpsc::channel();
        Ok((
            IngestServer {
                listener,
                token: token.as_bytes().to_vec(),
                tls,
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
                    let tls = self.tls.clone();
                    let _ = std::thread::Builder::new()
                        .name("ingest-conn".into())
                        .spawn(move || serve(stream, tls, &token, &sink, &agents, &events));
                }
            })
            .expect("spawn ingest accept thread");
    }
}

/// Reads one frame, waiting at most `wait`, sending queued frames meanwhile.
fn next_frame(
    conn: &mut Conn,
    reader: &mut FrameReader,
    outbox: &mpsc::Receiver<Vec<u8>>,
    limit: usize,
    wait: Option<Duration>,
) -> io::Result<Vec<u8>> {
    let started = Instant::now();
    loop {
        while let Ok(out) = outbox.try_recv() {
            write_frame(conn, &out)?;
        }
        if let Some(frame) = reader.poll(conn, limit)? {
            return Ok(frame);
        }
        if wait.is_some_and(|w| started.elapsed() > w) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no hello within 10 s",
            ));
        }
    }
}

fn serve<S: Sink>(
    stream: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    token: &[u8],
    sink: &Arc<Mutex<S>>,
    agents: &Arc<Mutex<HashMap<String, AgentHandle>>>,
    events: &mpsc::Sender<ServerEvent>,
) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let addr = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let mut conn = match tls {
        Some(config) => match ServerConnection::new(config) {
            Ok(c) => Conn::Tls(Box::new(StreamOwned::new(c, stream))),
            Err(e) => return rejected(events, &peer, &format!("TLS: {e}")),
        },
        None => Conn::Plain(stream),
    };
    let (tx, outbox) = mpsc::channel();
    let handle = AgentHandle { outbox: tx };
    let mut reader = FrameReader::default();

    // A peer must say hello, small and soon, before it may send anything big.
    let hello = match next_frame(
        &mut conn,
        &mut reader,
        &outbox,
        MAX_HELLO,
        Some(HELLO_TIMEOUT),
    ) {
        Ok(frame) => match decode_agent_frame(&frame) {
            Ok(AgentFrame::Hello(h)) => h,
            Ok(_) => return reject(&mut conn, events, &peer, "the first frame must be a hello"),
            Err(e) => return reject(&mut conn, events, &peer, &format!("malformed hello: {e}")),
        },
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return,
        Err(e) => {
            let what = match &conn {
                Conn::Tls(_) => {
                    format!("bad TLS connection or frame (plaintext to a TLS listener?): {e}")
                }
                Conn::Plain(_) => format!("bad frame: {e}"),
            };
            return reject(&mut conn, events, &peer, &what);
        }
    };
    if hello.version != protocol::VERSION {
        let why = format!("unsupported protocol version {}", hello.version);
        return reject(&mut conn, events, &peer, &why);
    }
    if hello.token != token {
        return reject(&mut conn, events, &peer, "wrong capture token");
    }
    let node = hello.node.clone();
    if let Err(e) = sink.lock().expect("sink").hello(&hello, addr) {
        return reject(&mut conn, events, &peer, &e.0);
    }
    if write_frame(&mut conn, &protocol::welcome()).is_err() {
        return;
    }
    agents
        .lock()
        .expect("agents")
        .insert(node.clone(), handle.clone());
    let _ = events.send(ServerEvent::Connected { node: node.clone() });

    let mut expected_seq = 1u64;
    let mut clean = false;
    let reason = loop {
        let frame = match next_frame(&mut conn, &mut reader, &outbox, MAX_FRAME, None) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                break "connection closed".to_owned()
            }
            Err(e) => break format!("connection error: {e}"),
        };
        let frame = match decode_agent_frame(&frame) {
            Ok(f) => f,
            Err(e) => {
                let what = format!("malformed frame from the agent: {e}");
                sink.lock().expect("sink").problem(&node, &what);
                let _ = write_frame(&mut conn, &protocol::stop());
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
                    let what = format!(
                        "batch sequence jumped from {} to {seq}",
                        expected_seq.saturating_sub(1)
                    );
                    sink.lock().expect("sink").problem(&node, &what);
                }
                expected_seq = seq + 1;
                let stored = sink
                    .lock()
                    .expect("sink")
                    .batch(&node, seq, dropped_total, evs);
                if let Err(e) = stored {
                    let _ = write_frame(&mut conn, &protocol::stop());
                    break format!("could not store events: {e}");
                }
                if write_frame(&mut conn, &protocol::ack(seq)).is_err() {
                    break "could not acknowledge".to_owned();
                }
            }
            AgentFrame::Bye { seq, stats } => {
                sink.lock().expect("sink").bye(&node, &stats);
                clean = true;
                let _ = write_frame(&mut conn, &protocol::ack(seq));
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
    let _ = conn.tcp().shutdown(std::net::Shutdown::Both);
    let _ = events.send(ServerEvent::Disconnected {
        node,
        reason,
        clean,
    });
}

fn reject(conn: &mut Conn, events: &mpsc::Sender<ServerEvent>, peer: &str, reason: &str) {
    let _ = write_frame(conn, &protocol::reject(reason));
    rejected(events, peer, reason);
}

fn rejected(events: &mpsc::Sender<ServerEvent>, peer: &str, reason: &str) {
    let _ = events.send(ServerEvent::Rejected {
        peer: peer.to_owned(),
        reason: reason.to_owned(),
    });
}
