"""Online updates (issue 4 item 7): events per second through ``OnlineLearner.learn``.

A sequential model (the package defaults with ``text_encoder=None``; ``--param`` to
change them) is fitted on the first ``--fit-fraction`` of a dataset's events in time
order; the later events are then replayed, in time order, through
``lifelongrec.training.OnlineLearner.learn`` in requests of 1, 10, 100 and 1,000 events,
each request size on a fresh copy of the fitted model, twice:

* ``state``: state updates only (``train_inline=False``, nothing trained): what a
  service's request thread pays per ``POST /events``;
* ``params``: state updates plus mini-batch parameter steps in the same thread
  (``--batch-size`` events per update, ``--steps-per-batch`` optimiser steps each,
  the rest flushed at the end, all timed).

Reported per run: events/s (events over the wall time of all calls), per-call latency
p50 / p99 / max (ms), the learner's time split (state updates vs optimiser steps) and
counts; for the ``state`` runs also the latency of ``recommend`` (k=10) right after an
event (every ``--recommend-every``-th call, outside the events/s timing).

Items are admitted from the catalogue before the replay (``Recommender.add_items``), as
a service does when an item is published; ``--no-catalogue`` leaves new items to arrive
with their first event (each such call then grows the tables through ``partial_fit``).
New users always arrive with their first event.

    .venv/bin/python benchmarks/online.py                    # ml-latest-small, full
    .venv/bin/python benchmarks/online.py --quick --out /tmp/online.md   # ~1-2 minutes

Writes a marked block (``<!-- online:begin -->``) into ``--out`` (default
docs/benchmarks.md) and the raw results as JSON (``--json``; default
docs/benchmarks/online.json, or ``--out`` with a ``.json`` suffix).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {"ml-latest-small": SHARED / "ml-latest-small", "synthetic": "synthetic"}
DOC = ROOT / "docs" / "benchmarks.md"
RAW = ROOT / "docs" / "benchmarks" / "online.json"
BEGIN, END = "<!-- online:begin -->", "<!-- online:end -->"
MODEL_DEFAULTS = {"text_encoder": None, "verbose": False, "random_state": 0}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(DATASETS), default="ml-latest-small")
    p.add_argument("--synthetic-events", type=int, default=30_000)
    p.add_argument("--fit-fraction", type=float, default=0.8)
    p.add_argument("--fit-epochs", type=int, default=20, help="cap on the fit's epochs")
    p.add_argument("--request-sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--modes", nargs="+", choices=["state", "params"], default=["state", "params"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps-per-batch", type=int, default=1)
    p.add_argument("--max-events", type=int, default=None, help="replayed events per run")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (the cores used); on a machine busy with other work use 1: "
        "two spin-wait for each other (an online step took 10-40x longer)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads of numpy (scoring one user is faster on one; under load, "
        "several spin-wait: a 1x64 @ 64x9742 product took 12 ms instead of 0.04 ms)",
    )
    p.add_argument("--recommend-every", type=int, default=10)
    p.add_argument("--no-catalogue", action="store_true")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--quick", action="store_true", help="fit 1 epoch, replay 2,000 events")
    p.add_argument("--out", type=Path, default=DOC)
    p.add_argument("--json", type=Path, default=None)
    return p


def parse_params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param {pair!r}: expected NAME=VALUE")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = None if raw == "None" else raw
    return out


# ------------------------------------------------------------------ the runs
def load(args: argparse.Namespace):
    """``(fit Dataset, replayed events frame, catalogue)``: a time split of the data."""
    from lifelongrec.data import load_data, prepare

    source = DATASETS[args.data]
    if source != "synthetic" and not Path(source).is_dir():
        raise SystemExit(f"{source} not found (the shared datasets); try --data synthetic")
    data = prepare(load_data(str(source), synthetic_events=args.synthetic_events, seed=0))
    ev = data.events.reset_index(drop=True)  # prepare sorted it by time (stable)
    cut = int(len(ev) * args.fit_fraction)
    fit = data.with_events(ev.iloc[:cut].reset_index(drop=True))
    return fit, ev.iloc[cut:].reset_index(drop=True), data.items


def requests(events, size: int, limit: int | None) -> list[list[dict[str, Any]]]:
    """The replayed events as requests of ``size`` records (what a service receives)."""
    cols = ["user_id", "item_id", "timestamp", "event_type", "value"]
    frame = events.iloc[:limit] if limit else events
    records = []
    for u, i, t, e, v in frame[cols].itertuples(index=False):
        records.append(
            {
                "user_id": u,
                "item_id": i,
                "timestamp": int(t),
                "event_type": e,
                "value": None if v != v else float(v),
            }
        )
    return [records[s : s + size] for s in range(0, len(records), size)]


def percentiles(values_ms: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(values_ms, dtype=np.float64)
    if not len(a):
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def replay(model, reqs, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run: a fresh copy of ``model``, every request through ``learn``, timed."""
    from lifelongrec.training import OnlineLearner

    m = copy.deepcopy(model)
    learner = OnlineLearner(
        m, batch_size=args.batch_size, steps_per_batch=args.steps_per_batch,
        train_inline=mode == "params",
    )  # fmt: skip
    calls, recommend = [], []
    n_users_before = m.n_users
    total = cpu = 0.0
    for j, req in enumerate(reqs):
        c0, t0 = time.process_time(), time.perf_counter()
        learner.learn(req)
        dt = time.perf_counter() - t0
        cpu += time.process_time() - c0
        calls.append(dt * 1e3)
        total += dt
        if mode == "state" and args.recommend_every and j % args.recommend_every == 0:
            t0 = time.perf_counter()
            m.recommend(req[-1]["user_id"], k=10)
            recommend.append((time.perf_counter() - t0) * 1e3)
    c0, t0 = time.process_time(), time.perf_counter()
    if mode == "params":
        learner.flush()
    total += time.perf_counter() - t0
    cpu += time.process_time() - c0
    stats = learner.stats.as_dict()
    n = stats["n_events"]
    out = {
        "request_size": len(reqs[0]) if reqs else 0,
        "mode": mode,
        "n_events": n,
        "n_calls": len(reqs),
        "seconds": total,
        "events_per_second": n / total if total > 0 else float("nan"),
        # CPU time of the process (all its threads): with one torch thread, what a quiet
        # machine would give; other work on the machine inflates wall time, not this
        "cpu_seconds": cpu,
        "events_per_cpu_second": n / cpu if cpu > 0 else float("nan"),
        "call_ms": percentiles(calls),
        "ms_per_event": total * 1e3 / max(n, 1),
        "n_new_users": m.n_users - n_users_before,
        "learner": stats,
    }
    if recommend:
        out["recommend_after_event_ms"] = percentiles(recommend)
    return out


def fit_model(fit, catalogue, args: argparse.Namespace):
    from lifelongrec.models import SequentialRecommender

    params = {**MODEL_DEFAULTS, "epochs": args.fit_epochs, **parse_params(args.param)}
    t0 = time.perf_counter()
    model = SequentialRecommender(**params).fit(fit)
    fit_seconds = time.perf_counter() - t0
    n_admitted = 0
    if catalogue is not None and not args.no_catalogue:
        n_before = model.n_items
        model.add_items(catalogue.drop_duplicates("item_id"))
        n_admitted = model.n_items - n_before
    return model, {"params": params, "fit_seconds": fit_seconds, "n_admitted": n_admitted}


def warm_up(model, reqs, args: argparse.Namespace) -> None:
    """First steps pay one-off costs (allocations, kernel set-up): not measured."""
    if reqs:
        replay(model, reqs[: max(1, args.batch_size // max(len(reqs[0]), 1)) + 1], "params", args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fit, then every (request size, mode) run; torch and BLAS threads as asked (the
    process's settings are restored afterwards)."""
    import torch
    from threadpoolctl import threadpool_limits

    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    if args.quick:
        args.fit_epochs = 1
        args.max_events = args.max_events or 2_000
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with threadpool_limits(limits=args.blas_threads, user_api="blas"):
            return _runs(args, load_before)
    finally:
        torch.set_num_threads(threads)


def _runs(args: argparse.Namespace, load_before: float) -> dict[str, Any]:
    fit, replayed, catalogue = load(args)
    model, facts = fit_model(fit, catalogue, args)
    results = []
    for size in args.request_sizes:
        reqs = requests(replayed, size, args.max_events)
        warm_up(model, reqs, args)
        for mode in args.modes:
            results.append(replay(model, reqs, mode, args))
            r = results[-1]
            print(
                f"requests of {size:>5} {mode:>6}: {r['events_per_second']:9.0f} events/s "
                f"({r['events_per_cpu_second']:.0f} per CPU second), "
                f"call p50 {r['call_ms']['p50']:.2f} ms p99 {r['call_ms']['p99']:.2f} ms",
                flush=True,
            )
    return {
        "data": args.data,
        "n_fit_events": len(fit.events),
        "n_replayable_events": len(replayed),
        "n_users": model.n_users,
        "n_items": model.n_items,
        "seen_cells": int(model.user_items_.nnz),
        "batch_size": args.batch_size,
        "steps_per_batch": args.steps_per_batch,
        "threads": args.threads,
        "blas_threads": args.blas_threads,
        "catalogue_admitted": not args.no_catalogue,
        "machine": machine(),
        "load_average_before": load_before,
        **facts,
        "results": results,
    }


# ------------------------------------------------------------------ reporting
def machine() -> str:
    import numpy
    import torch

    return (
        f"{os.cpu_count()} cores ({torch.get_num_threads()} torch threads), "
        f"Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"torch {torch.__version__}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def markdown(raw: dict[str, Any], command: str) -> str:
    head = (
        "| request size | mode | events/s | events/CPU-s | call p50 ms | call p99 ms | "
        "ms/event | state s | step s | updates | new users | recommend p50/p99 ms |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in raw["results"]:
        s = r["learner"]
        rec = r.get("recommend_after_event_ms")
        lines.append(
            f"| {r['request_size']} | {r['mode']} | {r['events_per_second']:,.0f} | "
            f"{r['events_per_cpu_second']:,.0f} | "
            f"{r['call_ms']['p50']:.2f} | {r['call_ms']['p99']:.2f} | {r['ms_per_event']:.3f} | "
            f"{s['state_seconds']:.2f} | {s['step_seconds']:.2f} | {s['n_batches']} | "
            f"{r['n_new_users']} | "
            + (f"{rec['p50']:.1f} / {rec['p99']:.1f}" if rec else "")
            + " |"
        )
    p = raw["params"]
    settings = ", ".join(f"{k}={v!r}" for k, v in p.items() if k not in ("verbose",))
    return "\n".join(
        [
            BEGIN,
            "## Online updates (issue 4 item 7)",
            "",
            "Command:",
            "",
            f"    {command}",
            "",
            f"Machine: {raw['machine']}; 1-minute load average {raw['load_average_before']:.1f} "
            f"before the run; {raw['blas_threads']} BLAS thread(s).",
            "",
            f"Data: {raw['data']}, fitted on the first {raw['n_fit_events']:,} events in time "
            f"order, then up to {raw['results'][0]['n_events'] if raw['results'] else 0:,} of "
            f"the {raw['n_replayable_events']:,} later events replayed through "
            "`OnlineLearner.learn` in requests of the given size, each run on a fresh copy. "
            f"Model: `SequentialRecommender({settings})`, fit {raw['fit_seconds']:.0f} s; "
            f"{raw['n_users']:,} users, {raw['n_items']:,} items "
            + (
                f"({raw['n_admitted']:,} admitted from the catalogue before the replay)"
                if raw["catalogue_admitted"]
                else "(new items arrive with their events)"
            )
            + f". Parameter updates every {raw['batch_size']} events, "
            f"{raw['steps_per_batch']} optimiser step(s) each. `state`: state updates only; "
            "`params`: state and parameter steps in the same thread (the rest flushed at the "
            "end, timed). events/s is events over the wall time of all calls, events/CPU-s "
            "over the process's CPU time in them (all threads; with one torch thread, about "
            "what a quiet machine gives); the time split is the learner's own (wall); "
            "`recommend` is timed right after an event (k=10).",
            "",
            *lines,
            END,
        ]
    )


def write(raw: dict[str, Any], args: argparse.Namespace, argv: list[str]) -> None:
    command = ".venv/bin/python benchmarks/online.py " + shlex.join(argv)
    block = markdown(raw, command)
    out: Path = args.out
    text = out.read_text() if out.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    target = args.json or (RAW if out == DOC else out.with_suffix(".json"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"command": command, **raw}, indent=2, default=str))
    print(block)
    print(f"wrote {out} and {target}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    raw = run(args)
    write(raw, args, argv)
    return raw


if __name__ == "__main__":
    main()
