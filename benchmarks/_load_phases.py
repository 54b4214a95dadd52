"""benchmarks/load.py, part 2: the phases run against the server (recommendations
under an open-loop rate with a feeder posting events, event -> reflected, batched
ingestion) and the ANN recall measured in this process afterwards."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import metric_samples
from _load_client import (
    Server,
    histogram_delta,
    make_clients,
    metric,
    proc_cpu_seconds,
    proc_rss_mb,
    quantiles_ms,
    rec_path,
    schedule,
)

REC_ROUTE = "/users/{user_id}/recommendations"


async def snapshot(client: Any, server: Server) -> dict[str, Any]:
    """The service's counters now (``/health``, ``/metrics``; of the first server when
    there are several) and the server's CPU (all of them)."""
    client = getattr(client, "first", client)
    _, h = await client.request("GET", "/health")
    _, m = await client.request("GET", "/metrics")
    health = json.loads(h)
    samples = metric_samples(m.decode())
    return {
        "t": time.perf_counter(),
        "cpu_s": server.cpu_seconds(),
        "rss_mb": server.rss_mb(),
        # the learner process (learner_mode="process"; none in the thread mode)
        "learner_cpu_s": proc_cpu_seconds(health.get("learner_pid")),
        "learner_rss_mb": proc_rss_mb(health.get("learner_pid")),
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
        # the interpreter's full collections in the (first) API process
        "full_collections": metric(samples, "python_gc_collections_total", generation="2"),
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
        "full_collections",
    )
    out = {f"d_{k}": after[k] - before[k] for k in keys}
    out["d_learner_errors"] = after["learner_errors"] - before["learner_errors"]
    out["lag_before"], out["lag_after"] = before["lag_events"], after["lag_events"]
    out["version_before"], out["version_after"] = before["model_version"], after["model_version"]
    out["learner_running"] = bool(before["learner_running"] and after["learner_running"])
    wall = after["t"] - before["t"]
    out["server_cpu_cores"] = (after["cpu_s"] - before["cpu_s"]) / wall if wall > 0 else None
    out["rss_mb_after"] = after["rss_mb"]
    out["learner_rss_mb_after"] = after["learner_rss_mb"]
    same = after["learner_cpu_s"] >= before["learner_cpu_s"]  # not a restarted learner
    out["learner_cpu_cores"] = (
        (after["learner_cpu_s"] - before["learner_cpu_s"]) / wall if wall > 0 and same else None
    )
    out["learner_events_per_s"] = out["d_learner_trained_events"] / wall if wall > 0 else None
    return out


class Feeder:
    """Posts ``batch`` events every ``interval`` seconds (open loop) until stopped."""

    def __init__(self, client: Any, feed: Any, batch: int, interval: float) -> None:
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
    args: argparse.Namespace, client: Any, feed: Any, server: Server
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
    args: argparse.Namespace, client: Any, feed: Any, server: Server
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
    args: argparse.Namespace, client: Any, feed: Any, server: Server
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


async def run_server_phases(args: argparse.Namespace, feed: Any, server: Server) -> dict[str, Any]:
    ports = getattr(server, "ports", [server.port])
    client = make_clients(args.client, "127.0.0.1", ports, args.max_connections, args.timeout)
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
        live = service.live  # the model and index serving now, one consistent view
        model, index = live.model, live.index
        if index is None:
            return {"skipped": "the model has no vectors"}
        rng = np.random.default_rng(args.seed + 11)
        known = np.asarray(model.known_users(), dtype=object)
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
            fallbacks0 = index.n_exact_fallbacks
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
                "exact_fallbacks": int(index.n_exact_fallbacks - fallbacks0),
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
