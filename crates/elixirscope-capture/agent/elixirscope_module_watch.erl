%% Applying trace patterns to modules that are loaded after capture starts.
%%
%% Trace patterns only attach to code that is loaded, and in `run` mode the
%% program's modules load after the agent starts (lazily on first call, or when
%% a script's `defmodule` is compiled). The watch is its own process with its own
%% mailbox, so it reacts within microseconds however busy the main tracer is. It
%% meta-traces the ways a module gets loaded, with match specs that fire only
%% for the watched modules:
%% - a call to an undefined function (error_handler) or code:ensure_loaded/1:
%%   on OTP 25, where the code server does the loading, the watch suspends the
%%   caller, loads the module itself, sets the patterns and resumes the caller,
%%   so even the first call into the module is traced; from OTP 26 the caller
%%   loads the code itself (and others wait for it), so the watch acts when
%%   code:ensure_loaded/1 returns instead, like for load_binary below;
%% - code:load_binary/3 (code compiled in memory): on OTP 25 the watch suspends
%%   the caller as soon as it calls load_binary (it then waits for the code
%%   server's reply), waits until the module is loaded, sets the patterns and
%%   resumes it, so the caller cannot run the new code untraced; from OTP 26 it
%%   does the same when load_binary returns.
%% A suspended process is resumed automatically if the watch dies. The tracer
%% is told about every module handled, with the patterns set.
-module(elixirscope_module_watch).

-export([start/3, stop/1, clear/0, triggers/0]).

triggers() ->
    [{error_handler, undefined_function, 3}, {code, ensure_loaded, 1},
     {code, load_binary, 3}].

%% Watch: modules to watch; Wanted: call patterns waiting for their module;
%% StateMods: modules whose behaviour callbacks are wanted once loaded.
start(Tracer, Watch, {Wanted, StateMods}) ->
    spawn_link(fun() ->
                       erlang:trace(self(), false, [all]),
                       put(mode, mode()),
                       set(Watch),
                       loop(Tracer, Watch, Wanted, StateMods)
               end).

%% `entry` where the code server loads modules (OTP 25), `return` where callers do.
mode() ->
    case catch list_to_integer(erlang:system_info(otp_release)) of
        N when is_integer(N), N >= 26 -> return;
        _ -> entry
    end.

%% Stops the watch and waits until it is gone, so it can set nothing afterwards.
stop(Pid) ->
    unlink(Pid),
    Ref = erlang:monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, Pid, _} -> ok end,
    clear().

set([]) -> clear();
set(Modules) ->
    Me = self(),
    Entry3 = [{[M, '_', '_'], [], []} || M <- Modules],
    Entry1 = [{[M], [], []} || M <- Modules],
    Return1 = [{[M], [], [{return_trace}]} || M <- Modules],
    Return3 = [{[M, '_', '_'], [], [{return_trace}]} || M <- Modules],
    case get(mode) of
        return ->
            erlang:trace_pattern({code, ensure_loaded, 1}, Return1, [{meta, Me}]),
            erlang:trace_pattern({code, load_binary, 3}, Return3, [{meta, Me}]);
        _ ->
            erlang:trace_pattern({error_handler, undefined_function, 3}, Entry3, [{meta, Me}]),
            erlang:trace_pattern({code, ensure_loaded, 1}, Entry1, [{meta, Me}]),
            erlang:trace_pattern({code, load_binary, 3}, Entry3, [{meta, Me}])
    end,
    ok.

clear() ->
    [erlang:trace_pattern(MFA, false, [meta]) || MFA <- triggers()],
    ok.

loop(Tracer, Watch, Wanted, StateMods) ->
    receive
        Msg when element(1, Msg) =:= trace_ts; element(1, Msg) =:= trace ->
            case trigger(Msg) of
                {Pid, M, How} ->
                    case lists:member(M, Watch) andalso handle(Tracer, Pid, M, How, Wanted, StateMods) of
                        true ->
                            Rest = lists:delete(M, Watch),
                            set(Rest),
                            loop(Tracer, Rest, Wanted, StateMods);
                        false ->
                            loop(Tracer, Watch, Wanted, StateMods)
                    end;
                none ->
                    loop(Tracer, Watch, Wanted, StateMods)
            end;
        _ ->
            loop(Tracer, Watch, Wanted, StateMods)
    end.

trigger({trace_ts, Pid, call, {error_handler, undefined_function, [M | _]}, _}) -> {Pid, M, load};
trigger({trace, Pid, call, {error_handler, undefined_function, [M | _]}}) -> {Pid, M, load};
trigger({trace_ts, Pid, call, {code, ensure_loaded, [M]}, _}) -> {Pid, M, load};
trigger({trace, Pid, call, {code, ensure_loaded, [M]}}) -> {Pid, M, load};
trigger({trace_ts, Pid, call, {code, load_binary, [M, _, _]}, _}) -> {Pid, M, loading};
trigger({trace, Pid, call, {code, load_binary, [M, _, _]}}) -> {Pid, M, loading};
trigger({trace_ts, Pid, return_from, {code, load_binary, 3}, {module, M}, _}) -> {Pid, M, loaded};
trigger({trace, Pid, return_from, {code, ensure_loaded, 1}, {module, M}}) -> {Pid, M, loaded};
trigger({trace_ts, Pid, return_from, {code, ensure_loaded, 1}, {module, M}, _}) -> {Pid, M, loaded};
trigger({trace, Pid, return_from, {code, load_binary, 3}, {module, M}}) -> {Pid, M, loaded};
trigger(_) -> none.

%% Returns true once M is loaded and its patterns are set.
handle(Tracer, Pid, M, How, Wanted, StateMods) ->
    Suspended = (catch erlang:suspend_process(Pid)) =:= true,
    try
        case How of
            load -> _ = code:ensure_loaded(M);
            loading -> wait_loaded(M, 2000);
            loaded -> ok
        end,
        case erlang:module_loaded(M) of
            true ->
                {StateInfo, StateMfas} =
                    case lists:member(M, StateMods) of
                        true ->
                            B = elixirscope_trace_setup:behaviour(M),
                            {[{M, B}], elixirscope_trace_setup:callback_mfas(M, B)};
                        false -> {[], []}
                    end,
                Applied = elixirscope_trace_setup:apply_module(M, Wanted ++ StateMfas),
                Tracer ! {es_module_loaded, erlang:monotonic_time(nanosecond), M, Applied, StateInfo},
                true;
            false ->
                false
        end
    after
        case Suspended of
            true -> catch erlang:resume_process(Pid);
            false -> ok
        end
    end.

%% Waits (up to Ms milliseconds) until the code server has loaded M for the
%% suspended caller of load_binary; a load that fails leaves M unloaded.
wait_loaded(_M, Ms) when Ms =< 0 -> ok;
wait_loaded(M, Ms) ->
    case erlang:module_loaded(M) of
        true -> ok;
        false -> receive after 1 -> wait_loaded(M, Ms - 1) end
    end.
