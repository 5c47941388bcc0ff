//! Atoms: Elixir's quoting rules for an atom written as a literal (`:foo`,
//! `Foo.Bar`, `:"foo bar"`), as a keyword key and as a remote function name
//! (`Macro.inspect_atom/2`, `Macro.inner_classify/1`).

use super::escape::{default_escape, escape};
use super::unicode_ident::{
    looks_nfc, single_script, unicode_continue, unicode_start, unicode_upper,
};

/// `Macro.inspect_atom(:literal, atom)`.
pub(super) fn atom_literal(name: &str, out: &mut String) {
    if matches!(name, "nil" | "true" | "false") {
        out.push_str(name);
        return;
    }
    match classify_atom(name) {
        AtomClass::Alias => {
            if name == "Elixir" || name == "Elixir.Elixir" || name.starts_with("Elixir.Elixir.") {
                out.push_str(name);
            } else {
                out.push_str(&name["Elixir.".len()..]);
            }
        }
        AtomClass::Quoted => {
            out.push_str(":\"");
            escape(name.as_bytes(), b'"', None, default_escape, out);
            out.push('"');
        }
        AtomClass::Identifier | AtomClass::Unquoted => {
            out.push(':');
            out.push_str(name);
        }
    }
}

/// `Macro.inspect_atom(:key, atom)`: a keyword key, with its colon.
pub(super) fn atom_key(name: &str, out: &mut String) {
    match classify_atom(name) {
        AtomClass::Alias => {
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
        }
        AtomClass::Quoted => {
            out.push('"');
            escape(name.as_bytes(), b'"', None, default_escape, out);
            out.push_str("\":");
        }
        AtomClass::Identifier | AtomClass::Unquoted => {
            out.push_str(name);
            out.push(':');
        }
    }
}

/// `Macro.inspect_atom(:remote_call, atom)`: a function name after `Mod.`.
pub(super) fn atom_remote_call(name: &str, out: &mut String) {
    match inner_classify(name) {
        AtomKind::Identifier | AtomKind::UnquotedOperator | AtomKind::QuotedOperator => {
            out.push_str(name)
        }
        AtomKind::NotCallable | AtomKind::Alias => {
            out.push('"');
            out.push_str(name);
            out.push('"');
        }
        AtomKind::Other => {
            out.push('"');
            escape(name.as_bytes(), b'"', None, default_escape, out);
            out.push('"');
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtomClass {
    Alias,
    Identifier,
    Unquoted,
    Quoted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AtomKind {
    Alias,
    Identifier,
    UnquotedOperator,
    QuotedOperator,
    NotCallable,
    Other,
}

fn classify_atom(name: &str) -> AtomClass {
    match inner_classify(name) {
        AtomKind::Alias => AtomClass::Alias,
        AtomKind::Identifier => AtomClass::Identifier,
        AtomKind::UnquotedOperator | AtomKind::NotCallable => AtomClass::Unquoted,
        AtomKind::QuotedOperator | AtomKind::Other => AtomClass::Quoted,
    }
}

const NOT_CALLABLE: &[&str] = &["%", "%{}", "{}", "<<>>", "...", "..", ".", "..//", "->"];
const QUOTED_OPERATORS: &[&str] = &["::", "^^^", "~~~", "<|>"];
const UNARY_OPERATORS: &[&str] = &["&", "!", "^", "not", "+", "-", "~~~", "@"];
const BINARY_OPERATORS: &[&str] = &[
    "<-", "\\\\", "when", "::", "|", "=", "||", "|||", "or", "&&", "&&&", "and", "==", "!=", "=~",
    "===", "!==", "<", "<=", ">=", ">", "|>", "<<<", ">>>", "<~", "~>", "<<~", "~>>", "<~>", "<|>",
    "in", "^^^", "++", "--", "..", "<>", "+++", "---", "+", "-", "*", "/", "**", ".",
];

/// `Macro.inner_classify/1`.
pub(super) fn inner_classify(name: &str) -> AtomKind {
    if NOT_CALLABLE.contains(&name) {
        return AtomKind::NotCallable;
    }
    if QUOTED_OPERATORS.contains(&name) {
        return AtomKind::QuotedOperator;
    }
    if UNARY_OPERATORS.contains(&name) || BINARY_OPERATORS.contains(&name) {
        return AtomKind::UnquotedOperator;
    }
    if valid_alias(name) {
        return AtomKind::Alias;
    }
    match tokenize(name) {
        Some(tok) if !tok.identifier || tok.at => AtomKind::NotCallable,
        Some(tok) if tok.nfkc => AtomKind::Other,
        Some(_) => AtomKind::Identifier,
        None => AtomKind::Other,
    }
}

/// `Elixir` followed by any number of `.Upper[A-Za-z0-9_]*` segments.
fn valid_alias(name: &str) -> bool {
    let Some(mut rest) = name.strip_prefix("Elixir").map(str::as_bytes) else {
        return false;
    };
    while !rest.is_empty() {
        match rest {
            [b'.', c, tail @ ..] if c.is_ascii_uppercase() => {
                let n = tail
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                rest = &tail[n..];
            }
            _ => return false,
        }
    }
    true
}

struct Token {
    /// Lowercase/underscore start (an identifier rather than an alias or a
    /// capitalised Unicode atom).
    identifier: bool,
    /// Contains `@`.
    at: bool,
    /// Needed normalization (not in NFC/NFKC form).
    nfkc: bool,
}

/// `String.Tokenizer.tokenize/1`, requiring the whole atom to be one token.
fn tokenize(name: &str) -> Option<Token> {
    let chars: Vec<char> = name.chars().collect();
    let first = *chars.first()?;
    let mut tok = Token {
        identifier: true,
        at: false,
        nfkc: false,
    };
    let mut ascii_only = true;
    if first.is_ascii_uppercase() {
        tok.identifier = false;
    } else if first.is_ascii() {
        if !(first.is_ascii_lowercase() || first == '_') {
            return None;
        }
    } else if first == '\u{b5}' {
        // MICRO SIGN is accepted but normalized to GREEK SMALL LETTER MU.
        tok.nfkc = true;
        ascii_only = false;
    } else if unicode_upper(first) {
        tok.identifier = false;
        ascii_only = false;
    } else if unicode_start(first) {
        ascii_only = false;
    } else {
        return None;
    }
    let mut i = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '!' | '?' => {
                i += 1;
                break;
            }
            '@' => {
                tok.at = true;
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == '_' => i += 1,
            c if c.is_ascii() => break,
            '\u{b5}' => {
                tok.nfkc = true;
                ascii_only = false;
                i += 1;
            }
            c if unicode_start(c) || unicode_upper(c) || unicode_continue(c) => {
                ascii_only = false;
                i += 1;
            }
            _ => return None,
        }
    }
    if i < chars.len() {
        return None;
    }
    if !ascii_only {
        if !single_script(&chars) {
            return None;
        }
        if !looks_nfc(&chars) {
            tok.nfkc = true;
        }
    }
    Some(tok)
}

#[cfg(test)]
mod tests {
    use crate::inspect::inspect_atom;

    #[test]
    fn atoms() {
        for (name, want) in [
            ("foo", ":foo"),
            ("nil", "nil"),
            ("Elixir.Foo.Bar", "Foo.Bar"),
            ("Elixir.foo", ":\"Elixir.foo\""),
            ("foo bar", ":\"foo bar\""),
            ("+", ":+"),
            ("::", ":\"::\""),
            ("foo?", ":foo?"),
            ("foo?bar", ":\"foo?bar\""),
            ("Foo", ":Foo"),
            ("", ":\"\""),
            ("héllo", ":héllo"),
            ("aб", ":\"aб\""),
        ] {
            assert_eq!(inspect_atom(name), want, "{name}");
        }
    }
}
