%% The tracer-cost governor: keeps the tracer's own share of scheduler time
%% within the capture's budget (--max-tracer-cpu).
%%
%% Every second the tracer reports how long recording took (the NIF tracer
%% times each trace callback; the process tracer times its handling of each
%% trace message) and which processes' state callbacks cost most in that
%% second. Over the budget, the governor first degrades the costliest process
%% whose state is captured, one step per second:
%%   1 shallower limits for its state, 2 its state for one callback in 16,
%%   3 its state not captured at all;
%% each step becomes an event with its reason. When no process is left to
%% degrade (or the cost is not in state capture) and the tracer has been over
%% budget for three seconds in a row (a burst is not a trend), the capture
%% trips, one-way, like every other breaker.
-module(elixirscope_governor).

-export([new/2, check/4, level_name/1]).

-record(gov, {max_share, schedulers, last_at, last_busy = 0, strikes = 0}).

%% MaxShare: a fraction of all schedulers' time (0.05 = 5 %), or undefined.
new(undefined, _) -> off;
new(MaxShare, BusyNs) when is_number(MaxShare) ->
    #gov{max_share = MaxShare, schedulers = erlang:system_info(schedulers_online),
         last_at = erlang:monotonic_time(nanosecond), last_busy = BusyNs}.

%% Called about once a second with now (monotonic ns), the cumulative busy ns,
%% and the window's costliest state processes as [{Pid, Ns, Callbacks, Level}]
%% (costliest first).
%% -> {ok, Gov} | {degrade, Pid, Level, Detail, Gov} | {trip, Detail}.
check(off, _, _, _) -> {ok, off};
check(#gov{} = G, Now, Busy, Procs) ->
    Window = max(1, Now - G#gov.last_at),
    Spent = max(0, Busy - G#gov.last_busy),
    Share = Spent / (Window * G#gov.schedulers),
    G0 = G#gov{last_at = Now, last_busy = Busy},
    case Share > G#gov.max_share of
        false -> {ok, G0#gov{strikes = 0}};
        true ->
            Why = fmt("the tracer used ~.2f % of scheduler time over ~b ms (budget ~.2f %)",
                      [Share * 100, Window div 1000000, G#gov.max_share * 100]),
            G1 = G0#gov{strikes = G#gov.strikes + 1},
            case [P || {_, Ns, _, Level} = P <- Procs, Level < 3, Ns * 5 >= Spent] of
                [{Pid, Ns, _, Level} | _] ->
                    Next = Level + 1,
                    Detail = fmt("~s; ~.1f % of it on the state of ~p: ~s",
                                 [Why, 100 * Ns / max(1, Spent), Pid, level_name(Next)]),
                    {degrade, Pid, Next, Detail, G1};
                [] when G1#gov.strikes >= 3 ->
                    {trip, [Why, <<"; over budget for 3 s, no state capture left to degrade">>]};
                [] ->
                    {ok, G1}
            end
    end.

level_name(1) -> <<"state captured with shallower limits">>;
level_name(2) -> <<"state captured for one callback in 16">>;
level_name(_) -> <<"state no longer captured">>.

fmt(F, A) -> iolist_to_binary(io_lib:format(F, A)).
