//! Between agent and recorder beyond loopback: a node reached through this
//! machine's own non-loopback address ships its events over TLS (the
//! recorder's listener speaks nothing else and refuses plaintext, the audit
//! log says so), and plaintext across the network happens only with
//! `--insecure-plaintext`, which the recorder reports loudly.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A non-loopback IPv4 address of this machine (the node is named and
/// reached through it, so the recorder listens on it).
fn host_ip() -> String {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .expect("run hostname -I");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .unwrap_or_else(|| {
            panic!("these tests need a non-loopback IPv4 address on this machine; `hostname -I` shows none")
        })
        .to_owned()
}

/// The TCP addresses process `pid` listens on (from /proc).
fn listening(pid: u32) -> Vec<SocketAddr> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(link) = std::fs::read_link(fd.path()) {
            let link = link.to_string_lossy().into_owned();
            if let Some(n) = link.strip_prefix("socket:[") {
                inodes.push(n.trim_end_matches(']').to_owned());
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // local_address, state 0A (LISTEN), inode.
        if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
            let (ip, port) = f[1].split_once(':').unwrap();
            let ip = u32::from_str_radix(ip, 16).unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            out.push(SocketAddr::from((ip.to_le_bytes(), port)));
        }
    }
    out
}

/// Sends one plaintext frame (an ETF `[]`, which is no hello) to `addr` and
/// returns whatever comes back before the connection closes.
fn plaintext_probe(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[0, 0, 0, 2, 131, 106]).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

/// Who owns the node's end of the connection to the collector at `addr`:
/// `tracer` (the agent's tracer holds a plain socket) or the name of the
/// module that runs the TLS connection.
fn link_owner(node: &BeamNode, addr: SocketAddr) -> String {
    node.eval(&format!(
        "Tracer = whereis(elixirscope_tracer), \
         [case erlang:port_info(P, connected) of \
            {{connected, Tracer}} -> tracer; \
            {{connected, Owner}} -> \
              {{dictionary, D}} = erlang:process_info(Owner, dictionary), \
              element(1, proplists:get_value('$initial_call', D, {{unknown}})) \
          end \
          || P <- erlang:ports(), erlang:port_info(P, name) =:= {{name, \"tcp_inet\"}}, \
             inet:peername(P) =:= {{ok, {{{{{}}}, {}}}}}]",
        addr.ip().to_string().replace('.', ","),
        addr.port()
    ))
}

fn apps(node: &BeamNode) -> String {
    node.eval("[A || {A, _, _} <- application:which_applications()]")
}

fn capture_start(home: &Home) -> serde_json::Value {
    let audit = home.json(&["audit", "show"]);
    audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "capture_start")
        .cloned()
        .unwrap_or_else(|| panic!("no capture_start in {audit}"))
}

#[test]
fn beyond_loopback_events_travel_over_tls_and_plaintext_is_refused() {
    require_beam();
    let ip = host_ip();
    let home = Home::new();
    let node = BeamNode::elixir_at(&ip, "tlsnet", &[fixture("test_app.ex")], "TestApp.start()");
    assert!(!apps(&node).contains("ssl"), "ssl already running");
    let (child, rx, before) =
        start_recording_said(&home, &node, "net", &["--state", "TestApp.Counter"]);
    assert!(!before.contains("PLAINTEXT"), "{before}");
    let addrs = listening(child.id());
    assert_eq!(
        addrs.len(),
        1,
        "the recorder listens for the agent once: {addrs:?}"
    );
    let addr = addrs[0];
    assert_eq!(
        addr.ip().to_string(),
        ip,
        "on the address the node reached it through"
    );
    let times = node.call_elixir("TestApp.increments(3)");
    // The agent's connection is a TLS connection (ssl runs it, not the tracer).
    assert!(apps(&node).contains("ssl"), "the TLS link needs ssl");
    let owner = link_owner(&node, addr);
    eprintln!("the node's end of the link to {addr} is run by {owner}");
    assert!(
        owner.starts_with('[')
            && !owner.contains("tracer")
            && (owner.contains("ssl_") || owner.contains("tls_")),
        "the node's end of the link: {owner}"
    );
    // The listener speaks only TLS: a plaintext peer gets no frame back (at
    // most a TLS alert), and is reported.
    let answer = plaintext_probe(addr);
    assert!(
        !(answer.len() > 4 && answer[4] == 131),
        "plaintext was answered in plaintext: {answer:?}"
    );

    let said = stop_recording(child, rx);
    assert!(
        said.contains("rejected a connection") && said.contains("plaintext to a TLS listener"),
        "{said}"
    );
    assert!(!said.contains("PLAINTEXT"), "{said}");
    let last = times.split('"').nth(5).expect("three times");
    let st = home.json(&["state", "net", "TestApp.Counter", "--at", last]);
    assert_eq!(st["state"], "3", "events arrived over TLS: {st}");
    let start = capture_start(&home);
    assert_eq!(start["details"]["transport"], "tls", "{start}");
    assert_eq!(start["details"]["listen"], ip, "{start}");
    assert!(
        !apps(&node).contains("ssl"),
        "ssl left running: {}",
        apps(&node)
    );
}

#[test]
fn plaintext_across_the_network_needs_insecure_plaintext_and_says_so() {
    require_beam();
    let ip = host_ip();
    let home = Home::new();
    let node = BeamNode::elixir_at(
        &ip,
        "plainnet",
        &[fixture("test_app.ex")],
        "TestApp.start()",
    );
    let (child, rx, before) = start_recording_said(
        &home,
        &node,
        "open",
        &["--state", "TestApp.Counter", "--insecure-plaintext"],
    );
    // Said loudly, before capture starts.
    assert!(
        before.contains("WARNING")
            && before.contains(&format!("to {ip} in PLAINTEXT (--insecure-plaintext)")),
        "{before}"
    );
    let addr = listening(child.id())[0];
    assert_eq!(addr.ip().to_string(), ip);
    let times = node.call_elixir("TestApp.increments(3)");
    // A plain socket held by the tracer itself; ssl never started.
    assert_eq!(link_owner(&node, addr), "[tracer]");
    assert!(!apps(&node).contains("ssl"), "{}", apps(&node));
    // The listener answers a plaintext peer in plaintext (and refuses it for
    // the missing hello).
    let answer = plaintext_probe(addr);
    assert!(answer.len() > 5 && answer[4] == 131, "{answer:?}");

    let said = stop_recording(child, rx);
    assert!(
        said.contains("rejected a connection: malformed hello"),
        "{said}"
    );
    let last = times.split('"').nth(5).expect("three times");
    let st = home.json(&["state", "open", "TestApp.Counter", "--at", last]);
    assert_eq!(st["state"], "3", "{st}");
    let start = capture_start(&home);
    assert_eq!(start["details"]["transport"], "plaintext", "{start}");
    assert_eq!(start["details"]["listen"], ip, "{start}");
}
