//! GenServer state capture on the scheduler: where a callback's state sits,
//! and per process what the collector already has.
//!
//! The state a gen_server callback is called with is the one the previous
//! callback returned, and a callback that leaves the state alone returns the
//! very term it was given. Terms are immutable, so when the state term (its
//! word, and as a check its type and size) is the one this process last
//! recorded, the event carries the atom `'$es_state'` instead of the state:
//! it is encoded once per change, not twice per callback, and a callback that
//! did not touch it costs nothing to record. Anything that breaks the chain (an
//! event not recorded, a garbage collection that moved the term, a state
//! replaced from outside, a skipped callback) simply makes the next callback
//! encode the state in full again.
//!
//! Each process also has a degradation level set by the agent's tracer-cost
//! governor — shallower limits, then the state of one callback in
//! [`SAMPLE_EVERY`], then none — and the tracer time its state callbacks cost
//! in the current window.

use rustler::sys::{
    enif_get_map_size, enif_inspect_binary, enif_term_type, ErlNifBinary, ErlNifEnv,
    ErlNifTermType, ERL_NIF_TERM,
};
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::Mutex;

/// At level [`Level::Sampled`], one callback in this many records its state.
pub const SAMPLE_EVERY: u64 = 16;
/// Processes tracked at most; past it the table starts afresh (every tracked
/// state is then encoded in full once more).
const MAX_TRACKED: usize = 65_536;
/// The atom written where a state was deliberately not captured.
pub const NOT_CAPTURED: &str = "$es_not_captured";

/// How much of a process's state is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Full = 0,
    Shallower = 1,
    Sampled = 2,
    Off = 3,
}

impl Level {
    pub fn from_u8(n: u8) -> Level {
        match n {
            0 => Level::Full,
            1 => Level::Shallower,
            2 => Level::Sampled,
            _ => Level::Off,
        }
    }
}

/// Term words of the gen_server callback and result atoms.
#[derive(Debug, Clone, Copy)]
pub struct GenServerAtoms {
    pub init: ERL_NIF_TERM,
    pub handle_call: ERL_NIF_TERM,
    pub handle_cast: ERL_NIF_TERM,
    pub handle_info: ERL_NIF_TERM,
    pub handle_continue: ERL_NIF_TERM,
    pub code_change: ERL_NIF_TERM,
    pub terminate: ERL_NIF_TERM,
    pub reply: ERL_NIF_TERM,
    pub noreply: ERL_NIF_TERM,
    pub ok: ERL_NIF_TERM,
    pub stop: ERL_NIF_TERM,
}

impl GenServerAtoms {
    /// Whether `f/arity` is a callback whose arguments or result carry the state.
    pub fn is_callback(&self, f: ERL_NIF_TERM, arity: usize) -> bool {
        (f == self.init && arity == 1) || self.state_arg(f, arity).is_some()
    }

    /// The 1-based position of the state among a callback's arguments.
    pub fn state_arg(&self, f: ERL_NIF_TERM, arity: usize) -> Option<usize> {
        match arity {
            3 if f == self.handle_call => Some(3),
            3 if f == self.code_change => Some(2),
            2 if f == self.handle_cast
                || f == self.handle_info
                || f == self.handle_continue
                || f == self.terminate =>
            {
                Some(2)
            }
            _ => None,
        }
    }

    /// Where the new state sits in a callback's result tuple `elems`.
    pub fn result_state(&self, f: ERL_NIF_TERM, elems: &[ERL_NIF_TERM]) -> Option<usize> {
        let tag = *elems.first()?;
        let n = elems.len();
        if f == self.handle_call {
            if tag == self.reply && (n == 3 || n == 4) {
                return Some(2);
            }
        } else if f == self.init || f == self.code_change {
            return (tag == self.ok && (n == 2 || n == 3)).then_some(1);
        } else if f != self.handle_cast && f != self.handle_info && f != self.handle_continue {
            return None;
        }
        if tag == self.noreply && (n == 2 || n == 3) {
            Some(1)
        } else if tag == self.stop && (n == 3 || n == 4) {
            Some(n - 1)
        } else {
            None
        }
    }
}

/// A term's word and a cheap check of its shape (type and size), which two
/// different terms sharing a word across garbage collections would have to
/// match as well.
pub(crate) fn identity(env: *mut ErlNifEnv, t: ERL_NIF_TERM) -> (u64, u64) {
    // SAFETY: valid env and term for the whole callback.
    let ty = unsafe { enif_term_type(env, t) };
    let size: u64 = match ty {
        ErlNifTermType::ERL_NIF_TERM_TYPE_MAP => {
            let mut n = 0;
            // SAFETY: valid env and map; n is writable.
            unsafe { enif_get_map_size(env, t, &mut n) };
            n as u64
        }
        ErlNifTermType::ERL_NIF_TERM_TYPE_BITSTRING => {
            let mut bin = MaybeUninit::<ErlNifBinary>::uninit();
            // SAFETY: valid env and term; bin is only read on success.
            if unsafe { enif_inspect_binary(env, t, bin.as_mut_ptr()) } != 0 {
                // SAFETY: filled by the successful call above.
                unsafe { bin.assume_init() }.size as u64
            } else {
                u64::MAX
            }
        }
        _ => 0,
    };
    (t as u64, ((ty as u64) << 56) ^ size)
}

/// What one process's state capture stands at.
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    /// The state term the collector has as this process's latest recorded
    /// state (word, shape), if any.
    last: Option<(u64, u64)>,
    level: u8,
    callbacks: u64,
    /// This callback's state is not captured (sampled or off).
    skipping: bool,
    /// Tracer time of this process's state callbacks in the current window.
    window_ns: u64,
}

/// How to write the state of the event at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Encode it in full (with these limits: shallower when degraded).
    Encode { shallower: bool },
    /// It is the state already recorded: `'$es_state'`.
    Same,
    /// Not captured: `'$es_not_captured'`.
    Skip,
}

/// Every tracked process of a capture.
#[derive(Default)]
pub struct Tracks {
    map: Mutex<HashMap<u64, Track>>,
}

impl Tracks {
    fn with<R>(&self, pid: u64, f: impl FnOnce(&mut Track) -> R) -> R {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&pid) {
            // Keep the governor's degradations; forget what was recorded.
            map.retain(|_, t| t.level > 0);
            for t in map.values_mut() {
                t.last = None;
            }
        }
        f(map.entry(pid).or_default())
    }

    /// A state callback starts; its state argument is `state`.
    pub fn on_call(&self, pid: u64, state: Option<(u64, u64)>) -> Plan {
        self.with(pid, |t| {
            let level = Level::from_u8(t.level);
            let n = t.callbacks;
            t.callbacks += 1;
            t.skipping = match level {
                Level::Off => true,
                Level::Sampled => n % SAMPLE_EVERY != 0,
                _ => false,
            };
            if t.skipping {
                Plan::Skip
            } else if state.is_some() && t.last == state {
                Plan::Same
            } else {
                Plan::Encode {
                    shallower: level >= Level::Shallower,
                }
            }
        })
    }

    /// A state callback returns the state `state`.
    pub fn on_result(&self, pid: u64, state: (u64, u64)) -> Plan {
        self.with(pid, |t| {
            if t.skipping {
                Plan::Skip
            } else if t.last == Some(state) {
                Plan::Same
            } else {
                Plan::Encode {
                    shallower: t.level >= Level::Shallower as u8,
                }
            }
        })
    }

    /// The event carrying `state` (as planned) was pushed to the ring, or not;
    /// `ns` is what recording it cost.
    pub fn settle(&self, pid: u64, state: Option<(u64, u64)>, plan: Plan, pushed: bool, ns: u64) {
        self.with(pid, |t| {
            t.window_ns = t.window_ns.saturating_add(ns);
            t.last = match (plan, pushed) {
                (Plan::Skip, _) | (_, false) => None,
                (_, true) => state,
            };
        })
    }

    pub fn set_level(&self, pid: u64, level: Level) {
        self.with(pid, |t| t.level = t.level.max(level as u8));
    }

    /// The `n` processes whose state callbacks cost most in the window that
    /// ends now, with that cost, their callbacks so far and their level; every
    /// window starts again at zero.
    pub fn take_window(&self, n: usize) -> Vec<(u64, u64, u64, u8)> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut top: Vec<(u64, u64, u64, u8)> = map
            .iter()
            .filter(|(_, t)| t.window_ns > 0)
            .map(|(p, t)| (*p, t.window_ns, t.callbacks, t.level))
            .collect();
        for t in map.values_mut() {
            t.window_ns = 0;
        }
        top.sort_by_key(|t| std::cmp::Reverse(t.1));
        top.truncate(n);
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_state_is_written_once() {
        let t = Tracks::default();
        let s = Some((100, 7));
        assert_eq!(t.on_call(1, s), Plan::Encode { shallower: false });
        t.settle(1, s, Plan::Encode { shallower: false }, true, 10);
        assert_eq!(t.on_result(1, (100, 7)), Plan::Same);
        t.settle(1, s, Plan::Same, true, 10);
        assert_eq!(t.on_call(1, s), Plan::Same);
        // Not pushed: the next callback encodes it again.
        t.settle(1, s, Plan::Same, false, 10);
        assert_eq!(t.on_result(1, (100, 7)), Plan::Encode { shallower: false });
        // Same word, other shape (e.g. reused after a collection): encoded.
        t.settle(1, s, Plan::Encode { shallower: false }, true, 10);
        assert_eq!(
            t.on_call(1, Some((100, 8))),
            Plan::Encode { shallower: false }
        );
    }

    #[test]
    fn degraded_levels_shrink_then_sample_then_stop() {
        let t = Tracks::default();
        t.set_level(2, Level::Shallower);
        assert_eq!(t.on_call(2, Some((1, 1))), Plan::Encode { shallower: true });
        t.set_level(2, Level::Sampled);
        let plans: Vec<Plan> = (0..SAMPLE_EVERY)
            .map(|i| {
                let p = t.on_call(2, Some((i + 10, 1)));
                t.settle(2, Some((i + 10, 1)), p, true, 1);
                p
            })
            .collect();
        assert_eq!(plans.iter().filter(|p| **p != Plan::Skip).count(), 1);
        t.set_level(2, Level::Off);
        assert_eq!(t.on_call(2, Some((1, 1))), Plan::Skip);
        assert_eq!(t.on_result(2, (1, 1)), Plan::Skip);
        // Levels never go back down.
        t.set_level(2, Level::Full);
        assert_eq!(t.on_call(2, Some((1, 1))), Plan::Skip);
    }

    #[test]
    fn windows_name_the_costliest_processes_and_restart() {
        let t = Tracks::default();
        t.settle(1, None, Plan::Skip, true, 50);
        t.settle(2, None, Plan::Skip, true, 500);
        let w = t.take_window(1);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].0, w[0].1), (2, 500));
        assert!(t.take_window(4).is_empty());
    }
}
