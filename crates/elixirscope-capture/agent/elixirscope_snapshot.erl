%% What already exists when capture starts: processes and behaviour states.
%%
%% Every live process is described once (parent, initial call, registered name,
%% links, monitors, ancestors) so the process tree and names are known from the
%% first moment of the session, not only for processes spawned later. For
%% processes whose state is recorded, the current state is read with
%% sys:get_state/2 by a separate, short-lived process with a short timeout, so a
%% busy or stuck process can never block capture.
-module(elixirscope_snapshot).

-export([send_processes/2, send_processes/3, describe/1]).

send_processes(Tracer, StateMods) -> send_processes(Tracer, StateMods, #{}).

%% StateMods: callback modules whose processes get their state read; Config:
%% the capture config (redaction, limits, the state heap limit).
send_processes(Tracer, StateMods, Config) ->
    Own = [self(), Tracer],
    Procs = [P || P <- erlang:processes(), not lists:member(P, Own)],
    send_chunks(Tracer, Procs, []),
    case StateMods of
        [] -> ok;
        _ -> spawn(fun() -> read_states(Tracer, Procs, StateMods, Config) end)
    end,
    ok.

send_chunks(Tracer, [], Acc) ->
    Tracer ! {es_events, lists:reverse(Acc)};
send_chunks(Tracer, Procs, Acc) when length(Acc) >= 200 ->
    Tracer ! {es_events, lists:reverse(Acc)},
    send_chunks(Tracer, Procs, []);
send_chunks(Tracer, [P | Rest], Acc) ->
    case describe(P) of
        undefined -> send_chunks(Tracer, Rest, Acc);
        Ev -> send_chunks(Tracer, Rest, [Ev | Acc])
    end.

%% {es_proc, Pid, Ts, Parent, InitialCall, Info} or undefined if Pid is gone.
describe(P) ->
    Items = [registered_name, initial_call, parent, links, monitors, dictionary,
             trap_exit, status, message_queue_len, group_leader],
    case erlang:process_info(P, Items) of
        undefined -> undefined;
        Info ->
            Dict = proplists:get_value(dictionary, Info, []),
            Ancestors = case lists:keyfind('$ancestors', 1, Dict) of
                            {_, A} when is_list(A) -> A;
                            _ -> []
                        end,
            Initial = case lists:keyfind('$initial_call', 1, Dict) of
                          {_, {_, _, _} = IC} -> IC;
                          _ -> proplists:get_value(initial_call, Info)
                      end,
            Parent = case proplists:get_value(parent, Info) of
                         undefined -> first_pid(Ancestors);
                         Pa -> Pa
                     end,
            Name = case proplists:get_value(registered_name, Info) of
                       [] -> undefined;
                       %% The run-mode boot hook's temporary name is ours, not the program's.
                       elixirscope_boot -> undefined;
                       N -> N
                   end,
            Monitors = [Target || {process, Target} <- proplists:get_value(monitors, Info, [])],
            Facts = #{registered_name => Name,
                      links => proplists:get_value(links, Info, []),
                      monitors => Monitors,
                      ancestors => Ancestors,
                      trap_exit => proplists:get_value(trap_exit, Info),
                      status => proplists:get_value(status, Info),
                      message_queue_len => proplists:get_value(message_queue_len, Info),
                      group_leader => proplists:get_value(group_leader, Info)},
            {es_proc, P, erlang:monotonic_time(nanosecond), Parent, Initial, Facts}
    end.

first_pid([P | _]) when is_pid(P) -> P;
first_pid([Name | Rest]) when is_atom(Name) ->
    case whereis(Name) of
        undefined -> first_pid(Rest);
        P -> P
    end;
first_pid(_) -> undefined.

%% The reader bounds and redacts each state itself (sys:get_state/2 copies it
%% here, and only the bounded copy goes on to the tracer), and skips processes
%% whose heap is over the state-capture limit: reading those would copy it all.
read_states(Tracer, Procs, StateMods, Config) ->
    erlang:trace(self(), false, [all]),
    Payload = elixirscope_payload:new(maps:get(redact, Config, false),
                                      maps:get(call_values, Config, true),
                                      maps:get(limits, Config, #{})),
    MaxHeap = maps:get(max_state_heap, maps:get(budget, Config, #{}), infinity),
    [read_state(Tracer, P, Payload, MaxHeap)
     || P <- Procs, lists:member(elixirscope_trace_setup:initial_module(P), StateMods)],
    Tracer ! {es_redacted, elixirscope_redact:counts()},
    ok.

read_state(Tracer, P, Payload, MaxHeap) ->
    case elixirscope_state_capture:heap_bytes(P) of
        H when is_integer(MaxHeap), H > MaxHeap -> ok;
        _ ->
            try sys:get_state(P, 500) of
                State ->
                    Bounded = elixirscope_payload:term(State, Payload),
                    Tracer ! {es_events, [{es_state_bounded, P, erlang:monotonic_time(nanosecond),
                                           Bounded}]}
            catch
                _:_ -> ok
            end
    end.
