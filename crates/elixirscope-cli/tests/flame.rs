//! `elixirscope flame` on a real recording: a script with a known call
//! structure (tests/fixtures/flame.exs) gives exactly that tree, and the same
//! stacks folded for flame-graph tools.

mod common;

use common::{fixture, require_beam, stderr, stdout, Home};
use serde_json::Value;
use std::collections::BTreeMap;

fn record(home: &Home) {
    let script = fixture("flame.exs");
    let out = home.run(&[
        "run",
        "--session",
        "flame",
        "--trace",
        "Flame._/_",
        "--",
        "elixir",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `path → (calls, total_ns, self_ns)` of every node of a `flame --json` document.
fn tree(g: &Value) -> BTreeMap<String, (u64, u64, u64)> {
    let nodes = g["nodes"].as_array().expect("nodes");
    let mut paths: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for n in nodes {
        let mfa = n["mfa"].as_str().unwrap();
        let path = match n["parent"].as_u64() {
            Some(p) => format!("{};{mfa}", paths[p as usize]),
            None => mfa.to_owned(),
        };
        let num = |k: &str| n[k].as_u64().unwrap();
        let prev = out.insert(
            path.clone(),
            (num("calls"), num("total_ns"), num("self_ns")),
        );
        assert!(prev.is_none(), "path {path} twice: {g}");
        paths.push(path);
    }
    out
}

fn one_line_error(home: &Home, args: &[&str], expect: &str) {
    let out = home.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(expect),
        "{args:?}: {err}"
    );
}

#[test]
fn flame_of_a_recorded_script_matches_its_call_structure() {
    require_beam();
    let home = Home::new();
    record(&home);

    let g = home.json(&["flame", "flame"]);
    let t = tree(&g);
    let calls: Vec<(&str, u64)> = t.iter().map(|(p, v)| (p.as_str(), v.0)).collect();
    assert_eq!(
        calls,
        vec![
            ("Flame.a/0", 1),
            ("Flame.a/0;Flame.b/0", 3),
            ("Flame.a/0;Flame.b/0;Flame.c/0", 6),
            ("Flame.c/0", 4),
            ("Flame.d/0", 1),
            ("Flame.d/0;Flame.e/0", 1),
        ],
        "{g}"
    );
    assert_eq!(g["calls"], 16);
    // Every call returned or raised: nothing unmatched, nothing left open.
    assert_eq!(
        (&g["unmatched_returns"], &g["open_calls"]),
        (&0.into(), &0.into())
    );
    // Each c() sleeps 2 ms; callers include their callees.
    let (a, b, c) = (
        t["Flame.a/0"],
        t["Flame.a/0;Flame.b/0"],
        t["Flame.a/0;Flame.b/0;Flame.c/0"],
    );
    assert!(c.1 >= 12_000_000 && t["Flame.c/0"].1 >= 8_000_000, "{g}");
    assert!(a.1 >= b.1 && b.1 >= c.1, "{g}");
    assert_eq!(a.2, a.1 - b.1);
    assert_eq!(b.2, b.1 - c.1);
    assert_eq!(c.2, c.1, "a leaf's time is all its own");
    let roots: Vec<u64> = g["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            g["nodes"][r.as_u64().unwrap() as usize]["total_ns"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(roots.iter().sum::<u64>(), g["total_ns"].as_u64().unwrap());
    assert!(roots.windows(2).all(|w| w[0] >= w[1]), "largest first: {g}");

    // Folded stacks: one line per path with its self time, summing to the total.
    let out = home.run(&["flame", "flame", "--folded"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut folded = BTreeMap::new();
    for line in stdout(&out).lines() {
        let (stack, weight) = line.rsplit_once(' ').expect("`stack weight`");
        folded.insert(stack.to_owned(), weight.parse::<u64>().expect("ns"));
    }
    for (stack, weight) in &folded {
        assert_eq!(Some(*weight), t.get(stack).map(|v| v.2), "{stack}");
    }
    for stack in [
        "Flame.a/0;Flame.b/0;Flame.c/0",
        "Flame.c/0",
        "Flame.d/0;Flame.e/0",
    ] {
        assert!(folded.contains_key(stack), "{stack} missing: {folded:?}");
    }
    assert_eq!(
        folded.values().sum::<u64>(),
        g["total_ns"].as_u64().unwrap()
    );

    // The text tree: callees indented under their callers.
    let out = home.run(&["flame", "flame", "--min-percent", "0"]);
    let text = stdout(&out);
    let line = |mfa: &str, indent: usize| {
        text.lines()
            .any(|l| l.ends_with(&format!("%  {}{mfa}", " ".repeat(indent))))
    };
    assert!(
        line("Flame.a/0", 0) && line("Flame.b/0", 2) && line("Flame.c/0", 4),
        "{text}"
    );
    assert!(line("Flame.d/0", 0) && line("Flame.e/0", 2), "{text}");
    assert!(
        text.starts_with("calls of all processes in flame, +0.000000s to +"),
        "{text}"
    );
}

#[test]
fn flame_narrows_to_a_process_and_a_time_range() {
    require_beam();
    let home = Home::new();
    record(&home);

    let g = home.json(&["flame", "flame", "--pid", "Flame.Worker"]);
    let t = tree(&g);
    assert_eq!(t.keys().collect::<Vec<_>>(), vec!["Flame.c/0"], "{g}");
    assert_eq!(t["Flame.c/0"].0, 4);
    assert_eq!(g["pids"].as_array().unwrap().len(), 1);

    // From the second b() call on: a() was called before, so it keeps its place
    // with no calls; two b() calls and their four c() calls remain.
    let b_calls = home.json(&["events", "flame", "--kind", "call", "--mfa", "Flame.b/0"]);
    let second = b_calls["events"][1]["id"]
        .as_u64()
        .expect("second b() call");
    let g = home.json(&["flame", "flame", "--from", &second.to_string()]);
    let t = tree(&g);
    assert_eq!(t["Flame.a/0"].0, 0, "{g}");
    assert_eq!(t["Flame.a/0;Flame.b/0"].0, 2, "{g}");
    assert_eq!(t["Flame.a/0;Flame.b/0;Flame.c/0"].0, 4, "{g}");
    assert_eq!(t["Flame.d/0"].0, 1, "{g}");
    // Up to the second b() call, in the process that ran the script: a() (still
    // running, so open), the first b() and its two c() calls.
    let main = b_calls["events"][1]["pid"].as_str().expect("pid");
    let g = home.json(&["flame", "flame", "--pid", main, "--to", &second.to_string()]);
    let calls: Vec<(String, u64)> = tree(&g).into_iter().map(|(p, v)| (p, v.0)).collect();
    let expect = [
        ("Flame.a/0", 1),
        ("Flame.a/0;Flame.b/0", 1),
        ("Flame.a/0;Flame.b/0;Flame.c/0", 2),
    ];
    assert_eq!(calls, expect.map(|(p, n)| (p.to_owned(), n)), "{g}");
    assert_eq!(g["open_calls"], 1, "{g}");

    // Bad input: one line, exit status 1.
    one_line_error(
        &home,
        &["flame", "flame", "--pid", "<0.9999.0>"],
        "no process <0.9999.0>",
    );
    one_line_error(
        &home,
        &["flame", "flame", "--pid", "No.Such"],
        "no process registered as No.Such",
    );
    one_line_error(
        &home,
        &["flame", "flame", "--from", "yesterday"],
        "invalid time 'yesterday'",
    );
    one_line_error(
        &home,
        &["flame", "flame", "--from", "+2s", "--to", "+1s"],
        "empty time range",
    );
    one_line_error(&home, &["flame", "nope"], "no session named 'nope'");
}
