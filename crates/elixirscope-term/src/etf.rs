//! Erlang external term format: decoding into [`Term`] and encoding back.
//!
//! The decoder trusts nothing: every length is checked against the bytes that are
//! actually left before anything is allocated, nesting is bounded by
//! [`MAX_DEPTH`], and every failure is a [`DecodeError`] naming what was wrong.
//! Compressed terms (tag 80) are refused: the agent never produces them.

use crate::{BigInt, Fun, Pid, Port, Reference, Term};

/// The version byte that starts a full external term.
pub const VERSION: u8 = 131;
/// Deepest nesting of tuples/lists/maps the decoder accepts.
pub const MAX_DEPTH: usize = 512;

pub(crate) mod tag {
    pub const NEW_FLOAT: u8 = 70;
    pub const BIT_BINARY: u8 = 77;
    pub const COMPRESSED: u8 = 80;
    pub const NEW_PID: u8 = 88;
    pub const NEW_PORT: u8 = 89;
    pub const NEWER_REFERENCE: u8 = 90;
    pub const SMALL_INTEGER: u8 = 97;
    pub const INTEGER: u8 = 98;
    pub const FLOAT: u8 = 99;
    pub const ATOM: u8 = 100;
    pub const REFERENCE: u8 = 101;
    pub const PORT: u8 = 102;
    pub const PID: u8 = 103;
    pub const SMALL_TUPLE: u8 = 104;
    pub const LARGE_TUPLE: u8 = 105;
    pub const NIL: u8 = 106;
    pub const STRING: u8 = 107;
    pub const LIST: u8 = 108;
    pub const BINARY: u8 = 109;
    pub const SMALL_BIG: u8 = 110;
    pub const LARGE_BIG: u8 = 111;
    pub const NEW_FUN: u8 = 112;
    pub const EXPORT: u8 = 113;
    pub const NEW_REFERENCE: u8 = 114;
    pub const SMALL_ATOM: u8 = 115;
    pub const MAP: u8 = 116;
    pub const ATOM_UTF8: u8 = 118;
    pub const SMALL_ATOM_UTF8: u8 = 119;
    pub const V4_PORT: u8 = 120;
}

/// Why a byte sequence is not a valid external term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("term ends early: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("unknown term tag {tag} at offset {offset}")]
    UnknownTag { tag: u8, offset: usize },
    #[error("term does not start with version byte 131 (found {0})")]
    BadVersion(u8),
    #[error("term nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("compressed terms are not accepted")]
    Compressed,
    #[error("invalid {what} at offset {offset}")]
    Invalid { what: &'static str, offset: usize },
    #[error("{0} trailing bytes after the term")]
    Trailing(usize),
}

/// Decodes a full external term (starting with the version byte).
pub fn decode(bytes: &[u8]) -> Result<Term, DecodeError> {
    match bytes.first() {
        Some(&VERSION) => decode_body(&bytes[1..]),
        Some(&other) => Err(DecodeError::BadVersion(other)),
        None => Err(DecodeError::Truncated {
            offset: 0,
            needed: 1,
        }),
    }
}

/// Decodes a term body (no version byte); the slice must hold exactly one term.
pub fn decode_body(bytes: &[u8]) -> Result<Term, DecodeError> {
    let mut d = Decoder { bytes, pos: 0 };
    let term = d.term(0)?;
    if d.pos != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - d.pos));
    }
    Ok(term)
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - left,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    /// Checks that `count` elements of at least `min_each` bytes can still follow.
    fn check_count(&self, count: usize, min_each: usize) -> Result<(), DecodeError> {
        let left = self.bytes.len() - self.pos;
        let needed = count.saturating_mul(min_each);
        if needed > left {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: needed - left,
            });
        }
        Ok(())
    }

    fn atom_text(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let tag = self.u8()?;
        match tag {
            tag::ATOM | tag::ATOM_UTF8 => {
                let len = self.u16()? as usize;
                let raw = self.take(len)?;
                atom_string(tag, raw, at)
            }
            tag::SMALL_ATOM | tag::SMALL_ATOM_UTF8 => {
                let len = self.u8()? as usize;
                let raw = self.take(len)?;
                atom_string(tag, raw, at)
            }
            _ => Err(DecodeError::Invalid {
                what: "atom",
                offset: at,
            }),
        }
    }

    fn small_int(&mut self) -> Result<i64, DecodeError> {
        let at = self.pos;
        match self.term(MAX_DEPTH - 1)? {
            Term::Integer(i) => Ok(i),
            _ => Err(DecodeError::Invalid {
                what: "integer",
                offset: at,
            }),
        }
    }

    fn pid(&mut self) -> Result<Pid, DecodeError> {
        let at = self.pos;
        match self.term(MAX_DEPTH - 1)? {
            Term::Pid(p) => Ok(p),
            _ => Err(DecodeError::Invalid {
                what: "pid",
                offset: at,
            }),
        }
    }

    fn term(&mut self, depth: usize) -> Result<Term, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let at = self.pos;
        let t = self.u8()?;
        match t {
            tag::SMALL_TUPLE | tag::LARGE_TUPLE => {
                let n = if t == tag::SMALL_TUPLE {
                    self.u8()? as usize
                } else {
                    self.u32()? as usize
                };
                let items = self.terms(n, depth)?;
                Ok(Term::Tuple(items))
            }
            tag::LIST => {
                let n = self.u32()? as usize;
                let items = self.terms(n, depth)?;
                let tail = self.term(depth + 1)?;
                Ok(match tail {
                    Term::List {
                        items: ref t,
                        tail: None,
                    } if t.is_empty() => Term::List { items, tail: None },
                    other => Term::List {
                        items,
                        tail: Some(Box::new(other)),
                    },
                })
            }
            tag::MAP => {
                let n = self.u32()? as usize;
                self.check_count(n, 2)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.term(depth + 1)?;
                    let v = self.term(depth + 1)?;
                    entries.push((k, v));
                }
                Ok(Term::Map(entries))
            }
            tag::NEW_FUN => self.fun(at, depth),
            _ => self.scalar(t, at),
        }
    }

    fn terms(&mut self, n: usize, depth: usize) -> Result<Vec<Term>, DecodeError> {
        self.check_count(n, 1)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.term(depth + 1)?);
        }
        Ok(items)
    }

    #[inline(never)]
    fn fun(&mut self, at: usize, depth: usize) -> Result<Term, DecodeError> {
        let size = self.u32()? as usize;
        // Size counts itself but not the tag byte.
        let end = at.saturating_add(1).saturating_add(size);
        if end > self.bytes.len() {
            return Err(DecodeError::Truncated {
                offset: at,
                needed: end - self.bytes.len(),
            });
        }
        let arity = self.u8()?;
        let uniq: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
        let index = self.u32()?;
        let num_free = self.u32()? as usize;
        let module = self.atom_text()?;
        let old_index = self.small_int()?;
        let old_uniq = self.small_int()?;
        let pid = self.pid()?;
        let free_vars = self.terms(num_free, depth)?;
        if self.pos != end {
            return Err(DecodeError::Invalid {
                what: "fun size",
                offset: at,
            });
        }
        Ok(Term::Fun(Fun::Local {
            module,
            arity,
            index,
            uniq,
            old_index,
            old_uniq,
            pid,
            free_vars,
        }))
    }

    /// Decodes a term that contains no nested terms (its tag is already read).
    #[inline(never)]
    fn scalar(&mut self, t: u8, at: usize) -> Result<Term, DecodeError> {
        Ok(match t {
            tag::SMALL_INTEGER => Term::Integer(self.u8()? as i64),
            tag::INTEGER => Term::Integer(self.u32()? as i32 as i64),
            tag::NEW_FLOAT => {
                // The BEAM has no NaN or infinities and refuses them too.
                let f = f64::from_bits(self.u64()?);
                if !f.is_finite() {
                    return Err(DecodeError::Invalid {
                        what: "float (not finite)",
                        offset: at,
                    });
                }
                Term::Float(f)
            }
            tag::FLOAT => {
                let raw = self.take(31)?;
                let text = std::str::from_utf8(raw)
                    .ok()
                    .map(|s| s.trim_end_matches('\0').trim())
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|f| f.is_finite())
                    .ok_or(DecodeError::Invalid {
                        what: "float",
                        offset: at,
                    })?;
                Term::Float(text)
            }
            tag::ATOM | tag::ATOM_UTF8 | tag::SMALL_ATOM | tag::SMALL_ATOM_UTF8 => {
                self.pos = at;
                Term::Atom(self.atom_text()?)
            }
            tag::NIL => Term::list(Vec::new()),
            tag::STRING => {
                let len = self.u16()? as usize;
                let raw = self.take(len)?;
                Term::list(raw.iter().map(|&b| Term::Integer(b as i64)).collect())
            }
            tag::BINARY => {
                let len = self.u32()? as usize;
                Term::Binary(self.take(len)?.to_vec())
            }
            tag::BIT_BINARY => {
                let len = self.u32()? as usize;
                let bits = self.u8()?;
                if !(1..=8).contains(&bits) || len == 0 {
                    return Err(DecodeError::Invalid {
                        what: "bitstring",
                        offset: at,
                    });
                }
                let bytes = self.take(len)?.to_vec();
                if bits == 8 {
                    Term::Binary(bytes)
                } else {
                    Term::BitBinary { bytes, bits }
                }
            }
            tag::SMALL_BIG | tag::LARGE_BIG => {
                let n = if t == tag::SMALL_BIG {
                    self.u8()? as usize
                } else {
                    self.u32()? as usize
                };
                let sign = self.u8()?;
                let digits = self.take(n)?;
                big_to_term(sign != 0, digits)
            }
            tag::NEW_PID | tag::PID => {
                let node = self.atom_text()?;
                let id = self.u32()?;
                let serial = self.u32()?;
                let creation = if t == tag::NEW_PID {
                    self.u32()?
                } else {
                    self.u8()? as u32
                };
                Term::Pid(Pid {
                    node,
                    id,
                    serial,
                    creation,
                })
            }
            tag::NEW_PORT | tag::PORT | tag::V4_PORT => {
                let node = self.atom_text()?;
                let id = if t == tag::V4_PORT {
                    self.u64()?
                } else {
                    self.u32()? as u64
                };
                let creation = if t == tag::PORT {
                    self.u8()? as u32
                } else {
                    self.u32()?
                };
                Term::Port(Port { node, id, creation })
            }
            tag::NEWER_REFERENCE | tag::NEW_REFERENCE => {
                let len = self.u16()? as usize;
                let node = self.atom_text()?;
                let creation = if t == tag::NEWER_REFERENCE {
                    self.u32()?
                } else {
                    self.u8()? as u32
                };
                self.check_count(len, 4)?;
                let mut ids = Vec::with_capacity(len);
                for _ in 0..len {
                    ids.push(self.u32()?);
                }
                Term::Reference(Reference {
                    node,
                    creation,
                    ids,
                })
            }
            tag::REFERENCE => {
                let node = self.atom_text()?;
                let id = self.u32()?;
                let creation = self.u8()? as u32;
                Term::Reference(Reference {
                    node,
                    creation,
                    ids: vec![id],
                })
            }
            tag::EXPORT => {
                let module = self.atom_text()?;
                let function = self.atom_text()?;
                let arity = self.small_int()?;
                Term::Fun(Fun::External {
                    module,
                    function,
                    arity: u8::try_from(arity).map_err(|_| DecodeError::Invalid {
                        what: "fun arity",
                        offset: at,
                    })?,
                })
            }
            tag::COMPRESSED => return Err(DecodeError::Compressed),
            other => {
                return Err(DecodeError::UnknownTag {
                    tag: other,
                    offset: at,
                })
            }
        })
    }
}

fn atom_string(tag: u8, raw: &[u8], offset: usize) -> Result<String, DecodeError> {
    if tag == tag::ATOM || tag == tag::SMALL_ATOM {
        // Latin-1: every byte is one code point.
        Ok(raw.iter().map(|&b| b as char).collect())
    } else {
        String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::Invalid {
            what: "UTF-8 atom",
            offset,
        })
    }
}

fn big_to_term(negative: bool, digits_le: &[u8]) -> Term {
    let mut trimmed = digits_le;
    while let [rest @ .., 0] = trimmed {
        trimmed = rest;
    }
    if trimmed.len() <= 8 {
        let mut v: u64 = 0;
        for (i, &d) in trimmed.iter().enumerate() {
            v |= (d as u64) << (8 * i);
        }
        if !negative && v <= i64::MAX as u64 {
            return Term::Integer(v as i64);
        }
        if negative && v <= (i64::MAX as u64) + 1 {
            return Term::Integer((v as i128).wrapping_neg() as i64);
        }
    }
    Term::BigInteger(BigInt {
        negative,
        magnitude_le: trimmed.to_vec(),
    })
}

/// Encodes a term as a full external term (with the version byte).
pub fn encode(term: &Term) -> Vec<u8> {
    let mut out = vec![VERSION];
    encode_into(term, &mut out);
    out
}

/// Encodes a term body (no version byte).
pub fn encode_body(term: &Term) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(term, &mut out);
    out
}

fn encode_atom(name: &str, out: &mut Vec<u8>) {
    let b = name.as_bytes();
    if b.len() < 256 {
        out.push(tag::SMALL_ATOM_UTF8);
        out.push(b.len() as u8);
    } else {
        out.push(tag::ATOM_UTF8);
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn encode_pid(p: &Pid, out: &mut Vec<u8>) {
    out.push(tag::NEW_PID);
    encode_atom(&p.node, out);
    out.extend_from_slice(&p.id.to_be_bytes());
    out.extend_from_slice(&p.serial.to_be_bytes());
    out.extend_from_slice(&p.creation.to_be_bytes());
}

/// Appends the body encoding of `term` to `out`.
pub fn encode_into(term: &Term, out: &mut Vec<u8>) {
    match term {
        Term::Atom(a) => encode_atom(a, out),
        Term::Integer(i) => {
            if (0..=255).contains(i) {
                out.push(tag::SMALL_INTEGER);
                out.push(*i as u8);
            } else if let Ok(v) = i32::try_from(*i) {
                out.push(tag::INTEGER);
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                let mag = i.unsigned_abs().to_le_bytes();
                let len = 8 - mag.iter().rev().take_while(|&&b| b == 0).count();
                out.push(tag::SMALL_BIG);
                out.push(len as u8);
                out.push(u8::from(*i < 0));
                out.extend_from_slice(&mag[..len]);
            }
        }
        Term::BigInteger(b) => {
            out.push(tag::LARGE_BIG);
            out.extend_from_slice(&(b.magnitude_le.len() as u32).to_be_bytes());
            out.push(u8::from(b.negative));
            out.extend_from_slice(&b.magnitude_le);
        }
        Term::Float(f) => {
            out.push(tag::NEW_FLOAT);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Term::Pid(p) => encode_pid(p, out),
        Term::Port(p) => {
            out.push(tag::V4_PORT);
            encode_atom(&p.node, out);
            out.extend_from_slice(&p.id.to_be_bytes());
            out.extend_from_slice(&p.creation.to_be_bytes());
        }
        Term::Reference(r) => {
            out.push(tag::NEWER_REFERENCE);
            out.extend_from_slice(&(r.ids.len() as u16).to_be_bytes());
            encode_atom(&r.node, out);
            out.extend_from_slice(&r.creation.to_be_bytes());
            for id in &r.ids {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
        Term::Fun(Fun::External {
            module,
            function,
            arity,
        }) => {
            out.push(tag::EXPORT);
            encode_atom(module, out);
            encode_atom(function, out);
            out.push(tag::SMALL_INTEGER);
            out.push(*arity);
        }
        Term::Fun(Fun::Local {
            module,
            arity,
            index,
            uniq,
            old_index,
            old_uniq,
            pid,
            free_vars,
        }) => {
            let start = out.len();
            out.push(tag::NEW_FUN);
            out.extend_from_slice(&[0; 4]);
            out.push(*arity);
            out.extend_from_slice(uniq);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&(free_vars.len() as u32).to_be_bytes());
            encode_atom(module, out);
            encode_into(&Term::Integer(*old_index), out);
            encode_into(&Term::Integer(*old_uniq), out);
            encode_pid(pid, out);
            for v in free_vars {
                encode_into(v, out);
            }
            let size = (out.len() - start - 1) as u32;
            out[start + 1..start + 5].copy_from_slice(&size.to_be_bytes());
        }
        Term::Binary(b) => {
            out.push(tag::BINARY);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
        Term::BitBinary { bytes, bits } => {
            out.push(tag::BIT_BINARY);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.push(*bits);
            out.extend_from_slice(bytes);
        }
        Term::List { items, tail } => {
            if items.is_empty() && tail.is_none() {
                out.push(tag::NIL);
                return;
            }
            out.push(tag::LIST);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                encode_into(i, out);
            }
            match tail {
                Some(t) => encode_into(t, out),
                None => out.push(tag::NIL),
            }
        }
        Term::Tuple(items) => {
            if items.len() < 256 {
                out.push(tag::SMALL_TUPLE);
                out.push(items.len() as u8);
            } else {
                out.push(tag::LARGE_TUPLE);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            }
            for i in items {
                encode_into(i, out);
            }
        }
        Term::Map(entries) => {
            out.push(tag::MAP);
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (k, v) in entries {
                encode_into(k, out);
                encode_into(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_common_terms() {
        let t = Term::Tuple(vec![
            Term::atom("ok"),
            Term::Integer(-5),
            Term::Integer(1 << 40),
            Term::Float(1.5),
            Term::string("hé"),
            Term::list(vec![Term::Integer(1), Term::Integer(300)]),
            Term::Map(vec![
                (Term::atom("b"), Term::Integer(2)),
                (Term::atom("a"), Term::Integer(1)),
            ]),
            Term::List {
                items: vec![Term::Integer(1)],
                tail: Some(Box::new(Term::Integer(2))),
            },
        ]);
        assert_eq!(decode(&encode(&t)).unwrap(), t);
    }

    #[test]
    fn rejects_hostile_input_without_panicking() {
        // A list claiming 4 billion elements in 10 bytes.
        let bytes = [131, 108, 0xff, 0xff, 0xff, 0xff, 106];
        assert!(matches!(decode(&bytes), Err(DecodeError::Truncated { .. })));
        // Deep nesting.
        let mut deep = vec![131];
        for _ in 0..100_000 {
            deep.extend_from_slice(&[104, 1]);
        }
        deep.push(106);
        assert_eq!(decode(&deep), Err(DecodeError::TooDeep));
        assert!(matches!(
            decode(&[131, 255]),
            Err(DecodeError::UnknownTag { .. })
        ));
        assert!(matches!(decode(&[]), Err(DecodeError::Truncated { .. })));
        assert_eq!(decode(&[1]), Err(DecodeError::BadVersion(1)));
        // NaN, which the BEAM never produces and refuses to decode.
        assert!(matches!(
            decode(&[131, 70, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Invalid { .. })
        ));
    }

    #[test]
    fn decodes_big_integers_into_i64_when_they_fit() {
        // -(2^63) as SMALL_BIG: 8 digit bytes.
        let mut b = vec![131, 110, 8, 1];
        b.extend_from_slice(&(1u64 << 63).to_le_bytes());
        assert_eq!(decode(&b).unwrap(), Term::Integer(i64::MIN));
        let mut b = vec![131, 110, 9, 0];
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(decode(&b).unwrap(), Term::BigInteger(_)));
    }
}
