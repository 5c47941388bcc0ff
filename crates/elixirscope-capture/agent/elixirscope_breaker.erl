%% Node-stress circuit breakers: the capture stops itself when the node it
%% observes is in trouble, whatever the capture's own budget says.
%%
%% Checked every 100 ms by the tracer:
%% - run queue: the total run-queue length (normal and dirty schedulers) above
%%   the limit for three checks in a row (a single spike is normal);
%% - node memory: erlang:memory(total) grown by more than the limit since the
%%   capture started (trips at once);
%% - scheduler utilisation (only when a limit is set): the share of wall time
%%   the normal schedulers spent working, over each second, above the limit for three
%%   seconds in a row. Measuring it needs the scheduler_wall_time flag; if it
%%   was off, it is turned on for the capture and off again by restore/1.
-module(elixirscope_breaker).

-export([new/1, check/1, sample/0, restore/1, utilisation/2]).

-record(br, {max_run_queue = infinity, max_growth = infinity, base_memory = 0,
             strikes = 0, max_use = infinity, wall = undefined, wall_ticks = 0,
             use_strikes = 0, flag_was = true}).

new(Budget) ->
    B = #br{max_run_queue = maps:get(max_run_queue, Budget, infinity),
            max_growth = maps:get(max_node_memory_growth, Budget, infinity),
            max_use = maps:get(max_scheduler_use, Budget, infinity),
            base_memory = erlang:memory(total)},
    case B#br.max_use of
        infinity -> B;
        _ ->
            Was = erlang:system_flag(scheduler_wall_time, true),
            B#br{flag_was = Was, wall = erlang:statistics(scheduler_wall_time)}
    end.

%% Puts back what new/1 changed.
restore(#br{flag_was = false}) ->
    erlang:system_flag(scheduler_wall_time, false),
    ok;
restore(_) -> ok.

%% {RunQueue, TotalMemory} right now.
sample() ->
    {erlang:statistics(total_run_queue_lengths_all), erlang:memory(total)}.

%% {ok, Breaker} or {trip, Reason, Detail}.
check(#br{} = B0) ->
    {RunQueue, Memory} = sample(),
    Growth = Memory - B0#br.base_memory,
    case scheduler_use(B0) of
        {trip, _, _} = Trip -> Trip;
        {ok, B} ->
            if
                is_integer(B#br.max_growth), Growth > B#br.max_growth ->
                    {trip, node_memory,
                     fmt("node memory grew by ~b bytes since capture started (limit ~b)",
                         [Growth, B#br.max_growth])};
                is_integer(B#br.max_run_queue), RunQueue > B#br.max_run_queue,
                B#br.strikes >= 2 ->
                    {trip, run_queue,
                     fmt("run queue held ~b processes for 300 ms (limit ~b)",
                         [RunQueue, B#br.max_run_queue])};
                is_integer(B#br.max_run_queue), RunQueue > B#br.max_run_queue ->
                    {ok, B#br{strikes = B#br.strikes + 1}};
                true ->
                    {ok, B#br{strikes = 0}}
            end
    end.

%% Every tenth check (about a second): utilisation since the previous sample.
scheduler_use(#br{max_use = infinity} = B) -> {ok, B};
scheduler_use(#br{wall_ticks = T} = B) when T < 9 -> {ok, B#br{wall_ticks = T + 1}};
scheduler_use(#br{wall = Prev} = B) ->
    Now = erlang:statistics(scheduler_wall_time),
    Use = utilisation(Prev, Now),
    B1 = B#br{wall = Now, wall_ticks = 0},
    if
        is_float(Use), Use > B#br.max_use, B#br.use_strikes >= 2 ->
            {trip, scheduler_use,
             fmt("schedulers were ~.1f% busy for 3 s (limit ~.1f%)",
                 [Use * 100, B#br.max_use * 100])};
        is_float(Use), Use > B#br.max_use -> {ok, B1#br{use_strikes = B#br.use_strikes + 1}};
        true -> {ok, B1#br{use_strikes = 0}}
    end.

%% Normal schedulers only (the list also holds the dirty CPU schedulers, idle
%% unless NIFs keep them busy, which would hide a saturated node).
utilisation(Prev, Now) when is_list(Prev), is_list(Now) ->
    Normal = erlang:system_info(schedulers),
    Before = maps:from_list([{I, {A, T}} || {I, A, T} <- Prev, I =< Normal]),
    {Active, Total} = lists:foldl(
                        fun({I, A1, T1}, {A, T}) ->
                                case Before of
                                    #{I := {A0, T0}} -> {A + A1 - A0, T + T1 - T0};
                                    _ -> {A, T}
                                end
                        end, {0, 0}, Now),
    case Total of
        0 -> undefined;
        _ -> Active / Total
    end;
utilisation(_, _) -> undefined.

fmt(F, A) -> iolist_to_binary(io_lib:format(F, A)).
