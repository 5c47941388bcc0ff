//! The collector's `/metrics` scraped by a real Prometheus server (Debian's
//! `prometheus`) during a capture: PromQL answers through its HTTP API must
//! match the session's own counts, node metrics must arrive, and every metric
//! the Grafana dashboards query must appear in a real scrape.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn require_prometheus() {
    assert!(
        Path::new("/usr/bin/prometheus").exists(),
        "Prometheus is not installed: run `make test`, which installs Debian's prometheus"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET http://127.0.0.1:PORT/PATH`: the body, or None if nothing answers.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    // Prometheus answers queries chunked.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        return Some(out);
    }
    Some(body.to_owned())
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: elixirscope\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(port, "/-/ready").is_none() {
            assert!(Instant::now() < deadline, "Prometheus did not get ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The value of a PromQL query with one result, if any.
    fn query(&self, promql: &str) -> Option<f64> {
        let q: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = get(self.port, &format!("/api/v1/query?query={q}"))?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` equals `want`; returns what it last read.
    fn wait_for(&self, promql: &str, want: f64) -> Option<f64> {
        self.wait_until(promql, |v| v == want)
    }

    /// Waits (up to 20 s: Prometheus scrapes every second) until `promql` has
    /// a value that satisfies `ok`; returns what it last read.
    fn wait_until(&self, promql: &str, ok: impl Fn(f64) -> bool) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(promql);
            if last.is_some_and(&ok) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sample names a scrape can hold, from its `# TYPE` lines.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["bucket", "sum", "count"] {
                    names.insert(format!("{name}_{s}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Every `elixirscope_…` name in every query of every dashboard.
fn dashboard_metrics() -> BTreeSet<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/grafana");
    let mut out = BTreeSet::new();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        dashboards += 1;
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            d["uid"].is_string() && d["title"].is_string(),
            "{}",
            path.display()
        );
        let panels = d["panels"].as_array().expect("panels");
        assert!(!panels.is_empty());
        for p in panels {
            for t in p["targets"].as_array().expect("targets") {
                let expr = t["expr"].as_str().expect("expr");
                let mut rest = expr;
                while let Some(i) = rest.find("elixirscope_") {
                    let name: String = rest[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    rest = &rest[i + name.len()..];
                    out.insert((name, path.file_name().unwrap().to_string_lossy().into()));
                }
            }
        }
    }
    assert!(dashboards >= 2, "dashboards in {}", dir.display());
    out
}

#[test]
fn prometheus_scrapes_a_capture_and_its_counts_match_the_session() {
    require_beam();
    require_prometheus();
    let home = Home::new();
    let node = BeamNode::elixir("prom", &[fixture("test_app.ex")], "TestApp.start()");
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let (rec, rx) = start_recording(
        &home,
        &node,
        "prom",
        &[
            "--state",
            "TestApp.Counter",
            "--trace",
            "TestApp.Math._/_",
            "--metrics-listen",
            &listen,
        ],
    );
    let prom = Prometheus::start(metrics_port);
    node.call_elixir("TestApp.increments(3)");
    node.call_elixir("TestApp.calls()");
    node.call_elixir("TestApp.messages(50)");

    // The collector's own view, then Prometheus's, while capture runs. Node
    // metrics come with the agent's status (once a second) and exemplars
    // with the first traced calls: wait (up to 20 s) until a scrape holds
    // every metric a Grafana dashboard queries and an exemplar.
    let wanted = dashboard_metrics();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (scrape, missing) = loop {
        let scrape = get(metrics_port, "/metrics").expect("the collector serves /metrics");
        let exported = exported_names(&scrape);
        let missing: Vec<(String, String)> = wanted
            .iter()
            .filter(|(name, _)| !exported.contains(name))
            .cloned()
            .collect();
        if missing.is_empty() && scrape.contains("event_id=\"") || Instant::now() > deadline {
            break (scrape, missing);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(scrape.ends_with("# EOF\n"), "OpenMetrics text");
    let calls = prom.wait_for(
        r#"elixirscope_events_total{session="prom",kind="call"}"#,
        6.0 + 3.0,
    );
    let squares = prom.wait_for(
        r#"elixirscope_call_duration_seconds_count{session="prom",function="square/1"}"#,
        3.0,
    );
    let processes = prom.wait_until(r#"elixirscope_node_processes"#, |n| n > 10.0);
    let utilisation = prom.wait_until(r#"elixirscope_node_scheduler_utilisation"#, |u| {
        (0.0..=1.0).contains(&u)
    });
    let first_queue = prom.wait_until(
        r#"elixirscope_node_scheduler_run_queue{scheduler="1"}"#,
        |q| q >= 0.0,
    );
    let memory = prom.wait_until(r#"elixirscope_node_memory_bytes{kind="total"}"#, |m| {
        m > 1e6
    });
    let recording = prom.wait_for(r#"elixirscope_session_recording{session="prom"}"#, 1.0);
    let budget = prom.wait_until(
        r#"elixirscope_session_budget{session="prom",budget="max_events"}"#,
        |b| b > 0.0,
    );
    let sends = prom.wait_until(
        r#"elixirscope_events_total{session="prom",kind="send"}"#,
        |s| s > 50.0,
    );

    stop_recording(rec, rx);
    let show = home.json(&["show", "prom"]);
    let counts = &show["counts"];
    // Every call of the workload was traced: 3 handle_call, 3 square, 1 fail,
    // and as many more as the session stored (init and others).
    assert_eq!(
        calls,
        counts["call"].as_f64(),
        "calls in Prometheus vs the session: {show}"
    );
    assert_eq!(squares, Some(3.0));
    let stored_sends = counts["send"].as_f64().unwrap();
    assert!(
        sends.is_some_and(|s| s > 50.0 && s <= stored_sends),
        "sends {sends:?}, session {stored_sends}"
    );
    assert!(processes.is_some_and(|n| n > 10.0), "{processes:?}");
    assert!(first_queue.is_some_and(|q| q >= 0.0), "{first_queue:?}");
    assert!(
        utilisation.is_some_and(|u| (0.0..=1.0).contains(&u)),
        "{utilisation:?}"
    );
    assert!(memory.is_some_and(|m| m > 1e6), "{memory:?}");
    assert_eq!(recording, Some(1.0));
    assert!(budget.is_some_and(|b| b > 0.0), "{budget:?}");
    // Exemplars point at session events.
    assert!(scrape.contains("event_id=\""), "exemplars in {scrape}");

    // Every metric a Grafana dashboard queries is in a real scrape.
    assert!(
        missing.is_empty(),
        "dashboards query metrics the collector does not export (dashboard, name): {missing:?}; it exports {:?}",
        exported_names(&scrape)
    );
}
