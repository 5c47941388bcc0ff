%% Node metrics for the collector's /metrics, sampled with the tracer's status
%% (once a second): memory by type, the process count, each normal
%% scheduler's run queue, the longest message queue, and normal-scheduler
%% utilisation. The queue scan visits every
%% process, so it runs at most every 5 s and only on nodes with at most 50,000
%% processes. Utilisation needs the scheduler_wall_time flag: it is reported
%% when the flag is on (the breaker turns it on for the capture, and off again
%% after, when a scheduler-use limit is set, as --metrics-listen does). Never raises.
-module(elixirscope_node_stats).

-export([sample/0]).

sample() ->
    try
        Count = erlang:system_info(process_count),
        Base = #{memory => maps:from_list(erlang:memory()), processes => Count,
                 run_queues => erlang:statistics(run_queue_lengths)},
        WithQueue = case message_queue_max(Count) of
                        undefined -> Base;
                        Max -> Base#{message_queue_max => Max}
                    end,
        case scheduler_utilisation() of
            Use when is_float(Use) -> WithQueue#{scheduler_utilisation => Use};
            _ -> WithQueue
        end
    catch _:_ -> #{}
    end.

message_queue_max(Count) when Count > 50000 -> undefined;
message_queue_max(_Count) ->
    Now = erlang:monotonic_time(millisecond),
    case get(elixirscope_mq_scan) of
        {At, Max} when Now - At < 5000 -> Max;
        _ ->
            Max = lists:foldl(
                    fun(P, Acc) ->
                            case erlang:process_info(P, message_queue_len) of
                                {message_queue_len, N} when N > Acc -> N;
                                _ -> Acc
                            end
                    end, 0, erlang:processes()),
            put(elixirscope_mq_scan, {Now, Max}),
            Max
    end.

%% Since the previous sample, when the scheduler_wall_time flag is on.
scheduler_utilisation() ->
    case erlang:statistics(scheduler_wall_time) of
        Now when is_list(Now) ->
            Prev = put(elixirscope_wall, Now),
            elixirscope_breaker:utilisation(Prev, Now);
        _ ->
            erase(elixirscope_wall),
            undefined
    end.
