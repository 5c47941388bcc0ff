//! Whatever a peer sends, the listener answers with a reason or closes, never panics,
//! and never allocates what a length field merely claims.

use elixirscope_term::view::Elements;
use elixirscope_term::{encode, Term};
use elixirscope_transport::frame::{read_frame, write_frame};
use elixirscope_transport::server::ServerEvent;
use elixirscope_transport::{Hello, IngestServer, Sink, SinkError};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Recorder {
    batches: Vec<(u64, usize)>,
    problems: Vec<String>,
}

impl Sink for Recorder {
    fn hello(&mut self, _: &Hello, _: SocketAddr) -> Result<(), SinkError> {
        Ok(())
    }
    fn batch(&mut self, _: &str, seq: u64, _: u64, events: Elements<'_>) -> Result<(), SinkError> {
        self.batches.push((seq, events.count()));
        Ok(())
    }
    fn bye(&mut self, _: &str, _: &Term) {}
    fn problem(&mut self, _: &str, what: &str) {
        self.problems.push(what.to_owned());
    }
}

fn server() -> (
    SocketAddr,
    Arc<Mutex<Recorder>>,
    std::sync::mpsc::Receiver<ServerEvent>,
) {
    let sink = Arc::new(Mutex::new(Recorder::default()));
    let (srv, events) =
        IngestServer::bind("127.0.0.1:0".parse().unwrap(), "tok", None, sink.clone()).unwrap();
    let addr = srv.local_addr().unwrap();
    srv.spawn();
    (addr, sink, events)
}

fn hello(token: &str) -> Vec<u8> {
    encode(&Term::Tuple(vec![
        Term::atom("es_hello"),
        Term::Integer(1),
        Term::string(token),
        Term::atom("n@h"),
        Term::Map(vec![]),
    ]))
}

fn next_event(rx: &std::sync::mpsc::Receiver<ServerEvent>) -> ServerEvent {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("a server event")
}

#[test]
fn garbage_oversized_and_unauthenticated_peers_are_turned_away() {
    let (addr, _sink, rx) = server();

    // A length prefix claiming 4 GiB.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap();
    match next_event(&rx) {
        ServerEvent::Rejected { reason, .. } => assert!(reason.contains("exceeds"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // Bytes that are not a term.
    let mut s = TcpStream::connect(addr).unwrap();
    write_frame(&mut s, &[131, 104, 200, 1]).unwrap();
    match next_event(&rx) {
        ServerEvent::Rejected { reason, .. } => {
            assert!(reason.contains("malformed hello"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // A well-formed hello with the wrong token gets told why.
    let mut s = TcpStream::connect(addr).unwrap();
    write_frame(&mut s, &hello("not-the-token")).unwrap();
    match next_event(&rx) {
        ServerEvent::Rejected { reason, .. } => assert_eq!(reason, "wrong capture token"),
        other => panic!("{other:?}"),
    }
    let mut buf = Vec::new();
    assert!(read_frame(&mut s, &mut buf).unwrap());
    let reply = elixirscope_term::decode(&buf).unwrap();
    assert_eq!(reply.as_tuple().unwrap()[0].as_atom(), Some("es_reject"));
}

#[test]
fn a_malformed_batch_ends_the_connection_and_is_recorded() {
    let (addr, sink, rx) = server();
    let mut s = TcpStream::connect(addr).unwrap();
    write_frame(&mut s, &hello("tok")).unwrap();
    let mut buf = Vec::new();
    assert!(read_frame(&mut s, &mut buf).unwrap()); // welcome
    assert!(matches!(next_event(&rx), ServerEvent::Connected { .. }));

    let batch = encode(&Term::Tuple(vec![
        Term::atom("es_batch"),
        Term::Integer(1),
        Term::Integer(0),
        Term::list(vec![Term::atom("an_event")]),
    ]));
    write_frame(&mut s, &batch).unwrap();
    assert!(read_frame(&mut s, &mut buf).unwrap()); // ack
                                                    // A list that claims a million elements in a few bytes.
    write_frame(
        &mut s,
        &[
            131, 104, 4, 100, 0, 8, b'e', b's', b'_', b'b', b'a', b't', b'c', b'h', 97, 2, 97, 0,
            108, 0, 15, 66, 64, 106,
        ],
    )
    .unwrap();
    match next_event(&rx) {
        ServerEvent::Disconnected { reason, clean, .. } => {
            assert!(!clean);
            assert!(reason.contains("malformed frame"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let sink = sink.lock().unwrap();
    assert_eq!(sink.batches, vec![(1, 1)]);
    assert!(
        sink.problems.iter().any(|p| p.contains("malformed frame")),
        "{:?}",
        sink.problems
    );
}

#[test]
fn a_tls_listener_refuses_plaintext_and_serves_a_pinned_client() {
    use elixirscope_transport::CaptureTls;
    use rustls::pki_types::{CertificateDer, ServerName};
    let tls = CaptureTls::generate("localhost").unwrap();
    let sink = Arc::new(Mutex::new(Recorder::default()));
    let (srv, rx) = IngestServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        "tok",
        Some(tls.config.clone()),
        sink.clone(),
    )
    .unwrap();
    let addr = srv.local_addr().unwrap();
    srv.spawn();

    // Plaintext to a TLS listener is refused.
    let mut plain = TcpStream::connect(addr).unwrap();
    write_frame(&mut plain, &hello("tok")).unwrap();
    match next_event(&rx) {
        ServerEvent::Rejected { reason, .. } => assert!(reason.contains("TLS"), "{reason}"),
        other => panic!("{other:?}"),
    }

    // A client that trusts exactly the capture's certificate gets through.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(tls.cert_der.clone()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let mut s = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    write_frame(&mut s, &hello("tok")).unwrap();
    let mut buf = Vec::new();
    assert!(read_frame(&mut s, &mut buf).unwrap());
    assert_eq!(
        elixirscope_term::decode(&buf).unwrap().as_tuple().unwrap()[0].as_atom(),
        Some("es_welcome")
    );
    let batch = encode(&Term::Tuple(vec![
        Term::atom("es_batch"),
        Term::Integer(1),
        Term::Integer(0),
        Term::list(vec![Term::atom("e1"), Term::atom("e2")]),
    ]));
    write_frame(&mut s, &batch).unwrap();
    assert!(read_frame(&mut s, &mut buf).unwrap());
    assert_eq!(
        elixirscope_term::decode(&buf).unwrap().as_tuple().unwrap()[0].as_atom(),
        Some("es_ack")
    );
    assert_eq!(sink.lock().unwrap().batches, vec![(1, 2)]);
}
