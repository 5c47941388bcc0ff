//! The NIF tracer against real nodes: it records the same events as the
//! process tracer for the same workload, it is chosen automatically and the
//! session says which tracer ran (and why not the NIF), and when the collector
//! stops reading its rings fill up and drop, counted, while the node's memory
//! stays bounded and it keeps answering. (RPC latencies are printed, not
//! asserted: other tests share the machine.)

mod common;

use common::{fixture, require_beam, stderr, stdout, BeamNode, Home, Probe, Probed};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const PLANTED: &[&str] = &["PLANTED-STATE", "PLANTED-ARG", "PLANTED-TOKEN", "4111 1111"];

fn record_equivalence(home: &Home, session: &str, tracer: &str) {
    let script = fixture("equivalence.exs");
    let out = home.run(&[
        "run",
        "--session",
        session,
        "--tracer",
        tracer,
        "--state",
        "Equiv.Counter",
        "--trace",
        "Equiv.Math._/_",
        "--redact-arg",
        "Equiv.Math.login/2=2",
        "--",
        "elixir",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{tracer}: {}", stderr(&out));
}

/// Pids and references renamed by order of first appearance, so two runs
/// of the same program compare equal.
struct Normalizer(BTreeMap<String, String>);

impl Normalizer {
    fn apply(&mut self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = ["#PID<", "#Reference<", "<0.", "#Function<"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
        {
            let end = at + rest[at..].find('>').map_or(rest.len() - at, |e| e + 1);
            out.push_str(&rest[..at]);
            let token = &rest[at..end];
            let n = self.0.len();
            let name = self.0.entry(token.to_owned()).or_insert(format!("P{n}"));
            out.push_str(name);
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}

/// The events of one process (or of one kind) as comparable lines, grouped by
/// the process they happened in: within a process the order is the VM's;
/// between processes running at the same time it is not defined, and the two
/// tracers timestamp at slightly different moments.
fn lines(home: &Home, session: &str, filter: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["events", session, "--full", "--limit", "1000000"];
    args.extend_from_slice(filter);
    let v = home.json(&args);
    let mut groups: Vec<(String, Vec<&serde_json::Value>)> = Vec::new();
    for e in v["events"].as_array().unwrap() {
        let pid = e["pid"].as_str().unwrap_or("").to_owned();
        match groups.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, g)) => g.push(e),
            None => groups.push((pid, vec![e])),
        }
    }
    let mut out: Vec<Vec<String>> = groups
        .into_iter()
        .map(|(_, events)| {
            let mut norm = Normalizer(BTreeMap::new());
            events
                .iter()
                .map(|e| {
                    let field = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                    format!(
                        "{} {} {} {} {}",
                        field("kind"),
                        norm.apply(&field("pid")),
                        field("mfa"),
                        norm.apply(&field("term")),
                        norm.apply(&field("term2"))
                    )
                })
                .collect()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn both_tracers_record_the_same_workload() {
    require_beam();
    let home = Home::new();
    record_equivalence(&home, "by-process", "process");
    record_equivalence(&home, "by-nif", "nif");

    let show = |s: &str| home.json(&["show", s]);
    let (p, n) = (show("by-process"), show("by-nif"));
    assert_eq!(p["tracers"][0]["tracer"], "process", "{p}");
    assert_eq!(n["tracers"][0]["tracer"], "nif", "{n}");
    assert_eq!(p["dropped"], 0);
    assert_eq!(n["dropped"], 0);
    // The same redaction rules fired (the NIF tracer writes a GenServer's
    // state once per change where the process tracer writes it in every
    // callback's arguments and result, so it redacts fewer copies).
    let rules = |v: &serde_json::Value| -> Vec<String> {
        let mut r: Vec<String> = v["redactions"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        r.sort();
        r
    };
    assert_eq!(rules(&p), rules(&n), "{p} vs {n}");
    assert!(n["redactions"]["argument"].as_u64() >= Some(1), "{n}");
    assert!(n["redactions"]["card"].as_u64() >= Some(1), "{n}");
    // Counts of the workload's kinds agree (the VM's own boot traffic around
    // them may differ by a message or two between any two runs).
    for kind in ["call", "return", "exception", "state"] {
        assert_eq!(p["counts"][kind], n["counts"][kind], "{kind}: {p} vs {n}");
    }
    // Equiv.Math: 50 squares, login, fail; Equiv.Counter's callbacks: init,
    // 22 handle_call, 21 handle_cast, 1 handle_info.
    assert_eq!(n["counts"]["call"], 52 + 1 + 22 + 21 + 1);

    // Every event of the GenServer and of the ping-pong partner, in order,
    // with its terms; traced calls with their arguments and results.
    for filter in [
        &["--pid", "Equiv.Counter"][..],
        &["--pid", "equiv_pong"],
        &["--kind", "call"],
        &["--kind", "return"],
        &["--kind", "exception"],
        &["--kind", "state"],
    ] {
        let (a, b) = (
            lines(&home, "by-process", filter),
            lines(&home, "by-nif", filter),
        );
        assert!(!a.is_empty(), "{filter:?}: no events");
        let (a, b): (Vec<String>, Vec<String>) = (a.concat(), b.concat());
        if a != b {
            let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            let around = |v: &[String]| v[at.saturating_sub(2)..(at + 3).min(v.len())].join("\n  ");
            panic!(
                "{filter:?} differs between the tracers at event {at} ({} vs {} events):\nprocess tracer:\n  {}\nNIF tracer:\n  {}",
                a.len(),
                b.len(),
                around(&a),
                around(&b)
            );
        }
    }

    // Neither tracer let a planted secret out.
    for s in ["by-process", "by-nif"] {
        let out = home.run(&["events", s, "--full", "--limit", "1000000"]);
        let text = stdout(&out);
        for secret in PLANTED {
            assert!(!text.contains(secret), "{s} leaked {secret}");
        }
    }
}

#[test]
fn an_unavailable_nif_falls_back_and_says_why_unless_it_was_asked_for() {
    require_beam();
    let home = Home::new();
    let script = fixture("script.exs");
    let missing = home.path().join("no-such-library.so");
    let run = |tracer: &str, session: &str| {
        home.cmd(&[
            "run",
            "--session",
            session,
            "--tracer",
            tracer,
            "--",
            "elixir",
        ])
        .arg(&script)
        .env("ELIXIRSCOPE_NIF", &missing)
        .output()
        .unwrap()
    };
    let forced = run("nif", "forced");
    assert_eq!(forced.status.code(), Some(1), "{}", stderr(&forced));
    let err = stderr(&forced);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("the NIF tracer cannot run") && err.contains("ELIXIRSCOPE_NIF"),
        "{err}"
    );

    let auto = run("auto", "fallback");
    assert!(auto.status.success(), "{}", stderr(&auto));
    assert!(
        stdout(&auto).contains("process tracer (ELIXIRSCOPE_NIF is"),
        "{}",
        stdout(&auto)
    );
    let o = home.json(&["show", "fallback"]);
    assert_eq!(o["tracers"][0]["tracer"], "process", "{o}");
    assert!(
        o["tracers"][0]["note"]
            .as_str()
            .unwrap_or("")
            .contains("not a file"),
        "{o}"
    );
    assert!(o["counts"]["spawn"].as_u64() > Some(0), "{o}");
}

/// Node memory may grow by the rings (2 scheduler threads at most record
/// here), the tracer's queue for the collector (16 MB in the default profile)
/// and the batches in flight, plus slack for everything else; never with the
/// amount of load.
const RING_BYTES: u64 = 2 << 20;
const BOUND: u64 = 2 * RING_BYTES + (16 << 20) + (2 << 20) + (16 << 20);

#[test]
fn full_rings_drop_and_count_while_the_node_keeps_answering() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("fill", &[fixture("flood.ex")], ":ok");
    // 16 MB of tracer memory over 4 scheduler threads gives 2 MB rings.
    let rec = home
        .cmd(&[
            "record",
            &node.name,
            "--cookie",
            &node.cookie,
            "--session",
            "fill",
            "--tracer",
            "nif",
            "--max-tracer-memory",
            "16MB",
            "--max-rate",
            "1000000000",
            "--max-bytes-rate",
            "100GB",
            "--max-backlog",
            "100000000",
            "--max-tracer-cpu",
            "100%",
            "--lease",
            "120s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let up = node.wait_until_traced();
    assert!(up, "capture never started");

    let before: u64 = node.eval("erlang:memory(total)").parse().unwrap();
    // The collector stops reading (for less than the socket's 5 s send
    // timeout, after which the agent would give up and leave); the node floods.
    let probe = Probe::start(&node, 3);
    let pid = rec.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let stopped = std::time::Instant::now();
    let started = node.eval("'Elixir.Flood':start(2)");
    assert_eq!(started, "ok");
    // Polled on the node itself, every 20 ms for up to 3 s (well within the
    // 5 s the agent waits for a stalled collector): until the rings drop.
    let ring_drops: u64 = node
        .eval(
            "Poll = fun Poll(N) -> {ok, St} = elixirscope_nif_tracer:stats(), \
               case maps:get(dropped, St) of \
                 0 when N > 0 -> timer:sleep(20), Poll(N - 1); \
                 D -> D \
               end \
             end, Poll(150)",
        )
        .parse()
        .expect("a count of drops");
    assert!(ring_drops > 0, "the rings never filled");
    eprintln!(
        "fill: the rings had dropped {ring_drops} events {:?} after the collector stopped",
        stopped.elapsed()
    );
    let probed = probe.finish();
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    node.eval("[exit(P, kill) || P <- erlang:processes(), {current_function, {'Elixir.Flood', _, _}} <- [erlang:process_info(P, current_function)]]");
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let out = rec.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let Probed {
        max_latency_us,
        max_memory,
        samples,
        failures,
        ..
    } = probed;
    let growth = max_memory.saturating_sub(before);
    let o = home.json(&["show", "fill"]);
    eprintln!(
        "fill: ring drops {ring_drops}; session dropped {}; node memory +{} KB; max RPC latency {} ms over {samples} samples",
        o["dropped"],
        growth / 1024,
        max_latency_us / 1000
    );
    // The node answered every call while its rings were full (each within
    // the probe's 5 s timeout), many times over in the probe's 3 s.
    assert_eq!(
        failures, 0,
        "{failures} probe calls failed ({samples} answered)"
    );
    assert!(samples >= 10, "only {samples} probe calls answered in 3 s");
    assert!(
        o["dropped"].as_u64() >= Some(ring_drops),
        "session counts {} dropped, the rings alone {ring_drops}",
        o["dropped"]
    );
    assert_eq!(o["trips"].as_array().map(Vec::len), Some(0), "{o}");
    assert!(growth < BOUND, "node memory grew by {growth} bytes");
    // Everything recorded before and after the stall is in the session.
    assert!(o["events"].as_u64() > Some(1000), "{o}");
}
