%% Node-stress circuit breakers: the capture stops itself when the node it
%% observes is in trouble, whatever the capture's own budget says.
%%
%% Checked every 100 ms by the tracer:
%% - run queue: the total run-queue length (normal and dirty schedulers) above
%%   the limit for three checks in a row (a single spike is normal);
%% - node memory: erlang:memory(total) grown by more than the limit since the
%%   capture started (trips at once).
%% Both calls are cheap, read-only BIFs; nothing here changes node settings.
-module(elixirscope_breaker).

-export([new/1, check/1, sample/0]).

-record(br, {max_run_queue = infinity, max_growth = infinity, base_memory = 0,
             strikes = 0}).


new(Budget) ->
    #br{max_run_queue = maps:get(max_run_queue, Budget, infinity),
        max_growth = maps:get(max_node_memory_growth, Budget, infinity),
        base_memory = erlang:memory(total)}.

%% {RunQueue, TotalMemory} right now.
sample() ->
    {erlang:statistics(total_run_queue_lengths_all), erlang:memory(total)}.

%% {ok, Breaker} or {trip, Reason, Detail}.
check(#br{} = B) ->
    {RunQueue, Memory} = sample(),
    Growth = Memory - B#br.base_memory,
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
    end.

fmt(F, A) -> iolist_to_binary(io_lib:format(F, A)).
