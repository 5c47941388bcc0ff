//! Zero-copy reading of external-term bytes.
//!
//! Ingest needs only a few fields of each trace message (tag, pids, MFA) and the
//! raw bytes of the payload terms, which it stores untouched. [`View`] walks the
//! encoding without building a [`crate::Term`]: it can split tuples and lists into
//! sub-views, read atoms, pids and integers, and hand out the exact byte slice of
//! any sub-term. Skipping is iterative, so nesting depth costs no stack.

use crate::etf::{tag, DecodeError};
use std::borrow::Cow;

/// A borrowed view of one encoded term (body encoding, no version byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View<'a> {
    bytes: &'a [u8],
}

/// A pid read from a view, borrowing its node name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PidView<'a> {
    pub node: &'a [u8],
    pub node_is_latin1: bool,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

impl PidView<'_> {
    /// The node name as text.
    pub fn node_name(&self) -> Cow<'_, str> {
        atom_cow(self.node, self.node_is_latin1)
    }
}

fn atom_cow(raw: &[u8], latin1: bool) -> Cow<'_, str> {
    if latin1 && !raw.is_ascii() {
        Cow::Owned(raw.iter().map(|&b| b as char).collect())
    } else {
        String::from_utf8_lossy(raw)
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn need(b: &[u8], at: usize, n: usize) -> Result<(), DecodeError> {
    if b.len() < at.saturating_add(n) {
        Err(DecodeError::Truncated {
            offset: at,
            needed: at.saturating_add(n) - b.len(),
        })
    } else {
        Ok(())
    }
}

/// Returns the length in bytes of the term that starts at `b[at]`.
pub fn term_len(b: &[u8], at: usize) -> Result<usize, DecodeError> {
    let mut pos = at;
    // Number of terms still to skip; grows with container sizes.
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        need(b, pos, 1)?;
        let t = b[pos];
        pos += 1;
        match t {
            tag::SMALL_INTEGER => pos += 1,
            tag::INTEGER => pos += 4,
            tag::NEW_FLOAT => pos += 8,
            tag::FLOAT => pos += 31,
            tag::ATOM | tag::ATOM_UTF8 => {
                need(b, pos, 2)?;
                pos += 2 + u16::from_be_bytes([b[pos], b[pos + 1]]) as usize;
            }
            tag::SMALL_ATOM | tag::SMALL_ATOM_UTF8 => {
                need(b, pos, 1)?;
                pos += 1 + b[pos] as usize;
            }
            tag::SMALL_TUPLE => {
                need(b, pos, 1)?;
                pending += b[pos] as u64;
                pos += 1;
            }
            tag::LARGE_TUPLE => {
                need(b, pos, 4)?;
                pending += be32(b, pos) as u64;
                pos += 4;
            }
            tag::NIL => {}
            tag::STRING => {
                need(b, pos, 2)?;
                pos += 2 + u16::from_be_bytes([b[pos], b[pos + 1]]) as usize;
            }
            tag::LIST => {
                need(b, pos, 4)?;
                pending += be32(b, pos) as u64 + 1;
                pos += 4;
            }
            tag::BINARY => {
                need(b, pos, 4)?;
                pos += 4 + be32(b, pos) as usize;
            }
            tag::BIT_BINARY => {
                need(b, pos, 5)?;
                pos += 5 + be32(b, pos) as usize;
            }
            tag::SMALL_BIG => {
                need(b, pos, 1)?;
                pos += 2 + b[pos] as usize;
            }
            tag::LARGE_BIG => {
                need(b, pos, 4)?;
                pos += 5 + be32(b, pos) as usize;
            }
            tag::MAP => {
                need(b, pos, 4)?;
                pending += 2 * be32(b, pos) as u64;
                pos += 4;
            }
            tag::NEW_PID => {
                pos = skip_atom(b, pos)? + 12;
            }
            tag::PID => pos = skip_atom(b, pos)? + 9,
            tag::NEW_PORT => pos = skip_atom(b, pos)? + 8,
            tag::PORT => pos = skip_atom(b, pos)? + 5,
            tag::V4_PORT => pos = skip_atom(b, pos)? + 12,
            tag::NEWER_REFERENCE | tag::NEW_REFERENCE => {
                need(b, pos, 2)?;
                let n = u16::from_be_bytes([b[pos], b[pos + 1]]) as usize;
                let creation = if t == tag::NEWER_REFERENCE { 4 } else { 1 };
                pos = skip_atom(b, pos + 2)? + creation + 4 * n;
            }
            tag::REFERENCE => pos = skip_atom(b, pos)? + 5,
            tag::EXPORT => {
                pending += 3;
            }
            tag::NEW_FUN => {
                need(b, pos, 4)?;
                // The size field counts itself but not the tag byte.
                pos += be32(b, pos) as usize;
            }
            tag::COMPRESSED => return Err(DecodeError::Compressed),
            other => {
                return Err(DecodeError::UnknownTag {
                    tag: other,
                    offset: pos - 1,
                })
            }
        }
        if pos > b.len() {
            return Err(DecodeError::Truncated {
                offset: pos,
                needed: pos - b.len(),
            });
        }
        // Every term still pending needs at least one byte.
        let left = (b.len() - pos) as u64;
        if pending > left {
            return Err(DecodeError::Truncated {
                offset: pos,
                needed: (pending - left) as usize,
            });
        }
    }
    Ok(pos - at)
}

/// The offset after the atom at `pos` (the node of a pid, port or reference).
fn skip_atom(b: &[u8], pos: usize) -> Result<usize, DecodeError> {
    match b.get(pos) {
        Some(&tag::SMALL_ATOM_UTF8) | Some(&tag::SMALL_ATOM) => {
            need(b, pos, 2)?;
            Ok(pos + 2 + b[pos + 1] as usize)
        }
        Some(&tag::ATOM_UTF8) | Some(&tag::ATOM) => {
            need(b, pos, 3)?;
            Ok(pos + 3 + u16::from_be_bytes([b[pos + 1], b[pos + 2]]) as usize)
        }
        // A node is always an atom (the full decoder refuses anything else
        // too). Walking another term here would recurse once per nested pid,
        // and a hostile frame of nested pids would overflow the stack.
        _ => Err(DecodeError::Invalid {
            what: "node (not an atom)",
            offset: pos,
        }),
    }
}

impl<'a> View<'a> {
    /// A view of the single term that fills `bytes` (body encoding).
    pub fn new(bytes: &'a [u8]) -> Result<View<'a>, DecodeError> {
        let len = term_len(bytes, 0)?;
        if len != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - len));
        }
        Ok(View { bytes })
    }

    /// A view of a full external term (version byte first).
    pub fn from_external(bytes: &'a [u8]) -> Result<View<'a>, DecodeError> {
        match bytes.first() {
            Some(&crate::etf::VERSION) => View::new(&bytes[1..]),
            Some(&b) => Err(DecodeError::BadVersion(b)),
            None => Err(DecodeError::Truncated {
                offset: 0,
                needed: 1,
            }),
        }
    }

    /// The view over the term starting at `at`, and the offset after it.
    fn at(b: &'a [u8], at: usize) -> Result<(View<'a>, usize), DecodeError> {
        let len = term_len(b, at)?;
        Ok((
            View {
                bytes: &b[at..at + len],
            },
            at + len,
        ))
    }

    /// The exact encoded bytes of this term.
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }

    /// The tag byte.
    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The atom text, if this is an atom.
    pub fn atom(&self) -> Option<Cow<'a, str>> {
        let (raw, latin1) = self.atom_raw()?;
        Some(atom_cow(raw, latin1))
    }

    /// The atom bytes and whether they are Latin-1, if this is an atom.
    pub fn atom_raw(&self) -> Option<(&'a [u8], bool)> {
        let b = self.bytes;
        match b[0] {
            tag::ATOM | tag::ATOM_UTF8 => Some((&b[3..], b[0] == tag::ATOM)),
            tag::SMALL_ATOM | tag::SMALL_ATOM_UTF8 => Some((&b[2..], b[0] == tag::SMALL_ATOM)),
            _ => None,
        }
    }

    /// True if this is the atom `name`.
    pub fn is_atom(&self, name: &str) -> bool {
        self.atom_raw()
            .is_some_and(|(raw, _)| raw == name.as_bytes())
    }

    /// The integer value, if this is an integer that fits in `i64`.
    pub fn int(&self) -> Option<i64> {
        let b = self.bytes;
        match b[0] {
            tag::SMALL_INTEGER => Some(b[1] as i64),
            tag::INTEGER => Some(be32(b, 1) as i32 as i64),
            tag::SMALL_BIG => {
                let n = b[1] as usize;
                if n > 8 {
                    return None;
                }
                let mut v: u64 = 0;
                for i in 0..n {
                    v |= (b[3 + i] as u64) << (8 * i);
                }
                if b[2] == 0 {
                    i64::try_from(v).ok()
                } else if v <= 1u64 << 63 {
                    Some((v as i128).wrapping_neg() as i64)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The pid, if this is a pid.
    pub fn pid(&self) -> Option<PidView<'a>> {
        let b = self.bytes;
        if b[0] != tag::NEW_PID && b[0] != tag::PID {
            return None;
        }
        let (atom, after) = View::at(b, 1).ok()?;
        let (node, latin1) = atom.atom_raw()?;
        let creation = if b[0] == tag::NEW_PID {
            be32(b, after + 8)
        } else {
            b[after + 8] as u32
        };
        Some(PidView {
            node,
            node_is_latin1: latin1,
            id: be32(b, after),
            serial: be32(b, after + 4),
            creation,
        })
    }

    /// The elements, if this is a tuple.
    pub fn tuple(&self) -> Option<Elements<'a>> {
        let b = self.bytes;
        let (n, pos) = match b[0] {
            tag::SMALL_TUPLE => (b[1] as usize, 2),
            tag::LARGE_TUPLE => (be32(b, 1) as usize, 5),
            _ => return None,
        };
        Some(Elements {
            bytes: b,
            pos,
            left: n,
            string: false,
            tuple: true,
        })
    }

    /// The elements of a tuple of exactly `N` elements.
    pub fn tuple_n<const N: usize>(&self) -> Option<[View<'a>; N]> {
        let mut it = self.tuple()?;
        if it.len() != N {
            return None;
        }
        let mut out = [*self; N];
        for slot in out.iter_mut() {
            *slot = it.next()?;
        }
        Some(out)
    }

    /// The elements, if this is a proper or improper list (the tail is not included).
    pub fn list(&self) -> Option<Elements<'a>> {
        let b = self.bytes;
        match b[0] {
            tag::NIL => Some(Elements {
                bytes: b,
                pos: 1,
                left: 0,
                string: false,
                tuple: false,
            }),
            tag::LIST => Some(Elements {
                bytes: b,
                pos: 5,
                left: be32(b, 1) as usize,
                string: false,
                tuple: false,
            }),
            tag::STRING => Some(Elements {
                bytes: b,
                pos: 3,
                left: u16::from_be_bytes([b[1], b[2]]) as usize,
                string: true,
                tuple: false,
            }),
            _ => None,
        }
    }

    /// The key/value pairs, if this is a map.
    pub fn map_entries(&self) -> Option<impl Iterator<Item = (View<'a>, View<'a>)>> {
        let b = self.bytes;
        if b[0] != tag::MAP {
            return None;
        }
        let mut items = Elements {
            bytes: b,
            pos: 5,
            left: 2 * be32(b, 1) as usize,
            string: false,
            tuple: false,
        };
        Some(std::iter::from_fn(move || {
            Some((items.next()?, items.next()?))
        }))
    }

    /// The value under the atom key `key`, if this is a map holding it.
    pub fn map_get(&self, key: &str) -> Option<View<'a>> {
        self.map_entries()?
            .find(|(k, _)| k.is_atom(key))
            .map(|(_, v)| v)
    }

    /// The bytes, if this is a binary.
    pub fn binary(&self) -> Option<&'a [u8]> {
        let b = self.bytes;
        (b[0] == tag::BINARY).then(|| &b[5..])
    }

    /// Decodes this view into an owned term.
    pub fn to_term(&self) -> Result<crate::Term, DecodeError> {
        crate::etf::decode_body(self.bytes)
    }
}

/// Iterator over the elements of a tuple or list view.
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: usize,
    string: bool,
    /// A tuple's last element runs to the end of the (validated) tuple, so it
    /// needs no walk to find its end.
    tuple: bool,
}

/// Pre-encoded small integers, used to give views of `STRING_EXT` characters.
static SMALL_INTS: [[u8; 2]; 256] = {
    let mut t = [[tag::SMALL_INTEGER, 0]; 256];
    let mut i = 0;
    while i < 256 {
        t[i][1] = i as u8;
        i += 1;
    }
    t
};

impl<'a> Iterator for Elements<'a> {
    type Item = View<'a>;
    fn next(&mut self) -> Option<View<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        if self.string {
            let byte = self.bytes[self.pos];
            self.pos += 1;
            return Some(View {
                bytes: &SMALL_INTS[byte as usize],
            });
        }
        if self.tuple && self.left == 0 {
            // The enclosing view was validated and is exactly the tuple.
            let v = View {
                bytes: &self.bytes[self.pos..],
            };
            self.pos = self.bytes.len();
            return Some(v);
        }
        // The enclosing view was validated by `term_len`, so this cannot fail.
        let (v, next) = View::at(self.bytes, self.pos).ok()?;
        self.pos = next;
        Some(v)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Elements<'_> {}

impl<'a> Elements<'a> {
    /// The next element, walked once: if it is a tuple of at most
    /// `items.len()` elements, its elements are put in `items` on the way and
    /// their count returned with it (else 0, and `items` is untouched).
    /// Saves a second walk over every event when splitting a batch.
    pub fn next_tuple_into(&mut self, items: &mut [View<'a>]) -> Option<(View<'a>, usize)> {
        if self.left == 0 {
            return None;
        }
        let b = self.bytes;
        if !self.string
            && b[self.pos] == tag::SMALL_TUPLE
            && (b[self.pos + 1] as usize) <= items.len()
        {
            let n = b[self.pos + 1] as usize;
            let mut p = self.pos + 2;
            for slot in items.iter_mut().take(n) {
                // The enclosing view was validated by `term_len`, so this cannot fail.
                let (v, next) = View::at(b, p).ok()?;
                *slot = v;
                p = next;
            }
            let whole = View {
                bytes: &b[self.pos..p],
            };
            self.left -= 1;
            self.pos = p;
            return Some((whole, n));
        }
        self.next().map(|v| (v, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_body, Pid, Term};

    #[test]
    fn splits_trace_like_tuples() {
        let pid = Pid {
            node: "a@b".into(),
            id: 85,
            serial: 0,
            creation: 7,
        };
        let payload = Term::Map(vec![(Term::atom("k"), Term::string("v"))]);
        let t = Term::Tuple(vec![
            Term::atom("trace_ts"),
            Term::Pid(pid.clone()),
            Term::atom("send"),
            payload.clone(),
            Term::Integer(-123456789012),
        ]);
        let bytes = encode_body(&t);
        let v = View::new(&bytes).unwrap();
        let [tag, p, kind, msg, ts] = v.tuple_n::<5>().unwrap();
        assert!(tag.is_atom("trace_ts"));
        let pv = p.pid().unwrap();
        assert_eq!((pv.id, pv.serial, pv.creation), (85, 0, 7));
        assert_eq!(pv.node_name(), "a@b");
        assert_eq!(kind.atom().unwrap(), "send");
        assert_eq!(msg.to_term().unwrap(), payload);
        assert_eq!(ts.int(), Some(-123456789012));
    }

    #[test]
    fn next_tuple_into_splits_small_tuples_and_passes_the_rest() {
        let list = Term::list(vec![
            Term::Tuple(vec![Term::atom("a"), Term::Integer(1)]),
            Term::Tuple((0..5).map(Term::Integer).collect()),
            Term::atom("not_a_tuple"),
            Term::Tuple(vec![]),
            Term::Tuple(vec![Term::string("x"), Term::list(vec![Term::Integer(2)])]),
        ]);
        let bytes = encode_body(&list);
        let v = View::new(&bytes).unwrap();
        let mut it = v.list().unwrap();
        let nil_bytes = [106u8];
        let nil = View::new(&nil_bytes).unwrap();
        let mut items = [nil; 3];
        let mut seen = Vec::new();
        while let Some((whole, n)) = it.next_tuple_into(&mut items) {
            let parts: Vec<Term> = items[..n].iter().map(|e| e.to_term().unwrap()).collect();
            seen.push((whole.to_term().unwrap(), parts));
        }
        let expected: Vec<Term> = v.list().unwrap().map(|e| e.to_term().unwrap()).collect();
        assert_eq!(seen.len(), 5);
        for ((whole, _), want) in seen.iter().zip(&expected) {
            assert_eq!(whole, want);
        }
        assert_eq!(seen[0].1, vec![Term::atom("a"), Term::Integer(1)]);
        assert!(seen[1].1.is_empty(), "5 elements do not fit in 3 slots");
        assert!(seen[2].1.is_empty());
        assert!(seen[3].1.is_empty());
        assert_eq!(seen[4].1.len(), 2);
    }

    #[test]
    fn string_ext_elements_are_integers() {
        let bytes = [107, 0, 2, b'h', b'i'];
        let v = View::new(&bytes).unwrap();
        let ints: Vec<i64> = v.list().unwrap().map(|e| e.int().unwrap()).collect();
        assert_eq!(ints, vec![104, 105]);
    }

    #[test]
    fn a_pid_whose_node_is_not_an_atom_is_refused_without_recursing() {
        // NEW_PID tags nested 200,000 deep (each the "node" of the one
        // before), then an atom and 12 bytes per level: walking them used to
        // recurse once per level and overflow even a 2 MB thread stack.
        let depth = 200_000;
        let mut b = vec![tag::NEW_PID; depth];
        b.extend_from_slice(&[tag::SMALL_ATOM_UTF8, 1, b'a']);
        b.extend(std::iter::repeat_n(0u8, 12 * depth));
        let walked = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || View::new(&b).map(|v| v.raw().len()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(
            matches!(walked, Err(DecodeError::Invalid { offset: 1, .. })),
            "{walked:?}"
        );
        // One level is just as invalid, for the view and the full decoder.
        let one = [
            tag::NEW_PID,
            tag::NEW_PID,
            tag::SMALL_ATOM_UTF8,
            1,
            b'a',
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        assert!(View::new(&one).is_err());
        assert!(crate::etf::decode_body(&one).is_err());
    }

    #[test]
    fn rejects_truncated_and_oversized_claims() {
        assert!(View::new(&[104, 3, 97, 1]).is_err());
        assert!(View::new(&[108, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(View::new(&[109, 0, 0, 0, 9, 1]).is_err());
        assert!(View::new(&[97, 1, 2]).is_err());
    }
}
