//! Behaviour state from callback arguments and return values, with no change to
//! the traced code.
//!
//! For a `gen_server` the state before a callback is its last argument and the
//! state after is inside the return value (`{reply, R, S}`, `{noreply, S}` ...).
//! For a `gen_statem` the state is `{StateName, Data}`: the state name comes from
//! the state function's name (or `handle_event/4`'s third argument), data from the
//! last argument, and the new pair from the return (`{next_state, S, D}`,
//! `{keep_state, D}`, `keep_state_and_data` ...). Each callback is also keyed to
//! the message it handles so the state change can be linked to its cause.

use crate::hash::hash;
use elixirscope_term::view::View;

const KEY_CALL: u8 = 1;
const KEY_CAST: u8 = 2;
const KEY_INFO: u8 = 3;

/// The behaviours whose state ElixirScope understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    GenServer,
    GenStatem,
}

impl Behaviour {
    pub fn parse(name: &str) -> Option<Behaviour> {
        match name {
            "gen_server" => Some(Behaviour::GenServer),
            "gen_statem" => Some(Behaviour::GenStatem),
            _ => None,
        }
    }
}

/// What a callback's call tells us, kept until it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackCall {
    /// State before the callback (`None` for `init/1`).
    pub old_state: Option<Vec<u8>>,
    /// Current gen_statem state name (encoded term).
    pub state_name: Option<Vec<u8>>,
    /// Key of the message this callback handles.
    pub message_key: Option<u64>,
    /// The state before could not be known (events were dropped, or the
    /// capture of this process's state is degraded).
    pub before_unknown: bool,
    /// Where the state is among the arguments (0-based; gen_server only).
    pub state_arg: Option<usize>,
}

/// What a tracer wrote instead of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `'$es_state'`: the process's state as last recorded (the NIF tracer saw
    /// the very same term).
    Same,
    /// `'$es_not_captured'`: left out on purpose (degraded capture).
    NotCaptured,
}

/// The marker in an encoded state (a gen_statem's `{Name, Data}` carries it
/// as its data), if any.
pub fn marker(bytes: &[u8]) -> Option<Marker> {
    let v = View::new(bytes).ok()?;
    let atom = |v: View<'_>| {
        if v.is_atom("$es_state") {
            Some(Marker::Same)
        } else if v.is_atom("$es_not_captured") {
            Some(Marker::NotCaptured)
        } else {
            None
        }
    };
    atom(v).or_else(|| v.tuple_n::<2>().and_then(|[_, d]| atom(d)))
}

/// Keys under which a received message can be found by the callback handling it.
pub fn receive_key(msg: View<'_>) -> u64 {
    if let Some(items) = msg.tuple() {
        let v: Vec<View<'_>> = items.collect();
        match v.as_slice() {
            [tag, from, req] if tag.is_atom("$gen_call") => {
                return hash(KEY_CALL, &[from.raw(), req.raw()])
            }
            [tag, m] if tag.is_atom("$gen_cast") => return hash(KEY_CAST, &[m.raw()]),
            _ => {}
        }
    }
    hash(KEY_INFO, &[msg.raw()])
}

fn event_key(event_type: View<'_>, content: View<'_>) -> Option<u64> {
    if event_type.is_atom("cast") {
        return Some(hash(KEY_CAST, &[content.raw()]));
    }
    if event_type.is_atom("info") {
        return Some(hash(KEY_INFO, &[content.raw()]));
    }
    match event_type.tuple_n::<2>() {
        Some([call, from]) if call.is_atom("call") => {
            Some(hash(KEY_CALL, &[from.raw(), content.raw()]))
        }
        _ => None,
    }
}

fn is_event_type(t: View<'_>) -> bool {
    [
        "cast",
        "info",
        "timeout",
        "state_timeout",
        "internal",
        "enter",
    ]
    .iter()
    .any(|a| t.is_atom(a))
        || t.tuple_n::<2>()
            .is_some_and(|[k, _]| k.is_atom("call") || k.is_atom("timeout"))
}

/// Encodes `{a, b}` from two encoded terms.
pub fn pair(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + a.len() + b.len());
    out.extend_from_slice(&[104, 2]);
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

fn atom_bytes(name: &str) -> Vec<u8> {
    let mut out = vec![119, name.len().min(255) as u8];
    out.extend_from_slice(&name.as_bytes()[..name.len().min(255)]);
    out
}

/// Inspects a callback call; `None` if `function/arity` is not a state callback.
pub fn on_call(b: Behaviour, function: &str, args: View<'_>) -> Option<CallbackCall> {
    let a: Vec<View<'_>> = args.list()?.collect();
    let call = |old: Option<&View<'_>>, key| CallbackCall {
        state_arg: old.and_then(|s| {
            a.iter()
                .position(|x| std::ptr::eq(x.raw().as_ptr(), s.raw().as_ptr()))
        }),
        old_state: old.map(|s| s.raw().to_vec()),
        state_name: None,
        message_key: key,
        before_unknown: false,
    };
    match (b, function, a.as_slice()) {
        (_, "init", [_]) => Some(call(None, None)),
        (Behaviour::GenServer, "handle_call", [req, from, s]) => Some(call(
            Some(s),
            Some(hash(KEY_CALL, &[from.raw(), req.raw()])),
        )),
        (Behaviour::GenServer, "handle_cast", [m, s]) => {
            Some(call(Some(s), Some(hash(KEY_CAST, &[m.raw()]))))
        }
        (Behaviour::GenServer, "handle_info", [m, s]) => {
            Some(call(Some(s), Some(hash(KEY_INFO, &[m.raw()]))))
        }
        (Behaviour::GenServer, "handle_continue", [_, s]) => Some(call(Some(s), None)),
        (Behaviour::GenServer, "code_change", [_, s, _]) => Some(call(Some(s), None)),
        (Behaviour::GenStatem, "handle_event", [t, content, state, data]) if is_event_type(*t) => {
            Some(CallbackCall {
                old_state: Some(pair(state.raw(), data.raw())),
                state_name: Some(state.raw().to_vec()),
                message_key: event_key(*t, *content),
                before_unknown: false,
                state_arg: None,
            })
        }
        (Behaviour::GenStatem, f, [t, content, data]) if is_event_type(*t) => {
            let name = atom_bytes(f);
            Some(CallbackCall {
                old_state: Some(pair(&name, data.raw())),
                state_name: Some(name),
                message_key: event_key(*t, *content),
                before_unknown: false,
                state_arg: None,
            })
        }
        _ => None,
    }
}

/// The new state inside a gen_server callback's return value.
pub fn gen_server_result_state<'a>(ret: View<'a>) -> Option<View<'a>> {
    let items: Vec<View<'_>> = ret.tuple()?.collect();
    let tag = items.first()?;
    if tag.is_atom("reply") && items.len() >= 3 {
        items.get(2).copied()
    } else if (tag.is_atom("noreply") || tag.is_atom("ok")) && items.len() >= 2 {
        items.get(1).copied()
    } else if tag.is_atom("stop") && (items.len() == 3 || items.len() == 4) {
        items.last().copied()
    } else {
        None
    }
}

/// The state after a callback, from its return value; `None` if it has none.
pub fn new_state(b: Behaviour, call: &CallbackCall, ret: View<'_>) -> Option<Vec<u8>> {
    match b {
        Behaviour::GenServer => gen_server_result_state(ret).map(|v| v.raw().to_vec()),
        Behaviour::GenStatem => {
            if ret.is_atom("keep_state_and_data") || ret.is_atom("repeat_state_and_data") {
                return call.old_state.clone();
            }
            let items: Vec<View<'_>> = ret.tuple()?.collect();
            let tag = *items.first()?;
            let current = call.state_name.as_deref();
            let with_current = |d: &View<'_>| current.map(|c| pair(c, d.raw()));
            match items.as_slice() {
                [_, st, d] | [_, st, d, _] if tag.is_atom("ok") || tag.is_atom("next_state") => {
                    Some(pair(st.raw(), d.raw()))
                }
                [_, d] | [_, d, _] if tag.is_atom("keep_state") || tag.is_atom("repeat_state") => {
                    with_current(d)
                }
                [_, _]
                    if tag.is_atom("keep_state_and_data")
                        || tag.is_atom("repeat_state_and_data") =>
                {
                    call.old_state.clone()
                }
                [_, _, d] if tag.is_atom("stop") => with_current(d),
                [_, _, _, d] if tag.is_atom("stop_and_reply") => with_current(d),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elixirscope_term::{encode_body, Term};

    fn v(t: &Term) -> Vec<u8> {
        encode_body(t)
    }

    #[test]
    fn gen_server_call_and_reply() {
        let from = Term::Tuple(vec![Term::atom("from"), Term::Integer(1)]);
        let args = v(&Term::list(vec![
            Term::atom("inc"),
            from.clone(),
            Term::Integer(41),
        ]));
        let c = on_call(
            Behaviour::GenServer,
            "handle_call",
            View::new(&args).unwrap(),
        )
        .unwrap();
        assert_eq!(c.old_state, Some(v(&Term::Integer(41))));
        let msg = v(&Term::Tuple(vec![
            Term::atom("$gen_call"),
            from,
            Term::atom("inc"),
        ]));
        assert_eq!(c.message_key, Some(receive_key(View::new(&msg).unwrap())));
        let ret = v(&Term::Tuple(vec![
            Term::atom("reply"),
            Term::atom("ok"),
            Term::Integer(42),
        ]));
        assert_eq!(
            new_state(Behaviour::GenServer, &c, View::new(&ret).unwrap()),
            Some(v(&Term::Integer(42)))
        );
        let stop = v(&Term::Tuple(vec![Term::atom("stop"), Term::atom("normal")]));
        assert_eq!(
            new_state(Behaviour::GenServer, &c, View::new(&stop).unwrap()),
            None
        );
    }

    #[test]
    fn gen_statem_state_functions_and_keep_state() {
        let args = v(&Term::list(vec![
            Term::atom("cast"),
            Term::atom("push"),
            Term::Integer(1),
        ]));
        let c = on_call(Behaviour::GenStatem, "locked", View::new(&args).unwrap()).unwrap();
        let keep = v(&Term::Tuple(vec![
            Term::atom("keep_state"),
            Term::Integer(2),
        ]));
        let expected = v(&Term::Tuple(vec![Term::atom("locked"), Term::Integer(2)]));
        assert_eq!(
            new_state(Behaviour::GenStatem, &c, View::new(&keep).unwrap()),
            Some(expected)
        );
        let next = v(&Term::Tuple(vec![
            Term::atom("next_state"),
            Term::atom("open"),
            Term::Integer(3),
        ]));
        let expected = v(&Term::Tuple(vec![Term::atom("open"), Term::Integer(3)]));
        assert_eq!(
            new_state(Behaviour::GenStatem, &c, View::new(&next).unwrap()),
            Some(expected)
        );
        // A helper function of arity 3 that is not a state function is ignored.
        let not_event = v(&Term::list(vec![
            Term::Integer(1),
            Term::Integer(2),
            Term::Integer(3),
        ]));
        assert!(on_call(
            Behaviour::GenStatem,
            "helper",
            View::new(&not_event).unwrap()
        )
        .is_none());
    }
}
