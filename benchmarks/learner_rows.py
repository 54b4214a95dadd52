"""Online learner throughput by catalogue size: row-sparse against dense optimiser steps.

For each catalogue size (``--items``, default 10,000, 100,000 and 1,000,000), a synthetic
world (:func:`lifelongrec.data.synthetic`) of that many items gives ``--fit-events``
events to fit the sequential model on (``--fit-epochs`` epochs, no text encoder, no
validation: the fit only makes a model to update) and the catalogue's other items are
admitted before learning starts, as a service does when items are published. The world's
next ``--events`` events then go through ``lifelongrec.training.OnlineLearner.learn``
in requests of ``--request`` events, parameter steps every ``--batch`` events in the same
thread (``train_inline``), as the service's learner takes them from the store; once with the defaults
(``sparse_rows=True``: each step updates only the item rows its batch touched) and once
with ``sparse_rows=False`` (dense AdamW over the whole item table at every step), each
on a fresh copy of the fitted model.

Reported per size and mode: events/s (events over the wall time of all ``learn`` calls),
events per CPU second of the process, the median and 99th percentile of an optimiser
step (ms, from the learner's own timing of each batch), and the model's item rows. One
torch thread (``--threads``), as the service's learner runs.

    .venv/bin/python benchmarks/learner_rows.py
    .venv/bin/python benchmarks/learner_rows.py --items 10000 --events 2000 --no-write
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, md_table, write_block  # noqa: E402

MODEL = {"dim": 64, "text_encoder": None, "validation": False, "verbose": False}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--fit-events", type=int, default=50_000)
    p.add_argument("--fit-epochs", type=int, default=1)
    p.add_argument("--events", type=int, default=20_000, help="events learned online")
    p.add_argument("--request", type=int, default=256, help="events per learn() call")
    p.add_argument("--batch", type=int, default=256, help="events per parameter step")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print only")
    return p


def world_for(n_items: int, n_events: int, seed: int):
    """Events in time order and the catalogue of a synthetic world with ``n_items``."""
    from lifelongrec.data import synthetic

    world = synthetic(n_events=n_events, seed=seed, n_items=n_items)
    events = world.events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return events, world.items


def learn_online(model, events, request: int, batch: int) -> dict[str, Any]:
    """Feed ``events`` through an inline OnlineLearner; time it."""
    from lifelongrec.training import OnlineLearner

    learner = OnlineLearner(model, batch_size=batch, train_inline=True)
    steps: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, len(events), request):
        before = learner.stats.step_seconds
        learner.learn(events.iloc[start : start + request])
        spent = learner.stats.step_seconds - before
        if spent > 0:
            steps.append(spent)
    learner.flush()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = learner.stats
    return {
        "events": len(events),
        "wall_s": wall,
        "cpu_s": cpu,
        "events_per_s": len(events) / wall,
        "events_per_cpu_s": len(events) / cpu,
        "step_ms_p50": 1000 * float(np.percentile(steps, 50)) if steps else None,
        "step_ms_p99": 1000 * float(np.percentile(steps, 99)) if steps else None,
        "n_steps": int(stats.n_steps),
        "step_s": float(stats.step_seconds),
        "state_s": float(stats.state_seconds),
    }


def run_size(n_items: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    from lifelongrec.data import Dataset
    from lifelongrec.models import SequentialRecommender

    t0 = time.perf_counter()
    events, items = world_for(n_items, args.fit_events + args.events, args.seed)
    head, tail = events.iloc[: args.fit_events], events.iloc[args.fit_events :]
    params = {**MODEL, "epochs": args.fit_epochs, "random_state": args.seed}
    model = SequentialRecommender(**params).fit(Dataset(head, items=items))
    model.add_items(items)
    setup = time.perf_counter() - t0
    n_rows = int(model.module_.item_tower.n_items)
    print(f"{n_items} items: world + fit + admission {setup:.1f} s, {n_rows} rows", flush=True)
    rows = []
    for sparse in (True, False):
        twin = copy.deepcopy(model)
        twin.sparse_rows = sparse  # read by every training run
        got = learn_online(twin, tail, args.request, args.batch)
        got.update({"items": n_items, "rows": n_rows, "sparse_rows": sparse})
        print(
            f"  sparse_rows={sparse}: {got['events_per_s']:,.0f} events/s, step p50 "
            f"{got['step_ms_p50']:.1f} ms / p99 {got['step_ms_p99']:.1f} ms",
            flush=True,
        )
        rows.append(got)
        del twin
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [r for n in args.items for r in run_size(n, args)]
    out = {"settings": vars(args), "model": MODEL, "results": results}
    if args.no_write:
        return out
    cols = [
        ("items", "catalogue items", 0),
        ("sparse_rows", "sparse_rows", 0),
        ("events_per_s", "events/s", 0),
        ("events_per_cpu_s", "events/CPU-s", 0),
        ("step_ms_p50", "step p50 ms", 1),
        ("step_ms_p99", "step p99 ms", 1),
        ("n_steps", "steps", 0),
    ]
    table = md_table([{**r, "sparse_rows": str(r["sparse_rows"])} for r in results], cols)
    speed = {r["items"]: r["events_per_s"] for r in results if r["sparse_rows"]}
    dense = {r["items"]: r["events_per_s"] for r in results if not r["sparse_rows"]}
    gains = ", ".join(f"{n:,} items {speed[n] / dense[n]:.1f}x" for n in speed if n in dense)
    body = [
        f"Protocol: a synthetic world per catalogue size; the sequential model ({MODEL}, "
        f"{args.fit_epochs} epoch(s)) fitted on its first {args.fit_events:,} events, the "
        f"rest of the catalogue admitted, then its next {args.events:,} events learned "
        f"through `OnlineLearner.learn` in requests of {args.request}, one optimiser step "
        f"every {args.batch} events in the same thread, {args.threads} torch thread(s); "
        "with the default `sparse_rows=True` (each step updates only the item rows its "
        "batch touched: sampled softmax above 20,000 items) and with `sparse_rows=False` "
        "(dense AdamW over the whole item table), each on a fresh copy of the fitted model.",
        "",
        table,
        "",
        f"Row-sparse against dense steps: {gains}.",
    ]
    title = "Online learner throughput by catalogue size: row-sparse vs dense steps"
    command = command_line("learner_rows.py", argv)
    write_block("default", title, command, body, out, prefix="learner-rows")
    return out


if __name__ == "__main__":
    main()
