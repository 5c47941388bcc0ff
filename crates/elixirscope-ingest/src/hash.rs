//! A small, fast, non-cryptographic hash of term bytes (for matching, not security).

/// Hashes `parts` (each with its length, so boundaries matter) under a domain tag.
pub fn hash(tag: u8, parts: &[&[u8]]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = tag as u64;
    let mut mix = |v: u64| h = (h.rotate_left(5) ^ v).wrapping_mul(K);
    for p in parts {
        mix(p.len() as u64);
        let mut chunks = p.chunks_exact(8);
        for c in &mut chunks {
            mix(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            mix(u64::from_le_bytes(buf));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn boundaries_and_tags_matter() {
        use super::hash;
        assert_ne!(hash(1, &[b"ab", b"c"]), hash(1, &[b"a", b"bc"]));
        assert_ne!(hash(1, &[b"abc"]), hash(2, &[b"abc"]));
        assert_eq!(
            hash(3, &[b"same bytes here!"]),
            hash(3, &[b"same bytes here!"])
        );
    }
}
