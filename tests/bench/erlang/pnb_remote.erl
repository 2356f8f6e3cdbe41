%% The Erlang/OTP anchor of peernet-bench remote-pingpong and remote-flood
%% (tests/bench/bench_remote.c): two distributed Erlang nodes on loopback,
%% the same ping-pong (one 64-byte binary at a time to a registered echo
%% process on the other node, which answers its sender) and the same flood
%% (one-way 64-byte binaries to a sink that answers once it has them all).
%% Prints one JSON line per benchmark, as peernet-bench does.
%%
%%   erl -sname pnb_b -setcookie pnb -noshell -pa DIR -s pnb_remote serve
%%   erl -sname pnb_a -setcookie pnb -noshell -pa DIR \
%%       -eval "pnb_remote:run('pnb_b@HOST', 20000, 1000000)" -s init stop
-module(pnb_remote).
-export([serve/0, run/3]).

-define(WARMUP, 2000).

serve() ->
    register(echo, spawn(fun echo/0)),
    register(sink, spawn(fun() -> sink(0, 0, none) end)),
    receive stop -> ok end.

echo() ->
    receive {From, Msg} -> From ! Msg, echo() end.

sink(Want, Got, From) ->
    receive
        {start, Pid, N} -> sink(N, 0, Pid);
        _Bin when Got + 1 =:= Want -> From ! done, sink(0, 0, none);
        _Bin -> sink(Want, Got + 1, From)
    end.

run(Node, Pings, Floods) ->
    true = net_kernel:connect_node(Node),
    Bin = binary:copy(<<0>>, 64),
    pingpong(Node, Bin, ?WARMUP),
    Samples = lists:sort(pingpong(Node, Bin, Pings)),
    T0 = erlang:monotonic_time(nanosecond),
    {sink, Node} ! {start, self(), Floods},
    flood(Node, Bin, Floods),
    receive done -> ok end,
    T1 = erlang:monotonic_time(nanosecond),
    Secs = (T1 - T0) / 1.0e9,
    io:format("{\"bench\":\"remote-pingpong\",\"impl\":\"erlang\","
              "\"otp\":\"~s\",\"size\":64,\"n\":~b,"
              "\"rtt_p50_us\":~.1f,\"rtt_p99_us\":~.1f}~n",
              [erlang:system_info(otp_release), Pings,
               pct(Samples, Pings, 0.50), pct(Samples, Pings, 0.99)]),
    io:format("{\"bench\":\"remote-flood\",\"impl\":\"erlang\","
              "\"otp\":\"~s\",\"size\":64,\"n\":~b,\"seconds\":~.3f,"
              "\"msgs_per_s\":~b}~n",
              [erlang:system_info(otp_release), Floods, Secs,
               round(Floods / Secs)]),
    rpc:call(Node, init, stop, []).

pingpong(Node, Bin, N) -> pingpong(Node, Bin, N, []).
pingpong(_Node, _Bin, 0, Acc) -> Acc;
pingpong(Node, Bin, N, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    {echo, Node} ! {self(), Bin},
    receive Bin -> ok end,
    T1 = erlang:monotonic_time(nanosecond),
    pingpong(Node, Bin, N - 1, [T1 - T0 | Acc]).

flood(_Node, _Bin, 0) -> ok;
flood(Node, Bin, N) -> {sink, Node} ! Bin, flood(Node, Bin, N - 1).

pct(Sorted, N, P) ->
    lists:nth(max(1, min(N, round(P * N))), Sorted) / 1000.
