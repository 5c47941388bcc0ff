//! `elixirscope snapshot SESSION --at T` against a recorded real node: every
//! process the node itself listed at T (and no other), with the state of the
//! state-traced servers as `state --at` gives it, messages still in flight,
//! and messages a busy server has not handled yet.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The node's own view at a quiet moment: the time (on the clock events are
/// stamped with, to the nanosecond), then every process but ElixirScope's own
/// (the agent is never traced), as `<0.N.M>`.
fn processes_now(node: &BeamNode) -> (String, BTreeSet<String>) {
    let out = node.call_elixir(
        "t = :calendar.system_time_to_rfc3339(:erlang.system_time(:nanosecond), unit: :nanosecond, offset: 'Z') |> to_string()
         agent = fn p ->
           case Process.info(p, :current_function) do
             {:current_function, {m, _, _}} -> String.starts_with?(Atom.to_string(m), \"elixirscope\")
             _ -> false
           end
         end
         {t, (for p <- Process.list(), not agent.(p), do: inspect(p))}",
    );
    let mut q = quoted_strings(&out).into_iter();
    let t = q.next().expect("a time");
    let pids = q.map(|p| p.trim_start_matches("#PID").to_owned()).collect();
    (t, pids)
}

fn snapshot(home: &Home, at: &str) -> Value {
    home.json(&["snapshot", "s1", "--at", at])
}

fn live(snap: &Value) -> BTreeSet<String> {
    snap["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_str().unwrap().to_owned())
        .collect()
}

fn process<'a>(snap: &'a Value, name: &str) -> &'a Value {
    snap["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the snapshot at {}", snap["at"]))
}

#[test]
fn a_snapshot_holds_every_live_process_its_state_and_pending_messages() {
    require_beam();
    let home = Home::new();
    let node = BeamNode::elixir("snap", &[fixture("test_app.ex")], "TestApp.start()");
    let (child, rx) = start_recording(
        &home,
        &node,
        "s1",
        &["--state", "TestApp.Counter", "--state", "TestApp.Door"],
    );
    let times = quoted_strings(&node.call_elixir("TestApp.increments(2)"));
    let (before_crash, listed_before) = processes_now(&node);
    assert_eq!(node.call_elixir("TestApp.crash()"), ":crashed");
    let (after_crash, listed_after) = processes_now(&node);
    let busy_at = quoted_strings(&node.call_elixir("TestApp.slow_jobs()"));
    assert_eq!(node.call_elixir("TestApp.messages(100)"), "100");
    stop_recording(child, rx);

    // Every process the node had at T, and no other.
    let at_before = snapshot(&home, &before_crash);
    assert_eq!(live(&at_before), listed_before, "at {before_crash}");
    assert_eq!(at_before["live_processes"], listed_before.len());
    let at_after = snapshot(&home, &after_crash);
    assert_eq!(live(&at_after), listed_after, "at {after_crash}");
    // The crashed server is gone, its restarted successor is there.
    let (old, new) = (
        process(&at_before, "TestApp.Crashy")["pid"].clone(),
        process(&at_after, "TestApp.Crashy")["pid"].clone(),
    );
    assert_ne!(old, new);
    assert!(!live(&at_after).contains(old.as_str().unwrap()));

    // State-traced servers carry their state at T, as `state --at` has it.
    for (i, t) in times.iter().enumerate() {
        let snap = snapshot(&home, t);
        let counter = process(&snap, "TestApp.Counter");
        assert_eq!(counter["state"], (i + 1).to_string(), "at {t}: {counter}");
        let cli = home.json(&["state", "s1", "TestApp.Counter", "--at", t]);
        assert_eq!(counter["state"], cli["state"]);
        assert_eq!(
            process(&snap, "TestApp.Door")["state"],
            "{:locked, %{opens: 0}}"
        );
        // Servers whose state is not traced have none.
        assert!(process(&snap, "TestApp.Crashy").get("state").is_none());
    }

    // While the counter works through its first slow job the other two wait
    // in its mailbox, delivered and not yet handled.
    let busy = snapshot(&home, &busy_at[0]);
    let counter = process(&busy, "TestApp.Counter");
    assert_eq!(counter["unhandled"], 2, "{counter}");
    assert_eq!(counter["in_flight"], 0, "{counter}");
    assert_eq!(counter["state"], "2");
    let mailbox = home.json(&["mailbox", "s1", "TestApp.Counter", "--at", &busy_at[0]]);
    assert_eq!(
        mailbox["unhandled"].as_array().unwrap().len(),
        2,
        "{mailbox}"
    );
    // Once all three are handled nothing waits (the sleeps in the callback
    // are receives that timed out, not messages).
    let end = snapshot(&home, "end");
    assert_eq!(process(&end, "TestApp.Counter")["unhandled"], 0);
    let mailbox = home.json(&["mailbox", "s1", "TestApp.Counter", "--at", "end"]);
    assert_eq!(mailbox["unhandled"], serde_json::json!([]), "{mailbox}");

    // At the moment the 50th message to the sink is sent, the sends not yet
    // received are in flight to it (at least that one).
    let events = |kind: &str| {
        home.json(&[
            "events",
            "s1",
            "--kind",
            kind,
            "--pid",
            ":test_sink",
            "--match",
            "{:msg,",
            "--limit",
            "1000",
        ])["events"]
            .as_array()
            .unwrap()
            .clone()
    };
    let (sends, receives) = (events("send"), events("receive"));
    assert_eq!((sends.len(), receives.len()), (100, 100));
    let id = |e: &Value| e["id"].as_u64().unwrap();
    let at = id(&sends[49]);
    let received_by_then: BTreeSet<u64> = receives
        .iter()
        .filter(|r| id(r) <= at)
        .filter_map(|r| r["link"].as_u64())
        .collect();
    let expected = sends
        .iter()
        .filter(|s| id(s) <= at && !received_by_then.contains(&id(s)))
        .count();
    assert!(expected >= 1);
    let snap = snapshot(&home, &at.to_string());
    assert_eq!(
        process(&snap, ":test_sink")["in_flight"],
        expected,
        "at #{at}"
    );
    assert_eq!(process(&end, ":test_sink")["in_flight"], 0);
}
