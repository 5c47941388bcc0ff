//! Binaries and charlists: strings (`"..."`), bitstrings (`<<...>>`) and lists
//! printed as `'...'`, with Elixir's printability checks and the
//! `printable_limit` truncation.

use std::fmt::Write as _;

use super::collections::flatten_list;
use super::escape::{decode_utf8, default_escape, escape, unicode_printable};
use super::printer::{decrement, Ctx, Printer};
use crate::Term;

impl Printer<'_> {
    pub(super) fn binary(&mut self, bytes: &[u8], ctx: Ctx) {
        let plimit = self.opts.printable_limit;
        if string_printable(bytes, plimit) {
            self.out.push('"');
            let truncated = escape(bytes, b'"', plimit, default_escape, &mut self.out);
            self.out.push('"');
            if truncated {
                self.out.push_str(" <> ...");
            }
        } else {
            self.bitstring(bytes, None, ctx);
        }
    }

    /// `<<1, 2, 3::size(3)>>`; `bits` is the number of significant bits in
    /// the last byte when it is partial.
    pub(super) fn bitstring(&mut self, bytes: &[u8], bits: Option<u8>, ctx: Ctx) {
        let partial = bits.filter(|&b| b < 8 && !bytes.is_empty());
        let full = if partial.is_some() {
            &bytes[..bytes.len() - 1]
        } else {
            bytes
        };
        if full.is_empty() && partial.is_none() {
            self.out.push_str("<<>>");
            return;
        }
        self.out.push_str("<<");
        let mut counter = ctx.limit;
        let units = full.len() + usize::from(partial.is_some());
        for i in 0..units {
            if counter == Some(0) {
                self.out.push_str("...");
                break;
            }
            if i < full.len() {
                let _ = write!(self.out, "{}", full[i]);
                if i + 1 == units {
                    break;
                }
                self.out.push_str(", ");
                counter = decrement(counter);
            } else if let Some(b) = partial {
                let last = bytes[bytes.len() - 1];
                let _ = write!(self.out, "{}::size({b})", last >> (8 - b));
            }
        }
        self.out.push_str(">>");
    }

    /// Prints the list as `'...'` if Elixir would (printable ASCII up to
    /// `printable_limit`); returns whether it did.
    pub(super) fn charlist(&mut self, items: &[&Term], tail: Option<&Term>) -> bool {
        let plimit = self.opts.printable_limit;
        let mut checked = 0usize;
        for item in items {
            if Some(checked) == plimit {
                break;
            }
            match item {
                Term::Integer(c) if ascii_printable(*c) => checked += 1,
                _ => return false,
            }
        }
        // An improper tail fails the check unless the limit stopped it first.
        if Some(checked) != plimit && tail.is_some() {
            return false;
        }
        // Elixir converts the whole list to a string before escaping up to the
        // limit, so whatever follows the checked prefix must be chardata too.
        // Where it is not, Elixir raises; the list prints as a list instead.
        let mut text = String::new();
        if !chardata(items, tail, &mut text) {
            return false;
        }
        self.out.push('\'');
        let truncated = escape(
            text.as_bytes(),
            b'\'',
            plimit,
            default_escape,
            &mut self.out,
        );
        self.out.push('\'');
        if truncated {
            self.out.push_str(" ++ ...");
        }
        true
    }
}

/// `String.printable?/2`.
fn string_printable(bytes: &[u8], limit: Option<usize>) -> bool {
    let mut i = 0;
    let mut count = limit;
    loop {
        if count == Some(0) || i == bytes.len() {
            return true;
        }
        let b = bytes[i];
        if (0x20..=0x7E).contains(&b) || b"\n\r\t\x0b\x08\x0c\x1b\x7f\x07".contains(&b) {
            i += 1;
        } else {
            match decode_utf8(&bytes[i..]) {
                Some((c, len)) if unicode_printable(c as u32) => i += len,
                _ => return false,
            }
        }
        count = decrement(count);
    }
}

fn ascii_printable(c: i64) -> bool {
    (7..=13).contains(&c) || c == 27 || (32..=126).contains(&c)
}

/// Appends the characters of chardata (code points, binaries, nested lists);
/// returns false at the first element that is not chardata.
fn chardata(items: &[&Term], tail: Option<&Term>, out: &mut String) -> bool {
    fn one(t: &Term, out: &mut String) -> bool {
        match t {
            Term::Integer(c) => match u32::try_from(*c).ok().and_then(char::from_u32) {
                Some(ch) => {
                    out.push(ch);
                    true
                }
                None => false,
            },
            Term::Binary(b) => match std::str::from_utf8(b) {
                Ok(s) => {
                    out.push_str(s);
                    true
                }
                Err(_) => false,
            },
            Term::List { .. } => {
                let (items, tail) = flatten_list(t);
                chardata(&items, tail, out)
            }
            _ => false,
        }
    }
    for item in items {
        if !one(item, out) {
            return false;
        }
    }
    match tail {
        None => true,
        // An improper tail is chardata only if it is a binary.
        Some(t @ Term::Binary(_)) => one(t, out),
        Some(_) => false,
    }
}
