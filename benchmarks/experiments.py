"""Issue 17: online experiments measured in the closed-loop world.

1. **A/A**: ``--aa`` experiments (default 200) per design, each on a world of its own
   seed with the same ranker (ALS fit on that world's history) as champion and
   challenger, the sequential test looked at after every answer until the world's
   days run out. The false-positive rate with its 95 % Clopper-Pearson interval
   (nominal: 5 %).
2. **A worse and a better challenger**: ``--pairs`` experiments (default 50) per design
   with popularity as the challenger of ALS (it must be stopped: decision "a") and ALS
   as the challenger of popularity (it must win: decision "b"); how often each design
   decided right, and the impressions it needed (median, quartiles), and the ratio of
   A/B's median to interleaving's.

Writes the ``experiments-<block>`` block of docs/benchmarks.md and its raw JSON.

    .venv/bin/python benchmarks/experiments.py
    # smoke test (seconds):
    .venv/bin/python benchmarks/experiments.py --aa 2 --pairs 1 --world days=2 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
import numpy as np
from _common import command_line, md_table
from scipy import stats

from lifelongrec.evaluation import (
    ClosedLoopWorld,
    SimulationSettings,
    parse_params,
    run_experiment,
)
from lifelongrec.models import get_model

WORLD = dict(
    n_users=800,
    n_items=300,
    n_categories=10,
    days=4,
    history_days=7,
    shift_day=None,
    new_items_per_day=0,
)
DESIGNS = ("ab", "interleave")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval of ``k`` successes in ``n``."""
    a = (1 - level) / 2
    low = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def rankers(settings: SimulationSettings, names: tuple[str, ...]) -> dict:
    history = ClosedLoopWorld(settings).history()
    return {n: get_model(n).fit(history) for n in names}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--aa", type=int, default=200, help="A/A experiments per design")
    ap.add_argument("--pairs", type=int, default=50, help="experiments per design and pair")
    ap.add_argument("--world", action="append", default=[], metavar="K=V")
    ap.add_argument("--block", default="default")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    world = {**WORLD, **parse_params(args.world)}
    t0 = time.perf_counter()
    aa: dict[str, list[dict]] = {d: [] for d in DESIGNS}
    for r in range(args.aa):
        s = SimulationSettings(**{**world, "seed": 1_000 + r})
        als = rankers(s, ("als",))["als"]
        for d in DESIGNS:
            aa[d].append(run_experiment(als, als, s, d, salt=f"aa-{r}"))
        if (r + 1) % 20 == 0:
            print(f"A/A {r + 1}/{args.aa}", flush=True)
    pairs: dict[str, dict[str, list[dict]]] = {d: {"worse": [], "better": []} for d in DESIGNS}
    for r in range(args.pairs):
        s = SimulationSettings(**{**world, "seed": 5_000 + r})
        m = rankers(s, ("als", "popularity"))
        for d in DESIGNS:
            pairs[d]["worse"].append(run_experiment(m["als"], m["popularity"], s, d, salt=f"p-{r}"))
            pairs[d]["better"].append(
                run_experiment(m["popularity"], m["als"], s, d, salt=f"p-{r}")
            )
    wall = time.perf_counter() - t0
    aa_rows, pair_rows = [], []
    for d in DESIGNS:
        k = sum(x["decision"] is not None for x in aa[d])
        low, high = clopper_pearson(k, len(aa[d])) if aa[d] else (None, None)
        aa_rows.append(
            {
                "design": d,
                "n": len(aa[d]),
                "fp": k,
                "rate": k / len(aa[d]) if aa[d] else None,
                "low": low,
                "high": high,
                "impressions": float(np.median([x["impressions"] for x in aa[d]]))
                if aa[d]
                else None,
            }
        )
        for case, want in (("worse", "a"), ("better", "b")):
            runs = pairs[d][case]
            right = [x for x in runs if x["decision"] == want]
            imps = [x["impressions"] for x in right]
            q = [float(v) for v in np.percentile(imps, [25, 50, 75])] if imps else [None] * 3
            pair_rows.append(
                {
                    "design": d,
                    "case": f"{'popularity vs ALS' if case == 'worse' else 'ALS vs popularity'}",
                    "n": len(runs),
                    "right": len(right),
                    "wrong": sum(x["decision"] not in (None, want) for x in runs),
                    "q1": q[0],
                    "median": q[1],
                    "q3": q[2],
                }
            )
    ratios = []
    for case in ("popularity vs ALS", "ALS vs popularity"):
        ab = next(r for r in pair_rows if r["design"] == "ab" and r["case"] == case)
        il = next(r for r in pair_rows if r["design"] == "interleave" and r["case"] == case)
        if ab["median"] and il["median"]:
            ratios.append(f"{case}: {ab['median'] / il['median']:.2f}x")
    for row in aa_rows:
        print(row)
    for row in pair_rows:
        print(row)
    print("A/B median impressions / interleaving's:", "; ".join(ratios))
    if args.no_write:
        return 0
    body = [
        f"{wall / 60:.1f} min wall. World (`SimulationSettings`, a seed per experiment): "
        f"{world}. The test: mSPRT, alpha 0.05, looked at after every answer (A/B: clicks "
        "per answer, tau 0.1; interleaving: credit per answer, tau 0.05).",
        "",
        "A/A (the same ALS ranker as champion and challenger, run to the end of the world's days):",
        "",
        md_table(
            aa_rows,
            [
                ("design", "design", 0),
                ("n", "experiments", 0),
                ("fp", "false positives", 0),
                ("rate", "rate", 3),
                ("low", "95 % CI low", 3),
                ("high", "95 % CI high", 3),
                ("impressions", "median impressions per run", 0),
            ],
        ),
        "",
        "A worse and a better challenger (impressions until the test decided, over the "
        "experiments that decided right):",
        "",
        md_table(
            pair_rows,
            [
                ("design", "design", 0),
                ("case", "challenger vs champion", 0),
                ("n", "experiments", 0),
                ("right", "decided right", 0),
                ("wrong", "decided wrong", 0),
                ("q1", "impressions q1", 0),
                ("median", "median", 0),
                ("q3", "q3", 0),
            ],
        ),
        "",
        "A/B's median impressions over interleaving's: " + "; ".join(ratios) + ".",
    ]
    raw = {"world": world, "aa": aa, "pairs": pairs}
    _common.write_block(
        args.block,
        "Online experiments in the closed-loop world: A/A and design efficiency",
        command_line("experiments.py", argv),
        body,
        raw,
        prefix="experiments",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
