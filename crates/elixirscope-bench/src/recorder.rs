//! ElixirScope variants: `elixirscope record` attached to the benchmark node
//! (process tracer, NIF tracer, NIF tracer sampling 1 in 100), the workload run
//! while it records, then wait until every event is stored, read the
//! collector's peak RSS, stop, and read the session's own figures.

use crate::node::{InNode, Node, Run};
use elixirscope_store::SessionReader;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one recorded run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recorded {
    pub run: Run,
    /// Events stored by the workload (the session's total minus what was
    /// there before the workload started).
    pub stored: u64,
    /// Seconds from the workload's start to its last event stored.
    pub ingest_secs: f64,
    pub dropped: u64,
    pub tripped: bool,
    pub collector_rss: u64,
    pub disk_bytes: u64,
}

/// Which tracer and sampling `elixirscope record` uses.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub tracer: &'static str,
    pub sample: u32,
    pub profile: &'static str,
}

/// Per-workload capture options, the same patterns the in-node tracers use.
fn workload_args(workload: &str) -> &'static [&'static str] {
    match workload {
        "calls" => &["--trace", "bench_work:tiny/1", "--no-messages"],
        "pingpong" => &[],
        // Callbacks with arguments and results, and the state they change.
        "genserver" => &["--state", "bench_work"],
        _ => &[],
    }
}

/// Budgets out of the way: every variant records everything (the process
/// tracer's mailbox may grow rather than trip).
const BIG_BUDGETS: [&str; 14] = [
    "--max-events",
    "1000000000",
    "--max-rate",
    "1000000000",
    "--max-bytes-rate",
    "100GB",
    "--max-backlog",
    "100000000",
    "--max-run-queue",
    "1000000",
    "--max-tracer-memory",
    "4GB",
    "--max-tracer-cpu",
    "100%",
];

/// Events stored so far, from the last block summary (cheap enough to poll).
pub fn stored_events(dir: &Path) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(dir.join("events.idx")) else {
        return 0;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let whole = len - len % elixirscope_store::block::SUMMARY_LEN as u64;
    let mut buf = vec![0u8; elixirscope_store::block::SUMMARY_LEN];
    let mut at = whole;
    while at >= buf.len() as u64 {
        at -= buf.len() as u64;
        if f.seek(SeekFrom::Start(at)).is_err() || f.read_exact(&mut buf).is_err() {
            return 0;
        }
        if let Some(s) = elixirscope_store::block::BlockSummary::decode(&buf) {
            if s.count > 0 {
                return s.end_id();
            }
        }
    }
    0
}

/// Peak resident set of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[allow(clippy::too_many_arguments)]
pub fn round(
    bin: &Path,
    home: &Path,
    node: &Node,
    workload: &str,
    size: u64,
    expected_events: u64,
    setup: Setup,
    session: &str,
) -> Recorded {
    let sample = setup.sample.to_string();
    let mut rec = Command::new(bin)
        .args([
            "record",
            &node.name,
            "--cookie",
            &node.cookie.value,
            "--session",
            session,
            "--tracer",
            setup.tracer,
            "--sample",
            &sample,
            "--profile",
            setup.profile,
        ])
        // The always-on profile is measured as deployed: lifecycle and node
        // counters, nothing chosen.
        .args(if setup.profile == "always-on" {
            &[][..]
        } else {
            workload_args(workload)
        })
        .args(if setup.profile == "always-on" {
            &[][..]
        } else {
            &BIG_BUDGETS[..]
        })
        .env("ELIXIRSCOPE_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start elixirscope record");
    let dir = home.join("sessions").join(session);
    // Capture is on once the agent's setup event is stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_events(&dir) == 0 {
        assert!(Instant::now() < deadline, "recording did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = stored_events(&dir);
    let started = Instant::now();
    let run = node.run(workload, size, InNode::Untraced);
    // Wait for the events to be stored: all expected ones and then quiet for
    // 300 ms (the capture also records spawns and exits), or no progress for
    // 2 s (sampling, drops).
    let want = before + expected_events / setup.sample.max(1) as u64;
    let mut last = (before, Instant::now());
    loop {
        let n = stored_events(&dir);
        if n != last.0 {
            last = (n, Instant::now());
        }
        let quiet = last.1.elapsed();
        if (n >= want && quiet > Duration::from_millis(300)) || quiet > Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ingest_secs = last.1.duration_since(started).as_secs_f64();
    let collector_rss = peak_rss(rec.id());
    let _ = Command::new("kill")
        .args(["-INT", &rec.id().to_string()])
        .status();
    let _ = rec.wait();
    let disk_bytes = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let (mut dropped, mut tripped) = (0, false);
    if let Ok(r) = SessionReader::open(&dir) {
        let m = r.meta();
        dropped = m.dropped;
        for t in &m.trips {
            tripped = true;
            eprintln!(
                "    {session}: capture tripped: {} ({})",
                t.reason, t.detail
            );
        }
    }
    Recorded {
        run,
        stored: last.0 - before,
        ingest_secs,
        dropped,
        tripped,
        collector_rss,
        disk_bytes,
    }
}
