//! A GenServer whose state is about 50 MB (a map of 200,000 entries), called
//! without end by its clients, recorded with `--state` under each tracer: the
//! capture stays within its limits and says so, the node keeps answering,
//! the process tracer refuses to copy a state that large, and a tracer-CPU
//! budget set low degrades the state capture step by step and then trips.
//! A small state shows the same limits on toy data.

mod common;

use common::{fixture, require_beam, stderr, stdout, BeamNode, Home};
use serde_json::Value;

const ENTRIES: u64 = 200_000;

fn big_state_node(entries: u64, pause_ms: u64) -> BeamNode {
    let node = BeamNode::elixir(
        "bigstate",
        &[fixture("big_state.ex")],
        &format!("BigState.start({entries}, 4, {pause_ms}); Process.sleep(:infinity)"),
    );
    // The server builds its map before the clients start calling.
    for _ in 0..100 {
        if node.eval("is_pid(whereis('Elixir.BigState.Server'))") == "true" {
            return node;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("BigState.Server did not start");
}

fn calls(node: &BeamNode) -> u64 {
    let out = node.eval("'Elixir.BigState':calls()");
    out.parse()
        .unwrap_or_else(|_| panic!("BigState.calls() answered {out}"))
}

fn record(home: &Home, node: &BeamNode, session: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "record",
        node.name.as_str(),
        "--cookie",
        node.cookie.as_str(),
        "--session",
        session,
        "--state",
        "BigState.Server",
    ];
    args.extend_from_slice(extra);
    let out = home.run(&args);
    assert!(out.status.success(), "{session}: {}", stderr(&out));
    home.json(&["show", session])
}

fn events(home: &Home, session: &str, filter: &[&str]) -> Vec<Value> {
    let mut args = vec!["events", session, "--full", "--limit", "10000000"];
    args.extend_from_slice(filter);
    home.json(&args)["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_50_mb_state_is_captured_within_limits_under_each_tracer() {
    require_beam();
    let home = Home::new();
    let node = big_state_node(ENTRIES, 1);
    let heap: u64 = node
        .eval("{total_heap_size, W} = process_info(whereis('Elixir.BigState.Server'), total_heap_size), W * 8")
        .parse()
        .unwrap();
    assert!(heap > 40 << 20, "the server's heap is only {heap} bytes");

    // The NIF tracer: a state for every callback, cut to the limits.
    let before = calls(&node);
    // A tracer budget well above what this costs, so the machine's load
    // (tests run side by side) does not decide what is kept.
    let show = record(
        &home,
        &node,
        "nif",
        &["--tracer", "nif", "--for", "3s", "--max-tracer-cpu", "50%"],
    );
    let during = calls(&node) - before;
    assert_eq!(show["tracers"][0]["tracer"], "nif", "{show}");
    assert_eq!(show["trips"].as_array().map(Vec::len), Some(0), "{show}");
    assert!(
        during > 1_000,
        "the clients made only {during} calls while recorded"
    );
    let returns = events(
        &home,
        "nif",
        &["--kind", "return", "--pid", "BigState.Server"],
    );
    let states = events(
        &home,
        "nif",
        &["--kind", "state", "--pid", "BigState.Server"],
    );
    let degraded = events(&home, "nif", &["--kind", "degrade"]);
    assert!(
        returns.len() > 1_000,
        "{} callbacks recorded",
        returns.len()
    );
    if degraded.is_empty() {
        assert_eq!(
            states.len(),
            returns.len(),
            "every callback has its state (or a recorded degradation)"
        );
    }
    let biggest = states
        .iter()
        .map(|s| s["term"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(0);
    assert!(
        biggest < 256 << 10,
        "a stored state printed as {biggest} bytes"
    );
    assert!(states.iter().all(|s| s["truncated"] == true));
    let st = home.json(&["state", "nif", "BigState.Server", "--at", "end"]);
    let text = st["state"].as_str().unwrap();
    assert_eq!(st["truncated"], true, "{st}");
    let more = format!("… {} more", ENTRIES - 64);
    assert!(text.contains(&more), "no '{more}' in {}", &text[..300]);
    // Reads leave the state alone and say so; writes change its version.
    let unchanged = states
        .iter()
        .filter(|s| {
            s["summary"]
                .as_str()
                .unwrap_or("")
                .starts_with("state unchanged")
        })
        .count();
    assert!(
        unchanged > states.len() / 2,
        "{unchanged} of {} unchanged",
        states.len()
    );
    let changes = home.json(&["state", "nif", "BigState.Server", "--at", "end"]);
    let diff = changes["diff"].as_array().unwrap();
    assert!(
        diff.iter().any(|d| d["path"] == ".version"),
        "the last change's diff: {diff:?}"
    );

    // The process tracer: the VM would copy 50 MB into every event, so the
    // state callbacks of that process are not traced at all, and it says so.
    let before = calls(&node);
    let show = record(
        &home,
        &node,
        "process",
        &["--tracer", "process", "--for", "3s"],
    );
    let during = calls(&node) - before;
    assert_eq!(show["tracers"][0]["tracer"], "process", "{show}");
    assert!(
        during > 1_000,
        "the clients made only {during} calls while recorded"
    );
    let steps = show["degraded"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{show}");
    assert_eq!(steps[0]["level"], 3);
    assert_eq!(steps[0]["name"], "BigState.Server");
    assert!(
        steps[0]["why"]
            .as_str()
            .unwrap()
            .contains("--max-state-heap"),
        "{steps:?}"
    );
    let states = events(
        &home,
        "process",
        &["--kind", "state", "--pid", "BigState.Server"],
    );
    assert!(states.is_empty(), "{} states copied", states.len());
    let st = home.json(&["state", "process", "BigState.Server", "--at", "end"]);
    assert!(
        st["degraded"].as_str().unwrap_or("").contains("level 3"),
        "{st}"
    );
    // Detached: the node is left as found and answers.
    assert_eq!(node.eval("erlang:trace_info(new, flags)"), "{flags,[]}");
    assert_eq!(node.eval("whereis(elixirscope_tracer)"), "undefined");
}

#[test]
fn a_low_tracer_cpu_budget_degrades_state_capture_then_trips() {
    require_beam();
    let home = Home::new();
    let node = big_state_node(ENTRIES, 1);
    let show = record(
        &home,
        &node,
        "budget",
        &[
            "--tracer",
            "nif",
            "--max-tracer-cpu",
            "0.05%",
            "--for",
            "10s",
        ],
    );
    assert_eq!(show["status"], "tripped", "{show}");
    assert_eq!(show["trips"][0]["reason"], "max_tracer_cpu", "{show}");
    let steps: Vec<u64> = show["degraded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["level"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3], "{show}");
    let why = show["degraded"][0]["why"].as_str().unwrap();
    assert!(
        why.contains("of scheduler time") && why.contains("budget 0.05 %"),
        "{why}"
    );
    // Callbacks that started after the last step carry no state (one that
    // was running when it was taken may still finish with its state).
    let last = show["degraded"][2]["event"].as_u64().unwrap();
    let off_at = events(&home, "budget", &["--kind", "degrade"])
        .iter()
        .find(|d| d["id"].as_u64() == Some(last))
        .and_then(|d| d["ts_ns"].as_i64())
        .unwrap();
    let states = events(
        &home,
        "budget",
        &["--kind", "state", "--pid", "BigState.Server"],
    );
    assert!(!states.is_empty());
    let later = states
        .iter()
        .filter(|s| s["ts_ns"].as_i64().unwrap() > off_at)
        .count();
    assert!(later <= 1, "{later} states after capture was turned off");
    assert!(node.eval("'Elixir.BigState':calls() > 0") == "true");
}

#[test]
fn a_state_growing_past_the_heap_limit_during_capture_stops_being_copied() {
    require_beam();
    let home = Home::new();
    let node = big_state_node(10, 2);
    let (rec, rx) = common::start_recording(
        &home,
        &node,
        "grow",
        &[
            "--state",
            "BigState.Server",
            "--tracer",
            "process",
            "--max-state-heap",
            "2MB",
            // The heap limit alone decides here, not the tracer's cost or
            // memory (the copies the VM made between the state's jump and the
            // tracer's next look at it wait in the tracer's queue).
            "--max-tracer-cpu",
            "100%",
            "--max-tracer-memory",
            "2GB",
        ],
    );
    assert!(node.wait_until_traced(), "capture never started");
    // Small at first: its states are recorded.
    let small = || {
        events(
            &home,
            "grow",
            &["--kind", "state", "--pid", "BigState.Server"],
        )
        .len()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while small() < 10 {
        assert!(std::time::Instant::now() < deadline, "no states recorded");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        node.eval("gen_server:call('Elixir.BigState.Server', {grow, 50000}, 60000)"),
        "ok"
    );
    // The heap is checked every second: the step that stops the copies is
    // level 3 (the governor may also have made the capture shallower first,
    // as the state grew).
    let off = || {
        events(&home, "grow", &["--kind", "degrade"])
            .into_iter()
            .find(|d| d["summary"].as_str().unwrap_or("").contains("level 3"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let step = loop {
        if let Some(d) = off() {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the growth was never noticed: {}",
            stdout(&home.run(&["show", "grow"]))
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    common::stop_recording(rec, rx);
    let why = step["summary"].as_str().unwrap();
    assert!(
        why.contains("2097152-byte limit") && why.contains("heap of"),
        "{why}"
    );
    // Before the step: states; after it (and a moment for callbacks already
    // traced): none.
    let at = step["ts_ns"].as_i64().unwrap();
    let states = events(
        &home,
        "grow",
        &["--kind", "state", "--pid", "BigState.Server"],
    );
    let before = states
        .iter()
        .filter(|s| s["ts_ns"].as_i64().unwrap() < at)
        .count();
    let after = states
        .iter()
        .filter(|s| s["ts_ns"].as_i64().unwrap() > at + 50_000_000)
        .count();
    assert!(before >= 10, "{before} states before the step");
    assert_eq!(after, 0, "states were still copied after the step");
    assert!(node.eval("'Elixir.BigState':calls() > 0") == "true");
}

#[test]
fn small_states_are_cut_at_the_limits_asked_for() {
    require_beam();
    let home = Home::new();
    let node = big_state_node(10, 5);
    record(
        &home,
        &node,
        "small",
        &["--tracer", "nif", "--max-term-elements", "4", "--for", "1s"],
    );
    let st = home.json(&["state", "small", "BigState.Server", "--at", "end"]);
    let text = st["state"].as_str().unwrap();
    assert!(text.contains("… 6 more}"), "{text}");
    assert_eq!(st["truncated"], true);
    // Untouched limits keep the whole state.
    record(
        &home,
        &node,
        "whole",
        &["--tracer", "process", "--for", "1s"],
    );
    let st = home.json(&["state", "whole", "BigState.Server", "--at", "end"]);
    let text = st["state"].as_str().unwrap();
    assert!(!text.contains("more"), "{text}");
    assert!(st.get("truncated").is_none(), "{st}");
    assert_eq!(text.matches("name:").count(), 10, "{text}");
}
