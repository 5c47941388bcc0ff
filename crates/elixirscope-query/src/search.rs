//! The filter language shared by the command line and the UI's search box.
//!
//! [`FilterSpec`] holds a filter as text, exactly as `elixirscope events` takes
//! it in flags (`--from`, `--to`, `--pid`, `--kind`, `--mfa`, `--match`);
//! [`FilterSpec::parse`] reads the same flags from one line of text
//! (`--kind send,receive --pid Demo.Bank`, or the short form `kind:send pid:Demo.Bank`,
//! bare words meaning `--match`); [`Session::filter`] resolves it against a
//! session into an [`EventFilter`].

use crate::filter::{parse_kinds, EventFilter};
use crate::{QueryError, Session};
use elixirscope_term::CallPattern;

/// A filter as people write it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    pub from: Option<String>,
    pub to: Option<String>,
    pub pids: Vec<String>,
    pub kind: Option<String>,
    pub mfa: Option<String>,
    pub text: Option<String>,
}

/// Splits a line into words; single or double quotes group words, a
/// backslash escapes the next character inside double quotes.
fn words(line: &str) -> Result<Vec<String>, QueryError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => {
                            if let Some(n) = chars.next() {
                                cur.push(n);
                            }
                        }
                        Some(other) => cur.push(other),
                        None => {
                            return Err(QueryError::BadFilter(format!(
                                "unclosed {c} quote in '{line}'"
                            )))
                        }
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

impl FilterSpec {
    /// Parses a search line: the `elixirscope events` flags, `key:value`
    /// words for the same keys, and bare words as text to match.
    pub fn parse(line: &str) -> Result<FilterSpec, QueryError> {
        let mut spec = FilterSpec::default();
        let mut bare: Vec<String> = Vec::new();
        let mut it = words(line)?.into_iter();
        while let Some(w) = it.next() {
            let (key, value) = if let Some(flag) = w.strip_prefix("--") {
                match flag.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => {
                        let v = it.next().ok_or_else(|| {
                            QueryError::BadFilter(format!("--{flag} needs a value"))
                        })?;
                        (flag.to_owned(), v)
                    }
                }
            } else if let Some((k, v)) = w
                .split_once(':')
                .filter(|(k, _)| KEYS.contains(k) && !w.starts_with(':'))
            {
                (k.to_owned(), v.to_owned())
            } else {
                bare.push(w);
                continue;
            };
            match key.as_str() {
                "from" => spec.from = Some(value),
                "to" => spec.to = Some(value),
                "pid" => spec.pids.push(value),
                "kind" => spec.kind = Some(value),
                "mfa" => spec.mfa = Some(value),
                "match" => spec.text = Some(value),
                other => {
                    return Err(QueryError::BadFilter(format!(
                        "unknown filter '{other}'; use {}",
                        KEYS.join(", ")
                    )))
                }
            }
        }
        if !bare.is_empty() {
            let joined = bare.join(" ");
            spec.text = Some(match spec.text.take() {
                Some(t) => format!("{t} {joined}"),
                None => joined,
            });
        }
        Ok(spec)
    }
}

/// The filter keys, as flags (`--kind`) or words (`kind:`).
const KEYS: &[&str] = &["from", "to", "pid", "kind", "mfa", "match"];

impl Session {
    /// Resolves a filter's text against this session: moments, processes
    /// (every process that held a name), kinds and MFA pattern.
    pub fn filter(
        &self,
        spec: &FilterSpec,
        limit: usize,
        last: bool,
    ) -> Result<EventFilter, QueryError> {
        let mut f = EventFilter {
            limit,
            last,
            text: spec.text.clone(),
            ..Default::default()
        };
        if let Some(t) = &spec.from {
            f.from = Some(self.parse_time(t)?);
        }
        if let Some(t) = &spec.to {
            f.to = Some(self.parse_time(t)?);
        }
        for p in &spec.pids {
            f.pids.extend(self.resolve_all(p)?);
        }
        if let Some(k) = &spec.kind {
            f.kinds = parse_kinds(k)?;
        }
        if let Some(m) = &spec.mfa {
            f.mfa = Some(CallPattern::parse(m)?);
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_words_and_bare_text_parse_alike() {
        let a =
            FilterSpec::parse("--kind send,receive --pid Demo.Bank --mfa 'Demo.*' hello").unwrap();
        let b = FilterSpec::parse("kind:send,receive pid:Demo.Bank mfa:Demo.* hello").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.kind.as_deref(), Some("send,receive"));
        assert_eq!(a.pids, vec!["Demo.Bank"]);
        assert_eq!(a.text.as_deref(), Some("hello"));
        let c = FilterSpec::parse("--from=+1s to:+2s \"two words\" --pid <0.85.0>").unwrap();
        assert_eq!(c.from.as_deref(), Some("+1s"));
        assert_eq!(c.to.as_deref(), Some("+2s"));
        assert_eq!(c.text.as_deref(), Some("two words"));
        assert_eq!(c.pids, vec!["<0.85.0>"]);
    }

    #[test]
    fn atoms_and_unknown_keys() {
        // `:ok` is text to match, not a key.
        assert_eq!(
            FilterSpec::parse(":ok").unwrap().text.as_deref(),
            Some(":ok")
        );
        // An unknown word with a colon is text too; an unknown flag is an error.
        assert_eq!(
            FilterSpec::parse("Elixir.Foo:bar").unwrap().text.as_deref(),
            Some("Elixir.Foo:bar")
        );
        let e = FilterSpec::parse("--colour red").unwrap_err().to_string();
        assert!(e.contains("unknown filter 'colour'"), "{e}");
        let e = FilterSpec::parse("--kind").unwrap_err().to_string();
        assert!(e.contains("--kind needs a value"), "{e}");
        let e = FilterSpec::parse("\"open").unwrap_err().to_string();
        assert!(e.contains("unclosed"), "{e}");
    }
}
