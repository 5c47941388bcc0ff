%% The tracer process: receives trace messages, applies sampling and budgets,
%% batches events and ships them to the collector.
%%
%% Transport contract (frames are Erlang terms, 4-byte length prefixed):
%%   agent -> collector: {es_hello, 1, Token, Node, Info}
%%                       {es_batch, Seq, DroppedSoFar, Events}
%%                       {es_bye, Seq, Stats}
%%                       {es_status, Map} (budget use, once a second)
%%   collector -> agent: {es_welcome}, {es_ack, Seq}, {es_stop}, {es_lease}
%% A batch is handed to the link (elixirscope_link) without waiting; when the
%% socket is busy or too many batches are unacknowledged, the batch is dropped
%% and counted, and the next batch carries the new drop total. The node is never
%% made to wait for the collector.
%%
%% Two tracers feed the same pipeline. The process tracer is this process:
%% trace messages arrive in its mailbox and are sampled, redacted and batched
%% here. The NIF tracer (elixirscope_nif_tracer, used when the collector found
%% its library on the node's host) samples, redacts and encodes events on the
%% schedulers and hands this process ready-made batches ({es_nif_batch, ...});
%% this process ships them under the same contract and budgets.
%%
%% Budgets (events, events/s, bytes/s, duration, mailbox backlog, tracer
%% memory) are checked as events arrive, node stress (elixirscope_breaker)
%% every 100 ms; hitting one trips the capture: tracing stops for good, the
%% reason (with how fast tracing went off) is sent, and the tracer waits to be
%% told to stop. If the collector connection is lost, or nothing is heard from
%% the collector for the lease time (dead-man), tracing stops and the agent
%% unloads itself.
-module(elixirscope_tracer).

-export([start/2, flush_sync/2]).

-record(st, {config, sock, token, setup = #{}, own = #{},
             acc = [], acc_n = 0, timer = false,
             seq = 0, sent = 0, acked = 0, max_inflight = 64,
             pending = queue:new(), pending_bytes = 0, max_buffer = 8388608,
             batch_max = 2000, batch_delay = 20,
             sample = 1,
             total = 0, dropped = 0, sampled_out = 0, discarded = 0,
             window_start = 0, window_base = 0, since_check = 0, check_every = 500,
             max_events, max_rate, max_backlog, max_memory, max_backlog_seen = 0,
             tripped = false, watcher, syncs = [], state_mods = #{},
             breaker, lease_ms = 15000, last_heard = 0, status_at = 0,
             bytes_window = 0, max_bytes_rate = infinity, bytes_sent = 0,
             trace_off_us, capture, governor = off, busy_ns = 0, govern_at = 0,
             nif = false, nif_dropped = 0, nif_stats = #{}, nif_owed = 0,
             run_mode = false, started}).

start(Config, Caller) ->
    spawn(fun() -> init(Config, Caller) end).

init(Config, Caller) ->
    process_flag(message_queue_data, off_heap),
    process_flag(trap_exit, true),
    erlang:trace(self(), false, [all]),
    %% Loaded now, not when a trip or a degradation is first written: loading
    %% code goes through the code server and waits for every scheduler, and
    %% a node under the stress that made us act is exactly when that is slow.
    _ = [code:ensure_loaded(M) || M <- [io_lib, io_lib_format, io_lib_pretty, string,
                                          unicode, re, binary, queue, maps, lists]],
    _ = fmt("~p ~b ~s ~.2f", [ok, 1, "x", 1.0]),
    case catch register(elixirscope_tracer, self()) of
        true -> connect(Config, Caller);
        _ -> Caller ! {elixirscope_tracer_failed, self(), already_capturing}
    end.

connect(Config, Caller) ->
    {Host, Port} = maps:get(collector, Config),
    case elixirscope_link:connect(Host, Port, maps:get(tls, Config, false), 5000) of
        {ok, Link} ->
            Token = maps:get(token, Config, <<>>),
            {Kind, Note} = choose_tracer(Config, Caller, Link),
            Info = #{otp_release => list_to_binary(erlang:system_info(otp_release)),
                     monotonic_ns => erlang:monotonic_time(nanosecond),
                     time_offset_ns => erlang:time_offset(nanosecond),
                     schedulers => erlang:system_info(schedulers_online),
                     process_count => erlang:system_info(process_count),
                     tracer => Kind, tracer_note => Note},
            _ = elixirscope_link:send(Link, term_to_binary({es_hello, 1, Token, node(), Info})),
            case await_welcome(5000) of
                ok -> ready(Config, Caller, Link, Token, Kind);
                Why ->
                    elixirscope_trace_setup:stop_nif(),
                    elixirscope_link:close(Link),
                    Caller ! {elixirscope_tracer_failed, self(), Why}
            end;
        {error, Why} ->
            Caller ! {elixirscope_tracer_failed, self(), {collector_unreachable, Host, Port, Why}}
    end.

%% The NIF tracer when the collector offered its library and it loads and
%% starts here; the process tracer otherwise. Returns {Kind, WhyNotNif}.
choose_tracer(Config, Caller, Link) ->
    case maps:get(nif, Config, false) of
        false -> {process, maps:get(nif_note, Config, <<>>)};
        Path ->
            case catch elixirscope_nif_tracer:load(Path) of
                ok -> start_nif(Config, Caller, Link);
                Other ->
                    {process, fmt("the NIF tracer library did not load (~0p)", [Other])}
            end
    end.

start_nif(Config, Caller, Link) ->
    Own = [self(), Caller | elixirscope_link:pids(Link)],
    case catch elixirscope_nif_tracer:start(self(), nif_options(Config, Own)) of
        ok -> {nif, <<>>};
        Other -> {process, fmt("the NIF tracer did not start (~0p)", [Other])}
    end.

%% Each scheduler's ring gets a share of the tracer memory budget (rings are
%% allocated only on threads that record events).
nif_options(Config, Own) ->
    Budget = maps:get(budget, Config, #{}),
    Memory = maps:get(max_memory, Budget, 256 * 1024 * 1024),
    Threads = erlang:system_info(schedulers) + erlang:system_info(dirty_cpu_schedulers),
    Ring = max(256 * 1024, min(8 * 1024 * 1024, Memory div (2 * Threads))),
    Base = #{sample => max(1, maps:get(sample, Config, 1)),
             call_values => maps:get(call_values, Config, true),
             redact => maps:get(redact, Config, false),
             limits => maps:get(limits, Config, #{}),
             ring_bytes => Ring, batch_bytes => 256 * 1024, max_inflight => 8,
             own => Own},
    case maps:get(max_events, Budget, infinity) of
        Max when is_integer(Max) -> Base#{max_events => Max};
        _ -> Base
    end.

%% What payload terms keep, and how much state each process gets.
state_capture(Config) ->
    Limits = maps:get(limits, Config, #{}),
    New = fun(L) -> elixirscope_payload:new(maps:get(redact, Config, false),
                                            maps:get(call_values, Config, true), L) end,
    Shallow = maps:map(fun(depth, V) -> max(2, V div 2);
                          (elements, V) -> max(4, V div 4);
                          (bytes, V) -> max(16, V div 4);
                          (event_bytes, V) -> max(512, V div 4);
                          (_, V) -> V
                       end, maps:merge(#{depth => 12, elements => 64, bytes => 1024,
                                         event_bytes => 65536}, Limits)),
    MaxHeap = maps:get(max_state_heap, maps:get(budget, Config, #{}), infinity),
    elixirscope_state_capture:new(New(Limits), New(Shallow), MaxHeap).

await_welcome(Timeout) ->
    receive
        Msg when element(1, Msg) =:= tcp; element(1, Msg) =:= ssl;
                 element(1, Msg) =:= tcp_closed; element(1, Msg) =:= ssl_closed;
                 element(1, Msg) =:= tcp_error; element(1, Msg) =:= ssl_error ->
            case elixirscope_link:data(Msg) of
                {data, Bin} ->
                    case catch binary_to_term(Bin, [safe]) of
                        {es_welcome} -> ok;
                        Other -> {collector_refused, Other}
                    end;
                closed -> collector_closed;
                {error, Why} -> {collector_error, Why};
                _ -> await_welcome(Timeout)
            end
    after Timeout -> collector_silent
    end.

ready(Config, Caller, Link, Token, Kind) ->
    %% From here on the lease and the dead-man unload the agent.
    catch exit(whereis(elixirscope_janitor), kill),
    Budget = maps:get(budget, Config, #{}),
    Now = erlang:monotonic_time(millisecond),
    case maps:get(max_duration_ms, Budget, infinity) of
        infinity -> ok;
        Ms -> erlang:send_after(Ms, self(), es_duration)
    end,
    MaxRate = maps:get(max_rate, Budget, infinity),
    S0 = #st{config = Config, sock = Link, token = Token,
            own = maps:from_list([{P, true} || P <- [self(), Caller | elixirscope_link:pids(Link)]]),
            sample = max(1, maps:get(sample, Config, 1)),
            batch_max = maps:get(batch_max, Config, 2000),
            batch_delay = maps:get(batch_delay_ms, Config, 20),
            max_inflight = maps:get(max_inflight, Config, 64),
            max_buffer = maps:get(max_buffer_bytes, Budget, 8388608),
            max_bytes_rate = maps:get(max_bytes_rate, Budget, infinity),
            breaker = elixirscope_breaker:new(Budget),
            capture = state_capture(Config),
            governor = elixirscope_governor:new(maps:get(max_tracer_cpu, Budget, undefined), 0),
            lease_ms = maps:get(lease_ms, Config, 15000),
            last_heard = Now, status_at = Now,
            max_events = maps:get(max_events, Budget, infinity),
            max_rate = MaxRate,
            check_every = case MaxRate of
                              infinity -> 1000;
                              R -> max(10, min(1000, R div 20))
                          end,
            max_backlog = maps:get(max_backlog, Budget, 100000),
            max_memory = maps:get(max_memory, Budget, 256 * 1024 * 1024),
            run_mode = maps:get(run_mode, Config, false),
            nif = Kind =:= nif,
            window_start = Now, started = Now, govern_at = Now},
    LinkPids = elixirscope_link:pids(Link),
    Caller ! {elixirscope_tracer_ready, self(), LinkPids, Kind},
    erlang:send_after(100, self(), es_housekeeping),
    Watcher = case S0#st.run_mode of
                  true -> [{watch_for_elixir(self()), true}];
                  false -> []
              end,
    S = S0#st{own = maps:merge(S0#st.own, maps:from_list(Watcher))},
    loop(S).

loop(S) ->
    receive
        Msg -> loop(nif_repay(handle(Msg, S)))
    end.

handle(Msg, S) when element(1, Msg) =:= trace_ts ->
    %% The process tracer times its own work for the tracer-cost governor.
    T0 = erlang:monotonic_time(),
    S1 = trace_event(Msg, S),
    Ns = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond),
    S2 = S1#st{busy_ns = S1#st.busy_ns + Ns},
    case elixirscope_state_capture:is_state_event(Msg, S2#st.capture) of
        {true, Pid} ->
            S2#st{capture = elixirscope_state_capture:charge(Pid, Ns, S2#st.capture)};
        false -> S2
    end;
handle({es_nif_batch, Bin, N, Dropped}, S) -> budget(nif_batch(Bin, N, Dropped, S));
handle({es_events, Evs}, S) -> agent_events(Evs, S);
handle({es_redacted, Counts}, S) -> elixirscope_redact:add_counts(Counts), S;
handle(Msg, S) when element(1, Msg) =:= tcp; element(1, Msg) =:= ssl;
                    element(1, Msg) =:= inet_reply;
                    element(1, Msg) =:= tcp_closed; element(1, Msg) =:= ssl_closed;
                    element(1, Msg) =:= tcp_error; element(1, Msg) =:= ssl_error ->
    case elixirscope_link:data(Msg) of
        {data, Bin} ->
            control(catch binary_to_term(Bin, [safe]),
                    S#st{last_heard = erlang:monotonic_time(millisecond)});
        sent -> drain_pending(S);
        closed -> dead_man(collector_closed, S);
        {error, Why} -> dead_man({connection_error, Why}, S);
        other -> S
    end;
handle(es_flush_tick, S) -> rearm(flush(S#st{timer = false}));
handle(es_housekeeping, S) -> housekeeping(S);
handle(es_duration, S) ->
    trip(max_duration, <<"capture reached its maximum duration">>, S);
handle({es_setup_done, Setup}, S) -> setup_done(Setup, S);
handle({es_module_loaded, Ts, M, Applied, StateInfo}, S) -> module_loaded(Ts, M, Applied, StateInfo, S);
handle({es_stop, From}, S) -> stop(From, S);
handle({es_status, From, Ref}, S) -> From ! {Ref, stats(S)}, S;
handle({es_flush_sync, From, Ref}, S) ->
    %% The program is about to halt: the last status carries the final counts.
    S1 = flush(status(infinity, nif_flush(S))),
    Seq = S1#st.seq + 1,
    S2 = enqueue(term_to_binary({es_batch, Seq, dropped(S1), []}), Seq, 0, S1),
    case S2#st.seq of
        Seq -> rearm(S2#st{syncs = [{Seq, From, Ref} | S2#st.syncs]});
        _ -> From ! {Ref, busy}, S2
    end;
handle({'EXIT', _, normal}, S) -> S;
handle({'EXIT', _, Why}, S) ->
    %% A linked helper (the TLS sender, the module watch) died: fail safe.
    dead_man({helper_died, Why}, S);
handle(_Other, S) -> S.

%% A batch from the NIF tracer: already sampled, redacted and encoded; it
%% becomes an es_batch frame without being decoded.
nif_batch(Bin, N, NifDropped, S) ->
    %% Agent events accepted before this batch arrived (setup, snapshot) go
    %% first: the collector reads the setup before the events it explains.
    S1 = (flush(S))#st{nif_dropped = max(NifDropped, S#st.nif_dropped)},
    case S1#st.tripped of
        false ->
            Seq = S1#st.seq + 1,
            Frame = <<131, 104, 4, 119, 8, "es_batch", (etf_body(Seq))/binary,
                      (etf_body(dropped(S1)))/binary, Bin/binary>>,
            S2 = S1#st{total = S1#st.total + N, since_check = S1#st.since_check + N},
            case S2#st.pending_bytes + byte_size(Frame) =< S2#st.max_buffer of
                true ->
                    catch elixirscope_nif_tracer:batch_done(),
                    enqueue(Frame, Seq, N, S2);
                false ->
                    %% The collector is not keeping up: this batch is dropped
                    %% and counted, and the drain thread is not told it may
                    %% send more until the queue has room again, so the NIF's
                    %% rings fill and drop at the source, where it is cheapest.
                    S2#st{dropped = S2#st.dropped + N, nif_owed = S2#st.nif_owed + 1}
            end;
        _ ->
            catch elixirscope_nif_tracer:batch_done(),
            S1#st{discarded = S1#st.discarded + N}
    end.

%% Lets the drain thread send again once the queue is half empty.
nif_repay(#st{nif_owed = 0} = S) -> S;
nif_repay(#st{pending_bytes = P, max_buffer = Max} = S) when P > Max div 2 -> S;
nif_repay(#st{nif_owed = N} = S) ->
    [catch elixirscope_nif_tracer:batch_done() || _ <- lists:seq(1, N)],
    S#st{nif_owed = 0}.

etf_body(Term) ->
    <<131, Body/binary>> = term_to_binary(Term),
    Body.

%% Events dropped so far: by this process and by the NIF tracer's rings.
dropped(S) -> S#st.dropped + S#st.nif_dropped.

%% Batches the NIF tracer sent that are still in the mailbox (after it stopped).
collect_nif_batches(S) ->
    receive
        {es_nif_batch, Bin, N, Dropped} -> collect_nif_batches(nif_batch(Bin, N, Dropped, S))
    after 0 -> S
    end.

%% Makes the NIF tracer send everything recorded so far, and waits for it.
nif_flush(#st{nif = false} = S) -> S;
nif_flush(S) ->
    Token = erlang:unique_integer([positive]),
    case catch elixirscope_nif_tracer:flush(Token) of
        ok -> await_nif_flush(Token, S, erlang:monotonic_time(millisecond) + 2000);
        _ -> S
    end.

await_nif_flush(Token, S, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {es_nif_flushed, Token} -> S;
        {es_nif_batch, Bin, N, Dropped} ->
            await_nif_flush(Token, nif_batch(Bin, N, Dropped, S), Deadline)
    after Left -> S
    end.

%% Events the agent itself produced (start snapshot, states read at start:
%% those were bounded and redacted by the process that read them).
agent_events(Evs, S) ->
    lists:foldl(fun({es_state_bounded, P, Ts, State}, Acc) -> accept({es_state, P, Ts, State}, Acc);
                   (E, Acc) -> keep(E, Acc)
                end, S, Evs).

%% Keeps a message as it leaves the node: within the limits and redacted.
keep(Msg, S) ->
    {Out, C0} = elixirscope_state_capture:bound(Msg, S#st.capture),
    {Over, C} = elixirscope_state_capture:take_over_heap(C0),
    S1 = accept(Out, S#st{capture = C}),
    lists:foldl(fun({Pid, Heap}, Acc) -> over_heap(Pid, Heap, Acc) end, S1, Over).

%% Trace messages.
trace_event(_Msg, #st{tripped = T} = S) when T =/= false ->
    S#st{discarded = S#st.discarded + 1};
trace_event(Msg, #st{own = Own} = S) ->
    Pid = element(2, Msg),
    case Own of
        #{Pid := _} -> S;
        _ -> trace_event_foreign(Msg, S)
    end.

trace_event_foreign({trace_ts, _, unregister, elixirscope_boot, _}, S) ->
    %% The run-mode boot hook giving back its temporary name.
    S;
trace_event_foreign({trace_ts, Pid, spawned, Parent, _, _} = Msg, #st{own = Own} = S) ->
    case Own of
        #{Parent := _} -> S#st{own = Own#{Pid => true}};
        _ -> sample(Msg, S)
    end;
trace_event_foreign(Msg, S) ->
    sample(Msg, S).

%% Messages are sampled by content (so both sides of a message agree), calls by
%% process (so call stacks stay whole). Callbacks of modules whose state was
%% asked for, lifecycle events, exceptions and agent events are always kept.
%% (phash2/1 rem N, as the NIF tracer computes it with enif_hash.)
sample(Msg, #st{sample = 1} = S) -> keep(Msg, S);
sample(Msg, #st{sample = N, state_mods = SM} = S) ->
    Keep = case Msg of
               {trace_ts, _, send, M, _, _} -> erlang:phash2(M) rem N =:= 0;
               {trace_ts, _, 'receive', M, _} -> erlang:phash2(M) rem N =:= 0;
               {trace_ts, P, call, {Mod, _, _}, _} ->
                   maps:is_key(Mod, SM) orelse erlang:phash2(P) rem N =:= 0;
               {trace_ts, P, return_from, {Mod, _, _}, _, _} ->
                   maps:is_key(Mod, SM) orelse erlang:phash2(P) rem N =:= 0;
               _ -> true
           end,
    case Keep of
        true -> keep(Msg, S);
        false -> S#st{sampled_out = S#st.sampled_out + 1}
    end.

accept(_Msg, #st{tripped = T} = S) when T =/= false ->
    S#st{discarded = S#st.discarded + 1};
accept(Msg, S) ->
    %% In NIF mode only agent events come through here; they count against the
    %% same event budget as the NIF tracer's.
    _ = S#st.nif andalso (catch elixirscope_nif_tracer:reserve(1)),
    N = S#st.acc_n + 1,
    S1 = S#st{acc = [Msg | S#st.acc], acc_n = N, total = S#st.total + 1,
              since_check = S#st.since_check + 1},
    S2 = case N >= S1#st.batch_max of
             true -> flush(S1);
             false when S1#st.timer =:= false ->
                 erlang:send_after(S1#st.batch_delay, self(), es_flush_tick),
                 S1#st{timer = true};
             false -> S1
         end,
    budget(S2).

%% Budgets.
budget(#st{tripped = T} = S) when T =/= false -> S;
budget(#st{total = T, max_events = Max} = S) when is_integer(Max), T >= Max ->
    trip(max_events, iolist_to_binary(io_lib:format("captured ~b events (budget ~b)", [T, Max])), S);
budget(#st{since_check = C, check_every = E} = S) when C < E -> S;
budget(S) ->
    Now = erlang:monotonic_time(millisecond),
    {message_queue_len, Backlog} = erlang:process_info(self(), message_queue_len),
    S1 = S#st{since_check = 0, max_backlog_seen = max(Backlog, S#st.max_backlog_seen)},
    InWindow = S1#st.total - S1#st.window_base,
    if
        Backlog > S1#st.max_backlog ->
            trip(max_backlog, fmt("tracer mailbox held ~b messages (budget ~b)",
                                  [Backlog, S1#st.max_backlog]), S1);
        is_integer(S1#st.max_rate), InWindow > S1#st.max_rate, Now - S1#st.window_start < 1000 ->
            trip(max_rate, fmt("~b events in ~b ms (budget ~b events/s)",
                               [InWindow, Now - S1#st.window_start, S1#st.max_rate]), S1);
        is_integer(S1#st.max_bytes_rate), S1#st.bytes_window > S1#st.max_bytes_rate,
        Now - S1#st.window_start < 1000 ->
            trip(max_bytes_rate, fmt("~b bytes of events in ~b ms (budget ~b bytes/s)",
                                     [S1#st.bytes_window, Now - S1#st.window_start,
                                      S1#st.max_bytes_rate]), S1);
        Now - S1#st.window_start >= 1000 ->
            memory_check(S1#st{window_start = Now, window_base = S1#st.total,
                               bytes_window = 0});
        true -> S1
    end.

memory_check(S) ->
    {memory, Mem} = erlang:process_info(self(), memory),
    case Mem > S#st.max_memory of
        true -> trip(max_memory, fmt("tracer used ~b bytes (budget ~b)", [Mem, S#st.max_memory]), S);
        false -> S
    end.

fmt(F, A) -> iolist_to_binary(io_lib:format(F, A)).

%% A trip is one-way: tracing stops and is never resumed by the agent.
trip(Reason, Detail0, S) ->
    T0 = erlang:monotonic_time(microsecond),
    %% The NIF tracer records nothing more from here. Then flags: that stops
    %% the flow of events within a millisecond; removing patterns can take much
    %% longer on a busy node and no longer matters then.
    _ = S#st.nif andalso (catch elixirscope_nif_tracer:deactivate()),
    erlang:trace(all, false, [all]),
    OffUs = erlang:monotonic_time(microsecond) - T0,
    S0 = stop_tracing(S),
    Detail = iolist_to_binary([Detail0, io_lib:format("; tracing off ~b us after detection", [OffUs])]),
    S1 = flush(S0#st{trace_off_us = OffUs}),
    Trip = {es_trip, erlang:monotonic_time(nanosecond), Reason, Detail},
    Seq = S1#st.seq + 1,
    %% The trip notice is small and must arrive: it is queued even past the byte limit.
    Bin = term_to_binary({es_batch, Seq, dropped(S1), [Trip]}),
    S2 = S1#st{seq = Seq, pending = queue:in(Bin, S1#st.pending),
               pending_bytes = S1#st.pending_bytes + byte_size(Bin),
               tripped = {Reason, Detail}},
    rearm(drain_pending(S2)).

stop_tracing(S0) ->
    erlang:trace(all, false, [all]),
    S = case S0#st.nif of
            true ->
                NifStats = case catch elixirscope_nif_tracer:stop() of
                               {ok, St} -> St;
                               _ -> #{}
                           end,
                collect_nif_batches(S0#st{nif_stats = NifStats});
            false -> S0
        end,
    S1 = case S#st.watcher of
             undefined ->
                 elixirscope_module_watch:clear(),
                 S;
             W ->
                 elixirscope_module_watch:stop(W),
                 collect_module_loads(S#st{watcher = undefined})
         end,
    elixirscope_trace_setup:clear(S1#st.setup),
    catch elixirscope_breaker:restore(S1#st.breaker),
    S1.

%% Patterns the watch set just before it stopped are ours to clear too.
collect_module_loads(S) ->
    receive
        {es_module_loaded, _, _, Applied, _} ->
            Setup = S#st.setup,
            collect_module_loads(
              S#st{setup = Setup#{patterns => maps:get(patterns, Setup, []) ++ Applied}})
    after 0 -> S
    end.

%% Shipping batches. A batch is encoded once and handed to the socket without
%% ever waiting (port_command nosuspend). While the socket is busy or too many
%% batches are unacknowledged, batches wait in a queue bounded in bytes; only a
%% batch that does not fit there is dropped, and counted.
flush(#st{acc_n = 0} = S) -> drain_pending(S);
flush(S) ->
    Seq = S#st.seq + 1,
    Bin = term_to_binary({es_batch, Seq, dropped(S), lists:reverse(S#st.acc)}),
    enqueue(Bin, Seq, S#st.acc_n, S#st{acc = [], acc_n = 0}).

enqueue(Bin, Seq, Events, S) ->
    S1 = drain_pending(S),
    Size = byte_size(Bin),
    case S1#st.pending_bytes + Size =< S1#st.max_buffer of
        true ->
            drain_pending(S1#st{seq = Seq, pending = queue:in(Bin, S1#st.pending),
                                pending_bytes = S1#st.pending_bytes + Size,
                                bytes_window = S1#st.bytes_window + Size,
                                bytes_sent = S1#st.bytes_sent + Size});
        false ->
            S1#st{dropped = S1#st.dropped + Events}
    end.

drain_pending(#st{sent = Sent, acked = Acked, max_inflight = Max} = S) when Sent - Acked >= Max ->
    S;
drain_pending(S) ->
    case queue:out(S#st.pending) of
        {empty, _} -> S;
        {{value, Bin}, Rest} ->
            case send_frame(Bin, S) of
                true ->
                    drain_pending(S#st{pending = Rest, sent = S#st.sent + 1,
                                       pending_bytes = S#st.pending_bytes - byte_size(Bin)});
                false -> S
            end
    end.

%% Keeps the flush timer running while batches wait.
rearm(#st{timer = false} = S) ->
    case queue:is_empty(S#st.pending) of
        true -> S;
        false ->
            erlang:send_after(S#st.batch_delay, self(), es_flush_tick),
            S#st{timer = true}
    end;
rearm(S) -> S.

send_frame(Bin, #st{sock = Link}) ->
    elixirscope_link:send_nosuspend(Link, Bin).

control({es_ack, Seq}, S) when is_integer(Seq) ->
    Acked = max(Seq, S#st.acked),
    {Done, Waiting} = lists:partition(fun({Q, _, _}) -> Q =< Acked end, S#st.syncs),
    [From ! {Ref, ok} || {_, From, Ref} <- Done],
    drain_pending(S#st{acked = Acked, syncs = Waiting});
control({es_stop}, S) -> stop(none, S);
control({es_lease}, S) -> S;
control(_, S) -> S.

setup_done(Setup, S) ->
    Pending = maps:get(pending, Setup, []),
    PendingState = maps:get(pending_state_modules, Setup, []),
    Watch = lists:usort([M || {M, _, _} <- Pending] ++ PendingState),
    Watcher = case Watch of
                  [] -> undefined;
                  _ -> elixirscope_module_watch:start(self(), Watch, {Pending, PendingState})
              end,
    Start = {es_setup, erlang:monotonic_time(nanosecond), maps:remove(pending, Setup)},
    Known = maps:get(state_modules, Setup, []),
    StateMods = maps:from_list([{M, true} || {M, _} <- Known]
                               ++ [{M, true} || M <- PendingState]),
    _ = S#st.nif andalso (catch elixirscope_nif_tracer:state_modules(Known ++ PendingState)),
    C = elixirscope_state_capture:add_modules(S#st.capture, Known),
    S1 = accept(Start, S#st{setup = Setup, watcher = Watcher, state_mods = StateMods,
                            capture = C}),
    %% Processes whose heap was over the limit before tracing began.
    lists:foldl(fun({Pid, Heap}, Acc) -> over_heap(Pid, Heap, Acc) end, S1,
                maps:get(big_state, Setup, [])).

%% A process whose heap is over the state-capture limit: its state callbacks
%% are no longer traced (the process tracer would copy its state whole).
over_heap(Pid, Heap, S) ->
    Limit = maps:get(max_state_heap, maps:get(budget, S#st.config, #{}), 0),
    Detail = fmt("heap of ~b bytes is over the ~b-byte limit for state capture "
                 "(--max-state-heap): its state callbacks are no longer traced (nor its other calls)",
                 [Heap, Limit]),
    degrade(Pid, 3, Detail, S).

%% One degradation step of a process's state capture, recorded as an event.
degrade(Pid, Level, Detail, S) ->
    C = case S#st.nif of
            true ->
                catch elixirscope_nif_tracer:degrade(Pid, Level),
                S#st.capture;
            false -> elixirscope_state_capture:set_level(Pid, Level, S#st.capture)
        end,
    accept({es_degrade, erlang:monotonic_time(nanosecond), Pid, Level, Detail},
           S#st{capture = C}).

%% The watch set patterns on a module that just loaded.
module_loaded(Ts, M, Applied, StateInfo, S) ->
    Setup = S#st.setup,
    Patterns = maps:get(patterns, Setup, []) ++ Applied,
    S1 = S#st{setup = Setup#{patterns => Patterns}},
    Evs = [{es_state_module, Ts, Mod, B} || {Mod, B} <- StateInfo]
        ++ [{es_module, Ts, M, Applied}],
    _ = S#st.nif andalso StateInfo =/= []
        andalso (catch elixirscope_nif_tracer:state_modules(StateInfo)),
    C = elixirscope_state_capture:add_modules(S1#st.capture, StateInfo),
    lists:foldl(fun accept/2, S1#st{capture = C}, Evs).

housekeeping(S) ->
    erlang:send_after(100, self(), es_housekeeping),
    Now = erlang:monotonic_time(millisecond),
    S2 = status(Now, S),
    case is_integer(S2#st.lease_ms) andalso Now - S2#st.last_heard > S2#st.lease_ms of
        true -> dead_man(lease_expired, S2);
        false when S2#st.tripped =/= false -> S2;
        false ->
            case elixirscope_breaker:check(S2#st.breaker) of
                {ok, B} -> govern(budget(S2#st{breaker = B, since_check = S2#st.check_every}));
                {trip, Reason, Detail} -> trip(Reason, Detail, S2)
            end
    end.

%% Once a second: the tracer's own cost against its budget, and (process
%% tracer) the heaps of the processes whose state it captures.
govern(#st{tripped = T} = S) when T =/= false -> S;
govern(S) ->
    Now = erlang:monotonic_time(millisecond),
    case Now - S#st.govern_at >= 1000 of
        false -> S;
        true -> govern_window(S#st{govern_at = Now})
    end.

govern_window(S) ->
    S1 = lists:foldl(fun({Pid, Heap}, Acc) -> over_heap(Pid, Heap, Acc) end, S,
                     heaps_over_limit(S)),
    case S1#st.governor of
        off -> S1;
        G ->
            {Busy, Procs, S2} = window_costs(S1),
            Now = erlang:monotonic_time(nanosecond),
            case elixirscope_governor:check(G, Now, Busy, Procs) of
                {ok, G1} -> S2#st{governor = G1};
                {degrade, Pid, Level, Detail, G1} ->
                    degrade(Pid, Level, Detail, S2#st{governor = G1});
                {trip, Detail} -> trip(max_tracer_cpu, iolist_to_binary(Detail), S2)
            end
    end.

%% Recording time so far and the window's costliest state processes.
window_costs(#st{nif = true} = S) ->
    case catch elixirscope_nif_tracer:cost(8) of
        {ok, Busy, Procs} -> {Busy, Procs, S};
        _ -> {0, [], S}
    end;
window_costs(S) ->
    {Procs, C} = elixirscope_state_capture:window(8, S#st.capture),
    {S#st.busy_ns, Procs, S#st{capture = C}}.

heaps_over_limit(#st{nif = true}) -> [];
heaps_over_limit(S) -> elixirscope_state_capture:over_heap(S#st.capture).

%% Budget use, once a second, for the recorder's progress line (not stored).
status(Now, #st{status_at = At} = S) when is_integer(Now), Now - At < 1000 -> S;
status(Now0, S) ->
    Now = case Now0 of infinity -> erlang:monotonic_time(millisecond); _ -> Now0 end,
    {message_queue_len, Backlog} = erlang:process_info(self(), message_queue_len),
    {memory, Mem} = erlang:process_info(self(), memory),
    {RunQueue, NodeMem} = elixirscope_breaker:sample(),
    Nif = nif_stats(S),
    Status = #{events => S#st.total, dropped => dropped(S), backlog => Backlog,
               tracer_memory => Mem + maps:get(ring_bytes, Nif, 0),
               node_memory => NodeMem, run_queue => RunQueue,
               waiting_bytes => S#st.pending_bytes + maps:get(waiting_bytes, Nif, 0),
               bytes_sent => S#st.bytes_sent,
               tripped => S#st.tripped, redactions => redactions(S),
               node => elixirscope_node_stats:sample()},
    _ = send_frame(term_to_binary({es_status, Status}), S),
    S#st{status_at = Now}.

%% In run mode, flush everything before an Elixir program halts the VM: a small
%% process (independent of the tracer's backlog) watches for Elixir's config
%% table and registers an at-exit hook as soon as it exists.
watch_for_elixir(Tracer) ->
    spawn(fun() ->
                  erlang:trace(self(), false, [all]),
                  watch_for_elixir(Tracer, 12000)
          end).

watch_for_elixir(_Tracer, 0) -> ok;
watch_for_elixir(Tracer, Tries) ->
    case ets:info(elixir_config, size) of
        undefined ->
            receive after 5 -> ok end,
            watch_for_elixir(Tracer, Tries - 1);
        _ ->
            %% The table can exist a moment before Elixir's config server runs.
            case catch 'Elixir.System':at_exit(fun(_) -> flush_sync(Tracer, 5000) end) of
                ok -> ok;
                _ ->
                    receive after 5 -> ok end,
                    watch_for_elixir(Tracer, Tries - 1)
            end
    end.

%% Waits until every trace message generated so far is acknowledged by the
%% collector (at most Timeout ms; at once if the tracer is gone).
flush_sync(Tracer, Timeout) ->
    catch erlang:trace(self(), false, [all]),
    Mon = erlang:monitor(process, Tracer),
    Ref = erlang:trace_delivered(all),
    receive
        {trace_delivered, all, Ref} -> ok;
        {'DOWN', Mon, process, Tracer, _} -> ok
    after Timeout -> ok
    end,
    Ref2 = make_ref(),
    Tracer ! {es_flush_sync, self(), Ref2},
    Result = receive
                 {Ref2, _} -> ok;
                 {'DOWN', Mon, process, Tracer, _} -> tracer_gone
             after Timeout -> timeout
             end,
    erlang:demonitor(Mon, [flush]),
    Result.

%% Stopping: no more tracing, deliver what was traced, say goodbye, exit.
stop(From, S) ->
    S1 = stop_tracing(S),
    Ref = erlang:trace_delivered(all),
    S2 = drain(Ref, S1),
    S3 = send_all_pending(flush(S2)),
    Seq = S3#st.seq + 1,
    Bye = term_to_binary({es_bye, Seq, stats(S3)}),
    _ = elixirscope_link:send(S3#st.sock, Bye),
    wait_ack(Seq, S3, erlang:monotonic_time(millisecond) + 5000),
    elixirscope_link:close(S3#st.sock),
    case From of
        Pid when is_pid(Pid) -> Pid ! {elixirscope_stopped, self()};
        _ -> ok
    end,
    exit(normal).

%% While stopping, tracing is off: waiting on the socket harms nobody.
send_all_pending(S) ->
    [elixirscope_link:send(S#st.sock, Bin) || Bin <- queue:to_list(S#st.pending)],
    S#st{pending = queue:new(), pending_bytes = 0, sent = S#st.seq}.

drain(Ref, S) ->
    receive
        {trace_delivered, all, Ref} -> S;
        Msg when element(1, Msg) =:= trace_ts ->
            drain(Ref, trace_event(Msg, S));
        {es_events, Evs} -> drain(Ref, agent_events(Evs, S))
    after 5000 -> S
    end.

wait_ack(Seq, S, Deadline) ->
    Left = Deadline - erlang:monotonic_time(millisecond),
    receive
        Msg when element(1, Msg) =:= tcp; element(1, Msg) =:= ssl;
                 element(1, Msg) =:= tcp_closed; element(1, Msg) =:= ssl_closed ->
            case elixirscope_link:data(Msg) of
                {data, Bin} ->
                    case catch binary_to_term(Bin, [safe]) of
                        {es_ack, A} when A >= Seq -> ok;
                        _ -> wait_ack(Seq, S, Deadline)
                    end;
                _ -> ok
            end
    after max(0, Left) -> ok
    end.

%% The NIF tracer's counters (latest, or the final ones once it stopped).
nif_stats(#st{nif = false}) -> #{};
nif_stats(S) ->
    case catch elixirscope_nif_tracer:stats() of
        {ok, St} -> St;
        _ -> S#st.nif_stats
    end.

redactions(#st{nif = false}) -> elixirscope_redact:counts();
redactions(S) ->
    maps:fold(fun(Rule, N, Acc) -> Acc#{Rule => N + maps:get(Rule, Acc, 0)} end,
              elixirscope_redact:counts(), maps:get(redactions, nif_stats(S), #{})).

stats(S) ->
    Nif = nif_stats(S),
    #{events => S#st.total, dropped => dropped(S),
      sampled_out => S#st.sampled_out + maps:get(sampled_out, Nif, 0),
      discarded_after_trip => S#st.discarded + maps:get(over_budget, Nif, 0),
      batches => S#st.seq,
      waiting_batches => queue:len(S#st.pending),
      trace_off_us => S#st.trace_off_us, bytes_sent => S#st.bytes_sent,
      redactions => redactions(S),
      cut_events => elixirscope_payload:cut_events() + maps:get(cut, Nif, 0),
      tracer_busy_ns => case S#st.nif of
                            true -> maps:get(busy_ns, Nif, 0);
                            false -> S#st.busy_ns
                        end,
      tripped => S#st.tripped, max_backlog_seen => S#st.max_backlog_seen,
      duration_ms => erlang:monotonic_time(millisecond) - S#st.started}.

%% The collector is gone: stop tracing and remove ourselves from the node.
dead_man(_Why, S) ->
    stop_tracing(S),
    catch elixirscope_link:close(S#st.sock),
    Mods = maps:get(modules, S#st.config, [elixirscope_tracer]),
    [code:delete(M) || M <- Mods],
    spawn(lists, foreach, [fun code:purge/1, Mods]),
    exit(normal).
