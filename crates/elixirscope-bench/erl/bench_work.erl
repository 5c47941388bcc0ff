%% The benchmark's workloads and its in-node baselines (untraced, the NIF
%% discard floor, dbg's process tracer, dbg's ip trace port).
%%
%% run(Workload, Size, Tracing) runs one workload in a fresh driver process and
%% returns {Micros, PeakMemoryIncrease, TraceMessages, CpuMicros}: the
%% workload's own time, the node's peak memory above where it started (sampled
%% every 2 ms), how many trace messages dbg's counting tracer saw (0 for the
%% other set-ups), and the CPU time the node used meanwhile (it runs without
%% scheduler busy-waiting, so CPU time means work).
%% Tracing applies to processes created after it is set up (the driver and
%% everything it spawns), with the same flags and match specs for every tracer.
-module(bench_work).
-export([run/3, tiny/1, frames/3, big_start/1, big_clients/4, big_stop/0]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(WORKERS, 100).

tiny(X) -> X + 1.

%% ---- workloads -------------------------------------------------------------

%% Call-heavy: ?WORKERS processes each call tiny/1 Size div ?WORKERS times.
workload(calls, Size) ->
    Per = max(1, Size div ?WORKERS),
    Parent = self(),
    Pids = [spawn_link(fun() -> loop(Per, 0), Parent ! {done, self()} end)
            || _ <- lists:seq(1, ?WORKERS)],
    [receive {done, P} -> ok end || P <- Pids],
    ok;
%% Message-heavy: Size round trips between pairs of processes.
workload(pingpong, Size) ->
    Pairs = 4,
    Per = max(1, Size div Pairs),
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               Echo = spawn_link(fun echo/0),
                               ping(Echo, Per),
                               Echo ! stop,
                               Parent ! {done, self()}
                       end) || _ <- lists:seq(1, Pairs)],
    [receive {done, P} -> ok end || P <- Pids],
    ok;
%% GenServer-heavy: 4 servers with map state, 8 clients; Size requests, every
%% second one a call (reply awaited), the others casts.
workload(genserver, Size) ->
    Servers = [begin {ok, S} = gen_server:start_link(?MODULE, I, []), S end
               || I <- lists:seq(1, 4)],
    Clients = 8,
    Per = max(1, Size div Clients),
    Parent = self(),
    Pids = [spawn_link(fun() -> client(Servers, Per, C), Parent ! {done, self()} end)
            || C <- lists:seq(1, Clients)],
    [receive {done, P} -> ok end || P <- Pids],
    [begin unlink(S), exit(S, kill) end || S <- Servers],
    ok.

loop(0, Acc) -> Acc;
loop(N, Acc) -> loop(N - 1, ?MODULE:tiny(Acc)).

ping(_Echo, 0) -> ok;
ping(Echo, N) ->
    Echo ! {ping, self(), N},
    receive {pong, N} -> ping(Echo, N - 1) end.

echo() ->
    receive
        {ping, From, N} -> From ! {pong, N}, echo();
        stop -> ok
    end.

client(_Servers, 0, _C) -> ok;
client(Servers, N, C) ->
    S = lists:nth(1 + (N + C) rem length(Servers), Servers),
    case N rem 2 of
        0 -> {ok, _} = gen_server:call(S, {add, C, N});
        1 -> gen_server:cast(S, {note, N})
    end,
    client(Servers, N - 1, C).

init({big, Entries}) ->
    Map = maps:from_list([{I, #{id => I, name => <<"user-", (integer_to_binary(I))/binary>>,
                                payload => binary:copy(<<"x">>, 120)}}
                          || I <- lists:seq(1, Entries)]),
    {ok, #{entries => Map, version => 0}};
init(I) -> {ok, #{id => I, total => 0, calls => 0, last => []}}.

handle_call({get, K}, _From, S = #{entries := M}) ->
    {reply, maps:get(K, M, undefined), S};
handle_call({put, K, V}, _From, S = #{entries := M, version := N}) ->
    {reply, ok, S#{entries := M#{K => V}, version := N + 1}};
handle_call({add, C, N}, _From, S = #{total := T, calls := K}) ->
    {reply, {ok, T + N}, S#{total := T + N, calls := K + 1, last := [C]}}.

handle_cast({note, N}, S = #{last := L}) ->
    {noreply, S#{last := lists:sublist([N | L], 4)}}.

%% ---- large state -------------------------------------------------------------

%% A gen_server registered as bench_big whose state holds Entries entries of
%% about 250 bytes (200,000 entries: about 50 MB of heap). Returns its heap in
%% bytes.
big_start(Entries) ->
    big_stop(),
    {ok, Pid} = gen_server:start({local, bench_big}, ?MODULE, {big, Entries}, []),
    {total_heap_size, W} = erlang:process_info(Pid, total_heap_size),
    W * erlang:system_info(wordsize).

big_stop() ->
    case whereis(bench_big) of
        undefined -> ok;
        Pid ->
            Mon = erlang:monitor(process, Pid),
            exit(Pid, kill),
            receive {'DOWN', Mon, process, Pid, _} -> ok end
    end.

%% Clients call bench_big for Millis ms, each pausing PauseMs between calls
%% (one call in ten writes, the others read), under Tracing (none, or dbg's
%% counting process tracer on the server's callbacks and messages). Returns
%% {Calls, P50Ns, P99Ns, CpuMicros}: call latency as the clients saw it and
%% the node's CPU time meanwhile.
big_clients(Clients, Millis, PauseMs, Tracing) ->
    Stop = big_tracing(Tracing),
    Parent = self(),
    Cpu0 = cpu(),
    Deadline = erlang:monotonic_time(millisecond) + Millis,
    Pids = [spawn_link(fun() -> Parent ! {lat, self(), big_client(C, 0, Deadline, PauseMs, [])} end)
            || C <- lists:seq(1, Clients)],
    Lat = lists:sort(lists:append([receive {lat, P, L} -> L end || P <- Pids])),
    CpuMicros = (cpu() - Cpu0) * 1000,
    _ = Stop(),
    N = length(Lat),
    Pct = fun(_, 0) -> 0; (Q, Len) -> lists:nth(max(1, min(Len, round(Q * Len))), Lat) end,
    {N, Pct(0.5, N), Pct(0.99, N), CpuMicros}.

big_client(C, I, Deadline, PauseMs, Acc) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true -> Acc;
        false ->
            K = 1 + erlang:phash2({C, I}, 200000),
            Req = case I rem 10 of
                      0 -> {put, K, #{id => K, name => <<"v">>, payload => <<"y">>}};
                      _ -> {get, K}
                  end,
            T0 = erlang:monotonic_time(nanosecond),
            _ = gen_server:call(bench_big, Req, infinity),
            T = erlang:monotonic_time(nanosecond) - T0,
            receive after PauseMs -> ok end,
            big_client(C, I + 1, Deadline, PauseMs, [T | Acc])
    end.

big_tracing(none) -> fun() -> 0 end;
big_tracing(dbg_process) ->
    Counter = counters:new(1, []),
    {ok, _} = dbg:tracer(process, {counting(Counter), 0}),
    [{ok, _} = dbg:tpl(?MODULE, F, A, match_spec()) || {F, A} <- [{handle_call, 3}]],
    {ok, _} = dbg:p(whereis(bench_big), [send, 'receive', call]),
    fun() -> dbg_stop(Counter) end.

%% ---- tracing set-ups ---------------------------------------------------------

flags(calls) -> [call];
flags(pingpong) -> [send, 'receive'];
flags(genserver) -> [send, 'receive', call].

patterns(calls) -> [{?MODULE, tiny, 1}];
patterns(pingpong) -> [];
patterns(genserver) -> [{?MODULE, handle_call, 3}, {?MODULE, handle_cast, 2}].

match_spec() -> [{'_', [], [{exception_trace}]}].

run(W, Size, Tracing) ->
    erlang:garbage_collect(),
    Base = erlang:memory(total),
    Sampler = spawn(fun() -> sample(Base, 0) end),
    Stop = setup(Tracing, W),
    Cpu0 = cpu(),
    T0 = erlang:monotonic_time(microsecond),
    Driver = spawn(fun() -> workload(W, Size) end),
    Mon = erlang:monitor(process, Driver),
    receive {'DOWN', Mon, process, Driver, _} -> ok end,
    Micros = erlang:monotonic_time(microsecond) - T0,
    Count = Stop(),
    %% CPU time the node spent from the start until the tracer has handled
    %% every event (dbg) — the node's own cost, not the collector's.
    CpuMicros = (cpu() - Cpu0) * 1000,
    Sampler ! {report, self()},
    Peak = receive {peak, P} -> P after 5000 -> 0 end,
    {Micros, Peak, Count, CpuMicros}.

%% CPU time of every thread of the runtime (schedulers, the NIF tracer's
%% drain thread, I/O), in ms.
cpu() ->
    {Ms, _} = erlang:statistics(runtime),
    Ms.

sample(Base, Peak) ->
    receive
        {report, From} -> From ! {peak, max(Peak, erlang:memory(total) - Base)}
    after 2 ->
        sample(Base, max(Peak, erlang:memory(total) - Base))
    end.

set_patterns(W, On) ->
    [erlang:trace_pattern(MFA, case On of true -> match_spec(); false -> false end, [local])
     || MFA <- patterns(W)].

%% Each returns a fun that turns tracing off and returns the count.
setup(none, _W) ->
    fun() -> 0 end;
setup({floor, Lib}, W) ->
    %% An erl_tracer NIF whose enabled/3 discards every event.
    nif_setup(Lib, W, #{discard_all => true});
setup({deliver, Lib}, W) ->
    %% The same NIF keeping every event and doing nothing with it in trace/5:
    %% what the VM itself spends handing an event to a tracer.
    nif_setup(Lib, W, #{deliver_only => true});
setup(dbg_process, W) ->
    Counter = counters:new(1, []),
    {ok, _} = dbg:tracer(process, {counting(Counter), 0}),
    dbg_patterns(W),
    {ok, _} = dbg:p(new, flags(W)),
    fun() -> dbg_stop(Counter) end;
setup(dbg_ip, W) ->
    %% The client reading the port runs on this node too.
    Counter = counters:new(1, []),
    {ok, _} = dbg:tracer(port, dbg:trace_port(ip, {0, 10000000})),
    {ok, Port} = dbg:trace_port_control(node(), get_listen_port),
    Client = dbg:trace_client(ip, {"localhost", Port}, {counting(Counter), 0}),
    dbg_patterns(W),
    {ok, _} = dbg:p(new, flags(W)),
    fun() -> Count = dbg_stop(Counter), catch dbg:stop_trace_client(Client), Count end.

%% dbg's handler: counts trace messages (end_of_trace included, not counted).
counting(Counter) ->
    fun(end_of_trace, S) -> S;
       (_, S) -> counters:add(Counter, 1, 1), S
    end.

nif_setup(Lib, W, Options) ->
    code:ensure_loaded(elixirscope_nif_tracer),
    ok = case elixirscope_nif_tracer:load(unicode:characters_to_list(Lib)) of
             ok -> ok;
             {error, {reload, _}} -> ok;
             {error, {upgrade, _}} -> ok;
             Other -> Other
         end,
    ok = elixirscope_nif_tracer:start(self(), Options),
    set_patterns(W, true),
    erlang:trace(new, true, flags(W) ++ [{tracer, elixirscope_nif_tracer, []}]),
    fun() ->
            erlang:trace(new, false, [all]),
            set_patterns(W, false),
            _ = elixirscope_nif_tracer:stop(),
            0
    end.

dbg_patterns(W) ->
    [{ok, _} = dbg:tpl(M, F, A, match_spec()) || {M, F, A} <- patterns(W)].

%% Stops dbg once every trace message has reached the counting fun, and
%% returns how many there were.
dbg_stop(Counter) ->
    dbg:p(all, clear),
    Ref = erlang:trace_delivered(all),
    receive {trace_delivered, all, Ref} -> ok after 60000 -> ok end,
    dbg:ctpl(),
    catch dbg:flush_trace_port(),
    settle(Counter, -1),
    Count = counters:get(Counter, 1),
    dbg:stop(),
    Count.

%% Waits until the count has not moved for 100 ms.
settle(Counter, Last) ->
    case counters:get(Counter, 1) of
        Last -> ok;
        Now -> timer:sleep(100), settle(Counter, Now)
    end.

%% ---- recorded frames, for the collector's ingest benchmark ---------------------

%% Runs the three workloads under a process tracer that turns trace messages
%% into the agent's frames ({es_hello, ...}, then {es_batch, Seq, 0, Events} of
%% 2,000 events), written length-prefixed to File. Returns the event count.
frames(File, Size, _Opts) ->
    Info = #{otp_release => list_to_binary(erlang:system_info(otp_release)),
             monotonic_ns => erlang:monotonic_time(nanosecond),
             time_offset_ns => erlang:time_offset(nanosecond),
             schedulers => erlang:system_info(schedulers_online),
             process_count => erlang:system_info(process_count),
             tracer => process, tracer_note => <<>>},
    Hello = term_to_binary({es_hello, 1, <<>>, node(), Info}),
    Collector = spawn(fun() ->
                              {ok, Fd} = file:open(File, [write, raw, binary, delayed_write]),
                              write_frame(Fd, Hello),
                              collect(Fd, 1, [], 0, 0)
                      end),
    [begin
         set_patterns(W, true),
         erlang:trace(new, true, flags(W) ++ [monotonic_timestamp, {tracer, Collector}]),
         Driver = spawn(fun() -> workload(W, Size) end),
         Mon = erlang:monitor(process, Driver),
         receive {'DOWN', Mon, process, Driver, _} -> ok end,
         erlang:trace(new, false, [all]),
         erlang:trace(all, false, [all]),
         set_patterns(W, false)
     end || W <- [calls, pingpong, genserver]],
    Ref = erlang:trace_delivered(all),
    receive {trace_delivered, all, Ref} -> ok end,
    Collector ! {done, self()},
    receive {collected, N} -> N end.

collect(Fd, Seq, Acc, AccN, Total) when AccN >= 2000 ->
    write_frame(Fd, term_to_binary({es_batch, Seq, 0, lists:reverse(Acc)})),
    collect(Fd, Seq + 1, [], 0, Total);
collect(Fd, Seq, Acc, AccN, Total) ->
    receive
        {done, From} ->
            write_frame(Fd, term_to_binary({es_batch, Seq, 0, lists:reverse(Acc)})),
            ok = file:close(Fd),
            From ! {collected, Total};
        Msg when element(1, Msg) =:= trace_ts ->
            collect(Fd, Seq, [Msg | Acc], AccN + 1, Total + 1)
    end.

write_frame(Fd, Bin) ->
    ok = file:write(Fd, [<<(byte_size(Bin)):32>>, Bin]).
