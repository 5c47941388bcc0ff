//! Printing terms exactly as Elixir's `inspect/2` prints them.
//!
//! This module owns the Elixir 1.14 rendering rules for every kind of [`Term`]:
//! atoms (with Elixir's quoting rules), integers of any size, floats (shortest
//! round-trip digits, switching between decimal and scientific notation at the
//! same points as the BEAM), strings and their escapes, bitstrings, charlists,
//! keyword lists, improper lists, tuples, maps, structs (including the stdlib
//! structs whose `Inspect` implementation differs from the default), pids, ports,
//! references and funs. Output is always a single line, as with
//! `inspect(term, limit: ..., printable_limit: ...)` (no pretty printing).
//!
//! Where the term alone does not carry what Elixir would consult at run time the
//! output is the closest faithful form:
//! - struct field order comes from the struct module (`__info__(:struct)`); it is
//!   taken from [`InspectOptions::struct_fields`], then from a built-in table of
//!   stdlib structs, and otherwise the fields print in the order they appear in
//!   the map (for maps of up to 32 keys that is alphabetical, which matches every
//!   struct whose fields are declared alphabetically). A map whose `__struct__`
//!   is an Elixir alias always prints as `%Mod{...}`, even where Elixir would fall
//!   back to `%{__struct__: Mod, ...}` because the module is not loaded; a map
//!   whose `__struct__` is any other atom prints as a plain map. Custom
//!   `Inspect` implementations of non-stdlib structs are not known;
//! - a local closure prints as `#Function<Index.Uniq/Arity in Mod>`: Elixir
//!   appends `.name/arity` of the enclosing function, which is not part of the
//!   external term format, and prints closures compiled for a script
//!   (`elixir_compiler_*` modules) as `in file:...`;
//! - a pid, port or reference on another node is numbered by its position in
//!   [`InspectOptions::other_nodes`] (1-based); nodes not listed there are
//!   numbered after them in the order they are first printed. The BEAM numbers
//!   them by an internal table slot instead;
//! - atoms containing non-ASCII characters are classified with approximations of
//!   the Unicode identifier tables Elixir uses (letters via the Unicode
//!   `Alphabetic`/`Uppercase` properties less the common compatibility
//!   characters, a coarse script check by Unicode block, and an NFC check that
//!   knows the precomposed forms of ASCII, Greek and Cyrillic letters); rare
//!   characters outside those can be quoted differently;
//! - where Elixir would raise (a list that passes the charlist check only
//!   because `printable_limit` stopped it early but is not valid chardata, a
//!   stdlib struct with invalid fields) the output is the plain list or the
//!   plain struct respectively.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{BigInt, Fun, Term};

/// How to print terms.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// The node whose pids, ports and references print with node index 0.
    pub local_node: Option<String>,
    /// Other nodes, in the order they should be numbered (1, 2, ...).
    pub other_nodes: Vec<String>,
    /// Maximum number of collection items printed (`None` = unlimited).
    pub limit: Option<usize>,
    /// Maximum characters of a string/charlist printed (`None` = unlimited).
    ///
    /// As in Elixir, the count is in characters, not bytes (an escaped `#{`
    /// counts once).
    pub printable_limit: Option<usize>,
    /// Declared field order of structs, keyed by the module atom as it appears in
    /// `__struct__` (e.g. `"Elixir.MyApp.User"`), without `__struct__` and
    /// `__exception__`. A struct whose keys do not match its entry prints as a
    /// plain map, as Elixir does. Entries here take precedence over the built-in
    /// stdlib table.
    pub struct_fields: BTreeMap<String, Vec<String>>,
}

impl InspectOptions {
    /// Elixir's default limits (`limit: 50`, `printable_limit: 4096`).
    pub fn elixir_defaults() -> InspectOptions {
        InspectOptions {
            limit: Some(50),
            printable_limit: Some(4096),
            ..InspectOptions::default()
        }
    }
}

/// Prints `term` as Elixir's `inspect(term)` would.
pub fn inspect(term: &Term, opts: &InspectOptions) -> String {
    let mut p = Printer {
        opts,
        extra_nodes: Vec::new(),
        out: String::new(),
    };
    p.term(
        term,
        Ctx {
            limit: opts.limit,
            as_lists: false,
        },
    );
    p.out
}

/// Prints an atom the way Elixir writes it as a literal (`:foo`, `Foo.Bar`,
/// `:"foo bar"`, `nil`).
pub fn inspect_atom(name: &str) -> String {
    let mut out = String::new();
    atom_literal(name, &mut out);
    out
}

/// Whether `name` is a plain identifier atom (usable as `map.name`).
pub(crate) fn is_identifier_atom(name: &str) -> bool {
    inner_classify(name) == AtomKind::Identifier
}

// ---------------------------------------------------------------------------
// Printer

#[derive(Clone, Copy)]
struct Ctx {
    /// Remaining item budget for collections (`None` = infinity).
    limit: Option<usize>,
    /// Set inside `MapSet.new(...)`: lists never print as charlists.
    as_lists: bool,
}

impl Ctx {
    fn with_limit(self, limit: Option<usize>) -> Ctx {
        Ctx { limit, ..self }
    }
}

fn decrement(limit: Option<usize>) -> Option<usize> {
    limit.map(|l| l.saturating_sub(1))
}

struct Printer<'a> {
    opts: &'a InspectOptions,
    /// Nodes not in `opts.other_nodes`, numbered after them on first sight.
    extra_nodes: Vec<String>,
    out: String,
}

impl Printer<'_> {
    fn term(&mut self, t: &Term, ctx: Ctx) {
        match t {
            Term::Atom(a) => atom_literal(a, &mut self.out),
            Term::Integer(i) => {
                let _ = write!(self.out, "{i}");
            }
            Term::BigInteger(b) => self.out.push_str(&bigint_to_decimal(b)),
            Term::Float(f) => self.out.push_str(&format_float(*f)),
            Term::Binary(b) => self.binary(b, ctx),
            Term::BitBinary { bytes, bits } => self.bitstring(bytes, Some(*bits), ctx),
            Term::List { .. } => {
                let (items, tail) = flatten_list(t);
                self.list(&items, tail, ctx);
            }
            Term::Tuple(items) => {
                self.container("{", items, "}", ctx, |p, item, c| p.term(item, c));
            }
            Term::Map(entries) => self.map(entries, ctx),
            Term::Pid(pid) => {
                let n = self.node_index(&pid.node);
                let _ = write!(self.out, "#PID<{n}.{}.{}>", pid.id, pid.serial);
            }
            Term::Port(port) => {
                let n = self.node_index(&port.node);
                let _ = write!(self.out, "#Port<{n}.{}>", port.id);
            }
            Term::Reference(r) => {
                // `erlang:ref_to_list/1` prints the words most significant first,
                // which is the reverse of their order in the external format.
                let n = self.node_index(&r.node);
                let _ = write!(self.out, "#Reference<{n}");
                for id in r.ids.iter().rev() {
                    let _ = write!(self.out, ".{id}");
                }
                self.out.push('>');
            }
            Term::Fun(f) => self.fun(f),
        }
    }

    fn node_index(&mut self, node: &str) -> usize {
        match &self.opts.local_node {
            None => return 0,
            Some(local) if local == node => return 0,
            Some(_) => {}
        }
        if let Some(i) = self.opts.other_nodes.iter().position(|n| n == node) {
            return i + 1;
        }
        let base = self.opts.other_nodes.len();
        if let Some(i) = self.extra_nodes.iter().position(|n| n == node) {
            return base + i + 1;
        }
        self.extra_nodes.push(node.to_string());
        base + self.extra_nodes.len()
    }

    fn fun(&mut self, f: &Fun) {
        match f {
            Fun::External {
                module,
                function,
                arity,
            } => {
                self.out.push('&');
                atom_literal(module, &mut self.out);
                self.out.push('.');
                atom_remote_call(function, &mut self.out);
                let _ = write!(self.out, "/{arity}");
            }
            Fun::Local {
                module,
                arity,
                index,
                old_uniq,
                ..
            } => {
                let _ = write!(self.out, "#Function<{index}.{old_uniq}/{arity} in ");
                atom_literal(module, &mut self.out);
                self.out.push('>');
            }
        }
    }

    /// Elixir's `container_doc/6` on one line: items joined by `", "`, and
    /// `...` once the limit is used up. Each item is printed with the limit
    /// left after counting it.
    fn container<T>(
        &mut self,
        open: &str,
        items: &[T],
        close: &str,
        ctx: Ctx,
        mut each: impl FnMut(&mut Self, &T, Ctx),
    ) {
        self.out.push_str(open);
        let mut limit = ctx.limit;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            if limit == Some(0) {
                self.out.push_str("...");
                break;
            }
            limit = decrement(limit);
            each(self, item, ctx.with_limit(limit));
        }
        self.out.push_str(close);
    }

    fn binary(&mut self, bytes: &[u8], ctx: Ctx) {
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
    fn bitstring(&mut self, bytes: &[u8], bits: Option<u8>, ctx: Ctx) {
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

    fn list(&mut self, items: &[&Term], tail: Option<&Term>, ctx: Ctx) {
        if items.is_empty() {
            match tail {
                // Not producible by the BEAM; a list cell with no items is its tail.
                Some(t) => self.term(t, ctx),
                None => self.out.push_str("[]"),
            }
            return;
        }
        if !ctx.as_lists && self.charlist(items, tail) {
            return;
        }
        if tail.is_none() && is_keyword(items) {
            self.container("[", items, "]", ctx, |p, item, c| {
                if let Term::Tuple(kv) = item {
                    p.keyword_pair(&kv[0], &kv[1], c);
                }
            });
            return;
        }
        self.out.push('[');
        let mut limit = ctx.limit;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            if limit == Some(0) {
                self.out.push_str("...");
                break;
            }
            limit = decrement(limit);
            self.term(item, ctx.with_limit(limit));
            if i + 1 == items.len() {
                if let Some(t) = tail {
                    self.out.push_str(" | ");
                    self.term(t, ctx.with_limit(limit));
                }
            }
        }
        self.out.push(']');
    }

    /// Prints the list as `'...'` if Elixir would (printable ASCII up to
    /// `printable_limit`); returns whether it did.
    fn charlist(&mut self, items: &[&Term], tail: Option<&Term>) -> bool {
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

    fn keyword_pair(&mut self, key: &Term, value: &Term, ctx: Ctx) {
        if let Term::Atom(k) = key {
            atom_key(k, &mut self.out);
        }
        self.out.push(' ');
        self.term(value, ctx);
    }

    fn map(&mut self, entries: &[(Term, Term)], ctx: Ctx) {
        match struct_module(entries) {
            Some(module) if module.starts_with("Elixir.") => self.structure(module, entries, ctx),
            _ => self.plain_map(entries, ctx),
        }
    }

    fn plain_map(&mut self, entries: &[(Term, Term)], ctx: Ctx) {
        let keyword = entries
            .iter()
            .all(|(k, _)| matches!(k, Term::Atom(a) if !a.starts_with("Elixir.")));
        self.container("%{", entries, "}", ctx, |p, (k, v), c| {
            if keyword {
                p.keyword_pair(k, v, c);
            } else {
                p.term(k, c);
                p.out.push_str(" => ");
                p.term(v, c);
            }
        });
    }

    fn structure(&mut self, module: &str, entries: &[(Term, Term)], ctx: Ctx) {
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

    fn range(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let (Some(first), Some(last)) =
            (field_value(entries, "first"), field_value(entries, "last"))
        else {
            return false;
        };
        let step = match field_value(entries, "step") {
            Some(step) => step.clone(),
            // Ranges from before steps existed: the step follows the direction.
            None => match compare_integers(first, last) {
                Some(std::cmp::Ordering::Greater) => Term::Integer(-1),
                Some(_) => Term::Integer(1),
                None => return false,
            },
        };
        self.term(first, ctx);
        self.out.push_str("..");
        self.term(last, ctx);
        let ascending = matches!(
            compare_integers(last, first),
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        );
        if !(step == Term::Integer(1) && ascending) {
            self.out.push_str("//");
            self.term(&step, ctx);
        }
        true
    }

    fn map_set(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let Some(Term::Map(set)) = field_value(entries, "map") else {
            return false;
        };
        let items: Vec<&Term> = set.iter().map(|(k, _)| k).collect();
        self.out.push_str("MapSet.new(");
        self.list(
            &items,
            None,
            Ctx {
                as_lists: true,
                ..ctx
            },
        );
        self.out.push(')');
        true
    }

    fn sigil_out(&mut self, open: &str, body: Option<String>, close: &str) -> bool {
        match body {
            Some(body) => {
                self.out.push_str(open);
                self.out.push_str(&body);
                self.out.push_str(close);
                true
            }
            None => false,
        }
    }

    fn date_time(&mut self, entries: &[(Term, Term)]) -> bool {
        let Some(body) = datetime_iso(entries) else {
            return false;
        };
        let utc = field_value(entries, "utc_offset") == Some(&Term::Integer(0))
            && field_value(entries, "std_offset") == Some(&Term::Integer(0))
            && field_value(entries, "time_zone") == Some(&Term::string("Etc/UTC"));
        if utc {
            let _ = write!(self.out, "~U[{body}]");
        } else {
            let _ = write!(self.out, "#DateTime<{body}>");
        }
        true
    }

    fn date_range(&mut self, entries: &[(Term, Term)]) -> bool {
        let first = field_value(entries, "first").and_then(date_struct_iso);
        let last = field_value(entries, "last").and_then(date_struct_iso);
        let step = field_value(entries, "step").and_then(Term::as_i64);
        let (Some(first), Some(last), Some(step)) = (first, last, step) else {
            return false;
        };
        let _ = write!(self.out, "Date.range(~D[{first}], ~D[{last}]");
        if step != 1 {
            let _ = write!(self.out, ", {step}");
        }
        self.out.push(')');
        true
    }

    fn regex(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let Some(Term::Binary(source)) = field_value(entries, "source") else {
            return false;
        };
        match field_value(entries, "opts") {
            Some(Term::Binary(flags)) => {
                let normalized = normalize_regex_source(source);
                self.out.push_str("~r/");
                escape(&normalized, b'/', None, regex_escape, &mut self.out);
                self.out.push('/');
                self.out.push_str(&String::from_utf8_lossy(flags));
                true
            }
            Some(opts @ Term::List { .. }) => {
                self.out.push_str("Regex.compile!(");
                self.binary(source, ctx);
                self.out.push_str(", ");
                let (items, tail) = flatten_list(opts);
                self.list(&items, tail, ctx);
                self.out.push(')');
                true
            }
            _ => false,
        }
    }

    fn version_requirement(&mut self, entries: &[(Term, Term)]) -> bool {
        let Some(Term::Binary(source)) = field_value(entries, "source") else {
            return false;
        };
        self.out.push_str("Version.parse_requirement!(\"");
        self.out.push_str(&String::from_utf8_lossy(source));
        self.out.push_str("\")");
        true
    }

    fn stream(&mut self, entries: &[(Term, Term)], ctx: Ctx) -> bool {
        let (Some(enumerable), Some(funs)) =
            (field_value(entries, "enum"), field_value(entries, "funs"))
        else {
            return false;
        };
        let Some(funs) = funs.as_list() else {
            return false;
        };
        // Prints `#Stream<[enum: enum, funs: reversed_funs]>`: a keyword list of
        // two entries, built here without copying the enumerable.
        let reversed: Vec<&Term> = funs.iter().rev().collect();
        self.out.push_str("#Stream<[");
        let mut limit = ctx.limit;
        for (i, key) in ["enum", "funs"].into_iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            if limit == Some(0) {
                self.out.push_str("...");
                break;
            }
            limit = decrement(limit);
            self.out.push_str(key);
            self.out.push_str(": ");
            if i == 0 {
                self.term(enumerable, ctx.with_limit(limit));
            } else {
                self.list(&reversed, None, ctx.with_limit(limit));
            }
        }
        self.out.push_str("]>");
        true
    }
}

/// Items and improper tail of a list, following nested list tails (which the
/// BEAM never produces, but a hand-built [`Term`] may hold).
fn flatten_list(t: &Term) -> (Vec<&Term>, Option<&Term>) {
    let mut items = Vec::new();
    let mut cur = t;
    loop {
        match cur {
            Term::List { items: xs, tail } => {
                items.extend(xs.iter());
                match tail {
                    None => return (items, None),
                    Some(next) => cur = next,
                }
            }
            other => return (items, Some(other)),
        }
    }
}

fn is_keyword(items: &[&Term]) -> bool {
    items.iter().all(|item| match item {
        Term::Tuple(kv) if kv.len() == 2 => {
            matches!(&kv[0], Term::Atom(a) if !a.starts_with("Elixir."))
        }
        _ => false,
    })
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

fn struct_module(entries: &[(Term, Term)]) -> Option<&str> {
    entries.iter().find_map(|(k, v)| match (k, v) {
        (Term::Atom(k), Term::Atom(m)) if k == "__struct__" => Some(m.as_str()),
        _ => None,
    })
}

fn field_value<'t>(entries: &'t [(Term, Term)], field: &str) -> Option<&'t Term> {
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

/// Orders two integer terms (small or big).
fn compare_integers(a: &Term, b: &Term) -> Option<std::cmp::Ordering> {
    fn key(t: &Term) -> Option<(bool, Vec<u8>)> {
        // (negative, big-endian magnitude without leading zeros)
        match t {
            Term::Integer(i) => {
                let mag = i.unsigned_abs().to_be_bytes();
                let skip = mag.iter().take_while(|&&b| b == 0).count();
                Some((*i < 0, mag[skip..].to_vec()))
            }
            Term::BigInteger(b) => {
                let mut mag: Vec<u8> = b.magnitude_le.iter().rev().copied().collect();
                let skip = mag.iter().take_while(|&&x| x == 0).count();
                mag.drain(..skip);
                Some((b.negative && !mag.is_empty(), mag))
            }
            _ => None,
        }
    }
    let (an, am) = key(a)?;
    let (bn, bm) = key(b)?;
    let mag = am.len().cmp(&bm.len()).then_with(|| am.cmp(&bm));
    Some(match (an, bn) {
        (false, false) => mag,
        (true, true) => mag.reverse(),
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
    })
}

// ---------------------------------------------------------------------------
// Stdlib structs

const MACRO_ENV_FIELDS: &[&str] = &[
    "aliases",
    "context",
    "context_modules",
    "file",
    "function",
    "functions",
    "lexical_tracker",
    "line",
    "macro_aliases",
    "macros",
    "module",
    "requires",
];

const URI_FIELDS: &[&str] = &[
    "scheme",
    "authority",
    "userinfo",
    "host",
    "port",
    "path",
    "query",
    "fragment",
];

const VERSION_FIELDS: &[&str] = &["major", "minor", "patch", "pre", "build"];

/// Declared field order of stdlib structs printed by `Inspect.Any` whose fields
/// are not declared alphabetically (Elixir 1.14).
fn builtin_fields(module: &str) -> Option<&'static [&'static str]> {
    Some(match module {
        "Elixir.BadArityError" => &["function", "args"],
        "Elixir.BadBooleanError" => &["term", "operator"],
        "Elixir.CompileError" => &["file", "line", "description"],
        "Elixir.Config.Provider" => &[
            "providers",
            "config_path",
            "extra_config",
            "prune_runtime_sys_config_after_boot",
            "reboot_system_after_config",
            "validate_compile_env",
        ],
        "Elixir.DynamicSupervisor" => &[
            "args",
            "extra_arguments",
            "mod",
            "name",
            "strategy",
            "max_children",
            "max_restarts",
            "max_seconds",
            "children",
            "restarts",
        ],
        "Elixir.EEx.SyntaxError" => &["message", "file", "line", "column"],
        "Elixir.ExUnit.AssertionError" => &[
            "left", "right", "message", "expr", "args", "doctest", "context",
        ],
        "Elixir.ExUnit.Test" => &["name", "case", "module", "state", "time", "tags", "logs"],
        "Elixir.File.CopyError" | "Elixir.File.RenameError" => {
            &["reason", "source", "destination", "on", "action"]
        }
        "Elixir.File.Error" => &["reason", "path", "action"],
        "Elixir.File.LinkError" => &["reason", "existing", "new", "action"],
        "Elixir.File.Stat" => &[
            "size",
            "type",
            "access",
            "atime",
            "mtime",
            "ctime",
            "mode",
            "links",
            "major_device",
            "minor_device",
            "inode",
            "uid",
            "gid",
        ],
        "Elixir.File.Stream" => &["path", "modes", "line_or_bytes", "raw"],
        "Elixir.FunctionClauseError" => &["module", "function", "arity", "kind", "args", "clauses"],
        "Elixir.IEx.State" => &[
            "parser_state",
            "counter",
            "prefix",
            "on_eof",
            "evaluator_options",
            "previous_state",
        ],
        "Elixir.IO.Stream" => &["device", "raw", "line_or_bytes"],
        "Elixir.IO.StreamError" => &["reason", "message"],
        "Elixir.KeyError" => &["key", "term", "message"],
        "Elixir.Mix.Dep" => &[
            "scm",
            "app",
            "requirement",
            "status",
            "opts",
            "deps",
            "top_level",
            "extra",
            "manager",
            "from",
            "system_env",
        ],
        "Elixir.Mix.ElixirVersionError" => &["target", "expected", "actual", "message", "mix"],
        "Elixir.Mix.InvalidTaskError" | "Elixir.Mix.NoTaskError" => &["task", "message", "mix"],
        "Elixir.Mix.Release" => &[
            "name",
            "version",
            "path",
            "version_path",
            "applications",
            "boot_scripts",
            "erts_source",
            "erts_version",
            "config_providers",
            "options",
            "overlays",
            "steps",
        ],
        "Elixir.Mix.Task.Compiler.Diagnostic" => &[
            "file",
            "severity",
            "message",
            "position",
            "compiler_name",
            "details",
        ],
        "Elixir.Protocol.UndefinedError" => &["protocol", "value", "description"],
        "Elixir.SyntaxError" => &["file", "line", "column", "snippet", "description"],
        "Elixir.TokenMissingError" => &["file", "line", "snippet", "column", "description"],
        "Elixir.URI.Error" => &["action", "reason", "part"],
        "Elixir.UndefinedFunctionError" => &["module", "function", "arity", "reason", "message"],
        _ => return None,
    })
}

fn int_field(entries: &[(Term, Term)], name: &str) -> Option<i64> {
    field_value(entries, name).and_then(Term::as_i64)
}

fn is_iso_calendar(entries: &[(Term, Term)]) -> bool {
    field_value(entries, "calendar").and_then(Term::as_atom) == Some("Elixir.Calendar.ISO")
}

/// `Calendar.ISO`'s zero padding (a minus sign precedes the padded digits).
fn zero_pad(value: i64, width: usize) -> String {
    if value < 0 {
        format!("-{:0width$}", value.unsigned_abs())
    } else {
        format!("{value:0width$}")
    }
}

fn date_iso(entries: &[(Term, Term)]) -> Option<String> {
    if !is_iso_calendar(entries) {
        return None;
    }
    let year = int_field(entries, "year")?;
    let month = int_field(entries, "month")?;
    let day = int_field(entries, "day")?;
    Some(format!(
        "{}-{}-{}",
        zero_pad(year, 4),
        zero_pad(month, 2),
        zero_pad(day, 2)
    ))
}

fn date_struct_iso(t: &Term) -> Option<String> {
    match t {
        Term::Map(entries) if struct_module(entries) == Some("Elixir.Date") => date_iso(entries),
        _ => None,
    }
}

fn time_iso(entries: &[(Term, Term)]) -> Option<String> {
    if !is_iso_calendar(entries) {
        return None;
    }
    time_part(entries)
}

fn time_part(entries: &[(Term, Term)]) -> Option<String> {
    let hour = int_field(entries, "hour").filter(|h| (0..=23).contains(h))?;
    let minute = int_field(entries, "minute").filter(|m| (0..=59).contains(m))?;
    let second = int_field(entries, "second").filter(|s| (0..=59).contains(s))?;
    let (micro, precision) = match field_value(entries, "microsecond")?.as_tuple()? {
        [Term::Integer(v), Term::Integer(p)]
            if (0..=999_999).contains(v) && (0..=6).contains(p) =>
        {
            (*v, *p as usize)
        }
        _ => return None,
    };
    let mut s = format!(
        "{}:{}:{}",
        zero_pad(hour, 2),
        zero_pad(minute, 2),
        zero_pad(second, 2)
    );
    if precision > 0 {
        s.push('.');
        s.push_str(&zero_pad(micro, 6)[..precision]);
    }
    Some(s)
}

fn naive_iso(entries: &[(Term, Term)]) -> Option<String> {
    let date = date_iso(entries)?;
    let time = time_part(entries)?;
    Some(format!("{date} {time}"))
}

fn datetime_iso(entries: &[(Term, Term)]) -> Option<String> {
    let base = naive_iso(entries)?;
    let Term::Binary(zone) = field_value(entries, "time_zone")? else {
        return None;
    };
    let Term::Binary(abbr) = field_value(entries, "zone_abbr")? else {
        return None;
    };
    let utc = int_field(entries, "utc_offset")?;
    let std = int_field(entries, "std_offset")?;
    let zone = String::from_utf8_lossy(zone);
    let abbr = String::from_utf8_lossy(abbr);
    if utc == 0 && std == 0 && zone == "Etc/UTC" {
        return Some(format!("{base}Z"));
    }
    let total = utc + std;
    let secs = total.abs();
    let sign = if total < 0 { '-' } else { '+' };
    let mut s = format!(
        "{base}{sign}{}:{}",
        zero_pad(secs / 3600, 2),
        zero_pad(secs % 3600 / 60, 2)
    );
    if zone != "Etc/UTC" {
        let _ = write!(s, " {abbr} {zone}");
    }
    Some(s)
}

/// `Inspect.Regex`: `\\` stays, `\/` becomes `/` (it is escaped again later).
fn normalize_regex_source(source: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(source.len());
    let mut i = 0;
    while i < source.len() {
        match (source[i], source.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.extend_from_slice(b"\\\\");
                i += 2;
            }
            (b'\\', Some(b'/')) => {
                out.push(b'/');
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Strings and escapes

/// Decodes one UTF-8 scalar value at the start of `bytes`.
fn decode_utf8(bytes: &[u8]) -> Option<(char, usize)> {
    let len = match *bytes.first()? {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(bytes.get(..len)?).ok()?;
    s.chars().next().map(|c| (c, len))
}

fn unicode_printable(c: u32) -> bool {
    (0xA0..=0xD7FF).contains(&c)
        || (0xE000..=0xFFFD).contains(&c)
        || (0x10000..=0x10FFFF).contains(&c)
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

fn default_escape(c: char) -> Option<&'static str> {
    Some(match c {
        '\x07' => "\\a",
        '\x08' => "\\b",
        '\x7f' => "\\d",
        '\x1b' => "\\e",
        '\x0c' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\x0b' => "\\v",
        '\\' => "\\\\",
        _ => return None,
    })
}

fn regex_escape(c: char) -> Option<&'static str> {
    Some(match c {
        '\x07' => "\\a",
        '\x0c' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\x0b' => "\\v",
        _ => return None,
    })
}

/// `Code.Identifier.escape/4`: escapes up to `limit` characters of `bytes` for
/// printing between `quote` characters; returns whether anything was left.
fn escape(
    bytes: &[u8],
    quote: u8,
    limit: Option<usize>,
    map: fn(char) -> Option<&'static str>,
    out: &mut String,
) -> bool {
    let mut i = 0;
    let mut count = limit;
    while i < bytes.len() {
        if count == Some(0) {
            return true;
        }
        let b = bytes[i];
        if b == quote {
            out.push('\\');
            out.push(b as char);
            i += 1;
        } else if b == b'#' && bytes.get(i + 1) == Some(&b'{') {
            out.push_str("\\#{");
            i += 2;
        } else if let Some((c, len)) = decode_utf8(&bytes[i..]) {
            match map(c) {
                Some(e) => out.push_str(e),
                None => escape_char(c, out),
            }
            i += len;
        } else {
            let _ = write!(out, "\\x{b:02X}");
            i += 1;
        }
        count = decrement(count);
    }
    false
}

fn escape_char(c: char, out: &mut String) {
    let v = c as u32;
    if v == 0 {
        out.push_str("\\0");
    } else if v == 0xFEFF {
        out.push_str("\\uFEFF");
    } else if (0x20..=0x7E).contains(&v) || unicode_printable(v) {
        out.push(c);
    } else if v < 0x100 {
        let _ = write!(out, "\\x{v:02X}");
    } else if v < 0x10000 {
        let _ = write!(out, "\\x{{{v:04X}}}");
    } else {
        let _ = write!(out, "\\x{{{v:06X}}}");
    }
}

// ---------------------------------------------------------------------------
// Numbers

fn bigint_to_decimal(b: &BigInt) -> String {
    let mut limbs: Vec<u32> = b
        .magnitude_le
        .chunks(4)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (8 * i))
        })
        .collect();
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    if limbs.is_empty() {
        return "0".to_string();
    }
    // Repeated division by 10^9, least significant chunk first.
    let mut chunks = Vec::new();
    while !limbs.is_empty() {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | *limb as u64;
            *limb = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut s = String::new();
    if b.negative {
        s.push('-');
    }
    let mut iter = chunks.iter().rev();
    if let Some(first) = iter.next() {
        let _ = write!(s, "{first}");
    }
    for chunk in iter {
        let _ = write!(s, "{chunk:09}");
    }
    s
}

/// `Inspect.Float` (Elixir 1.14): integral values in `[1, 1e16)` print as
/// `<integer>.0`; everything else as `:erlang.float_to_binary(f, [:short])`.
fn format_float(f: f64) -> String {
    if !f.is_finite() {
        // Not representable on the BEAM.
        return format!("{f}");
    }
    let a = f.abs();
    if (1.0..1.0e16).contains(&a) && a.trunc() == a {
        return format!("{}.0", f as i64);
    }
    float_short(f)
}

/// `:erlang.float_to_binary(f, [:short])`: the shortest digits that read back
/// as `f`, in decimal or scientific notation by the BEAM's switch-over rules.
fn float_short(f: f64) -> String {
    let mut s = String::new();
    if f.is_sign_negative() {
        s.push('-');
    }
    if f == 0.0 {
        s.push_str("0.0");
        return s;
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let sci_exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let olength = digits.len() as i32;
    let output: u64 = digits.parse().unwrap_or(0);
    let ryu_exp = sci_exp - (olength - 1);
    let (lower, upper) = if olength == 1 {
        (-4, 2)
    } else if sci_exp >= 10 {
        (-(olength + 2), 2)
    } else {
        (-(olength + 2), 1)
    };
    let beyond_2_53 = (output >= 1 << 53 && ryu_exp == 0)
        || (output > (1u64 << 52) / 5 && ryu_exp == 1)
        || (output > (1u64 << 51) / 25 && ryu_exp == 2);
    if lower <= ryu_exp && ryu_exp <= upper && !beyond_2_53 {
        let whole = olength + ryu_exp;
        if ryu_exp >= 0 {
            s.push_str(&digits);
            s.push_str(&"0".repeat(ryu_exp as usize));
            s.push_str(".0");
        } else if whole > 0 {
            s.push_str(&digits[..whole as usize]);
            s.push('.');
            s.push_str(&digits[whole as usize..]);
        } else {
            s.push_str("0.");
            s.push_str(&"0".repeat((-whole) as usize));
            s.push_str(&digits);
        }
    } else {
        s.push_str(&digits[..1]);
        s.push('.');
        if olength == 1 {
            s.push('0');
        } else {
            s.push_str(&digits[1..]);
        }
        let _ = write!(s, "e{sci_exp}");
    }
    s
}

// ---------------------------------------------------------------------------
// Atoms

/// `Macro.inspect_atom(:literal, atom)`.
fn atom_literal(name: &str, out: &mut String) {
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
fn atom_key(name: &str, out: &mut String) {
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
fn atom_remote_call(name: &str, out: &mut String) {
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
enum AtomKind {
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
fn inner_classify(name: &str) -> AtomKind {
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

fn unicode_upper(c: char) -> bool {
    !c.is_ascii() && c.is_uppercase() && !restricted(c)
}

fn unicode_start(c: char) -> bool {
    !c.is_ascii()
        && c.is_alphabetic()
        && !c.is_uppercase()
        && !is_combining_mark(c)
        && !restricted(c)
}

fn unicode_continue(c: char) -> bool {
    !c.is_ascii() && (c.is_alphanumeric() || is_combining_mark(c)) && !restricted(c)
}

/// Compatibility characters Elixir does not allow in identifiers (ligatures,
/// digraphs, superscripts, letterlike symbols, Roman numerals, fullwidth
/// forms): a small part of Unicode's restricted identifier characters.
fn restricted(c: char) -> bool {
    matches!(c as u32,
        0x00AA | 0x00B2 | 0x00B3 | 0x00B9 | 0x00BA | 0x00BC..=0x00BE | 0x0132 | 0x0133
        | 0x013F | 0x0140 | 0x0149 | 0x017F | 0x01C4..=0x01CC | 0x01F1..=0x01F3
        | 0x2070..=0x209F | 0x2100..=0x218F | 0x2460..=0x24FF | 0xFB00..=0xFB4F
        | 0xFF00..=0xFFEF)
}

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A | 0x064B..=0x065F
        | 0x0900..=0x0903 | 0x093A..=0x093C | 0x093E..=0x094F | 0x0951..=0x0957
        | 0x0962 | 0x0963 | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0x3099 | 0x309A | 0xFE20..=0xFE2F)
}

/// Whether the atom is in NFC form, as far as a base letter followed by a
/// combining mark that has a precomposed form tells (only ASCII, basic Greek
/// and basic Cyrillic bases are known).
fn looks_nfc(chars: &[char]) -> bool {
    !chars.windows(2).any(|w| composes(w[0], w[1]))
}

fn composes(base: char, mark: char) -> bool {
    let bases = match mark as u32 {
        0x300 => "AEINOUWYaeinouwyΑΕΗΙΟΥΩαεηιουωЕИеи",
        0x301 => "ACEGIKLMNOPRSUWYZacegiklmnoprsuwyzΑΕΗΙΟΥΩαεηιουωГКгк",
        0x302 => "ACEGHIJOSUWYZaceghijosuwyz",
        0x303 => "AEINOUVYaeinouvy",
        0x304 => "AEGIOUYaegiouyΑΙΥαιυИУиу",
        0x306 => "AEGIOUaegiouΑΙΥαιυАЕЖИУаежиу",
        0x307 => "ABCDEFGHIMNOPRSTWXYZabcdefghmnoprstwxyz",
        0x308 => "AEHIOUWXYaehiotuwxyΙΥιυАЕЖЗИОУЧЫЭаежзиоучыэ",
        0x309 => "AEIOUYaeiouy",
        0x30A => "AUauwy",
        0x30B => "OUouУу",
        0x30C => "ACDEGHIKLNORSTUZacdeghijklnorstuz",
        0x30F | 0x311 => "AEIORUaeioru",
        0x313 => "ΑΕΗΙΟΩαεηιορυω",
        0x314 => "ΑΕΗΙΟΡΥΩαεηιορυω",
        0x31B => "OUou",
        0x323 => "ABDEHIKLMNORSTUVWYZabdehiklmnorstuvwyz",
        0x324 => "Uu",
        0x325 => "Aa",
        0x326 => "STst",
        0x327 => "CDEGHKLNRSTcdeghklnrst",
        0x328 => "AEIOUaeiou",
        0x32D => "DELNTUdelntu",
        0x32E => "Hh",
        0x330 => "EIUeiu",
        0x331 => "BDKLNRTZbdhklnrtz",
        0x342 => "αηιυω",
        0x345 => "ΑΗΩάήαηω",
        _ => return false,
    };
    bases.contains(base)
}

mod script {
    pub const LATIN: u32 = 1 << 0;
    pub const GREEK: u32 = 1 << 1;
    pub const CYRILLIC: u32 = 1 << 2;
    pub const ARMENIAN: u32 = 1 << 3;
    pub const HEBREW: u32 = 1 << 4;
    pub const ARABIC: u32 = 1 << 5;
    pub const DEVANAGARI: u32 = 1 << 6;
    pub const THAI: u32 = 1 << 7;
    pub const GEORGIAN: u32 = 1 << 8;
    pub const HANGUL: u32 = 1 << 9;
    pub const HIRAGANA: u32 = 1 << 10;
    pub const KATAKANA: u32 = 1 << 11;
    pub const BOPOMOFO: u32 = 1 << 12;
    pub const HAN: u32 = 1 << 13;
    pub const HAN_BOPOMOFO: u32 = 1 << 14;
    pub const JAPANESE: u32 = 1 << 15;
    pub const KOREAN: u32 = 1 << 16;
    /// Common/inherited or unknown: compatible with every script.
    pub const ALL: u32 = u32::MAX;
}

/// The (augmented) script set of a character, coarsely by Unicode block.
fn script_set(c: char) -> u32 {
    use script::*;
    if c.is_ascii_alphabetic() {
        return LATIN;
    }
    match c as u32 {
        0x00C0..=0x02AF | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F => {
            if c.is_alphabetic() {
                LATIN
            } else {
                ALL
            }
        }
        // MICRO SIGN normalizes to GREEK SMALL LETTER MU, which Elixir lets
        // mix with any script.
        0x03BC => ALL,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => GREEK,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => CYRILLIC,
        0x0530..=0x058F => ARMENIAN,
        0x0590..=0x05FF => HEBREW,
        0x0600..=0x06FF | 0x0750..=0x077F => ARABIC,
        0x0900..=0x097F => DEVANAGARI,
        0x0E00..=0x0E7F => THAI,
        0x10A0..=0x10FF => GEORGIAN,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => HANGUL | KOREAN,
        0x3040..=0x309F => HIRAGANA | JAPANESE,
        0x30A0..=0x30FF | 0x31F0..=0x31FF => KATAKANA | JAPANESE,
        0x3100..=0x312F => BOPOMOFO | HAN_BOPOMOFO,
        0x3005..=0x3007
        | 0x3021..=0x3029
        | 0x3038..=0x303B
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FFFF => HAN | HAN_BOPOMOFO | JAPANESE | KOREAN,
        _ => ALL,
    }
}

/// Elixir rejects identifiers mixing scripts unless they fit one of the
/// "highly restrictive" combinations (Latin with Japanese, Chinese or Korean).
fn single_script(chars: &[char]) -> bool {
    use script::*;
    let sets: Vec<u32> = chars
        .iter()
        .map(|&c| {
            if c.is_ascii_digit() || c == '_' {
                ALL
            } else {
                script_set(c)
            }
        })
        .collect();
    if sets.iter().fold(ALL, |acc, s| acc & s) != 0 {
        return true;
    }
    [LATIN | JAPANESE, LATIN | HAN_BOPOMOFO, LATIN | KOREAN]
        .iter()
        .any(|r| sets.iter().all(|s| s & r != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pid, Port, Reference};

    fn show(t: &Term) -> String {
        inspect(t, &InspectOptions::default())
    }

    fn pid(node: &str, id: u32) -> Term {
        Term::Pid(Pid {
            node: node.into(),
            id,
            serial: 0,
            creation: 1,
        })
    }

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

    #[test]
    fn floats_switch_notation_like_the_beam() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.0e20, "1.0e20"),
            (1.0e-5, "1.0e-5"),
            (1.2345678901234568e17, "1.2345678901234568e17"),
            (1.0e15, "1000000000000000.0"),
            (1.0e16, "1.0e16"),
            (0.0001, "0.0001"),
            (1.2e-4, "1.2e-4"),
            (-0.0, "-0.0"),
            (100000000000000.25, "100000000000000.25"),
        ] {
            assert_eq!(format_float(f), want, "{f:e}");
        }
    }

    #[test]
    fn big_integers() {
        let b = BigInt {
            negative: true,
            magnitude_le: vec![0, 0, 0, 0, 0, 0, 0, 0, 1],
        };
        assert_eq!(bigint_to_decimal(&b), "-18446744073709551616");
    }

    #[test]
    fn remote_nodes_are_numbered() {
        let opts = InspectOptions {
            local_node: Some("a@h".into()),
            other_nodes: vec!["b@h".into()],
            ..InspectOptions::default()
        };
        let t = Term::Tuple(vec![
            pid("a@h", 1),
            pid("b@h", 2),
            pid("z@h", 3),
            Term::Port(Port {
                node: "y@h".into(),
                id: 4,
                creation: 1,
            }),
            Term::Reference(Reference {
                node: "z@h".into(),
                creation: 1,
                ids: vec![3, 2, 1],
            }),
        ]);
        assert_eq!(
            inspect(&t, &opts),
            "{#PID<0.1.0>, #PID<1.2.0>, #PID<2.3.0>, #Port<3.4>, #Reference<2.1.2.3>}"
        );
        // Without a local node everything is local.
        assert_eq!(show(&pid("z@h", 9)), "#PID<0.9.0>");
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

    #[test]
    fn limits() {
        let l = Term::list((1..=5).map(Term::Integer).collect());
        let opts = InspectOptions {
            limit: Some(2),
            ..InspectOptions::default()
        };
        assert_eq!(inspect(&l, &opts), "[1, 2, ...]");
        let s = Term::string("abcdef");
        let opts = InspectOptions {
            printable_limit: Some(3),
            ..InspectOptions::default()
        };
        assert_eq!(inspect(&s, &opts), "\"abc\" <> ...");
    }

    #[test]
    fn deep_nesting_prints() {
        let mut t = Term::Integer(1);
        for i in 0..crate::etf::MAX_DEPTH {
            t = if i % 2 == 0 {
                Term::list(vec![t])
            } else {
                Term::Tuple(vec![t])
            };
        }
        // Test threads get 2 MiB of stack by default; ask for no more.
        let s = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || show(&t))
            .unwrap()
            .join()
            .unwrap();
        assert!(s.starts_with("{[{["));
    }
}
