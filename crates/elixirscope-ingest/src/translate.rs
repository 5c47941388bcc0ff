//! Translating one trace message (or agent event) into stored events.
//!
//! Trace messages arrive as `{trace_ts, Pid, Tag, ..., Ts}` with `Ts` from the
//! node's monotonic clock in nanoseconds; agent events are `{es_*, ...}` tuples.
//! Payload terms (messages, arguments, results, reasons, states) are stored as
//! the exact bytes the node encoded; only the fields the model indexes (pids,
//! MFAs, names) are read; GenServer states are worked out in `states`.

use crate::behaviour::{self, Behaviour, CallbackCall};
use crate::hash::hash;
use crate::matcher::Matcher;
use crate::states::{
    is_cut, remember_state, replace_element, resolve_before, state_after, After, LastState,
    SAME_STATE_ETF,
};
use elixirscope_store::session::Trip;
use elixirscope_store::{
    DictId, EventId, EventKind, MfaEntry, NewEvent, PidEntry, SessionWriter, StoreError,
};
use elixirscope_term::view::{Elements, PidView, View};
use elixirscope_term::Term;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::VecDeque;

const RECENT_RECEIVES: usize = 64;

/// Per-node context: name, clock offset, drop total.
#[derive(Debug, Clone)]
pub struct NodeCtx {
    pub name: String,
    pub atom: DictId,
    pub time_offset_ns: i64,
    pub dropped_total: u64,
}

impl NodeCtx {
    pub fn new(name: String, atom: DictId, time_offset_ns: i64) -> NodeCtx {
        NodeCtx {
            name,
            atom,
            time_offset_ns,
            dropped_total: 0,
        }
    }
}

struct Frame {
    call: EventId,
    ts: i64,
    mfa: DictId,
    callback: Option<(Behaviour, CallbackCall)>,
}

/// Everything ingest remembers between events.
#[derive(Default)]
pub struct State {
    matcher: Matcher,
    stacks: HashMap<DictId, Vec<Frame>>,
    /// Registered names per node: (node, name) → pid.
    names: HashMap<(DictId, DictId), DictId>,
    spawned: HashSet<DictId>,
    state_modules: HashMap<DictId, Behaviour>,
    /// Recent receives per process: (message key, receive event id).
    recent: HashMap<DictId, VecDeque<(u64, EventId)>>,
    /// Last recorded state per process: what a `'$es_state'` in the next
    /// callback stands for, and the base of "unchanged" detection.
    pub(crate) last_state: HashMap<DictId, LastState>,
    /// Interning caches keyed by the encoded bytes, so the hot path neither
    /// allocates nor decodes text.
    node_cache: Vec<(Vec<u8>, DictId)>,
    pid_cache: HashMap<(DictId, u32, u32, u32), DictId>,
    mfa_cache: HashMap<(u64, u8), DictId>,
    pub last_ts: i64,
    /// `(mfa, duration ns, return event)` of calls that returned, kept only
    /// while the collector's metrics are served; drained after each batch.
    pub returns: Vec<(DictId, u64, EventId)>,
}

/// Most elements an event tuple has (`{trace_ts, Pid, send, Msg, To, Ts}`).
const MAX_ITEMS: usize = 7;

/// An event tuple split into its elements once, with its timestamp.
pub struct Split<'a> {
    items: [View<'a>; MAX_ITEMS],
    len: usize,
    /// Node monotonic ns.
    pub ts: i64,
}

impl<'a> Split<'a> {
    fn items(&self) -> &[View<'a>] {
        &self.items[..self.len]
    }
}

static NIL: [u8; 1] = [106];

/// Splits every event tuple of a batch (walking each event once) and reads
/// its timestamp; elements that are not events are skipped.
pub fn split_all<'a>(mut events: Elements<'a>) -> Vec<Split<'a>> {
    let mut out = Vec::with_capacity(events.len());
    let Ok(nil) = View::new(&NIL) else {
        return out;
    };
    loop {
        let mut items = [nil; MAX_ITEMS];
        let Some((_, len)) = events.next_tuple_into(&mut items) else {
            break;
        };
        if let Some(s) = split_items(items, len) {
            out.push(s);
        }
    }
    out
}

/// Reads an event tuple's timestamp; `None` if it is not an event.
fn split_items(items: [View<'_>; MAX_ITEMS], len: usize) -> Option<Split<'_>> {
    if len == 0 {
        return None;
    }
    let (tag, _) = items[0].atom_raw()?;
    let ts_at = match tag {
        b"trace_ts" => len.checked_sub(1)?,
        b"es_proc" | b"es_state" => 2,
        _ => 1,
    };
    let ts = items.get(ts_at).filter(|_| ts_at < len)?.int()?;
    Some(Split { items, len, ts })
}

fn intern_pid(w: &mut SessionWriter, st: &mut State, p: &PidView<'_>) -> DictId {
    let node = match st.node_cache.iter().find(|(raw, _)| raw == p.node) {
        Some((_, id)) => *id,
        None => {
            let id = w.dict_mut().intern_atom(&p.node_name());
            st.node_cache.push((p.node.to_vec(), id));
            id
        }
    };
    let key = (node, p.id, p.serial, p.creation);
    if let Some(id) = st.pid_cache.get(&key) {
        return *id;
    }
    let id = w.dict_mut().intern_pid(PidEntry {
        node,
        number: p.id,
        serial: p.serial,
        creation: p.creation,
    });
    st.pid_cache.insert(key, id);
    id
}

fn intern_mfa(
    w: &mut SessionWriter,
    st: &mut State,
    m: View<'_>,
    f: View<'_>,
    arity: usize,
) -> Option<DictId> {
    let ((mr, ml), (fr, fl)) = (m.atom_raw()?, f.atom_raw()?);
    let arity = arity.min(255) as u8;
    let key = (hash(u8::from(ml) | (u8::from(fl) << 1), &[mr, fr]), arity);
    if let Some(id) = st.mfa_cache.get(&key) {
        return Some(*id);
    }
    let module = w.dict_mut().intern_atom(&m.atom()?);
    let function = w.dict_mut().intern_atom(&f.atom()?);
    let id = w.dict_mut().intern_mfa(MfaEntry {
        module,
        function,
        arity,
    });
    st.mfa_cache.insert(key, id);
    Some(id)
}

/// `{M, F, Args | Arity}` → MFA id, the module and function views, and the args (if a list).
#[allow(clippy::type_complexity)]
fn mfa_of<'a>(
    w: &mut SessionWriter,
    st: &mut State,
    v: View<'a>,
) -> Option<(DictId, View<'a>, View<'a>, Option<View<'a>>)> {
    let [m, f, a] = v.tuple_n::<3>()?;
    let (arity, args) = match a.int() {
        Some(n) => (n.max(0) as usize, None),
        None => (a.list()?.len(), Some(a)),
    };
    Some((intern_mfa(w, st, m, f, arity)?, m, f, args))
}

/// Records a drop reported by the agent.
pub fn dropped(
    w: &mut SessionWriter,
    st: &mut State,
    ctx: &NodeCtx,
    ts: Option<i64>,
    count: u64,
) -> Result<(), StoreError> {
    let ts = ts
        .map(|t| t.saturating_add(ctx.time_offset_ns))
        .unwrap_or(st.last_ts);
    let mut e = NewEvent::new(ts, EventKind::Dropped, ctx.atom, 0);
    e.aux = count;
    w.append(&e)?;
    Ok(())
}

/// Records a trip decided by the collector (the session is full) or known only
/// from the agent's goodbye.
pub fn collector_trip(
    w: &mut SessionWriter,
    st: &State,
    ctx: &NodeCtx,
    reason: &str,
    detail: &str,
) -> Result<Trip, StoreError> {
    let bytes =
        elixirscope_term::encode_body(&Term::Tuple(vec![Term::atom(reason), Term::string(detail)]));
    let mut e = NewEvent::new(st.last_ts, EventKind::Trip, ctx.atom, 0);
    e.term = Some(&bytes);
    w.append(&e)?;
    w.flush()?;
    Ok(Trip {
        node: ctx.name.clone(),
        reason: reason.to_owned(),
        detail: detail.to_owned(),
        at_ns: st.last_ts,
    })
}

/// Records the end of capture on a node with the agent's statistics.
pub fn capture_stop(
    w: &mut SessionWriter,
    st: &mut State,
    ctx: &NodeCtx,
    stats: &Term,
) -> Result<(), StoreError> {
    let bytes = elixirscope_term::encode_body(stats);
    let mut e = NewEvent::new(st.last_ts, EventKind::CaptureStop, ctx.atom, 0);
    e.term = Some(&bytes);
    w.append(&e)?;
    Ok(())
}

/// Translates and stores one event. Returns a trip if the event reports one.
pub fn event(
    w: &mut SessionWriter,
    st: &mut State,
    ctx: &NodeCtx,
    split: &Split<'_>,
) -> Result<Option<Trip>, StoreError> {
    let items = split.items();
    let Some((tag_raw, _)) = items[0].atom_raw() else {
        return Ok(None);
    };
    let ts = split.ts.saturating_add(ctx.time_offset_ns);
    st.last_ts = st.last_ts.max(ts);
    let node = ctx.atom;
    if tag_raw == b"trace_ts" {
        return trace(w, st, ctx, ts, items).map(|_| None);
    }
    match (tag_raw, items) {
        (b"es_setup", [_, _, setup]) => {
            if let Some(mods) = setup.map_get("state_modules").and_then(|l| l.list()) {
                for m in mods {
                    if let Some([module, b]) = m.tuple_n::<2>() {
                        register_state_module(w, st, module, b);
                    }
                }
            }
            let mut e = NewEvent::new(ts, EventKind::CaptureStart, node, 0);
            e.term = Some(setup.raw());
            w.append(&e)?;
        }
        (b"es_state_module", [_, _, module, b]) => register_state_module(w, st, *module, *b),
        (b"es_module", [_, _, module, applied]) => {
            let mut e = NewEvent::new(ts, EventKind::ModuleLoad, node, 0);
            e.term = Some(module.raw());
            e.term2 = Some(applied.raw());
            w.append(&e)?;
        }
        (b"es_proc", [_, pid, _, parent, initial, facts]) => {
            let Some(p) = pid.pid() else { return Ok(None) };
            let pid = intern_pid(w, st, &p);
            let mut e = NewEvent::new(ts, EventKind::ProcessInfo, node, pid);
            if let Some(pp) = parent.pid() {
                e.peer = intern_pid(w, st, &pp);
            }
            if let Some((mfa, ..)) = mfa_of(w, st, *initial) {
                e.mfa = mfa;
            }
            if let Some(name) = facts.map_get("registered_name").and_then(|n| n.atom()) {
                if name != "undefined" {
                    let a = w.dict_mut().intern_atom(&name);
                    st.names.insert((node, a), pid);
                }
            }
            e.term = Some(facts.raw());
            w.append(&e)?;
        }
        (b"es_state", [_, pid, _, state]) => {
            let Some(p) = pid.pid() else { return Ok(None) };
            let pid = intern_pid(w, st, &p);
            let mut e = NewEvent::new(ts, EventKind::StateSnapshot, node, pid);
            e.term = Some(state.raw());
            remember_state(st, ctx, pid, state.raw().to_vec());
            w.append(&e)?;
        }
        (b"es_degrade", [_, _, pid, level, detail]) => {
            let Some(p) = pid.pid() else { return Ok(None) };
            let pid = intern_pid(w, st, &p);
            let mut e = NewEvent::new(ts, EventKind::Degrade, node, pid);
            e.aux = level.int().unwrap_or(0).max(0) as u64;
            e.term = Some(detail.raw());
            w.append(&e)?;
        }
        (b"es_trip", [_, _, reason, detail]) => {
            let mut bytes = vec![104, 2];
            bytes.extend_from_slice(reason.raw());
            bytes.extend_from_slice(detail.raw());
            let mut e = NewEvent::new(ts, EventKind::Trip, node, 0);
            e.term = Some(&bytes);
            w.append(&e)?;
            let text = |x: &View<'_>| {
                x.binary()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .or_else(|| x.atom().map(|a| a.into_owned()))
                    .unwrap_or_default()
            };
            return Ok(Some(Trip {
                node: ctx.name.clone(),
                reason: text(reason),
                detail: text(detail),
                at_ns: ts,
            }));
        }
        _ => {}
    }
    Ok(None)
}

fn register_state_module(w: &mut SessionWriter, st: &mut State, module: View<'_>, b: View<'_>) {
    let (Some(m), Some(b)) = (module.atom(), b.atom()) else {
        return;
    };
    if let Some(b) = Behaviour::parse(&b) {
        let id = w.dict_mut().intern_atom(&m);
        st.state_modules.insert(id, b);
    }
}

fn remember_receive(st: &mut State, pid: DictId, key: u64, id: EventId) {
    let q = st.recent.entry(pid).or_default();
    if q.len() >= RECENT_RECEIVES {
        q.pop_front();
    }
    q.push_back((key, id));
}

fn take_receive(st: &mut State, pid: DictId, key: u64) -> Option<EventId> {
    let q = st.recent.get_mut(&pid)?;
    let i = q.iter().position(|(k, _)| *k == key)?;
    q.remove(i).map(|(_, id)| id)
}

fn trace<'a>(
    w: &mut SessionWriter,
    st: &mut State,
    ctx: &NodeCtx,
    ts: i64,
    items: &[View<'a>],
) -> Result<(), StoreError> {
    let node = ctx.atom;
    let (Some(pid_view), Some(what)) = (items.get(1).and_then(|p| p.pid()), items.get(2)) else {
        return Ok(());
    };
    let Some((what, _)) = what.atom_raw() else {
        return Ok(());
    };
    let pid = intern_pid(w, st, &pid_view);
    let arg = |i: usize| items.get(i).copied();
    let mut e = NewEvent::new(ts, EventKind::Spawn, node, pid);
    match what {
        b"spawn" | b"spawned" => {
            let (Some(other), Some(mfa)) = (arg(3).and_then(|p| p.pid()), arg(4)) else {
                return Ok(());
            };
            let other = intern_pid(w, st, &other);
            let (parent, child) = if what == b"spawn" {
                (pid, other)
            } else {
                (other, pid)
            };
            if !st.spawned.insert(child) {
                return Ok(());
            }
            e.pid = parent;
            e.peer = child;
            if let Some((id, _, _, args)) = mfa_of(w, st, mfa) {
                e.mfa = id;
                e.term = args.map(|a| a.raw());
            }
        }
        b"exit" => {
            e.kind = EventKind::Exit;
            e.term = arg(3).map(|r| r.raw());
            st.stacks.remove(&pid);
            st.recent.remove(&pid);
            st.matcher.exited(pid);
            st.last_state.remove(&pid);
        }
        b"link" | b"getting_linked" | b"unlink" | b"getting_unlinked" => {
            e.kind = if what.ends_with(b"unlink") || what == b"getting_unlinked" {
                EventKind::Unlink
            } else {
                EventKind::Link
            };
            e.aux = u64::from(what.starts_with(b"getting"));
            let Some(other) = arg(3) else { return Ok(()) };
            match other.pid() {
                Some(o) => e.peer = intern_pid(w, st, &o),
                None => e.term2 = Some(other.raw()),
            }
        }
        b"register" | b"unregister" => {
            e.kind = if what == b"register" {
                EventKind::Register
            } else {
                EventKind::Unregister
            };
            let Some(name) = arg(3) else { return Ok(()) };
            if let Some(n) = name.atom() {
                let a = w.dict_mut().intern_atom(&n);
                if e.kind == EventKind::Register {
                    st.names.insert((node, a), pid);
                } else {
                    st.names.remove(&(node, a));
                }
            }
            e.term = Some(name.raw());
        }
        b"send" | b"send_to_non_existing_process" => {
            let (Some(msg), Some(to)) = (arg(3), arg(4)) else {
                return Ok(());
            };
            e.kind = if what == b"send" {
                EventKind::Send
            } else {
                EventKind::SendToDead
            };
            e.term = Some(msg.raw());
            let receiver = resolve_destination(w, st, node, &to);
            match receiver {
                Some(r) => {
                    e.peer = r;
                    if to.pid().is_none() {
                        e.term2 = Some(to.raw());
                    }
                }
                None => e.term2 = Some(to.raw()),
            }
            if e.kind == EventKind::Send {
                if let Some(r) = receiver {
                    let id = w.next_id();
                    e.link = st.matcher.send(r, hash(0, &[msg.raw()]), id, pid, e.ts);
                }
            }
        }
        b"receive" => {
            let Some(msg) = arg(3) else { return Ok(()) };
            e.kind = EventKind::Receive;
            e.term = Some(msg.raw());
            let id = w.next_id();
            if let Some((send, sender)) = st.matcher.receive(pid, hash(0, &[msg.raw()]), id, e.ts) {
                e.link = Some(send);
                e.peer = sender;
            }
            remember_receive(st, pid, behaviour::receive_key(msg), id);
        }
        b"call" => return call(w, st, ctx, e, arg(3)),
        b"return_from" | b"exception_from" => {
            return ret(w, st, ctx, e, what == b"exception_from", arg(3), arg(4))
        }
        _ => return Ok(()),
    }
    w.append(&e)?;
    Ok(())
}

/// The receiving process of a send: a pid, a name registered on the sending
/// node, or `{Name, Node}` when `Node` is the sending node (remote names are
/// not resolved here).
fn resolve_destination(
    w: &mut SessionWriter,
    st: &mut State,
    node: DictId,
    to: &View<'_>,
) -> Option<DictId> {
    if let Some(p) = to.pid() {
        return Some(intern_pid(w, st, &p));
    }
    let name = match to.atom() {
        Some(a) => a,
        None => {
            let [name, on] = to.tuple_n::<2>()?;
            if on.atom()? != w.dict().atom(node)? {
                return None;
            }
            name.atom()?
        }
    };
    let a = w.dict().find_atom(&name)?;
    st.names.get(&(node, a)).copied()
}

fn call<'a>(
    w: &mut SessionWriter,
    st: &mut State,
    ctx: &NodeCtx,
    mut e: NewEvent<'a>,
    mfa: Option<View<'a>>,
) -> Result<(), StoreError> {
    let Some((id, m, f, args)) = mfa.and_then(|v| mfa_of(w, st, v)) else {
        return Ok(());
    };
    let monitor = f.is_atom("monitor");
    if m.is_atom("erlang") && (monitor || f.is_atom("demonitor")) {
        e.kind = if monitor {
            EventKind::Monitor
        } else {
            EventKind::Demonitor
        };
        e.mfa = id;
        if let Some(a) = args {
            let a: Vec<View<'_>> = a.list().map(|l| l.collect()).unwrap_or_default();
            let target = if monitor { a.get(1) } else { None };
            if let Some(t) = target {
                match t.pid() {
                    Some(p) => e.peer = intern_pid(w, st, &p),
                    None => e.term2 = Some(t.raw()),
                }
            }
            e.term = args.map(|x| x.raw());
        }
        w.append(&e)?;
        return Ok(());
    }
    e.kind = EventKind::Call;
    e.mfa = id;
    e.term = args.map(|a| a.raw());
    let module_atom = w.dict().mfa(id).map(|x| x.module).unwrap_or(0);
    let mut callback = st.state_modules.get(&module_atom).copied().and_then(|b| {
        let function = f.atom()?;
        args.and_then(|a| behaviour::on_call(b, &function, a))
            .map(|c| (b, c))
    });
    // A gen_server's state argument that is its last recorded state (the
    // same bytes, nothing cut) is stored as '$es_state' (as the NIF tracer
    // sends it when it is the very same term), whichever tracer sent it: the
    // state is stored once per change, in its state event.
    let shortened = match (&callback, args) {
        (Some((Behaviour::GenServer, c)), Some(a)) => {
            let prev = st
                .last_state
                .get(&e.pid)
                .filter(|l| l.dropped_at == ctx.dropped_total);
            c.state_arg.zip(prev).and_then(|(i, prev)| {
                let item = a.list()?.nth(i)?;
                (item.raw() == prev.bytes.as_slice() && !is_cut(item.raw()))
                    .then(|| replace_element(a.raw(), item.raw(), SAME_STATE_ETF))
            })
        }
        _ => None,
    };
    if let Some((_, c)) = &mut callback {
        resolve_before(st, ctx, e.pid, c, shortened.is_some());
    }
    if let Some((_, c)) = &callback {
        if let Some(key) = c.message_key {
            e.link = take_receive(st, e.pid, key);
        }
    }
    let stack = st.stacks.entry(e.pid).or_default();
    e.aux = stack.len() as u64;
    let mut stored: NewEvent<'_> = e;
    if let Some(bytes) = &shortened {
        stored.term = Some(bytes);
    }
    let call_id = w.append(&stored)?;
    stack.push(Frame {
        call: call_id,
        ts: e.ts,
        mfa: id,
        callback,
    });
    Ok(())
}

fn ret<'a>(
    w: &mut SessionWriter,
    st: &mut State,
    ctx: &NodeCtx,
    mut e: NewEvent<'a>,
    exception: bool,
    mfa: Option<View<'a>>,
    value: Option<View<'a>>,
) -> Result<(), StoreError> {
    let Some((id, m, f, _)) = mfa.and_then(|v| mfa_of(w, st, v)) else {
        return Ok(());
    };
    if m.is_atom("erlang") && (f.is_atom("monitor") || f.is_atom("demonitor")) {
        return Ok(());
    }
    e.kind = if exception {
        EventKind::Exception
    } else {
        EventKind::Return
    };
    e.mfa = id;
    e.term = value.map(|v| v.raw());
    let stack = st.stacks.entry(e.pid).or_default();
    // Frames above the returning one returned without a trace (tail calls).
    let frame = match stack.iter().rposition(|fr| fr.mfa == id) {
        Some(i) => {
            let fr = stack.remove(i);
            stack.truncate(i);
            Some(fr)
        }
        None => None,
    };
    if let Some(fr) = &frame {
        e.link = Some(fr.call);
        e.aux = e.ts.saturating_sub(fr.ts).max(0) as u64;
    }
    // The state the callback left, worked out before its return is stored: a
    // result whose state is the one the callback was given (equal, nothing
    // cut) stores it as '$es_state', as for arguments.
    let after = match (&frame, value) {
        (
            Some(Frame {
                callback: Some((b, c)),
                ..
            }),
            Some(v),
        ) if !exception => state_after(st, e.pid, *b, c, v),
        _ => After::Nothing,
    };
    let shortened = match (&after, &frame, value) {
        (
            After::State { shorten: true, .. },
            Some(Frame {
                callback: Some((Behaviour::GenServer, _)),
                ..
            }),
            Some(v),
        ) => behaviour::gen_server_result_state(v)
            .map(|item| replace_element(v.raw(), item.raw(), SAME_STATE_ETF)),
        _ => None,
    };
    let mut stored: NewEvent<'_> = e;
    if let Some(bytes) = &shortened {
        stored.term = Some(bytes);
    }
    let id_of_return = w.append(&stored)?;
    if frame.is_some() && elixirscope_metrics::enabled() {
        st.returns.push((e.mfa, e.aux, id_of_return));
    }
    let Some(fr) = frame else { return Ok(()) };
    match after {
        After::Nothing => {}
        After::Forget => {
            st.last_state.remove(&e.pid);
        }
        After::State { bytes, flags, .. } => {
            let mut s = NewEvent::new(e.ts, EventKind::State, e.node, e.pid);
            s.mfa = id;
            s.link = Some(fr.call);
            s.aux = flags;
            s.term = Some(&bytes);
            w.append(&s)?;
            remember_state(st, ctx, e.pid, bytes);
        }
    }
    Ok(())
}
