"""Issue 5, item 7: a load test of the recommendation service (``lifelongrec serve``).

Everything runs on this machine over loopback, bounded in time:

1. **Home folder.** ``benchmarks/_work/load-<items>/base`` (git-ignored; reused while the
   build settings in its ``meta.json`` match, ``--rebuild`` forces it): ``--items``
   synthetic items, ``--events`` synthetic events in the event store and a first
   champion trained by ``RecommenderService.open(home, data=<Dataset>, config=...)``
   (sequential model; ``--param k=v`` changes its settings). The synthetic world is made
   with ``--pool`` more events than that; those later events (sessions of the same
   world, some by users the champion never saw) are what the benchmark posts. Each run
   copies ``base`` to ``run`` so every run starts from the same champion and store.
2. **Server.** ``lifelongrec serve --home run --open --port P --config config.json`` as
   a subprocess (uvicorn, one torch thread, the background learner on); the benchmark
   waits for ``GET /health``. ``--ann-threshold`` defaults to ``min(50000, items - 1)``,
   so the catalogue is searched through the HNSW index; ``--exact`` serves the same home
   with exact search instead. ``--service key=value`` sets any other ServiceConfig
   field for the server (e.g. ``hnsw_ef_search=64``, ``challenger_every=0``).
3. **Recommendation load.** An open-loop generator sends ``GET
   /users/{u}/recommendations?k=10`` (``exclude_seen`` on: the default) for random
   users the champion knows, at ``--rate`` requests/s (``--arrivals uniform`` or
   ``poisson``) for ``--duration`` s after ``--warmup`` s that are not counted.
   Latency is measured by the client from each request's *scheduled* send time, so
   queueing (in the client, the kernel and the server) is included. Meanwhile a feeder
   posts ``--feed-batch`` events every ``--feed-interval`` s, so the learner has work.
4. **Event -> reflected.** ``--reflect`` times (feeder still running): a random known
   user's current top recommendation is posted as an event of theirs, then their
   recommendations are asked again until the item has left the list; the time from the
   POST's start to that answer.
5. **Batched ingestion.** ``--ingest-clients`` clients post batches of
   ``--ingest-batch`` events back to back for ``--ingest-duration`` s; events/s
   acknowledged (each reply comes after the store's durable commit).
6. **ANN recall** (after the server stopped): the run's home opened in this process with
   ``background=False`` and the server's index settings; for ``--recall`` known users,
   ``service._live.index.search`` against exact top-10 over the same item vectors
   (``model.item_vectors()``, ``model.user_vectors``), without and with the users' seen
   items excluded (the service's request path), plus per-query search times.

Before and after each phase the benchmark reads ``/health`` and ``/metrics``: the model
version, stored events, learner batches and trained events, lag, challengers and
promotions (so the table shows that the learner ran). It also reads the server's CPU
time (``/proc``) and its own, and the server's latency histogram.

HTTP client: ``--client raw`` (default; HTTP/1.1 keep-alive over asyncio streams, a
pool of up to ``--max-connections``) or ``--client httpx`` (``httpx.AsyncClient``).
Client CPU per request is reported for either: on two cores the client shares the
machine with the server.

    # the issue's figures, on a quiet machine (the first run also builds the home folder):
    .venv/bin/python benchmarks/load.py                         # 100k items, HNSW
    .venv/bin/python benchmarks/load.py --exact --phases recs    # the same home, exact search
    .venv/bin/python benchmarks/load.py --items 1000000 --duration 30 --ingest-duration 5
    # what new users cost: only events of users the champion knows
    .venv/bin/python benchmarks/load.py --feed-users known --phases recs --block load-known
    # smoke test (about a minute on two cores, half of it training the champion once):
    nice -n 10 .venv/bin/python benchmarks/load.py --items 5000 --events 20000 \\
        --duration 5 --no-write

The server builds its HNSW index when it starts and again whenever a challenger is
promoted, and the recall phase builds one more in this process: on two cores that is
about a minute or two for 100k items and tens of minutes for a million.

Writes the ``service-load`` block of docs/benchmarks.md (``service-load-<items>`` for
another catalogue size, ``-exact`` appended with ``--exact``; ``--block NAME`` to
choose) and docs/benchmarks/service-<block>.json; ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _service_defaults() -> Any:
    from lifelongrec.serving import ServiceConfig

    return ServiceConfig()


_DEFAULTS = _service_defaults()
WORK = ROOT / "benchmarks" / "_work"
_spec = importlib.util.spec_from_file_location("_seqbench", ROOT / "benchmarks" / "sequential.py")
_seq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_seq)  # the docs block writer and the table formatter

#: The champion's settings unless ``--param`` changes them: small enough to train in a
#: few minutes on two cores (three epochs, no held-out validation, no text encoder).
MODEL_PARAMS: dict[str, Any] = {
    "dim": 64,
    "epochs": 3,
    "text_encoder": None,
    "validation": False,
    "device": "cpu",
    "verbose": True,
}
REC_ROUTE = "/users/{user_id}/recommendations"
TARGETS = {"rec_p99_ms": 30.0, "rate": 200.0, "ingest_eps": 5000.0, "reflect_p99_ms": 50.0}
TARGETS["recall"] = 0.95
PHASES = ("recs", "reflect", "ingest", "recall")


# ======================================================================= arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Load test of lifelongrec serve (issue 5, item 7).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("home folder")
    g.add_argument("--items", type=int, default=100_000, help="catalogue size")
    g.add_argument("--events", type=int, default=300_000, help="events in the store")
    g.add_argument("--users", type=int, default=None, help="users (default: events // 40)")
    g.add_argument(
        "--pool",
        type=int,
        default=None,
        help="later events to post (default: max(20000, events // 5))",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--param", action="append", metavar="K=V", help="champion model setting")
    g.add_argument("--rebuild", action="store_true", help="build the home folder again")
    g.add_argument("--work", type=Path, default=None, help="default: benchmarks/_work/load-<items>")
    g = p.add_argument_group("server")
    g.add_argument("--exact", action="store_true", help="exact search instead of HNSW")
    g.add_argument("--ann-threshold", type=int, default=None)
    g.add_argument("--service", action="append", metavar="K=V", help="ServiceConfig field")
    g.add_argument("--port", type=int, default=0, help="0: a free port")
    g.add_argument("--start-timeout", type=float, default=3600.0, help="seconds")
    g = p.add_argument_group("load")
    g.add_argument("--phases", default=",".join(PHASES), help=f"subset of {','.join(PHASES)}")
    g.add_argument("--client", choices=("raw", "httpx"), default="raw")
    g.add_argument("--max-connections", type=int, default=128)
    g.add_argument("--rate", type=float, default=200.0, help="recommendation requests/s")
    g.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    g.add_argument("--warmup", type=float, default=3.0, help="seconds at the rate, not counted")
    g.add_argument("--arrivals", choices=("uniform", "poisson"), default="uniform")
    g.add_argument("--k", type=int, default=10)
    g.add_argument("--feed-batch", type=int, default=50, help="events per feeder post (0: off)")
    g.add_argument("--feed-interval", type=float, default=0.25, help="seconds")
    g.add_argument(
        "--feed-users",
        choices=("all", "known"),
        default="all",
        help="post the world's later events of every user, or only of users the champion knows",
    )
    g.add_argument("--reflect", type=int, default=200, help="event -> reflected trials")
    g.add_argument("--ingest-clients", type=int, default=4)
    g.add_argument("--ingest-batch", type=int, default=1000)
    g.add_argument("--ingest-duration", type=float, default=10.0)
    g.add_argument("--recall", type=int, default=300, help="users for ANN recall (0: skip)")
    g.add_argument(
        "--merge",
        action="store_true",
        help="keep the earlier results of the phases this run does not repeat (same block)",
    )
    g.add_argument("--timeout", type=float, default=30.0, help="per-request seconds")
    g = p.add_argument_group("output")
    g.add_argument("--block", default=None, help="docs block name (default: see module doc)")
    g.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return check_args(args, p)


def check_args(
    args: argparse.Namespace, p: argparse.ArgumentParser | None = None
) -> argparse.Namespace:
    def fail(msg: str) -> None:
        if p is not None:
            p.error(msg)
        raise SystemExit(msg)

    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    bad = [x for x in phases if x not in PHASES]
    if bad or not phases:
        fail(f"--phases: unknown {bad} (choose among {','.join(PHASES)})")
    args.phase_list = phases
    for name in ("items", "events", "rate", "duration", "k", "ingest_clients", "ingest_batch"):
        if getattr(args, name) <= 0:
            fail(f"--{name.replace('_', '-')} must be > 0")
    for name in ("warmup", "feed_batch", "feed_interval", "reflect", "recall", "ingest_duration"):
        if getattr(args, name) < 0:
            fail(f"--{name.replace('_', '-')} must be >= 0")
    if args.feed_batch and not args.feed_interval:
        fail("--feed-interval must be > 0 when the feeder is on")
    if args.users is None:
        args.users = max(10, args.events // 40)
    if args.pool is None:
        args.pool = max(20_000, args.events // 5)
    if args.ann_threshold is None:
        args.ann_threshold = 1_000_000_000 if args.exact else max(1, min(50_000, args.items - 1))
    if args.work is None:
        args.work = WORK / f"load-{args.items}"
    from lifelongrec.cli import _parse_params

    args.model_params = {**MODEL_PARAMS, **_parse_params(args.param or [])}
    args.service_overrides = _parse_params(args.service or [])
    if args.block is None:
        args.block = "load" if args.items == 100_000 else f"load-{args.items}"
        if args.exact:
            args.block += "-exact"
    return args


def build_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the cached home folder depends on (a change rebuilds it)."""
    return {
        "items": int(args.items),
        "events": int(args.events),
        "users": int(args.users),
        "pool": int(args.pool),
        "seed": int(args.seed),
        "model": "sequential",
        "model_params": dict(args.model_params),
    }


def server_config(args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    """The ServiceConfig of the server (written to the run's config.json)."""
    cfg = {
        "model": "sequential",
        "model_params": dict(meta["settings"]["model_params"]),
        "seed": int(args.seed),
        "ann_threshold": int(args.ann_threshold),
        "background": True,
    }
    cfg.update(args.service_overrides)
    return cfg


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


def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    """Samples of the text exposition format: ``(name, labels) -> value``."""
    out: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, brace, rest = head.partition("{")
        labels: list[tuple[str, str]] = []
        if brace:
            body = rest.rsplit("}", 1)[0]
            for part in _split_labels(body):
                k, _, v = part.partition("=")
                labels.append((k.strip(), v.strip().strip('"')))
        try:
            out[(name.strip(), frozenset(labels))] = float(value)
        except ValueError:
            continue
    return out


def _split_labels(body: str) -> list[str]:
    parts, cur, quoted = [], [], False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return [x for x in parts if x.strip()]


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


# ======================================================================= home folder
def ensure_base(args: argparse.Namespace) -> dict[str, Any]:
    """The cached home folder and the events to post; built when missing or stale.
    Returns ``meta`` (settings, sizes, build timings, paths)."""
    work: Path = args.work
    base, meta_path = work / "base", work / "meta.json"
    settings = build_settings(args)
    if meta_path.exists() and (base / "registry").exists() and not args.rebuild:
        meta = json.loads(meta_path.read_text())
        if meta.get("settings") == settings and (work / "feed.npz").exists():
            print(f"reusing {base} (built {meta['built']})", flush=True)
            return meta
        print(f"{base} was built with other settings: building it again", flush=True)
    if work.exists() and any(work.iterdir()) and not (meta_path.exists() or base.exists()):
        raise SystemExit(f"{work} is not empty and not a load-test folder: refusing to clear it")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    from lifelongrec.data import Dataset, synthetic
    from lifelongrec.serving import RecommenderService

    t0 = time.perf_counter()
    world = synthetic(
        n_events=args.events + args.pool, seed=args.seed, n_items=args.items, n_users=args.users
    )
    ev = world.events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    head, tail = ev.iloc[: args.events].reset_index(drop=True), ev.iloc[args.events :]
    known = np.unique(head["user_id"].astype(str).to_numpy())
    np.savez(
        work / "feed.npz",
        user=np.asarray(tail["user_id"].astype(str), dtype=str),
        item=np.asarray(tail["item_id"].astype(str), dtype=str),
        event_type=np.asarray(tail["event_type"].astype(str), dtype=str),
        known_users=np.asarray(known, dtype=str),
    )
    gen_s = time.perf_counter() - t0
    print(
        f"synthetic world: {len(head)} events for the store, {len(tail)} to post, "
        f"{len(world.items)} items, {len(known)} users in the store ({gen_s:.1f} s)",
        flush=True,
    )
    t1 = time.perf_counter()
    data = Dataset(events=head, items=world.items, name="synthetic")
    # exact index while building: the server builds its own (HNSW) index when it opens
    cfg = {
        "model": "sequential",
        "model_params": dict(args.model_params),
        "seed": int(args.seed),
        "background": False,
        "ann_threshold": 1_000_000_000,
    }
    service = RecommenderService.open(base, data=data, config=cfg)
    try:
        version = service.live_version
        info = service.registry.info(version)
        n_items = int(service.health()["n_items"])
    finally:
        service.close()
    meta = {
        "settings": settings,
        "built": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "generate_seconds": round(gen_s, 2),
        "open_seconds": round(time.perf_counter() - t1, 2),
        "fit_seconds": info.metrics.get("fit_seconds"),
        "champion": version,
        "n_events": int(len(head)),
        "n_items": n_items,
        "n_users": int(len(known)),
        "n_pool": int(len(tail)),
        "max_timestamp": int(ev["timestamp"].max()),
        "base_mb": round(_tree_bytes(base) / 2**20, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    print(
        f"home folder built: champion {version}, fit {meta['fit_seconds']} s, {meta['base_mb']} MB",
        flush=True,
    )
    return meta


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def fresh_run_home(work: Path) -> Path:
    """A copy of the pristine ``base`` home for this run."""
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(work / "base", run)
    return run


@dataclass
class Feed:
    """The events the benchmark posts (the synthetic world's later sessions, cycled) and
    the users the champion knows; timestamps from a clock that starts after every event
    of the world, so what is posted is always the newest."""

    user: np.ndarray
    item: np.ndarray
    event_type: np.ndarray
    known_users: np.ndarray
    ts0: int
    pos: int = 0
    t_start: float = field(default_factory=time.monotonic)

    @classmethod
    def load(cls, work: Path, meta: dict[str, Any], users: str = "all") -> Feed:
        """``users="known"``: only the events of users the champion knows."""
        z = np.load(work / "feed.npz")
        user, known = z["user"], z["known_users"]
        keep = np.isin(user, known) if users == "known" else np.ones(len(user), bool)
        if not keep.any():
            raise SystemExit("no event to post: the pool has none of a known user")
        return cls(
            user=user[keep].astype(object),
            item=z["item"][keep].astype(object),
            event_type=z["event_type"][keep].astype(object),
            known_users=known.astype(object),
            ts0=int(meta["max_timestamp"]) + 1,
        )

    def new_user_share(self) -> float:
        """Share of the pool's events whose user the champion does not know."""
        return float(np.mean(~np.isin(self.user, self.known_users)))

    def now(self) -> int:
        return self.ts0 + int(time.monotonic() - self.t_start)

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` events (wrapping around the pool) stamped with now."""
        m = len(self.user)
        idx = (self.pos + np.arange(n)) % m
        self.pos = int((self.pos + n) % m)
        ts = self.now()
        u, i, e = self.user[idx], self.item[idx], self.event_type[idx]
        return [
            {"user_id": a, "item_id": b, "timestamp": ts, "event_type": c}
            for a, b, c in zip(u.tolist(), i.tolist(), e.tolist(), strict=True)
        ]


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


def rec_path(user: str, k: int) -> str:
    return f"/users/{urllib.parse.quote(str(user), safe='')}/recommendations?k={int(k)}"


# ======================================================================= the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(home: Path, port: int, config: Path) -> list[str]:
    exe = Path(sys.executable).parent / "lifelongrec"
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "lifelongrec.cli"]
    return [*head, "serve", "--home", str(home), "--open", "--host", "127.0.0.1"] + [
        "--port",
        str(port),
        "--config",
        str(config),
    ]


class Server:
    """``lifelongrec serve`` as a subprocess; its output goes to ``log``."""

    def __init__(self, home: Path, config: dict[str, Any], port: int, log: Path) -> None:
        self.home, self.port, self.log = home, port, log
        self.config_path = home.parent / "config.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.proc: subprocess.Popen | None = None
        self.start_seconds = float("nan")

    @property
    def command(self) -> list[str]:
        return serve_command(self.home, self.port, self.config_path)

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
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

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


# ======================================================================= phases
async def snapshot(client: Any, server: Server) -> dict[str, Any]:
    """The service's counters now (``/health``, ``/metrics``) and the server's CPU."""
    _, h = await client.request("GET", "/health")
    _, m = await client.request("GET", "/metrics")
    health = json.loads(h)
    samples = parse_prometheus(m.decode())
    return {
        "t": time.perf_counter(),
        "cpu_s": server.cpu_seconds(),
        "rss_mb": server.rss_mb(),
        "model_version": health["model_version"],
        "index": health["index"],
        "n_items": health["n_items"],
        "n_users": health["n_users"],
        "n_events": health["n_events"],
        "learner_running": health["learner_running"],
        "lag_events": health["learner_lag_events"],
        "learner_batches": metric(samples, "lifelongrec_learner_n_batches"),
        "learner_trained_events": metric(samples, "lifelongrec_learner_n_trained_events"),
        "challengers": metric(samples, "lifelongrec_challengers"),
        "promotions": metric(samples, "lifelongrec_promotions"),
        "learner_errors": metric(samples, "lifelongrec_learner_errors"),
        "_samples": samples,
    }


def learner_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "n_events",
        "n_users",
        "learner_batches",
        "learner_trained_events",
        "challengers",
        "promotions",
    )
    out = {f"d_{k}": after[k] - before[k] for k in keys}
    out["d_learner_errors"] = after["learner_errors"] - before["learner_errors"]
    out["lag_before"], out["lag_after"] = before["lag_events"], after["lag_events"]
    out["version_before"], out["version_after"] = before["model_version"], after["model_version"]
    out["learner_running"] = bool(before["learner_running"] and after["learner_running"])
    wall = after["t"] - before["t"]
    out["server_cpu_cores"] = (after["cpu_s"] - before["cpu_s"]) / wall if wall > 0 else None
    out["rss_mb_after"] = after["rss_mb"]
    return out


class Feeder:
    """Posts ``batch`` events every ``interval`` seconds (open loop) until stopped."""

    def __init__(self, client: Any, feed: Feed, batch: int, interval: float) -> None:
        self.client, self.feed, self.batch, self.interval = client, feed, batch, interval
        self.latency: list[float] = []
        self.errors: dict[str, int] = {}
        self.written = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._main: asyncio.Task | None = None

    def start(self) -> None:
        if self.batch:
            self._main = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        t0 = time.perf_counter()
        j = 0
        while not self._stop.is_set():
            due = t0 + j * self.interval
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, due - time.perf_counter()))
            if self._stop.is_set():
                break
            self._tasks.append(asyncio.ensure_future(self._post(due)))
            j += 1

    async def _post(self, due: float) -> None:
        body = json.dumps({"events": self.feed.take(self.batch)}).encode()
        try:
            status, data = await self.client.request("POST", "/events", body)
            if status == 201:
                self.written += int(json.loads(data)["n_written"])
            else:
                self.errors[f"HTTP {status}"] = self.errors.get(f"HTTP {status}", 0) + 1
        except Exception as exc:  # noqa: BLE001 (counted)
            self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
        self.latency.append(time.perf_counter() - due)

    async def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._main is not None:
            await self._main
        if self._tasks:
            await asyncio.gather(*self._tasks)
        return {
            "events_written": self.written,
            "posts": len(self.latency),
            "errors": dict(self.errors),
            "latency_ms": quantiles_ms(self.latency),
        }


async def open_loop(
    rate: float,
    duration: float,
    arrivals: str,
    fire: Callable[[], Awaitable[str | None]],
    seed: int = 0,
) -> dict[str, Any]:
    """Call ``fire`` at the scheduled times (without waiting for earlier calls); each
    call returns ``None`` (fine) or an error label. Latency runs from the scheduled
    time to the reply."""
    offsets = schedule(rate, duration, arrivals, seed)
    lat: list[float] = []
    lag: list[float] = []
    errors: dict[str, int] = {}
    ends: list[float] = []

    async def one(t_sched: float) -> None:
        lag.append(time.perf_counter() - t_sched)
        try:
            err = await fire()
        except Exception as exc:  # noqa: BLE001 (counted)
            err = type(exc).__name__ or "error"
        end = time.perf_counter()
        ends.append(end)
        if err is None:
            lat.append(end - t_sched)
        else:
            errors[err] = errors.get(err, 0) + 1

    tasks = []
    start = time.perf_counter() + 0.02
    cpu0 = time.process_time()
    for off in offsets.tolist():
        t = start + off
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(t)))
    await asyncio.gather(*tasks)
    elapsed = (max(ends) if ends else time.perf_counter()) - start
    return {
        "target_rate": rate,
        "sent": len(offsets),
        "ok": len(lat),
        "errors": errors,
        "elapsed_s": elapsed,
        "achieved_rate": len(lat) / elapsed if elapsed > 0 else 0.0,
        "latency_ms": quantiles_ms(lat),
        "send_lag_ms": quantiles_ms(lag),
        "client_cpu_ms_per_request": 1000 * (time.process_time() - cpu0) / max(1, len(offsets)),
    }


async def rec_phase(
    args: argparse.Namespace, client: Any, feed: Feed, server: Server
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    users = feed.known_users
    short = {"n": 0}

    async def fire() -> str | None:
        status, data = await client.request("GET", rec_path(rng.choice(users), args.k))
        if status != 200:
            return f"HTTP {status}"
        if len(json.loads(data)["items"]) < args.k:
            short["n"] += 1
        return None

    if args.warmup:
        await open_loop(args.rate, args.warmup, args.arrivals, fire, args.seed + 1)
    short["n"] = 0
    before = await snapshot(client, server)
    out = await open_loop(args.rate, args.duration, args.arrivals, fire, args.seed)
    after = await snapshot(client, server)
    out["short_answers"] = short["n"]
    out["server"] = histogram_delta(
        before["_samples"],
        after["_samples"],
        "lifelongrec_request_seconds",
        method="GET",
        route=REC_ROUTE,
        status="200",
    )
    out["learner"] = learner_delta(before, after)
    wall = after["t"] - before["t"]
    out["server_cpu_ms_per_request"] = (
        1000 * (after["cpu_s"] - before["cpu_s"]) / max(1, out["sent"]) if wall > 0 else None
    )
    return out


async def reflect_phase(
    args: argparse.Namespace, client: Any, feed: Feed, server: Server
) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + 7)
    users = rng.choice(
        feed.known_users, size=args.reflect, replace=len(feed.known_users) < args.reflect
    )
    waits, posts, gets, tries, failures = [], [], [], [], 0
    before = await snapshot(client, server)
    for user in users.tolist():
        status, data = await client.request("GET", rec_path(user, args.k))
        items = json.loads(data)["items"] if status == 200 else []
        if not items:
            failures += 1
            continue
        top = items[0]["item_id"]
        event = {"user_id": user, "item_id": top, "timestamp": feed.now(), "event_type": "view"}
        body = json.dumps(event).encode()
        t0 = time.perf_counter()
        status, _ = await client.request("POST", "/events", body)
        t1 = time.perf_counter()
        if status != 201:
            failures += 1
            continue
        n = 0
        while True:
            n += 1
            status, data = await client.request("GET", rec_path(user, args.k))
            got = [i["item_id"] for i in json.loads(data)["items"]] if status == 200 else [top]
            t2 = time.perf_counter()
            if top not in got or t2 - t0 > 5.0:
                break
        if top in got:
            failures += 1
            continue
        waits.append(t2 - t0)
        posts.append(t1 - t0)
        gets.append(t2 - t1)
        tries.append(n)
    after = await snapshot(client, server)
    return {
        "trials": int(len(users)),
        "reflected": len(waits),
        "failures": failures,
        "latency_ms": quantiles_ms(waits),
        "post_ms": quantiles_ms(posts),
        "get_ms": quantiles_ms(gets),
        "max_gets": max(tries) if tries else None,
        "first_get_reflected": int(sum(1 for t in tries if t == 1)),
        "learner": learner_delta(before, after),
    }


async def ingest_phase(
    args: argparse.Namespace, client: Any, feed: Feed, server: Server
) -> dict[str, Any]:
    lat: list[float] = []
    errors: dict[str, int] = {}
    written = [0]
    before = await snapshot(client, server)
    start = time.perf_counter()
    stop_at = start + args.ingest_duration
    ends: list[float] = []

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            body = json.dumps({"events": feed.take(args.ingest_batch)}).encode()
            t0 = time.perf_counter()
            try:
                status, data = await client.request("POST", "/events", body)
                if status == 201:
                    written[0] += int(json.loads(data)["n_written"])
                    lat.append(time.perf_counter() - t0)
                else:
                    errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
            except Exception as exc:  # noqa: BLE001 (counted)
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            ends.append(time.perf_counter())

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(args.ingest_clients)))
    elapsed = (max(ends) if ends else time.perf_counter()) - start
    client_cpu = time.process_time() - cpu0
    after = await snapshot(client, server)
    return {
        "clients": args.ingest_clients,
        "batch": args.ingest_batch,
        "batches": len(lat),
        "events_written": written[0],
        "elapsed_s": elapsed,
        "events_per_s": written[0] / elapsed if elapsed > 0 else 0.0,
        "batch_latency_ms": quantiles_ms(lat),
        "errors": errors,
        "client_cpu_s": client_cpu,
        "learner": learner_delta(before, after),
    }


async def run_server_phases(args: argparse.Namespace, feed: Feed, server: Server) -> dict[str, Any]:
    client = make_client(args.client, "127.0.0.1", server.port, args.max_connections, args.timeout)
    results: dict[str, Any] = {}
    try:
        first = await snapshot(client, server)
        results["start"] = {k: v for k, v in first.items() if not k.startswith("_")}
        feeder = Feeder(client, feed, args.feed_batch, args.feed_interval)
        feeder.start()
        if "recs" in args.phase_list:
            print(f"recommendations: {args.rate:g}/s for {args.duration:g} s ...", flush=True)
            results["recs"] = await rec_phase(args, client, feed, server)
            _print_phase("recs", results["recs"])
        if "reflect" in args.phase_list and args.reflect:
            print(f"event -> reflected: {args.reflect} trials ...", flush=True)
            results["reflect"] = await reflect_phase(args, client, feed, server)
            _print_phase("reflect", results["reflect"])
        results["feeder"] = await feeder.stop()
        if "ingest" in args.phase_list and args.ingest_duration:
            print(
                f"ingestion: {args.ingest_clients} clients x {args.ingest_batch}-event batches "
                f"for {args.ingest_duration:g} s ...",
                flush=True,
            )
            results["ingest"] = await ingest_phase(args, client, feed, server)
            _print_phase("ingest", results["ingest"])
        last = await snapshot(client, server)
        results["end"] = {k: v for k, v in last.items() if not k.startswith("_")}
    finally:
        await client.aclose()
    return results


def _print_phase(name: str, r: dict[str, Any]) -> None:
    if name == "recs":
        lat = r["latency_ms"]
        print(
            f"  p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f}, p99 {lat['p99']:.1f}, "
            f"{r['achieved_rate']:.0f}/s, errors {r['errors'] or 0}, server mean "
            f"{r['server']['mean_ms']:.1f} ms, client CPU {r['client_cpu_ms_per_request']:.2f} "
            f"ms/req, learner +{r['learner']['d_learner_batches']:.0f} batches",
            flush=True,
        )
    elif name == "reflect":
        lat = r["latency_ms"]
        print(
            f"  p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms "
            f"({r['reflected']}/{r['trials']} reflected, failures {r['failures']})",
            flush=True,
        )
    elif name == "ingest":
        lat = r["batch_latency_ms"]
        print(
            f"  {r['events_per_s']:.0f} events/s, batch p50 {lat['p50']:.0f} ms, "
            f"p99 {lat['p99']:.0f} ms, errors {r['errors'] or 0}",
            flush=True,
        )


# ======================================================================= recall
def recall_phase(args: argparse.Namespace, home: Path, config: dict[str, Any]) -> dict[str, Any]:
    """ANN recall@k of the service's index against exact top-k over the same vectors."""
    from lifelongrec.serving import RecommenderService

    k = int(args.k)
    t0 = time.perf_counter()
    service = RecommenderService.open(home, config={**config, "background": False})
    open_s = time.perf_counter() - t0
    try:
        live = service._live
        model, index = live.model, live.index
        if index is None:
            return {"skipped": "the model has no vectors"}
        rng = np.random.default_rng(args.seed + 11)
        known = np.asarray([u for u in model.user_ids_ if isinstance(u, str)], dtype=object)
        users = rng.choice(known, size=min(args.recall, len(known)), replace=False)
        U = np.asarray(model.user_vectors(users.tolist()), dtype=np.float32)
        ids, V = model.item_vectors()
        rows = model.user_rows(users.tolist())
        X = model.user_items_
        item_ids = np.asarray(model.item_ids_, dtype=object)
        seen = [item_ids[X.indices[X.indptr[r] : X.indptr[r + 1]]] for r in rows.tolist()]
        pos = {i: j for j, i in enumerate(ids.tolist())}
        out: dict[str, Any] = {
            "index": index.kind,
            "n_items": int(len(ids)),
            "users": int(len(users)),
            "open_seconds": round(open_s, 2),
            "hnsw_m": int(index.m),
            "hnsw_ef_search": int(index.ef_search),
            "hnsw_exact_head": int(getattr(index, "exact_head", 0)),
        }
        graph = _graph_search(index, int(index.ef_search))
        if graph is not None:
            out["graph_ef_search"] = graph[1]
        for label, excl in (("plain", None), ("exclude_seen", seen)):
            exact = exact_topk(U, V, ids, k, excl, pos)
            fallbacks0 = getattr(index, "_fallbacks", 0)
            got, times = [], []
            for j in range(len(users)):
                t = time.perf_counter()
                res, _ = index.search(U[j], k, exclude=None if excl is None else [excl[j]])
                times.append(time.perf_counter() - t)
                got.append({i for i in res.tolist() if i is not None})
            hits = [len(a & b) / k for a, b in zip(got, exact, strict=True)]
            # Tie-aware recall (as ann-benchmarks counts it): a returned item is a hit
            # when its exact score reaches the k-th best exact score. Items never seen in
            # an event have content-only vectors, and items with the same content tie
            # exactly; which of the tied items an exact top-k keeps is arbitrary, so
            # id overlap understates an index that returns equally good items.
            tie_hits, tied = [], []
            for j in range(len(users)):
                s_j = V @ U[j]
                if excl is not None:
                    drop = [pos[i] for i in excl[j] if i in pos]
                    s_j[drop] = -np.inf
                kth = np.partition(s_j, -k)[-k]
                eps = 1e-5 * max(1.0, abs(float(kth)))
                tied.append(int(np.count_nonzero(np.abs(s_j - kth) <= eps)))
                r_j = [pos[i] for i in got[j] if i in pos]
                tie_hits.append(float(np.count_nonzero(s_j[r_j] >= kth - eps)) / k)
            t = time.perf_counter()
            for j in range(len(users)):
                _ = np.argpartition(-(V @ U[j]), k)[:k]
            exact_ms = 1000 * (time.perf_counter() - t) / max(1, len(users))
            out[label] = {
                "recall": float(np.mean(hits)),
                "score_recall": float(np.mean(tie_hits)),
                "items_tied_at_kth_median": float(np.median(tied)),
                "min_recall": float(np.min(hits)),
                "search_ms": quantiles_ms(times),
                "numpy_exact_ms_mean": exact_ms,
                "exact_fallbacks": int(getattr(index, "_fallbacks", 0) - fallbacks0),
            }
            if graph is not None and excl is None:
                found = graph[0](U, k)
                out[label]["graph_recall"] = float(
                    np.mean([len(a & b) / k for a, b in zip(found, exact, strict=True)])
                )
        return out
    finally:
        service.close()


def exact_topk(
    U: np.ndarray,
    V: np.ndarray,
    ids: np.ndarray,
    k: int,
    exclude: list[np.ndarray] | None,
    pos: dict[str, int],
    chunk: int = 64,
) -> list[set[str]]:
    """Exact top-``k`` ids by inner product for each row of ``U`` (in chunks of users,
    so a million items need little memory), ``exclude[j]`` never returned."""
    out: list[set[str]] = []
    for c0 in range(0, len(U), chunk):
        S = U[c0 : c0 + chunk] @ V.T
        if exclude is not None:
            for j in range(len(S)):
                cols = [pos[i] for i in exclude[c0 + j].tolist() if i in pos]
                S[j, cols] = -np.inf
        kk = min(k, S.shape[1])
        top = np.argpartition(-S, kk - 1, axis=1)[:, :kk]
        out += [set(ids[t].tolist()) for t in top]
    return out


def _graph_search(
    index: Any, ef: int
) -> tuple[Callable[[np.ndarray, int], list[set[str]]], int] | None:
    """The index's HNSW graph searched directly (no exact shortcut for small
    catalogues, no filters), or None when it has none; reads ItemIndex internals."""
    try:
        st = index._snapshot()
        hnsw = st.main.hnsw
    except AttributeError:
        return None
    if hnsw is None:
        return None
    import faiss

    def search(U: np.ndarray, k: int) -> list[set[str]]:
        params = faiss.SearchParametersHNSW(efSearch=max(ef, k))
        _, lab = hnsw.search(np.ascontiguousarray(U, np.float32), k, params=params)
        return [{str(st.slot_ids[j]) for j in row if j >= 0} for row in lab]

    return search, ef


# ======================================================================= report
def _status(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def report_lines(args: argparse.Namespace, meta: dict[str, Any], res: dict[str, Any]) -> list[str]:
    cfg = res["config"]
    start = res.get("start", {})
    mp = meta["settings"]["model_params"]
    index = start.get("index") or (res.get("recall") or {}).get("index")
    index_desc = (
        f"HNSW (m {cfg.get('hnsw_m', _DEFAULTS.hnsw_m)}, ef_search "
        f"{cfg.get('hnsw_ef_search', _DEFAULTS.hnsw_ef_search)}, exact head "
        f"{cfg.get('hnsw_exact_head', _DEFAULTS.hnsw_exact_head):,})"
        if index == "hnsw"
        else str(index)
    )
    lines = [
        f"Setup: {meta['n_items']:,} synthetic items ({index_desc} index; ann_threshold "
        f"{cfg['ann_threshold']:,}), {meta['n_events']:,} events in the store from "
        f"{meta['n_users']:,} users; champion: sequential {json.dumps(mp)} trained on the first "
        f"start in {meta['fit_seconds']} s. Server: `lifelongrec serve --open` (uvicorn, "
        f"one torch thread) with the background learner on (service settings "
        f"{json.dumps({k: v for k, v in cfg.items() if k not in ('model', 'model_params')})}"
        f"); it answered /health {res.get('server_start_s', float('nan')):.0f} s after "
        f"starting (index build included). Client: {args.client} "
        f"({'HTTP/1.1 keep-alive over asyncio streams' if args.client == 'raw' else 'httpx.AsyncClient'}"
        f", up to {args.max_connections} connections) in one process on the same machine; "
        "latency from each request's scheduled send time (open loop), so queueing counts. "
        f"Posted events: the synthetic world's later sessions ({res['feed']['events']:,}, "
        f"cycled; `--feed-users {res['feed']['users']}`: "
        f"{100 * res['feed']['new_user_share']:.0f}% by users the champion has not seen), "
        "stamped after every stored event.",
        "",
    ]
    rows = []
    r = res.get("recs")
    if r:
        lat = r["latency_ms"]
        ok = lat["p99"] < TARGETS["rec_p99_ms"] and r["achieved_rate"] >= 0.98 * args.rate
        rows.append(
            {
                "what": f"GET recommendations (k={args.k}, exclude_seen), {args.arrivals} "
                f"{args.rate:g}/s for {args.duration:g} s, feeder {args.feed_batch} events / "
                f"{args.feed_interval:g} s",
                "result": f"p50 {lat['p50']:.1f} / p95 {lat['p95']:.1f} / p99 {lat['p99']:.1f} ms; "
                f"{r['achieved_rate']:.0f} req/s; {r['ok']}/{r['sent']} ok, errors "
                f"{sum(r['errors'].values())}",
                "target": f"p99 < {TARGETS['rec_p99_ms']:g} ms at >= {TARGETS['rate']:g}/s",
                "status": _status(ok if args.rate >= TARGETS["rate"] else None),
            }
        )
    r = res.get("reflect")
    if r:
        lat = r["latency_ms"]
        rows.append(
            {
                "what": f"event -> reflected recommendation ({r['trials']} trials, POST then GET)",
                "result": f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms "
                f"(POST p50 {r['post_ms']['p50']:.1f}, GET p50 {r['get_ms']['p50']:.1f}); "
                f"{r['first_get_reflected']}/{r['trials']} on the first GET, "
                f"failures {r['failures']}",
                "target": f"p99 < {TARGETS['reflect_p99_ms']:g} ms",
                "status": _status(lat["p99"] < TARGETS["reflect_p99_ms"] and not r["failures"]),
            }
        )
    r = res.get("ingest")
    if r:
        lat = r["batch_latency_ms"]
        rows.append(
            {
                "what": f"POST /events, {r['clients']} clients x {r['batch']:,}-event batches "
                f"for {args.ingest_duration:g} s",
                "result": f"{r['events_per_s']:,.0f} events/s acknowledged ({r['events_written']:,} "
                f"events); batch p50 {lat['p50']:.0f} / p99 {lat['p99']:.0f} ms; errors "
                f"{sum(r['errors'].values())}",
                "target": f">= {TARGETS['ingest_eps']:,.0f} events/s",
                "status": _status(r["events_per_s"] >= TARGETS["ingest_eps"] and not r["errors"]),
            }
        )
    r = res.get("recall")
    if r and "plain" in r:
        rows.append(
            {
                "what": f"ANN recall@{args.k} of the service's index vs exact, {r['users']} "
                f"users, {r['n_items']:,} items",
                "result": f"by score (ties count): {r['plain'].get('score_recall', float('nan')):.4f}"
                f" (seen items excluded: {r['exclude_seen'].get('score_recall', float('nan')):.4f});"
                f" by id: {r['plain']['recall']:.4f} (seen items excluded: "
                f"{r['exclude_seen']['recall']:.4f}; items tied at the k-th score, median "
                f"{r['plain'].get('items_tied_at_kth_median', float('nan')):.0f}"
                + (
                    f"; the HNSW graph alone: {r['plain']['graph_recall']:.4f}"
                    if "graph_recall" in r["plain"]
                    else ""
                )
                + f"); search p50 "
                f"{r['exclude_seen']['search_ms']['p50']:.2f} / p99 "
                f"{r['exclude_seen']['search_ms']['p99']:.2f} ms vs numpy exact "
                f"{r['plain']['numpy_exact_ms_mean']:.2f} ms",
                "target": f">= {TARGETS['recall']:.2f}",
                "status": _status(
                    min(
                        r["plain"].get("score_recall", r["plain"]["recall"]),
                        r["exclude_seen"].get("score_recall", r["exclude_seen"]["recall"]),
                    )
                    >= TARGETS["recall"]
                ),
            }
        )
    cols = [("what", "measurement", 0), ("result", "result", 0), ("target", "target", 0)]
    cols.append(("status", "status", 0))
    lines += [_seq.md_table(rows, cols), ""]
    # the learner, phase by phase
    lrows = []
    for name, label in (("recs", "recommendations"), ("reflect", "event -> reflected")):
        if name in res:
            lrows.append({"phase": label, **res[name]["learner"]})
    if "ingest" in res:
        lrows.append({"phase": "ingestion", **res["ingest"]["learner"]})
    if lrows:
        for row in lrows:
            row["version"] = f"{row['version_before']} -> {row['version_after']}"
            row["lag"] = f"{row['lag_before']:.0f} -> {row['lag_after']:.0f}"
        lines += [
            "The background learner during each phase (from /health and /metrics before and "
            "after; `lag` = stored events it has not trained on yet):",
            "",
            _seq.md_table(
                lrows,
                [
                    ("phase", "phase", 0),
                    ("learner_running", "running", 0),
                    ("d_n_events", "events stored", 0),
                    ("d_n_users", "new users", 0),
                    ("d_learner_batches", "parameter steps", 0),
                    ("d_learner_trained_events", "events trained", 0),
                    ("lag", "lag", 0),
                    ("d_challengers", "challengers", 0),
                    ("d_promotions", "promotions", 0),
                    ("version", "model", 0),
                    ("d_learner_errors", "errors", 0),
                    ("server_cpu_cores", "server CPU cores", 2),
                ],
            ),
            "",
        ]
    r = res.get("recs")
    if r:
        s = r["server"]
        lines.append(
            f"Recommendation requests inside the server (its histogram, from the middleware): "
            f"mean {s['mean_ms']:.2f} ms, median in the bucket <= {s['p50_le_ms']:g} ms, 99th "
            f"percentile <= {s['p99_le_ms']:g} ms. Server CPU {r['server_cpu_ms_per_request']:.2f} "
            f"ms per request (learner and feeder included); client CPU "
            f"{r['client_cpu_ms_per_request']:.2f} ms per request; client send lag p99 "
            f"{r['send_lag_ms']['p99']:.1f} ms; answers with fewer than k items: "
            f"{r['short_answers']}. Server RSS {r['learner']['rss_mb_after']:.0f} MB."
        )
    if "feeder" in res:
        f = res["feeder"]
        lines.append(
            f"Feeder: {f['events_written']:,} events in {f['posts']} posts, p99 "
            f"{f['latency_ms']['p99']:.1f} ms, errors {sum(f['errors'].values())}."
        )
    return lines


# ======================================================================= main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    meta = ensure_base(args)
    feed = Feed.load(args.work, meta, args.feed_users)
    home = fresh_run_home(args.work)
    config = server_config(args, meta)
    res: dict[str, Any] = {"config": config, "meta": meta, "args": vars(args).copy()}
    res["feed"] = {
        "users": args.feed_users,
        "events": int(len(feed.user)),
        "new_user_share": feed.new_user_share(),
    }
    res["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in res["args"].items()}
    server_phases = [x for x in args.phase_list if x != "recall"]
    if server_phases:
        port = args.port or free_port()
        server = Server(home, config, port, args.work / "server.log")
        print(f"starting: {shlex.join(server.command)}", flush=True)
        try:
            server.start(args.start_timeout)
            res["server_start_s"] = server.start_seconds
            print(f"server ready in {server.start_seconds:.1f} s (log: {server.log})", flush=True)
            res.update(asyncio.run(run_server_phases(args, feed, server)))
        finally:
            server.stop()
        res["server_log_tail"] = server.tail(15)
    if "recall" in args.phase_list and args.recall:
        gc.collect()
        print(f"ANN recall@{args.k}: opening {home} in this process ...", flush=True)
        res["recall"] = recall_phase(args, home, config)
        r = res["recall"]
        if "plain" in r:
            print(
                f"  recall {r['plain']['recall']:.4f} (excluding seen "
                f"{r['exclude_seen']['recall']:.4f}; by score "
                f"{r['plain'].get('score_recall', float('nan')):.4f} / "
                f"{r['exclude_seen'].get('score_recall', float('nan')):.4f}), index {r['index']}, open "
                f"{r['open_seconds']:.0f} s",
                flush=True,
            )
    command = ".venv/bin/python benchmarks/load.py " + shlex.join(args.argv)
    commands = [command]
    raw_path = ROOT / "docs" / "benchmarks" / f"service-{args.block}.json"
    if args.merge and raw_path.exists():  # keep the phases this run did not repeat
        previous = json.loads(raw_path.read_text())
        res = {**previous.get("results", {}), **res}
        commands = [*previous.get("commands", []), command]
    body = report_lines(args, meta, res)
    print("\n" + "\n".join(body))
    if not args.no_write:
        title = f"Service load test: {meta['n_items']:,} items" + (
            ", exact search" if args.exact else ""
        )
        raw = {"results": res, "commands": commands}
        _seq.write_block(args.block, title, "\n    ".join(commands), body, raw, prefix="service")
        print(f"wrote the service-{args.block} block of docs/benchmarks.md", flush=True)
    return res


if __name__ == "__main__":
    main()
