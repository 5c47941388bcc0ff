//! Traced calls as OpenTelemetry spans, read through the query interface.
//!
//! Each traced call that returned (or raised) becomes a span, nested under
//! the call that was running in the same process when it started. A
//! `GenServer.call` (a `$gen_call` message) becomes a CLIENT span in the caller,
//! from the send to the reply, and the server's `handle_call` that handled
//! that very message becomes its SERVER child: one trace across processes. A
//! raised exception sets the span's status to error with an `exception`
//! event; an abnormal exit does the same to the span the process was in, or
//! to a span of its own. Calls still open at the end close at the session's
//! end, marked incomplete.
//!
//! Ids are derived, not random: a trace id from the session name and the
//! root's event id, a span id from its event id, so exporting a session twice
//! yields the same spans.

use elixirscope_query::filter::EventFilter;
use elixirscope_query::{Cursor, Session};
use elixirscope_store::{DictId, Event, EventId, EventKind};
use elixirscope_term::view::View;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::span::{Event as SpanEvent, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span, Status};
use rustc_hash::FxHashMap;

/// Terms put into attributes are shortened to this many characters.
pub const MAX_TERM_CHARS: usize = 256;

/// Which part of a session to export.
#[derive(Debug, Clone, Default)]
pub struct SpanFilter {
    pub from: Option<Cursor>,
    pub to: Option<Cursor>,
    /// Only these processes (empty: all).
    pub pids: Vec<DictId>,
}

pub fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn kv_str(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// `code.namespace` and `code.function` of an MFA as the query interface
/// prints it: `Demo.Counter.handle_call/3` → (`Demo.Counter`, `handle_call`).
pub fn code_namespace_function(mfa_text: &str) -> (String, String) {
    let head = mfa_text.rsplit_once('/').map_or(mfa_text, |(h, _)| h);
    match head.rsplit_once('.') {
        Some((m, f)) => (m.to_owned(), f.to_owned()),
        None => (String::new(), head.to_owned()),
    }
}

fn clip(mut s: String) -> String {
    if s.chars().count() > MAX_TERM_CHARS {
        s = s.chars().take(MAX_TERM_CHARS).collect::<String>() + "…";
    }
    s
}

/// A span id from an event id (never zero); client spans get the high bit.
fn span_id(event: EventId, client: bool) -> Vec<u8> {
    let v = (event + 1) | if client { 1 << 63 } else { 0 };
    v.to_be_bytes().to_vec()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// What a span under construction still needs to know.
enum Frame {
    Call(EventId),
    /// Waiting for the reply tagged with these bytes.
    Client(Vec<u8>),
}

struct Open {
    frame: Frame,
    span: Span,
}

/// What building spans remembers between reads of a growing session: the
/// calls still open, the `GenServer.call`s waiting to be served, and where to
/// go on reading.
#[derive(Default)]
pub struct SpanState {
    stacks: FxHashMap<DictId, Vec<Open>>,
    /// Send of a `$gen_call` → the client span's (trace, span id).
    client_of_send: FxHashMap<EventId, (Vec<u8>, Vec<u8>)>,
    /// The server's receive of that message → the same.
    client_of_receive: FxHashMap<EventId, (Vec<u8>, Vec<u8>)>,
    /// Spans emitted so far.
    pub spans: u64,
    /// Log records of traced logger calls, waiting to be taken.
    pub logs: Vec<(DictId, LogRecord)>,
    /// The next event to read.
    pub next_event: EventId,
}

/// Builds spans from a session; finished spans go to `emit` with their node.
pub struct SpanBuilder<'s, 'st, F: FnMut(DictId, Span)> {
    s: &'s Session,
    st: &'st mut SpanState,
    emit: F,
    session_hash: u64,
}

impl<'s, 'st, F: FnMut(DictId, Span)> SpanBuilder<'s, 'st, F> {
    pub fn new(s: &'s Session, st: &'st mut SpanState, emit: F) -> Self {
        SpanBuilder {
            s,
            st,
            emit,
            session_hash: fnv(s.name().as_bytes()),
        }
    }

    /// Reads the events `f` selects and emits every span, the calls still
    /// running at the end included; returns how many.
    pub fn run(mut self, f: &SpanFilter) -> u64 {
        self.feed(f);
        let end = match f.to {
            Some(c) if c.ts != i64::MAX => c.ts,
            _ => self.s.end_ns(),
        };
        self.close_open(end);
        self.st.spans
    }

    /// Reads the events `f` selects from where the last read stopped, and
    /// emits the spans that ended.
    pub fn feed(&mut self, f: &SpanFilter) {
        let from = if self.st.next_event > 0 {
            Some(Cursor {
                ts: i64::MIN,
                id: Some(self.st.next_event),
            })
        } else {
            f.from
        };
        let filter = EventFilter {
            from,
            to: f.to,
            pids: f.pids.clone(),
            kinds: vec![
                EventKind::Call,
                EventKind::Return,
                EventKind::Exception,
                EventKind::Send,
                EventKind::Receive,
                EventKind::Exit,
            ],
            limit: usize::MAX,
            ..Default::default()
        };
        let s = self.s;
        let mut last = None;
        s.scan_filtered(&filter, |e| {
            self.event(e);
            last = Some(e.id);
            true
        });
        // Every event up to the session's end has been seen, matched or not.
        let total = s.reader().total_events();
        self.st.next_event = self.st.next_event.max(total).max(last.map_or(0, |l| l + 1));
    }

    /// Ends every span still open at `end`, marked incomplete.
    pub fn close_open(&mut self, end: i64) {
        let pids: Vec<DictId> = self.st.stacks.keys().copied().collect();
        for pid in pids {
            while let Some(open) = self.st.stacks.get_mut(&pid).and_then(|st| st.pop()) {
                let mut span = open.span;
                span.attributes.push(kv(
                    "elixirscope.incomplete",
                    any_value::Value::BoolValue(true),
                ));
                self.finish(pid, span, end);
            }
        }
    }

    fn node_of(&self, pid: DictId) -> DictId {
        self.s.reader().dict().pid(pid).map_or(0, |p| p.node)
    }

    fn finish(&mut self, pid: DictId, mut span: Span, end: i64) {
        span.end_time_unix_nano = end.max(span.start_time_unix_nano as i64) as u64;
        self.st.spans += 1;
        let node = self.node_of(pid);
        (self.emit)(node, span);
    }

    fn process_attributes(&self, pid: DictId, at: &Event<'_>) -> Vec<KeyValue> {
        let mut a = vec![kv_str("erlang.pid", self.s.pid_text(pid))];
        let cursor = Cursor {
            ts: at.ts,
            id: Some(at.id),
        };
        if let Some(name) = self.s.name_at(pid, &cursor) {
            a.push(kv_str("erlang.process.name", name));
        }
        a.push(kv_str("elixirscope.session", self.s.name()));
        a.push(kv_int("elixirscope.event_id", at.id as i64));
        a
    }

    /// Trace and parent of a new span in `pid`: the open span there, else the
    /// client span it serves, else a new trace rooted at `event`.
    fn context(&self, pid: DictId, event: EventId) -> (Vec<u8>, Vec<u8>) {
        if let Some(top) = self.st.stacks.get(&pid).and_then(|st| st.last()) {
            return (top.span.trace_id.clone(), top.span.span_id.clone());
        }
        let mut trace = self.session_hash.to_be_bytes().to_vec();
        trace.extend_from_slice(&(event + 1).to_be_bytes());
        (trace, Vec::new())
    }

    fn event(&mut self, e: &Event<'_>) {
        match e.kind {
            EventKind::Call => self.call(e),
            EventKind::Return | EventKind::Exception => self.ret(e),
            EventKind::Send => self.send(e),
            EventKind::Receive => self.receive(e),
            EventKind::Exit => self.exit(e),
            _ => {}
        }
    }

    fn call(&mut self, e: &Event<'_>) {
        let s = self.s;
        self.log(e);
        let served = e.link.and_then(|r| self.st.client_of_receive.remove(&r));
        let on_stack = self.st.stacks.get(&e.pid).is_some_and(|st| !st.is_empty());
        let (trace, parent, kind) = match served {
            Some((trace, client)) if !on_stack => (trace, client, SpanKind::Server),
            _ => {
                let (t, p) = self.context(e.pid, e.id);
                (t, p, SpanKind::Internal)
            }
        };
        let mfa = s.mfa_text(e.mfa);
        let (namespace, function) = code_namespace_function(&mfa);
        let mut attributes = vec![
            kv_str("code.namespace", namespace),
            kv_str("code.function", function),
        ];
        if let Some(m) = s.reader().dict().mfa(e.mfa) {
            attributes.push(kv_int("erlang.arity", m.arity as i64));
        }
        attributes.extend(self.process_attributes(e.pid, e));
        if let Some(args) = e.term {
            attributes.push(kv_str("erlang.arguments", clip(s.inspect_bytes(args))));
        }
        let span = Span {
            trace_id: trace,
            span_id: span_id(e.id, false),
            parent_span_id: parent,
            name: mfa,
            kind: kind as i32,
            start_time_unix_nano: e.ts.max(0) as u64,
            attributes,
            ..Default::default()
        };
        self.st.stacks.entry(e.pid).or_default().push(Open {
            frame: Frame::Call(e.id),
            span,
        });
    }

    /// A traced logger call: a log record in the context of the open span.
    fn log(&mut self, e: &Event<'_>) {
        let s = self.s;
        let Some(m) = s.reader().dict().mfa(e.mfa) else {
            return;
        };
        let function = s.atom(m.function);
        if !super::logs::is_logger_call(s.atom(m.module), function, m.arity) {
            return;
        }
        let Some(args) = e.term.and_then(|t| s.term(t)) else {
            return;
        };
        if let Some(mut record) = super::logs::record(s, function, &args, e.ts, &s.pid_text(e.pid))
        {
            if let Some(top) = self.st.stacks.get(&e.pid).and_then(|st| st.last()) {
                record.trace_id = top.span.trace_id.clone();
                record.span_id = top.span.span_id.clone();
            }
            let node = self.node_of(e.pid);
            self.st.logs.push((node, record));
        }
    }

    fn ret(&mut self, e: &Event<'_>) {
        let Some(call) = e.link else { return };
        let Some(stack) = self.st.stacks.get_mut(&e.pid) else {
            return;
        };
        let Some(pos) = stack
            .iter()
            .rposition(|o| matches!(o.frame, Frame::Call(c) if c == call))
        else {
            return;
        };
        // Frames above it left without a trace (tail calls): they end here too.
        let above: Vec<Open> = stack.drain(pos + 1..).collect();
        let open = stack.pop().expect("the frame found above");
        for o in above.into_iter().rev() {
            self.finish(e.pid, o.span, e.ts);
        }
        let mut span = open.span;
        if let Some(t) = e.term {
            let text = clip(self.s.inspect_bytes(t));
            if e.kind == EventKind::Exception {
                let (class, reason) = match self.s.term(t).as_ref().and_then(|t| t.as_tuple()) {
                    Some([c, r]) => (
                        self.s.inspect_bytes(&elixirscope_term::encode_body(c)),
                        clip(self.s.inspect_bytes(&elixirscope_term::encode_body(r))),
                    ),
                    _ => ("error".to_owned(), text.clone()),
                };
                span.status = Some(Status {
                    code: StatusCode::Error as i32,
                    message: reason.clone(),
                });
                span.events.push(SpanEvent {
                    time_unix_nano: e.ts.max(0) as u64,
                    name: "exception".into(),
                    attributes: vec![
                        kv_str("exception.type", class),
                        kv_str("exception.message", reason),
                    ],
                    ..Default::default()
                });
            } else {
                span.attributes.push(kv_str("erlang.result", text));
            }
        }
        self.finish(e.pid, span, e.ts);
    }

    /// `{'$gen_call', {From, Tag}, Request}`: the tag's bytes and the request.
    fn gen_call(bytes: &[u8]) -> Option<(Vec<u8>, View<'_>)> {
        let [tag, from, request] = View::new(bytes).ok()?.tuple_n::<3>()?;
        if !tag.is_atom("$gen_call") {
            return None;
        }
        let [_, reply_tag] = from.tuple_n::<2>()?;
        Some((reply_tag.raw().to_vec(), request))
    }

    fn send(&mut self, e: &Event<'_>) {
        let Some((tag, request)) = e.term.and_then(Self::gen_call) else {
            return;
        };
        let s = self.s;
        let server = if e.peer != 0 {
            s.proc_label(e.peer)
        } else {
            e.term2.map(|t| s.inspect_bytes(t)).unwrap_or_default()
        };
        let (trace, parent) = self.context(e.pid, e.id);
        let mut attributes = vec![
            kv_str("rpc.system", "erlang"),
            kv_str("rpc.service", server.clone()),
            kv_str("erlang.request", clip(s.inspect_bytes(request.raw()))),
        ];
        attributes.extend(self.process_attributes(e.pid, e));
        let span = Span {
            trace_id: trace.clone(),
            span_id: span_id(e.id, true),
            parent_span_id: parent,
            name: format!("GenServer.call {server}"),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: e.ts.max(0) as u64,
            attributes,
            ..Default::default()
        };
        self.st
            .client_of_send
            .insert(e.id, (trace, span.span_id.clone()));
        self.st.stacks.entry(e.pid).or_default().push(Open {
            frame: Frame::Client(tag),
            span,
        });
    }

    fn receive(&mut self, e: &Event<'_>) {
        if let Some(ctx) = e.link.and_then(|s| self.st.client_of_send.remove(&s)) {
            self.st.client_of_receive.insert(e.id, ctx);
        }
        // A reply `{Tag, Reply}` ends the client span waiting for that tag.
        let Some(stack) = self.st.stacks.get_mut(&e.pid) else {
            return;
        };
        if !stack.iter().any(|o| matches!(o.frame, Frame::Client(_))) {
            return;
        }
        let Some([tag, _]) = e
            .term
            .and_then(|t| View::new(t).ok())
            .and_then(|v| v.tuple_n::<2>())
        else {
            return;
        };
        if let Some(pos) = stack
            .iter()
            .rposition(|o| matches!(&o.frame, Frame::Client(t) if t == tag.raw()))
        {
            let open = stack.remove(pos);
            self.finish(e.pid, open.span, e.ts);
        }
    }

    fn exit(&mut self, e: &Event<'_>) {
        let s = self.s;
        let abnormal = e
            .term
            .and_then(|t| s.term(t))
            .is_some_and(|r| !elixirscope_query::overview::is_normal_exit(&r));
        let mut open: Vec<Open> = self.st.stacks.remove(&e.pid).unwrap_or_default();
        if abnormal {
            let reason = clip(e.term.map(|t| s.inspect_bytes(t)).unwrap_or_default());
            let event = SpanEvent {
                time_unix_nano: e.ts.max(0) as u64,
                name: "exception".into(),
                attributes: vec![
                    kv_str("exception.type", "exit"),
                    kv_str("exception.message", reason.clone()),
                ],
                ..Default::default()
            };
            let status = Some(Status {
                code: StatusCode::Error as i32,
                message: reason,
            });
            match open.last_mut() {
                Some(top) => {
                    top.span.events.push(event);
                    top.span.status = status;
                }
                None => {
                    let (trace, _) = self.context(e.pid, e.id);
                    let mut attributes = self.process_attributes(e.pid, e);
                    attributes.push(kv_str("code.function", "exit"));
                    self.finish(
                        e.pid,
                        Span {
                            trace_id: trace,
                            span_id: span_id(e.id, false),
                            name: format!("exit {}", s.proc_label(e.pid)),
                            kind: SpanKind::Internal as i32,
                            start_time_unix_nano: e.ts.max(0) as u64,
                            attributes,
                            events: vec![event],
                            status,
                            ..Default::default()
                        },
                        e.ts,
                    );
                }
            }
        }
        // The process is gone: whatever it was inside ends now.
        while let Some(o) = open.pop() {
            self.finish(e.pid, o.span, e.ts);
        }
    }
}
