//! GenServer states on their way into the store: what a tracer's
//! `'$es_state'` stands for (the process's last recorded state, unless events
//! were dropped since), the flags of each state event (unchanged, unsure past
//! a cut, truncated, the state before not recorded), and storing a state once
//! per change — a state argument or result that is the last recorded state is
//! stored as `'$es_state'`, whichever tracer sent it.

use crate::behaviour::{self, Behaviour, CallbackCall, Marker};
use crate::translate::{NodeCtx, State};
use elixirscope_store::model::state_flags::{BEFORE_UNKNOWN, TRUNCATED, UNCHANGED, UNSURE};
use elixirscope_store::DictId;
use elixirscope_term::view::View;

/// A process's last recorded state, with the node's drop total when it was
/// recorded: if events were dropped since, the node may have recorded a newer
/// state that never arrived, so a reference to "the state as before" cannot be
/// trusted.
pub(crate) struct LastState {
    pub(crate) bytes: Vec<u8>,
    pub(crate) dropped_at: u64,
}

/// What a callback's result says about its process's state.
pub(crate) enum After {
    /// No state in it (or not one that can be known).
    Nothing,
    /// Left out on purpose: the state is no longer known.
    Forget,
    /// The state after the callback, its [`state_flags`], and whether the
    /// result may store it as '$es_state' (it is the state the callback was
    /// given, nothing cut).
    State {
        bytes: Vec<u8>,
        flags: u64,
        shorten: bool,
    },
}

pub(crate) fn state_after(
    st: &State,
    pid: DictId,
    b: Behaviour,
    c: &CallbackCall,
    v: View<'_>,
) -> After {
    let Some(new) = behaviour::new_state(b, c, v) else {
        return After::Nothing;
    };
    match behaviour::marker(&new) {
        // The callback returned the very state it was given.
        Some(Marker::Same) => match &c.old_state {
            Some(old) => {
                let cut = if is_cut(old) { TRUNCATED } else { 0 };
                After::State {
                    bytes: old.clone(),
                    flags: UNCHANGED | cut,
                    shorten: false,
                }
            }
            // Unchanged, but what it was is not known (events were dropped).
            None => After::Nothing,
        },
        Some(Marker::NotCaptured) => After::Forget,
        None => {
            let before = match &c.old_state {
                Some(old) => Some(old.as_slice()),
                None if c.before_unknown => None,
                None => st.last_state.get(&pid).map(|l| l.bytes.as_slice()),
            };
            let flags = state_change(before, &new, c.before_unknown);
            After::State {
                shorten: flags & UNCHANGED != 0 && c.old_state.is_some(),
                bytes: new,
                flags,
            }
        }
    }
}

/// The [`state_flags`] of a new state given the one before (if known).
fn state_change(before: Option<&[u8]>, new: &[u8], before_unknown: bool) -> u64 {
    let cut = is_cut(new);
    let mut flags = if cut { TRUNCATED } else { 0 };
    match before {
        None if before_unknown => flags |= BEFORE_UNKNOWN,
        None => {}
        Some(old) if same_term(old, new) => {
            flags |= if cut || is_cut(old) {
                UNSURE
            } else {
                UNCHANGED
            };
        }
        Some(_) => {}
    }
    flags
}

/// `container` with `element` (one of its elements' bytes) replaced.
pub(crate) fn replace_element(container: &[u8], element: &[u8], with: &[u8]) -> Vec<u8> {
    let at = element.as_ptr() as usize - container.as_ptr() as usize;
    let end = at + element.len();
    let mut out = Vec::with_capacity(container.len() - element.len() + with.len());
    out.extend_from_slice(&container[..at]);
    out.extend_from_slice(with);
    out.extend_from_slice(&container[end..]);
    out
}

/// `'$es_state'` as a small UTF-8 atom.
pub(crate) const SAME_STATE_ETF: &[u8] = b"\x77\x09$es_state";

/// Whether the capture limits cut something in an encoded term (their markers
/// are atoms starting `$es_`).
pub(crate) fn is_cut(bytes: &[u8]) -> bool {
    elixirscope_term::cut::is_cut_bytes(bytes)
}

pub(crate) fn remember_state(st: &mut State, ctx: &NodeCtx, pid: DictId, bytes: Vec<u8>) {
    st.last_state.insert(
        pid,
        LastState {
            bytes,
            dropped_at: ctx.dropped_total,
        },
    );
}

/// What a callback's state argument stands for when the tracer did not write
/// it out: `'$es_state'` is the process's last recorded state (unless events
/// were dropped since), `'$es_not_captured'` is unknown. A state written out
/// in full is remembered as the latest.
pub(crate) fn resolve_before(
    st: &mut State,
    ctx: &NodeCtx,
    pid: DictId,
    c: &mut CallbackCall,
    already_recorded: bool,
) {
    let Some(old) = c.old_state.as_deref() else {
        return;
    };
    match behaviour::marker(old) {
        Some(Marker::Same) => {
            c.old_state = st
                .last_state
                .get(&pid)
                .filter(|l| l.dropped_at == ctx.dropped_total)
                .map(|l| l.bytes.clone());
            c.before_unknown = c.old_state.is_none();
        }
        Some(Marker::NotCaptured) => {
            c.old_state = None;
            c.before_unknown = true;
            st.last_state.remove(&pid);
        }
        None if already_recorded => {}
        None => {
            let bytes = old.to_vec();
            remember_state(st, ctx, pid, bytes);
        }
    }
}

fn same_term(a: &[u8], b: &[u8]) -> bool {
    a == b
        || match (
            elixirscope_term::decode_body(a),
            elixirscope_term::decode_body(b),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elixirscope_term::Term;

    #[test]
    fn the_same_state_atom_is_what_the_encoder_writes() {
        let encoded = elixirscope_term::encode_body(&Term::atom(elixirscope_term::cut::SAME_STATE));
        assert_eq!(SAME_STATE_ETF, encoded.as_slice());
        assert_eq!(behaviour::marker(SAME_STATE_ETF), Some(Marker::Same));
    }

    #[test]
    fn an_element_is_replaced_in_place() {
        let list = elixirscope_term::encode_body(&Term::list(vec![
            Term::Integer(1),
            Term::string("state"),
            Term::Integer(3),
        ]));
        let v = View::new(&list).unwrap();
        let item = v.list().unwrap().nth(1).unwrap();
        let out = replace_element(&list, item.raw(), SAME_STATE_ETF);
        let t = elixirscope_term::decode_body(&out).unwrap();
        assert_eq!(
            t,
            Term::list(vec![
                Term::Integer(1),
                Term::atom(elixirscope_term::cut::SAME_STATE),
                Term::Integer(3)
            ])
        );
    }
}
