"""Choosing the sequential model's update budget on the train family of streams.

Each update of the sequential model takes the passes that spend ``partial_fit_budget`` of
a refit's estimated compute (docs/lifelong.md). For each budget of ``--budgets`` and each
stream of the train family (:func:`lifelongrec.data.synthetic_streams`), this runs the
prequential protocol with the lifelong and fine-tune strategies (the same windows and
drift detector as ``benchmarks/streams.py``) and compares them with the full-retrain rows
of docs/benchmarks/streams-train.json (a retrain never calls ``partial_fit``, so the
budget does not change it): lifelong's mean NDCG@10 as a share of retrain's, its update
CPU seconds as a share of retrain's, its BWT against fine-tune's with the same budget,
and the passes of its updates. Only the train family is used to choose; the test family
and the real datasets report the choice (``benchmarks/streams.py --family test``).

    .venv/bin/python benchmarks/update_budget.py --budgets 0.05 0.1 0.2

``--param`` sets the sequential model's hyperparameters, ``--strategy-param`` the
lifelong strategy's (e.g. ``replay_share=0.5``); ``--no-finetune`` skips the fine-tune
runs, which those settings do not change.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from lifelongrec.data import prepare, synthetic_streams
from lifelongrec.evaluation import parse_params, prequential
from lifelongrec.models import get_model
from lifelongrec.training import get_strategy

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "streams-train.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.1])
    ap.add_argument("--streams", nargs="*", default=None, help="train-family names (all)")
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--drift", default="adwin", choices=["adwin", "page-hinkley", "none"])
    ap.add_argument("--param", action="append", help="sequential KEY=VALUE (repeatable)")
    ap.add_argument("--strategy-param", action="append", help="lifelong KEY=VALUE (repeatable)")
    ap.add_argument(
        "--no-finetune",
        action="store_true",
        help="lifelong only (fine-tune does not depend on --strategy-param)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    params: dict[str, Any] = parse_params(args.param or [])
    lifelong_params: dict[str, Any] = parse_params(args.strategy_param or [])
    family = synthetic_streams("train")
    reference = json.loads(REFERENCE.read_text())["rows"]
    ref = {
        r["stream"]: r
        for r in reference
        if r["model"] == "sequential" and r["strategy"] == "retrain"
    }
    print(
        "| budget | stream | mean NDCG@10 | % of retrain | update CPU s | % of retrain's CPU "
        "| BWT (fine-tune's) | passes per update |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for budget in args.budgets:
        for name in args.streams or list(family):
            data = prepare(family[name].generate())
            got, passes = {}, []
            for name_ in ("lifelong",) if args.no_finetune else ("lifelong", "finetune"):
                extra = lifelong_params if name_ == "lifelong" else {}
                strategy = get_strategy(name_, seed=0, **extra)
                model = get_model(
                    "sequential", **{"verbose": False, **params}, partial_fit_budget=budget
                )
                got[name_] = prequential(
                    model,
                    data,
                    strategy,
                    n_windows=args.windows,
                    k=10,
                    progress=False,
                    drift=None if args.drift == "none" else args.drift,
                )
                if name_ == "lifelong":
                    counts = Counter(h["update"] for h in strategy.model_.history_)
                    passes = [counts[u] for u in range(1, strategy.model_.n_updates_ + 1)]
            r = got["lifelong"]
            ndcg, cpu = r["mean"]["ndcg@10"], r["total_update_cpu_seconds_after_first"]
            retrain = ref[name]
            row = {
                "budget": budget,
                "stream": name,
                "ndcg@10": ndcg,
                "ndcg_share": ndcg / retrain["ndcg@10"],
                "cpu": cpu,
                "cpu_share": cpu / retrain["cpu"],
                "bwt": r["bwt"]["ndcg@10"],
                "finetune_bwt": got["finetune"]["bwt"]["ndcg@10"] if "finetune" in got else None,
                "finetune_ndcg@10": (
                    got["finetune"]["mean"]["ndcg@10"] if "finetune" in got else None
                ),
                "strategy_params": lifelong_params,
                "passes": passes,
                "ndcg@10_per_window": [w["ndcg@10"] for w in r["windows"][1:]],
            }
            rows.append(row)
            print(
                f"| {budget:g} | {name} | {ndcg:.4f} | {100 * row['ndcg_share']:.1f} % | "
                f"{cpu:.1f} | {100 * row['cpu_share']:.1f} % | {row['bwt']:+.4f} "
                f"({'–' if row['finetune_bwt'] is None else format(row['finetune_bwt'], '+.4f')})"
                f" | {row['passes']} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
