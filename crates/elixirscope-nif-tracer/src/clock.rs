//! Timestamps for events: the node's Erlang monotonic time in nanoseconds.
//!
//! `enif_monotonic_time` costs about 60 ns; the OS monotonic clock (vDSO) about
//! 20. The capture measures the offset between the two once at start and adds it
//! to every OS clock reading, so events carry the same time scale as the agent's
//! own timestamps.

/// The OS monotonic clock in nanoseconds.
pub fn os_monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_moves_forward() {
        let a = super::os_monotonic_ns();
        let b = super::os_monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
