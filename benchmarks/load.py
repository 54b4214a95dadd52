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
   ``--replicas N`` starts N such processes on the home (the first starts the learner,
   the others follow it) and sends the requests of every phase to them in turn, as a
   round-robin load balancer would; server CPU and memory are then their sum.
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
   ``service.live_index.search`` against exact top-10 over the same item vectors
   (``model.item_vectors()``, ``model.user_vectors``), without and with the users' seen
   items excluded (the service's request path), plus per-query search times.

Before and after each phase the benchmark reads ``/health`` and ``/metrics``: the model
version, stored events, learner batches and trained events, lag, challengers and
promotions (so the table shows that the learner ran), and the interpreter's full
(generation 2) collections in the API process, a pause every request in flight waits
out. It also reads the server's CPU
time (``/proc``) and its own, and the server's latency histogram.

HTTP client: ``--client raw`` (default; HTTP/1.1 keep-alive over asyncio streams, a
pool of up to ``--max-connections``) or ``--client httpx`` (``httpx.AsyncClient``).
Client CPU per request is reported for either: on two cores the client shares the
machine with the server, and there httpx cannot drive the default rate (see
``_load_client.py``). The script's parts: ``_load_client.py`` (client, server process,
statistics) and ``_load_phases.py`` (the phases and the recall measurement).

    # the issue's figures, on a quiet machine (the first run also builds the home folder):
    .venv/bin/python benchmarks/load.py                         # 100k items, HNSW
    .venv/bin/python benchmarks/load.py --exact --phases recs    # the same home, exact search
    .venv/bin/python benchmarks/load.py --items 1000000 --duration 30 --ingest-duration 5
    # what new users cost: only events of users the champion knows
    .venv/bin/python benchmarks/load.py --feed-users known --phases recs --block load-known
    # smoke test (about a minute on two cores, half of it training the champion once):
    nice -n 10 .venv/bin/python benchmarks/load.py --items 5000 --events 20000 \\
        --duration 5 --no-write

The server builds its HNSW index when it starts on the fresh copy (and saves it in the
home) and again whenever a challenger is promoted, and the recall phase builds one more
in this process: on two cores that is about a minute or two for 100k items and minutes
for a million. ``--restart`` stops the server after the phases and times a start on the
same home, which reads the saved graph back instead of building it.

Writes the ``service-load`` block of docs/benchmarks.md (``service-load-<items>`` for
another catalogue size, ``-exact`` appended with ``--exact``; ``--block NAME`` to
choose) and docs/benchmarks/service-<block>.json; ``--no-write`` prints only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
import numpy as np
from _common import ROOT, command_line, free_port, md_table, write_block
from _load_client import Server, ServerGroup
from _load_phases import recall_phase, run_server_phases

from lifelongrec.evaluation import parse_params


def _service_defaults() -> Any:
    from lifelongrec.serving import ServiceConfig

    return ServiceConfig()


_DEFAULTS = _service_defaults()
WORK = ROOT / "benchmarks" / "_work"

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
    g.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="serve's --switch-interval-ms (default: serve's own, 0.5)",
    )
    g.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="serve --no-gc-freeze: leave the start's objects to the full collections",
    )
    g.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="serve processes on the home (the first starts the learner; requests go to "
        "them in turn, as a round-robin load balancer sends them)",
    )
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
        "--restart",
        action="store_true",
        help="after the phases, stop the server and time a start on the same home",
    )
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
    if args.switch_interval_ms is not None and not args.switch_interval_ms >= 0.01:
        fail("--switch-interval-ms must be >= 0.01 (as serve's)")
    if args.users is None:
        args.users = max(10, args.events // 40)
    if args.pool is None:
        args.pool = max(20_000, args.events // 5)
    if args.ann_threshold is None:
        args.ann_threshold = 1_000_000_000 if args.exact else max(1, min(50_000, args.items - 1))
    if args.work is None:
        args.work = WORK / f"load-{args.items}"
    args.model_params = {**MODEL_PARAMS, **parse_params(args.param or [])}
    args.service_overrides = parse_params(args.service or [])
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


# ======================================================================= home folder
def serve_options(args: argparse.Namespace) -> list[str]:
    """The ``lifelongrec serve`` options the arguments name beyond the defaults."""
    options = ["--no-gc-freeze"] if args.no_gc_freeze else []
    if args.switch_interval_ms is not None:
        options += ["--switch-interval-ms", str(args.switch_interval_ms)]
    return options


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
    restart = ""
    if "restart_s" in res:
        restart = (
            f"; stopped after the phases and started again on the same home (exact search "
            "until the housekeeping has read the saved graph back), it answered /health "
            f"{res['restart_s']:.1f} s after starting"
        )
    lines = [
        f"Setup: {meta['n_items']:,} synthetic items ({index_desc} index; ann_threshold "
        f"{cfg['ann_threshold']:,}), {meta['n_events']:,} events in the store from "
        f"{meta['n_users']:,} users; champion: sequential {json.dumps(mp)} trained on the first "
        f"start in {meta['fit_seconds']} s. Server: `lifelongrec serve --open` (uvicorn, "
        f"one torch thread) with the background learner on ({learner_desc(res)}; service settings "
        f"{json.dumps({k: v for k, v in cfg.items() if k not in ('model', 'model_params')})}"
        f"); it answered /health {res.get('server_start_s', float('nan')):.0f} s after "
        f"starting (index build included){restart}"
        + (
            f"; **{args.replicas} such processes on the home**, requests sent to them in "
            "turn (server CPU and memory below are their sum; counters are the first's)"
            if getattr(args, "replicas", 1) > 1
            else ""
        )
        + f". Client: {args.client} "
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
    lines += [md_table(rows, cols), ""]
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
            md_table(
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
                    ("learner_cpu_cores", "learner process CPU cores", 2),
                    ("learner_events_per_s", "events trained per s", 0),
                    ("d_full_collections", "full collections (API)", 0),
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
            f"{r['short_answers']}. Server RSS {r['learner']['rss_mb_after']:.0f} MB; learner "
            f"process RSS {r['learner']['learner_rss_mb_after']:.0f} MB."
        )
    if "feeder" in res:
        f = res["feeder"]
        lines.append(
            f"Feeder: {f['events_written']:,} events in {f['posts']} posts, p99 "
            f"{f['latency_ms']['p99']:.1f} ms, errors {sum(f['errors'].values())}."
        )
    return lines


# ======================================================================= main
def learner_desc(res: dict[str, Any]) -> str:
    """Where the learner ran, and when the phases started."""
    wait = res.get("learner_start_s")
    mode = res["config"].get("learner_mode", "process")
    if mode == "thread" or wait is None:
        return f"learner_mode {mode}"
    priority = res["config"].get("learner_priority", _DEFAULTS.learner.priority)
    how = "SCHED_IDLE and nice 10" if priority == "idle" else "nice 10"
    return (
        f"learner_mode {mode}: its own process, {how} (learner_priority {priority}); the "
        f"phases began once it had loaded the champion and completed a round, {wait:.0f} s "
        "after /health answered"
    )


def wait_for_learner(port: int, timeout: float) -> float:
    """Seconds until the server's learner has completed a round (a learner process
    loads the champion after the server answers): the phases measure a running
    learner, not its start."""
    import urllib.request

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            health = json.loads(r.read())
        if not health.get("learner_running") or health.get("learner_rounds", 1) >= 1:
            return time.perf_counter() - t0
        time.sleep(0.5)
    raise TimeoutError(f"the learner did not start within {timeout:.0f} s")


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
        extra = serve_options(args)
        server = Server(home, config, port, args.work / "server.log", extra)
        print(f"starting: {shlex.join(server.command)}", flush=True)
        try:
            server.start(args.start_timeout)
            res["server_start_s"] = server.start_seconds
            print(f"server ready in {server.start_seconds:.1f} s (log: {server.log})", flush=True)
            res["learner_start_s"] = wait_for_learner(server.port, args.start_timeout)
            print(f"learner running {res['learner_start_s']:.1f} s after that", flush=True)
            others = [
                Server(home, config, free_port(), args.work / f"server-{j}.log", extra)
                for j in range(1, args.replicas)
            ]
            for other in others:  # they find the learner running and follow it
                other.start(args.start_timeout)
                print(f"replica on port {other.port} ready", flush=True)
            group = ServerGroup([server, *others]) if others else server
            try:
                res.update(asyncio.run(run_server_phases(args, feed, group)))
            finally:
                for other in others:
                    other.stop()
            if args.restart:  # the same home again: the graph the first start saved
                server.stop()
                again = Server(home, config, port, args.work / "server-restart.log", extra)
                try:
                    again.start(args.start_timeout)
                    res["restart_s"] = again.start_seconds
                    print(f"restarted: ready in {again.start_seconds:.1f} s", flush=True)
                finally:
                    again.stop()
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
    command = command_line("load.py", args.argv)
    commands = [command]
    raw_path = _common.RAW_DIR / f"service-{args.block}.json"
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
        write_block(args.block, title, "\n    ".join(commands), body, raw, prefix="service")
        print(f"wrote the service-{args.block} block of docs/benchmarks.md", flush=True)
    return res


if __name__ == "__main__":
    main()
