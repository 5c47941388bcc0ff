//! Helpers for tests against real BEAM nodes: starting Elixir/Erlang nodes,
//! calling into them, and running the `elixirscope` binary with a private home.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique short node name for this test process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Fails clearly when Erlang or Elixir is missing (tests never pass without them).
pub fn require_beam() {
    for tool in ["erl", "elixir"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            ok,
            "`{tool}` is not installed: run `make test`, which installs Erlang/OTP and Elixir"
        );
    }
}

/// A private ElixirScope home for one test.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `elixirscope ARGS...` with this home.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_elixirscope"));
        c.args(args)
            .env("ELIXIRSCOPE_HOME", self.path())
            .env_remove("ELIXIRSCOPE_COOKIE");
        c
    }

    /// Runs `elixirscope ARGS...` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run elixirscope")
    }

    /// Runs a query with `--json` and parses the document; panics with stderr on failure.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "elixirscope {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad JSON from {args:?}: {e}\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The newest session's name.
    pub fn last_session(&self) -> String {
        let v = self.json(&["sessions"]);
        v["sessions"]
            .as_array()
            .and_then(|a| a.last())
            .expect("a session")["name"]
            .as_str()
            .expect("name")
            .to_owned()
    }
}

/// Records the demo Mix project (`examples/demo`) as session `name`: the state
/// of its three servers and the calls of `Demo.Bank.deposit/2`.
pub fn record_demo(home: &Home, name: &str) -> Output {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo");
    home.cmd(&[
        "run",
        "--session",
        name,
        "--state",
        "Demo.Counter",
        "--state",
        "Demo.Bank",
        "--state",
        "Demo.Flaky",
        "--trace",
        "Demo.Bank.deposit/2",
        "--",
        "mix",
        "run",
        "-e",
        "Demo.Workload.run()",
    ])
    .current_dir(&demo)
    .output()
    .expect("run demo")
}

/// The secrets `secrets.exs` plants (built at run time, never in its source).
pub const PLANTED: &[&str] = &[
    "PLANTED-STATE-XYZZY",
    "PLANTED-MSG-XYZZY",
    "PLANTED-TOKEN-XYZZY",
    "PLANTED-ARG-XYZZY",
    "PLANTED-STRUCTUSER-XYZZY",
    "PLANTED-STRUCTPIN-XYZZY",
    "PLANTED-HEADER-XYZZY",
    "4111 1111 1111 1111",
];

/// Runs `secrets.exs` (secrets planted in state, messages, arguments and a
/// struct) as session `session`, with the redaction rules it needs and `extra`.
pub fn record_secrets(home: &Home, session: &str, extra: &[&str]) {
    let script = fixture("secrets.exs");
    let mut args = vec![
        "run",
        "--session",
        session,
        "--state",
        "Secrets.Vault",
        "--trace",
        "Secrets.Auth._/_",
        "--redact-arg",
        "Secrets.Auth.login/2=2",
        "--redact-struct",
        "Secrets.Creds",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "elixir", script.to_str().unwrap()]);
    let out = home.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Starts `elixirscope record NODE --session SESSION EXTRA...` and waits
/// until capture runs; its stderr lines come through the receiver.
pub fn start_recording(
    home: &Home,
    node: &BeamNode,
    session: &str,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>) {
    let mut args = vec![
        "record",
        node.name.as_str(),
        "--cookie",
        node.cookie.as_str(),
        "--session",
        session,
    ];
    args.extend_from_slice(extra);
    let mut child = home
        .cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn record");
    let rx = stderr_lines(&mut child);
    let failure = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.starts_with("recording ") => return (child, rx),
            Ok(l) if !l.starts_with("error") => continue,
            other => break other,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    panic!("recording did not start: {failure:?}");
}

/// Stops a recording with Ctrl-C (SIGINT); returns what it said on stderr
/// after it started.
pub fn stop_recording(mut child: Child, rx: mpsc::Receiver<String>) -> String {
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait record");
    let mut err = String::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        err.push_str(&l);
        err.push('\n');
    }
    assert!(status.success(), "record exited with {status}: {err}");
    err
}

/// The lines `child` writes on stderr, as they come.
pub fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

/// A running Elixir node started for a test; killed when dropped.
pub struct BeamNode {
    pub name: String,
    pub cookie: String,
    child: Child,
}

impl BeamNode {
    /// Starts `elixir --sname NAME@localhost --cookie C` loading `files` then running `code`.
    pub fn elixir(prefix: &str, files: &[PathBuf], code: &str) -> BeamNode {
        let short = unique(prefix);
        let name = format!("{short}@localhost");
        let cookie = format!("cookie{}", std::process::id());
        let mut cmd = Command::new("elixir");
        cmd.args(["--sname", &name, "--cookie", &cookie]);
        for f in files {
            cmd.arg("-r").arg(f);
        }
        cmd.args(["-e", code])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start elixir node");
        let node = BeamNode {
            name,
            cookie,
            child,
        };
        node.wait_registered();
        node
    }

    fn wait_registered(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let short = self.name.split('@').next().unwrap().to_owned();
        while Instant::now() < deadline {
            let out = Command::new("epmd").arg("-names").output();
            if let Ok(o) = out {
                if String::from_utf8_lossy(&o.stdout).contains(&format!("name {short} ")) {
                    // Registered; give the node a moment to finish booting its code.
                    std::thread::sleep(Duration::from_millis(300));
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {} did not start", self.name);
    }

    /// Waits (up to 10 s) until a capture runs on the node: the tracer is
    /// registered and new processes get trace flags.
    pub fn wait_until_traced(&self) -> bool {
        for _ in 0..100 {
            if self.eval("whereis(elixirscope_tracer) =/= undefined andalso erlang:trace_info(new_processes, flags) =/= {flags, []}") == "true" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Evaluates an Erlang expression on the node from a throwaway node; returns what it prints.
    pub fn eval(&self, expr: &str) -> String {
        let checker = unique("checker");
        let code = format!(
            "R = rpc:call('{}', erlang, apply, [fun() -> {expr} end, []], 20000), io:format(\"~p~n\", [R]), halt().",
            self.name
        );
        let out = Command::new("erl")
            .args([
                "-noshell",
                "-sname",
                &format!("{checker}@localhost"),
                "-setcookie",
                &self.cookie,
                "-eval",
                &code,
            ])
            .output()
            .expect("run erl");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Calls `Module.function(args)` (Elixir syntax args) on the node via `:rpc`.
    pub fn call_elixir(&self, call: &str) -> String {
        let checker = unique("driver");
        let code = format!(
            "IO.inspect(elem(:rpc.call(:\"{}\", Code, :eval_string, [{:?}]), 0), limit: :infinity)",
            self.name, call
        );
        let out = Command::new("elixir")
            .args([
                "--sname",
                &format!("{checker}@localhost"),
                "--cookie",
                &self.cookie,
                "-e",
                &code,
            ])
            .output()
            .expect("run elixir");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for BeamNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of a fixture under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What `tests/fixtures/probe.erl` saw from outside a node.
pub struct Probed {
    pub max_latency_us: u64,
    pub min_memory: u64,
    pub max_memory: u64,
    pub samples: u64,
}

/// An Erlang node outside `node` that reads its total memory over RPC every
/// 10 ms for `secs` seconds, timing each call.
pub struct Probe {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Probe {
    pub fn start(node: &BeamNode, secs: u32) -> Probe {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("erlc")
            .arg("-o")
            .arg(dir.path())
            .arg(fixture("probe.erl"))
            .status()
            .unwrap();
        assert!(ok.success(), "probe.erl did not compile");
        let child = Command::new("erl")
            .args([
                "-noshell",
                "-sname",
                &format!("{}@localhost", unique("probe")),
            ])
            .args(["-setcookie", &node.cookie, "-pa"])
            .arg(dir.path())
            .args(["-run", "probe", "main", &node.name, &secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Probe { child, _dir: dir }
    }

    /// Waits for the probe to finish and reads its figures.
    pub fn finish(self) -> Probed {
        let out = self.child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let figures: Vec<u64> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [max_latency_us, min_memory, max_memory, samples] = figures[..] else {
            panic!("probe printed {text:?}")
        };
        Probed {
            max_latency_us,
            min_memory,
            max_memory,
            samples,
        }
    }
}
