//! Bad input gets one clear line on stderr and a non-zero exit status, never a panic.

mod common;

use common::{require_beam, stderr, stdout, unique, Home};
use std::process::{Command, Output, Stdio};

fn one_line_error(out: &Output, expect: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status for {expect:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(expect), "expected {expect:?} in: {err}");
}

/// An Erlang node with a known cookie, killed on drop.
struct ErlNode(std::process::Child, String);

impl ErlNode {
    fn start(cookie: &str) -> ErlNode {
        let name = format!("{}@localhost", unique("bad"));
        let child = Command::new("erl")
            .args([
                "-noshell",
                "-sname",
                &name,
                "-setcookie",
                cookie,
                "-eval",
                "timer:sleep(infinity).",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start erl");
        let node = ErlNode(child, name.clone());
        let short = name.split('@').next().unwrap().to_owned();
        for _ in 0..300 {
            let names = Command::new("epmd").arg("-names").output().expect("epmd");
            if String::from_utf8_lossy(&names.stdout).contains(&format!("name {short} ")) {
                return node;
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        panic!("erl node did not start");
    }
}

impl Drop for ErlNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn wrong_cookie_unknown_node_and_missing_epmd() {
    require_beam();
    let home = Home::new();
    let node = ErlNode::start("right_cookie");
    one_line_error(
        &home.run(&["record", &node.1, "--cookie", "wrong_cookie"]),
        "wrong cookie?",
    );
    one_line_error(
        &home.run(&["record", "no_such_node_xyz@localhost", "--cookie", "c"]),
        "no node 'no_such_node_xyz@localhost'",
    );
    let out = home
        .cmd(&["record", &node.1, "--cookie", "c"])
        .env("ERL_EPMD_PORT", "1")
        .output()
        .unwrap();
    one_line_error(&out, "cannot reach EPMD on localhost:1");
    one_line_error(
        &home.run(&["record", "bad@name@host", "--cookie", "c"]),
        "invalid node name",
    );
    // Nothing was recorded for failed attaches that never reached a node.
    assert!(home.json(&["sessions"])["sessions"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn malformed_options_are_rejected_before_touching_the_node() {
    let home = Home::new();
    one_line_error(
        &home.run(&["record", "x@localhost", "--cookie", "c", "--trace", "foo("]),
        "malformed pattern 'foo('",
    );
    one_line_error(
        &home.run(&[
            "record",
            "x@localhost",
            "--cookie",
            "c",
            "--trace",
            "lists:reverse/x",
        ]),
        "arity",
    );
    one_line_error(
        &home.run(&[
            "record",
            "x@localhost",
            "--cookie",
            "c",
            "--profile",
            "turbo",
        ]),
        "unknown profile 'turbo'",
    );
    one_line_error(
        &home.run(&["record", "x@localhost", "--cookie", "c", "--sample", "0"]),
        "invalid --sample",
    );
    one_line_error(
        &home.run(&["record", "x@localhost", "--cookie", "c", "--for", "soon"]),
        "invalid duration",
    );
    one_line_error(
        &home.run(&["run", "--", "/no/such/program"]),
        "cannot start",
    );
}

#[test]
fn unknown_sessions_times_processes_and_kinds() {
    require_beam();
    let home = Home::new();
    one_line_error(&home.run(&["events", "nope"]), "no session named 'nope'");
    let out = home.run(&[
        "run",
        "--session",
        "tiny",
        "--",
        "erl",
        "-noshell",
        "-eval",
        "timer:sleep(100), init:stop().",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    one_line_error(&home.run(&["events", "nope"]), "recent sessions: tiny");
    one_line_error(
        &home.run(&["state", "tiny", ":nobody", "--at", "end"]),
        "no process registered as :nobody",
    );
    one_line_error(
        &home.run(&["state", "tiny", "<0.999999.0>", "--at", "end"]),
        "no process <0.999999.0>",
    );
    one_line_error(
        &home.run(&["state", "tiny", "what is this", "--at", "end"]),
        "invalid process",
    );
    one_line_error(
        &home.run(&["tree", "tiny", "--at", "yesterday"]),
        "invalid time 'yesterday'",
    );
    one_line_error(
        &home.run(&["tree", "tiny", "--at", "99999999"]),
        "event 99999999 is not in this session",
    );
    one_line_error(
        &home.run(&["events", "tiny", "--kind", "sneeze"]),
        "unknown event kind 'sneeze'",
    );
}

#[test]
fn damaged_session_files_are_reported_and_the_rest_stays_readable() {
    require_beam();
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--session",
        "cut",
        "--",
        "erl",
        "-noshell",
        "-eval",
        "timer:sleep(100), init:stop().",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let total = home.json(&["show", "cut"])["events"].as_u64().unwrap();
    // Reading sessions needs no Erlang: queries work with nothing on PATH.
    let offline = home
        .cmd(&["events", "cut", "--kind", "process_info"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert!(stdout(&offline).contains("process_info"));
    let dir = home.path().join("sessions/cut");
    let seg = dir.join("events-0000.seg");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    std::fs::write(dir.join("session.json"), b"{ this is not json").unwrap();

    let out = home.run(&["events", "cut", "--limit", "100000"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains("session metadata is not valid"), "{err}");
    let listed = stdout(&out).lines().filter(|l| l.starts_with('#')).count() as u64;
    assert!(
        listed > 0 && listed < total,
        "{listed} of {total} events readable"
    );
    let sessions = home.run(&["sessions"]);
    assert!(sessions.status.success());
    assert!(
        stdout(&sessions).contains("unreadable"),
        "{}",
        stdout(&sessions)
    );
}
