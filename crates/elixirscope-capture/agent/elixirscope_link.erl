%% The connection to the collector: plain TCP on loopback, TLS anywhere else.
%%
%% With TLS the agent pins the collector's certificate (given in the capture
%% config): the connection is accepted only if the server presents exactly that
%% certificate. The ssl application is started only if it was not running, and
%% stopped again when the link closes. Sending never blocks the tracer: plain
%% sockets use port_command with nosuspend; TLS sends go through a small sender
%% process (the tracer's window of unacknowledged batches bounds its queue).
-module(elixirscope_link).

-export([connect/4, send/2, send_nosuspend/2, close/1, data/1, pids/1]).

-record(link, {kind, sock, sender, started = []}).

opts() ->
    [binary, {packet, 4}, {active, true}, {nodelay, true},
     {send_timeout, 5000}, {send_timeout_close, true}].

%% Returns {ok, Link} or {error, Why}. Cert is the pinned DER certificate, or false.
connect(Host, Port, false, Timeout) ->
    case gen_tcp:connect(Host, Port, opts(), Timeout) of
        {ok, Sock} -> {ok, #link{kind = tcp, sock = Sock}};
        {error, Why} -> {error, Why}
    end;
connect(Host, Port, Cert, Timeout) when is_binary(Cert) ->
    case application:ensure_all_started(ssl) of
        {ok, Started} ->
            Verify = {verify_fun, {fun pinned/3, Cert}},
            TlsOpts = [{verify, verify_peer}, Verify, {server_name_indication, disable},
                       {versions, ['tlsv1.3', 'tlsv1.2']}],
            case ssl:connect(Host, Port, opts() ++ TlsOpts, Timeout) of
                {ok, Sock} ->
                    Tracer = self(),
                    Sender = spawn_link(fun() -> sender(Tracer, Sock) end),
                    {ok, #link{kind = ssl, sock = Sock, sender = Sender, started = Started}};
                {error, Why} ->
                    stop_apps(Started),
                    {error, {tls, Why}}
            end;
        {error, Why} ->
            {error, {ssl_application, Why}}
    end.

%% Accepts the peer only if it presents exactly the pinned certificate.
pinned(_Cert, {extension, _}, Pinned) -> {unknown, Pinned};
pinned(Cert, _Event, Pinned) ->
    case catch public_key:pkix_encode('OTPCertificate', Cert, otp) of
        Pinned -> {valid, Pinned};
        _ -> {fail, not_the_collectors_certificate}
    end.

sender(Tracer, Sock) ->
    erlang:trace(self(), false, [all]),
    sender_loop(Tracer, Sock).

sender_loop(Tracer, Sock) ->
    receive
        {send, Bin} ->
            case ssl:send(Sock, Bin) of
                ok -> sender_loop(Tracer, Sock);
                {error, Why} -> exit({send_failed, Why})
            end
    end.

%% Processes that carry the link (TLS connection processes, the sender): they
%% must not be traced, or every batch would produce more events.
pids(#link{kind = tcp}) -> [];
pids(#link{kind = ssl, sock = Sock, sender = Sender}) ->
    [Sender | pids_in(Sock)].

pids_in(P) when is_pid(P) -> [P];
pids_in(T) when is_tuple(T) -> pids_in(tuple_to_list(T));
pids_in([H | T]) -> pids_in(H) ++ pids_in(T);
pids_in(M) when is_map(M) -> pids_in(maps:values(M));
pids_in(_) -> [].

%% Blocking send, for the hello and the goodbye.
send(#link{kind = tcp, sock = S}, Bin) -> gen_tcp:send(S, Bin);
send(#link{kind = ssl, sock = S}, Bin) -> ssl:send(S, Bin).

%% Never waits: true if handed over, false if the socket is busy.
send_nosuspend(#link{kind = tcp, sock = S}, Bin) ->
    try erlang:port_command(S, Bin, [nosuspend])
    catch error:_ -> false
    end;
send_nosuspend(#link{kind = ssl, sender = Sender}, Bin) ->
    Sender ! {send, Bin},
    true.

close(#link{kind = tcp, sock = S}) ->
    catch gen_tcp:close(S),
    ok;
close(#link{kind = ssl, sock = S, sender = Sender, started = Started}) ->
    unlink(Sender),
    exit(Sender, kill),
    catch ssl:close(S),
    stop_apps(Started),
    ok.

stop_apps(Started) ->
    [catch application:stop(A) || A <- lists:reverse(Started)],
    ok.

%% Classifies a message from the socket: {data, Bin}, closed, {error, Why},
%% sent (a plain send completed), or other.
data({tcp, _, Bin}) -> {data, Bin};
data({ssl, _, Bin}) -> {data, Bin};
data({tcp_closed, _}) -> closed;
data({ssl_closed, _}) -> closed;
data({tcp_error, _, Why}) -> {error, Why};
data({ssl_error, _, Why}) -> {error, Why};
data({inet_reply, _, ok}) -> sent;
data({inet_reply, _, {error, Why}}) -> {error, Why};
data(_) -> other.
