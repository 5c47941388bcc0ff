//! Structs: choosing how a struct prints (a stdlib special form, a derived
//! `Inspect` with `only:` or `optional:`, or `Inspect.Any`'s `%Mod{...}`), the
//! field order, and the fallback to a plain map when the keys do not match.

use super::atoms::{atom_key, atom_literal};
use super::calendar::{date_iso, naive_iso, time_iso};
use super::printer::{Ctx, Printer};
use super::stdlib_fields::{builtin_fields, MACRO_ENV_FIELDS, URI_FIELDS, VERSION_FIELDS};
use crate::Term;

impl Printer<'_> {
    pub(super) fn structure(&mut self, module: &str, entries: &[(Term, Term)], ctx: Ctx) {
        let done = match module {
            "Elixir.Range" => self.range(entries, ctx),
            "Elixir.MapSet" => self.map_set(entries, ctx),
            "Elixir.Date" => self.sigil_out("~D[", date_iso(entries), "]"),
            "Elixir.Time" => self.sigil_out("~T[", time_iso(entries), "]"),
            "Elixir.NaiveDateTime" => self.sigil_out("~N[", naive_iso(entries), "]"),
            "Elixir.DateTime" => self.date_time(entries),
            "Elixir.Date.Range" => self.date_range(entries),
            "Elixir.Regex" => self.regex(entries, ctx),
            "Elixir.Version.Requirement" => self.version_requirement(entries),
            "Elixir.Stream" => self.stream(entries, ctx),
            "Elixir.Macro.Env" => {
                self.derived_only(module, MACRO_ENV_FIELDS, entries, ctx);
                true
            }
            "Elixir.URI" => {
                self.derived_optional(
                    module,
                    URI_FIELDS,
                    &[("authority", FieldDefault::Nil)],
                    entries,
                    ctx,
                );
                true
            }
            "Elixir.Version" => {
                let optional = [
                    ("pre", FieldDefault::EmptyList),
                    ("build", FieldDefault::Nil),
                ];
                self.derived_optional(module, VERSION_FIELDS, &optional, entries, ctx);
                true
            }
            _ => false,
        };
        if !done {
            self.default_struct(module, entries, ctx);
        }
    }

    /// `Inspect.Any`: `%Mod{field: value, ...}` in declared field order.
    fn default_struct(&mut self, module: &str, entries: &[(Term, Term)], ctx: Ctx) {
        let known: Option<Vec<&str>> = match self.opts.struct_fields.get(module) {
            Some(fields) => Some(fields.iter().map(String::as_str).collect()),
            None => builtin_fields(module).map(<[&str]>::to_vec),
        };
        match known {
            Some(fields) => {
                let fields: Vec<&str> =
                    fields.into_iter().filter(|f| !is_hidden_field(f)).collect();
                if !keys_match(entries, &fields) {
                    self.plain_map(entries, ctx);
                    return;
                }
                self.fields_container(module, &fields, entries, ctx);
            }
            None => {
                let fields: Option<Vec<&str>> = entries.iter().map(|(k, _)| k.as_atom()).collect();
                match fields {
                    Some(fields) => {
                        let fields: Vec<&str> =
                            fields.into_iter().filter(|f| !is_hidden_field(f)).collect();
                        self.fields_container(module, &fields, entries, ctx);
                    }
                    // Only atoms can be struct fields.
                    None => self.plain_map(entries, ctx),
                }
            }
        }
    }

    fn fields_container(
        &mut self,
        module: &str,
        fields: &[&str],
        entries: &[(Term, Term)],
        ctx: Ctx,
    ) {
        let mut open = String::from("%");
        atom_literal(module, &mut open);
        open.push('{');
        self.container(&open, fields, "}", ctx, |p, field, c| {
            atom_key(field, &mut p.out);
            p.out.push(' ');
            match field_value(entries, field) {
                Some(v) => p.term(v, c),
                None => p.out.push_str("nil"),
            }
        });
    }

    /// A struct deriving `Inspect` with `optional:`: fields equal to their
    /// default are left out.
    fn derived_optional(
        &mut self,
        module: &str,
        fields: &[&str],
        optional: &[(&str, FieldDefault)],
        entries: &[(Term, Term)],
        ctx: Ctx,
    ) {
        let shown: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|f| match optional.iter().find(|(name, _)| name == f) {
                Some((_, default)) => {
                    let value = field_value(entries, f);
                    !default.matches(value)
                }
                None => true,
            })
            .collect();
        self.fields_container(module, &shown, entries, ctx);
    }

    /// A struct deriving `Inspect` with `only:`: `#Mod<field: value, ..., ...>`.
    fn derived_only(&mut self, module: &str, fields: &[&str], entries: &[(Term, Term)], ctx: Ctx) {
        let mut open = String::from("#");
        atom_literal(module, &mut open);
        open.push('<');
        let mut items: Vec<Option<&str>> = fields.iter().copied().map(Some).collect();
        items.push(None);
        self.container(&open, &items, ">", ctx, |p, item, c| match item {
            Some(field) => {
                atom_key(field, &mut p.out);
                p.out.push(' ');
                match field_value(entries, field) {
                    Some(v) => p.term(v, c),
                    None => p.out.push_str("nil"),
                }
            }
            None => p.out.push_str("..."),
        });
    }
}

pub(super) fn struct_module(entries: &[(Term, Term)]) -> Option<&str> {
    entries.iter().find_map(|(k, v)| match (k, v) {
        (Term::Atom(k), Term::Atom(m)) if k == "__struct__" => Some(m.as_str()),
        _ => None,
    })
}

pub(super) fn field_value<'t>(entries: &'t [(Term, Term)], field: &str) -> Option<&'t Term> {
    entries.iter().find_map(|(k, v)| match k {
        Term::Atom(a) if a == field => Some(v),
        _ => None,
    })
}

fn is_hidden_field(name: &str) -> bool {
    name == "__struct__" || name == "__exception__"
}

/// Whether the struct's keys are exactly the declared fields (Elixir prints a
/// struct whose keys differ from its definition as a plain map).
fn keys_match(entries: &[(Term, Term)], fields: &[&str]) -> bool {
    let mut keys = Vec::with_capacity(entries.len());
    for (k, _) in entries {
        match k {
            Term::Atom(a) if is_hidden_field(a) => {}
            Term::Atom(a) => keys.push(a.as_str()),
            _ => return false,
        }
    }
    let mut declared = fields.to_vec();
    keys.sort_unstable();
    declared.sort_unstable();
    keys == declared
}

/// The default value of an optional field of a derived `Inspect`.
#[derive(Clone, Copy)]
enum FieldDefault {
    Nil,
    EmptyList,
}

impl FieldDefault {
    /// Whether the field holds its default (a missing field reads as `nil`).
    fn matches(self, value: Option<&Term>) -> bool {
        match self {
            FieldDefault::Nil => match value {
                None => true,
                Some(v) => v.as_atom() == Some("nil"),
            },
            FieldDefault::EmptyList => value
                .and_then(Term::as_list)
                .is_some_and(<[Term]>::is_empty),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inspect::{inspect, InspectOptions};
    use crate::Term;

    fn show(t: &Term) -> String {
        inspect(t, &InspectOptions::default())
    }

    #[test]
    fn structs_use_registered_field_order() {
        let s = Term::Map(vec![
            (Term::atom("__struct__"), Term::atom("Elixir.S")),
            (Term::atom("a"), Term::Integer(1)),
            (Term::atom("z"), Term::Integer(2)),
        ]);
        assert_eq!(show(&s), "%S{a: 1, z: 2}");
        let mut opts = InspectOptions::default();
        opts.struct_fields
            .insert("Elixir.S".into(), vec!["z".into(), "a".into()]);
        assert_eq!(inspect(&s, &opts), "%S{z: 2, a: 1}");
        opts.struct_fields
            .insert("Elixir.S".into(), vec!["z".into()]);
        assert_eq!(inspect(&s, &opts), "%{__struct__: S, a: 1, z: 2}");
    }
}
