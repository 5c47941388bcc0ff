//! A hidden-node connection to a BEAM node: EPMD lookup, handshake, RPC via `rex`.
//!
//! `erl_dist` supplies the wire protocol; this module supplies what a node would:
//! `TCP_NODELAY` (without it each request/reply waits ~40 ms for Nagle), ticks every
//! few seconds so the peer keeps the connection, locally minted pids and
//! references, a reader thread that routes replies to waiting callers, and answers
//! to I/O requests from code we run (so a stray `io:format` cannot hang an RPC).

use crate::convert::{from_eetf, to_eetf};
use crate::stream::BlockingStream;
use crate::CaptureError;
use elixirscope_term::Term;
use erl_dist::epmd::{EpmdClient, DEFAULT_EPMD_PORT};
use erl_dist::handshake::{ClientSideHandshake, HandshakeError, HandshakeStatus};
use erl_dist::message::{self, Message, Sender};
use erl_dist::node::{Creation, LocalNode, NodeName};
use futures::executor::block_on;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TICK_EVERY: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the cookie came from (named in error messages).
#[derive(Debug, Clone)]
pub struct Cookie {
    pub value: String,
    pub source: String,
}

type Waiters = Arc<Mutex<HashMap<Vec<u32>, mpsc::Sender<Term>>>>;

/// A live hidden-node connection.
pub struct NodeConnection {
    peer: String,
    local_name: String,
    creation: u32,
    self_pid: eetf::Pid,
    sender: Arc<Mutex<Sender<BlockingStream>>>,
    stream: BlockingStream,
    waiters: Waiters,
    next_ref: AtomicU32,
    closed: Arc<AtomicBool>,
}

/// Splits `name@host` (host defaults to this machine's short host name).
pub fn split_node_name(node: &str) -> Result<(String, String), CaptureError> {
    let bad = || CaptureError::BadNodeName(node.to_owned());
    match node.split_once('@') {
        Some((n, h)) if !n.is_empty() && !h.is_empty() && !h.contains('@') => {
            Ok((n.to_owned(), h.to_owned()))
        }
        Some(_) => Err(bad()),
        None if !node.is_empty()
            && node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok((node.to_owned(), local_short_hostname()))
        }
        None => Err(bad()),
    }
}

/// This machine's host name up to the first dot.
pub fn local_short_hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "localhost".into());
    raw.trim()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_owned()
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, std::io::Error> {
    (host, port)
        .to_socket_addrs()?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "host has no IPv4 address")
        })
}

fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, std::io::Error> {
    let addr = resolve(host, port)?;
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// The EPMD port: `$ERL_EPMD_PORT` as Erlang itself honours it, else 4369.
pub fn epmd_port_number() -> u16 {
    std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(DEFAULT_EPMD_PORT)
}

fn epmd_error(host: &str, detail: impl std::fmt::Display) -> CaptureError {
    CaptureError::EpmdUnreachable {
        host: format!("{host}:{}", epmd_port_number()),
        detail: detail.to_string(),
    }
}

fn epmd_client(host: &str) -> Result<EpmdClient<BlockingStream>, CaptureError> {
    let stream = connect_tcp(host, epmd_port_number()).map_err(|e| epmd_error(host, e))?;
    Ok(EpmdClient::new(BlockingStream::new(stream)))
}

/// Lists node names registered with EPMD on `host`.
pub fn epmd_names(host: &str) -> Result<Vec<(String, u16)>, CaptureError> {
    block_on(epmd_client(host)?.get_names()).map_err(|e| epmd_error(host, e))
}

/// Looks up a node's distribution port in EPMD.
pub fn epmd_port(name: &str, host: &str) -> Result<Option<u16>, CaptureError> {
    let entry = block_on(epmd_client(host)?.get_node(name)).map_err(|e| epmd_error(host, e))?;
    Ok(entry.map(|e| e.port))
}

impl NodeConnection {
    /// Connects to `node` (`name@host`) as a hidden node.
    pub fn connect(node: &str, cookie: &Cookie) -> Result<NodeConnection, CaptureError> {
        let (name, host) = split_node_name(node)?;
        let full = format!("{name}@{host}");
        let port = match epmd_port(&name, &host)? {
            Some(p) => p,
            None => {
                let known = epmd_names(&host).unwrap_or_default();
                return Err(CaptureError::UnknownNode {
                    node: full,
                    host,
                    known: known.into_iter().map(|(n, _)| n).collect(),
                });
            }
        };
        let tcp = connect_tcp(&host, port).map_err(|e| CaptureError::NodeUnreachable {
            node: full.clone(),
            detail: e.to_string(),
        })?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let stream = BlockingStream::new(tcp);
        let local_name = format!(
            "elixirscope_{}_{}@{}",
            std::process::id(),
            rand::random::<u16>(),
            host
        );
        let local_node_name: NodeName = local_name
            .parse()
            .map_err(|_| CaptureError::BadNodeName(local_name.clone()))?;
        let creation = Creation::random();
        let local = LocalNode::new(local_node_name, creation);
        let mut hs = ClientSideHandshake::new(stream.clone(), local.clone(), &cookie.value);
        let refused = |e: HandshakeError| handshake_error(&full, cookie, e);
        let status = block_on(hs.execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION))
            .map_err(refused)?;
        if !matches!(
            status,
            HandshakeStatus::Ok | HandshakeStatus::OkSimultaneous
        ) {
            return Err(CaptureError::Handshake {
                node: full,
                detail: format!("node answered {status:?}"),
            });
        }
        let (connection, peer) = block_on(hs.execute_rest(true)).map_err(refused)?;
        connection.inner().set_read_timeout(None).ok();
        let (sender, receiver) = message::channel(connection, local.flags & peer.flags);
        let self_pid = eetf::Pid::new(local_name.clone(), 1, 0, creation.get());
        let conn = NodeConnection {
            peer: full,
            local_name,
            creation: creation.get(),
            self_pid,
            sender: Arc::new(Mutex::new(sender)),
            stream,
            waiters: Arc::new(Mutex::new(HashMap::new())),
            next_ref: AtomicU32::new(1),
            closed: Arc::new(AtomicBool::new(false)),
        };
        conn.spawn_reader(receiver);
        conn.spawn_ticker();
        Ok(conn)
    }

    /// The peer node's full name.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Our (hidden) node name.
    pub fn local_name(&self) -> &str {
        &self.local_name
    }

    /// Our side's IP address of the connection: the address the node can reach us on.
    pub fn local_ip(&self) -> Option<IpAddr> {
        self.stream.inner().local_addr().ok().map(|a| a.ip())
    }

    /// Whether the connection has been lost.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn spawn_reader(&self, mut receiver: message::Receiver<BlockingStream>) {
        let waiters = self.waiters.clone();
        let closed = self.closed.clone();
        let sender = self.sender.clone();
        let me = self.self_pid.clone();
        std::thread::Builder::new()
            .name("dist-reader".into())
            .spawn(move || loop {
                match block_on(receiver.recv()) {
                    Ok(Message::Send(m)) => route(&waiters, &sender, &me, &m.message),
                    Ok(Message::AliasSend(m)) => route(&waiters, &sender, &me, &m.message),
                    Ok(Message::SendSender(m)) => route(&waiters, &sender, &me, &m.message),
                    Ok(_) => {}
                    Err(message::RecvError::UnsupportedOp { .. })
                    | Err(message::RecvError::Decode(_)) => {}
                    Err(_) => {
                        closed.store(true, Ordering::SeqCst);
                        // Dropping the senders wakes every waiting caller.
                        waiters.lock().expect("waiters").clear();
                        return;
                    }
                }
            })
            .expect("spawn dist reader");
    }

    fn spawn_ticker(&self) {
        let sender = self.sender.clone();
        let closed = self.closed.clone();
        std::thread::Builder::new()
            .name("dist-ticker".into())
            .spawn(move || loop {
                std::thread::sleep(TICK_EVERY);
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let r = block_on(sender.lock().expect("sender").send(Message::Tick));
                if r.is_err() {
                    closed.store(true, Ordering::SeqCst);
                    return;
                }
            })
            .expect("spawn dist ticker");
    }

    fn make_ref(&self) -> eetf::Reference {
        let n = self.next_ref.fetch_add(1, Ordering::SeqCst);
        eetf::Reference {
            node: eetf::Atom::from(self.local_name.as_str()),
            id: vec![n, rand::random::<u32>() & 0x3ffff, rand::random()],
            creation: self.creation,
        }
    }

    fn send(&self, msg: Message) -> Result<(), CaptureError> {
        block_on(self.sender.lock().expect("sender").send(msg)).map_err(|e| {
            CaptureError::ConnectionLost {
                node: self.peer.clone(),
                detail: e.to_string(),
            }
        })
    }

    /// Sends `msg` to the process registered as `name` on the node.
    pub fn send_to_name(&self, name: &str, msg: &Term) -> Result<(), CaptureError> {
        self.send(Message::reg_send(
            self.self_pid.clone(),
            eetf::Atom::from(name),
            to_eetf(msg),
        ))
    }

    /// Calls `module:function(args...)` on the node and returns its result.
    pub fn rpc(
        &self,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, CaptureError> {
        if self.is_closed() {
            return Err(CaptureError::ConnectionLost {
                node: self.peer.clone(),
                detail: "connection closed".into(),
            });
        }
        let reference = self.make_ref();
        let (tx, rx) = mpsc::channel();
        self.waiters
            .lock()
            .expect("waiters")
            .insert(reference.id.clone(), tx);
        let me: eetf::Term = self.self_pid.clone().into();
        let request = eetf::Tuple::from(vec![
            eetf::Atom::from("call").into(),
            eetf::Atom::from(module).into(),
            eetf::Atom::from(function).into(),
            eetf::List::from(args.iter().map(to_eetf).collect::<Vec<_>>()).into(),
            me.clone(),
        ]);
        let from = eetf::Tuple::from(vec![me, reference.clone().into()]);
        let call = eetf::Tuple::from(vec![
            eetf::Atom::from("$gen_call").into(),
            from.into(),
            request.into(),
        ]);
        self.send(Message::reg_send(
            self.self_pid.clone(),
            eetf::Atom::from("rex"),
            call.into(),
        ))?;
        let reply = rx.recv_timeout(timeout);
        self.waiters.lock().expect("waiters").remove(&reference.id);
        match reply {
            Ok(Term::Tuple(mut t)) if t.len() == 2 => {
                let result = t.pop().expect("2 elements");
                if let Term::Tuple(b) = &result {
                    if b.len() == 2 && b[0].as_atom() == Some("badrpc") {
                        return Err(CaptureError::Rpc {
                            call: format!("{module}:{function}"),
                            detail: elixirscope_term::inspect(&b[1], &Default::default()),
                        });
                    }
                }
                Ok(result)
            }
            Ok(other) => Err(CaptureError::Rpc {
                call: format!("{module}:{function}"),
                detail: format!("unexpected reply {other:?}"),
            }),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(CaptureError::Rpc {
                call: format!("{module}:{function}"),
                detail: format!("no answer within {} s", timeout.as_secs_f32()),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(CaptureError::ConnectionLost {
                node: self.peer.clone(),
                detail: "connection closed during a call".into(),
            }),
        }
    }

    /// Evaluates an Erlang expression sequence on the node (no module loaded),
    /// with `bindings` as variables, and returns its value.
    pub fn eval(
        &self,
        expr: &str,
        bindings: Vec<(&str, Term)>,
        timeout: Duration,
    ) -> Result<Term, CaptureError> {
        let text = Term::list(expr.chars().map(|c| Term::Integer(c as i64)).collect());
        let scanned = self.rpc("erl_scan", "string", vec![text], timeout)?;
        let tokens = match scanned.as_tuple() {
            Some([ok, tokens, _]) if ok.as_atom() == Some("ok") => tokens.clone(),
            _ => return Err(self.eval_error("scan", &scanned)),
        };
        let parsed = self.rpc("erl_parse", "parse_exprs", vec![tokens], timeout)?;
        let exprs = match parsed.as_tuple() {
            Some([ok, exprs]) if ok.as_atom() == Some("ok") => exprs.clone(),
            _ => return Err(self.eval_error("parse", &parsed)),
        };
        let mut sorted = bindings;
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let binding_list = Term::list(
            sorted
                .into_iter()
                .map(|(k, v)| Term::Tuple(vec![Term::atom(k), v]))
                .collect(),
        );
        let value = self.rpc("erl_eval", "exprs", vec![exprs, binding_list], timeout)?;
        match value {
            Term::Tuple(mut t) if t.len() == 3 && t[0].as_atom() == Some("value") => {
                Ok(t.swap_remove(1))
            }
            other => Err(self.eval_error("evaluate", &other)),
        }
    }

    fn eval_error(&self, step: &str, got: &Term) -> CaptureError {
        CaptureError::Rpc {
            call: format!("{step} expression"),
            detail: elixirscope_term::inspect(got, &Default::default()),
        }
    }
}

impl Drop for NodeConnection {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.stream.inner().shutdown(std::net::Shutdown::Both);
    }
}

fn route(
    waiters: &Waiters,
    sender: &Arc<Mutex<Sender<BlockingStream>>>,
    me: &eetf::Pid,
    msg: &eetf::Term,
) {
    let Ok(term) = from_eetf(msg) else { return };
    let Some(items) = term.as_tuple() else { return };
    // {Ref, Reply}: an RPC answer.
    if let [Term::Reference(r), _] = items {
        if let Some(tx) = waiters.lock().expect("waiters").remove(&r.ids) {
            let _ = tx.send(term);
        }
        return;
    }
    // {io_request, From, ReplyAs, Request}: answer ok so the caller never blocks.
    if let [tag, Term::Pid(from), reply_as, _] = items {
        if tag.as_atom() == Some("io_request") {
            let reply = Term::Tuple(vec![
                Term::atom("io_reply"),
                reply_as.clone(),
                Term::atom("ok"),
            ]);
            let to = eetf::Pid::new(from.node.clone(), from.id, from.serial, from.creation);
            let _ = block_on(
                sender
                    .lock()
                    .expect("sender")
                    .send(Message::send(to, to_eetf(&reply))),
            );
            let _ = me;
        }
    }
}

fn handshake_error(node: &str, cookie: &Cookie, e: HandshakeError) -> CaptureError {
    match e {
        HandshakeError::CookieMismatch | HandshakeError::Io(_) => CaptureError::CookieRejected {
            node: node.to_owned(),
            cookie_source: cookie.source.clone(),
        },
        HandshakeError::NotAllowed => CaptureError::Handshake {
            node: node.to_owned(),
            detail: "the node does not allow connections from this host (net_kernel:allow/1?)"
                .into(),
        },
        other => CaptureError::Handshake {
            node: node.to_owned(),
            detail: other.to_string(),
        },
    }
}
