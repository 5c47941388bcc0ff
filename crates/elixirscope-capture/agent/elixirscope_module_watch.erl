%% Applying trace patterns to modules that are loaded after capture starts.
%%
%% Trace patterns only attach to code that is loaded, and in `run` mode the
%% program's modules load after the agent starts (lazily, on first call). The
%% watch traces the three ways a module gets loaded - a call to an undefined
%% function (error_handler), code:ensure_loaded/1 and code:load_binary/3 - with
%% match specs that fire only for the watched modules. On such a call the tracer
%% briefly suspends the loading process, loads the module itself, sets the
%% patterns and resumes it, so the first call into the module is already traced.
%% (A suspended process is resumed automatically if the tracer dies.)
%% load_binary/3 cannot be handled that way (the code is in the caller's hands),
%% so for it the tracer waits for the load to finish and applies the patterns
%% then; calls made in that instant can be missed.
-module(elixirscope_module_watch).

-export([set/1, clear/0, loading/4, triggers/0]).

triggers() ->
    [{error_handler, undefined_function, 3}, {code, ensure_loaded, 1},
     {code, load_binary, 3}].

%% Sets the trigger patterns for the watched modules (or clears them if none).
set([]) -> clear();
set(Modules) ->
    Specs = #{3 => [{[M, '_', '_'], [], []} || M <- Modules],
              1 => [{[M], [], []} || M <- Modules]},
    [erlang:trace_pattern(MFA, maps:get(A, Specs), [local]) || {_, _, A} = MFA <- triggers()],
    ok.

clear() ->
    [erlang:trace_pattern(MFA, false, [local]) || MFA <- triggers()],
    ok.

%% Called by the tracer when Pid is about to load module M via Trigger.
%% OnLoaded() runs once M is loaded, while Pid is still suspended where possible.
loading(Pid, M, {error_handler, _, _}, OnLoaded) -> load_suspended(Pid, M, OnLoaded);
loading(Pid, M, {code, ensure_loaded, _}, OnLoaded) -> load_suspended(Pid, M, OnLoaded);
loading(_Pid, M, {code, load_binary, _}, OnLoaded) ->
    case wait_loaded(M, 200) of
        true -> OnLoaded();
        false -> false
    end.

load_suspended(Pid, M, OnLoaded) ->
    Suspended = (catch erlang:suspend_process(Pid)) =:= true,
    try
        _ = code:ensure_loaded(M),
        case erlang:module_loaded(M) of
            true -> OnLoaded();
            false -> false
        end
    after
        case Suspended of
            true -> catch erlang:resume_process(Pid);
            false -> ok
        end
    end.

wait_loaded(M, 0) -> erlang:module_loaded(M);
wait_loaded(M, N) ->
    case erlang:module_loaded(M) of
        true -> true;
        false ->
            receive after 1 -> ok end,
            wait_loaded(M, N - 1)
    end.
