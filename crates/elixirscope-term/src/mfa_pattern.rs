//! Call patterns (module/function/arity) in Elixir or Erlang syntax.
//!
//! | written as                      | means                                   |
//! |---------------------------------|-----------------------------------------|
//! | `MyApp.Counter.handle_call/3`   | `'Elixir.MyApp.Counter':handle_call/3`  |
//! | `MyApp.Repo._/_`, `MyApp.Repo`  | every function of `'Elixir.MyApp.Repo'` |
//! | `Enum.map/_`                    | `map` at any arity                      |
//! | `:lists.reverse/1`              | `lists:reverse/1`                       |
//! | `lists:reverse/1`, `lists:_/_`  | Erlang syntax, same meanings            |
//!
//! The module is always named; `_` (or `*`) stands for any function or arity.

use crate::Term;
use serde::{Deserialize, Serialize};

/// Why a pattern could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pattern '{pattern}': {why}; write Module.function/arity (Elixir) or module:function/arity (Erlang), e.g. MyApp.Repo.insert/2, MyApp.Repo._/_ or lists:reverse/1")]
pub struct PatternError {
    pub pattern: String,
    pub why: String,
}

/// A parsed call pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallPattern {
    /// Module atom as the VM knows it (`Elixir.MyApp.Repo`, `lists`).
    pub module: String,
    /// `None` = any function.
    pub function: Option<String>,
    /// `None` = any arity.
    pub arity: Option<u8>,
}

impl CallPattern {
    /// Parses a pattern written in Elixir or Erlang syntax.
    pub fn parse(text: &str) -> Result<CallPattern, PatternError> {
        let bad = |why: &str| PatternError {
            pattern: text.to_owned(),
            why: why.to_owned(),
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(bad("it is empty"));
        }
        let (body, arity) = match t.rsplit_once('/') {
            Some((b, a)) => (
                b,
                Some(parse_arity(a).ok_or_else(|| bad("the arity must be a number 0-255 or _"))?),
            ),
            None => (t, None),
        };
        let (module, function) = if let Some(rest) = body.strip_prefix(':') {
            // :lists.reverse (Elixir calling an Erlang module)
            match rest.split_once('.') {
                Some((m, f)) => (
                    erlang_atom(m).ok_or_else(|| bad("the module is not a valid atom"))?,
                    Some(f),
                ),
                None => (
                    erlang_atom(rest).ok_or_else(|| bad("the module is not a valid atom"))?,
                    None,
                ),
            }
        } else if let Some((m, f)) = body.split_once(':') {
            (
                erlang_atom(m).ok_or_else(|| bad("the module is not a valid atom"))?,
                Some(f),
            )
        } else {
            // Elixir: Alias.Parts.function or Alias.Parts
            let (alias, func) = match body.rsplit_once('.') {
                Some((a, f)) if !starts_upper(f) => (a, Some(f)),
                _ => (body, None),
            };
            if alias.is_empty() || !alias.split('.').all(is_alias_segment) {
                return Err(bad("the module must be an Elixir alias like MyApp.Repo or an Erlang module like :lists"));
            }
            (format!("Elixir.{alias}"), func)
        };
        let function = match function {
            None => None,
            Some("_") | Some("*") => None,
            Some(f) if is_function_name(f) => Some(f.to_owned()),
            Some(_) => return Err(bad("the function name is not valid")),
        };
        let arity = arity.flatten();
        if function.is_none() && arity.is_some() {
            return Err(bad("an arity needs a function name"));
        }
        Ok(CallPattern {
            module,
            function,
            arity,
        })
    }

    /// Whether the pattern covers `module:function/arity`.
    pub fn matches(&self, module: &str, function: &str, arity: u8) -> bool {
        self.module == module
            && self.function.as_deref().is_none_or(|f| f == function)
            && self.arity.is_none_or(|a| a == arity)
    }

    /// `{Module, Function | '_', Arity | '_'}` for the agent.
    pub fn to_term(&self) -> Term {
        Term::Tuple(vec![
            Term::atom(&self.module),
            Term::atom(self.function.as_deref().unwrap_or("_")),
            match self.arity {
                Some(a) => Term::Integer(a as i64),
                None => Term::atom("_"),
            },
        ])
    }
}

impl std::fmt::Display for CallPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let module = match self.module.strip_prefix("Elixir.") {
            Some(alias) => alias.to_owned(),
            None => format!(":{}", self.module),
        };
        let function = self.function.as_deref().unwrap_or("_");
        match self.arity {
            Some(a) => write!(f, "{module}.{function}/{a}"),
            None => write!(f, "{module}.{function}/_"),
        }
    }
}

/// A module or registered-name target for state capture (`MyApp.Counter`, `:my_server`).
pub fn parse_atom_target(text: &str) -> Result<String, PatternError> {
    let bad = || PatternError {
        pattern: text.to_owned(),
        why: "expected a module (MyApp.Counter, :gen_mod) or a registered name (:my_server)".into(),
    };
    let t = text.trim();
    if let Some(rest) = t.strip_prefix(':') {
        return erlang_atom(rest).ok_or_else(bad);
    }
    if t.split('.').all(is_alias_segment) && !t.is_empty() {
        return Ok(format!("Elixir.{t}"));
    }
    erlang_atom(t).ok_or_else(bad)
}

fn parse_arity(a: &str) -> Option<Option<u8>> {
    match a {
        "_" | "*" => Some(None),
        n => n.parse::<u8>().ok().map(Some),
    }
}

fn starts_upper(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
}

fn is_alias_segment(s: &str) -> bool {
    starts_upper(s) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_function_name(f: &str) -> bool {
    let mut chars = f.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c == '_' => {}
        _ => return false,
    }
    let body: Vec<char> = chars.collect();
    let (last, init) = match body.split_last() {
        Some((l, i)) => (Some(*l), i),
        None => (None, &[][..]),
    };
    init.iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '@')
        && last.is_none_or(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '?' | '!'))
}

/// An Erlang atom, plain (`lists`) or quoted (`'Elixir.Foo'`).
fn erlang_atom(a: &str) -> Option<String> {
    if let Some(inner) = a.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return (!inner.is_empty() && !inner.contains('\'')).then(|| inner.to_owned());
    }
    if let Some(inner) = a.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return (!inner.is_empty()).then(|| inner.to_owned());
    }
    let ok = a.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@');
    ok.then(|| a.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, Option<String>, Option<u8>) {
        let c = CallPattern::parse(s).unwrap();
        (c.module, c.function, c.arity)
    }

    #[test]
    fn elixir_and_erlang_syntax() {
        assert_eq!(
            p("MyApp.Counter.handle_call/3"),
            (
                "Elixir.MyApp.Counter".into(),
                Some("handle_call".into()),
                Some(3)
            )
        );
        assert_eq!(
            p("MyApp.Repo._/_"),
            ("Elixir.MyApp.Repo".into(), None, None)
        );
        assert_eq!(p("MyApp.Repo"), ("Elixir.MyApp.Repo".into(), None, None));
        assert_eq!(
            p("Enum.map/_"),
            ("Elixir.Enum".into(), Some("map".into()), None)
        );
        assert_eq!(
            p(":lists.reverse/1"),
            ("lists".into(), Some("reverse".into()), Some(1))
        );
        assert_eq!(
            p("lists:reverse/1"),
            ("lists".into(), Some("reverse".into()), Some(1))
        );
        assert_eq!(p("lists:_/_"), ("lists".into(), None, None));
        assert_eq!(
            p("'Elixir.Foo':bar/0"),
            ("Elixir.Foo".into(), Some("bar".into()), Some(0))
        );
        assert_eq!(
            p("Kernel.valid?/1"),
            ("Elixir.Kernel".into(), Some("valid?".into()), Some(1))
        );
        assert_eq!(
            CallPattern::parse("MyApp.Counter.handle_call/3")
                .unwrap()
                .to_string(),
            "MyApp.Counter.handle_call/3"
        );
    }

    #[test]
    fn malformed_patterns_are_rejected_with_the_reason() {
        for bad in [
            "",
            "foo(",
            "MyApp.Repo.insert/x",
            "lists:/1",
            "my app.x/1",
            "_._/_",
            "lists:reverse/300",
        ] {
            let e = CallPattern::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("malformed pattern"), "{bad}: {e}");
        }
    }

    #[test]
    fn state_targets() {
        assert_eq!(
            parse_atom_target("MyApp.Counter").unwrap(),
            "Elixir.MyApp.Counter"
        );
        assert_eq!(parse_atom_target(":my_server").unwrap(), "my_server");
        assert_eq!(parse_atom_target("my_server").unwrap(), "my_server");
        assert!(parse_atom_target("no way").is_err());
    }
}
