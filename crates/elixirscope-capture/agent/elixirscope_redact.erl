%% Redaction rules: what counts as a secret, decided on the node before any
%% byte leaves it. elixirscope_payload applies them while it walks each
%% payload term.
%%
%% A value is replaced by <<"[REDACTED]">> when it is
%% - under a secret-looking key: a map key, keyword key or first element of a
%%   2-tuple (atom or binary) containing one of the configured names
%%   (password, secret, token, authorization, ... case-insensitive);
%% - a field of a struct whose module is listed (every field but __struct__);
%% - an argument at a listed position of a listed function (in calls and in
%%   stacktrace entries);
%% - a string that looks like a payment card number (13-19 digits, Luhn check);
%% - a binary, a string written as a list of bytes, or an atom matching one of
%%   the configured regular expressions (--redact-value).
%% Terms nested deeper than 64 levels are replaced whole, so nothing
%% escapes by depth. Per rule, how many values were replaced is kept in the
%% walking process's dictionary; the values themselves are never kept.
-module(elixirscope_redact).

-export([new/2, counts/0, add_counts/1, mark/1, enabled/1, call_values/1,
         secret_key/2, arg_positions/4, struct_listed/2, secret_binary/2,
         secret_atom/2, secret_value/2, has_values/1, check_values/1]).

-record(rules, {on = true, keys = none, structs = #{}, args = #{}, cards = true, values = [],
                call_values = true}).

%% Config: #{keys => [binary()], structs => [module()],
%%           args => [{M, F, Arity, [Position]}], cards => boolean(),
%%           values => [binary() regex]}; `false` disables redaction.
%% CallValues = false: calls carry no argument values (the tracer asks for
%% arities only) and results are not captured either.
new(false, CallValues) ->
    %% Without call values the depth rule still applies (as in the NIF tracer).
    #rules{on = not CallValues, cards = false, call_values = CallValues};
new(Config, CallValues) when is_map(Config) ->
    Keys = [string:lowercase(K) || K <- maps:get(keys, Config, []), is_binary(K), K =/= <<>>],
    {ok, Values} = check_values(maps:get(values, Config, [])),
    #rules{call_values = CallValues,
           keys = case Keys of [] -> none; _ -> binary:compile_pattern(Keys) end,
           structs = maps:from_list([{S, true} || S <- maps:get(structs, Config, [])]),
           args = maps:from_list([{{M, F, A}, Ps} || {M, F, A, Ps} <- maps:get(args, Config, [])]),
           cards = maps:get(cards, Config, true),
           values = Values}.

%% Compiles the value patterns once: {ok, [Compiled]} or {error, {Pattern, Why}}.
check_values(Patterns) ->
    lists:foldr(fun(_, {error, _} = E) -> E;
                   (P, {ok, Acc}) ->
                        case catch re:compile(P) of
                            {ok, Re} -> {ok, [Re | Acc]};
                            {error, {Why, _At}} -> {error, {P, Why}};
                            Other -> {error, {P, Other}}
                        end
                end, {ok, []}, Patterns).

enabled(#rules{on = On}) -> On.
call_values(#rules{call_values = C}) -> C.
has_values(#rules{values = V}) -> V =/= [].

%% Values replaced so far by this process, per rule.
counts() ->
    maps:from_list([{Rule, N} || {{elixirscope_redacted, Rule}, N} <- get()]).

%% Adds counts another process made (the start snapshot's state reader).
add_counts(Counts) ->
    maps:foreach(fun(Rule, N) -> count(Rule, N) end, Counts).

count(Rule, N) ->
    Key = {elixirscope_redacted, Rule},
    put(Key, case get(Key) of undefined -> N; M -> M + N end).

mark(Rule) ->
    count(Rule, 1),
    <<"[REDACTED]">>.

%% Listed argument positions of M:F/Arity.
arg_positions(_, _, _, #rules{args = ArgRules}) when map_size(ArgRules) =:= 0 -> [];
arg_positions(M, F, Arity, #rules{args = ArgRules}) -> maps:get({M, F, Arity}, ArgRules, []).

struct_listed(Mod, #rules{structs = Structs}) -> is_map_key(Mod, Structs).

secret_key(_, #rules{keys = none}) -> false;
secret_key(K, #rules{keys = Pattern}) when is_atom(K) ->
    binary:match(lower(atom_to_binary(K, utf8)), Pattern) =/= nomatch;
secret_key(K, #rules{keys = Pattern}) when is_binary(K), byte_size(K) =< 128 ->
    binary:match(lower(K), Pattern) =/= nomatch;
secret_key(_, _) -> false.

lower(B) -> << <<(if C >= $A, C =< $Z -> C + 32; true -> C end)>> || <<C>> <= B >>.

%% card | value | false for the bytes of a binary or string (the walker
%% passes at most what it keeps plus a look-ahead, never more).
secret_binary(B, #rules{cards = Cards} = R) ->
    case Cards andalso card(B) of
        true -> card;
        false ->
            case value_match(B, R) of
                true -> value;
                false -> false
            end
    end.

%% Whether an atom's text matches a value pattern (cached per atom).
secret_atom(_, #rules{values = []}) -> false;
secret_atom(A, R) ->
    Key = {elixirscope_atom_secret, A},
    case get(Key) of
        undefined ->
            Secret = value_match(atom_to_binary(A, utf8), R),
            %% The cache is bounded: past it atoms are checked every time.
            case get(elixirscope_atom_cache) of
                N when is_integer(N), N >= 10000 -> ok;
                N -> put(elixirscope_atom_cache, case N of undefined -> 1; _ -> N + 1 end),
                     put(Key, Secret)
            end,
            Secret;
        Secret -> Secret
    end.

%% Whether some bytes match a value pattern.
secret_value(B, R) -> value_match(B, R).

value_match(_, #rules{values = []}) -> false;
value_match(B, #rules{values = Values}) ->
    lists:any(fun(Re) ->
                      %% A match that hits PCRE's limits counts as a match:
                      %% when in doubt, redact.
                      re:run(B, Re, [{capture, none}, {match_limit, 100000},
                                     {match_limit_recursion, 10000}]) =/= nomatch
              end, Values).

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
