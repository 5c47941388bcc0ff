//! Writing Erlang external term format: the few constructors the tracer needs,
//! byte for byte what `term_to_binary/1` would produce for the same values
//! (without the leading version byte).

pub const NEW_FLOAT: u8 = 70;
pub const SMALL_INTEGER: u8 = 97;
pub const INTEGER: u8 = 98;
pub const SMALL_TUPLE: u8 = 104;
pub const LARGE_TUPLE: u8 = 105;
pub const NIL: u8 = 106;
pub const STRING: u8 = 107;
pub const LIST: u8 = 108;
pub const BINARY: u8 = 109;
pub const SMALL_BIG: u8 = 110;
pub const MAP: u8 = 116;
pub const ATOM_UTF8: u8 = 118;
pub const SMALL_ATOM_UTF8: u8 = 119;
pub const ATOM: u8 = 100;
pub const SMALL_ATOM: u8 = 115;

pub fn tuple_header(out: &mut Vec<u8>, arity: usize) {
    if arity < 256 {
        out.extend_from_slice(&[SMALL_TUPLE, arity as u8]);
    } else {
        out.push(LARGE_TUPLE);
        out.extend_from_slice(&(arity as u32).to_be_bytes());
    }
}

pub fn integer(out: &mut Vec<u8>, n: i64) {
    if (0..=255).contains(&n) {
        out.extend_from_slice(&[SMALL_INTEGER, n as u8]);
    } else if i32::try_from(n).is_ok() {
        out.push(INTEGER);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        let mut magnitude = n.unsigned_abs();
        let at = out.len();
        out.extend_from_slice(&[SMALL_BIG, 0, (n < 0) as u8]);
        let mut digits = 0u8;
        while magnitude > 0 {
            out.push(magnitude as u8);
            magnitude >>= 8;
            digits += 1;
        }
        out[at + 1] = digits;
    }
}

pub fn float(out: &mut Vec<u8>, f: f64) {
    out.push(NEW_FLOAT);
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

pub fn binary(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(BINARY);
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// An atom given as UTF-8 text.
pub fn atom(out: &mut Vec<u8>, text: &str) {
    if text.len() < 256 {
        out.extend_from_slice(&[SMALL_ATOM_UTF8, text.len() as u8]);
    } else {
        out.push(ATOM_UTF8);
        out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

/// The text of an encoded atom (any of the four atom encodings).
pub fn atom_text(bytes: &[u8]) -> Option<&[u8]> {
    match *bytes.first()? {
        SMALL_ATOM_UTF8 | SMALL_ATOM => bytes.get(2..2 + *bytes.get(1)? as usize),
        ATOM_UTF8 | ATOM => {
            let len = u16::from_be_bytes([*bytes.get(1)?, *bytes.get(2)?]) as usize;
            bytes.get(3..3 + len)
        }
        _ => None,
    }
}

/// A proper list of `len` small integers (0..=255) written as `LIST_EXT` from
/// `start` becomes `STRING_EXT`, as `term_to_binary` writes charlists. The
/// caller knows every element was such an integer.
pub fn compact_string(out: &mut Vec<u8>, start: usize, len: usize) {
    if len == 0 || len > 65535 || out.len() != start + 5 + 2 * len + 1 || out.last() != Some(&NIL) {
        return;
    }
    let body = &out[start + 5..start + 5 + 2 * len];
    if !body.chunks(2).all(|c| c[0] == SMALL_INTEGER) {
        return;
    }
    let chars: Vec<u8> = body.chunks(2).map(|c| c[1]).collect();
    out.truncate(start);
    out.push(STRING);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&chars);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_take_the_smallest_encoding() {
        let mut out = Vec::new();
        integer(&mut out, 7);
        integer(&mut out, -1);
        integer(&mut out, 1 << 40);
        integer(&mut out, -(1 << 40));
        assert_eq!(
            out,
            [
                97, 7, //
                98, 255, 255, 255, 255, //
                110, 6, 0, 0, 0, 0, 0, 0, 1, //
                110, 6, 1, 0, 0, 0, 0, 0, 1
            ]
        );
    }

    #[test]
    fn a_list_of_bytes_becomes_a_string() {
        let mut out = vec![1, 2];
        out.extend_from_slice(&[LIST, 0, 0, 0, 2, 97, b'h', 97, b'i', NIL]);
        compact_string(&mut out, 2, 2);
        assert_eq!(out, [1, 2, STRING, 0, 2, b'h', b'i']);
        let mut mixed = vec![LIST, 0, 0, 0, 2, 97, b'h', 98, 0, 0, 1, 0, NIL];
        let before = mixed.clone();
        compact_string(&mut mixed, 0, 2);
        assert_eq!(mixed, before);
    }

    #[test]
    fn atom_text_reads_every_atom_encoding() {
        let mut out = Vec::new();
        atom(&mut out, "password");
        assert_eq!(atom_text(&out), Some(&b"password"[..]));
        assert_eq!(atom_text(&[ATOM, 0, 2, b'o', b'k']), Some(&b"ok"[..]));
        assert_eq!(atom_text(&[ATOM, 0, 9, b'o']), None);
    }
}
