//! `elixirscope-bench`: what tracing costs, measured on a real node in one run.
//!
//! Three workloads (call-heavy, ping-pong messages, GenServer-heavy) run under
//! eight variants — untraced, an `erl_tracer` NIF that discards everything (the
//! floor no tracer can go under), the same NIF keeping every event but doing
//! nothing with it (what the VM spends delivering an event to any tracer that
//! keeps it), `dbg`'s process tracer, `dbg`'s ip trace
//! port, and `elixirscope record` with the process tracer, the NIF tracer, the
//! NIF tracer sampling 1 in 100, and the always-on profile (lifecycle and node
//! counters, no messages). Rounds alternate the variants (in a
//! rotating order); medians and min–max are reported with ns added per event,
//! × the floor, events/s into the store, drops, node and collector memory and
//! bytes on disk. Then the collector's ingest speed from recorded frames, and
//! store/query latencies on a generated session.
//!
//! Usage: `elixirscope-bench [--rounds R] [--scale F] [--store-events N]
//! [--write docs/performance.md]` (`make bench` builds release binaries and runs
//! it).

mod ingest;
mod large_state;
mod node;
mod recorder;
mod report;
mod store;
mod ui;

use node::{InNode, Node, Run};
use recorder::{Recorded, Setup};
use std::path::PathBuf;

pub struct Args {
    pub rounds: usize,
    pub scale: f64,
    pub store_events: u64,
    pub write: Option<PathBuf>,
    /// Keep the recorded frames here (and reuse them if the file exists).
    pub frames: Option<PathBuf>,
    pub ingest_only: bool,
    /// Size of the generated session for the web UI figures (0 skips them).
    pub ui_events: u64,
    pub ui_only: bool,
    /// Only the large-state workload.
    pub large_state_only: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        rounds: 5,
        scale: 1.0,
        store_events: 10_000_000,
        write: None,
        frames: None,
        ingest_only: false,
        ui_events: 1_000_000,
        ui_only: false,
        large_state_only: false,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, what: &str| -> f64 {
        v.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("error: {what} needs a number; see --help");
            std::process::exit(2)
        })
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => a.rounds = num(it.next(), "--rounds").max(1.0) as usize,
            "--scale" => a.scale = num(it.next(), "--scale"),
            "--store-events" => a.store_events = num(it.next(), "--store-events") as u64,
            "--write" => a.write = it.next().map(PathBuf::from),
            "--frames" => a.frames = it.next().map(PathBuf::from),
            "--ingest-only" => a.ingest_only = true,
            "--ui-events" => a.ui_events = num(it.next(), "--ui-events") as u64,
            "--ui-only" => a.ui_only = true,
            "--large-state-only" => a.large_state_only = true,
            "-h" | "--help" => {
                println!(
                    "usage: elixirscope-bench [--rounds R] [--scale F] [--store-events N] [--write FILE]\n\
                     --rounds R        rounds per variant (default 5)\n\
                     --scale F         workload size factor (default 1.0: 1 M calls, 250 k round trips, 100 k requests)\n\
                     --store-events N  size of the generated session for store/query figures (default 10 M; 0 skips)\n\
                     --write FILE      put the results table into FILE (between its bench markers)\n\
                     --frames FILE     keep the recorded frames in FILE, or reuse them if it exists\n\
                     --ingest-only     only measure the collector's ingest (with --frames FILE, recorded first if missing)\n\
                     --ui-events N     size of the generated session for the web UI figures (default 1 M; 0 skips)\n\
                     --ui-only         only measure the web UI (API per zoom level, first paint in Chromium)\n\
                     --large-state-only  only the large-state workload (a 50 MB GenServer state under client calls)"
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("error: unknown argument {other}; see --help");
                std::process::exit(2);
            }
        }
    }
    a
}

/// The variants, in the table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Untraced,
    Floor,
    Deliver,
    DbgProcess,
    DbgIp,
    EsProcess,
    EsNif,
    EsNifSampled,
    EsAlwaysOn,
}

impl Variant {
    pub const ALL: [Variant; 9] = [
        Variant::Untraced,
        Variant::Floor,
        Variant::Deliver,
        Variant::DbgProcess,
        Variant::DbgIp,
        Variant::EsProcess,
        Variant::EsNif,
        Variant::EsNifSampled,
        Variant::EsAlwaysOn,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Variant::Untraced => "untraced",
            Variant::Floor => "NIF discard floor",
            Variant::Deliver => "NIF keeping every event, trace/5 empty",
            Variant::DbgProcess => "dbg process tracer (counting fun)",
            Variant::DbgIp => "dbg ip trace port (client counts)",
            Variant::EsProcess => "elixirscope, process tracer",
            Variant::EsNif => "elixirscope, NIF tracer",
            Variant::EsNifSampled => "elixirscope, NIF tracer, 1 in 100",
            Variant::EsAlwaysOn => "elixirscope, always-on profile (NIF)",
        }
    }

    fn recorder(self) -> Option<Setup> {
        match self {
            Variant::EsProcess => Some(Setup {
                tracer: "process",
                sample: 1,
                profile: "deep-dive",
            }),
            Variant::EsNif => Some(Setup {
                tracer: "nif",
                sample: 1,
                profile: "deep-dive",
            }),
            Variant::EsNifSampled => Some(Setup {
                tracer: "nif",
                sample: 100,
                profile: "deep-dive",
            }),
            Variant::EsAlwaysOn => Some(Setup {
                tracer: "nif",
                sample: 100,
                profile: "always-on",
            }),
            _ => None,
        }
    }
}

/// A workload and its size at scale 1.
pub struct Workload {
    pub name: &'static str,
    pub title: &'static str,
    pub size: u64,
}

pub const WORKLOADS: [Workload; 3] = [
    Workload {
        name: "calls",
        title: "Call-heavy: 100 processes call a one-line function (call + return events)",
        size: 1_000_000,
    },
    Workload {
        name: "pingpong",
        title: "Message-heavy: 4 pairs of processes ping-pong (send + receive events)",
        size: 250_000,
    },
    Workload {
        name: "genserver",
        title: "GenServer-heavy: 8 clients, 4 GenServers with map state; half calls, half casts (messages, callbacks, state)",
        size: 100_000,
    },
];

/// One variant's run in one round.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub run: Run,
    pub recorded: Option<Recorded>,
}

fn nif_library(bin: &std::path::Path) -> PathBuf {
    let lib = bin.with_file_name("libelixirscope_nif_tracer.so");
    if !lib.exists() {
        eprintln!(
            "error: {} is missing (run `make bench`, which builds it)",
            lib.display()
        );
        std::process::exit(2);
    }
    lib
}

/// The `elixirscope` binary next to this one.
fn elixirscope_binary() -> PathBuf {
    let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("elixirscope")))
        .filter(|p| p.exists())
    else {
        eprintln!(
            "error: the elixirscope binary must sit next to elixirscope-bench (run `make bench`)"
        );
        std::process::exit(2);
    };
    bin
}

/// The web UI figures, printed and returned as their section.
fn run_ui(bin: &std::path::Path, events: u64) -> String {
    eprintln!("ui: generating a {events}-event session and opening it in the UI");
    let text = ui::render(&ui::run(bin, events));
    println!("{text}");
    text
}

fn main() {
    let args = parse_args();
    if args.ingest_only {
        let Some(file) = args.frames.as_ref() else {
            eprintln!("error: --ingest-only needs --frames FILE (recorded there first if it does not exist)");
            std::process::exit(2);
        };
        if !file.exists() {
            let file = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            eprintln!(
                "ingest: recording frames from a node into {}",
                file.display()
            );
            Node::start().record_frames(&file, (200_000.0 * args.scale) as u64);
        }
        let r = ingest::run(file, args.rounds);
        for s in &r.secs {
            println!(
                "{} events in {:.3} s: {:.2} M events/s",
                r.events,
                s,
                r.events as f64 / s / 1e6
            );
        }
        return;
    }
    let bin = elixirscope_binary();
    if args.ui_only {
        let text = run_ui(&bin, args.ui_events.max(1));
        if let Some(path) = &args.write {
            report::write_into(path, report::UI_MARKERS, &text);
            eprintln!("wrote {}", path.display());
        }
        return;
    }
    let lib = nif_library(&bin);
    let home = tempfile::tempdir().expect("tempdir");
    let node = Node::start();
    eprintln!(
        "benchmark: node {}, {} rounds, scale {}",
        node.name, args.rounds, args.scale
    );
    if args.large_state_only {
        let r = large_state::run(&bin, home.path(), &node, args.rounds);
        let (text, ratio) = large_state::render(&r);
        println!("{text}\nNIF p50 with --state / without: {ratio:.2}×");
        return;
    }
    let mut results: Vec<Vec<Vec<Sample>>> =
        vec![vec![Vec::new(); Variant::ALL.len()]; WORKLOADS.len()];
    // Warm-up: load code, grow heaps.
    for w in &WORKLOADS {
        node.run(w.name, w.size / 10, InNode::Untraced);
    }
    for round in 0..args.rounds {
        for (wi, w) in WORKLOADS.iter().enumerate() {
            let size = ((w.size as f64) * args.scale).max(100.0) as u64;
            let expected = results[wi][Variant::DbgProcess as usize]
                .first()
                .map_or(0, |s: &Sample| s.run.trace_messages);
            let n = Variant::ALL.len();
            let mut line = format!("  round {} {:<9}", round + 1, w.name);
            for k in 0..n {
                let v = Variant::ALL[(k + round) % n];
                let sample = match v.recorder() {
                    None => Sample {
                        run: node.run(
                            w.name,
                            size,
                            match v {
                                Variant::Untraced => InNode::Untraced,
                                Variant::Floor => InNode::Floor(&lib),
                                Variant::Deliver => InNode::Deliver(&lib),
                                Variant::DbgProcess => InNode::DbgProcess,
                                _ => InNode::DbgIp,
                            },
                        ),
                        recorded: None,
                    },
                    Some(setup) => {
                        let session = format!("{}-{:?}-{}", w.name, v, round).to_lowercase();
                        let r = recorder::round(
                            &bin,
                            home.path(),
                            &node,
                            w.name,
                            size,
                            expected.max(size),
                            setup,
                            &session,
                        );
                        // Measured; the disk is needed for the next rounds.
                        let _ =
                            std::fs::remove_dir_all(home.path().join("sessions").join(&session));
                        Sample {
                            run: r.run,
                            recorded: Some(r),
                        }
                    }
                };
                line.push_str(&format!(" {:?} {:.0}ms", v, sample.run.micros / 1000.0));
                results[wi][v as usize].push(sample);
            }
            eprintln!("{line}");
        }
    }

    let large = large_state::run(&bin, home.path(), &node, args.rounds);

    let frames_file = args
        .frames
        .as_deref()
        .and_then(|f| std::path::absolute(f).ok())
        .unwrap_or_else(|| node.dir().join("frames.bin"));
    if frames_file.exists() {
        eprintln!("ingest: reusing the frames in {}", frames_file.display());
    } else {
        eprintln!("ingest: recording frames from the node");
        node.record_frames(&frames_file, (200_000.0 * args.scale) as u64);
    }
    let ingest = ingest::run(&frames_file, 3);
    eprintln!(
        "ingest: {} events in {} frames",
        ingest.events, ingest.frames
    );
    let store = (args.store_events > 0).then(|| {
        eprintln!("store: generating a {}-event session", args.store_events);
        store::run(args.store_events)
    });
    let text = report::render(&report::Inputs {
        args: &args,
        otp: node.otp_release(),
        results: &results,
        ingest: &ingest,
        store: store.as_ref(),
        large: Some(&large),
    });
    println!("{text}");
    let ui_text = (args.ui_events > 0).then(|| run_ui(&bin, args.ui_events));
    if let Some(path) = &args.write {
        report::write_into(path, report::MARKERS, &text);
        if let Some(t) = &ui_text {
            report::write_into(path, report::UI_MARKERS, t);
        }
        eprintln!("wrote {}", path.display());
    }
}
