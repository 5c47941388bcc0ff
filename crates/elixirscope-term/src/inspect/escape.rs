//! Text escaping shared by strings, charlists, quoted atoms and regex sources:
//! UTF-8 decoding, Unicode printability and `Code.Identifier.escape/4`.

use std::fmt::Write as _;

use super::printer::decrement;

/// Decodes one UTF-8 scalar value at the start of `bytes`.
pub(super) fn decode_utf8(bytes: &[u8]) -> Option<(char, usize)> {
    let len = match *bytes.first()? {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(bytes.get(..len)?).ok()?;
    s.chars().next().map(|c| (c, len))
}

pub(super) fn unicode_printable(c: u32) -> bool {
    (0xA0..=0xD7FF).contains(&c)
        || (0xE000..=0xFFFD).contains(&c)
        || (0x10000..=0x10FFFF).contains(&c)
}

pub(super) fn default_escape(c: char) -> Option<&'static str> {
    Some(match c {
        '\x07' => "\\a",
        '\x08' => "\\b",
        '\x7f' => "\\d",
        '\x1b' => "\\e",
        '\x0c' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\x0b' => "\\v",
        '\\' => "\\\\",
        _ => return None,
    })
}

pub(super) fn regex_escape(c: char) -> Option<&'static str> {
    Some(match c {
        '\x07' => "\\a",
        '\x0c' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\x0b' => "\\v",
        _ => return None,
    })
}

/// `Code.Identifier.escape/4`: escapes up to `limit` characters of `bytes` for
/// printing between `quote` characters; returns whether anything was left.
pub(super) fn escape(
    bytes: &[u8],
    quote: u8,
    limit: Option<usize>,
    map: fn(char) -> Option<&'static str>,
    out: &mut String,
) -> bool {
    let mut i = 0;
    let mut count = limit;
    while i < bytes.len() {
        if count == Some(0) {
            return true;
        }
        let b = bytes[i];
        if b == quote {
            out.push('\\');
            out.push(b as char);
            i += 1;
        } else if b == b'#' && bytes.get(i + 1) == Some(&b'{') {
            out.push_str("\\#{");
            i += 2;
        } else if let Some((c, len)) = decode_utf8(&bytes[i..]) {
            match map(c) {
                Some(e) => out.push_str(e),
                None => escape_char(c, out),
            }
            i += len;
        } else {
            let _ = write!(out, "\\x{b:02X}");
            i += 1;
        }
        count = decrement(count);
    }
    false
}

fn escape_char(c: char, out: &mut String) {
    let v = c as u32;
    if v == 0 {
        out.push_str("\\0");
    } else if v == 0xFEFF {
        out.push_str("\\uFEFF");
    } else if (0x20..=0x7E).contains(&v) || unicode_printable(v) {
        out.push(c);
    } else if v < 0x100 {
        let _ = write!(out, "\\x{v:02X}");
    } else if v < 0x10000 {
        let _ = write!(out, "\\x{{{v:04X}}}");
    } else {
        let _ = write!(out, "\\x{{{v:06X}}}");
    }
}
