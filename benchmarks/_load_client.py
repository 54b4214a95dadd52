"""benchmarks/load.py, part 1: the HTTP client, ``lifelongrec serve`` as a subprocess,
and the statistics of what they measure.

The client (``--client raw``, the default) is a small HTTP/1.1 keep-alive client over
asyncio streams. ``--client httpx`` drives the same load through ``httpx.AsyncClient``,
but on a two-core machine it cannot drive the default rate: there the client shares the
cores with the server, and httpx's CPU per request leaves too little for it. Measured
with ``load.py --items 5000 --events 20000 --duration 5 --phases recs --client C``
(200 requests/s, two rounds each): raw 200/s achieved, p99 22-161 ms, client CPU
0.40-0.45 ms per request; httpx 79-98/s achieved, p50 1.3-5.9 s, client CPU 5.8-9.9 ms
per request. Against a trivial asyncio server (no service), raw 200/s at 0.3 ms CPU
per request and 5,400 requests/s closed-loop; httpx 67-112/s at 3.4-5.5 ms and 146-197
requests/s closed-loop (httpx 0.29, httpcore 1.0, anyio 4.16).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


# ======================================================================= statistics
def quantiles_ms(seconds: Any, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """``{"p50": ms, ...}`` of a sequence of seconds (empty: NaN), plus mean and max."""
    a = np.asarray(list(seconds), dtype=np.float64) * 1000.0
    out: dict[str, float] = {}
    for q in qs:
        out[f"p{round(q * 100):d}"] = float(np.quantile(a, q)) if a.size else float("nan")
    out["mean"] = float(a.mean()) if a.size else float("nan")
    out["max"] = float(a.max()) if a.size else float("nan")
    out["n"] = int(a.size)
    return out


def schedule(rate: float, duration: float, arrivals: str, seed: int = 0) -> np.ndarray:
    """Send times (s from the start) of an open-loop generator: ``rate`` per second for
    ``duration`` seconds, evenly spaced or Poisson."""
    if arrivals == "uniform":
        return np.arange(int(round(rate * duration)), dtype=np.float64) / rate
    rng = np.random.default_rng(seed)
    n = int(rate * duration * 1.5) + 16
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    while t[-1] < duration:  # pragma: no cover (astronomically unlikely)
        t = np.concatenate([t, t[-1] + np.cumsum(rng.exponential(1.0 / rate, n))])
    return t[t < duration] - t[0]


def metric(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    want = set(labels.items())
    return float(sum(v for (n, ls), v in samples.items() if n == name and want <= ls))


def histogram_delta(
    before: dict[tuple[str, frozenset], float],
    after: dict[tuple[str, frozenset], float],
    name: str,
    **labels: str,
) -> dict[str, float]:
    """Server-side latency of the requests between two scrapes: count, mean ms and the
    bucket bounds (ms) that hold the median and the 99th percentile."""
    buckets: dict[float, float] = {}
    for (n, ls), v in after.items():
        if n != f"{name}_bucket" or not set(labels.items()) <= ls:
            continue
        le = float(dict(ls)["le"])
        buckets[le] = buckets.get(le, 0.0) + v - before.get((n, ls), 0.0)
    count = metric(after, f"{name}_count", **labels) - metric(before, f"{name}_count", **labels)
    total = metric(after, f"{name}_sum", **labels) - metric(before, f"{name}_sum", **labels)
    out = {"count": count, "mean_ms": 1000 * total / count if count else float("nan")}
    for q in (0.5, 0.99):
        bound = next((le for le in sorted(buckets) if buckets[le] >= q * count), float("inf"))
        out[f"p{round(q * 100)}_le_ms"] = 1000 * bound if count else float("nan")
    return out


# ======================================================================= HTTP clients
class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams (loopback benchmark
    use): a pool of connections, at most ``max_connections`` requests in flight (more
    wait, and the wait counts in their latency)."""

    IDLE_S = 3.0

    def __init__(self, host: str, port: int, max_connections: int = 128, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        async with self._slots:
            return await asyncio.wait_for(self._request(method, path, body), self.timeout)

    async def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        # uvicorn closes a keep-alive connection idle for 5 s: never reuse one idle for
        # longer than IDLE_S, and retry once on a new connection when a reused one turns
        # out closed (the server never saw that request).
        now = time.monotonic()
        while self._idle and now - self._idle[-1][2] > self.IDLE_S:
            self._idle.pop()[1].close()
        for attempt in range(2):
            reused = attempt == 0 and bool(self._idle)
            conn = self._idle.pop()[:2] if reused else await self._connect()
            try:
                status, data, keep = await self._roundtrip(conn, method, path, body)
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                conn[1].close()
                if reused:
                    continue
                raise
            except BaseException:
                conn[1].close()
                raise
            if keep:
                self._idle.append((*conn, time.monotonic()))
            else:
                conn[1].close()
            return status, data
        raise ConnectionError("unreachable")  # pragma: no cover

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def _roundtrip(
        self,
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        method: str,
        path: str,
        body: bytes | None,
    ) -> tuple[int, bytes, bool]:
        reader, writer = conn
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._host_header
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
        writer.write(head + b"\r\n" + (body or b""))
        if body is not None and len(body) > 65536:
            await writer.drain()
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:  # read to close
            data = await reader.read()
            return status, data, False
        keep = headers.get("connection", "").lower() != "close"
        return status, data, keep

    async def aclose(self) -> None:
        for _, w, _ in self._idle:
            w.close()
        self._idle = []


class HttpxClient:
    """The same interface over ``httpx.AsyncClient`` (keep-alive pool)."""

    def __init__(self, host: str, port: int, max_connections: int = 128, timeout: float = 30.0):
        import httpx

        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._c = httpx.AsyncClient(
            base_url=f"http://{host}:{port}", limits=limits, timeout=timeout
        )

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else None
        r = await self._c.request(method, path, content=body, headers=headers)
        return r.status_code, r.content

    async def aclose(self) -> None:
        await self._c.aclose()


def make_client(kind: str, host: str, port: int, max_connections: int, timeout: float) -> Any:
    cls = RawHTTP if kind == "raw" else HttpxClient
    return cls(host, port, max_connections=max_connections, timeout=timeout)


class RoundRobin:
    """Requests spread over several servers' clients in turn (API replicas behind a
    load balancer); ``first`` is the first server's client."""

    def __init__(self, clients: list[Any]) -> None:
        self.clients, self.first, self._next = clients, clients[0], 0

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        client = self.clients[self._next % len(self.clients)]
        self._next += 1
        return await client.request(*args, **kwargs)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def make_clients(
    kind: str, host: str, ports: list[int], max_connections: int, timeout: float
) -> Any:
    """One client, or a :class:`RoundRobin` over one per port."""
    if len(ports) == 1:
        return make_client(kind, host, ports[0], max_connections, timeout)
    share = max(1, max_connections // len(ports))
    return RoundRobin([make_client(kind, host, p, share, timeout) for p in ports])


def rec_path(user: str, k: int) -> str:
    return f"/users/{urllib.parse.quote(str(user), safe='')}/recommendations?k={int(k)}"


# ======================================================================= the server
def serve_command(home: Path, port: int, config: Path, extra: Sequence[str] = ()) -> list[str]:
    """``lifelongrec serve`` on ``home`` (open access, loopback), ``extra`` options last."""
    exe = Path(sys.executable).parent / "lifelongrec"
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "lifelongrec.cli"]
    return [*head, "serve", "--home", str(home), "--open", "--host", "127.0.0.1"] + [
        "--port",
        str(port),
        "--config",
        str(config),
        *extra,
    ]


class Server:
    """``lifelongrec serve`` as a subprocess; its output goes to ``log``."""

    def __init__(
        self,
        home: Path,
        config: dict[str, Any],
        port: int,
        log: Path,
        extra: Sequence[str] = (),
    ) -> None:
        self.home, self.port, self.log = home, port, log
        self.extra = list(extra)  # more serve options
        self.config_path = home.parent / "config.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.proc: subprocess.Popen | None = None
        self.start_seconds = float("nan")

    @property
    def command(self) -> list[str]:
        return serve_command(self.home, self.port, self.config_path, self.extra)

    def start(self, timeout: float) -> None:
        import urllib.request

        t0 = time.perf_counter()
        self._log = open(self.log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{self.port}/health"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout:
                self.stop()
                raise TimeoutError(f"no /health after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.25)
        self.start_seconds = time.perf_counter() - t0

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far."""
        return proc_cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        return proc_rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown, then close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()


class ServerGroup:
    """Several servers on one home folder measured as one: CPU and memory summed, the
    first one's port and log for what needs one."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.port = servers[0].port
        self.ports = [s.port for s in servers]

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)

    def rss_mb(self) -> float:
        return sum(s.rss_mb() for s in self.servers)

    def tail(self, n: int = 30) -> str:
        return self.servers[0].tail(n)


def proc_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 without one, or once gone)."""
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
    except (TypeError, ValueError, OSError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int | None) -> float:
    """A process's resident set in MB (NaN without one)."""
    try:
        lines = Path(f"/proc/{int(pid)}/status").read_text().splitlines()
    except (TypeError, ValueError, OSError):
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
