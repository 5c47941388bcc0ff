%% How much of each process's behaviour state the process tracer captures.
%%
%% States arrive in the arguments and results of traced callbacks. Before this
%% process sees them the VM has already copied them into its mailbox, whole, so
%% the process tracer protects the traced process in two ways:
%% - heap limit: a process whose heap exceeds the limit is no longer call
%%   traced, so the VM copies nothing of its state any more: found before
%%   capture starts, its state callbacks get a match-spec clause that leaves
%%   its pid out; found during capture (at most every 100 ms as its callbacks
%%   arrive, and every second), its call trace flag is turned off — at once,
%%   where changing match specs would wait for every scheduler, and those are
%%   busy copying the very states that made it necessary. The capture records
%%   that step and why;
%% - cost: the tracer-cost governor (elixirscope_governor) may degrade a
%%   process step by step: shallower limits, its state for one callback in 16
%%   (the others carry '$es_not_captured' where the state was), then none
%%   (its call trace flag off, as above).
%% Levels only go up. Everything here runs in the tracer process.
-module(elixirscope_state_capture).

-export([new/3, add_modules/2, is_state_event/2, bound/2, charge/3, window/2, level/2,
         set_level/3, over_heap/1, heap_bytes/1, take_over_heap/1]).


-record(sc, {mods = #{}, levels = #{}, callbacks = #{}, costs = #{}, seen = #{},
             max_heap = infinity, payload, shallow, over = []}).

%% Payload: the capture's elixirscope_payload config; Shallow: the same with
%% shallower limits; MaxHeap: bytes, or infinity.
new(Payload, Shallow, MaxHeap) ->
    #sc{payload = Payload, shallow = Shallow, max_heap = MaxHeap}.

%% State modules and their behaviour: [{Module, gen_server | gen_statem}].
add_modules(SC, Mods) ->
    SC#sc{mods = maps:merge(SC#sc.mods, maps:from_list(Mods))}.

%% {true, Pid} for a call or return of a state module's function.
is_state_event({trace_ts, Pid, call, {M, _, _}, _}, #sc{mods = Mods}) ->
    is_map_key(M, Mods) andalso {true, Pid};
is_state_event({trace_ts, Pid, return_from, {M, _, _}, _, _}, #sc{mods = Mods}) ->
    is_map_key(M, Mods) andalso {true, Pid};
is_state_event(_, _) -> false.

%% A trace message as it leaves the node, walked with the limits of its
%% process's level (any other message with the capture's).
bound(Msg, SC0) ->
    SC = seen(Msg, SC0),
    case map_size(SC#sc.levels) > 0 andalso is_state_event(Msg, SC) of
        {true, Pid} ->
            case maps:get(Pid, SC#sc.levels, 0) of
                0 -> {elixirscope_payload:event(Msg, SC#sc.payload), SC};
                1 -> {elixirscope_payload:event(Msg, SC#sc.shallow), SC};
                Level ->
                    {Skip, SC1} = skip(Msg, Pid, Level, SC),
                    Msg1 = case Skip of
                               true -> without_state(Msg, SC1);
                               false -> Msg
                           end,
                    {elixirscope_payload:event(Msg1, SC1#sc.shallow), SC1}
            end;
        false -> {elixirscope_payload:event(Msg, SC#sc.payload), SC}
    end.

%% Processes seen running state callbacks, and when their heap was last
%% checked: a callback's call or return checks it again if that was over
%% 100 ms ago.
seen({trace_ts, Pid, Tag, {M, _, _}, _} = Msg, SC) when Tag =:= call ->
    seen(Pid, M, Msg, SC);
seen({trace_ts, Pid, return_from, {M, _, _}, _, _} = Msg, SC) ->
    seen(Pid, M, Msg, SC);
seen(_, SC) -> SC.

seen(Pid, M, _Msg, #sc{mods = Mods, seen = Seen} = SC) when is_map_key(M, Mods) ->
    Now = erlang:monotonic_time(millisecond),
    case Seen of
        #{Pid := At} when Now - At < 100 -> SC;
        _ -> check_heap(Pid, SC#sc{seen = Seen#{Pid => Now}})
    end;
seen(_, _, _, SC) -> SC.

check_heap(_, #sc{max_heap = infinity} = SC) -> SC;
check_heap(Pid, #sc{max_heap = Max, levels = L, over = Over} = SC) ->
    case maps:get(Pid, L, 0) < 3 andalso heap_bytes(Pid) of
        H when is_integer(H), H > Max -> SC#sc{over = [{Pid, H} | Over]};
        _ -> SC
    end.

%% Processes found over the heap limit as their callbacks arrived, since the
%% last call.
take_over_heap(#sc{over = Over} = SC) -> {lists:reverse(Over), SC#sc{over = []}}.

%% Whether this callback's state is left out (decided at its call, kept for
%% its return).
skip({trace_ts, Pid, call, _, _}, Pid, Level, #sc{callbacks = C} = SC) ->
    N = maps:get(Pid, C, 0),
    Skip = Level >= 3 orelse N rem 16 =/= 0,
    {Skip, SC#sc{callbacks = C#{Pid => N + 1, {skip, Pid} => Skip}}};
skip(_, Pid, _, #sc{callbacks = C} = SC) ->
    {maps:get({skip, Pid}, C, true), SC}.

%% The message with its state replaced by '$es_not_captured'.
without_state({trace_ts, P, call, {M, F, Args}, Ts}, #sc{mods = Mods}) when is_list(Args) ->
    Pos = case maps:get(M, Mods) of
              gen_server -> gen_server_state_arg(F, length(Args));
              gen_statem -> length(Args)
          end,
    {trace_ts, P, call, {M, F, replace_nth(Args, Pos)}, Ts};
without_state({trace_ts, P, return_from, {M, F, _} = MFA, V, Ts}, #sc{mods = Mods}) ->
    V1 = case {maps:get(M, Mods), V} of
             {gen_server, T} when is_tuple(T) ->
                 case gen_server_result_state(F, T) of
                     0 -> T;
                     I -> setelement(I, T, '$es_not_captured')
                 end;
             _ -> '$es_not_captured'
         end,
    {trace_ts, P, return_from, MFA, V1, Ts};
without_state(Msg, _) -> Msg.

replace_nth(Args, 0) -> Args;
replace_nth(Args, N) ->
    {Before, [_ | After]} = lists:split(N - 1, Args),
    Before ++ ['$es_not_captured' | After].

gen_server_state_arg(handle_call, 3) -> 3;
gen_server_state_arg(code_change, 3) -> 2;
gen_server_state_arg(F, 2) when F =:= handle_cast; F =:= handle_info; F =:= handle_continue;
                                F =:= terminate -> 2;
gen_server_state_arg(_, _) -> 0.

%% 1-based position of the new state in a callback's result, 0 if none.
gen_server_result_state(handle_call, {reply, _, _}) -> 3;
gen_server_result_state(handle_call, {reply, _, _, _}) -> 3;
gen_server_result_state(F, {ok, _}) when F =:= init; F =:= code_change -> 2;
gen_server_result_state(init, {ok, _, _}) -> 2;
gen_server_result_state(F, T) when F =:= handle_call; F =:= handle_cast; F =:= handle_info;
                                   F =:= handle_continue ->
    case T of
        {noreply, _} -> 2;
        {noreply, _, _} -> 2;
        {stop, _, _} -> 3;
        {stop, _, _, _} -> 4;
        _ -> 0
    end;
gen_server_result_state(_, _) -> 0.

%% Adds what handling one of Pid's state events cost (ns).
charge(Pid, Ns, #sc{costs = C} = SC) ->
    SC#sc{costs = C#{Pid => Ns + maps:get(Pid, C, 0)}}.

%% The window's costliest state processes, [{Pid, Ns, Callbacks, Level}]
%% costliest first; the next window starts at zero.
window(N, #sc{costs = C, callbacks = Cb, levels = L} = SC) ->
    Top = lists:sublist(lists:reverse(lists:keysort(2, maps:to_list(C))), N),
    {[{P, Ns, maps:get(P, Cb, 0), maps:get(P, L, 0)} || {P, Ns} <- Top], SC#sc{costs = #{}}}.

level(Pid, #sc{levels = L}) -> maps:get(Pid, L, 0).

%% Raises Pid's level (never lowers it); level 3 also stops the VM tracing its
%% calls.
set_level(Pid, Level, #sc{levels = L} = SC) ->
    case Level > maps:get(Pid, L, 0) of
        false -> SC;
        true ->
            _ = Level >= 3 andalso (catch erlang:trace(Pid, false, [call, arity, return_to])),
            SC#sc{levels = L#{Pid => Level}}
    end.

%% Processes seen running state callbacks whose heap is now over the limit
%% and whose state is still captured: [{Pid, HeapBytes}].
over_heap(#sc{max_heap = infinity}) -> [];
over_heap(#sc{seen = Seen, levels = L, max_heap = Max}) ->
    [{P, H} || P <- maps:keys(Seen), maps:get(P, L, 0) < 3,
               H <- [heap_bytes(P)], H > Max].

heap_bytes(P) ->
    case erlang:process_info(P, total_heap_size) of
        {total_heap_size, W} -> W * erlang:system_info(wordsize);
        undefined -> 0
    end.
