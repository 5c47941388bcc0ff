//! The `erl_tracer` callbacks, run by the VM on the scheduler of the traced
//! process for every trace event.
//!
//! `enabled/3` decides without allocating: capture inactive (and then asks the
//! VM to remove the tracer), the agent's own process, or a call sampled out by
//! process. `trace/5` encodes the event, exactly as the trace message a process
//! tracer would receive (redacted on the way), into this thread's ring, and
//! drops it — counted — if the ring is full. Neither ever blocks or panics
//! across the NIF boundary.

use crate::capture::{Atoms, Capture, Local, ATOMS, LOCAL};
use crate::clock::os_monotonic_ns;
use crate::encode::{Walker, SAME_STATE};
use crate::etf;
use crate::redact::NOT_CAPTURED;
use crate::ring::Ring;
use crate::state::{self, Plan};
use rustler::sys::{
    enif_get_int64, enif_get_list_cell, enif_get_map_value, enif_get_tuple, enif_hash,
    enif_term_type, ErlNifEnv, ErlNifHash, ErlNifTermType, ERL_NIF_TERM,
};
use std::sync::atomic::Ordering;

/// `erlang:phash2/1` of a term.
fn phash2(t: ERL_NIF_TERM) -> u64 {
    // SAFETY: t is a valid term of the callback; hashing neither allocates nor fails.
    unsafe { enif_hash(ErlNifHash::ERL_NIF_PHASH2, t, 0) }
}

/// Whether a process is sampled out (1 in `n` processes kept).
fn process_sampled_out(cap: &Capture, pid: ERL_NIF_TERM) -> bool {
    cap.settings.sample > 1 && !phash2(pid).is_multiple_of(cap.settings.sample as u64)
}

/// Free bytes below which `enabled/3` drops events before they are built.
const FULL_MARGIN: usize = 4096;

/// `enabled/3`: returns the decision as an atom term word.
pub fn enabled(tag: ERL_NIF_TERM, tracee: ERL_NIF_TERM) -> ERL_NIF_TERM {
    let Some(a) = ATOMS.get() else {
        return 0;
    };
    let decision = LOCAL.try_with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else {
            return a.discard;
        };
        let inactive = if tag == a.trace_status {
            a.remove
        } else {
            a.discard
        };
        if l.refresh().is_none() {
            return inactive;
        }
        let l: &Local = &l;
        let Some(cap) = l.capture.as_ref() else {
            return inactive;
        };
        if !cap.active.load(Ordering::Relaxed) {
            return inactive;
        }
        if tag == a.trace_status {
            return a.trace;
        }
        if cap.settings.discard_all {
            return a.discard;
        }
        if cap.settings.deliver_only {
            return a.trace;
        }
        if cap.is_own(tracee as u64) {
            return a.discard;
        }
        if let Some(r) = &l.ring {
            // The collector is behind and this thread's ring is full: drop
            // here, before the VM builds the event, and count it.
            if r.nearly_full(FULL_MARGIN) {
                Ring::bump(&r.counters().dropped);
                return a.discard;
            }
        }
        if (tag == a.call || tag == a.return_from)
            && cap.state_modules.is_empty()
            && process_sampled_out(cap, tracee)
        {
            if let Some(r) = &l.ring {
                Ring::bump(&r.counters().sampled_out);
            }
            return a.discard;
        }
        a.trace
    });
    decision.unwrap_or(a.discard)
}

/// `trace/5`: records one event.
pub fn trace(
    env: *mut ErlNifEnv,
    tag: ERL_NIF_TERM,
    tracee: ERL_NIF_TERM,
    term: ERL_NIF_TERM,
    opts: ERL_NIF_TERM,
) {
    let Some(a) = ATOMS.get() else {
        return;
    };
    let _ = LOCAL.try_with(|l| {
        let Ok(mut l) = l.try_borrow_mut() else {
            return;
        };
        let l: &mut Local = &mut l;
        match l.refresh() {
            None => return,
            Some(cap) if cap.settings.deliver_only => return,
            Some(_) => {}
        }
        if !l.ensure_ring() {
            return;
        }
        let (Some(cap), Some(ring)) = (l.capture.as_ref(), l.ring.as_ref()) else {
            return;
        };
        if !cap.active.load(Ordering::Relaxed) {
            return;
        }
        ring.enter();
        if cap.active.load(Ordering::SeqCst) {
            record(
                env,
                a,
                cap,
                ring,
                &mut l.scratch,
                &mut l.caches,
                tag,
                tracee,
                term,
                opts,
            );
        }
        ring.leave();
        if l.scratch.capacity() > 1 << 20 {
            l.scratch = Vec::new();
        }
    });
}

/// A state callback's event: the process, the state term it carries and how
/// it was written, to settle once the ring took the event or not.
struct StateNote {
    pid: u64,
    state: Option<(u64, u64)>,
    plan: Plan,
}

enum Outcome {
    Keep(Option<StateNote>),
    Skip,
    SampledOut,
}

#[allow(clippy::too_many_arguments)]
fn record(
    env: *mut ErlNifEnv,
    a: &Atoms,
    cap: &Capture,
    ring: &Ring,
    scratch: &mut Vec<u8>,
    caches: &mut crate::cache::Caches,
    tag: ERL_NIF_TERM,
    tracee: ERL_NIF_TERM,
    term: ERL_NIF_TERM,
    opts: ERL_NIF_TERM,
) {
    let ts = os_monotonic_ns() + cap.clock_offset;
    scratch.clear();
    let limit = ring.capacity() / 2 - crate::ring::HEADER;
    let mut w = Walker::new(
        env,
        scratch,
        caches,
        &cap.settings.rules,
        a.struct_key,
        limit,
        cap.settings.limits,
    );
    let outcome = encode_event(&mut w, a, cap, tag, tracee, term, opts, ts);
    let counters = ring.counters();
    for (i, n) in w.redacted.iter().enumerate() {
        if *n > 0 {
            let c = &counters.redacted[i];
            c.store(c.load(Ordering::Relaxed) + *n, Ordering::Relaxed);
        }
    }
    if w.cut {
        Ring::bump(&counters.cut);
    }
    let note = match outcome {
        Outcome::Keep(note) => {
            let pushed = !w.overflowed() && ring.push(ts, w.out);
            if !pushed && w.overflowed() {
                Ring::bump(&counters.dropped);
            }
            note.map(|n| (n, pushed))
        }
        Outcome::SampledOut => {
            Ring::bump(&counters.sampled_out);
            None
        }
        Outcome::Skip => None,
    };
    // The governor's clock: every state callback is timed (their cost varies
    // with the state), other events one in TIME_EVERY of this thread's,
    // counted as that many.
    let n = counters.timing.load(Ordering::Relaxed).wrapping_add(1);
    counters.timing.store(n, Ordering::Relaxed);
    let timed = note.is_some() || n.is_multiple_of(TIME_EVERY);
    if !timed {
        return;
    }
    let spent = (os_monotonic_ns() + cap.clock_offset - ts).max(0) as u64;
    let weight = if note.is_some() { 1 } else { TIME_EVERY };
    let busy = &counters.busy_ns;
    busy.store(
        busy.load(Ordering::Relaxed) + spent * weight,
        Ordering::Relaxed,
    );
    if let Some((n, pushed)) = note {
        cap.tracks.settle(n.pid, n.state, n.plan, pushed, spent);
    }
}

/// One event in this many (other than state callbacks) reads the clock a
/// second time to measure what recording costs.
const TIME_EVERY: u64 = 8;

fn elements(env: *mut ErlNifEnv, t: ERL_NIF_TERM) -> &'static [ERL_NIF_TERM] {
    let mut arity = 0;
    let mut array: *const ERL_NIF_TERM = std::ptr::null();
    // SAFETY: on success `array` points at the tuple's elements, valid while
    // the callback's env lives; the slice does not outlive the callback.
    unsafe {
        if enif_get_tuple(env, t, &mut arity, &mut array) == 0 || arity == 0 {
            return &[];
        }
        std::slice::from_raw_parts(array, arity as usize)
    }
}

fn is_list(env: *mut ErlNifEnv, t: ERL_NIF_TERM) -> bool {
    // SAFETY: valid env and term.
    let ty = unsafe { enif_term_type(env, t) };
    matches!(ty, ErlNifTermType::ERL_NIF_TERM_TYPE_LIST)
}

/// Writes `{trace_ts, Tracee, Tag, Term, [Extra,] Ts}` as the process tracer
/// would receive it, with the agent's redaction and sampling applied.
#[allow(clippy::too_many_arguments)]
fn encode_event(
    w: &mut Walker<'_>,
    a: &Atoms,
    cap: &Capture,
    tag: ERL_NIF_TERM,
    tracee: ERL_NIF_TERM,
    term: ERL_NIF_TERM,
    opts: ERL_NIF_TERM,
    ts: i64,
) -> Outcome {
    let env = w.env;
    let s = &cap.settings;
    let mut extra: ERL_NIF_TERM = 0;
    // SAFETY: valid env; opts is the callback's options map; extra is writable.
    let has_extra = unsafe { enif_get_map_value(env, opts, a.extra, &mut extra) } != 0;
    if !has_extra {
        extra = a.undefined;
    }
    let head = |w: &mut Walker<'_>, arity: usize| {
        etf::tuple_header(w.out, arity);
        w.atom(a.trace_ts);
        w.pid(tracee);
        w.atom(tag);
    };
    let keeps_module = |mfa: ERL_NIF_TERM| {
        elements(env, mfa)
            .first()
            .is_some_and(|m| cap.state_modules.contains(*m as u64))
    };
    if tag == a.send || tag == a.send_to_non_existing_process {
        if s.sample > 1 && !phash2(term).is_multiple_of(s.sample as u64) {
            return Outcome::SampledOut;
        }
        head(w, 6);
        w.redacted(term, 0);
        w.raw(extra);
    } else if tag == a.receive {
        if s.sample > 1 && !phash2(term).is_multiple_of(s.sample as u64) {
            return Outcome::SampledOut;
        }
        head(w, 5);
        w.redacted(term, 0);
    } else if tag == a.call {
        if !cap.state_modules.is_empty() && !keeps_module(term) && process_sampled_out(cap, tracee)
        {
            return Outcome::SampledOut;
        }
        head(w, 5);
        let mut note = None;
        match elements(env, term) {
            [m, f, args] if is_list(env, *args) => {
                etf::tuple_header(w.out, 3);
                w.atom(*m);
                w.atom(*f);
                if cap.gen_servers.contains(*m as u64) {
                    note = plan_call(w, a, cap, tracee, *f, *args);
                }
                w.args(*m, *f, *args);
            }
            _ => w.raw(term),
        }
        etf::integer(w.out, ts);
        return Outcome::Keep(note);
    } else if tag == a.return_from {
        if !cap.state_modules.is_empty() && !keeps_module(term) && process_sampled_out(cap, tracee)
        {
            return Outcome::SampledOut;
        }
        head(w, 6);
        w.raw(term);
        let mut note = None;
        if !s.call_values {
            w.literal(NOT_CAPTURED);
        } else {
            match elements(env, term) {
                [m, f, arity] if cap.gen_servers.contains(*m as u64) => {
                    note = result(w, a, cap, tracee, *f, *arity, extra);
                }
                _ => w.redacted(extra, 0),
            }
        }
        etf::integer(w.out, ts);
        return Outcome::Keep(note);
    } else if tag == a.exception_from {
        head(w, 6);
        w.raw(term);
        match elements(env, extra) {
            [class, _] if !s.call_values => {
                etf::tuple_header(w.out, 2);
                w.raw(*class);
                w.literal(NOT_CAPTURED);
            }
            _ => w.redacted(extra, 0),
        }
    } else if tag == a.exit {
        head(w, 5);
        w.redacted(term, 0);
    } else if tag == a.spawn || tag == a.spawned {
        if tag == a.spawned && cap.is_own(term as u64) {
            cap.add_own(tracee as u64);
            return Outcome::Skip;
        }
        head(w, 6);
        w.raw(term);
        match elements(env, extra) {
            [m, f, args] if is_list(env, *args) => {
                etf::tuple_header(w.out, 3);
                w.atom(*m);
                w.atom(*f);
                w.args(*m, *f, *args);
            }
            _ => w.raw(extra),
        }
    } else if tag == a.unregister && term == a.boot_name {
        // The run-mode boot hook giving back its temporary name.
        return Outcome::Skip;
    } else {
        head(w, if has_extra { 6 } else { 5 });
        w.raw(term);
        if has_extra {
            w.raw(extra);
        }
    }
    etf::integer(w.out, ts);
    Outcome::Keep(None)
}

/// Before a gen_server callback's arguments are written: how to write its
/// state argument (see `state`), with the walker set up for it.
fn plan_call(
    w: &mut Walker<'_>,
    a: &Atoms,
    cap: &Capture,
    tracee: ERL_NIF_TERM,
    f: ERL_NIF_TERM,
    args: ERL_NIF_TERM,
) -> Option<StateNote> {
    let g = &a.gen_server;
    let arity = list_prefix(w.env, args, 4);
    if !g.is_callback(f, arity.len()) {
        return None;
    }
    let pos = g.state_arg(f, arity.len());
    let state = pos.map(|p| state::identity(w.env, arity[p - 1]));
    let plan = cap.tracks.on_call(tracee as u64, state);
    match (plan, pos) {
        (Plan::Same, Some(p)) => w.same_state_arg = Some(p),
        (Plan::Skip, Some(p)) => {
            w.same_state_arg = Some(p);
            w.same_state_atom = state::NOT_CAPTURED;
        }
        (Plan::Encode { shallower: true }, _) => w.limits = w.limits.shallower(),
        _ => {}
    }
    Some(StateNote {
        pid: tracee as u64,
        state,
        plan,
    })
}

/// A gen_server callback's result: the new state is written once per change.
#[allow(clippy::too_many_arguments)]
fn result(
    w: &mut Walker<'_>,
    a: &Atoms,
    cap: &Capture,
    tracee: ERL_NIF_TERM,
    f: ERL_NIF_TERM,
    arity: ERL_NIF_TERM,
    value: ERL_NIF_TERM,
) -> Option<StateNote> {
    let mut n = 0i64;
    // SAFETY: valid env and term; n is writable.
    let arity = if unsafe { enif_get_int64(w.env, arity, &mut n) } != 0 {
        n as usize
    } else {
        usize::MAX
    };
    let g = &a.gen_server;
    let elems = elements(w.env, value);
    let at = if g.is_callback(f, arity) {
        g.result_state(f, elems)
    } else {
        None
    };
    let Some(at) = at else {
        w.redacted(value, 0);
        return None;
    };
    let state = state::identity(w.env, elems[at]);
    let plan = cap.tracks.on_result(tracee as u64, state);
    match plan {
        Plan::Same => w.result_tuple(elems, at, SAME_STATE),
        Plan::Skip => w.result_tuple(elems, at, state::NOT_CAPTURED),
        Plan::Encode { shallower } => {
            if shallower {
                w.limits = w.limits.shallower();
            }
            w.redacted(value, 0);
        }
    }
    Some(StateNote {
        pid: tracee as u64,
        state: Some(state),
        plan,
    })
}

/// The first elements of a list, at most `n + 1` (so a longer list shows as
/// longer than `n`).
fn list_prefix(env: *mut ErlNifEnv, mut t: ERL_NIF_TERM, n: usize) -> Vec<ERL_NIF_TERM> {
    let mut out = Vec::with_capacity(n);
    let (mut head, mut tail) = (0, 0);
    // SAFETY: valid env and terms; head and tail are writable.
    while out.len() <= n && unsafe { enif_get_list_cell(env, t, &mut head, &mut tail) } != 0 {
        out.push(head);
        t = tail;
    }
    out
}
