//! The running capture as the NIF sees it: settings fixed at start, the active
//! flag every callback checks, the agent's own processes, the rings, and the
//! per-thread state (ring, scratch buffer, caches) of each scheduler.
//!
//! One capture runs at a time. Callbacks reach it through a thread-local copy
//! refreshed only when the global generation changes, so the hot path reads no
//! shared cache line that anyone writes.

use crate::cache::Caches;
use crate::limits::Limits;
use crate::redact::Rules;
use crate::ring::Ring;
use crate::state::{GenServerAtoms, Tracks};
use rustler::sys::{ErlNifPid, ERL_NIF_TERM};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A small set of term words, written rarely and read by every callback
/// without locks (up to 64 entries; more are ignored).
pub struct WordSet {
    words: [AtomicU64; 64],
    len: AtomicUsize,
}

impl Default for WordSet {
    fn default() -> Self {
        WordSet {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            len: AtomicUsize::new(0),
        }
    }
}

impl WordSet {
    pub fn insert(&self, word: u64) {
        if self.contains(word) {
            return;
        }
        let i = self.len.load(Ordering::Acquire);
        if i < self.words.len() {
            self.words[i].store(word, Ordering::Release);
            self.len.store(i + 1, Ordering::Release);
        }
    }

    pub fn contains(&self, word: u64) -> bool {
        let n = self.len.load(Ordering::Acquire).min(self.words.len());
        self.words[..n]
            .iter()
            .any(|w| w.load(Ordering::Relaxed) == word)
    }

    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }
}

/// Settings of one capture, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keep 1 in `sample` messages (by content) and calls (by process).
    pub sample: u32,
    /// Argument and result values captured.
    pub call_values: bool,
    pub rules: Rules,
    /// What payload terms keep.
    pub limits: Limits,
    /// Bytes per thread ring.
    pub ring_bytes: usize,
    /// Target size of one batch.
    pub batch_bytes: usize,
    /// Batches handed to the agent and not yet shipped, at most.
    pub max_inflight: u32,
    /// Events forwarded at most (budget), if any.
    pub max_events: Option<u64>,
    /// Discard every event in `enabled/3` (the benchmark's floor: the cost of
    /// having a tracer at all).
    pub discard_all: bool,
    /// Keep every event in `enabled/3` and do nothing in `trace/5` (the
    /// benchmark's measure of what the VM spends handing an event to a tracer).
    pub deliver_only: bool,
    /// Events younger than this wait for the next drain, so events from all
    /// threads arrive roughly in time order.
    pub hold_ns: i64,
}

/// A pid the callbacks can send to from any thread.
#[derive(Clone, Copy)]
pub struct Pid(pub ErlNifPid);
// SAFETY: an ErlNifPid is a plain term word naming a process; it holds no
// pointer into any environment and may be used from any thread.
unsafe impl Send for Pid {}
unsafe impl Sync for Pid {}

/// One capture.
pub struct Capture {
    pub generation: u64,
    pub settings: Settings,
    /// The agent's tracer process, which receives the batches.
    pub tracer: Pid,
    /// Cleared when the capture stops or trips; callbacks then record nothing.
    pub active: AtomicBool,
    /// Added to the OS monotonic clock to get Erlang monotonic time.
    pub clock_offset: i64,
    /// The agent's own processes: their events are never recorded. Written
    /// only by one thread at a time (the tracer process, or the scheduler of a
    /// process the agent spawned), so inserts do not race in practice; a lost
    /// insert would only let an agent process's events through.
    own: WordSet,
    /// Modules whose callbacks are kept whatever the sampling.
    pub state_modules: WordSet,
    /// Those of them that are gen_servers (their state is written once per change).
    pub gen_servers: WordSet,
    /// Per process: the state last recorded, degradation, cost.
    pub tracks: Tracks,
    /// Every thread's ring, in registration order.
    pub rings: Mutex<Vec<Arc<Ring>>>,
    pub rings_version: AtomicU64,
    /// Batches sent to the tracer process and not yet acknowledged by it.
    pub inflight: AtomicU32,
    /// Events forwarded to the tracer process.
    pub forwarded: AtomicU64,
    /// Events discarded after the event budget ran out.
    pub over_budget: AtomicU64,
    /// Set to make the drain thread finish.
    pub stopping: AtomicBool,
    /// Flush requests (tokens) for the drain thread.
    pub flushes: Mutex<Vec<u64>>,
}

impl Capture {
    pub fn new(
        generation: u64,
        settings: Settings,
        tracer: Pid,
        own: &[u64],
        clock_offset: i64,
    ) -> Capture {
        let c = Capture {
            generation,
            settings,
            tracer,
            active: AtomicBool::new(true),
            clock_offset,
            own: WordSet::default(),
            state_modules: WordSet::default(),
            gen_servers: WordSet::default(),
            tracks: Tracks::default(),
            rings: Mutex::new(Vec::new()),
            rings_version: AtomicU64::new(0),
            inflight: AtomicU32::new(0),
            forwarded: AtomicU64::new(0),
            over_budget: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            flushes: Mutex::new(Vec::new()),
        };
        for &p in own {
            c.add_own(p);
        }
        c
    }

    /// Declares a process the agent's own: its events are never recorded.
    pub fn add_own(&self, pid: u64) {
        self.own.insert(pid);
    }

    pub fn is_own(&self, pid: u64) -> bool {
        self.own.contains(pid)
    }

    /// Registers a new thread's ring.
    pub fn add_ring(&self) -> Arc<Ring> {
        let ring = Arc::new(Ring::new(self.settings.ring_bytes));
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings.push(ring.clone());
        self.rings_version.fetch_add(1, Ordering::Release);
        ring
    }

    pub fn rings(&self) -> Vec<Arc<Ring>> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Generation of the current capture (0: none yet). Read by every callback,
/// written only at start and stop.
pub static GENERATION: AtomicU64 = AtomicU64::new(0);
/// The current capture.
pub static CURRENT: Mutex<Option<Arc<Capture>>> = Mutex::new(None);

/// What each thread keeps between callbacks.
#[derive(Default)]
pub struct Local {
    pub generation: u64,
    pub capture: Option<Arc<Capture>>,
    pub ring: Option<Arc<Ring>>,
    pub scratch: Vec<u8>,
    pub caches: Caches,
}

thread_local! {
    pub static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

impl Local {
    /// Brings this thread up to the current capture; returns it if one runs.
    pub fn refresh(&mut self) -> Option<&Arc<Capture>> {
        let g = GENERATION.load(Ordering::Acquire);
        if g != self.generation {
            let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
            self.generation = current.as_ref().map(|c| c.generation).unwrap_or(g);
            self.capture = current;
            self.ring = None;
            self.caches = Caches::default();
            self.scratch = Vec::new();
        }
        self.capture.as_ref()
    }

    /// Makes sure this thread has a ring in the current capture.
    pub fn ensure_ring(&mut self) -> bool {
        if self.ring.is_none() {
            let Some(c) = self.capture.as_ref() else {
                return false;
            };
            self.ring = Some(c.add_ring());
        }
        true
    }
}

/// Term words of the atoms the callbacks compare against, made once at load.
#[derive(Debug, Clone, Copy)]
pub struct Atoms {
    pub trace_ts: ERL_NIF_TERM,
    pub trace: ERL_NIF_TERM,
    pub discard: ERL_NIF_TERM,
    pub remove: ERL_NIF_TERM,
    pub trace_status: ERL_NIF_TERM,
    pub send: ERL_NIF_TERM,
    pub send_to_non_existing_process: ERL_NIF_TERM,
    pub receive: ERL_NIF_TERM,
    pub call: ERL_NIF_TERM,
    pub return_from: ERL_NIF_TERM,
    pub exception_from: ERL_NIF_TERM,
    pub spawn: ERL_NIF_TERM,
    pub spawned: ERL_NIF_TERM,
    pub exit: ERL_NIF_TERM,
    pub unregister: ERL_NIF_TERM,
    pub extra: ERL_NIF_TERM,
    pub struct_key: ERL_NIF_TERM,
    pub boot_name: ERL_NIF_TERM,
    pub ok: ERL_NIF_TERM,
    pub undefined: ERL_NIF_TERM,
    pub gen_server: GenServerAtoms,
}

pub static ATOMS: std::sync::OnceLock<Atoms> = std::sync::OnceLock::new();
