//! The README's `elixirscope ...` commands are real: each one is run (in an
//! empty home, against nodes that do not exist) and must get past argument
//! parsing, so a renamed flag or subcommand breaks this test, not a reader.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every command line in the README's `sh` blocks that starts with `elixirscope`,
/// continuation lines joined and comments dropped.
fn readme_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md at the workspace root");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        let code = code.trim_end();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(code);
        let full = std::mem::take(&mut pending);
        if full.trim_start().starts_with("elixirscope ") {
            commands.push(full.trim().to_string());
        }
    }
    commands
}

#[test]
fn every_readme_command_parses() {
    let commands = readme_commands();
    assert!(commands.len() >= 15, "found only {commands:?}");
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for line in &commands {
        let words = shlex::split(line).unwrap_or_else(|| panic!("unbalanced quotes: {line}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_elixirscope"))
            .args(&words[1..])
            .env("ELIXIRSCOPE_HOME", home.path())
            .env("ELIXIRSCOPE_COOKIE", "readme")
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Commands that would run on (serving, recording) are fine once
        // they are past parsing; give them a moment, then stop them.
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if started.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            status.and_then(|s| s.code()) != Some(2) && !err.contains("Usage:"),
            "README command rejected by the argument parser:\n  {line}\n{err}"
        );
    }
}
