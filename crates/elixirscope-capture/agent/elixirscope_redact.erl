%% Redaction on the node: secrets are replaced before any byte leaves it.
%%
%% Every term an event carries (messages, call arguments, results, exceptions,
%% exit reasons, states) is walked once. A value is replaced by <<"[REDACTED]">>
%% when it is
%% - under a secret-looking key: a map key, keyword key or first element of a
%%   2-tuple (atom or binary) containing one of the configured names
%%   (password, secret, token, authorization, ... case-insensitive);
%% - a field of a struct whose module is listed (every field but __struct__);
%% - an argument at a listed position of a listed function (in calls and in
%%   stacktrace entries);
%% - a string that looks like a payment card number (13-19 digits, Luhn check);
%% - a string matching one of the configured regular expressions.
%% Terms nested deeper than 64 levels are replaced whole, so nothing
%% escapes by depth. The tracer keeps, per rule, how many values were
%% replaced; the values themselves are never kept.
-module(elixirscope_redact).

-export([new/2, event/2, counts/0]).

-record(rules, {keys = none, structs = #{}, args = #{}, cards = true, values = [],
                call_values = true}).

%% Config: #{keys => [binary()], structs => [module()],
%%           args => [{M, F, Arity, [Position]}], cards => boolean(),
%%           values => [binary() regex]}; `false` disables redaction.
%% CallValues = false: calls carry no argument values (the tracer asks for
%% arities only) and results are not captured either.
new(false, true) -> off;
new(false, false) -> #rules{cards = false, call_values = false};
new(Config, CallValues) when is_map(Config) ->
    Keys = [string:lowercase(K) || K <- maps:get(keys, Config, []), is_binary(K), K =/= <<>>],
    #rules{call_values = CallValues,
           keys = case Keys of [] -> none; _ -> binary:compile_pattern(Keys) end,
           structs = maps:from_list([{S, true} || S <- maps:get(structs, Config, [])]),
           args = maps:from_list([{{M, F, A}, Ps} || {M, F, A, Ps} <- maps:get(args, Config, [])]),
           cards = maps:get(cards, Config, true),
           values = [Re || V <- maps:get(values, Config, []), {ok, Re} <- [re:compile(V)]]}.

%% Values replaced so far, per rule.
counts() ->
    maps:from_list([{Rule, N} || {{elixirscope_redacted, Rule}, N} <- get()]).

count(Rule) ->
    Key = {elixirscope_redacted, Rule},
    put(Key, case get(Key) of undefined -> 1; N -> N + 1 end).

mark(Rule) ->
    count(Rule),
    <<"[REDACTED]">>.

%% Redacts the payload terms of one trace message or agent event.
event(Msg, off) -> Msg;
event({trace_ts, P, send, M, To, Ts}, R) -> {trace_ts, P, send, t(M, R, 0), To, Ts};
event({trace_ts, P, send_to_non_existing_process, M, To, Ts}, R) ->
    {trace_ts, P, send_to_non_existing_process, t(M, R, 0), To, Ts};
event({trace_ts, P, 'receive', M, Ts}, R) -> {trace_ts, P, 'receive', t(M, R, 0), Ts};
event({trace_ts, P, call, {M, F, Args}, Ts}, R) when is_list(Args) ->
    {trace_ts, P, call, {M, F, args(M, F, Args, R)}, Ts};
event({trace_ts, P, return_from, MFA, _, Ts}, #rules{call_values = false}) ->
    {trace_ts, P, return_from, MFA, <<"[not captured]">>, Ts};
event({trace_ts, P, exception_from, MFA, {Class, _}, Ts}, #rules{call_values = false}) ->
    {trace_ts, P, exception_from, MFA, {Class, <<"[not captured]">>}, Ts};
event({trace_ts, P, return_from, MFA, V, Ts}, R) -> {trace_ts, P, return_from, MFA, t(V, R, 0), Ts};
event({trace_ts, P, exception_from, MFA, V, Ts}, R) -> {trace_ts, P, exception_from, MFA, t(V, R, 0), Ts};
event({trace_ts, P, exit, Reason, Ts}, R) -> {trace_ts, P, exit, t(Reason, R, 0), Ts};
event({trace_ts, P, Spawn, Other, {M, F, Args}, Ts}, R)
  when (Spawn =:= spawn orelse Spawn =:= spawned), is_list(Args) ->
    {trace_ts, P, Spawn, Other, {M, F, args(M, F, Args, R)}, Ts};
event({es_state, P, Ts, State}, R) -> {es_state, P, Ts, t(State, R, 0)};
event(Msg, _) -> Msg.

%% Arguments of M:F: listed positions first, then the generic walk.
args(M, F, Args, #rules{args = ArgRules} = R) when is_list(Args) ->
    Positions = case ArgRules of
                    #{} when map_size(ArgRules) =:= 0 -> [];
                    _ -> maps:get({M, F, length(Args)}, ArgRules, [])
                end,
    positional(Args, 1, Positions, R);
args(_, _, Args, R) -> t(Args, R, 0).

positional([], _, _, _) -> [];
positional([A | Rest], I, Positions, R) ->
    V = case lists:member(I, Positions) of
            true -> mark(argument);
            false -> t(A, R, 1)
        end,
    [V | positional(Rest, I + 1, Positions, R)];
positional(Tail, _, _, R) -> t(Tail, R, 1).

%% The generic walk.
t(_, _, Depth) when Depth > 64 -> mark(depth);
t(T, _, _) when is_atom(T); is_number(T); is_pid(T); is_port(T); is_reference(T);
                is_function(T) -> T;
t(T, R, _) when is_binary(T) -> binary(T, R);
t(T, R, D) when is_map(T) -> map(T, R, D);
t(T, R, D) when is_list(T) -> list(T, R, D);
t({K, V}, R, D) ->
    case secret_key(K, R) of
        true -> {K, mark(key)};
        false -> {t(K, R, D + 1), t(V, R, D + 1)}
    end;
t({M, F, Args, Loc}, R, D) when is_atom(M), is_atom(F), is_list(Args) ->
    %% A stacktrace entry with arguments: argument rules apply here too.
    {M, F, args(M, F, Args, R), t(Loc, R, D + 1)};
t(T, R, D) when is_tuple(T) ->
    list_to_tuple([t(E, R, D + 1) || E <- tuple_to_list(T)]);
t(T, _, _) -> T.

list([], _, _) -> [];
list([H | Tail], R, D) -> [t(H, R, D + 1) | list(Tail, R, D)];
list(Tail, R, D) -> t(Tail, R, D + 1).

map(M, #rules{structs = Structs} = R, D) ->
    case M of
        #{'__struct__' := Mod} when is_map_key(Mod, Structs) ->
            maps:map(fun('__struct__', V) -> V; (_, _) -> mark(struct) end, M);
        _ ->
            maps:map(fun(K, V) ->
                             case secret_key(K, R) of
                                 true -> mark(key);
                                 false -> t(V, R, D + 1)
                             end
                     end, M)
    end.

secret_key(_, #rules{keys = none}) -> false;
secret_key(K, #rules{keys = Pattern}) when is_atom(K) ->
    binary:match(lower(atom_to_binary(K, utf8)), Pattern) =/= nomatch;
secret_key(K, #rules{keys = Pattern}) when is_binary(K), byte_size(K) =< 128 ->
    binary:match(lower(K), Pattern) =/= nomatch;
secret_key(_, _) -> false.

lower(B) -> << <<(if C >= $A, C =< $Z -> C + 32; true -> C end)>> || <<C>> <= B >>.

binary(B, #rules{cards = Cards, values = Values}) ->
    case Cards andalso card(B) of
        true -> mark(card);
        false ->
            case lists:any(fun(Re) -> re:run(B, Re, [{capture, none}]) =:= match end, Values) of
                true -> mark(value);
                false -> B
            end
    end.

%% 13-19 digits, optionally grouped by spaces or dashes, passing the Luhn check.
card(B) when byte_size(B) >= 13, byte_size(B) =< 23 ->
    Digits = [C - $0 || <<C>> <= B, C >= $0, C =< $9],
    Others = [C || <<C>> <= B, C < $0 orelse C > $9, C =/= $\s, C =/= $-],
    Others =:= [] andalso length(Digits) >= 13 andalso length(Digits) =< 19
        andalso luhn(lists:reverse(Digits), 0, 0) rem 10 =:= 0;
card(_) -> false.

luhn([], _, Sum) -> Sum;
luhn([D | Rest], I, Sum) when I rem 2 =:= 1 ->
    D2 = D * 2,
    luhn(Rest, I + 1, Sum + (if D2 > 9 -> D2 - 9; true -> D2 end));
luhn([D | Rest], I, Sum) -> luhn(Rest, I + 1, Sum + D).
