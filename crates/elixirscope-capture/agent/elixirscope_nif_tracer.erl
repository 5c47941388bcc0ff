%% The NIF tracer's Erlang face: an erl_tracer module whose callbacks, and the
%% controls the agent's tracer process uses, are implemented by the native
%% library (crates/elixirscope-nif-tracer). Every function here is replaced when
%% load/1 succeeds; until then they fail with nif_not_loaded.
%%
%% The library encodes each trace event on the scheduler into a per-thread
%% ring; a native thread sends batches to the tracer process as
%%   {es_nif_batch, EventsEtf, Count, DroppedSoFar}
%% where EventsEtf is the external term format (without the version byte) of the
%% list of trace messages a process tracer would have received.
-module(elixirscope_nif_tracer).

-export([load/1, enabled/3, trace/5, start/2, stop/0, flush/1, batch_done/0,
         deactivate/0, own/1, state_modules/1, reserve/1, stats/0, cost/1, degrade/2]).

%% Path: the library without its extension. ok | {error, {Reason, Text}}.
load(Path) -> erlang:load_nif(Path, 0).

enabled(_TraceTag, _TracerState, _Tracee) -> erlang:nif_error(nif_not_loaded).
trace(_TraceTag, _TracerState, _Tracee, _TraceTerm, _Opts) -> erlang:nif_error(nif_not_loaded).

%% Options: #{sample, state_modules, call_values, redact, ring_bytes,
%% batch_bytes, max_inflight, max_events, hold_us, own}.
start(_TracerPid, _Options) -> erlang:nif_error(nif_not_loaded).
stop() -> erlang:nif_error(nif_not_loaded).
flush(_Token) -> erlang:nif_error(nif_not_loaded).
batch_done() -> erlang:nif_error(nif_not_loaded).
deactivate() -> erlang:nif_error(nif_not_loaded).
own(_Pid) -> erlang:nif_error(nif_not_loaded).
%% Counts N events the agent recorded itself against the event budget.
reserve(_N) -> erlang:nif_error(nif_not_loaded).
%% Modules (or {Module, Behaviour}) whose callbacks are kept whatever the
%% sampling; gen_server states are then written once per change.
state_modules(_Modules) -> erlang:nif_error(nif_not_loaded).
stats() -> erlang:nif_error(nif_not_loaded).
%% {ok, BusyNs, [{Pid, Ns, Callbacks, Level}]}: recording time so far, and the
%% Top processes whose state callbacks cost most since the last call.
cost(_Top) -> erlang:nif_error(nif_not_loaded).
%% Captures less of Pid's state from now on (1 shallower, 2 one in 16, 3 none).
degrade(_Pid, _Level) -> erlang:nif_error(nif_not_loaded).
