%% Turning tracing on and off: trace flags, call patterns, GenServer callbacks.
%%
%% enable/2 decides the flags from the capture config, resolves call patterns and
%% the modules whose state is recorded (a module name, or a registered name whose
%% process tells us its callback module), sets the patterns on loaded modules and
%% hands modules that are not loaded yet to elixirscope_module_watch. clear/1
%% removes exactly what enable/2 set, and the trace flags of every process.
-module(elixirscope_trace_setup).

-export([enable/2, clear/1, stop_nif/0, foreign_tracer/0, apply_module/2, callback_mfas/2,
         call_match_spec/0, behaviour/1, initial_module/1]).

%% A tracer other than ours on new processes or on any process.
foreign_tracer() ->
    case erlang:trace_info(new, tracer) of
        {tracer, []} -> scan_processes(erlang:processes());
        {tracer, T} -> T;
        _ -> none
    end.

scan_processes([]) -> none;
scan_processes([P | Rest]) ->
    case erlang:trace_info(P, tracer) of
        {tracer, []} -> scan_processes(Rest);
        {tracer, T} -> {P, T};
        _ -> scan_processes(Rest)
    end.

%% The NIF tracer stamps events itself; the VM need not.
flags(Config, nif) -> flags(Config) -- [monotonic_timestamp];
flags(Config, process) -> flags(Config).

flags(Config) ->
    Procs = case maps:get(procs, Config, true) of true -> [procs]; false -> [] end,
    Msgs = case maps:get(messages, Config, true) of
               true -> [send, 'receive'];
               false -> []
           end,
    Calls = case {needs_calls(Config), maps:get(call_values, Config, true)} of
                {true, true} -> [call];
                %% Arities instead of argument values.
                {true, false} -> [call, arity];
                {false, _} -> []
            end,
    Procs ++ Msgs ++ Calls ++ [monotonic_timestamp].

needs_calls(Config) ->
    maps:get(calls, Config, []) =/= [] orelse maps:get(state, Config, []) =/= []
        orelse maps:get(monitors, Config, false).

call_match_spec() -> [{'_', [], [{exception_trace}]}].

%% Returns a map describing what was set; the tracer keeps it to undo it.
%% Kind is the tracer that receives the events: the tracer process itself
%% (process) or the NIF tracer module on its behalf (nif).
enable(Config, {Tracer, Kind}) ->
    Calls = [{M, F, A} || {M, F, A} <- maps:get(calls, Config, [])],
    {StateMods, StateErrors} = resolve_state_targets(maps:get(state, Config, [])),
    Monitors = case maps:get(monitors, Config, false) of
                   true -> [{erlang, monitor, 2}, {erlang, monitor, 3},
                            {erlang, demonitor, 1}, {erlang, demonitor, 2}];
                   false -> []
               end,
    Known = [{M, B} || {M, B} <- StateMods, B =/= unknown],
    StateMFAs = lists:append([callback_mfas(M, B) || {M, B} <- Known]),
    Wanted = Calls ++ StateMFAs ++ Monitors,
    {Loaded, Pending} = lists:partition(
                          fun({M, _, _}) -> erlang:module_loaded(M) end, Wanted),
    %% The process tracer receives states as copies the VM makes: processes
    %% whose heap is already over the limit are never traced in their state
    %% callbacks (the tracer says so once it runs).
    BigState = case Kind of
                   process -> big_state_processes(Known, state_heap_limit(Config));
                   nif -> []
               end,
    BigPids = [P || {P, _} <- BigState],
    Applied = [{MFA, set_pattern(MFA, lists:member(MFA, StateMFAs), BigPids)} || MFA <- Loaded],
    PendingStateMods = [M || {M, unknown} <- StateMods],
    Flags = flags(Config, Kind),
    TracerOpt = case Kind of
                    nif -> {tracer, elixirscope_nif_tracer, []};
                    process -> {tracer, Tracer}
                end,
    erlang:trace(processes, true, [TracerOpt | Flags]),
    erlang:trace(self(), false, [all]),
    erlang:trace(Tracer, false, [all]),
    Quiet = [P || Name <- maps:get(quiet, Config, []), P <- [whereis(Name)], is_pid(P)],
    [erlang:trace(P, false, [all]) || P <- Quiet],
    quiet_sends(Quiet),
    #{flags => Flags,
      quiet => [N || N <- maps:get(quiet, Config, []), is_pid(whereis(N))],
      patterns => Applied,
      pending => Pending,
      pending_state_modules => PendingStateMods,
      state_modules => Known,
      big_state => BigState,
      state_errors => StateErrors}.

set_pattern({M, F, A}) ->
    erlang:trace_pattern({M, F, A}, call_match_spec(), [local]).

set_pattern(MFA, true, [_ | _] = Excluded) ->
    erlang:trace_pattern(MFA, excluding(Excluded), [local]);
set_pattern(MFA, _, _) -> set_pattern(MFA).

%% A state callback's match spec that leaves the listed processes untraced:
%% no call and no return message, so the VM copies nothing of theirs.
excluding(Pids) ->
    [{'_', [{'=:=', {self}, P}], [{message, false}]} || P <- Pids] ++ call_match_spec().

state_heap_limit(Config) ->
    maps:get(max_state_heap, maps:get(budget, Config, #{}), infinity).

%% Processes running a state module whose heap exceeds Limit bytes:
%% [{Pid, HeapBytes}]. The heap is read first (cheap), the process dictionary
%% only for the few that are over it.
big_state_processes([], _) -> [];
big_state_processes(_, infinity) -> [];
big_state_processes(Mods, Limit) ->
    Words = Limit div erlang:system_info(wordsize),
    [{P, W * erlang:system_info(wordsize)}
     || P <- erlang:processes(),
        {total_heap_size, W} <- [erlang:process_info(P, total_heap_size)],
        W > Words,
        lists:keymember(initial_module(P), 1, Mods)].

%% Applies the patterns wanted for module M once it is loaded; returns them.
apply_module(M, Wanted) ->
    Mine = [MFA || {WM, _, _} = MFA <- Wanted, WM =:= M],
    [{MFA, set_pattern(MFA)} || MFA <- Mine].

%% The callbacks whose arguments and results carry behaviour state.
callback_mfas(M, gen_server) ->
    [{M, init, 1}, {M, handle_call, 3}, {M, handle_cast, 2}, {M, handle_info, 2},
     {M, handle_continue, 2}, {M, code_change, 3}, {M, terminate, 2}];
callback_mfas(M, gen_statem) ->
    States = case catch M:callback_mode() of
                 Mode when is_atom(Mode); is_list(Mode) ->
                     Modes = lists:flatten([Mode]),
                     case lists:member(handle_event_function, Modes) of
                         true -> [{M, handle_event, 4}];
                         false -> [{M, F, 3} || {F, 3} <- M:module_info(exports),
                                                F =/= code_change]
                     end;
                 _ -> [{M, handle_event, 4}]
             end,
    [{M, init, 1}, {M, terminate, 3}, {M, code_change, 4} | States];
callback_mfas(_, _) -> [].

%% Targets are module names or registered names (atoms).
resolve_state_targets(Targets) ->
    lists:foldr(
      fun(T, {Mods, Errs}) ->
              case resolve_state_target(T) of
                  {ok, M, B} -> {[{M, B} | Mods], Errs};
                  {error, Why} -> {Mods, [{T, Why} | Errs]}
              end
      end, {[], []}, Targets).

resolve_state_target(T) ->
    case whereis(T) of
        Pid when is_pid(Pid) ->
            case initial_module(Pid) of
                undefined -> {error, no_callback_module};
                M -> {ok, M, behaviour(M)}
            end;
        _ ->
            case code:which(T) of
                non_existing ->
                    case erlang:module_loaded(T) of
                        true -> {ok, T, behaviour(T)};
                        %% Not loadable yet (run mode before the code path is set):
                        %% watch for it.
                        false -> {ok, T, unknown}
                    end;
                _ ->
                    _ = code:ensure_loaded(T),
                    {ok, T, behaviour(T)}
            end
    end.

%% The callback module a process runs, from proc_lib's '$initial_call'.
initial_module(Pid) ->
    case erlang:process_info(Pid, dictionary) of
        {dictionary, D} ->
            case lists:keyfind('$initial_call', 1, D) of
                {_, {supervisor, M, _}} -> M;
                {_, {M, _, _}} -> M;
                false -> undefined
            end;
        _ -> undefined
    end.

behaviour(M) ->
    Attrs = case catch M:module_info(attributes) of
                L when is_list(L) -> L;
                _ -> []
            end,
    Bs = lists:append([V || {K, V} <- Attrs, K =:= behaviour orelse K =:= behavior]),
    case {lists:member(gen_statem, Bs), lists:member(gen_server, Bs) orelse
              lists:member('Elixir.GenServer', Bs) orelse lists:member(supervisor, Bs)
              orelse lists:member('Elixir.Supervisor', Bs)} of
        {true, _} -> gen_statem;
        {_, true} -> gen_server;
        _ ->
            case erlang:function_exported(M, handle_call, 3) of
                true -> gen_server;
                false -> gen_server_guess(M)
            end
    end.

gen_server_guess(M) ->
    case erlang:function_exported(M, callback_mode, 0) of
        true -> gen_statem;
        false -> gen_server
    end.

%% Stops the NIF tracer's drain thread, if one runs (harmless otherwise).
stop_nif() ->
    case erlang:module_loaded(elixirscope_nif_tracer) of
        true -> catch elixirscope_nif_tracer:stop();
        false -> ok
    end.

%% Sends to quiet processes are not traced either (code loading requests carry
%% whole .beam files).
quiet_sends([]) -> ok;
quiet_sends(Pids) ->
    Guard = lists:foldl(fun(P, Acc) -> {'andalso', {'=/=', '$1', P}, Acc} end,
                        true, Pids),
    erlang:trace_pattern(send, [{['$1', '_'], [Guard], []}], []).

%% Undoes enable/2. Setup may be #{} when only the flags are known to be ours.
clear(Setup) ->
    erlang:trace(all, false, [all]),
    stop_nif(),
    erlang:trace_pattern(send, true, []),
    [erlang:trace_pattern(MFA, false, [local]) || {MFA, _} <- maps:get(patterns, Setup, [])],
    %% Wanted patterns and callbacks of modules that were still loading when we
    %% stopped: clearing a pattern that was never set is harmless.
    [erlang:trace_pattern(MFA, false, [local]) || {M, _, _} = MFA <- maps:get(pending, Setup, []),
                                                  erlang:module_loaded(M)],
    [erlang:trace_pattern({M, '_', '_'}, false, [local])
     || M <- maps:get(pending_state_modules, Setup, []), erlang:module_loaded(M)],
    ok.
