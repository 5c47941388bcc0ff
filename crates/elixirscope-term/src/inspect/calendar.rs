//! Calendar structs: `Date`, `Time`, `NaiveDateTime` and `DateTime` as
//! sigils (`~D[...]`, `~U[...]`, `#DateTime<...>`), `Date.Range`, and the
//! `Calendar.ISO` formatting behind them.

use std::fmt::Write as _;

use super::printer::Printer;
use super::structs::{field_value, struct_module};
use crate::Term;

impl Printer<'_> {
    pub(super) fn sigil_out(&mut self, open: &str, body: Option<String>, close: &str) -> bool {
        match body {
            Some(body) => {
                self.out.push_str(open);
                self.out.push_str(&body);
                self.out.push_str(close);
                true
            }
            None => false,
        }
    }

    pub(super) fn date_time(&mut self, entries: &[(Term, Term)]) -> bool {
        let Some(body) = datetime_iso(entries) else {
            return false;
        };
        let utc = field_value(entries, "utc_offset") == Some(&Term::Integer(0))
            && field_value(entries, "std_offset") == Some(&Term::Integer(0))
            && field_value(entries, "time_zone") == Some(&Term::string("Etc/UTC"));
        if utc {
            let _ = write!(self.out, "~U[{body}]");
        } else {
            let _ = write!(self.out, "#DateTime<{body}>");
        }
        true
    }

    pub(super) fn date_range(&mut self, entries: &[(Term, Term)]) -> bool {
        let first = field_value(entries, "first").and_then(date_struct_iso);
        let last = field_value(entries, "last").and_then(date_struct_iso);
        let step = field_value(entries, "step").and_then(Term::as_i64);
        let (Some(first), Some(last), Some(step)) = (first, last, step) else {
            return false;
        };
        let _ = write!(self.out, "Date.range(~D[{first}], ~D[{last}]");
        if step != 1 {
            let _ = write!(self.out, ", {step}");
        }
        self.out.push(')');
        true
    }
}

fn int_field(entries: &[(Term, Term)], name: &str) -> Option<i64> {
    field_value(entries, name).and_then(Term::as_i64)
}

fn is_iso_calendar(entries: &[(Term, Term)]) -> bool {
    field_value(entries, "calendar").and_then(Term::as_atom) == Some("Elixir.Calendar.ISO")
}

/// `Calendar.ISO`'s zero padding (a minus sign precedes the padded digits).
fn zero_pad(value: i64, width: usize) -> String {
    if value < 0 {
        format!("-{:0width$}", value.unsigned_abs())
    } else {
        format!("{value:0width$}")
    }
}

pub(super) fn date_iso(entries: &[(Term, Term)]) -> Option<String> {
    if !is_iso_calendar(entries) {
        return None;
    }
    let year = int_field(entries, "year")?;
    let month = int_field(entries, "month")?;
    let day = int_field(entries, "day")?;
    Some(format!(
        "{}-{}-{}",
        zero_pad(year, 4),
        zero_pad(month, 2),
        zero_pad(day, 2)
    ))
}

fn date_struct_iso(t: &Term) -> Option<String> {
    match t {
        Term::Map(entries) if struct_module(entries) == Some("Elixir.Date") => date_iso(entries),
        _ => None,
    }
}

pub(super) fn time_iso(entries: &[(Term, Term)]) -> Option<String> {
    if !is_iso_calendar(entries) {
        return None;
    }
    time_part(entries)
}

fn time_part(entries: &[(Term, Term)]) -> Option<String> {
    let hour = int_field(entries, "hour").filter(|h| (0..=23).contains(h))?;
    let minute = int_field(entries, "minute").filter(|m| (0..=59).contains(m))?;
    let second = int_field(entries, "second").filter(|s| (0..=59).contains(s))?;
    let (micro, precision) = match field_value(entries, "microsecond")?.as_tuple()? {
        [Term::Integer(v), Term::Integer(p)]
            if (0..=999_999).contains(v) && (0..=6).contains(p) =>
        {
            (*v, *p as usize)
        }
        _ => return None,
    };
    let mut s = format!(
        "{}:{}:{}",
        zero_pad(hour, 2),
        zero_pad(minute, 2),
        zero_pad(second, 2)
    );
    if precision > 0 {
        s.push('.');
        s.push_str(&zero_pad(micro, 6)[..precision]);
    }
    Some(s)
}

pub(super) fn naive_iso(entries: &[(Term, Term)]) -> Option<String> {
    let date = date_iso(entries)?;
    let time = time_part(entries)?;
    Some(format!("{date} {time}"))
}

fn datetime_iso(entries: &[(Term, Term)]) -> Option<String> {
    let base = naive_iso(entries)?;
    let Term::Binary(zone) = field_value(entries, "time_zone")? else {
        return None;
    };
    let Term::Binary(abbr) = field_value(entries, "zone_abbr")? else {
        return None;
    };
    let utc = int_field(entries, "utc_offset")?;
    let std = int_field(entries, "std_offset")?;
    let zone = String::from_utf8_lossy(zone);
    let abbr = String::from_utf8_lossy(abbr);
    if utc == 0 && std == 0 && zone == "Etc/UTC" {
        return Some(format!("{base}Z"));
    }
    let total = utc + std;
    let secs = total.abs();
    let sign = if total < 0 { '-' } else { '+' };
    let mut s = format!(
        "{base}{sign}{}:{}",
        zero_pad(secs / 3600, 2),
        zero_pad(secs % 3600 / 60, 2)
    );
    if zone != "Etc/UTC" {
        let _ = write!(s, " {abbr} {zone}");
    }
    Some(s)
}
