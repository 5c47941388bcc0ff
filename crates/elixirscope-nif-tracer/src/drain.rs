//! The drain thread: empties every thread's ring into batches and sends each
//! batch to the agent's tracer process, which ships it to the collector with the
//! same frames, sequence numbers and acknowledgements as the process tracer's.
//!
//! A batch is the external term format of the list of trace messages a process
//! tracer would have received (`[{trace_ts, Pid, Tag, ..., Ts}]`), so the
//! collector cannot tell the two tracers apart. Events younger than the hold
//! time wait for the next pass, so events recorded on different schedulers
//! leave in time order. At most `max_inflight` batches wait in the tracer's
//! mailbox; beyond that the rings fill and their producers drop and count.

use crate::capture::Capture;
use crate::clock::os_monotonic_ns;
use crate::etf;
use rustler::sys::{
    enif_alloc_binary, enif_alloc_env, enif_free_env, enif_make_atom_len, enif_make_binary,
    enif_make_tuple_from_array, enif_make_uint64, enif_send, ErlNifBinary, ERL_NIF_TERM,
};
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A batch goes out when it is this old, even if small.
const MAX_AGE: Duration = Duration::from_millis(5);

/// Starts the drain thread of `cap`.
pub fn spawn(cap: Arc<Capture>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("elixirscope_drain".into())
        .spawn(move || {
            let c = cap.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&c))).is_err() {
                // Fail safe: record nothing more.
                cap.active.store(false, Ordering::SeqCst);
            }
        })
}

struct Batch {
    bytes: Vec<u8>,
    count: u64,
    since: Option<Instant>,
}

impl Batch {
    fn new(capacity: usize) -> Batch {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(&[etf::LIST, 0, 0, 0, 0]);
        Batch {
            bytes,
            count: 0,
            since: None,
        }
    }

    fn reset(&mut self) {
        self.bytes.truncate(5);
        self.count = 0;
        self.since = None;
    }
}

fn run(cap: &Capture) {
    let s = &cap.settings;
    let mut batch = Batch::new(s.batch_bytes + (64 << 10));
    let mut discard = Vec::new();
    let mut rings = cap.rings();
    let mut version = cap.rings_version.load(Ordering::Acquire);
    loop {
        let stopping = cap.stopping.load(Ordering::Acquire);
        let flushes: Vec<u64> =
            std::mem::take(&mut *cap.flushes.lock().unwrap_or_else(|e| e.into_inner()));
        let everything = stopping || !flushes.is_empty();
        let v = cap.rings_version.load(Ordering::Acquire);
        if v != version {
            rings = cap.rings();
            version = v;
        }
        if !everything && cap.inflight.load(Ordering::Acquire) >= s.max_inflight {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let cutoff = if everything {
            i64::MAX
        } else {
            os_monotonic_ns() + cap.clock_offset - s.hold_ns
        };
        let mut moved = 0;
        for ring in &rings {
            loop {
                let room = remaining_budget(cap, batch.count);
                if room == 0 {
                    // Budget spent: nothing more is recorded or forwarded.
                    cap.active.store(false, Ordering::SeqCst);
                    discard.clear();
                    let n = ring.drain(i64::MAX, usize::MAX, &mut discard);
                    cap.over_budget.fetch_add(n as u64, Ordering::Relaxed);
                    break;
                }
                let n = ring.drain(cutoff, room.min(4096) as usize, &mut batch.bytes);
                if n == 0 {
                    break;
                }
                moved += n;
                batch.count += n as u64;
                batch.since.get_or_insert_with(Instant::now);
                if batch.bytes.len() >= s.batch_bytes && !send(cap, &mut batch) {
                    return;
                }
            }
        }
        let old = batch.since.is_some_and(|t| t.elapsed() >= MAX_AGE);
        if batch.count > 0 && (everything || old) && !send(cap, &mut batch) {
            return;
        }
        for token in flushes {
            send_flushed(cap, token);
        }
        if stopping {
            return;
        }
        if moved == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Events that may still be forwarded, counting those already in the batch.
fn remaining_budget(cap: &Capture, in_batch: u64) -> u64 {
    match cap.settings.max_events {
        None => u64::MAX,
        Some(max) => max.saturating_sub(cap.forwarded.load(Ordering::Relaxed) + in_batch),
    }
}

/// Dropped events over all rings.
pub fn dropped(cap: &Capture) -> u64 {
    cap.rings()
        .iter()
        .map(|r| r.counters().dropped.load(Ordering::Relaxed))
        .sum()
}

/// Sends `{es_nif_batch, Events, Count, DroppedSoFar}` to the tracer process;
/// false when the tracer process is gone (the capture then records nothing
/// more and the drain thread ends).
fn send(cap: &Capture, batch: &mut Batch) -> bool {
    let count = batch.count;
    let n = count as u32;
    batch.bytes[1..5].copy_from_slice(&n.to_be_bytes());
    batch.bytes.push(etf::NIL);
    let dropped = dropped(cap);
    // SAFETY: a fresh process-independent environment holds the message; the
    // binary is allocated at the batch's size and filled before it becomes a
    // term; enif_send with a NULL caller env is allowed from a non-scheduler
    // thread; the environment is freed after sending (the message was copied).
    let sent = unsafe {
        let env = enif_alloc_env();
        let mut bin = MaybeUninit::<ErlNifBinary>::uninit();
        let ok = if enif_alloc_binary(batch.bytes.len(), bin.as_mut_ptr()) != 0 {
            let mut bin = bin.assume_init();
            std::ptr::copy_nonoverlapping(batch.bytes.as_ptr(), bin.data, batch.bytes.len());
            let elems: [ERL_NIF_TERM; 4] = [
                atom(env, "es_nif_batch"),
                enif_make_binary(env, &mut bin),
                enif_make_uint64(env, count),
                enif_make_uint64(env, dropped),
            ];
            let msg = enif_make_tuple_from_array(env, elems.as_ptr(), 4);
            enif_send(std::ptr::null_mut(), &cap.tracer.0, env, msg) != 0
        } else {
            false
        };
        enif_free_env(env);
        ok
    };
    if sent {
        cap.inflight.fetch_add(1, Ordering::AcqRel);
        cap.forwarded.fetch_add(count, Ordering::Relaxed);
    } else {
        cap.active.store(false, Ordering::SeqCst);
        cap.over_budget.fetch_add(count, Ordering::Relaxed);
    }
    batch.reset();
    sent
}

/// Tells the tracer process that everything recorded before `token` was asked
/// for has been sent.
fn send_flushed(cap: &Capture, token: u64) {
    // SAFETY: as in `send`: own environment, NULL caller env, freed after sending.
    unsafe {
        let env = enif_alloc_env();
        let elems: [ERL_NIF_TERM; 2] = [atom(env, "es_nif_flushed"), enif_make_uint64(env, token)];
        let msg = enif_make_tuple_from_array(env, elems.as_ptr(), 2);
        enif_send(std::ptr::null_mut(), &cap.tracer.0, env, msg);
        enif_free_env(env);
    }
}

/// # Safety
/// `env` must be a valid environment.
unsafe fn atom(env: *mut rustler::sys::ErlNifEnv, name: &str) -> ERL_NIF_TERM {
    // SAFETY: env is valid (caller); the name is ASCII and its length given.
    unsafe { enif_make_atom_len(env, name.as_ptr() as *const _, name.len()) }
}
