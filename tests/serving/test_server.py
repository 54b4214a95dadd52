"""Issue 13: slow clients cannot hold the service (run_server and its limits).

Each test runs a tiny FastAPI app on a free loopback port in a background thread
(``serve_in_thread``) and talks to it over raw sockets, so half-sent requests are exactly
what the test writes. The only timed assertion is the issue's acceptance criterion (a
normal client is answered within 1 s while 1,000 slow clients hold connections); the
others wait with generous deadlines and check lower bounds that load cannot break
(a server cannot close a connection before its clock, which starts after our connect).
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import selectors
import socket
import sys
import threading
import time

import pytest
from fastapi import FastAPI, Request

from lifelongrec import ParameterError
from lifelongrec.serving import (
    ServerLimits,
    fit_open_file_limit,
    run_server,
    serve_in_thread,
    uvicorn_options,
)
from lifelongrec.serving._server import SWITCH_INTERVAL

resource = pytest.importorskip("resource", reason="RLIMIT_NOFILE is a POSIX limit")

N_SLOW = 1000
# Half-sent requests: part of the request line, part of the headers, headers with a
# Content-Length and part of the body, and a connection that sends nothing.
SLOW_KINDS = {
    "request line": b"GET /slow HT",
    "headers": b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ",
    "body": b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789",
    "nothing": b"",
}
RELEASE = threading.Event()  # lets /wait requests finish


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def root():
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request):
        return {"bytes": len(await request.body())}

    @app.get("/wait")
    async def wait():
        while not RELEASE.is_set():
            await asyncio.sleep(0.01)
        return {"waited": True}

    return app


@pytest.fixture(scope="module")
def app():
    return make_app()


@pytest.fixture
def release():
    RELEASE.clear()
    yield RELEASE
    RELEASE.set()


def need_fds(n: int) -> None:
    """Raise the soft open-file limit to ``n`` or skip the test, naming the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= n:
        return
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"needs {n} open files; the hard RLIMIT_NOFILE is {hard} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def open_slow(port: int, n: int, kinds=tuple(SLOW_KINDS)) -> list[tuple[str, float, socket.socket]]:
    """``n`` connections that each send a half request of one of ``kinds`` (in turn);
    (kind, time the connect began, socket). The time is taken before connecting: the
    server cannot start its clock before that, while a time taken after the connect
    returns may come after the server accepted if this thread is descheduled between."""
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        connecting = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if SLOW_KINDS[kind]:
            sock.sendall(SLOW_KINDS[kind])
        out.append((kind, connecting, sock))
    return out


def read_response(stream) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length, read from a socket or from the
    binary file of one (pass the same file to read pipelined responses)."""
    if isinstance(stream, socket.socket):
        stream = stream.makefile("rb")
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("closed before a response")
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, value = line.decode("latin-1").rstrip("\r\n").split(": ", 1)
        headers[name.lower()] = value
    body = stream.read(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


def get(port: int, path: str = "/", close: bool = True) -> tuple[int, bytes, socket.socket]:
    """A normal client: connect, send a whole GET, read the whole answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection = b"Connection: close\r\n" if close else b""
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\n" + connection + b"\r\n")
    status, _, body = read_response(sock)
    if close:
        sock.close()
    return status, body, sock


def is_closed(sock: socket.socket, wait: float = 5.0) -> bool:
    """Whether the server closed ``sock`` (EOF or reset) within ``wait`` seconds; any
    response written before the close (a 408) is read and dropped."""
    sock.settimeout(wait)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:  # reset
        return True
    return True


def wait_closed(slow, deadline_s: float) -> dict[int, float]:
    """Wait until the server closed every socket of ``slow`` or ``deadline_s`` passed;
    {index: seconds from the start of the connect to the observed close}."""
    sel = selectors.DefaultSelector()
    for i, (_, _, sock) in enumerate(slow):
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, i)
    closed: dict[int, float] = {}
    deadline = time.monotonic() + deadline_s
    while len(closed) < len(slow) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            i = key.data
            try:
                eof = not key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                eof = True
            if eof:
                closed[i] = time.monotonic() - slow[i][1]
                sel.unregister(key.fileobj)
    sel.close()
    return closed


def close_all(slow) -> None:
    for _, _, sock in slow:
        sock.close()


# ------------------------------------------------------------------ acceptance


def test_normal_client_answered_within_1s_while_1000_slow_clients_hold_connections(app):
    need_fds(2 * N_SLOW + 512)  # this process holds both ends of every connection
    with serve_in_thread(app, ServerLimits(), log_level="warning") as srv:
        slow = open_slow(srv.port, N_SLOW)
        try:
            srv.wait_for(lambda s: s.open >= N_SLOW, timeout=30)
            latencies = []
            for i in range(20):
                start = time.monotonic()
                status, body, sock = get(srv.port, close=i % 2 == 0)
                latencies.append(time.monotonic() - start)
                assert status == 200 and body == b'{"ok":true}'
                sock.close()
            # a kept-alive connection too, several requests on one socket
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
            for _ in range(5):
                start = time.monotonic()
                conn.request("GET", "/")
                assert conn.getresponse().read() == b'{"ok":true}'
                latencies.append(time.monotonic() - start)
            conn.close()
            stats = srv.stats()
            # the slow clients were still held while the normal client was answered
            assert stats.waiting_headers + stats.waiting_body >= N_SLOW, stats
            assert stats.header_timeouts == stats.body_timeouts == stats.evicted == 0
        finally:
            close_all(slow)
    assert max(latencies) < 1.0, f"slowest normal request {max(latencies):.3f}s"


def test_half_sent_requests_are_closed_after_the_timeouts(app):
    need_fds(2 * N_SLOW + 512)
    limits = ServerLimits(header_timeout=1.0, body_timeout=1.0, keep_alive=5.0)
    with serve_in_thread(app, limits, log_level="warning") as srv:
        slow = open_slow(srv.port, N_SLOW)
        try:
            closed = wait_closed(slow, deadline_s=30)
            stats = srv.wait_for(lambda s: s.open == 0)
        finally:
            close_all(slow)
    assert len(closed) == N_SLOW, f"{N_SLOW - len(closed)} slow connections were not closed"
    # Never before its clock (which starts after our connect began): a lower bound that
    # load cannot break. How late they were closed is in the benchmark, not asserted here.
    assert min(closed.values()) >= 1.0
    per_kind = {k: sum(1 for kind, _, _ in slow if kind == k) for k in SLOW_KINDS}
    assert stats.body_timeouts == per_kind["body"]
    assert stats.header_timeouts == N_SLOW - per_kind["body"]
    assert stats.evicted == stats.refused == 0


def test_a_408_is_sent_to_a_started_request_but_not_to_a_silent_connection(app):
    limits = ServerLimits(header_timeout=0.5, body_timeout=0.5)
    with serve_in_thread(app, limits, log_level="warning") as srv:
        slow = {kind: sock for kind, _, sock in open_slow(srv.port, 4)}
        for kind, sock in slow.items():
            sock.settimeout(10)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            if kind == "nothing":
                assert data == b""
            else:
                assert data.startswith(b"HTTP/1.1 408 "), (kind, data)
            sock.close()


def test_a_stalled_body_ends_without_an_error_traceback(app):
    records = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    uvicorn_log = logging.getLogger("uvicorn.error")
    with serve_in_thread(app, ServerLimits(body_timeout=0.3), log_level="warning") as srv:
        uvicorn_log.addHandler(handler)  # after uvicorn configured its logging
        try:
            sock = open_slow(srv.port, 1, kinds=("body",))[0][2]
            assert is_closed(sock, wait=10)
            sock.close()
            srv.wait_for(lambda s: s.open == 0 and s.body_timeouts == 1)
            time.sleep(0.2)  # the app task ends just after the connection is closed
        finally:
            uvicorn_log.removeHandler(handler)
    assert not records, [r.getMessage() for r in records]


# ------------------------------------------------------------------ normal clients


def test_keep_alive_connection_serves_several_requests_across_pauses(app):
    # idle pauses longer than header_timeout: the header clock does not run between requests
    limits = ServerLimits(header_timeout=1.0, body_timeout=1.0, keep_alive=10.0)
    with serve_in_thread(app, limits, log_level="warning") as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b'{"ok":true}'
        first = conn.sock
        for i in range(4):
            if i < 2:
                time.sleep(1.5)
            conn.request("POST", "/echo", body=b"x" * 1000)
            assert conn.getresponse().read() == b'{"bytes":1000}'
            assert conn.sock is first, "the connection was reopened"
        conn.close()
        assert srv.stats().peak == 1


def test_pipelined_requests_are_answered(app):
    with serve_in_thread(app, ServerLimits(header_timeout=1.0), log_level="warning") as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        request = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        sock.sendall(request * 3)
        stream = sock.makefile("rb")
        for _ in range(3):
            assert read_response(stream)[2] == b'{"bytes":3}'
        srv.wait_for(lambda s: s.idle == 1)  # answered, kept alive, waiting again
        sock.close()


def test_slow_but_steady_headers_and_upload_succeed(app):
    # total upload 3 s (> body_timeout: it is a gap clock), headers in 0.6 s (< 3 s)
    limits = ServerLimits(header_timeout=3.0, body_timeout=1.5)
    with serve_in_thread(app, limits, log_level="warning") as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        for part in (b"POST /echo HT", b"TP/1.1\r\nHost: t\r\n", b"Content-Length: 20\r\n\r\n"):
            sock.sendall(part)
            time.sleep(0.2)
        for _ in range(20):
            sock.sendall(b"y")
            time.sleep(0.15)
        status, _, body = read_response(sock)
        assert (status, body) == (200, b'{"bytes":20}')
        sock.close()
        assert srv.stats().body_timeouts == 0


def test_headers_over_max_header_bytes_are_answered_431(app):
    limits = ServerLimits(max_header_bytes=4096)
    with serve_in_thread(app, limits, log_level="warning") as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ")
        for _ in range(5):  # just over the limit: nothing is sent after the server closes
            time.sleep(0.01)
            sock.sendall(b"z" * 1024)
        status, _, _ = read_response(sock)
        assert status == 431
        assert is_closed(sock)
        sock.close()
        assert srv.stats().headers_too_large == 1
        # big but allowed headers, sent in one write with a large body, are fine
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        body = b"b" * 200_000
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nX-Big: " + b"z" * 3000 + b"\r\n"
            b"Content-Length: 200000\r\n\r\n" + body
        )
        assert read_response(sock)[2] == b'{"bytes":200000}'
        sock.close()
        assert srv.stats().headers_too_large == 1


# ------------------------------------------------------------------ max_connections


def test_at_max_connections_the_oldest_half_sent_connection_makes_room(app):
    limits = ServerLimits(max_connections=50)
    with serve_in_thread(app, limits, log_level="error") as srv:
        slow = open_slow(srv.port, 50, kinds=("request line", "headers"))
        try:
            srv.wait_for(lambda s: s.open == 50)
            status, body, _ = get(srv.port)
            assert (status, body) == (200, b'{"ok":true}')
            assert is_closed(slow[0][2]), "the oldest half-sent connection was kept"
            assert not is_closed(slow[-1][2], wait=0.2), "a newer one was closed instead"
            # a flood of slow clients twice the bound cannot lock a normal client out
            more = open_slow(srv.port, 100, kinds=("headers",))
            assert get(srv.port)[0] == 200
            close_all(more)
            stats = srv.stats()
            assert stats.evicted >= 101 and stats.refused == 0 and stats.peak <= 50
        finally:
            close_all(slow)


def test_eviction_order_headers_then_idle_then_body_then_refusal(app, release):
    limits = ServerLimits(max_connections=3)
    with serve_in_thread(app, limits, log_level="error") as srv:
        body = open_slow(srv.port, 1, kinds=("body",))[0][2]
        srv.wait_for(lambda s: s.waiting_body == 1)
        idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        idle.request("GET", "/")
        idle.getresponse().read()
        srv.wait_for(lambda s: s.idle == 1)
        half = open_slow(srv.port, 1, kinds=("headers",))[0][2]
        srv.wait_for(lambda s: s.open == 3)
        # full: the half-sent one goes first, even though it is the newest
        status, _, sock_d = get(srv.port, close=False)
        assert status == 200 and is_closed(half)
        assert not is_closed(body, wait=0.1) and not is_closed(idle.sock, wait=0.1)
        # then the oldest idle kept-alive connection (idle, not the newer sock_d)
        srv.wait_for(lambda s: s.idle == 2)
        status, _, sock_e = get(srv.port, close=False)
        assert status == 200 and is_closed(idle.sock)
        assert not is_closed(sock_d, wait=0.1) and not is_closed(body, wait=0.1)
        for sock in (sock_d, sock_e):
            sock.close()
        srv.wait_for(lambda s: s.open == 1)
        # busy connections are never closed: with two in the app, the body goes next ...
        busy = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10) for _ in range(3)]
        for conn in busy[:2]:
            conn.request("GET", "/wait")
        srv.wait_for(lambda s: s.open == 3 and s.waiting_headers == 0 and s.waiting_body == 1)
        busy[2].request("GET", "/wait")
        srv.wait_for(lambda s: s.evicted == 3 and s.waiting_headers == 0)
        assert is_closed(body)
        # ... and a new client finds every connection busy: 503, closed
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 503
        assert is_closed(sock)
        sock.close()
        release.set()
        for conn in busy:
            assert conn.getresponse().read() == b'{"waited":true}'
            conn.close()
        stats = srv.stats()
        assert stats.refused == 1 and stats.evicted == 3
        for sock in (body, half):
            sock.close()
        idle.close()


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("name", ["header_timeout", "body_timeout", "keep_alive"])
@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "10", True, None])
def test_timeouts_must_be_finite_positive_numbers(name, bad):
    with pytest.raises(ParameterError, match=rf"'{name}' must be a finite number of seconds > 0"):
        ServerLimits(**{name: bad}).validate()


@pytest.mark.parametrize(
    "name,low", [("max_connections", 1), ("backlog", 1), ("max_header_bytes", 1024)]
)
@pytest.mark.parametrize("offset", [-1, "float", "str", "bool"])
def test_counts_must_be_integers_at_least_their_minimum(name, low, offset):
    bad = {-1: low - 1, "float": float(low), "str": str(low), "bool": True}[offset]
    with pytest.raises(ParameterError, match=rf"'{name}' must be an integer >= {low}; got"):
        ServerLimits(**{name: bad}).validate()


def test_defaults_are_valid_and_documented_values():
    limits = ServerLimits().validate()
    assert (limits.header_timeout, limits.body_timeout, limits.keep_alive) == (10.0, 30.0, 5.0)
    assert (limits.max_connections, limits.backlog) == (4096, 2048)
    assert limits.tick == 1.0
    assert ServerLimits(header_timeout=1.0, keep_alive=0.1).tick == 0.1
    assert ServerLimits(header_timeout=0.05).tick == 0.01


def test_uvicorn_options_set_the_limits_and_refuse_overrides(app):
    opts = uvicorn_options(ServerLimits(keep_alive=7.0, backlog=100), log_level="warning")
    assert opts["timeout_keep_alive"] == 7.0 and opts["backlog"] == 100
    assert opts["limit_concurrency"] is None and opts["log_level"] == "warning"
    assert opts["access_log"] is False and opts["http"].limits.keep_alive == 7.0
    for name in ("http", "limit_concurrency", "timeout_keep_alive", "backlog"):
        with pytest.raises(ParameterError, match=rf"'{name}' must be left out: it is set from"):
            run_server(app, "127.0.0.1", 0, **{name: 1})
    with pytest.raises(ParameterError, match="'max_connections'"):
        run_server(app, "127.0.0.1", 0, ServerLimits(max_connections=0))


def test_the_server_runs_with_a_short_switch_interval_and_restores_it(app, monkeypatch):
    import uvicorn

    seen = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()
    run_server(app, "127.0.0.1", 0)
    assert seen == [pytest.approx(SWITCH_INTERVAL)] and SWITCH_INTERVAL == 0.0005
    assert sys.getswitchinterval() == before  # given back when the server stops
    run_server(app, "127.0.0.1", 0, switch_interval=None)  # left as it is
    run_server(app, "127.0.0.1", 0, switch_interval=0.002)
    assert seen[1:] == [pytest.approx(before), pytest.approx(0.002)]
    for bad in (0, -1.0, float("nan"), "fast", True):
        with pytest.raises(ParameterError, match="'switch_interval'"):
            run_server(app, "127.0.0.1", 0, switch_interval=bad)
    assert len(seen) == 3 and sys.getswitchinterval() == before


def test_the_server_runs_with_the_start_objects_frozen_and_unfreezes_them(app, monkeypatch):
    import gc

    import uvicorn

    made_before = [[i] for i in range(1_000)]  # containers the collector tracks
    seen = []

    def run(*args, **kwargs):  # the objects the collections walk, while it serves
        walked = {id(x) for x in gc.get_objects()}
        seen.append((gc.get_freeze_count(), any(id(x) in walked for x in made_before)))

    monkeypatch.setattr(uvicorn, "run", run)
    assert gc.get_freeze_count() == 0
    run_server(app, "127.0.0.1", 0)
    frozen, walked = seen[0]
    assert frozen >= len(made_before) and not walked
    assert gc.get_freeze_count() == 0  # given back when the server stops
    run_server(app, "127.0.0.1", 0, freeze=False)
    assert seen[1] == (0, True)
    for bad in (0, 1, "yes", None):
        with pytest.raises(ParameterError, match="parameter 'freeze' must be True or False"):
            run_server(app, "127.0.0.1", 0, freeze=bad)
    assert len(seen) == 2 and gc.get_freeze_count() == 0


def test_open_file_limit_is_raised_or_max_connections_lowered(monkeypatch, caplog):
    import lifelongrec.serving._server as mod

    calls = []
    monkeypatch.setattr(mod, "_open_fds", lambda: 22)
    monkeypatch.setattr(resource, "setrlimit", lambda kind, value: calls.append(value))
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 1_000_000))
    limits = ServerLimits(max_connections=4096)
    assert fit_open_file_limit(limits) is limits
    assert calls == [(4096 + 22 + 128, 1_000_000)]
    calls.clear()
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 2000))
    with caplog.at_level(logging.WARNING, logger="lifelongrec"):
        fitted = fit_open_file_limit(limits)
    assert calls == [(2000, 2000)]
    assert fitted.max_connections == 2000 - 22 - 128
    assert "hard 2000" in caplog.text and "max_connections=4096" in caplog.text


def test_benchmark_script_runs_its_smallest_case(benchmark_module, capsys):
    with benchmark_module("slow_clients") as bench:
        args = ["--slow", "8", "--normal-requests", "5", "--header-timeout", "0.5"]
        result = bench.main([*args, "--body-timeout", "0.5", "--watch", "10", "--baseline"])
    assert result["with_slow"]["n"] == 5 and result["baseline"]["n"] == 5
    assert all(r["closed"] == r["opened"] == 2 for r in result["closed"].values())
    assert "p99 ms" in capsys.readouterr().out


def test_benchmark_script_starts_again_when_its_port_was_taken(benchmark_module, monkeypatch):
    """Tests run in parallel: another server may take the free port before the
    benchmark's child binds it, and answer 404 there. The benchmark must not measure (or
    fail on) that server: its child exits and it starts again on another port."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    other = HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with benchmark_module("slow_clients") as bench:
            ports = iter([other.server_address[1]])
            real = bench.free_port
            monkeypatch.setattr(bench, "free_port", lambda: next(ports, None) or real())
            args = ["--slow", "4", "--normal-requests", "3", "--kinds", "line", "nothing"]
            result = bench.main([*args, "--header-timeout", "0.5", "--watch", "2"])
        assert result["port"] != other.server_address[1]
        assert result["with_slow"]["n"] == 3
    finally:
        other.shutdown()
        other.server_close()
