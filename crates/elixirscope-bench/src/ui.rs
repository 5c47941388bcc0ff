//! The web UI on a generated session: how long `elixirscope ui` takes to open
//! it, the timeline API's response times and sizes per zoom level, and — in
//! headless Chromium, when it is installed — time to first paint of the
//! timeline and fetch-and-draw times while zooming and panning.

use crate::store;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Timeline windows asked for at one zoom level.
pub struct Level {
    /// The whole session divided by this.
    pub zoom: u64,
    pub span_ns: i64,
    /// Share of answers that held single events (the rest: counts per bucket).
    pub detail_share: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub bytes_p50: usize,
}

/// What the browser saw.
pub struct Browser {
    pub first_paint_ms: f64,
    /// `(window text, fetch+draw ms, single events?)` per zoom step.
    pub zoom: Vec<(String, f64, bool)>,
    pub pans_ms: Vec<f64>,
}

pub struct UiResult {
    pub events: u64,
    pub lanes: usize,
    /// First request, the session not yet open: open + timeline index + lanes.
    pub open_ms: f64,
    pub levels: Vec<Level>,
    pub browser: Result<Browser, String>,
}

/// `GET path` on the UI server; the body and how long it took.
fn get(addr: &str, path: &str) -> (String, f64) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect to the UI");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("answer");
    let ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "GET {path}: {}",
        text.lines().next().unwrap_or("")
    );
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (body, ms)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub fn run(bin: &Path, events: u64) -> UiResult {
    let home = tempfile::tempdir().expect("tempdir");
    // A busy minute: one call/return/send/receive group every 60 µs.
    let g = store::generate(home.path(), "ui-bench", events, 60_000);
    let mut child = Command::new(bin)
        .args(["ui", "ui-bench", "--listen", "127.0.0.1:0"])
        .env("ELIXIRSCOPE_HOME", home.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start elixirscope ui");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .expect("the UI's address");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .and_then(|u| u.split("/#").next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let api = "/api/sessions/ui-bench";

    let (_, open_ms) = get(&addr, &format!("{api}/overview"));
    let (lanes_json, _) = get(&addr, &format!("{api}/lanes"));
    let lanes: Vec<serde_json::Value> = serde_json::from_str(&lanes_json).expect("lanes");
    // What a 900-pixel-high timeline shows.
    let visible: Vec<String> = lanes.iter().take(45).map(|l| l["id"].to_string()).collect();
    let visible = visible.join(",");

    let full = g.end - g.t0;
    let mut rng = 7u64;
    let mut next = || {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng >> 33
    };
    let mut levels = Vec::new();
    for zoom in [1u64, 10, 100, 1_000, 10_000, 100_000] {
        let span = (full / zoom as i64).max(1000);
        let (mut times, mut sizes, mut detail) = (Vec::new(), Vec::new(), 0);
        let rounds = 30;
        for _ in 0..rounds {
            let from = g.t0 + (next() % (full - span + 1).max(1) as u64) as i64;
            let path = format!(
                "{api}/timeline?from_ns={from}&to_ns={}&buckets=450&lanes={visible}",
                from + span
            );
            let (body, ms) = get(&addr, &path);
            times.push(ms);
            sizes.push(body.len() as f64);
            if body.contains("\"detail\":true") {
                detail += 1;
            }
        }
        levels.push(Level {
            zoom,
            span_ns: span,
            detail_share: detail as f64 / rounds as f64,
            p50_ms: percentile(&mut times, 0.5),
            p99_ms: percentile(&mut times, 0.99),
            bytes_p50: percentile(&mut sizes, 0.5) as usize,
        });
    }

    let browser = browser(&base);
    let _ = child.kill();
    let _ = child.wait();
    UiResult {
        events: g.events,
        lanes: lanes.len(),
        open_ms,
        levels,
        browser,
    }
}

/// Runs the browser script, or says why it could not.
fn browser(base: &str) -> Result<Browser, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../elixirscope-ui/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (run `make test` once)".into());
    }
    let out = Command::new("node")
        .arg("paint.mjs")
        .args([base, "ui-bench"])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("node failed")
            .to_owned());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("paint.mjs: {e}"))?;
    if v["errors"].as_array().is_some_and(|e| !e.is_empty()) {
        return Err(format!("script errors in the page: {}", v["errors"]));
    }
    let ms = |s: &serde_json::Value| s["ms"].as_f64().unwrap_or(f64::NAN);
    Ok(Browser {
        first_paint_ms: v["first_paint_ms"].as_f64().unwrap_or(f64::NAN),
        zoom: v["zoom"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    s["window"].as_str().unwrap_or("").to_owned(),
                    ms(s),
                    s["detail"] == true,
                )
            })
            .collect(),
        pans_ms: v["pans"].as_array().into_iter().flatten().map(ms).collect(),
    })
}

/// The section for docs/performance.md.
pub fn render(r: &UiResult) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Web UI on a generated {}-event session\n\n\
         {} processes (lanes). `elixirscope ui` answers the first request — opening the session, \
         indexing its timeline, ordering its lanes — in **{:.0} ms**.\n\n\
         Timeline API, 45 visible lanes, 450 buckets, 30 random windows per zoom level:\n\n\
         | window | single events in the answer | p50 | p99 | answer size (p50) |\n|---|---|---|---|---|",
        r.events, r.lanes, r.open_ms
    );
    for l in &r.levels {
        let _ = writeln!(
            out,
            "| 1/{} of the session ({}) | {:.0} % | {:.1} ms | {:.1} ms | {:.1} KiB |",
            l.zoom,
            elixirscope_query::render::duration(l.span_ns as u64),
            l.detail_share * 100.0,
            l.p50_ms,
            l.p99_ms,
            l.bytes_p50 as f64 / 1024.0
        );
    }
    match &r.browser {
        Ok(b) => {
            let mut zoom: Vec<f64> = b.zoom.iter().map(|z| z.1).collect();
            let mut pans = b.pans_ms.clone();
            let first_detail = b.zoom.iter().position(|z| z.2);
            let _ = writeln!(
                out,
                "\nIn headless Chromium (1600×900): **time to first paint of the timeline {:.0} ms** \
                 (from navigation: page, scripts, overview, lanes, first window). Zooming in 20 steps of ×2 \
                 (single events from step {}): fetch + draw p50 {:.0} ms, max {:.0} ms; \
                 8 drags: p50 {:.0} ms, max {:.0} ms.",
                b.first_paint_ms,
                first_detail.map_or("–".into(), |i| (i + 1).to_string()),
                percentile(&mut zoom, 0.5),
                percentile(&mut zoom, 1.0),
                percentile(&mut pans, 0.5),
                percentile(&mut pans, 1.0),
            );
        }
        Err(why) => {
            let _ = writeln!(out, "\nBrowser figures not measured: {why}.");
        }
    }
    out
}
