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

/// Fails clearly when Erlang/OTP (25 or newer) or Elixir is missing or does
/// not run: tests never pass without them. Checked once per test binary.
pub fn require_beam() {
    static CHECKED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if let Err(why) = CHECKED.get_or_init(check_beam) {
        panic!("{why}: run `make test`, which installs Erlang/OTP and Elixir from Debian (erlang-nox erlang-dev elixir)");
    }
}

fn check_beam() -> Result<(), String> {
    // Stdin closed and -noshell: nothing may wait for a terminal.
    let run = |tool: &str, args: &[&str]| -> Result<String, String> {
        let out = Command::new(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("`{tool}` cannot be started ({e})"))?;
        if !out.status.success() {
            return Err(format!(
                "`{tool} {}` exited with {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    run("erl", &["-noshell", "-eval", "halt()."])?;
    let otp = run(
        "erl",
        &[
            "-noshell",
            "-eval",
            "io:format(\"~s\", [erlang:system_info(otp_release)]), halt().",
        ],
    )?;
    match otp.parse::<u32>() {
        Ok(n) if n >= 25 => {}
        _ => {
            return Err(format!(
                "Erlang/OTP {otp:?} found; ElixirScope needs OTP 25 or newer"
            ))
        }
    }
    let ok = run("elixir", &["-e", "IO.write(:ok)"])?;
    if ok != "ok" {
        return Err(format!("`elixir -e 'IO.write(:ok)'` printed {ok:?}"));
    }
    Ok(())
}

/// Polls `probe` every `every` until it returns `Some`, or panics after
/// `timeout` saying what did not happen.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(every);
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
    let (child, rx, _) = start_recording_said(home, node, session, extra);
    (child, rx)
}

/// [`start_recording`], also returning what the recorder said on stderr
/// before capture started.
pub fn start_recording_said(
    home: &Home,
    node: &BeamNode,
    session: &str,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>, String) {
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
    let mut said = String::new();
    let failure = loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.starts_with("recording ") => return (child, rx, said),
            Ok(l) if !l.starts_with("error") => {
                said.push_str(&l);
                said.push('\n');
            }
            other => break other,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    panic!("recording did not start: {failure:?} (after: {said})");
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

/// Waits (up to `timeout`) for a recording to end on its own (a trip, its
/// `--for`); returns its exit status and what it said on stderr after it
/// started. Kills it and panics if it is still running at the deadline.
pub fn wait_recording_ends(
    mut child: Child,
    rx: mpsc::Receiver<String>,
    timeout: Duration,
) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + timeout;
    let mut err = String::new();
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            err.push_str(&l);
            err.push('\n');
        }
        if let Some(status) = child.try_wait().expect("wait record") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the recording was still running after {timeout:?}: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        err.push_str(&l);
        err.push('\n');
    }
    (status, err)
}

/// A session's `session.json`.
pub fn session_json(home: &Home, session: &str) -> serde_json::Value {
    let path = home
        .path()
        .join("sessions")
        .join(session)
        .join("session.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The integers in `text`, in order (to read figures out of a message).
pub fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
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
    /// Holds the node's stderr (shown when it fails to start) and its ready marker.
    dir: tempfile::TempDir,
}

impl BeamNode {
    /// Starts `elixir --sname NAME@localhost --cookie C`, loads `files`, runs
    /// `code` (which must return; a trailing `Process.sleep(:infinity)` is
    /// dropped) and keeps the node up. Returns once `code` has run.
    pub fn elixir(prefix: &str, files: &[PathBuf], code: &str) -> BeamNode {
        BeamNode::start(&format!("{}@localhost", unique(prefix)), files, code)
    }

    /// Like [`BeamNode::elixir`] with a long name on `host` (an IP address of
    /// this machine, say), so the node is reached through that address.
    pub fn elixir_at(host: &str, prefix: &str, files: &[PathBuf], code: &str) -> BeamNode {
        BeamNode::start(&format!("{}@{host}", unique(prefix)), files, code)
    }

    fn start(name: &str, files: &[PathBuf], code: &str) -> BeamNode {
        let cookie = format!("cookie{}", std::process::id());
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let code = code.trim().trim_end_matches("Process.sleep(:infinity)");
        let code = code.trim().trim_end_matches(';');
        let code = format!(
            "{code}\nFile.write!({:?}, \"ready\")\nProcess.sleep(:infinity)",
            ready.to_str().unwrap()
        );
        let mut cmd = Command::new("elixir");
        cmd.arg(if long_name(name) { "--name" } else { "--sname" })
            .args([name, "--cookie", &cookie]);
        for f in files {
            cmd.arg("-r").arg(f);
        }
        let log = std::fs::File::create(dir.path().join("stderr")).expect("node log");
        cmd.args(["-e", &code])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().expect("start elixir node");
        let mut node = BeamNode {
            name: name.to_owned(),
            cookie,
            child,
            dir,
        };
        node.wait_ready();
        node
    }

    /// Waits until the node's code has run (it writes its ready marker) and
    /// the node is registered with EPMD; fails early if it exits.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = self.dir.path().join("ready");
        let short = self.name.split('@').next().unwrap().to_owned();
        let mut registered = false;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "node {} exited with {status} before it was ready: {}",
                    self.name,
                    self.log()
                );
            }
            if !registered {
                let out = Command::new("epmd").arg("-names").output();
                registered = out.is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout).contains(&format!("name {short} "))
                });
            }
            if registered && ready.exists() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} was not ready within 60 s (registered with EPMD: {registered}): {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the node wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Waits (up to 10 s) until a capture runs on the node: the tracer is
    /// registered and new processes get trace flags.
    pub fn wait_until_traced(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.eval("whereis(elixirscope_tracer) =/= undefined andalso erlang:trace_info(new_processes, flags) =/= {flags, []}") == "true" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The `-name`/`-sname` flag and name for a helper node next to this one.
    fn helper_name(&self, prefix: &str) -> [String; 2] {
        let host = self.name.split('@').nth(1).unwrap_or("localhost");
        let flag = if long_name(&self.name) {
            "name"
        } else {
            "sname"
        };
        [flag.into(), format!("{}@{host}", unique(prefix))]
    }

    /// Evaluates an Erlang expression on the node from a throwaway node and
    /// returns what it evaluates to (as `~p` prints it). Panics, naming the
    /// expression, if the call fails (`{badrpc, ...}`: the node is down, the
    /// expression raised...) or the helper node does not exit cleanly.
    pub fn eval(&self, expr: &str) -> String {
        self.try_eval(expr).unwrap_or_else(|why| {
            panic!("eval on {} failed: {why}\n  expression: {expr}", self.name)
        })
    }

    /// [`BeamNode::eval`] for callers that expect failure: `Err` holds the
    /// `{badrpc, ...}` or what went wrong with the helper node.
    pub fn try_eval(&self, expr: &str) -> Result<String, String> {
        let [flag, helper] = self.helper_name("checker");
        let code = format!(
            "case rpc:call('{}', erlang, apply, [fun() -> {expr} end, []], 20000) of \
               {{badrpc, _}} = B -> io:format(\"~p~n\", [B]), halt(3); \
               R -> io:format(\"~p~n\", [R]), halt(0) \
             end.",
            self.name
        );
        let out = Command::new("erl")
            .args([
                "-noshell",
                &format!("-{flag}"),
                &helper,
                "-setcookie",
                &self.cookie,
                "-eval",
                &code,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run erl");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match out.status.code() {
            Some(0) => Ok(text),
            Some(3) => Err(text),
            _ => Err(format!(
                "the helper node exited with {}: {text} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// Calls `Module.function(args)` (Elixir code) on the node via `:rpc` and
    /// returns its value as `inspect` prints it. Panics, naming the code, if
    /// the call fails (`{:badrpc, ...}`, or the helper does not exit cleanly).
    pub fn call_elixir(&self, call: &str) -> String {
        self.try_call_elixir(call)
            .unwrap_or_else(|why| panic!("call on {} failed: {why}\n  code: {call}", self.name))
    }

    /// [`BeamNode::call_elixir`] for callers that expect failure.
    pub fn try_call_elixir(&self, call: &str) -> Result<String, String> {
        let [flag, helper] = self.helper_name("driver");
        let code = format!(
            "case :rpc.call(:\"{}\", Code, :eval_string, [{:?}]) do \
               {{:badrpc, _}} = b -> IO.inspect(b, limit: :infinity); System.halt(3)\n \
               {{value, _binding}} -> IO.inspect(value, limit: :infinity) \
             end",
            self.name, call
        );
        let out = Command::new("elixir")
            .args([
                &format!("--{flag}"),
                &helper,
                "--cookie",
                &self.cookie,
                "-e",
                &code,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run elixir");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match out.status.code() {
            Some(0) => Ok(text),
            Some(3) => Err(text),
            _ => Err(format!(
                "the helper node exited with {}: {text} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }
}

/// Whether a node name needs `-name` (a host with dots: an IP or a FQDN).
fn long_name(name: &str) -> bool {
    name.split('@').nth(1).is_some_and(|h| h.contains('.'))
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
    /// RPCs answered.
    pub samples: u64,
    /// RPCs that failed or got no answer within 5 s.
    pub failures: u64,
}

/// An Erlang node outside `node` that reads its total memory over RPC every
/// 10 ms for `secs` seconds, timing each call.
pub struct Probe {
    child: Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Probe {
    /// Starts the probe and returns once its first call was answered.
    pub fn start(node: &BeamNode, secs: u32) -> Probe {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("erlc")
            .arg("-o")
            .arg(dir.path())
            .arg(fixture("probe.erl"))
            .status()
            .unwrap();
        assert!(ok.success(), "probe.erl did not compile");
        let [flag, name] = node.helper_name("probe");
        let mut child = Command::new("erl")
            .args(["-noshell", &format!("-{flag}"), &name])
            .args(["-setcookie", &node.cookie, "-pa"])
            .arg(dir.path())
            .args(["-run", "probe", "main", &node.name, &secs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "connected", "the probe did not connect");
        Probe {
            child,
            out,
            _dir: dir,
        }
    }

    /// Waits for the probe to finish and reads its figures.
    pub fn finish(mut self) -> Probed {
        use std::io::Read;
        let mut text = String::new();
        self.out.read_to_string(&mut text).unwrap();
        let _ = self.child.wait();
        let figures: Vec<u64> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [max_latency_us, min_memory, max_memory, samples, failures] = figures[..] else {
            panic!("probe printed {text:?}")
        };
        Probed {
            max_latency_us,
            min_memory,
            max_memory,
            samples,
            failures,
        }
    }
}
