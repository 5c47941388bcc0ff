//! The benchmark node: a real `erl` with the workload module (`erl/bench_work.erl`)
//! and the NIF tracer's Erlang face compiled next to it, reached over Erlang
//! distribution for the in-node variants.

use elixirscope_capture::{Cookie, NodeConnection};
use elixirscope_term::Term;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKLOAD: &str = include_str!("../erl/bench_work.erl");

/// A node running the workloads, killed on drop.
pub struct Node {
    child: Child,
    pub name: String,
    pub cookie: Cookie,
    pub conn: NodeConnection,
    dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one in-node run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub micros: f64,
    pub peak_memory: u64,
    pub trace_messages: u64,
    /// CPU time of the node (all its threads), µs.
    pub cpu_micros: f64,
}

/// What the large-state clients saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct BigRun {
    pub calls: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub cpu_micros: u64,
}

/// How the workload is traced inside the node.
pub enum InNode<'a> {
    Untraced,
    Floor(&'a Path),
    Deliver(&'a Path),
    DbgProcess,
    DbgIp,
}

impl Node {
    pub fn start() -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bench_work.erl"), WORKLOAD).expect("write workload");
        let nif_face = elixirscope_capture::agent::MODULES
            .iter()
            .find(|(m, _)| *m == "elixirscope_nif_tracer")
            .map(|(_, src)| *src)
            .expect("the agent has a NIF tracer module");
        std::fs::write(dir.path().join("elixirscope_nif_tracer.erl"), nif_face)
            .expect("write module");
        for file in ["bench_work.erl", "elixirscope_nif_tracer.erl"] {
            let ok = Command::new("erlc")
                .arg("-o")
                .arg(dir.path())
                .arg(dir.path().join(file))
                .status()
                .expect("erlc (is Erlang installed? run `make bench`)");
            assert!(ok.success(), "{file} did not compile");
        }
        let name = format!("esbench{}@localhost", std::process::id());
        let cookie = Cookie {
            value: format!("bench{}", std::process::id()),
            source: "bench".into(),
        };
        let child = Command::new("erl")
            // No busy-waiting: CPU time then measures work.
            .args([
                "+sbwt",
                "none",
                "+sbwtdcpu",
                "none",
                "+sbwtdio",
                "none",
                "-noshell",
                "-sname",
                &name,
                "-setcookie",
                &cookie.value,
                "-pa",
            ])
            .arg(dir.path())
            .args([
                "-eval",
                "code:ensure_loaded(bench_work), timer:sleep(infinity).",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start erl");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut child = Some(child);
        while Instant::now() < deadline {
            let short = name.split('@').next().unwrap();
            if elixirscope_capture::dist::epmd_port(short, "localhost")
                .ok()
                .flatten()
                .is_some()
            {
                let conn =
                    NodeConnection::connect(&name, &cookie).expect("connect to the benchmark node");
                return Node {
                    child: child.take().unwrap(),
                    name,
                    cookie,
                    conn,
                    dir,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("benchmark node did not start");
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn call(&self, f: &str, args: Vec<Term>) -> Term {
        self.conn
            .rpc("bench_work", f, args, Duration::from_secs(900))
            .unwrap_or_else(|e| panic!("bench_work:{f} failed: {e}"))
    }

    /// Runs `workload` of `size` under `tracing` and reports what it cost.
    pub fn run(&self, workload: &str, size: u64, tracing: InNode<'_>) -> Run {
        let tracing = match tracing {
            InNode::Untraced => Term::atom("none"),
            InNode::Floor(lib) => Term::Tuple(vec![
                Term::atom("floor"),
                Term::string(&lib.with_extension("").to_string_lossy()),
            ]),
            InNode::Deliver(lib) => Term::Tuple(vec![
                Term::atom("deliver"),
                Term::string(&lib.with_extension("").to_string_lossy()),
            ]),
            InNode::DbgProcess => Term::atom("dbg_process"),
            InNode::DbgIp => Term::atom("dbg_ip"),
        };
        let r = self.call(
            "run",
            vec![Term::atom(workload), Term::Integer(size as i64), tracing],
        );
        match r.as_tuple() {
            Some([t, m, c, b]) => Run {
                micros: t.as_i64().unwrap_or(0) as f64,
                peak_memory: m.as_i64().unwrap_or(0).max(0) as u64,
                trace_messages: c.as_i64().unwrap_or(0).max(0) as u64,
                cpu_micros: b.as_i64().unwrap_or(0) as f64,
            },
            _ => panic!("bench_work:run returned {r:?}"),
        }
    }

    /// Records the three workloads' trace messages as agent frames into `file`.
    pub fn record_frames(&self, file: &Path, size: u64) -> u64 {
        let r = self.call(
            "frames",
            vec![
                Term::string(&file.to_string_lossy()),
                Term::Integer(size as i64),
                Term::Map(vec![]),
            ],
        );
        r.as_i64().unwrap_or(0).max(0) as u64
    }

    /// Starts the large-state server (`bench_work:big_start/1`); its heap in bytes.
    pub fn big_start(&self, entries: u64) -> u64 {
        let r = self.call("big_start", vec![Term::Integer(entries as i64)]);
        r.as_i64().unwrap_or(0).max(0) as u64
    }

    pub fn big_stop(&self) {
        self.call("big_stop", vec![]);
    }

    /// Clients call the large-state server for `millis` (see
    /// `bench_work:big_clients/4`), untraced or under dbg's process tracer.
    pub fn big_clients(&self, clients: u64, millis: u64, pause_ms: u64, dbg: bool) -> BigRun {
        let r = self.call(
            "big_clients",
            vec![
                Term::Integer(clients as i64),
                Term::Integer(millis as i64),
                Term::Integer(pause_ms as i64),
                Term::atom(if dbg { "dbg_process" } else { "none" }),
            ],
        );
        let n = |t: &Term| t.as_i64().unwrap_or(0).max(0) as u64;
        match r.as_tuple() {
            Some([calls, p50, p99, cpu]) => BigRun {
                calls: n(calls),
                p50_ns: n(p50),
                p99_ns: n(p99),
                cpu_micros: n(cpu),
            },
            _ => panic!("bench_work:big_clients returned {r:?}"),
        }
    }

    pub fn otp_release(&self) -> String {
        self.conn
            .rpc(
                "erlang",
                "system_info",
                vec![Term::atom("otp_release")],
                Duration::from_secs(5),
            )
            .ok()
            .and_then(|t| elixirscope_capture::agent::charlist_text(&t))
            .unwrap_or_else(|| "?".into())
    }
}
