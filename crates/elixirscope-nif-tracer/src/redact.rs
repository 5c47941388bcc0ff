//! Redaction rules, applied while events are encoded on the scheduler, so no
//! secret is ever written to a ring. The rules and their results are the same
//! as the process tracer's (`elixirscope_redact.erl`): a value is replaced by
//! `"[REDACTED]"` when it sits under a secret-looking key, in a field of a listed
//! struct, at a listed argument position, looks like a card number, matches one
//! of the capture's value patterns (`--redact-value`: binaries, strings written
//! as lists of bytes, and atoms), or is nested deeper than 64 levels.

/// Which rule replaced a value (index into the per-ring counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Key = 0,
    Struct = 1,
    Argument = 2,
    Card = 3,
    Value = 4,
    Depth = 5,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::Key,
        Rule::Struct,
        Rule::Argument,
        Rule::Card,
        Rule::Value,
        Rule::Depth,
    ];

    /// The rule's name in the session's redaction counts.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Key => "key",
            Rule::Struct => "struct",
            Rule::Argument => "argument",
            Rule::Card => "card",
            Rule::Value => "value",
            Rule::Depth => "depth",
        }
    }
}

use regex::bytes::Regex;

/// What replaces a redacted value.
pub const MARK: &[u8] = b"[REDACTED]";
/// What replaces results when call values are not captured.
pub const NOT_CAPTURED: &[u8] = b"[not captured]";
/// Terms nested deeper than this are replaced whole.
pub const MAX_DEPTH: u32 = 64;

/// The rules of one capture. Atoms are kept as their term words (atoms are
/// never garbage collected, so the word names the atom for the node's life).
#[derive(Debug, Default, Clone)]
pub struct Rules {
    /// Redaction on at all (off only when whoever started the capture said so).
    pub enabled: bool,
    /// Lower-case secret key fragments.
    pub keys: Vec<Vec<u8>>,
    /// Struct modules whose fields are all replaced.
    pub structs: Vec<u64>,
    /// (module, function, arity, 1-based positions) whose arguments are replaced.
    pub args: Vec<(u64, u64, usize, Vec<usize>)>,
    /// Card-number detection.
    pub cards: bool,
    /// Value patterns (`--redact-value`), compiled once per capture.
    pub values: Vec<Regex>,
}

/// Compiles a value pattern as the capture uses it: on bytes, with Unicode
/// classes off (as Erlang's `re` matches a binary), and a bounded program size.
pub fn value_rule(pattern: &str) -> Result<Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
}

impl Rules {
    /// Whether a key's text contains one of the secret fragments (ASCII
    /// case-insensitive). Binary keys longer than 128 bytes never match.
    pub fn secret_text(&self, text: &[u8]) -> bool {
        if self.keys.is_empty() || text.len() > 255 {
            return false;
        }
        let mut lower = [0u8; 255];
        let lower = &mut lower[..text.len()];
        for (l, c) in lower.iter_mut().zip(text) {
            *l = c.to_ascii_lowercase();
        }
        self.keys
            .iter()
            .any(|k| !k.is_empty() && lower.windows(k.len()).any(|w| w == &k[..]))
    }

    /// Whether some bytes match a value pattern.
    pub fn secret_value(&self, bytes: &[u8]) -> bool {
        self.values.iter().any(|re| re.is_match(bytes))
    }

    /// Listed argument positions of `m:f/arity`.
    pub fn positions(&self, m: u64, f: u64, arity: usize) -> &[usize] {
        self.args
            .iter()
            .find(|(am, af, aa, _)| *am == m && *af == f && *aa == arity)
            .map(|(_, _, _, p)| &p[..])
            .unwrap_or(&[])
    }

    pub fn is_struct(&self, module: u64) -> bool {
        self.structs.contains(&module)
    }
}

/// 13-19 digits, optionally grouped by spaces or dashes, passing the Luhn check.
pub fn looks_like_card(b: &[u8]) -> bool {
    if b.len() < 13 || b.len() > 23 {
        return false;
    }
    let mut digits = [0u8; 23];
    let mut n = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                digits[n] = c - b'0';
                n += 1;
            }
            b' ' | b'-' => {}
            _ => return false,
        }
    }
    if !(13..=19).contains(&n) {
        return false;
    }
    let sum: u32 = digits[..n]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = d as u32;
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_match_case_insensitively_anywhere_in_the_key() {
        let r = Rules {
            enabled: true,
            keys: vec![b"password".to_vec(), b"token".to_vec()],
            ..Default::default()
        };
        assert!(r.secret_text(b"password"));
        assert!(r.secret_text(b"DB_Password_hash"));
        assert!(r.secret_text(b"api_token"));
        assert!(!r.secret_text(b"name"));
        assert!(!r.secret_text(b"pass"));
    }

    #[test]
    fn card_numbers_need_the_luhn_check() {
        assert!(looks_like_card(b"4111111111111111"));
        assert!(looks_like_card(b"4111 1111 1111 1111"));
        assert!(looks_like_card(b"4111-1111-1111-1111"));
        assert!(!looks_like_card(b"4111111111111112"));
        assert!(!looks_like_card(b"411111111111"));
        assert!(!looks_like_card(b"4111x111111111111"));
    }

    #[test]
    fn value_patterns_match_bytes_anywhere_and_bad_ones_are_refused() {
        let r = Rules {
            enabled: true,
            values: vec![value_rule("sk_live_[0-9a-z]+").unwrap()],
            ..Default::default()
        };
        assert!(r.secret_value(b"key sk_live_abc123 here"));
        assert!(!r.secret_value(b"sk_test_abc"));
        assert!(r.secret_value(b"\xff\xfe sk_live_1"));
        assert!(value_rule("(unclosed").is_err());
    }

    #[test]
    fn argument_positions_are_per_function_and_arity() {
        let r = Rules {
            args: vec![(1, 2, 2, vec![2])],
            ..Default::default()
        };
        assert_eq!(r.positions(1, 2, 2), &[2]);
        assert!(r.positions(1, 2, 3).is_empty());
    }
}
