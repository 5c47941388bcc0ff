//! Secrets planted in state, messages, call arguments and structs never leave
//! the node: not in the session files, not in any query output.

mod common;

use common::{record_secrets, require_beam, stderr, stdout, Home, PLANTED};
use elixirscope_store::SessionReader;

/// Every stored term, decompressed, as bytes.
fn stored_terms(home: &Home, session: &str) -> Vec<u8> {
    let r = SessionReader::open(&home.path().join("sessions").join(session)).unwrap();
    let mut all = Vec::new();
    for i in 0..r.blocks().len() {
        for e in r.block(i).iter() {
            all.extend_from_slice(e.term.unwrap_or_default());
            all.extend_from_slice(e.term2.unwrap_or_default());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Secrets only a value pattern finds: in state, a charlist in a message, an
/// atom in call arguments and results, an exception, and one straddling the
/// point where a long binary is cut (found by looking past the cut).
const PLANTED_VALUES: &[&str] = &[
    "sk_live_PLANTEDVALUE1",
    "sk_live_PLANTEDVALUE2",
    "sk_live_PLANTEDVALUE3",
    "sk_live_PLANTEDVALUE4",
    "PLANTEDVALUE5",
];

const VALUE_PATTERN: &str = "sk_live_[0-9A-Z]{13}";

fn planted_secrets_under(tracer: &str) {
    require_beam();
    let home = Home::new();
    record_secrets(
        &home,
        "safe",
        &["--tracer", tracer, "--redact-value", VALUE_PATTERN],
    );
    let show = home.json(&["show", "safe"]);
    assert_eq!(show["tracers"][0]["tracer"], tracer, "{show}");

    let terms = stored_terms(&home, "safe");
    let mut files = Vec::new();
    for f in std::fs::read_dir(home.path().join("sessions/safe")).unwrap() {
        files.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    let mut outputs = String::new();
    for args in [
        &["events", "safe", "--json", "--full", "--limit", "1000000"][..],
        &["events", "safe", "--full", "--limit", "1000000"],
        &["state", "safe", "Secrets.Vault", "--at", "end", "--json"],
        &["state", "safe", "Secrets.Vault", "--at", "end"],
        &["snapshot", "safe", "--at", "end", "--json"],
        &["show", "safe", "--json"],
    ] {
        let out = home.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        outputs.push_str(&stdout(&out));
    }
    for secret in PLANTED.iter().chain(PLANTED_VALUES) {
        assert!(
            !contains(&terms, secret),
            "{tracer}: {secret} is in the stored terms"
        );
        assert!(
            !contains(&files, secret),
            "{tracer}: {secret} is in the session files"
        );
        assert!(
            !outputs.contains(secret),
            "{tracer}: {secret} is in query output"
        );
    }
    // Redacted values are visible as such, and harmless ones untouched.
    let st = home.json(&["state", "safe", "Secrets.Vault", "--at", "end"]);
    let state = st["state"].as_str().unwrap();
    assert!(state.contains(r#"password: "[REDACTED]""#), "{state}");
    assert!(state.contains(r#"note: "[REDACTED]""#), "{state}");
    assert!(state.contains(r#""no secret here""#), "{state}");
    let tagged = home.json(&["events", "safe", "--mfa", "Secrets.Auth.tag/1", "--full"]);
    let call = tagged["events"][0]["term"].as_str().unwrap();
    assert_eq!(call, r#"["[REDACTED]"]"#, "{tracer}");
    let blob = home.json(&[
        "events", "safe", "--kind", "send", "--match", "blob", "--full",
    ]);
    assert_eq!(
        blob["events"][0]["term"].as_str(),
        Some(r#"{:blob, "[REDACTED]"}"#),
        "{tracer}: {blob}"
    );
    for rule in ["key", "card", "argument", "struct", "value"] {
        assert!(
            show["redactions"][rule].as_u64().unwrap_or(0) > 0,
            "{tracer}: no {rule} redactions: {show}"
        );
    }
    assert_eq!(show["redaction"], true);
}

#[test]
fn planted_secrets_appear_nowhere_and_are_counted_by_the_nif_tracer() {
    planted_secrets_under("nif");
}

#[test]
fn planted_secrets_appear_nowhere_and_are_counted_by_the_process_tracer() {
    planted_secrets_under("process");
}

#[test]
fn an_invalid_value_pattern_is_one_line_before_anything_runs() {
    require_beam();
    let home = Home::new();
    for tracer in ["nif", "process"] {
        let marker = home.path().join(format!("ran-{tracer}"));
        let code = format!("File.write!({:?}, \"ran\")", marker.to_str().unwrap());
        let out = home.run(&[
            "run",
            "--tracer",
            tracer,
            "--redact-value",
            "sk_(live",
            "--",
            "elixir",
            "-e",
            &code,
        ]);
        assert_eq!(out.status.code(), Some(1), "{tracer}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("invalid --redact-value 'sk_(live'"), "{err}");
        assert!(!marker.exists(), "the program ran");
    }
}

#[test]
fn redaction_can_only_be_turned_off_at_capture_and_says_so() {
    require_beam();
    let home = Home::new();
    record_secrets(&home, "open", &["--no-redact"]);
    assert!(contains(&stored_terms(&home, "open"), "PLANTED-MSG-XYZZY"));
    let show = home.json(&["show", "open"]);
    assert_eq!(show["redaction"], false);
    let text = stdout(&home.run(&["show", "open"]));
    assert!(text.contains("redaction: OFF"), "{text}");
}
