//! Every capture and view is in the audit log, and tampering with one byte is
//! detected and named.

mod common;

use common::{require_beam, stderr, stdout, Home};

#[test]
fn captures_and_views_are_audited_and_tampering_is_named() {
    require_beam();
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--session",
        "audited",
        "--no-redact",
        "--",
        "erl",
        "-noshell",
        "-eval",
        "init:stop().",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.run(&["show", "audited"]).status.success());
    assert!(home
        .run(&["events", "audited", "--kind", "spawn"])
        .status
        .success());

    let entries = home.json(&["audit", "show"]);
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "capture_start",
            "redaction_off",
            "capture_stop",
            "view",
            "view"
        ],
        "{entries}"
    );
    let e = &entries[0];
    assert_eq!(e["subject"], "audited");
    assert!(e["actor"].as_str().unwrap().contains("(uid "), "{e}");
    assert_eq!(e["details"]["capture"]["redact"]["enabled"], false);
    assert_eq!(entries[3]["details"]["query"], "show");

    let ok = home.run(&["audit", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("intact: 5 entries"));

    // Change one byte of the third entry (capture_stop).
    let path = home.path().join("audit.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let third = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    let at = third
        + bytes[third..]
            .windows(7)
            .position(|w| w == b"\"time\":")
            .unwrap()
        + 9;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&path, &bytes).unwrap();
    let bad = home.run(&["audit", "verify"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    assert!(
        err.contains("audit log tampered: entry 3 (capture_stop audited"),
        "{err}"
    );
    assert!(err.contains("was modified"), "{err}");
}
