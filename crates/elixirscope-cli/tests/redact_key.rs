//! `--redact-key NAME`: values under a key containing NAME (any case, in maps,
//! keyword lists and pairs) are redacted on the node, in state, messages and
//! call arguments: they never reach the session files or any query output,
//! and every one is counted under the `key` rule.

mod common;

use common::*;
use elixirscope_store::SessionReader;

/// The values `custom_keys.exs` plants (built at run time, never in its source).
const PLANTED: &[&str] = &[
    "PLANTED-STATE-FPRINT",
    "PLANTED-ARG-FPRINT",
    "PLANTED-MSG-FPRINT",
    "PLANTED-HEADER-FPRINT",
];

fn record(home: &Home, session: &str, extra: &[&str]) {
    let script = fixture("custom_keys.exs");
    let mut args = vec![
        "run",
        "--session",
        session,
        "--state",
        "Keys.Vault",
        "--trace",
        "Keys.Enrol._/_",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "elixir", script.to_str().unwrap()]);
    let out = home.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Everything a user can get out of a session: its files, every stored term
/// decompressed, and the output of the queries.
fn everything(home: &Home, session: &str) -> Vec<u8> {
    let dir = home.path().join("sessions").join(session);
    let mut all = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap() {
        all.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    let r = SessionReader::open(&dir).unwrap();
    for i in 0..r.blocks().len() {
        for e in r.block(i).iter() {
            all.extend_from_slice(e.term.unwrap_or_default());
            all.extend_from_slice(e.term2.unwrap_or_default());
        }
    }
    for args in [
        &["events", session, "--full", "--limit", "1000000"][..],
        &["events", session, "--full", "--limit", "1000000", "--json"],
        &["state", session, "Keys.Vault", "--at", "end", "--json"],
        &["state", session, "Keys.Vault", "--at", "start"],
        &["snapshot", session, "--at", "end", "--json"],
        &["show", session, "--json"],
        &["flame", session, "--json"],
    ] {
        let out = home.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        all.extend(out.stdout);
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn values_under_a_custom_key_never_leave_the_node_and_are_counted() {
    require_beam();
    let home = Home::new();
    // Both tracers redact on the node (the NIF while encoding, the process
    // tracer before shipping).
    for tracer in ["nif", "process"] {
        let rule = ["--redact-key", "FingerPrint", "--tracer", tracer];
        record(&home, &format!("custom-{tracer}"), &rule);
    }
    // The same program without the rule: every planted value is recorded,
    // so the checks below can fail.
    record(&home, "plain", &[]);

    let plain = everything(&home, "plain");
    for secret in PLANTED {
        assert!(
            contains(&plain, secret),
            "{secret} is not recorded without --redact-key"
        );
    }
    for tracer in ["nif", "process"] {
        let session = format!("custom-{tracer}");
        assert_eq!(
            home.json(&["show", &session])["tracers"][0]["tracer"],
            tracer
        );
        let custom = everything(&home, &session);
        for secret in PLANTED {
            assert!(
                !contains(&custom, secret),
                "{secret} left the node despite --redact-key ({tracer} tracer)"
            );
        }
    }

    // What was redacted shows as such; what was not is untouched.
    let st = home.json(&["state", "custom-nif", "Keys.Vault", "--at", "end"]);
    let state = st["state"].as_str().unwrap();
    assert!(
        state.contains(r#"device_fingerprint: "[REDACTED]""#),
        "{state}"
    );
    assert!(state.contains(r#"owner: "no secret here""#), "{state}");
    let call = home.json(&[
        "events",
        "custom-process",
        "--kind",
        "call",
        "--mfa",
        "Keys.Enrol.enrol/1",
    ]);
    let args = call["events"][0]["term"].as_str().unwrap_or_default();
    assert!(
        args.contains(r#""Fingerprint" => "[REDACTED]""#) && args.contains(r#""model" => "x1""#),
        "{call}"
    );

    // Counted under the key rule: at least once per planted value more than
    // without the rule (a value may be counted in several events: a message
    // is redacted when sent and when received, a state in every state event).
    let key = |s: &str| {
        home.json(&["show", s])["redactions"]["key"]
            .as_u64()
            .unwrap_or(0)
    };
    let without = key("plain");
    for tracer in ["nif", "process"] {
        let with = key(&format!("custom-{tracer}"));
        assert!(
            with >= without + PLANTED.len() as u64,
            "key redactions: {with} with --redact-key ({tracer} tracer), {without} without"
        );
    }
    assert_eq!(
        session_json(&home, "custom-nif")["capture"]["redact"]["keys"]
            .as_array()
            .map(|k| k.iter().any(|k| k == "fingerprint")),
        Some(true),
        "the rule is recorded with the capture (lower-cased)"
    );
}
