//! Capture limits for payload terms and the markers that say what was cut.
//!
//! Every payload term (message, arguments, result, reason, state) is encoded
//! within these limits, and the walk stops where they are reached: it never
//! visits what it does not keep, so the cost of an event follows the limits,
//! not the size of the data. The markers are ordinary terms that the
//! collector's printer shows as `… 87530 more` (the same terms the process
//! tracer builds in `elixirscope_payload.erl`; `elixirscope_term::cut` reads
//! them):
//!
//! - a list, tuple or map cut after some elements ends with
//!   `{'$es_more', N}` (`N` more elements; `{'$es_more', N, at_least}` when the
//!   rest of a list was only counted up to a bound), a map with the pair
//!   `'$es_more' => N`;
//! - a container nested deeper than the depth limit keeps no element at all:
//!   `[{'$es_more', N, at_least}]`, `{{'$es_more', N}}`, `%{'$es_more' => N}`;
//! - a binary longer than the byte limit is `{'$es_bin', Prefix, TotalBytes}`.

use crate::etf;

/// The limits of one capture (or of one degraded process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Containers nested deeper than this keep no elements.
    pub depth: u32,
    /// Elements kept per list, tuple or map.
    pub elements: usize,
    /// Bytes kept per binary (and elements per list of bytes, a string).
    pub bytes: usize,
    /// Encoded bytes per event; past it every container closes at once.
    pub event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth: 12,
            elements: 64,
            bytes: 1024,
            event_bytes: 64 << 10,
        }
    }
}

impl Limits {
    /// The shallower limits of a degraded process (a quarter, at least a few).
    pub fn shallower(self) -> Limits {
        Limits {
            depth: (self.depth / 2).max(2),
            elements: (self.elements / 4).max(4),
            bytes: (self.bytes / 4).max(16),
            event_bytes: (self.event_bytes / 4).max(512),
        }
    }

    /// List cells counted past a cut, per event, to say how many more there
    /// were.
    pub fn count_budget(self) -> usize {
        self.elements.saturating_mul(16).max(256)
    }
}

pub const MORE: &str = "$es_more";
pub const BIN: &str = "$es_bin";
pub const AT_LEAST: &str = "at_least";

/// `{'$es_more', N}` or `{'$es_more', N, at_least}`.
pub fn more(out: &mut Vec<u8>, n: u64, exact: bool) {
    etf::tuple_header(out, if exact { 2 } else { 3 });
    etf::atom(out, MORE);
    etf::integer(out, n.min(i64::MAX as u64) as i64);
    if !exact {
        etf::atom(out, AT_LEAST);
    }
}

/// The `'$es_more'` key of a cut map (its value follows).
pub fn more_key(out: &mut Vec<u8>) {
    etf::atom(out, MORE);
}

/// `{'$es_bin', Prefix, Total}`.
pub fn cut_binary(out: &mut Vec<u8>, prefix: &[u8], total: usize) {
    etf::tuple_header(out, 3);
    etf::atom(out, BIN);
    etf::binary(out, prefix);
    etf::integer(out, total.min(i64::MAX as usize) as i64);
}

/// Room a container needs to close with a marker.
pub const CLOSE_RESERVE: usize = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_the_terms_the_process_tracer_builds() {
        let mut out = Vec::new();
        more(&mut out, 5, true);
        // {'$es_more', 5} with UTF-8 atoms, as term_to_binary/1 writes it from
        // OTP 26 (without the version byte); decoders read every atom form.
        let mut expected = vec![104, 2, 119, 8];
        expected.extend_from_slice(b"$es_more");
        expected.extend_from_slice(&[97, 5]);
        assert_eq!(out, expected);
        out.clear();
        cut_binary(&mut out, b"ab", 300);
        let mut expected = vec![104, 3, 119, 7];
        expected.extend_from_slice(b"$es_bin");
        expected.extend_from_slice(&[109, 0, 0, 0, 2, b'a', b'b', 98, 0, 0, 1, 44]);
        assert_eq!(out, expected);
    }

    #[test]
    fn shallower_limits_stay_useful() {
        let l = Limits::default().shallower();
        assert!(l.depth >= 2 && l.elements >= 4 && l.bytes >= 16);
        let tiny = Limits {
            depth: 1,
            elements: 1,
            bytes: 1,
            event_bytes: 10,
        }
        .shallower();
        assert_eq!((tiny.depth, tiny.elements, tiny.bytes), (2, 4, 16));
    }
}
