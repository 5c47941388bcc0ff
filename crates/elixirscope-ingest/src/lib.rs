//! Ingest: from the agent's trace messages to stored ElixirScope events.
//!
//! The [`Ingestor`] is the transport's [`Sink`]: for every batch it orders the
//! events by timestamp, translates each trace message into the event model
//! ([`translate`]), interns pids/atoms/MFAs, pairs sends with receives
//! ([`matcher`]), pairs calls with returns on per-process call stacks, derives
//! behaviour state changes ([`behaviour`]), appends everything to the session and
//! flushes it before the batch is acknowledged. It also keeps `session.json`
//! current (nodes, trips, drops and counts) and the collector's metrics
//! ([`publish`]).

pub mod behaviour;
mod hash;
pub mod matcher;
mod publish;
mod states;
mod translate;

use elixirscope_store::session::{write_meta, NodeMeta, SessionMeta, SessionStatus, Trip};
use elixirscope_store::{DictId, EventKind, SessionWriter, StoreError};
use elixirscope_term::view::Elements;
use elixirscope_term::Term;
use elixirscope_transport::{Hello, Sink, SinkError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use translate::NodeCtx;

const META_EVERY: Duration = Duration::from_secs(1);

/// Turns agent batches into stored events for one session.
pub struct Ingestor {
    dir: PathBuf,
    meta: SessionMeta,
    writer: SessionWriter,
    nodes: HashMap<String, NodeCtx>,
    state: translate::State,
    last_meta: Instant,
    finished_nodes: Vec<String>,
    statuses: HashMap<String, Term>,
    /// Events per kind already added to the collector's metrics.
    published: [u64; 32],
}

impl Ingestor {
    /// An ingestor writing into the session at `dir` described by `meta`.
    pub fn new(dir: PathBuf, meta: SessionMeta, mut writer: SessionWriter) -> Ingestor {
        writer.set_max_bytes(meta_session_cap(&meta));
        publish::started(&meta);
        Ingestor {
            dir,
            meta,
            writer,
            nodes: HashMap::new(),
            state: translate::State::default(),
            last_meta: Instant::now(),
            finished_nodes: Vec::new(),
            statuses: HashMap::new(),
            published: [0; 32],
        }
    }

    /// The session metadata as currently known.
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// Mutable metadata (the recorder sets stop reasons and status).
    pub fn meta_mut(&mut self) -> &mut SessionMeta {
        &mut self.meta
    }

    /// Events stored so far.
    pub fn total_events(&self) -> u64 {
        self.writer.total()
    }

    /// Whether any node tripped its budget.
    pub fn tripped(&self) -> bool {
        !self.meta.trips.is_empty()
    }

    /// The latest budget use each agent reported.
    pub fn statuses(&self) -> &HashMap<String, Term> {
        &self.statuses
    }

    /// Nodes that said goodbye (finished cleanly).
    pub fn finished_nodes(&self) -> &[String] {
        &self.finished_nodes
    }

    /// Whether the session reached its size cap.
    pub fn session_full(&self) -> bool {
        self.writer.is_full()
    }

    /// Flushes, syncs and writes the final metadata with `status`.
    pub fn finish(&mut self, status: SessionStatus, ended_ns: i64) -> Result<(), StoreError> {
        self.writer.sync()?;
        self.meta.status = status;
        self.meta.ended_ns = Some(ended_ns.max(self.state.last_ts));
        self.meta.recorder_pid = None;
        self.update_meta_counts();
        publish::events(&self.meta.name, &self.writer, &mut self.published);
        publish::finished(&self.meta.name);
        write_meta(&self.dir, &self.meta)
    }

    /// Timestamp (ns since the epoch) of the newest stored event.
    pub fn last_ts(&self) -> i64 {
        self.state.last_ts
    }

    fn update_meta_counts(&mut self) {
        self.meta.counts = EventKind::ALL
            .iter()
            .filter(|k| self.writer.count(**k) > 0)
            .map(|k| (k.name().to_owned(), self.writer.count(*k)))
            .collect();
        self.meta.events = self.writer.total();
        self.meta.bytes = self.writer.bytes_on_disk();
    }

    fn maybe_write_meta(&mut self, force: bool) {
        if force || self.last_meta.elapsed() >= META_EVERY {
            self.update_meta_counts();
            let _ = write_meta(&self.dir, &self.meta);
            self.last_meta = Instant::now();
        }
    }

    /// Stores one batch of events from `node` (the events list of an `es_batch`).
    pub fn ingest(
        &mut self,
        node: &str,
        dropped_total: u64,
        events: Elements<'_>,
    ) -> Result<(), StoreError> {
        let Some(ctx) = self.nodes.get_mut(node) else {
            return Ok(());
        };
        let mut splits = translate::split_all(events);
        splits.sort_by_key(|s| s.ts);
        if dropped_total > ctx.dropped_total {
            let first_ts = splits.first().map(|s| s.ts);
            let delta = dropped_total - ctx.dropped_total;
            ctx.dropped_total = dropped_total;
            self.meta.dropped += delta;
            publish::dropped(&self.meta.name, node, delta);
            translate::dropped(&mut self.writer, &mut self.state, ctx, first_ts, delta)?;
        }
        let mut trips = Vec::new();
        for s in &splits {
            if let Some(trip) = translate::event(&mut self.writer, &mut self.state, ctx, s)? {
                trips.push(trip);
            }
        }
        self.writer.flush()?;
        if self.writer.is_full()
            && !self
                .meta
                .trips
                .iter()
                .any(|t| t.reason == "max_session_bytes")
        {
            let detail = format!(
                "the session reached {} bytes on disk (budget max_session_bytes)",
                self.writer.bytes_on_disk()
            );
            trips.push(translate::collector_trip(
                &mut self.writer,
                &self.state,
                ctx,
                "max_session_bytes",
                &detail,
            )?);
        }
        let force = !trips.is_empty();
        for t in trips {
            publish::trip(&self.meta.name, &t.reason);
            self.meta.trips.push(t);
        }
        publish::events(&self.meta.name, &self.writer, &mut self.published);
        if !self.state.returns.is_empty() {
            publish::returns(&self.meta.name, &self.writer, &mut self.state.returns);
        }
        self.maybe_write_meta(force);
        Ok(())
    }
}

impl Ingestor {
    /// Keeps the agent's per-rule redaction counts and how many events the
    /// capture limits cut (they only grow).
    fn note_redactions(&mut self, report: &Term) {
        if let Some(n) = report
            .map_get(&Term::atom("cut_events"))
            .and_then(|n| n.as_i64())
        {
            self.meta.cut_events = self.meta.cut_events.max(n.max(0) as u64);
        }
        if let Some(Term::Map(counts)) = report.map_get(&Term::atom("redactions")) {
            for (rule, n) in counts {
                if let (Some(rule), Some(n)) = (rule.as_atom(), n.as_i64()) {
                    let slot = self.meta.redactions.entry(rule.to_owned()).or_default();
                    *slot = (*slot).max(n.max(0) as u64);
                }
            }
        }
    }
}

fn meta_session_cap(meta: &SessionMeta) -> u64 {
    meta.capture
        .pointer("/budget/max_session_bytes")
        .and_then(|v| v.as_u64())
        .unwrap_or(u64::MAX)
}

impl Sink for Ingestor {
    fn hello(&mut self, hello: &Hello, _peer: SocketAddr) -> Result<(), SinkError> {
        let info = &hello.info;
        let get_i = |k: &str| {
            info.map_get(&Term::atom(k))
                .and_then(Term::as_i64)
                .unwrap_or(0)
        };
        let text = |k: &str| match info.map_get(&Term::atom(k)) {
            Some(Term::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Term::Atom(a)) => a.clone(),
            _ => String::new(),
        };
        let offset = get_i("time_offset_ns");
        let node_atom: DictId = self.writer.dict_mut().intern_atom(&hello.node);
        let ctx = NodeCtx::new(hello.node.clone(), node_atom, offset);
        let start = get_i("monotonic_ns").saturating_add(offset);
        if self.meta.started_ns.is_none_or(|s| start < s) {
            self.meta.started_ns = Some(start);
        }
        if !self.meta.nodes.iter().any(|n| n.name == hello.node) {
            self.meta.nodes.push(NodeMeta {
                name: hello.node.clone(),
                otp_release: text("otp_release"),
                tracer: text("tracer"),
                tracer_note: Some(text("tracer_note")).filter(|n| !n.is_empty()),
                time_offset_ns: offset,
            });
        }
        publish::node_joined(&self.meta.name, &hello.node);
        self.nodes.insert(hello.node.clone(), ctx);
        self.maybe_write_meta(true);
        Ok(())
    }

    fn batch(
        &mut self,
        node: &str,
        _seq: u64,
        dropped_total: u64,
        events: Elements<'_>,
    ) -> Result<(), SinkError> {
        self.ingest(node, dropped_total, events)
            .map_err(|e| SinkError(e.to_string()))
    }

    fn bye(&mut self, node: &str, stats: &Term) {
        self.note_redactions(stats);
        if let Some(ctx) = self.nodes.get_mut(node) {
            // The goodbye repeats the totals, in case a batch that carried them was lost.
            let dropped = stats
                .map_get(&Term::atom("dropped"))
                .and_then(Term::as_i64)
                .unwrap_or(0)
                .max(0) as u64;
            if dropped > ctx.dropped_total {
                let delta = dropped - ctx.dropped_total;
                ctx.dropped_total = dropped;
                self.meta.dropped += delta;
                publish::dropped(&self.meta.name, node, delta);
                let _ = translate::dropped(&mut self.writer, &mut self.state, ctx, None, delta);
            }
            let ctx = ctx.clone();
            if let Some([reason, detail]) = stats
                .map_get(&Term::atom("tripped"))
                .and_then(Term::as_tuple)
            {
                let text = |t: &Term| match t {
                    Term::Atom(a) => a.clone(),
                    Term::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                    other => elixirscope_term::inspect(other, &Default::default()),
                };
                if !self.meta.trips.iter().any(|t| t.node == node) {
                    if let Ok(t) = translate::collector_trip(
                        &mut self.writer,
                        &self.state,
                        &ctx,
                        &text(reason),
                        &text(detail),
                    ) {
                        publish::trip(&self.meta.name, &t.reason);
                        self.meta.trips.push(t);
                    }
                }
            }
            let _ = translate::capture_stop(&mut self.writer, &mut self.state, &ctx, stats);
            let _ = self.writer.flush();
        }
        self.finished_nodes.push(node.to_owned());
        self.maybe_write_meta(true);
    }

    fn status(&mut self, node: &str, status: &Term) {
        self.note_redactions(status);
        publish::status(node, status);
        self.statuses.insert(node.to_owned(), status.clone());
    }

    fn problem(&mut self, node: &str, what: &str) {
        self.meta
            .stop_reason
            .get_or_insert_with(|| format!("{node}: {what}"));
        self.maybe_write_meta(true);
    }
}

/// Convenience for callers that report a trip detected outside the agent.
pub fn trip(node: &str, reason: &str, detail: &str, at_ns: i64) -> Trip {
    Trip {
        node: node.to_owned(),
        reason: reason.to_owned(),
        detail: detail.to_owned(),
        at_ns,
    }
}
