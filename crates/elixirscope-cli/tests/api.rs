//! The HTTP API over TLS: plaintext refused, tokens required, roles enforced,
//! and an operator's capture of a real node recorded with values left out.

mod common;

use common::{fixture, require_beam, stderr, wait_for, BeamNode, Home};
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

/// An answer: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.body.trim()).unwrap_or(Value::Null)
    }
}

/// One HTTPS request trusting only the server's certificate.
fn request(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
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
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    // Small answers only; a chunked one is read as its single chunk.
    let body = if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// One HTTPS request; returns status and JSON.
fn call(
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let a = request(s, method, path, token, body);
    (a.status, a.json())
}

fn token(home: &Home, name: &str, role: &str) -> String {
    let out = home.run(&["token", "create", name, "--role", role]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Asserts a one-line JSON error with this status whose message contains `needle`.
fn assert_error(answer: (u16, Value), status: u16, needle: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    let msg = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error in {body}"));
    assert!(msg.contains(needle) && !msg.contains('\n'), "{msg}");
}

/// The capture `id` as `GET /api/captures` lists it.
fn capture(s: &Server, token: &str, id: u64) -> Value {
    let (status, list) = call(s, "GET", "/api/captures", Some(token), None);
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no capture {id} in {list}"))
}

/// Waits until capture `id` is past `starting` (and, with `ended`, past
/// `recording` too); returns it.
fn wait_capture(s: &Server, token: &str, id: u64, ended: bool) -> Value {
    wait_for(
        &format!("capture {id} to {}", if ended { "end" } else { "start" }),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let c = capture(s, token, id);
            let past = c["status"] != "starting" && !(ended && c["status"] == "recording");
            past.then_some(c)
        },
    )
}

#[test]
fn tls_tokens_and_roles_guard_the_api() {
    require_beam();
    let home = Home::new();
    let (viewer, operator) = (token(&home, "v1", "viewer"), token(&home, "o1", "operator"));
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

    let request_body = format!(
        r#"{{"node": "{}", "cookie": "{}", "duration": "3s", "session": "api1", "trace": ["TestApp.Math.square/1"]}}"#,
        node.name, node.cookie
    );
    let (status, body) = call(
        &s,
        "POST",
        "/api/captures",
        Some(&viewer),
        Some(&request_body),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("role viewer"),
        "{body}"
    );
    let with_state = request_body.replace(r#""trace""#, r#""state": ["TestApp.Counter"], "trace""#);
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

    let (status, body) = call(
        &s,
        "POST",
        "/api/captures",
        Some(&operator),
        Some(&request_body),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_u64().unwrap();
    // The workload runs once the capture has started on the node.
    wait_capture(&s, &operator, id, false);
    assert!(node.wait_until_traced(), "{}", capture(&s, &operator, id));
    node.call_elixir("TestApp.calls()");
    let done = wait_capture(&s, &operator, id, true);
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

#[test]
fn metrics_need_a_viewer_token_and_are_openmetrics() {
    let home = Home::new();
    let viewer = token(&home, "scraper", "viewer");
    let s = serve(&home);
    assert_error(
        call(&s, "GET", "/metrics", None, None),
        401,
        "missing token",
    );
    assert_error(
        call(&s, "GET", "/metrics", Some("es_not_a_token"), None),
        401,
        "unknown or revoked token",
    );
    let a = request(&s, "GET", "/metrics", Some(&viewer), None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        a.headers
    );
    // An idle collector has no series yet (see the capture test below for
    // a busy one), but the exposition is complete.
    assert!(a.body.ends_with("# EOF\n"), "{}", a.body);
    // A revoked token is refused from then on.
    assert!(home.run(&["token", "revoke", "scraper"]).status.success());
    assert_error(
        call(&s, "GET", "/metrics", Some(&viewer), None),
        401,
        "unknown or revoked token",
    );
}

#[test]
fn admins_capture_state_and_captures_are_stopped_by_operators_and_admins_only() {
    require_beam();
    let home = Home::new();
    let viewer = token(&home, "v1", "viewer");
    let operator = token(&home, "o1", "operator");
    let admin = token(&home, "a1", "admin");
    let s = serve(&home);
    let node = BeamNode::elixir("apiadm", &[fixture("test_app.ex")], "TestApp.start()");
    let body = |session: &str, duration: &str, extra: &str| {
        format!(
            r#"{{"node": "{}", "cookie": "{}", "duration": "{duration}", "session": "{session}"{extra}}}"#,
            node.name, node.cookie
        )
    };

    // An admin may capture GenServer state (an operator may not: see above),
    // and gets the values of traced calls.
    let with_state = body(
        "adm",
        "30s",
        r#", "state": ["TestApp.Counter"], "trace": ["TestApp.Math.square/1"]"#,
    );
    let (status, started) = call(&s, "POST", "/api/captures", Some(&admin), Some(&with_state));
    assert_eq!(status, 202, "{started}");
    let adm = started["id"].as_u64().unwrap();
    assert_eq!(started["started_by"], "token a1", "{started}");
    wait_capture(&s, &admin, adm, false);
    assert!(node.wait_until_traced(), "{}", capture(&s, &admin, adm));
    node.call_elixir("TestApp.increments(2)");
    node.call_elixir("TestApp.calls()");

    // Stopping: not with a viewer token; an unknown or malformed id is a
    // clear one-line JSON error; an admin may stop it.
    let path = format!("/api/captures/{adm}");
    assert_error(
        call(&s, "DELETE", &path, Some(&viewer), None),
        403,
        "token 'v1' has role viewer; stopping a capture needs an operator token",
    );
    assert_eq!(capture(&s, &admin, adm)["status"], "recording");
    assert_error(
        call(&s, "DELETE", "/api/captures/999999", Some(&admin), None),
        404,
        "no capture 999999",
    );
    assert_error(
        call(&s, "DELETE", "/api/captures/latest", Some(&admin), None),
        400,
        "invalid capture id 'latest'",
    );
    // Malformed requests get the same one-line JSON errors.
    assert_error(
        call(
            &s,
            "POST",
            "/api/captures",
            Some(&admin),
            Some("{\"node\": "),
        ),
        400,
        "malformed request body",
    );
    assert_error(
        call(&s, "GET", "/api/sessions/adm/state", Some(&viewer), None),
        400,
        "malformed query",
    );
    assert_error(call(&s, "DELETE", &path, None, None), 401, "missing token");
    let (status, stopping) = call(&s, "DELETE", &path, Some(&admin), None);
    assert_eq!(status, 200, "{stopping}");
    assert_eq!(stopping["id"], adm, "{stopping}");
    let done = wait_capture(&s, &admin, adm, true);
    assert_eq!(done["status"], "complete", "{done}");
    // Stopped by the request, not by its 30 s running out.
    let reason = session_stop_reason(&home, "adm");
    assert_eq!(reason, "stopped through the API", "{done}");
    assert_eq!(done["reason"], reason, "{done}");
    // State and values were recorded.
    let st = home.json(&["state", "adm", "TestApp.Counter", "--at", "end"]);
    assert_eq!(st["state"], "2", "{st}");
    let calls = home.json(&[
        "events",
        "adm",
        "--kind",
        "return",
        "--mfa",
        "TestApp.Math.square/1",
    ]);
    let values: Vec<&str> = calls["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["term"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(values, ["1", "4", "9"], "{calls}");

    // An operator may stop the operator's own capture too.
    let (status, started) = call(
        &s,
        "POST",
        "/api/captures",
        Some(&operator),
        Some(&body("op", "30s", "")),
    );
    assert_eq!(status, 202, "{started}");
    let op = started["id"].as_u64().unwrap();
    wait_capture(&s, &operator, op, false);
    let (status, _) = call(
        &s,
        "DELETE",
        &format!("/api/captures/{op}"),
        Some(&operator),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(wait_capture(&s, &operator, op, true)["status"], "complete");

    // Who stopped what is in the audit log under the token's name.
    let audit = home.json(&["audit", "show"]);
    let stops: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "capture_stop_request")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["subject"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        stops,
        [
            ("token a1 (admin)".to_owned(), "adm".to_owned()),
            ("token o1 (operator)".to_owned(), "op".to_owned())
        ],
        "{audit}"
    );
    // The collector's metrics, for a viewer, count the admin's capture.
    let m = request(&s, "GET", "/metrics", Some(&viewer), None);
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains("# TYPE elixirscope_events counter"),
        "{}",
        m.body
    );
    let states =
        home.json(&["events", "adm", "--kind", "state", "--limit", "1"])["matched"].clone();
    assert!(
        m.body.contains(&format!(
            "elixirscope_events_total{{session=\"adm\",kind=\"state\"}} {states}\n"
        )),
        "{states} state events in {}",
        m.body
    );
}

fn session_stop_reason(home: &Home, session: &str) -> String {
    common::session_json(home, session)["stop_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
