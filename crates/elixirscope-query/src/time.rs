//! Moments in a session: `+1.5s` from the start, RFC 3339 times, event ids.

use crate::{QueryError, Session};
use serde::Serialize;

/// A moment: everything with a timestamp at or before `ts` — or, when the moment
/// was given as an event id, everything up to and including that event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cursor {
    /// Wall-clock nanoseconds since the Unix epoch.
    pub ts: i64,
    /// Set when the moment is an event id.
    pub id: Option<u64>,
}

impl Cursor {
    /// The moment after every event.
    pub const END: Cursor = Cursor {
        ts: i64::MAX,
        id: None,
    };

    /// The moment just after this one: the next event id, or the next nanosecond.
    pub fn after(&self) -> Cursor {
        match self.id {
            Some(id) => Cursor {
                ts: self.ts,
                id: Some(id + 1),
            },
            None => Cursor {
                ts: self.ts.saturating_add(1),
                id: None,
            },
        }
    }

    /// The moment just before this one; none before the first event.
    pub fn before(&self) -> Option<Cursor> {
        match self.id {
            Some(0) => None,
            Some(id) => Some(Cursor {
                ts: self.ts,
                id: Some(id - 1),
            }),
            None => Some(Cursor {
                ts: self.ts.saturating_sub(1),
                id: None,
            }),
        }
    }

    /// Whether an event at `ts` with id `id` has happened by this moment.
    pub fn includes(&self, ts: i64, id: u64) -> bool {
        match self.id {
            Some(max) => id <= max,
            None => ts <= self.ts,
        }
    }
}

/// Parses a duration like `1.5s`, `250ms`, `2m`, `1h`, `10us`, `5ns` into ns.
pub fn parse_duration_ns(text: &str) -> Option<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let ns = value * scale;
    (ns.is_finite() && ns < 9.2e18).then_some(ns.round() as i64)
}

impl Session {
    /// Parses a moment given on the command line.
    pub fn parse_time(&self, text: &str) -> Result<Cursor, QueryError> {
        let t = text.trim();
        let bad = || QueryError::BadTime(text.to_owned());
        match t {
            "end" | "now" => return Ok(Cursor::END),
            "start" => {
                return Ok(Cursor {
                    ts: self.start_ns(),
                    id: None,
                })
            }
            _ => {}
        }
        if let Some(rel) = t.strip_prefix('+') {
            let ns = parse_duration_ns(rel).ok_or_else(bad)?;
            return Ok(Cursor {
                ts: self.start_ns().saturating_add(ns),
                id: None,
            });
        }
        if let Ok(id) = t.strip_prefix('#').unwrap_or(t).parse::<u64>() {
            let total = self.reader().total_events();
            let ts = self
                .reader()
                .with_event(id, |e| e.ts)
                .ok_or(QueryError::NoSuchEvent { id, total })?;
            return Ok(Cursor { ts, id: Some(id) });
        }
        if let Some(ns) = parse_duration_ns(t) {
            return Ok(Cursor {
                ts: self.start_ns().saturating_add(ns),
                id: None,
            });
        }
        let when = humantime::parse_rfc3339_weak(t).map_err(|_| bad())?;
        let ns = when
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| bad())?
            .as_nanos();
        Ok(Cursor {
            ts: i64::try_from(ns).map_err(|_| bad())?,
            id: None,
        })
    }

    /// `+1.234567s` relative to the session start.
    pub fn relative(&self, ts: i64) -> String {
        let d = ts - self.start_ns();
        format!(
            "{}{:.6}s",
            if d < 0 { "-" } else { "+" },
            (d.unsigned_abs() as f64) / 1e9
        )
    }

    /// RFC 3339 with nanoseconds, UTC.
    pub fn wall(&self, ts: i64) -> String {
        let secs = ts.div_euclid(1_000_000_000);
        let nanos = ts.rem_euclid(1_000_000_000);
        let base = elixirscope_store::session::rfc3339_from_unix(secs);
        format!("{}.{nanos:09}Z", base.trim_end_matches('Z'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("250ms"), Some(250_000_000));
        assert_eq!(parse_duration_ns("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration_ns("7"), None);
        assert_eq!(parse_duration_ns("1.5 parsecs"), None);
        assert_eq!(parse_duration_ns("1e400s"), None);
    }

    #[test]
    fn cursor_by_id_is_exact() {
        let c = Cursor {
            ts: 100,
            id: Some(5),
        };
        assert!(c.includes(1_000, 5));
        assert!(!c.includes(0, 6));
        assert!(Cursor { ts: 100, id: None }.includes(100, 9));
    }
}
