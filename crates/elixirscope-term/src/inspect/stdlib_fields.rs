//! Declared field order of stdlib structs (Elixir 1.14) where it is not
//! alphabetical, and so cannot be recovered from the map itself.

pub(super) const MACRO_ENV_FIELDS: &[&str] = &[
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

pub(super) const URI_FIELDS: &[&str] = &[
    "scheme",
    "authority",
    "userinfo",
    "host",
    "port",
    "path",
    "query",
    "fragment",
];

pub(super) const VERSION_FIELDS: &[&str] = &["major", "minor", "patch", "pre", "build"];

/// Declared field order of stdlib structs printed by `Inspect.Any` whose fields
/// are not declared alphabetically (Elixir 1.14).
pub(super) fn builtin_fields(module: &str) -> Option<&'static [&'static str]> {
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
