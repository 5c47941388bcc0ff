//! Store and query speed on a generated session: append throughput into the
//! store, bytes per event, and state-at-T / event-window / flame-graph
//! latencies (p50/p99).

use elixirscope_query::filter::EventFilter;
use elixirscope_query::{Cursor, Session};
use elixirscope_store::session::{create_session, SessionMeta};
use elixirscope_store::{EventKind, MfaEntry, NewEvent, PidEntry, SessionWriter};
use elixirscope_term::{encode_body, Term};
use std::time::Instant;

const PIDS: u32 = 1000;
const STATEFUL: u32 = 50;

pub struct StoreResult {
    pub events: u64,
    pub append_secs: f64,
    pub bytes: u64,
    pub open_ms: f64,
    pub state_ms: (f64, f64),
    pub window_ms: (f64, f64),
    pub flame_calls: u64,
    pub flame_runs: usize,
    pub flame_ms: (f64, f64),
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Deterministic pseudo-random numbers (no dependency needed for a benchmark).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// A session written by [`generate`].
pub struct Generated {
    pub dir: std::path::PathBuf,
    pub pids: Vec<u32>,
    /// First and last timestamps.
    pub t0: i64,
    pub end: i64,
    pub events: u64,
    pub append_secs: f64,
}

/// Writes `n` events shaped like a busy node (calls and returns of small
/// functions, messages, GenServer state changes) as session `name` in `home`,
/// one call/return/send/receive group every `step_ns`.
pub fn generate(home: &std::path::Path, name: &str, n: u64, step_ns: i64) -> Generated {
    let mut meta = SessionMeta::new(name, "bench", "generated", serde_json::Value::Null);
    meta.status = elixirscope_store::session::SessionStatus::Complete;
    let dir = create_session(home, &meta).expect("session");
    let mut w = SessionWriter::create(&dir).expect("writer");
    let node = w.dict_mut().intern_atom("bench@localhost");
    let pids: Vec<u32> = (0..PIDS)
        .map(|i| {
            w.dict_mut().intern_pid(PidEntry {
                node,
                number: 100 + i,
                serial: 0,
                creation: 1,
            })
        })
        .collect();
    let m = w.dict_mut().intern_atom("Elixir.Bench.Worker");
    let f = w.dict_mut().intern_atom("handle");
    let mfa = w.dict_mut().intern_mfa(MfaEntry {
        module: m,
        function: f,
        arity: 1,
    });
    let args: Vec<Vec<u8>> = (0..100)
        .map(|i| encode_body(&Term::list(vec![Term::Integer(i)])))
        .collect();
    let rets: Vec<Vec<u8>> = (0..100)
        .map(|i| encode_body(&Term::Tuple(vec![Term::atom("ok"), Term::Integer(i)])))
        .collect();
    let msg = encode_body(&Term::Tuple(vec![
        Term::atom("work"),
        Term::string("payload"),
    ]));
    let t0 = 1_800_000_000_000_000_000i64;
    let started = Instant::now();
    let mut i = 0u64;
    let mut ts = t0;
    while i < n {
        let k = (i / 4) as usize;
        let pid = pids[k % PIDS as usize];
        ts += step_ns;
        let mut call = NewEvent::new(ts, EventKind::Call, node, pid);
        call.mfa = mfa;
        call.term = Some(&args[k % 100]);
        let call_id = w.append(&call).expect("append");
        let mut ret = NewEvent::new(ts + 120, EventKind::Return, node, pid);
        ret.mfa = mfa;
        ret.link = Some(call_id);
        ret.aux = 120;
        ret.term = Some(&rets[k % 100]);
        w.append(&ret).expect("append");
        let to = pids[(k * 7 + 3) % PIDS as usize];
        let mut send = NewEvent::new(ts + 150, EventKind::Send, node, pid);
        send.peer = to;
        send.term = Some(&msg);
        let send_id = w.append(&send).expect("append");
        let mut recv = NewEvent::new(ts + 170, EventKind::Receive, node, to);
        recv.peer = pid;
        recv.link = Some(send_id);
        recv.term = Some(&msg);
        w.append(&recv).expect("append");
        if (k as u32) % PIDS < STATEFUL {
            let state = encode_body(&Term::Map(vec![(
                Term::atom("count"),
                Term::Integer(k as i64),
            )]));
            let mut s = NewEvent::new(ts + 130, EventKind::State, node, pid);
            s.mfa = mfa;
            s.link = Some(call_id);
            s.term = Some(&state);
            w.append(&s).expect("append");
            i += 1;
        }
        i += 4;
        if k.is_multiple_of(5000) {
            w.flush().expect("flush");
        }
    }
    w.sync().expect("sync");
    let append_secs = started.elapsed().as_secs_f64();
    let events = w.total();
    drop(w);
    meta.events = events;
    meta.started_ns = Some(t0);
    meta.ended_ns = Some(ts + 170);
    elixirscope_store::session::write_meta(&dir, &meta).expect("session metadata");
    Generated {
        dir,
        pids,
        t0,
        end: ts + 170,
        events,
        append_secs,
    }
}

/// Generates `n` events and measures queries on them.
pub fn run(n: u64) -> StoreResult {
    let home = tempfile::tempdir().expect("tempdir");
    let Generated {
        dir,
        pids,
        t0,
        end: ts,
        events,
        append_secs,
    } = generate(home.path(), "store-bench", n, 250);
    let bytes = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();

    let opened = Instant::now();
    let session = Session::open_dir(&dir).expect("open");
    let open_ms = opened.elapsed().as_secs_f64() * 1e3;
    let mut rng = Lcg(42);
    let span = (ts - t0).max(1) as u64;
    let mut state_lat = Vec::new();
    let mut window_lat = Vec::new();
    for _ in 0..300 {
        let pid = pids[(rng.next() % STATEFUL as u64) as usize];
        let at = Cursor {
            ts: t0 + (rng.next() % span) as i64,
            id: None,
        };
        let q = Instant::now();
        let st = session.state_at(pid, &at);
        state_lat.push(q.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(st);
        let from = t0 + (rng.next() % span) as i64;
        let filter = EventFilter {
            from: Some(Cursor { ts: from, id: None }),
            to: Some(Cursor {
                ts: from + 1_000_000,
                id: None,
            }),
            limit: 1000,
            ..Default::default()
        };
        let q = Instant::now();
        std::hint::black_box(session.events(&filter, Some(160)));
        window_lat.push(q.elapsed().as_secs_f64() * 1e3);
    }
    // Flame graph of every call in the session, all processes.
    let mut flame_lat = Vec::new();
    let mut flame_calls = 0;
    let flame_runs = 5;
    for _ in 0..flame_runs {
        let q = Instant::now();
        let g = session
            .flame(&elixirscope_query::flame::FlameQuery::default())
            .expect("flame graph");
        flame_lat.push(q.elapsed().as_secs_f64() * 1e3);
        flame_calls = g.calls;
    }
    StoreResult {
        events,
        append_secs,
        bytes,
        open_ms,
        state_ms: (
            percentile(&mut state_lat, 0.5),
            percentile(&mut state_lat, 0.99),
        ),
        window_ms: (
            percentile(&mut window_lat, 0.5),
            percentile(&mut window_lat, 0.99),
        ),
        flame_calls,
        flame_runs,
        flame_ms: (
            percentile(&mut flame_lat, 0.5),
            percentile(&mut flame_lat, 0.99),
        ),
    }
}
