//! Checks `inspect` against Elixir 1.14 itself.
//!
//! An Elixir script builds a corpus of terms, writes each one's
//! `:erlang.term_to_binary/1` and `inspect/2` output (both hex encoded, one
//! tab-separated record per line), and these tests decode every term and
//! require our output to be byte-identical. The script also reports the
//! declared field order of the structs it defines, which is passed in through
//! `InspectOptions::struct_fields` exactly as a caller that knows its structs
//! would.
//!
//! Record kinds: `V` Elixir version, `S` struct fields, `T` a term printed with
//! no limits, `L` a term printed with `limit`/`printable_limit`, `F` a local
//! closure with its `Function.info/1` fields (Elixir adds the enclosing
//! function's name, which the external term format does not carry, so only the
//! rest must match).

use std::process::Command;
use std::sync::OnceLock;

use elixirscope_term::{decode, inspect, Fun, InspectOptions, Pid, Term};

const SCRIPT: &str = r###"defmodule S do
  defstruct [:a, :b]
end

defmodule T do
  defstruct [:z, :a, m: 1]
end

defmodule E do
  defexception [:message, :code]
end

defmodule Big do
  defstruct Enum.map(1..40, &:"f#{&1}")
end

defmodule Funs do
  def add, do: fn x, y -> x + y end
  def capture(z), do: fn -> z end
  def private_capture, do: &helper/1
  def nested, do: fn -> fn a -> a end end
  defp helper(x), do: x
end

defmodule Corpus do
  def hex(bin), do: Base.encode16(bin)

  def emit(fields), do: IO.puts(Enum.join(fields, "\t"))

  def show(term, limit \\ :infinity, plimit \\ :infinity) do
    inspect(term, limit: limit, printable_limit: plimit)
  end

  def lim(:infinity), do: "inf"
  def lim(n), do: Integer.to_string(n)

  def random_floats do
    :rand.seed(:exsss, {101, 202, 303})

    bits =
      for _ <- 1..400,
          <<_::1, exp::11, _::52>> = b = <<:rand.uniform(0xFFFFFFFFFFFFFFFF)::64>>,
          exp != 2047 do
        <<f::float>> = b
        f
      end

    scaled =
      for _ <- 1..300 do
        sign = if :rand.uniform(2) == 1, do: 1, else: -1
        sign * :rand.uniform() * :math.pow(10, :rand.uniform(60) - 30)
      end

    short = for _ <- 1..100, do: :rand.uniform(100_000) / Enum.random([1, 10, 100, 1000, 1.0e6, 1.0e-6])
    bits ++ scaled ++ short
  end

  # Random atoms, each printed as a literal, a keyword key and a function name.
  def random_atoms do
    :rand.seed(:exsss, {7, 8, 9})
    pool = String.to_charlist("aZ_09?!@. -+*/<>=|&^~%{}[]:\"\\#xyE") ++ [?é, ?Ω, ?ж, ?日, ?µ, 0x301, ?ß, ?İ, ?\n]

    for _ <- 1..400 do
      len = :rand.uniform(4)
      atom = List.to_atom(for _ <- 1..len, do: Enum.random(pool))
      {atom, [{atom, 1}], Function.capture(Some.Mod, atom, 0)}
    end
  end
end

defmodule Run do
def run do
{:ok, agent} = Agent.start(fn -> 0 end)

exact = [
  # atoms
  :foo, nil, true, false, :"Elixir.Foo.Bar", Foo.Bar, :"foo bar", :+, :-, :"::", :"..//", :..,
  :..., :%{}, :%, :{}, :<<>>, :->, :"//", :\\, :|, :"^^^", :"~~~", :"<|>", :when, :not, :in,
  :"=>", :"?", :foo?, :foo!, :"foo?bar", :foo@bar, :"@foo", :@, :"1a", :"", :Elixir,
  :"Elixir.Elixir.Foo", :"Elixir.foo", :"Elixir.Foo.bar", :Foo, :_, :_foo, :héllo, :Élan,
  :日本, :Ωμεγα, :"Ωmega", :"aб", :"µ", :"a\u0301b", :"foo\"bar", :"a\nb", :"a#{"#"}{b}",
  :"with\\backslash", :"tab\t", :"\u0000", :"é",
  # integers
  0, 1, -1, 255, 256, -256, 2_147_483_647, -2_147_483_648, 2_147_483_648, 4_294_967_296,
  9_223_372_036_854_775_807, -9_223_372_036_854_775_808, 9_223_372_036_854_775_808,
  18_446_744_073_709_551_616, -18_446_744_073_709_551_617, Integer.pow(10, 40),
  -Integer.pow(2, 100), 123_456_789_012_345_678_901_234_567_890, Integer.pow(7, 200),
  # floats
  0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, -2.25, 100.0, 123.456, 1.0e15, 1.0e16, 1.0e17, 1.0e20,
  1.0e21, 1.0e22, 1.0e23, 1.0e100, 1.0e-3, 1.0e-4, 1.0e-5, 1.2e-4, 2.5e-5, 1.0e-10, 5.0e-324,
  2.2250738585072014e-308, 1.7976931348623157e308, 1.2345678901234568e17, 9.007199254740992e15,
  9.007199254740993e15, 9.999999999999998e15, 1.0000000000000002e16, 4.503599627370496e15,
  123_456_789.0, 1.5e300, -7.0e-7, 3.141592653589793, 2.718281828459045, 1.0e9, 1.5e3,
  # binaries
  "", "hello", "héllo wörld", "日本語", "emoji 🎉", "line\nbreak\ttab\rcr", "quote \" and \\ backslash",
  "interp \#{x}", "#", "\#{", "{#", "\e\a\b\f\v\d", <<0>>, "abc" <> <<0>>, <<255, 254>>,
  <<0xC3, 0x28>>, "\uFEFF", "\u00A0", "\u0085", "\u2028", "\u{10FFFF}", "\u{E000}", <<0xED, 0xA0, 0x80>>,
  "caf\u0065\u0301", String.duplicate("long ", 1000), <<1, 2, 3>>,
  # bitstrings
  <<1::1>>, <<1, 2::size(3)>>, <<255, 7::3>>, <<0::7>>, <<"abc", 1::2>>,
  # charlists
  'abc', 'a\nb\tc', 'it\'s', '\#{x}', [7, 8, 9, 10, 11, 12, 13, 27], [127], [0], 'héllo', 'a"b',
  [?a | ?b], [], [[]], ['abc'], [?a, ?b | "cd"], [?\\], [32, 126], [31],
  # lists and keywords
  [1, 2, 3], [1 | 2], [1, 2 | 3], [1, [2, [3, [4]]]], [a: 1, "b c": 2], [a: [b: 1, c: [d: 2]]],
  [{:"Elixir.Foo", 1}], [{:a, 1}, {Foo, 2}], [nil: 1, true: 2], [{:Elixir, 1}],
  [{:+, 1}, {:"::", 2}, {:..//, 3}, {:%{}, 4}, {:foo?, 5}, {:"@x", 6}, {:Foo, 7}], [{:a, 1} | 2],
  [{:a, 1, 2}], [{"a", 1}], [{:a, 1}, 2],
  # tuples
  {}, {1}, {:ok, "x"}, {1, {2, {3, {}}}}, {:error, :enoent, 'file'},
  # maps
  %{}, %{a: 1}, %{"a" => 1}, %{1 => :a, :b => 2, "c" => 3}, %{:a => 1, Foo => 2}, %{{1, 2} => [3]},
  %{nil => 1}, %{[1] => %{}}, %{a: %{b: %{c: 1}}}, %{"Elixir": 1},
  Map.new(1..40, &{&1, Integer.to_string(&1)}), Map.new(1..100, &{:"k#{&1}", &1}),
  Map.new(1..33, &{:"a#{&1}", &1}), Map.new(1..50, &{Integer.to_string(&1), &1}),
  %{__struct__: :foo, a: 1}, %{__struct__: S, a: 1}, %{__struct__: "S", a: 1},
  # structs
  %S{a: 1, b: "two"}, %S{}, %T{z: 1, a: 2}, %T{}, %E{message: "m", code: 1},
  %RuntimeError{message: "boom"}, %KeyError{key: :k, term: %{}}, %ArgumentError{message: "bad"},
  %FunctionClauseError{module: M, function: :f, arity: 1}, struct!(Big, f1: 1, f40: 40),
  %{a: %S{a: [%T{}]}}, 1..10, 1..10//2, 10..1//-1, 1..0//1, -5..-1, 0..0, MapSet.new(),
  MapSet.new([1, 2, 3]), MapSet.new(['ab', 'cd']), MapSet.new([a: 1]), MapSet.new([[[?x]]]),
  ~D[2024-01-02], Date.new!(-1, 1, 1), %Date{year: 12345, month: 12, day: 31}, ~T[12:34:56.789], ~T[01:02:03],
  ~T[23:59:59.000001], ~N[2020-01-02 03:04:05.000006], ~N[2020-01-02 03:04:05],
  ~U[2024-01-02 03:04:05.123456Z], ~U[2024-01-02 03:04:05Z],
  %DateTime{year: 2020, month: 1, day: 1, hour: 0, minute: 0, second: 0, microsecond: {0, 0},
    time_zone: "Europe/Paris", zone_abbr: "CET", utc_offset: 3600, std_offset: 0},
  %DateTime{year: 2015, month: 2, day: 28, hour: 1, minute: 2, second: 3, microsecond: {4, 5},
    time_zone: "America/Los_Angeles", zone_abbr: "PDT", utc_offset: -28800, std_offset: 3600},
  %DateTime{year: 2020, month: 1, day: 1, hour: 0, minute: 0, second: 0, microsecond: {0, 0},
    time_zone: "Etc/UTC", zone_abbr: "UTC", utc_offset: 3600, std_offset: 0},
  Date.range(~D[2020-01-01], ~D[2020-02-01]), Date.range(~D[2020-01-01], ~D[2020-02-01], 2),
  ~r/a+b\/c/i, ~R/a#{b}\\d/, ~r/x\ny/, ~r/[\/]+/u,
  URI.parse("http://example.com/p?q=1"), %URI{path: "/only"},
  Version.parse!("1.2.3"), Version.parse!("1.2.3-rc.1+build.5"),
  Version.parse_requirement!("~> 1.0"),
  %Stream{enum: [1, 2], funs: [&Integer.to_string/1, &Kernel.abs/1]},
  %Stream{enum: 1..3, funs: []},
  # pids, ports, refs
  self(), agent, hd(Port.list()), Port.list(), make_ref(), Process.monitor(self()), :erlang.alias(),
  {self(), make_ref(), hd(Port.list())}, __ENV__,
  # external funs
  &Enum.map/2, &:lists.reverse/1, &Kernel.+/2, &Funs.add/0, Function.capture(:erlang, :"=:=", 2),
  Function.capture(Some.Mod, :"weird name", 0), Function.capture(String, :"%{}", 1),
  Function.capture(String, :Foo, 1), Function.capture(String, :"::", 2),
  Function.capture(:"Elixir.foo", :bar, 3), Function.capture(String, :"a\"b", 1),
  # nested mix
  {:ok, %{users: [%S{a: 1, b: "x"}], meta: {self(), make_ref()}, tags: MapSet.new([:a, :b])}},
  [%{"k" => [a: {1, 2.5, "s"}]}, <<1, 2, 3::4>>, 'ok', -1.0e-300]
] ++ Corpus.random_floats() ++ Corpus.random_atoms()

Corpus.emit(["V", System.version()])

for mod <- [S, T, E, Big] do
  fields = for %{field: f} <- mod.__info__(:struct), f not in [:__struct__, :__exception__], do: f
  Corpus.emit(["S", Atom.to_string(mod), Enum.join(fields, ",")])
end

for {term, i} <- Enum.with_index(exact) do
  Corpus.emit(["T", "#{i}", Corpus.hex(:erlang.term_to_binary(term)), Corpus.hex(Corpus.show(term))])
end

limited = [
  [1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]], %{a: [1, 2, 3], b: {1, 2, 3}}, [1, 2, 3 | 4], [1 | 2],
  <<1, 2, 3, 4>>, <<1, 2, 3::3>>, <<1::3>>, {1, 2, 3}, [a: 1, b: [c: 2, d: 3]], %S{a: [1, 2, 3], b: 2},
  MapSet.new([1, 2, 3]), 1..10, %Stream{enum: [1, 2, 3], funs: [&Kernel.abs/1]}, "abcdef", 'abcdef',
  '\#{abc', "a\#{bcd", [97, 98, 300, 301], 'abc', "", "é日本", "abc" <> <<0>>, [1, 2, 3],
  %{"k" => "vvvvv", 1 => 'cccc'}, {}, [], %{}, %T{z: 'zz', a: "aa"}, [[[[1]]]], [7, 8, 9],
  [?a, ?b | "cd"], "\#{\#{\#{", <<"ab", 0xFF>>, Map.new(1..40, &{&1, &1}), __ENV__
]

for term <- limited, limit <- [0, 1, 2, 3, 5, :infinity], plimit <- [0, 1, 2, 3, 10, :infinity] do
  # Where Elixir itself fails (raising, or printing an Inspect.Error inside a
  # struct) there is nothing to match.
  out =
    try do
      Corpus.show(term, limit, plimit)
    rescue
      _ -> "#Inspect.Error<"
    end

  if not String.contains?(out, "#Inspect.Error<") do
    Corpus.emit(["L", Corpus.lim(limit), Corpus.lim(plimit), Corpus.hex(:erlang.term_to_binary(term)), Corpus.hex(out)])
  end
end

local_funs = [Funs.add(), Funs.capture(1), Funs.capture(%{a: 1}), Funs.private_capture(), Funs.nested(), Funs.nested().(), fn x -> x end, fn -> agent end]

for {term, i} <- Enum.with_index(local_funs) do
  info = Function.info(term)
  fields = [Atom.to_string(info[:module]), info[:new_index], info[:uniq], info[:arity], length(info[:env])]
  Corpus.emit(["F", "#{i}" | Enum.map(fields, &to_string/1)] ++ [Corpus.hex(:erlang.term_to_binary(term)), Corpus.hex(Corpus.show(term))])
end
end
end
Run.run()
"###;

struct Corpus {
    version: String,
    struct_fields: Vec<(String, Vec<String>)>,
    exact: Vec<(String, Vec<u8>, String)>,
    limited: Vec<Limited>,
    local_funs: Vec<LocalFun>,
}

/// A term printed with limits: `limit`, `printable_limit`, encoding, output.
struct Limited {
    limit: Option<usize>,
    printable_limit: Option<usize>,
    etf: Vec<u8>,
    shown: String,
}

/// A closure as `Function.info/1` describes it, with its encoding and how
/// Elixir prints it.
struct LocalFun {
    label: String,
    module: String,
    index: u32,
    uniq: i64,
    arity: u8,
    free_vars: usize,
    etf: Vec<u8>,
    shown: String,
}

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn text(s: &str) -> String {
    String::from_utf8(unhex(s)).expect("inspect output is UTF-8")
}

fn limit(s: &str) -> Option<usize> {
    match s {
        "inf" => None,
        n => Some(n.parse().expect("limit")),
    }
}

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let out = Command::new("elixir")
            .arg("-e")
            .arg(SCRIPT)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests compare against real Elixir, but `elixir` could not be run \
                     ({e}); install Elixir 1.14 and put `elixir` on PATH"
                )
            });
        assert!(
            out.status.success(),
            "the Elixir corpus script failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("script output is ASCII");
        let mut c = Corpus {
            version: String::new(),
            struct_fields: Vec::new(),
            exact: Vec::new(),
            limited: Vec::new(),
            local_funs: Vec::new(),
        };
        for line in stdout.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["V", v] => c.version = v.to_string(),
                ["S", module, fields] => c.struct_fields.push((
                    module.to_string(),
                    fields.split(',').map(str::to_string).collect(),
                )),
                ["T", label, etf, shown] => {
                    c.exact.push((label.to_string(), unhex(etf), text(shown)))
                }
                ["L", l, pl, etf, shown] => c.limited.push(Limited {
                    limit: limit(l),
                    printable_limit: limit(pl),
                    etf: unhex(etf),
                    shown: text(shown),
                }),
                ["F", label, module, index, uniq, arity, free_vars, etf, shown] => {
                    c.local_funs.push(LocalFun {
                        label: label.to_string(),
                        module: module.to_string(),
                        index: index.parse().expect("index"),
                        uniq: uniq.parse().expect("uniq"),
                        arity: arity.parse().expect("arity"),
                        free_vars: free_vars.parse().expect("free vars"),
                        etf: unhex(etf),
                        shown: text(shown),
                    })
                }
                _ => panic!("unexpected line from the corpus script: {line:?}"),
            }
        }
        assert!(
            c.version.starts_with("1.14."),
            "the corpus must come from Elixir 1.14, found {:?}",
            c.version
        );
        c
    })
}

fn options(c: &Corpus) -> InspectOptions {
    let mut opts = InspectOptions::default();
    for (module, fields) in &c.struct_fields {
        opts.struct_fields.insert(module.clone(), fields.clone());
    }
    opts
}

#[test]
fn every_corpus_term_prints_exactly_like_elixir() {
    let c = corpus();
    assert!(c.exact.len() >= 80, "corpus too small: {}", c.exact.len());
    let opts = options(c);
    let mut failures = Vec::new();
    for (label, etf, want) in &c.exact {
        let term = decode(etf).unwrap_or_else(|e| panic!("term {label} does not decode: {e}"));
        let got = inspect(&term, &opts);
        if &got != want {
            failures.push(format!("term {label}:\n  elixir: {want}\n  ours:   {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} terms differ:\n{}",
        failures.len(),
        c.exact.len(),
        failures.join("\n")
    );
}

#[test]
fn limits_truncate_exactly_like_elixir() {
    let c = corpus();
    assert!(!c.limited.is_empty());
    let mut failures = Vec::new();
    for l in &c.limited {
        let term = decode(&l.etf).expect("decodes");
        let opts = InspectOptions {
            limit: l.limit,
            printable_limit: l.printable_limit,
            ..options(c)
        };
        let got = inspect(&term, &opts);
        let (limit, printable_limit, want) = (l.limit, l.printable_limit, &l.shown);
        if &got != want {
            failures.push(format!(
                "limit {limit:?}, printable_limit {printable_limit:?}:\n  elixir: {want}\n  ours:   {got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        c.limited.len(),
        failures.join("\n")
    );
}

/// Elixir prints `#Function<0.123/2 in Mod.fun/1>`; the `.fun/1` part names the
/// function the closure was defined in, which only the module's code knows.
/// Everything else must match. The closure is built from `Function.info/1` so
/// that this checks printing alone; decoding is checked below.
#[test]
fn local_funs_match_except_for_the_enclosing_function_name() {
    let c = corpus();
    assert!(!c.local_funs.is_empty());
    for f in &c.local_funs {
        let term = Term::Fun(Fun::Local {
            module: f.module.clone(),
            arity: f.arity,
            index: f.index,
            uniq: [0; 16],
            old_index: 0,
            old_uniq: f.uniq,
            pid: Pid {
                node: "nonode@nohost".into(),
                id: 0,
                serial: 0,
                creation: 0,
            },
            free_vars: Vec::new(),
        });
        let got = inspect(&term, &InspectOptions::default());
        let stem = got.strip_suffix('>').expect("ends with >");
        let want = &f.shown;
        let rest = want.strip_prefix(stem).unwrap_or_else(|| {
            panic!(
                "fun {}: elixir {want:?} does not start with {stem:?}",
                f.label
            )
        });
        assert!(
            rest.starts_with('.') && rest.ends_with('>') && !rest.contains(' '),
            "fun {}: unexpected suffix {rest:?} (elixir {want:?}, ours {got:?})",
            f.label
        );
    }
}

/// Closures encoded by the BEAM decode to what `Function.info/1` reports.
#[test]
fn beam_closures_decode() {
    let c = corpus();
    for f in &c.local_funs {
        let term = decode(&f.etf).unwrap_or_else(|e| {
            panic!(
                "closure {} ({}) encoded by the BEAM does not decode: {e}",
                f.label, f.shown
            )
        });
        match term {
            Term::Fun(Fun::Local {
                module,
                arity,
                index,
                old_uniq,
                free_vars,
                ..
            }) => {
                assert_eq!(module, f.module, "closure {}", f.label);
                assert_eq!(arity, f.arity, "closure {}", f.label);
                assert_eq!(index, f.index, "closure {}", f.label);
                assert_eq!(old_uniq, f.uniq, "closure {}", f.label);
                assert_eq!(free_vars.len(), f.free_vars, "closure {}", f.label);
            }
            other => panic!("closure {} decoded as {other:?}", f.label),
        }
    }
}

/// Without the field registry, structs whose fields are declared in
/// alphabetical order still match; `T` (declared `[:z, :a, m: 1]`) prints its
/// fields in map (alphabetical) order instead.
#[test]
fn structs_without_known_fields_print_in_map_order() {
    let c = corpus();
    let opts = InspectOptions::default();
    let mut checked = 0;
    for (_, etf, want) in &c.exact {
        let other = ["%T{", "%E{", "%Big{"].iter().any(|s| want.contains(s));
        if !want.contains("%S{") || other {
            continue;
        }
        let term = decode(etf).expect("decodes");
        assert_eq!(&inspect(&term, &opts), want);
        checked += 1;
    }
    assert!(checked > 0);
    let t = c
        .exact
        .iter()
        .find(|(_, _, want)| want == "%T{z: 1, a: 2, m: 1}")
        .expect("corpus has %T{z: 1, a: 2, m: 1}");
    assert_eq!(
        inspect(&decode(&t.1).unwrap(), &opts),
        "%T{a: 2, m: 1, z: 1}"
    );
}
