//! `elixirscope run` starts programs with distribution on and records them from
//! their first second to their exit: Elixir scripts, mix projects, plain `erl`.

mod common;

use common::{fixture, record_demo, require_beam, stderr, stdout, Home};

#[test]
fn records_an_elixir_script_up_to_its_last_call() {
    require_beam();
    let home = Home::new();
    let script = fixture("script.exs");
    let out = home.run(&[
        "run",
        "--session",
        "script",
        "--state",
        "Script.Acc",
        "--trace",
        "Enum.reverse/1",
        "--",
        "elixir",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains("session script (complete)"), "{summary}");
    // The state change made just before the VM halted is in the session.
    let st = home.json(&["state", "script", "Script.Acc", "--at", "end"]);
    assert_eq!(st["state"], "[:last, 3, 2, 1]", "{st}");
    let changes = home.json(&["events", "script", "--kind", "state", "--pid", "Script.Acc"]);
    assert_eq!(changes["matched"], 5, "init + 4 pushes: {changes}");
    let calls = home.json(&[
        "events",
        "script",
        "--kind",
        "calls",
        "--mfa",
        "Enum.reverse/1",
        "--limit",
        "1000",
    ]);
    let calls = calls["events"].as_array().unwrap();
    let call = calls
        .iter()
        .find(|e| e["term"] == "[[1, 2, 3]]")
        .expect("the script's call");
    let ret = calls
        .iter()
        .find(|e| e["kind"] == "return" && e["link"] == call["id"])
        .expect("its return");
    assert_eq!(ret["term"], "[3, 2, 1]");
}

#[test]
fn records_the_demo_mix_project() {
    require_beam();
    let home = Home::new();
    let out = record_demo(&home, "demo");
    assert!(out.status.success(), "{}", stderr(&out));
    let o = home.json(&["show", "demo"]);
    for kind in ["spawn", "send", "receive", "call", "state", "exit"] {
        assert!(
            o["counts"][kind].as_u64().unwrap_or(0) > 0,
            "no {kind} events: {o}"
        );
    }
    assert_eq!(o["dropped"], 0);
    let crashes = o["crashes"].as_array().unwrap();
    assert!(crashes.iter().any(|c| c["name"] == "Demo.Flaky"), "{o}");
    assert_eq!(
        home.json(&["state", "demo", "Demo.Counter", "--at", "end"])["state"],
        "10"
    );
    let bank = home.json(&["state", "demo", "Demo.Bank", "--at", "end"]);
    assert!(
        bank["state"].as_str().unwrap().starts_with("%Demo.Bank{"),
        "{bank}"
    );
    let deposits = home.json(&[
        "events",
        "demo",
        "--kind",
        "call",
        "--mfa",
        "Demo.Bank.deposit/2",
        "--limit",
        "100",
    ]);
    assert_eq!(deposits["matched"], 20);
    let tree = home.json(&["tree", "demo", "--at", "end", "--root", "Demo.Supervisor"]);
    let kids = tree["roots"][0]["children"].as_array().unwrap();
    let flaky = kids
        .iter()
        .find(|k| k["name"] == "Demo.Flaky")
        .expect("Demo.Flaky in the tree");
    assert!(flaky["restart_of"]["reason"]
        .as_str()
        .unwrap()
        .contains("flaky worker gave up"));
}

#[test]
fn records_a_plain_erlang_program() {
    require_beam();
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--session",
        "erl",
        "--trace",
        "lists:reverse/1",
        "--",
        "erl",
        "-noshell",
        "-eval",
        "lists:reverse([a, b]), timer:sleep(200), init:stop().",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = home.json(&[
        "events",
        "erl",
        "--kind",
        "call",
        "--mfa",
        "lists:reverse/1",
    ]);
    let ours: Vec<_> = calls["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["term"] == "[[:a, :b]]")
        .collect();
    assert_eq!(ours.len(), 1, "{calls}");
    assert!(
        ours[0].get("name").is_none(),
        "the boot hook's name is not the program's: {calls}"
    );
}

#[test]
fn a_program_that_fails_keeps_its_session_and_status() {
    require_beam();
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--session",
        "boom",
        "--",
        "elixir",
        "-e",
        "raise \"boom at start\"",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("exited with status 1"));
    let o = home.json(&["show", "boom"]);
    assert_eq!(o["status"], "complete");
    assert!(o["events"].as_u64().unwrap() > 0);
}
