//! Per-thread event rings: one producer (the scheduler thread that runs the
//! trace callbacks) and one consumer (the drain thread).
//!
//! Each ring is a fixed block of bytes allocated once, the first time its thread
//! records an event. Records are `[u32 length][i64 timestamp][ETF bytes]`,
//! wrapping around the end. The producer owns `head`, the consumer owns `tail`,
//! each on its own cache line; the producer keeps a private copy of the tail and
//! only reads the shared one when the ring looks full, so in the steady state
//! no cache line moves between the two threads except the one being handed over.
//! A full ring drops the record and counts it: a scheduler never waits.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Bytes in front of every record: length and timestamp.
pub const HEADER: usize = 12;

/// Keeps a value on its own cache line (two, against adjacent-line prefetch).
#[repr(align(128))]
pub struct Padded<T>(pub T);

/// What the producer alone writes: its position, its counters and its busy flag.
pub struct ProducerSide {
    head: AtomicUsize,
    /// Producer-private copy of the consumer's tail.
    cached_tail: UnsafeCell<usize>,
    /// Set while a trace callback is using the ring (see [`Ring::enter`]).
    busy: AtomicBool,
    pub dropped: AtomicU64,
    pub recorded: AtomicU64,
    pub sampled_out: AtomicU64,
    /// Events in which the capture limits cut something.
    pub cut: AtomicU64,
    /// Nanoseconds the trace callbacks of this thread spent recording.
    pub busy_ns: AtomicU64,
    /// Events this thread considered for timing (see `callbacks`).
    pub timing: AtomicU64,
    /// Values redacted, per rule (see `redact::Rule`).
    pub redacted: [AtomicU64; 6],
}

/// A single-producer single-consumer byte ring.
pub struct Ring {
    buf: UnsafeCell<Option<Box<[u8]>>>,
    mask: usize,
    producer: Padded<ProducerSide>,
    tail: Padded<AtomicUsize>,
}

// SAFETY: the buffer is written only by the producer between `head` and the
// consumer's `tail`, and read only by the consumer between `tail` and a `head`
// it loaded with Acquire; positions are published with Release. The buffer is
// released only by `release`, whose caller guarantees no producer is inside
// (see `enter`).
unsafe impl Sync for Ring {}
unsafe impl Send for Ring {}

impl Ring {
    /// A ring of at least `bytes` (rounded up to a power of two, at least 64 KiB).
    pub fn new(bytes: usize) -> Ring {
        let cap = bytes.max(1 << 16).next_power_of_two();
        Ring {
            buf: UnsafeCell::new(Some(vec![0u8; cap].into_boxed_slice())),
            mask: cap - 1,
            producer: Padded(ProducerSide {
                head: AtomicUsize::new(0),
                cached_tail: UnsafeCell::new(0),
                busy: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
                recorded: AtomicU64::new(0),
                sampled_out: AtomicU64::new(0),
                cut: AtomicU64::new(0),
                busy_ns: AtomicU64::new(0),
                timing: AtomicU64::new(0),
                redacted: Default::default(),
            }),
            tail: Padded(AtomicUsize::new(0)),
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The producer's counters.
    pub fn counters(&self) -> &ProducerSide {
        &self.producer.0
    }

    /// Marks the producer as inside; the caller must check that the capture is
    /// still active *after* this (the releasing side clears `active` first and
    /// then waits for `busy` to fall), and call [`Ring::leave`] when done.
    pub fn enter(&self) {
        self.producer.0.busy.store(true, Ordering::SeqCst);
    }

    /// The producer is done with the ring.
    pub fn leave(&self) {
        self.producer.0.busy.store(false, Ordering::Release);
    }

    /// Whether a producer is inside.
    pub fn is_busy(&self) -> bool {
        self.producer.0.busy.load(Ordering::SeqCst)
    }

    /// Whether fewer than `bytes` are free (refreshing the producer's copy of
    /// the consumer's position only when it looks so). Producer only.
    pub fn nearly_full(&self, bytes: usize) -> bool {
        let p = &self.producer.0;
        let head = p.head.load(Ordering::Relaxed);
        // SAFETY: cached_tail is touched only by the single producer thread.
        let cached = unsafe { &mut *p.cached_tail.get() };
        if head + bytes - *cached <= self.capacity() {
            return false;
        }
        *cached = self.tail.0.load(Ordering::Acquire);
        head + bytes - *cached > self.capacity()
    }

    /// Adds one to a counter only this ring's producer writes (no locked
    /// read-modify-write needed).
    pub fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Appends one record; false (and counted as dropped) when it does not fit.
    /// Producer only, between `enter` and `leave`.
    pub fn push(&self, ts: i64, record: &[u8]) -> bool {
        let p = &self.producer.0;
        let need = HEADER + record.len();
        if self.nearly_full(need) {
            Ring::bump(&p.dropped);
            return false;
        }
        let head = p.head.load(Ordering::Relaxed);
        // SAFETY: the buffer is present while the capture is active (the caller
        // is between enter and leave), and the bytes from head to head + need
        // are free: the consumer reads only below head.
        let Some(buf) = (unsafe { &mut *self.buf.get() }) else {
            return false;
        };
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&ts.to_le_bytes());
        copy_in(buf, self.mask, head, &header);
        copy_in(buf, self.mask, head + HEADER, record);
        p.head.store(head + need, Ordering::Release);
        Ring::bump(&p.recorded);
        true
    }

    /// Moves records with a timestamp below `cutoff` into `out` (ETF bytes only,
    /// back to back), at most `max_records` of them; returns how many. Consumer only.
    pub fn drain(&self, cutoff: i64, max_records: usize, out: &mut Vec<u8>) -> usize {
        let head = self.producer.0.head.load(Ordering::Acquire);
        let mut tail = self.tail.0.load(Ordering::Relaxed);
        // SAFETY: the consumer reads only between tail and the head it loaded
        // with Acquire, which the producer has finished writing; the buffer is
        // present until `release`, which runs after the drain thread stopped.
        let Some(buf) = (unsafe { &*self.buf.get() }) else {
            return 0;
        };
        let mut n = 0;
        while tail < head && n < max_records {
            let mut header = [0u8; HEADER];
            copy_out(buf, self.mask, tail, &mut header);
            let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
            let ts = i64::from_le_bytes(header[4..].try_into().unwrap());
            if ts >= cutoff {
                break;
            }
            let at = out.len();
            out.resize(at + len, 0);
            copy_out(buf, self.mask, tail + HEADER, &mut out[at..]);
            tail += HEADER + len;
            n += 1;
        }
        self.tail.0.store(tail, Ordering::Release);
        n
    }

    /// Bytes waiting to be drained.
    pub fn pending_bytes(&self) -> usize {
        self.producer.0.head.load(Ordering::Acquire) - self.tail.0.load(Ordering::Acquire)
    }

    /// Frees the buffer.
    ///
    /// # Safety
    /// No producer may be inside (`is_busy` false after the capture was made
    /// inactive) and the consumer must have stopped.
    pub unsafe fn release(&self) {
        // SAFETY: guaranteed by the caller: nobody else uses the buffer now.
        unsafe { *self.buf.get() = None };
    }
}

fn copy_in(buf: &mut [u8], mask: usize, pos: usize, bytes: &[u8]) {
    let start = pos & mask;
    let first = bytes.len().min(buf.len() - start);
    buf[start..start + first].copy_from_slice(&bytes[..first]);
    buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
}

fn copy_out(buf: &[u8], mask: usize, pos: usize, out: &mut [u8]) {
    let start = pos & mask;
    let first = out.len().min(buf.len() - start);
    out[..first].copy_from_slice(&buf[start..start + first]);
    let rest = out.len() - first;
    out[first..].copy_from_slice(&buf[..rest]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_wrap_around_and_come_out_whole_and_in_order() {
        let ring = Ring::new(1 << 16);
        let mut out = Vec::new();
        let mut expected = Vec::new();
        for round in 0..200u32 {
            for i in 0..50u32 {
                let rec: Vec<u8> = (0..(i * 7 + round) % 300).map(|b| b as u8).collect();
                assert!(ring.push((round * 100 + i) as i64, &rec));
                expected.extend_from_slice(&rec);
            }
            ring.drain(i64::MAX, usize::MAX, &mut out);
        }
        assert_eq!(out, expected);
        assert_eq!(ring.pending_bytes(), 0);
    }

    #[test]
    fn a_full_ring_drops_and_counts() {
        let ring = Ring::new(1 << 16);
        let rec = vec![7u8; 1000];
        let mut pushed = 0;
        while ring.push(1, &rec) {
            pushed += 1;
        }
        assert_eq!(pushed, (1 << 16) / (1000 + HEADER));
        assert!(!ring.push(1, &rec));
        assert_eq!(ring.counters().dropped.load(Ordering::Relaxed), 2);
        let mut out = Vec::new();
        assert_eq!(ring.drain(i64::MAX, 3, &mut out), 3);
        assert!(ring.push(1, &rec));
    }

    #[test]
    fn records_at_or_after_the_cutoff_wait() {
        let ring = Ring::new(1 << 16);
        ring.push(10, b"a");
        ring.push(20, b"b");
        ring.push(30, b"c");
        let mut out = Vec::new();
        assert_eq!(ring.drain(20, usize::MAX, &mut out), 1);
        assert_eq!(out, b"a");
        assert_eq!(ring.drain(i64::MAX, usize::MAX, &mut out), 2);
        assert_eq!(out, b"abc");
    }

    #[test]
    fn producer_and_consumer_on_two_threads_lose_nothing() {
        let ring = std::sync::Arc::new(Ring::new(1 << 16));
        let r = ring.clone();
        let producer = std::thread::spawn(move || {
            let mut sent = 0u64;
            let mut i = 0u64;
            while sent < 200_000 {
                if r.push(i as i64, &i.to_le_bytes()) {
                    sent += 1;
                    i += 1;
                }
            }
        });
        let mut out = Vec::new();
        while out.len() < 200_000 * 8 {
            ring.drain(i64::MAX, usize::MAX, &mut out);
        }
        producer.join().unwrap();
        for (i, chunk) in out.chunks(8).enumerate() {
            assert_eq!(u64::from_le_bytes(chunk.try_into().unwrap()), i as u64);
        }
    }
}
