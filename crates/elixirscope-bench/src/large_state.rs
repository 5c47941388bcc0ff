//! The large-state workload: a GenServer whose state is about 50 MB (a map of
//! 200,000 entries) under steady client calls (8 clients, a pause of 1 ms
//! after each call, one call in ten a write). Client call latency p50/p99 and
//! the node's CPU time per call, untraced, under dbg's counting process
//! tracer on the server, and under `elixirscope record` with each tracer with
//! and without `--state` — all in the same run, rounds alternating.

use crate::node::{BigRun, Node};
use crate::recorder::stored_events;
use elixirscope_store::{EventKind, SessionReader};
use std::fmt::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const ENTRIES: u64 = 200_000;
const CLIENTS: u64 = 8;
const PAUSE_MS: u64 = 1;
const MILLIS: u64 = 3_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Untraced,
    Dbg,
    Nif,
    NifState,
    Process,
    ProcessState,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Untraced,
        Variant::Dbg,
        Variant::Nif,
        Variant::NifState,
        Variant::Process,
        Variant::ProcessState,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::Untraced => "untraced",
            Variant::Dbg => "dbg process tracer on the server (messages, handle_call/3)",
            Variant::Nif => "elixirscope, NIF tracer, no --state",
            Variant::NifState => "elixirscope, NIF tracer, --state",
            Variant::Process => "elixirscope, process tracer, no --state",
            Variant::ProcessState => "elixirscope, process tracer, --state",
        }
    }

    fn recorder(self) -> Option<(&'static str, bool)> {
        match self {
            Variant::Nif => Some(("nif", false)),
            Variant::NifState => Some(("nif", true)),
            Variant::Process => Some(("process", false)),
            Variant::ProcessState => Some(("process", true)),
            _ => None,
        }
    }
}

/// One round of one variant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub run: BigRun,
    /// State events of the server, and its callbacks, recorded.
    pub states: u64,
    pub callbacks: u64,
    pub degraded: u64,
    pub dropped: u64,
    pub tripped: bool,
}

pub struct LargeStateResult {
    pub heap_bytes: u64,
    pub samples: Vec<Vec<Sample>>,
}

pub fn run(bin: &Path, home: &Path, node: &Node, rounds: usize) -> LargeStateResult {
    let heap_bytes = node.big_start(ENTRIES);
    eprintln!(
        "large state: server heap {} MB, {CLIENTS} clients",
        heap_bytes >> 20
    );
    node.big_clients(CLIENTS, 500, PAUSE_MS, false);
    let mut samples = vec![Vec::new(); Variant::ALL.len()];
    for round in 0..rounds {
        let mut line = format!("  round {} large-state", round + 1);
        for k in 0..Variant::ALL.len() {
            let v = Variant::ALL[(k + round) % Variant::ALL.len()];
            let s = match v.recorder() {
                None => Sample {
                    run: node.big_clients(CLIENTS, MILLIS, PAUSE_MS, v == Variant::Dbg),
                    ..Sample::default()
                },
                Some((tracer, state)) => recorded(bin, home, node, tracer, state, round),
            };
            line.push_str(&format!(" {:?} p50 {}µs", v, s.run.p50_ns / 1000));
            samples[v as usize].push(s);
        }
        eprintln!("{line}");
    }
    node.big_stop();
    LargeStateResult {
        heap_bytes,
        samples,
    }
}

fn recorded(
    bin: &Path,
    home: &Path,
    node: &Node,
    tracer: &str,
    state: bool,
    round: usize,
) -> Sample {
    let session = format!("big-{tracer}-{state}-{round}");
    let mut args = vec![
        "record".to_owned(),
        node.name.clone(),
        "--cookie".into(),
        node.cookie.value.clone(),
        "--session".into(),
        session.clone(),
        "--tracer".into(),
        tracer.into(),
        // Full capture all the time: the cost of capturing, not of the
        // governor's degradations.
        "--max-tracer-cpu".into(),
        "100%".into(),
        "--max-rate".into(),
        "1000000000".into(),
        "--max-bytes-rate".into(),
        "100GB".into(),
    ];
    if state {
        args.extend(["--state".into(), "bench_big".into()]);
    }
    let mut rec = Command::new(bin)
        .args(&args)
        .env("ELIXIRSCOPE_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start elixirscope record");
    let dir = home.join("sessions").join(&session);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_events(&dir) == 0 {
        assert!(Instant::now() < deadline, "recording did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = node.big_clients(CLIENTS, MILLIS, PAUSE_MS, false);
    let _ = Command::new("kill")
        .args(["-INT", &rec.id().to_string()])
        .status();
    let _ = rec.wait();
    let mut s = Sample {
        run,
        ..Sample::default()
    };
    if let Ok(r) = SessionReader::open(&dir) {
        let m = r.meta();
        s.dropped = m.dropped;
        s.tripped = !m.trips.is_empty();
        for t in &m.trips {
            eprintln!(
                "    {session}: capture tripped: {} ({})",
                t.reason, t.detail
            );
        }
        for i in 0..r.blocks().len() {
            for e in r.block(i).iter() {
                match e.kind {
                    EventKind::State => s.states += 1,
                    EventKind::Return => s.callbacks += 1,
                    EventKind::Degrade => s.degraded += 1,
                    _ => {}
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The medians of one variant: (calls/s, p50 µs, p99 µs, CPU µs per call).
fn figures(samples: &[Sample]) -> (f64, f64, f64, f64) {
    let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    (
        m(&|s| s.run.calls as f64 / (MILLIS as f64 / 1000.0)),
        m(&|s| s.run.p50_ns as f64 / 1000.0),
        m(&|s| s.run.p99_ns as f64 / 1000.0),
        m(&|s| s.run.cpu_micros as f64 / s.run.calls.max(1) as f64),
    )
}

/// The section for docs/performance.md and the ratio the goal checks: the
/// NIF tracer's p50 with `--state` over its p50 without.
pub fn render(r: &LargeStateResult) -> (String, f64) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Large state: a GenServer holding {} MB (a map of {ENTRIES} entries)\n\n\
         {CLIENTS} clients call it without end for {} s per round, pausing {PAUSE_MS} ms after each call; \
         one call in ten writes an entry, the others read one. Latency is each `gen_server:call` as the client saw it; \
         node CPU per call is all the node's threads over the calls made. \
         The recordings run with `--max-tracer-cpu 100%` (the full capture's cost, no degradation).\n",
        r.heap_bytes >> 20,
        MILLIS / 1000
    );
    out.push_str(
        "| variant | calls/s | p50 µs | p99 µs | p50 × untraced | node CPU µs per call | states / callbacks recorded | degraded | dropped |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let untraced = figures(&r.samples[Variant::Untraced as usize]);
    for v in Variant::ALL {
        let s = &r.samples[v as usize];
        let (rate, p50, p99, cpu) = figures(s);
        let rec = v.recorder().is_some();
        let m = |f: &dyn Fn(&Sample) -> u64| median(s.iter().map(|x| f(x) as f64).collect());
        let _ = writeln!(
            out,
            "| {}{} | {:.0} | {:.1} | {:.1} | {:.2} | {:.1} | {} | {} | {} |",
            v.label(),
            if s.iter().any(|x| x.tripped) {
                " (tripped)"
            } else {
                ""
            },
            rate,
            p50,
            p99,
            p50 / untraced.1.max(1e-9),
            cpu,
            if rec {
                format!("{:.0} / {:.0}", m(&|x| x.states), m(&|x| x.callbacks))
            } else {
                "—".into()
            },
            if rec {
                format!("{:.0}", m(&|x| x.degraded))
            } else {
                "—".into()
            },
            if rec {
                format!("{:.0}", m(&|x| x.dropped))
            } else {
                "—".into()
            },
        );
    }
    out.push('\n');
    let nif = figures(&r.samples[Variant::Nif as usize]).1;
    let nif_state = figures(&r.samples[Variant::NifState as usize]).1;
    (out, nif_state / nif.max(1e-9))
}
