//! The HTTP API over TLS: plaintext refused, tokens required, roles enforced,
//! and an operator's capture of a real node recorded with values left out.

mod common;

use common::{fixture, require_beam, wait_for, BeamNode, Home};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Server {
    child: Child,
    port: u16,
    cert: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &Home) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = home
        .cmd(&["serve", "--tls", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("serving the ElixirScope API on https://"),
        "{first}"
    );
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        port,
        cert: home.path().join("serve-cert.pem"),
    }
}

/// One HTTPS request trusting only the server's certificate; returns status and JSON.
fn call(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&s.cert).unwrap())
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
    let mut tls =
        rustls::StreamOwned::new(conn, TcpStream::connect(("127.0.0.1", s.port)).unwrap());
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b.trim()).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

#[test]
fn tls_tokens_and_roles_guard_the_api() {
    require_beam();
    let home = Home::new();
    let token = |name: &str, role: &str| {
        let out = home.run(&["token", "create", name, "--role", role]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (viewer, operator) = (token("v1", "viewer"), token("o1", "operator"));
    let s = serve(&home);
    let node = BeamNode::elixir("api", &[fixture("test_app.ex")], "TestApp.start()");

    // Plaintext gets no HTTP answer from a TLS listener.
    let mut plain = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/"),
        "plaintext was answered"
    );

    assert_eq!(call(&s, "GET", "/api/health", None, None).0, 200);
    let (status, body) = call(&s, "GET", "/api/sessions", None, None);
    assert_eq!(status, 401);
    assert!(
        body["error"].as_str().unwrap().contains("missing token"),
        "{body}"
    );
    let (status, body) = call(&s, "GET", "/api/sessions", Some("es_not_a_token"), None);
    assert_eq!(status, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown or revoked token"),
        "{body}"
    );

    let capture = format!(
        r#"{{"node": "{}", "cookie": "{}", "duration": "3s", "session": "api1", "trace": ["TestApp.Math.square/1"]}}"#,
        node.name, node.cookie
    );
    let (status, body) = call(&s, "POST", "/api/captures", Some(&viewer), Some(&capture));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("role viewer"),
        "{body}"
    );
    let with_state = capture.replace(r#""trace""#, r#""state": ["TestApp.Counter"], "trace""#);
    let (status, body) = call(
        &s,
        "POST",
        "/api/captures",
        Some(&operator),
        Some(&with_state),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("needs an admin token"),
        "{body}"
    );

    let (status, body) = call(&s, "POST", "/api/captures", Some(&operator), Some(&capture));
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_u64().unwrap();
    let capture_status = || {
        let (_, list) = call(&s, "GET", "/api/captures", Some(&operator), None);
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap()
    };
    // The workload runs once the capture has started on the node.
    wait_for(
        "the API's capture to start",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || (capture_status()["status"] != "starting").then_some(()),
    );
    assert!(node.wait_until_traced(), "{}", capture_status());
    node.call_elixir("TestApp.calls()");
    let done = wait_for(
        "the API's 3 s capture to end",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let c = capture_status();
            (c["status"] != "starting" && c["status"] != "recording").then_some(c)
        },
    );
    assert_eq!(done["status"], "complete", "{done}");

    // Viewers read it; the operator's capture holds calls but not their values.
    let (status, page) = call(
        &s,
        "GET",
        "/api/sessions/api1/events?kind=call,return&mfa=TestApp.Math.square/1",
        Some(&viewer),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "{page}");
    assert!(
        events
            .iter()
            .all(|e| e.get("term").is_none() || e["term"] == "\"[not captured]\""),
        "{page}"
    );

    // Both the capture and the views are audited under the token's name.
    let audit = home.json(&["audit", "show"]);
    let by_operator = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "token o1 (operator)")
        .count();
    let views = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "token v1 (viewer)" && e["action"] == "view")
        .count();
    assert!(by_operator >= 3, "{audit}");
    assert_eq!(views, 1, "{audit}");
}
