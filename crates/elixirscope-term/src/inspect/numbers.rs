//! Numbers: integers of any size in decimal, floats with the shortest
//! round-trip digits and the BEAM's switch between decimal and scientific
//! notation, and the ordering of integer terms.

use std::fmt::Write as _;

use crate::{BigInt, Term};

pub(super) fn bigint_to_decimal(b: &BigInt) -> String {
    let mut limbs: Vec<u32> = b
        .magnitude_le
        .chunks(4)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (8 * i))
        })
        .collect();
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    if limbs.is_empty() {
        return "0".to_string();
    }
    // Repeated division by 10^9, least significant chunk first.
    let mut chunks = Vec::new();
    while !limbs.is_empty() {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | *limb as u64;
            *limb = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut s = String::new();
    if b.negative {
        s.push('-');
    }
    let mut iter = chunks.iter().rev();
    if let Some(first) = iter.next() {
        let _ = write!(s, "{first}");
    }
    for chunk in iter {
        let _ = write!(s, "{chunk:09}");
    }
    s
}

/// `Inspect.Float` (Elixir 1.14): integral values in `[1, 1e16)` print as
/// `<integer>.0`; everything else as `:erlang.float_to_binary(f, [:short])`.
pub(super) fn format_float(f: f64) -> String {
    if !f.is_finite() {
        // Not representable on the BEAM.
        return format!("{f}");
    }
    let a = f.abs();
    if (1.0..1.0e16).contains(&a) && a.trunc() == a {
        return format!("{}.0", f as i64);
    }
    float_short(f)
}

/// `:erlang.float_to_binary(f, [:short])`: the shortest digits that read back
/// as `f`, in decimal or scientific notation by the BEAM's switch-over rules.
fn float_short(f: f64) -> String {
    let mut s = String::new();
    if f.is_sign_negative() {
        s.push('-');
    }
    if f == 0.0 {
        s.push_str("0.0");
        return s;
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let sci_exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let olength = digits.len() as i32;
    let output: u64 = digits.parse().unwrap_or(0);
    let ryu_exp = sci_exp - (olength - 1);
    let (lower, upper) = if olength == 1 {
        (-4, 2)
    } else if sci_exp >= 10 {
        (-(olength + 2), 2)
    } else {
        (-(olength + 2), 1)
    };
    let beyond_2_53 = (output >= 1 << 53 && ryu_exp == 0)
        || (output > (1u64 << 52) / 5 && ryu_exp == 1)
        || (output > (1u64 << 51) / 25 && ryu_exp == 2);
    if lower <= ryu_exp && ryu_exp <= upper && !beyond_2_53 {
        let whole = olength + ryu_exp;
        if ryu_exp >= 0 {
            s.push_str(&digits);
            s.push_str(&"0".repeat(ryu_exp as usize));
            s.push_str(".0");
        } else if whole > 0 {
            s.push_str(&digits[..whole as usize]);
            s.push('.');
            s.push_str(&digits[whole as usize..]);
        } else {
            s.push_str("0.");
            s.push_str(&"0".repeat((-whole) as usize));
            s.push_str(&digits);
        }
    } else {
        s.push_str(&digits[..1]);
        s.push('.');
        if olength == 1 {
            s.push('0');
        } else {
            s.push_str(&digits[1..]);
        }
        let _ = write!(s, "e{sci_exp}");
    }
    s
}

/// Orders two integer terms (small or big).
pub(super) fn compare_integers(a: &Term, b: &Term) -> Option<std::cmp::Ordering> {
    fn key(t: &Term) -> Option<(bool, Vec<u8>)> {
        // (negative, big-endian magnitude without leading zeros)
        match t {
            Term::Integer(i) => {
                let mag = i.unsigned_abs().to_be_bytes();
                let skip = mag.iter().take_while(|&&b| b == 0).count();
                Some((*i < 0, mag[skip..].to_vec()))
            }
            Term::BigInteger(b) => {
                let mut mag: Vec<u8> = b.magnitude_le.iter().rev().copied().collect();
                let skip = mag.iter().take_while(|&&x| x == 0).count();
                mag.drain(..skip);
                Some((b.negative && !mag.is_empty(), mag))
            }
            _ => None,
        }
    }
    let (an, am) = key(a)?;
    let (bn, bm) = key(b)?;
    let mag = am.len().cmp(&bm.len()).then_with(|| am.cmp(&bm));
    Some(match (an, bn) {
        (false, false) => mag,
        (true, true) => mag.reverse(),
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_switch_notation_like_the_beam() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.0e20, "1.0e20"),
            (1.0e-5, "1.0e-5"),
            (1.2345678901234568e17, "1.2345678901234568e17"),
            (1.0e15, "1000000000000000.0"),
            (1.0e16, "1.0e16"),
            (0.0001, "0.0001"),
            (1.2e-4, "1.2e-4"),
            (-0.0, "-0.0"),
            (100000000000000.25, "100000000000000.25"),
        ] {
            assert_eq!(format_float(f), want, "{f:e}");
        }
    }

    #[test]
    fn big_integers() {
        let b = BigInt {
            negative: true,
            magnitude_le: vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
        };
        assert_eq!(bigint_to_decimal(&b), "-18446744073709551616");
    }
}
