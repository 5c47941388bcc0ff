//! Starting, flushing and stopping a capture, called by the agent's tracer
//! process (`elixirscope_nif_tracer.erl`).

use crate::capture::{Capture, Pid, Settings, CURRENT, GENERATION};
use crate::clock::os_monotonic_ns;
use crate::drain;
use crate::limits::Limits;
use crate::redact::{value_rule, Rule, Rules};
use crate::state::Level;
use rustler::sys::{enif_is_process_alive, enif_monotonic_time, ErlNifTimeUnit};
use rustler::{Atom, Env, LocalPid, Term};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

rustler::atoms! {
    ok,
    error,
    already_running,
    not_running,
    sample,
    call_values,
    redact,
    keys,
    structs,
    args,
    cards,
    ring_bytes,
    batch_bytes,
    max_inflight,
    max_events,
    hold_us,
    own,
    discard_all,
    deliver_only,
    values,
    limits,
    depth,
    elements,
    bytes,
    event_bytes,
    gen_server,
    invalid_regex,
}

static DRAIN: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

fn get<'a, T: rustler::Decoder<'a>>(opts: Term<'a>, key: Atom) -> Option<T> {
    opts.map_get(key).ok().and_then(|v| v.decode().ok())
}

/// Redaction rules from the agent's redaction config (`false` or a map) and
/// whether call values are captured, as `elixirscope_redact:new/3` reads them.
/// A value pattern that does not compile is an error naming it.
fn rules(config: Option<Term<'_>>, call_values: bool) -> Result<Rules, String> {
    let Some(map) = config.filter(|c| c.is_map()) else {
        // Redaction off: values pass as they are, except that without call
        // values the depth rule still applies (as in the process tracer).
        return Ok(Rules {
            enabled: !call_values,
            ..Rules::default()
        });
    };
    let keys: Vec<Vec<u8>> = get::<Vec<rustler::Binary>>(map, keys())
        .unwrap_or_default()
        .iter()
        .map(|k| k.as_slice().to_ascii_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    let structs = get::<Vec<Term>>(map, structs())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.is_atom())
        .map(|t| t.as_c_arg() as u64)
        .collect();
    let args = get::<Vec<(Term, Term, usize, Vec<usize>)>>(map, args())
        .unwrap_or_default()
        .into_iter()
        .map(|(m, f, a, p)| (m.as_c_arg() as u64, f.as_c_arg() as u64, a, p))
        .collect();
    let mut patterns = Vec::new();
    for v in get::<Vec<rustler::Binary>>(map, values()).unwrap_or_default() {
        let text = String::from_utf8_lossy(v.as_slice()).into_owned();
        patterns.push(value_rule(&text).map_err(|e| format!("{text}: {e}"))?);
    }
    Ok(Rules {
        enabled: true,
        keys,
        structs,
        args,
        cards: get::<bool>(map, cards()).unwrap_or(true),
        values: patterns,
    })
}

/// The capture limits from `#{depth, elements, bytes, event_bytes}`.
fn limits_of(config: Option<Term<'_>>) -> Limits {
    let d = Limits::default();
    let Some(map) = config.filter(|c| c.is_map()) else {
        return d;
    };
    Limits {
        depth: get::<u32>(map, depth()).unwrap_or(d.depth).max(1),
        elements: get::<usize>(map, elements()).unwrap_or(d.elements).max(1),
        bytes: get::<usize>(map, bytes()).unwrap_or(d.bytes).max(1),
        event_bytes: get::<usize>(map, event_bytes())
            .unwrap_or(d.event_bytes)
            .max(256),
    }
}

/// `start(TracerPid, Options)`.
pub fn start<'a>(env: Env<'a>, tracer: LocalPid, opts: Term<'a>) -> Term<'a> {
    use rustler::Encoder;
    let stale = CURRENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|c| {
            // SAFETY: env is this call's environment; the pid is a plain word.
            unsafe { enif_is_process_alive(env.as_c_arg(), &c.tracer.0) == 0 }
        });
    if stale == Some(true) {
        // The previous capture's tracer process died without stopping it.
        finish(take_current());
    }
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if current.is_some() {
        return (error(), already_running()).encode(env);
    }
    let call_values = get::<bool>(opts, call_values()).unwrap_or(true);
    let rules = match rules(opts.map_get(redact()).ok(), call_values) {
        Ok(r) => r,
        Err(why) => return (error(), (invalid_regex(), why)).encode(env),
    };
    let limits = limits_of(opts.map_get(limits()).ok());
    // The ring must hold the largest event the limits allow, twice over.
    let ring = get::<usize>(opts, ring_bytes())
        .unwrap_or(4 << 20)
        .max(4 * limits.event_bytes);
    let settings = Settings {
        sample: get::<u32>(opts, sample()).unwrap_or(1).max(1),
        call_values,
        rules,
        limits,
        ring_bytes: ring,
        batch_bytes: get::<usize>(opts, batch_bytes()).unwrap_or(256 << 10),
        max_inflight: get::<u32>(opts, max_inflight()).unwrap_or(8).max(1),
        max_events: get::<u64>(opts, max_events()),
        hold_ns: get::<i64>(opts, hold_us()).unwrap_or(2_000) * 1_000,
        discard_all: get::<bool>(opts, discard_all()).unwrap_or(false),
        deliver_only: get::<bool>(opts, deliver_only()).unwrap_or(false),
    };
    let own_pids: Vec<u64> = get::<Vec<LocalPid>>(opts, own())
        .unwrap_or_default()
        .iter()
        .map(|p| p.encode(env).as_c_arg() as u64)
        .chain(std::iter::once(tracer.encode(env).as_c_arg() as u64))
        .collect();
    // SAFETY: enif_monotonic_time has no preconditions.
    let erlang_now = unsafe { enif_monotonic_time(ErlNifTimeUnit::ERL_NIF_NSEC) };
    let offset = erlang_now - os_monotonic_ns();
    let generation = GENERATION.load(Ordering::Acquire) + 1;
    let cap = Arc::new(Capture::new(
        generation,
        settings,
        Pid(*tracer.as_c_arg()),
        &own_pids,
        offset,
    ));
    match drain::spawn(cap.clone()) {
        Ok(handle) => {
            *DRAIN.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        Err(e) => return (error(), e.to_string()).encode(env),
    }
    *current = Some(cap);
    GENERATION.store(generation, Ordering::Release);
    ok().encode(env)
}

/// `stop()`: records nothing more, sends what the rings hold, stops the
/// drain thread and frees the rings. Returns `{ok, Stats}`.
pub fn stop<'a>(env: Env<'a>) -> Term<'a> {
    use rustler::Encoder;
    let Some(cap) = take_current() else {
        return (error(), not_running()).encode(env);
    };
    finish(Some(cap.clone()));
    (ok(), stats_of(env, &cap)).encode(env)
}

/// Takes the current capture out of reach of new callbacks.
fn take_current() -> Option<Arc<Capture>> {
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let cap = current.take()?;
    GENERATION.fetch_add(1, Ordering::AcqRel);
    Some(cap)
}

/// Deactivates `cap`, waits for callbacks inside its rings to leave, lets the
/// drain thread send what is left, joins it and frees the rings' memory.
fn finish(cap: Option<Arc<Capture>>) {
    let Some(cap) = cap else {
        return;
    };
    cap.active.store(false, Ordering::SeqCst);
    let rings = cap.rings();
    // Callbacks already inside finish within microseconds; wait for them.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut settled = true;
    for r in &rings {
        while r.is_busy() {
            if Instant::now() > deadline {
                settled = false;
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    cap.stopping.store(true, Ordering::Release);
    if let Some(h) = DRAIN.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = h.join();
    }
    if settled {
        for r in &rings {
            // SAFETY: the capture is inactive, no callback is inside any ring
            // (checked above) and the drain thread has exited.
            unsafe { r.release() };
        }
    }
}

/// `flush(Token)`: the drain thread sends everything recorded so far, then
/// `{es_nif_flushed, Token}`.
pub fn flush<'a>(env: Env<'a>, token: u64) -> Term<'a> {
    use rustler::Encoder;
    match CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(cap) => {
            cap.flushes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(token);
            ok().encode(env)
        }
        None => (error(), not_running()).encode(env),
    }
}

/// `batch_done()`: the tracer process has shipped one batch.
pub fn batch_done<'a>(env: Env<'a>) -> Term<'a> {
    use rustler::Encoder;
    if let Some(cap) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let _ = cap
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
    ok().encode(env)
}

/// `deactivate()`: record nothing more (the capture tripped); the rings are
/// still drained.
pub fn deactivate<'a>(env: Env<'a>) -> Term<'a> {
    use rustler::Encoder;
    if let Some(cap) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        cap.active.store(false, Ordering::SeqCst);
    }
    ok().encode(env)
}

/// `own(Pid)`: the agent's own process; its events are never recorded.
pub fn own_pid<'a>(env: Env<'a>, pid: LocalPid) -> Term<'a> {
    use rustler::Encoder;
    if let Some(cap) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        cap.add_own(pid.encode(env).as_c_arg() as u64);
    }
    ok().encode(env)
}

/// `reserve(N)`: the agent recorded N events itself; they count against the
/// event budget too.
pub fn reserve<'a>(env: Env<'a>, n: u64) -> Term<'a> {
    use rustler::Encoder;
    if let Some(cap) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        cap.forwarded.fetch_add(n, Ordering::Relaxed);
    }
    ok().encode(env)
}

/// `state_modules(Modules)`: callbacks of these modules (atoms, or
/// `{Module, Behaviour}`) are kept whatever the sampling; the states of
/// gen_servers are written once per change.
pub fn state_modules<'a>(env: Env<'a>, modules: Vec<Term<'a>>) -> Term<'a> {
    use rustler::Encoder;
    if let Some(cap) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        for m in &modules {
            if m.is_atom() {
                cap.state_modules.insert(m.as_c_arg() as u64);
            } else if let Ok((module, behaviour)) = m.decode::<(Term, Term)>() {
                if module.is_atom() {
                    cap.state_modules.insert(module.as_c_arg() as u64);
                    if behaviour == gen_server().to_term(env) {
                        cap.gen_servers.insert(module.as_c_arg() as u64);
                    }
                }
            }
        }
    }
    ok().encode(env)
}

/// `cost(Top)`: `{ok, BusyNs, [{Pid, Ns, Callbacks, Level}]}` — nanoseconds
/// the trace callbacks spent recording since the capture started, and the
/// `Top` processes whose state callbacks cost most since the previous call.
pub fn cost<'a>(env: Env<'a>, top: usize) -> Term<'a> {
    use rustler::Encoder;
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(cap) = current else {
        return (error(), not_running()).encode(env);
    };
    let busy: u64 = cap
        .rings()
        .iter()
        .map(|r| r.counters().busy_ns.load(Ordering::Relaxed))
        .sum();
    let procs: Vec<Term<'a>> = cap
        .tracks
        .take_window(top.min(64))
        .into_iter()
        .map(|(pid, ns, callbacks, level)| {
            // SAFETY: the key is the term word of a local pid (an immediate),
            // valid in any environment.
            let pid = unsafe { Term::new(env, pid as rustler::sys::ERL_NIF_TERM) };
            (pid, ns, callbacks, level as u64).encode(env)
        })
        .collect();
    (ok(), busy, procs).encode(env)
}

/// `degrade(Pid, Level)`: capture less of this process's state from now on
/// (1 shallower limits, 2 one callback in 16, 3 none); never back up.
pub fn degrade<'a>(env: Env<'a>, pid: LocalPid, level: u8) -> Term<'a> {
    use rustler::Encoder;
    if let Some(cap) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let word = pid.encode(env).as_c_arg() as u64;
        cap.tracks.set_level(word, Level::from_u8(level));
    }
    ok().encode(env)
}

/// `stats()`: `{ok, Stats}` or `{error, not_running}`.
pub fn stats<'a>(env: Env<'a>) -> Term<'a> {
    use rustler::Encoder;
    match CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(cap) => (ok(), stats_of(env, cap)).encode(env),
        None => (error(), not_running()).encode(env),
    }
}

fn stats_of<'a>(env: Env<'a>, cap: &Capture) -> Term<'a> {
    use rustler::Encoder;
    let rings = cap.rings();
    let sum = |f: &dyn Fn(&crate::ring::Ring) -> u64| rings.iter().map(|r| f(r)).sum::<u64>();
    let mut redactions = Term::map_new(env);
    for rule in Rule::ALL {
        let n = sum(&|r| r.counters().redacted[rule as usize].load(Ordering::Relaxed));
        if n > 0 {
            let key = Atom::from_str(env, rule.name()).map(|a| a.encode(env));
            if let Ok(k) = key {
                redactions = redactions.map_put(k, n).unwrap_or(redactions);
            }
        }
    }
    let pairs: Vec<(&str, Term<'a>)> = vec![
        (
            "recorded",
            sum(&|r| r.counters().recorded.load(Ordering::Relaxed)).encode(env),
        ),
        (
            "dropped",
            sum(&|r| r.counters().dropped.load(Ordering::Relaxed)).encode(env),
        ),
        (
            "sampled_out",
            sum(&|r| r.counters().sampled_out.load(Ordering::Relaxed)).encode(env),
        ),
        (
            "cut",
            sum(&|r| r.counters().cut.load(Ordering::Relaxed)).encode(env),
        ),
        (
            "busy_ns",
            sum(&|r| r.counters().busy_ns.load(Ordering::Relaxed)).encode(env),
        ),
        (
            "forwarded",
            cap.forwarded.load(Ordering::Relaxed).encode(env),
        ),
        (
            "over_budget",
            cap.over_budget.load(Ordering::Relaxed).encode(env),
        ),
        ("rings", (rings.len() as u64).encode(env)),
        ("ring_bytes", sum(&|r| r.capacity() as u64).encode(env)),
        (
            "waiting_bytes",
            sum(&|r| r.pending_bytes() as u64).encode(env),
        ),
        (
            "inflight",
            (cap.inflight.load(Ordering::Relaxed) as u64).encode(env),
        ),
        ("redactions", redactions),
    ];
    let mut map = Term::map_new(env);
    for (k, v) in pairs {
        if let Ok(a) = Atom::from_str(env, k) {
            map = map.map_put(a.encode(env), v).unwrap_or(map);
        }
    }
    map
}
