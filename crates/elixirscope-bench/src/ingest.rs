//! Collector ingest speed: frames recorded from a real node (the three
//! workloads' trace messages as the agent's `es_hello`/`es_batch` frames, in a
//! file) fed through the collector's path — frame decoding, translation into
//! the event model, send/receive matching, call stacks, interning, columnar
//! blocks, compression and writes — on one thread.

use elixirscope_ingest::Ingestor;
use elixirscope_store::session::{create_session, SessionMeta};
use elixirscope_store::SessionWriter;
use elixirscope_transport::protocol::{decode_agent_frame, AgentFrame};
use elixirscope_transport::server::Sink;
use std::path::Path;
use std::time::Instant;

pub struct IngestResult {
    pub frames: usize,
    pub events: u64,
    pub file_bytes: u64,
    /// Seconds per round.
    pub secs: Vec<f64>,
}

/// Splits the file into frame payloads (each 4-byte big-endian length first).
fn frames(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let end = (at + 4 + len).min(data.len());
        out.push(&data[at + 4..end]);
        at = end;
    }
    out
}

/// Ingests every frame of `file` into a fresh session, `rounds` times.
pub fn run(file: &Path, rounds: usize) -> IngestResult {
    let data = std::fs::read(file).expect("read recorded frames");
    let payloads = frames(&data);
    let peer = "127.0.0.1:1".parse().unwrap();
    let mut secs = Vec::new();
    let mut events = 0;
    for _ in 0..rounds.max(1) {
        let home = tempfile::tempdir().expect("tempdir");
        let meta = SessionMeta::new("ingest-bench", "bench", "frames", serde_json::Value::Null);
        let dir = create_session(home.path(), &meta).expect("session");
        let writer = SessionWriter::create(&dir).expect("writer");
        let mut ingestor = Ingestor::new(dir, meta, writer);
        let started = Instant::now();
        let mut node = String::new();
        for p in &payloads {
            match decode_agent_frame(p).expect("recorded frames decode") {
                AgentFrame::Hello(h) => {
                    node = h.node.clone();
                    ingestor.hello(&h, peer).expect("hello");
                }
                AgentFrame::Batch {
                    seq,
                    dropped_total,
                    events,
                } => ingestor
                    .batch(&node, seq, dropped_total, events)
                    .expect("batch"),
                _ => {}
            }
        }
        secs.push(started.elapsed().as_secs_f64());
        events = ingestor.total_events();
    }
    IngestResult {
        frames: payloads.len(),
        events,
        file_bytes: data.len() as u64,
        secs,
    }
}
