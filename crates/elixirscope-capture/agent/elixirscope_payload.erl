%% Payload terms as they leave the node: bounded by the capture limits and
%% redacted, in one walk.
%%
%% Every term an event carries (messages, call arguments, results, exceptions,
%% exit reasons, states) is walked once, applying the redaction rules
%% (elixirscope_redact) and the limits: maximum depth, elements per list, tuple
%% or map, bytes per binary (and elements per string written as a list of
%% bytes), and encoded bytes per event. The walk stops where a limit is
%% reached and never visits what it does not keep, so its cost follows the
%% limits, not the size of the data. What was left out is said by markers that
%% the collector prints as "… N more" (the same terms the NIF tracer writes):
%%   {'$es_more', N} / {'$es_more', N, at_least} as the last element of a cut
%%   list or tuple ('$es_more' => N in a map); a container below the depth
%%   limit keeps only that marker (and a struct its __struct__); a long binary
%%   becomes {'$es_bin', Prefix, TotalBytes}; a term larger than what is left
%%   of the event's budget becomes '$es_cut'.
%% The length of a cut list is counted only up to a per-event budget.
-module(elixirscope_payload).

-export([new/3, event/2, term/2, cut_events/0]).

-record(p, {rules, depth = 12, elements = 64, bytes = 1024, event_bytes = 65536}).

%% (The agent is compiled from its forms without the preprocessor: no macros.)
%% Bytes a container needs to close with a marker: 24. Bytes past a cut that
%% the value patterns still read: 256. Redaction's own depth limit: 64.

%% Redaction config (see elixirscope_redact:new/2), whether call values are
%% captured, and the limits #{depth, elements, bytes, event_bytes}.
new(Redact, CallValues, Limits) ->
    Get = fun(K, D) ->
                  case maps:get(K, Limits, D) of
                      V when is_integer(V), V > 0 -> V;
                      _ -> D
                  end
          end,
    #p{rules = elixirscope_redact:new(Redact, CallValues),
       depth = Get(depth, 12), elements = Get(elements, 64), bytes = Get(bytes, 1024),
       event_bytes = max(256, Get(event_bytes, 65536))}.

%% Events in which something was cut, so far (this process).
cut_events() ->
    case get(es_cut_events) of undefined -> 0; N -> N end.

%% One trace message or agent event.
event(Msg, P) ->
    start(P),
    use(32),
    Out = event1(Msg, P),
    finish(),
    Out.

%% One term on its own (a state read at capture start).
term(T, P) ->
    start(P),
    Out = t(T, 0, on(P), P),
    finish(),
    Out.

start(P) ->
    put(es_used, 0),
    put(es_count, max(256, P#p.elements * 16)),
    put(es_cut, false).

finish() ->
    case get(es_cut) of
        true -> put(es_cut_events, cut_events() + 1);
        _ -> ok
    end.

on(#p{rules = R}) -> elixirscope_redact:enabled(R).

event1({trace_ts, Pid, send, M, To, Ts}, P) -> {trace_ts, Pid, send, t(M, 0, on(P), P), To, Ts};
event1({trace_ts, Pid, send_to_non_existing_process, M, To, Ts}, P) ->
    {trace_ts, Pid, send_to_non_existing_process, t(M, 0, on(P), P), To, Ts};
event1({trace_ts, Pid, 'receive', M, Ts}, P) -> {trace_ts, Pid, 'receive', t(M, 0, on(P), P), Ts};
event1({trace_ts, Pid, call, {M, F, Args}, Ts}, P) when is_list(Args) ->
    {trace_ts, Pid, call, {M, F, args(M, F, Args, P)}, Ts};
event1({trace_ts, Pid, return_from, MFA, V, Ts}, #p{rules = R} = P) ->
    case elixirscope_redact:call_values(R) of
        false -> {trace_ts, Pid, return_from, MFA, <<"[not captured]">>, Ts};
        true -> {trace_ts, Pid, return_from, MFA, t(V, 0, on(P), P), Ts}
    end;
event1({trace_ts, Pid, exception_from, MFA, {Class, _} = V, Ts}, #p{rules = R} = P) ->
    case elixirscope_redact:call_values(R) of
        false -> {trace_ts, Pid, exception_from, MFA, {Class, <<"[not captured]">>}, Ts};
        true -> {trace_ts, Pid, exception_from, MFA, t(V, 0, on(P), P), Ts}
    end;
event1({trace_ts, Pid, exit, Reason, Ts}, P) -> {trace_ts, Pid, exit, t(Reason, 0, on(P), P), Ts};
event1({trace_ts, Pid, Spawn, Other, {M, F, Args}, Ts}, P)
  when (Spawn =:= spawn orelse Spawn =:= spawned), is_list(Args) ->
    {trace_ts, Pid, Spawn, Other, {M, F, args(M, F, Args, P)}, Ts};
event1({es_state, Pid, Ts, State}, P) -> {es_state, Pid, Ts, t(State, 0, on(P), P)};
event1(Msg, _) -> Msg.

%% Bytes of the event's budget used so far, and what is left.
use(N) -> put(es_used, get(es_used) + N).
room(#p{event_bytes = E}) -> E - get(es_used).
spent(P) -> room(P) =< 24.
cut() -> put(es_cut, true).

more(N, true) -> use(20), {'$es_more', N};
more(N, false) -> use(30), {'$es_more', N, at_least}.

mark(Rule) -> use(15), elixirscope_redact:mark(Rule).

%% The generic walk: T at depth D, redacting when On.
t(_, D, true, _) when D > 64 -> mark(depth);
t(T, _, On, #p{rules = R}) when is_atom(T) ->
    case On andalso elixirscope_redact:secret_atom(T, R) of
        true -> mark(value);
        false -> use(12), T
    end;
t(T, _, _, _) when is_integer(T), T >= 0, T =< 255 -> use(2), T;
t(T, _, _, _) when is_integer(T), T >= -16#80000000, T < 16#80000000 -> use(5), T;
t(T, _, _, P) when is_integer(T) -> opaque(T, P);
t(T, _, _, _) when is_float(T) -> use(9), T;
t(T, _, On, P) when is_binary(T) -> binary(T, On, P);
t(T, D, On, P) when is_list(T) -> list(T, D, On, P);
t(T, D, On, P) when is_tuple(T) -> tuple(T, D, On, P);
t(T, D, On, P) when is_map(T) -> map(T, D, On, P);
t(T, _, _, _) when is_pid(T); is_port(T) -> use(28), T;
t(T, _, _, P) -> opaque(T, P).

%% Terms not taken apart (references, funs, bit strings, big integers): kept
%% whole if they fit in what is left of the event's budget.
opaque(T, P) ->
    Size = erlang:external_size(T),
    case Size > room(P) of
        true -> cut(), use(10), '$es_cut';
        false -> use(Size), T
    end.

binary(B, On, #p{rules = R, bytes = Max} = P) ->
    Keep = max(0, min(Max, room(P) - 24)),
    Size = byte_size(B),
    Secret = On andalso elixirscope_redact:secret_binary(
                         binary:part(B, 0, min(Size, Keep + 256)), R),
    case Secret of
        false when Size =< Keep -> use(Size + 5), B;
        false ->
            cut(),
            use(Keep + 24),
            {'$es_bin', binary:copy(binary:part(B, 0, Keep)), Size};
        Rule -> mark(Rule)
    end.

%% Lists: a string (a list of bytes) keeps as many elements as a binary keeps
%% bytes, any other list the element limit.
list([], _, _, _) -> use(1), [];
list(L, D, _, #p{depth = Depth}) when D >= Depth ->
    cut(),
    {N, Exact} = count_rest(L),
    [more(N, Exact)];
list(L, D, On, P) ->
    use(5),
    list(L, D, On, P, 0, true, []).

list([H | T] = L, D, On, #p{elements = E, bytes = B} = P, Count, Bytes, Acc) ->
    Over = Count >= E andalso (not Bytes orelse Count >= B orelse not is_byte(H)),
    case Over orelse spent(P) of
        true -> cut_list(L, On, P, Bytes andalso Count > 0, Acc);
        false ->
            H1 = t(H, D + 1, On, P),
            list(T, D, On, P, Count + 1, Bytes andalso is_byte(H1), [H1 | Acc])
    end;
list([], _, On, P, Count, Bytes, Acc) ->
    Kept = lists:reverse(Acc),
    case secret_string(On andalso Bytes andalso Count > 0, Kept, [], P) of
        false -> Kept;
        Rule -> mark(Rule)
    end;
list(Tail, D, On, P, _, _, Acc) ->
    lists:reverse(Acc, t(Tail, D + 1, On, P)).

cut_list(Rest, On, P, String, Acc) ->
    case secret_string(On andalso String, lists:reverse(Acc), Rest, P) of
        false ->
            cut(),
            {N, Exact} = count_rest(Rest),
            lists:reverse([more(N, Exact) | Acc]);
        Rule -> mark(Rule)
    end.

%% A string's kept bytes, plus a look-ahead into what is cut, against the
%% value patterns.
secret_string(false, _, _, _) -> false;
secret_string(true, Kept, Rest, #p{rules = R}) ->
    case elixirscope_redact:has_values(R) of
        false -> false;
        true ->
            Ahead = lookahead(Rest, 256, []),
            case elixirscope_redact:secret_value(list_to_binary([Kept, Ahead]), R) of
                true -> value;
                false -> false
            end
    end.

lookahead([H | T], N, Acc) when N > 0, is_integer(H), H >= 0, H =< 255 ->
    lookahead(T, N - 1, [H | Acc]);
lookahead(_, _, Acc) -> lists:reverse(Acc).

is_byte(X) -> is_integer(X) andalso X >= 0 andalso X =< 255.

%% Cells from L on, counted within the event's budget: {N, Exact}.
count_rest(L) ->
    {N, Exact, Left} = count(L, 0, get(es_count)),
    put(es_count, Left),
    {N, Exact}.

count([_ | _], N, 0) -> {N, false, 0};
count([_ | T], N, B) -> count(T, N + 1, B - 1);
count(_, N, B) -> {N, true, B}.

%% Call arguments of M:F: listed positions replaced, the rest at depth 1.
args(M, F, Args, #p{rules = R} = P) ->
    On = on(P),
    Positions = case On of
                    true -> elixirscope_redact:arg_positions(M, F, length(Args), R);
                    false -> []
                end,
    use(5),
    args(Args, 1, Positions, On, P, []).

args([A | Rest] = L, I, Positions, On, #p{elements = E} = P, Acc) ->
    case I > E orelse spent(P) of
        true ->
            cut(),
            {N, Exact} = count_rest(L),
            lists:reverse([more(N, Exact) | Acc]);
        false ->
            V = case lists:member(I, Positions) of
                    true -> mark(argument);
                    false -> t(A, 1, On, P)
                end,
            args(Rest, I + 1, Positions, On, P, [V | Acc])
    end;
args([], _, _, _, _, Acc) -> lists:reverse(Acc);
args(Tail, _, _, On, P, Acc) -> lists:reverse(Acc, t(Tail, 1, On, P)).

tuple({K, _} = T, D, true, #p{rules = R} = P) ->
    case elixirscope_redact:secret_key(K, R) of
        true -> use(2), {t(K, D + 1, false, P), mark(key)};
        false -> elements(T, D, true, P)
    end;
tuple({M, F, Args, Loc}, D, true, #p{depth = Depth} = P)
  when is_atom(M), is_atom(F), is_list(Args), D < Depth ->
    %% A stacktrace entry with arguments: argument rules apply here too.
    use(26),
    {M, F, args(M, F, Args, P), t(Loc, D + 1, true, P)};
tuple(T, D, On, P) -> elements(T, D, On, P).

elements({}, _, _, _) -> use(2), {};
elements(T, D, _, #p{depth = Depth}) when D >= Depth ->
    cut(),
    {more(tuple_size(T), true)};
elements(T, D, On, P) ->
    use(5),
    list_to_tuple(elements(T, 1, tuple_size(T), D, On, P, [])).

elements(_, I, Size, _, _, _, Acc) when I > Size -> lists:reverse(Acc);
elements(T, I, Size, D, On, #p{elements = E} = P, Acc) ->
    case I > E orelse spent(P) of
        true -> cut(), lists:reverse([more(Size - I + 1, true) | Acc]);
        false -> elements(T, I + 1, Size, D, On, P, [t(element(I, T), D + 1, On, P) | Acc])
    end.

map(M, _, _, _) when map_size(M) =:= 0 -> use(5), M;
map(M, D, _, #p{depth = Depth} = P) when D >= Depth ->
    cut(),
    use(30),
    case M of
        #{'__struct__' := Mod} ->
            #{'__struct__' => t(Mod, D + 1, false, P), '$es_more' => map_size(M) - 1};
        _ -> #{'$es_more' => map_size(M)}
    end;
map(M, D, On, #p{rules = R} = P) ->
    use(5),
    Whole = case M of
                #{'__struct__' := Mod} -> On andalso elixirscope_redact:struct_listed(Mod, R);
                _ -> false
            end,
    pairs(maps:next(maps:iterator(M)), map_size(M), 0, D, On, Whole, P, []).

pairs(none, _, _, _, _, _, _, Acc) -> maps:from_list(Acc);
pairs({K, V, Iter}, Size, Kept, D, On, Whole, #p{elements = E, rules = R} = P, Acc) ->
    case Kept >= E orelse spent(P) of
        true ->
            cut(),
            use(20),
            maps:from_list([{'$es_more', Size - Kept} | Acc]);
        false ->
            K1 = t(K, D + 1, On andalso K =/= '__struct__', P),
            V1 = if
                     not On -> t(V, D + 1, false, P);
                     K =:= '__struct__' -> t(V, D + 1, false, P);
                     Whole -> mark(struct);
                     true ->
                         case elixirscope_redact:secret_key(K, R) of
                             true -> mark(key);
                             false -> t(V, D + 1, true, P)
                         end
                 end,
            pairs(maps:next(Iter), Size, Kept + 1, D, On, Whole, P, [{K1, V1} | Acc])
    end.
