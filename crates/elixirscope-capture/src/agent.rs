//! The Erlang agent: shipping its source to a node, compiling and loading it
//! there, starting and stopping capture, unloading it, and checking the node was
//! left exactly as found.
//!
//! The agent is plain Erlang kept in this crate's `agent/` directory. Nothing is
//! precompiled: at attach the source is sent over RPC and compiled by the node's
//! own compiler (so the bytecode always matches the node's OTP release), then
//! loaded with `code:load_binary/3`. Loading uses `erl_eval` on an expression, so
//! no module has to exist on the node beforehand.

use crate::dist::NodeConnection;
use crate::CaptureError;
use elixirscope_term::{inspect, Term};
use std::time::Duration;

macro_rules! agent_modules {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../agent/", $name, ".erl")))),*]
    };
}

/// Agent modules and their source, in load order.
pub const MODULES: &[(&str, &str)] = agent_modules![
    "elixirscope_trace_setup",
    "elixirscope_module_watch",
    "elixirscope_breaker",
    "elixirscope_redact",
    "elixirscope_payload",
    "elixirscope_state_capture",
    "elixirscope_governor",
    "elixirscope_link",
    "elixirscope_snapshot",
    "elixirscope_node_stats",
    "elixirscope_nif_tracer",
    "elixirscope_tracer",
    "elixirscope_agent",
];

const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Compiles and loads every agent module from source on the node.
const LOAD_EXPR: &str = r#"
Load = fun(Mod, Src) ->
    Scan = fun Scan(Chars, Loc, Acc) ->
        case erl_scan:tokens([], Chars, Loc) of
            {done, {ok, Toks, End}, Rest} ->
                case erl_parse:parse_form(Toks) of
                    {ok, Form} -> Scan(Rest, End, [Form | Acc]);
                    {error, E} -> {error, E}
                end;
            {done, {eof, _}, _} -> {ok, lists:reverse(Acc)};
            {done, {error, E, _}, _} -> {error, E};
            {more, _} -> {ok, lists:reverse(Acc)}
        end
    end,
    case Scan(unicode:characters_to_list(Src), 1, []) of
        {ok, Forms} ->
            case compile:forms(Forms, [binary, return_errors]) of
                {ok, Mod, Bin} ->
                    code:purge(Mod),
                    case code:load_binary(Mod, "elixirscope_agent", Bin) of
                        {module, Mod} -> ok;
                        Err -> {load_failed, Err}
                    end;
                {error, Errs, _} -> {compile_failed, Errs}
            end;
        {error, E} -> {parse_failed, E}
    end
end,
%% A collector that dies or freezes between loading the agent and starting the
%% capture cannot unload it: a janitor does, unless a capture is running by then.
Janitor = fun() ->
    receive after 60000 -> ok end,
    case whereis(elixirscope_tracer) of
        undefined ->
            [begin code:purge(M), code:delete(M), code:purge(M) end || {M, _} <- Sources];
        _ -> ok
    end
end,
case code:ensure_loaded(compile) of
    {module, compile} ->
        Loaded = [{M, Load(M, S)} || {M, S} <- Sources],
        case whereis(elixirscope_janitor) of
            undefined -> ok;
            Old -> exit(Old, kill)
        end,
        catch register(elixirscope_janitor, spawn(Janitor)),
        Loaded;
    _ -> no_compiler
end.
"#;

/// Removes the agent modules (current and old code).
const UNLOAD_EXPR: &str = r#"
catch exit(whereis(elixirscope_janitor), kill),
[begin code:purge(M), code:delete(M), code:purge(M), M end || M <- Mods].
"#;

/// Reports anything tracing-related left on the node.
const CLEAN_EXPR: &str = r#"
Flagged = [P || P <- erlang:processes(),
                case erlang:trace_info(P, flags) of {flags, [_ | _]} -> true; _ -> false end],
Patterns = [{M, F, A} || {M, _} <- code:all_loaded(),
                         is_list(catch M:module_info(functions)),
                         {F, A} <- M:module_info(functions),
                         case erlang:trace_info({M, F, A}, traced) of
                             {traced, false} -> false;
                             {traced, _} -> true;
                             _ -> false
                         end],
Meta = [MFA || MFA <- [{error_handler, undefined_function, 3}, {code, ensure_loaded, 1},
                       {code, load_binary, 3}],
               element(2, erlang:trace_info(MFA, meta)) =/= false],
#{flagged_processes => length(Flagged),
  new_process_flags => element(2, erlang:trace_info(new_processes, flags)),
  traced_functions => Patterns ++ Meta,
  send_pattern_default => erlang:trace_info(send, match_spec) =:= {match_spec, true},
  loaded_agent_modules => [M || M <- Mods, code:is_loaded(M) =/= false],
  tracer_registered => whereis(elixirscope_tracer) =/= undefined}.
"#;

/// Facts about the node checked before loading anything.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub otp_release: String,
}

/// Checks the node's OTP release (25 or newer) and that no capture is running.
pub fn check_node(conn: &NodeConnection) -> Result<NodeInfo, CaptureError> {
    let release = conn.rpc(
        "erlang",
        "system_info",
        vec![Term::atom("otp_release")],
        RPC_TIMEOUT,
    )?;
    let release = charlist_text(&release).unwrap_or_default();
    let major: u32 = release.parse().unwrap_or(0);
    if major < 25 {
        return Err(CaptureError::OtpTooOld {
            node: conn.peer().to_owned(),
            release,
        });
    }
    let running = conn.rpc(
        "erlang",
        "whereis",
        vec![Term::atom("elixirscope_tracer")],
        RPC_TIMEOUT,
    )?;
    if let Term::Pid(p) = running {
        return Err(CaptureError::StartFailed {
            node: conn.peer().to_owned(),
            detail: format!(
                "another ElixirScope capture is already running there (tracer <0.{}.{}>); stop it first",
                p.id, p.serial
            ),
        });
    }
    Ok(NodeInfo {
        otp_release: release,
    })
}

/// Compiles and loads the agent on the node.
pub fn load(conn: &NodeConnection) -> Result<(), CaptureError> {
    let sources = Term::list(
        MODULES
            .iter()
            .map(|(m, src)| Term::Tuple(vec![Term::atom(*m), Term::string(src)]))
            .collect(),
    );
    let result = conn.eval(LOAD_EXPR, vec![("Sources", sources)], RPC_TIMEOUT)?;
    let fail = |detail: String| CaptureError::AgentLoad {
        node: conn.peer().to_owned(),
        detail,
    };
    if result.as_atom() == Some("no_compiler") {
        return Err(fail(
            "the node has no 'compiler' application (releases built without it cannot load the agent); add :compiler to the release".into(),
        ));
    }
    let items = result
        .as_list()
        .ok_or_else(|| fail(inspect(&result, &Default::default())))?;
    for item in items {
        if let Some([module, status]) = item.as_tuple() {
            if status.as_atom() != Some("ok") {
                return Err(fail(format!(
                    "{}: {}",
                    module.as_atom().unwrap_or("?"),
                    inspect(status, &Default::default())
                )));
            }
        }
    }
    Ok(())
}

/// Starts capture with the agent config; returns the setup the agent reports.
pub fn start(conn: &NodeConnection, config: Term) -> Result<Term, CaptureError> {
    let reply = conn.rpc("elixirscope_agent", "start", vec![config], RPC_TIMEOUT)?;
    match reply.as_tuple() {
        Some([ok, info]) if ok.as_atom() == Some("ok") => Ok(info.clone()),
        Some([err, why]) if err.as_atom() == Some("error") => Err(CaptureError::StartFailed {
            node: conn.peer().to_owned(),
            detail: describe_start_error(why),
        }),
        _ => Err(CaptureError::StartFailed {
            node: conn.peer().to_owned(),
            detail: inspect(&reply, &Default::default()),
        }),
    }
}

fn describe_start_error(why: &Term) -> String {
    // {Class, {elixirscope, Reason}, Stack} for the agent's own refusals.
    if let Some([_, reason, _]) = why.as_tuple() {
        if let Some([tag, inner]) = reason.as_tuple() {
            if tag.as_atom() == Some("elixirscope") {
                if let Some([k, _]) = inner.as_tuple() {
                    if k.as_atom() == Some("node_already_traced") {
                        return "the node is already being traced by another tool (dbg, recon, redbug?); stop that trace first".into();
                    }
                }
                if let Some([k, pattern, why]) = inner.as_tuple() {
                    if k.as_atom() == Some("invalid_regex") {
                        let text = |t: &Term| match t {
                            Term::Binary(b) => String::from_utf8_lossy(b).into_owned(),
                            Term::List { items, tail: None }
                                if items.iter().all(|i| matches!(i, Term::Integer(_))) =>
                            {
                                items
                                    .iter()
                                    .filter_map(|i| match i {
                                        Term::Integer(c) => char::from_u32(*c as u32),
                                        _ => None,
                                    })
                                    .collect()
                            }
                            other => inspect(other, &Default::default()),
                        };
                        return format!(
                            "the node's regular expressions (Erlang re) refuse --redact-value '{}': {}; rewrite the pattern",
                            text(pattern),
                            text(why)
                        );
                    }
                }
                return inspect(inner, &Default::default());
            }
        }
        return inspect(reason, &Default::default());
    }
    inspect(why, &Default::default())
}

/// Stops capture (waiting for the agent to flush), then unloads the agent.
pub fn stop(conn: &NodeConnection, timeout: Duration) -> Result<(), CaptureError> {
    let ms = Term::Integer(timeout.as_millis() as i64);
    conn.rpc(
        "elixirscope_agent",
        "stop",
        vec![ms],
        timeout + Duration::from_secs(5),
    )?;
    unload(conn)
}

/// Purges and deletes every agent module.
pub fn unload(conn: &NodeConnection) -> Result<(), CaptureError> {
    conn.eval(UNLOAD_EXPR, vec![("Mods", module_list())], RPC_TIMEOUT)?;
    Ok(())
}

fn module_list() -> Term {
    Term::list(MODULES.iter().map(|(m, _)| Term::atom(*m)).collect())
}

/// What tracing state is left on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanReport {
    pub flagged_processes: i64,
    pub new_process_flags: Vec<String>,
    pub traced_functions: Vec<String>,
    pub loaded_agent_modules: Vec<String>,
    pub tracer_registered: bool,
    /// The send trace pattern is back to its default (all sends).
    pub send_pattern_default: bool,
}

impl CleanReport {
    /// True when nothing of ElixirScope remains.
    pub fn is_clean(&self) -> bool {
        self.flagged_processes == 0
            && self.new_process_flags.is_empty()
            && self.traced_functions.is_empty()
            && self.loaded_agent_modules.is_empty()
            && !self.tracer_registered
            && self.send_pattern_default
    }
}

/// Inspects the node for trace flags, trace patterns and agent modules.
pub fn clean_report(conn: &NodeConnection) -> Result<CleanReport, CaptureError> {
    let r = conn.eval(CLEAN_EXPR, vec![("Mods", module_list())], RPC_TIMEOUT)?;
    let get = |k: &str| {
        r.map_get(&Term::atom(k))
            .cloned()
            .unwrap_or(Term::list(vec![]))
    };
    let texts = |t: Term| -> Vec<String> {
        t.as_list()
            .unwrap_or(&[])
            .iter()
            .map(|x| inspect(x, &Default::default()))
            .collect()
    };
    Ok(CleanReport {
        flagged_processes: get("flagged_processes").as_i64().unwrap_or(-1),
        new_process_flags: texts(get("new_process_flags")),
        traced_functions: texts(get("traced_functions")),
        loaded_agent_modules: texts(get("loaded_agent_modules")),
        tracer_registered: get("tracer_registered").as_atom() == Some("true"),
        send_pattern_default: get("send_pattern_default").as_atom() == Some("true"),
    })
}

/// Text of a charlist term.
pub fn charlist_text(t: &Term) -> Option<String> {
    t.as_list()?
        .iter()
        .map(|c| c.as_i64().and_then(|v| char::from_u32(v as u32)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_agent_source_file_is_loaded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agent");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".erl")
                    .map(str::to_owned)
            })
            .collect();
        on_disk.sort();
        let mut loaded: Vec<String> = super::MODULES.iter().map(|(m, _)| m.to_string()).collect();
        loaded.sort();
        assert_eq!(on_disk, loaded);
    }
}
