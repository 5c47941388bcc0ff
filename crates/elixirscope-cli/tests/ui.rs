//! The web UI in real headless Chromium: the demo recorded, played to known
//! points whose inspector state must equal `elixirscope state --at`, a deep
//! link, every view (screenshots under target/), and live mode following a
//! capture that is still running.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../elixirscope-ui/browser")
}

/// Fails clearly when Chromium, Node or playwright-core is missing.
fn require_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not at {chromium}: run `make test`, which installs Debian's chromium"
    );
    assert!(
        Command::new("node")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success()),
        "`node` is not installed or does not run: run `make test`, which installs it"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run `make test` (npm ci there)",
        browser_dir().display()
    );
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")
}

/// `elixirscope ui` on a free loopback port; stopped when dropped.
struct Ui {
    child: Child,
    base: String,
}

impl Ui {
    fn start(home: &Home, session: &str) -> Ui {
        let mut child = home
            .cmd(&["ui", session, "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start elixirscope ui");
        let line = stderr_lines(&mut child)
            .recv_timeout(Duration::from_secs(30))
            .expect("the UI printed its address");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        assert!(
            url.ends_with(&format!("/#/s/{session}")),
            "the URL opens the session: {url}"
        );
        let base = url.split("/#").next().unwrap().to_owned();
        Ui { child, base }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` with the given Host header: the status and the body.
fn http_get(base: &str, path: &str, host: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the UI");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Asserts a JSON error answer with this status whose message contains `needle`.
fn assert_error(base: &str, path: &str, host: &str, status: u16, needle: &str) {
    let (got, body) = http_get(base, path, host);
    assert_eq!(got, status, "GET {path}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"));
    assert!(
        msg.contains(needle) && !msg.contains('\n'),
        "GET {path}: {msg}"
    );
}

/// Runs a browser script and parses the JSON it prints.
fn drive(script: &str, args: &[&str]) -> Value {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(browser_dir())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        stderr(&out),
        stdout(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {}", stdout(&out)))
}

#[test]
fn the_cinema_plays_the_demo_to_known_points_and_matches_the_cli() {
    require_beam();
    require_browser();
    let home = Home::new();
    let out = record_demo(&home, "demo");
    assert!(out.status.success(), "{}", stderr(&out));
    let ui = Ui::start(&home, "demo");
    let out_dir = screenshots();
    let r = drive(
        "cinema.mjs",
        &[&ui.base, "demo", "Demo.Counter", out_dir.to_str().unwrap()],
    );
    assert_eq!(
        r["errors"],
        serde_json::json!([]),
        "script errors in the page"
    );

    // Every point the UI reached shows the state the CLI gives for that T.
    let points = r["points"].as_array().unwrap();
    assert_eq!(points.len(), 6, "{r}");
    for p in points {
        let id = p["id"].as_u64().unwrap().to_string();
        let cli = home.json(&["state", "demo", "Demo.Counter", "--at", &id]);
        assert_eq!(p["state"], cli["state"], "state at #{id} ({})", p["label"]);
        assert!(p["state"].is_string(), "a state at {p}");
    }
    // The three changes are consecutive counter values; stepping back returns
    // to the third.
    let ids: Vec<u64> = points.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert!(
        ids[0] < ids[1] && ids[1] < ids[2] && ids[2] < ids[3],
        "{ids:?}"
    );
    assert_ne!(points[0]["state"], points[1]["state"]);
    assert_ne!(points[1]["state"], points[2]["state"]);
    assert_eq!(ids[4], ids[2], "C goes back to the previous change");
    assert!(r["played"].as_u64().unwrap() > 0, "playback moved T: {r}");
    let (all, active) = (
        r["lanes"]["all"].as_u64().unwrap(),
        r["lanes"]["active"].as_u64().unwrap(),
    );
    assert!(
        active > 0 && active < all,
        "active lanes in the zoomed window: {active} of {all}"
    );

    // The deep link reopens the same session, process and T.
    assert_eq!(r["deep_link"]["id"], points[1]["id"]);
    assert_eq!(r["deep_link"]["state"], points[1]["state"]);

    // Search, sequence and flame graph agree with the CLI's answers.
    let states = home.json(&["events", "demo", "--kind", "state", "--pid", "Demo.Counter"]);
    assert_eq!(r["search_matched"], states["matched"]);
    let flame = home.json(&["flame", "demo"]);
    assert_eq!(r["flame_calls"], flame["calls"]);
    assert!(r["sequence_messages"].as_u64().unwrap() > 0, "{r}");
    let event_id = r["event"]["id"].as_u64().unwrap().to_string();
    let cli_event = home.json(&["events", "demo", "--from", &event_id, "--limit", "1"]);
    assert_eq!(r["event"]["summary"], cli_event["events"][0]["summary"]);

    for s in r["screenshots"].as_array().unwrap() {
        let len = std::fs::metadata(s.as_str().unwrap()).map_or(0, |m| m.len());
        assert!(len > 10_000, "screenshot {s} is {len} bytes");
    }

    // Bad requests get a status and a one-line reason.
    let local = "127.0.0.1";
    let api = "/api/sessions/demo";
    assert_error(
        &ui.base,
        &format!("{api}/timeline?from_ns=0&to_ns=9&lanes=x"),
        local,
        400,
        "lane ids",
    );
    assert_error(
        &ui.base,
        &format!("{api}/events?q=--colour+red"),
        local,
        400,
        "unknown filter 'colour'",
    );
    assert_error(
        &ui.base,
        &format!("{api}/events?q=kind:nope"),
        local,
        400,
        "unknown event kind 'nope'",
    );
    assert_error(
        &ui.base,
        &format!("{api}/inspect?pid=%3C0.99999.0%3E&at=end"),
        local,
        400,
        "no process",
    );
    assert_error(
        &ui.base,
        &format!("{api}/inspect?pid=Demo.Counter&at=soon"),
        local,
        400,
        "invalid time 'soon'",
    );
    assert_error(
        &ui.base,
        &format!("{api}/events/99999999"),
        local,
        400,
        "not in this session",
    );
    assert_error(
        &ui.base,
        "/api/sessions/nosuch/overview",
        local,
        404,
        "nosuch",
    );
    assert_error(&ui.base, "/nowhere", local, 404, "no such page");
    assert_error(
        &ui.base,
        "/api/sessions",
        "evil.example:80",
        403,
        "localhost",
    );
    let (status, _) = http_get(&ui.base, "/api/sessions", "localhost");
    assert_eq!(status, 200);
}

#[test]
fn the_ui_refuses_to_listen_beyond_loopback_and_names_unknown_sessions() {
    let home = Home::new();
    let out = home.run(&["ui", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("loopback only") && err.lines().count() == 1,
        "{err}"
    );
    let out = home.run(&["ui", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("nosuch") && err.lines().count() == 1, "{err}");
}

#[test]
fn live_mode_follows_a_running_capture() {
    require_beam();
    require_browser();
    let home = Home::new();
    let node = BeamNode::elixir(
        "uilive",
        &[],
        "spawn(fn -> Stream.repeatedly(fn -> pid = spawn(fn -> receive do x -> x end end); send(pid, :tick); Process.sleep(20) end) |> Stream.run() end)",
    );
    let (rec, rx) = start_recording(&home, &node, "live", &["--for", "60s"]);
    let ui = Ui::start(&home, "live");
    // The page is watched until it has followed the capture (or 30 s pass).
    let r = drive(
        "live.mjs",
        &[&ui.base, "live", screenshots().to_str().unwrap(), "30", "3"],
    );
    stop_recording(rec, rx);
    assert_eq!(
        r["errors"],
        serde_json::json!([]),
        "script errors in the page"
    );
    let counts: Vec<u64> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["events"].as_u64().unwrap())
        .collect();
    let rises = counts.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(
        rises >= 3,
        "the event count grew while recording: {counts:?}"
    );
    assert!(counts.windows(2).all(|w| w[1] >= w[0]), "{counts:?}");
    let requests: Vec<u64> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["timeline_requests"].as_u64().unwrap())
        .collect();
    assert!(
        requests.last() > requests.first(),
        "the timeline refetched as events came: {requests:?}"
    );
    let windows: Vec<&str> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["window"].as_str().unwrap())
        .collect();
    assert_ne!(
        windows.first(),
        windows.last(),
        "the window followed the capture"
    );
}

/// `/metrics` of the UI: what a Prometheus scraping it can use — the stored
/// sessions' totals, equal to what `show` says, and the UI's own requests,
/// as OpenMetrics.
#[test]
fn metrics_of_the_ui_are_the_stored_sessions_and_its_requests() {
    require_beam();
    let home = Home::new();
    let script = fixture("script.exs");
    let out = home.run(&[
        "run",
        "--session",
        "m",
        "--",
        "elixir",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let show = home.json(&["show", "m"]);
    let ui = Ui::start(&home, "m");
    for _ in 0..3 {
        assert_eq!(http_get(&ui.base, "/api/sessions", "127.0.0.1").0, 200);
    }
    let (status, text) = http_get(&ui.base, "/metrics", "127.0.0.1");
    assert_eq!(status, 200, "{text}");
    for (kind, n) in show["counts"].as_object().unwrap() {
        let line =
            format!("elixirscope_stored_session_events{{session=\"m\",kind=\"{kind}\"}} {n}");
        assert!(text.contains(&line), "no {line:?} in:\n{text}");
    }
    assert!(text.contains("elixirscope_stored_sessions 1\n"), "{text}");
    assert!(
        text.contains("elixirscope_stored_session_recording{session=\"m\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("elixirscope_ui_requests_total{route=\"/api/sessions\",status=\"200\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("elixirscope_ui_request_duration_seconds_count{route=\"/api/sessions\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE elixirscope_ui_requests counter\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}
