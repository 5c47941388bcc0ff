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

#[test]
fn planted_secrets_appear_nowhere_and_are_counted() {
    require_beam();
    let home = Home::new();
    record_secrets(&home, "safe", &[]);

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
        &["snapshot", "safe", "--at", "end", "--json"],
        &["show", "safe", "--json"],
    ] {
        let out = home.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        outputs.push_str(&stdout(&out));
    }
    for secret in PLANTED {
        assert!(!contains(&terms, secret), "{secret} is in the stored terms");
        assert!(
            !contains(&files, secret),
            "{secret} is in the session files"
        );
        assert!(!outputs.contains(secret), "{secret} is in query output");
    }
    // Redacted values are visible as such, and harmless ones untouched.
    let st = home.json(&["state", "safe", "Secrets.Vault", "--at", "end"]);
    let state = st["state"].as_str().unwrap();
    assert!(state.contains(r#"password: "[REDACTED]""#), "{state}");
    assert!(state.contains(r#""no secret here""#), "{state}");
    let show = home.json(&["show", "safe"]);
    for rule in ["key", "card", "argument", "struct"] {
        assert!(
            show["redactions"][rule].as_u64().unwrap_or(0) > 0,
            "no {rule} redactions: {show}"
        );
    }
    assert_eq!(show["redaction"], true);
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
