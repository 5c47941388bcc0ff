//! Budgets and circuit breakers against real nodes: real run-queue pressure,
//! real memory growth, a flooded tracer mailbox and a burst of big messages
//! each trip the capture for good, and the session says which limit tripped,
//! with the figure it saw and the limit it was given.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// Records `node` with `extra` until the capture trips on its own (after
/// `workload` ran on the node), runs `cleanup` on the node, and returns the
/// session's summary.
fn record_until_tripped(
    home: &Home,
    node: &BeamNode,
    session: &str,
    extra: &[&str],
    workload: &str,
    cleanup: &str,
) -> Value {
    let mut args = extra.to_vec();
    args.extend_from_slice(&["--for", "60s"]);
    let (child, rx) = start_recording(home, node, session, &args);
    node.call_elixir(workload);
    let (status, said) = wait_recording_ends(child, rx, Duration::from_secs(45));
    assert!(status.success(), "record exited with {status}: {said}");
    node.call_elixir(cleanup);
    let show = home.json(&["show", session]);
    assert_eq!(show["status"], "tripped", "{said}\n{show}");
    assert_eq!(show["trips"].as_array().map(Vec::len), Some(1), "{show}");
    // Tracing is off for good and the agent is gone: the node is as it was.
    let left = node.eval(
        "{erlang:trace_info(new_processes, flags), \
          length([P || P <- erlang:processes(), case erlang:trace_info(P, flags) of {flags, [_ | _]} -> true; _ -> false end]), \
          code:is_loaded(elixirscope_tracer)}",
    );
    assert_eq!(left, "{{flags,[]},0,false}", "after the trip");
    show
}

/// The trip's reason and detail, the figure the agent saw (the first number
/// of the message) and the limit it names ("limit N" or "budget N").
fn trip(show: &Value) -> (String, String, u64, u64) {
    let t = &show["trips"][0];
    let detail = t["detail"].as_str().unwrap_or_default().to_owned();
    let seen = numbers(&detail).first().copied().unwrap_or(0);
    let limit = ["(limit ", "(budget "]
        .iter()
        .find_map(|w| detail.split(w).nth(1))
        .and_then(|rest| numbers(rest).first().copied())
        .unwrap_or(0);
    (
        t["reason"].as_str().unwrap_or_default().to_owned(),
        detail,
        seen,
        limit,
    )
}

#[test]
fn a_long_run_queue_trips_the_capture() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("runq", &[], ":ok");
    // 40 processes that never wait: the run queues hold them all until the
    // breaker has seen more than 10 for three checks in a row.
    let show = record_until_tripped(
        &home,
        &node,
        "runq",
        &["--max-run-queue", "10"],
        "busy = for _ <- 1..40, do: spawn(fn -> Stream.repeatedly(fn -> :erlang.phash2(:erlang.monotonic_time()) end) |> Stream.run() end); \
         :persistent_term.put(:busy, busy)",
        "Enum.each(:persistent_term.get(:busy), &Process.exit(&1, :kill))",
    );
    let (reason, detail, held, limit) = trip(&show);
    assert_eq!(reason, "run_queue", "{show}");
    assert!(detail.starts_with("run queue held "), "{detail}");
    assert_eq!(limit, 10, "{detail}");
    assert!(held > 10 && held <= 40 + 10, "{detail}");
    assert_eq!(
        session_json(&home, "runq")["capture"]["budget"]["max_run_queue"],
        10
    );
}

#[test]
fn node_memory_growth_trips_the_capture() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("mem", &[], ":ok");
    // 64 MB of binaries kept alive after capture started; the limit is 16 MB.
    let show = record_until_tripped(
        &home,
        &node,
        "mem",
        &["--max-node-memory", "16MB"],
        ":persistent_term.put(:ballast, (for i <- 1..64, do: :binary.copy(<<i>>, 1_000_000)))",
        ":ok",
    );
    let (reason, detail, grew, limit) = trip(&show);
    assert_eq!(reason, "node_memory", "{show}");
    assert!(detail.starts_with("node memory grew by "), "{detail}");
    let budget = &session_json(&home, "mem")["capture"]["budget"];
    assert_eq!(budget["max_node_memory_growth"], 16 << 20);
    assert_eq!(limit, 16 << 20, "{detail}");
    assert!(grew > limit, "{detail}");
    // The node still holds what it allocated: the trip did not touch it.
    assert_eq!(node.eval("length(persistent_term:get(ballast))"), "64");
}

#[test]
fn a_flooded_tracer_mailbox_trips_on_the_backlog_budget() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("backlog", &[fixture("flood.ex")], ":ok");
    // Only the backlog budget is within reach: the process tracer (whose
    // mailbox the trace messages queue in) against two pairs of processes
    // bouncing messages as fast as they can.
    let show = record_until_tripped(
        &home,
        &node,
        "backlog",
        &[
            "--tracer",
            "process",
            "--max-backlog",
            "2000",
            "--max-rate",
            "1000000000",
            "--max-bytes-rate",
            "100GB",
            "--max-tracer-memory",
            "4GB",
            "--max-events",
            "1000000000",
        ],
        "Flood.start(2)",
        "for p <- Process.list(), match?({:current_function, {Flood, _, _}}, Process.info(p, :current_function)), do: Process.exit(p, :kill)",
    );
    let (reason, detail, held, limit) = trip(&show);
    assert_eq!(reason, "max_backlog", "{show}");
    assert!(detail.starts_with("tracer mailbox held "), "{detail}");
    assert_eq!(limit, 2000, "{detail}");
    assert!(held > 2000, "{detail}");
    assert_eq!(show["tracers"][0]["tracer"], "process", "{show}");
}

#[test]
fn a_burst_of_big_messages_trips_on_the_bytes_rate_budget() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("bytes", &[], ":ok");
    // 200 messages of 10 KB at once, kept whole (the default limits would cut
    // each binary to 1 KB): about 4 MB of events within a second, against a
    // budget of 256 KB a second.
    let show = record_until_tripped(
        &home,
        &node,
        "bytes",
        &["--max-bytes-rate", "256KB", "--max-term-bytes", "16KB"],
        "sink = spawn(fn -> Stream.repeatedly(fn -> receive do _ -> :ok end end) |> Stream.run() end); \
         for i <- 1..200, do: send(sink, {:blob, i, :binary.copy(<<i>>, 10_000)}); :ok",
        ":ok",
    );
    let (reason, detail, bytes, limit) = trip(&show);
    assert_eq!(reason, "max_bytes_rate", "{show}");
    assert!(detail.contains(" bytes of events in "), "{detail}");
    assert_eq!(limit, 256 << 10, "{detail}");
    assert!(bytes > limit, "{detail}");
    assert_eq!(
        session_json(&home, "bytes")["capture"]["budget"]["max_bytes_rate"],
        256 << 10
    );
}
