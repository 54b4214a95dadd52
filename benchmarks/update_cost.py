"""How well the sequential model's update budget estimates compute: measured seconds per
estimated GFLOP of its update passes and of full refits, on one stream.

The default update takes the passes whose estimated FLOPs come closest to
``partial_fit_budget`` of a refit's (models/sequential/_budget.py). The estimate is good
where both sides run at the same seconds per estimated GFLOP. This runs the lifelong
strategy on a stream of a synthetic family (8 windows), printing per update its passes,
training seconds and seconds per estimated GFLOP; then fits a new model on every event up
to each window (what ``retrain`` does), printing its epochs (against the first fit's),
training seconds and seconds per estimated GFLOP of that update's refit estimate scaled
to the epochs it ran. Training seconds are the trainer's own (``history_``), without
validation ranking; "CPU s of the call" is the process CPU time of the whole
``update``/``fit`` call (text encoding, windows, validation included), and the last
column the update's CPU as a share of the refit's on the same events (what
``benchmarks/streams.py`` compares per window).

    .venv/bin/python benchmarks/update_cost.py --stream train-sudden-50k \\
        --param partial_fit_budget=0.2 --param partial_fit_catchup=0
    .venv/bin/python benchmarks/update_cost.py --stream train-small-10k \\
        --param partial_fit_budget=0.2 --param partial_fit_catchup=0

``--param KEY=VALUE`` sets the sequential model's hyperparameters (both sides); the two
commands above measure the budget alone, as docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import pandas as pd

from lifelongrec.data import prepare, synthetic_streams, time_windows
from lifelongrec.evaluation import parse_params
from lifelongrec.models import get_model
from lifelongrec.training import Lifelong


def train_seconds(model) -> dict[int, float]:
    """Trainer seconds per update number (0: the fit)."""
    out: dict[int, float] = defaultdict(float)
    for h in model.history_:
        out[h["update"]] += h["train_seconds"]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="train", choices=["train", "test"])
    ap.add_argument("--stream", default="train-calm-20k")
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--events", type=int, default=None, help="first N events only (smoke)")
    ap.add_argument("--param", action="append", help="sequential KEY=VALUE (repeatable)")
    args = ap.parse_args(argv)
    params = parse_params(args.param or [])
    data = prepare(synthetic_streams(args.family)[args.stream].generate())
    if args.events:
        data = data.with_events(data.events.iloc[: args.events])
    windows = time_windows(data, args.windows)

    def factory():
        return get_model("sequential", **{"verbose": False, **params})

    strategy = Lifelong(seed=0)
    strategy.start(factory, windows[0])
    plans, update_cpu = [], []
    for w in windows[1:]:
        c0 = time.process_time()
        strategy.update(w)
        update_cpu.append(time.process_time() - c0)
        plans.append(dict(strategy.model_.update_plan_))
    model = strategy.model_
    fit_epochs = sum(1 for h in model.history_ if h["update"] == 0)
    seconds = train_seconds(model)
    print(f"{args.stream}: first fit {fit_epochs} epochs")
    print("| update | passes | train s | s per estimated GFLOP | CPU s of the call |")
    print("|---|---|---|---|---|")
    for u, p in enumerate(plans, 1):
        gflop = p["passes"] * p["pass_flops"] / 1e9
        print(
            f"| {u} | {p['passes']} | {seconds[u]:.2f} | {seconds[u] / gflop:.4f}"
            f" | {update_cpu[u - 1]:.2f} |"
        )
    print()
    print(
        "| refit on windows 0.. | epochs | train s | s per estimated GFLOP"
        " | CPU s of the call | update's share of it |"
    )
    print("|---|---|---|---|---|---|")
    for u, p in enumerate(plans, 1):
        union = windows[u].with_events(
            pd.concat([w.events for w in windows[: u + 1]], ignore_index=True)
        )
        c0 = time.process_time()
        refit = factory().fit(union)
        cpu = time.process_time() - c0
        epochs = sum(1 for h in refit.history_ if h["update"] == 0)
        # the estimate per epoch (validation included) times the epochs this refit ran
        gflop = p["refit_flops"] / fit_epochs * epochs / 1e9
        s = train_seconds(refit)[0]
        print(
            f"| {u} | {epochs} | {s:.1f} | {s / gflop:.4f} | {cpu:.1f}"
            f" | {100 * update_cpu[u - 1] / cpu:.1f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
