//! The event model: what one recorded event is, independent of how it is stored.
//!
//! Every event has an id (its position in the session), a timestamp in
//! nanoseconds since the Unix epoch (the node's monotonic clock plus that node's
//! time offset, so events of several nodes line up), the node it happened on, a
//! kind, and up to two processes, one MFA, one related event, one number and two
//! payload terms (external term format bodies, stored untouched). What each field
//! means per kind is documented on [`EventKind`].

use serde::{Deserialize, Serialize};

/// Dictionary id of an atom, process, MFA or node. `0` means "none".
pub type DictId = u32;
/// Event id: position of the event in its session, starting at 0.
pub type EventId = u64;

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $name:ident = $val:expr, $text:expr; )*) => {
        /// What happened. Field meanings per kind are given on each variant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum EventKind {
            $( $(#[$doc])* $name = $val, )*
        }

        impl EventKind {
            /// Every kind, in id order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name),*];

            /// The kind with this stored id.
            pub fn from_u8(v: u8) -> Option<EventKind> {
                match v {
                    $( $val => Some(EventKind::$name), )*
                    _ => None,
                }
            }

            /// The name used on the command line and in JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $( EventKind::$name => $text, )*
                }
            }

            /// Parses a name as printed by [`EventKind::name`].
            pub fn parse(text: &str) -> Option<EventKind> {
                match text {
                    $( $text => Some(EventKind::$name), )*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    /// `pid` spawned `peer`; `mfa` is the initial call, `term` its argument list.
    Spawn = 1, "spawn";
    /// `pid` exited; `term` is the exit reason.
    Exit = 2, "exit";
    /// `pid` linked to `peer`; `aux` = 1 when `pid` was the passive side (getting_linked).
    Link = 3, "link";
    /// `pid` unlinked from `peer`; `aux` = 1 for the passive side.
    Unlink = 4, "unlink";
    /// `pid` registered the name in `term` (an atom).
    Register = 5, "register";
    /// `pid` unregistered the name in `term`.
    Unregister = 6, "unregister";
    /// `pid` sent `term` to `peer` (0 if the destination is not a known pid; then
    /// `term2` holds the destination as given). `link` → the matching receive when
    /// the receive was stored first.
    Send = 7, "send";
    /// `pid` sent `term` to `peer`, which no longer exists.
    SendToDead = 8, "send_to_dead";
    /// `pid` got `term` in its mailbox; `link` → the matching send, `peer` = sender.
    Receive = 9, "receive";
    /// `pid` called `mfa` with argument list `term`; `aux` = stack depth;
    /// `link` → the receive whose message this callback handles, when known.
    Call = 10, "call";
    /// `mfa` returned `term` to `pid`; `link` → the call, `aux` = duration in ns.
    Return = 11, "return";
    /// `mfa` raised in `pid`; `term` = `{class, reason}`, `link` → the call,
    /// `aux` = duration in ns.
    Exception = 12, "exception";
    /// `pid`'s behaviour state after callback `mfa`: `term` = new state;
    /// `link` → the callback's call event; `aux` holds [`state_flags`]
    /// (1 = the state did not change).
    State = 13, "state";
    /// `pid` started monitoring `peer` (or the name in `term2`).
    Monitor = 14, "monitor";
    /// `pid` removed a monitor.
    Demonitor = 15, "demonitor";
    /// `pid` existed when capture started: `peer` = parent, `mfa` = initial call,
    /// `term` = map with registered name, links, monitors and dictionary facts.
    ProcessInfo = 16, "process_info";
    /// `pid`'s state read directly (not from a callback); `term` = state.
    StateSnapshot = 17, "state_snapshot";
    /// The agent dropped `aux` events (sampling excluded): never silent.
    Dropped = 18, "dropped";
    /// Capture stopped itself: `term` = reason; no automatic resume.
    Trip = 19, "trip";
    /// Capture started on `node`; `term` = capture settings as the agent saw them.
    CaptureStart = 20, "capture_start";
    /// Capture ended on `node`; `term` = agent statistics.
    CaptureStop = 21, "capture_stop";
    /// A module was loaded during capture; `term` = module name.
    ModuleLoad = 22, "module_load";
    /// The capture of `pid`'s state was degraded to protect the node: `aux` =
    /// level (1 shallower limits, 2 one callback in 16, 3 not captured),
    /// `term` = why (a binary).
    Degrade = 23, "degrade";
}

/// Bits of a `state` event's `aux`.
pub mod state_flags {
    /// The state did not change: the callback returned the very term it was
    /// given, or before and after are equal and neither was cut.
    pub const UNCHANGED: u64 = 1;
    /// Before and after are equal as far as they were kept, but the capture
    /// limits cut them: what was cut may have changed.
    pub const UNSURE: u64 = 2;
    /// The capture limits cut this state (markers say what and how much).
    pub const TRUNCATED: u64 = 4;
    /// The state before the callback was not recorded (events were dropped),
    /// so whether it changed is not known.
    pub const BEFORE_UNKNOWN: u64 = 8;
}

impl EventKind {
    /// Bit of this kind in a block's kind mask.
    pub fn bit(self) -> u32 {
        1u32 << (self as u8 as u32 % 32)
    }

    /// Kinds that sampling never drops.
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            EventKind::Spawn
                | EventKind::Exit
                | EventKind::Exception
                | EventKind::Dropped
                | EventKind::Trip
                | EventKind::CaptureStart
                | EventKind::CaptureStop
                | EventKind::ProcessInfo
                | EventKind::Degrade
        )
    }
}

/// An event to append (ids are assigned by the writer).
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub ts: i64,
    pub kind: EventKind,
    pub node: DictId,
    pub pid: DictId,
    pub peer: DictId,
    pub mfa: DictId,
    pub link: Option<EventId>,
    pub aux: u64,
    pub term: Option<&'a [u8]>,
    pub term2: Option<&'a [u8]>,
}

impl<'a> NewEvent<'a> {
    /// An event with only time, kind, node and process set.
    pub fn new(ts: i64, kind: EventKind, node: DictId, pid: DictId) -> NewEvent<'a> {
        NewEvent {
            ts,
            kind,
            node,
            pid,
            peer: 0,
            mfa: 0,
            link: None,
            aux: 0,
            term: None,
            term2: None,
        }
    }
}

/// A stored event, borrowing its payload terms from a decoded block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub id: EventId,
    pub ts: i64,
    pub kind: EventKind,
    pub node: DictId,
    pub pid: DictId,
    pub peer: DictId,
    pub mfa: DictId,
    pub link: Option<EventId>,
    pub aux: u64,
    pub term: Option<&'a [u8]>,
    pub term2: Option<&'a [u8]>,
}

impl Event<'_> {
    /// Whether `pid` is the subject or the peer of this event.
    pub fn involves(&self, pid: DictId) -> bool {
        self.pid == pid || self.peer == pid
    }
}

/// A process identifier as stored in the dictionary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PidEntry {
    /// Node id (dictionary).
    pub node: DictId,
    pub number: u32,
    pub serial: u32,
    pub creation: u32,
}

/// A module/function/arity triple as stored in the dictionary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MfaEntry {
    /// Module atom id.
    pub module: DictId,
    /// Function atom id.
    pub function: DictId,
    pub arity: u8,
}
