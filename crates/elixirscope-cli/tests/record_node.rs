//! `elixirscope record` against a real, unchanged Elixir node: state at moments,
//! matched messages, crashes and restarts, traced calls, and a clean detach.

mod common;

use common::{fixture, require_beam, start_recording, stop_recording, wait_for, BeamNode, Home};
use serde_json::Value;
use std::time::Duration;

fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn events(home: &Home, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["events", "s1", "--limit", "10000"];
    a.extend_from_slice(args);
    home.json(&a)["events"].as_array().expect("events").clone()
}

#[test]
fn records_state_messages_crashes_calls_and_detaches_cleanly() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("rec", &[fixture("test_app.ex")], "TestApp.start()");
    let (child, rx) = start_recording(
        &home,
        &node,
        "s1",
        &[
            "--state",
            "TestApp.Counter",
            "--state",
            "TestApp.Crashy",
            "--trace",
            "TestApp.Math._/_",
        ],
    );

    let times = quoted_strings(&node.call_elixir("TestApp.increments(5)"));
    assert_eq!(times.len(), 5, "driver output: {times:?}");
    assert_eq!(node.call_elixir("TestApp.messages(100)"), "100");
    let calls = node.call_elixir("TestApp.calls()");
    assert!(calls.contains("[1, 4, 9]"), "{calls}");
    assert_eq!(node.call_elixir("TestApp.crash()"), ":crashed");
    let busy_at = quoted_strings(&node.call_elixir("TestApp.slow_jobs()"));

    let err = stop_recording(child, rx);
    assert!(err.contains("left as found"), "{err}");

    // State at several moments equals the count at that moment.
    for (i, t) in times.iter().enumerate() {
        let st = home.json(&["state", "s1", "TestApp.Counter", "--at", t]);
        assert_eq!(
            st["state"],
            Value::from((i + 1).to_string()),
            "state at {t}: {st}"
        );
    }
    let first = home.json(&["state", "s1", "TestApp.Counter", "--at", "start"]);
    assert!(first["state"].is_null() || first["state"] == "0", "{first}");
    let fifth = home.json(&["state", "s1", "TestApp.Counter", "--at", &times[4]]);
    assert_eq!(fifth["diff"][0]["before"], "4");
    assert_eq!(fifth["diff"][0]["after"], "5");
    assert!(
        fifth["changed"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(":inc"),
        "{fifth}"
    );
    // At the end the three slow casts have run without changing the count: the
    // change reported is still the fifth increment.
    let end = home.json(&["state", "s1", "TestApp.Counter", "--at", "end"]);
    assert_eq!(end["state"], "5");
    assert_eq!(
        end["changed"]["by"], "TestApp.Counter.handle_call/3",
        "{end}"
    );
    assert_eq!(end["diff"][0]["after"], "5");
    assert_eq!(end["unchanged_callbacks"], 3, "{end}");

    // 100 sends matched to 100 receives, nothing pending at the end.
    let sends = events(
        &home,
        &["--kind", "send", "--pid", ":test_sink", "--match", "{:msg,"],
    );
    let receives = events(
        &home,
        &[
            "--kind",
            "receive",
            "--pid",
            ":test_sink",
            "--match",
            "{:msg,",
        ],
    );
    assert_eq!(sends.len(), 100);
    assert_eq!(receives.len(), 100);
    let send_ids: Vec<u64> = sends.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    for r in &receives {
        let linked = r["link"]
            .as_u64()
            .expect("every receive is matched to its send");
        assert!(send_ids.contains(&linked));
    }
    let mb = home.json(&["mailbox", "s1", ":test_sink", "--at", "end"]);
    assert_eq!(mb["in_flight"].as_array().unwrap().len(), 0, "{mb}");

    // While the counter sleeps in its first slow job, the other two wait unhandled.
    let mb = home.json(&["mailbox", "s1", "TestApp.Counter", "--at", &busy_at[0]]);
    assert_eq!(mb["unhandled"].as_array().unwrap().len(), 2, "{mb}");

    // The crash is recorded with its reason, and the restart shows in the tree.
    let exits = events(&home, &["--kind", "exit", "--pid", "TestApp.Crashy"]);
    assert!(exits.iter().any(|e| e["term"]
        .as_str()
        .unwrap_or("")
        .contains("crashy crashed on purpose")));
    let tree = home.json(&["tree", "s1", "--at", "end", "--root", "TestApp.Sup"]);
    let crashy = tree["roots"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "TestApp.Crashy")
        .expect("restarted crashy under its supervisor")
        .clone();
    assert!(
        crashy["restart_of"]["reason"]
            .as_str()
            .unwrap()
            .contains("crashy crashed on purpose"),
        "{crashy}"
    );

    // Calls with arguments and results, exceptions with their reason.
    let calls = events(&home, &["--kind", "call", "--mfa", "TestApp.Math.square/1"]);
    let args: Vec<&str> = calls.iter().map(|e| e["term"].as_str().unwrap()).collect();
    assert_eq!(args, ["[1]", "[2]", "[3]"]);
    let rets = events(
        &home,
        &["--kind", "return", "--mfa", "TestApp.Math.square/1"],
    );
    let vals: Vec<&str> = rets.iter().map(|e| e["term"].as_str().unwrap()).collect();
    assert_eq!(vals, ["1", "4", "9"]);
    assert!(rets.iter().all(|e| e["duration_ns"].as_u64().is_some()));
    let exc = events(
        &home,
        &["--kind", "exception", "--mfa", "TestApp.Math.fail/1"],
    );
    assert!(
        exc[0]["term"].as_str().unwrap().contains("bad 7"),
        "{exc:?}"
    );

    // Nothing of ElixirScope is left on the node.
    let left = node.eval(
        "{erlang:trace_info(new_processes, flags), \
          length([P || P <- erlang:processes(), case erlang:trace_info(P, flags) of {flags, [_ | _]} -> true; _ -> false end]), \
          erlang:trace_info({'Elixir.TestApp.Math', square, 1}, traced), \
          erlang:trace_info({'Elixir.TestApp.Counter', handle_call, 3}, traced), \
          [M || M <- [elixirscope_agent, elixirscope_tracer, elixirscope_trace_setup, \
                      elixirscope_snapshot, elixirscope_module_watch], code:is_loaded(M) =/= false], \
          whereis(elixirscope_tracer)}",
    );
    assert_eq!(
        left,
        "{{flags,[]},0,{traced,false},{traced,false},[],undefined}"
    );
}

#[test]
fn stepping_walks_a_process_history() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("step", &[fixture("test_app.ex")], "TestApp.start()");
    let (child, rx) = start_recording(&home, &node, "s1", &["--state", "TestApp.Counter"]);
    node.call_elixir("TestApp.increments(3)");
    stop_recording(child, rx);

    let kinds = "state,state_snapshot";
    let states = events(&home, &["--kind", kinds, "--pid", "TestApp.Counter"]);
    let terms: Vec<&str> = states.iter().map(|e| e["term"].as_str().unwrap()).collect();
    assert_eq!(terms, ["0", "1", "2", "3"]);
    let first_id = states[1]["id"].as_u64().unwrap().to_string();
    let next = home.json(&[
        "step",
        "s1",
        "TestApp.Counter",
        "--at",
        &first_id,
        "--kind",
        kinds,
    ]);
    assert_eq!(next["events"][0]["term"], "2");
    let prev = home.json(&[
        "step",
        "s1",
        "TestApp.Counter",
        "--at",
        &first_id,
        "--back",
        "--kind",
        kinds,
    ]);
    assert_eq!(prev["events"][0]["term"], "0");
    let around = home.json(&[
        "step",
        "s1",
        "TestApp.Counter",
        "--at",
        &first_id,
        "-n",
        "3",
    ]);
    assert_eq!(around["events"].as_array().unwrap().len(), 3);
}

#[test]
fn records_gen_statem_state_as_state_name_and_data() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("door", &[fixture("test_app.ex")], "TestApp.start()");
    let (child, rx) = start_recording(&home, &node, "s1", &["--state", "TestApp.Door"]);
    let open_at = quoted_strings(&node.call_elixir("TestApp.door()"));
    stop_recording(child, rx);
    let open = home.json(&["state", "s1", "TestApp.Door", "--at", &open_at[0]]);
    assert_eq!(open["state"], "{:open, %{opens: 1}}", "{open}");
    assert_eq!(open["previous_state"], "{:locked, %{opens: 0}}", "{open}");
    assert_eq!(open["changed"]["by"], "TestApp.Door.locked/3");
    let end = home.json(&["state", "s1", "TestApp.Door", "--at", "end"]);
    assert_eq!(end["state"], "{:locked, %{opens: 1}}", "{end}");
}

#[test]
fn killing_the_collector_leaves_the_node_clean_and_keeps_what_was_acknowledged() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("deadman", &[fixture("test_app.ex")], "TestApp.start()");
    let (mut child, _rx) = start_recording(&home, &node, "s1", &["--state", "TestApp.Counter"]);
    let times = quoted_strings(&node.call_elixir("TestApp.increments(3)"));
    // The session is queryable while it is being recorded: the third
    // increment shows up once the agent's batch is stored.
    let live = wait_for(
        "the third increment in the live session",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let live = home.json(&["state", "s1", "TestApp.Counter", "--at", "end"]);
            (live["state"] == "3").then_some(live)
        },
    );
    assert_eq!(live["state"], "3", "{live}");
    assert_eq!(home.json(&["show", "s1"])["status"], "recording");
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    // Dead-man: the agent notices the lost connection, stops tracing and unloads itself.
    let mut left = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        left = node.eval(
            "{erlang:trace_info(new_processes, flags), \
              length([P || P <- erlang:processes(), case erlang:trace_info(P, flags) of {flags, [_ | _]} -> true; _ -> false end]), \
              erlang:trace_info({'Elixir.TestApp.Counter', handle_call, 3}, traced), \
              code:is_loaded(elixirscope_tracer), whereis(elixirscope_tracer)}",
        );
        if left == "{{flags,[]},0,{traced,false},false,undefined}" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(left, "{{flags,[]},0,{traced,false},false,undefined}");
    // Everything acknowledged before the kill is in the session.
    let st = home.json(&["state", "s1", "TestApp.Counter", "--at", &times[2]]);
    assert_eq!(st["state"], "3", "{st}");
    let o = home.json(&["show", "s1"]);
    assert_eq!(o["status"], "interrupted", "{o}");
}

#[test]
fn the_agent_can_ship_over_tls_and_leaves_ssl_as_it_found_it() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("tls", &[fixture("test_app.ex")], "TestApp.start()");
    let apps = |n: &BeamNode| n.eval("[A || {A, _, _} <- application:which_applications()]");
    assert!(!apps(&node).contains("ssl"), "ssl already running");
    let (child, rx) = start_recording(&home, &node, "s1", &["--state", "TestApp.Counter", "--tls"]);
    let times = quoted_strings(&node.call_elixir("TestApp.increments(3)"));
    assert!(apps(&node).contains("ssl"), "the TLS link needs ssl");
    stop_recording(child, rx);
    let st = home.json(&["state", "s1", "TestApp.Counter", "--at", &times[2]]);
    assert_eq!(st["state"], "3", "{st}");
    let o = home.json(&["show", "s1"]);
    assert_eq!(o["dropped"], 0, "{o}");
    // The link's own TLS traffic is not traced (no feedback loop).
    assert!(o["events"].as_u64().unwrap() < 2_000, "{o}");
    let audit = home.json(&["audit", "show"]);
    assert_eq!(audit[1]["details"]["transport"], "tls", "{audit}");
    assert!(
        !apps(&node).contains("ssl"),
        "ssl left running: {}",
        apps(&node)
    );
}
