//! Budgets trip capture for good and say why; sampling thins messages and calls
//! but always keeps spawns, exits and crashes.

mod common;

use common::{fixture, require_beam, stderr, Home};

/// 2,000 messages to itself, then 20 short-lived processes it waits for.
const CHATTY: &str = "for i <- 1..2000, do: send(self(), {:tick, i}); \
                      for _ <- 1..2000, do: (receive do _ -> :ok end); \
                      for _ <- 1..20, do: (pid = spawn(fn -> :ok end); ref = Process.monitor(pid); \
                        receive do {:DOWN, ^ref, _, _, _} -> :ok end)";

#[test]
fn hitting_the_event_budget_trips_capture_and_records_why() {
    require_beam();
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--session",
        "trip",
        "--max-events",
        "500",
        "--",
        "elixir",
        "-e",
        CHATTY,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("capture tripped (max_events"),
        "{}",
        stderr(&out)
    );
    let o = home.json(&["show", "trip"]);
    assert_eq!(o["status"], "tripped");
    assert_eq!(o["trips"][0]["reason"], "max_events");
    assert!(
        o["trips"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("budget 500"),
        "{o}"
    );
    // Capture stopped at the budget: no automatic resume afterwards.
    let events = o["events"].as_u64().unwrap();
    // The agent counts what it captured; ingest may fold a few (e.g. a spawn seen from both sides).
    assert!((400..=520).contains(&events), "{events} events stored");
    let trips = home.json(&["events", "trip", "--kind", "trip"]);
    assert_eq!(trips["matched"], 1);
}

#[test]
fn the_rate_budget_trips_on_a_burst() {
    require_beam();
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--session",
        "burst",
        "--max-rate",
        "300",
        "--",
        "elixir",
        "-e",
        CHATTY,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = home.json(&["show", "burst"]);
    assert_eq!(o["trips"][0]["reason"], "max_rate", "{o}");
}

#[test]
fn a_full_session_trips_capture() {
    require_beam();
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--session",
        "full",
        "--max-bytes",
        "20KB",
        "--",
        "elixir",
        "-e",
        CHATTY,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = home.json(&["show", "full"]);
    assert_eq!(o["status"], "tripped", "{o}");
    assert_eq!(o["trips"][0]["reason"], "max_session_bytes");
    assert!(o["disk_bytes"].as_u64().unwrap() < 200_000, "{o}");
}

#[test]
fn sampling_keeps_lifecycle_and_thins_messages() {
    require_beam();
    let home = Home::new();
    let full = home.run(&["run", "--session", "full", "--", "elixir", "-e", CHATTY]);
    assert!(full.status.success(), "{}", stderr(&full));
    let sampled = home.run(&[
        "run",
        "--session",
        "sampled",
        "--sample",
        "1/10",
        "--",
        "elixir",
        "-e",
        CHATTY,
    ]);
    assert!(sampled.status.success(), "{}", stderr(&sampled));
    let count = |s: &str, kind: &str| {
        let v = home.json(&[
            "events", s, "--kind", kind, "--match", "{:tick, ", "--limit", "100000",
        ]);
        let ticks = v["events"].as_array().unwrap().iter();
        ticks
            .filter(|e| e["term"].as_str().unwrap().starts_with("{:tick, "))
            .count() as u64
    };
    let (all, some) = (count("full", "send"), count("sampled", "send"));
    assert_eq!(all, 2000);
    assert!(some > 50 && some < 600, "{some} of 2000 sends kept at 1/10");
    // Sampling keeps both sides of each kept message.
    assert_eq!(count("sampled", "receive"), some);
    let spawns = |s: &str| {
        home.json(&["events", s, "--kind", "spawn", "--limit", "1"])["matched"]
            .as_u64()
            .unwrap()
    };
    // Lifecycle is never sampled: the sampled run has the program's 20 spawns and,
    // give or take the odd timing-dependent VM helper, as many as the full run.
    let (full, sampled) = (spawns("full"), spawns("sampled"));
    assert!(
        sampled >= 20 && full.abs_diff(sampled) <= 3,
        "spawns: full {full}, sampled {sampled}"
    );
}

#[test]
fn the_light_profile_records_state_of_chosen_servers() {
    require_beam();
    let home = Home::new();
    let script = fixture("script.exs");
    let out = home.run(&[
        "run",
        "--session",
        "light",
        "--profile",
        "production-light",
        "--state",
        "Script.Acc",
        "--",
        "elixir",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = home.json(&["show", "light"]);
    assert_eq!(meta["trips"].as_array().unwrap().len(), 0);
    let st = home.json(&["state", "light", "Script.Acc", "--at", "end"]);
    assert!(st["state"].is_string(), "{st}");
}

#[test]
fn the_always_on_profile_records_lifecycle_and_states_but_no_messages() {
    require_beam();
    let home = Home::new();
    let script = fixture("script.exs");
    let out = home.run(&[
        "run",
        "--session",
        "always",
        "--profile",
        "always-on",
        "--state",
        "Script.Acc",
        "--",
        "elixir",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = home.json(&["show", "always"]);
    let counts = &meta["counts"];
    assert!(counts["spawn"].as_u64() > Some(0), "{meta}");
    assert!(counts["exit"].as_u64() > Some(0), "{meta}");
    assert_eq!(counts["send"], serde_json::Value::Null, "{meta}");
    assert_eq!(counts["receive"], serde_json::Value::Null, "{meta}");
    assert_eq!(meta["trips"].as_array().unwrap().len(), 0, "{meta}");
    // The state of a chosen server is kept whatever the sampling.
    let st = home.json(&["state", "always", "Script.Acc", "--at", "end"]);
    assert_eq!(st["state"], "[:last, 3, 2, 1]", "{st}");
}
