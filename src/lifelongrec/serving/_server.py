"""Running the service on uvicorn so that slow clients cannot hold it (issue 13).

uvicorn closes a connection that stays idle between requests (``timeout_keep_alive``),
but it has no clock for a request in progress: a client that sends half a request line,
half its headers, or headers with a ``Content-Length`` and then part of the body, and
then nothing, keeps its connection (a file descriptor, a parser, for a body also an
application task) for ever. A thousand of them ("slowloris") cost uvicorn nothing in CPU,
but nothing bounds them either, and when the process runs out of descriptors new clients
are no longer accepted.

:class:`LimitedHttpToolsProtocol` is uvicorn's httptools protocol with three clocks and a
bound on connections, all set by :class:`ServerLimits`:

* **header clock** (``header_timeout``): from the moment a connection is accepted (for
  its first request) or from the first byte of a later request on a kept-alive
  connection, to the end of the request's headers. A client that connects and sends
  nothing, or sends part of a request line or of the headers, is closed when it runs out
  (answered ``408 Request Timeout`` first if it had sent part of a request). It is a
  deadline, not a gap: trickling a byte now and then does not extend it.
* **body clock** (``body_timeout``): the longest *gap* between two reads of the request
  body (nginx's ``client_body_timeout``). A body that stalls is closed (``408`` when no
  response was started); a slow but steady upload of any length succeeds. What bounds a
  body that keeps trickling is the application's body size limit and eviction (below).
* **idle clock** (``keep_alive``): uvicorn's own ``timeout_keep_alive``, between the end
  of a response and the first byte of the next request; the sweep below enforces it too,
  as a backstop (uvicorn cancels its keep-alive timer on any data, e.g. the rest of a
  body the application answered without reading).

A clock only runs while the server is reading from the connection: it is restarted
while reading is paused by uvicorn's flow control (pipelined requests, a body the
application has not consumed yet) or while the client waits for ``100 Continue``. The
clocks are enforced by one sweep per server every ``ServerLimits.tick`` seconds (a
tenth of the shorter of the header and body timeouts, at most 1 s) over three lists kept
in deadline order, so a connection is closed between ``timeout`` and ``timeout + tick``
after its clock started, and the cost is a few dictionary operations per request, not a
timer per connection.

**Bound on connections** (``max_connections``). When a new connection arrives and the
server already holds ``max_connections``, one connection that is waiting for its client
is closed to make room, in this order: the oldest one that has not completed its request
headers (the slowloris suspects), else the oldest idle kept-alive one (HTTP lets a server
close those at any time; clients reopen), else the oldest one whose request body is
still arriving. Only when every connection has a complete request in the application is
the new connection refused: it is answered ``503 Service Unavailable`` with
``retry-after: 1`` and closed. So a flood of slow clients can never lock out a new
client; it only shortens how long each of them is tolerated. uvicorn's own
``limit_concurrency`` is not used: it counts slow connections too and answers 503 to
every new request once they fill it, which hands the service to the slowloris.

:func:`run_server` runs an application with these settings (and raises the process's
open-file limit to what ``max_connections`` needs); :func:`serve_in_thread` runs one on a
free loopback port in a background thread (tests, benchmarks). :func:`connection_stats`
reads a running server's counters. One process only: the protocol class is made at run
time, so uvicorn's ``workers`` and ``reload`` (which need import strings) do not apply.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import socket
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lifelongrec._errors import ParameterError
from lifelongrec._params import is_int, is_number

__all__ = [
    "ConnectionStats",
    "LimitedHttpToolsProtocol",
    "QuietDisconnects",
    "SWITCH_INTERVAL",
    "RunningServer",
    "ServerLimits",
    "connection_stats",
    "fit_open_file_limit",
    "run_server",
    "serve_in_thread",
    "uvicorn_options",
]

logger = logging.getLogger(__name__)

#: The interpreter's thread switch interval in a server process (:func:`run_server`),
#: seconds: a request waiting for the interpreter lock gets it this soon.
SWITCH_INTERVAL = 0.0005

# Descriptors kept free besides the connections: the listening socket, the event store
# and registry files, model files, logs, the learner's threads' pipes (about 40 when the
# service starts), with room to spare.
_FD_HEADROOM = 128
# How often (seconds at most) the counters of closed slow connections are logged.
_LOG_EVERY = 10.0


@dataclass(frozen=True)
class ServerLimits:
    """How long the server waits for a client, and how many connections it holds.

    Parameters
    ----------
    header_timeout
        Seconds from the moment a connection is accepted (first request) or the first
        byte of a later request arrives, to the end of that request's headers; a
        deadline, not a gap. 10 s: a request's headers are one packet for every real
        client, so 10 s is generous even over a slow mobile link, and it bounds how long
        a slowloris connection is held when the server is not full.
    body_timeout
        Longest gap in seconds between two reads of a request body (not the body's
        total time: a slow but steady upload succeeds however long it is). 30 s: the
        service's bodies are JSON of at most a few MB, sent without pauses by every real
        client; 30 s tolerates a stalled mobile link.
    keep_alive
        Seconds a connection may stay idle between a response and the next request
        (uvicorn's ``timeout_keep_alive``, whose default this is). It is not part of the
        header clock: a later request's header clock starts at its first byte. Put it
        above the idle timeout of a load balancer in front of the service (e.g. 75 s
        behind one that closes idle connections after 60 s).
    max_connections
        Most connections held at once (all states). 4096: each costs a descriptor and a
        few kB, so thousands are cheap; reaching the bound closes the connection that
        has waited longest for its client (see the module docstring), it never locks
        out a new client while some connection is only waiting for its client.
    backlog
        Length of the listening socket's queue of connections the kernel has accepted
        and the server has not yet (uvicorn's ``backlog``, default 2048). The kernel
        caps it at ``net.core.somaxconn``.
    max_header_bytes
        Most bytes of request line and headers (64 KiB; nginx allows 32 KiB, h11 16 KiB).
        A request over it is answered ``431`` and closed. httptools itself has no such
        limit, so without it a client could make the server buffer headers without end.

    Examples
    --------
    >>> ServerLimits().validate().tick
    1.0
    >>> ServerLimits(header_timeout=1.0, body_timeout=2.0).validate().tick
    0.1
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0
    max_connections: int = 4096
    backlog: int = 2048
    max_header_bytes: int = 64 * 1024

    def validate(self) -> ServerLimits:
        """Check every field; return ``self``, or raise :class:`ParameterError`
        naming the field, what it must be and what it got."""
        # Plain Python numbers (as uvicorn and the socket calls take them), not bools.
        for name in ("header_timeout", "body_timeout", "keep_alive"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and is_number(v) and v > 0):
                raise ParameterError(name, v, "a finite number of seconds > 0")
        lows = {"max_connections": 1, "backlog": 1, "max_header_bytes": 1024}
        for name, low in lows.items():
            v = getattr(self, name)
            if not (isinstance(v, int) and is_int(v) and v >= low):
                raise ParameterError(name, v, f"an integer >= {low}")
        return self

    @property
    def tick(self) -> float:
        """Seconds between two sweeps of the clocks: a tenth of the shorter of
        ``header_timeout`` and ``body_timeout``, between 0.01 s and 1 s. A connection
        is closed at most this late (idle ones are closed on time by uvicorn's timer)."""
        shortest = min(self.header_timeout, self.body_timeout)
        return min(1.0, max(0.01, shortest / 10))


@dataclass(frozen=True)
class ConnectionStats:
    """A snapshot of one server's connections (see :func:`connection_stats`).

    ``open``: connections held now (``peak``: the most at once); ``waiting_headers``,
    ``waiting_body``, ``idle``: how many of them wait for their client's headers, body,
    or next request. The rest count connections closed since the server started:
    ``header_timeouts``, ``body_timeouts``, ``idle_timeouts`` (by the clocks; idle ones
    mostly close by uvicorn's own timer first and are not counted),
    ``headers_too_large`` (over ``max_header_bytes``), ``evicted`` (closed to make room
    at ``max_connections``) and ``refused`` (new connections answered 503 because all
    were busy).
    """

    open: int = 0
    peak: int = 0
    waiting_headers: int = 0
    waiting_body: int = 0
    idle: int = 0
    header_timeouts: int = 0
    body_timeouts: int = 0
    idle_timeouts: int = 0
    headers_too_large: int = 0
    evicted: int = 0
    refused: int = 0


# The states in which a connection waits for its client. A connection in none of them
# has a complete request in the application (or is closing).
_HEADERS, _IDLE, _BODY = "headers", "idle", "body"
# Eviction order at max_connections: slowloris suspects first, in-progress bodies last.
_EVICTION_ORDER = (_HEADERS, _IDLE, _BODY)
_TIMEOUT_COUNTER = {_HEADERS: "header_timeouts", _BODY: "body_timeouts", _IDLE: "idle_timeouts"}


def _response(status: str, body: bytes = b"", extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n".encode("ascii")
        + extra
        + b"\r\n"
        + body
    )


_408 = _response("408 Request Timeout", b"Request Timeout")
_431 = _response("431 Request Header Fields Too Large", b"Request Header Fields Too Large")
_503 = _response("503 Service Unavailable", b"Service Unavailable", b"retry-after: 1\r\n")


class _Connections:
    """The connections of one server: the clocks, the sweep, eviction and counters.

    Each waiting connection sits in exactly one of three ordered dicts (oldest clock
    first); a clock restart moves it to the end, so the dicts stay in deadline order and
    the sweep only looks at the connections whose time is up.
    """

    def __init__(self, limits: ServerLimits, loop: Any) -> None:
        self.limits = limits
        self.loop = loop
        self.live: set[LimitedHttpToolsProtocol] = set()
        self.waiting: dict[str, OrderedDict[LimitedHttpToolsProtocol, None]] = {
            phase: OrderedDict() for phase in _EVICTION_ORDER
        }
        self.timeouts = {
            _HEADERS: limits.header_timeout,
            _BODY: limits.body_timeout,
            _IDLE: limits.keep_alive,
        }
        self.counts = dict.fromkeys(
            ("header_timeouts", "body_timeouts", "idle_timeouts", "headers_too_large"), 0
        )
        self.counts.update(evicted=0, refused=0)
        self.peak = 0
        self._sweep_handle: Any = None
        self._logged = dict(self.counts)
        self._logged_at = -math.inf

    # -- states
    def enter(self, conn: LimitedHttpToolsProtocol, phase: str) -> None:
        """Start (or restart) ``conn``'s clock for ``phase``."""
        if conn._phase is not None:
            del self.waiting[conn._phase][conn]
        conn._phase = phase
        conn._since = self.loop.time()
        self.waiting[phase][conn] = None

    def leave(self, conn: LimitedHttpToolsProtocol) -> None:
        """``conn`` no longer waits for its client (its request is complete)."""
        if conn._phase is not None:
            del self.waiting[conn._phase][conn]
            conn._phase = None

    def admit(self, conn: LimitedHttpToolsProtocol) -> bool:
        """Register a new connection, closing a waiting one if the server is full;
        ``False`` when every held connection is busy (the caller refuses ``conn``)."""
        if len(self.live) >= self.limits.max_connections:
            victim = next(
                (next(iter(self.waiting[p])) for p in _EVICTION_ORDER if self.waiting[p]), None
            )
            if victim is None:
                self.counts["refused"] += 1
                return False
            self.counts["evicted"] += 1
            self.close(victim)
        self.live.add(conn)
        self.peak = max(self.peak, len(self.live))
        self.enter(conn, _HEADERS)
        if self._sweep_handle is None:
            self._sweep_handle = self.loop.call_later(self.limits.tick, self._sweep)
        return True

    def close(self, conn: LimitedHttpToolsProtocol, answer: bytes = b"") -> None:
        """Forget ``conn`` at once (its descriptor is released on the next loop turn)
        and close it, writing ``answer`` first when it may still be answered."""
        self.discard(conn)
        transport = conn.transport
        if transport is None or transport.is_closing():
            return
        if answer:
            transport.write(answer)
        transport.close()

    def discard(self, conn: LimitedHttpToolsProtocol) -> None:
        self.leave(conn)
        self.live.discard(conn)

    # -- the sweep
    def _sweep(self) -> None:
        now = self.loop.time()
        for phase, timeout in self.timeouts.items():
            waiting = self.waiting[phase]
            while waiting:
                conn = next(iter(waiting))
                if conn._since + timeout > now:
                    break
                if conn._server_holds_it():
                    self.enter(conn, phase)  # not the client's fault: restart the clock
                    continue
                self.counts[_TIMEOUT_COUNTER[phase]] += 1
                self.close(conn, _408 if conn._may_answer_timeout() else b"")
        if now - self._logged_at >= _LOG_EVERY:
            self._log(now)
        self._sweep_handle = (
            self.loop.call_later(self.limits.tick, self._sweep) if self.live else None
        )

    def _log(self, now: float) -> None:
        new = {k: v - self._logged[k] for k, v in self.counts.items()}
        if not any(new.values()):
            return
        self._logged, self._logged_at = dict(self.counts), now
        lim = self.limits
        parts = [
            f"{new[k]} {what}"
            for k, what in (
                (
                    "header_timeouts",
                    f"whose request headers did not arrive in {lim.header_timeout:g}s",
                ),
                ("body_timeouts", f"whose body stalled for {lim.body_timeout:g}s"),
                ("idle_timeouts", f"idle for {lim.keep_alive:g}s"),
                ("headers_too_large", f"with headers over {lim.max_header_bytes} bytes"),
                ("evicted", f"evicted at max_connections={lim.max_connections}"),
                ("refused", "refused (503) with every connection busy"),
            )
            if new[k]
        ]
        logger.log(
            logging.WARNING if new["evicted"] or new["refused"] else logging.INFO,
            "slow clients: closed %s; %d connections open",
            ", ".join(parts),
            len(self.live),
        )

    def stats(self) -> ConnectionStats:
        return ConnectionStats(
            open=len(self.live),
            peak=self.peak,
            waiting_headers=len(self.waiting[_HEADERS]),
            waiting_body=len(self.waiting[_BODY]),
            idle=len(self.waiting[_IDLE]),
            **self.counts,
        )


# One _Connections per uvicorn server (its ServerState is shared by its connections).
_REGISTRIES: weakref.WeakKeyDictionary[Any, _Connections] = weakref.WeakKeyDictionary()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, body and idle clocks and a bound on
    connections (see the module docstring); ``limits`` is set by :meth:`with_limits`.

    Pass the class :meth:`with_limits` returns as ``http=`` to ``uvicorn.Config`` or
    ``uvicorn.run`` (:func:`uvicorn_options` does).
    """

    limits: ClassVar[ServerLimits] = ServerLimits()

    @classmethod
    def with_limits(cls, limits: ServerLimits) -> type[LimitedHttpToolsProtocol]:
        """A subclass that applies ``limits`` (validated)."""
        limits.validate()
        return type(cls.__name__, (cls,), {"limits": limits, "__module__": cls.__module__})

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None):
        super().__init__(config, server_state, app_state, _loop)
        conns = _REGISTRIES.get(server_state)
        if conns is None:
            conns = _REGISTRIES[server_state] = _Connections(self.limits, self.loop)
        self._conns = conns
        self._phase: str | None = None
        self._since = 0.0
        self._request_started = False  # a byte of the request awaited now has arrived
        self._header_bytes = 0
        self._begun_in_chunk = False

    # -- what the clocks ask
    def _server_holds_it(self) -> bool:
        """The server, not the client, is why nothing arrives: reading is paused (flow
        control), or the client waits for the ``100 Continue`` the app has not asked."""
        if self.flow is not None and self.flow.read_paused:
            return True
        cycle = self.cycle
        return self._phase == _BODY and cycle is not None and cycle.waiting_for_100_continue

    def _may_answer_timeout(self) -> bool:
        """A 408 may be written: the client had sent part of the request awaited, and no
        response is on the wire."""
        if not self._request_started:
            return False
        cycle = self.cycle
        if self._phase == _BODY:  # the body of the request ``cycle`` answers
            return cycle is not None and not cycle.response_started
        return cycle is None or cycle.response_complete

    # -- connection
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._conns.admit(self):
            transport.write(_503)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._conns.discard(self)
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._conns.discard(self)  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        self._begun_in_chunk = False
        super().data_received(data)
        if self._phase == _BODY:
            self._conns.enter(self, _BODY)  # body bytes arrived: restart the gap clock
        elif self._phase == _HEADERS and phase == _HEADERS and not self._begun_in_chunk:
            # Every byte of this chunk belongs to headers that are still incomplete.
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._conns.counts["headers_too_large"] += 1
                self._conns.close(self, _431)

    # -- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_started = True
        if self._phase != _HEADERS:  # a later request: its header clock starts now
            self._conns.enter(self, _HEADERS)
            self._header_bytes = 0
            self._begun_in_chunk = True

    def on_headers_complete(self) -> None:
        self._conns.enter(self, _BODY)  # left at once by on_message_complete if no body
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._request_started = False
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and not self.transport.is_closing():
            self._conns.enter(self, _IDLE)  # answered before its body had arrived
        else:
            self._conns.leave(self)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn armed its keep-alive timer: no pipelined request, connection kept.
        if self._phase is None and self.timeout_keep_alive_task is not None:
            self._conns.enter(self, _IDLE)


class QuietDisconnects:
    """ASGI wrapper: a request whose client went away before the app had read it (the
    app's ``receive`` returned ``http.disconnect``, then Starlette raised
    ``ClientDisconnect``) ends with one debug line instead of uvicorn's "Exception in ASGI
    application" traceback at ERROR. Every stalled body the body clock closes ends this
    way, so without it a slow-client flood would also flood the log. Any other exception,
    or one raised while the client is still there, propagates as before.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = False

        async def watched_receive() -> Any:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        try:
            await self.app(scope, watched_receive, send)
        except Exception as exc:
            from starlette.requests import ClientDisconnect

            if not (gone and isinstance(exc, ClientDisconnect)):
                raise
            logger.debug(
                "%s %s: the client left before sending its whole request",
                scope.get("method"),
                scope.get("path"),
            )


def connection_stats(server: Any) -> ConnectionStats:
    """The counters of a running ``uvicorn.Server`` (or of its ``server_state``) whose
    http protocol is a :class:`LimitedHttpToolsProtocol`; all zero before its first
    connection. Safe to call from another thread (a snapshot, possibly a moment old)."""
    state = getattr(server, "server_state", server)
    conns = _REGISTRIES.get(state)
    return ConnectionStats() if conns is None else conns.stats()


# --------------------------------------------------------------------------- running

# uvicorn options this module sets from ServerLimits; passing them besides is an error.
_OWN_OPTIONS = {
    "http": "the protocol that enforces ServerLimits",
    "timeout_keep_alive": "ServerLimits.keep_alive",
    "backlog": "ServerLimits.backlog",
    "h11_max_incomplete_event_size": "ServerLimits.max_header_bytes",
    "limit_concurrency": (
        "ServerLimits.max_connections (uvicorn's limit answers 503 to new clients once "
        "slow ones fill it)"
    ),
}


def uvicorn_options(limits: ServerLimits, **uvicorn_kwargs: Any) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.Config`` / ``uvicorn.run`` that apply ``limits``,
    merged with ``uvicorn_kwargs`` (``log_level="info"`` and ``access_log=False`` unless
    given). How each uvicorn option is set, and why:

    * ``http``: :class:`LimitedHttpToolsProtocol` with ``limits`` (the header and body
      clocks, eviction at ``max_connections``, ``max_header_bytes``); uvicorn has none
      of these for httptools.
    * ``timeout_keep_alive``: ``limits.keep_alive``, uvicorn's own idle timer.
    * ``backlog``: ``limits.backlog``.
    * ``h11_max_incomplete_event_size``: ``limits.max_header_bytes``; read only by
      uvicorn's h11 protocol, set so the limit is the same wherever it is read.
    * ``limit_concurrency``: left unset (``None``). It answers 503 to every new request
      while the connection count is at the limit, counting slow connections too, so
      ``limit`` slowloris connections would lock every normal client out; eviction at
      ``max_connections`` bounds connections without that failure.
    * ``timeout_graceful_shutdown`` is not set: on shutdown uvicorn closes connections
      without a request at once and the body clock closes stalled uploads.
    """
    limits.validate()
    for name in sorted(_OWN_OPTIONS.keys() & uvicorn_kwargs.keys()):
        raise ParameterError(
            name, uvicorn_kwargs[name], f"left out: it is set from {_OWN_OPTIONS[name]}"
        )
    return {
        "log_level": "info",
        "access_log": False,
        **uvicorn_kwargs,
        "http": LimitedHttpToolsProtocol.with_limits(limits),
        "timeout_keep_alive": limits.keep_alive,
        "backlog": limits.backlog,
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "limit_concurrency": None,
    }


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: no cheap count
        return 64


def fit_open_file_limit(limits: ServerLimits) -> ServerLimits:
    """Raise the process's soft ``RLIMIT_NOFILE`` to what ``limits.max_connections``
    needs (the connections, the descriptors open now, and 128 to spare), up to the
    hard limit; return ``limits``, with ``max_connections`` lowered (and a warning
    logged) when the hard limit is too low. Past the descriptor limit the event loop
    cannot accept new connections at all (EMFILE), so eviction could not make room.
    """
    limits.validate()
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return limits
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reserve = _open_fds() + _FD_HEADROOM
    needed = limits.max_connections + reserve
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            logger.info("raised the open-file limit (RLIMIT_NOFILE) from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitting = max(1, soft - reserve)
        logger.warning(
            "the open-file limit (RLIMIT_NOFILE soft %d, hard %s) is below the %d descriptors "
            "max_connections=%d needs; holding at most %d connections instead. Raise the "
            "hard limit (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=) or "
            "lower max_connections.",
            soft,
            "unlimited" if hard == resource.RLIM_INFINITY else hard,
            needed,
            limits.max_connections,
            fitting,
        )
        return replace(limits, max_connections=fitting)
    return limits


def run_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    switch_interval: float | None = SWITCH_INTERVAL,
    freeze: bool = True,
    **uvicorn_kwargs: Any,
) -> None:
    """Run the ASGI application ``app`` (an object, e.g. from ``create_app``) on uvicorn
    until it is stopped (Ctrl+C, SIGTERM), with ``limits`` (default
    :class:`ServerLimits`) applied as :func:`uvicorn_options` describes, after raising
    the open-file limit (:func:`fit_open_file_limit`), and wrapped in
    :class:`QuietDisconnects`. ``uvicorn_kwargs`` go to ``uvicorn.run`` (default
    ``log_level="info"``, ``access_log=False``); the options ``uvicorn_options`` sets
    from ``limits`` raise :class:`ParameterError` there.

    ``switch_interval``: the interpreter's thread switch interval while the server runs
    (:func:`sys.setswitchinterval`; ``None`` leaves it). :data:`SWITCH_INTERVAL`, 0.5 ms
    instead of Python's 5 ms: a request that waits for the interpreter lock while an
    ingestion step holds it gets the lock within 0.5 ms instead of 5 (docs/service.md,
    "Reads before writes").

    ``freeze``: collect once, then move every object made so far (the modules, the
    champion, the catalogue's indexes: hundreds of thousands) to the permanent
    generation (:func:`gc.freeze`), so the collector's full collections, which the
    interpreter starts on its own as objects pile up and which stop every thread, walk
    only what was made since; in a 100k-item service one took 229 ms
    (``benchmarks/gc_pause.py``), a pause every request in flight waits out (docs/service.md, "Garbage collection"). The
    objects are unfrozen when the server stops."""
    import uvicorn

    if not isinstance(freeze, bool):
        raise ParameterError("freeze", freeze, "True or False")

    if switch_interval is not None and not (is_number(switch_interval) and switch_interval > 0):
        raise ParameterError("switch_interval", switch_interval, "None or seconds > 0")
    limits = (ServerLimits() if limits is None else limits).validate()
    uvicorn_options(limits, **uvicorn_kwargs)  # reject bad options before touching limits
    lim = limits = fit_open_file_limit(limits)
    logger.info(
        "connection limits: headers within %gs, body gaps under %gs, keep-alive %gs, "
        "at most %d connections (the oldest waiting one is closed to admit a new one), "
        "headers up to %d bytes",
        lim.header_timeout,
        lim.body_timeout,
        lim.keep_alive,
        lim.max_connections,
        lim.max_header_bytes,
    )
    options = uvicorn_options(limits, **uvicorn_kwargs)
    before = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(float(switch_interval))
    if freeze:
        gc.collect()
        gc.freeze()
    try:
        uvicorn.run(QuietDisconnects(app), host=host, port=port, **options)
    finally:
        sys.setswitchinterval(before)
        if freeze:
            gc.unfreeze()


@dataclass
class RunningServer:
    """A server started by :func:`serve_in_thread`: where it listens and its counters."""

    host: str
    port: int
    server: Any  # uvicorn.Server
    limits: ServerLimits

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stats(self) -> ConnectionStats:
        return connection_stats(self.server)

    def wait_for(
        self, predicate: Callable[[ConnectionStats], bool], timeout: float = 10.0
    ) -> ConnectionStats:
        """Poll :meth:`stats` until ``predicate(stats)`` holds; raise ``TimeoutError``
        with the last stats after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"server never reached the expected state: {stats}")
            time.sleep(0.01)


@contextlib.contextmanager
def serve_in_thread(
    app: Any,
    limits: ServerLimits | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 30.0,
    **uvicorn_kwargs: Any,
) -> Iterator[RunningServer]:
    """Run ``app`` like :func:`run_server` in a daemon thread (its own event loop) on
    ``host:port`` (port 0: a free one, bound before the thread starts, so there is no
    race for it) and yield a :class:`RunningServer`; on exit, stop it (connections still
    open are closed after 5 s). The open-file limit is raised as in :func:`run_server`.
    """
    import uvicorn

    limits = fit_open_file_limit((ServerLimits() if limits is None else limits).validate())
    options = uvicorn_options(limits, **uvicorn_kwargs)
    config = uvicorn.Config(QuietDisconnects(app), host=host, port=port, **options)
    server = uvicorn.Server(config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: B036 - reported to the caller below
            errors.append(exc)

    try:
        sock.bind((host, port))
        thread = threading.Thread(target=target, name=f"uvicorn-{host}", daemon=True)
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"the server did not start: {errors or 'timed out'}")
            time.sleep(0.01)
        try:
            yield RunningServer(host, sock.getsockname()[1], server, limits)
        finally:
            server.should_exit = True
            thread.join(5.0)
            if thread.is_alive():
                server.force_exit = True
                thread.join(5.0)
    finally:
        sock.close()
