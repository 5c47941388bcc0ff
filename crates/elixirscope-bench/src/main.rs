//! `elixirscope-bench`: tracing overhead on a call-heavy workload, measured on a
//! real node in one run against two baselines: untraced, and `dbg`'s process
//! tracer. Rounds alternate between variants; medians and min–max are printed,
//! with ratios, events/s into the store and bytes on disk per event.
//!
//! Usage: `elixirscope-bench [--calls N] [--rounds R] [--write docs/performance.md]`
//! (`make bench` builds release binaries and runs it).

mod store;

use elixirscope_capture::{Cookie, NodeConnection};
use elixirscope_store::SessionReader;
use elixirscope_term::Term;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKLOAD: &str = r#"
-module(bench_work).
-export([run/1, run_dbg/1, tiny/1]).

tiny(X) -> X + 1.

loop(0, Acc) -> Acc;
loop(N, Acc) -> loop(N - 1, tiny(Acc)).

%% Microseconds to make N calls of tiny/1.
run(N) ->
    T0 = erlang:monotonic_time(microsecond),
    loop(N, 0),
    erlang:monotonic_time(microsecond) - T0.

%% The same under dbg's process tracer with a fun that only counts, and the
%% same match spec ElixirScope uses (calls and returns). Returns microseconds.
run_dbg(N) ->
    Parent = self(),
    {ok, _} = dbg:tracer(process, {fun(_, C) -> C + 1 end, 0}),
    {ok, _} = dbg:p(Parent, [c]),
    {ok, _} = dbg:tpl(bench_work, tiny, 1, [{'_', [], [{exception_trace}]}]),
    T = run(N),
    dbg:p(Parent, [clear]),
    dbg:stop(),
    T.
"#;

struct Args {
    calls: u64,
    rounds: usize,
    store_events: u64,
    write: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        calls: 1_000_000,
        rounds: 5,
        store_events: 10_000_000,
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--calls" => a.calls = it.next().and_then(|v| v.parse().ok()).expect("--calls N"),
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds R"),
            "--write" => a.write = it.next().map(PathBuf::from),
            "--store-events" => {
                a.store_events = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--store-events N")
            }
            "-h" | "--help" => {
                println!("usage: elixirscope-bench [--calls N] [--rounds R] [--store-events N] [--write FILE]");
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

/// A node running the workload, killed on drop.
struct Node {
    child: Child,
    name: String,
    cookie: Cookie,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bench_work.erl"), WORKLOAD).expect("write workload");
    let ok = Command::new("erlc")
        .arg("-o")
        .arg(dir.path())
        .arg(dir.path().join("bench_work.erl"))
        .status()
        .expect("erlc (is Erlang installed? run `make bench`)");
    assert!(ok.success(), "workload did not compile");
    let name = format!("esbench{}@localhost", std::process::id());
    let cookie = Cookie {
        value: format!("bench{}", std::process::id()),
        source: "bench".into(),
    };
    let child = Command::new("erl")
        .args([
            "-noshell",
            "-sname",
            &name,
            "-setcookie",
            &cookie.value,
            "-pa",
        ])
        .arg(dir.path())
        .args([
            "-eval",
            "code:ensure_loaded(bench_work), timer:sleep(infinity).",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start erl");
    let node = Node {
        child,
        name,
        cookie,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if elixirscope_capture::dist::epmd_port(node.name.split('@').next().unwrap(), "localhost")
            .ok()
            .flatten()
            .is_some()
        {
            return node;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("benchmark node did not start");
}

/// Events stored so far, from the last block summary (cheap enough to poll).
fn stored_events(dir: &Path) -> u64 {
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

fn call(conn: &NodeConnection, f: &str, n: u64) -> Term {
    conn.rpc(
        "bench_work",
        f,
        vec![Term::Integer(n as i64)],
        Duration::from_secs(600),
    )
    .unwrap_or_else(|e| panic!("bench_work:{f} failed: {e}"))
}

/// One ElixirScope round: attach, run, wait until everything is stored, detach.
struct EsRound {
    micros: f64,
    stored: u64,
    ingest_secs: f64,
    bytes: u64,
}

fn elixirscope_round(
    bin: &Path,
    home: &Path,
    node: &Node,
    conn: &NodeConnection,
    calls: u64,
    round: usize,
) -> EsRound {
    let session = format!("bench-{round}");
    let mut rec = Command::new(bin)
        .args([
            "record",
            &node.name,
            "--cookie",
            &node.cookie.value,
            "--session",
            &session,
        ])
        .args([
            "--trace",
            "bench_work:tiny/1",
            "--profile",
            "deep-dive",
            "--no-messages",
        ])
        .args(["--max-events", "1000000000", "--max-rate", "1000000000"])
        .env("ELIXIRSCOPE_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start elixirscope record");
    let dir = home.join("sessions").join(&session);
    // Capture is on once the agent's setup event is stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_events(&dir) == 0 {
        assert!(Instant::now() < deadline, "recording did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = stored_events(&dir);
    let started = Instant::now();
    let micros = call(conn, "run", calls).as_i64().unwrap_or(0) as f64;
    let want = before + 2 * calls;
    let mut last = (0, Instant::now());
    let stored = loop {
        let n = stored_events(&dir);
        if n != last.0 {
            last = (n, Instant::now());
        }
        if n >= want || last.1.elapsed() > Duration::from_secs(2) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let ingest_secs = last.1.duration_since(started).as_secs_f64();
    let _ = Command::new("kill")
        .args(["-INT", &rec.id().to_string()])
        .status();
    let _ = rec.wait();
    let bytes = std::fs::metadata(dir.join("events-0000.seg"))
        .map(|m| m.len())
        .unwrap_or(0);
    if let Ok(r) = SessionReader::open(&dir) {
        let m = r.meta();
        for t in &m.trips {
            eprintln!(
                "  round {}: capture tripped: {} ({})",
                round + 1,
                t.reason,
                t.detail
            );
        }
        if m.dropped > 0 {
            eprintln!(
                "  round {}: the agent dropped {} events",
                round + 1,
                m.dropped
            );
        }
    }
    EsRound {
        micros,
        stored: stored - before,
        ingest_secs,
        bytes,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn range(v: &[f64]) -> String {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0}–{:.0}", min / 1000.0, max / 1000.0)
}

fn main() {
    let args = parse_args();
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("elixirscope")))
        .filter(|p| p.exists())
        .expect(
            "the elixirscope binary must sit next to elixirscope-bench (cargo build --release)",
        );
    let home = tempfile::tempdir().expect("tempdir");
    let node = start_node();
    let conn =
        NodeConnection::connect(&node.name, &node.cookie).expect("connect to the benchmark node");
    let n = args.calls;
    eprintln!(
        "benchmark: {n} calls of a tiny function, {} rounds, node {}",
        args.rounds, node.name
    );
    call(&conn, "run", n / 10); // warm up

    let (mut untraced, mut dbg, mut es) = (Vec::new(), Vec::new(), Vec::new());
    let mut es_rounds = Vec::new();
    for round in 0..args.rounds {
        untraced.push(call(&conn, "run", n).as_i64().unwrap_or(0) as f64);
        dbg.push(call(&conn, "run_dbg", n).as_i64().unwrap_or(0) as f64);
        let r = elixirscope_round(&bin, home.path(), &node, &conn, n, round);
        es.push(r.micros);
        eprintln!(
            "  round {}: untraced {:.0} ms, dbg {:.0} ms, elixirscope {:.0} ms ({} events stored in {:.2} s)",
            round + 1,
            untraced[round] / 1000.0,
            dbg[round] / 1000.0,
            r.micros / 1000.0,
            r.stored,
            r.ingest_secs
        );
        es_rounds.push(r);
    }
    let (mu, md, me) = (
        median(&mut untraced.clone()),
        median(&mut dbg.clone()),
        median(&mut es.clone()),
    );
    let events = 2 * n;
    let mut rates: Vec<f64> = es_rounds
        .iter()
        .map(|r| r.stored as f64 / r.ingest_secs)
        .collect();
    let rate = median(&mut rates);
    let mut bpe: Vec<f64> = es_rounds
        .iter()
        .map(|r| r.bytes as f64 / r.stored.max(1) as f64)
        .collect();
    let bytes_per_event = median(&mut bpe);
    let drops: u64 = es_rounds
        .iter()
        .map(|r| (2 * n).saturating_sub(r.stored))
        .sum();
    let per_event = |t: f64| (t - mu) * 1000.0 / events as f64;

    let mut table = String::new();
    table.push_str(&format!(
        "Call-heavy workload: {n} calls of a one-line function (2 events each: call + return), \
         median of {} rounds (min–max), OTP {} on {} cores.\n\n",
        args.rounds,
        otp_release(&conn),
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    ));
    table.push_str(
        "| variant | workload time ms | × untraced | ns added per event |\n|---|---|---|---|\n",
    );
    table.push_str(&format!(
        "| untraced | {:.0} ({}) | 1.00 | — |\n",
        mu / 1000.0,
        range(&untraced)
    ));
    table.push_str(&format!(
        "| dbg process tracer (counting fun) | {:.0} ({}) | {:.2} | {:.0} |\n",
        md / 1000.0,
        range(&dbg),
        md / mu,
        per_event(md)
    ));
    table.push_str(&format!(
        "| elixirscope (process tracer) | {:.0} ({}) | {:.2} | {:.0} |\n",
        me / 1000.0,
        range(&es),
        me / mu,
        per_event(me)
    ));
    table.push_str(&format!(
        "\nelixirscope vs dbg: {:.2}×. Into the store: {:.0} events/s end to end (workload start → last event stored), \
         {:.1} bytes on disk per event, {} events missing across rounds.\n",
        me / md,
        rate,
        bytes_per_event,
        drops
    ));
    if args.store_events > 0 {
        eprintln!("store: generating a {}-event session", args.store_events);
        let r = store::run(args.store_events);
        table.push_str(&format!(
            "\nStore and queries on a generated {}-event session (calls, returns, messages, state changes; 1,000 processes):\n\n\
             | figure | value |\n|---|---|\n\
             | append into the store (one thread, incl. compression and writes) | {:.2} M events/s |\n\
             | bytes on disk per event | {:.1} |\n\
             | open the session (index + dictionary) | {:.0} ms |\n\
             | state at T, p50 / p99 (300 random processes and moments) | {:.2} / {:.2} ms |\n\
             | 1 ms event window (≤ 1,000 events rendered), p50 / p99 | {:.2} / {:.2} ms |\n",
            r.events,
            r.events as f64 / r.append_secs / 1e6,
            r.bytes as f64 / r.events as f64,
            r.open_ms,
            r.state_ms.0,
            r.state_ms.1,
            r.window_ms.0,
            r.window_ms.1
        ));
    }
    println!("{table}");
    if let Some(path) = args.write {
        let mut f = std::fs::File::create(&path).expect("write results");
        writeln!(f, "{table}").expect("write results");
        eprintln!("wrote {}", path.display());
    }
}

fn otp_release(conn: &NodeConnection) -> String {
    conn.rpc(
        "erlang",
        "system_info",
        vec![Term::atom("otp_release")],
        Duration::from_secs(5),
    )
    .ok()
    .and_then(|t| elixirscope_capture::agent::charlist_text(&t))
    .unwrap_or_else(|| "?".into())
}
