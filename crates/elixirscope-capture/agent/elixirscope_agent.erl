%% The ElixirScope agent's entry points, called by the collector over RPC.
%%
%% start/1 checks that nobody else is tracing, starts the tracer process (which
%% connects back to the collector), turns tracing on and snapshots the processes
%% that already exist. stop/0 asks the tracer to stop and waits until every trace
%% flag and pattern is gone. Nothing here may crash or block the host node:
%% every entry point catches its own errors and returns {error, Reason}.
-module(elixirscope_agent).

-export([start/1, stop/1, status/0]).

%% Config is a map; see elixirscope_tracer:init/2 for the keys used.
start(Config) ->
    try
        start_checked(Config)
    catch
        Class:Reason:Stack ->
            catch elixirscope_trace_setup:clear(Config),
            {error, {Class, Reason, Stack}}
    end.

start_checked(Config) ->
    case whereis(elixirscope_tracer) of
        undefined -> ok;
        Old -> throw_error({already_capturing, Old})
    end,
    case elixirscope_trace_setup:foreign_tracer() of
        none -> ok;
        Foreign -> throw_error({node_already_traced, Foreign})
    end,
    case elixirscope_redact:check_values(values(Config)) of
        {ok, _} -> ok;
        {error, {Pattern, Reason}} -> throw_error({invalid_regex, Pattern, Reason})
    end,
    Caller = self(),
    Tracer = elixirscope_tracer:start(Config, Caller),
    {LinkPids, Kind} = receive
        {elixirscope_tracer_ready, Tracer, Pids, K} -> {Pids, K};
        {elixirscope_tracer_failed, Tracer, Why} -> throw_error(Why)
    after 10000 ->
        exit(Tracer, kill),
        throw_error(collector_connect_timeout)
    end,
    %% From here on the tracer owns the capture; it clears everything if we fail.
    Setup = elixirscope_trace_setup:enable(Config, {Tracer, Kind}),
    %% The processes carrying the connection to the collector stay untraced.
    [catch erlang:trace(P, false, [all]) || P <- LinkPids],
    Tracer ! {es_setup_done, Setup},
    case maps:get(snapshot, Config, true) of
        true ->
            StateMods = [M || {M, _} <- maps:get(state_modules, Setup, [])],
            elixirscope_snapshot:send_processes(Tracer, StateMods, Config);
        false -> ok
    end,
    {ok, #{tracer => Tracer, tracer_kind => Kind, setup => Setup}}.

values(Config) ->
    case maps:get(redact, Config, false) of
        #{values := Values} -> Values;
        _ -> []
    end.

throw_error(Why) ->
    erlang:error({elixirscope, Why}).

%% Asks the tracer to stop tracing and flush, waiting up to Timeout ms.
stop(Timeout) ->
    case whereis(elixirscope_tracer) of
        undefined ->
            elixirscope_trace_setup:clear(#{}),
            {ok, not_running};
        Tracer ->
            Ref = erlang:monitor(process, Tracer),
            Tracer ! {es_stop, self()},
            receive
                {'DOWN', Ref, process, Tracer, _} -> {ok, stopped}
            after Timeout ->
                exit(Tracer, kill),
                elixirscope_trace_setup:clear(#{}),
                {ok, killed}
            end
    end.

status() ->
    case whereis(elixirscope_tracer) of
        undefined -> not_running;
        Tracer ->
            Ref = make_ref(),
            Tracer ! {es_status, self(), Ref},
            receive {Ref, Status} -> Status after 2000 -> busy end
    end.
