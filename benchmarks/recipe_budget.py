"""A candidate for a data-driven update recipe, measured on the train family of streams.

The lifelong strategy's updates today take ``partial_fit_epochs`` passes (2) whatever
the window. This prototype gives each update the passes that fill a compute budget
instead: ``share`` of what refitting on everything seen so far would cost, counted in
events x passes,

    passes = clamp(round(share * fit_epochs * events_seen / (new + replayed events)), 1, 64)

where ``fit_epochs`` is how many passes the first fit took (early stopping decides it),
so passes grow as the model has seen more and shrink for a large window. With short
update windows and the user's recent learned events as context targets
(``partial_fit_max_len=8 partial_fit_context_weight=1.0``) each pass is cheap. Replay
is as in :class:`~lifelongrec.training.Lifelong` (share 0.25 of each update), whose
update this strategy only tells how many passes to take; the run monitors no drift.

The retrain and fine-tune figures it compares against are the rows of
docs/benchmarks/streams-train.json (``benchmarks/streams.py --family train``).

    .venv/bin/python benchmarks/recipe_budget.py --share 0.1 \\
        --param partial_fit_max_len=8 --param partial_fit_context_weight=1.0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lifelongrec.data import Dataset, prepare, synthetic_streams
from lifelongrec.evaluation import parse_params, prequential
from lifelongrec.models import get_model
from lifelongrec.training import Lifelong

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "streams-train.json"


class BudgetLifelong(Lifelong):
    """Lifelong updates whose passes fill ``share`` of an estimated refit's compute."""

    def __init__(self, share: float = 0.1, replay_share: float = 0.25, seed: int | None = 0):
        super().__init__(replay_share=replay_share, seed=seed)
        self.share = share

    def _started(self, first: Dataset) -> None:
        super()._started(first)
        self.seen_ = len(first.events)
        self.fit_epochs_ = sum(1 for h in self.model_.history_ if h["update"] == 0)
        self.passes_: list[int] = []

    def _update_epochs(self, n_new: int, n_replay: int) -> int:
        self.seen_ += n_new
        budget = self.share * self.fit_epochs_ * self.seen_ / (n_new + n_replay)
        passes = max(1, min(64, round(budget)))
        self.passes_.append(passes)
        return passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--share", type=float, default=0.1)
    ap.add_argument("--streams", nargs="*", default=None, help="train-family names (all)")
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--param", action="append", help="sequential KEY=VALUE (repeatable)")
    args = ap.parse_args()
    params: dict[str, Any] = parse_params(args.param)
    family = synthetic_streams("train")
    reference = json.loads(REFERENCE.read_text())["rows"]
    ref = {(r["stream"], r["strategy"]): r for r in reference if r["model"] == "sequential"}
    print(
        "| stream | mean NDCG@10 | % of retrain | update CPU s | % of retrain's CPU | BWT "
        "(fine-tune's) | passes per update |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.streams or list(family):
        data = prepare(family[name].generate())
        strategy = BudgetLifelong(args.share)
        model = get_model("sequential", verbose=False, **params)
        r = prequential(
            model, data, strategy=strategy, n_windows=args.windows, k=10, progress=False
        )
        ndcg, cpu = r["mean"]["ndcg@10"], r["total_update_cpu_seconds_after_first"]
        retrain, finetune = ref[(name, "retrain")], ref[(name, "finetune")]
        print(
            f"| {name} | {ndcg:.4f} | {100 * ndcg / retrain['ndcg@10']:.1f} % | {cpu:.1f} | "
            f"{100 * cpu / retrain['cpu']:.1f} % | {r['bwt']['ndcg@10']:+.4f} "
            f"({finetune['bwt']:+.4f}) | {strategy.passes_} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
